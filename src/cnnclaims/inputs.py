"""The one check behind every door by which images and labels reach a model.

Activations (``layer_activations``, ``stream_activations``), the per-model evidence
(``image_stats``) and training (``prepare``, ``fit``) all call these functions, so a
bad array is refused the same way, with the fix, wherever it enters.

Pixels: uint8 0-255 (CIFAR-10 as loaded) are divided by 255 as the article does;
floats already in [0, 1] pass as float32. Everything else is refused rather than
guessed at: floats above 1 (0-255 pixels not yet divided: read as [0, 1] they moved
the softmax by up to 0.88), below 0 (standardised images), NaN/inf (one NaN pixel gave
a confident class), other integer dtypes, bool, and any shape but the experiment's
(n, H, W, C), CIFAR-10's (n, 32, 32, 3) by default, or, where the caller allows it,
one (H, W, C) image. Labels: integers 0..classes-1, or one-hot rows.
"""

from __future__ import annotations

import numpy as np

from .errors import InputError

IMAGE_SHAPE = (32, 32, 3)
N_CLASSES = 10


def check_images(
    images, where: str, single: bool = False, name: str = "images", uint8_ok: bool = True, shape: tuple = IMAGE_SHAPE
) -> np.ndarray:
    """Check pixels without converting them; returns ``np.asarray(images)``.

    ``images``: uint8 (any value) or floating point in [0, 1], shaped (n, 32, 32, 3)
    with n >= 1, or one (32, 32, 3) image when ``single``; floats only when not
    ``uint8_ok`` (arrays that should already be scaled). Raises InputError naming
    ``where`` and ``name``, what was wrong and the fix."""
    x = np.asarray(images)
    shape = tuple(shape)
    batch = f"(n, {', '.join(map(str, shape))})"
    if x.ndim == 3 and single and x.shape == shape:
        pass
    elif x.ndim != 4 or x.shape[1:] != shape or len(x) == 0:
        got = "an empty batch" if x.ndim == 4 and len(x) == 0 and x.shape[1:] == shape else f"shape {x.shape}"
        expected = f"expected images of shape {batch}" + (f" or one image {shape}" if single else "")
        what = ", CIFAR-10's 32x32 RGB" if shape == IMAGE_SHAPE else ""
        hint = "; for one image use x[None]" if not single and x.shape == shape else ""
        if x.ndim == 4 and len(shape) == 3 and x.shape[1:] == (shape[2], shape[0], shape[1]) and shape[2] != shape[0]:
            hint = "; they look channels-first (n, channels, height, width): pass x.transpose(0, 2, 3, 1)"
        raise InputError(f"{where}: {name} got {got}; {expected}{what}{hint}")
    if x.dtype == np.uint8:
        if not uint8_ok:
            raise InputError(f"{where}: {name} holds uint8 pixels; pass them through prepare() (divides by 255)")
        return x
    if not np.issubdtype(x.dtype, np.floating):
        hint = (
            "; if they are 0-255 pixels, convert with x.astype(np.uint8)" if np.issubdtype(x.dtype, np.integer) else ""
        )
        raise InputError(f"{where}: {name} have dtype {x.dtype}; expected uint8 pixels 0-255 or floats in [0, 1]{hint}")
    # min/max propagate NaN and show inf, without a temporary array as big as the data.
    lo, hi = x.min(), x.max()
    if not (np.isfinite(lo) and np.isfinite(hi)):
        bad = ~np.isfinite(x.reshape(len(x), -1) if x.ndim == 4 else x.reshape(1, -1))
        first = int(np.flatnonzero(bad.any(axis=1))[0])
        raise InputError(
            f"{where}: {name} hold {int(bad.sum())} NaN/inf pixel value(s), the first in image {first}; "
            "check the input for NaN/inf"
        )
    if hi > 1:
        fix = "; scale them into [0, 1]"
        if hi <= 255:
            fix = "; they look like 0-255 pixels: divide by 255" + (" (or pass the uint8 array)" if uint8_ok else "")
        raise InputError(f"{where}: {name} hold float values up to {hi:.4g}; expected floats in [0, 1]{fix}")
    if lo < 0:
        raise InputError(
            f"{where}: {name} hold float values down to {lo:.4g}; expected floats in [0, 1] "
            "(pixels / 255, not standardised images)"
        )
    return x


