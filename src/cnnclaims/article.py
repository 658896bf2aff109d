"""The article "Exploring Feature Extraction with CNNs", declared with the public API.

One small Keras CNN (``model.build_model``) trained on all 50,000 CIFAR-10 training
images (condition ``benchmark``) and on a class-stratified 10,000 (``dummy``), looked at
through one held-out test frog (the probe), all 1,000 test frogs (scope ``frogs``) and
N seeds per condition (``seeds``).

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

Primary (the article's headline claims): last-layer sparsity C3, zero concentration
C5, the softmax peaking on the frog C8, bigger data better C10.
"""

from __future__ import annotations

import numpy as np

from . import metrics as m
from .data import CIFAR10_CLASSES, load_cifar10
from .declaration import Claim, Condition, Experiment, Metric, Probe, Profile, softmax_metric
from .model import build_model

CLASSES = CIFAR10_CLASSES
FROG = CLASSES.index("frog")


# --- the article's per-image statistics (definitions in ``metrics``) ---------------
def _c1_input_corr(a, y):
    return m.map_input_correlation(a["conv2d_1"], m.grey(a["input"]))


def _c1_redundancy(a, y):
    return m.map_redundancy(a["conv2d_1"])


def _c6_zero_fraction(a, y):
    return m.zero_fraction(a["conv2d_6"])


def _c6_hoyer(a, y):
    return m.hoyer_sparsity(a["conv2d_6"])


def _c6_scaled_mean(a, y):
    return m.scaled_mean(a["conv2d_6"])


def _c6_scaled_p95(a, y):
    return m.scaled_quantile(a["conv2d_6"], 0.95)


def _input_entropy(a, y):
    return m.counts_entropy(m.histograms(a["input"]))


def _c6_entropy(a, y):
    return m.counts_entropy(m.histograms(m.scale_unit(a["conv2d_6"])))


def _info_gain(a, y):
    return _input_entropy(a, y) - _c6_entropy(a, y)


def _kl_c6_input(a, y):
    return m.kl_divergence(m.histograms(m.scale_unit(a["conv2d_6"])), m.histograms(a["input"]))


def _input_skew(a, y):
    return m.skewness(a["input"])


def _input_abs_skew(a, y):
    return np.abs(m.skewness(a["input"]))


def _input_centre(a, y):
    return m.centre(a["input"])


def _input_centre_offset(a, y):
    return np.abs(m.centre(a["input"]) - 0.4)


def _p_frog(p, y):
    return p[:, FROG].astype(np.float64)


def _softmax_entropy(p, y):
    return m.softmax_entropy(p)


def _correct(p, y):
    return (p.argmax(axis=1) == y).astype(np.float64)


NO_MAX = "conv2d_6 is all zeros, so there is no maximum to scale by"
C1_INPUT_CORR = Metric(
    "c1_input_corr",
    ("input", "conv2d_1"),
    _c1_input_corr,
    "conv2d_1 map-input |r|",
    "a correlation needs variance: every conv2d_1 map, or the grey input, is constant",
)
C1_REDUNDANCY = Metric(
    "c1_redundancy",
    ("conv2d_1",),
    _c1_redundancy,
    "conv2d_1 map-map |r|",
    "fewer than two non-constant conv2d_1 maps, so no pair has a correlation",
)
C6_ZERO_FRACTION = Metric("c6_zero_fraction", ("conv2d_6",), _c6_zero_fraction, "conv2d_6 zero fraction")
C6_HOYER = Metric("c6_hoyer", ("conv2d_6",), _c6_hoyer, "conv2d_6 Hoyer sparsity")
C6_SCALED_MEAN = Metric("c6_scaled_mean", ("conv2d_6",), _c6_scaled_mean, "conv2d_6 mean / image max", NO_MAX)
C6_SCALED_P95 = Metric("c6_scaled_p95", ("conv2d_6",), _c6_scaled_p95, "conv2d_6 95th percentile / image max", NO_MAX)
INPUT_ENTROPY = Metric("input_entropy", ("input",), _input_entropy, "input histogram entropy (bits)")
C6_ENTROPY = Metric("c6_entropy", ("conv2d_6",), _c6_entropy, "conv2d_6 histogram entropy (bits)")
INFO_GAIN = Metric("info_gain", ("input", "conv2d_6"), _info_gain, "information gain, input - conv2d_6 (bits)")
KL_C6_INPUT = Metric("kl_c6_input", ("input", "conv2d_6"), _kl_c6_input, "KL(conv2d_6 || input) (bits)")
INPUT_SKEW = Metric("input_skew", ("input",), _input_skew, "input pixel skewness")
INPUT_ABS_SKEW = Metric(
    "input_abs_skew",
    ("input",),
    _input_abs_skew,
    "|input pixel skewness|",
    "the input is constant, so its skewness is 0/0",
)
INPUT_CENTRE = Metric("input_centre", ("input",), _input_centre, "median input pixel")
INPUT_CENTRE_OFFSET = Metric("input_centre_offset", ("input",), _input_centre_offset, "|median input pixel - 0.4|")
P_FROG = softmax_metric("p_frog", _p_frog, "softmax p(frog)")
SOFTMAX_ENTROPY = softmax_metric("softmax_entropy", _softmax_entropy, "softmax entropy (bits)")
CORRECT = softmax_metric("correct", _correct, "correct (per image)")

