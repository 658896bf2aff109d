"""Training the benchmark and dummy models, and the trained-model cache.

A cache entry is a folder ``<cache>/models/<role>-n<images>-s<seed>-<key>/`` with
``model.keras`` (native Keras format) and ``record.json`` (configuration,
history, test accuracy, epochs, wall time, versions, data source and fingerprint, the
model file's SHA-256 and a checksum of the record's own content).
The key hashes everything that changes the trained weights. Entries are written
atomically, trained under a file lock (so two pytest-xdist workers never train the
same model twice), and validated on load: a corrupt entry is reported, discarded
and retrained.
"""
from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import shutil
import signal
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from . import cache
from .compat import check_numerics, check_threads, keras, load_model, positive_int_env, save_model, set_determinism, versions
from .errors import CacheError
from .inputs import IMAGE_SHAPE, N_CLASSES, check_images, class_labels, model_input, one_hot_labels
from .model import build_model, compile_model
from .modelio import ModelIO, fed, model_io, output_index, probabilities, trainable

# Bump when the training procedure changes in a way the spec does not capture: it is
# part of every model's key. TRAINING_CODE is training_code_digest() as of the last
# review of TRAINING_VERSION; tests/test_training.py fails when the code that trains
# changes without that review (bump TRAINING_VERSION if the change alters the trained
# bits, then record the new digest), as joblib.Memory keys results by function code
# but without retraining everything for a comment or a moved function.
TRAINING_VERSION = 1
TRAINING_CODE = "1af88d521416ce64"


@dataclass(frozen=True)
class TrainSpec:
    role: str  # the group: condition a's or b's name, or "null" (the null control's group)
    n_train: int
    seed: int
    max_epochs: int
    patience: int
    batch_size: int = 32
    learning_rate: float = 1e-3
    # Bitwise-identical weights to 1 (measured), ~30% faster on 2 cores.
    steps_per_execution: int = 50
    # The recipe when it is not the default CNN on a class-stratified subset: a hash
    # of the model's configuration and the subset function's name (see recipe_id).
    recipe: str = ""

    def __post_init__(self):
        if not isinstance(self.role, str) or not self.role or any(ch in self.role for ch in "/ "):
            raise ValueError(f"role {self.role!r}: a condition name (or 'null'), without spaces or '/'")

    @property
    def label(self) -> str:
        return f"{self.role} seed={self.seed} n={self.n_train}"


@dataclass
class TrainedModel:
    spec: TrainSpec
    loaded: object  # the keras.Model once loaded; None until first use
    record: dict
    path: Path
    n_params: int | None = None  # the recipe's parameter count, checked on load

    @property
    def model(self):
        """The Keras model, loaded on first use: a warm run whose statistics are all
        cached never needs it (the file's SHA-256 was checked when the entry was found)."""
        if self.loaded is None:
            self.loaded = _load_model_file(self.path / "model.keras", self.n_params)
        return self.loaded

    @property
    def key(self) -> str:
        return self.record["key"]

    @property
    def test_accuracy(self) -> float:
        return float(self.record["test_accuracy"])


def spec_dict(spec: TrainSpec) -> dict:
    """The spec as keyed and recorded: an empty ``recipe`` is left out, so models of
    the default recipe keep the keys they had before recipes existed."""
    d = asdict(spec)
    if not d["recipe"]:
        del d["recipe"]
    return d


def recipe_functions(experiment, role: str) -> tuple:
    """(build_model, subset) of a group: the condition's own or the experiment's
    builder, and its subset function or ``stratified_subset``."""
    cond = experiment.recipe(role)
    return cond.build_model or experiment.build_model, cond.subset or stratified_subset


def recipe_id(experiment, role: str) -> str:
    """"" for the default recipe (``model.build_model`` on a stratified subset), else a
    hash of the built model's configuration and the subset function's qualified name,
    and, where the experiment feeds several inputs or trains one of several outputs,
    of that contract (``ModelIO.key``), so another architecture, subset, feed or trained
    output never shares a cache entry."""
    build, subset = recipe_functions(experiment, role)
    config = checked_config(build, experiment, role)
    io = model_io(experiment)
    # The images fed as they are to one output, as the article's models are: no
    # contract in the key (their keys predate it).
    plain = io.feed is None and _N_OUTPUTS[_config_key(build, experiment)] == 1
    if build is build_model and subset is stratified_subset and plain:
        return ""
    recipe = {"model": config, "subset": f"{subset.__module__}.{subset.__qualname__}"}
    if not plain:
        recipe["io"] = io.key()
    return cache.stable_hash(recipe)[:12]


_CONFIGS: dict = {}
_N_OUTPUTS: dict = {}


def _config_key(build, experiment) -> tuple:
    io = model_io(experiment)
    return build, io.n_classes, tuple(io.input_shape), io.output, io.feed


