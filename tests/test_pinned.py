"""Pinned-verdict file semantics: keys, validation, rewrite, fragility across versions."""

import json
from pathlib import Path

import pytest

from cnnclaims import pinned
from cnnclaims.declaration import load_experiment
from cnnclaims.errors import CnnClaimsError
from cnnclaims.verdicts import Verdict


def verdict(claim, scope, v):
    nan = float("nan")
    return Verdict(
        claim=claim,
        name=claim,
        scope=scope,
        verdict=v,
        test="t",
        statistic=0.0,
        p_value=nan,
        p_opposite=nan,
        p_two_sided=nan,
        p_adjusted=nan,
        p_equivalence=nan,
        p_equivalence_adjusted=nan,
        effect_name="e",
        effect=0.0,
        ci_low=nan,
        ci_high=nan,
        n=1,
        a_value=0.0,
        b_value=0.0,
        data_scope="scope",
        claimed="c",
    )


def test_pin_key_names_versions_and_profile():
    key = pinned.pin_key(load_experiment().profile("article"))
    assert key.endswith("/article") and key.startswith("tf2.") and "keras" in key
    assert pinned.pin_key(load_experiment().profile("article", 2)).endswith("/article/seeds2")


def test_write_and_load(tmp_path):
    path = tmp_path / "pins.json"
    p = load_experiment().profile("smoke")
    pinned.write_entry(
        path,
        "tfX/smoke",
        [verdict("C1", "frogs", "supported")],
        [verdict("C1", "seeds", "underpowered")],
        p,
        "somewhere",
    )
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


@pytest.mark.parametrize(
    "content",
    ["[]", '{"entries": []}', '{"entries": {"k/smoke": []}}', '{"entries": {"k/smoke": {"verdicts": ["C1/frogs"]}}}'],
)
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
    doc = {
        "entries": {
            "tf2.15-keras2.15/smoke": {"verdicts": {"C1/frogs": "supported", "C2/frogs": "refuted"}},
            "tf2.21-keras3.15/smoke": {"verdicts": {"C1/frogs": "supported", "C2/frogs": "negligible"}},
            "tf2.21-keras3.15/article": {"verdicts": {"C2/frogs": "supported"}},
        }
    }
    assert pinned.fragile(doc, "smoke") == {
        ("verdicts", "C2/frogs"): {"tf2.15-keras2.15": "refuted", "tf2.21-keras3.15": "negligible"}
    }


REPO = Path(__file__).resolve().parents[1]


def test_repository_pins_are_valid():
    doc = pinned.load(REPO / "tests" / "pinned_verdicts.json")
    for key in doc["entries"]:
        family, profile = key.split("/")[:2]
        assert family.startswith("tf") and profile in ("article", "smoke")
        assert pinned.has_numbers(doc["entries"][key]), f"{key} pins labels only: regenerate it (docs/concepts.md)"


def numbered(claim, scope, v, **numbers):
    from dataclasses import replace

    return replace(verdict(claim, scope, v), **numbers)


def test_numbers_are_pinned_one_line_per_case(tmp_path):
    path = tmp_path / "pins.json"
    v = numbered(
        "C8",
        "seeds",
        "supported",
        statistic=3.123456789012345,
        p_two_sided=0.000123456789012,
        p_adjusted=0.0012,
        effect=float("inf"),
        ci_low=-0.5,
    )
    pinned.write_entry(
        path, "tfX/smoke", [v, verdict("C1", "probe", "supported")], [], load_experiment().profile("smoke"), "x"
    )
    e = pinned.entry(pinned.load(path), "tfX/smoke")
    assert e["verdicts"] == {"C8/seeds": "supported", "C1/probe": "supported"}
    assert e["numbers"]["verdicts"]["C8/seeds"] == {  # to SIGNIFICANT_DIGITS; what the verdict lacks is absent
        "statistic": 3.123456789,
        "p_two_sided": 0.0001234567890,
        "p_adjusted": 0.0012,
        "effect": "inf",
        "ci_low": -0.5,
    }
    assert e["numbers"]["verdicts"]["C1/probe"] == {"statistic": 0.0, "effect": 0.0}
    line = next(x for x in path.read_text().splitlines() if '"C8/seeds": {' in x)
    assert line.strip() == (
        '"C8/seeds": {"statistic": 3.123456789, "p_two_sided": 0.000123456789, '
        '"p_adjusted": 0.0012, "effect": "inf", "ci_low": -0.5},'
    )


