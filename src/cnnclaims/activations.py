"""The article's slicing: one Keras Model whose outputs are every layer's output.

Functional models are sliced as they are; a Sequential (built with an Input, by
``build`` or by a call) through a functional graph of its own layers; an unbuilt
Sequential and subclassed models are refused with what to do.

``layer_activations`` returns ``{layer_name: array}`` for a batch of images and
``stream_activations`` yields them batch by batch, so the whole test set goes
through without holding every layer's full tensor at once.
"""
from __future__ import annotations

import numpy as np

from .compat import keras
from .errors import InputError, ModelError, unknown
from .inputs import IMAGE_SHAPE, model_input

INPUT = "input"


def _is_input(layer) -> bool:
    # By type, never by name: a layer called "input_x" may be anything.
    return isinstance(layer, keras.layers.InputLayer)


def layer_names(model) -> list[str]:
    """Every layer's name in network order; the input layer first (functional
    models; a Sequential lists no input layer)."""
    return [layer.name for layer in model.layers]


def _single_input(model) -> list:
    """The model's symbolic inputs, [] when it has none (subclassed, unbuilt)."""
    try:
        inputs = model.inputs  # Keras 3 raises for an unbuilt Sequential or a subclassed model
    except (AttributeError, ValueError):
        return []
    inputs = list(inputs or [])  # Keras 2 gives None instead
    if len(inputs) > 1:
        raise ModelError(
            f"slice_model: model {model.name!r} has {len(inputs)} inputs; slicing feeds images to models with one"
        )
    return inputs


def _graph(model) -> tuple:
    """(input tensor, {layer name: output tensor}) of a graph through the model's layers.

    A functional model is its own graph. A Sequential's layers are called again on a
    new ``keras.Input`` of the model's input shape: Keras 3 gives the layers of a
    Sequential no ``output`` to slice at, even when it was built with an Input. The
    layers, and so the weights, are the model's own.
    """
    if not isinstance(model, keras.Model):
        raise ModelError(f"slice_model: expected a Keras model (keras.Model), got {type(model).__name__}: {model!r:.80}")
    inputs = _single_input(model)
    if isinstance(model, keras.Sequential):
        if not inputs:
            raise ModelError(
                f"slice_model: Sequential model {model.name!r} was never built, so its input shape is unknown; "
                "call model.build((None, 32, 32, 3)) or start it with keras.Input((32, 32, 3))"
            )
        x = inp = keras.Input(shape=tuple(inputs[0].shape)[1:], name=f"{model.name}_input")
        outputs = {}
        for layer in model.layers:
            x = outputs[layer.name] = layer(x)
        return inp, outputs
    if not inputs:
        raise ModelError(
            f"slice_model: model {model.name!r} ({type(model).__name__}) is a subclassed model, whose layers have "
            "no graph to slice; rebuild it with the functional API (keras.Model(inputs, outputs)) or as a "
            "Sequential starting with keras.Input((32, 32, 3))"
        )
    outputs = {}
    for layer in model.layers:
        if _is_input(layer):
            continue
        try:
            outputs[layer.name] = layer.output
        # Keras 2 raises for a layer used twice (Keras 3 gives its first output); only
        # an error if that layer is asked for.
        except (AttributeError, ValueError) as exc:
            outputs[layer.name] = exc
    return model.input, outputs


def slice_model(model, layers=None):
    """A Model from the input to the named layers' outputs (all layers by default),
    and the names of its outputs in order.

    ``model``: a functional ``keras.Model`` or a ``keras.Sequential`` (built with an
    Input, by ``build`` or by a call); ``layers``: a list of layer names or None.
    Input layers are left out of the outputs: their "activation" is the image itself,
    which ``stream_activations`` adds under the input layer's name. Raises ModelError
    for an unbuilt Sequential, a subclassed model, several inputs or not a model;
    UnknownNameError (listing the valid names) for a layer the model lacks; InputError
    for ``layers`` that is not a list of names.
    """
    inp, outputs = _graph(model)
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
    names = [n for n in wanted if not _is_input(model.get_layer(n))]
    for n in names:
        if isinstance(outputs[n], Exception):
            raise ModelError(f"slice_model: layer {n!r} of model {model.name!r} has no single output to slice at "
                             f"({outputs[n]})")
    return keras.Model(inp, [outputs[n] for n in names], name=f"{model.name}_sliced"), names


def _check_input_shape(sliced, model, where: str) -> tuple:
    """The (height, width, channels) the model takes (CIFAR-10's where a size is open)."""
    shape = tuple(sliced.inputs[0].shape)
    if len(shape) != 4:
        raise ModelError(
            f"{where}: model {model.name!r} takes inputs of shape {shape}; cnnclaims feeds it images "
            "(n, height, width, channels)"
        )
    return tuple(want if d is None else int(d) for d, want in zip(shape[1:], IMAGE_SHAPE))


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
    sliced, names = slice_model(model, layers)
    x = model_input(images, where, single=True, shape=_check_input_shape(sliced, model, where))
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
