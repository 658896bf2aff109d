"""From evidence to verdicts, decided once, in one place.

One small check per (scope, kind of claim), chosen from ``CHECKS``, measures a claim
(``Measured``: the test result, the values compared, the data scope, notes); then
``decide_family`` corrects a scope's family of claims for multiplicity and labels each
one. A ``Verdict`` is complete and immutable when it leaves ``evaluate_catalog``.

Each claim of an inferential scope (``images``, ``seeds``, ``sizes``) carries two null
hypotheses: "the difference is 0" (two-sided p, 2 x the smaller one-sided p) and
"|difference| >= SESOI" (the TOST p). A family of m claims (one tier in one scope)
has 2m of them, of which at most m can be true; one step-down over all 2m
(``stats.step_down_two_nulls``: Holm with Shaffer's 1986 logical restriction) keeps
the rate of *any* wrong verdict, a wrong *negligible* included, at alpha. The verdict
follows from which of a claim's two hypotheses the step-down rejects (Lakens, Scheel
& Isager 2018, "Equivalence testing for psychological research", their four cases):

- *supported*: the difference is not 0, in the claimed direction, and not shown to be
  smaller than the SESOI;
- *refuted*: the same, in the opposite direction;
- *negligible*: the difference is shown to lie inside +/- SESOI, and not shown to differ
  from 0;
- *supported-but-negligible* / *refuted-but-negligible*: both at once: the difference is
  not 0 (in the claimed / the opposite direction) and yet provably smaller than the
  SESOI. Common with 1,000 images, where tiny differences are significant; the claim,
  as a difference that matters, does not hold (a threshold claim: the value is on the
  claimed, or the other, side of the threshold, but within the SESOI of it);
- *underpowered*: neither. The verdict says what would decide it: the minimal
  detectable effect (MDE) at 80% power with the present N, the N per condition that
  would give 80% power at the SESOI given the observed spread, or that the test's
  smallest attainable p cannot pass the corrected threshold (*unreachable*).

Why two-sided p for a one-sided claim: a *refuted* verdict is an error too when
nothing differs, so both directions share one family (directional decisions from
two-sided tests keep the family-wise error rate at alpha; Shaffer 1980). The MDE and N
needed are computed at the step-down's first step, alpha / m (two-sided), the level the
smallest p must pass. A claim declared with ``minimal_effect=True`` also reports the
one-sided p that its difference exceeds the SESOI (``p_minimal_effect``, uncorrected,
beside the verdict, never deciding it).

Scopes are named by the experiment (``Experiment.scopes``) and checked by kind
(``probe``, ``images``, ``seeds``, ``sizes``; see ``cnnclaims.declaration``).

The ``images`` scope decides direction and negligibility on one estimand, the mean
per-image difference (the SESOI's unit): a paired t-test (a threshold claim: a
one-sample t against the threshold) and the TOST of that mean (``stats.paired_t``,
``stats.one_sample_t_images``); its ``a_value``/``b_value`` are the two models' means
over the paired images. Wilcoxon's signed-rank p (two-sided) and the rank-biserial r
are reported in ``extras`` as a sensitivity check only.

The ``sizes`` scope tests a comparison as a trend along the sweep's training-set sizes:
the slope per decade of size (``stats.trend``), *negligible* when the TOST puts it
inside +/- the margin per decade, decided by the same step-down within its family
as the other scopes. The margin is the claim's ``sesoi_per_decade`` when declared, else its SESOI
(a difference between the two conditions) over the decades between the conditions'
training-set sizes, SESOI / |log10(n_a / n_b)| (``sizes_margin``; the article:
SESOI / 0.699); the verdict's ``sesoi`` is that margin, and its data scope says how
it was derived. Its ``a_value``/``b_value`` are the mean numbers at condition a's end
of the sweep (its size side) and at b's.

The ``probe`` scope is one image: descriptive *supported* / *refuted* by the sign of
the difference, *negligible* when it is smaller than the SESOI, and *inconclusive*
when the statistic is undefined on the probe (the note says why).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from itertools import groupby
from typing import Any, cast

import numpy as np
import numpy.typing as npt
from numpy.typing import ArrayLike

from . import stats as st
from .claims import model_number, subject_values, values
from .declaration import PRIMARY, SCOPE_KINDS, Claim, Experiment
from .errors import unknown

__all__ = [
    "check_images_compare",
    "check_images_threshold",
    "check_probe",
    "check_seeds",
    "check_sizes",
    "CHECKS",
    "claim_numbers",
    "decide_family",
    "decision_code",
    "design_min_p",
    "evaluate",
    "evaluate_catalog",
    "evaluate_image_numbers",
    "evaluate_numbers",
    "evaluate_slopes",
    "EQUIVALENT",
    "false_positive_rate",
    "false_positive_rates",
    "FALSE_POSITIVES",
    "families",
    "image_numbers",
    "INCONCLUSIVE",
    "measure_images",
    "measure_seeds",
    "measure_slopes",
    "Measured",
    "null_control_verdicts",
    "run_verdicts",
    "seed_numbers",
    "size_numbers",
    "sizes_margin",
    "stored_catalog",
    "sweep_ends",
    "trend_alternative",
    "UNIT_WORDS",
    "unreachable_by_design",
    "Verdict",
    "VERDICTS",
]

SUPPORTED, REFUTED, NEGLIGIBLE, UNDERPOWERED = "supported", "refuted", "negligible", "underpowered"
# Significant and provably smaller than the SESOI at once (Lakens et al. 2018's fourth case).
SUPPORTED_NEGLIGIBLE, REFUTED_NEGLIGIBLE = "supported-but-negligible", "refuted-but-negligible"
INCONCLUSIVE = "inconclusive"  # probe scope only: the statistic is undefined on the probe
VERDICTS = (SUPPORTED, REFUTED, NEGLIGIBLE, SUPPORTED_NEGLIGIBLE, REFUTED_NEGLIGIBLE, UNDERPOWERED, INCONCLUSIVE)
# Verdicts that reject "the difference is 0": each is an error where nothing differs
# (in a null comparison, any significant direction is an error).
FALSE_POSITIVES = (SUPPORTED, REFUTED, SUPPORTED_NEGLIGIBLE, REFUTED_NEGLIGIBLE)
# Verdicts that reject "|difference| >= SESOI": each is an error where the true
# difference is at or beyond the SESOI.
EQUIVALENT = (NEGLIGIBLE, SUPPORTED_NEGLIGIBLE, REFUTED_NEGLIGIBLE)


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
    p_adjusted: float  # p_two_sided, adjusted by the family's step-down (CORRECTIONS[correction])
    p_equivalence: float  # TOST p against +/- sesoi, uncorrected
    p_equivalence_adjusted: float  # adjusted by the same step-down, in the same family of 2m hypotheses
    effect_name: str
    effect: float
    ci_low: float
    ci_high: float
    n: int
    # Condition a's mean of the statistic (images: over the paired images; seeds: over
    # models; sizes: at a's end of the sweep), or the subject's for a threshold claim.
    a_value: float
    b_value: float  # condition b's (NaN for a threshold claim)
    data_scope: str
    claimed: str
    family: str = "article"  # the experiment's name, or "null control"
    tier: str = PRIMARY  # multiplicity family: "primary" or "secondary"
    family_size: int = 1  # claims in the (scope, tier) family
    alpha: float = 0.05
    sesoi: float = float("nan")  # the equivalence margin used (sizes scope: per decade, see sizes_margin)
    mde: float = float("nan")  # minimal detectable effect at 80% power, statistic's units
    n_needed: float = float("nan")  # units per condition for 80% power at the SESOI
    # N needed at the ends of the SD's 95% CI (stats.n_needed_range)
    n_needed_range: tuple[float, float] = (float("nan"), float("nan"))
    min_p: float = 0.0  # smallest two-sided p the test can attain with this n
    n_per_group: int = 0  # units per condition (models per group, or images)
    decides: str = ""  # what would decide an underpowered verdict
    # The claim's minimal-effect test (difference beyond the SESOI, one-sided,
    # uncorrected), when the claim asks for it (Claim.minimal_effect); NaN otherwise.
    p_minimal_effect: float = float("nan")
    correction: str = "step-down"  # the family's procedure, a key of CORRECTIONS
    prob_superiority: float = float("nan")  # seeds: P(a model of a > a model of b)
    prob_superiority_ci: tuple[float, float] = (float("nan"), float("nan"))
    inferential: bool = True
    extras: dict[str, Any] = field(default_factory=dict)
    notes: str = ""
    a: str = "a"  # the compared groups' names (the experiment's conditions, or "null")
    b: str = "b"

    @property
    def key(self) -> str:
        return f"{self.claim}/{self.scope}"

    @property
    def unreachable(self) -> bool:
        return self.inferential and self.min_p * self.family_size >= self.alpha

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Verdict:
        d = dict(d)
        for name in ("prob_superiority_ci", "n_needed_range"):
            d[name] = tuple(d.get(name, (float("nan"), float("nan"))))
        return cls(**d)

    def summary(self) -> str:
        def f(v: float | None) -> str:
            return "n/a" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{v:.4g}"

        ps = ""
        if np.isfinite(self.prob_superiority):
            lo, hi = self.prob_superiority_ci
            # Newcombe's score interval exists at complete separation too; only a verdict
            # stored before issue 19 (Brunner-Munzel, variance 0 there) lacks one.
            ci = f"95% CI {f(lo)}..{f(hi)}" if np.isfinite(lo) else "no CI stored"
            ps = f", P({self.a} model > {self.b} model)={f(self.prob_superiority)} ({ci})"
        return (
            f"{self.name} [{self.scope}, {self.tier}] {self.verdict.upper()}: {self.claimed}; {self.test}: "
            f"statistic={f(self.statistic)}, p (one-sided)={f(self.p_value)}, p (two-sided)={f(self.p_two_sided)}, "
            f"p_adjusted={f(self.p_adjusted)}, TOST p_adjusted={f(self.p_equivalence_adjusted)} "
            f"(SESOI {f(self.sesoi)}; {CORRECTIONS_SHORT.get(self.correction, self.correction)}), "
            f"{self.effect_name}={f(self.effect)} (two-sided 95% CI {f(self.ci_low)}..{f(self.ci_high)}){ps}, "
            f"{self.a}={f(self.a_value)}, {self.b}={f(self.b_value)}, n={self.n}; {self.data_scope}"
            + (f"; to decide: {self.decides}" if self.decides else "")
            + (
                f"; minimal-effect test (beyond the SESOI, one-sided, uncorrected) p={f(self.p_minimal_effect)}"
                if np.isfinite(self.p_minimal_effect)
                else ""
            )
            + (f"; {self.notes}" if self.notes else "")
        )


@dataclass(frozen=True)
class Measured:
    """What a check measured for one claim, before the family's correction."""

    res: st.TestResult
    a_value: float
    b_value: float
    data_scope: str
    extras: dict[str, Any] = field(default_factory=dict)
    notes: str = ""
    forced: str | None = None  # a probe verdict fixed by the check (refuted by a probe check, inconclusive)


