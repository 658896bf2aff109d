"""Diagnostic plots for one verdict: the evidence its test used, written as PNGs."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from . import metrics as m
from . import plots
from .cache import file_sha256, read_json, stable_hash, to_jsonable, write_json
from .claims import get_claim, values
from .errors import CacheError


def _fmt(v) -> str:
    return "n/a" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.3g}"


def title_for(v) -> str:
    return (
        f"{v.name} [{v.scope}{', null control' if v.family == 'null control' else ''}]: {v.verdict}\n"
        f"{v.test}: stat={_fmt(v.statistic)}, p (2-sided)={_fmt(v.p_two_sided)}, p_holm={_fmt(v.p_holm)}, "
        f"TOST p_holm={_fmt(v.p_equivalence_holm)}, {v.effect_name}={_fmt(v.effect)} "
        f"[{_fmt(v.ci_low)}, {_fmt(v.ci_high)}], SESOI {_fmt(v.sesoi)}"
    )


def probe_activations(exp, evidence) -> dict:
    """Probe-frog activations of the first model of each group, keyed by group label."""
    null = evidence.label == "null control"
    return {label: exp.probe_activations("null" if null and role == "benchmark" else role)
            for role, label in _labels(evidence).items()}


def _labels(evidence) -> dict:
    return {"benchmark": "null group" if evidence.label == "null control" else "benchmark", "dummy": "dummy"}


def claim_plots(exp, verdict, folder) -> list[Path]:
    """Write the diagnostic plots of one verdict into ``folder``; return their paths."""
    claim = get_claim(verdict.claim)
    null = verdict.family == "null control"
    evidence = exp.null_evidence if null else exp.evidence
    labels = _labels(evidence)
    stem = f"{claim.name}-{verdict.scope}{'-null' if null else ''}"
    title = title_for(verdict)
    out = []

    if verdict.scope == "seeds":
        if "per_seed" in verdict.extras:
            per_seed = {claim.subject: verdict.extras["per_seed"]}
        else:
            per_seed = {labels["benchmark"]: verdict.extras["benchmark_per_seed"], "dummy": verdict.extras["dummy_per_seed"]}
        fig = plots.seed_points(per_seed, claim.seeds_label,
                                (verdict.effect, verdict.ci_low, verdict.ci_high), title)
        out.append(plots.save(fig, Path(folder) / f"{stem}-per-seed.png"))
        return out

    b, d = evidence.first("benchmark"), evidence.first("dummy")
    if verdict.scope == "frogs":
        per_image = {labels["benchmark"]: values(b, claim.stat), "dummy": values(d, claim.stat)}
        out.append(plots.save(plots.paired_distributions(per_image, claim.label, title), Path(folder) / f"{stem}-per-image.png"))

    # The probe's own evidence (also shown for the frogs scope: what one image looks like).
    acts = probe_activations(exp, evidence)
    lb = labels["benchmark"]
    if claim.plot == "feature_maps":
        fig = plots.feature_maps_side_by_side(exp.probe_image, acts[lb]["conv2d_1"][0], acts["dummy"]["conv2d_1"][0],
                                              (lb, "dummy"), title)
    elif claim.plot == "input":
        fig = plots.value_histograms({"probe frog": acts[lb]["input"][0]}, title, "pixel value (/255)")
    elif claim.plot == "entropy":
        ent = {"input": m.histogram_entropy(acts[lb]["input"])[0]}
        for label in (lb, "dummy"):
            ent[f"{label} conv2d_6"] = m.histogram_entropy(m.scale_unit(acts[label]["conv2d_6"]))[0]
        fig = plots.entropy_bars(ent, title)
    elif claim.plot in ("softmax", "accuracy"):
        fig = plots.softmax_bars({lb: acts[lb]["dense_2"][0], "dummy": acts["dummy"]["dense_2"][0]}, title)
    else:
        fig = plots.value_histograms(
            {label: m.scale_unit(acts[label]["conv2d_6"]) for label in (lb, "dummy")}, title,
            "conv2d_6 activation / image max")
    suffix = claim.plot if verdict.scope == "probe" else f"probe-{claim.plot}"
    out.append(plots.save(fig, Path(folder) / f"{stem}-{suffix}.png"))
    return out


# Bump when a plot's content changes, so warm runs do not reuse old pictures.
PLOTS_VERSION = 1


def cached_claim_plots(exp, verdict, folder) -> list[Path]:
    """``claim_plots``, reusing last run's files when they were drawn from the same
    verdict, models and probe (a warm run redraws nothing). The stamp also holds each
    file's SHA-256, so an edited or damaged picture is drawn again, never trusted."""
    folder = Path(folder)
    roles = ("null", "dummy") if verdict.family == "null control" else ("benchmark", "dummy")
    models = {role: [t.key for t in exp.models(role)] for role in roles}
    stamp = stable_hash({"verdict": to_jsonable(verdict.to_dict()), "models": models, "probe": exp.probe_index,
                         "version": PLOTS_VERSION})
    null = "-null" if verdict.family == "null control" else ""
    record = folder / f".{get_claim(verdict.claim).name}-{verdict.scope}{null}.stamp.json"

    try:
        old = read_json(record) if record.exists() else {}
    except CacheError:
        old = {}
    files = [folder / name for name in old.get("files", {})]
    if old.get("stamp") == stamp and files and all(
        p.exists() and file_sha256(p) == old["files"][p.name] for p in files
    ):
        return files
    paths = claim_plots(exp, verdict, folder)
    write_json(record, {"stamp": stamp, "files": {p.name: file_sha256(p) for p in paths}})
    return paths
