"""Which images choose the epoch: the early-stopping protocol an experiment declares
(``EarlyStopping``) and the split of the data it makes (``split``).

Early stopping and the best-epoch checkpoint watch a *monitoring* set's loss. The
article watched its test set, the very images its claims are then judged on: the epoch
kept is the one that did best on the evaluation images, a leak from the evaluation into
training (selection on the evaluation data: Cawley and Talbot 2010, "On over-fitting in
model selection and subsequent selection bias in performance evaluation", JMLR 11). The
harness keeps it as the article's declared protocol, ``monitor="test"``, and lets an
experiment declare a monitoring set the claims never see instead:

- ``"test"`` (default, the article's; leakage): the whole test set monitors, and every
  test image is evaluated.
- ``"test-half"``: a class-stratified half of the test set (seeded) monitors; the claims,
  the probe image, the probe-class images and the test accuracy come from the other half.
- ``"train-holdout"``: ``holdout`` class-stratified training images (seeded, the same for
  every model) monitor and are never trained on; each model's training subset is drawn
  from the rest of the training pool (``n_train`` still counts the images a model is fit
  on), and the whole test set is evaluated.

A leaf: numpy and the package's ``strenum`` only, so the declaration and the training
code both import it.
"""

from __future__ import annotations

import difflib
import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from .strenum import StrEnum

__all__ = ["EarlyStopping", "Monitor", "MonitorSplit", "run_split", "split"]


class Monitor(StrEnum):
    """Which images early stopping watches (see the module docstring)."""

    TEST = "test"  # the article's: the whole test set, also evaluated (leakage)
    TEST_HALF = "test-half"  # a stratified half of the test set; the claims get the other half
    TRAIN_HOLDOUT = "train-holdout"  # training images held out of every model's subset


@dataclass(frozen=True, repr=False)
class EarlyStopping:
    """An experiment's early-stopping protocol: which images the ``EarlyStopping``
    callback and the best-weights checkpoint monitor (their ``val_loss``; the patience
    is the profile's).

    ``monitor``: ``"test"`` (the default and the article's protocol: leakage, see the
    module docstring), ``"test-half"`` or ``"train-holdout"``. ``holdout``: for
    ``"train-holdout"`` only, the training images held out to monitor, a positive
    multiple of the number of classes (the experiment checks that). ``seed``: the
    split's seed (a non-negative integer; 0 by default), for ``"test-half"`` and
    ``"train-holdout"``. Raises ValueError naming the field and the fix for anything
    else. Any protocol but the default is part of every model's cache key, so models
    of another protocol never mix; the default's keys are those models had before
    this field existed.
    """

    monitor: Monitor | str = Monitor.TEST
    holdout: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        where = "EarlyStopping"
        try:
            object.__setattr__(self, "monitor", Monitor(self.monitor))
        except ValueError:
            allowed = [m.value for m in Monitor]
            near = difflib.get_close_matches(str(self.monitor), allowed, n=1)
            fix = f"did you mean monitor={near[0]!r}?" if near else "e.g. EarlyStopping(monitor='test-half')"
            raise ValueError(
                f"{where}: monitor must be {', '.join(map(repr, allowed[:-1]))} or {allowed[-1]!r}, got "
                f"{self.monitor!r}; {fix}"
            ) from None
        for name in ("holdout", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f"{where}: {name} must be a non-negative integer, got {value!r}")
            object.__setattr__(self, name, int(value))
        if self.monitor == Monitor.TRAIN_HOLDOUT and self.holdout == 0:
            raise ValueError(
                f"{where}(monitor='train-holdout') needs holdout=N, the training images held out to "
                "monitor (a multiple of the number of classes), e.g. EarlyStopping('train-holdout', holdout=5000)"
            )
        if self.monitor != Monitor.TRAIN_HOLDOUT and self.holdout:
            raise ValueError(
                f"{where}(monitor={str(self.monitor)!r}): holdout={self.holdout} holds out training images, "
                "which only monitor='train-holdout' does; leave holdout out, or use monitor='train-holdout'"
            )
        if self.monitor == Monitor.TEST and self.seed:
            raise ValueError(
                f"{where}(monitor='test'): seed={self.seed} has nothing to draw (the whole test set "
                "monitors); leave seed out, or use monitor='test-half' or 'train-holdout'"
            )

    def __repr__(self) -> str:
        """As it would be declared: ``EarlyStopping('test-half', seed=3)``."""
        given = [repr(str(self.monitor))] + [f"{k}={getattr(self, k)}" for k in ("holdout", "seed") if getattr(self, k)]
        return f"EarlyStopping({', '.join(given)})"

    @property
    def leaks(self) -> bool:
        """Whether the monitoring images are evaluated too (the article's protocol)."""
        return self.monitor == Monitor.TEST

    @property
    def is_default(self) -> bool:
        return self == EarlyStopping()

    def as_dict(self) -> dict[str, Any]:
        """The protocol as plain JSON (cache keys, records): monitor, holdout, seed."""
        return {"monitor": str(self.monitor), "holdout": self.holdout, "seed": self.seed}

    @property
    def tag(self) -> str:
        """A short name for keys and file names: ``test-half``, ``test-half-seed3``,
        ``train-holdout5000``, ``train-holdout5000-seed1`` (``test`` for the default)."""
        base = str(self.monitor) + (str(self.holdout) if self.holdout else "")
        return base + (f"-seed{self.seed}" if self.seed else "")

    def describe(self) -> str:
        """One line for people, after "early stopping: ": what it monitors, what is evaluated."""
        if self.monitor == Monitor.TEST:
            return "monitors the whole test set, which is also evaluated (the article's protocol: leakage)"
        if self.monitor == Monitor.TEST_HALF:
            return (
                f"monitors a class-stratified half of the test set (seed {self.seed}); the claims and "
                "test accuracy are evaluated on the other half"
            )
        return (
            f"monitors {self.holdout} class-stratified training images held out of every model's "
            f"training set (seed {self.seed}); the whole test set is evaluated"
        )


