"""The seeds design's error rates, by simulation and by null splits of real models.

``calibrate`` runs the seeds scope's verdict pipeline (``verdicts.evaluate_numbers``:
the same checks, families, Holm correction and decisions as ``evaluate_catalog``) on
simulated per-model numbers: N models per condition, drawn from a multivariate normal
with the seed-to-seed covariance of the real models (pooled within groups, so the
correlations between claims are kept). Conditions:

- ``null``: no difference (threshold claims at their threshold). Any *supported* or
  *refuted* verdict is a false positive; the family-wise error rate (FWER) is the
  share of experiments with at least one in the family, with its Clopper-Pearson 95% CI.
- ``sesoi``: every claim's true difference equals its SESOI, the edge of equivalence:
  the rate of *negligible* there is TOST's error rate (at most alpha).
- ``1sd``, ``2sd``, ``3sd``: a true difference of 1, 2, 3 seed-to-seed SDs in the
  claimed direction: the share of *supported* is each claim's power.

``null_splits`` forms many null comparisons from real same-size models (the dummy
group and the null group together), every balanced split into two groups, and runs
the same pipeline on each. Splits share models, so they are dependent: the observed
rate is an estimate whose Clopper-Pearson CI is nominal (it assumes independence)
and too narrow.
"""

from __future__ import annotations

import time
from itertools import combinations
from math import comb

import numpy as np

from . import stats as st
from .claims import model_number
from .declaration import NULL, claims_key
from .verdicts import FALSE_POSITIVES, NEGLIGIBLE, SUPPORTED, claim_numbers, evaluate_numbers, families

CONDITIONS = ("null", "sesoi", "1sd", "2sd", "3sd")
DEFAULT_EXPERIMENTS = 2000
DEFAULT_SEED = 20261129


def model_matrix(models, claims) -> np.ndarray:
    """``(n_models, n_claims)`` float64: each model's seeds-scope number per claim."""
    return np.array([[model_number(m, c) for c in claims] for m in models], dtype=np.float64)


def pooled_covariance(*groups) -> np.ndarray:
    """Within-group covariance pooled over groups: sum of each group's centred cross
    products over sum(n_g - 1). ``groups``: (n_g, k) arrays. Raises ValueError when
    no group has two models."""
    arrays = [np.asarray(g, dtype=np.float64) for g in groups]
    dof = sum(len(g) - 1 for g in arrays if len(g) > 1)
    if dof < 1:
        raise ValueError("the seed-to-seed covariance needs at least two models in one group")
    resid = np.concatenate([g - g.mean(axis=0) for g in arrays if len(g) > 1])
    return resid.T @ resid / dof


def _direction(claim) -> float:
    return 1.0 if claim.alternative == "greater" else -1.0


def condition_means(claims, base: np.ndarray, sd: np.ndarray, condition: str) -> tuple[np.ndarray, np.ndarray]:
    """(benchmark means, dummy means), each (k,), of one simulated condition."""
    mu_d = np.array(
        [c.threshold if c.kind == "threshold" else b for c, b in zip(claims, base, strict=False)], dtype=np.float64
    )
    if condition == "null":
        shift = np.zeros(len(claims))
    elif condition == "sesoi":
        shift = np.array([c.sesoi for c in claims])
    elif condition.endswith("sd"):
        shift = float(condition[:-2]) * sd
    else:
        raise ValueError(f"unknown condition {condition!r}; valid: {', '.join(CONDITIONS)}")
    mu_b = mu_d + shift * np.array([_direction(c) for c in claims])
    # Subject "both" tests the smaller number of each (benchmark, dummy) pair. Two
    # independent normals with mean mu and SD s have a minimum of mean mu - s/sqrt(pi),
    # so both members sit s/sqrt(pi) higher to put the tested minimum where it belongs.
    both = np.array([c.subject == "both" for c in claims])
    mu_b = np.where(both, mu_b + sd / np.sqrt(np.pi), mu_b)
    mu_d = np.where(both, mu_b, mu_d)
    return mu_b, mu_d