# --- the checks: one per (scope kind, claim kind) ------------------------------------
# ``evidence`` is an ``evidence.Evidence`` (and a model of it, ``evidence.ModelEvidence``),
# typed Any here: this module does not import ``evidence``, and ``Evidence.experiment`` is
# typed ``object``, so each check names what it reads from it (``Experiment | None``).


def _undefined_note(claim: Claim, evidence: Any, role: str, seed: int, count: int | None = None) -> str:
    exp: Experiment | None = evidence.experiment
    why = exp.undefined_why(claim.stat) if exp is not None else "the statistic has no value for this input"
    where = (
        f"{count} images of the {role} (seed {seed})"
        if count is not None
        else f"the probe for the {role} (seed {seed})"
    )
    return f"{claim.stat} undefined (NaN) on {where}: {why}"


def _class_name(evidence: Any, k: int) -> str:
    exp: Experiment | None = evidence.experiment
    return exp.classes[k] if exp is not None and 0 <= k < len(exp.classes) else str(k)


def check_probe(claim: Claim, evidence: Any) -> Measured:
    """The single probe image through the first pair: the difference, no p-value."""
    an, bn = evidence.a, evidence.b
    a, b = evidence.first(an), evidence.first(bn)
    pos = evidence.probe_position
    if claim.model_metric == "test_accuracy":
        av, bv = a.test_accuracy, b.test_accuracy
        data_scope = f"probe: the single pair ({an} seed {a.seed} vs {bn} seed {b.seed}), test accuracy"
    else:
        av = float(subject_values(claim, a, b)[pos]) if claim.kind == "threshold" else float(values(a, claim.stat)[pos])
        bv = float("nan") if claim.kind == "threshold" else float(values(b, claim.stat)[pos])
        data_scope = (
            f"probe: one test-set image (position {pos} among {evidence.n_images} probe-class images), "
            f"{an} seed {a.seed} vs {bn} seed {b.seed}; descriptive, no p-value (pixels are not replicates)"
        )
    # A threshold claim's threshold is a finite float (Claim.__post_init__ checks it).
    ref = bv if claim.kind == "compare" else cast(float, claim.threshold)
    res = st.descriptive(av, ref)
    extras, failed = {}, []
    for desc, who, stat, op, val in claim.probe_checks:
        role = an if who == "a" else bn
        got = float(values(a if who == "a" else b, stat)[pos])
        extras[f"{role}_{stat}"] = got
        if (got == val) != (op == "eq"):
            failed.append(f"{desc}: no ({stat}={_class_name(evidence, int(got)) if stat == 'argmax' else got})")
    for x in claim.extras:
        extras[f"{an}_{x.name}"] = float(values(a, x.name)[pos])
        if claim.kind == "compare":
            extras[f"{bn}_{x.name}"] = float(values(b, x.name)[pos])
    undefined = [
        (role, m.seed)
        for role, m, v in ((an, a, av), (bn, b, bv))
        if not np.isfinite(v) and not (role == bn and claim.kind == "threshold")
    ]
    if undefined:
        note = "; ".join(_undefined_note(claim, evidence, role, seed) for role, seed in undefined)
        return Measured(res, av, bv, data_scope, extras, note + " (not evidence either way)", INCONCLUSIVE)
    if failed:
        return Measured(res, av, bv, data_scope, extras, "; ".join(failed), REFUTED)
    return Measured(res, av, bv, data_scope, extras)


