"""The verdict table (terminal, Markdown) and the self-contained HTML/Markdown report.

The report's content is built once, as a list of blocks (Heading, Paragraph, Bullets,
Quote, Table, Pre, Image), and rendered twice: ``to_markdown`` (report.md, images
beside it) and ``to_html`` (report.html, images embedded, verdict cells coloured)."""

from __future__ import annotations

import base64
import copy
import html
import re
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .formatting import WIDTH, number, wrapped

COLUMNS = (
    "claim",
    "scope",
    "tier",
    "test",
    "stat",
    "p",
    "p_adj",
    "TOST p_adj",
    "effect [95% CI]",
    "P(a>b) [95% CI]",
    "SESOI",
    "MDE",
    "N needed",
    "verdict",
    "pinned",
)
VERDICT_COLUMN = COLUMNS.index("verdict")
LEGEND = (
    "p: two-sided (2 x the smaller one-sided p); p_adj and TOST p_adj: the difference is not 0, and it lies within "
    "+/- SESOI (equivalence of the mean difference), adjusted by one Holm-Shaffer step-down over the 2m hypotheses "
    "of the claim's (scope, tier) family; CIs: two-sided 95%; P(a>b): probability that a "
    "model of condition a beats a model of condition b; MDE (minimal detectable effect) and N needed (per condition) "
    "at 80% power and alpha/m, shown for "
    "underpowered verdicts; diff: difference of means (images: the mean paired difference), m-thr: mean minus "
    "threshold; sizes scope: slope/dec: slope per decade of training-set size (TOST on the slope; SESOI there: the "
    "margin per decade, the claim's SESOI over the decades between the conditions' sizes; N needed: seeds per size), "
    "a and b there the mean at the sweep's two ends"
)
SHORT_TESTS = {"paired t": "paired t", "Welch": "Welch t", "one-sample t": "1-sample t", "descriptive": "descriptive"}
SHORT_EFFECTS = {
    "mean difference": "diff",
    "difference of means": "diff",
    "mean - threshold": "m-thr",  # short: the compact table fits 110 columns
    "difference": "diff",
    "slope per decade": "slope/dec",
}


def _f(v) -> str:
    return number(v)


def _short_test(test: str) -> str:
    return next((short for k, short in SHORT_TESTS.items() if test.startswith(k)), test.split(" (")[0])


def _ci(est, lo, hi, name="") -> str:
    if not np.isfinite(est):
        return "-"
    inner = f" [{_f(lo)}, {_f(hi)}]" if np.isfinite(lo) and np.isfinite(hi) else ""
    return f"{name + ' ' if name else ''}{_f(est)}{inner}"


def verdict_label(v) -> str:
    """The verdict, with *unreachable* spelled out where no data could decide it (an
    underpowered verdict only: a decided one was reachable after all)."""
    unreachable = v.unreachable and v.verdict == "underpowered"
    return f"{v.verdict} (unreachable with N = {v.n_per_group})" if unreachable else v.verdict


def _effect(v) -> str:
    return _ci(v.effect, v.ci_low, v.ci_high, SHORT_EFFECTS.get(v.effect_name, ""))


def _superiority(v) -> str:
    if not np.isfinite(v.prob_superiority):
        return "-"
    if not np.isfinite(v.prob_superiority_ci[0]):
        # only a verdict stored before issue 19 (Brunner-Munzel: no CI at separation)
        return f"{_f(v.prob_superiority)} [no CI stored]"
    return _ci(v.prob_superiority, *v.prob_superiority_ci)


def rows(verdicts, pins: dict | None = None) -> list[tuple]:
    pins = pins or {}
    return [
        (
            v.name,
            v.scope,
            v.tier if v.inferential else "-",
            _short_test(v.test),
            _f(v.statistic),
            _f(v.p_two_sided),
            _f(v.p_adjusted),
            _f(v.p_equivalence_adjusted),
            _effect(v),
            _superiority(v),
            _f(v.sesoi),
            _f(v.mde),
            _f(v.n_needed) if v.verdict == "underpowered" else "-",
            verdict_label(v),
            pins.get(v.key, "-"),
        )
        for v in verdicts
    ]


def _widths(header, body) -> list[int]:
    """Each column's width in a text table: its longest cell, the header included."""
    return [max(len(str(r[i])) for r in [header, *body]) for i in range(len(header))]


def _text_table(header, body) -> str:
    widths = _widths(header, body)
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [line.format(*header), line.format(*["-" * w for w in widths])]
    out += [line.format(*r) for r in body]
    return "\n".join(x.rstrip() for x in out)  # no padding after the last column: it counted as width


# The terminal's default table (about 110 columns): what a reader needs to see which
# claims hold; the full one (``full=True``, ``--cnnclaims-table=full``) and the JSON
# carry every statistic.
COMPACT_COLUMNS = ("claim", "scope", "verdict", "effect [95% CI]", "p_adj", "pin")


