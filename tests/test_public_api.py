"""The public API from a user's own folder: a small experiment declared in a test
file's neighbour module, run under pytest with parametrize_claims (no CIFAR-10: random
images, a tiny named CNN, one epoch)."""

import pytest

# Every test here runs whole pytest sessions in subprocesses (TensorFlow imported, most
# of them training a tiny model): the integration tier.
pytestmark = pytest.mark.integration
pytest_plugins = ["pytester"]

EXPERIMENT = """
import numpy as np
from cnnclaims import Claim, Condition, Experiment, Metric, Probe, Profile, softmax_metric
from cnnclaims.compat import keras
from cnnclaims.metrics import zero_fraction
from cnnclaims.testing import random_cifar

CLASSES = tuple("c%d" % k for k in range(10))


def load(path=None):
    return random_cifar(30, 20, seed=1)


def build(units={units}, activation="softmax"):
    i = keras.Input((32, 32, 3), name="input")
    x = keras.layers.Conv2D(4, 3, activation="relu", padding="same", name="conv")(i)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(i, keras.layers.Dense(units, activation=activation, name="out")(x), name="tiny")


def build_b():
    return build()


ZEROS = Metric("conv_zeros", ("conv",), lambda a, y: zero_fraction(a["conv"]), "conv zero fraction")
P_TRUE = softmax_metric("p_true_class", lambda p, y: p[np.arange(len(p)), y].astype(np.float64), "p(true)")
MINE = Experiment(
    name="mine", title="a tiny test", classes=CLASSES, load_data=load, build_model=build,
    a=Condition("big"), b=Condition("small", build_model=build_b),
    probe=Probe("c3"),
    claims=(Claim("M1", "sparser", "bigger is sparser", ZEROS, "compare", "greater", sesoi=0.02, primary=True),
            Claim("M2", "surer", "bigger is surer", P_TRUE, "compare", "greater", sesoi=0.02)),
    profiles={{"tiny": Profile("tiny", {{"big": 200, "small": 100}}, max_epochs=1, patience=0, n_seeds=2)}},
    output_layer="out", pins_name="pinned_mine.json",
)
"""
TEST_FILE = """
from myexp import MINE
from cnnclaims import parametrize_claims


@parametrize_claims(MINE)
def test_claim(claim_case, claim_checker):
    claim_checker(claim_case)
"""


@pytest.fixture(autouse=True)
def _no_session_profile(monkeypatch):
    # tox sets CNNCLAIMS_PROFILE=smoke for the article; the user's experiment has "tiny".
    monkeypatch.delenv("CNNCLAIMS_PROFILE", raising=False)


def _setup(pytester, units="10", activation="softmax"):
    pytester.makepyfile(
        myexp=EXPERIMENT.format(units=units).replace('activation="softmax"):', f'activation="{activation}"):'),
        test_mine=TEST_FILE,
    )


@pytest.mark.integration  # trains or runs TensorFlow sessions: minutes on 2 cores
def test_a_users_own_experiment_runs_and_prints_its_verdict_table(pytester, tmp_path):
    _setup(pytester)
    args = ("-p", "no:cacheprovider", f"--cache-dir={tmp_path / 'cache'}", f"--artifacts={tmp_path / 'art'}")
    r = pytester.runpytest_subprocess(*args, "--workers=1", "--regen-verdicts")
    out = r.stdout.str()
    assert "cnnclaims verdicts" in out and "M1-sparser" in out and "M2-surer" in out
    assert "c3s" in out  # the images scope is named after the probe class
    assert (pytester.path / "pinned_mine.json").exists()  # beside the user's test file
    r = pytester.runpytest_subprocess(*args, "--workers=1")
    outcomes = r.parseoutcomes()
    assert r.ret == 0 and outcomes.get("passed", 0) + outcomes.get("xfailed", 0) == 6  # 2 claims x 3 scopes


@pytest.mark.parametrize(
    "units,activation,expected",
    [
        ("10", "linear", "not a softmax"),
        ("5", "softmax", "outputs shape (5,), but the experiment has 10 classes"),
    ],
)
def test_a_bad_builder_stops_the_session_once(pytester, tmp_path, units, activation, expected):
    _setup(pytester, units, activation)
    r = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", f"--cache-dir={tmp_path / 'cache'}", f"--artifacts={tmp_path / 'art'}"
    )
    text = r.stdout.str() + r.stderr.str()
    assert r.ret == pytest.ExitCode.USAGE_ERROR
    assert text.count(expected) == 1 and "condition 'big'" in text


