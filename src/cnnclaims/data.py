"""CIFAR-10 as uint8 arrays, from a local copy or Keras's downloader, cached once.

Sources, in order of precedence:
1. an explicit path (``--data`` / ``CNNCLAIMS_DATA``) to the official
   ``cifar-10-batches-py`` folder (or a folder containing it), or to an image-folder
   tree ``train/<class>/*.{jpg,png}``, ``test/<class>/*``;
2. otherwise ``keras.datasets.cifar10.load_data()`` (downloads; Keras's own cache).

Decoded arrays are stored once as ``<cache>/data/cifar10-<stat key>.npz``. The stat key
covers every source file's name, size and mtime, so editing the source invalidates
the decoded copy without re-reading 60,000 files on each warm load. What keys the
trained models is the data's *content* fingerprint, a SHA-256 of the decoded arrays
stored beside them: a copy of the same images with new mtimes (a re-mounted or
re-copied folder) is decoded again, but reuses every trained model.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .cache import CacheError, default_cache_dir, discard, read_npz, stable_hash, write_npz
from .errors import DataError
from .inputs import class_labels
from .options import ENV_DATA

CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
CLASSES = CIFAR10_CLASSES  # folder names and label order of the CIFAR-10 loader
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
FULL_PER_CLASS = {"train": 5000, "test": 1000}
BATCH_FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
DATA_FORMAT_VERSION = 1  # bump when decoding changes, so old caches are not reused


@dataclass(frozen=True)
class Dataset:
    """Images and labels of one experiment: x uint8 (n, H, W, C) pixels 0-255 or float
    pixels in [0, 1]; y integer class indices (n,). ``fingerprint`` keys every trained
    model, so it must change whenever the content does (``dataset`` computes it)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str  # human-readable: which source a run used
    fingerprint: str  # content hash of the four arrays (see content_fingerprint)

    def as_tuples(self):
        return (self.x_train, self.y_train), (self.x_test, self.y_test)


@dataclass(frozen=True)
class Source:
    kind: str  # "batches" | "folder" | "keras"
    path: Path | None

    def describe(self) -> str:
        if self.kind == "keras":
            return "keras.datasets.cifar10 (downloaded, official arrays)"
        label = "cifar-10-batches-py" if self.kind == "batches" else "image folder"
        return f"{label} at {self.path}"


def resolve_source(path: str | os.PathLike | None = None) -> Source:
    """Explicit path, else $CNNCLAIMS_DATA, else Keras's downloader."""
    raw = path if path not in (None, "") else os.environ.get(ENV_DATA) or None
    if raw is None:
        return Source("keras", None)
    p = Path(raw).expanduser().resolve()
    hint = (
        f"point --data or ${ENV_DATA} at the official 'cifar-10-batches-py' folder or an "
        "image-folder tree with train/<class>/ and test/<class>/"
    )
    if not p.exists():
        raise DataError(f"CIFAR-10 source {p} does not exist; {hint}")
    if not p.is_dir():
        raise DataError(f"CIFAR-10 source {p} is not a folder; {hint}")
    if (p / "cifar-10-batches-py").is_dir():
        p = p / "cifar-10-batches-py"
    if any((p / f).exists() for f in BATCH_FILES):
        return Source("batches", p)
    if (p / "train").is_dir() or (p / "test").is_dir():
        return Source("folder", p)
    raise DataError(f"CIFAR-10 source {p} holds neither data_batch_* files nor train/ and test/ folders; {hint}")


Cifar10 = Dataset  # what load_cifar10 returns (the name the harness had first)


def dataset(x_train, y_train, x_test, y_test, source: str = "arrays", n_classes: int = 10) -> Dataset:
    """A ``Dataset`` from arrays a user's loader returns, checked, with its content
    fingerprint (SHA-256 of the arrays).

    ``x_*``: (n, H, W, C) uint8 pixels 0-255, or float pixels in [0, 1] (no NaN),
    channels last (grayscale: C = 1); ``y_*``: integer labels 0..n_classes-1, (n,) or
    (n, 1), or one-hot rows (n, n_classes). Raises DataError naming the array and the
    fix for anything else (floats in 0-255, NaN, other dtypes, a label count that
    differs from the image count, soft labels); nothing is converted silently: (n, 1)
    labels become (n,), integer and one-hot labels int64 class indices."""
    from .inputs import check_images

    arrays: list[np.ndarray] = []
    for name, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        where = f"{source}: {name} split"
        x = np.asarray(x)
        if x.ndim != 4:
            grey = " (grayscale images: add the channel axis, x[..., None])" if x.ndim == 3 else ""
            raise DataError(f"{where}: images are {x.shape}; expected (n, height, width, channels){grey}")
        try:
            check_images(x, where, shape=x.shape[1:])
        except ValueError as exc:
            raise DataError(str(exc)) from None
        arrays += [x, class_labels(y, len(x), where, error=DataError, n_classes=n_classes).astype(np.int64)]
    if arrays[0].shape[1:] != arrays[2].shape[1:]:
        raise DataError(
            f"{source}: train images are {arrays[0].shape[1:]}, test images {arrays[2].shape[1:]}; "
            "both splits need the same image shape"
        )
    x_train, y_train, x_test, y_test = arrays
    return Dataset(x_train, y_train, x_test, y_test, source=source, fingerprint=content_fingerprint(*arrays))