def _nan_notes(claim: Claim, evidence: Any, models: Iterable[tuple[str, Any]]) -> str:
    notes = []
    for role, m in models:
        k = int(np.sum(~np.isfinite(values(m, claim.stat))))
        if k:
            notes.append(_undefined_note(claim, evidence, role, m.seed, k))
    return "; ".join(notes) + " (left out)" if notes else ""


def measure_images(
    claim: Claim,
    numbers: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64] | None],
    data_scope: str = "images",
    extras: dict[str, Any] | None = None,
    notes: str = "",
    sensitivity: bool = True,
) -> Measured:
    """The images scope's test on per-image numbers: ``(a (n,), b (n,))`` for a
    comparison, the paired t-test of the mean difference a - b and its TOST
    (``stats.paired_t``); ``(subject (n,), None)`` for a threshold claim, the one-sample
    t-test of the mean against the threshold and its TOST (``stats.one_sample_t_images``).
    Floats in the statistic's units, one per image, in the same image order; NaN left
    out. ``a_value``/``b_value``: the means over the images where the tested values are
    defined (so that a_value - b_value is the effect; NaN b for a threshold claim).
    ``sensitivity=False`` skips the signed-rank sensitivity check (no verdict reads it;
    the calibration's simulated experiments do not need it). The checks and the
    calibration both measure here."""
    a, b = np.asarray(numbers[0], dtype=np.float64), numbers[1]
    if b is None:
        # Threshold claims only (CHECKS): their threshold is a finite float (Claim.__post_init__).
        res = st.one_sample_t_images(a, cast(float, claim.threshold), claim.alternative, claim.sesoi, sensitivity)
        return Measured(res, _nanmean(a), float("nan"), data_scope, dict(extras or {}), notes)
    b = np.asarray(b, dtype=np.float64)
    res = st.paired_t(a, b, claim.alternative, claim.sesoi, sensitivity)
    both = np.isfinite(a) & np.isfinite(b)
    return Measured(res, _nanmean(a[both]), _nanmean(b[both]), data_scope, dict(extras or {}), notes)


def check_images_compare(claim: Claim, evidence: Any) -> Measured:
    """The images scope, a comparison: the paired t-test of the mean per-image
    difference a - b and its TOST (``measure_images``, ``stats.paired_t``);
    ``a_value``/``b_value``: each model's mean over the images where both values are
    defined (so that a_value - b_value is the effect)."""
    an, bn = evidence.a, evidence.b
    a, b = evidence.first(an), evidence.first(bn)
    extras = {}
    for x in claim.extras:
        extras[f"{an}_mean_{x.name}"] = _nanmean(values(a, x.name))
        extras[f"{bn}_mean_{x.name}"] = _nanmean(values(b, x.name))
    return measure_images(
        claim,
        image_numbers(claim, evidence),
        _images_scope(evidence),
        extras,
        _nan_notes(claim, evidence, ((an, a), (bn, b))),
    )


def check_images_threshold(claim: Claim, evidence: Any) -> Measured:
    """The images scope, a threshold claim: the one-sample t-test of the subject's
    mean over the images against the threshold, and its TOST (``measure_images``,
    ``stats.one_sample_t_images``); ``a_value``: that mean."""
    an = evidence.a
    a = evidence.first(an)
    extras = {f"{an}_mean_{x.name}": _nanmean(values(a, x.name)) for x in claim.extras}
    return measure_images(
        claim,
        image_numbers(claim, evidence),
        _images_scope(evidence),
        extras,
        _nan_notes(claim, evidence, ((an, a),)),
    )


