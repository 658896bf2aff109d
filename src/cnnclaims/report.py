"""The verdict table (terminal, Markdown) and the self-contained HTML/Markdown report."""

from __future__ import annotations

import base64
import html
import time
from pathlib import Path

import numpy as np

from .formatting import number

COLUMNS = (
    "claim",
    "scope",
    "tier",
    "test",
    "stat",
    "p",
    "p_holm",
    "TOST p_holm",
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
    "p: two-sided (2 x the smaller one-sided p); p_holm: Holm within (scope, tier); TOST p_holm: equivalence "
    "of the mean difference within +/- SESOI, Holm the same way; CIs: two-sided 95%; P(a>b): probability that a "
    "model of condition a beats a model of condition b; MDE (minimal detectable effect) and N needed (per condition) "
    "at 80% power and alpha/m, shown for "
    "underpowered verdicts; r: rank-biserial, diff: difference of means, mean-thr: mean minus threshold; sizes scope: "
    "slope/dec: slope per decade of training-set size (TOST on the slope, N needed: seeds per size), a and b there the "
    "mean at the sweep's two ends"
)
SHORT_TESTS = {"Wilcoxon": "Wilcoxon", "Welch": "Welch t", "one-sample t": "1-sample t", "descriptive": "descriptive"}
SHORT_EFFECTS = {
    "rank-biserial r": "r",
    "difference of means": "diff",
    "mean - threshold": "mean-thr",
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
    cell = _ci(v.effect, v.ci_low, v.ci_high, SHORT_EFFECTS.get(v.effect_name, ""))
    if v.scope not in ("probe", "seeds") and "mean_difference" in v.extras:
        # negligible is decided on the mean difference (the SESOI's unit), not on r
        cell += f"; mean diff {_f(v.extras['mean_difference'])}"
    return cell


def _superiority(v) -> str:
    if not np.isfinite(v.prob_superiority):
        return "-"
    if not np.isfinite(v.prob_superiority_ci[0]):
        return f"{_f(v.prob_superiority)} [no CI: groups separate]"
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
            _f(v.p_holm),
            _f(v.p_equivalence_holm),
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


def _text_table(header, body) -> str:
    widths = [max(len(str(r[i])) for r in [header, *body]) for i in range(len(header))]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [line.format(*header), line.format(*["-" * w for w in widths])]
    out += [line.format(*r) for r in body]
    return "\n".join(out)


def verdict_table_text(verdicts, null_verdicts=(), pins=None, null_pins=None) -> str:
    parts = []
    if verdicts:
        parts.append(_text_table(COLUMNS, rows(verdicts, pins)))
    if null_verdicts:
        parts.append(f"null control (same training size, other seeds): {_null_summary(null_verdicts)}")
        parts.append(_text_table(COLUMNS, rows(null_verdicts, null_pins)))
    if verdicts or null_verdicts:
        parts.append(LEGEND)
        decides = [f"  {v.key}: {v.decides}" for v in verdicts if v.decides]
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


COLOURS = {
    "supported": "#b7e4b7",
    "refuted": "#f4b6b6",
    "negligible": "#cfe0f4",
    "underpowered": "#f7e3a6",
    "inconclusive": "#e6e6e6",
}


def verdict_matrix(verdicts) -> tuple[list[str], list[tuple]]:
    """(scopes, [(claim name, tier, {scope: verdict label})]), claims and scopes in the
    order the verdicts first name them (declaration order)."""
    by = {(v.claim, v.scope): verdict_label(v) for v in verdicts}
    scopes = list(dict.fromkeys(v.scope for v in verdicts))
    claims = {v.claim: (v.name, v.tier) for v in verdicts}
    return scopes, [
        (name, tier, {sc: by.get((cid, sc), "n/a") for sc in scopes}) for cid, (name, tier) in claims.items()
    ]


def markdown_matrix(verdicts) -> str:
    scopes, body = verdict_matrix(verdicts)
    out = ["| claim | tier | " + " | ".join(scopes) + " |", "|---|---|" + "---|" * len(scopes)]
    out += [f"| {name} | {tier} | " + " | ".join(cells[sc] for sc in scopes) + " |" for name, tier, cells in body]
    return "\n".join(out)


def html_matrix(verdicts) -> str:
    scopes, body = verdict_matrix(verdicts)
    head = "<tr><th>claim</th><th>tier</th>" + "".join(f"<th>{html.escape(sc)}</th>" for sc in scopes) + "</tr>"
    trs = []
    for name, tier, cells in body:
        tds = "".join(
            f"<td style='background:{COLOURS.get(cells[sc].split()[0], '#fff')}'>{html.escape(cells[sc])}</td>"
            for sc in scopes
        )
        trs.append(f"<tr><td>{html.escape(name)}</td><td>{tier}</td>{tds}</tr>")
    return f"<table class='matrix'>{head}{''.join(trs)}</table>"


def markdown_table(verdicts, pins=None) -> str:
    body = rows(verdicts, pins)
    out = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in body]
    return "\n".join(out)


