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

Scopes (see ``stats`` for the tests, ``verdicts`` for the decision): ``probe`` (the
article's single frog and its single pair of models: descriptive), ``frogs`` (1,000
test-set frogs, paired per image, first-seed pair), ``seeds`` (N models per condition,
one number per model: its mean over the frogs, or its test accuracy). C6/C6b concern
the input alone, so they have no ``seeds`` scope.

Each claim states its smallest effect size of interest (``sesoi``, in the statistic's
own units, with ``sesoi_reason``) and whether it is one of the article's headline
claims (``primary``: last-layer sparsity C3, zero concentration C5, the softmax peaking
on the frog C8, bigger data better C10). Multiplicity is corrected within each family
(primary, secondary) of each inferential scope.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import FROG
from .errors import unknown

ALPHA = 0.05
SCOPES = ("probe", "frogs", "seeds")
PRIMARY, SECONDARY = "primary", "secondary"


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
    alpha: float = ALPHA  # family-wise error rate of the claim's family
    sesoi: float = float("nan")  # smallest effect size of interest, in the statistic's units
    sesoi_reason: str = ""  # one line: why this size
    primary: bool = False  # one of the article's headline claims

    @property
    def tier(self) -> str:
        """The claim's multiplicity family within a scope: "primary" or "secondary"."""
        return PRIMARY if self.primary else SECONDARY

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
            return ("Wilcoxon signed-rank, paired images, + rank-based TOST" if self.directional
                    else "Wilcoxon signed-rank, one sample against the threshold, + rank-based TOST")
        return ("Welch t-test, one number per model, + Welch TOST" if self.directional
                else "one-sample t-test over seeds against the threshold, + TOST")

    @property
    def label(self) -> str:
        """What the tested statistic is, in words (axis labels, table text)."""
        return stat_label(self.stat)

    @property
    def seeds_label(self) -> str:
        """The seeds scope's per-model number, in words."""
        return stat_label(self.seeds_stat) if self.seeds_stat else f"mean {self.label} over the images"

    def describe(self) -> str:
        rel = ">" if self.alternative == "greater" else "<"
        if self.kind == "compare":
            return f"{self.label}: benchmark {rel} dummy"
        return f"{self.label} of {self.subject} {rel} {self.threshold:g}"


# What each statistic is, for people: axis labels and table text, never the internal key.
STAT_LABELS = {
    "c1_input_corr": "conv2d_1 map-input |r|",
    "c1_redundancy": "conv2d_1 map-map |r|",
    "c6_zero_fraction": "conv2d_6 zero fraction",
    "c6_hoyer": "conv2d_6 Hoyer sparsity",
    "c6_scaled_mean": "conv2d_6 mean / image max",
    "c6_scaled_p95": "conv2d_6 95th percentile / image max",
    "input_entropy": "input histogram entropy (bits)",
    "c6_entropy": "conv2d_6 histogram entropy (bits)",
    "info_gain": "information gain, input - conv2d_6 (bits)",
    "kl_c6_input": "KL(conv2d_6 || input) (bits)",
    "input_skew": "input pixel skewness",
    "input_centre": "median input pixel",
    "input_abs_skew": "|input pixel skewness|",
    "input_centre_offset": "|median input pixel - 0.4|",
    "p_frog": "softmax p(frog)",
    "softmax_entropy": "softmax entropy (bits)",
    "argmax": "predicted class",
    "correct": "correct (per image)",
    "test_accuracy": "test accuracy",
}


def stat_label(stat: str) -> str:
    """``STAT_LABELS[stat]``, or the key itself for a statistic without a label."""
    return STAT_LABELS.get(stat, stat)


# Statistics derived from the stored table (kept out of it: they are one-liners).
DERIVED = {
    "input_abs_skew": lambda s: np.abs(s["input_skew"]),
    "input_centre_offset": lambda s: np.abs(s["input_centre"] - 0.4),
}

