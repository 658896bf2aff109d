"""A run's training plan: its models, which of them are missing, whether the cache can
store them, how long they will take here (and whether that fits the time budget), the
training itself (``training.train_missing``), and the session's summary of it.

Functions of a ``cnnclaims.run.Run``. The plan's counts live in ``run.plan_status``.
"""

from __future__ import annotations

from .declaration import SWEEP
from .options import executor_choice, ray_address_choice
from .training.missing import train_missing
from .training.spec import specs_for


def plan_specs(run, roles=None, first_only: bool = False) -> list:
    """The TrainSpecs of ``roles`` (default every group of the plan, the sweep's
    included; ``first_only``: each group's first seed), without repeats (the sweep
    reuses the conditions' models)."""
    roles = run.plan_roles if roles is None else roles
    specs = [
        s
        for role in roles
        if role != SWEEP
        for s in specs_for(run.profile, role, run.experiment)[: 1 if first_only else None]
    ]
    if SWEEP in roles:
        specs += [s for group in run.sweep["specs"].values() for s in group[: 1 if first_only else None]]
    return list(dict.fromkeys(specs))


def train(run, roles, first_only: bool = False) -> int:
    """Train every model of ``roles`` (or only each role's first seed) that is not
    cached, several at once; returns how many were trained. First, at once: the cache
    can store them (``can_store``), the data has the training sizes (``check_sizes``),
    and the forecast fits the time budget (``forecast``)."""
    specs = plan_specs(run, roles, first_only)
    if run.retrain:  # models retrained earlier this session are cached now
        specs = [s for s in specs if retraining(run, s)]
    can_store(run, specs)
    check_sizes(run)  # before any training: a size the data cannot give names the profile
    forecast(run, specs)
    done = train_missing(
        specs,
        run.data,
        run.data_path,
        run.cache_dir,
        run.retrain,
        run.workers,
        run.progress,
        run.experiment,
        recipes=run.sweep["recipes"],
        executor=executor_choice(run.executor),
        ray_address=ray_address_choice(run.ray_address),
        estimates=run.plan_status.get("predicted"),
    )
    run.retrained.update(done)
    # One worker (or one model, or functions that cannot reach a worker process):
    # nothing was started, so the plan trains here, now, as predicted once; left to
    # each group's first use it was predicted again per group, counts changing.
    rest = [s for s in missing(run, specs) if s not in done]
    for spec in sorted(rest, key=lambda s: (-s.n_train * s.max_epochs, s.role, s.seed)):
        trained(run, spec)
    return len(done) + len(rest)


def check(run, data: bool = True) -> None:
    """What can be known wrong before any training, at once: every recipe builds a
    trainable softmax model with a stable configuration that takes the declared
    images, and has every layer the claims' metrics read; with ``data`` (which loads
    it), every training size fits the data and the probe index (declared or given)
    is an image of the probe class. Raises ModelError, DataError or ValueError
    naming the thing and the fix."""
    from .modelio import check_layers
    from .training.spec import checked_config, recipe_functions

    for role in run.roles:
        build = recipe_functions(run.experiment, role)[0]
        checked_config(build, run.experiment, role)
        check_layers(build, run.experiment, role)
    if data:
        check_sizes(run)
        if run.probe is not None or run.experiment.probe.index is not None:
            run.probe_index  # noqa: B018 - raises DataError for an index of another class


def check_sizes(run) -> None:
    """DataError naming the condition when a training size exceeds the training pool:
    the data's training images, less those an early-stopping holdout keeps to monitor
    (``monitoring.split``; n_train counts the images a model is fit on)."""
    from .errors import DataError

    profile, n_data = run.profile, len(run.split.train_pool)
    held = len(run.data.y_train) - n_data
    has = f"the data has {n_data}" + (
        f" once early stopping holds out {held} to monitor ({run.experiment.early_stopping!r})" if held else ""
    )
    fix = "load more data" + (" or hold out fewer" if held else "")
    for cond, n in profile.n_train.items():
        if n > n_data:
            raise DataError(
                f"profile {profile.name!r}: condition {cond!r} asks for {n} training images, but {has}; "
                f"lower n_train or {fix}"
            )
    too_big = [n for n in profile.sizes if n > n_data]
    if too_big:
        raise DataError(
            f"profile {profile.name!r}: the sizes sweep asks for {too_big} training images, but {has}; "
            f"lower the profile's sizes or {fix}"
        )