def test_numbers_compare_within_the_tolerance():
    nan = float("nan")
    assert pinned.same_number(0.1, 0.1 * (1 + pinned.REL_TOL / 2))
    assert not pinned.same_number(0.1, 0.1 * (1 + 2 * pinned.REL_TOL))
    assert pinned.same_number(0.0, pinned.ABS_TOL / 2) and not pinned.same_number(0.0, 2 * pinned.ABS_TOL)
    assert pinned.same_number(None, nan) and pinned.same_number(nan, None) and pinned.same_number("inf", float("inf"))
    assert (
        not pinned.same_number(None, 0.5) and not pinned.same_number(0.5, None) and not pinned.same_number("inf", 1e300)
    )


def test_case_diff_names_label_and_numbers():
    v = numbered("C8", "seeds", "supported", statistic=2.0, p_adjusted=0.01, effect=0.3)
    pins = pinned.numbers_of(v)
    assert pinned.case_diff("supported", pins, v) == []
    assert pinned.case_diff("supported", {**pins, "p_adjusted": 0.02}, v) == [("p_adjusted", 0.02, 0.01)]
    assert pinned.case_diff("refuted", {**pins, "ci_low": -1.0}, v) == [
        ("verdict", "refuted", "supported"),
        ("ci_low", -1.0, None),
    ]
    assert pinned.case_diff("supported", None, v) == []  # labels-only entry: numbers not compared
    assert pinned.case_diff("refuted", None, v) == [("verdict", "refuted", "supported")]


def test_labels_only_entries_still_load(tmp_path):
    path = tmp_path / "pins.json"
    path.write_text(json.dumps({"entries": {"k/smoke": {"verdicts": {"C1/frogs": "supported"}}}}))
    e = pinned.entry(pinned.load(path), "k/smoke")
    assert not pinned.has_numbers(e) and pinned.case_numbers(e, "verdicts", "C1/frogs") is None
    e["numbers"] = {"verdicts": {}}
    assert pinned.case_numbers(e, "verdicts", "C1/frogs") == {}  # pinned with numbers, this case lacks them


@pytest.mark.parametrize(
    "numbers",
    [[], {"verdicts": []}, {"verdicts": {"C1/frogs": {"p": 0.1}}}, {"verdicts": {"C1/frogs": {"p_adjusted": "0.1"}}}],
)
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
    args = (
        blocker / "pins.json",
        "k/smoke",
        [verdict("C1", "frogs", "supported")],
        [],
        load_experiment().profile("smoke"),
        "x",
    )
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


def test_outside_pytest_an_experiments_pins_are_found_beside_its_module(monkeypatch):
    """The command line's report and pin read and wrote the article's pins file for any
    experiment (a digits report listed the article's C1-C10 pins)."""
    from cnnclaims.article import ARTICLE
    from cnnclaims.locations import pins_path_for

    monkeypatch.chdir(REPO)
    assert pins_path_for(ARTICLE) == REPO / "tests" / "pinned_verdicts.json"
    assert pins_path_for(MINE) == Path(__file__).resolve().parent / "pinned_mine.json"
    assert pins_path_for(MINE, explicit="elsewhere.json") == REPO / "elsewhere.json"


def test_the_articles_pins_are_the_projects_not_the_packages(tmp_path, monkeypatch):
    """``pinned.DEFAULT_PATH`` reached from the installed package into the checkout's
    tests/ (from site-packages: a folder beside it). The article, declared inside the
    package, has its pins under the project's root, as ``pytest --pyargs
    cnnclaims.article`` run there reads them; from a subfolder too."""
    from cnnclaims.article import ARTICLE
    from cnnclaims.locations import pins_path_for, project_root

    (tmp_path / "pyproject.toml").write_text("[tool.pytest.ini_options]\n")
    (tmp_path / "tests" / "deep").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "tests" / "deep")
    assert project_root() == tmp_path.resolve()
    assert pins_path_for(ARTICLE) == tmp_path.resolve() / "tests" / "pinned_verdicts.json"
    with pytest.deprecated_call():
        assert pinned.path_for(ARTICLE) == tmp_path.resolve() / "tests" / "pinned_verdicts.json"


def test_a_second_default_experiment_reads_its_own_pins(monkeypatch):
    """With $CNNCLAIMS_EXPERIMENT naming examples/widths, the command line's report and
    pin took it for the article (the default experiment) and read the article's pins."""
    monkeypatch.syspath_prepend(str(REPO / "examples" / "widths"))
    monkeypatch.setenv("CNNCLAIMS_EXPERIMENT", "widths:WIDTHS")
    monkeypatch.chdir(REPO)
    from cnnclaims.declaration import load_experiment

    widths = load_experiment()
    assert widths.name == "widths"
    with pytest.deprecated_call():
        assert pinned.path_for(widths) == REPO / "examples" / "widths" / "pinned_widths.json"


