"""Pinned-verdict file semantics: keys, validation, rewrite, fragility across versions."""
import json

import pytest

from cnnclaims import pinned
from cnnclaims.errors import CnnClaimsError
from cnnclaims.declaration import load_experiment
from cnnclaims.verdicts import Verdict


def verdict(claim, scope, v):
    nan = float("nan")
    return Verdict(claim=claim, name=claim, scope=scope, verdict=v, test="t", statistic=0.0, p_value=nan,
                   p_opposite=nan, p_two_sided=nan, p_holm=nan, p_equivalence=nan, p_equivalence_holm=nan,
                   effect_name="e", effect=0.0, ci_low=nan, ci_high=nan, n=1, a_value=0.0, b_value=0.0,
                   data_scope="scope", claimed="c")


def test_pin_key_names_versions_and_profile():
    key = pinned.pin_key(load_experiment().profile("article"))
    assert key.endswith("/article") and key.startswith("tf2.") and "keras" in key
    assert pinned.pin_key(load_experiment().profile("article", 2)).endswith("/article/seeds2")


def test_write_and_load(tmp_path):
    path = tmp_path / "pins.json"
    p = load_experiment().profile("smoke")
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
        assert pinned.has_numbers(doc["entries"][key]), f"{key} pins labels only: regenerate it (README)"


def numbered(claim, scope, v, **numbers):
    from dataclasses import replace

    return replace(verdict(claim, scope, v), **numbers)


def test_numbers_are_pinned_one_line_per_case(tmp_path):
    path = tmp_path / "pins.json"
    v = numbered("C8", "seeds", "supported", statistic=3.123456789012345, p_two_sided=0.000123456789012,
                 p_holm=0.0012, effect=float("inf"), ci_low=-0.5)
    pinned.write_entry(path, "tfX/smoke", [v, verdict("C1", "probe", "supported")], [], load_experiment().profile("smoke"), "x")
    e = pinned.entry(pinned.load(path), "tfX/smoke")
    assert e["verdicts"] == {"C8/seeds": "supported", "C1/probe": "supported"}
    assert e["numbers"]["verdicts"]["C8/seeds"] == {  # to SIGNIFICANT_DIGITS; what the verdict lacks is absent
        "statistic": 3.123456789, "p_two_sided": 0.0001234567890, "p_holm": 0.0012, "effect": "inf", "ci_low": -0.5}
    assert e["numbers"]["verdicts"]["C1/probe"] == {"statistic": 0.0, "effect": 0.0}
    line = next(x for x in path.read_text().splitlines() if '"C8/seeds": {' in x)
    assert line.strip() == ('"C8/seeds": {"statistic": 3.123456789, "p_two_sided": 0.000123456789, '
                            '"p_holm": 0.0012, "effect": "inf", "ci_low": -0.5},')


def test_numbers_compare_within_the_tolerance():
    nan = float("nan")
    assert pinned.same_number(0.1, 0.1 * (1 + pinned.REL_TOL / 2))
    assert not pinned.same_number(0.1, 0.1 * (1 + 2 * pinned.REL_TOL))
    assert pinned.same_number(0.0, pinned.ABS_TOL / 2) and not pinned.same_number(0.0, 2 * pinned.ABS_TOL)
    assert pinned.same_number(None, nan) and pinned.same_number(nan, None) and pinned.same_number("inf", float("inf"))
    assert not pinned.same_number(None, 0.5) and not pinned.same_number(0.5, None) and not pinned.same_number("inf", 1e300)


def test_case_diff_names_label_and_numbers():
    v = numbered("C8", "seeds", "supported", statistic=2.0, p_holm=0.01, effect=0.3)
    pins = pinned.numbers_of(v)
    assert pinned.case_diff("supported", pins, v) == []
    assert pinned.case_diff("supported", {**pins, "p_holm": 0.02}, v) == [("p_holm", 0.02, 0.01)]
    assert pinned.case_diff("refuted", {**pins, "ci_low": -1.0}, v) == [("verdict", "refuted", "supported"),
                                                                        ("ci_low", -1.0, None)]
    assert pinned.case_diff("supported", None, v) == []  # labels-only entry: numbers not compared
    assert pinned.case_diff("refuted", None, v) == [("verdict", "refuted", "supported")]


