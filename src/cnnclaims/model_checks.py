"""Checks of a model against what cnnclaims feeds it, shared by slicing
(``activations``) and the training contract (``modelio``): channels-last layers,
input shapes, and a declared feed's output. Each raises ModelError naming the model
and the fix."""

from __future__ import annotations

import numpy as np

from .compat import image_data_format, keras_config_file
from .errors import ModelError


def channels_first_error(where: str, model_name: str, paths) -> ModelError:
    """The one error for a model whose layers take channels-first maps."""
    paths = list(paths)
    shown = ", ".join(repr(p) for p in paths[:4]) + (f" and {len(paths) - 4} more" if len(paths) > 4 else "")
    here = image_data_format()
    source = (
        f"Keras's image_data_format is {here!r} here (read from {keras_config_file()}, or set by "
        "keras.backend.set_image_data_format)"
        if here == "channels_first"
        else "the layers were built with data_format='channels_first'"
    )
    return ModelError(
        f"{where}: model {model_name!r} takes channels-first maps (layers {shown}); {source}. cnnclaims feeds "
        f'images as (n, height, width, channels): set "image_data_format": "channels_last" in '
        f"{keras_config_file()} (or point $KERAS_HOME at a folder without that setting) and build the model "
        "again, or give its layers data_format='channels_last'"
    )


def tensor_shape(tensor) -> tuple:
    return tuple(None if d is None else int(d) for d in tuple(tensor.shape)[1:])


def shape_fits(shape: tuple, want: tuple) -> bool:
    return len(shape) == len(want) and all(d is None or d == w for d, w in zip(shape, want, strict=False))


def check_feed(feed, images, inputs, names, where: str) -> None:
    """Call ``feed`` on a batch of ``images`` and check it gives every input by name,
    batch first, in the input's shape. Raises ModelError naming what was wrong."""
    n = len(images)
    try:
        got = feed(images)
    except Exception as exc:  # noqa: BLE001 - the user's function: say which one failed and on what
        raise ModelError(
            f"{where}: feed {getattr(feed, '__qualname__', feed)!r} failed on a batch of {n} images "
            f"{tuple(np.shape(images))} ({type(exc).__name__}: {exc})"
        ) from exc
    if not isinstance(got, dict):
        raise ModelError(
            f"{where}: feed returned {type(got).__name__}; return a dict {{input name: array}} with "
            f"the keys {', '.join(names)}"
        )
    if sorted(got) != sorted(names):
        raise ModelError(
            f"{where}: feed returned the keys {sorted(got)}, but the model's inputs are "
            f"{', '.join(names)}; return exactly one array per input, by name"
        )
    for name, tensor in zip(names, inputs, strict=False):
        a = np.asarray(got[name])
        want = tensor_shape(tensor)
        if a.ndim == 0 or len(a) != n or not shape_fits(a.shape[1:], want):
            raise ModelError(
                f"{where}: feed gave input {name!r} shape {a.shape} for {n} images; the model takes "
                f"({n}, {', '.join('None' if d is None else str(d) for d in want)})"
            )
        if not (np.issubdtype(a.dtype, np.number) and np.isfinite(a).all()):
            raise ModelError(
                f"{where}: feed gave input {name!r} dtype {a.dtype} with non-numbers or NaN/inf; give finite numbers"
            )
