"""The data contract comes from the declaration: any image shape and class count,
integer or one-hot labels, several inputs (a feed) or outputs (output_layer), and
channels-first refused naming the setting; each mistake one clear error before any
training. End to end on every shape: slicing, metrics, verdicts, plots, the probe, the
images scope, and real training through prepare/fit."""

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from cnnclaims import Claim, Condition, Experiment, Metric, Probe, Profile, softmax_metric
from cnnclaims.compat import keras
from cnnclaims.errors import DataError, InputError, ModelError
from cnnclaims.metrics import grey, map_input_correlation, softmax_entropy, zero_fraction
from cnnclaims.modelio import ModelIO, checked_io, model_io
from cnnclaims.testing import random_images
from cnnclaims.verdicts import VERDICTS

L = keras.layers


# --- a small experiment of any shape, with a nested backbone -------------------------
def _builder(shape, n_classes, name="any"):
    def build():
        inner = keras.Input(shape, name="bb_in")
        x = L.Conv2D(4, 3, padding="same", activation="relu", name="conv")(inner)
        backbone = keras.Model(inner, L.MaxPooling2D(2, name="pool")(x), name="backbone")
        inp = keras.Input(shape, name="input")
        x = L.GlobalAveragePooling2D(name="gap")(backbone(inp))
        return keras.Model(inp, L.Dense(n_classes, activation="softmax", name="probs")(x), name=name)

    return build


SHAPES = {  # the list: grayscale 28x28 and 8x8, RGB 64x64, 2 classes and 100
    "28x28x1": ((28, 28, 1), 10),
    "8x8x1": ((8, 8, 1), 10),
    "64x64x3": ((64, 64, 3), 10),
    "2-classes": ((16, 16, 3), 2),
    "100-classes": ((12, 12, 1), 100),
}


def _experiment(shape, n_classes, **kw):
    classes = tuple(f"c{k}" for k in range(n_classes))
    zeros = Metric("bb_zeros", ("backbone/conv",), lambda a, y: zero_fraction(a["backbone/conv"]), "zeros")
    corr = Metric(
        "corr",
        ("backbone/conv", "input"),
        lambda a, y: map_input_correlation(a["backbone/conv"], grey(a["input"])),
        "r with input",
    )
    entropy = softmax_metric("entropy", lambda p, y: softmax_entropy(p), "softmax entropy")
    claims = (
        Claim("S1", "sparser", "a is sparser", zeros, sesoi=0.02, primary=True, plot="feature_maps"),
        Claim("S2", "flatter", "a is flatter", entropy, alternative="less", sesoi=0.05, plot="softmax"),
        Claim("S3", "input-like", "a is like its input", corr, sesoi=0.02, plot="entropy"),
    )
    build = _builder(shape, n_classes)
    args = dict(
        name="anyshape",
        title="any shape",
        classes=classes,
        load_data=lambda: None,
        build_model=build,
        a=Condition("a"),
        b=Condition("b"),
        probe=Probe("c1"),
        claims=claims,
        profiles={"tiny": Profile("tiny", {"a": 2 * n_classes, "b": n_classes}, max_epochs=1, patience=0, n_seeds=2)},
        input_shape=shape,
        output_layer="probs",
    )
    args.update(kw)
    return Experiment(**args)


@pytest.mark.parametrize("case", SHAPES)
def test_every_shape_and_class_count_runs_end_to_end_on_untrained_models(case, tmp_path):
    """Activations at a nested path, metrics of the input, verdicts of every scope,
    each diagnostic plot kind, the probe's activations."""
    from cnnclaims.diagnostics import claim_plots
    from cnnclaims.testing import synthetic_experiment

    shape, k = SHAPES[case]
    run = synthetic_experiment(tmp_path, n_seeds=2, frogs=4, profile="tiny", experiment=_experiment(shape, k))
    assert run.probe_image.shape == shape and len(run.probe_images) == 4
    acts = run.probe_activations("a")
    assert acts["backbone/conv"].shape == (1, *shape[:2], 4) and acts["probs"].shape == (1, k)
    verdicts = run.verdicts
    assert {(v.claim, v.scope) for v in verdicts} == {
        (c, s) for c in ("S1", "S2", "S3") for s in ("probe", "c1s", "seeds")
    }
    assert all(v.verdict in VERDICTS for v in verdicts)
    assert run.null_verdicts
    for v in verdicts:
        for path in claim_plots(run, v, tmp_path / "plots"):
            assert path.stat().st_size > 0


