"""Files in the cache directory: where it is, atomic writes, locks, JSON records.

Nothing in the cache is trusted blindly: readers validate what they load and a
corrupt entry is reported, removed and rebuilt by its owner.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TypeGuard

import numpy as np

from .errors import CacheError, CacheWriteError
from .options import ENV_CACHE

CACHE_HINT = f"pass --cache-dir PATH (or set ${ENV_CACHE}) to a writable folder"
# A folder this process may not write in: a read-only mount, or another user's folder.
READ_ONLY_ERRNOS = {errno.EROFS, errno.EACCES, errno.EPERM}
NO_SPACE_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
_NO_SPACE_TEXT = ("No space left on device", "Disk quota exceeded", "errno = 28", "errno = 122")

# What a run stores, measured on the article's cache (TF 2.21 / Keras 3.15): the
# decoded CIFAR-10 arrays 184,381,336 bytes; one model entry 1.55 MB (model.keras
# 0.71 MB, the best epoch's weights 0.70 MB, per-image statistics of the 1,000 test
# frogs 0.13 MB, record 3 KB); verdicts, null splits and calibration 0.6 MB.
DATA_BYTES = 184_400_000
MODEL_ENTRY_BYTES = 1_600_000
RESULTS_BYTES = 1_000_000


def is_json_number(x: object) -> TypeGuard[float]:
    """A number as JSON records hold it: an int or a float, and not a bool (which
    Python counts as an int)."""
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def default_cache_dir() -> Path:
    """$CNNCLAIMS_CACHE, else the user's cache folder: ``$XDG_CACHE_HOME/cnnclaims``,
    else ``~/.cache/cnnclaims`` (where Keras, Hugging Face and torch keep theirs), so
    trained models outlive a checkout and a fresh clone's second run is warm. Entries
    are keyed by everything that changes them (versions, numerics, data, recipe), so
    checkouts and environments share one folder safely."""
    if os.environ.get(ENV_CACHE):
        return Path(os.environ[ENV_CACHE]).expanduser().absolute()
    base = os.environ.get("XDG_CACHE_HOME") or ""
    # The XDG spec: a relative $XDG_CACHE_HOME is invalid and ignored.
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".cache"
    return (root / "cnnclaims").absolute()


def stable_hash(obj) -> str:
    """SHA-256 of a JSON-serialisable object, independent of dict order."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


@contextlib.contextmanager
def atomic_path(path: Path):
    """Yield a temporary path beside ``path``; move it into place only on success.

    Readers never see a half-written file, even when the writer is killed.
    The temporary name keeps the suffix because Keras insists on ``.keras``.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        from .errors import FolderBlockedError

        # A file where a folder must be (e.g. the cache's verdicts/): one clear error,
        # not a traceback per test and a recomputation each time. Still an OSError, so
        # callers with a fallback folder (the pins' .obtained) keep it.
        blocker = next((p for p in (path.parent, *path.parent.parents) if p.exists() and not p.is_dir()), path.parent)
        raise FolderBlockedError(
            f"{blocker} is a file where cnnclaims needs a folder for {path.name}; remove or "
            "rename that file, or choose another folder (for the cache: --cache-dir PATH)"
        ) from None
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix="".join(path.suffixes))
    # mkstemp makes a private file (0600). Nothing in the cache is secret, and a cache
    # is shared as a whole (copied for, or mounted read-only by, another user or CI job):
    # records and statistics must be as readable as the model files Keras writes with
    # open(). So every file gets the mode open() gives any new file: 0666 less the
    # umask (0644 under the usual umask 022).
    os.fchmod(fd, 0o666 & ~_umask())
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _umask() -> int:
    """This process's umask, read without changing it (os.umask would, for a moment,
    for every thread)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):  # pragma: no cover - not Linux
        pass
    mask = os.umask(0o022)  # pragma: no cover
    os.umask(mask)  # pragma: no cover
    return mask  # pragma: no cover


def write_json(path: Path, obj, keep_nan: bool = False) -> bool:
    """``keep_nan`` writes NaN as JSON's (Python-readable) NaN instead of null, for
    records read back into numbers rather than shown to people. Returns whether the
    file was stored (see ``_store``)."""
    text = json.dumps(to_jsonable(obj, keep_nan), indent=2, sort_keys=True) + "\n"
    return _store(path, lambda tmp: tmp.write_text(text), len(text))


