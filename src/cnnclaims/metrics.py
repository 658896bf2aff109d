"""Per-image statistics of activations: pure numpy functions, batch in, numbers out.

Every function takes a batch (first axis = images) and returns one number per
image, so that images can be treated as the independent samples they are, and
pixels never are.

Definitions (the claims catalog refers to these):

- ``grey(x)``: mean over the colour channels, (n, h, w, 3) -> (n, h, w).
- ``map_input_correlation(maps, grey)``: for each feature map, |Pearson r| between
  its pixels and the grey input's (resized by block averaging when the map is
  smaller); the mean over maps that are not constant. A constant map (a dead ReLU
  filter) has no defined correlation and is left out; an image whose maps are all
  constant gets NaN.
- ``map_redundancy(maps)``: mean |Pearson r| over all pairs of non-constant maps.
- ``zero_fraction(a)``: fraction of exact zeros (ReLU outputs that are off).
- ``hoyer_sparsity(a)``: (sqrt(d) - L1/L2) / (sqrt(d) - 1), 0 for a flat vector, 1 for
  a single non-zero; scale-invariant; an all-zero vector counts as 1.
- ``scale_unit(a)``: values divided by the image's maximum, into [0, 1] (all-zero
  stays zero); ``scaled_mean`` and ``scaled_quantile`` summarise that.
- ``histogram_entropy(v)``: Shannon entropy in bits of the histogram of values in
  [0, 1] with ``bins`` equal bins.
- ``kl_divergence(p, q)``: KL(p || q) in bits between two such histograms, with
  half a count added to every bin so that empty bins stay finite.
- ``skewness(v)``, ``centre(v)``: Fisher skewness and median of the values.
- ``softmax_entropy(p)``: entropy in bits of each softmax row.
"""
from __future__ import annotations

import numpy as np
from scipy import stats

BINS = 32
# A map counts as constant when its standard deviation is below this fraction of
# its mean's magnitude (relative, so the test is scale-invariant; rounding leaves
# ~1e-16 relative noise in the std of a constant map).
_CONSTANT = 1e-9


def _flat(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim < 2:
        raise ValueError(f"expected a batch with a leading image axis, got shape {a.shape}")
    return a.reshape(len(a), -1)


def grey(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"expected RGB images of shape (n, h, w, 3), got {x.shape}")
    return x.mean(axis=-1)


def _block_mean(g: np.ndarray, h: int, w: int) -> np.ndarray:
    n, H, W = g.shape
    if (H, W) == (h, w):
        return g
    if H % h or W % w:
        raise ValueError(f"cannot match a {H}x{W} input to {h}x{w} maps")
    return g.reshape(n, h, H // h, w, W // w).mean(axis=(2, 4))


def _standardise(a: np.ndarray):
    """(n, p, c) -> z-scores along p, and a mask of non-constant columns."""
    mu = a.mean(axis=1, keepdims=True)
    sd = a.std(axis=1, keepdims=True)
    live = sd > _CONSTANT * np.abs(mu)
    z = np.where(live, (a - mu) / np.where(live, sd, 1.0), 0.0)
    return z, live[:, 0, :]


def map_input_correlation(maps: np.ndarray, grey_input: np.ndarray) -> np.ndarray:
    maps = np.asarray(maps, dtype=np.float64)
    if maps.ndim != 4:
        raise ValueError(f"expected feature maps of shape (n, h, w, c), got {maps.shape}")
    n, h, w, c = maps.shape
    g = _block_mean(np.asarray(grey_input, dtype=np.float64), h, w).reshape(n, h * w, 1)
    zm, ok = _standardise(maps.reshape(n, h * w, c))
    zg, gok = _standardise(g)
    r = np.abs((zm * zg).mean(axis=1))  # (n, c)
    ok = ok & gok
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ok.any(axis=1), (r * ok).sum(axis=1) / ok.sum(axis=1), np.nan)


def map_redundancy(maps: np.ndarray) -> np.ndarray:
    maps = np.asarray(maps, dtype=np.float64)
    if maps.ndim != 4:
        raise ValueError(f"expected feature maps of shape (n, h, w, c), got {maps.shape}")
    n, h, w, c = maps.shape
    if c < 2:
        raise ValueError("redundancy needs at least two feature maps")
    z, ok = _standardise(maps.reshape(n, h * w, c))
    r = np.abs(np.einsum("npc,npd->ncd", z, z) / (h * w))
    iu = np.triu_indices(c, k=1)
    pair_ok = (ok[:, :, None] & ok[:, None, :])[:, iu[0], iu[1]]
    vals = r[:, iu[0], iu[1]]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pair_ok.any(axis=1), (vals * pair_ok).sum(axis=1) / pair_ok.sum(axis=1), np.nan)


