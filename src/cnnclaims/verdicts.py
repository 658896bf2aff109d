"""From evidence to verdicts, decided once, in one place.

One small check per (scope, kind of claim), chosen from ``CHECKS``, measures a claim
(``Measured``: the test result, the values compared, the data scope, notes); then
``decide_family`` corrects a scope's family of claims for multiplicity and labels each
one. A ``Verdict`` is complete and immutable when it leaves ``evaluate_catalog``.

The four verdicts of the inferential scopes (``frogs``, ``seeds``):

- *supported*: the difference is significant in the claimed direction: the two-sided
  p (2 x the smaller one-sided p), Holm-corrected within the claim's family, is below
  alpha and the estimate points the claimed way;
- *refuted*: the same, in the opposite direction;
- *negligible*: two one-sided tests (TOST) put the difference inside +/- the claim's
  SESOI, Holm-corrected the same way (this takes precedence: a difference that is
  significant but provably smaller than the SESOI is negligible);
- *underpowered*: none of these. The verdict says what would decide it: the minimal
  detectable effect (MDE) at 80% power with the present N, the N per condition that
  would give 80% power at the SESOI given the observed spread, or that the test's
  smallest attainable p cannot pass the corrected threshold (*unreachable*).

Why two-sided p for a one-sided claim: a *refuted* verdict is an error too when
nothing differs, so both directions share one Holm family (directional decisions
from two-sided tests keep the family-wise error rate at alpha; Shaffer 1980).
The MDE and N needed are computed at the family's first Holm step, alpha / m
(two-sided), the level the smallest p must pass.

The ``probe`` scope is one image: descriptive *supported* / *refuted* by the sign of
the difference, *negligible* when it is smaller than the SESOI, and *inconclusive*
when the statistic is undefined on the probe (the note says why).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from itertools import groupby

import numpy as np

from . import CLASSES
from . import stats as st
from .claims import CATALOG, PRIMARY, SCOPES, Claim, model_number, subject_values, values
from .errors import unknown

SUPPORTED, REFUTED, NEGLIGIBLE, UNDERPOWERED = "supported", "refuted", "negligible", "underpowered"
INCONCLUSIVE = "inconclusive"  # probe scope only: the statistic is undefined on the probe
VERDICTS = (SUPPORTED, REFUTED, NEGLIGIBLE, UNDERPOWERED, INCONCLUSIVE)
FALSE_POSITIVES = (SUPPORTED, REFUTED)  # in a null comparison, any significant direction is an error

# Why a per-image statistic can be undefined (NaN), for the notes.
UNDEFINED_WHY = {
    "c1_input_corr": "a correlation needs variance: every conv2d_1 map, or the grey input, is constant",
    "c1_redundancy": "fewer than two non-constant conv2d_1 maps, so no pair has a correlation",
    "c6_scaled_mean": "conv2d_6 is all zeros, so there is no maximum to scale by",
    "c6_scaled_p95": "conv2d_6 is all zeros, so there is no maximum to scale by",
    "input_abs_skew": "the input is constant, so its skewness is 0/0",
}


@dataclass(frozen=True)
class Verdict:
    """One claim in one scope, decided. Numbers are float64 in the statistic's units
    unless named otherwise; p-values are probabilities; CIs are two-sided 95%."""

    claim: str  # claim id
    name: str  # claim id + slug
    scope: str
    verdict: str  # one of VERDICTS
    test: str
    statistic: float
    p_value: float  # one-sided in the claimed direction, uncorrected
    p_opposite: float  # one-sided in the opposite direction, uncorrected
    p_two_sided: float  # 2 x min(p_value, p_opposite)
    p_holm: float  # p_two_sided, Holm-adjusted within (scope, tier)
    p_equivalence: float  # TOST p against +/- sesoi, uncorrected
    p_equivalence_holm: float  # Holm-adjusted the same way
    effect_name: str
    effect: float
    ci_low: float
    ci_high: float
    n: int
    benchmark_value: float
    dummy_value: float
    data_scope: str
    claimed: str
    family: str = "article"  # "article" or "null control"
    tier: str = PRIMARY  # multiplicity family: "primary" or "secondary"
    family_size: int = 1  # claims in the (scope, tier) family
    alpha: float = 0.05
    sesoi: float = float("nan")
    mde: float = float("nan")  # minimal detectable effect at 80% power, statistic's units
    n_needed: float = float("nan")  # units per condition for 80% power at the SESOI
    min_p: float = 0.0  # smallest two-sided p the test can attain with this n
    n_per_group: int = 0  # units per condition (models per group, or images)
    decides: str = ""  # what would decide an underpowered verdict
    prob_superiority: float = float("nan")  # seeds: P(benchmark model > dummy model)
    prob_superiority_ci: tuple = (float("nan"), float("nan"))
    inferential: bool = True
    extras: dict = field(default_factory=dict)
    notes: str = ""

    @property
    def key(self) -> str:
        return f"{self.claim}/{self.scope}"

    @property
    def unreachable(self) -> bool:
        return self.inferential and self.min_p * self.family_size >= self.alpha

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Verdict":
        d = dict(d)
        d["prob_superiority_ci"] = tuple(d.get("prob_superiority_ci", (float("nan"), float("nan"))))
        return cls(**d)

    def summary(self) -> str:
        def f(v):
            return "n/a" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{v:.4g}"

        ps = ""
        if np.isfinite(self.prob_superiority):
            lo, hi = self.prob_superiority_ci
            ci = (f"95% CI {f(lo)}..{f(hi)}" if np.isfinite(lo)
                  else "no CI: the groups separate completely, the Brunner-Munzel variance is 0")
            ps = f", P(benchmark model > dummy model)={f(self.prob_superiority)} ({ci})"
        return (
            f"{self.name} [{self.scope}, {self.tier}] {self.verdict.upper()}: {self.claimed}; {self.test}: "
            f"statistic={f(self.statistic)}, p (one-sided)={f(self.p_value)}, p (two-sided)={f(self.p_two_sided)}, "
            f"p_holm={f(self.p_holm)}, TOST p_holm={f(self.p_equivalence_holm)} (SESOI {f(self.sesoi)}), "
            f"{self.effect_name}={f(self.effect)} (two-sided 95% CI {f(self.ci_low)}..{f(self.ci_high)}){ps}, "
            f"benchmark={f(self.benchmark_value)}, dummy={f(self.dummy_value)}, n={self.n}; {self.data_scope}"
            + (f"; to decide: {self.decides}" if self.decides else "")
            + (f"; {self.notes}" if self.notes else "")
        )


@dataclass(frozen=True)
class Measured:
    """What a check measured for one claim, before the family's correction."""

    res: st.TestResult
    benchmark_value: float
    dummy_value: float
    data_scope: str
    extras: dict = field(default_factory=dict)
    notes: str = ""
    forced: str | None = None  # a probe verdict fixed by the check (refuted by a probe check, inconclusive)