COMPACT_LEGEND = (
    "pin: = as pinned, 'was X' where the pinned label differs, new where there is no pin; "
    "effect: a - b (mean - threshold for a threshold claim; probe: the one image's difference; images: mean over "
    "the images; seeds: over models; sizes: slope per decade of training-set size); p_adj: the difference is not "
    "0, adjusted by the family's step-down; X-but-negligible: significant and yet inside +/- SESOI; "
    "--cnnclaims-table=full (or verdicts --table full) shows every statistic and the full claim names"
)


def _pin_mark(v, pins: dict) -> str:
    pinned = pins.get(v.key)
    return "new" if pinned is None else "=" if pinned == v.verdict else f"was {pinned}"


def compact_rows(verdicts, pins: dict | None = None) -> list[tuple]:
    pins = pins or {}
    return [
        (
            v.name,
            v.scope,
            "underpowered (unreachable)" if v.unreachable and v.verdict == "underpowered" else v.verdict,
            # The effect's name is in the legend: per scope it follows from the claim's kind.
            _ci(v.effect, v.ci_low, v.ci_high),
            _f(v.p_adjusted),
            _pin_mark(v, pins),
        )
        for v in verdicts
    ]


# The pin column's labels, shortened where a table of many moved pins would not fit
# otherwise ("was supported-but-negligible" is 28 columns).
SHORT_LABELS = {
    "supported-but-negligible": "supp-but-negl",
    "refuted-but-negligible": "ref-but-negl",
    "underpowered": "underpow",
    "inconclusive": "inconcl",
    "negligible": "negl",
}


def _fit_names(body: list[tuple], header: tuple, width: int = WIDTH) -> list[tuple]:
    """The compact rows cut to fit ``width`` columns: the claim column cut (``...``) as
    far as needed (never below 8 characters, which hold the claim id), then, if still
    too wide, the pin column's ``was X`` labels shortened (``SHORT_LABELS``): the full
    names and labels are in the full table and the JSON. The last column's width is
    that of its longest cell (the lines carry no padding after it)."""

    def excess(rows: list[tuple]) -> int:  # columns over ``width``, as _text_table lays them out
        widths = _widths(header, rows)
        return sum(widths) + 2 * (len(widths) - 1) - width

    over = excess(body)
    if over <= 0:
        return body
    keep = max(8, _widths(header, body)[0] - over)
    body = [(r[0] if len(r[0]) <= keep else r[0][: keep - 3] + "...", *r[1:]) for r in body]
    if excess(body) <= 0:
        return body

    def short(mark: str) -> str:
        label = mark.removeprefix("was ")
        return f"was {SHORT_LABELS.get(label, label)}" if mark.startswith("was ") else mark

    return [(*r[:-1], short(r[-1])) for r in body]


def scope_summary(verdicts) -> list[str]:
    """One line per scope, e.g. ``seeds: 5 supported, 6 underpowered``, in table order."""
    counts: dict[str, dict[str, int]] = {}
    for v in verdicts:
        scope = counts.setdefault(v.scope, {})
        scope[v.verdict] = scope.get(v.verdict, 0) + 1
    return [f"{s}: " + ", ".join(f"{n} {label}" for label, n in c.items()) for s, c in counts.items()]


def verdict_table_text(
    verdicts, null_verdicts=(), pins=None, null_pins=None, full: bool = False, width: int = WIDTH
) -> str:
    """The verdict table as text: compact by default (``COMPACT_COLUMNS`` within
    ``width`` columns, about 110 with the longest claim names, its prose wrapped there,
    claim names cut where the terminal is narrower (``terminal_width``), with a line per
    scope saying what holds), every statistic with ``full``."""
    columns, make = (COLUMNS, rows) if full else (COMPACT_COLUMNS, compact_rows)

    def prose(line: str) -> str:
        return line if full else "\n".join(wrapped(line, width))

    def fit(body: list[tuple]) -> list[tuple]:
        return body if full else _fit_names(body, columns, width)

    parts: list[str] = []
    if verdicts:
        parts.append(_text_table(columns, fit(make(verdicts, pins))))
        parts.extend(scope_summary(verdicts))
    if null_verdicts:
        parts.append(prose(f"null control (same training size, other seeds): {_null_summary(null_verdicts)}"))
        parts.append(_text_table(columns, fit(make(null_verdicts, null_pins))))
    if verdicts or null_verdicts:
        parts.append(prose(LEGEND if full else COMPACT_LEGEND))
        decides = [prose(f"  {v.key}: {v.decides}") for v in verdicts if v.decides]
        if decides:
            parts.append("what would decide the underpowered verdicts:")
            parts.extend(decides)
    return "\n".join(parts)


def _null_summary(null_verdicts) -> str:
    from .verdicts import false_positive_rates

    parts = []
    for scope, rate in false_positive_rates(null_verdicts).items():
        n = sum(v.scope == scope for v in null_verdicts)
        parts.append(f"{scope} scope {round(rate * n)}/{n} find a direction (false-positive rate {rate:.2f})")
    images = [v.scope for v in null_verdicts if v.scope not in ("probe", "seeds")]
    return "; ".join(parts) + (f"; the {images[0]} scope compares one pair of models, which differ" if images else "")


