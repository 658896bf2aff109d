"""Filesystem faults of the cache and artifacts folders, and the probe index: a warm
read-only cache serves reads; a folder that cannot be created, a full disk, a write a
read-only cache cannot take and a probe that is not a frog are each one clear error,
once, naming the path (or index) and the option that fixes it; cache files get the
mode of any new file; a discarded corrupt entry is said through pytest's capture.

A read-only folder is made read-only for real: chmod a-w as a normal user, a read-only
bind mount as root (chmod does not stop root). Where root cannot mount (a container
without CAP_SYS_ADMIN) those tests are skipped rather than simulated. A full disk is
simulated: the write (np.savez) raises OSError(ENOSPC), as it does on a full
filesystem (checked by hand on 20 MB and 181 MB tmpfs caches, see docs/concepts.md).
"""

import errno
import json
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

# As in test_plugin.py: what the in-process sessions import, imported once here
# (TensorFlow cannot be imported twice in one process).
import cnnclaims.run  # noqa: F401
import cnnclaims.testing  # noqa: F401
from cnnclaims import cache
from cnnclaims.data import Cifar10
from cnnclaims.errors import CnnClaimsError
from cnnclaims.testing import random_cifar

pytest_plugins = ["pytester"]


@pytest.fixture
def read_only():
    """``make(folder)``: ``folder`` and all it holds become read-only for this process,
    for real; undone after the test."""
    mounted, modes = [], []

    def make(folder):
        folder = Path(folder)
        if os.geteuid() != 0:
            for p in [folder, *folder.rglob("*")]:
                modes.append((p, p.stat().st_mode))
                p.chmod(stat.S_IMODE(p.stat().st_mode) & ~0o222)
            return
        ok = (
            shutil.which("mount")
            and subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True).returncode == 0
        )
        if ok:
            mounted.append(folder)
            ok = subprocess.run(["mount", "-o", "remount,ro,bind", str(folder)], capture_output=True).returncode == 0
        if not ok:
            pytest.skip("root without a read-only bind mount (chmod does not stop root)")
        with pytest.raises(OSError):  # it is read-only, even for root
            (folder / ".probe").write_text("x")

    yield make
    for folder in reversed(mounted):
        subprocess.run(["umount", str(folder)], check=True)
    for p, mode in reversed(modes):
        p.chmod(stat.S_IMODE(mode))


@pytest.fixture
def fresh_notices(monkeypatch):
    """The "cannot store" notice is said once per process: reset it for this test."""
    monkeypatch.setattr(cache, "_UNSTORED", [], raising=False)


def tiny_data():
    (xtr, ytr), (xte, yte) = random_cifar(10, 3, seed=2)
    return Cifar10(xtr, ytr, xte, yte, source="synthetic", fingerprint="tiny")


def tiny_run(cache_dir, **kw):
    """A Run of the smoke profile over tiny random data (nothing trained yet)."""
    from cnnclaims.run import Run

    run = Run("smoke", cache_dir=cache_dir, workers=1, progress=lambda *_: None, **kw)
    run.__dict__["data"] = tiny_data()
    return run


# --- 1. a warm read-only cache --------------------------------------------------------


def test_warm_read_only_cache_serves_models_without_a_write_lock(tmp_path, read_only, fresh_notices, capsys):
    """Every model cached, the cache read-only: found and loaded, no .lock file needed
    (all 55 claim tests used to fail on a model's .lock). A record that wants its
    one-off migration (written before records carried their hashes) is used as it is."""
    from cnnclaims.training import TrainSpec, get_trained

    spec = TrainSpec("dummy", 50, seed=7, max_epochs=1, patience=1, batch_size=16)
    data, root = tiny_data(), tmp_path / "cache"
    first = get_trained(spec, data, root, progress=lambda *_: None)
    old = tmp_path / "old"
    shutil.copytree(root, old)
    record = old / "models" / first.path.name / "record.json"
    rec = json.loads(record.read_text())
    for field in ("model_sha256", "checksum"):
        rec.pop(field, None)
    record.write_text(json.dumps(rec))
    assert list(root.glob("models/*.lock"))  # read-only with its lock file: a shared lock
    for lock in old.glob("models/*.lock"):
        lock.unlink()  # read-only without one (an image made without them): no lock
    read_only(root)
    read_only(old)
    again = get_trained(spec, data, root, progress=lambda *_: pytest.fail("trained again"))
    assert again.path == first.path and again.key == first.key
    assert again.model.count_params() == first.model.count_params()
    migrated = get_trained(spec, data, old, progress=lambda *_: pytest.fail("trained again"))
    assert migrated.key == first.key and migrated.model is not None
    assert "cannot store" in capsys.readouterr().err  # the migration, said once, not stored


