"""Properties of the per-image metrics (hypothesis) and closed-form cases."""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from cnnclaims import metrics as m
from cnnclaims.errors import InputError

finite = st.floats(0, 100, allow_nan=False, width=32)
acts = arrays(np.float64, st.tuples(st.integers(1, 4), st.integers(2, 40)), elements=finite)
maps = arrays(np.float64, st.tuples(st.integers(1, 3), st.just(4), st.just(4), st.integers(2, 5)), elements=finite)
unit = arrays(np.float64, st.tuples(st.integers(1, 4), st.integers(1, 60)), elements=st.floats(0, 1, width=32))
SETTINGS = settings(max_examples=60, deadline=None)


@given(acts)
@SETTINGS
def test_zero_fraction_range(a):
    z = m.zero_fraction(a)
    assert z.shape == (len(a),) and ((0 <= z) & (z <= 1)).all()


@given(acts, st.floats(0.01, 1000))
@SETTINGS
def test_hoyer_range_and_scale_invariance(a, c):
    h = m.hoyer_sparsity(a)
    assert ((0 <= h) & (h <= 1)).all()
    np.testing.assert_allclose(m.hoyer_sparsity(a * c), h, atol=1e-9)


def test_hoyer_closed_forms():
    assert m.hoyer_sparsity(np.ones((1, 16)))[0] == pytest.approx(0.0)
    one_hot = np.zeros((1, 16))
    one_hot[0, 3] = 5.0
    assert m.hoyer_sparsity(one_hot)[0] == pytest.approx(1.0)
    assert m.hoyer_sparsity(np.zeros((1, 16)))[0] == 1.0


@given(acts)
@SETTINGS
def test_scale_unit_in_range_and_max_is_one(a):
    s = m.scale_unit(a)
    assert ((0 <= s) & (s <= 1)).all()
    nz = a.reshape(len(a), -1).max(axis=1) > 0
    np.testing.assert_allclose(s.max(axis=1)[nz], 1.0)


@given(unit, st.integers(2, 64))
@SETTINGS
def test_histogram_entropy_bounds(v, bins):
    h = m.histogram_entropy(v, bins)
    assert (h >= -1e-12).all() and (h <= np.log2(bins) + 1e-9).all()
    assert m.histograms(v, bins).sum(axis=1).tolist() == [v.shape[1]] * len(v)


def test_entropy_closed_forms():
    assert m.histogram_entropy(np.zeros((1, 50)))[0] == pytest.approx(0.0)
    uniform = (np.arange(32) + 0.5) / 32
    assert m.histogram_entropy(uniform[None])[0] == pytest.approx(5.0)


@given(arrays(np.int64, (2, 16), elements=st.integers(0, 50)))
@SETTINGS
def test_kl_non_negative_and_zero_on_self(c):
    assert (m.kl_divergence(c[:1], c[1:]) >= -1e-12).all()
    assert m.kl_divergence(c[:1], c[:1]) == pytest.approx(0.0, abs=1e-12)


@given(maps)
@SETTINGS
def test_correlations_in_unit_interval(x):
    g = x[..., 0]
    for r in (m.map_input_correlation(x, g), m.map_redundancy(x)):
        r = r[np.isfinite(r)]
        assert ((0 <= r) & (r <= 1 + 1e-9)).all()


@given(maps, st.floats(0.1, 100))
@SETTINGS
def test_correlations_scale_invariant(x, c):
    g = x.mean(axis=-1)
    np.testing.assert_allclose(m.map_redundancy(x * c), m.map_redundancy(x), atol=1e-7)
    np.testing.assert_allclose(m.map_input_correlation(x * c, g), m.map_input_correlation(x, g), atol=1e-7)


def test_correlation_closed_forms():
    rng = np.random.default_rng(0)
    g = rng.random((1, 8, 8))
    same = np.repeat(g[..., None], 4, axis=-1) * np.array([1, 2, 3, 4])
    assert m.map_input_correlation(same, g)[0] == pytest.approx(1.0)
    assert m.map_redundancy(same)[0] == pytest.approx(1.0)
    neg = np.stack([g[0], 1 - g[0]], axis=-1)[None]
    assert m.map_redundancy(neg)[0] == pytest.approx(1.0)  # |r|: anti-correlated maps are redundant too