# --- the checks: one per (scope, kind) ----------------------------------------------

def _group_label(evidence) -> str:
    return "null group" if evidence.label == "null control" else "benchmark"


def _undefined_note(claim: Claim, role: str, seed: int, count: int | None = None) -> str:
    why = UNDEFINED_WHY.get(claim.stat, "the statistic has no value for this input")
    where = f"{count} images of the {role} (seed {seed})" if count is not None else f"the probe for the {role} (seed {seed})"
    return f"{claim.stat} undefined (NaN) on {where}: {why}"


def check_probe(claim: Claim, evidence) -> Measured:
    """The article's single frog through the first pair: the difference, no p-value."""
    b, d = evidence.first("benchmark"), evidence.first("dummy")
    bname, pos = _group_label(evidence), evidence.probe_position
    if claim.seeds_stat == "test_accuracy":
        bv, dv = b.test_accuracy, d.test_accuracy
        data_scope = f"probe: the article's single pair ({bname} seed {b.seed} vs dummy seed {d.seed}), test accuracy"
    else:
        bv = float(subject_values(claim, b, d)[pos]) if claim.kind == "threshold" else float(values(b, claim.stat)[pos])
        dv = float("nan") if claim.kind == "threshold" else float(values(d, claim.stat)[pos])
        data_scope = (
            f"probe: one test-set image (position {pos} among {evidence.n_images} probe-class images), "
            f"{bname} seed {b.seed} vs dummy seed {d.seed}; descriptive, no p-value (pixels are not replicates)"
        )
    ref = dv if claim.kind == "compare" else claim.threshold
    res = st.descriptive(bv, ref)
    extras, failed = {}, []
    for desc, role, stat, op, val in claim.probe_checks:
        got = float(values(b if role == "benchmark" else d, stat)[pos])
        extras[f"{role}_{stat}"] = got
        if (got == val) != (op == "eq"):
            failed.append(f"{desc}: no ({stat}={CLASSES[int(got)] if stat == 'argmax' else got})")
    for x in claim.extras:
        extras[f"benchmark_{x}"] = float(values(b, x)[pos])
        if claim.kind == "compare":
            extras[f"dummy_{x}"] = float(values(d, x)[pos])
    undefined = [(role, m.seed) for role, m, v in ((bname, b, bv), ("dummy", d, dv))
                 if not np.isfinite(v) and not (role == "dummy" and claim.kind == "threshold")]
    if undefined:
        note = "; ".join(_undefined_note(claim, role, seed) for role, seed in undefined)
        return Measured(res, bv, dv, data_scope, extras, note + " (not evidence either way)", INCONCLUSIVE)
    if failed:
        return Measured(res, bv, dv, data_scope, extras, "; ".join(failed), REFUTED)
    return Measured(res, bv, dv, data_scope, extras)