def test_read_only_cache_computes_results_without_storing_them(tmp_path, read_only, fresh_notices, capsys):
    """A result the read-only cache lacks (verdicts, statistics, decoded data) is computed
    and used, said once, not stored: no traceback."""
    root = tmp_path / "cache"
    root.mkdir()
    read_only(root)
    run = tiny_run(root)
    calls = []
    for _ in range(2):
        assert run.results.get("verdicts", "x", {"k": 1}, lambda: calls.append(1) or {"v": [1.5]}) == {"v": [1.5]}
    assert len(calls) == 2 and not any(root.iterdir())
    assert cache.write_npz(root / "data" / "x.npz", a=np.arange(3)) is False
    err = capsys.readouterr().err
    assert err.count("cannot store") == 1 and str(root / "verdicts") in err


def test_read_only_cache_that_must_store_a_model_fails_once_before_training(tmp_path, read_only):
    """A model the read-only cache lacks: one CacheWriteError naming the folder and
    --cache-dir, before any training (it used to be a raw PermissionError on a .lock)."""
    root = tmp_path / "cache"
    root.mkdir()
    read_only(root)
    run = tiny_run(root)
    with pytest.raises(
        CnnClaimsError,
        match=rf"cache folder {root} cannot be written .*not cached and must be "
        r"trained .*--cache-dir PATH \(or set \$CNNCLAIMS_CACHE\)",
    ) as e:
        run.models(run.a)
    assert type(e.value).__name__ == "CacheWriteError"


# --- 2. a folder that cannot be created -----------------------------------------------

PASSING = "def test_x():\n    pass\n"
USES_RUN = "def test_x(run):\n    run.cache_dir\n"


def _blocked(tmp_path, how, read_only):
    """A cache path that cannot be created, and the thing in its way."""
    if how == "file":  # the folder itself is a file
        (tmp_path / "c").write_text("x")
        return tmp_path / "c", tmp_path / "c"
    if how == "file-above":  # a file where a parent folder should be
        (tmp_path / "f").write_text("x")
        return tmp_path / "f" / "cache", tmp_path / "f"
    (tmp_path / "ro").mkdir()
    read_only(tmp_path / "ro")
    return tmp_path / "ro" / "cache", tmp_path / "ro"


@pytest.mark.parametrize("how", ["file", "file-above", "read-only-parent"])
@pytest.mark.parametrize("option", ["--cache-dir", "--artifacts", "CNNCLAIMS_CACHE"])
def test_folder_that_cannot_be_created_is_one_usage_error_at_start(
    pytester, tmp_path, read_only, how, option, cnnclaims_plugin_args, monkeypatch
):
    """A cache (or artifacts) folder that cannot be created: one usage error naming it
    and its option before any test runs (it used to be 517 s, CIFAR-10 decoded 55
    times, then 55 tracebacks)."""
    path, culprit = _blocked(tmp_path, how, read_only)
    pytester.makepyfile(test_inner=PASSING)
    args = ["-p", "no:cacheprovider", *cnnclaims_plugin_args]
    if option.startswith("--"):
        args += [option, str(path)]
    else:
        monkeypatch.setenv(option, str(path))
    t0 = time.perf_counter()
    r = pytester.runpytest_inprocess(*args)
    assert time.perf_counter() - t0 < 5
    assert r.ret == pytest.ExitCode.USAGE_ERROR, r.stdout.str()
    what = "artifacts folder" if option == "--artifacts" else "cache folder"
    name = (
        "--artifacts PATH (or set $CNNCLAIMS_ARTIFACTS)"
        if option == "--artifacts"
        else "--cache-dir PATH (or set $CNNCLAIMS_CACHE)"
    )
    err = r.stderr.str()
    assert f"cnnclaims: the {what} {path} cannot be created: {culprit} is " in err and name in err
    assert "test_x" not in r.stdout.str()


