"""The held-out probe images: the single probe image and every test image of its class.

Probes come from the test split only, which no model ever trains on (training
draws its images from ``x_train``; a test checks that no training image equals
the probe).
"""

from __future__ import annotations

import os

import numpy as np

from .errors import DataError
from .options import ENV_PROBE


def _name(classes, k: int) -> str:
    return classes[k] if classes is not None and 0 <= k < len(classes) else f"class {k}"


def _article(name: str) -> str:
    return f"{'an' if name[:1] in 'aeiou' else 'a'} {name}"


def class_indices(y_test: np.ndarray, probe_class: int, classes=None) -> np.ndarray:
    """Test-set indices of every image of ``probe_class``, in test order.

    Raises DataError when the test split holds none."""
    idx = np.flatnonzero(np.asarray(y_test).reshape(-1) == probe_class)
    if len(idx) == 0:
        raise DataError(
            f"the test split holds no {_name(classes, probe_class)}; the probe claims need images of the probe class"
        )
    return idx


def probe_index(y_test: np.ndarray, index: int | str | None, probe_class: int, classes=None) -> int:
    """The probe image's test-set index: the first test image of ``probe_class``
    unless overridden by ``index`` (``--probe-index``) or ``$CNNCLAIMS_PROBE``.

    It must be an image of the probe class, since the claims are about that class.
    Raises DataError naming the index, its class and valid choices otherwise."""
    raw = index if index not in (None, "") else os.environ.get(ENV_PROBE) or None
    y = np.asarray(y_test).reshape(-1)
    want = _name(classes, probe_class)
    if raw is None:
        return int(class_indices(y, probe_class, classes)[0])
    try:
        i = int(raw)
    except ValueError:
        raise DataError(f"probe index {raw!r} is not an integer; give the test-set index of {_article(want)}") from None
    if not 0 <= i < len(y):
        raise DataError(f"probe index {i} is outside the test set (0..{len(y) - 1})")
    if y[i] != probe_class:
        raise DataError(
            f"test image {i} is {_article(_name(classes, int(y[i])))}, not {_article(want)}; the probe must be "
            f"{_article(want)}, e.g. {', '.join(map(str, class_indices(y, probe_class, classes)[:5]))}"
        )
    return i
