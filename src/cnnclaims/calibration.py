"""The verdicts' error rates by simulation, in every inferential scope; null splits of real models.

``calibrate`` runs each inferential scope's own measurement and decision (the same
checks, families, step-down and labels as ``verdicts.evaluate_catalog``; nothing is
re-implemented here) on many simulated experiments whose truth is known, and counts
the verdicts that the truth makes wrong (``wrong``):

- rejecting "the difference is 0" when it is 0 (*supported*, *refuted* or a
  *...-but-negligible* verdict where nothing differs);
- a direction opposite to a true nonzero difference;
- rejecting "|difference| >= SESOI" when the true difference is at or beyond the
  SESOI (a wrong *negligible*, or *...-but-negligible*).

The step-down (``stats.step_down_two_nulls``) is meant to keep the rate of *any* wrong
verdict in a family (one tier of one scope) at or below alpha, under every
configuration of true and false hypotheses. So each scope is simulated under several
truths (``CONDITIONS``; ``assignment`` says which claim gets which, in each family in
declaration order):

- ``null``: every claim at 0 (the complete null);
- ``partial``: every claim but the family's last at a large effect (``LARGE_SD``
  unit SDs), the last at 0 (a partial null: issue 19 found 0.047 there against 0.039
  under the complete null);
- ``mixed``: claims at 0, at the SESOI and at twice the SESOI, in turn;
- ``edge``: claims at 0 and at the SESOI, in turn: the case that shows two separate
  Holm families (``correction="holm-per-family"``) wrong up to about 2 alpha of the
  time, since every true null of both kinds is then near its boundary;
- also available: ``sesoi`` (every claim at its SESOI) and ``1sd``, ``2sd``, ``3sd``
  (every claim at that many unit SDs: the power of the design).

A true difference always points the claimed way. How each scope's numbers are drawn,
with the real models' correlations between claims:

- ``seeds``: N models per condition from a multivariate normal with the trained
  models' seed-to-seed covariance (pooled within the two groups: ``pooled_covariance``),
  through ``verdicts.evaluate_numbers`` (Welch or one-sample t, TOST);
- ``images`` (the experiment's per-image scope, e.g. ``frogs``): the real per-image
  differences of the first pair of models (a - b, or subject - threshold), every
  claim's column resampled together by image (so the correlations between claims are
  the images' own), each column centred on its condition's true difference, through
  ``verdicts.evaluate_image_numbers`` (paired or one-sample t, TOST; the signed-rank
  sensitivity check skipped, no verdict reads it);
- ``sizes``: one slope per seed per claim from a multivariate normal with the
  per-seed slopes' SDs and their correlation shrunk towards 0 (``shrunk_correlation``:
  with 4 seeds the 9 x 9 sample covariance has rank 3 at most, singular, and each
  sample correlation has a standard error near 0.5; the shrinkage intensity is
  estimated from the data, Schaefer & Strimmer 2005), through ``verdicts.evaluate_slopes``
  (the slope t of ``stats.trend``, TOST against the margin per decade of
  ``verdicts.sizes_margin``).

The result per (scope, family, condition): the rate of any wrong verdict with its
Clopper-Pearson 95% CI, split into wrong rejections of 0, wrong *negligible* and wrong
directions; per claim, the share of each label and, where its truth is not 0, its
power (the share of correct directional verdicts: *supported* in the true direction,
*supported-but-negligible* only while the truth lies inside the SESOI). The check
(``exceeds_alpha``) fails when a family's CI lies entirely above alpha.

``null_splits`` forms many null comparisons from real same-size models (the dummy
group and the null group together), every balanced split into two groups, and runs
the seeds pipeline on each. Splits share models, so they are dependent: the observed
rate is an estimate whose Clopper-Pearson CI is nominal (it assumes independence)
and too narrow.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from math import comb
from typing import Any

import numpy as np

from . import stats as st
from .claims import model_number
from .declaration import NULL, claims_key
from .errors import unknown
from .verdicts import (
    CORRECTIONS,
    EQUIVALENT,
    FALSE_POSITIVES,
    REFUTED,
    REFUTED_NEGLIGIBLE,
    SUPPORTED,
    SUPPORTED_NEGLIGIBLE,
    UNDERPOWERED,
    claim_numbers,
    evaluate_image_numbers,
    evaluate_numbers,
    evaluate_slopes,
    families,
    image_numbers,
    size_numbers,
    sizes_margin,
    trend_alternative,
)

CONDITIONS = ("null", "partial", "mixed", "edge")
MORE_CONDITIONS = ("sesoi", "1sd", "2sd", "3sd")
LARGE_SD = 4.0  # the partial null's large effect, in unit SDs (issue 19: 3 claims at 4 SD, 1 at 0)
MIXED_CYCLE = (0.0, 1.0, 2.0)  # multiples of the SESOI, claim by claim
EDGE_CYCLE = (0.0, 1.0)
SCOPES = ("seeds", "images", "sizes")  # the inferential scope kinds, in the order calibrated
DEFAULT_EXPERIMENTS = 800
DEFAULT_SEED = 20261129

DIRECTIONAL = {SUPPORTED: 1, SUPPORTED_NEGLIGIBLE: 1, REFUTED: -1, REFUTED_NEGLIGIBLE: -1}
LABELS = (*DIRECTIONAL, "negligible", UNDERPOWERED)


# --- what a verdict gets wrong ------------------------------------------------------


def _check_truth(label: str, truth: float, sesoi: float, claimed_sign: int) -> None:
    if label not in LABELS:
        raise unknown("inferential verdict label", label, LABELS)
    if not np.isfinite(truth):
        raise ValueError(f"the true difference must be a finite number, got {truth!r}")
    if not (np.isfinite(sesoi) and sesoi > 0):
        raise ValueError(f"the SESOI must be a positive number in the difference's units, got {sesoi!r}")
    if claimed_sign not in (1, -1):
        raise ValueError(f"claimed_sign must be +1 (claimed: greater) or -1 (claimed: less), got {claimed_sign!r}")


def wrong(label: str, truth: float, sesoi: float, claimed_sign: int) -> bool:
    """Whether the verdict ``label`` is wrong when the true difference is ``truth``.

    ``truth``: the true value of the tested difference (a - b, mean - threshold, or
    slope per decade), in the statistic's units, signed; ``sesoi``: the claim's SESOI
    in the same units (sizes scope: the margin per decade), positive; ``claimed_sign``:
    +1 when the claim says "greater", -1 for "less". A label is wrong when it

    - rejects "difference = 0" (``verdicts.FALSE_POSITIVES``) while ``truth`` is 0;
    - gives a direction (``supported...`` the claimed one, ``refuted...`` the
      opposite) against the sign of a nonzero ``truth``;
    - rejects "|difference| >= SESOI" (``verdicts.EQUIVALENT``) while |``truth``| is
      at or beyond ``sesoi``.

    *underpowered* rejects nothing and is never wrong. Raises UnknownNameError for a
    label that is not an inferential verdict (e.g. the probe's *inconclusive*) and
    ValueError for a non-finite truth, a SESOI that is not positive or a sign other
    than +1/-1."""
    _check_truth(label, truth, sesoi, claimed_sign)
    if label in FALSE_POSITIVES:
        if truth == 0:
            return True
        if np.sign(truth) != DIRECTIONAL[label] * claimed_sign:
            return True
    return label in EQUIVALENT and abs(truth) >= sesoi


def correct_direction(label: str, truth: float, sesoi: float, claimed_sign: int) -> bool:
    """Whether ``label`` finds the true direction of a nonzero ``truth`` without being
    ``wrong`` (arguments as ``wrong``): the success that a claim's power counts.
    Beyond the SESOI only *supported* / *refuted* in the true direction count; inside
    it the *...-but-negligible* labels count too. False when ``truth`` is 0."""
    if wrong(label, truth, sesoi, claimed_sign) or truth == 0 or label not in DIRECTIONAL:
        return False
    return bool(np.sign(truth) == DIRECTIONAL[label] * claimed_sign)


# --- the conditions ----------------------------------------------------------------


def assignment(condition: str, m: int) -> list[tuple[float, str]]:
    """Each of a family's ``m`` claims' true difference under ``condition`` (claims in
    declaration order, primary family first): ``(multiple, unit)`` with unit
    ``"sesoi"`` (the claim's SESOI; sizes: its margin per decade) or ``"sd"`` (the SD
    of the scope's per-unit number: per model, per image difference, per seed's slope).
    See the module docstring; raises UnknownNameError for another condition."""
    if condition == "null":
        return [(0.0, "sesoi")] * m
    if condition == "partial":
        return [(LARGE_SD, "sd")] * (m - 1) + [(0.0, "sesoi")] * min(m, 1)
    if condition == "mixed":
        return [(MIXED_CYCLE[i % len(MIXED_CYCLE)], "sesoi") for i in range(m)]
    if condition == "edge":
        return [(EDGE_CYCLE[i % len(EDGE_CYCLE)], "sesoi") for i in range(m)]
    if condition == "sesoi":
        return [(1.0, "sesoi")] * m
    if condition in ("1sd", "2sd", "3sd"):
        return [(float(condition[0]), "sd")] * m
    raise unknown("condition", condition, CONDITIONS + MORE_CONDITIONS)


def _describe(multiple: float, unit: str) -> str:
    if multiple == 0:
        return "0"
    return f"{multiple:g} x SESOI" if unit == "sesoi" else f"{multiple:g} SD"


# --- the scopes' simulators ----------------------------------------------------------


@dataclass
class Simulator:
    """One scope's simulated experiments. ``claims``: the scope's claims (declaration
    order); ``sd``, ``sesoi``, ``sign``: (k,) float64 per claim, the SD of the scope's
    per-unit number (the unit of the ``"sd"`` conditions), the SESOI on the test's
    scale and the claimed sign (+1/-1) of the tested difference; ``correlation``:
    (k, k) the claims' correlation the simulation keeps (None: no single matrix, the
    images' own); ``n``: units per condition; ``how``: one line on how it draws;
    ``sample(truth, rng)``: one experiment's numbers at ``truth`` ((k,) float64, the
    tested differences), in the form the scope's ``verdicts.evaluate_...`` takes;
    ``decide(numbers, correction)``: their ``{claim id: verdict label}``."""

    scope: str
    kind: str
    claims: list
    sd: np.ndarray
    sesoi: np.ndarray
    sign: np.ndarray
    n: int
    unit: str
    how: str
    sample: Callable[[np.ndarray, np.random.Generator], Any] = field(repr=False)
    decide: Callable[[Any, str], dict[str, str]] = field(repr=False)
    correlation: np.ndarray | None = None
    notes: dict[str, Any] = field(default_factory=dict)

    def draw(self, truth: np.ndarray, rng: np.random.Generator, correction: str = "step-down") -> dict[str, str]:
        """One simulated experiment's verdict labels at ``truth``."""
        return self.decide(self.sample(truth, rng), correction)

    def truths(self, condition: str) -> tuple[np.ndarray, dict[str, str]]:
        """((k,) true differences, {claim id: "0", "1 x SESOI", "4 SD", ...}) of a condition."""
        truth = np.zeros(len(self.claims))
        said = {}
        index = {c.id: j for j, c in enumerate(self.claims)}
        for _tier, members in families(self.claims, self.kind):
            for c, (k, unit) in zip(members, assignment(condition, len(members)), strict=True):
                j = index[c.id]
                truth[j] = k * (self.sesoi[j] if unit == "sesoi" else self.sd[j]) * self.sign[j]
                said[c.id] = _describe(k, unit)
        return truth, said