def _store(path: Path, write, nbytes: int) -> bool:
    """``write(tmp)`` through ``atomic_path``. A cache file is a memo: where the folder
    is read-only or not ours (a warm cache on a read-only mount), the value is used
    from memory and not stored (said once per process); returns False. A full disk is
    CacheWriteError: the run cannot go on storing models and results there."""
    try:
        with atomic_path(path) as tmp:
            write(tmp)
        return True
    except OSError as exc:
        if is_no_space(exc):
            raise CacheWriteError(
                f"no space left to write {path} ({nbytes / 1e6:.1f} MB; {free_text(path)})", path, no_space=True
            ) from exc
        if exc.errno not in READ_ONLY_ERRNOS:
            raise
        if not _UNSTORED:
            notice(
                f"cnnclaims: cannot store {path} ({exc.strerror}): this run uses what it computes without "
                "storing it, here and wherever else the cache cannot be written (said once)"
            )
        _UNSTORED.append(path)
        return False


_UNSTORED: list = []  # cache files this process computed but could not store


def is_no_space(exc: BaseException) -> bool:
    """Whether ``exc`` or anything it was raised from is a full disk (or quota): an
    OSError's errno, or the text h5py and a training worker's traceback carry."""
    return any(
        (isinstance(e, OSError) and e.errno in NO_SPACE_ERRNOS)
        or (isinstance(e, CacheWriteError) and e.no_space)
        or any(t in str(e) for t in _NO_SPACE_TEXT)
        for e in _chain(exc)
    )


def _chain(exc: BaseException) -> list:
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is not None and all(e is not s for s in seen):
            seen.append(e)
            todo += [e.__cause__, e.__context__]
    return seen


def free_text(path) -> str:
    """ "N MB free on its disk", for the nearest existing folder of ``path``."""
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return f"{shutil.disk_usage(p).free / 1e6:.1f} MB free on its disk"
    except OSError:
        return "free space unknown"


def read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise CacheError(f"cache record {path} is unreadable ({exc})") from exc


def write_npz(path: Path, **arrays) -> bool:
    """Returns whether the file was stored (see ``_store``)."""

    def write(tmp):
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)

    return _store(path, write, sum(np.asarray(a).nbytes for a in arrays.values()))


def read_npz(path: Path, expected: dict) -> dict:
    """Load every array of an .npz, checking names, dtypes and shapes.

    ``expected`` maps name -> (dtype, shape) where a shape entry of None matches any
    length. Raises CacheError naming the file and the mismatch.
    """
    try:
        with np.load(path, allow_pickle=False) as z:
            out = {k: z[k] for k in z.files}
    except Exception as exc:  # zipfile, OSError, ValueError: all mean "corrupt"
        raise CacheError(f"cache file {path} is unreadable ({type(exc).__name__}: {exc})") from exc
    for name, (dtype, shape) in expected.items():
        if name not in out:
            raise CacheError(f"cache file {path} lacks array {name!r}")
        arr = out[name]
        dtype_ok = arr.dtype.kind == "U" if dtype is np.str_ else arr.dtype == np.dtype(dtype)
        wrong_axis = any(s is not None and s != a for s, a in zip(shape, arr.shape, strict=False))
        if not dtype_ok or arr.ndim != len(shape) or wrong_axis:
            raise CacheError(
                f"cache file {path}: array {name!r} is {arr.dtype}{arr.shape}, expected {np.dtype(dtype)}{shape}"
            )
    return out


_NOTICE: list = []  # the printer notices go to, when one is set (the pytest plugin's)


def set_notice_printer(printer):
    """Send ``notice`` messages to ``printer`` (None: stderr); returns the one before.

    The pytest plugin sets its progress printer: a message printed to stderr inside a
    test or fixture would be swallowed by pytest's capture."""
    old = _NOTICE[0] if _NOTICE else None
    _NOTICE[:] = [printer] if printer is not None else []
    return old


def notice(msg: str) -> None:
    """Tell the user something about the cache they must see (never hidden by capture)."""
    if _NOTICE:
        _NOTICE[0](msg)
    else:
        print(msg, file=sys.stderr, flush=True)


def discard(path: Path, why: str) -> None:
    """Report and remove a corrupt cache entry (never silently)."""
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        notice(f"cnnclaims: discarding corrupt cache entry {path}: {why}")
    except OSError as exc:  # a read-only cache: the entry stays; this run rebuilds it in memory
        if exc.errno not in READ_ONLY_ERRNOS:
            raise
        notice(f"cnnclaims: ignoring corrupt cache entry {path}: {why} (cannot remove it: {exc.strerror})")