def content_fingerprint(x_train, y_train, x_test, y_test) -> str:
    """SHA-256 of the decoded arrays: the same images give the same models' keys."""
    h = hashlib.sha256()
    for a in (x_train, y_train, x_test, y_test):
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.data)
    return h.hexdigest()[:20]


def stat_key(source: Source, per_class: dict | None = None) -> str:
    """Cheap key of the source files (names, sizes, mtimes): locates the decoded copy."""
    entries: list = ["keras.datasets.cifar10"]
    if source.kind != "keras":
        assert source.path is not None  # a file source always has one
        entries = []
        for root, dirs, files in os.walk(source.path):
            dirs.sort()
            for name in sorted(files):
                st = os.stat(os.path.join(root, name))
                rel = os.path.relpath(os.path.join(root, name), source.path)
                entries.append((rel, st.st_size, st.st_mtime_ns))
    return stable_hash([DATA_FORMAT_VERSION, source.kind, per_class, entries])[:20]


def load_dataset(experiment, path=None, cache_dir=None, progress=print) -> Dataset:
    """The experiment's data: ``call_loader(experiment.load_data, ...)`` with ``path``
    (--data), ``cache_dir`` and ``progress``, checked against the declaration
    (``check_dataset``). Raises DataError as ``call_loader`` and ``check_dataset``."""
    data = call_loader(
        experiment.load_data,
        experiment.name,
        n_classes=len(experiment.classes),
        path=path,
        cache_dir=cache_dir,
        progress=progress,
    )
    return check_dataset(data, experiment)


def check_dataset(data: Dataset, experiment) -> Dataset:
    """``data`` when it is what ``experiment`` declares: images of its ``input_shape``
    and (n,) integer labels of its classes in both splits. Raises DataContractError (a
    DataError) naming the split, what the loader gave and the fix (another shape:
    declare it, or transpose channels-first arrays)."""
    from .errors import DataContractError

    shape = tuple(experiment.input_shape)
    k = len(experiment.classes)
    for split, x, y in (("train", data.x_train, data.y_train), ("test", data.x_test, data.y_test)):
        where = f"experiment {experiment.name!r}: load_data's {split} split"
        got = tuple(np.shape(x)[1:])
        if got != shape:
            if len(got) == 3 and (got[1], got[2], got[0]) == shape:
                fix = "they look channels-first: return x.transpose(0, 2, 3, 1)"
            else:
                fix = f"declare Experiment(input_shape={got}) if that is the images' shape"
            raise DataContractError(
                f"{where} holds images of shape {got}, but the experiment declares "
                f"input_shape {shape} (height, width, channels); {fix}"
            )
        y = np.asarray(y)
        if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
            raise DataContractError(
                f"{where}: labels are {y.dtype} of shape {y.shape}; a Dataset holds (n,) "
                "integer class indices (cnnclaims.data.dataset converts one-hot rows)"
            )
        outside = np.unique(y[(y < 0) | (y >= k)])
        if len(outside):
            raise DataContractError(
                f"{where}: labels outside 0..{k - 1}: {', '.join(map(str, outside[:10]))}; "
                f"the experiment declares {k} classes ({', '.join(experiment.classes[:5])}"
                f"{', ...' if k > 5 else ''})"
            )
    return data