def test_default_cache_folder_that_cannot_be_created_stops_when_the_run_is_built(
    pytester, cnnclaims_plugin_args, monkeypatch
):
    """The default cache (the user's cache folder, $XDG_CACHE_HOME/cnnclaims), with a
    file in its way: only tests that need the experiment need it, so those stop the
    session, once."""
    for var in ("CNNCLAIMS_CACHE", "CNNCLAIMS_ARTIFACTS"):  # tox sets them: the defaults are under test
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(pytester.path / "xdg"))
    (pytester.path / "xdg").write_text("not a folder")
    pytester.makepyfile(test_inner=USES_RUN + "\n\ndef test_y(run):\n    pass\n")
    r = pytester.runpytest_inprocess("-p", "no:cacheprovider", *cnnclaims_plugin_args)
    assert r.ret == pytest.ExitCode.USAGE_ERROR
    r.stdout.fnmatch_lines(
        [
            f"*cnnclaims: the cache folder {pytester.path / 'xdg' / 'cnnclaims'} cannot be created: "
            f"{pytester.path / 'xdg'} is a file*--cache-dir PATH*"
        ]
    )
    r.assert_outcomes()  # nothing passed, failed or errored


def test_cli_folder_that_cannot_be_created_is_one_line_at_once(tmp_path, capsys):
    from cnnclaims.__main__ import main

    (tmp_path / "f").write_text("x")
    for args, what in (
        (["--cache-dir", str(tmp_path / "f" / "c")], "cache folder"),
        (["--out", str(tmp_path / "f" / "out")], "output folder"),
    ):
        t0 = time.perf_counter()
        assert main(["report", "--profile", "smoke", "--data", str(tmp_path / "nodata"), *args]) == 2
        assert time.perf_counter() - t0 < 1
        err = capsys.readouterr().err
        assert (
            err.count("\n") == 1
            and err.startswith(f"error: the {what} {tmp_path / 'f'}")
            and f"{tmp_path / 'f'} is a file, not a folder" in err
            and args[0] in err
        )


# --- 3. a full disk -------------------------------------------------------------------


@pytest.fixture
def full_disk(monkeypatch):
    """np.savez fails as on a full filesystem (after writing part of the file)."""
    calls = []

    def savez(fh, **arrays):
        calls.append(1)
        fh.write(b"PK partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(np, "savez", savez)
    return calls


def test_full_disk_is_one_error_naming_the_file_and_its_size(tmp_path, full_disk):
    path = tmp_path / "data" / "x.npz"
    with pytest.raises(CnnClaimsError, match=rf"no space left to write {path} \(0.8 MB; .* MB free") as e:
        cache.write_npz(path, a=np.zeros(100_000))
    assert e.value.no_space and not any((tmp_path / "data").iterdir())  # no partial file left


def test_full_disk_in_a_training_worker_or_h5py_is_recognised(tmp_path):
    """A worker's error reaches the parent as text (concurrent.futures' remote traceback);
    h5py says errno = 28 in its message: both are a full disk, sized by the plan."""
    from concurrent.futures.process import _RemoteTraceback

    for exc in (
        OSError("Unable to synchronously create file (errno = 28, error message = 'No space left on device')"),
        RuntimeError("x"),
    ):
        if isinstance(exc, RuntimeError):
            exc.__cause__ = _RemoteTraceback("Traceback...\nOSError: [Errno 28] No space left on device: 'm'")
        err = cache.write_failure(exc, tmp_path, n_models=24)
        assert err is not None and err.no_space
        assert f"no space left in the cache folder {tmp_path} (" in str(err)
        assert "24 models x 1.6 MB" in str(err) and "decoded data 184 MB" in str(err) and "--cache-dir" in str(err)
    assert cache.write_failure(ValueError("unrelated"), tmp_path, 24) is None
    assert cache.write_failure(OSError(errno.EROFS, "Read-only file system", "/elsewhere"), tmp_path) is None


def test_too_little_room_for_the_models_fails_before_training(tmp_path, monkeypatch):
    """It used to train first (minutes) and fail on the first model it stored."""
    run = tiny_run(tmp_path / "cache")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: SimpleNamespace(free=2_000_000))
    with pytest.raises(
        CnnClaimsError,
        match=rf"no space left in the cache folder {tmp_path / 'cache'} \(2.0 MB "
        r"free.*the 15 model\(s\) this run must train need about 24 MB there \(15 x 1.6 MB\).*"
        r"--cache-dir",
    ):
        run.models(run.a)


