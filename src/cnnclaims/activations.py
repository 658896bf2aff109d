"""The article's slicing: one Keras Model whose outputs are every layer's output, at
any depth.

Every layer is addressed by its *path*: its name, and for a layer inside a nested
model (a model used as a layer, as every pretrained backbone is) the nested model's
path, a ``/`` and its name, at any depth: ``backbone``, ``backbone/block_1_conv``. A
layer called at several nodes of one graph (a shared layer) has one path per node,
``name@0``, ``name@1``, ...; a layer with several outputs one per output,
``name:0``, ``name:1``. ``layer_paths`` lists them in network order.

How: the model's graph is called again on new ``keras.Input``s, node by node, and a
nested functional or Sequential model is walked into instead of being called whole
(``compat.run_graph``), so the inner layers' outputs are connected to the outer inputs
(Keras itself refuses them: "Output ... is not connected to 'inputs'"). The layers,
and so the weights, are the model's own. An unbuilt Sequential and subclassed models
(no graph) are refused with what to do; a nested subclassed model is one layer.

``layer_activations`` returns ``{path: array}`` for a batch of images and
``stream_activations`` yields them batch by batch, so the whole test set goes through
without holding every layer's full tensor at once. Models with several inputs take a
``feed``: a function from the images to ``{input name: array}`` (see
``cnnclaims.modelio``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .compat import flatten, input_name, is_graph_model, keras, run_graph
from .errors import InputError, ModelError, UnknownNameError, unknown
from .inputs import model_input

INPUT = "input"  # the images as the model takes them (float32 in [0, 1]), whatever the input layer's name
SEP = "/"


def _is_input(layer) -> bool:
    # By type, never by name: a layer called "input_x" may be anything.
    return isinstance(layer, keras.layers.InputLayer)


def layer_names(model) -> list[str]:
    """Every top-level layer's name in network order; the input layer first
    (functional models; a Sequential lists no input layer). Nested models' layers:
    ``layer_paths``."""
    return [layer.name for layer in model.layers]


def _model_inputs(model, where: str) -> list:
    """The model's symbolic inputs; ModelError for an unbuilt Sequential or a subclassed model."""
    if not isinstance(model, keras.Model):
        raise ModelError(f"{where}: expected a Keras model (keras.Model), got {type(model).__name__}: {model!r:.80}")
    try:
        inputs = model.inputs  # Keras 3 raises for an unbuilt Sequential or a subclassed model
    except (AttributeError, ValueError):
        inputs = None
    inputs = list(inputs or [])  # Keras 2 gives None instead
    if inputs:
        return inputs
    if isinstance(model, keras.Sequential):
        raise ModelError(
            f"{where}: Sequential model {model.name!r} was never built, so its input shape is unknown; "
            "call model.build((None, 32, 32, 3)) or start it with keras.Input((32, 32, 3)) "
            "(your images' height, width, channels)"
        )
    raise ModelError(
        f"{where}: model {model.name!r} ({type(model).__name__}) is a subclassed model, whose layers have "
        "no graph to slice; rebuild it with the functional API (keras.Model(inputs, outputs)) or as a "
        "Sequential starting with keras.Input((32, 32, 3))"
    )


@dataclass
class _Walk:
    """One graph being walked: the model's (no ``parent``), or a nested model's, called
    as layer ``name``'s node ``k`` of the ``parent`` graph; ``calls`` counts each layer's
    nodes in it, to name a shared layer's nodes."""

    parent: _Walk | None = None
    name: str = ""
    k: int = 0
    calls: dict = field(default_factory=dict)

    def path(self, name: str, k: int) -> str:
        own = name + (f"@{k}" if self.calls.get(name, 1) > 1 else "")
        return own if self.parent is None else self.parent.path(self.name, self.k) + SEP + own


@dataclass
class Sliced:
    """A model's graph called again on new inputs: ``inputs`` (new ``keras.Input``s, in
    the model's order) named ``input_names``; ``outputs``: ``{path: tensor}`` of every
    layer at every depth, in network order (a nested model's own output before its
    layers'); ``channels_first``: the paths of layers that take channels-first maps."""

    inputs: list
    input_names: list
    outputs: dict
    channels_first: list