def _sign(alternative: str) -> int:
    return 1 if alternative == "greater" else -1


def _factor(cov: np.ndarray) -> np.ndarray:
    """A (k, k) matrix L with L L^T = ``cov`` for a positive semi-definite ``cov``
    (eigendecomposition, negative rounding-level eigenvalues set to 0: what numpy's
    ``multivariate_normal(method="eigh")`` does, computed once instead of per draw)."""
    w, v = np.linalg.eigh(cov)
    return v * np.sqrt(np.clip(w, 0.0, None))


def seeds_simulator(claims: Sequence, n: int, cov: np.ndarray, base: np.ndarray, scope: str = "seeds") -> Simulator:
    """The seeds scope's simulator: ``n`` models per condition, each model's numbers
    ((k,), one per claim, as ``claims.model_number``) drawn from a multivariate normal
    with covariance ``cov`` ((k, k), the seed-to-seed covariance of one model's
    numbers, ``pooled_covariance``) around condition b's means ``base`` ((k,); a
    threshold claim's tested group sits at its threshold plus the truth). Raises
    ValueError when the shapes disagree or ``n`` < 2."""
    claims = list(claims)
    k = len(claims)
    cov = np.asarray(cov, dtype=np.float64)
    base = np.asarray(base, dtype=np.float64)
    if cov.shape != (k, k) or base.shape != (k,):
        raise ValueError(f"seeds calibration: {k} claims need cov (k, k) and base (k,), got {cov.shape}, {base.shape}")
    if n < 2:
        raise ValueError(f"seeds calibration: a t-test needs at least 2 models per condition, got n = {n}")
    sd = np.sqrt(np.diag(cov))
    factor = _factor(cov)

    def sample(truth: np.ndarray, rng: np.random.Generator) -> dict:
        mu_a, mu_b = seeds_means(claims, base, sd, truth)
        xa = mu_a + rng.standard_normal((n, k)) @ factor.T
        xb = mu_b + rng.standard_normal((n, k)) @ factor.T
        return {c.id: claim_numbers(c, xa[:, j], xb[:, j]) for j, c in enumerate(claims)}

    def decide(numbers: dict, correction: str) -> dict[str, str]:
        # Only the labels are read: no MDE or N needed (plan), no P(superiority) CI.
        verdicts = evaluate_numbers(claims, numbers, "simulated", correction, plan=False, superiority=False)
        return {v.claim: v.verdict for v in verdicts}

    return Simulator(
        scope,
        "seeds",
        claims,
        sd,
        np.array([c.sesoi for c in claims], dtype=np.float64),
        np.array([_sign(c.alternative) for c in claims], dtype=np.float64),
        n,
        "models per condition",
        f"{n} models per condition drawn from a multivariate normal with the trained models' pooled "
        "seed-to-seed covariance",
        sample,
        decide,
        cov / np.outer(sd, sd) if np.all(sd > 0) else None,
    )


