"""Proof that a cache holds what today's code trains: retrain a sample from scratch and
compare it bit for bit (``python -m cnnclaims cache reproduce``).

A warm run trusts its cache: the keys cover the specs, data, versions, numerics and
``TRAINING_VERSION``, but a cache restored from another machine or a change to the
training code without a bump would go unseen. So CI retrains, into a temporary cache,
one model of every group of the plan (the cheapest: the first seed at the smallest
size) and compares each with the cached model of the same spec: the weights' SHA-256
(``training.weights_sha256``), the history and the test accuracy. Where the time budget
does not allow a whole model, its first K epochs are retrained and compared with the
per-epoch weight digests its record holds (``epoch_weights_sha256``): the same
training, cut short.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from pathlib import Path

from .declaration import SWEEP


def _cost(spec) -> tuple:
    return (spec.n_train * spec.max_epochs, spec.seed)


def sample(run, groups=None, prefer_cached: bool = False) -> list:
    """One spec per group of ``run``'s plan (``groups``: a subset of its names, the
    sweep's ``sizes`` included): the first seed of the group at its smallest size,
    cheapest first. With ``prefer_cached``, the cheapest spec of the group that the
    cache holds, where the cheapest is not cached (a partly warm cache is still
    checked; a group with nothing cached keeps its cheapest spec, which ``missing``
    then names). Raises UnknownNameError for a group the plan lacks."""
    from .errors import unknown

    plan = run.plan_roles
    for g in groups or ():
        if g not in plan:
            raise unknown("group", g, plan)
    out = []
    for role in groups or plan:
        specs = sorted(
            (
                [s for group in run.sweep["specs"].values() for s in group if s.role == SWEEP]
                if role == SWEEP
                else run.plan_specs([role])
            ),
            key=_cost,
        )
        if not specs:
            continue
        cached = [s for s in specs if is_cached(run, s)] if prefer_cached else []
        out.append((cached or specs)[0])
    return sorted(out, key=lambda s: s.n_train * s.max_epochs)


def is_cached(run, spec) -> bool:
    """Whether ``run``'s cache holds an intact entry for ``spec``
    (``training.entry_problem``)."""
    return _problem(run, spec) is None


def _problem(run, spec) -> str | None:
    from .training.entries import entry_problem

    return entry_problem(spec, run.data.fingerprint, run.cache_dir)


def train_hint(run) -> str:
    """The command that trains ``run``'s whole plan: its profile named (a bare ``run
    --all`` trains the default profile, the article's 40 models), and its experiment
    where it is not the default."""
    from .declaration import load_experiment

    other = run.experiment.name != load_experiment().name
    return f"python -m cnnclaims run --all --profile {run.profile.name}" + (
        " --experiment MODULE:NAME (as given here)" if other else ""
    )


def damaged(run, specs) -> list[dict]:
    """Rows for the specs of ``specs`` whose cache entry exists but is damaged (a
    record edited or failing its checksum, a model file missing or not matching its
    SHA-256): ``identical`` False, ``damaged`` True, nothing retrained."""
    rows = []
    for spec in specs:
        record, folder = _cached_record(run, spec)
        problem = _problem(run, spec) if record is not None else None
        if problem:
            rows.append(
                {
                    "entry": folder.name,
                    "check": "-",
                    "identical": False,
                    "damaged": True,
                    "seconds": 0.0,
                    "why": f"damaged: {problem}",
                }
            )
    return rows


def missing(run, specs) -> list[dict]:
    """Rows (as ``reproduce`` gives) for the specs of ``specs`` that the cache does not
    hold: nothing to compare them with, so they are neither identical nor different
    (``identical`` None). A cold cache proves nothing and disproves nothing; the
    table says which groups went unchecked and how to check them."""
    rows = []
    for spec in specs:
        record, folder = _cached_record(run, spec)
        if record is None:
            rows.append(
                {
                    "entry": folder.name,
                    "check": "-",
                    "identical": None,
                    "seconds": 0.0,
                    "why": f"not cached in {run.cache_dir}, nothing to compare: train the plan first "
                    f"({train_hint(run)}) to check this group",
                }
            )
    return rows


def _cached_record(run, spec):
    from .training.entries import entry_dir
    from .training.spec import cache_key

    folder = entry_dir(run.cache_dir, spec, cache_key(spec, run.data.fingerprint))
    if not (folder / "record.json").is_file():
        return None, folder
    from . import cache

    return cache.read_json(folder / "record.json"), folder


def _weights_digest(record, folder) -> str:
    if record.get("weights_sha256"):
        return record["weights_sha256"]
    from .compat import load_model
    from .training.fitting import weights_sha256

    return weights_sha256(load_model(folder / "model.keras"))


def choose(run, specs, budget_s: float | None, workers: int, progress) -> list[tuple]:
    """``[(spec, epochs or None)]``: None retrains the whole model; an int its first
    epochs only. Without a budget every model is whole. With one, the predicted time
    (``forecast``, measured here) decides: cheapest first, whole models while the plan
    fits, then each remaining model's first K epochs, the largest K that fits (at least
    one: every group is checked)."""
    if budget_s is None:
        return [(s, None) for s in specs]
    from . import forecast
    from .training.progress import lpt_makespan, recorded
    from .training.spec import recipe_functions

    def build_of(s):
        return (run.sweep["recipes"].get(s.role) or recipe_functions(run.experiment, s.role))[0]

    records = recorded(run.cache_dir)
    n_val = len(run.data.y_test)
    from .modelio import model_io

    pred = forecast.predict_plan(
        specs,
        build_of,
        run.experiment.input_shape,
        len(run.experiment.classes),
        n_val,
        records,
        workers,
        io=model_io(run.experiment),
    )
    progress(pred.line(f"the {len(specs)} models of the sample"))
    chosen: list = []
    times: list = []
    for s in specs:
        whole = pred.per_spec[s]
        if lpt_makespan(times + [whole], workers) <= budget_s:
            chosen.append((s, None))
            times.append(whole)
            continue
        epoch_s = forecast.model_seconds(s, n_val, pred.throughput, 1) - forecast.OVERHEAD_SECONDS
        left = budget_s - lpt_makespan(times, workers) if len(times) >= workers else budget_s
        k = max(1, min(s.max_epochs, int((left - forecast.OVERHEAD_SECONDS) // max(epoch_s, 1e-9))))
        chosen.append((s, k))
        times.append(forecast.OVERHEAD_SECONDS + k * epoch_s)
    return chosen


def reproduce(run, plan, workers: int | None = None, progress=print) -> list[dict]:
    """Retrain ``plan`` (from ``choose``) into a temporary cache and compare with
    ``run``'s cache. One row per spec: ``entry`` (the cached folder's name), ``check``
    ("whole model" or "first K epochs"), ``identical`` (bool; None for a spec the
    cache lacks, see ``missing``: nothing is retrained for it), ``why`` (what differs),
    ``seconds``."""
    from .training.entries import get_trained
    from .training.missing import train_missing

    rows, todo = [], []
    for spec, epochs in plan:
        record, folder = _cached_record(run, spec)
        if record is None:
            rows.extend(missing(run, [spec]))
            continue
        bad = damaged(run, [spec])
        if bad:  # a damaged entry is never used: comparing with it would prove nothing
            rows.extend(bad)
            continue
        if epochs is not None and epochs >= record["epochs"]:
            epochs = None  # the whole model is no longer than the prefix
        todo.append((spec, epochs, record, folder))
    with tempfile.TemporaryDirectory(prefix="cnnclaims-reproduce-") as tmp_name:
        tmp = Path(tmp_name)
        if (run.cache_dir / "data").is_dir():  # decoded data: read, not decoded again
            os.symlink(run.cache_dir / "data", tmp / "data")
        specs = [dataclasses.replace(s, max_epochs=e) if e else s for s, e, _, _ in todo]
        t0 = time.perf_counter()
        train_missing(
            specs,
            run.data,
            run.data_path,
            tmp,
            workers=workers,
            progress=progress,
            experiment=run.experiment,
            recipes=run.sweep["recipes"],
        )
        for (spec, epochs, record, folder), fresh_spec in zip(todo, specs, strict=False):
            recipe = run.sweep["recipes"].get(spec.role) if spec.role == SWEEP else None
            fresh = get_trained(
                fresh_spec, run.data, tmp, progress=progress, experiment=run.experiment, recipe=recipe
            ).record
            if epochs is None:
                diffs = [
                    name
                    for name, a, b in (
                        ("weights", _weights_digest(record, folder), fresh["weights_sha256"]),
                        ("history", record["history"], fresh["history"]),
                        ("test accuracy", record["test_accuracy"], fresh["test_accuracy"]),
                        ("epochs", record["epochs"], fresh["epochs"]),
                    )
                    if a != b
                ]
                check = "whole model"
            else:
                want = record.get("epoch_weights_sha256")
                diffs = (
                    ["no per-epoch digests in the record (trained before they were recorded)"]
                    if not want
                    else [
                        f"weights after epoch {i + 1}"
                        for i, (a, b) in enumerate(zip(want[:epochs], fresh["epoch_weights_sha256"], strict=False))
                        if a != b
                    ][:1]
                )
                check = f"first {epochs} epochs"
            rows.append(
                {
                    "entry": folder.name,
                    "check": check,
                    "identical": not diffs,
                    "why": ", ".join(diffs),
                    "seconds": fresh["train_seconds"],
                }
            )
        progress(f"cnnclaims: retrained {len(todo)} models in {time.perf_counter() - t0:.0f}s")
    return rows


def outcome(rows, cache_dir, hint: str = "python -m cnnclaims run --all") -> tuple[int, str]:
    """The exit code and closing line of ``cache reproduce`` for its ``rows``: 1 when
    any cached model differs from what was retrained (named, with the fix); 0
    otherwise, saying how many groups were compared and how many had nothing cached
    (a cold cache proves nothing and disproves nothing, so it is said, not failed)."""
    damaged = [r["entry"] for r in rows if r.get("damaged")]
    if damaged:
        return 1, (
            f"error: these cache entries are damaged (a record edited or failing its checksum, a model file "
            f"missing or not matching its SHA-256): {', '.join(damaged)}; they are not used (a run retrains "
            "them): see python -m cnnclaims cache verify, and remove them with python -m cnnclaims cache "
            "prune --damaged"
        )
    bad = [r["entry"] for r in rows if r["identical"] is False]
    if bad:
        return 1, (
            f"error: retrained from scratch, these differ from the cache: {', '.join(bad)}; the cache does "
            "not hold what this code trains (another machine's numerics, or training code changed without "
            "TRAINING_VERSION): remove them (python -m cnnclaims cache prune --match NAME) and train again"
        )
    absent = sum(r["identical"] is None for r in rows)
    if absent == len(rows):
        return 0, (
            f"nothing compared: none of the {len(rows)} groups of the plan has a cached model in "
            f"{cache_dir} (a cold cache proves nothing and disproves nothing; to check it, train the plan "
            f"first: {hint})"
        )
    unchecked = (
        f"; {absent} of the {len(rows)} groups have no cached model and were not checked (train the plan first: {hint})"
        if absent
        else ""
    )
    return 0, f"{len(rows) - absent} models retrained from scratch, each bit for bit as cached{unchecked}"


def table(rows) -> str:
    """The rows as text: entry, check, result, seconds."""
    lines = [f"{'entry':48s} {'check':18s} {'result':10s} seconds"]
    for r in rows:
        result = (
            "DAMAGED" if r.get("damaged") else {True: "identical", False: "DIFFERS", None: "not cached"}[r["identical"]]
        )
        lines.append(
            f"{r['entry']:48s} {r['check']:18s} {result:10s} {r['seconds']:7.0f}"
            + (f"  ({r['why']})" if r["why"] else "")
        )
    return "\n".join(lines)
