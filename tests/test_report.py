"""Figures, diagnostics and the report on a synthetic experiment: the HTML parses,
every embedded image decodes, and the tables carry every verdict."""

import base64
import io
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image

from cnnclaims import plots
from cnnclaims.article import ARTICLE

get_claim = ARTICLE.claim
from cnnclaims.diagnostics import cached_claim_plots, claim_plots
from cnnclaims.report import verdict_table_text, write_report


@pytest.fixture(scope="module")
def exp(synthetic_exp):
    return synthetic_exp


class Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.imgs, self.tags = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "img":
            self.imgs.append(dict(attrs)["src"])


@pytest.fixture(scope="module")
def report(exp, tmp_path_factory):
    """One report for the module: it renders every figure, which is what costs."""
    msgs = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(plots, "DPI", 30)  # what is tested is that every picture is there, not its detail
        html_path, md_path = write_report(
            exp, tmp_path_factory.mktemp("report"), progress=msgs.append, calibration_experiments=8
        )
    return html_path, md_path, msgs


def test_report(exp, report):
    html_path, md_path, msgs = report
    assert any("writing HTML" in m for m in msgs)
    p = Collect()
    p.feed(html_path.read_text())
    p.close()
    assert "table" in p.tags and len(p.imgs) >= 8
    for src in p.imgs:
        assert src.startswith("data:image/png;base64,")
        with Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))) as im:
            im.verify()
    md = md_path.read_text()
    for v in exp.verdicts:
        assert v.name in md
    assert "synthetic random images" in md and "tensorflow" in md
    # opens with the claims x scopes matrix, the forest plot and the design's calibration
    assert md.index("## Verdicts at a glance") < md.index("## Trained models")
    assert "seeds-forest.png" in md and "any wrong verdict" in md
    for scope in ("frogs", "seeds", "sizes"):  # every inferential scope is calibrated
        assert f"\n{scope} scope (" in md
    assert "null splits:" in md and "background:" in html_path.read_text()
    # the simulated makespan of the run's plan, from the records in its cache, with its figure
    assert md.index("## Trained models") < md.index("## Makespan, simulated") < md.index("## Verdicts\n")
    assert "| workers | makespan (min) |" in md and "figures/makespan.png" in md
    page = html_path.read_text()
    assert "<h2>Makespan, simulated</h2>\n<p>From the recorded" in page and "<tr><th>plan</th><th>workers</th>" in page
    for line in md.splitlines():
        if line.startswith("!["):
            assert (md_path.parent / line.split("(")[1].rstrip(")")).exists()


@pytest.mark.parametrize("scope", ["frogs", "seeds"])
def test_every_claim_has_diagnostics_in_the_report(exp, report, scope):
    figures = report[0].parent / "figures"
    for v in exp.verdicts:
        if v.scope == scope:
            paths = list(figures.glob(f"{get_claim(v.claim).name}-{scope}-*.png"))
            assert paths and all(p.stat().st_size > 1000 for p in paths), v.name


def test_every_probe_claim_has_diagnostics(exp, tmp_path):
    for v in exp.verdicts:
        if v.scope == "probe":
            paths = claim_plots(exp, v, tmp_path)
            assert paths and all(p.exists() and p.stat().st_size > 1000 for p in paths)


def test_null_control_diagnostics(exp, tmp_path):
    v = exp.null_verdicts[0]
    (p, *_) = claim_plots(exp, v, tmp_path)
    assert "-null" in p.name


def test_table_text(exp):
    text = verdict_table_text(exp.verdicts, exp.null_verdicts, full=True)
    assert "false-positive rate" in text and "C10-bigger-data-better" in text
    header = text.splitlines()[0].split()
    for col in ("tier", "SESOI", "MDE", "verdict", "pinned"):
        assert col in header


def test_compact_table_fits_110_columns_and_says_what_holds_per_scope(exp):
    """The default table (issue 22, item 4): claim, scope, verdict, effect, p_adj and a
    pin mark, every line within about 110 columns, one summary line per scope."""
    pins = {v.key: v.verdict for v in exp.verdicts}
    pins[exp.verdicts[0].key] = "refuted" if exp.verdicts[0].verdict != "refuted" else "supported"
    text = verdict_table_text(exp.verdicts, exp.null_verdicts, pins)
    lines = text.splitlines()
    assert lines[0].split() == ["claim", "scope", "verdict", "effect", "[95%", "CI]", "p_adj", "pin"]
    assert max(len(line) for line in lines) <= 110, text
    assert f"was {pins[exp.verdicts[0].key]}" in lines[2] and lines[3].rstrip().endswith("=")
    for scope in {v.scope for v in exp.verdicts}:
        n = sum(v.scope == scope for v in exp.verdicts)
        line = next(x for x in lines if x.startswith(f"{scope}: "))
        assert sum(int(part.split()[0]) for part in line.split(": ")[1].split(", ")) == n
    full = verdict_table_text(exp.verdicts, exp.null_verdicts, pins, full=True)
    assert "TOST p_adj" in full and max(len(x) for x in full.splitlines()) > 110  # the compact one is the change


def test_forest_plot_is_a_picture(exp, tmp_path):
    from cnnclaims.report import write_forest_plot

    p = write_forest_plot(exp.verdicts, tmp_path / "f.png")
    with Image.open(p) as im:
        lo, hi = im.convert("L").getextrema()
        assert im.size[0] > 300 and im.size[1] > 200 and hi > lo  # not blank


