"""The pytest plugin end to end (pytester): pinned verdicts, strict xfail, regen,
diagnostic plots named in failures, the summary table and the verdict JSON.

The inner sessions run on a synthetic experiment (untrained models, random images)
so these tests take seconds and need no CIFAR-10.
"""

import json

import pytest

# Import everything the inner sessions use here, in the outer process: pytester
# restores sys.modules after each in-process run, and TensorFlow cannot be
# imported twice in one process (it aborts).
import cnnclaims.diagnostics  # noqa: F401
import cnnclaims.figures  # noqa: F401
import cnnclaims.report  # noqa: F401
import cnnclaims.run  # noqa: F401
import cnnclaims.testing  # noqa: F401

pytest_plugins = ["pytester"]

CONFTEST = cnnclaims.testing.INNER_CONFTEST
TESTS = """
def test_claim(claim_case, claim_checker):
    claim_checker(claim_case)

def test_null_control(null_case, claim_checker):
    claim_checker(null_case, null=True)
"""


@pytest.fixture(scope="module")
def synthetic(synthetic_exp):
    """One synthetic experiment for every inner session (in-process runs share it)."""
    cnnclaims.testing.SHARED["experiment"] = synthetic_exp
    yield
    cnnclaims.testing.SHARED.clear()


@pytest.fixture
def inner(pytester, synthetic, cnnclaims_plugin_args, monkeypatch):
    # The inner session's table as in a CI log (110 columns, full claim names): an xdist
    # worker of this session has COLUMNS=80, which the inner table would follow.
    monkeypatch.setenv("COLUMNS", "110")
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_inner=TESTS)
    pins = pytester.path / "pins.json"

    def run(*args):
        return pytester.runpytest_inprocess(
            "--profile",
            "smoke",
            "--pinned-verdicts",
            str(pins),
            "--artifacts",
            str(pytester.path / "art"),
            "-p",
            "no:cacheprovider",
            *cnnclaims_plugin_args,
            *args,
        )

    return run, pins


def test_missing_pins_are_recorded_beside_the_pins_and_fail(inner):
    run, pins = inner
    r = run("-k", "C3-last-layer-sparsity-frogs and test_claim")
    r.assert_outcomes(failed=1)
    r.stdout.fnmatch_lines(
        [
            "*no pinned verdict for C3/frogs under*review it",
            f"*pinned:   {pins} (does not exist yet)",
            f"*obtained: {pins}.obtained (this run's entry for*",
            "*to accept*`pytest --cnnclaims-regen-verdicts --cnnclaims-profile smoke "
            f"--cnnclaims-pinned-verdicts {pins}` or "
            f"`python -m cnnclaims pin --profile smoke --file {pins}`, or `cp {pins}.obtained {pins}`*",
        ]
    )
    # The summary names it too (the line travels on the test's report, for xdist).
    r.stdout.fnmatch_lines(
        [f"this run's pins differ from {pins} (does not exist yet)", f"  this run's entry is in {pins}.obtained"]
    )
    assert not pins.exists(), "a run never writes the pins file from inside a test"
    doc = json.loads((pins.parent / "pins.json.obtained").read_text())
    (entry,) = doc["entries"].values()
    assert entry["verdicts"]["C3/frogs"] in ("supported", "refuted", "negligible", "underpowered")
    assert "null_control" in entry and entry["versions"]["tensorflow"]
    assert "p_two_sided" in entry["numbers"]["verdicts"]["C3/frogs"]


