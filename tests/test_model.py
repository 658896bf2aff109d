"""The article's architecture: layer names, output shapes, parameter counts."""

import pytest

from cnnclaims.compat import count_params, layer_output_shape
from cnnclaims.model import LAYER_NAMES, N_PARAMS, build_model

SHAPES = {
    "input": (32, 32, 3),
    "conv2d_1": (32, 32, 16),
    "conv2d_2": (32, 32, 16),
    "pool_1": (16, 16, 16),
    "conv2d_3": (16, 16, 16),
    "conv2d_4": (16, 16, 16),
    "pool_2": (8, 8, 16),
    "conv2d_5": (8, 8, 16),
    "conv2d_6": (8, 8, 16),
    "dense_1": (8, 8, 64),
    "dropout_1": (8, 8, 64),
    "flatten_1": (4096,),
    "dense_2": (10,),
}
PARAMS = {
    "conv2d_1": 448,
    "conv2d_2": 2320,
    "conv2d_3": 2320,
    "conv2d_4": 2320,
    "conv2d_5": 2320,
    "conv2d_6": 2320,
    "dense_1": 1088,
    "dense_2": 40970,
}


@pytest.fixture(scope="module")
def model():
    return build_model()


def test_layer_names_in_order(model):
    assert tuple(layer.name for layer in model.layers) == LAYER_NAMES


@pytest.mark.parametrize("name", LAYER_NAMES)
def test_output_shape(model, name):
    assert layer_output_shape(model.get_layer(name))[1:] == SHAPES[name]


@pytest.mark.parametrize("name", LAYER_NAMES)
def test_parameter_count(model, name):
    assert model.get_layer(name).count_params() == PARAMS.get(name, 0)


def test_total_parameters(model):
    assert count_params(model) == N_PARAMS == 54_106


def test_conv_layers_are_3x3_relu_same(model):
    for name in ("conv2d_1", "conv2d_2", "conv2d_3", "conv2d_4", "conv2d_5", "conv2d_6"):
        cfg = model.get_layer(name).get_config()
        assert cfg["filters"] == 16 and tuple(cfg["kernel_size"]) == (3, 3)
        assert cfg["activation"] == "relu" and cfg["padding"] == "same"
    assert model.get_layer("dense_2").get_config()["activation"] == "softmax"
    assert model.get_layer("dropout_1").get_config()["rate"] == 0.5
