"""The article's claims as data, and ``evaluate`` turning evidence into verdicts.

Each claim names a per-image statistic from ``evidence.STATS`` (definitions in
``metrics``), a direction, and the scopes it is tested in:

======  =====================  ==============================================================
id      statistic              claimed
======  =====================  ==============================================================
C1      c1_input_corr          conv2d_1: mean |r| between each feature map and the grey input
                               (block-averaged to the map size); benchmark < dummy
                               ("more processed").
C2      c1_redundancy          conv2d_1: mean |r| over the 120 pairs of the 16 maps;
                               dummy > benchmark ("more redundant").
C3      c6_zero_fraction       conv2d_6: fraction of exact zeros; benchmark > dummy
                               (Hoyer sparsity reported beside it).
C4      c6_zero_fraction       the benchmark's conv2d_6 zero fraction > 0.5 ("mostly black").
C5      c6_scaled_mean         conv2d_6 divided by the image's max (values in [0, 1]): mean;
                               benchmark < dummy ("concentrated at zero").
C5b     c6_scaled_p95          the same scaled values' 95th percentile; dummy > benchmark
                               ("the dummy's distribution has the longer tail").
C6      input_abs_skew         probe pixels (RGB /255): |Fisher skewness| < 0.5 ("roughly
                               symmetric").
C6b     input_centre_offset    |median pixel - 0.4| < 0.1 ("centred near 0.4").
C7      info_gain              H(input histogram) - H(conv2d_6 histogram), 32 bins on [0, 1],
                               bits; benchmark > dummy (KL(conv2d_6 || input) beside it).
C7b     info_gain (both)       the smaller of the two models' gains > 0 ("gain for both").
C8      p_frog                 softmax p(frog); benchmark > dummy. On the probe the benchmark's
                               argmax must also be "frog".
C9      softmax_entropy        softmax entropy in bits; dummy > benchmark. On the probe the
                               dummy's argmax must also be a wrong class.
C10     correct / accuracy     frogs: per-image correctness; seeds: test accuracy on all
                               10,000 test images; benchmark > dummy.
======  =====================  ==============================================================

Scopes (see ``stats`` for the tests): ``probe`` (the article's single frog and its
single pair of models: descriptive), ``frogs`` (1,000 test-set frogs, paired per image,
first-seed pair), ``seeds`` (N models per condition, one number per model: its mean over
the frogs, or its test accuracy). C6/C6b concern the input alone, so they have no
``seeds`` scope. Holm's correction runs across the claims within each inferential
scope, separately for the claimed and the opposite direction: a claim is
*supported* when its Holm-adjusted p < alpha, *refuted* when the opposite direction's
is, and *inconclusive* otherwise.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from . import CLASSES, FROG
from . import stats as st
from .errors import unknown

ALPHA = 0.05
SCOPES = ("probe", "frogs", "seeds")
SUPPORTED, REFUTED, INCONCLUSIVE = "supported", "refuted", "inconclusive"


@dataclass(frozen=True)
class Claim:
    id: str
    slug: str
    article: str  # the article's words
    figure: str
    layers: tuple
    stat: str  # per-image statistic (evidence.STATS or DERIVED)
    kind: str  # "compare": benchmark vs dummy; "threshold": subject vs threshold
    alternative: str  # compare: benchmark is 'greater'/'less' than dummy; threshold: subject vs threshold
    subject: str = "benchmark"  # threshold claims: "benchmark", "input" or "both" (min of the pair)
    threshold: float | None = None
    scopes: tuple = SCOPES
    extras: tuple = ()  # statistics reported beside the tested one
    seeds_stat: str | None = None  # per-model number for the seeds scope, if not the mean of `stat`
    probe_checks: tuple = ()  # (description, role, stat, "eq"/"ne", value) that must hold on the probe
    plot: str = "histogram"  # kind of diagnostic plot (diagnostics.claim_plots)
    alpha: float = ALPHA  # compared with the Holm-adjusted p-value

    @property
    def name(self) -> str:
        return f"{self.id}-{self.slug}"

    @property
    def directional(self) -> bool:
        return self.kind == "compare"

    def test_for(self, scope: str) -> str:
        """The statistical test this claim gets in ``scope``."""
        if scope not in self.scopes:
            return "n/a"
        if scope == "probe":
            return "descriptive (one image, no test)"
        if scope == "frogs":
            return ("one-sided Wilcoxon signed-rank, paired images" if self.directional
                    else "one-sided Wilcoxon signed-rank, one sample against the threshold")
        return ("one-sided Welch t-test, one number per model" if self.directional
                else "one-sided one-sample t-test over seeds against the threshold")

    def describe(self) -> str:
        if self.kind == "compare":
            rel = ">" if self.alternative == "greater" else "<"
            return f"{self.stat}: benchmark {rel} dummy"
        rel = ">" if self.alternative == "greater" else "<"
        return f"{self.stat} of {self.subject} {rel} {self.threshold:g}"


# Statistics derived from the stored table (kept out of it: they are one-liners).
DERIVED = {
    "input_abs_skew": lambda s: np.abs(s["input_skew"]),
    "input_centre_offset": lambda s: np.abs(s["input_centre"] - 0.4),
}

CATALOG = (
    Claim("C1", "first-layer-processing",
          "the benchmark's first-layer feature maps are more processed, less like the input",
          "Fig. 2-3", ("conv2d_1",), "c1_input_corr", "compare", "less", plot="feature_maps"),
    Claim("C2", "first-layer-redundancy",
          "the dummy's first-layer feature maps are more redundant",
          "Fig. 2", ("conv2d_1",), "c1_redundancy", "compare", "less", plot="feature_maps"),
    Claim("C3", "last-layer-sparsity",
          "the benchmark's last conv layer is sparser",
          "Fig. 4-5", ("conv2d_6",), "c6_zero_fraction", "compare", "greater", extras=("c6_hoyer",)),
    Claim("C4", "mostly-black",
          "most of the benchmark's last-layer activations are zero (mostly black maps)",
          "Fig. 5", ("conv2d_6",), "c6_zero_fraction", "threshold", "greater", threshold=0.5),
    Claim("C5", "zero-concentration",
          "the benchmark's last-layer values concentrate at zero",
          "Fig. 6", ("conv2d_6",), "c6_scaled_mean", "compare", "less"),
    Claim("C5b", "long-tail",
          "the dummy's last-layer distribution has the longer tail",
          "Fig. 6", ("conv2d_6",), "c6_scaled_p95", "compare", "less"),
    Claim("C6", "input-symmetric",
          "the input frog's pixel distribution is roughly symmetric",
          "Fig. 7", ("input",), "input_abs_skew", "threshold", "less", subject="input", threshold=0.5,
          scopes=("probe", "frogs"), extras=("input_skew",), plot="input"),
    Claim("C6b", "input-centre",
          "the input frog's pixels are centred near 0.4",
          "Fig. 7", ("input",), "input_centre_offset", "threshold", "less", subject="input", threshold=0.1,
          scopes=("probe", "frogs"), extras=("input_centre",), plot="input"),
    Claim("C7", "information-gain",
          "the last layer's activations carry an information gain over the input, larger for the benchmark",
          "text after Fig. 7", ("input", "conv2d_6"), "info_gain", "compare", "greater",
          extras=("c6_entropy", "input_entropy", "kl_c6_input"), plot="entropy"),
    Claim("C7b", "information-gain-positive",
          "both models' last layers show an information gain over the input",
          "text after Fig. 7", ("input", "conv2d_6"), "info_gain", "threshold", "greater", subject="both",
          threshold=0.0, extras=("c6_entropy", "input_entropy"), plot="entropy"),
    Claim("C8", "benchmark-certainty",
          "the benchmark's softmax peaks on frog, with higher p(frog) than the dummy",
          "Fig. 8 left", ("dense_2",), "p_frog", "compare", "greater", extras=("softmax_entropy",),
          probe_checks=(("benchmark's argmax is frog", "benchmark", "argmax", "eq", FROG),), plot="softmax"),
    Claim("C9", "dummy-confusion",
          "the dummy is confused: its softmax is flatter (higher entropy) and misses the frog",
          "Fig. 8 right", ("dense_2",), "softmax_entropy", "compare", "less", extras=("p_frog",),
          probe_checks=(("dummy's argmax is not frog", "dummy", "argmax", "ne", FROG),), plot="softmax"),
    Claim("C10", "bigger-data-better",
          "a bigger training set gives a better model (test accuracy)",
          "conclusion", ("dense_2",), "correct", "compare", "greater", seeds_stat="test_accuracy",
          plot="accuracy"),
)
CLAIMS = {c.id: c for c in CATALOG}


def get_claim(claim_id: str) -> Claim:
    if claim_id not in CLAIMS:
        raise unknown("claim", claim_id, CLAIMS)
    return CLAIMS[claim_id]


@dataclass
class Verdict:
    claim: str  # claim id
    name: str  # claim id + slug
    scope: str
    verdict: str
    test: str
    statistic: float
    p_value: float  # one-sided in the claimed direction, before correction
    p_holm: float  # Holm-adjusted within the scope's family
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
    inferential: bool = True
    p_opposite: float = float("nan")
    p_opposite_holm: float = float("nan")
    extras: dict = field(default_factory=dict)
    notes: str = ""

    @property
    def key(self) -> str:
        return f"{self.claim}/{self.scope}"

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        def f(v):
            return "n/a" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.4g}"

        return (
            f"{self.name} [{self.scope}] {self.verdict.upper()}: {self.claimed}; {self.test}: "
            f"statistic={f(self.statistic)}, p={f(self.p_value)}, p_holm={f(self.p_holm)}, "
            f"{self.effect_name}={f(self.effect)} (95% CI {f(self.ci_low)}..{f(self.ci_high)}), "
            f"benchmark={f(self.benchmark_value)}, dummy={f(self.dummy_value)}, n={self.n}; {self.data_scope}"
            + (f"; {self.notes}" if self.notes else "")
        )


def claims_for(scope: str | None = None, directional_only: bool = False) -> list[Claim]:
    out = [c for c in CATALOG if scope is None or scope in c.scopes]
    return [c for c in out if c.directional] if directional_only else out


def values(model_ev, stat: str) -> np.ndarray:
    s = model_ev.stats
    return DERIVED[stat](s) if stat in DERIVED else np.asarray(s[stat], dtype=np.float64)


def _model_number(model_ev, claim: Claim) -> float:
    if claim.seeds_stat == "test_accuracy":
        return model_ev.test_accuracy
    return float(np.nanmean(values(model_ev, claim.stat)))


def _subject_values(claim: Claim, b, d) -> np.ndarray:
    vb = values(b, claim.stat)
    if claim.subject == "both":
        return np.minimum(vb, values(d, claim.stat))
    if claim.subject == "dummy":
        return values(d, claim.stat)
    return vb  # "benchmark", or "input" (identical in every model's table)


def evaluate(claim: Claim, scope: str, evidence) -> Verdict:
    """Test one claim in one scope (uncorrected; ``evaluate_catalog`` applies Holm)."""
    if scope not in SCOPES:
        raise unknown("scope", scope, SCOPES)
    if scope not in claim.scopes:
        raise ValueError(f"claim {claim.id} is not tested in scope {scope!r}; its scopes: {', '.join(claim.scopes)}")
    b, d = evidence.first("benchmark"), evidence.first("dummy")
    bname = "null group" if evidence.label == "null control" else "benchmark"
    pos = evidence.probe_position
    notes = ""
    extras = {}
    if scope == "probe":
        if claim.seeds_stat == "test_accuracy":
            bv, dv = b.test_accuracy, d.test_accuracy
            data_scope = f"probe: the article's single pair ({bname} seed {b.seed} vs dummy seed {d.seed}), test accuracy"
        else:
            bv = float(_subject_values(claim, b, d)[pos]) if claim.kind == "threshold" else float(values(b, claim.stat)[pos])
            dv = float("nan") if claim.kind == "threshold" else float(values(d, claim.stat)[pos])
            data_scope = (
                f"probe: one test-set frog (position {pos} among {evidence.n_images} frogs), "
                f"{bname} seed {b.seed} vs dummy seed {d.seed}; descriptive, no p-value (pixels are not replicates)"
            )
        ref = dv if claim.kind == "compare" else claim.threshold
        res = st.descriptive(bv, ref)
        holds = (res.statistic > 0) if claim.alternative == "greater" else (res.statistic < 0)
        failed = []
        for desc, role, stat, op, val in claim.probe_checks:
            got = float(values(b if role == "benchmark" else d, stat)[pos])
            extras[f"{role}_{stat}"] = got
            if (got == val) != (op == "eq"):
                failed.append(f"{desc}: no ({stat}={CLASSES[int(got)] if stat == 'argmax' else got})")
        for x in claim.extras:
            extras[f"benchmark_{x}"] = float(values(b, x)[pos])
            if claim.kind == "compare":
                extras[f"dummy_{x}"] = float(values(d, x)[pos])
        if failed:
            verdict, notes = REFUTED, "; ".join(failed)
        elif res.statistic == 0:
            verdict = INCONCLUSIVE
        else:
            verdict = SUPPORTED if holds else REFUTED
        return _verdict(claim, scope, verdict, res, bv, dv, data_scope, evidence, False, extras, notes)

    if scope == "frogs":
        data_scope = (
            f"frogs: {evidence.n_images} test-set frogs, paired per image, {bname} seed {b.seed} vs dummy seed {d.seed}"
        )
        if claim.kind == "compare":
            vb, vd = values(b, claim.stat), values(d, claim.stat)
            res = st.wilcoxon_paired(vb, vd, claim.alternative)
            bv, dv = float(np.nanmedian(vb)), float(np.nanmedian(vd))
        else:
            v = _subject_values(claim, b, d)
            res = st.wilcoxon_one_sample(v, claim.threshold, claim.alternative)
            bv, dv = float(np.nanmedian(v)), float("nan")
        for x in claim.extras:
            extras[f"benchmark_median_{x}"] = float(np.nanmedian(values(b, x)))
            extras[f"dummy_median_{x}"] = float(np.nanmedian(values(d, x)))
        n_nan = int(np.sum(~np.isfinite(values(b, claim.stat)))) + int(np.sum(~np.isfinite(values(d, claim.stat))))
        if n_nan:
            notes = f"{n_nan} undefined per-image values (all feature maps constant) left out"
        return _verdict(claim, scope, None, res, bv, dv, data_scope, evidence, True, extras, notes)

    # seeds
    gb, gd = evidence.groups["benchmark"], evidence.groups["dummy"]
    what = "test accuracy" if claim.seeds_stat == "test_accuracy" else f"mean over {evidence.n_images} frogs"
    data_scope = (
        f"seeds: {len(gb)} {bname} models (seeds {_seeds(gb)}) vs {len(gd)} dummy models (seeds {_seeds(gd)}), "
        f"one number per model ({what})"
    )
    if claim.kind == "compare":
        nb = np.array([_model_number(m, claim) for m in gb])
        nd = np.array([_model_number(m, claim) for m in gd])
        res = st.welch(nb, nd, claim.alternative)
        extras = {"benchmark_per_seed": nb.tolist(), "dummy_per_seed": nd.tolist()}
        bv, dv = float(nb.mean()), float(nd.mean())
    else:
        if claim.subject == "both":
            nv = np.array([min(_model_number(x, claim), _model_number(y, claim)) for x, y in zip(gb, gd)])
        else:
            nv = np.array([_model_number(m, claim) for m in (gd if claim.subject == "dummy" else gb)])
        res = st.t_one_sample(nv, claim.threshold, claim.alternative)
        extras = {"per_seed": nv.tolist()}
        bv, dv = float(nv.mean()), float("nan")
    return _verdict(claim, scope, None, res, bv, dv, data_scope, evidence, True, extras, notes)


def _seeds(group) -> str:
    return ",".join(str(m.seed) for m in group)


def _verdict(claim, scope, verdict, res, bv, dv, data_scope, evidence, inferential, extras, notes) -> Verdict:
    return Verdict(
        claim=claim.id, name=claim.name, scope=scope, verdict=verdict or INCONCLUSIVE, test=res.test,
        statistic=res.statistic, p_value=res.p_value, p_holm=float("nan"), effect_name=res.effect_name,
        effect=res.effect, ci_low=res.ci_low, ci_high=res.ci_high, n=res.n, benchmark_value=bv,
        dummy_value=dv, data_scope=data_scope, claimed=claim.describe(), family=evidence.label,
        inferential=inferential, p_opposite=res.p_opposite, extras={**res.extra, **extras}, notes=notes,
    )


def false_positive_rate(null_verdicts) -> float | None:
    """Share of null-control verdicts that support a directional claim."""
    if not null_verdicts:
        return None
    return sum(v.verdict == SUPPORTED for v in null_verdicts) / len(null_verdicts)


def evaluate_catalog(evidence, claims=None, scopes=SCOPES) -> list[Verdict]:
    """Every (claim, scope) verdict, Holm-corrected within each inferential scope.

    Each claim's Holm-adjusted p-value is compared with its own ``alpha``."""
    claims = list(CATALOG if claims is None else claims)
    if evidence.label == "null control":
        claims = [c for c in claims if c.directional]
    out = []
    for scope in scopes:
        in_scope = [c for c in claims if scope in c.scopes]
        vs = [evaluate(c, scope, evidence) for c in in_scope]
        if scope != "probe":
            adj = st.holm([v.p_value for v in vs])
            adj_opp = st.holm([v.p_opposite for v in vs])
            for c, v, p, q in zip(in_scope, vs, adj, adj_opp):
                v.p_holm, v.p_opposite_holm = float(p), float(q)
                v.verdict = SUPPORTED if p < c.alpha else REFUTED if q < c.alpha else INCONCLUSIVE
        out.extend(vs)
    return out