def _html_table(verdicts, pins=None) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in COLUMNS)
    body = []
    for r in rows(verdicts, pins):
        cls = r[VERDICT_COLUMN].split()[0]
        cells = "".join(f"<td>{html.escape(str(c))}</td>" for c in r)
        body.append(f"<tr class='{cls}'>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def write_report(
    exp, folder, progress=print, calibration_experiments: int | None = None, pins_file: Path | None = None
) -> tuple[Path, Path]:
    """Write report.html (images embedded) and report.md (images beside it) for an
    experiment; ``calibration_experiments``: simulated experiments per condition of
    the design calibration (default ``calibration.DEFAULT_EXPERIMENTS``, cached);
    ``pins_file``: the pinned verdicts file (default: the experiment's own,
    ``locations.pins_path_for``: read first, so that a broken one stops the report
    before any training)."""
    from . import pinned
    from .figures import make_figures
    from .locations import pins_path_for

    doc = pinned.load(pins_file or pins_path_for(exp.experiment))
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
    forest = write_forest_plot(verdicts, folder / "figures" / "seeds-forest.png", exp.experiment.claims)
    progress("cnnclaims report: calibrating the seeds design (cached after the first run) ...")
    from .calibration import format_calibration, format_null_splits

    try:
        design = [format_calibration(exp.calibration(calibration_experiments))]
    except ValueError as exc:  # e.g. one model per condition: no seed-to-seed spread
        design = [f"no calibration: {exc}"]
    splits = exp.null_splits
    design.append(format_null_splits(splits) if splits else "no null splits: fewer than 4 same-size models")
    key = exp.pin_key
    entry = pinned.entry(doc, key) or {}
    pins, null_pins = entry.get("verdicts", {}), entry.get("null_control", {})
    fragile = pinned.fragile(doc, exp.profile.name)
    from .compat import versions

    records = [t.record for role in exp.roles for t in exp.models(role)]
    # The sweep's own models (its 10,000/50,000-image points are listed above already).
    records += [t.record for ms in exp.sweep_models().values() for t in ms if t.spec.role == "sizes"]
    ex = exp.experiment
    makespan_md, makespan_png = write_makespan(exp, folder / "figures" / "makespan.png", records)

    md = [f"# cnnclaims report: {ex.name}, {exp.profile.name} profile", "", ex.title, ""]
    meta = [
        ("data source", exp.data.source),
        ("versions", ", ".join(f"{k} {v}" for k, v in versions().items())),
        ("pin key", key + ("" if entry else " (no pinned verdicts for this key)")),
        ("profile", ", ".join(f"{k}={v}" for k, v in exp.profile.as_dict().items())),
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
        ("null control", _null_summary(null)),
        ("written", time.strftime("%Y-%m-%d %H:%M")),
    ]
    md += [f"- **{k}**: {v}" for k, v in meta]
    md += [
        "",
        "## Verdicts at a glance",
        "",
        markdown_matrix(verdicts),
        "",
        f"![seeds-scope effects](figures/{forest.name})",
        "",
        "## Design calibration",
        "",
        "```",
        *design,
        "```",
        "",
        "## Trained models",
        "",
    ]
    md += ["| role | seed | images | epochs (best) | test accuracy | train time (s) |", "|---|---|---|---|---|---|"]
    for r in records:
        md.append(
            f"| {r['spec']['role']} | {r['spec']['seed']} | {r['spec']['n_train']} | {r['epochs']} ({r['best_epoch']}) "
            f"| {r['test_accuracy']:.4f} | {r['train_seconds']:.0f} |"
        )
    md += ["", "## Makespan, simulated", "", makespan_md, ""]
    if makespan_png:
        md += [f"![simulated makespan](figures/{makespan_png.name})", ""]
    md += [
        "## Verdicts",
        "",
        markdown_table(verdicts, pins),
        "",
        LEGEND,
        "",
        "## Null control (same training size, seeds only)",
        "",
        markdown_table(null, null_pins),
        "",
    ]
    if fragile:
        md += ["## Fragile across versions", "", "| section | case | verdicts |", "|---|---|---|"]
        md += [f"| {s} | {c} | {', '.join(f'{f}: {v}' for f, v in fam.items())} |" for (s, c), fam in fragile.items()]
        md.append("")
    md += ["## Claims and figures", ""]
    for claim in ex.claims:
        md += [
            f"### {claim.name}" + (f" ({claim.figure})" if claim.figure else ""),
            "",
            f"> {claim.text}",
            "",
            f"Tested: {claim.describe(ex.a.name, ex.b.name)}.",
            "",
        ]
        for v in verdicts:
            if v.claim == claim.id:
                md.append(f"- {v.summary()}")
        md.append("")
        for name in figs.get(claim.id, []):
            md.append(f"![{name.stem}](figures/{name.name})")
        md.append("")
    md += ["## Other figures", ""] + [f"![{p.stem}](figures/{p.name})" for p in figs.get("other", [])]
    md_path = folder / "report.md"
    md_path.write_text("\n".join(md) + "\n")

    progress("cnnclaims report: writing HTML ...")
    h = [
        "<!doctype html><html><head><meta charset='utf-8'><title>cnnclaims report</title><style>",
        "body{font-family:sans-serif;max-width:1100px;margin:auto}table{border-collapse:collapse;font-size:12px}"
        "td,th{border:1px solid #ccc;padding:2px 6px}"
        + "".join(f"tr.{k} td:nth-child({VERDICT_COLUMN + 1}){{background:{c}}}" for k, c in COLOURS.items())
        + "img{max-width:100%}blockquote{color:#555}",
        "</style></head><body>",
        f"<h1>cnnclaims report: {html.escape(exp.profile.name)} profile</h1><ul>",
    ]
    h += [f"<li><b>{html.escape(k)}</b>: {html.escape(str(v))}</li>" for k, v in meta]
    h += [
        "</ul><h2>Verdicts at a glance</h2>",
        html_matrix(verdicts),
        _img(forest),
        "<h2>Design calibration</h2><pre>" + html.escape("\n".join(design)) + "</pre>",
        "<h2>Trained models</h2><table>",
    ]
    h.append(
        "<tr><th>role</th><th>seed</th><th>images</th><th>epochs (best)</th><th>test accuracy</th>"
        "<th>train time (s)</th></tr>"
    )
    for r in records:
        h.append(
            f"<tr><td>{r['spec']['role']}</td><td>{r['spec']['seed']}</td><td>{r['spec']['n_train']}</td>"
            f"<td>{r['epochs']} ({r['best_epoch']})</td><td>{r['test_accuracy']:.4f}</td>"
            f"<td>{r['train_seconds']:.0f}</td></tr>"
        )
    h += ["</table><h2>Makespan, simulated</h2>", _markdown_to_html(makespan_md)]
    if makespan_png:
        h.append(_img(makespan_png))
    h += [
        "<h2>Verdicts</h2>",
        _html_table(verdicts, pins),
        f"<p>{html.escape(LEGEND)}</p>",
        "<h2>Null control</h2>",
        _html_table(null, null_pins),
    ]
    if fragile:
        h.append("<h2>Fragile across versions</h2><ul>")
        h += [f"<li>{html.escape(s)} {html.escape(c)}: {html.escape(str(fam))}</li>" for (s, c), fam in fragile.items()]
        h.append("</ul>")
    h.append("<h2>Claims and figures</h2>")
    for claim in ex.claims:
        h.append(
            f"<h3>{html.escape(claim.name)}"
            + (f" ({html.escape(claim.figure)})" if claim.figure else "")
            + f"</h3><blockquote>{html.escape(claim.text)}</blockquote><ul>"
        )
        h += [f"<li>{html.escape(v.summary())}</li>" for v in verdicts if v.claim == claim.id]
        h.append("</ul>")
        h += [_img(p) for p in figs.get(claim.id, [])]
    h.append("<h2>Other figures</h2>")
    h += [_img(p) for p in figs.get("other", [])]
    h.append("</body></html>")
    html_path = folder / "report.html"
    html_path.write_text("\n".join(h))
    progress(f"cnnclaims report: wrote {html_path} and {md_path} in {time.perf_counter() - t0:.0f}s")
    return html_path, md_path


