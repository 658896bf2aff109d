"""The verdicts calibrated by simulation in every inferential scope (fast: small
designs, a few hundred experiments), what counts as a wrong verdict, and the null
splits of same-size models. The check must fail for the two-family pipeline."""

import numpy as np
import pytest

from cnnclaims import calibration as cal
from cnnclaims.article import ARTICLE, PROFILES
from cnnclaims.errors import UnknownNameError
from cnnclaims.evidence import ModelEvidence, table_metrics

claims_for = ARTICLE.claims_for
STATS = tuple(table_metrics(ARTICLE))

CLAIMS = claims_for("seeds")
N = PROFILES["article"].n_seeds  # the project's real N, claims and families
BASE = np.array([0.5] * len(CLAIMS))


def correlated_cov(claims=CLAIMS, rho=0.5, sd_per_sesoi=2.0):
    """Seed-to-seed SDs of ``sd_per_sesoi`` SESOIs per claim, correlated claims (as C3/C4, C8/C9 are)."""
    k = len(claims)
    sd = np.array([sd_per_sesoi * c.sesoi for c in claims])
    corr = np.full((k, k), rho)
    np.fill_diagonal(corr, 1.0)
    return corr * np.outer(sd, sd)


# --- what a verdict gets wrong ---------------------------------------------------------

S, N0 = 1.0, 0.0  # a SESOI of 1; a truth of 0
WRONG = [
    # label, truth, claimed sign, wrong?  (SESOI 1)
    ("supported", N0, 1, True),  # rejects 0 where nothing differs
    ("refuted", N0, 1, True),
    ("supported-but-negligible", N0, 1, True),
    ("refuted-but-negligible", N0, -1, True),
    ("negligible", N0, 1, False),
    ("underpowered", N0, 1, False),
    ("supported", 2.0, 1, False),
    ("supported", -2.0, 1, True),  # the claimed direction, against the truth
    ("refuted", -2.0, 1, False),  # refuted: the opposite of the claim, which is the truth
    ("refuted", 2.0, 1, True),
    ("supported", -2.0, -1, False),  # claimed "less"
    ("supported", 2.0, -1, True),
    ("supported", 0.5, 1, False),  # not 0, inside the SESOI: "not zero" holds
    ("negligible", 0.5, 1, False),
    ("negligible", 0.999, -1, False),
    ("negligible", 1.0, 1, True),  # at the SESOI: "|d| >= SESOI" is true
    ("negligible", -1.0, 1, True),
    ("negligible", 2.0, 1, True),
    ("supported-but-negligible", 0.5, 1, False),
    ("supported-but-negligible", 1.0, 1, True),  # equivalence wrong at the SESOI
    ("supported-but-negligible", -0.5, 1, True),  # direction wrong
    ("refuted-but-negligible", -0.5, 1, False),
    ("refuted-but-negligible", -3.0, 1, True),
    ("underpowered", 5.0, 1, False),
    ("underpowered", -5.0, -1, False),
]


@pytest.mark.parametrize("label,truth,sign,expected", WRONG)
def test_wrong(label, truth, sign, expected):
    assert cal.wrong(label, truth, S, sign) is expected


CORRECT = [
    ("supported", 2.0, 1, True),
    ("supported", 0.5, 1, True),
    ("refuted", -2.0, 1, True),
    ("supported-but-negligible", 0.5, 1, True),  # inside the SESOI both facts hold
    ("supported-but-negligible", 2.0, 1, False),  # beyond it, the negligible half is wrong
    ("supported", -2.0, 1, False),
    ("supported", N0, 1, False),
    ("negligible", 2.0, 1, False),
    ("underpowered", 2.0, 1, False),
]


@pytest.mark.parametrize("label,truth,sign,expected", CORRECT)
def test_correct_direction(label, truth, sign, expected):
    assert cal.correct_direction(label, truth, S, sign) is expected


@pytest.mark.parametrize(
    "args,error,match",
    [
        (("inconclusive", 0.0, 1.0, 1), UnknownNameError, "unknown inferential verdict label 'inconclusive'"),
        (("supported", float("nan"), 1.0, 1), ValueError, "true difference must be a finite number"),
        (("supported", 0.0, 0.0, 1), ValueError, "SESOI must be a positive number"),
        (("supported", 0.0, 1.0, 0), ValueError, "claimed_sign must be"),
    ],
)
def test_wrong_refuses_bad_input(args, error, match):
    with pytest.raises(error, match=match):
        cal.wrong(*args)


