"""The probe frog: deterministic default, overrides, and clear errors."""

import numpy as np
import pytest

from cnnclaims.article import CLASSES, FROG
from cnnclaims.errors import DataError
from cnnclaims.probe import class_indices
from cnnclaims.probe import probe_index as _probe_index


def probe_index(y, index=None):
    return _probe_index(y, index, FROG, CLASSES)


def frog_indices(y):
    return class_indices(y, FROG, CLASSES)


Y = np.array([0, 6, 3, 6, 6, 9], dtype=np.uint8)


def test_default_is_the_first_test_frog(monkeypatch):
    monkeypatch.delenv("CNNCLAIMS_PROBE", raising=False)
    assert probe_index(Y) == 1
    assert frog_indices(Y).tolist() == [1, 3, 4]


def test_override_by_argument_and_environment(monkeypatch):
    assert probe_index(Y, 4) == 4
    monkeypatch.setenv("CNNCLAIMS_PROBE", "3")
    assert probe_index(Y) == 3


@pytest.mark.parametrize(
    "bad,match",
    [(2, "test image 2 is a cat, not a frog.*1, 3, 4"), (99, "outside the test set"), ("x", "not an integer")],
)
def test_bad_override(bad, match):
    with pytest.raises(DataError, match=match):
        probe_index(Y, bad)


def test_no_frogs():
    with pytest.raises(DataError, match="no frog"):
        frog_indices(np.zeros(5, np.uint8))
    assert FROG == 6