def test_dead_maps_are_left_out():
    rng = np.random.default_rng(1)
    g = rng.random((1, 8, 8))
    x = np.zeros((1, 8, 8, 3))
    x[..., 0] = g[0]
    assert m.map_input_correlation(x, g)[0] == pytest.approx(1.0)
    assert np.isnan(m.map_input_correlation(np.zeros((1, 8, 8, 3)), g)[0])
    assert np.isnan(m.map_redundancy(x)[0])  # one live map: no pair to compare


def test_input_correlation_block_averages_smaller_maps():
    g = np.kron(np.arange(16.0).reshape(1, 4, 4), np.ones((2, 2)))  # 8x8 made of 2x2 blocks
    x = np.arange(16.0).reshape(1, 4, 4, 1).repeat(2, axis=-1)
    assert m.map_input_correlation(x, g)[0] == pytest.approx(1.0)


def test_softmax_entropy():
    assert m.softmax_entropy(np.full((1, 10), 0.1))[0] == pytest.approx(np.log2(10))
    assert m.softmax_entropy(np.eye(10)[[3]])[0] == pytest.approx(0.0)
    with pytest.raises(ValueError, match="sum to 1"):
        m.softmax_entropy(np.ones((1, 10)))


def test_skew_and_centre():
    sym = np.concatenate([np.linspace(0.2, 0.6, 51)])[None]
    assert m.skewness(sym)[0] == pytest.approx(0.0, abs=1e-9)
    assert m.centre(sym)[0] == pytest.approx(0.4)
    right = np.array([[0.0] * 20 + [1.0] * 2])
    assert m.skewness(right)[0] > 1


@pytest.mark.parametrize("bad", [np.zeros(5), np.zeros((2, 3, 4))])
def test_shape_errors(bad):
    with pytest.raises(ValueError):
        m.map_redundancy(bad) if bad.ndim != 1 else m.zero_fraction(bad)


def test_histogram_rejects_out_of_range():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        m.histograms(np.array([[0.5, 1.5]]))


@given(acts)
@SETTINGS
def test_scaled_summaries(a):
    assume(a.max() > 0)
    mean, p95 = m.scaled_mean(a), m.scaled_quantile(a, 0.95)
    assert ((0 <= mean) & (mean <= 1)).all() and ((0 <= p95) & (p95 <= 1)).all()


@given(unit)
@SETTINGS
def test_skewness_flips_under_reflection_and_centre_in_range(v):
    assume(np.all(v.std(axis=1) > 1e-3))
    np.testing.assert_allclose(m.skewness(1 - v), -m.skewness(v), atol=1e-6)
    c = m.centre(v)
    assert (c >= v.min(axis=1)).all() and (c <= v.max(axis=1)).all()


@given(unit, st.floats(0.1, 10), st.floats(-5, 5))
@SETTINGS
def test_skewness_location_scale_invariant(v, a, b):
    assume(np.all(v.std(axis=1) > 1e-3))
    np.testing.assert_allclose(m.skewness(a * v + b), m.skewness(v), atol=1e-6)


@given(arrays(np.float64, st.tuples(st.integers(1, 5), st.just(10)), elements=st.floats(0.001, 1)))
@SETTINGS
def test_softmax_entropy_bounds(x):
    p = x / x.sum(axis=1, keepdims=True)
    h = m.softmax_entropy(p)
    assert (h >= -1e-12).all() and (h <= np.log2(10) + 1e-9).all()