def image_numbers(claim: Claim, evidence: Any) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64] | None]:
    """``measure_images``'s input from the evidence's first pair of models: per-image
    ``(a, b)`` of a comparison, ``(subject, None)`` of a threshold claim
    (``claims.values``, ``claims.subject_values``)."""
    a, b = evidence.first(evidence.a), evidence.first(evidence.b)
    if claim.kind == "threshold":
        return subject_values(claim, a, b), None
    return values(a, claim.stat), values(b, claim.stat)


def _nanmean(v: ArrayLike) -> float:
    v = np.asarray(v, dtype=np.float64)
    return float(np.mean(v[np.isfinite(v)])) if np.isfinite(v).any() else float("nan")


def _images_scope(evidence: Any) -> str:
    a, b = evidence.first(evidence.a), evidence.first(evidence.b)
    exp: Experiment | None = evidence.experiment
    name = exp.probe.scope_name if exp is not None else "images"
    return (
        f"{name}: {evidence.n_images} test-set probe-class images, paired per image, "
        f"{evidence.a} seed {a.seed} vs {evidence.b} seed {b.seed}"
    )


def claim_numbers(
    claim: Claim, per_a: ArrayLike, per_b: ArrayLike
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64] | None]:
    """The seeds scope's input from one number per model of each group (in seed
    order): ``(a (n_a,), b (n_b,))`` for a comparison, ``(subject (n,), None)`` for a
    threshold claim (subject "both": the smaller number of each seed's pair)."""
    a, b = np.asarray(per_a, dtype=np.float64), np.asarray(per_b, dtype=np.float64)
    if claim.kind == "compare":
        return a, b
    if claim.subject == "both":
        n = min(len(a), len(b))
        return np.minimum(a[:n], b[:n]), None
    return (b if claim.subject == "b" else a), None


def seed_numbers(claim: Claim, evidence: Any) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64] | None]:
    """``claim_numbers`` of the evidence's models (see ``claims.model_number``)."""
    return claim_numbers(
        claim,
        [model_number(m, claim) for m in evidence.groups[evidence.a]],
        [model_number(m, claim) for m in evidence.groups[evidence.b]],
    )


def measure_seeds(
    claim: Claim,
    numbers: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64] | None],
    data_scope: str = "seeds",
    notes: str = "",
    names: tuple[str, str] = ("a", "b"),
    superiority: bool = True,
) -> Measured:
    """The seeds scope's test on per-model numbers (see ``seed_numbers``): Welch for a
    comparison, a one-sample t-test against the threshold otherwise; both with TOST.
    ``superiority=False`` skips a comparison's P(superiority) and its CI (see
    ``stats.welch``): no verdict depends on them."""
    a, b = numbers
    if b is not None:
        res = st.welch(a, b, claim.alternative, claim.sesoi, superiority=superiority)
        extras = {f"{names[0]}_per_seed": np.asarray(a).tolist(), f"{names[1]}_per_seed": np.asarray(b).tolist()}
        return Measured(res, float(np.nanmean(a)), float(np.nanmean(b)), data_scope, extras, notes)
    # No b: a threshold claim (claim_numbers), whose threshold is a finite float.
    res = st.t_one_sample(a, cast(float, claim.threshold), claim.alternative, claim.sesoi)
    return Measured(res, float(np.nanmean(a)), float("nan"), data_scope, {"per_seed": np.asarray(a).tolist()}, notes)


def check_seeds(claim: Claim, evidence: Any) -> Measured:
    an, bn = evidence.a, evidence.b
    ga, gb = evidence.groups[an], evidence.groups[bn]
    what = "test accuracy" if claim.model_metric == "test_accuracy" else f"mean over {evidence.n_images} images"
    data_scope = (
        f"seeds: {len(ga)} {an} models (seeds {_seeds(ga)}) vs {len(gb)} {bn} models "
        f"(seeds {_seeds(gb)}), one number per model ({what})"
    )
    numbers = seed_numbers(claim, evidence)
    notes = "; ".join(
        f"{k} {role} model(s) have no defined mean of {claim.stat}: left out"
        for role, arr in zip((an, bn), numbers, strict=False)
        if arr is not None and (k := int(np.sum(~np.isfinite(arr))))
    )
    return measure_seeds(claim, numbers, data_scope, notes, (an, bn))


def _seeds(group: Iterable[Any]) -> str:
    return ",".join(str(m.seed) for m in group)


def size_numbers(claim: Claim, evidence: Any) -> tuple[npt.NDArray[Any], npt.NDArray[np.float64], list[int]]:
    """(sizes (k,), numbers (k, seeds)) of the sweep: one number per model
    (``claims.model_number``), rows by ascending size, columns by seed (NaN where a
    size lacks that seed's model)."""
    sizes = sorted(evidence.sizes)
    seeds = sorted({m.seed for n in sizes for m in evidence.sizes[n]})
    y = np.full((len(sizes), len(seeds)), np.nan)
    for i, n in enumerate(sizes):
        for m in evidence.sizes[n]:
            y[i, seeds.index(m.seed)] = model_number(m, claim)
    return np.array(sizes), y, seeds


def trend_alternative(claim: Claim, size_sign: int) -> str:
    """The claimed sign of the slope on log10(size): "a greater than b" with a the
    larger training set reads "grows with size" (``size_sign`` +1), and so on."""
    up = (claim.alternative == "greater") == (size_sign > 0)
    return "greater" if up else "less"


def sweep_ends(evidence: Any) -> tuple[str, str]:
    """Names of the sweep's two ends in a sizes verdict, condition a's side first
    (e.g. ("n=50000", "n=1000")): its ``a_value``/``b_value`` are the means there, and
    "a > b" then reads along the sweep, whichever condition is the larger."""
    lo, hi = f"n={min(evidence.sizes)}", f"n={max(evidence.sizes)}"
    return (hi, lo) if evidence.size_sign > 0 else (lo, hi)


