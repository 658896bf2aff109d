"""The plugin under pytest-xdist: the controller's verdict table and verdict JSON
hold every worker's verdicts, the same as a run in one process.

The inner sessions run in subprocesses (xdist starts its workers as processes), so
each process builds the synthetic experiment itself (seconds, deterministic: the
same untrained models in every process) from a session fixture, which runs only where
tests run: on each worker, never on the controller.
"""

import json

import pytest

pytest.importorskip("xdist")

pytest_plugins = ["pytester"]

CONFTEST = """
from pathlib import Path

import pytest

from cnnclaims.pytest_plugin import set_experiment


@pytest.fixture(scope="session", autouse=True)
def _synthetic_experiment(request, tmp_path_factory):
    from cnnclaims.testing import synthetic_experiment

    set_experiment(request.config, synthetic_experiment(tmp_path_factory.mktemp("synthetic")))


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session):
    # After the plugin's own session end on a worker: has it written verdicts.json?
    config = session.config
    if hasattr(config, "workerinput"):
        art = Path(config.getoption("--cnnclaims-artifacts"))
        (config.rootpath / f"{config.workerinput['workerid']}.seen").write_text(
            str((art / "verdicts.json").exists()))
"""
TESTS = """
def test_claim(claim_case, claim_checker):
    claim_checker(claim_case)

def test_null_control(null_case, claim_checker):
    claim_checker(null_case)  # the case knows it is a null control
"""


def _summary(out: str) -> list:
    """The cnnclaims verdicts section of the terminal summary, less its JSON path."""
    lines = out.splitlines()
    start = next((i for i, line in enumerate(lines) if "cnnclaims verdicts" in line), None)
    assert start is not None, f"no verdict table in:\n{out}"
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("verdict JSON: "))
    return lines[start:end]


def _without_time(doc: dict) -> dict:
    return {k: v for k, v in doc.items() if k != "written"}


@pytest.mark.integration  # trains or runs TensorFlow sessions: minutes on 2 cores
def test_xdist_table_and_json_equal_a_plain_run(pytester, cnnclaims_plugin_args):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_inner=TESTS)
    pins = pytester.path / "pins.json"

    def run(art, *args):
        return pytester.runpytest_subprocess(
            "--profile",
            "smoke",
            "--pinned-verdicts",
            str(pins),
            "--artifacts",
            str(pytester.path / art),
            "-p",
            "no:cacheprovider",
            *cnnclaims_plugin_args,
            *args,
        )

    # A plain run pins its verdicts; the -n 2 run is then checked against those pins.
    plain = run("art-plain", "--regen-verdicts")
    assert plain.ret == 0, plain.stdout.str()
    entry = next(iter(json.loads(pins.read_text())["entries"].values()))
    n_claims, n_null = len(entry["verdicts"]), len(entry["null_control"])
    dist = run("art-dist", "-p", "xdist", "-n", "2")
    assert dist.ret == 0, dist.stdout.str()
    assert "2 workers" in dist.stdout.str()
    # Workers write no verdict JSON; only the controller does, after them.
    assert {p.name: p.read_text() for p in pytester.path.glob("*.seen")} == {"gw0.seen": "False", "gw1.seen": "False"}
    assert plain.parseoutcomes()["passed"] == n_claims + n_null
    o = dist.parseoutcomes()
    assert o.get("passed", 0) + o.get("xfailed", 0) == n_claims + n_null

    # The table: same rows, labels, pins, null-control rate and null splits.
    assert _summary(dist.stdout.str()) == _summary(plain.stdout.str())
    assert any("false-positive rate" in line for line in _summary(dist.stdout.str()))
    assert any(line.startswith("null splits: ") for line in _summary(dist.stdout.str()))

    a = json.loads((pytester.path / "art-plain" / "verdicts.json").read_text())
    b = json.loads((pytester.path / "art-dist" / "verdicts.json").read_text())
    assert [v["claim"] + "/" + v["scope"] for v in b["verdicts"]] == [
        v["claim"] + "/" + v["scope"] for v in a["verdicts"]
    ]
    assert {f"{v['claim']}/{v['scope']}": v["verdict"] for v in b["verdicts"]} == entry["verdicts"]
    assert {f"{v['claim']}/{v['scope']}": v["verdict"] for v in b["null_control"]} == entry["null_control"]
    assert len(b["verdicts"]) == n_claims and len(b["null_control"]) == n_null
    assert b["null_control_false_positive_rate"] == a["null_control_false_positive_rate"] is not None
    assert b["null_splits"] == a["null_splits"] and b["null_splits"]["splits"] == 10
    assert b["models"] == a["models"] and set(b["models"]) == {"benchmark", "dummy", "null", "sizes"}
    assert _without_time(b) == _without_time(a)


@pytest.mark.integration  # trains or runs TensorFlow sessions: minutes on 2 cores
def test_xdist_summary_says_where_this_runs_pins_went_as_a_plain_run_does(pytester, cnnclaims_plugin_args):
    """Pins that differ (here: none yet) make each process that ran claim tests write
    ``<pins>.obtained``; the summary's line naming it must reach the controller's summary
    under ``-n 2`` too, where no test ran in the controller (issue 22, item 4)."""
    from cnnclaims.summary import recorded_line

    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_inner=TESTS)
    pins = pytester.path / "pins.json"  # absent: every case is new, so differs from its pin

    def run(art, *args):
        # Two cases, so that under -n 2 each worker may take one; the fixed cost is the
        # synthetic experiment per process.
        return pytester.runpytest_subprocess(
            "--cnnclaims-profile",
            "smoke",
            "--cnnclaims-pinned-verdicts",
            str(pins),
            "--cnnclaims-artifacts",
            str(pytester.path / art),
            "-p",
            "no:cacheprovider",
            "-k",
            "test_claim and (probe or seeds) and C3-",
            "--cnnclaims-plots",
            "never",  # (a new case fails, and would draw its plots)
            *cnnclaims_plugin_args,
            *args,
        )

    plain = run("art-plain")
    dist = run("art-dist", "-p", "xdist", "-n", "2")
    for r in (plain, dist):
        assert r.parseoutcomes().get("failed") == 2, r.stdout.str()
    line = recorded_line(pins, (pins.parent / "pins.json.obtained", ""))
    assert all(part in _summary(plain.stdout.str()) for part in line.splitlines())
    assert _summary(dist.stdout.str()) == _summary(plain.stdout.str())
