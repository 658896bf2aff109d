"""The decision core: four verdicts on evidence whose truth we know, families and Holm,
what would decide an underpowered verdict, undefined statistics, immutability."""

import dataclasses

import numpy as np
import pytest

from cnnclaims import stats as st
from cnnclaims.article import ARTICLE, FROG

CATALOG = ARTICLE.claims
claims_for = ARTICLE.claims_for
get_claim = ARTICLE.claim
from cnnclaims.errors import UnknownNameError
from cnnclaims.evidence import Evidence, ModelEvidence, table_metrics

STATS = tuple(table_metrics(ARTICLE))
from cnnclaims.verdicts import (
    CHECKS,
    EQUIVALENT,
    FALSE_POSITIVES,
    INCONCLUSIVE,
    NEGLIGIBLE,
    REFUTED,
    REFUTED_NEGLIGIBLE,
    SUPPORTED,
    SUPPORTED_NEGLIGIBLE,
    UNDERPOWERED,
    Measured,
    claim_numbers,
    decide_family,
    design_min_p,
    evaluate,
    evaluate_catalog,
    evaluate_numbers,
    false_positive_rate,
    families,
    measure_seeds,
    unreachable_by_design,
)

N_IMAGES = 200


def model_ev(role, seed, shift=0.0, stat="c6_zero_fraction", noise=0.02, seed_sd=0.0):
    rng = np.random.default_rng(seed + (100 if role == "benchmark" else 0))
    stats = {k: rng.random(N_IMAGES) for k in STATS}
    base = np.random.default_rng(99).random(N_IMAGES)  # shared per-image component
    stats[stat] = base + shift + rng.normal(0, seed_sd) + rng.normal(0, noise, N_IMAGES)
    stats["argmax"] = np.full(N_IMAGES, float(FROG if role == "benchmark" else 3))
    return ModelEvidence(role, seed, f"{role}{seed}", 0.6 + shift / 10 + rng.normal(0, 0.001), stats)


def evidence(shift, stat="c6_zero_fraction", n_seeds=5, noise=0.02, seed_sd=0.0):
    return Evidence(
        {
            "benchmark": [model_ev("benchmark", s, shift, stat, noise, seed_sd) for s in range(n_seeds)],
            "dummy": [model_ev("dummy", s, 0.0, stat, noise, seed_sd) for s in range(n_seeds)],
        },
        0,
        N_IMAGES,
        "article",
        "",
        "benchmark",
        "dummy",
        ARTICLE,
    )


def c3(vs, scope):
    return next(v for v in vs if v.claim == "C3" and v.scope == scope)


@pytest.mark.parametrize("scope", ["frogs", "seeds"])
@pytest.mark.parametrize("shift,expected", [(0.3, SUPPORTED), (-0.3, REFUTED), (0.0, NEGLIGIBLE)])
def test_known_truth(shift, expected, scope):
    v = c3(evaluate_catalog(evidence(shift), scopes=(scope,)), scope)
    assert v.verdict == expected, v.summary()
    if expected != NEGLIGIBLE:
        assert np.sign(v.effect) == np.sign(shift) and v.ci_low <= v.effect <= v.ci_high
        assert v.p_adjusted < 0.05
    else:
        assert v.p_equivalence_adjusted < 0.05


def test_underpowered_says_what_would_decide_it():
    # A real effect the size of the SESOI, hidden in seed-to-seed noise of 3 seeds.
    v = c3(evaluate_catalog(evidence(0.02, n_seeds=3, seed_sd=0.05), scopes=("seeds",)), "seeds")
    assert v.verdict == UNDERPOWERED, v.summary()
    assert np.isfinite(v.mde) and v.mde > v.sesoi
    assert np.isfinite(v.n_needed) and v.n_needed > 3
    spread = np.sqrt((v.extras["sd_a"] ** 2 + v.extras["sd_b"] ** 2) / 2)
    expected_n = st.n_needed(v.sesoi, spread, 0.05 / v.family_size)
    assert v.n_needed == expected_n
    assert f"N = {int(expected_n)} models per condition" in v.decides and "MDE" in v.decides


