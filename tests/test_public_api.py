"""The public API from a user's own folder: a small experiment declared in a test
file's neighbour module, run under pytest with parametrize_claims (no CIFAR-10: random
images, a tiny named CNN, one epoch)."""
import textwrap

import pytest

pytestmark = pytest.mark.unit
pytest_plugins = ["pytester"]

EXPERIMENT = '''
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
'''
TEST_FILE = '''
from myexp import MINE
from cnnclaims import parametrize_claims


@parametrize_claims(MINE)
def test_claim(claim_case, claim_checker):
    claim_checker(claim_case)
'''


@pytest.fixture(autouse=True)
def _no_session_profile(monkeypatch):
    # tox sets CNNCLAIMS_PROFILE=smoke for the article; the user's experiment has "tiny".
    monkeypatch.delenv("CNNCLAIMS_PROFILE", raising=False)


def _setup(pytester, units="10", activation="softmax"):
    pytester.makepyfile(myexp=EXPERIMENT.format(units=units).replace(
        'activation="softmax"):', f'activation="{activation}"):'), test_mine=TEST_FILE)


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


@pytest.mark.parametrize("units,activation,expected", [
    ("10", "linear", "not a softmax"),
    ("5", "softmax", "outputs shape (5,), but the experiment has 10 classes"),
])
def test_a_bad_builder_stops_the_session_once(pytester, tmp_path, units, activation, expected):
    _setup(pytester, units, activation)
    r = pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--cache-dir={tmp_path / 'cache'}",
                                      f"--artifacts={tmp_path / 'art'}")
    text = r.stdout.str() + r.stderr.str()
    assert r.ret == pytest.ExitCode.USAGE_ERROR
    assert text.count(expected) == 1 and "condition 'big'" in text


def test_an_unknown_profile_of_the_users_experiment_is_one_usage_error(pytester, tmp_path):
    # It was a 96-line INTERNALERROR (the collection report asked for the profile again).
    _setup(pytester)
    r = pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--cache-dir={tmp_path / 'cache'}",
                                      "--profile", "huge")
    text = r.stdout.str() + r.stderr.str()
    assert r.ret == pytest.ExitCode.USAGE_ERROR and "INTERNALERROR" not in text
    assert "experiment 'mine': unknown profile 'huge'; valid profiles: tiny" in text


def test_experiment_option_that_contradicts_the_test_file_is_one_usage_error(pytester, tmp_path):
    _setup(pytester)
    r = pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--cache-dir={tmp_path / 'cache'}",
                                      "--experiment", "cnnclaims.article:ARTICLE")
    text = r.stdout.str() + r.stderr.str()
    assert r.ret == pytest.ExitCode.USAGE_ERROR and "INTERNALERROR" not in text
    assert "--experiment cnnclaims.article:ARTICLE names 'article'" in text and "parametrizes 'mine'" in text