@pytest.mark.integration  # three whole inner sessions over the synthetic experiment: 15-25 s on 2 cores
def test_regen_then_pass_then_flip_fails_with_plots(inner, pytester):
    run, pins = inner
    r = run("--regen-verdicts")
    assert r.ret == 0
    doc = json.loads(pins.read_text())
    (key,) = doc["entries"]
    verdicts = doc["entries"][key]["verdicts"]
    n_claims = len(verdicts)
    n_null = len(doc["entries"][key]["null_control"])
    # With the pins in place, the suite passes: supported claims pass, others xfail strictly.
    r = run()
    outcomes = r.parseoutcomes()
    assert r.ret == 0, r.stdout.str()
    assert outcomes.get("passed", 0) + outcomes.get("xfailed", 0) == n_claims + n_null
    r.stdout.fnmatch_lines(
        ["*cnnclaims verdicts*", "*C1-first-layer-processing*", "*null control*false-positive rate*"]
    )
    table = json.loads((pytester.path / "art" / "verdicts.json").read_text())
    assert len(table["verdicts"]) == n_claims and table["null_control_false_positive_rate"] is not None
    assert all("p_value" in v and "ci_low" in v and "data_scope" in v for v in table["verdicts"])
    # Plots are written for expected failures only; passing claims write none unless asked.
    failing = {c.split("/")[0] + "-" for c, v in verdicts.items() if v != "supported"}
    failing |= {
        c.split("/")[0] + "-" for c, v in doc["entries"][key]["null_control"].items() if v in ("supported", "refuted")
    }
    for png in (pytester.path / "art" / "plots").glob("*.png"):
        assert any(png.name.startswith(f) for f in failing), png.name
    # The compact table (every statistic is in the JSON), a line per scope, the legend,
    # the null splits; no row wider than about 110 columns.
    r.stdout.fnmatch_lines(
        [
            "claim*scope*verdict*effect*p_adj*pin*",
            "seeds: *",
            "pin: = as pinned*",
            "*null splits: 10 of 10 balanced splits of 6 same-size models*",
        ]
    )
    section = r.stdout.str().split("cnnclaims verdicts")[-1].splitlines()
    table_rows = [line for line in section if line.startswith("C")]
    assert table_rows and max(len(line) for line in table_rows) <= 110, max(table_rows, key=len)
    assert table["null_splits"]["splits"] == 10 and table["null_splits"]["dependent"] is True
    assert {v["tier"] for v in table["verdicts"]} == {"primary", "secondary"}


def _regen(run, pins):
    assert run("--regen-verdicts").ret == 0
    doc = json.loads(pins.read_text())
    (key,) = doc["entries"]
    return doc, key


def test_pinned_supported_that_now_fails_names_its_plots(inner, pytester):
    """Both directions of a flip are exercised, whatever chance made the verdicts:
    a case that is not supported, pinned as supported, fails and names its plots."""
    run, pins = inner
    doc, key = _regen(run, pins)
    case = next(c for c, v in doc["entries"][key]["verdicts"].items() if v != "supported" and c.endswith("/seeds"))
    doc["entries"][key]["verdicts"][case] = "supported"
    pins.write_text(json.dumps(doc))
    claim = case.split("/")[0]
    r = run("-k", f"test_claim and {claim}- and seeds")
    assert r.ret != 0
    out = r.stdout.str()
    assert "pinned supported" in out and "diagnostic plots: " in out
    paths = out.split("diagnostic plots: ")[1].split("\n")[0].split(", ")
    assert paths
    for p in paths:
        assert p.endswith(".png") and (pytester.path / p).exists()


def test_pinned_failure_that_now_passes_is_xpass_strict(inner, pytester):
    run, pins = inner
    doc, key = _regen(run, pins)
    supported = [c for c, v in doc["entries"][key]["verdicts"].items() if v == "supported"]
    assert supported, "the synthetic verdicts include supported claims"
    case = supported[0]
    doc["entries"][key]["verdicts"][case] = "refuted"
    pins.write_text(json.dumps(doc))
    claim, scope = case.split("/")
    r = run("-k", f"test_claim and {claim}- and {scope}")
    assert r.ret != 0 and "XPASS(strict)" in r.stdout.str()


def test_label_change_between_failures_is_caught(inner, pytester):
    """underpowered -> negligible (or any change strict xfail cannot see) fails."""
    run, pins = inner
    doc, key = _regen(run, pins)
    case, actual = next(
        (c, v)
        for c, v in doc["entries"][key]["verdicts"].items()
        if v in ("underpowered", "negligible", "refuted") and not c.endswith("/probe")
    )
    other = "negligible" if actual != "negligible" else "underpowered"
    doc["entries"][key]["verdicts"][case] = other
    pins.write_text(json.dumps(doc))
    claim, scope = case.split("/")
    r = run("-k", f"test_claim and {claim}- and {scope}")
    assert r.ret != 0 and f"verdict {actual}, pinned {other}" in r.stdout.str()


def test_expected_failure_writes_plots(inner, pytester):
    run, pins = inner
    assert run("--regen-verdicts", "-k", "test_claim and frogs").ret == 0
    doc = json.loads(pins.read_text())
    (key,) = doc["entries"]
    not_supported = [c for c, v in doc["entries"][key]["verdicts"].items() if v != "supported" and c.endswith("/frogs")]
    assert not_supported, "synthetic models should fail some claims"
    claim = not_supported[0].split("/")[0]
    r = run("-k", f"test_claim and {claim}- and frogs")
    r.assert_outcomes(xfailed=1)
    plots = list((pytester.path / "art" / "plots").glob(f"{claim}-*-frogs*.png"))
    assert plots, "an expected failure writes its diagnostic plots too"


