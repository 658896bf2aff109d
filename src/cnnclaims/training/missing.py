"""Training the models of a plan that the cache lacks: ``train_missing`` finds them,
checks that their recipes can be sent to other processes, and hands them to the
executor chosen (``executors.REGISTRY``) as one ``executors.TrainJob``."""

from __future__ import annotations

import pickle
from pathlib import Path

from .. import cache
from ..declaration import load_experiment
from ..modelio import model_io
from . import executors
from .entries import is_cached, remove_all_abandoned
from .executors.local import default_workers
from .spec import recipe_functions


def train_missing(
    specs,
    data,
    data_path,
    cache_dir=None,
    retrain: bool = False,
    workers: int | None = None,
    progress=print,
    experiment=None,
    recipes: dict | None = None,
    executor: str = "local",
    ray_address: str | None = None,
    estimates: dict | None = None,
) -> list:
    """Train the models of ``specs`` that are not cached, several at once, with the
    executor named ``executor`` (``executors.REGISTRY``; another name is a ValueError
    naming it and the choices).

    "local" (the default): worker processes here, one TensorFlow thread each, so the
    weights equal a one-at-a-time run; with one worker or one missing model nothing is
    started and ``get_trained`` trains in this process. "ray": every missing model, even
    one, becomes a Ray task, on a local Ray of ``workers`` CPUs or the cluster at
    ``ray_address`` (see ``executors.ray.train_with_ray``, which also lists its errors).

    Longest jobs start first. Returns the specs trained here. Workers load the data
    with the experiment's ``load_data`` (the article's reads the decoded-data cache of
    ``data_path``) and must find the same content fingerprint as ``data``; the
    experiment's functions go to them by reference (pickle), and when they cannot (a
    lambda, a function defined inside another), every model trains in this process
    instead, which is said. Every line a worker said has been passed to ``progress``
    when this returns.

    ``recipes``: ``{group: (build_model, subset)}`` for groups the experiment does not
    declare (the sizes sweep's, see ``sweep_plan``); others are the experiment's.

    ``estimates``: ``{spec: seconds}`` predicted from throughput measured here
    (``forecast``), which the progress's ETA prefers to the cache's recorded times.

    Ctrl-C, SIGTERM (when called from the main thread) or a worker's error stops every
    worker within seconds: each removes the model it was building, nothing queued
    starts, and the exception propagates (``executors.Executor.train``). Local workers
    also die with this process, however it ends.
    """
    backend = executors.load(executor)
    cache_dir = Path(cache_dir or cache.default_cache_dir())
    # Builds left by processes that died without removing them (every process of a run
    # SIGKILLed at once, a machine that went down): never read, but they take room.
    removed = remove_all_abandoned(cache_dir)
    if removed:
        progress(
            f"cnnclaims: removed {len(removed)} .partial folder(s) left by a stopped run in {cache_dir / 'models'}"
        )
    missing = [s for s in dict.fromkeys(specs) if retrain or not is_cached(s, data.fingerprint, cache_dir)]
    workers = default_workers(workers, progress if missing else None)
    if not missing or not backend.takes(len(missing), workers):
        return []
    missing.sort(key=lambda s: (-s.n_train * s.max_epochs, s.role, s.seed))
    experiment = load_experiment(experiment)
    sent = {
        "load_data": experiment.load_data,
        "io": model_io(experiment),
        "recipes": {s.role: (recipes or {}).get(s.role) or recipe_functions(experiment, s.role) for s in missing},
    }
    try:
        pickle.dumps(sent)
    except Exception as exc:  # noqa: BLE001 - any pickling failure means "not by reference"
        progress(
            f"cnnclaims: training {len(missing)} models one at a time in this process: the load_data, "
            f"build_model or subset function of experiment {experiment.name!r} cannot be sent to worker processes "
            f"({type(exc).__name__}: {exc}); define them at module level to train in parallel"
        )
        return []
    k = len(experiment.classes)
    per_class = {"train": len(data.y_train) // k, "test": len(data.y_test) // k}
    return backend.train(
        executors.TrainJob(
            missing=missing,
            data=data,
            data_path=data_path,
            cache_dir=cache_dir,
            retrain=retrain,
            workers=workers,
            progress=progress,
            recipes=sent["recipes"],
            io=sent["io"],
            load_data=sent["load_data"],
            per_class=per_class,
            estimates=estimates,
            address=ray_address,
        )
    )
