"""A trained model's cache entry: trained and stored, found and checked, loaded.

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
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import cache
from ..compat import load_model, save_model, versions
from ..errors import CacheError
from ..model import build_model
from ..modelio import ModelIO, fed, model_io, output_index, probabilities
from ..monitoring import split
from .fitting import fit, prepare, weights_sha256
from .spec import TrainSpec, cache_key, checked_subset, recipe_functions, spec_dict, stratified_subset


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


def entry_dir(cache_dir, spec: TrainSpec, key: str) -> Path:
    return Path(cache_dir) / "models" / f"{spec.role}-n{spec.n_train}-s{spec.seed}-{key}"


def entry_lock(folder: Path, wait: bool = True):
    """The lock of the entry at ``folder`` (``<entry>.lock``, see ``cache.file_lock``),
    held by whoever trains or stores that model: get_trained, a local training worker
    (through get_trained), the Ray executor (from before its task is submitted).
    A context manager yielding whether this process holds it (``wait=False``: False at
    once when another process does)."""
    return cache.file_lock(folder.with_suffix(".lock"), wait=wait)


def get_trained(
    spec: TrainSpec,
    data,
    cache_dir=None,
    retrain: bool = False,
    progress=print,
    experiment=None,
    recipe: tuple | None = None,
    io: ModelIO | None = None,
) -> TrainedModel:
    """The trained model for ``spec``: from the cache when valid, else trained now.

    ``recipe``: (build_model, subset) functions; default the experiment's recipe for
    ``spec.role`` (see ``recipe_functions``; experiment default: the declared default).
    ``io``: how images reach the model and which output is trained (``modelio``);
    default the experiment's."""
    if recipe is None or io is None:
        from ..declaration import load_experiment

        exp = load_experiment(experiment)
        recipe = recipe_functions(exp, spec.role) if recipe is None else recipe
        io = model_io(exp) if io is None else io
    build, subset = recipe
    n_params = expected_params(build)
    cache_dir = Path(cache_dir or cache.default_cache_dir())
    key = cache_key(spec, data.fingerprint)
    folder = entry_dir(cache_dir, spec, key)
    with entry_lock(folder):
        if folder.exists() and not retrain:
            try:
                entry = load_entry(spec, folder, key)
                entry.n_params = n_params
                return entry
            except CacheError as exc:
                cache.discard(folder / "record.json", str(exc))
        if folder.exists():
            shutil.rmtree(folder)
        return train_entry(spec, data, folder, key, progress, build, subset, io)


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
RECORD_FIELDS: dict[str, type | tuple[type, ...]] = {
    "key": str,
    "spec": dict,
    "history": dict,
    "epochs": int,
    "best_epoch": int,
    "test_accuracy": _NUMBER,
    "train_seconds": _NUMBER,
    "versions": dict,
    "data_source": str,
    "data_fingerprint": str,
    "train_indices_sha256": str,
    "trained_at": str,
}
# Added later: a record without them is migrated on load (see load_entry), or (the
# weight digests, added with portable numerics) simply lacks them.
LATER_FIELDS: dict[str, type | tuple[type, ...]] = {
    "model_sha256": str,
    "checksum": str,
    "weights_sha256": str,
    "epoch_weights_sha256": list,
}
_JSON_TYPES = {
    dict: "object",
    list: "array",
    str: "string",
    int: "number",
    float: "number",
    bool: "boolean",
    type(None): "null",
}


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
            want = "number" if isinstance(kind, tuple) else _JSON_TYPES[kind]
            raise CacheError(f"cache record {path}: field {name!r} is a JSON {_json_type(value)}, not a {want}")
    for name, values in record["history"].items():
        if not isinstance(values, list) or not all(
            v is None or (isinstance(v, _NUMBER) and not isinstance(v, bool)) for v in values
        ):
            raise CacheError(f"cache record {path}: history {name!r} is not a list of numbers")
    if not 0 <= record["test_accuracy"] <= 1:  # NaN fails too
        raise CacheError(f"cache record {path}: test_accuracy {record['test_accuracy']} is not in [0, 1]")
    if not 1 <= record["best_epoch"] <= record["epochs"]:
        raise CacheError(f"cache record {path}: best epoch {record['best_epoch']} of {record['epochs']} epochs")
    return record