def test_full_disk_stops_the_session_after_one_attempt(
    pytester, tmp_path, full_disk, monkeypatch, cnnclaims_plugin_args
):
    """Each test used to decode (or train) again and fail alike with a raw "No space
    left" (540 s and 883 s): one attempt, one error naming the folder and the space a
    run needs, and the session stops."""
    import cnnclaims.data

    root = tmp_path / "cache"

    def load_dataset(*args, **kw):  # decodes, then stores the arrays: the disk is full
        cache.write_npz(root / "data" / "cifar10-x.npz", x=np.zeros((1000, 32, 32, 3), np.uint8))

    monkeypatch.setattr(cnnclaims.data, "load_dataset", load_dataset)
    pytester.makepyfile(test_inner="".join(f"def test_{i}(run):\n    run.data\n\n" for i in range(3)))
    r = pytester.runpytest_inprocess(
        "-p",
        "no:cacheprovider",
        *cnnclaims_plugin_args,
        "--profile",
        "smoke",
        "--cache-dir",
        str(root),
        "--artifacts",
        str(tmp_path / "art"),
    )
    assert len(full_disk) == 1
    r.assert_outcomes(failed=1)
    out = r.stdout.str()
    assert f"Interrupted: cnnclaims: no space left in the cache folder {root} (" in out
    assert "a run of this plan stores about 209 MB there (decoded data 184 MB, 15 models x 1.6 MB" in out
    assert "Traceback" not in out and "--cache-dir PATH" in out


