"""Figures, diagnostics and the report on a synthetic experiment: the HTML parses,
every embedded image decodes, and the tables carry every verdict."""

import base64
import copy
import io
import json
import re
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


CHANGED_PIN = 0  # the verdict whose pin the report's pins file changes


@pytest.fixture(scope="module")
def fresh(exp, tmp_path_factory):
    """``exp`` with a result store of its own, empty: nothing calibrated yet."""
    from cnnclaims.cache import ResultStore
    from cnnclaims.run import CODE_DIGEST

    view = copy.copy(exp)  # the same models and verdicts
    view.results = ResultStore(tmp_path_factory.mktemp("results"), CODE_DIGEST)
    return view


@pytest.fixture(scope="module")
def pins_file(exp, tmp_path_factory):
    """A pins file with this run's entry, one label changed (``CHANGED_PIN``)."""
    from cnnclaims import pinned

    path = tmp_path_factory.mktemp("pins") / "pins.json"
    pinned.write_entry(path, exp.pin_key, exp.verdicts, exp.null_verdicts, exp.profile, exp.data.source)
    doc = json.loads(path.read_text())
    v = exp.verdicts[CHANGED_PIN]
    doc["entries"][exp.pin_key]["verdicts"][v.key] = "supported" if v.verdict != "supported" else "refuted"
    path.write_text(json.dumps(doc))
    return path