@contextlib.contextmanager
def file_lock(path: Path, wait: bool = True):
    """An exclusive inter-process lock (pytest-xdist workers share the cache), as a
    context manager yielding whether this process holds it. The cache's one lock: a
    model's entry is locked with it (``training.entries.entry_lock``) by whoever trains,
    stores or removes that model.

    ``wait=False``: yields False at once, holding nothing, when another process holds
    the lock (the Ray executor leaves a model another process trains to it); a lock
    file that cannot be created is then the OSError (the caller means to write there).

    Waiting, in a folder this process cannot write (a read-only mount, another user's
    cache) it takes a shared lock on the lock file if one exists (so it waits for a
    writer that holds it), else none: it cannot be a writer itself, and entries appear
    whole (os.replace, rename), so it reads safely. Whatever it would have to write
    there fails on its own, naming the path."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fh, how = open(path, "a"), fcntl.LOCK_EX
    except OSError as exc:
        if not wait or exc.errno not in READ_ONLY_ERRNOS:
            raise
        try:
            fh, how = open(path), fcntl.LOCK_SH
        except OSError:
            fh = None
    if fh is None:
        yield True
        return
    with fh:
        try:
            fcntl.flock(fh, how if wait else how | fcntl.LOCK_NB)
        except BlockingIOError:
            held = False
        else:
            held = True
        if not held:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def check_folder(
    path, option: str = "--cache-dir", env: str | None = ENV_CACHE, what: str = "cache folder", must_write: bool = False
) -> Path:
    """``path`` as an absolute path, or CacheWriteError naming it and ``option`` when it
    cannot be the folder a run writes in: a file (or a broken link) is in its way, or it
    does not exist and cannot be created (its nearest existing folder is read-only or
    not writable). An existing folder passes: a read-only cache serves what it holds
    (``must_write``: it must be writable too, as an artifacts folder must). Creates
    nothing; runs in microseconds."""
    path = Path(path).absolute()
    hint = f"pass {option} PATH{f' (or set ${env})' if env else ''} to a writable folder"
    p = path
    while not os.path.lexists(p):
        p = p.parent
    if not p.is_dir():
        kind = "a broken link" if p.is_symlink() and not p.exists() else "a file"
        where = "" if p == path else f" in the way of {path}"
        raise CacheWriteError(
            f"the {what} {path} cannot be created: {p} is {kind}, not a folder{where}; remove it or {hint}", p
        )
    if (p != path or must_write) and not os.access(p, os.W_OK | os.X_OK):
        why = "on a read-only file system" if _read_only_fs(p) else "not writable by this user"
        verb = "cannot be created" if p != path else "cannot be written"
        raise CacheWriteError(f"the {what} {path} {verb}: {p} is {why}; {hint}", p)
    return path


def _read_only_fs(path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:  # pragma: no cover
        return False


def require_writable(folder, root, n_models: int) -> None:
    """Before training ``n_models`` models into ``folder``: CacheWriteError now, naming
    the cache folder ``root`` and --cache-dir, if a file cannot be created there
    (tried, not guessed: a read-only mount, another user's folder) or its disk lacks
    the room they take, rather than after minutes of training."""
    folder, root = Path(folder), Path(root)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".write-test.")
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        if is_no_space(exc):
            raise space_error(root, exc.filename or folder, n_models) from exc
        if exc.errno not in READ_ONLY_ERRNOS:
            raise
        raise CacheWriteError(
            f"the cache folder {root} cannot be written ({exc.strerror}: {exc.filename or folder}); it serves "
            f"the models it holds, but {n_models} model(s) of this run are not cached and must be trained and "
            f"stored there: make it writable or {CACHE_HINT}",
            exc.filename or folder,
        ) from exc
    need = n_models * entry_bytes(root)
    free = shutil.disk_usage(folder).free
    if free < need:
        raise space_error(root, folder, n_models, need_models_only=True)


def entry_bytes(root) -> int:
    """Bytes one model entry takes: the largest complete entry in ``root``'s cache
    (measured), else ``MODEL_ENTRY_BYTES`` (the article's, measured)."""
    sizes = []
    with contextlib.suppress(OSError):
        for entry in (Path(root) / "models").iterdir():
            if (entry / "record.json").exists():
                sizes.append(sum(f.stat().st_size for f in entry.iterdir() if f.is_file()))
            if len(sizes) >= 8:
                break
    return max(sizes, default=MODEL_ENTRY_BYTES)


def space_error(
    root, path, n_models: int, data_bytes: int | None = None, need_models_only: bool = False
) -> CacheWriteError:
    """The one error for a full disk under the cache folder ``root``: where, how much
    is free, and what a run of ``n_models`` models stores there (measured sizes)."""
    root = Path(root)
    per_model = entry_bytes(root)
    models = n_models * per_model
    data = DATA_BYTES if data_bytes is None else data_bytes
    if need_models_only:
        what = (
            f"the {n_models} model(s) this run must train need about {models / 1e6:.0f} MB there "
            f"({n_models} x {per_model / 1e6:.1f} MB)"
        )
    else:
        total = data + models + RESULTS_BYTES
        what = (
            f"a run of this plan stores about {total / 1e6:.0f} MB there (decoded data {data / 1e6:.0f} MB, "
            f"{n_models} models x {per_model / 1e6:.1f} MB, results {RESULTS_BYTES / 1e6:.0f} MB)"
        )
    writing = f"; writing {path}" if Path(path) != root else ""
    err = CacheWriteError(
        f"no space left in the cache folder {root} ({free_text(root)}{writing}): {what}; make room there or "
        f"pass --cache-dir PATH (or set ${ENV_CACHE}) to a folder on a disk with room",
        path,
        no_space=True,
    )
    err.sized = True  # type: ignore[attr-defined]  # says what the run needs: write_failure passes it on as it is
    return err


def write_failure(exc: BaseException, root, n_models: int | None = None, data_bytes: int | None = None):
    """The one clear CacheWriteError for ``exc`` when it is a failed write into the cache
    folder ``root`` (a full disk anywhere in its chain, or a read-only / not-ours error
    naming a path under ``root``), else None. ``n_models`` (the plan) sizes the space
    a full disk's message asks for."""
    root = Path(root).absolute()
    if is_no_space(exc):
        own = next((e for e in _chain(exc) if isinstance(e, CacheWriteError) and e.no_space), None)
        if own is not None and (n_models is None or getattr(own, "sized", False)):
            return own
        path = (
            own.path
            if own is not None
            else next((e.filename for e in _chain(exc) if isinstance(e, OSError) and e.filename), root)
        )
        return space_error(root, path, n_models or 0, data_bytes)
    for e in _chain(exc):
        if isinstance(e, CacheWriteError):
            return e
        if isinstance(e, OSError) and e.errno in READ_ONLY_ERRNOS and e.filename:
            p = Path(os.fsdecode(e.filename)).absolute()
            if p == root or root in p.parents:
                return CacheWriteError(
                    f"the cache folder {root} cannot be written ({e.strerror}: {p}); a read-only cache serves "
                    f"what it holds, but this run must write there: make it writable or {CACHE_HINT}",
                    p,
                )
    return None


def to_jsonable(obj, keep_nan: bool = False):
    """Convert numpy scalars/arrays (which json cannot write) recursively."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v, keep_nan) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v, keep_nan) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist(), keep_nan)
    if isinstance(obj, np.generic):
        return to_jsonable(obj.item(), keep_nan)
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float) and obj != obj and not keep_nan:
        return None  # NaN is not JSON
    return obj


# --- the result store: verdicts, null splits, calibrations ------------------------


class ResultStore:
    """Computed results (JSON-able dicts) stored under ``root/<kind>/<label>-<digest>.json``.

    ``code``: a digest of the source that computes them (``run.CODE_DIGEST``). A
    result's digest covers its ``key``, ``code`` and the numpy/scipy/statsmodels
    versions, so any change there recomputes; a damaged file is reported and
    recomputed, never trusted."""

    def __init__(self, root: Path, code: str):
        self.root, self.code = Path(root), code

    def digest(self, key: dict) -> str:
        import scipy
        import statsmodels

        return stable_hash(
            {**key, "code": self.code, "versions": [np.__version__, scipy.__version__, statsmodels.__version__]}
        )[:20]

    def peek(self, kind: str, label: str, key: dict) -> dict | None:
        """The stored result of ``key``, or None where none is stored (or the stored one
        is damaged: reported and discarded, as ``get`` does); never computes. The report
        reads the calibration this way: it shows a stored one and says how to compute a
        missing one, instead of spending minutes on it."""
        digest = self.digest(key)
        path = self.root / kind / f"{label}-{digest}.json"
        if path.exists():
            try:
                doc = read_json(path)
                if doc.get("key") != digest:
                    raise CacheError(f"it holds key {doc.get('key')!r}, expected {digest}")
                # A checksum of the content: a changed digit (tampering, bit rot) in
                # valid JSON is detected and recomputed, never trusted.
                if doc.get("checksum") != stable_hash(doc["value"]):
                    raise CacheError("its content does not match its checksum")
                return doc["value"]
            except (CacheError, KeyError, TypeError, AttributeError) as exc:
                discard(path, f"unusable {kind} cache ({exc})")
        return None

    def get(self, kind: str, label: str, key: dict, compute) -> dict:
        """The stored result of ``key`` (``peek``), else ``compute()`` (a JSON-able dict),
        stored. Either way the value has made the JSON round trip (NaN kept), so a cold
        run returns what a warm run would read."""
        stored = self.peek(kind, label, key)
        if stored is not None:
            return stored
        digest = self.digest(key)
        path = self.root / kind / f"{label}-{digest}.json"
        value = to_jsonable(compute(), keep_nan=True)
        if write_json(path, {"key": digest, "value": value, "checksum": stable_hash(value)}, keep_nan=True):
            return read_json(path)["value"]  # the same round trip a warm run takes
        return json.loads(json.dumps(value))  # a read-only cache: the same round trip, in memory