# --- 4. file modes --------------------------------------------------------------------


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640)], ids=["umask022", "umask027"])
def test_cache_files_get_the_mode_of_any_new_file(tmp_path, umask, mode):
    """0666 less the umask, as open() gives the model files (mkstemp's 0600 made records
    unreadable to the other users of a shared cache)."""
    old = os.umask(umask)
    try:
        cache.write_json(tmp_path / "r.json", {"a": 1})
        cache.write_npz(tmp_path / "s.npz", a=np.arange(3))
        with cache.atomic_path(tmp_path / "pins.json") as tmp:
            tmp.write_text("{}")
        with open(tmp_path / "model.keras", "w"):
            pass
    finally:
        os.umask(old)
    for name in ("r.json", "s.npz", "pins.json", "model.keras"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name


# --- 5. the corrupt-entry message under pytest's capture -----------------------------


def test_discarded_cache_entry_is_shown_under_capture(pytester, tmp_path, cnnclaims_plugin_args):
    root = tmp_path / "cache"
    run = tiny_run(root)
    run.results.get("verdicts", "x", {"k": 1}, lambda: {"v": 1})
    (stored,) = (root / "verdicts").iterdir()
    stored.write_text(stored.read_text().replace('"v": 1', '"v": 2'))  # valid JSON, wrong checksum
    pytester.makepyfile(
        test_inner="""
def test_a(run):
    assert run.results.get("verdicts", "x", {"k": 1}, lambda: {"v": 1}) == {"v": 1}
"""
    )
    r = pytester.runpytest_inprocess(
        "-p",
        "no:cacheprovider",
        *cnnclaims_plugin_args,
        "--profile",
        "smoke",
        "--cache-dir",
        str(root),
        "--artifacts",
        str(tmp_path / "art"),
    )
    r.assert_outcomes(passed=1)
    r.stdout.fnmatch_lines([f"*cnnclaims: discarding corrupt cache entry {stored}: unusable verdicts cache*checksum*"])


def test_notices_go_to_stderr_outside_pytest(tmp_path):
    (tmp_path / "x").write_text("x")
    r = subprocess.run(
        [sys.executable, "-c", f"from cnnclaims.cache import discard; discard({str(tmp_path / 'x')!r}, 'why')"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert r.stderr == f"cnnclaims: discarding corrupt cache entry {tmp_path / 'x'}: why\n" and not r.stdout
    assert not (tmp_path / "x").exists()


# --- 6. a probe index that is not a frog ---------------------------------------------


@pytest.mark.parametrize(
    "index, says",
    [
        ("0", "test image 0 is an airplane, not a frog; the probe must be a frog, e.g. 18, 19, 20"),
        ("30", "probe index 30 is outside the test set (0..29)"),
    ],
)
def test_probe_index_that_is_not_a_frog_stops_the_session_at_once(
    pytester, tmp_path, monkeypatch, index, says, cnnclaims_plugin_args
):
    """Every test used to fail with the same message: one usage error, no test run."""
    import cnnclaims.data

    loads = []
    monkeypatch.setattr(cnnclaims.data, "load_dataset", lambda *a, **k: loads.append(1) or tiny_data())
    pytester.makepyfile(test_inner="".join(f"def test_{i}(run):\n    run.probe_index\n\n" for i in range(3)))
    r = pytester.runpytest_inprocess(
        "-p",
        "no:cacheprovider",
        *cnnclaims_plugin_args,
        "--profile",
        "smoke",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--artifacts",
        str(tmp_path / "art"),
        "--probe-index",
        index,
    )
    assert r.ret == pytest.ExitCode.USAGE_ERROR and loads == [1]
    r.assert_outcomes()
    r.stdout.fnmatch_lines(
        [
            f"*cnnclaims: --probe-index / $CNNCLAIMS_PROBE: {says}*; pass the test-set index of "
            "an image of the probe class*"
        ]
    )


@pytest.mark.integration  # trains or runs TensorFlow sessions: minutes on 2 cores
def test_probe_index_that_is_not_a_frog_stops_xdist_workers_too(pytester, tmp_path, cnnclaims_plugin_args):
    """pytest.exit on an xdist worker crashes the controller (INTERNALERROR): there each
    worker fails its first test in one line and the session stops."""
    pytest.importorskip("xdist")
    pytester.makeconftest("""
import cnnclaims.data
from cnnclaims.data import Cifar10
from cnnclaims.testing import random_cifar

(xtr, ytr), (xte, yte) = random_cifar(10, 3, seed=2)
cnnclaims.data.load_dataset = lambda *a, **k: Cifar10(xtr, ytr, xte, yte, source="synthetic", fingerprint="tiny")
""")
    pytester.makepyfile(test_inner="".join(f"def test_{i}(run):\n    run.probe_index\n\n" for i in range(6)))
    r = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        *cnnclaims_plugin_args,
        "-p",
        "xdist",
        "-n",
        "2",
        "--profile",
        "smoke",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--artifacts",
        str(tmp_path / "art"),
        "--probe-index",
        "0",
    )
    out = r.stdout.str() + r.stderr.str()
    assert "INTERNALERROR" not in out and r.ret == pytest.ExitCode.INTERRUPTED, out
    assert r.parseoutcomes().get("failed", 0) <= 2 and "passed" not in r.parseoutcomes()
    r.stdout.fnmatch_lines(
        ["*Interrupted: cnnclaims: --probe-index / $CNNCLAIMS_PROBE: test image 0 is an airplane, not a frog*"]
    )