def seeds_means(claims: Sequence, base: np.ndarray, sd: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(condition a's means, condition b's means), each (k,), that put each claim's
    tested difference at ``truth`` ((k,)): a comparison's a - b; a threshold claim's
    subject mean - threshold (subject "b" moves b, any other a)."""
    mu_a = np.asarray(base, dtype=np.float64).copy()
    mu_b = mu_a.copy()
    for j, (c, t) in enumerate(zip(claims, truth, strict=True)):
        if c.kind == "compare":
            mu_a[j] = mu_b[j] + t
        elif c.subject == "b":
            mu_b[j] = c.threshold + t
        else:
            mu_a[j] = c.threshold + t
    # Subject "both" tests the smaller number of each (a, b) pair. Two independent
    # normals with mean mu and SD s have a minimum of mean mu - s/sqrt(pi), so both
    # members sit s/sqrt(pi) higher to put the tested minimum where it belongs.
    both = np.array([c.kind == "threshold" and c.subject == "both" for c in claims])
    mu_a = np.where(both, mu_a + sd / np.sqrt(np.pi), mu_a)
    mu_b = np.where(both, mu_a, mu_b)
    return mu_a, mu_b


def images_simulator(claims: Sequence, numbers: dict, scope: str = "images") -> Simulator:
    """The images scope's simulator from the real per-image numbers of the compared
    pair of models: ``numbers`` ``{claim id: (a (n,), b (n,))}`` for a comparison,
    ``{claim id: (subject (n,), None)}`` for a threshold claim (``verdicts.image_numbers``),
    floats in each statistic's units, the same n images in the same order for every
    claim (NaN: undefined, left out as the real test does).

    Each experiment resamples the n images with replacement, once for every claim (so
    the claims' correlations are the images'), and moves each claim's tested
    differences (a - b, or subject - threshold) by a constant so that their mean over
    the real images equals the condition's truth: the bootstrap population of each
    claim then has exactly that mean. Raises ValueError when the claims' image counts
    differ, or a claim has fewer than 2 defined differences."""
    claims = list(claims)
    diffs, bases = [], []
    for c in claims:
        a, b = numbers[c.id]
        a = np.asarray(a, dtype=np.float64)
        ref = np.full_like(a, float(c.threshold)) if b is None else np.asarray(b, dtype=np.float64)
        diffs.append(a - ref)
        bases.append(ref)
    sizes = {len(d) for d in diffs}
    if len(sizes) != 1:
        raise ValueError(f"images calibration: every claim needs the same images, got counts {sorted(sizes)}")
    d = np.column_stack(diffs)
    ref = np.column_stack(bases)
    n = d.shape[0]
    ok = np.isfinite(d)
    short = [c.id for j, c in enumerate(claims) if ok[:, j].sum() < 2]
    if short:
        raise ValueError(f"images calibration: claims {', '.join(short)} have fewer than 2 defined per-image values")
    centre = np.array([d[ok[:, j], j].mean() for j in range(len(claims))])
    sd = np.array([d[ok[:, j], j].std(ddof=1) for j in range(len(claims))])
    centred = d - centre
    paired = [numbers[c.id][1] is not None for c in claims]

    def sample(truth: np.ndarray, rng: np.random.Generator) -> dict:
        rows = rng.integers(0, n, size=n)
        moved = centred[rows] + truth
        base = ref[rows]
        # A comparison is measured on (b + difference, b), a threshold claim on
        # threshold + difference: the values the real check sees, in their own units.
        return {c.id: (base[:, j] + moved[:, j], base[:, j] if paired[j] else None) for j, c in enumerate(claims)}

    def decide(numbers: dict, correction: str) -> dict[str, str]:
        verdicts = evaluate_image_numbers(claims, numbers, "simulated", correction, plan=False, sensitivity=False)
        return {v.claim: v.verdict for v in verdicts}

    finite = ok.all(axis=1)
    corr = np.corrcoef(d[finite].T) if finite.sum() > 2 and np.all(sd > 0) else None
    return Simulator(
        scope,
        "images",
        claims,
        sd,
        np.array([c.sesoi for c in claims], dtype=np.float64),
        np.array([_sign(c.alternative) for c in claims], dtype=np.float64),
        n,
        "images",
        f"the real per-image differences of {n} images, resampled by image (every claim together) and "
        "centred on the condition's truth",
        sample,
        decide,
        np.atleast_2d(corr) if corr is not None else None,
    )


def shrunk_correlation(x: np.ndarray) -> tuple[np.ndarray, float]:
    """The correlation matrix of ``x`` ((n, k) float, n observations of k variables)
    shrunk towards the identity, and the shrinkage intensity lambda in [0, 1].

    R* = lambda I + (1 - lambda) R, with R the sample correlation and lambda the
    estimate of Schaefer & Strimmer (2005), "A shrinkage approach to large-scale
    covariance matrix estimation", Stat. Appl. Genet. Mol. Biol. 4:32, target D (the
    diagonal: variances kept, correlations shrunk towards 0): lambda = sum over i != j
    of Var^(r_ij) / sum over i != j of r_ij^2, with w_kij = z_ki z_kj the products of
    the standardised columns, Var^(r_ij) = n / (n - 1)^3 sum_k (w_kij - mean_k w_kij)^2,
    clipped to [0, 1]. With few observations (4 seeds) R is singular and noisy, and the
    estimate moves it most of the way to the identity; R* is positive definite whenever
    lambda > 0. A column without variance gets correlation 0. Raises ValueError for
    fewer than 3 observations or an array that is not 2-d."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 3:
        raise ValueError(f"shrunk_correlation: x must be (n, k) with n >= 3 observations, got shape {x.shape}")
    n, k = x.shape
    sd = x.std(axis=0, ddof=1)
    live = sd > 0
    z = np.zeros_like(x)
    z[:, live] = (x[:, live] - x[:, live].mean(axis=0)) / sd[live]
    w = z[:, :, None] * z[:, None, :]  # (n, k, k)
    w_bar = w.mean(axis=0)
    r = n / (n - 1) * w_bar
    var_r = n / (n - 1) ** 3 * ((w - w_bar) ** 2).sum(axis=0)
    off = ~np.eye(k, dtype=bool)
    denom = float((r[off] ** 2).sum())
    lam = 1.0 if denom == 0 else float(np.clip(var_r[off].sum() / denom, 0.0, 1.0))
    out = (1 - lam) * r
    np.fill_diagonal(out, 1.0)
    return out, lam


