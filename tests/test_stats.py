"""Statistical tests, Holm's correction, and the seeds design's power."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnclaims import stats
from cnnclaims.profiles import PROFILES


def test_holm_known_values():
    p = [0.01, 0.04, 0.03, 0.005]
    np.testing.assert_allclose(stats.holm(p), [0.03, 0.06, 0.06, 0.02])


@given(st.lists(st.floats(0, 1), min_size=1, max_size=20))
@settings(max_examples=50, deadline=None)
def test_holm_properties(p):
    adj = stats.holm(p)
    assert (adj >= np.asarray(p) - 1e-12).all() and (adj <= 1).all()
    order = np.argsort(p, kind="stable")
    assert (np.diff(adj[order]) >= -1e-12).all()


def test_holm_skips_nan():
    adj = stats.holm([np.nan, 0.01, 0.02])
    assert np.isnan(adj[0]) and adj[1] == pytest.approx(0.02)


def test_wilcoxon_direction():
    rng = np.random.default_rng(0)
    a = rng.normal(0, 1, 200)
    b = a - 0.5 + rng.normal(0, 0.1, 200)
    r = stats.wilcoxon_paired(a, b, "greater")
    assert r.p_value < 1e-10 and r.p_opposite > 0.99
    assert r.effect == pytest.approx(1.0, abs=0.05) and r.ci_low <= r.effect <= r.ci_high
    assert stats.wilcoxon_paired(a, b, "less").p_value > 0.99


def test_wilcoxon_null_is_not_significant():
    rng = np.random.default_rng(1)
    r = stats.wilcoxon_paired(rng.normal(size=300), rng.normal(size=300), "greater")
    assert 0.05 < r.p_value < 0.95 and r.ci_low < 0 < r.ci_high


def test_wilcoxon_all_ties():
    r = stats.wilcoxon_paired(np.ones(10), np.ones(10), "greater")
    assert r.p_value == 1.0 and r.effect == 0.0


def test_rank_biserial_closed_forms():
    assert stats.rank_biserial(np.array([1.0, 2.0, 3.0])) == pytest.approx(1.0)
    assert stats.rank_biserial(np.array([-1.0, -2.0])) == pytest.approx(-1.0)
    assert stats.rank_biserial(np.array([1.0, -1.0])) == pytest.approx(0.0)


def test_welch_and_ci():
    a = np.array([0.70, 0.71, 0.69, 0.705, 0.695])
    b = np.array([0.55, 0.56, 0.54, 0.555, 0.545])
    r = stats.welch(a, b, "greater")
    assert r.p_value < 1e-6 and r.ci_low < 0.15 < r.ci_high and r.extra["hedges_g"] > 5
    assert stats.welch(a, b, "less").p_opposite < 1e-6


def test_welch_zero_variance_is_no_evidence():
    r = stats.welch(np.ones(3), np.ones(3), "greater")
    assert r.p_value == 1.0 and r.p_opposite == 1.0


def test_one_sample_tests():
    assert stats.t_one_sample([0.6, 0.62, 0.61, 0.63, 0.6], 0.5, "greater").p_value < 1e-4
    assert stats.wilcoxon_one_sample(np.linspace(0.55, 0.7, 50), 0.5, "greater").p_value < 1e-8


def test_descriptive_has_no_p_value():
    r = stats.descriptive(0.3, 0.2)
    assert np.isnan(r.p_value) and r.effect == pytest.approx(0.1) and r.n == 1


def test_bad_alternative():
    with pytest.raises(ValueError, match="alternative"):
        stats.welch([1, 2], [3, 4], "two-sided")


def test_three_vs_three_permutation_design_could_never_pass():
    # The warning: the exact test's floor is 1/20 = 0.05.
    assert stats.min_p_exact_permutation(3, 3) == pytest.approx(0.05)


def test_seeds_design_can_detect_a_large_consistent_effect():
    """With the article profile's N, a 3-SD effect survives Holm across the catalog."""
    n = PROFILES["article"].n_seeds
    alpha_first_holm_step = 0.05 / 13
    power = stats.welch_power(3.0, n, alpha_first_holm_step, n_sims=4000)
    assert power > 0.5, power
    assert stats.welch_power(0.0, n, 0.05, n_sims=4000) < 0.07  # size of the test
