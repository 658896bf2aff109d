"""The verdict table (terminal, Markdown) and the self-contained HTML/Markdown report."""
from __future__ import annotations

import base64
import html
import time
from pathlib import Path

import numpy as np

COLUMNS = ("claim", "scope", "test", "statistic", "p", "p_holm", "effect", "95% CI", "verdict", "pinned")


def _f(v) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "n/a"
    return f"{v:.3g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.1e}"


def rows(verdicts, pins: dict | None = None) -> list[tuple]:
    pins = pins or {}
    return [
        (v.name, v.scope, v.test.split(" (")[0], _f(v.statistic), _f(v.p_value), _f(v.p_holm),
         f"{v.effect_name} {_f(v.effect)}", f"[{_f(v.ci_low)}, {_f(v.ci_high)}]", v.verdict,
         pins.get(v.key, "-"))
        for v in verdicts
    ]


def _text_table(header, body) -> str:
    widths = [max(len(str(r[i])) for r in [header, *body]) for i in range(len(header))]
    line = "  ".join("{:<%d}" % w for w in widths)
    out = [line.format(*header), line.format(*["-" * w for w in widths])]
    out += [line.format(*r) for r in body]
    return "\n".join(out)


def verdict_table_text(verdicts, null_verdicts=(), pins=None, null_pins=None) -> str:
    parts = []
    if verdicts:
        parts.append(_text_table(COLUMNS, rows(verdicts, pins)))
    if null_verdicts:
        n = len(null_verdicts)
        either = sum(v.verdict != "inconclusive" for v in null_verdicts)
        parts.append(
            f"null control (same training size, other seeds): {_null_summary(null_verdicts)}; "
            f"significant in either direction: {either}/{n}"
        )
        parts.append(_text_table(COLUMNS, rows(null_verdicts, null_pins)))
    return "\n".join(parts)


def _null_summary(null_verdicts) -> str:
    from .claims import false_positive_rate

    rate = false_positive_rate(null_verdicts) or 0.0
    return f"{round(rate * len(null_verdicts))}/{len(null_verdicts)} supported (false-positive rate {rate:.2f})"


def markdown_table(verdicts, pins=None) -> str:
    body = rows(verdicts, pins)
    out = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in body]
    return "\n".join(out)


def _html_table(verdicts, pins=None) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in COLUMNS)
    body = []
    for r in rows(verdicts, pins):
        cls = r[8]
        body.append("<tr class='%s'>%s</tr>" % (cls, "".join(f"<td>{html.escape(str(c))}</td>" for c in r)))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def write_report(exp, folder, progress=print) -> tuple[Path, Path]:
    """Write report.html (images embedded) and report.md (images beside it) for an experiment."""
    from . import pinned
    from .claims import CATALOG
    from .figures import make_figures

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    progress("cnnclaims report: training or loading models ...")
    verdicts, null = exp.verdicts, exp.null_verdicts
    progress(f"cnnclaims report: {len(verdicts)} verdicts and {len(null)} null-control verdicts ({time.perf_counter() - t0:.0f}s)")
    figs = make_figures(exp, folder / "figures", progress=progress)
    doc = pinned.load()
    key = pinned.pin_key(exp.profile)
    entry = pinned.entry(doc, key) or {}
    pins, null_pins = entry.get("verdicts", {}), entry.get("null_control", {})
    fragile = pinned.fragile(doc, exp.profile.name)
    from .compat import versions

    records = [t.record for role in ("benchmark", "dummy", "null") for t in exp.models(role)]

    md = [f"# cnnclaims report: {exp.profile.name} profile", ""]
    meta = [
        ("data source", exp.data.source),
        ("versions", ", ".join(f"{k} {v}" for k, v in versions().items())),
        ("pin key", key + ("" if entry else " (no pinned verdicts for this key)")),
        ("profile", ", ".join(f"{k}={v}" for k, v in exp.profile.as_dict().items())),
        ("probe", f"test image {exp.probe_index} (a frog); frogs scope: {len(exp.frog_indices)} test-set frogs"),
        ("null control", _null_summary(null)),
        ("written", time.strftime("%Y-%m-%d %H:%M")),
    ]
    md += [f"- **{k}**: {v}" for k, v in meta] + ["", "## Trained models", ""]
    md += ["| role | seed | images | epochs (best) | test accuracy | train time (s) |", "|---|---|---|---|---|---|"]
    for r in records:
        md.append(f"| {r['spec']['role']} | {r['spec']['seed']} | {r['spec']['n_train']} | {r['epochs']} ({r['best_epoch']}) "
                  f"| {r['test_accuracy']:.4f} | {r['train_seconds']:.0f} |")
    md += ["", "## Verdicts", "", markdown_table(verdicts, pins), "",
           "## Null control (same training size, seeds only)", "", markdown_table(null, null_pins), ""]
    if fragile:
        md += ["## Fragile across versions", "", "| section | case | verdicts |", "|---|---|---|"]
        md += [f"| {s} | {c} | {', '.join(f'{f}: {v}' for f, v in fam.items())} |" for (s, c), fam in fragile.items()]
        md.append("")
    md += ["## Claims and figures", ""]
    for claim in CATALOG:
        md += [f"### {claim.name} ({claim.figure})", "", f"> {claim.article}", "", f"Tested: {claim.describe()}.", ""]
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
    h = ["<!doctype html><html><head><meta charset='utf-8'><title>cnnclaims report</title><style>",
         "body{font-family:sans-serif;max-width:1100px;margin:auto}table{border-collapse:collapse;font-size:12px}"
         "td,th{border:1px solid #ccc;padding:2px 6px}tr.supported td:nth-child(9){background:#cfc}"
         "tr.refuted td:nth-child(9){background:#fcc}tr.inconclusive td:nth-child(9){background:#eee}"
         "img{max-width:100%}blockquote{color:#555}",
         "</style></head><body>", f"<h1>cnnclaims report: {html.escape(exp.profile.name)} profile</h1><ul>"]
    h += [f"<li><b>{html.escape(k)}</b>: {html.escape(str(v))}</li>" for k, v in meta] + ["</ul><h2>Trained models</h2><table>"]
    h.append("<tr><th>role</th><th>seed</th><th>images</th><th>epochs (best)</th><th>test accuracy</th><th>train time (s)</th></tr>")
    for r in records:
        h.append(f"<tr><td>{r['spec']['role']}</td><td>{r['spec']['seed']}</td><td>{r['spec']['n_train']}</td>"
                 f"<td>{r['epochs']} ({r['best_epoch']})</td><td>{r['test_accuracy']:.4f}</td><td>{r['train_seconds']:.0f}</td></tr>")
    h += ["</table><h2>Verdicts</h2>", _html_table(verdicts, pins),
          "<h2>Null control</h2>", _html_table(null, null_pins)]
    if fragile:
        h.append("<h2>Fragile across versions</h2><ul>")
        h += [f"<li>{html.escape(s)} {html.escape(c)}: {html.escape(str(fam))}</li>" for (s, c), fam in fragile.items()]
        h.append("</ul>")
    h.append("<h2>Claims and figures</h2>")
    for claim in CATALOG:
        h.append(f"<h3>{html.escape(claim.name)} ({html.escape(claim.figure)})</h3><blockquote>{html.escape(claim.article)}</blockquote><ul>")
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


def _img(path: Path) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f"<figure><img alt='{html.escape(path.stem)}' src='data:image/png;base64,{data}'><figcaption>{html.escape(path.stem)}</figcaption></figure>"
