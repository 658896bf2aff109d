"""What a claim reads from one model's evidence: per-image values, one number per model,
and a threshold claim's subject.

Claims themselves are declared with ``cnnclaims.declaration.Claim`` (the article's in
``cnnclaims.article``); these functions are the same for every experiment.
"""

from __future__ import annotations

import numpy as np

from .declaration import ALPHA, PRIMARY, SCOPE_KINDS, SECONDARY, Claim  # noqa: F401  (re-exported)


def values(model_ev, stat: str) -> np.ndarray:
    """``(n_images,)`` float64 per-image values of ``stat`` for one model's evidence.

    Raises KeyError naming the statistics the table holds for an unknown one."""
    s = model_ev.stats
    if stat not in s:
        raise KeyError(f"no per-image statistic {stat!r} in this model's table; it holds {', '.join(sorted(s))}")
    return np.asarray(s[stat], dtype=np.float64)


def model_number(model_ev, claim: Claim) -> float:
    """The one number per model the seeds scope compares: test accuracy, or the
    mean of the claim's statistic over the probe-class images (NaN images left out)."""
    if claim.model_metric == "test_accuracy":
        return model_ev.test_accuracy
    v = values(model_ev, claim.stat)
    return float(np.mean(v[np.isfinite(v)])) if np.isfinite(v).any() else float("nan")


def subject_values(claim: Claim, a, b) -> np.ndarray:
    """Per-image values a threshold claim tests: condition a's, b's, the input's (the
    same in every model's table), or (subject "both") the smaller of the two models'."""
    va = values(a, claim.stat)
    if claim.subject == "both":
        return np.minimum(va, values(b, claim.stat))
    if claim.subject == "b":
        return values(b, claim.stat)
    return va  # "a", or "input" (identical in every model's table)
