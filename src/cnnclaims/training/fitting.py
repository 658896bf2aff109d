"""Fitting one model as the article does: the training arrays (``prepare``), the fit
with early stopping on the best epoch's checkpoint (``fit``), its progress lines and
the digests of its weights (``weights_sha256``), epoch by epoch."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..compat import check_numerics, check_threads, keras, set_determinism
from ..inputs import IMAGE_SHAPE, N_CLASSES, check_images, class_labels, model_input, one_hot_labels
from ..model import build_model, compile_model
from ..modelio import ModelIO, fed, output_index, trainable
from .progress import rough
from .spec import TrainSpec


class ProgressCallback(keras.callbacks.Callback):  # type: ignore[name-defined]  # keras: chosen at run time (compat)
    """One line per epoch: which model, epoch, metrics, epoch and elapsed time, and
    (trained in this process) the time left for this model at most: the epochs left to
    its limit times this epoch's time.

    In a training worker ``progress`` also has an ``event`` method (a
    ``progress.ProgressChannel``): the epoch then goes to the driver as an event with its
    metrics, and the driver's ``PlanProgress`` says the line with the plan's status and
    ETA appended."""

    def __init__(self, label: str, max_epochs: int, progress):
        super().__init__()
        self.label, self.max_epochs, self.progress = label, max_epochs, progress

    def on_train_begin(self, logs=None):
        self.t0 = time.perf_counter()

    def on_epoch_begin(self, epoch, logs=None):
        self.te = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        now = time.perf_counter()
        detail = (
            f"loss={logs.get('loss', float('nan')):.4f} acc={logs.get('accuracy', float('nan')):.4f} "
            f"val_loss={logs.get('val_loss', float('nan')):.4f} val_acc={logs.get('val_accuracy', float('nan')):.4f} "
            f"({now - self.te:.1f}s, elapsed {now - self.t0:.0f}s)"
        )
        event = getattr(self.progress, "event", None)
        if event is not None:
            # The epoch's own time too: the driver's ETA for a size nothing predicts rests on it.
            event("epoch", epoch + 1, self.max_epochs, detail, now - self.te)
        else:
            # Trained in this process, outside a plan's progress (one worker, one model):
            # this model's own ETA, an upper bound since early stopping may end it sooner.
            left = self.max_epochs - (epoch + 1)
            eta = (
                f"; {rough(left * (now - self.te))} left for this model ({left} epochs at this epoch's time, at most)"
                if left > 0
                else ""
            )
            self.progress(f"cnnclaims: [{self.label}] epoch {epoch + 1}/{self.max_epochs} {detail}{eta}")


def weights_sha256(model) -> str:
    """SHA-256 (hex) of a model's weights: every array of ``model.get_weights()`` in
    order, as its bytes (the digest ``../shared/reference/numerics_probe.py`` prints the
    first 16 digits of). Equal digests mean bit-identical weights."""
    import hashlib

    h = hashlib.sha256()
    for w in model.get_weights():
        h.update(np.ascontiguousarray(w).tobytes())
    return h.hexdigest()


class WeightDigests(keras.callbacks.Callback):  # type: ignore[name-defined]  # keras: chosen at run time (compat)
    """``weights_sha256`` of the model at the end of every epoch (before early stopping
    restores the best one): a record can then prove a retraining bit-identical epoch by
    epoch (``python -m cnnclaims cache reproduce --epochs K``) without training to the end."""

    def __init__(self):
        super().__init__()
        self.digests: list[str] = []

    def on_epoch_end(self, epoch, logs=None):
        self.digests.append(weights_sha256(self.model))


def prepare(x: np.ndarray, y: np.ndarray, shape: tuple = IMAGE_SHAPE, n_classes: int = N_CLASSES):
    """Training arrays: float32 pixels in [0, 1] (n, *shape) and one-hot float32 labels
    (n, n_classes); by default CIFAR-10's (n, 32, 32, 3) and (n, 10).

    ``x``: uint8 pixels 0-255, divided by 255 as the article does (the documented
    input: CIFAR-10 as loaded), or floats already in [0, 1], passed as they are (they
    used to be divided by 255 a second time). ``y``: integer labels 0..n_classes-1,
    (n,) or (n, 1), or one-hot rows. Raises InputError for anything else: floats above
    1 or below 0, NaN/inf, other dtypes, another shape, or a label count other than n."""
    x = model_input(x, "prepare", shape=shape)
    y = class_labels(y, len(x), "prepare", n_classes=n_classes)
    return x, np.eye(n_classes, dtype=np.float32)[y]


def fit(
    spec: TrainSpec,
    x_train,
    y_train,
    x_val,
    y_val,
    checkpoint: Path,
    progress=print,
    build=build_model,
    max_epochs: int | None = None,
    io: ModelIO | None = None,
):
    """Train one model as the article does; returns (model, history dict, epochs, seconds,
    per-epoch weight digests).

    ``max_epochs``: stop after this many epochs (default the spec's): a prefix of the
    same training, epoch for epoch (``cache reproduce --epochs``).

    ``x_train``, ``x_val``: float pixels in [0, 1], (n, *io.input_shape) (CIFAR-10's
    (n, 32, 32, 3) by default); ``y_train``, ``y_val``: one-hot (n, io.n_classes) floats,
    i.e. what ``prepare`` returns. ``io`` (``modelio.ModelIO``): several inputs are fed
    ``io.feed``'s arrays, and of several outputs the declared one alone is trained; the
    whole model is returned. Raises InputError, before any training, for arrays that
    are not (e.g. 0-255 pixels)."""
    io = io or ModelIO()
    # Checked only, not converted: fit takes prepared arrays, and a uint8 array here
    # would mean prepare() was skipped.
    for name, x, y, y_name in (("x_train", x_train, y_train, "y_train"), ("x_val", x_val, y_val, "y_val")):
        n = len(check_images(x, "fit", name=name, uint8_ok=False, shape=io.input_shape))
        one_hot_labels(y, n, "fit", y_name, n_classes=io.n_classes)
    check_threads()
    check_numerics()
    set_determinism(spec.seed)
    model = build()
    trainee = compile_model(
        trainable(model, io, output_index(model, io, "fit")), spec.learning_rate, spec.steps_per_execution
    )
    es = keras.callbacks.EarlyStopping(monitor="val_loss", patience=spec.patience, restore_best_weights=True)
    # Weights-only checkpoint of the best epoch: restores the best weights in every
    # Keras version (2.15's EarlyStopping does not when the epoch limit is reached).
    ckpt = keras.callbacks.ModelCheckpoint(
        str(checkpoint), monitor="val_loss", save_best_only=True, save_weights_only=True
    )
    digests = WeightDigests()
    t0 = time.perf_counter()
    hist = trainee.fit(
        fed(model, io, x_train),
        y_train,
        batch_size=spec.batch_size,
        epochs=spec.max_epochs if max_epochs is None else min(max_epochs, spec.max_epochs),
        validation_data=(fed(model, io, x_val), y_val),
        callbacks=[es, ckpt, digests, ProgressCallback(spec.label, spec.max_epochs, progress)],
        verbose=0,
    )
    trainee.load_weights(str(checkpoint))
    seconds = time.perf_counter() - t0
    history = {k: [float(v) for v in vals] for k, vals in hist.history.items()}
    return model, history, len(history["loss"]), seconds, digests.digests