def _nan_notes(claim: Claim, models) -> str:
    notes = []
    for role, m in models:
        k = int(np.sum(~np.isfinite(values(m, claim.stat))))
        if k:
            notes.append(_undefined_note(claim, role, m.seed, k))
    return "; ".join(notes) + " (left out)" if notes else ""


def check_frogs_compare(claim: Claim, evidence) -> Measured:
    b, d = evidence.first("benchmark"), evidence.first("dummy")
    vb, vd = values(b, claim.stat), values(d, claim.stat)
    res = st.wilcoxon_paired(vb, vd, claim.alternative, claim.sesoi)
    extras = {}
    for x in claim.extras:
        extras[f"benchmark_median_{x}"] = float(np.nanmedian(values(b, x)))
        extras[f"dummy_median_{x}"] = float(np.nanmedian(values(d, x)))
    return Measured(res, _nanmedian(vb), _nanmedian(vd), _frogs_scope(evidence), extras,
                    _nan_notes(claim, ((_group_label(evidence), b), ("dummy", d))))


def check_frogs_threshold(claim: Claim, evidence) -> Measured:
    b, d = evidence.first("benchmark"), evidence.first("dummy")
    v = subject_values(claim, b, d)
    res = st.wilcoxon_one_sample(v, claim.threshold, claim.alternative, claim.sesoi)
    extras = {f"benchmark_median_{x}": float(np.nanmedian(values(b, x))) for x in claim.extras}
    return Measured(res, _nanmedian(v), float("nan"), _frogs_scope(evidence), extras,
                    _nan_notes(claim, ((_group_label(evidence), b),)))


def _nanmedian(v) -> float:
    v = np.asarray(v, dtype=np.float64)
    return float(np.median(v[np.isfinite(v)])) if np.isfinite(v).any() else float("nan")


def _frogs_scope(evidence) -> str:
    b, d = evidence.first("benchmark"), evidence.first("dummy")
    return (f"frogs: {evidence.n_images} test-set probe-class images, paired per image, "
            f"{_group_label(evidence)} seed {b.seed} vs dummy seed {d.seed}")