def checked_config(build, experiment, role: str) -> dict:
    """The configuration of the model ``build()`` returns, once it is known to be one
    the harness can train and read (memoised per builder and experiment shape).

    Raises ModelError naming the condition and the builder when it returns no Keras
    model, a model whose configuration changes from one build to the next (Keras's
    automatic names such as ``functional_3``: every run would get a new cache key and
    retrain), a model that does not fit the experiment's images and outputs (see
    ``modelio.checked_io``: channels-first layers, several inputs without a feed,
    another input shape, several outputs without ``output_layer``), an output of
    another size than the experiment's classes, or an output that is not a softmax
    (probabilities: non-negative, summing to 1). A build that fails under Keras's
    ``channels_first`` setting names that setting."""
    from .compat import keras
    from .errors import ModelError
    from .modelio import build_error, checked_io

    key = _config_key(build, experiment)
    if key in _CONFIGS:
        return _CONFIGS[key]
    io = model_io(experiment)
    who = f"condition {experiment.recipe(role).name!r}: build_model {getattr(build, '__qualname__', build)!r}"
    try:
        model = build()
    except Exception as exc:  # noqa: BLE001 - re-raised unless Keras's channels_first setting explains it
        err = build_error(who, exc)
        if err is None:
            raise
        raise err from exc
    if not isinstance(model, keras.Model):
        raise ModelError(f"{who} returned {type(model).__name__}, not a Keras model; return an uncompiled "
                         "keras.Model with named layers")
    config = model.get_config()
    if cache.stable_hash(build().get_config()) != cache.stable_hash(config):
        raise ModelError(f"{who} builds a different configuration each time (Keras's automatic model or layer "
                         "names, e.g. 'functional_3', 'dense_7'): name the model and every layer, as "
                         "cnnclaims.model.build_model does, so its trained models can be cached")
    index = checked_io(model, io, who)
    out = probabilities(model(fed(model, io, np.zeros((1, *io.input_shape), np.float32)), training=False), index)
    out = np.asarray(out, dtype=np.float64)
    if out.shape != (1, io.n_classes):
        named = f" (output {io.output!r})" if len(model.outputs) > 1 else ""
        raise ModelError(f"{who} outputs shape {out.shape[1:]}{named}, but the experiment has {io.n_classes} "
                         "classes; give the last layer one unit per class")
    if (out < 0).any() or abs(out.sum() - 1) > 1e-3:
        raise ModelError(f"{who}: the output is not a softmax (values {np.round(out[0, :3], 3).tolist()}..., sum "
                         f"{out.sum():.3g}); end the model with activation='softmax' (the claims read probabilities)")
    _CONFIGS[key] = config
    _N_OUTPUTS[key] = len(model.outputs)
    return config


def checked_subset(subset, y_train, n: int, seed: int, role: str) -> np.ndarray:
    """``subset(y_train, n, seed)`` as sorted int64 indices, checked: exactly ``n``
    distinct integers inside the training split. Raises ValueError naming the group
    and the function otherwise (a silent wrong subset would train on other data than
    the record says)."""
    name = getattr(subset, "__qualname__", repr(subset))
    idx = np.asarray(subset(y_train, n, seed))
    where = f"group {role!r}: subset function {name!r}"
    if idx.ndim != 1 or not (np.issubdtype(idx.dtype, np.integer) or idx.size == 0):
        raise ValueError(f"{where} returned {idx.dtype} of shape {idx.shape}; return a 1-d array of integer "
                         "indices into the training images")
    if len(idx) != n or len(np.unique(idx)) != n:
        raise ValueError(f"{where} returned {len(idx)} indices ({len(np.unique(idx))} distinct) for a training "
                         f"set of {n}; return exactly n distinct indices")
    if idx.size and (idx.min() < 0 or idx.max() >= len(y_train)):
        raise ValueError(f"{where} returned indices outside 0..{len(y_train) - 1}")
    return np.sort(idx.astype(np.int64))


def specs_for(profile, role: str, experiment=None, seeds=None) -> list[TrainSpec]:
    """One TrainSpec per seed of a group (condition name or "null") under ``profile``.

    Raises UnknownNameError for a group the experiment lacks."""
    from .declaration import NULL, load_experiment

    experiment = load_experiment(experiment)
    n = profile.n_train[experiment.recipe(role).name]
    if seeds is None:
        seeds = profile.null_seeds() if role == NULL else profile.seeds()
    recipe = recipe_id(experiment, role)
    return [
        TrainSpec(role, n, s, profile.max_epochs, profile.patience, profile.batch_size, profile.learning_rate,
                  recipe=recipe)
        for s in seeds
    ]


