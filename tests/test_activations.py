"""Slicing a model into every layer's output, batching, and bad input."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnclaims.activations import as_model_input, layer_activations, slice_model, stream_activations
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
@pytest.mark.parametrize("shape", [(32, 32), (2, 32, 32), (2, 28, 28, 3), (2, 32, 32, 1), (1, 2, 32, 32, 3), (0, 32, 32, 3)])
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
    return [L.Conv2D(2, 3, activation="relu", name="c1"), L.MaxPooling2D(4, name="p1"),
            L.Flatten(name="f1"), L.Dense(3, activation="softmax", name="d1")]


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
    with pytest.raises(ModelError, match=r"slice_model: .*never built.*model\.build\(\(None, 32, 32, 3\)\).*keras\.Input"):
        layer_activations(model, images)


@pytest.mark.parametrize("called", [False, True])
def test_subclassed_model_is_refused_with_what_to_do(images, called):
    model = _Subclassed()
    if called:
        model(np.zeros((1, 32, 32, 3), np.float32))
    with pytest.raises(ModelError, match=r"slice_model: .*subclassed.*functional API.*Sequential"):
        layer_activations(model, images)


def test_model_with_two_inputs_is_refused(images):
    a, b = keras.Input((32, 32, 3)), keras.Input((32, 32, 3))
    model = keras.Model([a, b], keras.layers.Add(name="add")([a, b]))
    with pytest.raises(ModelError, match=r"slice_model: .*2 inputs.*one"):
        slice_model(model)


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