@pytest.mark.integration  # trains or runs TensorFlow sessions: minutes on 2 cores
def test_an_unknown_profile_of_the_users_experiment_is_one_usage_error(pytester, tmp_path):
    # It was a 96-line INTERNALERROR (the collection report asked for the profile again).
    _setup(pytester)
    r = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", f"--cache-dir={tmp_path / 'cache'}", "--profile", "huge"
    )
    text = r.stdout.str() + r.stderr.str()
    assert r.ret == pytest.ExitCode.USAGE_ERROR and "INTERNALERROR" not in text
    assert "experiment 'mine': unknown profile 'huge'; valid profiles: tiny" in text


@pytest.mark.integration  # trains or runs TensorFlow sessions: minutes on 2 cores
def test_experiment_option_that_contradicts_the_test_file_is_one_usage_error(pytester, tmp_path):
    _setup(pytester)
    r = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", f"--cache-dir={tmp_path / 'cache'}", "--experiment", "cnnclaims.article:ARTICLE"
    )
    text = r.stdout.str() + r.stderr.str()
    assert r.ret == pytest.ExitCode.USAGE_ERROR and "INTERNALERROR" not in text
    assert "--experiment cnnclaims.article:ARTICLE names 'article'" in text and "parametrizes 'mine'" in text


# --- anyone's experiment: a nested backbone, 28x28 grayscale, one-hot labels ----------
NESTED = """
import numpy as np
from cnnclaims import Claim, Condition, Experiment, Metric, Probe, Profile
from cnnclaims.compat import keras
from cnnclaims.metrics import zero_fraction
from cnnclaims.testing import random_images

L = keras.layers
CLASSES = tuple("d%d" % k for k in range(10))
SHAPE = (28, 28, 1)


def load():
    (xtr, ytr), (xte, yte) = random_images(30, 20, 1, LOADED, 10)
    return (xtr, np.eye(10, dtype=np.float32)[ytr]), (xte, yte)  # one-hot training labels


def backbone():
    i = keras.Input(SHAPE, name="bb_in")
    x = L.Conv2D(4, 3, activation="relu", padding="same", name="conv")(i)
    return keras.Model(i, L.MaxPooling2D(2, name="pool")(x), name="backbone")


def build():
    i = keras.Input(SHAPE, name="input")
    x = L.GlobalAveragePooling2D(name="gap")(backbone()(i))
    probs = L.Dense(10, activation="softmax", name="probs")(x)
    return keras.Model(i, OUTPUTS, name="nested")


def views(x):
    return {"input": x, "flipped": x[:, :, ::-1]}


ZEROS = Metric("bb_zeros", (LAYER,), lambda a, y: zero_fraction(a[LAYER]), "backbone zero fraction")
MINE = Experiment(
    name="mine", title="a nested backbone on 28x28 grayscale", classes=CLASSES, load_data=load, build_model=build,
    a=Condition("big"), b=Condition("small"), probe=Probe("d3"),
    claims=(Claim("M1", "sparser", "bigger is sparser", ZEROS, "compare", "greater", sesoi=0.02, primary=True),),
    profiles={"tiny": Profile("tiny", {"big": 200, "small": 100}, max_epochs=1, patience=0, n_seeds=2)},
    input_shape=SHAPE, pins_name="pinned_mine.json", EXTRA
)
"""


def _nested(pytester, layer="backbone/conv", loaded="SHAPE", outputs="probs", extra=""):
    text = (
        NESTED.replace("LAYER", repr(layer))
        .replace("LOADED", loaded)
        .replace("OUTPUTS", outputs)
        .replace("EXTRA", extra)
    )
    pytester.makepyfile(myexp=text, test_mine=TEST_FILE)