def model_input(
    images, where: str, single: bool = False, name: str = "images", shape: tuple = IMAGE_SHAPE
) -> np.ndarray:
    """Checked pixels as the model takes them: float32 in [0, 1], (n, 32, 32, 3).

    uint8 is divided by 255 (the article's scaling); floats in [0, 1] pass as
    float32 (no copy when already float32). One (32, 32, 3) image, when ``single``,
    becomes a batch of one. Raises InputError as ``check_images``."""
    x = check_images(images, where, single, name, shape=shape)
    if x.ndim == 3:
        x = x[None]
    if x.dtype == np.uint8:
        return x.astype(np.float32) / np.float32(255.0)
    return x.astype(np.float32, copy=False)


def class_labels(labels, n_images: int, where: str, error=InputError, n_classes: int = N_CLASSES) -> np.ndarray:
    """Class labels as an (n,) array of their own integer dtype (int64 from one-hot).

    ``labels``: integers in 0..n_classes-1 shaped (n,) or (n, 1) (as Keras's loader
    gives them), or one-hot rows (n, n_classes) of exact 0s and a single 1 (converted to
    their class index, int64); one per image. Raises ``error`` (InputError unless a
    caller names another class) for another shape or count, a non-integer dtype, rows
    that are not one-hot (soft or smoothed labels) or values outside 0..n_classes-1."""
    y = np.asarray(labels)
    top = n_classes - 1
    if y.ndim == 2 and y.shape[1] == n_classes and n_classes > 1:
        return _from_one_hot(y, n_images, where, error)
    if not np.issubdtype(y.dtype, np.integer):
        raise error(
            f"{where}: labels have dtype {y.dtype}; expected integer class labels 0..{top} "
            f"(or one-hot rows (n, {n_classes}))"
        )
    if not (y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1)):
        raise error(
            f"{where}: labels got shape {y.shape}; expected (n,) or (n, 1), one label per image, "
            f"or one-hot (n, {n_classes})"
        )
    y = y.reshape(-1)
    if len(y) != n_images:
        raise error(f"{where}: {len(y)} labels for {n_images} images; give exactly one label per image")
    outside = np.unique(y[(y < 0) | (y >= n_classes)])
    if len(outside):
        what = "CIFAR-10 has 10 classes" if n_classes == N_CLASSES else f"the experiment has {n_classes} classes"
        raise error(f"{where}: labels outside 0..{top}: {', '.join(map(str, outside[:10]))}; {what}")
    return y


def _from_one_hot(y, n_images: int, where: str, error) -> np.ndarray:
    if not (np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.floating)) or y.dtype == bool:
        raise error(f"{where}: one-hot labels have dtype {y.dtype}; expected numbers 0 and 1")
    if len(y) != n_images:
        raise error(f"{where}: {len(y)} labels for {n_images} images; give exactly one label per image")
    exact = ((y == 0) | (y == 1)).all(axis=1) & ((y == 1).sum(axis=1) == 1)
    if not exact.all():
        first = int(np.flatnonzero(~exact)[0])
        raise error(
            f"{where}: label row {first} is not one-hot ({np.round(y[first][:6], 3).tolist()}...); give "
            "integer class labels, or one-hot rows of exact 0s and a single 1 (not soft or smoothed labels)"
        )
    return y.argmax(axis=1).astype(np.int64)


def one_hot_labels(y, n_images: int, where: str, name: str, n_classes: int = N_CLASSES) -> np.ndarray:
    """Check one-hot labels as ``training.prepare`` makes them: (n, classes), finite."""
    y = np.asarray(y)
    if y.shape != (n_images, n_classes) or not np.issubdtype(y.dtype, np.floating) or not np.isfinite(y).all():
        raise InputError(
            f"{where}: {name} got shape {y.shape}, dtype {y.dtype}; expected one-hot ({n_images}, {n_classes}) "
            "floats, one row per image, as prepare() returns them"
        )
    return y
