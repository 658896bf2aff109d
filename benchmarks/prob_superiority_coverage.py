"""Coverage of the 95% CI of P(superiority) by simulation (issue 19, item 5): the
Brunner-Munzel interval cnnclaims used until then, the interval it uses now
(``stats.prob_superiority``: Newcombe 2006, Method 5) and, for the record, the
studentized permutation interval on the logit scale (Neubert & Brunner 2007; Pauly,
Asendorf & Konietschke 2016) that was considered. A script that prints figures; it
asserts nothing.

    python benchmarks/prob_superiority_coverage.py [--reps 2000] [--n-a 8] [--n-b 8]
        [--sd-ratio 1] [--shifts 0,0.5,1,2,3] [--seed 20250519]

Each run draws n_a models of group a from N(shift, sd_ratio^2) and n_b of group b
from N(0, 1); the true P(a > b) is Phi(shift / sqrt(1 + sd_ratio^2)). Per shift it
prints the true P, the share of runs whose groups separate completely, and per
interval its coverage (a run without an interval counts as a miss), the share of runs
without one, and its mean width (over the runs with one). Then the seconds per call of
each interval and of ``stats.welch`` with and without P(superiority), the machine's
load averages beside them (other jobs on the cores move the times).

The permutation interval: T* = (logit p* - logit 1/2) p* (1 - p*) / se* over every
split of the pooled sample (a seeded sample of 10,000 splits when there are more),
se* the Brunner-Munzel standard error, and the interval expit(logit p - q se / (p (1
- p))) for the 2.5% and 97.5% quantiles q of T*. At complete separation (se = 0,
logit p infinite) it takes the lower end of the nearest rank pattern, one pair
swapped, and 1 (or the mirror at p = 0): the published method gives no rule there.
"""

from __future__ import annotations

import argparse
import time
from itertools import combinations
from math import comb
from pathlib import Path

import numpy as np
from scipy import special
from scipy import stats as sps

from cnnclaims import stats as st


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:  # not Linux
        return "?"