@pytest.mark.integration  # trains or runs TensorFlow sessions: minutes on 2 cores
def test_a_nested_backbone_on_grayscale_images_runs_with_a_claim_on_an_inner_layer(pytester, tmp_path):
    """From the folder above the experiment's, as from a repository root: the hint to
    accept new pins names the experiment's folder (a bare `pytest` there would run
    other tests) and leaves out `python -m cnnclaims pin`, which pins the default
    experiment."""
    folder = pytester.mkpydir("exp")
    (folder / "myexp.py").write_text(
        NESTED.replace("LAYER", repr("backbone/conv"))
        .replace("LOADED", "SHAPE")
        .replace("OUTPUTS", "probs")
        .replace("EXTRA", "")
    )
    (folder / "test_mine.py").write_text(TEST_FILE)
    (folder / "__init__.py").unlink()  # a plain folder of modules, as examples/digits
    args = (
        "exp",
        "-p",
        "no:cacheprovider",
        f"--cache-dir={tmp_path / 'cache'}",
        f"--artifacts={tmp_path / 'art'}",
        "--workers=1",
    )
    r = pytester.runpytest_subprocess(*args)
    out = r.stdout.str()
    assert (
        "no pinned verdict for M1/probe" in out
        # the command keeps the cache folder: run as printed it must not retrain into the default one
        and "`pytest exp --cnnclaims-regen-verdicts --cnnclaims-profile tiny "
        f"--cnnclaims-cache-dir {tmp_path / 'cache'}`"
        in out
    ), out
    assert "cnnclaims pin" not in out
    r = pytester.runpytest_subprocess(*args, "--regen-verdicts")
    out = r.stdout.str()
    assert r.ret == 0, out
    assert "M1-sparser" in out and "d3s" in out and (folder / "pinned_mine.json").exists()


TWO_OUTPUTS = "[probs, L.Dense(1, name='aux')(x)]"


@pytest.mark.parametrize(
    "variant,expected",
    [
        (
            dict(layer="conv"),
            "experiment 'mine', condition 'big': claim 'M1', metric 'bb_zeros' reads layer 'conv', "
            "which model 'nested' lacks; it is inside a nested model: 'backbone/conv'",
        ),
        (
            dict(outputs=TWO_OUTPUTS),
            "the model has 2 outputs (probs, aux); declare which is the class probabilities: "
            "Experiment(output_layer='probs')",
        ),
        (
            dict(outputs="probs", extra="feed=views"),
            "feed returned the keys ['flipped', 'input'], but the model's inputs are input",
        ),
    ],
)
def test_a_declaration_mistake_is_one_usage_error_before_any_training(pytester, tmp_path, variant, expected):
    _nested(pytester, **variant)
    r = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", f"--cache-dir={tmp_path / 'cache'}", f"--artifacts={tmp_path / 'art'}"
    )
    text = r.stdout.str() + r.stderr.str()
    assert r.ret == pytest.ExitCode.USAGE_ERROR and "INTERNALERROR" not in text and "Traceback" not in text, text
    assert text.count(expected) == 1, text
    assert not (tmp_path / "cache" / "models").exists()


@pytest.mark.integration  # trains or runs TensorFlow sessions: minutes on 2 cores
def test_images_of_another_shape_than_declared_stop_the_session_in_one_line(pytester, tmp_path):
    """Met before the first claim test (the data is loaded then, once): one usage error,
    no test run (the first test used to fail with it)."""
    _nested(pytester, loaded="(32, 32, 3)")
    r = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", f"--cache-dir={tmp_path / 'cache'}", f"--artifacts={tmp_path / 'art'}"
    )
    text = r.stdout.str() + r.stderr.str()
    expected = (
        "load_data's train split holds images of shape (32, 32, 3), but the experiment declares input_shape (28, 28, 1)"
    )
    assert r.ret == pytest.ExitCode.USAGE_ERROR and not r.parseoutcomes().get("failed"), text
    assert text.count(expected) == 1 and "Traceback" not in text, text
    assert not (tmp_path / "cache" / "models").exists()


@pytest.mark.integration  # trains or runs TensorFlow sessions: minutes on 2 cores
def test_keras_set_to_channels_first_is_one_usage_error_naming_the_setting(pytester, tmp_path, monkeypatch):
    home = tmp_path / "keras_home"
    home.mkdir()
    (home / "keras.json").write_text('{"image_data_format": "channels_first", "backend": "tensorflow"}')
    monkeypatch.setenv("KERAS_HOME", str(home))
    _nested(pytester)
    r = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", f"--cache-dir={tmp_path / 'cache'}", f"--artifacts={tmp_path / 'art'}"
    )
    text = r.stdout.str() + r.stderr.str()
    assert r.ret == pytest.ExitCode.USAGE_ERROR and "Traceback" not in text, text
    assert "image_data_format 'channels_first'" in text and str(home / "keras.json") in text
    assert '"image_data_format": "channels_last"' in text