def stratified_subset(y: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Sorted indices of a class-stratified random subset of size ``n``."""
    y = np.asarray(y).reshape(-1)
    if n >= len(y):
        if n > len(y):
            raise ValueError(f"asked for {n} training images but only {len(y)} exist")
        return np.arange(len(y))
    classes = np.unique(y)
    if n % len(classes):
        raise ValueError(f"subset size {n} is not divisible by the {len(classes)} classes")
    rng = np.random.default_rng(seed)
    per = n // len(classes)
    picks = []
    for c in classes:
        idx = np.flatnonzero(y == c)
        if len(idx) < per:
            raise ValueError(f"class {c} has {len(idx)} images, fewer than the {per} needed")
        picks.append(rng.choice(idx, size=per, replace=False))
    return np.sort(np.concatenate(picks))


def nested_subset(y: np.ndarray, n: int, seed: int, anchor: int) -> np.ndarray:
    """Sorted indices of a class-stratified subset of size ``n`` that nests: for one
    ``seed``, every smaller size's subset lies inside every larger one's, and size
    ``anchor`` gives exactly ``stratified_subset(y, anchor, seed)`` (so the sweep's point
    at the smaller condition's size is that condition's cached model).

    How: per class, the order in which ``stratified_subset(y, anchor, seed)`` draws its
    images (the same generator, the same calls), followed by the class's other images
    in an order drawn from a second generator (``[seed, 1]``, which leaves the anchor's
    draws untouched); size ``n`` takes the first ``n / classes`` of every class's order.
    Raises ValueError when ``n`` or ``anchor`` is not divisible by the number of
    classes or exceeds a class's images."""
    y = np.asarray(y).reshape(-1)
    classes = np.unique(y)
    for name, size in (("subset size", n), ("anchor size", anchor)):
        if size % len(classes):
            raise ValueError(f"{name} {size} is not divisible by the {len(classes)} classes")
    per, per_anchor = n // len(classes), min(anchor, len(y)) // len(classes)
    rng, rest_rng = np.random.default_rng(seed), np.random.default_rng([seed, 1])
    picks = []
    for c in classes:
        idx = np.flatnonzero(y == c)
        if len(idx) < per:
            raise ValueError(f"class {c} has {len(idx)} images, fewer than the {per} needed")
        # stratified_subset(anchor) returns everything, drawing nothing, when the anchor
        # is the whole set.
        first = rng.choice(idx, size=per_anchor, replace=False) if anchor < len(y) else idx[:0]
        order = np.concatenate([first, rest_rng.permutation(np.setdiff1d(idx, first))])
        picks.append(order[:per])
    return np.sort(np.concatenate(picks))


class NestedSubset:
    """``nested_subset`` anchored at ``anchor``, as a subset function ``(y, n, seed)``
    that pickles (training workers receive it)."""

    def __init__(self, anchor: int):
        self.anchor = int(anchor)

    def __call__(self, y, n: int, seed: int) -> np.ndarray:
        return nested_subset(y, n, seed, self.anchor)

    def __repr__(self) -> str:
        return f"NestedSubset(anchor={self.anchor})"


def sweep_plan(profile, experiment, n_data: int) -> dict:
    """The sizes sweep of ``profile``: ``{size: [TrainSpec per seed 0..size_seeds-1]}``
    and the recipes of its new models.

    Returns ``{"specs": {size: [...]}, "recipes": {role: (build_model, subset)}}``. The
    sweep trains condition a's recipe (the conditions differ in size alone, which the
    declaration checks) on ``nested_subset`` anchored at the smaller condition's size.
    A size equal to the smaller condition's ``n_train`` is that condition's specs (its
    cached models: the same subsets), and so is the larger condition's size when it is
    the whole training set (``n_data`` images: every subset of it nests); any other size
    is a spec of group ``"sizes"`` whose recipe id names the nesting and its anchor."""
    from .declaration import SWEEP, load_experiment

    experiment = load_experiment(experiment)
    if not profile.sizes:
        return {"specs": {}, "recipes": {}}
    a, b = experiment.a.name, experiment.b.name
    small, large = sorted((a, b), key=lambda r: profile.n_train[r])
    anchor = profile.n_train[small]
    seeds = list(range(profile.size_seeds))
    build, _ = recipe_functions(experiment, a)
    recipe = cache.stable_hash({"model": checked_config(build, experiment, a),
                                "subset": f"{NestedSubset.__module__}.NestedSubset", "anchor": anchor})[:12]
    specs = {}
    for n in profile.sizes:
        if n == anchor:
            specs[n] = specs_for(profile, small, experiment, seeds)
        elif n == profile.n_train[large] and n >= n_data:
            specs[n] = specs_for(profile, large, experiment, seeds)
        else:
            specs[n] = [TrainSpec(SWEEP, n, s, profile.max_epochs, profile.patience, profile.batch_size,
                                  profile.learning_rate, recipe=recipe) for s in seeds]
    return {"specs": specs, "recipes": {SWEEP: (build, NestedSubset(anchor))}}


def cache_key(spec: TrainSpec, data_fingerprint: str) -> str:
    return cache.stable_hash(
        {"spec": spec_dict(spec), "data": data_fingerprint, "versions": versions(), "training": TRAINING_VERSION}
    )[:16]


def entry_dir(cache_dir, spec: TrainSpec, key: str) -> Path:
    return Path(cache_dir) / "models" / f"{spec.role}-n{spec.n_train}-s{spec.seed}-{key}"


def get_trained(spec: TrainSpec, data, cache_dir=None, retrain: bool = False, progress=print,
                experiment=None, recipe: tuple | None = None, io: ModelIO | None = None) -> TrainedModel:
    """The trained model for ``spec``: from the cache when valid, else trained now.

    ``recipe``: (build_model, subset) functions; default the experiment's recipe for
    ``spec.role`` (see ``recipe_functions``; experiment default: the declared default).
    ``io``: how images reach the model and which output is trained (``modelio``);
    default the experiment's."""
    if recipe is None or io is None:
        from .declaration import load_experiment

        exp = load_experiment(experiment)
        recipe = recipe_functions(exp, spec.role) if recipe is None else recipe
        io = model_io(exp) if io is None else io
    build, subset = recipe
    n_params = expected_params(build)
    cache_dir = Path(cache_dir or cache.default_cache_dir())
    key = cache_key(spec, data.fingerprint)
    folder = entry_dir(cache_dir, spec, key)
    with cache.file_lock(folder.with_suffix(".lock")):
        if folder.exists() and not retrain:
            try:
                entry = _load_entry(spec, folder, key)
                entry.n_params = n_params
                return entry
            except CacheError as exc:
                cache.discard(folder / "record.json", str(exc))
        if folder.exists():
            shutil.rmtree(folder)
        return _train_entry(spec, data, folder, key, progress, build, subset, io)


_PARAMS: dict = {}


def expected_params(build) -> int:
    """Parameter count of the model ``build()`` returns (memoised per function)."""
    if build not in _PARAMS:
        _PARAMS[build] = int(build().count_params())
    return _PARAMS[build]


# A model record's fields and their JSON types (a boolean is not a number here). A record
# that is not a JSON object, lacks a field or holds one of another type is damaged, like
# one that is not JSON at all: discarded and retrained, never half-used.
_NUMBER = (int, float)
RECORD_FIELDS = {
    "key": str, "spec": dict, "history": dict, "epochs": int, "best_epoch": int, "test_accuracy": _NUMBER,
    "train_seconds": _NUMBER, "versions": dict, "data_source": str, "data_fingerprint": str,
    "train_indices_sha256": str, "trained_at": str,
}
# Added later: a record without them is migrated on load (see _load_entry), or (the
# weight digests, added with portable numerics) simply lacks them.
LATER_FIELDS = {"model_sha256": str, "checksum": str, "weights_sha256": str, "epoch_weights_sha256": list}
_JSON_TYPES = {dict: "object", list: "array", str: "string", int: "number", float: "number", bool: "boolean",
               type(None): "null"}


def _json_type(value) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def record_checksum(record: dict) -> str:
    """SHA-256 of a record's content (every field but ``checksum``) as written to JSON:
    a digit changed by hand or by bit rot no longer matches."""
    return cache.stable_hash(cache.to_jsonable({k: v for k, v in record.items() if k != "checksum"}))


def check_record(record, path) -> dict:
    """``record`` when it is a JSON object whose fields have their types (and the test
    accuracy and epochs their ranges); else CacheError naming ``path``."""
    if not isinstance(record, dict):
        raise CacheError(f"cache record {path} holds a JSON {_json_type(record)}, not an object")
    for name, kind in {**RECORD_FIELDS, **LATER_FIELDS}.items():
        if name not in record:
            if name in RECORD_FIELDS:
                raise CacheError(f"cache record {path} lacks the field {name!r}")
            continue
        value = record[name]
        if isinstance(value, bool) or not isinstance(value, kind):
            want = "number" if kind is _NUMBER else _JSON_TYPES[kind]
            raise CacheError(f"cache record {path}: field {name!r} is a JSON {_json_type(value)}, not a {want}")
    for name, values in record["history"].items():
        if not isinstance(values, list) or not all(
                v is None or (isinstance(v, _NUMBER) and not isinstance(v, bool)) for v in values):
            raise CacheError(f"cache record {path}: history {name!r} is not a list of numbers")
    if not 0 <= record["test_accuracy"] <= 1:  # NaN fails too
        raise CacheError(f"cache record {path}: test_accuracy {record['test_accuracy']} is not in [0, 1]")
    if not 1 <= record["best_epoch"] <= record["epochs"]:
        raise CacheError(f"cache record {path}: best epoch {record['best_epoch']} of {record['epochs']} epochs")
    return record


def _checked_record(spec: TrainSpec, folder: Path, key: str) -> dict:
    """The entry's record when the entry is intact as far as can be told without Keras:
    a valid record matching its checksum (when it has one) and ``key``, and a model
    file matching the record's SHA-256 (when it has one); else CacheError naming what
    is wrong. Shared by ``_load_entry`` and ``entry_problem``."""
    record_path = folder / "record.json"
    record = check_record(cache.read_json(record_path), record_path)
    if "checksum" in record and record["checksum"] != record_checksum(record):
        raise CacheError(f"cache record {record_path} does not match its checksum (edited or damaged)")
    if record["key"] != key or record["spec"] != spec_dict(spec):
        raise CacheError(f"cache record {record_path} does not match its key {key}")
    path = folder / "model.keras"
    if "model_sha256" in record:
        if not path.exists():
            raise CacheError(f"cached model {path} is missing")
        if cache.file_sha256(path) != record["model_sha256"]:
            raise CacheError(f"cached model {path} does not match the SHA-256 in its record (damaged or replaced)")
    return record


def _load_entry(spec: TrainSpec, folder: Path, key: str) -> TrainedModel:
    record = _checked_record(spec, folder, key)
    record_path, path = folder / "record.json", folder / "model.keras"
    migrate = "checksum" not in record
    model = None
    if "model_sha256" not in record:
        # Written before records carried the hash: validate by loading, then record it.
        model = _load_model_file(path)
        record["model_sha256"] = cache.file_sha256(path)
        migrate = True
    if migrate:
        # Written before records carried a checksum (or the model's hash): such a record
        # cannot prove it is intact, but throwing it away would retrain every model of an
        # existing cache (the article's 24 take 50 minutes). It passed every check above,
        # so it is trusted once and rewritten with its checksum; from then on an edit or
        # bit rot is detected. The record's content is unchanged.
        record["checksum"] = record_checksum(record)
        cache.write_json(record_path, record)
    return TrainedModel(spec, model, record, folder)


def _load_model_file(path: Path, n_params: int | None = None):
    try:
        model = load_model(path)
    except Exception as exc:
        raise CacheError(
            f"cached model {path} does not load ({type(exc).__name__}: {exc}); delete its folder "
            "or run with --retrain"
        ) from exc
    if n_params is not None and model.count_params() != n_params:
        raise CacheError(f"cached model {path} has {model.count_params()} parameters, not the recipe's {n_params}")
    return model


class ProgressCallback(keras.callbacks.Callback):
    """One line per epoch: which model, epoch, metrics, epoch and elapsed time.

    In a training worker ``progress`` also has an ``event`` method (``_WorkerChannel``):
    the epoch then goes to the parent as an event with its metrics, and the parent's
    ``PlanProgress`` says the line with the plan's status and ETA appended."""

    def __init__(self, label: str, max_epochs: int, progress):
        super().__init__()
        self.label, self.max_epochs, self.progress = label, max_epochs, progress

    def on_train_begin(self, logs=None):
        self.t0 = time.perf_counter()

    def on_epoch_begin(self, epoch, logs=None):
        self.te = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        now = time.perf_counter()
        detail = (
            f"loss={logs.get('loss', float('nan')):.4f} acc={logs.get('accuracy', float('nan')):.4f} "
            f"val_loss={logs.get('val_loss', float('nan')):.4f} val_acc={logs.get('val_accuracy', float('nan')):.4f} "
            f"({now - self.te:.1f}s, elapsed {now - self.t0:.0f}s)"
        )
        event = getattr(self.progress, "event", None)
        if event is not None:
            event("epoch", epoch + 1, self.max_epochs, detail)
        else:
            self.progress(f"cnnclaims: [{self.label}] epoch {epoch + 1}/{self.max_epochs} {detail}")


def weights_sha256(model) -> str:
    """SHA-256 (hex) of a model's weights: every array of ``model.get_weights()`` in
    order, as its bytes (the digest ``../shared/reference/numerics_probe.py`` prints the
    first 16 digits of). Equal digests mean bit-identical weights."""
    import hashlib

    h = hashlib.sha256()
    for w in model.get_weights():
        h.update(np.ascontiguousarray(w).tobytes())
    return h.hexdigest()


class WeightDigests(keras.callbacks.Callback):
    """``weights_sha256`` of the model at the end of every epoch (before early stopping
    restores the best one): a record can then prove a retraining bit-identical epoch by
    epoch (``python -m cnnclaims cache reproduce --epochs K``) without training to the end."""

    def __init__(self):
        super().__init__()
        self.digests: list[str] = []

    def on_epoch_end(self, epoch, logs=None):
        self.digests.append(weights_sha256(self.model))


def prepare(x: np.ndarray, y: np.ndarray, shape: tuple = IMAGE_SHAPE, n_classes: int = N_CLASSES):
    """Training arrays: float32 pixels in [0, 1] (n, *shape) and one-hot float32 labels
    (n, n_classes); by default CIFAR-10's (n, 32, 32, 3) and (n, 10).

    ``x``: uint8 pixels 0-255, divided by 255 as the article does (the documented
    input: CIFAR-10 as loaded), or floats already in [0, 1], passed as they are (they
    used to be divided by 255 a second time). ``y``: integer labels 0..n_classes-1,
    (n,) or (n, 1), or one-hot rows. Raises InputError for anything else: floats above
    1 or below 0, NaN/inf, other dtypes, another shape, or a label count other than n."""
    x = model_input(x, "prepare", shape=shape)
    y = class_labels(y, len(x), "prepare", n_classes=n_classes)
    return x, np.eye(n_classes, dtype=np.float32)[y]


def fit(spec: TrainSpec, x_train, y_train, x_val, y_val, checkpoint: Path, progress=print, build=build_model,
        max_epochs: int | None = None, io: ModelIO | None = None):
    """Train one model as the article does; returns (model, history dict, epochs, seconds,
    per-epoch weight digests).

    ``max_epochs``: stop after this many epochs (default the spec's): a prefix of the
    same training, epoch for epoch (``cache reproduce --epochs``).

    ``x_train``, ``x_val``: float pixels in [0, 1], (n, *io.input_shape) (CIFAR-10's
    (n, 32, 32, 3) by default); ``y_train``, ``y_val``: one-hot (n, io.n_classes) floats,
    i.e. what ``prepare`` returns. ``io`` (``modelio.ModelIO``): several inputs are fed
    ``io.feed``'s arrays, and of several outputs the declared one alone is trained; the
    whole model is returned. Raises InputError, before any training, for arrays that
    are not (e.g. 0-255 pixels)."""
    io = io or ModelIO()
    # Checked only, not converted: fit takes prepared arrays, and a uint8 array here
    # would mean prepare() was skipped.
    for name, x, y, y_name in (("x_train", x_train, y_train, "y_train"), ("x_val", x_val, y_val, "y_val")):
        n = len(check_images(x, "fit", name=name, uint8_ok=False, shape=io.input_shape))
        one_hot_labels(y, n, "fit", y_name, n_classes=io.n_classes)
    check_threads()
    check_numerics()
    set_determinism(spec.seed)
    model = build()
    trainee = compile_model(trainable(model, io, output_index(model, io, "fit")), spec.learning_rate,
                            spec.steps_per_execution)
    es = keras.callbacks.EarlyStopping(monitor="val_loss", patience=spec.patience, restore_best_weights=True)
    # Weights-only checkpoint of the best epoch: restores the best weights in every
    # Keras version (2.15's EarlyStopping does not when the epoch limit is reached).
    ckpt = keras.callbacks.ModelCheckpoint(str(checkpoint), monitor="val_loss", save_best_only=True, save_weights_only=True)
    digests = WeightDigests()
    t0 = time.perf_counter()
    hist = trainee.fit(
        fed(model, io, x_train), y_train,
        batch_size=spec.batch_size,
        epochs=spec.max_epochs if max_epochs is None else min(max_epochs, spec.max_epochs),
        validation_data=(fed(model, io, x_val), y_val),
        callbacks=[es, ckpt, digests, ProgressCallback(spec.label, spec.max_epochs, progress)],
        verbose=0,
    )
    trainee.load_weights(str(checkpoint))
    seconds = time.perf_counter() - t0
    history = {k: [float(v) for v in vals] for k, vals in hist.history.items()}
    return model, history, len(history["loss"]), seconds, digests.digests


# The .partial folders this process is building; a training worker's SIGTERM handler
# removes them before it exits.
_IN_FLIGHT: set = set()


@contextlib.contextmanager
def _building(work: Path):
    """An entry is built in ``<entry>.partial`` (under the entry's lock) and renamed into
    place when complete, so it appears whole or not at all. A .partial folder is never
    read: a stale one (a process killed by SIGKILL) is removed here before training, and
    an abandoned build (Ctrl-C, SIGTERM, an error) removes its own."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    _IN_FLIGHT.add(work)
    try:
        yield work
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    finally:
        _IN_FLIGHT.discard(work)


def _train_entry(spec: TrainSpec, data, folder: Path, key: str, progress, build=build_model,
                 subset=stratified_subset, io: ModelIO | None = None) -> TrainedModel:
    io = io or ModelIO()
    idx = checked_subset(subset, data.y_train, spec.n_train, spec.seed, spec.role)
    x_tr, y_tr = prepare(data.x_train[idx], data.y_train[idx], io.input_shape, io.n_classes)
    x_te, y_te = prepare(data.x_test, data.y_test, io.input_shape, io.n_classes)
    progress(f"cnnclaims: training {spec.label} (up to {spec.max_epochs} epochs, patience {spec.patience}) ...")
    work = folder.with_name(folder.name + ".partial")
    with _building(work):
        model, history, epochs, seconds, digests = fit(spec, x_tr, y_tr, x_te, y_te, work / "best.weights.h5",
                                                       progress, build, io=io)
        probs = probabilities(model.predict(fed(model, io, x_te), batch_size=1000, verbose=0),
                              output_index(model, io, "training"))
        test_acc = float(np.mean(np.argmax(probs, axis=1) == data.y_test))
        best = int(np.argmin(history["val_loss"]))
        record = {
            "key": key,
            "spec": spec_dict(spec),
            "history": history,
            "epochs": epochs,
            "best_epoch": best + 1,
            "test_accuracy": test_acc,
            "train_seconds": seconds,
            "versions": versions(),
            "data_source": data.source,
            "data_fingerprint": data.fingerprint,
            "train_indices_sha256": cache.stable_hash(idx.tolist()),
            "trained_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "weights_sha256": weights_sha256(model),
            "epoch_weights_sha256": digests,
        }
        save_model(model, work / "model.keras")
        record["model_sha256"] = cache.file_sha256(work / "model.keras")
        record["checksum"] = record_checksum(record)
        cache.write_json(work / "record.json", record)
        # The folder appears complete or not at all.
        work.rename(folder)
    progress(
        f"cnnclaims: trained {spec.label}: test accuracy {test_acc:.4f} after {epochs} epochs "
        f"(best {best + 1}) in {seconds:.0f}s"
    )
    return TrainedModel(spec, model, record, folder)


# --- training several models at once ------------------------------------------------

from .options import ENV_WORKERS  # noqa: E402  (declared with its option)
WORKER_GIB = 4  # measured peak of one article training process: 3.75 GiB


def _machine() -> tuple[int, float, int]:
    """(cores, GiB of memory, training processes that memory holds: one per WORKER_GIB,
    2 GiB kept for the pytest process itself)."""
    cores = os.cpu_count() or 1
    try:
        mem_gib = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30
    except (ValueError, OSError):  # pragma: no cover - not on Linux
        mem_gib = 2 + 8 * WORKER_GIB
    return cores, mem_gib, max(1, int((mem_gib - 2) // WORKER_GIB))


_SAID: set = set()  # progress lines said once per process


def default_workers(requested: int | None = None, progress=None) -> int:
    """Training processes to run at once: ``requested`` (``--workers``), else
    $CNNCLAIMS_WORKERS, else one per core (each uses one TF thread), at most 8.

    Never more than the cores or the memory hold (one per 4 GiB, 2 GiB kept for the
    pytest process itself): extra processes only share the cores and add memory (100
    asked for gave 9 processes, 14.8 GiB and a slower run on 2 cores, measured). A
    request above that is capped and said once, through ``progress``, with the numbers."""
    name = "--workers"
    if requested is None:
        requested, name = positive_int_env(ENV_WORKERS, "processes"), f"${ENV_WORKERS}"
    cores, mem_gib, by_memory = _machine()
    limit = min(cores, by_memory)
    if requested is None:
        return min(limit, 8)
    if requested > limit and progress is not None:
        line = (f"cnnclaims: {name}={requested} capped at {limit} training processes: {cores} cores, and "
                f"{mem_gib:.1f} GiB of memory holds {by_memory} at {WORKER_GIB} GiB each "
                "(2 GiB kept for this process)")
        if line not in _SAID:
            _SAID.add(line)
            progress(line)
    return max(1, min(requested, limit))


def entry_problem(spec: TrainSpec, data_fingerprint: str, cache_dir) -> str | None:
    """Why the cache entry of ``spec`` cannot be used (absent, or what ``_load_entry``
    would refuse: a record that is not a valid record, fails its checksum or names
    another key, a model file missing or not matching its SHA-256), or None when it is
    intact. Reads the record and hashes the model file; loads nothing into Keras."""
    key = cache_key(spec, data_fingerprint)
    folder = entry_dir(cache_dir, spec, key)
    if not (folder / "record.json").exists():
        return "not cached"
    try:
        _checked_record(spec, folder, key)
    except CacheError as exc:
        return str(exc)
    if not (folder / "model.keras").exists():  # a record from before model hashes: its file at least
        return f"cached model {folder / 'model.keras'} is missing"
    return None


def is_cached(spec: TrainSpec, data_fingerprint: str, cache_dir) -> bool:
    """Whether the cache holds an intact entry for ``spec`` (``entry_problem``): a
    damaged one is missing, so it is predicted, budgeted and counted as a model to
    train, not as cached."""
    return entry_problem(spec, data_fingerprint, cache_dir) is None


def train_missing(specs, data, data_path, cache_dir=None, retrain: bool = False, workers: int | None = None,
                  progress=print, experiment=None, recipes: dict | None = None, executor: str = "local",
                  ray_address: str | None = None, estimates: dict | None = None) -> list:
    """Train the models of ``specs`` that are not cached, several at once in worker
    processes (one TensorFlow thread each, so the weights equal a one-at-a-time run).

    Longest jobs start first. Returns the specs trained here; with one worker or one
    missing model nothing is started and ``get_trained`` trains in this process.
    Workers load the data with the experiment's ``load_data`` (the article's reads the
    decoded-data cache of ``data_path``) and must find the same content fingerprint as
    ``data``; the experiment's functions go to them by reference (pickle), and when
    they cannot (a lambda, a function defined inside another), every model trains in
    this process instead, which is said. Every line a worker said has been passed to
    ``progress`` when this returns.

    ``recipes``: ``{group: (build_model, subset)}`` for groups the experiment does not
    declare (the sizes sweep's, see ``sweep_plan``); others are the experiment's.

    ``estimates``: ``{spec: seconds}`` predicted from throughput measured here
    (``forecast``), which the progress's ETA prefers to the cache's recorded times.

    ``executor``: "local" (the process pool above) or "ray": every missing model, even
    one, becomes a Ray task, on a local Ray of ``workers`` CPUs or the cluster at
    ``ray_address`` (see ``ray_executor.train_with_ray``, which also lists its errors).
    Another name is a ValueError naming it and the choices.

    Ctrl-C, SIGTERM (when called from the main thread) or a worker's error stops every
    worker within seconds: each removes the model it was building and exits, nothing
    queued starts, and the exception propagates. Workers also die with this process,
    however it ends (see ``_worker_init``).
    """
    from .options import EXECUTORS

    if executor not in EXECUTORS:
        raise ValueError(f"executor {executor!r} is not one of {', '.join(EXECUTORS)}")
    cache_dir = Path(cache_dir or cache.default_cache_dir())
    missing = [s for s in dict.fromkeys(specs) if retrain or not is_cached(s, data.fingerprint, cache_dir)]
    workers = default_workers(workers, progress if missing else None)
    # Ray takes even one model with one worker: its tasks may run on other machines.
    if not missing or (executor == "local" and (workers < 2 or len(missing) < 2)):
        return []
    missing.sort(key=lambda s: (-s.n_train * s.max_epochs, s.role, s.seed))
    from .declaration import load_experiment

    experiment = load_experiment(experiment)
    job = {"load_data": experiment.load_data, "io": model_io(experiment),
           "recipes": {s.role: (recipes or {}).get(s.role) or recipe_functions(experiment, s.role) for s in missing}}
    try:
        pickle.dumps(job)
    except Exception as exc:  # noqa: BLE001 - any pickling failure means "not by reference"
        progress(f"cnnclaims: training {len(missing)} models one at a time in this process: the load_data, "
                 f"build_model or subset function of experiment {experiment.name!r} cannot be sent to worker processes "
                 f"({type(exc).__name__}: {exc}); define them at module level to train in parallel")
        return []
    if executor == "ray":
        from .ray_executor import train_with_ray

        return train_with_ray(missing, data, cache_dir, retrain, workers, progress, job["recipes"], ray_address,
                              io=job["io"])
    n = min(workers, len(missing))
    progress(f"cnnclaims: training {len(missing)} models, {n} at a time (one TensorFlow thread each) ...")
    ctx = multiprocessing.get_context("spawn")  # TensorFlow does not survive fork
    # A SimpleQueue's put() writes into the pipe before it returns, so a worker's lines
    # are here before its result. A Queue's feeder thread could still hold them then,
    # and the last "trained ..." line was sometimes lost.
    messages = ctx.SimpleQueue()
    t0 = time.perf_counter()
    from .plan_progress import PlanProgress

    # Says which models run, done out of planned and the ETA from the cache's recorded times.
    plan = PlanProgress(missing, n, cache_dir, progress, priors=estimates)
    k = len(experiment.classes)
    per_class = {"train": len(data.y_train) // k, "test": len(data.y_test) // k}
    with _sigterm_interrupts():
        pool = ProcessPoolExecutor(n, mp_context=ctx, initializer=_worker_init, initargs=(messages, os.getpid()))
        finished = False
        try:
            pending = {pool.submit(_worker_train, s, data_path, str(cache_dir), per_class, data.fingerprint, retrain,
                                   job["load_data"], job["recipes"][s.role], job["io"])
                       for s in missing}
            while pending:
                done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                _relay(messages, progress, plan)
                for f in done:
                    f.result()  # a worker's error stops the run, named by its message
            finished = True
        finally:
            if not finished:
                _stop_workers(pool)
            pool.shutdown(wait=True, cancel_futures=True)
    _relay(messages, progress, plan)
    progress(f"cnnclaims: trained {len(missing)} models in {time.perf_counter() - t0:.0f}s")
    return missing


@contextlib.contextmanager
def _sigterm_interrupts():
    """SIGTERM (what ``timeout`` and CI send) raises KeyboardInterrupt, as Ctrl-C does,
    so that the workers are stopped the same way before this process ends. Only the main
    thread sets signal handlers; elsewhere the workers still die with this process."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"cnnclaims: {signal.Signals(signum).name}: training stopped")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def _stop_workers(pool, grace: float = 5.0) -> None:
    """Stop the pool's workers now: SIGTERM (each removes its .partial folder and exits),
    then SIGKILL for any still alive after ``grace`` seconds. Shutting the pool down
    does not: it lets the running and queued calls finish (a Ctrl-C exited 190 s later,
    after a queued 50,000-image model, measured), and before Python 3.14
    (``terminate_workers``) the processes are only reachable as ``_processes``."""
    procs = list((getattr(pool, "_processes", None) or {}).values())
    try:
        for p in procs:
            p.terminate()
        deadline = time.monotonic() + grace
        for p in procs:
            p.join(max(0.0, deadline - time.monotonic()))
    finally:  # also after a second Ctrl-C
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join(1)


def _relay(messages, progress, plan=None) -> None:
    """Pass what the workers said on: a text line to ``progress``, an event
    (``(kind, spec, *args)`` from ``_WorkerChannel.event``) to ``plan``'s method of that
    name (``started``, ``epoch``, ``finished``; see ``plan_progress.PlanProgress``)."""
    while not messages.empty():
        message = messages.get()
        if isinstance(message, str):
            progress(message)
        elif plan is not None:
            kind, spec, *args = message
            getattr(plan, kind)(spec, *args)
        elif message[0] == "epoch":  # no plan to tell: the plain epoch line
            _, spec, epoch, max_epochs, detail = message
            progress(f"cnnclaims: [{spec.label}] epoch {epoch}/{max_epochs} {detail}")


class _WorkerChannel:
    """A training worker's ``progress``: text lines, and events about the model it
    trains (``spec``), both over the queue to the parent. Events are tuples, so the
    parent tells them from lines; a SimpleQueue writes each before ``put`` returns."""

    def __init__(self, messages):
        self.messages, self.spec = messages, None

    def __call__(self, line: str) -> None:
        self.messages.put(line)

    def event(self, kind: str, *args) -> None:
        if self.spec is not None:
            self.messages.put((kind, self.spec, *args))


_WORKER: dict = {}


def _worker_init(messages, parent: int) -> None:
    """Set up a training worker: its progress goes to ``messages``, and it never
    outlives ``parent`` (orphaned workers trained on for 49 minutes, 1.5 GiB each,
    after CI's timeout killed pytest, measured).

    SIGINT is ignored: Ctrl-C reaches the whole process group, and the parent stops
    every worker (a worker that took it abandoned its model and started the next queued
    one). SIGTERM removes the model being built and exits. The kernel sends that
    SIGTERM when the parent dies, by any signal or crash (Linux's PR_SET_PDEATHSIG); a
    thread that watches the parent's pid does it where that is not available, and
    ends the process 10 s later if the main thread is stuck in native code."""
    _WORKER["progress"] = _WorkerChannel(messages)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _worker_stop)
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)  # 1: PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent,), name="cnnclaims-parent-watch", daemon=True).start()


