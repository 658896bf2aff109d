"""Diagnostic plots for one verdict: the evidence its test used, written as PNGs."""

from __future__ import annotations

from pathlib import Path

from . import metrics as m
from . import plots
from .cache import file_sha256, read_json, stable_hash, to_jsonable, write_json
from .claims import values
from .declaration import NULL_CONTROL, OUTPUT, Plot
from .errors import CacheError
from .evidence import output_layer
from .formatting import number


def _fmt(v) -> str:
    return number(v, missing="n/a")


def title_for(v) -> str:
    """A verdict's plot title: the claim, scope and verdict; the test and its p-values;
    the effect with its CI and the SESOI, one line each (the plots wrap a line that is
    still wider than the figure)."""
    return (
        f"{v.name} [{v.scope}{', null control' if v.family == NULL_CONTROL else ''}]: {v.verdict}\n"
        f"{v.test}: stat={_fmt(v.statistic)}, p (2-sided)={_fmt(v.p_two_sided)}, p_adjusted={_fmt(v.p_adjusted)}, "
        f"TOST p_adjusted={_fmt(v.p_equivalence_adjusted)}\n"
        f"{v.effect_name}={_fmt(v.effect)} [{_fmt(v.ci_low)}, {_fmt(v.ci_high)}], SESOI {_fmt(v.sesoi)}"
    )


def caption_for(claim, verdict, what: str) -> str:
    """A diagnostic plot's caption in words (stored in its PNG, ``plots.save``): the
    claim, the scope, and ``what`` the plot shows."""
    null = " (null control)" if verdict.family == NULL_CONTROL else ""
    return f"{claim.id}, {verdict.scope} scope{null}: {what}"


def probe_activations(exp, evidence) -> dict:
    """Probe-image activations of the first model of each compared group, by group name."""
    return {role: exp.probe_activations(role) for role in (evidence.a, evidence.b)}


def _output_layer(exp) -> str:
    return output_layer(exp.experiment, exp.first_model(exp.a).model)


def _layer(claim, exp) -> str:
    """The layer a claim's probe plot shows: its metric's last layer other than the
    input (the softmax for a softmax metric)."""
    out = _output_layer(exp)
    layers = [out if layer == OUTPUT else layer for layer in claim.metric.layers if layer != "input"]
    return layers[-1] if layers else out


