"""Per-model evidence: every per-image statistic the claims use, cached per model.

The table is computed in one streamed pass of the probe images through the sliced
model (reduced per batch, so no layer's full tensor for all images is held) and
stored beside the model in its cache entry, keyed by the images and by
``METRICS_VERSION``, so a warm run recomputes nothing heavy.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import FROG
from . import metrics as m
from .activations import stream_activations
from .cache import CacheError, discard, read_npz, write_npz
from .inputs import check_images, class_labels, model_input

METRICS_VERSION = 2
LAYERS = ("input", "conv2d_1", "conv2d_6", "dense_2")
STATS = (
    "c1_input_corr", "c1_redundancy", "c6_zero_fraction", "c6_hoyer", "c6_scaled_mean",
    "c6_scaled_p95", "input_entropy", "c6_entropy", "info_gain", "kl_c6_input",
    "input_skew", "input_centre", "p_frog", "softmax_entropy", "argmax", "correct",
)


def image_stats(model, images, labels, batch_size: int = 500) -> dict:
    """``{stat: (n,) float64}`` for each image; see ``metrics`` for definitions.

    ``images``: a batch (n, 32, 32, 3) of uint8 pixels 0-255 or floats in [0, 1];
    ``labels``: integers 0..9, (n,) or (n, 1). Raises InputError for anything else
    (one image: ``x[None]``), before the model runs."""
    x_all = model_input(images, "image_stats")
    labels = class_labels(labels, len(x_all), "image_stats")
    parts: dict[str, list] = {k: [] for k in STATS}
    start = 0
    for batch in stream_activations(model, x_all, LAYERS, batch_size):
        x, c1, c6, probs = (batch[k] for k in LAYERS)
        y = labels[start : start + len(x)]
        start += len(x)
        in_hist = m.histograms(x)
        c6_hist = m.histograms(m.scale_unit(c6))
        h_in = m.counts_entropy(in_hist)
        h_c6 = m.counts_entropy(c6_hist)
        argmax = probs.argmax(axis=1)
        row = {
            "c1_input_corr": m.map_input_correlation(c1, m.grey(x)),
            "c1_redundancy": m.map_redundancy(c1),
            "c6_zero_fraction": m.zero_fraction(c6),
            "c6_hoyer": m.hoyer_sparsity(c6),
            "c6_scaled_mean": m.scaled_mean(c6),
            "c6_scaled_p95": m.scaled_quantile(c6, 0.95),
            "input_entropy": h_in,
            "c6_entropy": h_c6,
            "info_gain": h_in - h_c6,
            "kl_c6_input": m.kl_divergence(c6_hist, in_hist),
            "input_skew": m.skewness(x),
            "input_centre": m.centre(x),
            "p_frog": probs[:, FROG].astype(np.float64),
            "softmax_entropy": m.softmax_entropy(probs),
            "argmax": argmax.astype(np.float64),
            "correct": (argmax == y).astype(np.float64),
        }
        for k in STATS:
            parts[k].append(row[k])
    return {k: np.concatenate(v) for k, v in parts.items()}


def images_digest(images: np.ndarray) -> str:
    a = np.ascontiguousarray(images)
    return hashlib.sha256(a.tobytes() + str(a.shape).encode()).hexdigest()[:16]


def cached_image_stats(trained, images, labels) -> dict:
    """``image_stats`` for a trained model, from its cache entry when valid.

    Arguments and errors as ``image_stats``; checked before the cache is read, since
    the entry is keyed by the images as given (one image would be keyed as 32)."""
    images = check_images(images, "cached_image_stats")
    class_labels(labels, len(images), "cached_image_stats")
    path = Path(trained.path) / f"stats-{images_digest(images)}-m{METRICS_VERSION}.npz"
    expected = {k: (np.float64, (len(images),)) for k in STATS}
    if path.exists():
        try:
            return read_npz(path, expected)
        except CacheError as exc:
            discard(path, str(exc))
    table = image_stats(trained.model, images, labels)
    write_npz(path, **table)
    return table


@dataclass
class ModelEvidence:
    """What the claims need of one trained model."""

    role: str
    seed: int
    key: str
    test_accuracy: float
    stats: dict  # stat -> (n_frogs,) array, in frog order
    record: dict = field(default_factory=dict)


@dataclass
class Evidence:
    """Groups of models compared by the claims, plus where the probe is.

    ``groups`` maps a role ("benchmark", "dummy") to its models, ordered by seed;
    the first model of each group is the pair the article's single comparison uses.
    For the null control, "benchmark" holds the second group of dummy-size models.
    """

    groups: dict
    probe_position: int  # index of the probe frog within the frog arrays
    n_images: int
    label: str = "article"  # "article" or "null control"
    data_source: str = ""

    def first(self, role: str) -> ModelEvidence:
        return self.groups[role][0]


def build_model_evidence(trained, frogs_x, frogs_y) -> ModelEvidence:
    return ModelEvidence(
        role=trained.spec.role,
        seed=trained.spec.seed,
        key=trained.key,
        test_accuracy=trained.test_accuracy,
        stats=cached_image_stats(trained, frogs_x, frogs_y),
        record=trained.record,
    )