def test_labels_only_entries_still_load(tmp_path):
    path = tmp_path / "pins.json"
    path.write_text(json.dumps({"entries": {"k/smoke": {"verdicts": {"C1/frogs": "supported"}}}}))
    e = pinned.entry(pinned.load(path), "k/smoke")
    assert not pinned.has_numbers(e) and pinned.case_numbers(e, "verdicts", "C1/frogs") is None
    e["numbers"] = {"verdicts": {}}
    assert pinned.case_numbers(e, "verdicts", "C1/frogs") == {}  # pinned with numbers, this case lacks them


@pytest.mark.parametrize("numbers", [[], {"verdicts": []}, {"verdicts": {"C1/frogs": {"p": 0.1}}},
                                     {"verdicts": {"C1/frogs": {"p_holm": "0.1"}}}])
def test_wrong_numbers_are_named(tmp_path, numbers):
    bad = tmp_path / "pins.json"
    bad.write_text(json.dumps({"entries": {"k/smoke": {"verdicts": {"C1/frogs": "supported"}, "numbers": numbers}}}))
    with pytest.raises(CnnClaimsError, match="entry 'k/smoke' has wrong numbers: expected"):
        pinned.load(bad)


def test_obtained_is_written_beside_the_pins_which_stay(tmp_path):
    path = tmp_path / "pins.json"
    p = load_experiment().profile("smoke")
    pinned.write_entry(path, "tfY/smoke", [verdict("C1", "frogs", "refuted")], [], p, "x")
    before = path.read_bytes()
    out, note = pinned.write_obtained(path, "tfX/smoke", [verdict("C1", "frogs", "supported")], [], p, "x")
    assert out == tmp_path / "pins.json.obtained" and note == "" and path.read_bytes() == before
    doc = json.loads(out.read_text())
    assert set(doc["entries"]) == {"tfX/smoke", "tfY/smoke"}  # copying it over the pins accepts it
    assert doc["entries"]["tfX/smoke"]["verdicts"] == {"C1/frogs": "supported"}


def test_obtained_falls_back_where_the_pins_folder_is_not_writable(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the pins' folder should be")  # unwritable even for root
    args = (blocker / "pins.json", "k/smoke", [verdict("C1", "frogs", "supported")], [], load_experiment().profile("smoke"), "x")
    out, note = pinned.write_obtained(*args, fallback_dir=tmp_path / "art")
    assert out == tmp_path / "art" / "pins.json.obtained" and out.exists() and "not writable" in note
    with pytest.raises(OSError):
        pinned.write_obtained(*args, fallback_dir=blocker / "art")


@pytest.mark.unit
def test_another_probe_image_gets_its_own_pin_key():
    # --probe-index used to share the key: its probe verdicts (another image) failed as
    # "changed" and the suggested regen would have overwritten the reviewed pins.
    p = load_experiment().profile("smoke")
    assert pinned.pin_key(p).endswith("/smoke")
    assert pinned.pin_key(p, probe="6999").endswith("/smoke/probe6999")
    assert pinned.pin_key(load_experiment().profile("smoke", 2), probe=7).endswith("/smoke/seeds2/probe7")


def _mine():
    from dataclasses import replace

    from cnnclaims.article import ARTICLE

    return replace(ARTICLE, name="mine", pins_name="pinned_mine.json")


MINE = _mine()  # declared in this module: its pins live beside it


def test_outside_pytest_an_experiments_pins_are_found_beside_its_module():
    """The command line's report and pin read and wrote the article's pins file for any
    experiment (a digits report listed the article's C1-C10 pins)."""
    from pathlib import Path

    from cnnclaims.article import ARTICLE

    assert pinned.path_for(ARTICLE) == pinned.DEFAULT_PATH
    assert pinned.path_for(MINE) == Path(__file__).resolve().parent / "pinned_mine.json"