def call_loader(load_data, owner: str, n_classes: int = 10, **given) -> Dataset:
    """``load_data`` called with whichever of ``given`` (by name: path, cache_dir,
    progress, per_class) it declares; it returns a ``Dataset`` or ``((x_train, y_train),
    (x_test, y_test))`` arrays (checked and fingerprinted by ``dataset``, labels of
    ``n_classes`` classes). The pytest process and the training workers load through
    here alike. Raises DataError, naming ``owner`` (the experiment), for anything else."""
    import inspect

    params: object
    try:
        params = inspect.signature(load_data).parameters
    except (TypeError, ValueError):  # a builtin without a signature: call it bare
        params = {}
    out = load_data(**{k: v for k, v in given.items() if k in params})
    if isinstance(out, Dataset):
        return out
    try:
        (xtr, ytr), (xte, yte) = out
    except (TypeError, ValueError):
        raise DataError(
            f"experiment {owner!r}: load_data returned {type(out).__name__}; return a "
            "cnnclaims.data.Dataset or ((x_train, y_train), (x_test, y_test)) arrays"
        ) from None
    return dataset(
        xtr, ytr, xte, yte, source=f"{owner}: {getattr(load_data, '__name__', 'load_data')}", n_classes=n_classes
    )


def load_cifar10(
    path=None,
    cache_dir=None,
    per_class: dict | None = None,
    progress=print,
) -> Cifar10:
    """Load CIFAR-10 (decoding at most once per source) as uint8 arrays.

    ``per_class`` gives the expected number of images per class and split
    (default: the full data set, 5,000 train and 1,000 test); a copy with other
    counts is an error rather than a silently smaller experiment.
    """
    source = resolve_source(path)
    per_class = dict(per_class or FULL_PER_CLASS)
    cache_file = Path(cache_dir or default_cache_dir()) / "data" / f"cifar10-{stat_key(source, per_class)}.npz"
    n_tr, n_te = 10 * per_class["train"], 10 * per_class["test"]
    expected = {
        "x_train": (np.uint8, (n_tr, 32, 32, 3)),
        "y_train": (np.uint8, (n_tr,)),
        "x_test": (np.uint8, (n_te, 32, 32, 3)),
        "y_test": (np.uint8, (n_te,)),
        "fingerprint": (np.str_, ()),
    }
    if cache_file.exists():
        try:
            arrays = read_npz(cache_file, expected)
            fp = str(arrays.pop("fingerprint"))
            # The stored hash is re-checked: a flipped byte in the arrays must not
            # reach the models under the old key (0.1 s for 180 MB).
            if content_fingerprint(**arrays) != fp:
                raise CacheError(f"decoded arrays do not match their stored fingerprint {fp}")
            return Cifar10(**arrays, source=source.describe(), fingerprint=fp)
        except CacheError as exc:
            discard(cache_file, str(exc))
    t0 = time.perf_counter()
    progress(f"cnnclaims: decoding CIFAR-10 from {source.describe()} ...")
    if source.kind == "keras":
        (xtr, ytr), (xte, yte) = _from_keras()
    elif source.kind == "batches":
        assert source.path is not None  # a file source always has one
        (xtr, ytr), (xte, yte) = read_batches(source.path)
    else:
        assert source.path is not None
        (xtr, ytr), (xte, yte) = read_image_folder(source.path)
    for split, y in (("train", ytr), ("test", yte)):
        _check_counts(source, split, y, per_class[split])
    fp = content_fingerprint(xtr, ytr, xte, yte)
    stored = write_npz(cache_file, x_train=xtr, y_train=ytr, x_test=xte, y_test=yte, fingerprint=np.array(fp))
    progress(
        f"cnnclaims: decoded {len(xtr)} + {len(xte)} images in {time.perf_counter() - t0:.1f}s"
        + (f", cached at {cache_file}" if stored else " (not cached: the cache is read-only)")
    )
    return Cifar10(xtr, ytr, xte, yte, source=source.describe(), fingerprint=fp)


def _check_counts(source: Source, split: str, y: np.ndarray, want: int) -> None:
    counts = np.bincount(y, minlength=10)
    bad = [f"{CLASSES[c]}: {counts[c]}" for c in range(10) if counts[c] != want]
    if bad:
        raise DataError(
            f"{source.describe()}: {split} split should hold {want} images per class, found "
            f"{', '.join(bad)}; the copy is incomplete or not CIFAR-10"
        )


def _from_keras():
    from .compat import cifar10_download

    try:
        (xtr, ytr), (xte, yte) = cifar10_download()
    except Exception as exc:
        raise DataError(
            f"keras.datasets.cifar10.load_data() failed ({exc}); without internet, set "
            f"--data or ${ENV_DATA} to a local CIFAR-10 copy"
        ) from exc
    out = []
    for split, x, y in (("train", xtr, ytr), ("test", xte, yte)):
        where = f"keras.datasets.cifar10 {split} split"
        x = np.asarray(x)
        _check_pixels(where, x)
        if x.ndim != 4 or x.shape[1:] != (32, 32, 3):
            raise DataError(f"{where}: images are {x.shape}; expected (n, 32, 32, 3); clear Keras's dataset cache")
        out.append((x.astype(np.uint8), class_labels(y, len(x), where, error=DataError).astype(np.uint8)))
    return out[0], out[1]