@pytest.mark.parametrize("shift,expected", [(0.002, SUPPORTED_NEGLIGIBLE), (-0.002, REFUTED_NEGLIGIBLE)])
def test_significant_but_negligible_keeps_both_facts(shift, expected):
    """1,000 images detect a tiny shift, far below the SESOI: both hypotheses fall, and
    the verdict says so with its direction (Lakens et al. 2018's fourth case; issue 19,
    1). It was plain *negligible* before, the direction lost."""
    ev = evidence(shift, noise=0.001)
    v = c3(evaluate_catalog(ev, scopes=("frogs",)), "frogs")
    assert v.p_adjusted < 0.05 and v.p_equivalence_adjusted < 0.05
    assert v.verdict == expected, v.summary()
    assert v.verdict in FALSE_POSITIVES and v.verdict in EQUIVALENT  # an error under a null, and under a SESOI


@pytest.mark.parametrize(
    "p_zero,p_margin,expected",
    [
        (0.001, 0.9, SUPPORTED),
        (0.9, 0.001, NEGLIGIBLE),
        (0.001, 0.001, SUPPORTED_NEGLIGIBLE),
        (0.9, 0.9, UNDERPOWERED),
    ],
)
def test_label_from_the_two_rejections(p_zero, p_margin, expected):
    """The four outcomes of a claim's two hypotheses, one family of one claim."""
    claim = next(c for c in CATALOG if c.id == "C3")
    res = st.TestResult("t", 1.0, p_zero / 2, 1 - p_zero / 2, "d", 0.1, 0.0, 0.2, 10, p_equivalence=p_margin)
    (v,) = decide_family([claim], "seeds", [Measured(res, 1.0, 0.9, "seeds")])
    assert v.verdict == expected and v.correction == "step-down"


def test_unknown_correction_is_named():
    claim = next(c for c in CATALOG if c.id == "C3")
    res = st.TestResult("t", 1.0, 0.01, 0.99, "d", 0.1, 0.0, 0.2, 10, p_equivalence=0.5)
    with pytest.raises(UnknownNameError, match="holm-per-family"):
        decide_family([claim], "seeds", [Measured(res, 1.0, 0.9, "seeds")], correction="holm")


def test_unreachable_with_one_seed():
    v = c3(evaluate_catalog(evidence(0.3, n_seeds=1), scopes=("seeds",)), "seeds")
    assert v.verdict == UNDERPOWERED and v.unreachable
    assert "unreachable with N = 1" in v.decides
    assert unreachable_by_design("seeds", 1, CATALOG) and not unreachable_by_design("seeds", 8, CATALOG)


def test_the_images_scope_has_no_p_floor_by_design():
    """The images scope's direction test is a paired t now, continuous from 2 images
    on: 4 images are no longer unreachable (the signed-rank floor 2^(1-4) = 0.125 made
    them so); one image decides nothing, in any scope."""
    assert design_min_p("images", 4) == 0.0 and design_min_p("images", 1) == 1.0
    assert unreachable_by_design("images", 4, CATALOG) == []
    lines = unreachable_by_design("images", 1, CATALOG) + unreachable_by_design("seeds", 1, CATALOG)
    assert lines and all("every verdict will be underpowered" in x for x in lines)


def _images_evidence(a, b, stat="c6_zero_fraction"):
    """Evidence of one pair whose ``stat`` over the images is ``a`` and ``b``."""
    n = len(a)
    models = {}
    for role, v in (("benchmark", a), ("dummy", b)):
        stats = {k: np.random.default_rng(0).random(n) for k in STATS}
        stats[stat] = np.asarray(v, dtype=np.float64)
        models[role] = [ModelEvidence(role, 0, f"{role}0", 0.6, stats)]
    return Evidence(models, 0, n, "article", "", "benchmark", "dummy", ARTICLE)