def claim_plots(exp, verdict, folder) -> list[Path]:
    """Write the diagnostic plots of one verdict into ``folder``; return their paths."""
    claim = exp.experiment.claim(verdict.claim)
    null = verdict.family == NULL_CONTROL
    evidence = exp.null_evidence if null else exp.evidence
    an, bn = evidence.a, evidence.b
    stem = f"{claim.name}-{verdict.scope}{'-null' if null else ''}"
    title = title_for(verdict)
    out = []
    kind = exp.experiment.scope_kind(verdict.scope)

    if kind == "sizes":
        what = (
            f"{claim.seeds_label} per model against training-set size, each size's mean and 95% CI, the fitted "
            "trend and the band of slopes within the SESOI margin"
        )
        fig = size_trend_figure(claim, verdict, title)
        out.append(plots.save(fig, Path(folder) / f"{stem}-trend.png", caption_for(claim, verdict, what)))
        return out

    if kind == "seeds":
        if "per_seed" in verdict.extras:
            per_seed = {claim.subject: verdict.extras["per_seed"]}
        else:
            per_seed = {an: verdict.extras[f"{an}_per_seed"], bn: verdict.extras[f"{bn}_per_seed"]}
        fig = plots.seed_points(per_seed, claim.seeds_label, (verdict.effect, verdict.ci_low, verdict.ci_high), title)
        what = (
            f"{claim.seeds_label}, one point per model of {' and '.join(map(str, per_seed))}, the group means and "
            "the 95% CI of the effect"
        )
        out.append(plots.save(fig, Path(folder) / f"{stem}-per-seed.png", caption_for(claim, verdict, what)))
        return out

    a, b = evidence.first(an), evidence.first(bn)
    if kind == "images":
        per_image = {an: values(a, claim.stat), bn: values(b, claim.stat)}
        what = f"{claim.label} on each image for the first model of {an} and of {bn}, and the per-image differences"
        out.append(
            plots.save(
                plots.paired_distributions(per_image, claim.label, title),
                Path(folder) / f"{stem}-per-image.png",
                caption_for(claim, verdict, what),
            )
        )

    # The probe's own evidence (also shown for the images scope: what one image looks like).
    acts = probe_activations(exp, evidence)
    layer = _layer(claim, exp)
    probe = f"the probe image (test image {exp.probe_index})"
    if claim.plot == Plot.FEATURE_MAPS:
        fig = plots.feature_maps_side_by_side(exp.probe_image, acts[an][layer][0], acts[bn][layer][0], (an, bn), title)
        what = f"{probe} and its {layer} feature maps in {an} and {bn}"
    elif claim.plot == Plot.INPUT:
        fig = plots.value_histograms({"probe image": acts[an]["input"][0]}, title, "pixel value (/255)")
        what = f"the pixel values of {probe}"
    elif claim.plot == Plot.ENTROPY:
        ent = {"input": m.histogram_entropy(acts[an]["input"])[0]}
        for label in (an, bn):
            ent[f"{label} {layer}"] = m.histogram_entropy(m.scale_unit(acts[label][layer]))[0]
        fig = plots.entropy_bars(ent, title)
        what = f"the entropy of {probe} and of its {layer} activations in {an} and {bn}"
    elif claim.plot in (Plot.SOFTMAX, Plot.ACCURACY):
        out_layer = _output_layer(exp)
        fig = plots.softmax_bars(
            {an: acts[an][out_layer][0], bn: acts[bn][out_layer][0]},
            exp.experiment.classes,
            exp.experiment.probe_class,
            title,
        )
        what = f"the softmax outputs of {an} and {bn} on {probe}"
    else:  # Plot.HISTOGRAM: Claim admits no other value
        fig = plots.value_histograms(
            {label: m.scale_unit(acts[label][layer]) for label in (an, bn)}, title, f"{layer} activation / image max"
        )
        what = f"the {layer} activations on {probe}, each divided by its maximum, in {an} and {bn}"
    suffix = claim.plot if kind == "probe" else f"probe-{claim.plot}"
    out.append(plots.save(fig, Path(folder) / f"{stem}-{suffix}.png", caption_for(claim, verdict, what)))
    return out


def size_trend_figure(claim, verdict, title: str = ""):
    """The sizes scope's figure of a verdict (``plots.size_trend``), from the numbers
    the verdict carries."""
    ex = verdict.extras
    return plots.size_trend(
        ex["sizes"],
        ex["per_seed"],
        (verdict.effect, ex["intercept"], verdict.ci_low, verdict.ci_high),
        verdict.sesoi,
        claim.seeds_label,
        title or title_for(verdict),
    )


# Bump when a plot's content changes, so warm runs do not reuse old pictures.
# 2: the sizes trend's band is the margin per decade (SESOI / decades); 3: titles
# wrapped to the figure, the caption stored in the PNG (plots.save)
PLOTS_VERSION = 3


def cached_claim_plots(exp, verdict, folder) -> list[Path]:
    """``claim_plots``, reusing last run's files when they were drawn from the same
    verdict, models and probe (a warm run redraws nothing). The stamp also holds each
    file's SHA-256, so an edited or damaged picture is drawn again, never trusted."""
    folder = Path(folder)
    roles = ("null", exp.b) if verdict.family == NULL_CONTROL else (exp.a, exp.b)
    models = {role: [t.key for t in exp.models(role)] for role in roles}
    if verdict.scope == "sizes":
        models["sizes"] = [[n, [t.key for t in ms]] for n, ms in exp.sweep_models().items()]
    stamp = stable_hash(
        {
            "verdict": to_jsonable(verdict.to_dict()),
            "models": models,
            "probe": exp.probe_index,
            "version": PLOTS_VERSION,
        }
    )
    null = "-null" if verdict.family == NULL_CONTROL else ""
    record = folder / f".{exp.experiment.claim(verdict.claim).name}-{verdict.scope}{null}.stamp.json"

    try:
        old = read_json(record) if record.exists() else {}
    except CacheError:
        old = {}
    files = [folder / name for name in old.get("files", {})]
    if (
        old.get("stamp") == stamp
        and files
        and all(p.exists() and file_sha256(p) == old["files"][p.name] for p in files)
    ):
        return files
    paths = claim_plots(exp, verdict, folder)
    write_json(record, {"stamp": stamp, "files": {p.name: file_sha256(p) for p in paths}})
    return paths