# What each label means, under the grid (docs/concepts.md, "The verdicts, in plain words").
VERDICT_LEGEND = (
    "supported / refuted: the difference is not 0 (after the family's step-down), in the claimed / the opposite "
    "direction; negligible: it lies provably inside +/- SESOI; supported-but-negligible / refuted-but-negligible: "
    "both at once, significant in that direction and yet inside +/- SESOI (for a threshold claim: on that side of "
    "the threshold, but within the SESOI of it); underpowered: neither, and the verdict table says what N would "
    "decide it; probe (one image): descriptive, by the sign of the difference, inconclusive where the statistic "
    "is undefined."
)


COLOURS = {
    "supported": "#b7e4b7",
    "refuted": "#f4b6b6",
    "negligible": "#cfe0f4",
    "supported-but-negligible": "#d9ecd0",
    "refuted-but-negligible": "#ecd6e0",
    "underpowered": "#f7e3a6",
    "inconclusive": "#e6e6e6",
}


# --- the report's content, built once as blocks, rendered as Markdown and as HTML ---------


@dataclass(frozen=True)
class Heading:
    level: int
    text: str


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Bullets:
    """List items: a plain string, or a (key, value) pair whose key is set in bold."""

    items: tuple[str | tuple[str, str], ...]


@dataclass(frozen=True)
class Quote:
    text: str


@dataclass(frozen=True)
class Table:
    """``verdict_columns``: the columns whose cells are verdict labels, coloured in
    HTML by their first word (``COLOURS``)."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    verdict_columns: tuple[int, ...] = ()


@dataclass(frozen=True)
class Pre:
    text: str


@dataclass(frozen=True)
class Image:
    path: Path
    caption: str


Block = Heading | Paragraph | Bullets | Quote | Table | Pre | Image


def table(header, body, verdict_columns=()) -> Table:
    """A Table of any iterables, every cell as its string."""
    return Table(tuple(map(str, header)), tuple(tuple(map(str, r)) for r in body), tuple(verdict_columns))


def to_markdown(blocks, image_dir_rel: str = "figures") -> str:
    """Markdown of ``blocks``: one blank line between blocks, consecutive images on
    consecutive lines, images linked as ``image_dir_rel``/their file name."""
    out: list[str] = []
    prev = None
    for b in blocks:
        if isinstance(b, Bullets) and not b.items:
            continue
        if out and not (isinstance(b, Image) and isinstance(prev, Image)):
            out.append("")
        prev = b
        if isinstance(b, Heading):
            out.append(f"{'#' * b.level} {b.text}")
        elif isinstance(b, Paragraph):
            out.append(b.text)
        elif isinstance(b, Bullets):
            out += [f"- **{it[0]}**: {it[1]}" if isinstance(it, tuple) else f"- {it}" for it in b.items]
        elif isinstance(b, Quote):
            out.append(f"> {b.text}")
        elif isinstance(b, Table):
            out += ["| " + " | ".join(b.header) + " |", "|" + "---|" * len(b.header)]
            out += ["| " + " | ".join(r) + " |" for r in b.rows]
        elif isinstance(b, Pre):
            out += ["```", b.text, "```"]
        elif isinstance(b, Image):
            alt = b.caption.replace("[", "\\[").replace("]", "\\]")  # a bracket would end the alt text
            out.append(f"![{alt}]({image_dir_rel}/{b.path.name})")
        else:
            raise TypeError(f"not a report block: {b!r}")
    return "\n".join(out)


def _cell(tag: str, text: str, coloured: bool) -> str:
    word = text.split()[0] if text.split() else ""
    cls = f" class='{word}'" if coloured and word in COLOURS else ""
    return f"<{tag}{cls}>{html.escape(text)}</{tag}>"


def _inline(text: str) -> str:
    """Prose as HTML: escaped, with Markdown's `code` spans as <code> (the command lines
    the report tells the reader to run)."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def _html_block(b) -> str:
    e = html.escape
    if isinstance(b, Heading):
        return f"<h{b.level}>{e(b.text)}</h{b.level}>"
    if isinstance(b, Paragraph):
        return f"<p>{_inline(b.text)}</p>"
    if isinstance(b, Bullets):
        items = [f"<b>{e(it[0])}</b>: {_inline(it[1])}" if isinstance(it, tuple) else _inline(it) for it in b.items]
        return "<ul>" + "".join(f"<li>{it}</li>" for it in items) + "</ul>" if items else ""
    if isinstance(b, Quote):
        return f"<blockquote>{e(b.text)}</blockquote>"
    if isinstance(b, Table):
        head = "".join(_cell("th", c, False) for c in b.header)
        body = "".join(
            "<tr>" + "".join(_cell("td", c, j in b.verdict_columns) for j, c in enumerate(r)) + "</tr>" for r in b.rows
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    if isinstance(b, Pre):
        return f"<pre>{e(b.text)}</pre>"
    if isinstance(b, Image):
        return _img(b.path, b.caption)
    raise TypeError(f"not a report block: {b!r}")


STYLE = (
    "body{font-family:sans-serif;max-width:1100px;margin:auto;padding:0 16px;line-height:1.35}"
    "table{border-collapse:collapse;font-size:12px;margin:8px 0}"
    "td,th{border:1px solid #ccc;padding:2px 6px;vertical-align:top}"
    + "".join(f"td.{k}{{background:{c}}}" for k, c in COLOURS.items())
    # Wide preformatted text wraps inside the page instead of running off its right edge.
    + "pre{white-space:pre-wrap;overflow-wrap:anywhere;font-size:12px;background:#f6f6f6;padding:6px}"
    + "img{max-width:100%}figure{margin:12px 0}figcaption{color:#444;font-size:13px}blockquote{color:#555}"
    + "code{background:#f0f0f0;padding:0 3px}"
)


def to_html(blocks, title: str | None = "cnnclaims report") -> str:
    """A self-contained HTML page of ``blocks`` (images embedded), or with ``title``
    None the blocks' HTML alone."""
    body = "\n".join(filter(None, map(_html_block, blocks)))
    if title is None:
        return body
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>\n{STYLE}\n</style></head><body>\n{body}\n</body></html>"
    )


