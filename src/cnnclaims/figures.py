"""The article's Figures 1-8 for the current models, plus the figures it lacked
(every claim over all frogs and all seeds with CIs, and the null control)."""
from __future__ import annotations

import io
from pathlib import Path

from . import metrics as m
from . import plots
from .diagnostics import claim_plots

# Which article figures support which claims (for the report).
FIGURE_CLAIMS = {
    "fig1-model-summary": (),
    "fig2-conv2d_1-dummy": ("C1", "C2"),
    "fig3-conv2d_1-benchmark": ("C1", "C2"),
    "fig4-conv2d_6-dummy": ("C3", "C4"),
    "fig5-conv2d_6-benchmark": ("C3", "C4"),
    "fig6-last-layer-distributions": ("C5", "C5b", "C7", "C7b"),
    "fig7-probe-pixel-distribution": ("C6", "C6b", "C7", "C7b"),
    "fig8-softmax": ("C8", "C9", "C10"),
}


def model_summary(model) -> str:
    buf = io.StringIO()
    model.summary(print_fn=lambda line, *a, **k: buf.write(line + "\n"))
    return buf.getvalue()


def article_figures(exp, folder, progress=print) -> dict:
    """Figures 1-8 of the article for the first benchmark and dummy models; name -> path."""
    folder = Path(folder)
    b = exp.models("benchmark")[0]
    ab, ad = exp.probe_activations("benchmark"), exp.probe_activations("dummy")
    pos = f"probe frog (test image {exp.probe_index})"
    figs = {
        "fig1-model-summary": plots.text_figure(model_summary(b.model), "Fig. 1: the article's CNN"),
        "fig2-conv2d_1-dummy": plots.feature_map_grid(ad["conv2d_1"][0], f"Fig. 2: conv2d_1, dummy\n{pos}"),
        "fig3-conv2d_1-benchmark": plots.feature_map_grid(ab["conv2d_1"][0], f"Fig. 3: conv2d_1, benchmark\n{pos}"),
        "fig4-conv2d_6-dummy": plots.feature_map_grid(ad["conv2d_6"][0], f"Fig. 4: conv2d_6, dummy\n{pos}"),
        "fig5-conv2d_6-benchmark": plots.feature_map_grid(ab["conv2d_6"][0], f"Fig. 5: conv2d_6, benchmark\n{pos}"),
        "fig6-last-layer-distributions": plots.value_histograms(
            {"benchmark": m.scale_unit(ab["conv2d_6"]), "dummy": m.scale_unit(ad["conv2d_6"])},
            f"Fig. 6: conv2d_6 values / image max, {pos}", "scaled activation"),
        "fig7-probe-pixel-distribution": plots.value_histograms(
            {"probe frog": ab["input"][0]}, f"Fig. 7: pixel distribution of the {pos}", "pixel value (/255)"),
        "fig8-softmax": plots.softmax_bars({"benchmark": ab["dense_2"][0], "dummy": ad["dense_2"][0]},
                                           f"Fig. 8: softmax on the {pos}"),
    }
    out = {}
    for name, fig in figs.items():
        out[name] = plots.save(fig, folder / f"{name}.png")
        progress(f"cnnclaims figures: {out[name]}")
    return out


def make_figures(exp, folder, progress=print) -> dict:
    """All figures; returns claim id -> [paths] and "other" -> [paths]."""
    folder = Path(folder)
    by_claim: dict = {}
    other = []
    for name, path in article_figures(exp, folder, progress).items():
        for cid in FIGURE_CLAIMS[name]:
            by_claim.setdefault(cid, []).append(path)
        if not FIGURE_CLAIMS[name]:
            other.append(path)
    for v in exp.verdicts:
        if v.scope != "probe":
            by_claim.setdefault(v.claim, []).extend(claim_plots(exp, v, folder))
    progress("cnnclaims figures: claims over all frogs and seeds written")
    for v in exp.null_verdicts:
        if v.scope == "seeds":
            other.extend(claim_plots(exp, v, folder))
    progress(f"cnnclaims figures: null control written; {sum(map(len, by_claim.values())) + len(other)} figures in {folder}")
    by_claim["other"] = other
    return by_claim