def test_images_scope_decides_direction_on_the_mean_the_sesoi_is_about():
    """Issue 19, 3, the constructed case: per-image differences whose ranks favour the
    benchmark (rank-biserial +0.28: 800 small positive differences) while their mean
    is -0.012 (200 large negative ones), 2.4 SESOIs of 0.005 the other way. The
    signed-rank direction called C3 supported; on the mean it is refuted, with the
    rank-biserial r and the Wilcoxon p reported beside it."""
    rng = np.random.default_rng(19)
    d = np.concatenate([rng.uniform(0, 0.02, 800), -rng.uniform(0.05, 0.15, 200)])
    rng.shuffle(d)
    dummy = rng.uniform(0.3, 0.6, 1000)
    claim = dataclasses.replace(get_claim("C3"), sesoi=0.005)  # benchmark > dummy
    (v,) = evaluate_catalog(_images_evidence(dummy + d, dummy), [claim], ["frogs"])
    assert v.verdict == REFUTED, v.summary()
    assert v.effect == pytest.approx(-0.012, abs=0.001) and v.effect < -2 * v.sesoi and v.ci_high < 0
    assert v.extras["rank_biserial"] == pytest.approx(0.28, abs=0.01) and v.extras["wilcoxon_p_two_sided"] < 1e-10
    assert v.a_value - v.b_value == pytest.approx(v.effect)  # means: the estimand, not medians
    assert v.a_value == pytest.approx(np.mean(dummy + d)) and v.b_value == pytest.approx(np.mean(dummy))


def test_images_threshold_claim_is_a_one_sample_t_on_the_mean():
    rng = np.random.default_rng(5)
    zeros = rng.uniform(0.4, 0.8, 300)  # C4: the benchmark's zero fraction > 0.5
    (v,) = evaluate_catalog(_images_evidence(zeros, zeros), [get_claim("C4")], ["frogs"])
    assert v.verdict == SUPPORTED and v.effect_name == "mean - threshold"
    assert v.a_value == pytest.approx(np.mean(zeros)) and v.effect == pytest.approx(np.mean(zeros) - 0.5)


def test_n_needed_comes_with_its_range():
    v = c3(evaluate_catalog(evidence(0.01, n_seeds=8, seed_sd=0.05)), "seeds")
    assert v.verdict == UNDERPOWERED
    lo, hi = v.n_needed_range
    assert lo < v.n_needed < hi
    assert f"so N needed is {int(lo)}-{int(hi)} over the SD's 95% CI" in v.decides
    assert type(v).from_dict(v.to_dict()).n_needed_range == (lo, hi)


def test_step_down_is_applied_within_each_family():
    """p_adjusted and p_equivalence_adjusted come from one step-down over the 2m
    hypotheses of the claim's own (scope, tier) family: not uncorrected, not two
    separate Holm families, not pooled over the whole catalog."""
    vs = [v for v in evaluate_catalog(evidence(0.01, n_seeds=4, seed_sd=0.01)) if v.scope == "seeds"]
    for tier, members in families(CATALOG, "seeds"):
        fam = [v for v in vs if v.claim in {c.id for c in members}]
        raw = np.array([v.p_two_sided for v in fam])
        adj, adj_eq = st.step_down_two_nulls(raw, [v.p_equivalence for v in fam])
        np.testing.assert_allclose([v.p_adjusted for v in fam], adj)
        np.testing.assert_allclose([v.p_equivalence_adjusted for v in fam], adj_eq)
        assert all(v.family_size == len(members) and v.tier == tier for v in fam)
    separate = np.concatenate([st.holm([v.p_two_sided for v in vs]), st.holm([v.p_equivalence for v in vs])])
    assert not np.allclose(separate, [v.p_adjusted for v in vs] + [v.p_equivalence_adjusted for v in vs])
    assert any(v.p_adjusted > v.p_two_sided for v in vs)


def test_uncorrected_adjustment_changes_verdicts():
    ev = evidence(0.01, n_seeds=4, seed_sd=0.01)
    corrected = evaluate_catalog(ev, scopes=("seeds",))
    raw = evaluate_catalog(ev, scopes=("seeds",), correction="none")
    assert [v.p_adjusted for v in raw] == pytest.approx([v.p_two_sided for v in raw], nan_ok=True)
    assert any(a.p_adjusted != b.p_adjusted for a, b in zip(corrected, raw, strict=False))