CATALOG = (
    Claim("C1", "first-layer-processing",
          "the benchmark's first-layer feature maps are more processed, less like the input",
          "Fig. 2-3", ("conv2d_1",), "c1_input_corr", "compare", "less", plot="feature_maps",
          sesoi=0.02, sesoi_reason="mean |r| 0.02: about half the seed-to-seed SD, below what Figs. 2-3 could show"),
    Claim("C2", "first-layer-redundancy",
          "the dummy's first-layer feature maps are more redundant",
          "Fig. 2", ("conv2d_1",), "c1_redundancy", "compare", "less", plot="feature_maps",
          sesoi=0.02, sesoi_reason="mean |r| 0.02: about half the seed-to-seed SD, below what Fig. 2 could show"),
    Claim("C3", "last-layer-sparsity",
          "the benchmark's last conv layer is sparser",
          "Fig. 4-5", ("conv2d_6",), "c6_zero_fraction", "compare", "greater", extras=("c6_hoyer",),
          sesoi=0.02, sesoi_reason="two percentage points of exact zeros: the smallest change visible in Fig. 5's maps", primary=True),
    Claim("C4", "mostly-black",
          "most of the benchmark's last-layer activations are zero (mostly black maps)",
          "Fig. 5", ("conv2d_6",), "c6_zero_fraction", "threshold", "greater", threshold=0.5,
          sesoi=0.02, sesoi_reason="two percentage points around the 50% line: 'mostly' needs more than a coin flip"),
    Claim("C5", "zero-concentration",
          "the benchmark's last-layer values concentrate at zero",
          "Fig. 6", ("conv2d_6",), "c6_scaled_mean", "compare", "less",
          sesoi=0.01, sesoi_reason="one percent of the image's maximum activation: below Fig. 6's bin width", primary=True),
    Claim("C5b", "long-tail",
          "the dummy's last-layer distribution has the longer tail",
          "Fig. 6", ("conv2d_6",), "c6_scaled_p95", "compare", "less",
          sesoi=0.02, sesoi_reason="two percent of the image's maximum at the 95th percentile: below Fig. 6's bin width"),
    Claim("C6", "input-symmetric",
          "the input frog's pixel distribution is roughly symmetric",
          "Fig. 7", ("input",), "input_abs_skew", "threshold", "less", subject="input", threshold=0.5,
          scopes=("probe", "frogs"), extras=("input_skew",), plot="input",
          sesoi=0.1, sesoi_reason="0.1 of skewness: well inside the 0.5 rule of thumb for 'roughly symmetric'"),
    Claim("C6b", "input-centre",
          "the input frog's pixels are centred near 0.4",
          "Fig. 7", ("input",), "input_centre_offset", "threshold", "less", subject="input", threshold=0.1,
          scopes=("probe", "frogs"), extras=("input_centre",), plot="input",
          sesoi=0.02, sesoi_reason="0.02 of pixel value (5 grey levels of 255): invisible in Fig. 7"),
    Claim("C7", "information-gain",
          "the last layer's activations carry an information gain over the input, larger for the benchmark",
          "text after Fig. 7", ("input", "conv2d_6"), "info_gain", "compare", "greater",
          extras=("c6_entropy", "input_entropy", "kl_c6_input"), plot="entropy",
          sesoi=0.05, sesoi_reason="0.05 bits: 1.5% of the input histogram's ~3.5 bits"),
    Claim("C7b", "information-gain-positive",
          "both models' last layers show an information gain over the input",
          "text after Fig. 7", ("input", "conv2d_6"), "info_gain", "threshold", "greater", subject="both",
          threshold=0.0, extras=("c6_entropy", "input_entropy"), plot="entropy",
          sesoi=0.05, sesoi_reason="0.05 bits: 1.5% of the input histogram's ~3.5 bits"),
    Claim("C8", "benchmark-certainty",
          "the benchmark's softmax peaks on frog, with higher p(frog) than the dummy",
          "Fig. 8 left", ("dense_2",), "p_frog", "compare", "greater", extras=("softmax_entropy",),
          probe_checks=(("benchmark's argmax is frog", "benchmark", "argmax", "eq", FROG),), plot="softmax",
          sesoi=0.02, sesoi_reason="two points of softmax probability on the true class", primary=True),
    Claim("C9", "dummy-confusion",
          "the dummy is confused: its softmax is flatter (higher entropy) and misses the frog",
          "Fig. 8 right", ("dense_2",), "softmax_entropy", "compare", "less", extras=("p_frog",),
          probe_checks=(("dummy's argmax is not frog", "dummy", "argmax", "ne", FROG),), plot="softmax",
          sesoi=0.05, sesoi_reason="0.05 bits of softmax entropy: 1.5% of the 3.32-bit maximum"),
    Claim("C10", "bigger-data-better",
          "a bigger training set gives a better model (test accuracy)",
          "conclusion", ("dense_2",), "correct", "compare", "greater", seeds_stat="test_accuracy",
          plot="accuracy",
          sesoi=0.01, sesoi_reason="one point of test accuracy", primary=True),
)
CLAIMS = {c.id: c for c in CATALOG}


def get_claim(claim_id: str) -> Claim:
    if claim_id not in CLAIMS:
        raise unknown("claim", claim_id, CLAIMS)
    return CLAIMS[claim_id]


def claims_for(scope: str | None = None, directional_only: bool = False) -> list[Claim]:
    out = [c for c in CATALOG if scope is None or scope in c.scopes]
    return [c for c in out if c.directional] if directional_only else out


def values(model_ev, stat: str) -> np.ndarray:
    """``(n_images,)`` float64 per-image values of ``stat`` for one model's evidence."""
    s = model_ev.stats
    return DERIVED[stat](s) if stat in DERIVED else np.asarray(s[stat], dtype=np.float64)


def model_number(model_ev, claim: Claim) -> float:
    """The one number per model the seeds scope compares: test accuracy, or the
    mean of the claim's statistic over the frogs (NaN images left out)."""
    if claim.seeds_stat == "test_accuracy":
        return model_ev.test_accuracy
    v = values(model_ev, claim.stat)
    return float(np.mean(v[np.isfinite(v)])) if np.isfinite(v).any() else float("nan")


def subject_values(claim: Claim, b, d) -> np.ndarray:
    """Per-image values a threshold claim tests: the benchmark's, the input's, or
    (subject "both") the smaller of the two models' values."""
    vb = values(b, claim.stat)
    if claim.subject == "both":
        return np.minimum(vb, values(d, claim.stat))
    if claim.subject == "dummy":
        return values(d, claim.stat)
    return vb  # "benchmark", or "input" (identical in every model's table)