def verdict_matrix(verdicts, claims=()) -> tuple[list[str], list[tuple]]:
    """(scopes, [(claim, tier, {scope: verdict label})]), claims and scopes in the
    order the verdicts first name them (declaration order). ``claims``: the declared
    claims (``declaration.Claim``); where one is given, its row names the claim by its
    id and its statement in the paper's words (``Claim.text``), else by its name."""
    text = {c.id: c.text for c in claims}
    by = {(v.claim, v.scope): verdict_label(v) for v in verdicts}
    scopes = list(dict.fromkeys(v.scope for v in verdicts))
    rows_ = {v.claim: (f"{v.claim}: {text[v.claim]}" if v.claim in text else v.name, v.tier) for v in verdicts}
    return scopes, [
        (name, tier, {sc: by.get((cid, sc), "n/a") for sc in scopes}) for cid, (name, tier) in rows_.items()
    ]


def matrix_table(verdicts, claims=()) -> Table:
    """The claims x scopes verdict matrix (``verdict_matrix``) as a Table."""
    scopes, body = verdict_matrix(verdicts, claims)
    return table(
        ["claim", "tier", *scopes],
        [(name, tier, *(cells[sc] for sc in scopes)) for name, tier, cells in body],
        range(2, 2 + len(scopes)),
    )


def verdicts_table(verdicts, pins=None) -> Table:
    """The verdict table (``COLUMNS``, ``rows``) as a Table."""
    return table(COLUMNS, rows(verdicts, pins), (VERDICT_COLUMN,))


def markdown_matrix(verdicts, claims=()) -> str:
    return to_markdown([matrix_table(verdicts, claims)])


def html_matrix(verdicts, claims=()) -> str:
    return to_html([matrix_table(verdicts, claims)], title=None)


def markdown_table(verdicts, pins=None) -> str:
    return to_markdown([verdicts_table(verdicts, pins)])


# --- the report's first screen: its conclusion ------------------------------------------

# Verdicts of a claim that say it does not hold as claimed (a direction against it).
_AGAINST = ("refuted", "refuted-but-negligible")


def _ids(ids) -> str:
    return ", ".join(ids)


def scope_headline(verdicts, scope: str, what: str = "", named: bool = True) -> str:
    """One sentence on one scope: how many of its claims got each verdict, and which
    (claim ids), in ``verdicts.VERDICTS`` order, e.g. "seeds scope (3 models per
    condition): of 11 claims, 1 supported (C10); 10 underpowered (C1, ...)."; ``what``:
    the scope's evidence in words (``scope_words``), in brackets; ``named=False``
    leaves out the scope's name (the report sets it in bold before the sentence).
    Raises ValueError when no verdict is of ``scope``."""
    from .verdicts import VERDICTS

    mine = [v for v in verdicts if v.scope == scope]
    if not mine:
        raise ValueError(
            f"no verdict of scope {scope!r}; scopes here: {', '.join(dict.fromkeys(v.scope for v in verdicts))}"
        )
    by: dict[str, list[str]] = {}
    for v in mine:
        by.setdefault(v.verdict, []).append(v.claim)
    order = [label for label in VERDICTS if label in by] + [label for label in by if label not in VERDICTS]
    counts = "; ".join(f"{len(by[label])} {label} ({_ids(by[label])})" for label in order)
    claims = f"{len(mine)} claim{'s' * (len(mine) != 1)}"
    if not named:
        return f"{what[:1].upper() + what[1:]}. Of {claims}: {counts}." if what else f"Of {claims}: {counts}."
    return f"{scope} scope{f' ({what})' if what else ''}: of {claims}, {counts}."