# --- every public metric checks what it is given ---------------------------------
# Each entry: the metric called on its arrays, and valid arrays (batch axis first).
_RNG = np.random.default_rng(7)
_MAPS = _RNG.random((3, 4, 4, 5))
_ROWS = _RNG.random((3, 20))
_COUNTS = _RNG.integers(1, 9, (3, 32))
_PROBS = _RNG.random((3, 10))
_PROBS /= _PROBS.sum(axis=1, keepdims=True)
METRICS = {
    "grey": (m.grey, (_RNG.random((3, 8, 8, 3)),)),
    "map_input_correlation": (m.map_input_correlation, (_MAPS, _RNG.random((3, 8, 8)))),
    "map_redundancy": (m.map_redundancy, (_MAPS,)),
    "zero_fraction": (m.zero_fraction, (_MAPS,)),
    "hoyer_sparsity": (m.hoyer_sparsity, (_MAPS,)),
    "scale_unit": (m.scale_unit, (_MAPS,)),
    "scaled_mean": (m.scaled_mean, (_MAPS,)),
    "scaled_quantile": (m.scaled_quantile, (_MAPS,)),
    "histograms": (m.histograms, (_MAPS,)),
    "histogram_entropy": (m.histogram_entropy, (_MAPS,)),
    "counts_entropy": (m.counts_entropy, (_COUNTS,)),
    "kl_divergence": (m.kl_divergence, (_COUNTS, _COUNTS[::-1])),
    "skewness": (m.skewness, (_MAPS,)),
    "centre": (m.centre, (_MAPS,)),
    "softmax_entropy": (m.softmax_entropy, (_PROBS,)),
}
# Metrics that also take flattened (n, d) rows, as scale_unit returns them.
ROW_METRICS = [
    "zero_fraction",
    "hoyer_sparsity",
    "scale_unit",
    "scaled_mean",
    "scaled_quantile",
    "histograms",
    "histogram_entropy",
    "skewness",
    "centre",
]
CASES = [(name, i) for name, (_, arrays) in METRICS.items() for i in range(len(arrays))]


def _call(name, arrays):
    return METRICS[name][0](*arrays)


def test_every_public_metric_is_covered():
    public = {
        n
        for n, f in vars(m).items()
        if callable(f) and not n.startswith("_") and getattr(f, "__module__", "") == m.__name__
    }
    assert public == set(METRICS)


@pytest.mark.parametrize("name", METRICS)
def test_valid_batch_gives_one_result_per_image(name):
    out = _call(name, METRICS[name][1])
    assert len(out) == 3


@pytest.mark.parametrize("name,arg", CASES)
def test_one_image_without_batch_axis_is_refused(name, arg):
    """(8, 8, 16) into zero_fraction used to give 8 numbers, one per row."""
    arrays = list(METRICS[name][1])
    arrays[arg] = arrays[arg][0]
    with pytest.raises(InputError, match=rf"{name}: .*got shape \({arrays[arg].shape[0]},.*\[None\]"):
        _call(name, arrays)


def test_the_reported_case_last_layer_map_of_one_image():
    one = np.abs(np.random.default_rng(0).normal(size=(8, 8, 16)))
    for f in (m.zero_fraction, m.scaled_mean):
        with pytest.raises(InputError, match=r"got shape \(8, 8, 16\).*\(n, h, w, c\).*x\[None\]"):
            f(one)
    assert m.zero_fraction(one[None]).shape == (1,)


@pytest.mark.parametrize("name", ROW_METRICS)
@given(rank=st.sampled_from([1, 3, 5]))
@settings(max_examples=6, deadline=None)
def test_per_image_metrics_take_rows_or_maps_only(name, rank):
    rng = np.random.default_rng(rank)
    assert len(_call(name, (rng.random((2, 6)),))) == 2  # (n, d) rows
    assert len(_call(name, (rng.random((2, 2, 3, 1)),))) == 2  # (n, h, w, c) maps
    with pytest.raises(InputError, match=rf"{name}: .*expected .*\(n, h, w, c\).*\(n, d\)"):
        _call(name, (rng.random((2,) * rank),))


@pytest.mark.parametrize("name", ["grey", "map_input_correlation", "map_redundancy"])
@pytest.mark.parametrize("shape", [(3, 20), (3, 4, 4, 5, 1)])
def test_map_metrics_take_four_axes_only(name, shape):
    arrays = list(METRICS[name][1])
    arrays[0] = np.ones(shape)
    with pytest.raises(InputError, match=rf"{name}: .*got shape .*expected .*\(n, h, w, "):
        _call(name, arrays)


