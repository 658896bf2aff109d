"""How many seeds per size the sizes scope needs: the power analysis behind ``n_seeds``,
done for the sweep's per-seed slope t (issue 19, item 4). A script that prints figures;
it asserts nothing, and it trains nothing (it stops when the plan is not cached).

    python benchmarks/size_seeds_power.py [--profile article] [--data PATH] [--cache-dir DIR]

For each claim of the sizes scope, from the cached sweep's models: the per-seed slopes
per decade of training-set size (``stats.trend``), their SD, the margin per decade
(``verdicts.sizes_margin``: the claim's SESOI over log10(n_a / n_b)), and the seeds per
size a one-sample t of the slopes needs for 80% power at that margin at its family's
first Holm step, two-sided alpha / m (``stats.n_needed``, noncentral t of statsmodels'
``TTestPower``; the range over the SD's 95% CI from ``stats.n_needed_range``, df =
seeds - 1). Beside it, the rule ``n_seeds`` was chosen by (docs/concepts.md, "Design and power
of the seeds scope"): 80% power for a true effect of 2 SDs at the primary family's first
Holm step, here for the slope's one-sample t. Then the cost: models to train for a
given ``size_seeds`` times the mean training seconds per size read from the cached
models' records (``train_seconds``), and the 2-core wall time that sum suggests.

It reads the run through ``Run`` (models and statistics from the cache; nothing is
written there but what loading writes anyway, e.g. lock files) and computes the
verdicts with ``evaluate_catalog`` directly, so the verdict store is not touched.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from math import log10
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--profile", default="article")
    p.add_argument("--data", default=os.environ.get("CNNCLAIMS_DATA"), help="CIFAR-10 (default $CNNCLAIMS_DATA)")
    p.add_argument("--cache-dir", default=None, help="the model cache (default: the user's)")
    p.add_argument("--power", type=float, default=0.80)
    p.add_argument("--candidates", default="4,6,8,10,12,16,20,30", help="size_seeds values to cost")
    args = p.parse_args(argv)

    from scipy import stats as sps

    from cnnclaims import stats as st
    from cnnclaims.article import ARTICLE
    from cnnclaims.run import Run
    from cnnclaims.run_plan import missing
    from cnnclaims.verdicts import families, size_numbers, sizes_margin, trend_alternative

    run = Run(args.profile, data_path=args.data, cache_dir=args.cache_dir, progress=lambda *a, **k: None)
    prof = run.profile
    specs = [s for group in run.sweep["specs"].values() for s in group]
    if missing(run, specs):
        print(f"{len(missing)} sweep models are not cached; this script trains nothing", file=sys.stderr)
        return 1
    ev = run.evidence
    n_a, n_b = prof.n_train[run.a], prof.n_train[run.b]
    decades = abs(log10(n_a / n_b))
    seeds_now = prof.size_seeds
    print(
        f"profile {prof.name}: sizes {', '.join(f'{n:,}' for n in prof.sizes)}, {seeds_now} seeds per size; "
        f"conditions {run.a} {n_a:,} vs {run.b} {n_b:,} images = {decades:.3f} decades"
    )
    print(f"power {args.power:.2f}; first Holm step two-sided alpha / m per family; one-sample t of per-seed slopes\n")
    header = (
        f"{'claim':6} {'tier':9} {'m':>2} {'alpha/m':>7} {'SESOI':>6} {'margin/dec':>10} {'slope':>8} "
        f"{'SD slope':>8} {'d=margin/SD':>11} {'N at margin':>11} {'range (SD 95% CI)':>18}"
    )
    print(header)
    print("-" * len(header))
    needs: dict[str, list[float]] = {}
    for tier, members in families(ARTICLE.claims, "sizes"):
        m = len(members)
        for c in members:
            sizes, y, _ = size_numbers(c, ev)
            res = st.trend(sizes, y, trend_alternative(c, ev.size_sign))
            sd = float(res.spread)
            margin, _how = sizes_margin(c, ev)
            alpha = c.alpha / m
            n = st.n_needed(margin, sd, alpha, paired=True, power=args.power)
            lo, hi = st.n_needed_range(margin, sd, st.spread_df(res.n_per_group, True), alpha, True, args.power)
            needs.setdefault(tier, []).append(n)
            print(
                f"{c.id:6} {tier:9} {m:>2} {alpha:>7.4f} {c.sesoi:>6g} {margin:>10.4g} {res.effect:>8.4f} "
                f"{sd:>8.4f} {margin / sd:>11.3f} {_n(n):>11} {_n(lo) + '-' + _n(hi):>18}"
            )
    print()
    m_primary = len(next(ms for t, ms in families(ARTICLE.claims, "sizes") if t == "primary"))
    alpha1 = 0.05 / m_primary
    print(
        f"critical t at the primary family's first Holm step (two-sided {alpha1:.4f}): "
        + ", ".join(f"{k} seeds {sps.t.ppf(1 - alpha1 / 2, k - 1):.2f}" for k in (3, 4, 6, 8, 12))
    )
    two_sd = st.n_needed(2.0, 1.0, alpha1, paired=True, power=args.power)
    powers = {k: _power(2.0, k, alpha1) for k in range(3, 9)}
    print(
        f"n_seeds' rule (80% power for a 2-SD effect at two-sided {alpha1:.4f}), one-sample t of slopes: "
        f"{_n(two_sd)} seeds per size; power at 2 SD by seeds: " + ", ".join(f"{k}: {v:.3f}" for k, v in powers.items())
    )
    for tier, ns in needs.items():
        finite = sorted(x for x in ns if x == x)
        print(f"{tier}: seeds per size for 80% power at the margin, by claim: {', '.join(_n(x) for x in ns)}")
        if finite:
            print(f"  median {_n(statistics.median(finite))}, max {_n(max(finite))}")
    print()
    _cost(run, prof, [int(x) for x in args.candidates.split(",")])
    return 0


def _power(d: float, n: int, alpha_two_sided: float) -> float:
    from statsmodels.stats.power import TTestPower

    return float(TTestPower().power(d, n, alpha_two_sided / 2, alternative="larger"))


def _n(x: float) -> str:
    if x == float("inf"):
        return ">100,000"
    return "-" if x != x else f"{int(x):,}"


def _cost(run, prof, candidates: list[int]) -> None:
    """Models a sweep of k seeds per size adds to the cached one, and their training
    seconds by the cached records' mean per size."""
    import json

    models = Path(run.cache_dir) / "models"
    per_size: dict[int, list[float]] = {}
    for rec in models.glob("*/record.json"):
        d = json.loads(rec.read_text())
        spec = d.get("spec", {})
        if spec.get("max_epochs") != prof.max_epochs or spec.get("role") == "null":
            continue
        per_size.setdefault(int(spec["n_train"]), []).append(float(d["train_seconds"]))
    secs = {n: statistics.mean(per_size[n]) for n in prof.sizes if n in per_size}
    print(
        "mean training seconds per model (cached records): "
        + ", ".join(f"{n:,}: {secs[n]:.0f} s (n={len(per_size[n])})" for n in secs)
    )
    conditions = set(prof.n_train.values())
    own = [n for n in prof.sizes if n not in conditions]
    print(
        f"{'size_seeds':>10} {'new sweep models':>16} {'new condition models':>20} {'CPU-model-s':>11} "
        f"{'hours (1 at a time)':>19} {'hours, 2 cores':>14}"
    )
    for k in candidates:
        extra_sweep = len(own) * max(0, k - prof.size_seeds)
        # Seeds past n_seeds at the conditions' sizes are condition models not trained yet.
        extra_cond = sum(max(0, k - prof.n_seeds) for n in prof.sizes if n in conditions)
        total = sum(secs.get(n, float("nan")) * max(0, k - prof.size_seeds) for n in own) + sum(
            secs.get(n, float("nan")) * max(0, k - prof.n_seeds) for n in prof.sizes if n in conditions
        )
        print(
            f"{k:>10} {extra_sweep:>16} {extra_cond:>20} {total:>11.0f} {total / 3600:>19.2f} {total / 3600 / 2:>14.2f}"
        )


if __name__ == "__main__":
    sys.exit(main())
