"""Simulated makespan of a training plan on 1 to 256 workers, from recorded per-model
training times: how long the article's models (and the sizes sweep's) would take on a
machine with more cores, or a cluster, and from which worker count more workers stop
helping because the longest single model bounds the makespan.

Each model's time is the mean recorded ``train_seconds`` of models of its size
(``training.progress.estimate``: same n_train, epoch limit and patience), scaled from the
nearest recorded size where its own has no record (the table says which). Schedules are
longest-processing-time-first (``training.progress.makespan_table``), with the lower bound
``max(total / workers, longest model)``. Worker count here means independent training
processes, one TensorFlow thread each, as the local pool runs them; the recorded times
come from whatever machine trained them (2 busy cores here), so read the absolute
numbers as that machine's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .training.progress import estimate, lpt_makespan, makespan_table

WORKERS = (1, 2, 4, 8, 16, 64, 256)


@dataclass(frozen=True)
class Job:
    """One model of a plan: ``label``, ``n_train`` (images), ``seconds`` (predicted
    training time) and ``basis`` (``training.progress.Estimate.basis``)."""

    label: str
    n_train: int
    seconds: float
    basis: str


def plan_jobs(items, records, max_epochs: int | None = None, patience: int | None = None) -> list[Job]:
    """The jobs of a plan: ``items`` are TrainSpecs (or anything with ``n_train``,
    ``max_epochs``, ``patience``) or ``(label, n_train)`` pairs, which take
    ``max_epochs`` and ``patience`` from the arguments (the profile's); ``records``:
    record dicts (``training.progress.recorded(cache_dir)``).

    Raises ValueError naming the item when a pair comes without ``max_epochs`` and
    ``patience``, or an item is neither form."""
    specs, labels = [], []
    for item in items:
        if isinstance(item, tuple) and len(item) == 2:
            label, n = item
            if max_epochs is None or patience is None:
                raise ValueError(
                    f"plan item {item!r}: a (label, n_train) pair needs max_epochs and patience "
                    "(pass the profile's) to find recorded models of the same setting"
                )
            specs.append({"n_train": n, "max_epochs": max_epochs, "patience": patience})
            labels.append(str(label))
        elif all(hasattr(item, k) for k in ("n_train", "max_epochs", "patience")):
            specs.append(item)
            labels.append(getattr(item, "label", None) or f"n={item.n_train}")
        else:
            raise ValueError(f"plan item {item!r}: expected a TrainSpec or a (label, n_train) pair")
    spec_n = [s["n_train"] if isinstance(s, dict) else s.n_train for s in specs]
    estimates = estimate(specs, records)
    return [Job(label, n, e.seconds, e.basis) for label, n, e in zip(labels, spec_n, estimates, strict=False)]


def knee(seconds) -> int | None:
    """The smallest worker count from which LPT's makespan equals the longest single
    model for every larger count: more workers cannot help. None for no jobs.

    Exact, not read off the table: LPT is not monotone in the workers in general (an
    anomaly can make one more worker slower), so this scans down from one worker per
    job, where the longest model always is the makespan."""
    t = [float(x) for x in seconds]
    if not t:
        return None
    longest, w = max(t), len(t)
    while w > 1 and math.isclose(lpt_makespan(t, w - 1), longest, rel_tol=1e-9):
        w -= 1
    return w


def simulate(items, records, workers=WORKERS, max_epochs: int | None = None, patience: int | None = None) -> dict:
    """The makespan of a plan (``plan_jobs`` arguments) on each of ``workers``.

    Returns ``{"jobs": [Job], "rows": [row per worker count: workers, makespan_s,
    lower_bound_s, speedup, bound_by_longest] (training.progress.makespan_table), "total_s",
    "longest_s", "knee": int | None (see ``knee``), "scaled": sorted n_train estimated
    from another size}``; seconds throughout.

    Raises ValueError naming the sizes that no record predicts (no model of that epoch
    limit and patience was ever trained into the cache): train one, or read another
    cache."""
    jobs = plan_jobs(items, records, max_epochs, patience)
    missing = sorted({j.n_train for j in jobs if not math.isfinite(j.seconds)})
    if missing:
        raise ValueError(
            f"no recorded training time predicts n_train={missing}: the cache holds no model of the same "
            "epoch limit and patience; train one (e.g. `python -m cnnclaims run`) or pass --cache-dir "
            "of a cache that has them"
        )
    secs = [j.seconds for j in jobs]
    return {
        "jobs": jobs,
        "rows": makespan_table(secs, workers) if jobs else [],
        "total_s": float(sum(secs)),
        "longest_s": max(secs, default=0.0),
        "knee": knee(secs),
        "scaled": sorted({j.n_train for j in jobs if j.basis.startswith("scaled")}),
    }


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f}"


def markdown(plans: dict) -> str:
    """A Markdown table of ``{plan label: simulate(...)}``: one row per plan and
    worker count, times in minutes, then a line per plan saying how each model size
    was estimated and where the longest model starts to bound the makespan."""
    out = [
        "| plan | workers | makespan (min) | lower bound (min) | speedup | bound by the longest model | times |",
        "|---|---|---|---|---|---|---|",
    ]
    notes = []
    for label, sim in plans.items():
        sizes = {j.n_train for j in sim["jobs"]}
        times = (
            "recorded"
            if not sim["scaled"]
            else (
                f"scaled for n={', '.join(map(str, sim['scaled']))}"
                + ("; others recorded" if len(sim["scaled"]) < len(sizes) else "")
            )
        )
        for r in sim["rows"]:
            out.append(
                f"| {label} | {r['workers']} | {_minutes(r['makespan_s'])} | {_minutes(r['lower_bound_s'])} "
                f"| {r['speedup']:.2f} | {'yes' if r['bound_by_longest'] else 'no'} | {times} |"
            )
        bases: dict = {}
        for j in sim["jobs"]:
            bases.setdefault(j.n_train, j.basis)
        sizes_text = "; ".join(
            f"n={n}: {_minutes(next(j.seconds for j in sim['jobs'] if j.n_train == n))} min, {b}"
            for n, b in sorted(bases.items())
        )
        notes.append(
            f"- **{label}**: {len(sim['jobs'])} models, {_minutes(sim['total_s'])} min in all, the longest "
            f"{_minutes(sim['longest_s'])} min; from {sim['knee']} workers on the longest model is the "
            f"makespan. Per model: {sizes_text}."
        )
    scaled = any(sim["scaled"] for sim in plans.values())
    notes.append(
        "- Times: mean recorded training time of models of the same size (same epoch limit and patience)"
        + (
            "; a size without a recorded model is scaled from the nearest recorded size in proportion to "
            "its images (marked *scaled*: a guess, the epochs to early stopping may differ)"
            if scaled
            else ""
        )
        + ". Schedule: longest first, each model to the worker that frees up first (LPT); lower bound: "
        "max(total / workers, longest model)."
    )
    return "\n".join(out + [""] + notes)


def run_plans(run, records) -> dict:
    """``{plan label: simulate(...)}`` for a ``experiment.Run``: its profile's models
    (conditions a and b and the null control), and, when the profile declares a sizes
    sweep, the sweep's new models and both together. Reads the sweep's plan (and so the
    data) only when the profile has sizes."""
    from .declaration import SWEEP
    from .training.spec import specs_for

    profile = run.profile
    main = [s for role in run.roles for s in specs_for(profile, role, run.experiment)]
    plans = {f"{profile.name} profile": main}
    if getattr(profile, "sizes", ()):
        new = [s for group in run.sweep["specs"].values() for s in group if s.role == SWEEP]
        if new:
            plans["sizes sweep, new models"] = new
            plans[f"{profile.name} profile and sweep"] = main + new
    return {f"{label} ({len(items)} models)": simulate(items, records) for label, items in plans.items()}


def makespan_figure(plans: dict, title: str = "simulated makespan (LPT) from recorded training times"):
    """``plots.makespan_plot`` of ``{plan label: simulate(...)}``."""
    from . import plots

    return plots.makespan_plot(
        {
            label: (
                [r["workers"] for r in sim["rows"]],
                [r["makespan_s"] for r in sim["rows"]],
                [r["lower_bound_s"] for r in sim["rows"]],
                sim["longest_s"],
                sim["knee"],
            )
            for label, sim in plans.items()
        },
        title,
    )
