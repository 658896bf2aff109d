"""The seeds design calibrated by simulation (fast: a few hundred experiments), and the
null splits of same-size models. The FWER check must fail for an uncorrected pipeline."""

import numpy as np
import pytest

from cnnclaims import calibration as cal
from cnnclaims.article import ARTICLE, PROFILES
from cnnclaims.evidence import ModelEvidence, table_metrics

claims_for = ARTICLE.claims_for
STATS = tuple(table_metrics(ARTICLE))

CLAIMS = claims_for("seeds")
N = PROFILES["article"].n_seeds  # the project's real N, claims and families


def correlated_cov(rho=0.5):
    """Seed-to-seed SDs of 2 SESOIs per claim, with correlated claims (as C3/C4, C8/C9 are)."""
    k = len(CLAIMS)
    sd = np.array([2 * c.sesoi for c in CLAIMS])
    corr = np.full((k, k), rho)
    np.fill_diagonal(corr, 1.0)
    return corr * np.outer(sd, sd)


BASE = np.array([0.5] * len(CLAIMS))


@pytest.fixture(scope="module")
def null_run():
    return cal.calibrate(CLAIMS, N, correlated_cov(), BASE, n_experiments=300, conditions=("null",))


def test_family_wise_rate_is_at_or_below_alpha(null_run):
    assert cal.fwer_exceeds_alpha(null_run) == []
    for tier in ("primary", "secondary"):
        r = null_run["fwer"][tier]
        assert r["n"] == 300 and r["ci"][0] <= 0.05 <= r["ci"][1] or r["ci"][1] < 0.05


def test_the_check_fails_for_an_uncorrected_pipeline():
    res = cal.calibrate(
        CLAIMS,
        N,
        correlated_cov(),
        BASE,
        n_experiments=300,
        conditions=("null",),
        correction="none",
    )
    assert set(cal.fwer_exceeds_alpha(res)) == {"primary", "secondary"}


def test_power_and_negligible_rates():
    res = cal.calibrate(CLAIMS, N, correlated_cov(), BASE, n_experiments=150, conditions=("sesoi", "3sd"))
    assert min(res["power"]["3sd"].values()) > 0.8
    # at a true difference of exactly one SESOI, TOST may call it negligible at most alpha of the time
    for cid, r in res["negligible_at_sesoi"].items():
        if cid != "any":
            assert r["ci"][0] <= 0.05, cid
    text = cal.format_calibration(res)
    assert "power 3sd" in text and "negligible at SESOI" in text


def test_condition_means():
    sd = np.sqrt(np.diag(correlated_cov()))
    mu_b, mu_d = cal.condition_means(CLAIMS, BASE, sd, "2sd")
    for j, c in enumerate(CLAIMS):
        if c.kind == "compare":
            assert mu_b[j] - mu_d[j] == pytest.approx(2 * sd[j] * (1 if c.alternative == "greater" else -1))
        elif c.subject != "both":
            assert mu_d[j] == c.threshold
    with pytest.raises(ValueError, match="unknown condition"):
        cal.condition_means(CLAIMS, BASE, sd, "huge")


def test_pooled_covariance():
    a = np.array([[1.0, 2.0], [3.0, 4.0]])
    b = np.array([[10.0, 0.0], [12.0, 2.0], [14.0, 4.0]])
    # centred cross products: a gives [[2, 2], [2, 2]], b gives [[8, 8], [8, 8]]; dof 1 + 2 = 3
    np.testing.assert_allclose(cal.pooled_covariance(a, b), np.full((2, 2), 10 / 3))
    with pytest.raises(ValueError, match="at least two models"):
        cal.pooled_covariance(a[:1])


def _model(seed, rng):
    stats = {k: rng.random(20) for k in STATS}
    return ModelEvidence("dummy", seed, f"m{seed}", 0.5 + rng.normal(0, 0.01), stats)


def test_null_splits_count_every_balanced_split_once():
    rng = np.random.default_rng(0)
    models = [_model(s, rng) for s in range(8)]
    res = cal.null_splits(models, CLAIMS)
    assert res["splits"] == res["possible_splits"] == 35  # C(7, 3): model 0 fixed in the first group
    assert res["dependent"] and set(res["family"]) == {"primary", "secondary"}
    assert 0 <= res["verdicts"]["rate"] <= 1
    sampled = cal.null_splits(models, CLAIMS, max_splits=10)
    assert sampled["splits"] == 10 and sampled["possible_splits"] == 35
    assert "dependent" in cal.format_null_splits(res)
    with pytest.raises(ValueError, match="at least 4"):
        cal.null_splits(models[:3], CLAIMS)