def sizes_margin(claim: Claim, evidence: Any) -> tuple[float, str]:
    """The sizes scope's equivalence margin, in the claim's units per decade of
    training-set size, and how it was derived (a phrase for the data scope).

    The claim's ``sesoi_per_decade`` when it declares one; else its SESOI, a difference
    between the two conditions, spread over the decades between their training-set
    sizes: SESOI / |log10(n_a / n_b)| (issue 19, 4: the article's SESOI is a 50,000 vs
    10,000 difference, 0.699 of a decade, and was used as a margin per decade). The
    sizes come from ``evidence.n_train`` ({condition name: training images}, the run's
    profile). Raises ValueError when neither is at hand, or the sizes are equal."""
    if claim.sesoi_per_decade is not None:
        return float(claim.sesoi_per_decade), f"SESOI {claim.sesoi_per_decade:g} per decade, declared"
    n_a, n_b = evidence.n_train.get(evidence.a), evidence.n_train.get(evidence.b)
    if not n_a or not n_b or n_a == n_b:
        raise ValueError(
            f"claim {claim.id}: the sizes scope's margin per decade is the claim's SESOI over the decades "
            f"between the conditions' training-set sizes, but the evidence gives "
            f"{evidence.a!r}: {n_a}, {evidence.b!r}: {n_b}; give Evidence(n_train={{condition: images}}) "
            "for both conditions (run_evidence does), or declare Claim(sesoi_per_decade=...)"
        )
    decades = abs(float(np.log10(n_a / n_b)))
    margin = claim.sesoi / decades
    big, small = max(n_a, n_b), min(n_a, n_b)
    how = (
        f"SESOI {claim.sesoi:g} ({evidence.a} {n_a:,} vs {evidence.b} {n_b:,} images) / "
        f"log10({big:,} / {small:,}) = {decades:.3g} decades: {margin:.3g} per decade"
    )
    return margin, how


def check_sizes(claim: Claim, evidence: Any) -> Measured:
    """The sizes scope: ``stats.trend`` of the claim's number per model (mean over the
    probe-class images, or test accuracy) across the sweep's training-set sizes, with
    the TOST against +/- ``sizes_margin`` per decade (the data scope says how that
    margin was derived). Raises ValueError without the sweep's models or a margin."""
    if not evidence.sizes:
        raise ValueError(f"claim {claim.id}: the sizes scope needs the sweep's models (a profile with sizes)")
    sizes, y, seeds = size_numbers(claim, evidence)
    alternative = trend_alternative(claim, evidence.size_sign)
    margin, how = sizes_margin(claim, evidence)
    res = st.trend(sizes, y, alternative, margin)
    what = "test accuracy" if claim.model_metric == "test_accuracy" else f"mean over {evidence.n_images} images"
    data_scope = (
        f"sizes: {len(sizes)} training-set sizes ({', '.join(f'{n:,}' for n in sizes)}) x "
        f"{len(seeds)} seeds ({','.join(map(str, seeds))}), one number per model ({what}); claimed: "
        f"{'grows' if alternative == 'greater' else 'falls'} with log10(size); equivalence margin: {how}"
    )
    missing = int(np.sum(~np.isfinite(y)))
    notes = f"{missing} model(s) have no defined number: left out of their seed's fit" if missing else ""
    extras = {"per_seed": y.tolist(), "seeds": seeds}
    # a_value / b_value: the mean number at condition a's end of the sweep and at b's
    # (named by sweep_ends).
    lo, hi = res.extra["means_per_size"][0], res.extra["means_per_size"][-1]
    a_end, b_end = (hi, lo) if evidence.size_sign > 0 else (lo, hi)
    return Measured(res, float(a_end), float(b_end), data_scope, extras, notes)


# The table: which check measures a claim in a scope (by scope kind).
CHECKS = {
    ("probe", "compare"): check_probe,
    ("probe", "threshold"): check_probe,
    ("images", "compare"): check_images_compare,
    ("images", "threshold"): check_images_threshold,
    ("seeds", "compare"): check_seeds,
    ("seeds", "threshold"): check_seeds,
    ("sizes", "compare"): check_sizes,
}


# --- the decision ---------------------------------------------------------------


def _label(claim: Claim, m: Measured, p_adjusted: float, eq_adjusted: float) -> str:
    """The verdict from which of the claim's two null hypotheses its family's
    step-down rejects (see the module docstring)."""
    differs = p_adjusted < claim.alpha
    equivalent = eq_adjusted < claim.alpha
    towards = m.res.p_value <= m.res.p_opposite
    if differs and equivalent:
        return SUPPORTED_NEGLIGIBLE if towards else REFUTED_NEGLIGIBLE
    if equivalent:
        return NEGLIGIBLE
    if differs:
        return SUPPORTED if towards else REFUTED
    return UNDERPOWERED


# The family's multiplicity procedures, by name: (zero-difference p's, TOST p's) ->
# adjusted (the same shapes). The step-down is the verdicts'; the others are kept for
# the calibration, which shows that its check fails on them.
Correction = Callable[[npt.NDArray[np.float64], npt.NDArray[np.float64]], tuple[Any, Any]]
CORRECTIONS: dict[str, Correction] = {
    "step-down": st.step_down_two_nulls,
    "holm-per-family": st.holm_per_family,
    "none": st.uncorrected,
}
CORRECTIONS_SHORT = {
    "step-down": "Holm-Shaffer step-down over the family's 2m hypotheses",
    "holm-per-family": "two separate Holm families (significance, TOST)",
    "none": "uncorrected",
}


# What more of would decide an underpowered verdict, by what the test's N counts
# (``stats.TestResult.unit``).
UNIT_WORDS = {
    "images": "images",
    "models": "models per condition",
    "seeds": "seeds (models per size)",
    "image": "images",
}


