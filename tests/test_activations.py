"""Slicing a model into every layer's output, batching, and bad input."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnclaims.activations import as_model_input, layer_activations, slice_model, stream_activations
from cnnclaims.compat import set_determinism
from cnnclaims.errors import UnknownNameError
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
