"""Files in the cache directory: where it is, atomic writes, locks, JSON records.

Nothing in the cache is trusted blindly: readers validate what they load and a
corrupt entry is reported, removed and rebuilt by its owner.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from .errors import CacheError

ENV_CACHE = "CNNCLAIMS_CACHE"


def default_cache_dir() -> Path:
    return Path(os.environ.get(ENV_CACHE) or Path("build") / "cache").absolute()


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
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix="".join(path.suffixes))
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def write_json(path: Path, obj, keep_nan: bool = False) -> None:
    """``keep_nan`` writes NaN as JSON's (Python-readable) NaN instead of null, for
    records read back into numbers rather than shown to people."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(to_jsonable(obj, keep_nan), indent=2, sort_keys=True) + "\n")


def read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise CacheError(f"cache record {path} is unreadable ({exc})") from exc


def write_npz(path: Path, **arrays) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)


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
        if not dtype_ok or arr.ndim != len(shape) or any(
            s is not None and s != a for s, a in zip(shape, arr.shape)
        ):
            raise CacheError(
                f"cache file {path}: array {name!r} is {arr.dtype}{arr.shape}, expected {np.dtype(dtype)}{shape}"
            )
    return out


def discard(path: Path, why: str) -> None:
    """Report and remove a corrupt cache entry (never silently)."""
    print(f"cnnclaims: discarding corrupt cache entry {path}: {why}", file=sys.stderr, flush=True)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


@contextlib.contextmanager
def file_lock(path: Path):
    """An exclusive inter-process lock (pytest-xdist workers share the cache)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


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