def claim_numbers(claim: Claim, per_benchmark, per_dummy) -> tuple:
    """The seeds scope's input from one number per model of each group (in seed
    order): ``(benchmark (n_b,), dummy (n_d,))`` for a comparison, ``(subject (n,),
    None)`` for a threshold claim (subject "both": the smaller number of each seed's
    pair)."""
    b, d = np.asarray(per_benchmark, dtype=np.float64), np.asarray(per_dummy, dtype=np.float64)
    if claim.kind == "compare":
        return b, d
    if claim.subject == "both":
        n = min(len(b), len(d))
        return np.minimum(b[:n], d[:n]), None
    return (d if claim.subject == "dummy" else b), None


def seed_numbers(claim: Claim, evidence) -> tuple:
    """``claim_numbers`` of the evidence's models (see ``claims.model_number``)."""
    return claim_numbers(claim, [model_number(m, claim) for m in evidence.groups["benchmark"]],
                         [model_number(m, claim) for m in evidence.groups["dummy"]])


def measure_seeds(claim: Claim, numbers: tuple, data_scope: str = "seeds", notes: str = "") -> Measured:
    """The seeds scope's test on per-model numbers (see ``seed_numbers``): Welch for a
    comparison, a one-sample t-test against the threshold otherwise; both with TOST."""
    a, b = numbers
    if b is not None:
        res = st.welch(a, b, claim.alternative, claim.sesoi)
        extras = {"benchmark_per_seed": np.asarray(a).tolist(), "dummy_per_seed": np.asarray(b).tolist()}
        return Measured(res, float(np.nanmean(a)), float(np.nanmean(b)), data_scope, extras, notes)
    res = st.t_one_sample(a, claim.threshold, claim.alternative, claim.sesoi)
    return Measured(res, float(np.nanmean(a)), float("nan"), data_scope, {"per_seed": np.asarray(a).tolist()}, notes)


def check_seeds(claim: Claim, evidence) -> Measured:
    gb, gd = evidence.groups["benchmark"], evidence.groups["dummy"]
    what = "test accuracy" if claim.seeds_stat == "test_accuracy" else f"mean over {evidence.n_images} images"
    data_scope = (
        f"seeds: {len(gb)} {_group_label(evidence)} models (seeds {_seeds(gb)}) vs {len(gd)} dummy models "
        f"(seeds {_seeds(gd)}), one number per model ({what})"
    )
    numbers = seed_numbers(claim, evidence)
    notes = "; ".join(f"{k} {role} model(s) have no defined mean of {claim.stat}: left out"
                      for role, arr in zip(("benchmark", "dummy"), numbers)
                      if arr is not None and (k := int(np.sum(~np.isfinite(arr)))))
    return measure_seeds(claim, numbers, data_scope, notes)


def _seeds(group) -> str:
    return ",".join(str(m.seed) for m in group)


# The table: which check measures a claim in a scope.
CHECKS = {
    ("probe", "compare"): check_probe,
    ("probe", "threshold"): check_probe,
    ("frogs", "compare"): check_frogs_compare,
    ("frogs", "threshold"): check_frogs_threshold,
    ("seeds", "compare"): check_seeds,
    ("seeds", "threshold"): check_seeds,
}


# --- the decision ---------------------------------------------------------------

def _label(claim: Claim, m: Measured, p_holm: float, eq_holm: float) -> str:
    if eq_holm < claim.alpha:
        return NEGLIGIBLE
    if p_holm < claim.alpha:
        towards = m.res.p_value <= m.res.p_opposite
        return SUPPORTED if towards else REFUTED
    return UNDERPOWERED


def _decides(claim: Claim, res: st.TestResult, m_family: int, mde: float, n_needed: float) -> str:
    alpha_first = claim.alpha / m_family
    unit = "images" if res.paired and res.test.startswith("Wilcoxon") else "models per condition"
    if res.min_p * m_family >= claim.alpha:
        return (f"unreachable with N = {res.n_per_group}: the smallest attainable p ({res.min_p:.3g}) cannot pass "
                f"the corrected threshold alpha/m = {alpha_first:.3g}; more {unit} are needed")
    parts = []
    if np.isfinite(mde):
        parts.append(f"MDE at 80% power with N = {res.n_per_group}: {mde:.3g} (SESOI {claim.sesoi:g})")
    if np.isfinite(n_needed):
        parts.append(f"N = {int(n_needed)} {unit} would give 80% power at the SESOI "
                     f"(observed SD {res.spread:.3g}, alpha/m = {alpha_first:.3g})")
    elif n_needed == np.inf:
        parts.append(f"over 100,000 {unit} would be needed for 80% power at the SESOI (observed SD {res.spread:.3g})")
    return "; ".join(parts) or "no spread to plan with"