def sizes_simulator(
    claims: Sequence, slopes: np.ndarray, margins: np.ndarray, size_sign: int = 1, scope: str = "sizes"
) -> Simulator:
    """The sizes scope's simulator: each experiment draws one slope per seed per claim
    ((s, k), s = the observed seeds) from a multivariate normal with the observed
    per-seed slopes' SDs and their ``shrunk_correlation``, around the condition's true
    slopes. ``slopes``: (s, k) float64, the real slopes per decade (rows: seeds,
    columns: ``claims``; ``stats.trend``'s ``slopes_per_seed``); ``margins``: (k,) each
    claim's margin per decade (``verdicts.sizes_margin``); ``size_sign``: +1 when
    condition a has the larger training set. Raises ValueError for fewer than 3 seeds
    or shapes that disagree."""
    claims = list(claims)
    slopes = np.asarray(slopes, dtype=np.float64)
    margins = np.asarray(margins, dtype=np.float64)
    k = len(claims)
    if slopes.ndim != 2 or slopes.shape[1] != k or margins.shape != (k,):
        raise ValueError(f"sizes calibration: {k} claims need slopes (seeds, k) and margins (k,), got {slopes.shape}")
    if not np.isfinite(slopes).all():
        raise ValueError("sizes calibration: every seed needs a slope for every claim (a model without a number?)")
    s = slopes.shape[0]
    corr, lam = shrunk_correlation(slopes)
    sd = slopes.std(axis=0, ddof=1)
    factor = _factor(corr * np.outer(sd, sd))
    alternatives = [trend_alternative(c, size_sign) for c in claims]
    margin_of = {c.id: float(m) for c, m in zip(claims, margins, strict=True)}

    def sample(truth: np.ndarray, rng: np.random.Generator) -> dict:
        sim = truth + rng.standard_normal((s, k)) @ factor.T
        return {c.id: sim[:, j] for j, c in enumerate(claims)}

    def decide(slopes_of: dict, correction: str) -> dict[str, str]:
        verdicts = evaluate_slopes(claims, slopes_of, margin_of, size_sign, "simulated", correction, plan=False)
        return {v.claim: v.verdict for v in verdicts}

    return Simulator(
        scope,
        "sizes",
        claims,
        sd,
        margins,
        np.array([_sign(a) for a in alternatives], dtype=np.float64),
        s,
        "seeds (one slope each)",
        f"{s} per-seed slopes per claim from a multivariate normal with the observed slopes' SDs and their "
        f"correlation shrunk towards 0 (Schaefer-Strimmer lambda = {lam:.2f})",
        sample,
        decide,
        corr,
        {"shrinkage": lam},
    )