@pytest.mark.parametrize("case", ["28x28x1", "2-classes", "100-classes"])
def test_training_takes_the_experiments_shape_and_classes(case, tmp_path):
    """prepare() made ten one-hot columns whatever the classes (np.eye(10)); the loader
    contract refused every shape but 32x32x3."""
    from cnnclaims.data import dataset
    from cnnclaims.training import get_trained, specs_for

    shape, k = SHAPES[case]
    exp = _experiment(shape, k)
    (xtr, ytr), (xte, yte) = random_images(2, 1, 3, shape, k)
    data = dataset(xtr, ytr, xte, yte, source="random", n_classes=k)
    spec = specs_for(exp.profile("tiny"), "a", exp)[0]
    trained = get_trained(spec, data, tmp_path, progress=lambda *_: None, experiment=exp)
    assert trained.record["epochs"] == 1 and 0 <= trained.test_accuracy <= 1
    assert trained.model.output_shape == (None, k)


# --- labels and images as the loader gives them ------------------------------------
def test_one_hot_labels_are_class_indices_and_soft_labels_are_refused():
    from cnnclaims.data import dataset
    from cnnclaims.inputs import class_labels

    (xtr, ytr), (xte, yte) = random_images(3, 2, 0, (8, 8, 1), 4)
    hot = np.eye(4, dtype=np.float32)[ytr]
    data = dataset(xtr, hot, xte, yte, n_classes=4)
    np.testing.assert_array_equal(data.y_train, ytr)
    assert data.fingerprint == dataset(xtr, ytr, xte, yte, n_classes=4).fingerprint
    soft = hot * 0.9 + 0.025  # label smoothing: not a class index
    with pytest.raises(DataError, match=r"train split: label row 0 is not one-hot .*not soft or smoothed"):
        dataset(xtr, soft, xte, yte, n_classes=4)
    with pytest.raises(InputError, match=r"labels outside 0\.\.3: 4; the experiment has 4 classes"):
        class_labels(np.array([0, 4]), 2, "here", n_classes=4)


def test_images_of_another_shape_than_declared_are_one_error_naming_the_fix(tmp_path):
    """The issue's user: 28x28 grayscale images against the CIFAR-shaped default."""
    from cnnclaims.data import check_dataset, dataset

    (xtr, ytr), (xte, yte) = random_images(30, 3, 0, (28, 28, 1), 10)
    data = dataset(xtr, ytr, xte, yte)
    article_shaped = _experiment((32, 32, 3), 10)
    with pytest.raises(
        DataError,
        match=r"load_data's train split holds images of shape \(28, 28, 1\), but the "
        r"experiment declares input_shape \(32, 32, 3\).*Experiment\(input_shape="
        r"\(28, 28, 1\)\)",
    ):
        check_dataset(data, article_shaped)
    assert check_dataset(data, _experiment((28, 28, 1), 10)) is data
    first = dataset(xtr.transpose(0, 3, 1, 2), ytr, xte.transpose(0, 3, 1, 2), yte)
    with pytest.raises(DataError, match=r"they look channels-first: return x\.transpose\(0, 2, 3, 1\)"):
        check_dataset(first, _experiment((28, 28, 1), 10))
    with pytest.raises(DataError, match=r"labels outside 0\.\.1: 2, 3.*declares 2 classes"):
        check_dataset(data, _experiment((28, 28, 1), 2))
    with pytest.raises(DataError, match=r"grayscale images: add the channel axis"):
        dataset(xtr[..., 0], ytr, xte[..., 0], yte)