def test_verdicts_are_complete_and_immutable():
    v = c3(evaluate_catalog(evidence(0.3)), "seeds")
    with pytest.raises(dataclasses.FrozenInstanceError):
        v.verdict = REFUTED
    assert 0 <= v.p_adjusted <= 1 and v.tier == "primary" and v.sesoi == get_claim("C3").sesoi
    # complete separation still has a CI (Newcombe's score interval; issue 19, item 5)
    assert v.prob_superiority == 1.0 and 0 < v.prob_superiority_ci[0] < v.prob_superiority_ci[1] == 1.0
    assert f"(95% CI {v.prob_superiority_ci[0]:.4g}..1)" in v.summary() and "no CI" not in v.summary()


def test_every_verdict_carries_its_numbers():
    for v in evaluate_catalog(evidence(0.3)):
        assert (
            v.test
            and v.effect_name
            and v.data_scope
            and v.n >= 1
            and v.verdict in (SUPPORTED, REFUTED, NEGLIGIBLE, UNDERPOWERED, INCONCLUSIVE)
        )
        if v.inferential:
            assert 0 <= v.p_value <= 1 and 0 <= v.p_adjusted <= 1 and v.p_adjusted >= v.p_two_sided - 1e-15
            assert v.verdict != INCONCLUSIVE


def test_probe_scope_is_descriptive():
    v = evaluate(get_claim("C3"), "probe", evidence(0.3))
    assert v.verdict == SUPPORTED and np.isnan(v.p_value) and not v.inferential
    assert "no p-value" in v.data_scope
    assert evaluate(get_claim("C3"), "probe", evidence(0.001)).verdict == NEGLIGIBLE


def test_probe_checks_can_refute():
    ev = evidence(0.3, stat="p_frog")
    ev.groups["benchmark"][0].stats["argmax"][:] = 2  # benchmark says "bird"
    v = evaluate(get_claim("C8"), "probe", ev)
    assert v.verdict == REFUTED and "argmax is frog: no" in v.notes


def test_undefined_statistic_on_the_probe_is_inconclusive_not_refuted():
    ev = evidence(0.3, stat="c1_input_corr")
    ev.groups["dummy"][0].stats["c1_input_corr"][0] = np.nan  # a constant map: no correlation
    v = evaluate(get_claim("C1"), "probe", ev)
    assert v.verdict == INCONCLUSIVE
    assert "c1_input_corr undefined (NaN) on the probe for the dummy (seed 0)" in v.notes
    assert "constant" in v.notes


def test_undefined_values_over_images_are_named():
    ev = evidence(0.3)
    ev.groups["benchmark"][0].stats["c6_scaled_mean"][:5] = np.nan
    v = evaluate(get_claim("C5"), "frogs", ev)
    assert "5 images of the benchmark (seed 0)" in v.notes and "all zeros" in v.notes


def test_scope_not_applicable():
    with pytest.raises(ValueError, match="C6 is not tested in scope 'seeds'"):
        evaluate(get_claim("C6"), "seeds", evidence(0.0))
    with pytest.raises(UnknownNameError, match="unknown scope"):
        evaluate(get_claim("C3"), "pixels", evidence(0.0))


def test_null_control_only_directional_and_counts_both_directions():
    ev = evidence(0.3)
    ev.label, ev.null = "null control", True  # a real field: the label alone no longer makes it a null control
    vs = evaluate_catalog(ev, scopes=("frogs", "seeds"))
    assert {v.claim for v in vs} == {c.id for c in claims_for(directional_only=True)}
    assert all(v.family == "null control" for v in vs)
    refuted = [dataclasses.replace(v, verdict=REFUTED) for v in vs]
    assert false_positive_rate(refuted) == 1.0


def test_seeds_scope_uses_one_number_per_model():
    v = evaluate(get_claim("C10"), "seeds", evidence(0.3))
    assert v.n == 10 and len(v.extras["benchmark_per_seed"]) == 5