def simulate(
    claims,
    n: int,
    cov: np.ndarray,
    mu_b: np.ndarray,
    mu_d: np.ndarray,
    n_experiments: int,
    rng: np.random.Generator,
    correction: str = "step-down",
    progress=None,
    label: str = "",
) -> list[dict]:
    """Run ``n_experiments`` simulated seeds-scope experiments; each gives
    ``{claim id: verdict label}``."""
    out = []
    t0 = time.perf_counter()
    every = max(1, n_experiments // 5)
    for i in range(n_experiments):
        xb = rng.multivariate_normal(mu_b, cov, size=n, method="eigh")
        xd = rng.multivariate_normal(mu_d, cov, size=n, method="eigh")
        numbers = {c.id: claim_numbers(c, xb[:, j], xd[:, j]) for j, c in enumerate(claims)}
        # Only the labels are read: no MDE or N needed (plan), no P(superiority) CI.
        verdicts = evaluate_numbers(claims, numbers, "simulated", correction, plan=False, superiority=False)
        out.append({v.claim: v.verdict for v in verdicts})
        if progress and (i + 1) % every == 0:
            el = time.perf_counter() - t0
            progress(
                f"cnnclaims calibrate: condition {label}: {i + 1}/{n_experiments} experiments, {el:.0f}s "
                f"elapsed, about {el / (i + 1) * (n_experiments - i - 1):.0f}s to go in this condition"
            )
    return out


def _rate(k: int, n: int) -> dict:
    lo, hi = st.clopper_pearson(k, n)
    return {"count": k, "n": n, "rate": k / n if n else float("nan"), "ci": [lo, hi]}


def summarise(claims, runs: dict) -> dict:
    """Figures of ``calibrate`` from its runs: per-family FWER under the null, the
    rate of negligible at the SESOI, each claim's power and rates per condition."""
    fams = families(claims, "seeds")
    out: dict[str, dict] = {"fwer": {}, "negligible_at_sesoi": {}, "power": {}, "rates": {}}
    null = runs.get("null", [])
    for tier, members in fams if null else ():
        ids = [c.id for c in members]
        k = sum(any(r[i] in FALSE_POSITIVES for i in ids) for r in null)
        out["fwer"][tier] = _rate(k, len(null))
    if null:
        k = sum(any(r[c.id] in FALSE_POSITIVES for c in claims) for r in null)
        out["fwer"]["all"] = _rate(k, len(null))
    for cond, rs in runs.items():
        out["rates"][cond] = {
            c.id: {lab: sum(r[c.id] == lab for r in rs) / len(rs) for lab in set(r[c.id] for r in rs)} for c in claims
        }
    if "sesoi" in runs:
        rs = runs["sesoi"]
        out["negligible_at_sesoi"] = {c.id: _rate(sum(r[c.id] == NEGLIGIBLE for r in rs), len(rs)) for c in claims}
        out["negligible_at_sesoi"]["any"] = _rate(sum(any(r[c.id] == NEGLIGIBLE for c in claims) for r in rs), len(rs))
    for cond in ("1sd", "2sd", "3sd"):
        if cond in runs:
            rs = runs[cond]
            out["power"][cond] = {c.id: sum(r[c.id] == SUPPORTED for r in rs) / len(rs) for c in claims}
    return out


def calibrate(
    claims,
    n: int,
    cov: np.ndarray,
    base: np.ndarray,
    n_experiments: int = DEFAULT_EXPERIMENTS,
    conditions=CONDITIONS,
    seed: int = DEFAULT_SEED,
    correction: str = "step-down",
    progress=None,
) -> dict:
    """Simulate the seeds design; see the module docstring. ``claims``: the seeds-scope
    claims; ``n``: models per condition; ``cov``: (k, k) covariance of one model's
    numbers; ``base``: (k,) the dummy condition's means."""
    claims = list(claims)
    cov = np.asarray(cov, dtype=np.float64)
    sd = np.sqrt(np.diag(cov))
    rng = np.random.default_rng(seed)
    runs = {}
    for cond in conditions:
        mu_b, mu_d = condition_means(claims, np.asarray(base, dtype=np.float64), sd, cond)
        runs[cond] = simulate(claims, n, cov, mu_b, mu_d, n_experiments, rng, correction, progress, cond)
    return {
        "n_per_condition": n,
        "n_experiments": n_experiments,
        "seed": seed,
        "alpha": claims[0].alpha,
        "claims": [c.id for c in claims],
        "tiers": {c.id: c.tier for c in claims},
        "sd": sd.tolist(),
        "correlation": (cov / np.outer(sd, sd)).tolist() if np.all(sd > 0) else None,
        **summarise(claims, runs),
    }


def fwer_exceeds_alpha(result: dict) -> list[str]:
    """Families whose FWER Clopper-Pearson CI lies entirely above alpha (the check)."""
    alpha = result["alpha"]
    return [tier for tier, r in result["fwer"].items() if tier != "all" and r["ci"][0] > alpha]


def null_splits(models, claims, max_splits: int = 1000, seed: int = DEFAULT_SEED) -> dict:
    """Every balanced split of same-size ``models`` into two groups (up to
    ``max_splits``, a seeded sample beyond), each run through the seeds pipeline.
    ``claims``: directional claims. Returns per-family and per-verdict false-positive
    rates with (nominal) Clopper-Pearson CIs, and the splits' count."""
    claims = [c for c in claims if c.directional]
    x = model_matrix(models, claims)
    m = len(models)
    half = m // 2
    if half < 2:
        raise ValueError(f"null splits need at least 4 same-size models, got {m}")
    # Fixing model 0 in the first group counts each unordered split once.
    total = comb(m - 1, half - 1) if m == 2 * half else comb(m, half)
    rng = np.random.default_rng(seed)
    if total <= max_splits:
        splits = [c for c in combinations(range(m), half) if m != 2 * half or c[0] == 0]
    else:
        seen: set = set()
        while len(seen) < max_splits:
            pick = tuple(sorted(rng.choice(m, half, replace=False).tolist()))
            if m != 2 * half or pick[0] == 0:
                seen.add(pick)
        splits = sorted(seen)
    runs = []
    for a in splits:
        b = [i for i in range(m) if i not in a]
        numbers = {c.id: claim_numbers(c, x[list(a), j], x[b, j]) for j, c in enumerate(claims)}
        verdicts = evaluate_numbers(claims, numbers, "null split", plan=False, superiority=False)
        runs.append({v.claim: v.verdict for v in verdicts})
    out: dict = {
        "models": m,
        "group_size": half,
        "splits": len(splits),
        "possible_splits": total,
        "dependent": True,
        "family": {},
        "per_claim": {},
    }
    for tier, members in families(claims, "seeds"):
        ids = [c.id for c in members]
        out["family"][tier] = _rate(sum(any(r[i] in FALSE_POSITIVES for i in ids) for r in runs), len(runs))
    n_verdicts = len(runs) * len(claims)
    out["verdicts"] = _rate(sum(r[c.id] in FALSE_POSITIVES for r in runs for c in claims), n_verdicts)
    out["per_claim"] = {c.id: sum(r[c.id] in FALSE_POSITIVES for r in runs) / len(runs) for c in claims}
    return out


def format_calibration(res: dict) -> str:
    """The calibration's figures as text (the command prints this)."""
    lines = [
        f"seeds design: N = {res['n_per_condition']} models per condition, {res['n_experiments']} simulated "
        f"experiments per condition, alpha = {res['alpha']}, Holm within each family"
    ]
    for tier, r in res["fwer"].items():
        note = (
            " (both families together: each is controlled at alpha, so this may reach 2 x alpha)"
            if tier == "all"
            else ""
        )
        lines.append(
            f"family-wise false-positive rate ({tier}): {r['rate']:.4f} "
            f"({r['count']}/{r['n']}, Clopper-Pearson 95% CI [{r['ci'][0]:.4f}, {r['ci'][1]:.4f}]){note}"
        )
    if res.get("negligible_at_sesoi"):
        r = res["negligible_at_sesoi"]["any"]
        lines.append(
            f"negligible under a true SESOI-sized effect (any claim): {r['rate']:.4f} "
            f"[{r['ci'][0]:.4f}, {r['ci'][1]:.4f}]"
        )
    head = (
        ["claim", "tier", "SD"]
        + [f"power {c}" for c in ("1sd", "2sd", "3sd") if c in res["power"]]
        + ["negligible at SESOI"]
    )
    rows = []
    for j, cid in enumerate(res["claims"]):
        row = [cid, res["tiers"][cid], f"{res['sd'][j]:.3g}"]
        row += [f"{res['power'][c][cid]:.3f}" for c in ("1sd", "2sd", "3sd") if c in res["power"]]
        neg = res.get("negligible_at_sesoi", {}).get(cid)
        row.append(f"{neg['rate']:.3f}" if neg else "n/a")
        rows.append(row)
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines += [fmt.format(*head)] + [fmt.format(*r) for r in rows]
    return "\n".join(lines)


def format_null_splits(res: dict) -> str:
    fam = "; ".join(
        f"{tier} {r['count']}/{r['n']} = {r['rate']:.3f} [{r['ci'][0]:.3f}, {r['ci'][1]:.3f}]"
        for tier, r in res["family"].items()
    )
    v = res["verdicts"]
    return (
        f"null splits: {res['splits']} of {res['possible_splits']} balanced splits of {res['models']} same-size "
        f"models into {res['group_size']} vs {res['models'] - res['group_size']}; splits with a false positive per "
        f"family: {fam}; false-positive verdicts {v['count']}/{v['n']} = {v['rate']:.4f} "
        f"[{v['ci'][0]:.4f}, {v['ci'][1]:.4f}] (splits share models: dependent, CIs nominal)"
    )


# --- a run's calibration (``run.Run.calibration`` and ``run.Run.null_splits``) -----------


def same_size_models(run) -> list:
    """Evidence of every model of b's recipe in ``run`` (a ``cnnclaims.run.Run``): the
    b group, then the null group."""
    return run.evidence.groups[run.b] + run.null_evidence.groups[NULL]


def run_null_splits(run) -> dict | None:
    """``null_splits`` over every model of b's recipe in ``run`` (stored in its result
    store); None with fewer than 4 such models (two per group at least)."""
    models = same_size_models(run)
    if len(models) < 4:
        return None
    key = {
        "models": [m.key for m in models],
        "images": run.probe_indices.tolist(),
        "claims": claims_key(run.experiment),
    }
    return run.results.get(
        "null-splits",
        "seeds",
        key,
        lambda: null_splits(models, run.experiment.claims_for("seeds", directional_only=True)),
    )


def seeds_covariance(run) -> tuple:
    """(claims, (k, k) pooled seed-to-seed covariance, (k,) means of b) of the
    seeds-scope claims' per-model numbers, from ``run``'s trained models."""
    claims = run.experiment.claims_for("seeds")
    xb = model_matrix(run.evidence.groups[run.a], claims)
    xd = model_matrix(run.evidence.groups[run.b], claims)
    return claims, pooled_covariance(xb, xd), xd.mean(axis=0)


def run_calibration(run, n_experiments: int | None = None, seed: int | None = None, progress=None) -> dict:
    """``calibrate`` with ``run``'s profile N and its trained models' seed-to-seed
    covariance (stored per models, N, experiments and seed)."""
    n_experiments = n_experiments or DEFAULT_EXPERIMENTS
    seed = DEFAULT_SEED if seed is None else seed
    claims, cov, base = seeds_covariance(run)
    n = run.profile.n_seeds
    key = {
        "models": [m.key for g in (run.a, run.b) for m in run.evidence.groups[g]],
        "n": n,
        "experiments": n_experiments,
        "seed": seed,
        "images": run.probe_indices.tolist(),
        "claims": claims_key(run.experiment),
    }
    return run.results.get(
        "calibration",
        f"n{n}",
        key,
        lambda: calibrate(claims, n, cov, base, n_experiments, seed=seed, progress=progress or run.progress),
    )