def test_the_declared_shape_and_classes_are_checked_at_declaration():
    with pytest.raises(ValueError, match=r"input_shape must be \(height, width, channels\).*got \(28, 28\)"):
        _experiment((28, 28), 10)
    with pytest.raises(ValueError, match=r"input_shape \(3, 32, 32\) looks channels-first.*input_shape=\(32, 32, 3\)"):
        _experiment((3, 32, 32), 10)
    with pytest.raises(ValueError, match=r"classes must be two or more distinct names"):
        _experiment((8, 8, 1), 10, classes=("c1",), probe=Probe("c1"))
    with pytest.raises(TypeError, match=r"feed must be a function"):
        _experiment((8, 8, 1), 10, feed="left")


def test_the_model_must_take_the_declared_images():
    from cnnclaims.training import checked_config

    exp = _experiment((8, 8, 1), 10, build_model=_builder((28, 28, 1), 10))
    with pytest.raises(
        ModelError,
        match=r"condition 'a': build_model .* takes inputs of shape \(28, 28, 1\), but the "
        r"experiment's images are \(8, 8, 1\)",
    ):
        checked_config(exp.build_model, exp, "a")
    exp = _experiment((8, 8, 1), 3, build_model=_builder((8, 8, 1), 10))
    with pytest.raises(ModelError, match=r"outputs shape \(10,\), but the experiment has 3 classes"):
        checked_config(exp.build_model, exp, "a")


# --- several inputs, several outputs ----------------------------------------------
def two_inputs():
    left, right = keras.Input((8, 8, 1), name="left"), keras.Input((8, 8, 1), name="right")
    x = L.Concatenate(name="cat")([L.Flatten(name="fl")(left), L.Flatten(name="fr")(right)])
    return keras.Model([left, right], L.Dense(10, activation="softmax", name="probs")(x), name="two_in")


def two_outputs():
    inp = keras.Input((8, 8, 1), name="input")
    x = L.Flatten(name="flat")(L.Conv2D(4, 3, activation="relu", name="conv")(inp))
    return keras.Model(
        inp, [L.Dense(10, activation="softmax", name="probs")(x), L.Dense(1, name="aux")(x)], name="two_out"
    )


def views(x):
    return {"left": x, "right": x[:, ::-1]}


def same_views(x):
    return {"left": x, "right": x}


def test_several_inputs_need_a_feed_that_gives_each_by_name():
    exp = _experiment((8, 8, 1), 10)
    with pytest.raises(
        ModelError,
        match=r"the model has 2 inputs \(left, right\); declare how a batch of images is "
        r"fed to them: Experiment\(feed=fn\)",
    ):
        checked_io(two_inputs(), model_io(exp), "here")
    assert checked_io(two_inputs(), model_io(replace(exp, feed=views)), "here") == 0
    with pytest.raises(ModelError, match=r"feed returned the keys \['left', 'middle'\]"):
        checked_io(two_inputs(), ModelIO((8, 8, 1), 10, feed=lambda x: {"left": x, "middle": x}), "here")
    with pytest.raises(
        ModelError, match=r"feed '.*bad' failed on a batch of 2 images \(2, 8, 8, 1\) \(RuntimeError: boom\)"
    ):

        def bad(x):
            raise RuntimeError("boom")

        checked_io(two_inputs(), ModelIO((8, 8, 1), 10, feed=bad), "here")


def test_several_outputs_need_the_declared_probability_output():
    with pytest.raises(
        ModelError,
        match=r"the model has 2 outputs \(probs, aux\); declare which is the class "
        r"probabilities: Experiment\(output_layer='probs'\)",
    ):
        checked_io(two_outputs(), ModelIO((8, 8, 1), 10), "here")
    with pytest.raises(ModelError, match=r"output_layer='dense_2' is none of the model's 2 outputs \(probs, aux\)"):
        checked_io(two_outputs(), ModelIO((8, 8, 1), 10, output="dense_2"), "here")
    assert checked_io(two_outputs(), ModelIO((8, 8, 1), 10, output="probs"), "here") == 0