CLAIMS = (
    Claim(
        "C1",
        "first-layer-processing",
        "the benchmark's first-layer feature maps are more processed, less like the input",
        C1_INPUT_CORR,
        "compare",
        "less",
        figure="Fig. 2-3",
        plot="feature_maps",
        sesoi=0.02,
        sesoi_reason="mean |r| 0.02: about half the seed-to-seed SD, below what Figs. 2-3 could show",
    ),
    Claim(
        "C2",
        "first-layer-redundancy",
        "the dummy's first-layer feature maps are more redundant",
        C1_REDUNDANCY,
        "compare",
        "less",
        figure="Fig. 2",
        plot="feature_maps",
        sesoi=0.02,
        sesoi_reason="mean |r| 0.02: about half the seed-to-seed SD, below what Fig. 2 could show",
    ),
    Claim(
        "C3",
        "last-layer-sparsity",
        "the benchmark's last conv layer is sparser",
        C6_ZERO_FRACTION,
        "compare",
        "greater",
        figure="Fig. 4-5",
        extras=(C6_HOYER,),
        sesoi=0.02,
        sesoi_reason="two percentage points of exact zeros: the smallest change visible in Fig. 5's maps",
        primary=True,
    ),
    Claim(
        "C4",
        "mostly-black",
        "most of the benchmark's last-layer activations are zero (mostly black maps)",
        C6_ZERO_FRACTION,
        "threshold",
        "greater",
        threshold=0.5,
        figure="Fig. 5",
        sesoi=0.02,
        sesoi_reason="two percentage points around the 50% line: 'mostly' needs more than a coin flip",
    ),
    Claim(
        "C5",
        "zero-concentration",
        "the benchmark's last-layer values concentrate at zero",
        C6_SCALED_MEAN,
        "compare",
        "less",
        figure="Fig. 6",
        sesoi=0.01,
        sesoi_reason="one percent of the image's maximum activation: below Fig. 6's bin width",
        primary=True,
    ),
    Claim(
        "C5b",
        "long-tail",
        "the dummy's last-layer distribution has the longer tail",
        C6_SCALED_P95,
        "compare",
        "less",
        figure="Fig. 6",
        sesoi=0.02,
        sesoi_reason="two percent of the image's maximum at the 95th percentile: below Fig. 6's bin width",
    ),
    Claim(
        "C6",
        "input-symmetric",
        "the input frog's pixel distribution is roughly symmetric",
        INPUT_ABS_SKEW,
        "threshold",
        "less",
        subject="input",
        threshold=0.5,
        figure="Fig. 7",
        scopes=("probe", "images"),
        extras=(INPUT_SKEW,),
        plot="input",
        sesoi=0.1,
        sesoi_reason="0.1 of skewness: well inside the 0.5 rule of thumb for 'roughly symmetric'",
    ),
    Claim(
        "C6b",
        "input-centre",
        "the input frog's pixels are centred near 0.4",
        INPUT_CENTRE_OFFSET,
        "threshold",
        "less",
        subject="input",
        threshold=0.1,
        figure="Fig. 7",
        scopes=("probe", "images"),
        extras=(INPUT_CENTRE,),
        plot="input",
        sesoi=0.02,
        sesoi_reason="0.02 of pixel value (5 grey levels of 255): invisible in Fig. 7",
    ),
    Claim(
        "C7",
        "information-gain",
        "the last layer's activations carry an information gain over the input, larger for the benchmark",
        INFO_GAIN,
        "compare",
        "greater",
        figure="text after Fig. 7",
        extras=(C6_ENTROPY, INPUT_ENTROPY, KL_C6_INPUT),
        plot="entropy",
        sesoi=0.05,
        sesoi_reason="0.05 bits: 1.5% of the input histogram's ~3.5 bits",
    ),
    Claim(
        "C7b",
        "information-gain-positive",
        "both models' last layers show an information gain over the input",
        INFO_GAIN,
        "threshold",
        "greater",
        subject="both",
        threshold=0.0,
        figure="text after Fig. 7",
        extras=(C6_ENTROPY, INPUT_ENTROPY),
        plot="entropy",
        sesoi=0.05,
        sesoi_reason="0.05 bits: 1.5% of the input histogram's ~3.5 bits",
    ),
    Claim(
        "C8",
        "benchmark-certainty",
        "the benchmark's softmax peaks on frog, with higher p(frog) than the dummy",
        P_FROG,
        "compare",
        "greater",
        figure="Fig. 8 left",
        extras=(SOFTMAX_ENTROPY,),
        probe_checks=(("benchmark's argmax is frog", "a", "argmax", "eq", FROG),),
        plot="softmax",
        sesoi=0.02,
        sesoi_reason="two points of softmax probability on the true class",
        primary=True,
    ),
    Claim(
        "C9",
        "dummy-confusion",
        "the dummy is confused: its softmax is flatter (higher entropy) and misses the frog",
        SOFTMAX_ENTROPY,
        "compare",
        "less",
        figure="Fig. 8 right",
        extras=(P_FROG,),
        probe_checks=(("dummy's argmax is not frog", "b", "argmax", "ne", FROG),),
        plot="softmax",
        sesoi=0.05,
        sesoi_reason="0.05 bits of softmax entropy: 1.5% of the 3.32-bit maximum",
    ),
    Claim(
        "C10",
        "bigger-data-better",
        "a bigger training set gives a better model (test accuracy)",
        CORRECT,
        "compare",
        "greater",
        figure="conclusion",
        model_metric="test_accuracy",
        plot="accuracy",
        sesoi=0.01,
        sesoi_reason="one point of test accuracy",
        primary=True,
    ),
)