def zero_fraction(a: np.ndarray) -> np.ndarray:
    return (_flat(a) == 0).mean(axis=1)


def hoyer_sparsity(a: np.ndarray) -> np.ndarray:
    f = np.abs(_flat(a))
    d = f.shape[1]
    if d < 2:
        raise ValueError("Hoyer sparsity needs at least two values per image")
    l1 = f.sum(axis=1)
    l2 = np.sqrt((f**2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        h = (np.sqrt(d) - l1 / l2) / (np.sqrt(d) - 1)
    return np.clip(np.where(l2 > 0, h, 1.0), 0.0, 1.0)


def scale_unit(a: np.ndarray) -> np.ndarray:
    f = _flat(a)
    if (f < 0).any():
        raise ValueError("scale_unit expects non-negative values (ReLU outputs or pixels)")
    m = f.max(axis=1, keepdims=True)
    return np.divide(f, m, out=np.zeros_like(f), where=m > 0)


def scaled_mean(a: np.ndarray) -> np.ndarray:
    return scale_unit(a).mean(axis=1)


def scaled_quantile(a: np.ndarray, q: float = 0.95) -> np.ndarray:
    return np.quantile(scale_unit(a), q, axis=1)


def histograms(v: np.ndarray, bins: int = BINS) -> np.ndarray:
    """Counts of values in [0, 1] in ``bins`` equal bins, one row per image."""
    f = _flat(v)
    if f.size and (f.min() < 0 or f.max() > 1):
        raise ValueError(f"histogram values must lie in [0, 1], got [{f.min():.3g}, {f.max():.3g}]")
    idx = np.minimum((f * bins).astype(np.int64), bins - 1)
    idx += np.arange(len(f))[:, None] * bins
    return np.bincount(idx.ravel(), minlength=len(f) * bins).reshape(len(f), bins)


def counts_entropy(counts: np.ndarray) -> np.ndarray:
    """Shannon entropy in bits of each row of histogram counts."""
    return stats.entropy(counts, base=2, axis=-1)


def histogram_entropy(v: np.ndarray, bins: int = BINS) -> np.ndarray:
    return counts_entropy(histograms(v, bins))


def kl_divergence(p_counts: np.ndarray, q_counts: np.ndarray) -> np.ndarray:
    p = np.asarray(p_counts, dtype=np.float64) + 0.5
    q = np.asarray(q_counts, dtype=np.float64) + 0.5
    return stats.entropy(p, q, base=2, axis=-1)


def skewness(v: np.ndarray) -> np.ndarray:
    f = _flat(v)
    with np.errstate(invalid="ignore", divide="ignore"):
        return stats.skew(f, axis=1)


def centre(v: np.ndarray) -> np.ndarray:
    return np.median(_flat(v), axis=1)


def softmax_entropy(p: np.ndarray) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    if p.ndim != 2:
        raise ValueError(f"expected softmax rows of shape (n, classes), got {p.shape}")
    if (p < 0).any() or not np.allclose(p.sum(axis=1), 1.0, atol=1e-3):
        raise ValueError("softmax rows must be non-negative and sum to 1")
    return stats.entropy(p, base=2, axis=1)
