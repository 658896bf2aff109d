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


def class_indices(y_test: np.ndarray, probe_class: int, classes=None, evaluated=None) -> np.ndarray:
    """Test-set indices (int64, test order) of every image of ``probe_class``, among the
    test-set indices ``evaluated`` when given (an early-stopping protocol that monitors
    part of the test set evaluates the rest: ``monitoring.split``).

    Raises DataError when the test split (or its evaluated part) holds none."""
    y = np.asarray(y_test).reshape(-1)
    idx = np.flatnonzero(y == probe_class)
    if evaluated is not None:
        idx = idx[np.isin(idx, evaluated)]
    if len(idx) == 0:
        part = "test split" if evaluated is None else "evaluated part of the test split"
        raise DataError(
            f"the {part} holds no {_name(classes, probe_class)}; the probe claims need images of the probe class"
        )
    return idx


def probe_index(
    y_test: np.ndarray, index: int | str | None, probe_class: int, classes=None, evaluated=None, protocol=None
) -> int:
    """The probe image's test-set index: the first (evaluated) test image of
    ``probe_class`` unless overridden by ``index`` (``--probe-index``) or ``$CNNCLAIMS_PROBE``.

    It must be an image of the probe class, since the claims are about that class, and
    among ``evaluated`` (test-set indices) when given: an image that monitored early
    stopping (``protocol``, the experiment's ``EarlyStopping``, says which) chose the
    models' epoch and cannot judge them. Raises DataError naming the index, its class or
    its part of the test set, and valid choices otherwise."""
    raw = index if index not in (None, "") else os.environ.get(ENV_PROBE) or None
    y = np.asarray(y_test).reshape(-1)
    want = _name(classes, probe_class)
    if raw is None:
        return int(class_indices(y, probe_class, classes, evaluated)[0])
    try:
        i = int(raw)
    except ValueError:
        raise DataError(f"probe index {raw!r} is not an integer; give the test-set index of {_article(want)}") from None
    if not 0 <= i < len(y):
        raise DataError(f"probe index {i} is outside the test set (0..{len(y) - 1})")
    choices = ", ".join(map(str, class_indices(y, probe_class, classes, evaluated)[:5]))
    if y[i] != probe_class:
        raise DataError(
            f"test image {i} is {_article(_name(classes, int(y[i])))}, not {_article(want)}; the probe must be "
            f"{_article(want)}, e.g. {choices}"
        )
    if evaluated is not None and not np.isin(i, evaluated):
        raise DataError(
            f"test image {i} monitors early stopping ({protocol!r}), so it chose the models' epoch and cannot "
            f"judge them; give a probe among the evaluated test images, e.g. {choices}, or another "
            "EarlyStopping seed"
        )
    return i


def run_probe_index(run) -> int:
    """The probe image of ``run`` (a ``cnnclaims.run.Run``): ``probe_index`` of its
    ``--probe-index`` or the declared one, among the test images its early stopping
    leaves to evaluate (``run.split.evaluated``)."""
    given = run.probe if run.probe is not None else run.experiment.probe.index
    exp = run.experiment
    return probe_index(run.data.y_test, given, exp.probe_class, exp.classes, run.split.evaluated, exp.early_stopping)


def run_probe_indices(run) -> np.ndarray:
    """Test-set indices of every evaluated image of ``run``'s probe class (the images scope)."""
    exp = run.experiment
    return class_indices(run.data.y_test, exp.probe_class, exp.classes, run.split.evaluated)