@dataclass(frozen=True)
class MonitorSplit:
    """The data as a protocol splits it, as sorted int64 index arrays.

    ``train_pool``: training-set indices the training subsets are drawn from (every
    training image, but for ``"train-holdout"``). ``monitor_split``: ``"test"`` or
    ``"train"``, the split ``monitor`` indexes: the images early stopping watches.
    ``evaluated``: test-set indices the claims, the probe image and the test accuracy
    are judged on (the whole test set, but for ``"test-half"``)."""

    train_pool: np.ndarray
    monitor_split: str
    monitor: np.ndarray
    evaluated: np.ndarray

    def record(self) -> dict[str, Any]:
        """What a model's record keeps of the split: the sizes and SHA-256 digests of
        the monitoring and evaluated indices (first 16 hex digits), so that a record
        proves which images chose its epoch."""
        return {
            "monitor_split": self.monitor_split,
            "n_monitor": len(self.monitor),
            "monitor_indices_sha256": _digest(self.monitor),
            "n_evaluated": len(self.evaluated),
            "evaluated_indices_sha256": _digest(self.evaluated),
            "n_train_pool": len(self.train_pool),
        }


def _digest(idx: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(idx, dtype=np.int64).tobytes()).hexdigest()[:16]


def split(protocol: EarlyStopping, y_train: np.ndarray, y_test: np.ndarray) -> MonitorSplit:
    """The ``MonitorSplit`` of data with integer labels ``y_train`` and ``y_test``
    ((n,) or (n, 1)) under ``protocol``: deterministic, a function of the labels and the
    protocol alone (never of the model's seed, so every model of a run monitors the same
    images, as the article's all watch the same test set).

    ``"test-half"``: per class, in label order, a permutation of the class's test images
    drawn from ``numpy.random.default_rng((seed, 1))``; its first floor(n_class / 2)
    monitor, the rest are evaluated. ``"train-holdout"``: per class, ``holdout /
    classes`` training images drawn without replacement from
    ``numpy.random.default_rng((seed, 2))`` monitor; the rest form the pool. (Streams of
    their own, so the split never repeats the draws of a model's subset of the same seed.)

    Raises ValueError when ``holdout`` is not a multiple of the training split's classes
    or exceeds a class's images, naming the fix."""
    y_train = np.asarray(y_train).reshape(-1)
    y_test = np.asarray(y_test).reshape(-1)
    every_train = np.arange(len(y_train), dtype=np.int64)
    every_test = np.arange(len(y_test), dtype=np.int64)
    if protocol.monitor == Monitor.TEST:
        return MonitorSplit(every_train, "test", every_test, every_test)
    if protocol.monitor == Monitor.TEST_HALF:
        rng = np.random.default_rng((protocol.seed, 1))
        halves = [rng.permutation(np.flatnonzero(y_test == c)) for c in np.unique(y_test)]
        monitor = np.sort(np.concatenate([h[: len(h) // 2] for h in halves])).astype(np.int64)
        return MonitorSplit(every_train, "test", monitor, np.setdiff1d(every_test, monitor))
    classes = np.unique(y_train)
    if protocol.holdout % len(classes):
        raise ValueError(
            f"EarlyStopping(monitor='train-holdout', holdout={protocol.holdout}): the holdout is class-stratified, "
            f"so it must be a multiple of the training split's {len(classes)} classes"
        )
    per = protocol.holdout // len(classes)
    rng = np.random.default_rng((protocol.seed, 2))
    picks = []
    for c in classes:
        idx = np.flatnonzero(y_train == c)
        if per >= len(idx):
            raise ValueError(
                f"EarlyStopping(monitor='train-holdout', holdout={protocol.holdout}) holds out {per} training "
                f"images of class {c}, which has {len(idx)}: nothing would be left to train on; lower holdout"
            )
        picks.append(rng.choice(idx, size=per, replace=False))
    monitor = np.sort(np.concatenate(picks)).astype(np.int64)
    return MonitorSplit(np.setdiff1d(every_train, monitor), "train", monitor, every_test)


def run_split(run) -> MonitorSplit:
    """``split`` of a ``cnnclaims.run.Run``'s data under its experiment's protocol."""
    return split(run.experiment.early_stopping, run.data.y_train, run.data.y_test)
