"""Slicing a model into every layer's output, batching, and bad input."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnclaims.activations import as_model_input, layer_activations, layer_paths, slice_model, stream_activations
from cnnclaims.compat import keras, set_determinism
from cnnclaims.errors import InputError, ModelError, UnknownNameError
from cnnclaims.model import LAYER_NAMES, build_model


@pytest.fixture(scope="module")
def model():
    set_determinism(0)
    return build_model()


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).integers(0, 256, (7, 32, 32, 3), dtype=np.uint8)


def test_every_layer_by_name(model, images):
    acts = layer_activations(model, images)
    assert list(acts) == [n for n in LAYER_NAMES if n != "input"] + ["input"]
    assert acts["conv2d_1"].shape == (7, 32, 32, 16)
    assert acts["conv2d_6"].shape == (7, 8, 8, 16)
    assert acts["flatten_1"].shape == (7, 4096)
    np.testing.assert_allclose(acts["dense_2"].sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(acts["input"], images / 255.0, rtol=1e-6)


def test_matches_the_model_output(model, images):
    acts = layer_activations(model, images, ["dense_2"])
    np.testing.assert_allclose(acts["dense_2"], model.predict(images / 255.0, verbose=0), rtol=1e-5, atol=1e-6)


def test_dropout_is_off(model, images):
    a = layer_activations(model, images, ["dropout_1"])["dropout_1"]
    b = layer_activations(model, images, ["dense_1"])["dense_1"]
    np.testing.assert_array_equal(a, b)


def test_single_image(model, images):
    assert layer_activations(model, images[0], ["conv2d_6"])["conv2d_6"].shape == (1, 8, 8, 16)


@pytest.mark.parametrize("batch_size", [1, 3, 7, 100])
def test_batching_does_not_change_results(model, images, batch_size):
    full = layer_activations(model, images, ["conv2d_1", "dense_2"], batch_size=100)
    got = layer_activations(model, images, ["conv2d_1", "dense_2"], batch_size=batch_size)
    for k in full:
        np.testing.assert_allclose(got[k], full[k], rtol=1e-5, atol=1e-6)


def test_streaming_yields_batches(model, images):
    sizes = [len(b["conv2d_6"]) for b in stream_activations(model, images, ["conv2d_6"], batch_size=3)]
    assert sizes == [3, 3, 1]


def test_unknown_layer_lists_valid_names(model):
    with pytest.raises(UnknownNameError, match="unknown layer 'conv2d_7'.*conv2d_6"):
        slice_model(model, ["conv2d_7"])


def test_input_layer_found_by_type(model):
    _, names = slice_model(model)
    assert "input" not in names and names[0] == "conv2d_1"


@given(n=st.integers(1, 4), dtype=st.sampled_from(["uint8", "float32", "float64"]))
@settings(max_examples=15, deadline=None)
def test_input_conversion(n, dtype):
    x = np.random.default_rng(n).integers(0, 256, (n, 32, 32, 3)).astype(dtype)
    if dtype != "uint8":
        x = x / 255.0
    out = as_model_input(x)
    assert out.dtype == np.float32 and out.shape == (n, 32, 32, 3)
    assert 0.0 <= out.min() and out.max() <= 1.0


@given(shape=st.sampled_from([(32, 32), (2, 32, 32), (2, 28, 28, 3), (2, 32, 32, 1), (1, 2, 32, 32, 3)]))
@settings(max_examples=10, deadline=None)
def test_wrong_shapes_are_rejected(shape):
    with pytest.raises(ValueError, match="expected images of shape"):
        as_model_input(np.zeros(shape, np.uint8))


def test_integer_non_uint8_rejected():
    with pytest.raises(ValueError, match="dtype int64"):
        as_model_input(np.zeros((1, 32, 32, 3), np.int64))


# --- pixels at the model's door (one check, cnnclaims.inputs, behind every door) ---
DOORS = {
    "layer_activations": lambda model, x: layer_activations(model, x, ["dense_2"]),
    "stream_activations": lambda model, x: stream_activations(model, x, ["dense_2"]),
}


@pytest.mark.parametrize("door", DOORS)
def test_float_pixels_still_in_0_255_are_refused(model, images, door):
    """Read as if in [0, 1], they moved the softmax by up to 0.88."""
    with pytest.raises(InputError, match=rf"{door}: .*up to 255.*divide by 255"):
        DOORS[door](model, images.astype(np.float32))


@pytest.mark.parametrize("door", DOORS)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_pixel_is_refused(model, images, door, bad):
    """One NaN pixel used to give a confident class."""
    x = images / 255.0
    x[2, 5, 7, 1] = bad
    with pytest.raises(InputError, match=rf"{door}: .*1 NaN/inf.*image 2.*check the input for NaN/inf"):
        DOORS[door](model, x)


@pytest.mark.parametrize("door", DOORS)
def test_negative_floats_are_refused(model, images, door):
    with pytest.raises(InputError, match=rf"{door}: .*down to -0\.5.*\[0, 1\]"):
        DOORS[door](model, images / 255.0 - 0.5)


@pytest.mark.parametrize("door", DOORS)
@pytest.mark.parametrize("dtype", [np.int64, np.uint16, bool, complex, object])
def test_other_dtypes_are_refused(model, images, door, dtype):
    with pytest.raises(InputError, match=rf"{door}: .*dtype .*expected uint8 pixels 0-255 or floats in \[0, 1\]"):
        DOORS[door](model, images.astype(dtype))


@pytest.mark.parametrize("door", DOORS)
@pytest.mark.parametrize(
    "shape", [(32, 32), (2, 32, 32), (2, 28, 28, 3), (2, 32, 32, 1), (1, 2, 32, 32, 3), (0, 32, 32, 3)]
)
def test_wrong_rank_or_size_is_refused_with_the_expected_shape(model, door, shape):
    with pytest.raises(InputError, match=rf"{door}: .*\(n, 32, 32, 3\)"):
        DOORS[door](model, np.zeros(shape, np.uint8))


def test_errors_come_at_the_call_not_at_the_first_batch(model, images):
    with pytest.raises(InputError):
        stream_activations(model, images.astype(np.float32))  # not iterated


def test_unit_floats_are_accepted_as_they_are(model, images):
    want = layer_activations(model, images, ["dense_2"])["dense_2"]
    np.testing.assert_allclose(layer_activations(model, images / 255.0, ["dense_2"])["dense_2"], want, atol=1e-5)
    half = layer_activations(model, (images / 255.0).astype(np.float16), ["dense_2"])["dense_2"]
    assert half.shape == want.shape and np.isfinite(half).all()


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, True])
def test_batch_size_must_be_a_positive_integer(model, images, batch_size):
    with pytest.raises(InputError, match=r"batch_size="):
        layer_activations(model, images, ["dense_2"], batch_size=batch_size)


@pytest.mark.parametrize("layers", ["conv2d_6", []])
def test_layers_must_be_a_list_of_names(model, layers):
    with pytest.raises(InputError, match=r"layers="):
        slice_model(model, layers)


# --- every common model shape: sliced, or refused with what to do ------------------
def _tiny_layers():
    L = keras.layers
    return [
        L.Conv2D(2, 3, activation="relu", name="c1"),
        L.MaxPooling2D(4, name="p1"),
        L.Flatten(name="f1"),
        L.Dense(3, activation="softmax", name="d1"),
    ]


def _functional():
    inp = keras.Input((32, 32, 3), name="input")
    x = inp
    for layer in _tiny_layers():
        x = layer(x)
    return keras.Model(inp, x)


def _sequential_with_input():
    return keras.Sequential([keras.Input((32, 32, 3))] + _tiny_layers())


def _sequential_built():
    model = keras.Sequential(_tiny_layers())
    model.build((None, 32, 32, 3))
    return model


def _sequential_called():
    model = keras.Sequential(_tiny_layers())
    model(np.zeros((1, 32, 32, 3), np.float32))  # built by a call on one image
    return model


class _Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.c1, self.f1 = keras.layers.Conv2D(2, 3, name="c1"), keras.layers.Flatten(name="f1")

    def call(self, x):
        return self.f1(self.c1(x))


@pytest.mark.parametrize("make", [_functional, _sequential_with_input, _sequential_built, _sequential_called])
def test_functional_and_sequential_models_are_sliced(make, images):
    """A Keras 3 Sequential, even one built with an Input, used to fail deep inside
    Keras ("has never been called")."""
    set_determinism(1)
    model = make()
    acts = layer_activations(model, images, ["c1", "d1"])
    assert acts["c1"].shape == (7, 30, 30, 2) and acts["d1"].shape == (7, 3)
    np.testing.assert_allclose(acts["d1"], np.asarray(model(images / np.float32(255), training=False)), atol=1e-6)
    every = layer_activations(model, images)
    assert {"c1", "p1", "f1", "d1"} <= set(every)
    with pytest.raises(UnknownNameError, match=r"unknown layer 'conv2d_6'; valid layers: c1, d1, f1, (input, )?p1$"):
        slice_model(model, ["conv2d_6"])


def test_sequential_never_built_says_how_to_build_it(images):
    model = keras.Sequential(_tiny_layers())
    with pytest.raises(
        ModelError, match=r"slice_model: .*never built.*model\.build\(\(None, 32, 32, 3\)\).*keras\.Input"
    ):
        layer_activations(model, images)


@pytest.mark.parametrize("called", [False, True])
def test_subclassed_model_is_refused_with_what_to_do(images, called):
    model = _Subclassed()
    if called:
        model(np.zeros((1, 32, 32, 3), np.float32))
    with pytest.raises(ModelError, match=r"slice_model: .*subclassed.*functional API.*Sequential"):
        layer_activations(model, images)


def test_model_with_two_inputs_needs_a_feed(images):
    a, b = keras.Input((32, 32, 3), name="left"), keras.Input((32, 32, 3), name="right")
    model = keras.Model([a, b], keras.layers.Add(name="add")([a, b]))
    assert slice_model(model)[1] == ["add"]  # the graph itself slices
    with pytest.raises(ModelError, match=r"layer_activations: model .* has 2 inputs \(left, right\); pass feed="):
        layer_activations(model, images)


def test_model_for_other_images_is_refused(images):
    # Any image shape is sliceable (the public API takes any experiment's images), but
    # images of another shape than the model's input are refused, naming both.
    inp = keras.Input((28, 28, 1))
    model = keras.Model(inp, keras.layers.Flatten(name="f1")(inp))
    with pytest.raises(InputError, match=r"layer_activations: images got shape \(.*32, 32, 3\).*\(n, 28, 28, 1\)"):
        layer_activations(model, images)
    got = layer_activations(model, np.zeros((2, 28, 28, 1), np.uint8))
    assert got["f1"].shape == (2, 784)


@pytest.mark.parametrize("thing", ["model.keras", None, object()])
def test_not_a_model_is_refused(thing, images):
    with pytest.raises(ModelError, match=r"slice_model: expected a Keras model.*got"):
        slice_model(thing)


# --- nested models (backbones), shared layers, several inputs -----------------------
L = keras.layers


def _backbone(name="backbone", shape=(8, 8, 1)):
    inp = keras.Input(shape, name="bb_in")
    x = L.Conv2D(4, 3, padding="same", activation="relu", name="bb_conv")(inp)
    x = L.Conv2D(4, 3, padding="same", activation="relu", name="bb_conv2")(x)
    return keras.Model(inp, x, name=name)


def _nested():
    set_determinism(3)
    bb = _backbone()
    inp = keras.Input((8, 8, 1), name="input")
    x = L.Flatten(name="flat")(bb(inp))
    return keras.Model(inp, L.Dense(10, activation="softmax", name="probs")(x), name="outer"), bb


@pytest.fixture(scope="module")
def digits_like():
    return np.random.default_rng(4).random((5, 8, 8, 1)).astype(np.float32)


def test_a_nested_models_layers_are_sliced_by_path(digits_like):
    """Used to fail inside Keras: "Output with path '1' is not connected to 'inputs'"."""
    model, bb = _nested()
    inner = keras.Model(bb.inputs, [bb.get_layer("bb_conv").output, bb.output])  # before slicing (Keras 2)
    want_conv, want_bb = inner.predict(digits_like, verbose=0)
    assert layer_paths(model) == ["input", "backbone", "backbone/bb_conv", "backbone/bb_conv2", "flat", "probs"]
    acts = layer_activations(model, digits_like, ["backbone/bb_conv", "backbone", "probs"])
    np.testing.assert_allclose(acts["backbone/bb_conv"], want_conv, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(acts["backbone"], want_bb, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(acts["probs"], model.predict(digits_like, verbose=0), rtol=1e-5, atol=1e-6)
    assert set(layer_activations(model, digits_like)) == set(layer_paths(model))


def test_an_inner_layers_bare_name_is_refused_naming_its_path(digits_like):
    model, _ = _nested()
    with pytest.raises(
        UnknownNameError,
        match=r"unknown layer 'bb_conv'; the model has it as 'backbone/bb_conv'.*"
        r"valid layers: backbone, backbone/bb_conv, backbone/bb_conv2, flat",
    ):
        slice_model(model, ["bb_conv"])
    with pytest.raises(UnknownNameError, match=r"unknown layer 'backbone/nope'; valid layers: .*backbone/bb_conv2"):
        layer_activations(model, digits_like, ["backbone/nope"])


def test_models_nested_three_deep_and_a_nested_sequential(digits_like):
    set_determinism(5)
    deep = _backbone("deep")
    x = keras.Input((8, 8, 1), name="mid_in")
    middle = keras.Model(x, L.MaxPooling2D(2, name="pool")(deep(x)), name="middle")
    seq = keras.Sequential(
        [keras.Input((4, 4, 4)), L.Conv2D(3, 1, activation="relu", name="c"), L.Flatten(name="f")], name="head"
    )
    inp = keras.Input((8, 8, 1), name="input")
    model = keras.Model(inp, L.Dense(2, activation="softmax", name="probs")(seq(middle(inp))), name="outer3")
    paths = layer_paths(model)
    assert {"middle/deep/bb_conv2", "middle/deep", "middle/pool", "head/c", "head/f", "probs"} <= set(paths)
    acts = layer_activations(model, digits_like, ["middle/deep/bb_conv2", "head/f", "probs"])
    assert acts["middle/deep/bb_conv2"].shape == (5, 8, 8, 4) and acts["head/f"].shape == (5, 48)
    np.testing.assert_allclose(acts["probs"], model.predict(digits_like, verbose=0), rtol=1e-5, atol=1e-6)


def test_a_shared_layer_is_reported_per_node(digits_like):
    set_determinism(6)
    shared = L.Conv2D(1, 3, padding="same", activation="relu", name="shared")
    inp = keras.Input((8, 8, 1), name="input")
    model = keras.Model(inp, shared(shared(inp)), name="twice")
    assert layer_paths(model) == ["input", "shared@0", "shared@1"]
    acts = layer_activations(model, digits_like, ["shared@0", "shared@1"])
    np.testing.assert_allclose(acts["shared@1"], model.predict(digits_like, verbose=0), rtol=1e-5, atol=1e-6)
    assert not np.allclose(acts["shared@0"], acts["shared@1"])
    with pytest.raises(
        ModelError,
        match=r"layer 'shared' of model 'twice' has several nodes; ask for one: "
        r"shared@0, shared@1",
    ):
        slice_model(model, ["shared"])


def _siamese():
    """One backbone on two inputs: its layers per node, fed by name."""
    set_determinism(7)
    bb = _backbone()
    left, right = keras.Input((8, 8, 1), name="left"), keras.Input((8, 8, 1), name="right")
    x = L.Concatenate(name="cat")([L.Flatten(name="fl")(bb(left)), L.Flatten(name="fr")(bb(right))])
    return keras.Model([left, right], L.Dense(10, activation="softmax", name="probs")(x), name="siamese")


def flip(x):
    return {"left": x, "right": x[:, :, ::-1]}


def test_several_inputs_are_fed_by_name_and_a_shared_backbone_per_node(digits_like):
    model = _siamese()
    assert {"left", "right", "backbone@0/bb_conv", "backbone@1/bb_conv", "cat", "probs"} <= set(layer_paths(model))
    acts = layer_activations(model, digits_like, ["left", "right", "input", "backbone@1/bb_conv", "probs"], feed=flip)
    np.testing.assert_array_equal(acts["right"], digits_like[:, :, ::-1])
    np.testing.assert_array_equal(acts["input"], digits_like)  # "input": the images themselves
    want = model.predict([digits_like, digits_like[:, :, ::-1]], verbose=0)
    np.testing.assert_allclose(acts["probs"], want, rtol=1e-5, atol=1e-6)
    with pytest.raises(ModelError, match=r"feed returned the keys \['left'\], but the model's inputs are left, right"):
        layer_activations(model, digits_like, feed=lambda x: {"left": x})
    with pytest.raises(
        ModelError,
        match=r"feed gave input 'right' shape \(1, 4, 8, 1\) for 1 images; the model "
        r"takes \(1, 8, 8, 1\)",
    ):
        stream_activations(model, digits_like, feed=lambda x: {"left": x, "right": x[:, ::2]})


def test_a_model_with_channels_first_layers_is_refused_naming_the_fix():
    inp = keras.Input((1, 8, 8), name="input")
    x = L.Conv2D(2, 3, padding="same", data_format="channels_first", name="cf_conv")(inp)
    model = keras.Model(inp, L.Flatten(name="f")(x), name="cf")
    with pytest.raises(
        ModelError,
        match=r"slice_model: model 'cf' takes channels-first maps \(layers 'cf_conv'.*"
        r"\(n, height, width, channels\).*image_data_format.*channels_last",
    ):
        slice_model(model)


def _mobilenet(weights=None):
    return keras.applications.MobileNetV2(input_shape=(32, 32, 3), include_top=False, weights=weights, alpha=0.35)


def _with_backbone(backbone):
    inp = keras.Input((32, 32, 3), name="input")
    x = L.GlobalAveragePooling2D(name="gap")(backbone(inp))
    return keras.Model(inp, L.Dense(10, activation="softmax", name="probs")(x), name="transfer")


def test_a_keras_applications_backbone_is_sliced_by_nested_paths_with_weights_from_a_local_file(images, tmp_path):
    """The transfer-learning shape (the article's title picture is a VGG19 feature
    extraction): MobileNetV2 without its top as a layer, its weights saved here and
    loaded from that file (no downloads), the inner layers named by path."""
    set_determinism(8)
    bb = _mobilenet()
    layer = "block_1_expand_relu"
    want = keras.Model(bb.inputs, bb.get_layer(layer).output).predict(images / np.float32(255), verbose=0)
    weights = tmp_path / "mobilenet.weights.h5"
    bb.save_weights(str(weights))
    loaded = _mobilenet(str(weights))  # how a user loads pretrained weights from disk
    model = _with_backbone(loaded)
    path = f"{loaded.name}/{layer}"
    assert path in layer_paths(model)
    acts = layer_activations(model, images, [path, f"{loaded.name}/out_relu", "probs"])
    np.testing.assert_allclose(acts[path], want, rtol=1e-4, atol=1e-5)
    assert acts[f"{loaded.name}/out_relu"].shape[:1] == (7,)
    np.testing.assert_allclose(acts["probs"], model.predict(images / np.float32(255), verbose=0), rtol=1e-4, atol=1e-6)