def _decides(
    claim: Claim,
    res: st.TestResult,
    m_family: int,
    mde: float,
    n_needed: float,
    n_range: tuple[float, float] = (float("nan"), float("nan")),
) -> str:
    alpha_first = claim.alpha / m_family
    unit = UNIT_WORDS[res.unit]
    if res.min_p * m_family >= claim.alpha:
        return (
            f"unreachable with N = {res.n_per_group}: the smallest attainable p ({res.min_p:.3g}) cannot pass "
            f"the corrected threshold alpha/m = {alpha_first:.3g}; more {unit} are needed"
        )
    parts = []
    if np.isfinite(mde):
        parts.append(f"MDE at 80% power with N = {res.n_per_group}: {mde:.3g} (SESOI {claim.sesoi:g})")
    if np.isfinite(n_needed):
        lo, hi = n_range
        spread_ci = (
            f"; the SD is itself estimated from N = {res.n_per_group} {unit}, so N needed is "
            f"{_count(lo)}-{_count(hi)} over the SD's 95% CI"
            if np.isfinite(lo) or hi == np.inf
            else ""
        )
        parts.append(
            f"N = {int(n_needed)} {unit} would give 80% power at the SESOI "
            f"(observed SD {res.spread:.3g}, alpha/m = {alpha_first:.3g}{spread_ci})"
        )
    elif n_needed == np.inf:
        parts.append(f"over 100,000 {unit} would be needed for 80% power at the SESOI (observed SD {res.spread:.3g})")
    return "; ".join(parts) or "no spread to plan with"


def decision_code() -> str:
    """Digest of the code that turns evidence into verdicts (this module and ``stats``),
    part of the key of cached verdicts: a new test, TOST or decision rule is never
    served verdicts its predecessor computed (verdicts are cheap to recompute, unlike
    models, so any edit of these two files recomputes them)."""
    import hashlib
    import inspect
    import sys

    from . import stats

    text = inspect.getsource(stats) + inspect.getsource(sys.modules[__name__])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _count(n: float) -> str:
    return "over 100,000" if n == np.inf else "-" if not np.isfinite(n) else f"{int(n)}"


def decide_family(
    claims: Iterable[Claim],
    scope: str,
    measured: Iterable[Measured],
    label: str = "article",
    correction: str = "step-down",
    plan: bool = True,
    names: tuple[str, str] = ("a", "b"),
    kind: str | None = None,
) -> list[Verdict]:
    """Verdicts of one multiplicity family (claims of one tier in one scope).

    ``measured``: one ``Measured`` per claim, in order. ``correction``: a key of
    ``CORRECTIONS``, the procedure over the family's 2m hypotheses (default the
    Holm-Shaffer step-down; the calibration swaps in the others to show that its check
    fails on them); raises ``UnknownNameError`` for another. ``plan=False`` skips the MDE
    and N-needed of underpowered verdicts (the labels are the same; the calibration's
    10,000 simulated experiments do not need them). ``scope`` is the scope's name,
    ``kind`` its kind (default: the name); ``names`` the compared groups' names."""
    if correction not in CORRECTIONS:
        raise unknown("correction", correction, CORRECTIONS)
    claims, measured = list(claims), list(measured)
    inferential = (kind or scope) != "probe"
    m_family = len(claims)
    p2 = np.array([st.two_sided(m.res.p_value, m.res.p_opposite) for m in measured], dtype=np.float64)
    peq = np.array([m.res.p_equivalence for m in measured], dtype=np.float64)
    if inferential:
        p2_adj, peq_adj = CORRECTIONS[correction](p2, peq)
    else:
        p2_adj = peq_adj = np.full(len(claims), np.nan)
    out = []
    for c, m, p2c, pa, qa in zip(claims, measured, p2, p2_adj, peq_adj, strict=False):
        res = m.res
        mde = n_need = float("nan")
        n_range = (float("nan"), float("nan"))
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
                n_range = st.n_needed_range(
                    c.sesoi, res.spread, st.spread_df(res.n_per_group, res.paired), c.alpha / m_family, res.paired
                )
                decides = _decides(c, res, m_family, mde, n_need, n_range)
        extra = dict(res.extra)
        ps = extra.pop("prob_superiority", float("nan"))
        ps_ci = tuple(extra.pop("prob_superiority_ci", (float("nan"), float("nan"))))
        out.append(
            Verdict(
                claim=c.id,
                name=c.name,
                scope=scope,
                verdict=verdict,
                test=res.test,
                statistic=res.statistic,
                p_value=res.p_value,
                p_opposite=res.p_opposite,
                p_two_sided=float(p2c),
                p_adjusted=float(pa),
                p_equivalence=float(res.p_equivalence),
                p_equivalence_adjusted=float(qa),
                effect_name=res.effect_name,
                effect=res.effect,
                ci_low=res.ci_low,
                ci_high=res.ci_high,
                n=res.n,
                a_value=m.a_value,
                b_value=m.b_value,
                data_scope=m.data_scope,
                claimed=c.describe(*names),
                a=_subject(c, names),
                b=names[1],
                family=label,
                tier=c.tier,
                family_size=m_family,
                alpha=c.alpha,
                sesoi=c.sesoi,
                mde=mde,
                n_needed=n_need,
                n_needed_range=n_range,
                min_p=res.min_p,
                n_per_group=res.n_per_group,
                decides=decides,
                p_minimal_effect=float(res.p_minimal_effect) if c.minimal_effect else float("nan"),
                correction=correction,
                prob_superiority=ps,
                prob_superiority_ci=ps_ci,
                inferential=inferential,
                extras={**extra, **m.extras},
                notes=m.notes,
            )
        )
    return out


def _subject(claim: Claim, names: tuple[str, str]) -> str:
    """Whose value ``a_value`` is: condition a for a comparison; a threshold claim's
    subject (condition a or b, the input, or the smaller of both models')."""
    if claim.kind == "compare":
        return names[0]
    return {"a": names[0], "b": names[1], "input": "input", "both": f"min({names[0]}, {names[1]})"}[claim.subject]


