"""The article's slicing: one Keras Model whose outputs are every layer's output.

``layer_activations`` returns ``{layer_name: array}`` for a batch of images and
``stream_activations`` yields them batch by batch, so the whole test set goes
through without holding every layer's full tensor at once.
"""
from __future__ import annotations

import numpy as np

from .compat import keras
from .errors import InputError, unknown
from .inputs import model_input

INPUT = "input"


def _is_input(layer) -> bool:
    # By type, never by name: a layer called "input_x" may be anything.
    return isinstance(layer, keras.layers.InputLayer)


def layer_names(model) -> list[str]:
    """Every layer's name in network order; the input layer first."""
    return [layer.name for layer in model.layers]


def slice_model(model, layers=None):
    """A Model from the input to the named layers' outputs (all layers by default).

    Input layers are left out of the outputs: their "activation" is the image itself,
    which ``stream_activations`` adds under the input layer's name.
    """
    valid = layer_names(model)
    # A string would be iterated letter by letter ("unknown layer 'c'").
    if layers is not None and (isinstance(layers, str) or len(layers) == 0):
        raise InputError(
            f"slice_model: layers={layers!r}; pass a list of layer names, e.g. ['conv2d_6'], or None for all layers"
        )
    wanted = list(valid if layers is None else layers)
    for name in wanted:
        if name not in valid:
            raise unknown("layer", name, valid)
    outs = [model.get_layer(n) for n in wanted if not _is_input(model.get_layer(n))]
    return keras.Model(model.input, [layer.output for layer in outs], name=f"{model.name}_sliced"), [
        layer.name for layer in outs
    ]


def as_model_input(images) -> np.ndarray:
    """uint8 pixels -> float32 in [0, 1] (the article's /255); floats in [0, 1] pass.

    ``images``: (n, 32, 32, 3) or one (32, 32, 3) image. Raises InputError for
    anything else (see ``cnnclaims.inputs``)."""
    return model_input(images, "as_model_input", single=True)


def _batches(sliced, names, inputs, x, batch_size):
    for start in range(0, len(x), batch_size):
        xb = x[start : start + batch_size]
        outs = sliced(xb, training=False)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        batch = {name: np.asarray(o) for name, o in zip(names, outs)}
        for name in inputs:
            batch[name] = xb
        yield batch


def _stream(model, images, layers, batch_size, where: str):
    # Checked here, at the call, not when the first batch is drawn from the generator.
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise InputError(f"{where}: batch_size={batch_size!r} is not a positive integer")
    x = model_input(images, where, single=True)
    sliced, names = slice_model(model, layers)
    inputs = [n for n in (layer_names(model) if layers is None else layers) if _is_input(model.get_layer(n))]
    return _batches(sliced, names, inputs, x, batch_size)


def stream_activations(model, images, layers=None, batch_size: int = 500):
    """Yield ``{layer: activations}`` for consecutive batches of ``images``.

    ``images``: uint8 pixels 0-255 or floats in [0, 1], (n, 32, 32, 3) or one
    (32, 32, 3) image; ``layers``: a list of layer names (None: all). Each batch maps
    a layer name to a float32 array with the batch first; the input layer's entry is
    the scaled images. Raises InputError for bad images or arguments (at the call,
    not at the first batch) and UnknownNameError for a layer the model lacks."""
    return _stream(model, images, layers, batch_size, "stream_activations")


def layer_activations(model, images, layers=None, batch_size: int = 500) -> dict:
    """``{layer_name: array}`` for all ``images`` (batched through the model).

    Arguments, values and errors as ``stream_activations``; each array holds every
    image, batch axis first (one image gives a batch of one)."""
    parts: dict[str, list] = {}
    for batch in _stream(model, images, layers, batch_size, "layer_activations"):
        for name, arr in batch.items():
            parts.setdefault(name, []).append(arr)
    return {name: np.concatenate(arrs) for name, arrs in parts.items()}