def test_plots_are_reused_until_the_picture_or_verdict_changes(exp, tmp_path):
    v = next(v for v in exp.verdicts if v.scope == "frogs")
    first = cached_claim_plots(exp, v, tmp_path)
    stamps = [p.stat().st_mtime_ns for p in first]
    assert cached_claim_plots(exp, v, tmp_path) == first
    assert [p.stat().st_mtime_ns for p in first] == stamps  # not redrawn
    first[0].write_bytes(b"not a png")  # a damaged picture is drawn again
    assert cached_claim_plots(exp, v, tmp_path) == first and first[0].read_bytes()[:4] == b"\x89PNG"
    changed = type(v).from_dict({**v.to_dict(), "p_value": 0.5})
    before = first[0].stat().st_mtime_ns
    cached_claim_plots(exp, changed, tmp_path)
    assert first[0].stat().st_mtime_ns != before


@pytest.mark.unit
def test_a_report_of_examples_widths_reads_its_own_pins(monkeypatch, tmp_path):
    """The report read the article's pins for any experiment taken for the default one
    ($CNNCLAIMS_EXPERIMENT): a widths report listed the article's pins. It reads the
    file ``locations.pins_path_for`` resolves, as the plugin and ``pin`` do."""
    from cnnclaims import pinned
    from cnnclaims.declaration import load_experiment

    repo = Path(__file__).resolve().parents[1]
    monkeypatch.syspath_prepend(str(repo / "examples" / "widths"))
    monkeypatch.setenv("CNNCLAIMS_EXPERIMENT", "widths:WIDTHS")
    monkeypatch.chdir(repo)
    read = []

    class Read(Exception):
        pass

    def load(path):
        read.append(Path(path))
        raise Read  # the pins are read first: nothing else of the report is needed here

    monkeypatch.setattr(pinned, "load", load)
    with pytest.raises(Read):
        write_report(SimpleNamespace(experiment=load_experiment()), tmp_path)
    assert read == [repo / "examples" / "widths" / "pinned_widths.json"]


class Cells(HTMLParser):
    """The text of every th/td cell of an HTML page, row by row, and each td's class."""

    def __init__(self):
        super().__init__()
        self.rows, self.classes, self._cell = [], [], None

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append([])
        elif tag in ("th", "td"):
            self._cell = ""
            if tag == "td":
                self.classes.append(dict(attrs).get("class"))

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data

    def handle_endtag(self, tag):
        if tag in ("th", "td"):
            self.rows[-1].append(self._cell)
            self._cell = None


def _markdown_cells(text):
    return [
        [c.strip() for c in line.strip("|").split("|")]
        for line in text.splitlines()
        if line.startswith("|") and not set(line) <= set("|-")
    ]


@pytest.mark.unit
def test_markdown_and_html_render_the_same_blocks(tmp_path):
    """The report is one block list rendered twice: both renderings carry the same
    table cells (HTML-escaped there), the same lists and the same images, and HTML
    colours the verdict cells by their verdict."""
    from cnnclaims.report import Bullets, Heading, Paragraph, Pre, Quote, table, to_html, to_markdown
    from cnnclaims.report import Image as Figure

    png = tmp_path / "fig.png"
    Image.new("RGB", (4, 4), "red").save(png)
    blocks = [
        Heading(2, "Verdicts <b>"),
        Paragraph("a & b"),
        table(
            ["claim", "tier", "seeds"],
            [("C1", "primary", "supported"), ("C2 <x>", "secondary", "underpowered (unreachable with N = 2)")],
            verdict_columns=(2,),
        ),
        table(["claim", "tier", "seeds"], [("C3", "-", "n/a")], verdict_columns=(2,)),
        Bullets((("key", "value"), "plain")),
        Bullets(()),
        Quote("quoted"),
        Pre("x < y\nz"),
        Figure(png, "a figure"),
        Figure(png, "again"),
    ]
    md, page = to_markdown(blocks), to_html(blocks)
    cells = Cells()
    cells.feed(page)
    cells.close()
    assert cells.rows == _markdown_cells(md)
    assert cells.classes == [None, None, "supported", None, None, "underpowered", None, None, None]
    assert "td.supported{background:" in page
    assert "- **key**: value\n- plain" in md and "<li><b>key</b>: value</li><li>plain</li>" in page
    assert "![a figure](figures/fig.png)\n![again](figures/fig.png)" in md
    assert page.count("<img") == 2 and "&lt;b&gt;" in page and "<pre>x &lt; y\nz</pre>" in page
    assert to_markdown(blocks, image_dir_rel="img").count("](img/fig.png)") == 2


@pytest.mark.unit
def test_the_makespan_section_is_the_makespan_commands_markdown():
    """The report's makespan blocks render back to the text ``python -m cnnclaims
    makespan`` prints."""
    from cnnclaims.makespan import markdown, simulate
    from cnnclaims.report import Bullets, Table, table_and_bullets, to_markdown

    records = [
        {"spec": {"role": "x", "n_train": n, "seed": 0, "max_epochs": 30, "patience": 3}, "train_seconds": s}
        for n, s in ((1000, 90.0), (4000, 400.0))
    ]
    items = [("big", 4000)] * 2 + [("small", 1000)] * 3 + [("mid", 2000)]
    text = markdown({"toy": simulate(items, records, workers=(1, 2, 4), max_epochs=30, patience=3)})
    blocks = table_and_bullets(text)
    assert [type(b) for b in blocks] == [Table, Bullets] and len(blocks[0].rows) == 3
    assert blocks[1].items[0][0] == "toy"  # the plan's label, bold
    assert to_markdown(blocks) == text