def checked_record(spec: TrainSpec, folder: Path, key: str) -> dict:
    """The entry's record when the entry is intact as far as can be told without Keras:
    a valid record matching its checksum (when it has one) and ``key``, and a model
    file matching the record's SHA-256 (when it has one); else CacheError naming what
    is wrong. Shared by ``load_entry`` and ``entry_problem``."""
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


def load_entry(spec: TrainSpec, folder: Path, key: str) -> TrainedModel:
    """The entry at ``folder`` as a TrainedModel whose Keras model loads on first use;
    CacheError naming what is wrong when it fails ``checked_record``. A record from
    before checksums or model hashes is checked (by loading the model, where it has no
    hash) and rewritten with them, once."""
    record = checked_record(spec, folder, key)
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
            f"cached model {path} does not load ({type(exc).__name__}: {exc}); delete its folder or run with --retrain"
        ) from exc
    if n_params is not None and model.count_params() != n_params:
        raise CacheError(f"cached model {path} has {model.count_params()} parameters, not the recipe's {n_params}")
    return model


# The .partial folders this process is building; a training worker's SIGTERM handler
# removes them (abandon_builds) before it exits.
_IN_FLIGHT: set = set()


@contextlib.contextmanager
def building(work: Path):
    """An entry is built in ``<entry>.partial`` (under the entry's lock) and renamed into
    place when complete, so it appears whole or not at all. A .partial folder is never
    read: a stale one (a process killed by SIGKILL) is removed here before training, and
    an abandoned build (Ctrl-C, SIGTERM, an error) removes its own.

    Where SIGTERM would kill this process outright (its default action: a model trained
    here, not in a worker, e.g. with one worker or one missing model), it raises
    KeyboardInterrupt while the folder is built, as Ctrl-C does, so that the folder is
    removed before the process ends (``timeout`` and CI send SIGTERM; it used to leave
    ``<entry>.partial/best.weights.h5`` behind). A handler already set (a training
    worker's, an executor's, Ray's) is left as it is."""
    shutil.rmtree(work, ignore_errors=True)
    with _sigterm_interrupts_where_fatal():
        try:
            _IN_FLIGHT.add(work)
            work.mkdir(parents=True)
            yield work
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        finally:
            _IN_FLIGHT.discard(work)


def _sigterm_interrupts_where_fatal():
    """``executors.sigterm_interrupts`` in the main thread while SIGTERM has its default
    action (it would end the process without any cleanup); else nothing."""
    import signal
    import threading

    from .executors import sigterm_interrupts

    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        return sigterm_interrupts()
    return contextlib.nullcontext()


def partial_dir(folder: Path) -> Path:
    """Where the entry ``folder`` is built (``building``): ``<entry>.partial``."""
    return folder.with_name(folder.name + ".partial")


def remove_abandoned(folder: Path) -> bool:
    """Remove ``<folder>.partial`` (``partial_dir``) when no living process builds it,
    which its entry's lock tells: whoever builds an entry holds that lock
    (``entry_lock``), and the kernel releases a process's lock when it dies, however it
    dies. Returns whether a folder was removed. A build another process is doing (its
    lock held) is left alone, as is a cache this process cannot write."""
    work = partial_dir(folder)
    if not work.is_dir():
        return False
    try:
        with entry_lock(folder, wait=False) as held:
            if held:
                shutil.rmtree(work, ignore_errors=True)
                return not work.exists()
    except OSError:  # no lock file can be made here (a read-only cache): nothing is built here either
        pass
    return False


def remove_all_abandoned(cache_dir) -> list[Path]:
    """``remove_abandoned`` for every ``.partial`` folder in ``cache_dir``'s models:
    the builds of processes that died without removing theirs (a worker SIGKILLed when it
    did not stop within its grace, every process of a run killed at once). Returns the
    folders removed."""
    try:
        works = sorted(p for p in (Path(cache_dir) / "models").iterdir() if p.name.endswith(".partial"))
    except OSError:  # no models folder (yet), or not readable
        return []
    return [w for w in works if remove_abandoned(w.with_name(w.name.removesuffix(".partial")))]