@pytest.mark.parametrize("kind", ["two_inputs", "two_outputs"])
def test_several_inputs_or_outputs_train_and_are_read(kind, tmp_path):
    """Two inputs failed inside Keras ("expects 2 named input(s)"); two outputs in a
    training worker with a raw KeyError about the loss."""
    from cnnclaims.data import dataset
    from cnnclaims.evidence import image_stats
    from cnnclaims.training import get_trained, recipe_id, specs_for

    build = two_inputs if kind == "two_inputs" else two_outputs
    extra = {"feed": views} if kind == "two_inputs" else {}
    exp = _experiment((8, 8, 1), 10, build_model=build, **extra)
    exp = replace(exp, claims=(replace(exp.claims[1]),))  # the softmax claim: any model has it
    (xtr, ytr), (xte, yte) = random_images(2, 1, 5, (8, 8, 1), 10)
    data = dataset(xtr, ytr, xte, yte, n_classes=10)
    spec = specs_for(exp.profile("tiny"), "a", exp)[0]
    if kind == "two_inputs":  # the feed is in the recipe's key: another feed trains another model
        assert recipe_id(exp, "a") != recipe_id(replace(exp, feed=same_views), "a")
    trained = get_trained(spec, data, tmp_path, progress=lambda *_: None, experiment=exp)
    assert trained.record["epochs"] == 1
    stats = image_stats(trained.model, xte, yte, exp)
    assert stats["entropy"].shape == (10,) and np.isfinite(stats["entropy"]).all()


# --- channels_first ---------------------------------------------------------------
CHANNELS_FIRST = """
import sys
from cnnclaims.run import Run
try:
    Run("smoke", cache_dir=sys.argv[1], progress=lambda *_: None).check(data=False)
except Exception as exc:
    print(type(exc).__name__, exc)
"""


@pytest.mark.integration  # trains or runs TensorFlow sessions: minutes on 2 cores
def test_keras_set_to_channels_first_is_named_with_the_fix_before_anything_trains(tmp_path):
    """Building the article's model under a keras.json with "image_data_format":
    "channels_first" failed with a raw error about pooling sizes and `kwargs`."""
    home = tmp_path / "keras_home"
    home.mkdir()
    (home / "keras.json").write_text(
        '{"image_data_format": "channels_first", "backend": "tensorflow", "floatx": "float32", "epsilon": 1e-07}'
    )
    env = {**os.environ, "KERAS_HOME": str(home)}
    out = subprocess.run(
        [sys.executable, "-c", CHANNELS_FIRST, str(tmp_path / "cache")],
        env=env,
        text=True,
        capture_output=True,
        timeout=300,
        cwd=Path(__file__).parent,
    )
    text = out.stdout.strip()
    assert text.startswith("ModelError condition 'benchmark': build_model 'build_model'"), text + out.stderr
    assert "image_data_format 'channels_first'" in text and str(home / "keras.json") in text
    assert '"image_data_format": "channels_last"' in text
    assert not (tmp_path / "cache" / "models").exists()  # nothing trained


def test_channels_first_images_at_the_models_door_are_refused_with_the_transpose():
    from cnnclaims.activations import layer_activations

    model = _builder((28, 28, 1), 10)()
    x = np.zeros((2, 1, 28, 28), np.uint8)
    with pytest.raises(
        InputError,
        match=r"layer_activations: images got shape \(2, 1, 28, 28\); expected images of "
        r"shape \(n, 28, 28, 1\).*they look channels-first.*transpose\(0, 2, 3, 1\)",
    ):
        layer_activations(model, x)
