"""Per-image statistics of activations: pure numpy functions, batch in, numbers out.

Every function takes a batch (first axis = images) and returns one number per
image, so that images can be treated as the independent samples they are, and
pixels never are.

Definitions (the claims catalog refers to these):

- ``grey(x)``: mean over the colour channels, (n, h, w, 3) -> (n, h, w); a grayscale
  image (one channel) is its own grey.
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

Input checks: every public function checks the rank, dtype (integer or floating
point) and finiteness of what it is given and raises ``errors.InputError`` (a
ValueError) naming itself, the shape it got and the shape it expects. In
particular one image without its batch axis, e.g. a last-layer map (8, 8, 16), is
refused rather than read as 8 images of 8x16 values; use ``x[None]``. The checks
never change a valid input's numbers.
"""

from __future__ import annotations

import numbers

import numpy as np
from scipy import stats

from .errors import InputError

__all__ = [
    "BINS",
    "centre",
    "counts_entropy",
    "grey",
    "histogram_entropy",
    "histograms",
    "hoyer_sparsity",
    "kl_divergence",
    "map_input_correlation",
    "map_redundancy",
    "scale_unit",
    "scaled_mean",
    "scaled_quantile",
    "skewness",
    "softmax_entropy",
    "zero_fraction",
]

BINS = 32
# A map counts as constant when its standard deviation is below this fraction of
# its mean's magnitude (relative, so the test is scale-invariant; rounding leaves
# ~1e-16 relative noise in the std of a constant map).
_CONSTANT = 1e-9

# What each kind of argument must look like, as the error messages say it.
_ROWS_OR_MAPS = "an (n, h, w, c) batch of feature maps or images, or (n, d) rows"
_MAPS = "an (n, h, w, c) batch of feature maps"
_ONE_IMAGE = "for one image use x[None]"


def _checked(fn: str, name: str, a, ranks: tuple, expected: str) -> np.ndarray:
    """``a`` as float64 after checking it is a non-empty batch of finite numbers
    whose rank is one of ``ranks``; an InputError naming ``fn`` otherwise."""
    a = np.asarray(a)
    # bool, complex, object and strings would be converted (or fail) silently.
    if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise InputError(f"{fn}: {name} has dtype {a.dtype}; expected integer or floating-point numbers")
    if a.ndim not in ranks:
        hint = f"; {_ONE_IMAGE}" if a.ndim < max(ranks) else ""
        raise InputError(
            f"{fn}: {name} got shape {a.shape}; expected {expected}, one per image (first axis = images){hint}"
        )
    if a.shape[0] == 0:
        raise InputError(f"{fn}: {name} is an empty batch (shape {a.shape}, 0 images)")
    if a.size == 0:
        raise InputError(f"{fn}: {name} holds empty images (shape {a.shape}); each image needs at least one value")
    a = np.asarray(a, dtype=np.float64)
    bad = ~np.isfinite(a)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise InputError(
            f"{fn}: {name} holds {int(bad.sum())} NaN/inf value(s), the first at index {first}; "
            "check the input for NaN/inf (a diverged model or a broken input)"
        )
    return a


def _flat(a, fn: str, name: str = "a") -> np.ndarray:
    """(n, h, w, c) maps or (n, d) rows -> (n, d) float64 rows, checked."""
    a = _checked(fn, name, a, (2, 4), _ROWS_OR_MAPS)
    return a.reshape(len(a), -1)


def _maps(a, fn: str, name: str = "maps") -> np.ndarray:
    return _checked(fn, name, a, (4,), _MAPS)


def _counts(c, fn: str, name: str) -> np.ndarray:
    c = _checked(fn, name, c, (2,), "(n, bins) histogram counts, one row per image")
    if (c < 0).any():
        raise InputError(f"{fn}: {name} must be non-negative counts; got a minimum of {c.min():.3g}")
    return c


def _bins(bins, fn: str) -> int:
    if isinstance(bins, bool) or not isinstance(bins, numbers.Integral) or bins < 1:
        raise InputError(f"{fn}: bins={bins!r} is not a positive integer number of bins")
    return int(bins)


def grey(x: np.ndarray) -> np.ndarray:
    """Mean over the colour channels: (n, h, w, 3) RGB or (n, h, w, 1) grayscale
    numbers -> (n, h, w) float64.

    Raises InputError for another rank or channel count, a non-numeric dtype or
    NaN/inf."""
    x = _checked("grey", "x", x, (4,), "RGB images (n, h, w, 3) or grayscale (n, h, w, 1)")
    if x.shape[-1] not in (1, 3):
        raise InputError(
            f"grey: x got shape {x.shape} with {x.shape[-1]} channels; expected RGB images (n, h, w, 3) or "
            "grayscale (n, h, w, 1)"
        )
    return x.mean(axis=-1)


