"""The held-out probe images: the article's single frog and all test-set frogs.

Probes come from the test split only, which no model ever trains on (training
draws its images from ``x_train``; a test checks that no training image equals
the probe).
"""
from __future__ import annotations

import os

import numpy as np

from . import CLASSES, FROG
from .errors import DataError

ENV_PROBE = "CNNCLAIMS_PROBE"


def frog_indices(y_test: np.ndarray) -> np.ndarray:
    """Test-set indices of every frog, in test order."""
    idx = np.flatnonzero(np.asarray(y_test).reshape(-1) == FROG)
    if len(idx) == 0:
        raise DataError("the test split holds no frog; the probe claims need CIFAR-10's frog class")
    return idx


def probe_index(y_test: np.ndarray, index: int | str | None = None) -> int:
    """The probe frog's test-set index: the first test-set frog unless overridden.

    Override with ``index`` (``--probe-index``) or ``$CNNCLAIMS_PROBE``; it must name a
    frog, since the softmax claims are about a frog.
    """
    raw = index if index not in (None, "") else os.environ.get(ENV_PROBE) or None
    y = np.asarray(y_test).reshape(-1)
    if raw is None:
        return int(frog_indices(y)[0])
    try:
        i = int(raw)
    except ValueError:
        raise DataError(f"probe index {raw!r} is not an integer; give a test-set index of a frog") from None
    if not 0 <= i < len(y):
        raise DataError(f"probe index {i} is outside the test set (0..{len(y) - 1})")
    if y[i] != FROG:
        raise DataError(
            f"test image {i} is {'an' if CLASSES[y[i]][0] in 'aeiou' else 'a'} {CLASSES[y[i]]}, not a frog; "
            f"the probe must be a frog, e.g. "
            f"{', '.join(map(str, frog_indices(y)[:5]))}"
        )
    return i
