"""The article's CNN, layer for layer, with its layer names."""

from __future__ import annotations

from .compat import keras
from .compat import steps_per_execution as _supported_steps

INPUT_SHAPE = (32, 32, 3)
N_PARAMS = 54_106
# The order in which the article's network applies its layers; names matter
# because the claims and the figures address layers by name.
LAYER_NAMES = (
    "input",
    "conv2d_1",
    "conv2d_2",
    "pool_1",
    "conv2d_3",
    "conv2d_4",
    "pool_2",
    "conv2d_5",
    "conv2d_6",
    "dense_1",
    "dropout_1",
    "flatten_1",
    "dense_2",
)


def build_model(filters: int = 16, dense_units: int = 64, dropout: float = 0.5):
    """Uncompiled article CNN: input -> 6 conv (2 pools) -> Dense(64) -> dropout -> flatten -> softmax.

    Every layer is named: auto-names like ``conv2d_1`` collide with explicit ones.
    Dense(64) acts on the 8x8x16 map before flattening, as in the article.
    """
    L = keras.layers

    def conv(name):
        return L.Conv2D(filters, 3, activation="relu", padding="same", name=name)

    inputs = keras.Input(shape=INPUT_SHAPE, name="input")
    x = conv("conv2d_1")(inputs)
    x = conv("conv2d_2")(x)
    x = L.MaxPooling2D(2, name="pool_1")(x)
    x = conv("conv2d_3")(x)
    x = conv("conv2d_4")(x)
    x = L.MaxPooling2D(2, name="pool_2")(x)
    x = conv("conv2d_5")(x)
    x = conv("conv2d_6")(x)
    x = L.Dense(dense_units, activation="relu", name="dense_1")(x)
    x = L.Dropout(dropout, name="dropout_1")(x)
    x = L.Flatten(name="flatten_1")(x)
    outputs = L.Dense(10, activation="softmax", name="dense_2")(x)
    return keras.Model(inputs, outputs, name="article_cnn")


def compile_model(model, learning_rate: float = 1e-3, steps_per_execution: int = 1):
    # Keywords only: Keras 3's third positional parameter is loss_weights.
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
        steps_per_execution=_supported_steps(steps_per_execution),
    )
    return model