def write_makespan(exp, path, records=()) -> tuple[str, Path | None]:
    """(Markdown, figure path or None) of the simulated makespan of ``exp``'s plans on
    1-256 workers (``makespan.run_plans``) from the records in its cache and
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
        return f"Not simulated: {exc}", None
    text = (
        "From the recorded per-model training times in the cache, how long this run's models take on W "
        "workers (training processes), scheduled longest first.\n\n" + markdown(plans)
    )
    return text, plots.save(makespan_figure(plans), path)


def _markdown_to_html(text: str) -> str:
    """The makespan section's Markdown (a pipe table, then "- " lines) as HTML."""
    out: list[str] = []
    table: list[str] = []
    for line in text.splitlines():
        if line.startswith("|"):
            if not set(line) <= set("|- "):  # the header's separator row
                cells = [c.strip() for c in line.strip("|").split("|")]
                tag = "th" if not table else "td"
                table.append("<tr>" + "".join(f"<{tag}>{html.escape(c)}</{tag}>" for c in cells) + "</tr>")
            continue
        if table:
            out.append("<table>" + "".join(table) + "</table>")
            table = []
        if line.startswith("- "):
            out.append(f"<p>{html.escape(line[2:].replace('**', ''))}</p>")
        elif line.strip():
            out.append(f"<p>{html.escape(line)}</p>")
    if table:
        out.append("<table>" + "".join(table) + "</table>")
    return "".join(out)


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
    return plots.save(plots.forest_plot(rows, "seeds scope: effect and 95% CI in SESOI units"), path)


def _img(path: Path) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    name = html.escape(path.stem)
    return f"<figure><img alt='{name}' src='data:image/png;base64,{data}'><figcaption>{name}</figcaption></figure>"