def missing(run, specs) -> list:
    """The TrainSpecs of ``specs`` (without repeats) that this run must train: not
    cached, or to be retrained (``--retrain``, once per session)."""
    from .training.entries import is_cached

    return [
        s for s in dict.fromkeys(specs) if retraining(run, s) or not is_cached(s, run.data.fingerprint, run.cache_dir)
    ]


def can_store(run, specs) -> None:
    """CacheWriteError now, before minutes of training, when the models of ``specs``
    that are not cached cannot be stored: a read-only cache, or too little room."""
    from .cache import require_writable

    todo = missing(run, specs)
    if todo:
        require_writable(run.cache_dir / "models", run.cache_dir, len(todo))


def forecast(run, specs) -> None:
    """Before training: say how long the missing models of ``specs`` will take here
    (``forecast``: throughput measured on this machine now), and when that exceeds
    ``run.time_budget``, raise TrainingBudgetError naming what will not be checked.
    The plan's counts go to ``run.plan_status``."""
    from . import forecast as fc
    from .errors import TrainingBudgetError
    from .modelio import model_io
    from .training.executors.local import default_workers
    from .training.progress import recorded, rough
    from .training.spec import recipe_functions

    status = run.plan_status
    if "budget" in status:  # refused once: refused for the whole session
        raise TrainingBudgetError(status["budget"])
    specs = list(dict.fromkeys(specs))
    todo = missing(run, specs)
    groups = status.setdefault("groups", {})
    for s in specs:
        groups.setdefault(s, "cached" if s not in todo else "missing")
    if not todo:
        return
    if executor_choice(run.executor) != "local":
        run.progress(f"cnnclaims: {len(todo)} models to train on Ray: no prediction for a cluster's machines from here")
        return
    workers = min(default_workers(run.workers), len(todo))
    exp = run.experiment
    pred = fc.predict_plan(
        todo,
        lambda s: (run.sweep["recipes"].get(s.role) or recipe_functions(exp, s.role))[0],
        exp.input_shape,
        len(exp.classes),
        len(run.data.y_test),
        recorded(run.cache_dir),
        workers,
        io=model_io(exp),
    )
    what = (
        f"{len(todo)} models of profile {run.profile.name!r} ({len(specs) - len(todo)} of its {len(specs)} are cached)"
    )
    run.progress(pred.line(what))
    status["predicted"] = pred.per_spec
    if run.time_budget is not None and pred.expected > run.time_budget * 60:
        msg = (
            f"not training: {what} are predicted to take {rough(pred.expected)} here, more than the time "
            f"budget of {rough(run.time_budget * 60)} (--time-budget or $CNNCLAIMS_TIME_BUDGET); its claims "
            "are not checked against their pins"
        )
        status["budget"] = msg
        run.progress(f"cnnclaims: {msg}")
        raise TrainingBudgetError(msg)


def plan_summary(run) -> dict:
    """``{"planned", "cached", "trained", "not_trained", "reason"}``: the models ``run``
    asked for, found cached, trained here, and left untrained (with why)."""
    from .training.entries import is_cached

    groups = run.plan_status.get("groups", {})
    todo = [s for s, state in groups.items() if state == "missing"]
    trained = (
        sum(is_cached(s, run.data.fingerprint, run.cache_dir) for s in todo) if todo and "data" in run.__dict__ else 0
    )
    return {
        "planned": len(groups),
        "cached": len(groups) - len(todo),
        "trained": trained,
        "not_trained": len(todo) - trained,
        "reason": run.plan_status.get("budget"),
    }


def retraining(run, spec) -> bool:
    """Whether ``spec`` is to be retrained: --retrain retrains each model once per session."""
    return run.retrain and spec not in run.retrained


def trained(run, spec):
    """The trained model of ``spec`` (``training.get_trained``: from the cache, or trained here)."""
    from .training.entries import get_trained

    model = get_trained(
        spec,
        run.data,
        run.cache_dir,
        retraining(run, spec),
        run.progress,
        run.experiment,
        recipe=run.sweep["recipes"].get(spec.role) if spec.role == SWEEP else None,
    )
    run.retrained.add(spec)
    return model


def records(run) -> dict:
    """Training records of the models ``run`` has loaded so far, by role."""
    loaded = run.loaded
    out: dict = {role: [t.record for t in models] for role, models in loaded.items() if role != SWEEP}
    if SWEEP in loaded:
        out[SWEEP] = {n: [t.record for t in models] for n, models in loaded[SWEEP].items()}
    return out
