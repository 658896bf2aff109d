"""Training time predicted before training, from throughput measured on this machine.

Records made on another machine (a copied or restored cache) say little about this
one: the same plan took several hours on a 2-core AVX2 machine and under one on a
2-core AVX-512 one. So before a plan trains, each of its ``workers`` processes trains
the experiment's model for a few seconds at the profile's batch size and steps per
execution, all at once (as the plan will run), and the measured images per second
give each model's time:

    seconds = epochs x (n_train / training images/s + n_val / evaluation images/s)

per worker, scheduled longest first on the workers (``training.progress.lpt_makespan``).
``epochs`` is the epoch limit for the upper bound, and for the expected time the
median epochs to early stopping of cached models of the same group and size (else of
the same epoch limit and patience; else the limit). Epoch counts travel between
machines, unlike seconds: under portable numerics a model stops at the same epoch
everywhere.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass

import numpy as np

from .training.progress import lpt_makespan

MEASURE_IMAGES = 3200  # per timed epoch: two executions of 50 steps of 32 images
# Fixed cost of one model beyond its epochs (building, compiling, tracing, the final
# prediction, saving): measured 4-6 s here; a rounded allowance.
OVERHEAD_SECONDS = 8.0


@dataclass(frozen=True)
class Throughput:
    """Images per second of one worker while ``workers`` train at once: ``train``
    (fit, forward and backward), ``evaluate`` (the per-epoch validation pass, at the
    same batch size), and ``seconds`` the measurement took (wall)."""

    train: float
    evaluate: float
    workers: int
    seconds: float


def _measure_one(
    build, input_shape: tuple, n_classes: int, batch_size: int, steps_per_execution: int, io=None
) -> tuple:
    """(training images/s, evaluation images/s) of ``build()``'s model here, one
    TensorFlow thread: two epochs of ``MEASURE_IMAGES`` random images, the second
    timed (the first traces), then two evaluations, the second timed. ``io``: the
    experiment's ``modelio.ModelIO`` (a feed for several inputs, the trained output of
    several), trained as ``training.fit`` does."""
    from .compat import keras, set_determinism
    from .model import compile_model
    from .modelio import ModelIO, fed, output_index, trainable

    io = io or ModelIO(tuple(input_shape), n_classes)
    set_determinism(0)
    full = build()
    model = compile_model(trainable(full, io, output_index(full, io, "forecast")), 1e-3, steps_per_execution)
    rng = np.random.default_rng(0)
    x = fed(full, io, rng.random((MEASURE_IMAGES, *input_shape), dtype=np.float32))
    y = np.eye(n_classes, dtype=np.float32)[rng.integers(0, n_classes, MEASURE_IMAGES)]
    times = []

    class Clock(keras.callbacks.Callback):  # type: ignore[name-defined]  # keras: chosen at run time (compat)
        def on_epoch_begin(self, epoch, logs=None):
            self.t = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.t)

    model.fit(x, y, batch_size=batch_size, epochs=2, verbose=0, callbacks=[Clock()])
    model.evaluate(x, y, batch_size=batch_size, verbose=0)
    t0 = time.perf_counter()
    model.evaluate(x, y, batch_size=batch_size, verbose=0)
    return MEASURE_IMAGES / times[-1], MEASURE_IMAGES / (time.perf_counter() - t0)


def measure(
    build, input_shape, n_classes: int, batch_size: int = 32, steps_per_execution: int = 50, workers: int = 1, io=None
) -> Throughput:
    """Throughput of one worker among ``workers`` training at once: ``workers`` spawned
    processes measure together (``_measure_one``), or this process alone for one
    worker or a ``build`` that cannot be sent to a process (a lambda). About 10 s."""
    import multiprocessing
    import pickle

    t0 = time.perf_counter()
    args = (build, tuple(input_shape), int(n_classes), int(batch_size), int(steps_per_execution), io)
    try:
        pickle.dumps(args)
        parallel = workers > 1
    except Exception:  # noqa: BLE001 - any pickling failure: measure here
        parallel = False
    if parallel:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            results = pool.starmap(_measure_one, [args] * workers)
    else:
        results = [_measure_one(*args)]
    train = statistics.fmean(r[0] for r in results)
    evaluate = statistics.fmean(r[1] for r in results)
    return Throughput(train, evaluate, workers if parallel else 1, time.perf_counter() - t0)


def _spec_get(spec, name):
    return spec.get(name) if isinstance(spec, dict) else getattr(spec, name)


def expected_epochs(spec, records) -> tuple[int, str]:
    """(epochs, basis) a model of ``spec`` is expected to train: the median epochs of
    ``records`` of the same group, size, epoch limit and patience; else of the same
    epoch limit and patience; else the epoch limit."""
    limit, patience = _spec_get(spec, "max_epochs"), _spec_get(spec, "patience")
    same = [
        r["epochs"]
        for r in records
        if r["spec"].get("role") == _spec_get(spec, "role")
        and r["spec"].get("n_train") == _spec_get(spec, "n_train")
        and r["spec"].get("max_epochs") == limit
        and r["spec"].get("patience") == patience
        and isinstance(r.get("epochs"), int)
    ]
    if same:
        return min(limit, int(math.ceil(statistics.median(same)))), f"median of {len(same)} cached"
    alike = [
        r["epochs"]
        for r in records
        if r["spec"].get("max_epochs") == limit
        and r["spec"].get("patience") == patience
        and isinstance(r.get("epochs"), int)
    ]
    if alike:
        return min(limit, int(math.ceil(statistics.median(alike)))), f"median of {len(alike)} cached of that limit"
    return limit, "the epoch limit"


def model_seconds(spec, n_val: int, tp: Throughput, epochs: int) -> float:
    """Seconds one model of ``spec`` takes on one worker at throughput ``tp`` for
    ``epochs`` epochs (each: its training images, then ``n_val`` validation images)."""
    return epochs * (_spec_get(spec, "n_train") / tp.train + n_val / tp.evaluate) + OVERHEAD_SECONDS


@dataclass(frozen=True)
class Prediction:
    """A plan's predicted wall time: ``expected`` and ``upper`` (every model to its
    epoch limit) seconds on ``workers`` workers, ``per_spec`` expected seconds per
    spec, the throughput it rests on."""

    expected: float
    upper: float
    workers: int
    per_spec: dict
    throughput: Throughput

    def line(self, what: str) -> str:
        from .training.progress import rough

        tp = self.throughput
        return (
            f"cnnclaims: predicted {rough(self.expected)} to train {what} on {self.workers} "
            f"worker{'s' * (self.workers != 1)} (at most {rough(self.upper)} if every model runs to its epoch "
            f"limit), from {tp.train:,.0f} training and {tp.evaluate:,.0f} evaluation images/s per worker "
            f"measured here in {tp.seconds:.0f}s"
        )


def predict(specs, n_val: int, throughput, records, workers: int) -> Prediction:
    """The wall time of training ``specs`` on ``workers`` workers, with epoch counts
    from ``records`` (``training.progress.recorded``). ``throughput``: one Throughput for
    every spec, or a function from a spec to its recipe's."""
    specs = list(dict.fromkeys(specs))
    tp_of = throughput if callable(throughput) else (lambda spec: throughput)
    per = {s: model_seconds(s, n_val, tp_of(s), expected_epochs(s, records)[0]) for s in specs}
    upper = [model_seconds(s, n_val, tp_of(s), _spec_get(s, "max_epochs")) for s in specs]
    return Prediction(
        lpt_makespan(list(per.values()), workers), lpt_makespan(upper, workers), workers, per, tp_of(specs[0])
    )


def predict_plan(
    specs, build_of, input_shape, n_classes: int, n_val: int, records, workers: int, io=None
) -> Prediction:
    """``predict`` with throughput measured now (``measure``) for each recipe:
    ``build_of(spec)`` gives a spec's builder; each builder is measured once. ``io``:
    the experiment's ``modelio.ModelIO`` (default: one input, one output)."""
    measured: dict = {}

    def tp_of(spec):
        build = build_of(spec)
        if build not in measured:
            measured[build] = measure(
                build, input_shape, n_classes, spec.batch_size, spec.steps_per_execution, workers, io
            )
        return measured[build]

    return predict(specs, n_val, tp_of, records, workers)