def walk_model(model, where: str = "slice_model") -> Sliced:
    """The model's graph rebuilt from fresh inputs, every layer's output reachable by
    its path (``Sliced``); ``where`` names the caller in errors (a channels-first or
    input-less model raises ModelError)."""
    inputs = _model_inputs(model, where)
    new = [keras.Input(shape=tuple(t.shape)[1:], name=input_name(t), dtype=t.dtype) for t in inputs]
    entries: list[tuple] = []  # (walk, layer name, node index, output index or None, tensor), in network order
    first_format = []  # (walk, layer name, node index) of layers with data_format="channels_first"

    def record(walk, layer, k, out, at=None):
        tensors = flatten(out)
        at = len(entries) if at is None else at
        entries[at:at] = [(walk, layer.name, k, j if len(tensors) > 1 else None, t) for j, t in enumerate(tensors)]

    def visit(walk, layer, args, kwargs):
        k = walk.calls.get(layer.name, 0)
        walk.calls[layer.name] = k + 1
        if getattr(layer, "data_format", None) == "channels_first":
            first_format.append((walk, layer.name, k))
        if not (is_graph_model(layer) or isinstance(layer, keras.Sequential)):
            out = layer(*args, **kwargs)
            record(walk, layer, k, out)
            return out
        # A nested model: walked into, its own output listed before its layers'.
        slot, inner = len(entries), _Walk(walk, layer.name, k)
        given = args[0] if args else next(iter(kwargs.values()))
        if isinstance(layer, keras.Sequential):
            out = given
            for sub in layer.layers:
                out = visit(inner, sub, (out,), {})
        else:
            out = run_graph(layer, _nested_inputs(layer, given, where), lambda *a: visit(inner, *a))
            out = out[0] if len(out) == 1 else out
        record(walk, layer, k, out, at=slot)
        return out

    top = _Walk()
    if isinstance(model, keras.Sequential):
        out = new[0]
        for layer in model.layers:
            out = visit(top, layer, (out,), {})
    elif is_graph_model(model):
        run_graph(model, new, lambda *a: visit(top, *a))
    else:  # pragma: no cover - a model with inputs is functional or Sequential
        raise ModelError(f"{where}: model {model.name!r} ({type(model).__name__}) has no graph to slice")
    outputs = {walk.path(name, k) + ("" if j is None else f":{j}"): t for walk, name, k, j, t in entries}
    return Sliced(new, [input_name(t) for t in inputs], outputs, [w.path(n, k) for w, n, k in first_format])


def inner_paths(name: str, paths) -> list[str]:
    """The paths among ``paths`` whose last layer is called ``name`` (a nested layer
    asked for by its bare name)."""
    return [p for p in paths if p.split(SEP)[-1].split("@")[0].split(":")[0] == name and p != name]


def _nested_inputs(layer, given, where: str) -> list:
    """The tensors a nested functional model was called on, in its inputs' order."""
    names = [input_name(t) for t in layer.inputs]
    if isinstance(given, dict):
        missing = [n for n in names if n not in given]
        if missing:
            raise ModelError(
                f"{where}: nested model {layer.name!r} is called with inputs {sorted(given)}, not its own {names}"
            )
        return [given[n] for n in names]
    tensors = flatten(given)
    if len(tensors) != len(names):
        raise ModelError(
            f"{where}: nested model {layer.name!r} takes {len(names)} inputs {names} but is called on {len(tensors)}"
        )
    return tensors


def layer_paths(model) -> list[str]:
    """Every path ``slice_model`` takes, in network order: the input layers' names
    (functional models), every layer at every depth (``backbone/block_1_conv``), per
    node for shared layers (``name@k``), per output for layers with several
    (``name:j``). Raises ModelError as ``slice_model``."""
    sliced = walk_model(model, "layer_paths")
    return input_paths(model) + list(sliced.outputs)


def input_paths(model) -> list[str]:
    """Names of the model's input layers, in order."""
    return [layer.name for layer in model.layers if _is_input(layer)]


def _valid(model, sliced) -> list[str]:
    names = input_paths(model) + list(sliced.outputs)
    return names + ([INPUT] if INPUT not in names else [])


def _unknown_layer(name, valid, sliced) -> UnknownNameError:
    err = unknown("layer", name, valid)
    inside = inner_paths(name, sliced.outputs)
    if inside:  # the name of a layer that is there, under a path
        return UnknownNameError(
            f"unknown layer {name!r}; the model has it as {', '.join(repr(p) for p in inside)} "
            f"(a layer inside a nested model is named by its path). {err}"
        )
    return err


def slice_model(model, layers=None):
    """A Model from the input(s) to the named layers' outputs (all layers at every
    depth by default), and the paths of its outputs in order.

    ``model``: a functional ``keras.Model`` (nested models inside it are walked into)
    or a ``keras.Sequential`` (built with an Input, by ``build`` or by a call);
    ``layers``: a list of layer paths (see the module docstring) or None. Input layers
    (and ``"input"``) are left out of the outputs: their "activation" is the images
    themselves, which ``stream_activations`` adds under their names. Raises ModelError
    for an unbuilt Sequential, a subclassed model, a layer that takes channels-first
    maps, or not a model; UnknownNameError (listing the valid paths) for a layer the
    model lacks; InputError for ``layers`` that is not a list of names.
    """
    sliced, names, _ = _slice(model, layers)
    return sliced, names


