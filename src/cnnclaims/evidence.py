"""Per-model evidence: every per-image statistic the claims use, cached per model.

The table holds one column per metric the experiment declares (its claims' metrics,
their extras and the built-in ``argmax``/``correct``/``p_true``), computed in one
streamed pass of the probe-class images through the sliced model (reduced per
batch, so no layer's full tensor for all images is held) and stored beside the model
in its cache entry, keyed by the images, the metrics' names, layers and code and the
experiment's ``version``, so a warm run recomputes nothing heavy.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .activations import stream_activations
from .cache import CacheError, discard, read_npz, stable_hash, write_npz
from .declaration import BUILTIN_METRICS, NULL, NULL_CONTROL, OUTPUT
from .inputs import check_images, class_labels, model_input


def table_metrics(experiment) -> dict:
    """``{name: Metric}``: the experiment's metrics, then the built-in ones."""
    return {**experiment.metrics, **{k: v for k, v in BUILTIN_METRICS.items() if k not in experiment.metrics}}


def output_layer(experiment, model) -> str:
    """The layer whose output is the class probabilities: the experiment's
    ``output_layer``, else the model's last layer (the one default)."""
    return experiment.output_layer or model.layers[-1].name


def image_stats(model, images, labels, experiment, batch_size: int = 500) -> dict:
    """``{stat: (n,) float64}`` for each image, one column per ``table_metrics``.

    ``images``: a batch (n, H, W, C) of uint8 pixels 0-255 or floats in [0, 1] in the
    experiment's input shape; ``labels``: integer class indices, (n,) or (n, 1); a
    model with several inputs is fed by the experiment's ``feed``.
    Raises InputError for anything else (one image: ``x[None]``), before the model
    runs, and ValueError naming the metric when one returns other than n numbers."""
    x_all = model_input(images, "image_stats", shape=experiment.input_shape)
    labels = class_labels(labels, len(x_all), "image_stats", n_classes=len(experiment.classes)).astype(np.int64)
    metrics = table_metrics(experiment)
    out_name = output_layer(experiment, model)
    layers = list(
        dict.fromkeys(out_name if layer == OUTPUT else layer for mt in metrics.values() for layer in mt.layers)
    )
    parts: dict[str, list] = {k: [] for k in metrics}
    start = 0
    for batch in stream_activations(model, x_all, layers, batch_size, feed=experiment.feed):
        n = len(batch[layers[0]])
        y = labels[start : start + n]
        start += n
        acts = dict(batch)
        acts[OUTPUT] = batch[out_name]
        for name, mt in metrics.items():
            got = mt.fn(_MetricActs({k: acts[k] for k in mt.layers}, mt), y)
            try:
                v = np.asarray(got, dtype=np.float64)
            except (TypeError, ValueError) as exc:
                raise ValueError(
                    f"metric {name!r} returned {type(got).__name__} that is not numbers ({exc}); it "
                    f"must return one float per image, shape ({n},)"
                ) from None
            if v.shape != (n,):
                raise ValueError(
                    f"metric {name!r} returned shape {v.shape} for a batch of {n} images; "
                    f"it must return one number per image, shape ({n},)"
                )
            parts[name].append(v)
    return {k: np.concatenate(v) for k, v in parts.items()}


class _MetricActs(dict):
    """The activations one metric declared (``Metric.layers``), and only those: a
    metric that reads a layer it does not declare got another metric's array by
    accident, or a raw KeyError after every model had trained; the start check only
    sees declared layers, and the statistics cache is keyed by them."""

    def __init__(self, acts: dict, metric):
        super().__init__(acts)
        self.metric = metric

    def __missing__(self, layer):
        from .errors import UnknownNameError

        declared = ", ".join(repr("output" if x == OUTPUT else x) for x in self.metric.layers)
        raise UnknownNameError(
            f"metric {self.metric.name!r} reads layer {layer!r}, which it does not declare: its layers are "
            f"{declared}; add {layer!r} to Metric({self.metric.name!r}, layers=...) (a metric gets the layers it "
            "declares, and no others)"
        )


def _code_digest(fn) -> str:
    """The source of a metric's function (its bytecode where the source is not at
    hand), and that of every function it closes over or wraps (``functools.partial``):
    ``softmax_metric(name, fn)`` is a one-line lambda around the user's ``fn``, whose
    edits the lambda's own source never showed (a fresh user's edited metric kept its
    old cached verdicts). A metric edited in place gets a new statistics key instead of
    its old cached values. Module-level helpers it calls by name are not followed:
    their changes need the experiment's ``version``."""
    import inspect

    def own(f) -> str:
        try:
            return inspect.getsource(f)
        except (OSError, TypeError):
            code = getattr(f, "__code__", None)
            return repr((code.co_code, code.co_consts, code.co_names)) if code else getattr(f, "__qualname__", repr(f))

    parts, seen, todo = [], set(), [fn]
    while todo:
        f = todo.pop(0)
        if id(f) in seen:
            continue
        seen.add(id(f))
        inner = getattr(f, "func", None)  # functools.partial
        parts.append(own(inner) if inner is not None and callable(inner) else own(f))
        if inner is not None and callable(inner):
            todo.append(inner)
        for cell in getattr(f, "__closure__", None) or ():
            try:
                value = cell.cell_contents
            except ValueError:  # an empty cell
                continue
            if callable(value) and (hasattr(value, "__code__") or hasattr(value, "func")):
                todo.append(value)
    return "\n".join(parts)