def families(claims: Iterable[Claim], scope: str) -> list[tuple[str, list[Claim]]]:
    """The scope's multiplicity families: [(tier, claims)], primary first (``scope``:
    a scope kind, see ``cnnclaims.declaration.SCOPE_KINDS``)."""
    # c.scopes is never None after Claim.__post_init__
    in_scope = sorted(
        (c for c in claims if scope in cast("tuple[str, ...]", c.scopes)), key=lambda c: c.tier != PRIMARY
    )
    return [(tier, list(cs)) for tier, cs in groupby(in_scope, key=lambda c: c.tier)]


def _kind(evidence: Any, scope: str) -> str:
    exp: Experiment | None = evidence.experiment
    if exp is not None:
        return exp.scope_kind(scope)
    if scope not in SCOPE_KINDS:
        raise unknown("scope", scope, SCOPE_KINDS)
    return scope


def evaluate_catalog(
    evidence: Any,
    claims: Iterable[Claim] | None = None,
    scopes: Iterable[str] | None = None,
    correction: str = "step-down",
) -> list[Verdict]:
    """Every (claim, scope) verdict of ``evidence``, in declaration order within each scope.

    ``claims``: default the experiment's (``evidence.experiment.claims``); ``scopes``:
    scope names (default every scope of the experiment). A null control
    (``evidence.null``) evaluates the directional claims only. Raises
    ``UnknownNameError`` for an unknown scope."""
    exp: Experiment | None = evidence.experiment
    if claims is None:
        if exp is None:
            raise ValueError("evaluate_catalog: give the claims, or evidence with its experiment")
        claims = exp.claims
    claims = list(claims)
    if scopes is None:
        scopes = exp.scopes if exp is not None else SCOPE_KINDS
    if evidence.null:
        claims = [c for c in claims if c.directional]
    out: list[Verdict] = []
    for scope in scopes:
        kind = _kind(evidence, scope)
        decided: dict[str, Verdict] = {}
        names = sweep_ends(evidence) if kind == "sizes" else (evidence.a, evidence.b)
        for _tier, members in families(claims, kind):
            measured = [CHECKS[(kind, c.kind)](c, evidence) for c in members]
            if kind == "sizes":
                # The decision reads the claim's SESOI (the verdict's sesoi, MDE, N needed):
                # in this scope it is the margin per decade the TOST used.
                members = [replace(c, sesoi=sizes_margin(c, evidence)[0]) for c in members]
            for v in decide_family(members, scope, measured, evidence.label, correction, names=names, kind=kind):
                decided[v.claim] = v
        out.extend(decided[c.id] for c in claims if c.id in decided)
    return out


def stored_catalog(store: Any, evidence: Any, scopes: Iterable[str], images: Iterable[int]) -> list[Verdict]:
    """``evaluate_catalog(evidence, scopes=scopes)``, kept in ``store`` (a
    ``cache.ResultStore``): a warm run reads them back. The key holds the models, the
    conditions' training-set sizes (the sizes scope's margin), the probe-class images
    (``images``, their test-set indices), the claims, this decision code and the
    statistics' version."""
    from .declaration import claims_key
    from .evidence import metrics_key

    key = {
        "models": {g: [e.key for e in ms] for g, ms in sorted(evidence.groups.items())},
        "sizes": [[n, [e.key for e in ms]] for n, ms in evidence.sizes.items()],
        "size_sign": evidence.size_sign,
        "n_train": dict(sorted(evidence.n_train.items())),
        "label": evidence.label,
        "probe": evidence.probe_position,
        "n_images": evidence.n_images,
        "images": list(map(int, images)),
        "scopes": list(scopes),
        "claims": claims_key(evidence.experiment),
        "decision_code": decision_code(),
        "statistics": metrics_key(evidence.experiment),
    }
    doc = store.get(
        "verdicts",
        evidence.label.replace(" ", "-"),
        key,
        lambda: {"verdicts": [v.to_dict() for v in evaluate_catalog(evidence, scopes=scopes)]},
    )
    return [Verdict.from_dict(d) for d in doc["verdicts"]]


def run_verdicts(run: Any) -> list[Verdict]:
    """Every verdict of ``run`` (a ``cnnclaims.run.Run``) in its scopes, kept in its result store."""
    return stored_catalog(run.results, run.evidence, run.scopes, run.probe_indices.tolist())


def null_control_verdicts(run: Any) -> list[Verdict]:
    """The verdicts of ``run``'s null control (every scope but the probe and the sweep), stored."""
    return stored_catalog(run.results, run.null_evidence, run.experiment.scopes[1:], run.probe_indices.tolist())


def evaluate(claim: Claim, scope: str, evidence: Any) -> Verdict:
    """One claim's verdict, corrected within its family of the experiment's claims."""
    kind = _kind(evidence, scope)
    assert claim.scopes is not None  # Claim.__post_init__ always sets a tuple
    if kind not in claim.scopes:
        raise ValueError(f"claim {claim.id} is not tested in scope {scope!r}; its scopes: {', '.join(claim.scopes)}")
    exp: Experiment | None = evidence.experiment
    claims = list(exp.claims) if exp is not None and claim in exp.claims else [claim]
    return next(v for v in evaluate_catalog(evidence, claims, (scope,)) if v.claim == claim.id)


def _evaluate(
    claims: Iterable[Claim],
    scope: str,
    measure: Callable[[Claim], Measured],
    label: str,
    correction: str,
    plan: bool,
    sesoi: Callable[[Claim], float] | None = None,
    kind: str | None = None,
) -> list[Verdict]:
    """The loop the ``evaluate_*`` entries share: for each family of ``claims`` in
    ``scope``, ``measure`` each claim, then ``decide_family`` (with ``sesoi(claim)``
    in place of the claim's SESOI where given: the sizes scope's margin per decade)."""
    out = []
    for _tier, members in families(claims, scope):
        measured = [measure(c) for c in members]
        if sesoi is not None:
            members = [replace(c, sesoi=sesoi(c)) for c in members]
        out.extend(decide_family(members, scope, measured, label, correction, plan, kind=kind))
    return out