def _slice(model, layers=None):
    """``slice_model``'s model and paths, and the walk (``Sliced``) they came from."""
    # A string would be iterated letter by letter ("unknown layer 'c'").
    if layers is not None and (isinstance(layers, str) or len(layers) == 0):
        raise InputError(
            f"slice_model: layers={layers!r}; pass a list of layer names, e.g. ['conv2d_6'], or None for all layers"
        )
    sliced = walk_model(model)
    if sliced.channels_first:
        from .model_checks import channels_first_error

        raise channels_first_error("slice_model", model.name, sliced.channels_first)
    valid = _valid(model, sliced)
    inputs = set(input_paths(model)) | {INPUT}
    wanted = list(sliced.outputs) if layers is None else list(layers)
    for name in wanted:
        if name not in valid:
            shared = [p for p in sliced.outputs if p.startswith(f"{name}@") or p.startswith(f"{name}:")]
            if shared:
                raise ModelError(
                    f"slice_model: layer {name!r} of model {model.name!r} has "
                    f"{'several nodes' if '@' in shared[0] else 'several outputs'}; ask for one: "
                    f"{', '.join(shared)}"
                )
            raise _unknown_layer(name, valid, sliced)
    names = [n for n in wanted if n not in inputs]
    inputs = sliced.inputs[0] if len(sliced.inputs) == 1 else sliced.inputs  # as the model takes them
    return keras.Model(inputs, [sliced.outputs[n] for n in names], name=f"{model.name}_sliced"), names, sliced


def as_model_input(images) -> np.ndarray:
    """uint8 pixels -> float32 in [0, 1] (the article's /255); floats in [0, 1] pass.

    ``images``: (n, 32, 32, 3) or one (32, 32, 3) image. Raises InputError for
    anything else (see ``cnnclaims.inputs``)."""
    return model_input(images, "as_model_input", single=True)


def _image_shape(sliced, model, images, where: str) -> tuple:
    """The (height, width, channels) the model takes; a size the model leaves open
    (None) is the images' own."""
    shape = tuple(sliced.inputs[0].shape)
    if len(shape) != 4:
        raise ModelError(
            f"{where}: model {model.name!r} takes inputs of shape {shape}; cnnclaims feeds it images "
            "(n, height, width, channels)"
        )
    given = tuple(np.shape(images))[-3:]
    given = given if len(given) == 3 else (None, None, None)
    return tuple(g if d is None else int(d) for d, g in zip(shape[1:], given, strict=False))


def _batches(sliced, names, inputs, x, batch_size, feed, input_names):
    for start in range(0, len(x), batch_size):
        xb = x[start : start + batch_size]
        fed = feed(xb) if feed is not None else None
        outs = sliced([np.asarray(fed[n]) for n in input_names] if fed is not None else xb, training=False)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        batch = {name: np.asarray(o) for name, o in zip(names, outs, strict=False)}
        for name in inputs:
            batch[name] = np.asarray(fed[name]) if fed is not None and name in fed else xb
        yield batch


def _stream(model, images, layers, batch_size, where: str, feed=None):
    # Checked here, at the call, not when the first batch is drawn from the generator.
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise InputError(f"{where}: batch_size={batch_size!r} is not a positive integer")
    sliced, names, walk = _slice(model, layers)
    input_names = walk.input_names
    if feed is None:
        if len(input_names) > 1:
            raise ModelError(
                f"{where}: model {model.name!r} has {len(input_names)} inputs ({', '.join(input_names)}); "
                "pass feed=, a function from a batch of images to {input name: array} (the "
                "experiment's Experiment(feed=...))"
            )
        x = model_input(images, where, single=True, shape=_image_shape(sliced, model, images, where))
    else:
        from .model_checks import check_feed

        shape = np.shape(images)
        if len(shape) not in (3, 4):
            raise InputError(
                f"{where}: images got shape {shape}; expected a batch of images (n, height, width, "
                "channels) or one image (height, width, channels)"
            )
        x = model_input(images, where, single=True, shape=shape[-3:])
        check_feed(feed, x[:1], walk.inputs, input_names, where)
    all_inputs = input_paths(model) + [INPUT]
    inputs = [n for n in (all_inputs if layers is None else layers) if n in all_inputs]
    return _batches(sliced, names, list(dict.fromkeys(inputs)), x, batch_size, feed, input_names)


def stream_activations(model, images, layers=None, batch_size: int = 500, feed=None):
    """Yield ``{layer path: activations}`` for consecutive batches of ``images``.

    ``images``: uint8 pixels 0-255 or floats in [0, 1], (n, H, W, C) in the model's
    input shape, or one (H, W, C) image; ``layers``: a list of layer paths (None: all);
    ``feed``: for a model with several inputs, a function from a batch of images
    (float32 in [0, 1]) to ``{input name: array}``. Each batch maps a path to a float32
    array with the batch first; the input layers' entries (and ``"input"``) are the
    scaled images (an input's fed array under a feed). Raises InputError for bad images
    or arguments (at the call, not at the first batch), ModelError for a model with
    several inputs and no feed, and UnknownNameError for a layer the model lacks."""
    return _stream(model, images, layers, batch_size, "stream_activations", feed)


def layer_activations(model, images, layers=None, batch_size: int = 500, feed=None) -> dict:
    """``{layer path: array}`` for all ``images`` (batched through the model).

    Arguments, values and errors as ``stream_activations``; each array holds every
    image, batch axis first (one image gives a batch of one)."""
    parts: dict[str, list] = {}
    for batch in _stream(model, images, layers, batch_size, "layer_activations", feed):
        for name, arr in batch.items():
            parts.setdefault(name, []).append(arr)
    return {name: np.concatenate(arrs) for name, arrs in parts.items()}
