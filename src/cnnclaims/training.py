"""Training the benchmark and dummy models, and the trained-model cache.

A cache entry is a folder ``<cache>/models/<role>-n<images>-s<seed>-<key>/`` with
``model.keras`` (native Keras format) and ``record.json`` (configuration,
history, test accuracy, epochs, wall time, versions, data source and fingerprint).
The key hashes everything that changes the trained weights. Entries are written
atomically, trained under a file lock (so two pytest-xdist workers never train the
same model twice), and validated on load: a corrupt entry is reported, discarded
and retrained.
"""
from __future__ import annotations

import multiprocessing
import os
import queue
import shutil
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from . import cache
from .compat import check_threads, keras, load_model, positive_int_env, save_model, set_determinism, versions
from .errors import CacheError
from .inputs import check_images, class_labels, model_input, one_hot_labels
from .model import N_PARAMS, build_model, compile_model

# Bump when the training procedure changes in a way the spec does not capture.
TRAINING_VERSION = 1
ROLES = ("benchmark", "dummy", "null")


@dataclass(frozen=True)
class TrainSpec:
    role: str  # "benchmark", "dummy", or "null" (the null control's second group)
    n_train: int
    seed: int
    max_epochs: int
    patience: int
    batch_size: int = 32
    learning_rate: float = 1e-3
    # Bitwise-identical weights to 1 (measured), ~30% faster on 2 cores.
    steps_per_execution: int = 50

    def __post_init__(self):
        if self.role not in ROLES:
            raise ValueError(f"unknown role {self.role!r}; valid roles: {', '.join(ROLES)}")

    @property
    def label(self) -> str:
        return f"{self.role} seed={self.seed} n={self.n_train}"


@dataclass
class TrainedModel:
    spec: TrainSpec
    loaded: object  # the keras.Model once loaded; None until first use
    record: dict
    path: Path

    @property
    def model(self):
        """The Keras model, loaded on first use: a warm run whose statistics are all
        cached never needs it (the file's SHA-256 was checked when the entry was found)."""
        if self.loaded is None:
            self.loaded = _load_model_file(self.path / "model.keras")
        return self.loaded

    @property
    def key(self) -> str:
        return self.record["key"]

    @property
    def test_accuracy(self) -> float:
        return float(self.record["test_accuracy"])