def conclusion(verdicts) -> str:
    """The report's one-line conclusion over every scope: the claims supported in every
    scope they were tested in, those refuted (or refuted-but-negligible) in at least
    one (with the scopes), and the rest (undecided, negligible or mixed), each with its
    claim ids, e.g. "Of 13 claims, 3 are supported in every scope tested (C7b, C8,
    C10), 1 is refuted in at least one scope (C4 in probe and frogs), and ..."."""
    by: dict[str, list[str]] = {}
    for v in verdicts:
        by.setdefault(v.claim, []).append(v.verdict)
    where: dict[str, list[str]] = {}
    for v in verdicts:
        if v.verdict in _AGAINST:
            where.setdefault(v.claim, []).append(v.scope)
    held = [c for c, labels in by.items() if all(lab == "supported" for lab in labels)]
    against = [c for c in by if c in where]
    rest = [c for c in by if c not in held and c not in against]

    def part(ids, words):
        if len(ids) == 1:
            words = words.replace("are ", "is ", 1)
        return f"{len(ids)} {words} ({_ids(ids)})" if ids else f"none {words}"

    # Where each refuted claim is refuted: one image is not a thousand, nor eight models.
    against = [f"{c} in {' and '.join(where[c])}" for c in against]

    return (
        f"Of {len(by)} claims, {part(held, 'are supported in every scope tested')}, "
        f"{part(against, 'are refuted in at least one scope')}, and "
        f"{part(rest, 'are neither: underpowered, negligible or mixed')}."
    )


def scope_words(run, scope: str) -> str:
    """What a scope of ``run`` compares, in words (the headline's brackets); "" for a
    scope this function does not know."""
    ex = run.experiment
    try:
        kind = ex.scope_kind(scope)
    except KeyError:
        return ""
    if kind == "probe":
        return f"one test image (index {run.probe_index}), the first model of each condition"
    if kind == "images":
        return (
            f"{len(run.probe_indices):,} test images of class {ex.probe.class_name}, the first model of each condition"
        )
    if kind == "seeds":
        return f"{run.profile.n_seeds} models per condition, one number per model"
    sizes = ", ".join(f"{n:,}" for n in run.profile.sizes)
    return f"the trend over training-set sizes of {sizes} images, {run.profile.size_seeds} models each"


def pin_status(verdicts, null_verdicts, entry: dict | None, key: str, path, shown: int = 8) -> str:
    """One sentence (the report sets "pins" before it): this run's verdicts against the
    pins file's entry for ``key`` (``pinned.entry``), e.g. "62 of 64 cases as pinned
    (key ... in PATH, recorded DATE); 2 differ: C1/seeds is underpowered, pinned
    supported; ...": a case is as pinned when its label is, and its numbers where the
    entry pins them (within ``pinned.REL_TOL``/``ABS_TOL``: ``pinned.case_diff``); the
    first ``shown`` that differ or are not pinned are named. With no entry: how to pin."""
    from . import pinned

    if not entry:
        return (
            f"none for key {key} in {path}; `python -m cnnclaims pin` with this report's options records this "
            "run's verdicts there, for review."
        )
    differ, new = [], []
    for section, vs in (("verdicts", verdicts), ("null_control", null_verdicts)):
        pins = entry.get(section, {})
        for v in vs:
            label = pins.get(v.key)
            case = v.key + (" (null control)" if section == "null_control" else "")
            if label is None:
                new.append(case)
                continue
            diffs = pinned.case_diff(label, pinned.case_numbers(entry, section, v.key), v)
            if any(f == "verdict" for f, _, _ in diffs):
                differ.append(f"{case} is {v.verdict}, pinned {label}")
            elif diffs:
                differ.append(f"{case}: {', '.join(f for f, _, _ in diffs)} moved")
    total = len(verdicts) + len(null_verdicts)
    same = total - len(differ) - len(new)
    labels_only = "" if pinned.has_numbers(entry) else " (labels only: this entry pins no numbers)"
    recorded = f", recorded {entry['recorded']}" if entry.get("recorded") else ""
    text = f"{same} of {total} cases as pinned{labels_only} (key {key} in {path}{recorded})"
    if differ:
        more = f"; and {len(differ) - shown} more" if len(differ) > shown else ""
        text += f"; {len(differ)} differ: " + "; ".join(differ[:shown]) + more
    if new:
        text += f"; {len(new)} not pinned: {_ids(new[:shown])}" + (" ..." if len(new) > shown else "")
    return text + "."