# --- the conditions ------------------------------------------------------------------


def test_assignment():
    assert cal.assignment("null", 3) == [(0.0, "sesoi")] * 3
    assert cal.assignment("partial", 4) == [(4.0, "sd")] * 3 + [(0.0, "sesoi")]
    assert cal.assignment("partial", 1) == [(0.0, "sesoi")]
    assert [k for k, _ in cal.assignment("mixed", 5)] == [0, 1, 2, 0, 1]
    assert [k for k, _ in cal.assignment("edge", 4)] == [0, 1, 0, 1]
    assert cal.assignment("2sd", 2) == [(2.0, "sd")] * 2
    with pytest.raises(UnknownNameError, match="unknown condition 'huge'"):
        cal.assignment("huge", 2)


def test_truths_follow_the_families_and_the_claimed_direction():
    sim = cal.seeds_simulator(CLAIMS, N, correlated_cov(), BASE)
    truth, said = sim.truths("mixed")
    primary = [c for c in CLAIMS if c.tier == "primary"]  # C3, C5, C8, C10: 0, 1, 2, 0 SESOI
    assert [said[c.id] for c in primary] == ["0", "1 x SESOI", "2 x SESOI", "0"]
    j = [c.id for c in CLAIMS].index("C5")  # "less": the truth points down
    assert truth[j] == -CLAIMS[j].sesoi
    truth, said = sim.truths("partial")
    assert said["C10"] == "0" and said["C3"] == "4 SD" and truth[[c.id for c in CLAIMS].index("C3")] == 4 * sim.sd[2]


def test_seeds_means_put_each_tested_difference_at_the_truth():
    sd = np.sqrt(np.diag(correlated_cov()))
    truth = np.linspace(-0.05, 0.05, len(CLAIMS))
    mu_a, mu_b = cal.seeds_means(CLAIMS, BASE, sd, truth)
    for j, c in enumerate(CLAIMS):
        if c.kind == "compare":
            assert mu_a[j] - mu_b[j] == pytest.approx(truth[j])
        elif c.subject == "both":  # C7b: the mean of the smaller of two independent normals
            assert mu_a[j] == mu_b[j] == pytest.approx(c.threshold + truth[j] + sd[j] / np.sqrt(np.pi))
        else:
            assert mu_a[j] == pytest.approx(c.threshold + truth[j])


# --- the check -------------------------------------------------------------------------

# A small, powerful two-claim family (C3, C5: 20 models per condition, SD a quarter of
# the SESOI), with C3 at 0 and C5 at its SESOI ("edge"): both kinds of true null sit
# at their boundary, so two separate Holm families each spend alpha on them.
PAIR = [c for c in CLAIMS if c.id in ("C3", "C5")]


def edge_run(correction):
    cov = np.diag([(c.sesoi / 4) ** 2 for c in PAIR])
    return cal.calibrate_seeds(
        PAIR, 20, cov, np.array([0.5, 0.5]), n_experiments=300, conditions=("edge",), correction=correction
    )


def test_the_check_fails_for_the_two_family_pipeline():
    res = edge_run("holm-per-family")
    assert cal.exceeds_alpha(res) == ["seeds/primary/edge"]
    r = res["scopes"]["seeds"]["conditions"]["edge"]
    # both kinds of error happen, each about alpha of the time: together about 2 alpha
    assert r["wrong_zero"]["primary"]["rate"] > 0.03 and r["wrong_negligible"]["primary"]["rate"] > 0.03
    assert "check FAILED" in cal.format_calibration(res) and "seeds/primary/edge" in cal.format_calibration(res)


def test_the_step_down_passes_the_same_check():
    res = edge_run("step-down")
    assert cal.exceeds_alpha(res) == []
    r = res["scopes"]["seeds"]["conditions"]["edge"]
    assert r["any_wrong"]["primary"]["ci"][0] <= 0.05 and r["power"]["C5"] > 0.9
    assert "check passed" in cal.format_calibration(res)