def evaluate_numbers(
    claims: Iterable[Claim],
    numbers: dict[str, tuple[npt.NDArray[np.float64], npt.NDArray[np.float64] | None]],
    label: str = "simulated",
    correction: str = "step-down",
    plan: bool = True,
    superiority: bool = True,
) -> list[Verdict]:
    """Seeds-scope verdicts from per-model numbers, ``{claim id: claim_numbers(...)}``:
    the same checks and decisions as ``evaluate_catalog`` (the calibration and the
    null splits run through here). ``superiority=False`` leaves out P(superiority)
    and its CI (NaN in the verdicts; the labels are the same), which the
    calibration's simulated experiments do not read."""
    return _evaluate(
        claims,
        "seeds",
        lambda c: measure_seeds(c, numbers[c.id], f"seeds: {label}", superiority=superiority),
        label,
        correction,
        plan,
    )


def evaluate_image_numbers(
    claims: Iterable[Claim],
    numbers: dict[str, tuple[npt.NDArray[np.float64], npt.NDArray[np.float64] | None]],
    label: str = "simulated",
    correction: str = "step-down",
    plan: bool = True,
    sensitivity: bool = True,
) -> list[Verdict]:
    """Images-scope verdicts from per-image numbers, ``{claim id: image_numbers(...)}``
    (the same images, in the same order, for every claim): the same check
    (``measure_images``), families and decision (``decide_family``) as
    ``evaluate_catalog``. The calibration runs its resampled experiments through here;
    ``sensitivity=False`` skips the signed-rank sensitivity check (left out of the
    extras; the labels are the same)."""
    return _evaluate(
        claims,
        "images",
        lambda c: measure_images(c, numbers[c.id], f"images: {label}", sensitivity=sensitivity),
        label,
        correction,
        plan,
    )


def measure_slopes(
    claim: Claim, slopes: ArrayLike, alternative: str, margin: float, data_scope: str = "sizes"
) -> Measured:
    """The sizes scope's test on per-seed slopes (``stats.slope_t``, the t-test
    ``stats.trend`` runs after fitting them): ``slopes`` (s,) float, one per seed, in
    the claim's units per decade; ``alternative``: the claimed sign of the slope
    (``trend_alternative``); ``margin``: the TOST's margin per decade
    (``sizes_margin``). ``a_value``/``b_value`` are NaN (no sweep ends here)."""
    res = st.slope_t(slopes, alternative, margin)
    nan = float("nan")
    return Measured(res, nan, nan, data_scope, {"slopes_per_seed": np.asarray(slopes, dtype=np.float64).tolist()})


def evaluate_slopes(
    claims: Iterable[Claim],
    slopes: dict[str, npt.NDArray[np.float64]],
    margins: dict[str, float],
    size_sign: int = 1,
    label: str = "simulated",
    correction: str = "step-down",
    plan: bool = True,
) -> list[Verdict]:
    """Sizes-scope verdicts from per-seed slopes, ``{claim id: (s,) slopes}``, with
    each claim's margin per decade (``{claim id: sizes_margin(...)[0]}``) and the
    sweep's direction (``size_sign``: +1 when condition a has the larger training set):
    the same test (``measure_slopes``), families and decision (``decide_family``, the
    claim's SESOI replaced by its margin) as ``evaluate_catalog``. The calibration
    runs its simulated experiments through here. Raises KeyError naming a claim
    without slopes or a margin."""
    return _evaluate(
        claims,
        "sizes",
        lambda c: measure_slopes(c, slopes[c.id], trend_alternative(c, size_sign), margins[c.id], f"sizes: {label}"),
        label,
        correction,
        plan,
        sesoi=lambda c: margins[c.id],
        kind="sizes",
    )


def design_min_p(scope: str, n_per_group: int) -> float:
    """Smallest two-sided p a scope's test can attain with ``n_per_group`` units per
    condition (images, models or seeds), known before any data: every inferential
    scope's test is a t-test (images: paired or one-sample t; seeds: Welch or
    one-sample t; sizes: one-sample t of per-seed slopes), continuous (0) from two
    units on, with no p at all below (1); the probe has none (1)."""
    if scope in ("images", "seeds", "sizes"):
        return 0.0 if n_per_group >= 2 else 1.0
    return 1.0


def unreachable_by_design(scope: str, n_per_group: int, claims: Iterable[Claim]) -> list[str]:
    """One line per family of ``scope`` (a kind) whose verdicts no result could decide
    with ``n_per_group`` units: ``min_p * m >= alpha``. The scopes' tests are t-tests,
    so this happens below two units, where the TOST has no p either: every verdict
    will be underpowered."""
    lines = []
    for tier, members in families(list(claims), scope):
        min_p, m = design_min_p(scope, n_per_group), len(members)
        alpha = members[0].alpha
        if min_p * m >= alpha:
            lines.append(
                f"unreachable with N = {n_per_group}: {scope} scope, {tier} claims "
                f"({', '.join(c.id for c in members)}): the smallest attainable p ({min_p:.3g}) cannot "
                f"pass the corrected threshold alpha/m = {alpha / m:.3g}; every verdict will be underpowered"
            )
    return lines


def false_positive_rate(null_verdicts: Sequence[Verdict]) -> float | None:
    """Share of null-control verdicts that find a direction (supported or refuted)."""
    if not null_verdicts:
        return None
    return sum(v.verdict in FALSE_POSITIVES for v in null_verdicts) / len(null_verdicts)


def false_positive_rates(null_verdicts: Sequence[Verdict]) -> dict[str, float | None]:
    """``{scope: false_positive_rate}``: per scope, since the images scope compares one
    fixed pair of models (expected to differ) and the seeds scope groups of models."""
    scopes = list(dict.fromkeys(v.scope for v in null_verdicts))
    return {sc: false_positive_rate([v for v in null_verdicts if v.scope == sc]) for sc in scopes}