def test_one_resolver_for_pytest_and_the_command_line(tmp_path):
    from cnnclaims.locations import PACKAGE, resolve_pins_path

    root = tmp_path / "proj"
    (root / "tests").mkdir(parents=True)
    kw = {"explicit": None, "rootdir": root}
    assert resolve_pins_path("p.json", **kw) == root / "tests" / "p.json"
    assert resolve_pins_path("p.json", **kw, beside=tmp_path) == tmp_path.resolve() / "p.json"
    assert resolve_pins_path("p.json", **kw, beside=PACKAGE) == root / "tests" / "p.json"  # never site-packages
    assert (
        resolve_pins_path("p.json", **{**kw, "explicit": tmp_path / "x.json"}, beside=tmp_path) == tmp_path / "x.json"
    )
    (root / "tests").rmdir()
    assert resolve_pins_path("p.json", **kw) == root / "p.json"


# --- judge: one case against its pin ---------------------------------------------


def _judge(pin, label, null=False, numbers="same", **changes):
    """judge() of a verdict labelled ``label`` whose numbers are those pinned, or
    pinned ``numbers`` (None: a labels-only entry), with ``changes`` to the verdict's."""
    base = {"statistic": 2.0, "p_adjusted": 0.01, "effect": 0.3}
    pins = pinned.numbers_of(numbered("C8", "seeds", label, **base)) if numbers == "same" else numbers
    return pinned.judge(pin, pins, numbered("C8", "seeds", label, **{**base, **changes}), null, key="tfX/smoke")


@pytest.mark.unit
@pytest.mark.parametrize(
    "pin,label,null,kind",
    [
        ("supported", "supported", False, pinned.PASSED),
        ("refuted", "refuted", False, pinned.NOT_SUPPORTED),  # as pinned: the strict xfail expects it
        ("refuted", "supported", False, pinned.PASSED),  # a change to passing: strict xfail's XPASS
        ("supported", "negligible", False, pinned.CHANGED),  # a passing pin now fails
        ("refuted", "negligible", False, pinned.CHANGED),  # between failures: strict xfail cannot see it
        (None, "supported", False, pinned.NO_PIN),
        (None, "refuted", True, pinned.NO_PIN),
        ("negligible", "negligible", True, pinned.PASSED),
        ("supported", "supported", True, pinned.FALSE_POSITIVE),
        ("refuted", "refuted", True, pinned.FALSE_POSITIVE),
        ("refuted", "supported", True, pinned.CHANGED),
        ("negligible", "underpowered", True, pinned.CHANGED),
        ("refuted", "negligible", True, pinned.PASSED),  # a false positive gone: XPASS
    ],
)
def test_judge_decides_each_outcome(pin, label, null, kind):
    out = _judge(pin, label, null)
    assert out.kind == kind
    assert out.failed == (kind != pinned.PASSED) and bool(out.message) == out.failed
    assert out.supported == pinned.passes(label, null)
    assert out.records == (pin != label)  # a new or differing case goes to .obtained for review
    assert out.flagged == (not out.supported or pin not in (None, label))  # --plots=failed draws it
    assert pinned.expects_failure(pin, null) == (pin is not None and not pinned.passes(pin, null))
    expected = {
        pinned.CHANGED: "PinnedVerdictChanged",
        pinned.NOT_SUPPORTED: "ClaimNotSupported",
        pinned.FALSE_POSITIVE: "NullControlFalsePositive",
    }.get(kind)
    assert (out.exception.__name__ if out.exception else None) == expected


@pytest.mark.unit
def test_judges_messages():
    assert _judge(None, "refuted").message == "no pinned verdict for C8/seeds under [tfX/smoke]: refuted, review it"
    assert _judge("refuted", "refuted").message == "claim not supported (refuted)"
    assert _judge("supported", "supported", null=True).message == (
        "null control finds a direction (supported): a false positive"
    )
    msg = _judge("negligible", "underpowered", null=True).message
    assert msg.startswith(
        "C8/seeds (null control): verdict underpowered, pinned negligible [tfX/smoke] (numbers "
        f"compared within relative {pinned.REL_TOL:g} / absolute {pinned.ABS_TOL:g}):"
    )
    assert msg.splitlines()[1:] == [
        "    field                pinned -> obtained",
        "    verdict          negligible -> underpowered",
    ]
    assert _judge("supported", "supported").message == ""