def test_plots_always_differs_from_the_default(inner, pytester):
    """A passing claim writes no plots by default and writes them with --plots=always."""
    run, pins = inner
    doc, key = _regen(run, pins)
    case = next(c for c, v in doc["entries"][key]["verdicts"].items() if v == "supported")
    claim, scope = case.split("/")
    plots = pytester.path / "art" / "plots"
    r = run("-k", f"test_claim and {claim}- and {scope}")
    r.assert_outcomes(passed=1)
    assert not list(plots.glob(f"{claim}-*-{scope}*.png"))
    r = run("-k", f"test_claim and {claim}- and {scope}", "--plots=always")
    r.assert_outcomes(passed=1)
    assert list(plots.glob(f"{claim}-*-{scope}*.png"))
    for png in plots.glob(f"{claim}-*-{scope}*.png"):
        png.unlink()
    r = run("-k", f"test_claim and {claim}- and {scope}", "--plots=never")
    r.assert_outcomes(passed=1)
    assert not list(plots.glob(f"{claim}-*-{scope}*.png"))


def test_a_null_argument_that_contradicts_the_case_is_refused(inner, pytester):
    """claim_checker(case) reads whether a case is a null control from the case
    (pinned.ClaimCase); ``null=`` is still accepted, and must agree."""
    run, _ = inner
    pytester.makepyfile(
        test_contradicts="def test_claim(claim_case, claim_checker):\n    claim_checker(claim_case, null=True)\n"
    )
    r = run("test_contradicts.py", "-k", "C3-last-layer-sparsity-frogs")
    r.assert_outcomes(failed=1)
    r.stdout.fnmatch_lines(["*claim_checker(case, null=True) for a claim case C3/frogs: drop null=...*"])


def test_ids_select_claims(inner):
    run, _ = inner
    r = run("--collect-only", "-q", "-k", "C3")
    r.stdout.fnmatch_lines(
        [
            "*test_claim*C3-last-layer-sparsity-probe*",
            "*test_claim*C3-last-layer-sparsity-frogs*",
            "*test_claim*C3-last-layer-sparsity-seeds*",
        ]
    )
    assert "C1-" not in r.stdout.str()


def test_unreachable_design_is_said_at_collection(inner):
    run, _ = inner
    r = run("--collect-only", "-q", "--seeds", "1")
    r.stdout.fnmatch_lines(["*unreachable with N = 1: seeds scope, primary claims*"])
    assert "unreachable with N" not in run("--collect-only", "-q").stdout.str()


def test_unit_marker_is_applied(inner):
    run, _ = inner
    r = run("--collect-only", "-q", "-m", "unit")
    assert "test_claim" not in r.stdout.str()


def test_obtained_pins_go_to_the_artifacts_where_the_pins_folder_is_not_writable(inner, pytester):
    run, pins = inner
    blocker = pytester.path / "not-a-folder"
    blocker.write_text("a file where the pins' folder should be")  # unwritable even for root
    r = run("-k", "C3-last-layer-sparsity-frogs and test_claim", "--pinned-verdicts", str(blocker / "pins.json"))
    r.assert_outcomes(failed=1)
    art = pytester.path / "art"
    r.stdout.fnmatch_lines(
        [
            f"*obtained: {art / 'pins.json.obtained'} (this run's entry for *; the pins' folder "
            f"{blocker} is not writable*"
        ]
    )
    r.stdout.fnmatch_lines(
        ["this run's pins differ from *", f"  this run's entry is in {art / 'pins.json.obtained'} (the pins' folder*"]
    )
    assert (art / "pins.json.obtained").exists()
    assert "Traceback" not in r.stdout.str()


# --- pinned numbers ---------------------------------------------------------------


def _number_case(doc, key, supported: bool):
    """A (section, case) whose label is (or is not) supported and whose p_adjusted is a number."""
    e = doc["entries"][key]
    return next(
        c
        for c, v in e["verdicts"].items()
        if (v == "supported") == supported and "p_adjusted" in e["numbers"]["verdicts"][c]
    )


