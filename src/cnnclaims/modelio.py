"""What a model takes and gives, as the experiment declares it, and the one check of a
built model against that: its image shape, its classes, which output is the class
probabilities, how a batch of images is fed to several inputs, and channels-last maps.

- One input: the images (n, H, W, C), float32 in [0, 1], the experiment's
  ``input_shape``.
- Several inputs: the experiment's ``feed(images) -> {input name: array}``, a pure
  function of the batch (e.g. two views, a crop); every input by name, each array with
  the batch first. The model is then fed the arrays in its inputs' order.
- One output: the class probabilities (n, classes). Several outputs: the experiment's
  ``output_layer`` names the one that is; that output alone is trained (cross-entropy
  against the labels; the other heads keep their initial weights) and read.
- Layers take channels-last maps: a model built under ``"image_data_format":
  "channels_first"`` is refused, naming the setting and the fix.

Anything else is one ModelError before any training, naming the model and the fix.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .compat import image_data_format, input_name, keras, keras_config_file
from .errors import ModelError
from .inputs import IMAGE_SHAPE, N_CLASSES
from .model_checks import channels_first_error, check_feed, shape_fits, tensor_shape


@dataclass(frozen=True)
class ModelIO:
    """The declared contract between the images and a model (``model_io`` of an
    experiment; the default is the article's: CIFAR-10 images, ten classes, one input,
    one output)."""

    input_shape: tuple = IMAGE_SHAPE
    n_classes: int = N_CLASSES
    output: str = ""  # the class-probability output's name, when the model has several
    feed: Callable | None = None  # images -> {input name: array}, for several inputs

    def key(self) -> dict:
        """What of the contract changes trained weights beyond the model's configuration
        and the data (for cache keys): the feed function and the trained output."""
        feed = "" if self.feed is None else f"{self.feed.__module__}.{getattr(self.feed, '__qualname__', self.feed)}"
        return {"feed": feed, "output": self.output}


def model_io(experiment) -> ModelIO:
    """The experiment's ModelIO (its ``input_shape``, classes, ``output_layer`` and
    ``feed``). ``output`` only chooses among several outputs: the article's
    ``output_layer`` is its one output."""
    return ModelIO(
        tuple(experiment.input_shape),
        len(experiment.classes),
        experiment.output_layer,
        getattr(experiment, "feed", None),
    )


def build_error(who: str, exc: BaseException) -> ModelError | None:
    """A ModelError naming the setting when building failed under channels-first
    (Keras's own error there is about pooling sizes and ``kwargs``); None otherwise."""
    if image_data_format() != "channels_first":
        return None
    first = (str(exc).strip().splitlines() or [""])[0][:160]
    return ModelError(
        f"{who} failed ({type(exc).__name__}: {first}) with Keras's image_data_format 'channels_first' (read from "
        f"{keras_config_file()}, or set by keras.backend.set_image_data_format); cnnclaims feeds images as (n, "
        f'height, width, channels): set "image_data_format": "channels_last" in {keras_config_file()} (or point '
        "$KERAS_HOME at a folder without that setting)"
    )


def checked_io(model, io: ModelIO, who: str) -> int:
    """Check ``model`` against ``io``; return the index of its class-probability output
    among ``model.outputs``. Raises ModelError, naming ``who`` (the condition and
    builder) and the fix, for channels-first layers, several inputs without a feed or
    a feed that names other inputs, one input of another shape than the declared
    images, several outputs without a declared ``output_layer`` or one that names none
    of them."""
    from .activations import walk_model

    walk = walk_model(model, who)
    if walk.channels_first:
        raise channels_first_error(who, model.name, walk.channels_first)
    names = walk.input_names
    if io.feed is None:
        if len(names) > 1:
            raise ModelError(
                f"{who}: the model has {len(names)} inputs ({', '.join(names)}); declare how a batch of images is "
                f"fed to them: Experiment(feed=fn) with fn(images) -> {{{', '.join(repr(n) for n in names)}: "
                "array}, a module-level function of the (n, H, W, C) float batch"
            )
        shape = tensor_shape(model.inputs[0])
        if not shape_fits(shape, tuple(io.input_shape)):
            hint = ""
            if len(shape) == 3 and shape[0] is not None and (shape[1], shape[2], shape[0]) == tuple(io.input_shape):
                hint = " (channels first: build it with keras.Input((height, width, channels)))"
            raise ModelError(
                f"{who}: the model takes inputs of shape {shape}, but the experiment's images are "
                f"{tuple(io.input_shape)}{hint}; build it with keras.Input({tuple(io.input_shape)}) or declare "
                f"Experiment(input_shape={shape})"
            )
    else:
        x = np.zeros((2, *io.input_shape), np.float32)
        check_feed(io.feed, x, model.inputs, names, who)
    return output_index(model, io, who)


def output_index(model, io: ModelIO, who: str) -> int:
    """The index of ``model``'s class-probability output among ``model.outputs``: 0 for
    one output, else the one ``io.output`` names. Raises ModelError otherwise."""
    outputs = list(model.outputs)
    if len(outputs) == 1:
        return 0
    out_names = list(model.output_names)
    if not io.output:
        raise ModelError(
            f"{who}: the model has {len(outputs)} outputs ({', '.join(out_names)}); declare which is the class "
            f"probabilities: Experiment(output_layer={out_names[0]!r}) (that output alone is trained and read)"
        )
    if io.output not in out_names:
        raise ModelError(
            f"{who}: output_layer={io.output!r} is none of the model's {len(outputs)} outputs "
            f"({', '.join(out_names)}); name the one that gives the class probabilities"
        )
    return out_names.index(io.output)


def input_names(model) -> list:
    return [input_name(t) for t in model.inputs]


def fed(model, io: ModelIO, x):
    """``x`` (float32 images) as ``model`` takes it: itself, or ``io.feed(x)``'s arrays
    in the model's inputs' order."""
    if io.feed is None:
        return x
    got = io.feed(x)
    return [np.asarray(got[name]) for name in input_names(model)]


def trainable(model, io: ModelIO, index: int):
    """What is trained: ``model`` itself (one output), or a model of the same layers
    (same weights) from its inputs to output ``index`` alone."""
    if len(model.outputs) == 1:
        return model
    return keras.Model(model.inputs, model.outputs[index], name=f"{model.name}_{io.output}")


def probabilities(outputs, index: int) -> np.ndarray:
    """The class probabilities among a model's outputs (a list for several)."""
    if isinstance(outputs, dict):
        outputs = list(outputs.values())
    return np.asarray(outputs[index] if isinstance(outputs, (list, tuple)) else outputs)


_LAYERS_CHECKED: set = set()


def check_layers(build, experiment, role: str) -> None:
    """Every layer the experiment's metrics read, and its ``output_layer``, is a path
    of the model ``build()`` returns (``activations.layer_paths``). Raises
    UnknownNameError naming the claim, the metric, the layer and the valid paths (a
    layer inside a nested model: its path), before any training (memoised)."""
    from .activations import INPUT, input_paths, walk_model
    from .declaration import OUTPUT
    from .errors import unknown

    wanted = [(c.id, m.name, layer) for c in experiment.claims for m in (c.metric, *c.extras) for layer in m.layers]
    key = (build, tuple(wanted), experiment.output_layer)
    if key in _LAYERS_CHECKED:
        return
    model = build()
    walk = walk_model(model, "check_layers")
    valid = input_paths(model) + list(walk.outputs)
    valid += [INPUT] if INPUT not in valid else []
    who = f"experiment {experiment.name!r}, condition {experiment.recipe(role).name!r}"
    if experiment.output_layer and experiment.output_layer not in valid:
        raise _named(
            unknown("layer", experiment.output_layer, valid),
            experiment.output_layer,
            walk,
            f"{who}: output_layer {experiment.output_layer!r} is not a layer of model {model.name!r}",
        )
    for claim_id, metric, layer in wanted:
        if layer != OUTPUT and layer not in valid:
            raise _named(
                unknown("layer", layer, valid),
                layer,
                walk,
                f"{who}: claim {claim_id!r}, metric {metric!r} reads layer {layer!r}, which model {model.name!r} lacks",
            )
    _LAYERS_CHECKED.add(key)


def _named(err, name: str, walk, what: str):
    from .activations import inner_paths
    from .errors import UnknownNameError

    inside = inner_paths(name, walk.outputs)
    hint = (
        f"; it is inside a nested model: {', '.join(repr(p) for p in inside)} (name a nested layer by its path)"
        if inside
        else ""
    )
    return UnknownNameError(f"{what}{hint}; {str(err).split('; ', 1)[1]}")