def test_seeds_scope_at_the_real_n():
    res = cal.calibrate_seeds(CLAIMS, N, correlated_cov(), BASE, n_experiments=30, conditions=("null", "2sd"))
    seeds = res["scopes"]["seeds"]
    assert res["n_experiments"] == 30 and seeds["n"] == N and set(seeds["conditions"]) == {"null", "2sd"}
    null = seeds["conditions"]["null"]
    assert set(null["any_wrong"]) == {"primary", "secondary", "all"} and null["power"] == {}
    assert null["wrong_negligible"]["all"]["count"] == 0  # nothing is at or beyond the SESOI
    assert min(seeds["conditions"]["2sd"]["power"].values()) > 0.3
    text = cal.format_calibration(res)
    assert "any wrong verdict" in text and "2sd" in text and "2 SD" in text


def test_calibrate_refuses_unknown_names_before_simulating():
    sim = cal.seeds_simulator(PAIR, 4, np.eye(2), np.zeros(2))
    with pytest.raises(UnknownNameError, match="unknown correction 'bonferroni'"):
        cal.calibrate([sim], 10, correction="bonferroni")
    with pytest.raises(UnknownNameError, match="unknown condition"):
        cal.calibrate([sim], 10, conditions=("null", "typo"))
    with pytest.raises(ValueError, match="n_experiments must be at least 1"):
        cal.calibrate([sim], 0)
    with pytest.raises(ValueError, match="at least 2 models per condition"):
        cal.seeds_simulator(PAIR, 1, np.eye(2), np.zeros(2))


# --- the images scope: real per-image numbers, resampled together -----------------------

IMAGE_CLAIMS = [c for c in claims_for("images") if c.id in ("C3", "C4", "C8")]  # compare, threshold, compare


def image_numbers(n=60, seed=0):
    rng = np.random.default_rng(seed)
    shared = rng.normal(0, 1, n)
    a3, b3 = rng.random(n), rng.random(n)
    return {
        "C3": (b3 + 0.03 + 0.05 * shared, b3),
        "C4": (0.7 + 0.05 * shared + 0.02 * rng.normal(0, 1, n), None),  # threshold 0.5
        "C8": (a3, a3 - 0.01 - 0.05 * shared),
    }


def test_images_resampling_centres_each_claim_on_its_truth():
    numbers = image_numbers()
    sim = cal.images_simulator(IMAGE_CLAIMS, numbers, "frogs")
    assert sim.n == 60 and sim.kind == "images" and sim.correlation.shape == (3, 3)
    assert sim.correlation[0, 2] > 0.5  # the shared component: the images' own correlation
    truth = np.array([0.02, -0.01, 0.0])
    rng = np.random.default_rng(1)
    means = []
    for _ in range(400):
        x = sim.sample(truth, rng)
        means.append([np.mean(x["C3"][0] - x["C3"][1]), np.mean(x["C4"][0]) - 0.5, np.mean(x["C8"][0] - x["C8"][1])])
        assert x["C4"][1] is None and len(x["C3"][0]) == 60
    # the bootstrap mean of each claim's tested difference is the truth (SE ~ 0.05 / sqrt(60 * 400))
    np.testing.assert_allclose(np.mean(means, axis=0), truth, atol=0.002)


def test_images_claims_are_resampled_together():
    """Two claims with the same per-image differences get the same label in every
    experiment: one set of images per experiment, as the real pair of models has."""
    rng = np.random.default_rng(2)
    d = rng.normal(0, 0.05, 40)  # SD 2.5 SESOIs over 40 images: negligible about half the time
    b = rng.random(40)
    both = [c for c in claims_for("images") if c.id in ("C3", "C8")]
    sim = cal.images_simulator(both, {"C3": (b + d, b), "C8": (b + d, b)})
    labels = [sim.draw(np.zeros(2), rng) for _ in range(30)]
    assert len({lab["C3"] for lab in labels}) > 1  # the labels do vary ...
    assert all(lab["C3"] == lab["C8"] for lab in labels)  # ... together


def test_images_simulator_refuses_mismatched_images():
    numbers = image_numbers()
    numbers["C4"] = (numbers["C4"][0][:10], None)
    with pytest.raises(ValueError, match="every claim needs the same images"):
        cal.images_simulator(IMAGE_CLAIMS, numbers)
    numbers = image_numbers()
    numbers["C3"] = (np.full(60, np.nan), numbers["C3"][1])
    with pytest.raises(ValueError, match="C3 have fewer than 2 defined"):
        cal.images_simulator(IMAGE_CLAIMS, numbers)


# --- the sizes scope: per-seed slopes, shrunk correlation ------------------------------