# --- running and summarising ----------------------------------------------------------


def _rate(k: int, n: int) -> dict:
    lo, hi = st.clopper_pearson(k, n)
    return {"count": k, "n": n, "rate": k / n if n else float("nan"), "ci": [lo, hi]}


def summarise(sim: Simulator, truth: np.ndarray, runs: list[dict]) -> dict:
    """One condition's figures from its runs (``{claim id: label}`` per experiment):
    per family (and ``"all"`` of the scope's families together) the rate of any wrong
    verdict (``wrong``) and its three kinds, each with its Clopper-Pearson 95% CI
    (``stats.clopper_pearson``); per claim the share of each label and, where its truth
    is not 0, its power (``correct_direction``)."""
    index = {c.id: j for j, c in enumerate(sim.claims)}

    def kinds(label: str, j: int) -> tuple[bool, bool, bool]:
        t, s, g = float(truth[j]), float(sim.sesoi[j]), int(sim.sign[j])
        bad = wrong(label, t, s, g)
        zero = bad and t == 0 and label in FALSE_POSITIVES
        negligible = bad and label in EQUIVALENT and abs(t) >= s
        direction = bad and t != 0 and label in DIRECTIONAL and np.sign(t) != DIRECTIONAL[label] * g
        return zero, negligible, direction

    verdict_kinds = [{cid: kinds(r[cid], index[cid]) for cid in r} for r in runs]
    groups = [(tier, [c.id for c in members]) for tier, members in families(sim.claims, sim.kind)]
    groups.append(("all", [c.id for c in sim.claims]))
    out: dict[str, Any] = {"any_wrong": {}, "wrong_zero": {}, "wrong_negligible": {}, "wrong_direction": {}}
    n = len(runs)
    for tier, ids in groups:
        out["any_wrong"][tier] = _rate(sum(any(any(vk[i]) for i in ids) for vk in verdict_kinds), n)
        for key, pos in (("wrong_zero", 0), ("wrong_negligible", 1), ("wrong_direction", 2)):
            out[key][tier] = _rate(sum(any(vk[i][pos] for i in ids) for vk in verdict_kinds), n)
    out["power"] = {
        c.id: sum(correct_direction(r[c.id], float(truth[j]), float(sim.sesoi[j]), int(sim.sign[j])) for r in runs) / n
        for j, c in enumerate(sim.claims)
        if truth[j] != 0
    }
    out["rates"] = {
        c.id: {lab: sum(r[c.id] == lab for r in runs) / n for lab in sorted({r[c.id] for r in runs})}
        for c in sim.claims
    }
    return out