def _block_mean(g: np.ndarray, h: int, w: int) -> np.ndarray:
    n, H, W = g.shape
    if (H, W) == (h, w):
        return g
    return g.reshape(n, h, H // h, w, W // w).mean(axis=(2, 4))


def _standardise(a: np.ndarray):
    """(n, p, c) -> z-scores along p, and a mask of non-constant columns."""
    mu = a.mean(axis=1, keepdims=True)
    sd = a.std(axis=1, keepdims=True)
    live = sd > _CONSTANT * np.abs(mu)
    z = np.where(live, (a - mu) / np.where(live, sd, 1.0), 0.0)
    return z, live[:, 0, :]


def map_input_correlation(maps: np.ndarray, grey_input: np.ndarray) -> np.ndarray:
    """Per image, the mean over non-constant maps of |Pearson r| between a map and
    the grey input (block-averaged to the maps' size): (n,) float64 in [0, 1], NaN
    for an image whose maps are all constant.

    ``maps``: (n, h, w, c) numbers; ``grey_input``: (n, H, W) numbers with H and W
    multiples of h and w (e.g. ``grey(x)``). Raises InputError for other shapes,
    different image counts, a non-numeric dtype or NaN/inf."""
    fn = "map_input_correlation"
    maps = _maps(maps, fn)
    n, h, w, c = maps.shape
    g = _checked(fn, "grey_input", grey_input, (3,), "(n, H, W) grey images, e.g. grey(x)")
    if len(g) != n:
        raise InputError(
            f"{fn}: maps hold {n} images but grey_input holds {len(g)} grey images (shape {g.shape}); "
            "pass the grey version of the same batch"
        )
    H, W = g.shape[1:]
    if H % h or W % w:
        raise InputError(
            f"{fn}: grey_input images are {(H, W)}, which do not block-average to the {h}x{w} maps; "
            "pass grey(x) of the images the maps came from"
        )
    g = _block_mean(g, h, w).reshape(n, h * w, 1)
    zm, ok = _standardise(maps.reshape(n, h * w, c))
    zg, gok = _standardise(g)
    r = np.abs((zm * zg).mean(axis=1))  # (n, c)
    ok = ok & gok
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ok.any(axis=1), (r * ok).sum(axis=1) / ok.sum(axis=1), np.nan)


def map_redundancy(maps: np.ndarray) -> np.ndarray:
    """Per image, the mean |Pearson r| over all pairs of non-constant maps: (n,)
    float64 in [0, 1], NaN when fewer than two maps are live.

    ``maps``: (n, h, w, c) numbers, c >= 2. Raises InputError otherwise, or for a
    non-numeric dtype or NaN/inf."""
    maps = _maps(maps, "map_redundancy")
    n, h, w, c = maps.shape
    if c < 2:
        raise InputError(
            f"map_redundancy: got {c} feature map per image (shape {maps.shape}); needs at least two feature maps"
        )
    z, ok = _standardise(maps.reshape(n, h * w, c))
    r = np.abs(np.einsum("npc,npd->ncd", z, z) / (h * w))
    iu = np.triu_indices(c, k=1)
    pair_ok = (ok[:, :, None] & ok[:, None, :])[:, iu[0], iu[1]]
    vals = r[:, iu[0], iu[1]]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pair_ok.any(axis=1), (vals * pair_ok).sum(axis=1) / pair_ok.sum(axis=1), np.nan)


def zero_fraction(a: np.ndarray) -> np.ndarray:
    """Per image, the fraction of values that are exactly 0: (n,) float64 in [0, 1].

    ``a``: (n, h, w, c) maps or (n, d) rows of numbers. Raises InputError for
    another rank (one image: ``a[None]``), a non-numeric dtype or NaN/inf."""
    return (_flat(a, "zero_fraction") == 0).mean(axis=1)