def test_shrunk_correlation_two_variables_by_hand():
    x = np.array([[1.0, 2.0], [2.0, 1.0], [3.0, 4.0], [4.0, 3.5]])
    n = len(x)
    z = (x - x.mean(axis=0)) / x.std(axis=0, ddof=1)
    w = z[:, 0] * z[:, 1]
    r = n / (n - 1) * w.mean()
    var_r = n / (n - 1) ** 3 * ((w - w.mean()) ** 2).sum()
    lam = min(1.0, var_r / r**2)
    got, got_lam = cal.shrunk_correlation(x)
    assert r == pytest.approx(np.corrcoef(x.T)[0, 1])
    assert got_lam == pytest.approx(lam) and got[0, 1] == pytest.approx((1 - lam) * r)
    assert got[0, 0] == got[1, 1] == 1.0


def test_shrunk_correlation_keeps_a_well_estimated_correlation_and_shrinks_a_poor_one():
    rng = np.random.default_rng(3)
    corr = np.array([[1.0, 0.8, 0.0], [0.8, 1.0, 0.0], [0.0, 0.0, 1.0]])
    many = rng.multivariate_normal(np.zeros(3), corr, size=2000)
    got, lam = cal.shrunk_correlation(many)
    assert lam < 0.05 and got[0, 1] == pytest.approx(0.8, abs=0.05)
    few = rng.multivariate_normal(np.zeros(9), np.eye(9), size=4)  # 4 seeds, 9 claims: rank 3
    got, lam = cal.shrunk_correlation(few)
    assert lam > 0.3 and np.linalg.eigvalsh(got).min() > 0  # positive definite again
    with pytest.raises(ValueError, match="n >= 3 observations"):
        cal.shrunk_correlation(few[:2])


SIZE_CLAIMS = claims_for("sizes")


def test_sizes_simulator_draws_slopes_per_seed_through_the_slope_t():
    rng = np.random.default_rng(4)
    k = len(SIZE_CLAIMS)
    slopes = rng.normal(0, 0.01, (4, k))
    margins = np.array([c.sesoi / np.log10(5) for c in SIZE_CLAIMS])
    sim = cal.sizes_simulator(SIZE_CLAIMS, slopes, margins, size_sign=1)
    assert sim.n == 4 and 0 <= sim.notes["shrinkage"] <= 1
    truth, said = sim.truths("edge")
    x = sim.sample(truth, rng)
    assert set(x) == {c.id for c in SIZE_CLAIMS} and all(v.shape == (4,) for v in x.values())
    # every claim's truth points its claimed way along the sweep (C1 "less": falls with size)
    assert np.all(np.sign(truth[truth != 0]) == sim.sign[truth != 0]) and sim.sign[0] == -1
    res = cal.calibrate([sim], 20, conditions=("null",))
    assert res["scopes"]["sizes"]["shrinkage"] == sim.notes["shrinkage"]
    with pytest.raises(ValueError, match="slopes \\(seeds, k\\)"):
        cal.sizes_simulator(SIZE_CLAIMS, slopes[:, :2], margins)


# --- null splits and the pooled covariance ----------------------------------------------


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


def test_a_stored_result_reads_in_the_order_it_ran():
    """The result store's JSON sorts a dict's keys: the text and the check follow the
    conditions as they ran and the families primary first, not the alphabet."""
    import json

    res = cal.calibrate_seeds(PAIR, 4, np.diag([1e-4, 1e-4]), np.full(2, 0.5), 4, ("null", "partial", "edge"))
    stored = json.loads(json.dumps(res, sort_keys=True))
    assert list(stored["scopes"]["seeds"]["conditions"]) == ["edge", "null", "partial"]
    assert cal.format_calibration(stored) == cal.format_calibration(res)
    rows = [line.split()[:2] for line in cal.format_calibration(stored).splitlines() if line.startswith("  null")]
    assert rows == [["null", "primary"], ["null", "all"]]


def test_a_conditions_experiments_do_not_depend_on_what_else_runs():
    sim = cal.seeds_simulator(PAIR, 6, np.diag([1e-4, 1e-4]), np.full(2, 0.5))
    alone = cal.calibrate([sim], 20, ("edge",))["scopes"]["seeds"]["conditions"]["edge"]
    after = cal.calibrate([sim], 20, ("null", "edge"))["scopes"]["seeds"]["conditions"]["edge"]
    assert alone == after
    other_seed = cal.calibrate([sim], 20, ("edge",), seed=1)["scopes"]["seeds"]["conditions"]["edge"]
    assert other_seed["rates"] != alone["rates"]