def decide_family(claims, scope: str, measured, label: str = "article", adjust=st.holm,
                  plan: bool = True) -> list[Verdict]:
    """Verdicts of one multiplicity family (claims of one tier in one scope).

    ``measured``: one ``Measured`` per claim, in order. ``adjust`` maps a vector of
    p-values to adjusted ones (Holm by default; the calibration swaps in an
    uncorrected one to show that its check can fail). ``plan=False`` skips the MDE
    and N-needed of underpowered verdicts (the labels are the same; the calibration's
    10,000 simulated experiments do not need them)."""
    claims, measured = list(claims), list(measured)
    inferential = scope != "probe"
    m_family = len(claims)
    p2 = np.array([st.two_sided(m.res.p_value, m.res.p_opposite) for m in measured])
    peq = np.array([m.res.p_equivalence for m in measured])
    p2_adj = adjust(p2) if inferential else np.full(len(claims), np.nan)
    peq_adj = adjust(peq) if inferential else np.full(len(claims), np.nan)
    out = []
    for c, m, p2c, pa, qa in zip(claims, measured, p2, p2_adj, peq_adj):
        res = m.res
        mde = n_need = float("nan")
        decides = ""
        if not inferential:
            if m.forced:
                verdict = m.forced
            elif np.isfinite(c.sesoi) and abs(res.effect) < c.sesoi:
                verdict = NEGLIGIBLE
            else:
                verdict = SUPPORTED if (res.statistic > 0) == (c.alternative == "greater") else REFUTED
        else:
            verdict = _label(c, m, pa, qa)
            if verdict == UNDERPOWERED and plan:
                mde = st.mde(res.n_per_group, res.spread, c.alpha / m_family, res.paired)
                n_need = st.n_needed(c.sesoi, res.spread, c.alpha / m_family, res.paired)
                decides = _decides(c, res, m_family, mde, n_need)
        extra = dict(res.extra)
        ps = extra.pop("prob_superiority", float("nan"))
        ps_ci = tuple(extra.pop("prob_superiority_ci", (float("nan"), float("nan"))))
        out.append(Verdict(
            claim=c.id, name=c.name, scope=scope, verdict=verdict, test=res.test, statistic=res.statistic,
            p_value=res.p_value, p_opposite=res.p_opposite, p_two_sided=float(p2c),
            p_holm=float(pa), p_equivalence=float(res.p_equivalence), p_equivalence_holm=float(qa),
            effect_name=res.effect_name, effect=res.effect, ci_low=res.ci_low, ci_high=res.ci_high, n=res.n,
            benchmark_value=m.benchmark_value, dummy_value=m.dummy_value, data_scope=m.data_scope,
            claimed=c.describe(), family=label, tier=c.tier, family_size=m_family, alpha=c.alpha, sesoi=c.sesoi,
            mde=mde, n_needed=n_need, min_p=res.min_p, n_per_group=res.n_per_group, decides=decides,
            prob_superiority=ps, prob_superiority_ci=ps_ci,
            inferential=inferential, extras={**extra, **m.extras}, notes=m.notes,
        ))
    return out


def families(claims, scope: str) -> list[tuple[str, list[Claim]]]:
    """The scope's multiplicity families: [(tier, claims)], primary first."""
    in_scope = sorted((c for c in claims if scope in c.scopes), key=lambda c: c.tier != PRIMARY)
    return [(tier, list(cs)) for tier, cs in groupby(in_scope, key=lambda c: c.tier)]