def _check_pixels(where: str, data: np.ndarray) -> None:
    # Anything but uint8 would be cast silently: floats in [0, 1] become 0 (black).
    if data.dtype != np.uint8:
        raise DataError(
            f"{where}: pixel data has dtype {data.dtype}; CIFAR-10 pixels are uint8 0-255 (floats in [0, 1] "
            "would load as black images); use an unmodified copy (re-extract cifar-10-python.tar.gz)"
        )


def read_batches(path: Path):
    """Read the official python-pickle batches (channel-first rows of 3,072 bytes)."""
    path = Path(path)
    missing = [f for f in BATCH_FILES if not (path / f).is_file()]
    if missing:
        raise DataError(
            f"cifar-10-batches-py folder {path} lacks {', '.join(missing)}; re-extract cifar-10-python.tar.gz"
        )

    def one(name):
        f = path / name
        try:
            with open(f, "rb") as fh:
                d = pickle.load(fh, encoding="bytes")
            data = np.asarray(d[b"data"])
            labels = np.asarray(d[b"labels"])
        except Exception as exc:
            raise DataError(f"{f} is not a readable CIFAR-10 batch ({type(exc).__name__}: {exc})") from exc
        _check_pixels(str(f), data)
        if data.ndim != 2 or data.shape[1] != 3072:
            raise DataError(f"{f}: data is {data.shape}; expected (n, 3072), one row of 3,072 bytes per image")
        # (n,) as the official files hold them, or (n, 1); integers 0..9, one per row.
        labels = class_labels(labels, len(data), str(f), error=DataError)
        return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy(), labels.astype(np.uint8)

    parts = [one(n) for n in BATCH_FILES[:5]]
    xtr = np.concatenate([p[0] for p in parts])
    ytr = np.concatenate([p[1] for p in parts])
    return (xtr, ytr), one("test_batch")


def read_image_folder(path: Path, workers: int | None = None):
    """Read ``train/<class>/*`` and ``test/<class>/*`` (class folders in label order)."""
    path = Path(path)
    out = []
    for split in ("train", "test"):
        split_dir = path / split
        if not split_dir.is_dir():
            raise DataError(f"image folder {path} has no {split}/ folder; expected {split}/<class>/*.jpg")
        found = sorted(d.name for d in split_dir.iterdir() if d.is_dir())
        missing = [c for c in CLASSES if c not in found]
        extra = [d for d in found if d not in CLASSES]
        if missing or extra:
            raise DataError(
                f"{split_dir}: class folders must be exactly {', '.join(CLASSES)}; "
                + (f"missing {', '.join(missing)}" if missing else "")
                + ("; " if missing and extra else "")
                + (f"unexpected {', '.join(extra)}" if extra else "")
            )
        files, labels = [], []
        for label, cls in enumerate(CLASSES):
            for f in sorted((split_dir / cls).iterdir()):
                if f.suffix.lower() not in IMAGE_SUFFIXES or not f.is_file():
                    raise DataError(f"{f} is not a .jpg/.jpeg/.png image; remove it from the CIFAR-10 folder")
                files.append(f)
                labels.append(label)
        with ThreadPoolExecutor(workers or min(8, (os.cpu_count() or 1) + 1)) as pool:
            images = list(pool.map(decode_image, files, chunksize=256))
        x = np.stack(images) if images else np.zeros((0, 32, 32, 3), np.uint8)
        out.append((x, np.asarray(labels, dtype=np.uint8)))
    return out[0], out[1]


def decode_image(f: Path) -> np.ndarray:
    """Decode one 32x32 RGB image, naming the file in any error."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(f) as im:
            im.load()
            mode, size = im.mode, im.size
            arr = np.asarray(im, dtype=np.uint8)
    except PermissionError as exc:
        raise DataError(
            f"{f} cannot be read ({exc.strerror}); give this user read permission on it (the file may be fine)"
        ) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{f} is corrupt or not an image ({exc}); replace it from a clean CIFAR-10 copy") from exc
    if size != (32, 32) or mode != "RGB":
        raise DataError(f"{f} is a {size[0]}x{size[1]} {mode} image; CIFAR-10 images are 32x32 RGB")
    return arr