def _worker_stop(signum, frame) -> None:
    for work in list(_IN_FLIGHT):
        shutil.rmtree(work, ignore_errors=True)
    os._exit(128 + signum)


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1)
    os.kill(os.getpid(), signal.SIGTERM)  # _worker_stop, in the main thread
    time.sleep(10)
    os._exit(1)


def _worker_train(spec: TrainSpec, data_path, cache_dir: str, per_class: dict, fingerprint: str, retrain: bool,
                  load_data=None, recipe=None, io=None) -> str:
    from .data import call_loader, load_cifar10

    progress = _WORKER.get("progress", print)
    data = _WORKER.get("data")
    if data is None:
        data = _WORKER["data"] = call_loader(load_data or load_cifar10, "training worker",
                                             n_classes=io.n_classes if io is not None else 10, path=data_path,
                                             cache_dir=cache_dir, progress=progress, per_class=per_class)
    if data.fingerprint != fingerprint:
        raise RuntimeError(
            f"a training worker read data with fingerprint {data.fingerprint} from {data.source}, "
            f"not the session's {fingerprint}; did the data change during the run?"
        )
    # Started after the data is loaded: a model's time is its training, as recorded.
    if hasattr(progress, "event"):
        progress.spec = spec
        progress.event("started")
    t0 = time.perf_counter()
    key = get_trained(spec, data, cache_dir, retrain, progress, recipe=recipe, io=io).key
    if hasattr(progress, "event"):
        progress.event("finished", time.perf_counter() - t0)
        progress.spec = None
    return key