def evaluate_catalog(evidence, claims=None, scopes=SCOPES, adjust=st.holm) -> list[Verdict]:
    """Every (claim, scope) verdict of ``evidence``, in catalog order within each scope.

    A null control (``evidence.label == "null control"``) evaluates the directional
    claims only. Raises ``UnknownNameError`` for an unknown scope."""
    claims = list(CATALOG if claims is None else claims)
    if evidence.label == "null control":
        claims = [c for c in claims if c.directional]
    out = []
    for scope in scopes:
        if scope not in SCOPES:
            raise unknown("scope", scope, SCOPES)
        decided = {}
        for _tier, members in families(claims, scope):
            measured = [CHECKS[(scope, c.kind)](c, evidence) for c in members]
            for v in decide_family(members, scope, measured, evidence.label, adjust):
                decided[v.claim] = v
        out.extend(decided[c.id] for c in claims if c.id in decided)
    return out


def evaluate(claim: Claim, scope: str, evidence) -> Verdict:
    """One claim's verdict, corrected within its family of the whole catalog."""
    if scope not in SCOPES:
        raise unknown("scope", scope, SCOPES)
    if scope not in claim.scopes:
        raise ValueError(f"claim {claim.id} is not tested in scope {scope!r}; its scopes: {', '.join(claim.scopes)}")
    claims = list(CATALOG) if claim in CATALOG else [claim]
    return next(v for v in evaluate_catalog(evidence, claims, (scope,)) if v.claim == claim.id)


def evaluate_numbers(claims, numbers: dict, label: str = "simulated", adjust=st.holm,
                     plan: bool = True) -> list[Verdict]:
    """Seeds-scope verdicts from per-model numbers, ``{claim id: claim_numbers(...)}``:
    the same checks and decisions as ``evaluate_catalog`` (the calibration and the
    null splits run through here)."""
    out = []
    for _tier, members in families(claims, "seeds"):
        measured = [measure_seeds(c, numbers[c.id], f"seeds: {label}") for c in members]
        out.extend(decide_family(members, "seeds", measured, label, adjust, plan))
    return out


def design_min_p(scope: str, n_per_group: int) -> float:
    """Smallest two-sided p a scope's test can attain with ``n_per_group`` units per
    condition, known before any data: the t-tests of the seeds scope are continuous
    (0) but need two models per group (1 below); the signed-rank test's exact floor
    is 2^(1-n)."""
    if scope == "seeds":
        return 0.0 if n_per_group >= 2 else 1.0
    if scope == "frogs":
        return st._wilcoxon_min_p(n_per_group)
    return 1.0


def unreachable_by_design(scope: str, n_per_group: int, claims=None) -> list[str]:
    """One line per family of ``scope`` whose verdicts no result could make
    supported, refuted or negligible with ``n_per_group`` units: ``min_p * m >= alpha``."""
    lines = []
    for tier, members in families(list(CATALOG if claims is None else claims), scope):
        min_p, m = design_min_p(scope, n_per_group), len(members)
        alpha = members[0].alpha
        if min_p * m >= alpha:
            lines.append(f"unreachable with N = {n_per_group}: {scope} scope, {tier} claims "
                         f"({', '.join(c.id for c in members)}): the smallest attainable p ({min_p:.3g}) cannot "
                         f"pass the corrected threshold alpha/m = {alpha / m:.3g}; every verdict will be underpowered")
    return lines


def false_positive_rate(null_verdicts) -> float | None:
    """Share of null-control verdicts that find a direction (supported or refuted)."""
    if not null_verdicts:
        return None
    return sum(v.verdict in FALSE_POSITIVES for v in null_verdicts) / len(null_verdicts)


def false_positive_rates(null_verdicts) -> dict:
    """``{scope: false_positive_rate}``: per scope, since the frogs scope compares one
    fixed pair of models (expected to differ) and the seeds scope groups of models."""
    scopes = sorted({v.scope for v in null_verdicts}, key=SCOPES.index)
    return {sc: false_positive_rate([v for v in null_verdicts if v.scope == sc]) for sc in scopes}