@pytest.mark.parametrize("supported", [True, False], ids=["pinned-supported", "pinned-expected-failure"])
def test_pinned_number_changed_by_hand_fails_with_a_diff(inner, pytester, supported):
    """Same label, a number moved beyond the tolerance: a failure (not an xfail) whose
    message shows old and new values and how to accept; the pins file stays as it was
    and this run's entry is in <pins>.obtained."""
    run, pins = inner
    doc, key = _regen(run, pins)
    case = _number_case(doc, key, supported)
    nums = doc["entries"][key]["numbers"]["verdicts"][case]
    obtained_p = nums["p_adjusted"]
    nums["p_adjusted"] = edited = round(obtained_p * 0.5 + 0.01, 6)
    pins.write_text(json.dumps(doc))
    before = pins.read_bytes()
    claim, scope = case.split("/")
    r = run("-k", f"test_claim and {claim}- and {scope}")
    r.assert_outcomes(failed=1)
    out = r.stdout.str()
    assert f"{case}: verdict {doc['entries'][key]['verdicts'][case]} as pinned, numbers changed [{key}]" in out
    assert "PinnedVerdictChanged" in out and "xfail" not in out
    r.stdout.fnmatch_lines(
        [
            "*field*pinned -> obtained",
            f"*p_adjusted*{edited} -> {obtained_p}",
            f"*pinned:   {pins} (unchanged)",
            f"*obtained: {pins}.obtained (this run's entry for [[]{key}])",
            "*to accept*`pytest --cnnclaims-regen-verdicts --cnnclaims-profile smoke "
            f"--cnnclaims-pinned-verdicts {pins}`*"
            f"`cp {pins}.obtained {pins}`*",
        ]
    )
    assert pins.read_bytes() == before, "the pins file is never rewritten from inside a test"
    obtained = json.loads((pins.parent / "pins.json.obtained").read_text())
    assert obtained["entries"][key]["numbers"]["verdicts"][case]["p_adjusted"] == obtained_p
    # Accepting it (copying the obtained file) makes the run pass.
    pins.write_text((pins.parent / "pins.json.obtained").read_text())
    r = run("-k", f"test_claim and {claim}- and {scope}")
    assert r.ret == 0, r.stdout.str()


@pytest.mark.integration  # three whole inner sessions over the synthetic experiment: 15-25 s on 2 cores
def test_pinned_number_changed_within_the_tolerance_passes(inner, pytester):
    from cnnclaims import pinned

    run, pins = inner
    doc, key = _regen(run, pins)
    assert pinned.REL_TOL >= 1e-6
    nums = doc["entries"][key]["numbers"]["verdicts"]
    for case in nums:  # every number of every case, moved by 1e-7 relative: within the stated tolerance
        nums[case] = {f: x * (1 + 1e-7) if isinstance(x, float) else x for f, x in nums[case].items()}
    pins.write_text(json.dumps(doc))
    r = run("-k", "test_claim")
    assert r.ret == 0, r.stdout.str()
    assert not (pins.parent / "pins.json.obtained").exists(), "a passing run writes no .obtained file"


@pytest.mark.integration  # three whole inner sessions over the synthetic experiment: 15-25 s on 2 cores
def test_labels_only_entry_compares_labels_and_says_so(inner, pytester):
    """An entry written before numbers were pinned still loads: its labels are compared,
    its numbers not, and the summary and failures say how to pin them."""
    run, pins = inner
    doc, key = _regen(run, pins)
    del doc["entries"][key]["numbers"]
    pins.write_text(json.dumps(doc))
    r = run("-k", "test_claim")
    assert r.ret == 0, r.stdout.str()
    r.stdout.fnmatch_lines(
        [
            # wrapped at the table's width
            f"pin key {key} pins labels only (written before numbers were pinned): *",
            "*`pytest --cnnclaims-regen-verdicts --cnnclaims-profile smoke` pins them*",
        ]
    )
    case, actual = next(
        (c, v)
        for c, v in doc["entries"][key]["verdicts"].items()
        if v in ("underpowered", "negligible", "refuted") and not c.endswith("/probe")
    )
    doc["entries"][key]["verdicts"][case] = other = "negligible" if actual != "negligible" else "underpowered"
    pins.write_text(json.dumps(doc))
    claim, scope = case.split("/")
    r = run("-k", f"test_claim and {claim}- and {scope}")
    r.assert_outcomes(failed=1)
    r.stdout.fnmatch_lines(
        [
            f"*verdict*{other} -> {actual}",
            f"*[[]{key}] pins labels only (written before numbers were pinned): numbers not compared",
        ]
    )


def test_the_fragile_line_fits_the_terminal_and_counts_the_cases():
    """It was one line of about 6,000 characters on the smoke profile (a fresh user)."""
    from cnnclaims.summary import fragile_line

    fragile = {("verdicts", f"C{i}/frogs"): {"tf2.15": "supported", "tf2.21": "refuted"} for i in range(20)}
    text = fragile_line(fragile, "smoke")
    assert max(map(len, text.splitlines())) <= 110
    assert "20 case(s) pinned differently" in text and "and 16 more" in text