class _Progress:
    """The calibration's progress lines: what, how far, elapsed, how long to go."""

    def __init__(self, progress: Callable[[str], Any] | None, total: int):
        self.progress, self.total, self.done, self.t0 = progress, total, 0, time.perf_counter()

    def step(self, what: str, i: int, n: int) -> None:
        self.done += 1
        if not self.progress or (i % max(1, n // 4) and i != n):
            return
        el = time.perf_counter() - self.t0
        left = el / self.done * (self.total - self.done)
        self.progress(
            f"cnnclaims calibrate: {what}: {i}/{n} experiments; all scopes {self.done}/{self.total}, "
            f"{el:.0f}s elapsed, about {left:.0f}s to go"
        )


def condition_rng(seed: int, scope: str, condition: str) -> np.random.Generator:
    """The random stream of one (scope, condition): seeded by ``seed`` and the two
    names (CRC-32), so that a condition's experiments are the same whichever other
    scopes and conditions run (a profile without a sweep, one condition added), and
    the same for every ``correction``: old and new procedures decide the very same
    simulated experiments."""
    return np.random.default_rng([seed, zlib.crc32(f"{scope}/{condition}".encode())])


def calibrate_scope(
    sim: Simulator,
    n_experiments: int,
    seed: int = DEFAULT_SEED,
    conditions: Sequence[str] = CONDITIONS,
    correction: str = "step-down",
    progress: _Progress | None = None,
) -> dict:
    """One scope's figures under ``conditions``, ``n_experiments`` simulated
    experiments each, through ``sim`` (see ``summarise``; random streams from
    ``condition_rng``)."""
    out: dict[str, Any] = {
        "scope": sim.scope,
        "kind": sim.kind,
        "n": sim.n,
        "unit": sim.unit,
        "how": sim.how,
        "claims": [c.id for c in sim.claims],
        "tiers": {c.id: c.tier for c in sim.claims},
        "sd": sim.sd.tolist(),
        "sesoi": sim.sesoi.tolist(),
        "correlation": sim.correlation.tolist() if sim.correlation is not None else None,
        **sim.notes,
        "conditions": {},
    }
    for cond in conditions:
        truth, said = sim.truths(cond)
        rng = condition_rng(seed, sim.scope, cond)
        runs = []
        for i in range(n_experiments):
            runs.append(sim.draw(truth, rng, correction))
            if progress:
                progress.step(f"{sim.scope} scope, condition {cond}", i + 1, n_experiments)
        out["conditions"][cond] = {"truth": dict(zip(out["claims"], truth.tolist(), strict=True)), "assigned": said}
        out["conditions"][cond].update(summarise(sim, truth, runs))
    return out


def calibrate(
    simulators: Sequence[Simulator],
    n_experiments: int = DEFAULT_EXPERIMENTS,
    conditions: Sequence[str] = CONDITIONS,
    seed: int = DEFAULT_SEED,
    correction: str = "step-down",
    progress: Callable[[str], Any] | None = None,
    skipped: dict[str, str] | None = None,
) -> dict:
    """Every simulator's scope under every condition (see the module docstring):
    ``{"alpha", "n_experiments", "seed", "correction", "conditions", "scopes": {scope
    name: calibrate_scope(...)}, "skipped": {scope name: why}}``. ``correction``: a key
    of ``verdicts.CORRECTIONS`` (the step-down; "holm-per-family", the pipeline before
    it, to show that the check fails on it). Raises UnknownNameError for an unknown
    correction or condition, ValueError for ``n_experiments`` < 1."""
    if correction not in CORRECTIONS:
        raise unknown("correction", correction, CORRECTIONS)
    for cond in conditions:
        assignment(cond, 1)  # an unknown name fails before any simulation
    if n_experiments < 1:
        raise ValueError(f"n_experiments must be at least 1, got {n_experiments}")
    bar = _Progress(progress, len(simulators) * len(conditions) * n_experiments)
    alphas = {c.alpha for sim in simulators for c in sim.claims}
    return {
        "alpha": min(alphas) if alphas else 0.05,
        "n_experiments": n_experiments,
        "seed": seed,
        "correction": correction,
        "conditions": list(conditions),
        "scopes": {
            sim.scope: calibrate_scope(sim, n_experiments, seed, conditions, correction, bar) for sim in simulators
        },
        "skipped": dict(skipped or {}),
    }


def calibrate_seeds(
    claims,
    n: int,
    cov: np.ndarray,
    base: np.ndarray,
    n_experiments: int = DEFAULT_EXPERIMENTS,
    conditions: Sequence[str] = CONDITIONS,
    seed: int = DEFAULT_SEED,
    correction: str = "step-down",
    progress: Callable[[str], Any] | None = None,
) -> dict:
    """``calibrate`` of the seeds scope alone (``seeds_simulator``)."""
    return calibrate([seeds_simulator(claims, n, cov, base)], n_experiments, conditions, seed, correction, progress)


def exceeds_alpha(result: dict) -> list[str]:
    """The check: ``"scope/family/condition"`` of every family whose rate of any
    wrong verdict has a Clopper-Pearson 95% CI entirely above alpha (empty: passed).
    The scope's families together (``"all"``) are not checked: each family is
    controlled on its own, so together they may reach (families) x alpha."""
    alpha = result["alpha"]
    out = []
    for scope, res in result["scopes"].items():
        for cond in _conditions_of(result, res):
            for tier, _ids in _families_of(res):
                if res["conditions"][cond]["any_wrong"][tier]["ci"][0] > alpha:
                    out.append(f"{scope}/{tier}/{cond}")
    return out


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


def model_matrix(models, claims) -> np.ndarray:
    """``(n_models, n_claims)`` float64: each model's seeds-scope number per claim."""
    return np.array([[model_number(m, c) for c in claims] for m in models], dtype=np.float64)


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


def _ci(r: dict) -> str:
    return f"{r['rate']:.4f} ({r['count']}/{r['n']}) [{r['ci'][0]:.4f}, {r['ci'][1]:.4f}]"


def _grid(head: list[str], rows: list[list[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    fmt = indent + "  ".join(f"{{:<{w}}}" for w in widths)
    return [fmt.format(*head).rstrip()] + [fmt.format(*r).rstrip() for r in rows]


def format_calibration(res: dict) -> str:
    """The calibration's figures as text (the command and the report print this)."""
    from .verdicts import CORRECTIONS_SHORT

    bad = exceeds_alpha(res)
    lines = [
        f"design calibration: {res['n_experiments']} simulated experiments per condition and scope, alpha = "
        f"{res['alpha']}, {CORRECTIONS_SHORT.get(res['correction'], res['correction'])} (seed {res['seed']}); "
        "a verdict is wrong when it rejects a difference of 0 that is true, finds the wrong direction, or calls "
        "negligible a difference at or beyond the SESOI",
        (
            f"check FAILED: the rate of any wrong verdict has a 95% CI above alpha for {', '.join(bad)}"
            if bad
            else "check passed: no family's rate of any wrong verdict has a 95% CI above alpha"
        ),
    ]
    for scope, why in res.get("skipped", {}).items():
        lines.append(f"{scope} scope: not calibrated ({why})")
    for scope, r in res["scopes"].items():
        lines += ["", f"{scope} scope ({r['kind']}): {r['how']}; N = {r['n']} {r['unit']}"]
        conds, fams = _conditions_of(res, r), _families_of(r)
        for cond in conds:
            if cond != "null":
                said = r["conditions"][cond]["assigned"]
                by_family = "; ".join(f"{tier} " + ", ".join(f"{cid} {said[cid]}" for cid in ids) for tier, ids in fams)
                lines.append(f"  {cond}: {by_family}")
        rows = []
        for cond in conds:
            f = r["conditions"][cond]
            for tier in [t for t, _ in fams] + ["all"]:
                rows.append(
                    [
                        cond,
                        tier,
                        _ci(f["any_wrong"][tier]),
                        f"{f['wrong_zero'][tier]['rate']:.4f}",
                        f"{f['wrong_negligible'][tier]['rate']:.4f}",
                        f"{f['wrong_direction'][tier]['rate']:.4f}",
                    ]
                )
        lines += _grid(
            ["condition", "family", "any wrong verdict [95% CI]", "wrong 0", "wrong negligible", "wrong direction"],
            rows,
        )
        power_conds = [c for c in conds if r["conditions"][c]["power"]]
        if power_conds:
            lines.append("  power (share of correct directional verdicts), at each claim's nonzero truth:")
            rows = []
            for j, cid in enumerate(r["claims"]):
                row = [cid, r["tiers"][cid], f"{r['sd'][j]:.3g}", f"{r['sesoi'][j]:.3g}"]
                for cond in power_conds:
                    f = r["conditions"][cond]
                    row.append(f"{f['power'][cid]:.3f} ({f['assigned'][cid]})" if cid in f["power"] else "-")
                rows.append(row)
            lines += _grid(["claim", "tier", "SD", "SESOI", *power_conds], rows)
    return "\n".join(lines)


def _conditions_of(result: dict, scope_result: dict) -> list[str]:
    """The conditions in the order they ran: a stored result's dicts come back with
    their keys sorted (the result store's JSON), its lists in order."""
    ran = [c for c in result.get("conditions", []) if c in scope_result["conditions"]]
    return ran or sorted(scope_result["conditions"])


def _families_of(r: dict) -> list[tuple[str, list[str]]]:
    """A scope result's families, primary first, claims in declaration order."""
    order: dict[str, list[str]] = {}
    for cid in sorted(r["claims"], key=lambda c: r["tiers"][c] != "primary"):
        order.setdefault(r["tiers"][cid], []).append(cid)
    return list(order.items())


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
    xa = model_matrix(run.evidence.groups[run.a], claims)
    xb = model_matrix(run.evidence.groups[run.b], claims)
    return claims, pooled_covariance(xa, xb), xb.mean(axis=0)


def observed_slopes(evidence, claims) -> tuple[np.ndarray, np.ndarray]:
    """((s, k) per-seed slopes per decade, (k,) margins per decade) of the sizes-scope
    ``claims`` in ``evidence``'s sweep, as the real verdicts compute them
    (``verdicts.size_numbers``, ``stats.trend``, ``verdicts.sizes_margin``). Raises
    ValueError when a claim lacks a slope for some seed."""
    cols, margins = [], []
    for c in claims:
        sizes, y, seeds = size_numbers(c, evidence)
        slopes = st.trend(sizes, y, trend_alternative(c, evidence.size_sign)).extra["slopes_per_seed"]
        if len(slopes) != len(seeds):
            raise ValueError(
                f"claim {c.id}: {len(slopes)} of {len(seeds)} seeds have a slope (a model without a number); "
                "the sizes calibration needs every seed's"
            )
        cols.append(slopes)
        margins.append(sizes_margin(c, evidence)[0])
    return np.array(cols, dtype=np.float64).T, np.array(margins, dtype=np.float64)


def run_simulators(run) -> tuple[list[Simulator], dict[str, str]]:
    """The simulators of ``run``'s inferential scopes (its experiment's order), and
    ``{scope: why}`` for each that cannot be simulated (e.g. one model per condition:
    no seed-to-seed spread)."""
    sims, skipped = [], {}
    ev = run.evidence
    for scope in run.scopes:
        kind = run.experiment.scope_kind(scope)
        if kind not in SCOPES:
            continue
        claims = run.experiment.claims_for(kind)
        try:
            if kind == "seeds":
                claims, cov, base = seeds_covariance(run)
                sims.append(seeds_simulator(claims, run.profile.n_seeds, cov, base, scope))
            elif kind == "images":
                sims.append(images_simulator(claims, {c.id: image_numbers(c, ev) for c in claims}, scope))
            else:
                slopes, margins = observed_slopes(ev, claims)
                sims.append(sizes_simulator(claims, slopes, margins, ev.size_sign, scope))
        except ValueError as exc:
            skipped[scope] = str(exc)
    return sims, skipped


def run_calibration(
    run,
    n_experiments: int | None = None,
    seed: int | None = None,
    progress=None,
    correction: str = "step-down",
) -> dict:
    """``calibrate`` of ``run``'s inferential scopes (``run_simulators``) with its
    profile's N and its trained models' numbers, stored in its result store (keyed by
    the models, the images, the claims, the training-set sizes, the experiments, the
    seed and the correction)."""
    n_experiments = n_experiments or DEFAULT_EXPERIMENTS
    seed = DEFAULT_SEED if seed is None else seed
    ev = run.evidence
    key = {
        "models": {g: [m.key for m in ms] for g, ms in sorted(ev.groups.items())},
        "sizes": [[n, [m.key for m in ms]] for n, ms in ev.sizes.items()],
        "size_sign": ev.size_sign,
        "n_train": dict(sorted(ev.n_train.items())),
        "scopes": list(run.scopes),
        "n": run.profile.n_seeds,
        "experiments": n_experiments,
        "seed": seed,
        "correction": correction,
        "conditions": list(CONDITIONS),
        "images": run.probe_indices.tolist(),
        "claims": claims_key(run.experiment),
    }

    def compute() -> dict:
        sims, skipped = run_simulators(run)
        return calibrate(
            sims, n_experiments, seed=seed, correction=correction, progress=progress or run.progress, skipped=skipped
        )

    return run.results.get("calibration", f"{run.profile.name}-{correction}", key, compute)