def brunner_munzel_ci(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """The interval of cnnclaims' ``prob_superiority`` before issue 19: Brunner-Munzel
    with Welch-Satterthwaite df (statsmodels ``rank_compare_2indep``), NaN when the
    variance estimate is 0 (complete separation), clipped to [0, 1]."""
    from statsmodels.stats.nonparametric import rank_compare_2indep

    with np.errstate(all="ignore"):
        res = rank_compare_2indep(a, b)
        try:
            lo, hi = (float(v) for v in res.conf_int(alpha=0.05))
        except (ValueError, ZeroDivisionError, FloatingPointError):
            lo = hi = float("nan")
    if not (np.isfinite(lo) and np.isfinite(hi)) or hi - lo <= 0:
        return float("nan"), float("nan")
    return max(0.0, lo), min(1.0, hi)


def placements(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(p, var): P(a > b) + P(a = b)/2 and its Brunner-Munzel variance
    var(placements of a)/n_a + var(placements of b)/n_b, over the last axis of
    ``a`` (..., n_a) and ``b`` (..., n_b)."""
    wins = (a[..., :, None] > b[..., None, :]) + 0.5 * (a[..., :, None] == b[..., None, :])
    pa, pb = wins.mean(axis=-1), 1.0 - wins.mean(axis=-2)
    return pa.mean(axis=-1), pa.var(axis=-1, ddof=1) / a.shape[-1] + pb.var(axis=-1, ddof=1) / b.shape[-1]


class PermutationLogit:
    """The studentized permutation interval on the logit scale (see the module
    docstring). Its permutation quantiles depend on the pooled sample's ranks only,
    so they are kept per rank pattern (continuous data: one pattern per n_a, n_b)."""

    def __init__(self, max_splits: int = 10_000, seed: int = 0):
        self.max_splits, self.seed = max_splits, seed
        self.quantiles: dict[tuple, tuple[float, float]] = {}

    def _quantiles(self, ranks: np.ndarray, n_a: int) -> tuple[float, float]:
        key = (n_a, tuple(np.sort(ranks)))
        if key not in self.quantiles:
            n = len(ranks)
            if comb(n, n_a) <= self.max_splits:
                pick = np.array(list(combinations(range(n), n_a)))
            else:
                rng = np.random.default_rng(self.seed)
                pick = np.sort(np.argsort(rng.random((self.max_splits, n)), axis=1)[:, :n_a], axis=1)
            in_a = np.zeros((len(pick), n), bool)
            in_a[np.arange(len(pick))[:, None], pick] = True
            r = np.broadcast_to(ranks, in_a.shape)
            p, v = placements(r[in_a].reshape(len(pick), n_a), r[~in_a].reshape(len(pick), n - n_a))
            with np.errstate(all="ignore"):  # separated splits (v = 0) count as the extremes
                t = np.where(v == 0, np.sign(p - 0.5) * np.inf, special.logit(p) * p * (1 - p) / np.sqrt(v))
            lo, hi = np.quantile(t, [0.025, 0.975])
            self.quantiles[key] = (float(lo), float(hi))
        return self.quantiles[key]

    def __call__(self, a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
        n_a = len(a)
        ranks = sps.rankdata(np.concatenate([a, b]))
        q_lo, q_hi = self._quantiles(ranks, n_a)
        p, v = placements(a, b)
        if v > 0:
            se = np.sqrt(v) / (p * (1 - p))
            lo, hi = special.expit(special.logit(p) - np.array([q_hi, q_lo]) * se)
            return float(lo), float(hi)
        # Complete separation: the nearest pattern, the closest pair swapped, for the
        # group on top (a at p = 1; b at p = 0, where T*'s quantiles change sign).
        n_top, q = (n_a, q_hi) if p == 1 else (len(b), -q_lo)
        n = len(ranks)
        top = np.r_[n - n_top, np.arange(n - n_top + 2, n + 1)].astype(float)
        rest = np.r_[np.arange(1, n - n_top), n - n_top + 1].astype(float)
        p1, v1 = placements(top, rest)
        low = float(special.expit(special.logit(p1) - q * np.sqrt(v1) / (p1 * (1 - p1))))
        return (low, 1.0) if p == 1 else (0.0, 1.0 - low)


def seconds_per_call(f, *args, repeat: int = 300) -> float:
    f(*args)
    t = time.perf_counter()
    for _ in range(repeat):
        f(*args)
    return (time.perf_counter() - t) / repeat


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=2000, help="simulated experiments per shift")
    ap.add_argument("--n-a", type=int, default=8, help="models in group a")
    ap.add_argument("--n-b", type=int, default=8, help="models in group b")
    ap.add_argument("--sd-ratio", type=float, default=1.0, help="SD of group a over SD of group b")
    ap.add_argument("--shifts", default="0,0.5,1,2,3", help="mean of a minus mean of b, in SDs of b")
    ap.add_argument("--seed", type=int, default=20250519)
    args = ap.parse_args(argv)
    if min(args.n_a, args.n_b) < 2 or args.reps < 1 or args.sd_ratio <= 0:
        ap.error("--n-a and --n-b must be >= 2, --reps >= 1 and --sd-ratio > 0")

    rng = np.random.default_rng(args.seed)
    perm = PermutationLogit(seed=args.seed)
    intervals = {
        "Brunner-Munzel (old)": brunner_munzel_ci,
        "Newcombe M5 (new)": lambda a, b: tuple(st.prob_superiority(a, b)["prob_superiority_ci"]),
        "perm-logit (considered)": perm,
    }
    print(
        f"P(superiority) 95% CI coverage: {args.n_a} vs {args.n_b} models, a ~ N(shift, {args.sd_ratio:g}^2), "
        f"b ~ N(0, 1), {args.reps} runs per shift, seed {args.seed}"
    )
    head = f"{'shift':>5} {'true P':>6} {'separ.':>6}"
    for name in intervals:
        head += f" | {name:^23}"
    print(head)
    print(f"{'':>5} {'':>6} {'':>6}" + " | cover  no CI  width   " * len(intervals))
    for shift in (float(s) for s in args.shifts.split(",")):
        true_p = float(sps.norm.cdf(shift / np.sqrt(1 + args.sd_ratio**2)))
        a_all = rng.normal(shift, args.sd_ratio, (args.reps, args.n_a))
        b_all = rng.normal(0.0, 1.0, (args.reps, args.n_b))
        _, var = placements(a_all, b_all)
        line = f"{shift:5.1f} {true_p:6.3f} {np.mean(var == 0):6.3f}"
        for f in intervals.values():
            ci = np.array([f(a, b) for a, b in zip(a_all, b_all, strict=True)])
            has = np.isfinite(ci).all(axis=1)
            cover = np.mean(has & (ci[:, 0] <= true_p) & (true_p <= ci[:, 1]))
            width = float(np.mean(ci[has, 1] - ci[has, 0])) if has.any() else float("nan")
            line += f" | {cover:5.3f}  {1 - has.mean():5.3f}  {width:5.3f}  "
        print(line)

    a, b = rng.normal(1.0, args.sd_ratio, args.n_a), rng.normal(0.0, 1.0, args.n_b)
    print(f"\nseconds per call ({args.n_a} vs {args.n_b}; load averages {load_average()}):")
    for name, f in intervals.items():
        print(f"  {name:<32} {seconds_per_call(f, a, b):.2e}")
    uncached = seconds_per_call(lambda: PermutationLogit()(a, b), repeat=5)
    print(f"  {'perm-logit, quantiles not cached':<32} {uncached:.2e}")
    print(f"  {'stats.welch':<32} {seconds_per_call(st.welch, a, b, 'greater', 0.5):.2e}")
    lean = seconds_per_call(lambda: st.welch(a, b, "greater", 0.5, superiority=False))
    print(f"  {'stats.welch, superiority=False':<32} {lean:.2e}  (the calibration's path)")
    print(f"load averages after: {load_average()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