# --- the code that decides trained weights ---------------------------------------------

def code_digest(sources) -> str:
    """SHA-256 (first 16 hex digits) of Python sources as code: their ASTs without
    docstrings, so comments, docstrings, formatting and line numbers do not count, and
    any change to a statement, name or constant does."""
    import ast

    dumps = []
    for source in sources:
        tree = ast.parse(_dedent(source))
        for node in ast.walk(tree):
            body = getattr(node, "body", None)
            if (isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module)) and body
                    and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                    and isinstance(body[0].value.value, str)):
                node.body = body[1:] or [ast.Pass()]
        dumps.append(ast.unparse(tree))  # canonical source: steadier across Python versions than ast.dump
    return cache.stable_hash(dumps)[:16]


def _dedent(source: str) -> str:
    import textwrap

    return textwrap.dedent(source)


def training_functions() -> list:
    """What decides a trained model's weights beyond its spec, data and versions: the
    fit, its inputs, the subsets, the architecture and compilation, the seeding."""
    from . import compat, inputs, model, modelio

    return [TrainSpec, spec_dict, fit, WeightDigests, prepare, _train_entry, checked_subset, stratified_subset,
            nested_subset, NestedSubset, model.build_model, model.compile_model, compat.set_determinism,
            compat.steps_per_execution, inputs.model_input, inputs.class_labels, inputs._from_one_hot, modelio.fed,
            modelio.trainable, modelio.output_index]


def training_code_digest() -> str:
    """``code_digest`` of ``training_functions()``' sources."""
    import inspect

    return code_digest(inspect.getsource(f) for f in training_functions())
