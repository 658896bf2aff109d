"""One cause, one error: data that does not load (missing, unreachable, damaged), a
cache that cannot store the models the claims need, or a bug in an experiment's own
loader stop a pytest session once, with one message and the fix, before the claim tests
run; under pytest-xdist the controller says it once. They used to fail every test alike,
each retrying the load (widths without data and without internet: 20 failures and
12,938 lines of urllib tracebacks; the article's 64 claims under -n 2: 64 failures).

The sessions are the article's claim tests (``-k`` selects 8 of them), run in this
process (the data loader is counted) and, under xdist, in a subprocess. Nothing is
trained: each cause is met before any training.
"""

import shutil
from types import SimpleNamespace

import pytest

# As in test_cache_faults.py: what the in-process sessions import, imported once here
# (TensorFlow cannot be imported twice in one process).
import cnnclaims.data
import cnnclaims.run  # noqa: F401
from cnnclaims.data import Cifar10
from cnnclaims.errors import DataError
from cnnclaims.testing import random_cifar

pytest_plugins = ["pytester"]


CLAIMS = """
from cnnclaims import parametrize_claims
from cnnclaims.article import ARTICLE


@parametrize_claims(ARTICLE)
def test_claim(claim_case, claim_checker):
    claim_checker(claim_case)
"""
SELECT = ["-k", "C3 or C10"]  # 8 claim tests: 2 claims x probe, frogs, seeds, sizes


@pytest.fixture
def session(pytester, tmp_path, monkeypatch, cnnclaims_plugin_args):
    """``run(*args) -> (result, text, loads)``: the article's claim tests in an
    in-process pytest session of the smoke profile, with its own cache and artifacts;
    ``loads``: how many times the session loaded its data."""
    for var in ("CNNCLAIMS_DATA", "CNNCLAIMS_PROFILE", "CNNCLAIMS_PROBE"):
        monkeypatch.delenv(var, raising=False)
    pytester.makepyfile(test_inner=CLAIMS)
    loads = []
    real = cnnclaims.data.load_dataset

    def counted(*args, **kwargs):
        loads.append(1)
        return loader[0](*args, **kwargs)

    loader = [real]
    monkeypatch.setattr(cnnclaims.data, "load_dataset", counted)

    def run(*args, load=None):
        loader[0] = load or real
        r = pytester.runpytest_inprocess(
            "-p",
            "no:cacheprovider",
            *cnnclaims_plugin_args,
            "--cnnclaims-profile",
            "smoke",
            f"--cnnclaims-cache-dir={tmp_path / 'cache'}",
            f"--cnnclaims-artifacts={tmp_path / 'art'}",
            *SELECT,
            *args,
        )
        return r, r.stdout.str() + r.stderr.str(), len(loads)

    return run


def no_internet(*args, **kwargs):
    raise OSError(
        "URL fetch failure on https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz: None -- "
        "[Errno -2] Name or service not known"
    )


@pytest.mark.parametrize("cause", ["no internet", "empty folder", "empty folder, --cnnclaims-probe-index"])
def test_data_that_does_not_load_stops_the_session_once_before_any_claim_test(session, tmp_path, monkeypatch, cause):
    """No --data and no internet (Keras's download fails), or --data naming a folder
    that holds no CIFAR-10: one usage error, the data tried once, no test run. With a
    probe index given, the message is the data's, not the probe index's."""
    if cause == "no internet":
        import cnnclaims.compat

        monkeypatch.setattr(cnnclaims.compat, "cifar10_download", no_internet)
        args = []
        expected = (
            "cnnclaims: keras.datasets.cifar10.load_data() failed (URL fetch failure on https://www.cs.toronto.edu/"
            "~kriz/cifar-10-python.tar.gz: None -- [Errno -2] Name or service not known); without internet, set "
            "--data or $CNNCLAIMS_DATA to a local CIFAR-10 copy"
        )
    else:
        (tmp_path / "empty").mkdir()
        args = [f"--cnnclaims-data={tmp_path / 'empty'}"]
        args += ["--cnnclaims-probe-index", "18"] if "probe" in cause else []
        expected = (
            f"cnnclaims: CIFAR-10 source {tmp_path / 'empty'} holds neither data_batch_* files nor train/ and "
            "test/ folders; point --data or $CNNCLAIMS_DATA at the official 'cifar-10-batches-py' folder"
        )
    r, text, loads = session(*args)
    assert r.ret == pytest.ExitCode.USAGE_ERROR, text
    r.assert_outcomes()  # nothing passed, failed or errored
    assert loads == 1 and text.count(expected) == 1, (loads, text)
    assert "Traceback" not in text and "--probe-index /" not in text