def specs_for(profile, role: str, seeds=None) -> list[TrainSpec]:
    n = profile.n_benchmark if role == "benchmark" else profile.n_dummy
    if seeds is None:
        seeds = profile.null_seeds() if role == "null" else profile.seeds()
    return [
        TrainSpec(role, n, s, profile.max_epochs, profile.patience, profile.batch_size, profile.learning_rate)
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


def cache_key(spec: TrainSpec, data_fingerprint: str) -> str:
    return cache.stable_hash(
        {"spec": asdict(spec), "data": data_fingerprint, "versions": versions(), "training": TRAINING_VERSION}
    )[:16]


def entry_dir(cache_dir, spec: TrainSpec, key: str) -> Path:
    return Path(cache_dir) / "models" / f"{spec.role}-n{spec.n_train}-s{spec.seed}-{key}"


def get_trained(spec: TrainSpec, data, cache_dir=None, retrain: bool = False, progress=print) -> TrainedModel:
    """The trained model for ``spec``: from the cache when valid, else trained now."""
    cache_dir = Path(cache_dir or cache.default_cache_dir())
    key = cache_key(spec, data.fingerprint)
    folder = entry_dir(cache_dir, spec, key)
    with cache.file_lock(folder.with_suffix(".lock")):
        if folder.exists() and not retrain:
            try:
                return _load_entry(spec, folder, key)
            except CacheError as exc:
                cache.discard(folder / "record.json", str(exc))
        if folder.exists():
            shutil.rmtree(folder)
        return _train_entry(spec, data, folder, key, progress)


def _load_entry(spec: TrainSpec, folder: Path, key: str) -> TrainedModel:
    record = cache.read_json(folder / "record.json")
    if record.get("key") != key or record.get("spec") != asdict(spec):
        raise CacheError(f"cache record {folder / 'record.json'} does not match its key {key}")
    path = folder / "model.keras"
    if "model_sha256" not in record:
        # Written before records carried the hash: validate by loading, then record it.
        model = _load_model_file(path)
        record["model_sha256"] = cache.file_sha256(path)
        cache.write_json(folder / "record.json", record)
        return TrainedModel(spec, model, record, folder)
    if not path.exists():
        raise CacheError(f"cached model {path} is missing")
    if cache.file_sha256(path) != record["model_sha256"]:
        raise CacheError(f"cached model {path} does not match the SHA-256 in its record (damaged or replaced)")
    return TrainedModel(spec, None, record, folder)


def _load_model_file(path: Path):
    try:
        model = load_model(path)
    except Exception as exc:
        raise CacheError(
            f"cached model {path} does not load ({type(exc).__name__}: {exc}); delete its folder "
            "or run with --retrain"
        ) from exc
    if model.count_params() != N_PARAMS:
        raise CacheError(f"cached model {path} has {model.count_params()} parameters, not {N_PARAMS}")
    return model


class ProgressCallback(keras.callbacks.Callback):
    """One line per epoch: which model, epoch, metrics, epoch and elapsed time."""

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
        self.progress(
            f"cnnclaims: [{self.label}] epoch {epoch + 1}/{self.max_epochs} "
            f"loss={logs.get('loss', float('nan')):.4f} acc={logs.get('accuracy', float('nan')):.4f} "
            f"val_loss={logs.get('val_loss', float('nan')):.4f} val_acc={logs.get('val_accuracy', float('nan')):.4f} "
            f"({now - self.te:.1f}s, elapsed {now - self.t0:.0f}s)"
        )


def prepare(x: np.ndarray, y: np.ndarray):
    """Training arrays: float32 pixels in [0, 1] (n, 32, 32, 3) and one-hot float32 labels (n, 10).

    ``x``: uint8 pixels 0-255, divided by 255 as the article does (the documented
    input: CIFAR-10 as loaded), or floats already in [0, 1], passed as they are (they
    used to be divided by 255 a second time). ``y``: integer labels 0..9, (n,) or
    (n, 1). Raises InputError for anything else: floats above 1 or below 0, NaN/inf,
    other dtypes, another shape, or a label count other than n."""
    x = model_input(x, "prepare")
    y = class_labels(y, len(x), "prepare")
    return x, np.eye(10, dtype=np.float32)[y]


def fit(spec: TrainSpec, x_train, y_train, x_val, y_val, checkpoint: Path, progress=print):
    """Train one model as the article does; returns (model, history dict, epochs, seconds).

    ``x_train``, ``x_val``: float pixels in [0, 1], (n, 32, 32, 3); ``y_train``,
    ``y_val``: one-hot (n, 10) floats, i.e. what ``prepare`` returns. Raises
    InputError, before any training, for arrays that are not (e.g. 0-255 pixels)."""
    # Checked only, not converted: fit takes prepared arrays, and a uint8 array here
    # would mean prepare() was skipped.
    for name, x, y, y_name in (("x_train", x_train, y_train, "y_train"), ("x_val", x_val, y_val, "y_val")):
        one_hot_labels(y, len(check_images(x, "fit", name=name, uint8_ok=False)), "fit", y_name)
    check_threads()
    set_determinism(spec.seed)
    model = compile_model(build_model(), spec.learning_rate, spec.steps_per_execution)
    es = keras.callbacks.EarlyStopping(monitor="val_loss", patience=spec.patience, restore_best_weights=True)
    # Weights-only checkpoint of the best epoch: restores the best weights in every
    # Keras version (2.15's EarlyStopping does not when the epoch limit is reached).
    ckpt = keras.callbacks.ModelCheckpoint(str(checkpoint), monitor="val_loss", save_best_only=True, save_weights_only=True)
    t0 = time.perf_counter()
    hist = model.fit(
        x_train, y_train,
        batch_size=spec.batch_size,
        epochs=spec.max_epochs,
        validation_data=(x_val, y_val),
        callbacks=[es, ckpt, ProgressCallback(spec.label, spec.max_epochs, progress)],
        verbose=0,
    )
    model.load_weights(str(checkpoint))
    seconds = time.perf_counter() - t0
    history = {k: [float(v) for v in vals] for k, vals in hist.history.items()}
    return model, history, len(history["loss"]), seconds


def _train_entry(spec: TrainSpec, data, folder: Path, key: str, progress) -> TrainedModel:
    idx = stratified_subset(data.y_train, spec.n_train, spec.seed)
    x_tr, y_tr = prepare(data.x_train[idx], data.y_train[idx])
    x_te, y_te = prepare(data.x_test, data.y_test)
    progress(f"cnnclaims: training {spec.label} (up to {spec.max_epochs} epochs, patience {spec.patience}) ...")
    work = folder.with_name(folder.name + ".partial")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    model, history, epochs, seconds = fit(spec, x_tr, y_tr, x_te, y_te, work / "best.weights.h5", progress)
    probs = model.predict(x_te, batch_size=1000, verbose=0)
    test_acc = float(np.mean(np.argmax(probs, axis=1) == data.y_test))
    best = int(np.argmin(history["val_loss"]))
    record = {
        "key": key,
        "spec": asdict(spec),
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
    }
    save_model(model, work / "model.keras")
    record["model_sha256"] = cache.file_sha256(work / "model.keras")
    cache.write_json(work / "record.json", record)
    # The folder appears complete or not at all.
    work.rename(folder)
    progress(
        f"cnnclaims: trained {spec.label}: test accuracy {test_acc:.4f} after {epochs} epochs "
        f"(best {best + 1}) in {seconds:.0f}s"
    )
    return TrainedModel(spec, model, record, folder)


# --- training several models at once ------------------------------------------------

ENV_WORKERS = "CNNCLAIMS_WORKERS"
WORKER_GIB = 4  # measured peak of one article training process: 3.75 GiB


def default_workers() -> int:
    """Training processes to run at once: one per core (each uses one TF thread), at
    most 8, and no more than the memory holds (one per 4 GiB, 2 GiB kept for the
    pytest process itself)."""
    n = positive_int_env(ENV_WORKERS, "processes")
    if n:
        return n
    try:
        mem_gib = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30
    except (ValueError, OSError):  # pragma: no cover - not on Linux
        mem_gib = 2 + 8 * WORKER_GIB
    return max(1, min(os.cpu_count() or 1, 8, int((mem_gib - 2) // WORKER_GIB)))


def is_cached(spec: TrainSpec, data_fingerprint: str, cache_dir) -> bool:
    return (entry_dir(cache_dir, spec, cache_key(spec, data_fingerprint)) / "record.json").exists()


def train_missing(specs, data, data_path, cache_dir=None, retrain: bool = False, workers: int | None = None,
                  progress=print) -> list:
    """Train the models of ``specs`` that are not cached, several at once in worker
    processes (one TensorFlow thread each, so the weights equal a one-at-a-time run).

    Longest jobs start first. Returns the specs trained here; with one worker or one
    missing model nothing is started and ``get_trained`` trains in this process.
    Workers read the data from the decoded-data cache (``data_path``) and must find
    the same content fingerprint as ``data``.
    """
    cache_dir = Path(cache_dir or cache.default_cache_dir())
    workers = default_workers() if workers is None else workers
    missing = [s for s in dict.fromkeys(specs) if retrain or not is_cached(s, data.fingerprint, cache_dir)]
    if workers < 2 or len(missing) < 2:
        return []
    missing.sort(key=lambda s: (-s.n_train * s.max_epochs, s.role, s.seed))
    n = min(workers, len(missing))
    progress(f"cnnclaims: training {len(missing)} models, {n} at a time (one TensorFlow thread each) ...")
    ctx = multiprocessing.get_context("spawn")  # TensorFlow does not survive fork
    messages = ctx.Queue()
    t0 = time.perf_counter()
    with ProcessPoolExecutor(n, mp_context=ctx, initializer=_worker_init, initargs=(messages,)) as pool:
        per_class = {"train": len(data.y_train) // 10, "test": len(data.y_test) // 10}
        pending = {pool.submit(_worker_train, s, data_path, str(cache_dir), per_class, data.fingerprint, retrain)
                   for s in missing}
        try:
            while pending:
                done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                _relay(messages, progress)
                for f in done:
                    f.result()  # a worker's error stops the run, named by its message
        except BaseException:
            for f in pending:
                f.cancel()
            raise
        finally:
            _relay(messages, progress)
    progress(f"cnnclaims: trained {len(missing)} models in {time.perf_counter() - t0:.0f}s")
    return missing


def _relay(messages, progress) -> None:
    while True:
        try:
            progress(messages.get_nowait())
        except queue.Empty:
            return


_WORKER: dict = {}


def _worker_init(messages) -> None:
    _WORKER["progress"] = messages.put


def _worker_train(spec: TrainSpec, data_path, cache_dir: str, per_class: dict, fingerprint: str, retrain: bool) -> str:
    from .data import load_cifar10

    progress = _WORKER.get("progress", print)
    data = _WORKER.get("data")
    if data is None:
        data = _WORKER["data"] = load_cifar10(data_path, cache_dir, per_class, progress=progress)
    if data.fingerprint != fingerprint:
        raise RuntimeError(
            f"a training worker read data with fingerprint {data.fingerprint} from {data.source}, "
            f"not the session's {fingerprint}; did the data change during the run?"
        )
    return get_trained(spec, data, cache_dir, retrain, progress).key
