"""A second experiment, declared with cnnclaims' public API: the article's CNN with 32
vs 8 filters per conv layer, trained on the same images. Probe class: ship.

Claims (each with its rationale):
W1  the wider network is more accurate on the test set: four times the filters give
    the capacity that 8 filters lack (primary; SESOI one accuracy point);
W2  it is more confident on ships: p(ship) on test ships rises with capacity
    (primary; SESOI two points of probability);
W3  its last conv layer is sparser: with more filters each can specialise, so more
    of them are silent on a given image (SESOI two points of exact zeros);
W4  the narrow network's softmax is flatter (higher entropy) on ships: a network
    that cannot separate ship from airplane spreads its mass (SESOI 0.05 bits).
"""

import numpy as np

from cnnclaims import Claim, Condition, Experiment, Metric, Probe, Profile, softmax_metric
from cnnclaims.data import CIFAR10_CLASSES, load_cifar10
from cnnclaims.metrics import softmax_entropy, zero_fraction
from cnnclaims.model import build_model

SHIP = CIFAR10_CLASSES.index("ship")


def build_wide():
    return build_model(filters=32)


def build_narrow():
    return build_model(filters=8)


def p_ship(probs, labels):
    return probs[:, SHIP].astype(np.float64)


ZEROS = Metric(
    "c6_zero_fraction", ("conv2d_6",), lambda acts, y: zero_fraction(acts["conv2d_6"]), "conv2d_6 zero fraction"
)
P_SHIP = softmax_metric("p_ship", p_ship, "softmax p(ship)")
ENTROPY = softmax_metric("softmax_entropy", lambda p, y: softmax_entropy(p), "softmax entropy (bits)")
CORRECT = softmax_metric("correct", lambda p, y: (p.argmax(axis=1) == y).astype(np.float64), "correct")

WIDTHS = Experiment(
    name="widths",
    title="the article's CNN with 32 vs 8 filters per conv layer, same training images",
    classes=CIFAR10_CLASSES,
    load_data=load_cifar10,
    build_model=build_model,
    a=Condition("wide", build_model=build_wide, label="32 filters per conv layer"),
    b=Condition("narrow", build_model=build_narrow, label="8 filters per conv layer"),
    probe=Probe("ship"),
    claims=(
        Claim(
            "W1",
            "wider-more-accurate",
            "a wider network is more accurate",
            CORRECT,
            "compare",
            "greater",
            sesoi=0.01,
            sesoi_reason="one point of test accuracy",
            primary=True,
            model_metric="test_accuracy",
            plot="accuracy",
        ),
        Claim(
            "W2",
            "wider-more-confident",
            "a wider network is more confident on ships",
            P_SHIP,
            "compare",
            "greater",
            sesoi=0.02,
            sesoi_reason="two points of softmax probability",
            primary=True,
            plot="softmax",
        ),
        Claim(
            "W3",
            "wider-sparser",
            "a wider network's last conv layer is sparser",
            ZEROS,
            "compare",
            "greater",
            sesoi=0.02,
            sesoi_reason="two percentage points of exact zeros",
        ),
        Claim(
            "W4",
            "narrow-flatter",
            "a narrow network's softmax is flatter",
            ENTROPY,
            "compare",
            "less",
            sesoi=0.05,
            sesoi_reason="0.05 bits of the 3.32-bit maximum",
            plot="softmax",
        ),
    ),
    profiles={
        "smoke": Profile("smoke", {"wide": 4_000, "narrow": 4_000}, max_epochs=2, patience=1, n_seeds=3),
        "full": Profile("full", {"wide": 10_000, "narrow": 10_000}, max_epochs=30, patience=3, n_seeds=8),
    },
    default_profile="smoke",
    output_layer="dense_2",
    pins_name="pinned_widths.json",
)
