"""Run profiles: how much data, how many epochs and seeds (``declaration.Profile``).

Each experiment declares its own (the article: ``article`` and ``smoke``); both
profiles of an experiment run the same code, only the sizes differ.
"""
from __future__ import annotations

from .declaration import Profile  # noqa: F401  (re-exported)


def get_profile(name: str | None, n_seeds: int | None = None, experiment=None) -> Profile:
    """``experiment.profile(name, n_seeds)`` (default: ``declaration.DEFAULT_EXPERIMENT``).

    Raises UnknownNameError for a profile the experiment lacks, ValueError for
    ``n_seeds`` < 1."""
    from .declaration import load_experiment

    return (experiment or load_experiment()).profile(name, n_seeds)