PROFILES = {
    # The article: all 50,000 training images vs 10,000, trained to early stopping.
    # 8 seeds per condition: the primary claims' power for a 2-SD effect at their
    # corrected level (two-sided 0.05/4) is 0.85 (t approximation; 0.77 with 7, 0.66
    # with 6); see docs/concepts.md, "Design and power of the seeds scope", and `cnnclaims calibrate`.
    # The sizes sweep (dose-response, the conclusion's trend): 4 seeds per size, the
    # 10,000 and 50,000 points are the dummy's and benchmark's seeds 0-3 (cached). Four,
    # not eight: the 16 new models add about 15 minutes to a cold 2-core run (measured,
    # docs/cluster.md), eight would add 30 and overrun CI's 90 minutes.
    "article": Profile(
        "article",
        {"benchmark": 50_000, "dummy": 10_000},
        max_epochs=30,
        patience=3,
        n_seeds=8,
        sizes=(1_000, 2_500, 5_000, 10_000, 25_000, 50_000),
        size_seeds=4,
    ),
    # Fast loops: same code, a few thousand vs about a thousand images, two epochs.
    "smoke": Profile(
        "smoke",
        {"benchmark": 4_000, "dummy": 1_000},
        max_epochs=2,
        patience=1,
        n_seeds=3,
        sizes=(250, 500, 1_000),
        size_seeds=3,
    ),
}

