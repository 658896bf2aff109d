"""Statistical tests behind the verdicts (thin wrappers over scipy.stats).

The unit of replication decides the test:
- images (the ``frogs`` scope): the same image through both models gives a pair;
  one-sided Wilcoxon signed-rank test, matched-pairs rank-biserial correlation as
  effect size, percentile bootstrap CI over images;
- training seeds (the ``seeds`` scope): one number per trained model; one-sided
  Welch t-test, whose p-value reflects N, effect = difference of means with its
  Welch confidence interval (Hedges' g is reported beside it);
- one image (the ``probe`` scope): no test at all, since pixels of one image are
  not independent samples of a model; the verdict is descriptive.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
N_BOOTSTRAP = 2000
BOOTSTRAP_SEED = 20240607


@dataclass(frozen=True)
class TestResult:
    test: str
    statistic: float  # the test statistic (W, t) or, descriptive, the difference
    p_value: float  # one-sided, in the claimed direction; NaN when descriptive
    p_opposite: float  # one-sided, in the opposite direction
    effect_name: str
    effect: float
    ci_low: float
    ci_high: float
    n: int
    extra: dict


def _clean_pairs(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired samples need equal 1-d shapes, got {a.shape} and {b.shape}")
    keep = np.isfinite(a) & np.isfinite(b)
    return a[keep], b[keep]


def rank_biserial(d, axis=-1):
    """Matched-pairs rank-biserial correlation of differences ``d``, in [-1, 1].

    (rank sum of positive differences - rank sum of negative ones) / their total,
    +1 when every non-zero difference is positive. Ranks of |d| are taken with zeros
    included and zeros then carry no weight (Pratt's handling), which keeps the
    function vectorised for the bootstrap.
    """
    d = np.moveaxis(np.asarray(d, dtype=np.float64), axis, -1)
    r = np.where(d == 0, 0.0, stats.rankdata(np.abs(d), axis=-1))
    pos = np.where(d > 0, r, 0.0).sum(axis=-1)
    neg = np.where(d < 0, r, 0.0).sum(axis=-1)
    tot = pos + neg
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(tot > 0, (pos - neg) / tot, 0.0)


def wilcoxon_paired(a, b, alternative: str) -> TestResult:
    """One-sided Wilcoxon signed-rank test of a - b ('greater' or 'less')."""
    a, b = _clean_pairs(a, b)
    return wilcoxon_one_sample(a - b, 0.0, alternative, _test="Wilcoxon signed-rank (paired images)")


def wilcoxon_one_sample(x, threshold: float, alternative: str, _test="Wilcoxon signed-rank (one sample)") -> TestResult:
    _check_alternative(alternative)
    d = np.asarray(x, dtype=np.float64)
    d = d[np.isfinite(d)] - threshold
    n = len(d)
    if n < 2 or not np.any(d != 0):
        nan = float("nan")
        return TestResult(_test, nan, 1.0, 1.0, "rank-biserial r", 0.0, nan, nan, n, {"median_difference": 0.0})
    res = stats.wilcoxon(d, alternative=alternative, zero_method="wilcox")
    opp = stats.wilcoxon(d, alternative=_flip(alternative), zero_method="wilcox")
    ci = stats.bootstrap(
        (d,), rank_biserial, vectorized=True, n_resamples=N_BOOTSTRAP, confidence_level=CONFIDENCE,
        method="percentile", random_state=np.random.default_rng(BOOTSTRAP_SEED),
    ).confidence_interval
    return TestResult(
        _test, float(res.statistic), float(res.pvalue), float(opp.pvalue), "rank-biserial r",
        float(rank_biserial(d)), float(ci.low), float(ci.high), n, {"median_difference": float(np.median(d))},
    )


def welch(a, b, alternative: str) -> TestResult:
    """One-sided Welch t-test of mean(a) - mean(b) across independent models."""
    _check_alternative(alternative)
    a = np.asarray(a, dtype=np.float64)[np.isfinite(a)]
    b = np.asarray(b, dtype=np.float64)[np.isfinite(b)]
    diff = float(a.mean() - b.mean()) if len(a) and len(b) else float("nan")
    if len(a) < 2 or len(b) < 2:
        return _too_few("Welch t-test (seeds)", diff, len(a) + len(b))
    res = stats.ttest_ind(a, b, equal_var=False, alternative=alternative)
    opp = stats.ttest_ind(a, b, equal_var=False, alternative=_flip(alternative))
    ci = stats.ttest_ind(a, b, equal_var=False).confidence_interval(CONFIDENCE)
    return TestResult(
        "Welch t-test (seeds)", _finite(res.statistic), _p(res.pvalue), _p(opp.pvalue),
        "difference of means", diff, float(ci.low), float(ci.high), len(a) + len(b),
        {"hedges_g": hedges_g(a, b), "mean_a": float(a.mean()), "mean_b": float(b.mean()),
         "sd_a": float(a.std(ddof=1)), "sd_b": float(b.std(ddof=1)), "n_a": len(a), "n_b": len(b)},
    )


def t_one_sample(x, threshold: float, alternative: str) -> TestResult:
    _check_alternative(alternative)
    x = np.asarray(x, dtype=np.float64)[np.isfinite(x)]
    diff = float(x.mean() - threshold) if len(x) else float("nan")
    if len(x) < 2:
        return _too_few("one-sample t-test (seeds)", diff, len(x))
    res = stats.ttest_1samp(x, threshold, alternative=alternative)
    opp = stats.ttest_1samp(x, threshold, alternative=_flip(alternative))
    ci = stats.ttest_1samp(x, threshold).confidence_interval(CONFIDENCE)
    return TestResult(
        "one-sample t-test (seeds)", _finite(res.statistic), _p(res.pvalue), _p(opp.pvalue),
        "mean - threshold", diff, float(ci.low) - threshold, float(ci.high) - threshold, len(x),
        {"mean": float(x.mean()), "sd": float(x.std(ddof=1))},
    )


def descriptive(value: float, reference: float) -> TestResult:
    """One image: the difference, no p-value (pixels are not replicates)."""
    diff = float(value - reference)
    nan = float("nan")
    return TestResult("descriptive (one image)", diff, nan, nan, "difference", diff, nan, nan, 1, {})


def hedges_g(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    na, nb = len(a), len(b)
    sp = np.sqrt(((na - 1) * a.var(ddof=1) + (nb - 1) * b.var(ddof=1)) / (na + nb - 2))
    if sp == 0:
        return float(np.sign(a.mean() - b.mean()) * np.inf) if a.mean() != b.mean() else 0.0
    return float((a.mean() - b.mean()) / sp * (1 - 3 / (4 * (na + nb) - 9)))


def holm(p_values) -> np.ndarray:
    """Holm step-down adjusted p-values (NaN entries are left out and stay NaN)."""
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full_like(p, np.nan)
    idx = np.flatnonzero(np.isfinite(p))
    m = len(idx)
    if m == 0:
        return out
    order = idx[np.argsort(p[idx], kind="stable")]
    adj = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out[order] = np.minimum(adj, 1.0)
    return out


def min_p_exact_permutation(n_a: int, n_b: int) -> float:
    """Smallest one-sided p an exact two-sample permutation test can give."""
    from math import comb

    return 1.0 / comb(n_a + n_b, n_a)


def welch_power(effect_size: float, n: int, alpha: float, n_sims: int = 20000, seed: int = 0) -> float:
    """Monte-Carlo power of the one-sided Welch test, n vs n normal samples, at ``alpha``."""
    rng = np.random.default_rng(seed)
    a = rng.normal(effect_size, 1.0, (n_sims, n))
    b = rng.normal(0.0, 1.0, (n_sims, n))
    p = stats.ttest_ind(a, b, axis=1, equal_var=False, alternative="greater").pvalue
    return float(np.mean(p < alpha))


def _too_few(test, diff, n):
    nan = float("nan")
    return TestResult(test, nan, 1.0, 1.0, "difference of means", diff, nan, nan, n, {"note": "fewer than 2 per group"})


def _finite(v) -> float:
    return float(v) if np.isfinite(v) else float(np.sign(v) * 1e300) if not np.isnan(v) else float("nan")


def _p(v) -> float:
    # Zero variance in both groups gives NaN; no evidence either way.
    return 1.0 if np.isnan(v) else float(v)


def _flip(alternative: str) -> str:
    return {"greater": "less", "less": "greater"}[alternative]


def _check_alternative(alternative: str) -> None:
    if alternative not in ("greater", "less"):
        raise ValueError(f"alternative must be 'greater' or 'less', got {alternative!r}")