@pytest.fixture(scope="module")
def report(fresh, pins_file, tmp_path_factory):
    """One report for the module: it renders every figure, which is what costs. Its
    run has no stored calibration, and every simulation the calibration would run is
    counted (``computed``)."""
    from cnnclaims import calibration

    msgs, computed = [], []
    real = calibration.calibrate

    def counted(*args, **kwargs):
        computed.append(args[1:2])
        return real(*args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(plots, "DPI", 30)  # what is tested is that every picture is there, not its detail
        mp.setattr(calibration, "calibrate", counted)
        html_path, md_path = write_report(
            fresh,
            tmp_path_factory.mktemp("report"),
            progress=msgs.append,
            calibration_experiments=8,
            pins_file=pins_file,
        )
    return html_path, md_path, msgs, computed


@pytest.mark.integration  # the module fixture renders the whole report, every figure: 40 s and more on 2 cores
def test_report(exp, report):
    html_path, md_path, msgs, _ = report
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
    assert md.index("## Verdicts at a glance") < md.index("## Design calibration") < md.index("## Trained models")
    assert "seeds-forest.png" in md and "background:" in html_path.read_text()
    # the simulated makespan of the run's plan, from the records in its cache, with its figure
    assert md.index("## Trained models") < md.index("## Makespan, simulated") < md.index("## Verdicts\n")
    assert "| workers | makespan (min) |" in md and "figures/makespan.png" in md
    page = html_path.read_text()
    assert "<h2>Makespan, simulated</h2>\n<p>From the recorded" in page and "<tr><th>plan</th><th>workers</th>" in page
    for line in md.splitlines():
        if line.startswith("!["):
            assert (md_path.parent / line.rsplit("](", 1)[1].rstrip(")")).exists()


@pytest.mark.integration  # the module fixture renders the whole report, every figure: 40 s and more on 2 cores
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


def test_compact_table_fits_a_100_column_terminal_by_cutting_claim_names(exp, monkeypatch):
    """At 100 columns (issue 22's terminal) no line is wider, the claim column is cut
    with "..." and keeps the claim ids; without a terminal the width is 110 (the same
    log on every machine), and a terminal is never taken below 80 or above 110."""
    from cnnclaims.formatting import terminal_width

    pins = {v.key: v.verdict for v in exp.verdicts}
    wide = verdict_table_text(exp.verdicts, exp.null_verdicts, pins, width=110)
    text = verdict_table_text(exp.verdicts, exp.null_verdicts, pins, width=100)
    assert max(len(line) for line in text.splitlines()) <= 100, text
    assert max(len(line) for line in wide.splitlines()) > 100  # the names the test cuts
    assert "..." in text and all(line == line.rstrip() for line in text.splitlines())
    rows = [line for line in text.splitlines() if line[:1] == "C" and "  " in line]
    assert {r.split("-")[0] for r in rows} == {v.claim for v in exp.verdicts}
    for columns, want in (("100", 100), ("60", 80), ("250", 110)):
        monkeypatch.setenv("COLUMNS", columns)
        assert terminal_width() == want
    monkeypatch.delenv("COLUMNS")
    assert terminal_width() in range(80, 111)  # this terminal's, or 110 where there is none


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


# --- issue 22, item 5: a report that opens with its conclusion ---------------------------


def _first_screen(md: str) -> str:
    """The report's Markdown before its claims x scopes grid."""
    return md[: md.index("## Verdicts at a glance")]


@pytest.mark.integration  # the module fixture renders the whole report, every figure: 40 s and more on 2 cores
def test_the_report_opens_with_a_conclusion_and_a_headline_per_scope(exp, report):
    """Before the grid: the one-line conclusion, then one headline per scope whose
    counts add up to the scope's verdicts and name each claim, the null control's
    line and the pin status (the old report opened with a list of settings)."""
    top = _first_screen(report[1].read_text())
    assert top.index("Conclusion: Of ") < top.index("- **")
    claims = {v.claim for v in exp.verdicts}
    assert f"Of {len(claims)} claims, " in top
    for scope in dict.fromkeys(v.scope for v in exp.verdicts):
        mine = [v for v in exp.verdicts if v.scope == scope]
        line = next(ln for ln in top.splitlines() if ln.startswith(f"- **{scope} scope**: "))
        counts = re.findall(r"(\d+) ([a-z-]+) \(([^)]*)\)", line.split(" claims: ", 1)[1])
        assert sum(int(n) for n, _, _ in counts) == len(mine), line
        for n, label, ids in counts:
            assert sorted(ids.split(", ")) == sorted(v.claim for v in mine if v.verdict == label), line
            assert len(ids.split(", ")) == int(n)
    assert "- **null control**: " in top and "find a direction" in top
    # the smoke profile is a plumbing check, and says so first
    assert top.index("Warning: the smoke profile checks the plumbing") < top.index("Conclusion")


@pytest.mark.integration  # the module fixture renders the whole report, every figure: 40 s and more on 2 cores
def test_the_pin_status_names_what_differs_from_the_pins(exp, report, pins_file):
    """The pins line counts the cases as pinned and names the one whose pin differs
    (``pins_file`` changed one label)."""
    top = _first_screen(report[1].read_text())
    line = next(ln for ln in top.splitlines() if ln.startswith("- **pins**: "))
    total = len(exp.verdicts) + len(exp.null_verdicts)
    v = exp.verdicts[CHANGED_PIN]
    pinned_as = json.loads(pins_file.read_text())["entries"][exp.pin_key]["verdicts"][v.key]
    assert f"{total - 1} of {total} cases as pinned" in line and exp.pin_key in line
    assert f"1 differ: {v.key} is {v.verdict}, pinned {pinned_as}" in line


@pytest.mark.unit
def test_the_pin_status_without_pins_says_how_to_pin():
    from cnnclaims.report import pin_status

    line = pin_status([], [], None, "tf2.21-keras3.15/smoke", "tests/pinned_verdicts.json")
    assert line.startswith("none for key tf2.21-keras3.15/smoke in tests/pinned_verdicts.json")
    assert "python -m cnnclaims pin" in line


@pytest.mark.integration  # the module fixture renders the whole report, every figure: 40 s and more on 2 cores
def test_the_grid_states_each_claim(exp, report):
    """The claims x scopes grid names each claim by its id and its statement in the
    paper's words, not only by its slug."""
    cells = Cells()
    cells.feed(report[0].read_text())
    cells.close()
    header = cells.rows[0]
    assert header[:2] == ["claim", "tier"]
    grid = cells.rows[1 : 1 + len({v.claim for v in exp.verdicts})]
    for claim in exp.experiment.claims:
        if any(v.claim == claim.id for v in exp.verdicts):
            assert [f"{claim.id}: {claim.text}"] in [row[:1] for row in grid], claim.id


@pytest.mark.integration  # the module fixture renders the whole report, every figure: 40 s and more on 2 cores
def test_the_report_holds_no_python_reprs(report):
    """Settings (the profile's training sizes, the numerics) and the fragile cases are
    written as words and tables, never as a dict's or tuple's repr."""
    md, page = report[1].read_text(), report[0].read_text()
    for text in (md, page):
        for repr_start in ("{'", "{&#x27;", "('", "(&#x27;", "[('", "': "):
            assert repr_start not in text, (repr_start, text[max(0, text.find(repr_start) - 80) :][:160])
    assert "| training images per condition | " in md


@pytest.mark.integration  # the module fixture renders the whole report, every figure: 40 s and more on 2 cores
def test_figure_captions_are_words(report):
    """Every figure's caption says what it shows, in words: never its file's name."""
    md = report[1].read_text()
    images = re.findall(r"!\[([^\]]*)\]\(([^)]*)\)", md)
    assert len(images) >= 8
    for caption, path in images:
        stem = Path(path).stem
        assert caption != stem and caption.replace(" ", "-") != stem, caption
        assert len(caption.split()) >= 4 and ".png" not in caption, caption
    assert any(c.startswith("Seeds scope: each claim's effect") for c, _ in images)


@pytest.mark.integration  # the module fixture renders the whole report, every figure: 40 s and more on 2 cores
def test_the_report_computes_no_calibration_and_says_how(report):
    """Nothing stored: the report simulates nothing (the calibration took 6.5 of the
    report's 7 minutes) and says how to compute it."""
    md, msgs, computed = report[1].read_text(), report[2], report[3]
    assert computed == [] and "cnnclaims report: reading the stored design calibration ..." in msgs
    section = md[md.index("## Design calibration") : md.index("## Trained models")]
    assert "Not computed for these models yet" in section
    # the options that store what this report looks up: its N and its 60 simulated experiments
    assert "`python -m cnnclaims calibrate --profile smoke --seeds 3 --experiments 8`" in section
    assert "<code>python -m cnnclaims calibrate --profile smoke" in report[0].read_text()


def test_a_stored_calibration_is_read_not_recomputed_and_fits_the_page(fresh, monkeypatch):
    """A calibration stored (here by ``Run.calibration``, as ``python -m cnnclaims
    calibrate`` stores it) is what the report shows, read without simulating again,
    every line within 100 columns (the old block ran off the page's right edge)."""
    from cnnclaims import calibration
    from cnnclaims.cache import ResultStore
    from cnnclaims.report import Pre, calibration_blocks, stored_calibration

    run = copy.copy(fresh)
    run.results = ResultStore(fresh.results.root.parent / "stored", fresh.results.code)
    run.__dict__.pop("null_splits", None)  # computed afresh, into this store
    assert stored_calibration(run, 20) == (None, None)
    stored = run.calibration(20)
    assert run.null_splits is not None  # six same-size models: stored too, as `calibrate` does

    def refuse(*args, **kwargs):
        raise AssertionError("the report recomputed the calibration")

    monkeypatch.setattr(calibration, "calibrate", refuse)
    assert stored_calibration(run, 20)[0] == stored
    (pre,) = [b for b in calibration_blocks(run, 20) if isinstance(b, Pre)]
    assert "any wrong verdict" in pre.text and "null splits:" in pre.text
    assert max(len(line) for line in pre.text.splitlines()) <= 100


LONG_TITLE = (
    "C1-first-layer-processing [seeds, null control]: underpowered\n"
    "Welch t-test (seeds): stat=0.157, p (2-sided)=0.887, p_adjusted=1, TOST p_adjusted=1\n"
    "difference of means=0.00617 [-0.137, 0.15], SESOI 0.02, and more words that make this line wider than any figure"
)
LONG_LABEL = "mean conv2d_6 scaled mean / image max over the images, a long statistic name"


def _plot_makers():
    import numpy as np

    rng = np.random.default_rng(0)
    knees = {
        "smoke profile and sweep (15 models)": ([1, 2, 4, 8], [400, 220, 130, 120], [400, 200, 120, 120], 120, 4),
        "sizes sweep, new models (6 models)": ([1, 2, 4, 8], [300, 160, 120, 120], [300, 150, 120, 120], 120, 3),
    }
    return {
        "feature_map_grid": lambda: plots.feature_map_grid(rng.random((8, 8, 16)), LONG_TITLE),
        "feature_maps_side_by_side": lambda: plots.feature_maps_side_by_side(
            rng.random((8, 8, 3)), rng.random((8, 8, 16)), rng.random((8, 8, 16)), ("a", "b"), LONG_TITLE
        ),
        "value_histograms": lambda: plots.value_histograms({"a": rng.random(100)}, LONG_TITLE, LONG_LABEL),
        "paired_distributions": lambda: plots.paired_distributions(
            {"a": rng.random(50), "b": rng.random(50)}, LONG_LABEL, LONG_TITLE
        ),
        "seed_points": lambda: plots.seed_points(
            {"a": rng.random(3), "b": rng.random(3)}, LONG_LABEL, (0.1, -0.1, 0.3), LONG_TITLE
        ),
        "size_trend": lambda: plots.size_trend(
            [250, 500, 1000], rng.random((3, 3)), (0.05, 0.3, -0.06, 0.17), 0.03, LONG_LABEL, LONG_TITLE
        ),
        "entropy_bars": lambda: plots.entropy_bars({"input": 4.4, "a conv2d_6": 3.5, "b conv2d_6": 3.3}, LONG_TITLE),
        "softmax_bars": lambda: plots.softmax_bars(
            {"a": np.full(10, 0.1), "b": np.eye(10)[3]}, tuple("abcdefghij"), 3, LONG_TITLE
        ),
        "forest_plot": lambda: plots.forest_plot(
            [("C1-first-layer-processing", 0.1, -0.1, 0.3, 0.02, 1, "underpowered")] * 5, LONG_TITLE
        ),
        "makespan_plot": lambda: plots.makespan_plot(knees, LONG_TITLE),
    }


def _texts(fig):
    """(text, window extent) of every visible text of ``fig`` but tick labels (those
    outside the axes' view are laid out and never drawn)."""
    import matplotlib.text

    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ticks = {
        id(t)
        for ax in fig.axes
        for which in ("major", "minor")
        for t in ax.get_xticklabels(which=which) + ax.get_yticklabels(which=which)
    }
    return [
        (t, t.get_window_extent(renderer))
        for t in fig.findobj(matplotlib.text.Text)
        if id(t) not in ticks and t.get_visible() and t.get_text().strip()
    ]


@pytest.mark.unit
@pytest.mark.parametrize("name", list(_plot_makers()))
def test_no_title_or_label_runs_off_the_figure(name):
    """Titles and axis labels as long as a diagnostic plot's are wrapped to fit: every
    text lies inside the figure (the report's figure titles were cut at both sides)."""
    import matplotlib.pyplot as plt

    fig = _plot_makers()[name]()
    try:
        width, height = fig.bbox.width, fig.bbox.height
        for text, box in _texts(fig):
            inside = box.x0 >= -1 and box.y0 >= -1 and box.x1 <= width + 1 and box.y1 <= height + 1
            assert inside, (text.get_text()[:60], box.bounds, (width, height))
    finally:
        plt.close(fig)


@pytest.mark.unit
def test_the_makespan_plot_writes_no_text_over_its_curves():
    """Each plan's knee is said in the legend, below the axes, not in text beside the
    curves, where the plans' notes overlapped each other and the lines."""
    import matplotlib.pyplot as plt

    fig = _plot_makers()["makespan_plot"]()
    try:
        (ax,) = fig.axes
        legend = ax.get_legend()
        in_legend = {id(t) for t in legend.get_texts()} | {id(legend.get_title())}
        over = [t.get_text() for t, box in _texts(fig) if id(t) not in in_legend and box.overlaps(ax.bbox)]
        assert over == [], over
        assert not legend.get_window_extent().overlaps(ax.bbox)  # the legend lies below the axes
        labels = [t.get_text() for t in legend.get_texts()]
        assert any("bounds it from 4 workers" in t for t in labels) and any("from 3 workers" in t for t in labels)
    finally:
        plt.close(fig)


@pytest.mark.unit
def test_the_conclusion_says_where_a_claim_is_refuted():
    """The one-line conclusion sorts the claims: supported in every scope, refuted in
    at least one (naming where: one image is not eight models), and the rest."""
    from cnnclaims.report import conclusion

    def v(claim, scope, verdict):
        return SimpleNamespace(claim=claim, scope=scope, verdict=verdict)

    line = conclusion(
        [
            v("C1", "probe", "refuted"),
            v("C1", "seeds", "supported"),
            v("C2", "probe", "supported"),
            v("C2", "seeds", "supported"),
            v("C3", "frogs", "refuted-but-negligible"),
            v("C3", "seeds", "underpowered"),
            v("C4", "seeds", "underpowered"),
        ]
    )
    assert line == (
        "Of 4 claims, 1 is supported in every scope tested (C2), 2 are refuted in at least one scope "
        "(C1 in probe, C3 in frogs), and 1 is neither: underpowered, negligible or mixed (C4)."
    )


def test_the_verdicts_command_marks_the_pins_as_pytest_does(exp, pins_file, monkeypatch, capsys):
    """``python -m cnnclaims verdicts`` reads the pins the suite compares with: its pin
    column says =, or 'was X' for the changed case (it said 'new' on every row)."""
    from cnnclaims import __main__ as cli

    monkeypatch.setattr(cli, "_experiment", lambda args: exp)
    cli.cmd_verdicts(SimpleNamespace(table="compact", pinned_verdicts=str(pins_file)))
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith(("C", "D", "W")) and "  " in line]
    assert sum(line.rstrip().endswith(" =") for line in rows) >= len(rows) - 2
    assert " was " in out and not any(line.rstrip().endswith(" new") for line in rows)


@pytest.mark.integration  # the module fixture renders the whole report, every figure: 40 s and more on 2 cores
def test_the_report_says_what_each_label_means(report):
    """The grid's colours carry labels such as supported-but-negligible: the report says
    what they mean (it never did)."""
    md = report[1].read_text()
    glance = md[md.index("## Verdicts at a glance") : md.index("## This run")]
    assert "supported-but-negligible / refuted-but-negligible: both at once" in glance