def hoyer_sparsity(a: np.ndarray) -> np.ndarray:
    """Per image, Hoyer's sparsity of the absolute values: (n,) float64 in [0, 1]
    (1 for an all-zero image).

    ``a``: (n, h, w, c) maps or (n, d) rows, d >= 2. Raises InputError otherwise,
    or for a non-numeric dtype or NaN/inf."""
    f = np.abs(_flat(a, "hoyer_sparsity"))
    d = f.shape[1]
    if d < 2:
        raise InputError(f"hoyer_sparsity: a got shape {np.shape(a)}; needs at least two values per image")
    l1 = f.sum(axis=1)
    l2 = np.sqrt((f**2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        h = (np.sqrt(d) - l1 / l2) / (np.sqrt(d) - 1)
    return np.clip(np.where(l2 > 0, h, 1.0), 0.0, 1.0)


def _scale_unit(a, fn: str) -> np.ndarray:
    f = _flat(a, fn)
    if (f < 0).any():
        raise InputError(f"{fn}: expects non-negative values (ReLU outputs or pixels); got a minimum of {f.min():.3g}")
    m = f.max(axis=1, keepdims=True)
    return np.divide(f, m, out=np.zeros_like(f), where=m > 0)


def scale_unit(a: np.ndarray) -> np.ndarray:
    """Each image's values divided by its maximum: (n, d) float64 rows in [0, 1]
    (an all-zero image stays zero).

    ``a``: (n, h, w, c) maps or (n, d) rows of non-negative numbers. Raises
    InputError for another rank, negative values, a non-numeric dtype or NaN/inf."""
    return _scale_unit(a, "scale_unit")


def scaled_mean(a: np.ndarray) -> np.ndarray:
    """Per image, the mean of ``scale_unit(a)``: (n,) float64 in [0, 1]; input and
    errors as ``scale_unit``."""
    return _scale_unit(a, "scaled_mean").mean(axis=1)


def scaled_quantile(a: np.ndarray, q: float = 0.95) -> np.ndarray:
    """Per image, the ``q`` quantile of ``scale_unit(a)``: (n,) float64 in [0, 1];
    input and errors as ``scale_unit``, and InputError for q outside [0, 1]."""
    if isinstance(q, bool) or not isinstance(q, numbers.Real) or not 0 <= q <= 1:
        raise InputError(f"scaled_quantile: q={q!r} is not a quantile in [0, 1]")
    return np.quantile(_scale_unit(a, "scaled_quantile"), q, axis=1)


def _histograms(v, bins, fn: str) -> np.ndarray:
    bins = _bins(bins, fn)
    f = _flat(v, fn, "v")
    if f.min() < 0 or f.max() > 1:
        raise InputError(f"{fn}: histogram values must lie in [0, 1], got [{f.min():.3g}, {f.max():.3g}]")
    idx = np.minimum((f * bins).astype(np.int64), bins - 1)
    idx += np.arange(len(f))[:, None] * bins
    return np.bincount(idx.ravel(), minlength=len(f) * bins).reshape(len(f), bins)


def histograms(v: np.ndarray, bins: int = BINS) -> np.ndarray:
    """Counts of values in [0, 1] in ``bins`` equal bins: (n, bins) int64, one row per image.

    ``v``: (n, h, w, c) or (n, d) numbers in [0, 1]; ``bins``: a positive integer.
    Raises InputError for another rank, values outside [0, 1], NaN/inf, a
    non-numeric dtype or bad ``bins``."""
    return _histograms(v, bins, "histograms")


def counts_entropy(counts: np.ndarray) -> np.ndarray:
    """Shannon entropy in bits of each row of histogram counts: (n,) float64.

    ``counts``: (n, bins) non-negative numbers, each row with a positive total.
    Raises InputError otherwise (an all-zero row has no entropy)."""
    c = _counts(counts, "counts_entropy", "counts")
    empty = np.flatnonzero(c.sum(axis=1) == 0)
    if len(empty):
        raise InputError(f"counts_entropy: row {empty[0]} has no counts (all zero); its entropy is undefined")
    return stats.entropy(counts, base=2, axis=-1)


def histogram_entropy(v: np.ndarray, bins: int = BINS) -> np.ndarray:
    """Shannon entropy in bits of each image's histogram: (n,) float64 in
    [0, log2(bins)]; input and errors as ``histograms``."""
    return stats.entropy(_histograms(v, bins, "histogram_entropy"), base=2, axis=-1)


def kl_divergence(p_counts: np.ndarray, q_counts: np.ndarray) -> np.ndarray:
    """KL(p || q) in bits per row, with half a count added to every bin: (n,) float64 >= 0.

    ``p_counts``, ``q_counts``: (n, bins) non-negative counts of the same shape (no
    broadcasting). Raises InputError otherwise, or for a non-numeric dtype or NaN/inf."""
    fn = "kl_divergence"
    p, q = _counts(p_counts, fn, "p_counts"), _counts(q_counts, fn, "q_counts")
    if p.shape != q.shape:
        raise InputError(
            f"{fn}: p_counts has shape {p.shape} but q_counts {q.shape}; expected two (n, bins) arrays "
            "of the same shape, one row per image"
        )
    return stats.entropy(p + 0.5, q + 0.5, base=2, axis=-1)


def skewness(v: np.ndarray) -> np.ndarray:
    """Fisher skewness of each image's values: (n,) float64 (NaN for a constant image).

    ``v``: (n, h, w, c) or (n, d) numbers. Raises InputError for another rank, a
    non-numeric dtype or NaN/inf."""
    f = _flat(v, "skewness", "v")
    with np.errstate(invalid="ignore", divide="ignore"):
        return stats.skew(f, axis=1)


def centre(v: np.ndarray) -> np.ndarray:
    """Median of each image's values: (n,) float64; input and errors as ``skewness``."""
    return np.median(_flat(v, "centre", "v"), axis=1)


def softmax_entropy(p: np.ndarray) -> np.ndarray:
    """Entropy in bits of each softmax row: (n,) float64 in [0, log2(classes)].

    ``p``: (n, classes) non-negative rows summing to 1 (within 1e-3). Raises
    InputError otherwise (one row: ``p[None]``), or for a non-numeric dtype or NaN/inf."""
    p = _checked("softmax_entropy", "p", p, (2,), "softmax rows (n, classes)")
    if (p < 0).any() or not np.allclose(p.sum(axis=1), 1.0, atol=1e-3):
        raise InputError("softmax_entropy: softmax rows must be non-negative and sum to 1")
    return stats.entropy(p, base=2, axis=1)