# Which of the article's figures support which claims (for the report).
FIGURE_CLAIMS = {
    "fig1-model-summary": (),
    "fig2-conv2d_1-dummy": ("C1", "C2"),
    "fig3-conv2d_1-benchmark": ("C1", "C2"),
    "fig4-conv2d_6-dummy": ("C3", "C4"),
    "fig5-conv2d_6-benchmark": ("C3", "C4"),
    "fig6-last-layer-distributions": ("C5", "C5b", "C7", "C7b"),
    "fig7-probe-pixel-distribution": ("C6", "C6b", "C7", "C7b"),
    "fig8-softmax": ("C8", "C9", "C10"),
}


def article_figures(run, folder, progress=print) -> dict:
    """Figures 1-8 of the article for the first benchmark and dummy models:
    ``{name: (PNG path, claim ids it supports)}``."""
    from pathlib import Path

    from . import plots
    from .figures import model_summary

    folder = Path(folder)
    b = run.models("benchmark")[0]
    ab, ad = run.probe_activations("benchmark"), run.probe_activations("dummy")
    pos = f"probe frog (test image {run.probe_index})"
    figs = {
        "fig1-model-summary": plots.text_figure(model_summary(b.model), "Fig. 1: the article's CNN"),
        "fig2-conv2d_1-dummy": plots.feature_map_grid(ad["conv2d_1"][0], f"Fig. 2: conv2d_1, dummy\n{pos}"),
        "fig3-conv2d_1-benchmark": plots.feature_map_grid(ab["conv2d_1"][0], f"Fig. 3: conv2d_1, benchmark\n{pos}"),
        "fig4-conv2d_6-dummy": plots.feature_map_grid(ad["conv2d_6"][0], f"Fig. 4: conv2d_6, dummy\n{pos}"),
        "fig5-conv2d_6-benchmark": plots.feature_map_grid(ab["conv2d_6"][0], f"Fig. 5: conv2d_6, benchmark\n{pos}"),
        "fig6-last-layer-distributions": plots.value_histograms(
            {"benchmark": m.scale_unit(ab["conv2d_6"]), "dummy": m.scale_unit(ad["conv2d_6"])},
            f"Fig. 6: conv2d_6 values / image max, {pos}",
            "scaled activation",
        ),
        "fig7-probe-pixel-distribution": plots.value_histograms(
            {"probe frog": ab["input"][0]}, f"Fig. 7: pixel distribution of the {pos}", "pixel value (/255)"
        ),
        "fig8-softmax": plots.softmax_bars(
            {"benchmark": ab["dense_2"][0], "dummy": ad["dense_2"][0]}, CLASSES, FROG, f"Fig. 8: softmax on the {pos}"
        ),
    }
    out = {}
    for name, fig in figs.items():
        out[name] = (plots.save(fig, folder / f"{name}.png"), FIGURE_CLAIMS[name])
        progress(f"cnnclaims figures: {out[name][0]}")
    return out


ARTICLE = Experiment(
    name="article",
    title='"Exploring Feature Extraction with CNNs": benchmark (50,000 images) vs dummy (10,000)',
    classes=CLASSES,
    load_data=load_cifar10,
    build_model=build_model,
    a=Condition("benchmark", label="all training images"),
    b=Condition("dummy", label="a class-stratified fifth"),
    probe=Probe("frog", scope="frogs"),
    claims=CLAIMS,
    profiles=PROFILES,
    default_profile="article",
    output_layer="dense_2",
    version=2,  # the statistics' code version (was evidence.METRICS_VERSION)
    figures=article_figures,
)


# The article's tests, for an installed package without a checkout:
# ``pytest -p cnnclaims --pyargs cnnclaims.article`` (pins: tests/pinned_verdicts.json under
# the rootdir, or pinned_verdicts.json in it; never inside the installed package).
def _claim_tests():
    from . import parametrize_claims

    @parametrize_claims(ARTICLE)
    def test_claim(claim_case, claim_checker):
        __tracebackhide__ = True
        claim_checker(claim_case)

    @parametrize_claims(ARTICLE, null=True)
    def test_null_control(null_case, claim_checker):
        __tracebackhide__ = True
        claim_checker(null_case, null=True)

    return test_claim, test_null_control


test_claim, test_null_control = _claim_tests()