def images_digest(images: np.ndarray) -> str:
    a = np.ascontiguousarray(images)
    return hashlib.sha256(a.tobytes() + str(a.shape).encode()).hexdigest()[:16]


def metrics_key(experiment) -> str:
    """Names the statistics' table version: the experiment, its ``version``, and its
    metrics' names, layers and functions' code (``_code_digest``): a metric whose
    function was edited without a bumped ``version`` was served its old cached values.
    A change inside a helper the function calls still needs a bumped ``version``."""
    metrics = table_metrics(experiment)
    described = [[name, list(mt.layers), _code_digest(mt.fn)] for name, mt in sorted(metrics.items())]
    return f"{experiment.name}-v{experiment.version}-{stable_hash(described)[:8]}"


def cached_image_stats(trained, images, labels, experiment) -> dict:
    """``image_stats`` for a trained model, from its cache entry when valid.

    Arguments and errors as ``image_stats``; checked before the cache is read, since
    the entry is keyed by the images as given (one image would be keyed as 32)."""
    images = check_images(images, "cached_image_stats", shape=experiment.input_shape)
    class_labels(labels, len(images), "cached_image_stats", n_classes=len(experiment.classes))
    path = Path(trained.path) / f"stats-{images_digest(images)}-{metrics_key(experiment)}.npz"
    metrics = table_metrics(experiment)
    expected: dict[str, tuple[type, tuple]] = {k: (np.float64, (len(images),)) for k in metrics}
    # The table names the model it was computed from: a statistics file copied into
    # another model's folder (same file name in every folder) is refused, not used.
    expected[_MODEL_KEY] = (np.str_, ())
    if path.exists():
        try:
            table = read_npz(path, expected)
            if str(table.pop(_MODEL_KEY)) != trained.key:
                raise CacheError(f"cache file {path} holds the statistics of another model, not {trained.key}")
            return {k: table[k] for k in metrics}
        except CacheError as exc:
            discard(path, str(exc))
    table = image_stats(trained.model, images, labels, experiment)
    write_npz(path, **table, **{_MODEL_KEY: np.array(trained.key)})
    return table


_MODEL_KEY = "__model_key__"


@dataclass
class ModelEvidence:
    """What the claims need of one trained model."""

    role: str
    seed: int
    key: str
    test_accuracy: float
    stats: dict  # stat -> (n_frogs,) array, in frog order
    record: dict = field(default_factory=dict)


@dataclass
class Evidence:
    """Groups of models compared by the claims, plus where the probe is.

    ``groups`` maps a group name to its models, ordered by seed: ``a`` and ``b`` name
    the two compared (the experiment's conditions, or for the null control the null
    group and b); the first model of each group is the pair the probe and images
    scopes use.
    """

    groups: dict
    probe_position: int  # index of the probe image within the probe-class images
    n_images: int
    label: str = "article"  # the experiment's name, or declaration.NULL_CONTROL
    data_source: str = ""
    a: str = "a"
    b: str = "b"
    experiment: object = None  # the declaration (names, labels); None in bare unit tests
    # The sizes sweep: {training-set size: [ModelEvidence per seed]}, ascending sizes;
    # size_sign is +1 when condition a has the larger training set (its claims then
    # read "grows with size" for "a greater than b"), -1 otherwise.
    sizes: dict = field(default_factory=dict)
    size_sign: int = 1
    # {condition name: training images} of the run's profile: the sizes scope's margin
    # per decade is the claim's SESOI over log10(n_a / n_b) (verdicts.sizes_margin).
    n_train: dict = field(default_factory=dict)
    # The null control (b's recipe with other seeds against b): its verdicts take the
    # directional claims only, and any direction found is a false positive.
    null: bool = False

    def first(self, role: str) -> ModelEvidence:
        return self.groups[role][0]


def build_model_evidence(trained, images, labels, experiment) -> ModelEvidence:
    return ModelEvidence(
        role=trained.spec.role,
        seed=trained.spec.seed,
        key=trained.key,
        test_accuracy=trained.test_accuracy,
        stats=cached_image_stats(trained, images, labels, experiment),
        record=trained.record,
    )


def _run_group(run, models) -> list:
    """``ModelEvidence`` of ``models`` (trained models of ``run``) over its probe-class images."""
    x, y = run.probe_images, run.data.y_test[run.probe_indices]
    return [build_model_evidence(t, x, y, run.experiment) for t in models]


def run_evidence(run) -> Evidence:
    """The evidence of ``run`` (a ``cnnclaims.run.Run``): its conditions a and b, and
    the sizes sweep's models (training each group first when it is not cached)."""
    n_a, n_b = run.profile.n_train[run.a], run.profile.n_train[run.b]
    return Evidence(
        {run.a: _run_group(run, run.models(run.a)), run.b: _run_group(run, run.models(run.b))},
        run.probe_position,
        len(run.probe_indices),
        run.experiment.name,
        run.data.source,
        run.a,
        run.b,
        run.experiment,
        sizes={n: _run_group(run, models) for n, models in run.sweep_models().items()},
        size_sign=1 if n_a > n_b else -1,
        n_train={run.a: n_a, run.b: n_b},
    )


def null_control_evidence(run) -> Evidence:
    """``run``'s null control: b's recipe with other seeds against b, so any "effect"
    found here is a false positive."""
    return Evidence(
        {NULL: _run_group(run, run.models(NULL)), run.b: run.evidence.groups[run.b]},
        run.probe_position,
        len(run.probe_indices),
        NULL_CONTROL,
        run.data.source,
        NULL,
        run.b,
        run.experiment,
        null=True,
    )
