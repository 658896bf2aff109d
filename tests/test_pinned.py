"""Pinned-verdict file semantics: keys, validation, rewrite, fragility across versions."""
import json

import pytest

from cnnclaims import pinned
from cnnclaims.errors import CnnClaimsError
from cnnclaims.profiles import get_profile
from cnnclaims.verdicts import Verdict


def verdict(claim, scope, v):
    nan = float("nan")
    return Verdict(claim=claim, name=claim, scope=scope, verdict=v, test="t", statistic=0.0, p_value=nan,
                   p_opposite=nan, p_two_sided=nan, p_holm=nan, p_equivalence=nan, p_equivalence_holm=nan,
                   effect_name="e", effect=0.0, ci_low=nan, ci_high=nan, n=1, benchmark_value=0.0, dummy_value=0.0,
                   data_scope="scope", claimed="c")


def test_pin_key_names_versions_and_profile():
    key = pinned.pin_key(get_profile("article"))
    assert key.endswith("/article") and key.startswith("tf2.") and "keras" in key
    assert pinned.pin_key(get_profile("article", n_seeds=2)).endswith("/article/seeds2")


def test_write_and_load(tmp_path):
    path = tmp_path / "pins.json"
    p = get_profile("smoke")
    pinned.write_entry(path, "tfX/smoke", [verdict("C1", "frogs", "supported")], [verdict("C1", "seeds", "underpowered")],
                       p, "somewhere")
    doc = pinned.load(path)
    e = pinned.entry(doc, "tfX/smoke")
    assert e["verdicts"] == {"C1/frogs": "supported"} and e["null_control"] == {"C1/seeds": "underpowered"}
    assert e["data_source"] == "somewhere" and "tensorflow" in e["versions"]
    # regen rewrites the whole entry, and leaves other keys alone
    pinned.write_entry(path, "tfY/smoke", [], [], p, "x")
    pinned.write_entry(path, "tfX/smoke", [verdict("C2", "probe", "refuted")], [], p, "x")
    doc = pinned.load(path)
    assert pinned.entry(doc, "tfX/smoke")["verdicts"] == {"C2/probe": "refuted"}
    assert pinned.entry(doc, "tfY/smoke") is not None


def test_missing_file_is_empty(tmp_path):
    assert pinned.load(tmp_path / "none.json") == {"entries": {}}


def test_invalid_json_is_named(tmp_path):
    bad = tmp_path / "pins.json"
    bad.write_text("{")
    with pytest.raises(CnnClaimsError, match="pins.json is not valid JSON"):
        pinned.load(bad)


def test_old_vocabulary_is_refused_with_the_fix(tmp_path):
    bad = tmp_path / "pins.json"
    bad.write_text(json.dumps({"entries": {"k/smoke": {"verdicts": {"C1/seeds": "inconclusive"}}}}))
    with pytest.raises(CnnClaimsError, match="C1/seeds is 'inconclusive'.*--regen-verdicts"):
        pinned.load(bad)


@pytest.mark.parametrize("content", ["[]", '{"entries": []}', '{"entries": {"k/smoke": []}}',
                                     '{"entries": {"k/smoke": {"verdicts": ["C1/frogs"]}}}'])
def test_wrong_shape_is_named_with_the_expected_one(tmp_path, content):
    bad = tmp_path / "pins.json"
    bad.write_text(content)
    with pytest.raises(CnnClaimsError, match="pins.json.*wrong shape.*expected"):
        pinned.load(bad)


def test_invalid_verdict_is_named(tmp_path):
    bad = tmp_path / "pins.json"
    bad.write_text(json.dumps({"entries": {"k/smoke": {"verdicts": {"C1/frogs": "maybe"}}}}))
    with pytest.raises(CnnClaimsError, match="C1/frogs is 'maybe'"):
        pinned.load(bad)


def test_fragile_claims_across_families():
    doc = {"entries": {
        "tf2.15-keras2.15/smoke": {"verdicts": {"C1/frogs": "supported", "C2/frogs": "refuted"}},
        "tf2.21-keras3.15/smoke": {"verdicts": {"C1/frogs": "supported", "C2/frogs": "negligible"}},
        "tf2.21-keras3.15/article": {"verdicts": {"C2/frogs": "supported"}},
    }}
    assert pinned.fragile(doc, "smoke") == {
        ("verdicts", "C2/frogs"): {"tf2.15-keras2.15": "refuted", "tf2.21-keras3.15": "negligible"}}


def test_repository_pins_are_valid():
    doc = pinned.load()
    for key in doc["entries"]:
        family, profile = key.split("/")[:2]
        assert family.startswith("tf") and profile in ("article", "smoke")
