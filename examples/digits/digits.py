"""A third experiment, on real data no one here made: scikit-learn's bundled handwritten
digits (``sklearn.datasets.load_digits``: 1,797 images of 8x8 pixels, one channel,
values 0..16, ten classes; shipped inside the package, no download), with a nested
backbone: a small conv block that is its own ``keras.Model``, used as a layer, whose
inner layers the claims read by path (``backbone/conv_2``).

Conditions: the same network trained on 1,000 images (``many``, 100 per digit) and on
200 (``few``, 20 per digit), class-stratified subsets of the training split; as the
article's benchmark and dummy (50,000 vs 10,000: five times the images). Probe digit:
8 (every test 8 is the images scope ``eights``).

Claims, stated before the experiment was first run, each the article's claim moved to
other data (the article is the literature here) or a textbook result, with its SESOI:

D1  more images, more accurate on the test set (primary). Learning curves: test error
    falls with training-set size (Cortes, Jackel, Solla, Vapnik & Denker 1994,
    "Learning curves: asymptotic values and rate of convergence", NeurIPS 6; Hestness
    et al. 2017, "Deep learning scaling is predictable, empirically",
    arXiv:1712.00409); the article's C10. SESOI two accuracy points: 10 of the 500
    test images, twice the article's one point for a test set twenty times smaller.
D2  more images, sparser backbone features (primary): a larger fraction of exact zeros
    in the backbone's last conv layer (``backbone/conv_2``, its ReLU output). The
    article's headline claim C3 (its Fig. 5: the benchmark's last conv layer is the
    sparser, "mostly black"), and the issue's hypothesis that fewer images give less
    sparse backbone features. SESOI two percentage points of exact zeros, as C3.
D3  more images, more confident on the probe digit: higher softmax p(true class) on
    test 8s (secondary). The article's C8 (p(frog) higher for the benchmark). SESOI
    two points of probability, as the widths experiment's W2.
D4  fewer images, flatter softmax: higher entropy in bits on test 8s (secondary). The
    article's C9. SESOI 0.05 bits of the 3.32-bit maximum, as W4.

Pixels are the package's integers divided by 16 (floats in [0, 1], exact); 50 test
images per digit are held out by a fixed draw (numpy seed 0), the rest train (124 to
133 per digit).
"""

import numpy as np

from cnnclaims import Claim, Condition, Experiment, Metric, Probe, Profile, softmax_metric
from cnnclaims.compat import keras
from cnnclaims.metrics import softmax_entropy, zero_fraction

CLASSES = tuple(str(d) for d in range(10))
SHAPE = (8, 8, 1)
TEST_PER_DIGIT = 50
EIGHT = CLASSES.index("8")


def load_digits_split():
    """((x_train, y_train), (x_test, y_test)): float32 (n, 8, 8, 1) pixels in [0, 1]
    (the package's 0..16 divided by 16) and int64 digit labels; 50 test images per
    digit drawn with numpy seed 0, the rest train."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[..., None]
    y = digits.target.astype(np.int64)
    rng = np.random.default_rng(0)
    test = np.zeros(len(y), bool)
    for d in range(10):
        test[rng.choice(np.flatnonzero(y == d), TEST_PER_DIGIT, replace=False)] = True
    return (x[~test], y[~test]), (x[test], y[test])


def build_backbone():
    """The backbone: two 3x3 conv layers of 16 filters and a 2x2 max pool, as its own
    keras.Model (8x8x1 -> 4x4x16)."""
    L = keras.layers
    inp = keras.Input(SHAPE, name="digits_in")
    x = L.Conv2D(16, 3, padding="same", activation="relu", name="conv_1")(inp)
    x = L.Conv2D(16, 3, padding="same", activation="relu", name="conv_2")(x)
    return keras.Model(inp, L.MaxPooling2D(2, name="pool")(x), name="backbone")


def build_model():
    """The backbone used as a layer, then flatten and a ten-way softmax."""
    L = keras.layers
    inp = keras.Input(SHAPE, name="input")
    x = L.Flatten(name="flatten")(build_backbone()(inp))
    return keras.Model(inp, L.Dense(10, activation="softmax", name="probs")(x), name="digits_cnn")


def bb_zero_fraction(acts, labels):
    return zero_fraction(acts["backbone/conv_2"])


def p_true(probs, labels):
    return probs[np.arange(len(probs)), labels].astype(np.float64)


def correct(probs, labels):
    return (probs.argmax(axis=1) == labels).astype(np.float64)


def entropy(probs, labels):
    return softmax_entropy(probs)


ZEROS = Metric("bb_zero_fraction", ("backbone/conv_2",), bb_zero_fraction, "backbone/conv_2 zero fraction")
CORRECT = softmax_metric("correct", correct, "correct (per image)")
P_TRUE = softmax_metric("p_true_class", p_true, "softmax p(true digit)")
ENTROPY = softmax_metric("softmax_entropy", entropy, "softmax entropy (bits)")

DIGITS = Experiment(
    name="digits",
    title="scikit-learn's handwritten digits: 1,000 vs 200 training images, a nested conv backbone",
    classes=CLASSES,
    load_data=load_digits_split,
    build_model=build_model,
    a=Condition("many", label="1,000 training images (100 per digit)"),
    b=Condition("few", label="200 training images (20 per digit)"),
    probe=Probe("8", scope="eights"),
    claims=(
        Claim(
            "D1",
            "more-images-more-accurate",
            "more training images give a more accurate network",
            CORRECT,
            "compare",
            "greater",
            sesoi=0.02,
            primary=True,
            model_metric="test_accuracy",
            plot="accuracy",
            sesoi_reason="two accuracy points: 10 of the 500 test images (the article's one point, test set "
            "20x smaller)",
        ),
        Claim(
            "D2",
            "more-images-sparser-backbone",
            "more training images give sparser backbone features",
            ZEROS,
            "compare",
            "greater",
            sesoi=0.02,
            primary=True,
            plot="feature_maps",
            sesoi_reason="two percentage points of exact zeros, as the article's C3",
        ),
        Claim(
            "D3",
            "more-images-more-confident",
            "more training images give a surer softmax on the probe digit",
            P_TRUE,
            "compare",
            "greater",
            sesoi=0.02,
            plot="softmax",
            sesoi_reason="two points of softmax probability, as W2",
        ),
        Claim(
            "D4",
            "fewer-images-flatter",
            "fewer training images give a flatter softmax",
            ENTROPY,
            "compare",
            "less",
            sesoi=0.05,
            plot="softmax",
            sesoi_reason="0.05 bits of the 3.32-bit maximum, as W4",
        ),
    ),
    profiles={
        "smoke": Profile("smoke", {"many": 1000, "few": 200}, max_epochs=15, patience=3, n_seeds=3),
        "full": Profile(
            "full",
            {"many": 1000, "few": 200},
            max_epochs=100,
            patience=5,
            n_seeds=10,
            sizes=(200, 400, 600, 800, 1000),
            size_seeds=4,
        ),
    },
    default_profile="smoke",
    input_shape=SHAPE,
    output_layer="probs",
    pins_name="pinned_digits.json",
)
