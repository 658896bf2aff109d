"""The catalog is well-formed, and ``evaluate`` gives the right verdicts on
evidence whose truth we know (supported, refuted, inconclusive)."""
import re

import numpy as np
import pytest

from cnnclaims import FROG
from cnnclaims.claims import CATALOG, CLAIMS, SCOPES, claims_for, get_claim
from cnnclaims.verdicts import evaluate, evaluate_catalog
from cnnclaims.errors import UnknownNameError
from cnnclaims.evidence import STATS, Evidence, ModelEvidence

N_IMAGES, N_SEEDS = 200, 5


def model_ev(role, seed, shift=0.0, stat="c6_zero_fraction", acc=0.6):
    rng = np.random.default_rng(seed + (100 if role == "benchmark" else 0))
    stats = {k: rng.random(N_IMAGES) for k in STATS}
    base = np.random.default_rng(99).random(N_IMAGES)  # shared per-image component
    stats[stat] = base + shift + rng.normal(0, 0.02, N_IMAGES)
    stats["argmax"] = np.full(N_IMAGES, float(FROG if role == "benchmark" else 3))
    return ModelEvidence(role, seed, f"{role}{seed}", acc + shift / 10 + rng.normal(0, 0.001), stats)


def evidence(shift, stat="c6_zero_fraction"):
    return Evidence({"benchmark": [model_ev("benchmark", s, shift, stat) for s in range(N_SEEDS)],
                     "dummy": [model_ev("dummy", s, 0.0, stat) for s in range(N_SEEDS)]}, 0, N_IMAGES)


def test_ids_unique_and_readable():
    assert len(CLAIMS) == len(CATALOG)
    for c in CATALOG:
        assert re.fullmatch(r"C\d+b?-[a-z0-9-]+", c.name), c.name
        assert set(c.scopes) <= set(SCOPES)
        assert c.stat in STATS or c.stat in ("input_abs_skew", "input_centre_offset")
        assert c.kind in ("compare", "threshold") and c.alternative in ("greater", "less")
        assert c.article and c.figure and c.layers and 0 < c.alpha < 1
        assert all(c.test_for(s) != "n/a" for s in c.scopes)


def test_at_least_the_issue_claims():
    assert {f"C{i}" for i in range(1, 11)} <= set(CLAIMS)


def test_unknown_claim():
    with pytest.raises(UnknownNameError, match="unknown claim 'C99'.*C1"):
        get_claim("C99")


@pytest.mark.parametrize("shift,expected", [(0.3, "supported"), (-0.3, "refuted"), (0.0, "inconclusive")])
@pytest.mark.parametrize("scope", ["frogs", "seeds"])
def test_known_truth(shift, expected, scope):
    v = next(v for v in evaluate_catalog(evidence(shift), scopes=(scope,)) if v.claim == "C3")
    assert v.verdict == expected, v.summary()
    if expected != "inconclusive":
        assert np.sign(v.effect) == np.sign(shift)
        assert v.ci_low <= v.effect <= v.ci_high


def test_probe_scope_is_descriptive():
    v = evaluate(get_claim("C3"), "probe", evidence(0.3))
    assert v.verdict == "supported" and np.isnan(v.p_value) and not v.inferential
    assert "no p-value" in v.data_scope


def test_probe_checks_can_refute():
    ev = evidence(0.3, stat="p_frog")
    ev.groups["benchmark"][0].stats["argmax"][:] = 2  # benchmark says "bird"
    v = evaluate(get_claim("C8"), "probe", ev)
    assert v.verdict == "refuted" and "argmax is frog: no" in v.notes


def test_every_verdict_carries_its_numbers():
    for v in evaluate_catalog(evidence(0.3)):
        assert v.test and v.effect_name and v.data_scope and v.n >= 1
        if v.inferential:
            assert 0 <= v.p_value <= 1 and 0 <= v.p_holm <= 1 and v.p_holm >= v.p_value


def test_holm_is_applied_within_scope():
    vs = [v for v in evaluate_catalog(evidence(0.0)) if v.scope == "seeds"]
    ps = np.array([v.p_value for v in vs])
    assert max(v.p_holm for v in vs) <= 1 and min(v.p_holm for v in vs) >= ps.min() * 1


def test_scope_not_applicable():
    with pytest.raises(ValueError, match="C6 is not tested in scope 'seeds'"):
        evaluate(get_claim("C6"), "seeds", evidence(0.0))
    with pytest.raises(UnknownNameError, match="unknown scope"):
        evaluate(get_claim("C3"), "pixels", evidence(0.0))


def test_null_control_only_directional():
    ev = evidence(0.0)
    ev.label = "null control"
    vs = evaluate_catalog(ev, scopes=("frogs", "seeds"))
    assert {v.claim for v in vs} == {c.id for c in claims_for(directional_only=True)}
    assert all(v.family == "null control" for v in vs)


def test_seeds_scope_uses_one_number_per_model():
    v = evaluate(get_claim("C10"), "seeds", evidence(0.3))
    assert v.n == 2 * N_SEEDS and len(v.extras["benchmark_per_seed"]) == N_SEEDS
