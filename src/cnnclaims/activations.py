"""The article's slicing: one Keras Model whose outputs are every layer's output.

``layer_activations`` returns ``{layer_name: array}`` for a batch of images and
``stream_activations`` yields them batch by batch, so the whole test set goes
through without holding every layer's full tensor at once.
"""
from __future__ import annotations

import numpy as np

from .compat import keras
from .errors import unknown

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
    wanted = list(valid if layers is None else layers)
    for name in wanted:
        if name not in valid:
            raise unknown("layer", name, valid)
    outs = [model.get_layer(n) for n in wanted if not _is_input(model.get_layer(n))]
    return keras.Model(model.input, [layer.output for layer in outs], name=f"{model.name}_sliced"), [
        layer.name for layer in outs
    ]


def as_model_input(images) -> np.ndarray:
    """uint8 pixels -> float32 in [0, 1] (the article's /255); floats pass through."""
    x = np.asarray(images)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[1:] != (32, 32, 3):
        raise ValueError(f"expected images of shape (n, 32, 32, 3) or (32, 32, 3), got {x.shape}")
    if x.dtype == np.uint8:
        return x.astype(np.float32) / np.float32(255.0)
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"expected uint8 pixels or floats in [0, 1], got dtype {x.dtype}")
    return x.astype(np.float32, copy=False)


def stream_activations(model, images, layers=None, batch_size: int = 500):
    """Yield ``{layer: activations}`` for consecutive batches of ``images``."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    sliced, names = slice_model(model, layers)
    x = as_model_input(images)
    inputs = [n for n in (layer_names(model) if layers is None else layers) if _is_input(model.get_layer(n))]
    for start in range(0, len(x), batch_size):
        xb = x[start : start + batch_size]
        outs = sliced(xb, training=False)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        batch = {name: np.asarray(o) for name, o in zip(names, outs)}
        for name in inputs:
            batch[name] = xb
        yield batch


def layer_activations(model, images, layers=None, batch_size: int = 500) -> dict:
    """``{layer_name: array}`` for all ``images`` (batched through the model)."""
    parts: dict[str, list] = {}
    for batch in stream_activations(model, images, layers, batch_size):
        for name, arr in batch.items():
            parts.setdefault(name, []).append(arr)
    return {name: np.concatenate(arrs) for name, arrs in parts.items()}