@pytest.mark.unit
def test_a_moved_number_fails_even_as_pinned_and_absent_ones_are_shown():
    out = _judge("supported", "supported", p_adjusted=0.02)
    assert out.kind == pinned.CHANGED and out.diffs == (("p_adjusted", 0.01, 0.02),) and not out.flagged
    assert "verdict supported as pinned, numbers changed [tfX/smoke]" in out.message
    assert out.message.splitlines()[-1] == "    p_adjusted                0.01 -> 0.02"
    out = _judge("refuted", "refuted", ci_low=-1.0)  # under an expected failure too: not an xfail
    assert out.kind == pinned.CHANGED and out.message.splitlines()[-1] == "    ci_low            (absent) -> -1.0"
    assert _judge("refuted", "refuted", p_adjusted=0.01 * (1 + pinned.REL_TOL / 10)).kind == pinned.NOT_SUPPORTED


@pytest.mark.unit
def test_a_labels_only_pin_compares_labels_and_says_so():
    assert _judge("supported", "supported", numbers=None, p_adjusted=0.5).kind == pinned.PASSED
    out = _judge("refuted", "negligible", numbers=None)
    assert out.kind == pinned.CHANGED and out.message.endswith(
        "\n  [tfX/smoke] pins labels only (written before numbers were pinned): numbers not compared"
    )


@pytest.mark.unit
def test_a_failures_whole_text_and_its_accept_hint(tmp_path):
    from cnnclaims import failures

    pins = tmp_path / "sub" / "pins.json"
    hint = failures.accept_hint(
        pins, "k/smoke", (tmp_path / "o.json", ""), " --profile smoke", explicit=False, offer_cli=True, start=tmp_path
    )
    assert hint == (
        f"\n  pinned:   {pins} (does not exist yet)"
        f"\n  obtained: {tmp_path / 'o.json'} (this run's entry for [k/smoke])"
        "\n  to accept this run's entry, if the change is deliberate: `pytest sub --cnnclaims-regen-verdicts "
        f"--cnnclaims-profile smoke` or `python -m cnnclaims pin --profile smoke --file {pins}`, or "
        f"`cp {tmp_path / 'o.json'} {pins}`; then review {pins} and commit it"
    )
    # An existing pins file: unchanged by the run, and git shows what accepting changes.
    pins.parent.mkdir()
    pins.write_text("{}")
    hint = failures.accept_hint(
        pins, "k/smoke", (tmp_path / "o.json", ""), " --profile smoke", explicit=False, offer_cli=True, start=tmp_path
    )
    assert f"pinned:   {pins} (unchanged)" in hint and hint.endswith(f"then review `git diff {pins}` and commit it")
    hint = failures.accept_hint(pins, "k/smoke", "could not write", " --profile smoke", explicit=True, offer_cli=False)
    assert (
        "obtained: none, could not write" in hint
        and f"--cnnclaims-pinned-verdicts {pins}`;" in hint
        and "cp " not in hint
    )
    assert (
        failures.with_details("m", "s", "\n  h", ["a.png", "b.png"]) == "m\n  h\n  s\n  diagnostic plots: a.png, b.png"
    )
    assert failures.with_details("m", "s") == "m\n  s"


@pytest.mark.unit
def test_a_claim_case_knows_whether_it_is_a_null_control():
    from cnnclaims.article import ARTICLE

    case = pinned.ClaimCase(ARTICLE.claims[0], "seeds", None, "k", Path("p.json"), null=True)
    assert case.null and case.section == "null_control" and case.case == f"{ARTICLE.claims[0].id}/seeds"
    claim, scope, pin, key, path = case[:5]  # the 5-tuple it was
    assert (scope, pin, key) == ("seeds", None, "k")
    assert not case._replace(null=False).null and pinned.ClaimCase(*case[:5]).section == "verdicts"
    assert pinned.null_of(case) and pinned.null_of(case, null=True) and not pinned.null_of(case[:5])
    assert pinned.null_of(case[:5], null=True)  # a 5-tuple: the keyword decides
    with pytest.raises(ValueError, match="null=False.*null-control case .*/seeds: drop null="):
        pinned.null_of(case, null=False)


def test_pins_from_before_the_step_down_load_as_labels_only(tmp_path):
    """Pins written by the two-Holm-families pipeline hold p_holm: their numbers are
    dropped on load (the entry then pins labels only, which says to regenerate it),
    so that regenerating the file works instead of being refused."""
    old = tmp_path / "pins.json"
    numbers = {"verdicts": {"C1/frogs": {"p_holm": 0.1}}}
    old.write_text(json.dumps({"entries": {"k/smoke": {"verdicts": {"C1/frogs": "supported"}, "numbers": numbers}}}))
    e = pinned.entry(pinned.load(old), "k/smoke")
    assert e is not None and not pinned.has_numbers(e) and e["verdicts"] == {"C1/frogs": "supported"}
    assert "p_holm" in e["stale_numbers"]
