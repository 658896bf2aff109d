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
import cnnclaims.experiment  # noqa: F401
import cnnclaims.figures  # noqa: F401
import cnnclaims.report  # noqa: F401
import cnnclaims.testing  # noqa: F401

pytest_plugins = ["pytester"]

CONFTEST = """
import cnnclaims.testing
from cnnclaims.pytest_plugin import set_experiment

def pytest_configure(config):
    set_experiment(config, cnnclaims.testing.SHARED["experiment"])
"""
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
def inner(pytester, synthetic):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_inner=TESTS)
    pins = pytester.path / "pins.json"

    def run(*args):
        return pytester.runpytest_inprocess(
            "--profile", "smoke", "--pinned-verdicts", str(pins), "--artifacts", str(pytester.path / "art"),
            "-p", "no:cacheprovider", "-p", "cnnclaims.pytest_plugin", *args)

    return run, pins


def test_missing_pins_are_recorded_and_fail(inner):
    run, pins = inner
    r = run("-k", "C3-last-layer-sparsity-frogs and test_claim")
    r.assert_outcomes(failed=1)
    r.stdout.fnmatch_lines(["*no pinned verdict for C3/frogs*recorded this run's verdicts*"])
    doc = json.loads(pins.read_text())
    (entry,) = doc["entries"].values()
    assert entry["verdicts"]["C3/frogs"] in ("supported", "refuted", "inconclusive")
    assert "null_control" in entry and entry["versions"]["tensorflow"]


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
    r.stdout.fnmatch_lines(["*cnnclaims verdicts*", "*C1-first-layer-processing*", "*null control*false-positive rate*"])
    table = json.loads((pytester.path / "art" / "verdicts.json").read_text())
    assert len(table["verdicts"]) == n_claims and table["null_control_false_positive_rate"] is not None
    assert all("p_value" in v and "ci_low" in v and "data_scope" in v for v in table["verdicts"])
    # Plots are written for expected failures only; passing claims write none unless asked.
    failing = {c.split("/")[0] + "-" for c, v in verdicts.items() if v != "supported"}
    failing |= {c.split("/")[0] + "-" for c, v in doc["entries"][key]["null_control"].items() if v == "supported"}
    for png in (pytester.path / "art" / "plots").glob("*.png"):
        assert any(png.name.startswith(f) for f in failing), png.name

    # Flip one pinned verdict by hand: the suite must fail and name its plots.
    case = "C3/seeds"
    actual = verdicts[case]
    flipped = "refuted" if actual == "supported" else "supported"
    doc["entries"][key]["verdicts"][case] = flipped
    pins.write_text(json.dumps(doc))
    r = run("-k", "C3-last-layer-sparsity-seeds and test_claim")
    assert r.ret != 0
    out = r.stdout.str()
    if flipped == "refuted":  # now passes where a failure was pinned: strict xfail turns red
        assert "XPASS(strict)" in out
        return
    # pinned "supported" but not supported now: a real failure that names its plots
    assert f"pinned supported" in out and "diagnostic plots: " in out
    paths = out.split("diagnostic plots: ")[1].split("\n")[0].split(", ")
    assert paths
    for p in paths:
        assert p.endswith(".png") and (pytester.path / p).exists()


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


def test_plots_always(inner, pytester):
    run, pins = inner
    run("--regen-verdicts", "-k", "C10 and seeds")
    r = run("-k", "C10 and seeds and test_claim", "--plots=always")
    assert list((pytester.path / "art" / "plots").glob("C10-bigger-data-better-seeds*.png"))


def test_ids_select_claims(inner):
    run, _ = inner
    r = run("--collect-only", "-q", "-k", "C3")
    r.stdout.fnmatch_lines(["*test_claim*C3-last-layer-sparsity-probe*", "*test_claim*C3-last-layer-sparsity-frogs*",
                            "*test_claim*C3-last-layer-sparsity-seeds*"])
    assert "C1-" not in r.stdout.str()


def test_unit_marker_is_applied(inner):
    run, _ = inner
    r = run("--collect-only", "-q", "-m", "unit")
    assert "test_claim" not in r.stdout.str()
