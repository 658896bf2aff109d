"""Experiment profiles: how much data, how many epochs and seeds.

Both profiles run the same code; only the sizes differ.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from .errors import unknown


@dataclass(frozen=True)
class Profile:
    name: str
    n_benchmark: int  # training images of the benchmark model
    n_dummy: int  # training images of the dummy model (class-stratified subset)
    max_epochs: int
    patience: int  # EarlyStopping on val_loss, best weights restored
    n_seeds: int  # training seeds per condition (the `seeds` scope's N)
    batch_size: int = 32
    learning_rate: float = 1e-3

    def seeds(self) -> list[int]:
        return list(range(self.n_seeds))

    def null_seeds(self) -> list[int]:
        # The null control's second group: same size as the dummy, other seeds.
        return [1000 + s for s in range(self.n_seeds)]

    def as_dict(self) -> dict:
        return asdict(self)


PROFILES = {
    # The article: all 50,000 training images vs 10,000, trained to early stopping.
    # 8 seeds per condition: the primary claims' power for a 2-SD effect at their
    # corrected level (two-sided 0.05/4) is 0.85 (t approximation; 0.77 with 7, 0.66
    # with 6); see README "Design and power of the seeds scope" and `cnnclaims calibrate`.
    "article": Profile("article", n_benchmark=50_000, n_dummy=10_000, max_epochs=30, patience=3, n_seeds=8),
    # Fast loops: same code, a few thousand vs about a thousand images, two epochs.
    "smoke": Profile("smoke", n_benchmark=4_000, n_dummy=1_000, max_epochs=2, patience=1, n_seeds=3),
}


def get_profile(name: str, n_seeds: int | None = None) -> Profile:
    if name not in PROFILES:
        raise unknown("profile", name, PROFILES)
    p = PROFILES[name]
    if n_seeds is not None:
        if n_seeds < 1:
            raise ValueError(f"--seeds must be at least 1, got {n_seeds}")
        p = Profile(**{**p.as_dict(), "n_seeds": n_seeds})
    return p