def abandon_builds() -> None:
    """Remove the .partial folders this process is building (``building``): what a
    process stopped by a signal does before it exits, as its builds cannot finish."""
    for work in list(_IN_FLIGHT):
        shutil.rmtree(work, ignore_errors=True)


def train_entry(
    spec: TrainSpec,
    data,
    folder: Path,
    key: str,
    progress,
    build=build_model,
    subset=stratified_subset,
    io: ModelIO | None = None,
) -> TrainedModel:
    """Train ``spec``'s model on ``data`` (``build`` on ``subset``'s images, fed as
    ``io`` says) and store it as the entry ``folder`` under ``key``, built in
    ``<folder>.partial`` (``building``); returns it. The caller holds the entry's lock
    (``entry_lock``) and has removed any old entry.

    ``spec.early_stopping`` splits the data (``monitoring.split``): the subset is drawn
    from the training pool (``subset(y_pool, n, seed)`` gives positions in the pool),
    early stopping monitors the protocol's images, and the record's ``test_accuracy``
    is on the evaluated test images (every test image under the article's protocol);
    another protocol than the article's is recorded under ``early_stopping`` with the
    split's sizes and index digests. Raises the subset's ValueError (``checked_subset``),
    the split's ValueError (a holdout the data cannot give), the fit's InputError and
    the cache's CacheWriteError."""
    io = io or ModelIO()
    # Which images monitor early stopping, which are evaluated, which may be trained on
    # (monitoring.split; the article's protocol: every training image, the whole test
    # set monitoring and evaluated). The subset is drawn from the pool, by position.
    parts = split(spec.early_stopping, data.y_train, data.y_test)
    pool = parts.train_pool
    idx = pool[checked_subset(subset, data.y_train[pool], spec.n_train, spec.seed, spec.role)]
    x_tr, y_tr = prepare(data.x_train[idx], data.y_train[idx], io.input_shape, io.n_classes)
    x_te, y_te = prepare(data.x_test, data.y_test, io.input_shape, io.n_classes)
    if spec.early_stopping.leaks:  # the article's protocol: the whole test set monitors, no copy
        x_mon, y_mon = x_te, y_te
    else:
        watched = (data.x_test, data.y_test) if parts.monitor_split == "test" else (data.x_train, data.y_train)
        x_mon, y_mon = prepare(watched[0][parts.monitor], watched[1][parts.monitor], io.input_shape, io.n_classes)
    progress(f"cnnclaims: training {spec.label} (up to {spec.max_epochs} epochs, patience {spec.patience}) ...")
    work = folder.with_name(folder.name + ".partial")  # partial_dir (spelt out: TRAINING_CODE hashes this function)
    with building(work):
        model, history, epochs, seconds, digests = fit(
            spec, x_tr, y_tr, x_mon, y_mon, work / "best.weights.h5", progress, build, io=io
        )
        probs = probabilities(
            model.predict(fed(model, io, x_te), batch_size=1000, verbose=0), output_index(model, io, "training")
        )
        # Accuracy on the evaluated test images alone: the claims' images.
        correct = np.argmax(probs, axis=1) == data.y_test
        test_acc = float(np.mean(correct[parts.evaluated]))
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
        if not spec.early_stopping.is_default:
            # Which images chose the epoch and which the test accuracy is on (left out
            # under the article's protocol, whose records keep the fields they had).
            record["early_stopping"] = {**spec.early_stopping.as_dict(), **parts.record()}
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


def entry_problem(spec: TrainSpec, data_fingerprint: str, cache_dir) -> str | None:
    """Why the cache entry of ``spec`` cannot be used (absent, or what ``load_entry``
    would refuse: a record that is not a valid record, fails its checksum or names
    another key, a model file missing or not matching its SHA-256), or None when it is
    intact. Reads the record and hashes the model file; loads nothing into Keras."""
    key = cache_key(spec, data_fingerprint)
    folder = entry_dir(cache_dir, spec, key)
    if not (folder / "record.json").exists():
        return "not cached"
    try:
        checked_record(spec, folder, key)
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