def test_checks_table_covers_every_scope_and_kind():
    assert {(s, c.kind) for c in CATALOG for s in c.scopes} <= set(CHECKS)


def test_numbers_path_equals_the_evidence_path():
    """The calibration's entry (evaluate_numbers) gives the catalog's seeds verdicts."""
    ev = evidence(0.05, n_seeds=4, seed_sd=0.02)
    from cnnclaims.verdicts import seed_numbers

    claims = claims_for("seeds")
    a = {v.claim: (v.verdict, v.p_adjusted) for v in evaluate_catalog(ev, scopes=("seeds",))}
    numbers = {c.id: seed_numbers(c, ev) for c in claims}
    b = {v.claim: (v.verdict, v.p_adjusted) for v in evaluate_numbers(claims, numbers)}
    assert a == b
    # the calibration's lean path (no P(superiority)) decides the same
    lean = evaluate_numbers(claims, numbers, plan=False, superiority=False)
    assert {v.claim: (v.verdict, v.p_adjusted) for v in lean} == b
    assert all(np.isnan(v.prob_superiority) for v in lean)


def test_image_numbers_path_equals_the_evidence_path():
    """The calibration's images entry (evaluate_image_numbers) gives the catalog's
    images-scope verdicts, and its lean path (no signed-rank check) the same labels."""
    from cnnclaims.verdicts import evaluate_image_numbers, image_numbers

    ev = evidence(0.01, n_seeds=1)
    claims = claims_for("images")
    a = {v.claim: (v.verdict, v.p_adjusted, v.p_equivalence_adjusted) for v in evaluate_catalog(ev, scopes=("frogs",))}
    numbers = {c.id: image_numbers(c, ev) for c in claims}
    full = evaluate_image_numbers(claims, numbers)
    assert {v.claim: (v.verdict, v.p_adjusted, v.p_equivalence_adjusted) for v in full} == a
    assert all("wilcoxon_p_two_sided" in v.extras for v in full)
    lean = evaluate_image_numbers(claims, numbers, plan=False, sensitivity=False)
    assert {v.claim: (v.verdict, v.p_adjusted, v.p_equivalence_adjusted) for v in lean} == a
    assert not any("wilcoxon_p_two_sided" in v.extras for v in lean)


def test_both_subject_takes_the_smaller_of_each_pair():
    c = get_claim("C7b")
    x, none = claim_numbers(c, [1.0, 5.0], [2.0, 3.0])
    assert none is None and x.tolist() == [1.0, 3.0]


def test_decide_family_is_the_single_decision():
    c = get_claim("C3")
    m = measure_seeds(c, (np.array([0.6, 0.61, 0.62]), np.array([0.5, 0.51, 0.52])))
    (v,) = decide_family([c], "seeds", [m])
    assert v.verdict == SUPPORTED and v.family_size == 1


# --- types instead of strings (issue 20, item 4) --------------------------------------


def test_the_null_control_is_a_field_not_a_label():
    ev = evidence(0.3)
    ev.label = "null control"  # the label alone used to make it one
    assert not ev.null and {v.claim for v in evaluate_catalog(ev, scopes=("seeds",))} == {
        c.id for c in claims_for("seeds")
    }
    ev.label, ev.null = "article", True
    assert {v.claim for v in evaluate_catalog(ev, scopes=("seeds",))} == {
        c.id for c in claims_for("seeds", directional_only=True)
    }


def test_what_would_decide_is_worded_by_the_results_unit_not_its_display_name():
    from cnnclaims.verdicts import _decides

    res = dataclasses.replace(st.welch([1.0, 1.2, 0.9], [1.1, 1.0, 1.3], "greater", 0.02), test="renamed")
    claim = get_claim("C3")
    words = {
        unit: _decides(claim, dataclasses.replace(res, unit=unit), 1, 0.1, 40.0)
        for unit in ("images", "models", "seeds")
    }
    assert "N = 40 images" in words["images"] and "N = 40 models per condition" in words["models"]
    assert "N = 40 seeds (models per size)" in words["seeds"]