@pytest.mark.parametrize("name,arg", CASES)
@pytest.mark.parametrize("dtype", [bool, complex, object, str])
def test_non_numeric_dtype_is_refused(name, arg, dtype):
    arrays = list(METRICS[name][1])
    arrays[arg] = arrays[arg].astype(dtype)
    with pytest.raises(InputError, match=rf"{name}: .*dtype"):
        _call(name, arrays)


@pytest.mark.parametrize("name,arg", CASES)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_are_refused(name, arg, bad):
    """A NaN used to pass the [0, 1] check of histograms and land in a wrong bin."""
    arrays = list(METRICS[name][1])
    arrays[arg] = arrays[arg].astype(np.float64)
    arrays[arg].flat[5] = bad
    with pytest.raises(InputError, match=rf"{name}: .*(NaN|inf)"):
        _call(name, arrays)


@pytest.mark.parametrize("name", ["zero_fraction", "histograms", "counts_entropy", "softmax_entropy", "kl_divergence"])
@pytest.mark.parametrize("shape", [(0, 10), (3, 0)])
def test_empty_batch_or_image_is_refused(name, shape):
    arrays = [np.zeros(shape) for _ in METRICS[name][1]]
    with pytest.raises(InputError, match=rf"{name}: .*empty"):
        _call(name, arrays)


def test_paired_inputs_must_match():
    with pytest.raises(InputError, match=r"map_input_correlation: .*3 images.*2 grey"):
        m.map_input_correlation(_MAPS, _RNG.random((2, 8, 8)))
    with pytest.raises(InputError, match=r"map_input_correlation: .*\(6, 6\).*4x4"):
        m.map_input_correlation(_MAPS, _RNG.random((3, 6, 6)))
    with pytest.raises(InputError, match=r"kl_divergence: .*\(3, 32\).*\(3, 16\)"):
        m.kl_divergence(_COUNTS, _COUNTS[:, :16])
    with pytest.raises(InputError, match=r"kl_divergence: .*\(3, 32\).*\(1, 32\)"):
        m.kl_divergence(_COUNTS, _COUNTS[:1])  # no silent broadcasting of one row


def test_channel_counts():
    with pytest.raises(InputError, match=r"grey: .*4 channels.*RGB"):
        m.grey(np.zeros((2, 8, 8, 4)))
    with pytest.raises(InputError, match=r"map_redundancy: .*at least two feature maps"):
        m.map_redundancy(np.zeros((2, 4, 4, 1)))
    with pytest.raises(InputError, match=r"hoyer_sparsity: .*at least two values"):
        m.hoyer_sparsity(np.zeros((2, 1)))


def test_value_ranges():
    with pytest.raises(InputError, match=r"scale_unit: .*non-negative"):
        m.scale_unit(-_MAPS)
    with pytest.raises(InputError, match=r"counts_entropy: .*non-negative"):
        m.counts_entropy(-_COUNTS)
    with pytest.raises(InputError, match=r"counts_entropy: .*row 1 .*no counts"):
        m.counts_entropy(np.array([[1, 2], [0, 0]]))
    with pytest.raises(InputError, match=r"kl_divergence: .*non-negative"):
        m.kl_divergence(_COUNTS, -_COUNTS)
    with pytest.raises(InputError, match=r"softmax_entropy: .*sum to 1"):
        m.softmax_entropy(np.ones((1, 10)))


@pytest.mark.parametrize("bins", [0, -3, 2.5, True, "32"])
def test_bins_must_be_a_positive_integer(bins):
    for f in (m.histograms, m.histogram_entropy):
        with pytest.raises(InputError, match=rf"{f.__name__}: bins="):
            f(_ROWS, bins)


@pytest.mark.parametrize("q", [-0.1, 1.5, np.nan])
def test_quantile_must_lie_in_unit_interval(q):
    with pytest.raises(InputError, match=r"scaled_quantile: q="):
        m.scaled_quantile(_MAPS, q)