def tiny_cifar(*args, **kwargs):
    (xtr, ytr), (xte, yte) = random_cifar(100, 3, seed=2)  # 1,000 training images: the smoke sweep's largest size
    return Cifar10(xtr, ytr, xte, yte, source="synthetic", fingerprint="tiny")


def test_a_cache_without_room_for_the_models_stops_the_session_before_any_claim_test(session, tmp_path, monkeypatch):
    """The models the claims need cannot be stored (here: the disk has 2 MB free): one
    usage error naming the folder, its free space and the fix, before any test (the
    first test used to fail with it, after the data was loaded in it)."""
    monkeypatch.setattr(shutil, "disk_usage", lambda p: SimpleNamespace(free=2_000_000))
    r, text, loads = session(load=tiny_cifar)
    assert r.ret == pytest.ExitCode.USAGE_ERROR, text
    r.assert_outcomes()
    expected = f"cnnclaims: no space left in the cache folder {tmp_path / 'cache'} (2.0 MB free"
    assert loads == 1 and text.count(expected) == 1 and "--cache-dir PATH" in text, text
    assert not list((tmp_path / "cache" / "models").glob("*-*")), "nothing is trained"


def test_a_bug_in_the_loader_is_one_error_with_its_traceback_and_the_session_stops(session):
    """Not a cause the harness knows (a bug in an experiment's load_data): its
    traceback once, as the first claim test's setup error, then the session stops."""

    def buggy(*args, **kwargs):
        raise RuntimeError("a bug in load_data")

    r, text, loads = session(load=buggy)
    r.assert_outcomes(errors=1)
    assert loads == 1, text
    assert text.count("RuntimeError: a bug in load_data") >= 1 and "def buggy" in text  # the traceback
    assert text.count("Interrupted: cnnclaims: the session stopped: preparing the claim tests failed with ") == 1


def test_data_error_in_tests_that_use_the_run_stops_the_session_once(
    pytester, tmp_path, monkeypatch, cnnclaims_plugin_args
):
    """Tests that use the ``run`` fixture (not claim tests) meet the data lazily: the first
    fails in one line and the session stops (each used to retry the load and fail)."""
    loads = []

    def missing(*args, **kwargs):
        loads.append(1)
        raise DataError(f"CIFAR-10 source {tmp_path / 'nowhere'} does not exist; point --data or $CNNCLAIMS_DATA at it")

    monkeypatch.setattr(cnnclaims.data, "load_dataset", missing)
    pytester.makepyfile(test_inner="".join(f"def test_{i}(run):\n    run.data\n\n" for i in range(3)))
    r = pytester.runpytest_inprocess(
        "-p",
        "no:cacheprovider",
        *cnnclaims_plugin_args,
        "--cnnclaims-profile",
        "smoke",
        f"--cnnclaims-cache-dir={tmp_path / 'cache'}",
        f"--cnnclaims-artifacts={tmp_path / 'art'}",
    )
    r.assert_outcomes(failed=1)
    text = r.stdout.str()
    assert loads == [1] and "Traceback" not in text, text
    assert f"Interrupted: cnnclaims: CIFAR-10 source {tmp_path / 'nowhere'} does not exist" in text


@pytest.mark.integration  # (no data, but two workers that start TensorFlow: 20-40 s)
def test_under_xdist_one_test_fails_in_one_line_and_the_other_worker_stops(pytester, tmp_path, cnnclaims_plugin_args):
    """Two workers, data that does not load: the first worker to meet it reports it as
    its first claim test's error, in one line, and tells the other (through the
    controller's basetemp, which they share), which stops without running or reporting
    anything; the controller ends with the line (each worker used to fail every test it
    ran, alike, each after its own attempt to load the data)."""
    pytest.importorskip("xdist")
    (tmp_path / "empty").mkdir()
    pytester.makepyfile(test_inner=CLAIMS)
    r = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        *cnnclaims_plugin_args,
        "-p",
        "xdist",
        "-n",
        "2",
        "--cnnclaims-profile",
        "smoke",
        f"--cnnclaims-cache-dir={tmp_path / 'cache'}",
        f"--cnnclaims-artifacts={tmp_path / 'art'}",
        f"--cnnclaims-data={tmp_path / 'empty'}",
        *SELECT,
    )
    text = r.stdout.str() + r.stderr.str()
    assert r.ret == pytest.ExitCode.INTERRUPTED and "INTERNALERROR" not in text and "Traceback" not in text, text
    assert r.parseoutcomes() == {"error": 1} or r.parseoutcomes() == {"errors": 1}, text
    r.stdout.fnmatch_lines(
        [
            f"cnnclaims: CIFAR-10 source {tmp_path / 'empty'} holds neither*",  # the error, in one line
            f"*Interrupted: cnnclaims: CIFAR-10 source {tmp_path / 'empty'} holds neither*",
        ]
    )