def plain(value) -> str:
    """A setting's value in words for a table cell: a dict as ``key: value`` pairs
    (nested ones in brackets), a list as its items, a bool as yes/no; never a Python
    repr (issue 22: the report printed the profile and versions as dicts)."""
    if isinstance(value, dict):
        return ", ".join(f"{k} ({plain(v)})" if isinstance(v, dict) else f"{k}: {plain(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple, set)):
        return ", ".join(plain(v) for v in value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


PROFILE_WORDS = {
    "name": "profile",
    "n_train": "training images per condition",
    "max_epochs": "epochs, at most",
    "patience": "early-stopping patience (epochs)",
    "n_seeds": "models per condition (seeds)",
    "batch_size": "batch size",
    "learning_rate": "learning rate",
    "sizes": "sizes sweep (training images)",
    "size_seeds": "models per sweep size",
}


def profile_rows(profile) -> list[tuple[str, str]]:
    """(setting in words, value) of ``profile.as_dict()`` (``PROFILE_WORDS``; a field it
    lacks keeps its name), values by ``plain``."""
    return [(PROFILE_WORDS.get(k, k), plain(v)) for k, v in profile.as_dict().items()]


def fragile_table(fragile: dict) -> Table:
    """``pinned.fragile``'s cases as a table: one row per case, one verdict-coloured
    column per version family ("-" where that family pins no such case)."""
    families = sorted({f for fams in fragile.values() for f in fams})
    body = [
        (case, "null control" if section == "null_control" else "claims", *(fams.get(f, "-") for f in families))
        for (section, case), fams in fragile.items()
    ]
    return table(["case", "section", *families], body, range(2, 2 + len(families)))


def figure_caption(path) -> str:
    """The caption of a figure: the words ``plots.save`` stored in it, else its file
    name in words (a figure drawn before captions were stored)."""
    from .plots import caption_of

    try:
        stored = caption_of(path)
    except OSError:  # not a readable PNG: its name still says something
        stored = None
    return stored or Path(path).stem.replace("-", " ").replace("_", " ")


# --- the design calibration: shown when stored, never recomputed unasked ---------------


class NotStored(LookupError):
    """A stored-only result store (``_StoredOnly``) was asked for a result it lacks."""


class _StoredOnly:
    """A run's result store that reads (``ResultStore.peek``) and never computes: its
    ``get`` raises NotStored where nothing is stored. Reading through the run's own
    functions (``Run.calibration``, ``Run.null_splits``) keeps their keys theirs."""

    def __init__(self, store):
        self._store = store

    def get(self, kind, label, key, compute):
        value = self._store.peek(kind, label, key)
        if value is None:
            raise NotStored(kind)
        return value


def stored_calibration(run, n_experiments: int | None = None) -> tuple[dict | None, dict | None]:
    """(calibration, null splits) of ``run`` as stored in its result store (by
    ``python -m cnnclaims calibrate`` or a report with ``calibrate=True``), None for
    one that is not stored for these models, settings and code (or, for the null
    splits, not defined: fewer than 4 same-size models). Computes nothing: the
    calibration simulates thousands of experiments (minutes). Raises ValueError where
    the calibration is undefined (no seed-to-seed spread: one model per condition)."""
    view = copy.copy(run)  # the same run, cached evidence included, reading only
    view.results = _StoredOnly(run.results)
    try:
        calibration = view.calibration(n_experiments)
    except NotStored:
        calibration = None
    try:
        splits = view.null_splits
    except NotStored:
        splits = None
    return calibration, splits


def _wrap_lines(text: str, width: int = 100) -> str:
    """Each line of ``text`` longer than ``width`` wrapped (continuations indented), so
    that a preformatted block fits the page; shorter lines (table rows) as they are."""
    return "\n".join(
        line if len(line) <= width else "\n".join(textwrap.wrap(line, width, subsequent_indent="    "))
        for line in text.splitlines()
    )


def calibration_blocks(run, n_experiments: int | None = None, calibrate: bool = False) -> list[Block]:
    """The report's design calibration: the stored calibration and null splits
    (``stored_calibration``, formatted by ``calibration.format_calibration`` and
    ``format_null_splits``), lines wrapped to 100 columns; ``calibrate``: compute what
    is not stored (``Run.calibration``, minutes), else say how to compute it."""
    from .calibration import DEFAULT_EXPERIMENTS, format_calibration, format_null_splits

    try:
        if calibrate:
            res, splits = run.calibration(n_experiments), run.null_splits
        else:
            res, splits = stored_calibration(run, n_experiments)
    except ValueError as exc:  # e.g. one model per condition: no seed-to-seed spread
        return [Paragraph(f"No calibration: {exc}.")]
    if res is None:
        n = n_experiments or DEFAULT_EXPERIMENTS
        # The options that make `calibrate` store the very result this report looks up.
        seeds = f" --seeds {run.n_seeds}" if run.n_seeds else ""
        seeds += f" --experiments {n}" if n != DEFAULT_EXPERIMENTS else ""
        return [
            Paragraph(
                f"Not computed for these models yet: the calibration simulates {n:,} experiments per condition, "
                f"which takes minutes, so the report does not run it. `python -m cnnclaims calibrate --profile "
                f"{run.profile.name}{seeds}` (with this report's --experiment, --data and --cache-dir where you "
                "gave them) computes and stores it, with the null splits, and the next report shows it; or "
                "write the report with --calibrate."
            )
        ]
    text = [format_calibration(res)]
    if splits:
        text.append(format_null_splits(splits))
    elif len(_same_size(run)) < 4:
        text.append("no null splits: fewer than 4 same-size models")
    else:
        text.append("null splits: not stored (`python -m cnnclaims calibrate` computes them)")
    return [
        Paragraph("From the result store (stored by `python -m cnnclaims calibrate` or an earlier report)."),
        Pre(_wrap_lines("\n".join(text))),
    ]


def _same_size(run) -> list:
    """The models the null splits divide (``calibration.same_size_models``), [] where
    the run has no such groups."""
    from .calibration import same_size_models

    try:
        return same_size_models(run)
    except (AttributeError, KeyError):
        return []


def write_report(
    exp,
    folder,
    progress=print,
    calibration_experiments: int | None = None,
    pins_file: Path | None = None,
    calibrate: bool = False,
) -> tuple[Path, Path]:
    """Write report.html (images embedded) and report.md (images beside it) for an
    experiment (a ``run.Run``); returns their paths.

    It opens with its conclusion: a sentence over every claim (``conclusion``), one
    per scope (``scope_headline``), the null control's and the pins' status
    (``pin_status``), then the claims x scopes grid with each claim's statement.
    ``calibration_experiments``: simulated experiments per condition and scope
    of the design calibration (default ``calibration.DEFAULT_EXPERIMENTS``); it is shown when stored
    (``stored_calibration``), computed here only with ``calibrate`` (minutes; else the
    report says how); ``pins_file``: the pinned verdicts file (default: the
    experiment's own, ``locations.pins_path_for``: read first, so that a broken one
    stops the report before any training). Raises CnnClaimsError for a broken pins
    file (``pinned.load``)."""
    from . import pinned
    from .figures import make_figures
    from .locations import pins_path_for
    from .summary import plumbing_line

    pins_path = pins_file or pins_path_for(exp.experiment)
    doc = pinned.load(pins_path)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    progress("cnnclaims report: training or loading models ...")
    verdicts, null = exp.verdicts, exp.null_verdicts
    progress(
        f"cnnclaims report: {len(verdicts)} verdicts and {len(null)} null-control verdicts "
        f"({time.perf_counter() - t0:.0f}s)"
    )
    figs = make_figures(exp, folder / "figures", progress=progress)
    ex = exp.experiment
    forest = write_forest_plot(verdicts, folder / "figures" / "seeds-forest.png", ex.claims)
    t_cal = time.perf_counter()
    progress(
        "cnnclaims report: calibrating every inferential scope by simulation (stored after the first run) ..."
        if calibrate
        else "cnnclaims report: reading the stored design calibration ..."
    )
    design = calibration_blocks(exp, calibration_experiments, calibrate)
    progress(f"cnnclaims report: design calibration done ({time.perf_counter() - t_cal:.0f}s)")
    key = exp.pin_key
    entry = pinned.entry(doc, key) or {}
    pins, null_pins = entry.get("verdicts", {}), entry.get("null_control", {})
    fragile = pinned.fragile(doc, exp.profile.name)
    from .compat import versions

    records = [t.record for role in exp.roles for t in exp.models(role)]
    # The sweep's own models (its 10,000/50,000-image points are listed above already).
    records += [t.record for ms in exp.sweep_models().values() for t in ms if t.spec.role == "sizes"]
    makespan_blocks, makespan_png = write_makespan(exp, folder / "figures" / "makespan.png", records)

    shown_path = _shown(pins_path)
    scopes = list(dict.fromkeys(v.scope for v in verdicts))
    plumbing = plumbing_line(exp.profile.name, {"models": records})
    headlines: list[str | tuple[str, str]] = [
        (f"{sc} scope", scope_headline(verdicts, sc, scope_words(exp, sc), named=False)) for sc in scopes
    ]
    if null:
        headlines.append(
            ("null control", f"Other seeds of {ex.b.name}'s recipe against {ex.b.name}: {_null_summary(null)}.")
        )
    headlines.append(("pins", pin_status(verdicts, null, entry, key, shown_path)))
    run_rows = [
        ("data source", exp.data.source),
        *((k, plain(v)) for k, v in versions().items()),
        ("pin key", key + ("" if entry else " (no pinned verdicts for this key)")),
        ("pins file", shown_path),
        *profile_rows(exp.profile),
        (
            "conditions",
            f"a = {ex.a.name}{f' ({ex.a.label})' if ex.a.label else ''}, "
            f"b = {ex.b.name}{f' ({ex.b.label})' if ex.b.label else ''}",
        ),
        (
            "probe",
            f"test image {exp.probe_index} (class {ex.probe.class_name}); {ex.probe.scope_name} scope: "
            f"{len(exp.probe_indices)} test-set images of the class",
        ),
        ("written", time.strftime("%Y-%m-%d %H:%M")),
    ]
    blocks: list[Block] = [
        Heading(1, f"cnnclaims report: {ex.name}, {exp.profile.name} profile"),
        Paragraph(ex.title),
        *([Paragraph("Warning: " + plumbing.removeprefix("cnnclaims: ") + ".")] if plumbing else []),
        Paragraph("Conclusion: " + conclusion(verdicts)),
        Bullets(tuple(headlines)),
        Heading(2, "Verdicts at a glance"),
        matrix_table(verdicts, ex.claims),
        Paragraph(VERDICT_LEGEND),
        Image(forest, figure_caption(forest)),
        Heading(2, "This run"),
        table(["setting", "value"], run_rows),
        Heading(2, "Design calibration"),
        *design,
        Heading(2, "Trained models"),
        table(
            ["role", "seed", "images", "epochs (best)", "test accuracy", "train time (s)"],
            [
                (
                    r["spec"]["role"],
                    r["spec"]["seed"],
                    r["spec"]["n_train"],
                    f"{r['epochs']} ({r['best_epoch']})",
                    f"{r['test_accuracy']:.4f}",
                    f"{r['train_seconds']:.0f}",
                )
                for r in records
            ],
        ),
        Heading(2, "Makespan, simulated"),
        *makespan_blocks,
        *([Image(makespan_png, figure_caption(makespan_png))] if makespan_png else []),
        Heading(2, "Verdicts"),
        verdicts_table(verdicts, pins),
        Paragraph(LEGEND),
        Heading(2, "Null control (same training size, seeds only)"),
        verdicts_table(null, null_pins),
    ]
    if fragile:
        blocks += [
            Heading(2, "Fragile across versions"),
            Paragraph("Cases pinned with different verdicts in different version families (this profile)."),
            fragile_table(fragile),
        ]
    blocks.append(Heading(2, "Claims and figures"))
    for claim in ex.claims:
        blocks += [
            Heading(3, claim.name + (f" ({claim.figure})" if claim.figure else "")),
            Quote(claim.text),
            Paragraph(f"Tested: {claim.describe(ex.a.name, ex.b.name)}."),
            Bullets(tuple(v.summary() for v in verdicts if v.claim == claim.id)),
            *(Image(p, figure_caption(p)) for p in figs.get(claim.id, [])),
        ]
    blocks += [Heading(2, "Other figures"), *(Image(p, figure_caption(p)) for p in figs.get("other", []))]

    md_path = folder / "report.md"
    md_path.write_text(to_markdown(blocks) + "\n")
    progress("cnnclaims report: writing HTML ...")
    html_path = folder / "report.html"
    html_path.write_text(to_html(blocks))
    progress(f"cnnclaims report: wrote {html_path} and {md_path} in {time.perf_counter() - t0:.0f}s")
    return html_path, md_path


def _shown(path) -> str:
    """``path`` relative to the working folder where it lies inside it (shorter), else as it is."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def write_makespan(exp, path, records=()) -> tuple[list[Block], Path | None]:
    """(report blocks, figure path or None) of the simulated makespan of ``exp``'s
    plans on 1-256 workers (``makespan.run_plans``) from the records in its cache and
    ``records`` (the run's own models' record dicts, which may live elsewhere). Records
    that predict nothing give a sentence saying why, and no figure: the report is
    still written."""
    from . import plots
    from .makespan import makespan_figure, markdown, run_plans
    from .training.progress import recorded, usable_record

    cached = recorded(exp.cache_dir)
    keys = {r.get("key") for r in cached}
    # The run's models are usually among the cached ones: count each model once.
    own = [r for r in records if usable_record(r) and (r.get("key") is None or r.get("key") not in keys)]
    try:
        plans = run_plans(exp, cached + own)
    except ValueError as exc:
        return [Paragraph(f"Not simulated: {exc}")], None
    intro = Paragraph(
        "From the recorded per-model training times in the cache, how long this run's models take on W "
        "workers (training processes), scheduled longest first."
    )
    caption = "Simulated makespan of each plan against the number of workers, from recorded training times"
    return [intro, *table_and_bullets(markdown(plans))], plots.save(makespan_figure(plans), path, caption)


def table_and_bullets(text: str) -> list[Block]:
    """``makespan.markdown``'s text (a pipe table, a blank line, "- " lines, bold keys
    as ``- **key**: value``) as a Table and a Bullets block (``to_markdown`` gives the
    text back), so that ``python -m cnnclaims makespan`` prints what the report shows."""
    lines = text.splitlines()
    cells = [[c.strip() for c in ln.strip().strip("|").split("|")] for ln in lines if ln.startswith("|")]
    items: list[str | tuple[str, str]] = []
    for ln in lines:
        if ln.startswith("- "):
            m = re.fullmatch(r"- \*\*(.+?)\*\*: (.*)", ln)
            items.append((m[1], m[2]) if m else ln[2:])
    body = [r for r in cells[1:] if not set("".join(r)) <= set("-")]  # the header's separator row
    return [table(cells[0], body), Bullets(tuple(items))] if cells else [Bullets(tuple(items))]


def write_forest_plot(verdicts, path, claims=()) -> Path:
    """The seeds scope's effects in SESOI units (``plots.forest_plot``), as a PNG;
    ``claims`` give each claim's direction ("less" claims are drawn flipped)."""
    from . import plots

    less = {c.id for c in claims if c.alternative == "less"}
    rows = [
        (v.name, v.effect, v.ci_low, v.ci_high, v.sesoi, -1.0 if v.claim in less else 1.0, v.verdict)
        for v in verdicts
        if v.scope == "seeds"
    ]
    caption = (
        "Seeds scope: each claim's effect and 95% CI in units of its SESOI, the claimed direction to the right; "
        "the shaded band is within +/- SESOI"
    )
    return plots.save(plots.forest_plot(rows, "seeds scope: effect and 95% CI in SESOI units"), path, caption)


def _img(path: Path, caption: str | None = None) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    name = html.escape(Path(path).stem if caption is None else caption)
    return f"<figure><img alt='{name}' src='data:image/png;base64,{data}'><figcaption>{name}</figcaption></figure>"
