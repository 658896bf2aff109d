"""The Ray executor (``--executor=ray``, cnnclaims.training.executors.ray) on a real local Ray:
the same bits as the local pool, a worker killed mid-training retried with its model
stored once, Ctrl-C / SIGTERM cancelling every task and leaving nothing behind, and a
result that fails its checks refused.

The tests that start Ray are marked ``ray``, not ``unit``: CI runs ``-m unit`` again
under pytest-xdist, where each process would start a cluster of its own. Without the
ray extra they are skipped, saying so (the tox environments do not install it). The
option checks at the end need no Ray and are ``unit``.
"""

import importlib.util
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from cnnclaims import options
from cnnclaims.data import load_cifar10
from cnnclaims.testing import alive, descendants, random_cifar, write_image_folder
from cnnclaims.training import TrainSpec, get_trained, stratified_subset, train_missing
from cnnclaims.training.executors import ray as ray_executor

RAY_MISSING = 'the ray extra is not installed (pip install -e ".[ray]")'
TRAIN, TEST = 20, 5  # images per class: 200 training, 50 test
# Three models of two groups, one epoch each: seconds apiece, most of it TensorFlow.
PLAN = [
    TrainSpec("benchmark", 200, 0, max_epochs=1, patience=1),
    TrainSpec("dummy", 100, 0, max_epochs=1, patience=1),
    TrainSpec("dummy", 100, 1, max_epochs=1, patience=1),
]


def small_cifar_folder(dst: Path) -> Path:
    """An image folder of TRAIN + TEST images per class: the first ones of each class
    of $CNNCLAIMS_DATA when it is CIFAR-10's image-folder copy (as in CI), else random
    images (the executors must agree on any data)."""
    src = Path(os.environ.get("CNNCLAIMS_DATA") or "/nonexistent")
    if not (src / "train").is_dir():
        return write_image_folder(dst, *random_cifar(TRAIN, TEST, seed=3), fmt="png")
    for split, n in (("train", TRAIN), ("test", TEST)):
        for cls in sorted(p.name for p in (src / split).iterdir()):
            (dst / split / cls).mkdir(parents=True)
            for f in sorted((src / split / cls).iterdir())[:n]:
                shutil.copy(f, dst / split / cls / f.name)
    return dst


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("small-cifar")
    folder = small_cifar_folder(tmp / "imgs")
    data = load_cifar10(folder, tmp / "cache", per_class={"train": TRAIN, "test": TEST}, progress=lambda *_: None)
    return folder, data


@pytest.fixture(scope="module")
def cluster():
    """A local Ray of 2 CPUs for this module; the executor uses the Ray this process is
    connected to, and its worker processes (TensorFlow imported) serve every test."""
    ray = pytest.importorskip("ray", reason=RAY_MISSING)
    sigterm = signal.getsignal(signal.SIGTERM)
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    signal.signal(signal.SIGTERM, sigterm)  # ray.init's handler would sys.exit() pytest on SIGTERM
    yield ray
    ray.shutdown()


def no_training(line):
    raise AssertionError(f"a stored model was trained again: {line}")


def entries(cache_dir: Path) -> list:
    """Names of the folders in a cache's models/ (entries and any .partial; the .lock
    files beside them stay, as the local pool's do)."""
    models = cache_dir / "models"
    return sorted(p.name for p in models.iterdir() if p.is_dir()) if models.exists() else []


@pytest.mark.ray
def test_ray_trains_the_local_pools_models_bit_for_bit(cluster, small, tmp_path):
    """Every weight array, the history and the test accuracy of each model trained as a
    Ray task equal those of the local pool's, the progress of each task reaches this
    process, and the stored entries load without training."""
    folder, data = small
    lines = []
    t0 = time.perf_counter()
    assert (
        train_missing(PLAN, data, str(folder), tmp_path / "ray", workers=2, progress=lines.append, executor="ray")
        == PLAN
    )  # the longest first
    ray_seconds = time.perf_counter() - t0
    train_missing(PLAN, data, str(folder), tmp_path / "local", workers=2, progress=lambda *_: None)
    for spec in PLAN:
        a = get_trained(spec, data, tmp_path / "ray", progress=no_training)
        b = get_trained(spec, data, tmp_path / "local", progress=lambda *_: None)
        assert a.key == b.key and a.path.name == b.path.name
        wa, wb = a.model.get_weights(), b.model.get_weights()
        assert len(wa) == len(wb) > 0
        for x, y in zip(wa, wb, strict=False):
            assert x.dtype == y.dtype and x.shape == y.shape
            np.testing.assert_array_equal(x, y)
        assert a.record["history"] == b.record["history"]
        assert a.record["test_accuracy"] == b.record["test_accuracy"]
        assert a.record["versions"]["tf_intra_op_threads"] == 1
        assert any(f"[{spec.label}] epoch 1/1" in line for line in lines), lines
        assert any(f"finished {spec.label}" in line for line in lines), lines
    assert lines[0].startswith("cnnclaims: training 3 models through Ray (the Ray this process is connected to")
    assert "plan 3/3 done" in lines[-2] and lines[-1].startswith("cnnclaims: trained 3 models through Ray")
    assert not [n for n in entries(tmp_path / "ray") if n.endswith(".partial")]
    print(f"3 models through Ray in {ray_seconds:.1f}s")


@pytest.mark.ray
def test_a_model_another_process_is_training_is_left_to_it(cluster, small, tmp_path):
    """An entry whose lock another process holds (it is training that model, as a
    pytest-xdist worker's get_trained does) is not trained again through Ray; the other
    models are, and the run says what it left."""
    import fcntl

    from cnnclaims.training import cache_key, entry_dir

    folder, data = small
    busy, free = PLAN[1], PLAN[2]
    lock = entry_dir(tmp_path, busy, cache_key(busy, data.fingerprint)).with_suffix(".lock")
    lock.parent.mkdir(parents=True)
    lines = []
    with open(lock, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)  # another open file: to flock, another holder
        done = train_missing(
            [busy, free], data, str(folder), tmp_path, workers=2, progress=lines.append, executor="ray"
        )
    assert done == [free]
    assert "1 of the 2 models are trained (or were just stored) by another process" in "\n".join(lines)
    assert entries(tmp_path) == [entry_dir(tmp_path, free, cache_key(free, data.fingerprint)).name]


class NotingSubset:
    """``stratified_subset`` that notes the process drawing it, as a file
    ``<folder>/<seed>-<pid>-<ns>``: the Ray worker training that model (pickled by
    reference to this module, which the worker imports from the driver's path)."""

    def __init__(self, folder):
        self.folder = str(folder)

    def __call__(self, y, n, seed):
        Path(self.folder, f"{seed}-{os.getpid()}-{time.monotonic_ns()}").touch()  # one file per call
        return stratified_subset(y, n, seed)


@pytest.mark.ray
def test_a_worker_killed_mid_training_is_retried_and_its_model_stored_once(cluster, small, tmp_path):
    """SIGKILL to the worker process training a model, after its first epoch: Ray runs
    the task again in another process, the model lands in the cache exactly once, no
    .partial folder is left, and the next task removes the dead worker's folder."""
    folder, data = small
    notes = tmp_path / "pids"
    notes.mkdir()
    long = TrainSpec("dummy", 100, 5, max_epochs=30, patience=30)  # ~10 s: time to be killed mid-way
    plan = [long, replace(PLAN[1], seed=6), replace(PLAN[1], seed=7)]
    lines, killed = [], []

    def kill_after_first_epoch():
        deadline = time.monotonic() + 300  # generous: at a load average of 90 here the kill test took 282 s
        while time.monotonic() < deadline:
            pids = [int(p.name.split("-")[1]) for p in notes.glob(f"{long.seed}-*")]
            if pids and any(f"[{long.label}] epoch 1/" in line for line in list(lines)):
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_after_first_epoch, daemon=True)
    killer.start()
    done = train_missing(
        plan,
        data,
        str(folder),
        tmp_path / "cache",
        workers=2,
        progress=lines.append,
        executor="ray",
        recipes={"dummy": ray_executor_recipe(notes)},
    )
    killer.join(5)
    assert killed, "the worker was never killed:\n" + "\n".join(lines)
    assert set(done) == set(plan)
    assert any(f"{long.label} starts again (attempt 2)" in line for line in lines), "\n".join(lines)
    assert {int(p.name.split("-")[1]) for p in notes.glob(f"{long.seed}-*")} - set(killed), "not retried elsewhere"
    names = entries(tmp_path / "cache")
    assert names == sorted(get_trained(s, data, tmp_path / "cache", progress=no_training).path.name for s in plan)
    work = Path(tempfile.gettempdir()) / ray_executor.WORK_ROOT
    assert not list(work.glob(f"{killed[0]}-*")), "the killed worker's folder was left"


@pytest.mark.ray
def test_ctrl_c_in_the_driver_kills_the_tasks_of_a_cluster_it_did_not_start(cluster, small, tmp_path):
    """SIGINT to this process while two tasks train on a Ray it is connected to (as on a
    cluster, which outlives the run): KeyboardInterrupt comes back, both workers'
    processes are killed (the cluster stays up, but trains nothing of ours), and the
    cache holds no entry and no .partial folder."""
    folder, data = small
    notes = tmp_path / "pids"
    notes.mkdir()
    plan = [TrainSpec("dummy", 100, s, max_epochs=100_000, patience=100_000) for s in (8, 9)]
    lines = []

    def interrupt_once_both_train():
        deadline = time.monotonic() + 300  # generous: at a load average of 90 here the kill test took 282 s
        while time.monotonic() < deadline:
            if len(list(notes.iterdir())) == 2 and sum("] epoch 1/" in line for line in list(lines)) >= 2:
                os.kill(os.getpid(), signal.SIGINT)
                return
            time.sleep(0.05)

    threading.Thread(target=interrupt_once_both_train, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        train_missing(
            plan,
            data,
            str(folder),
            tmp_path / "cache",
            workers=2,
            progress=lines.append,
            executor="ray",
            recipes={"dummy": ray_executor_recipe(notes)},
        )
    pids = {int(p.name.split("-")[1]) for p in notes.iterdir()}
    assert len(pids) == 2, "\n".join(lines)
    deadline = time.monotonic() + 30
    while alive(pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not alive(pids), "a task's worker still runs after Ctrl-C"
    assert entries(tmp_path / "cache") == []


class FailingSubset(NotingSubset):
    def __call__(self, y, n, seed):
        super().__call__(y, n, seed)
        raise ValueError(f"no subset for seed {seed}")


@pytest.mark.ray
def test_a_tasks_own_error_stops_the_run_once_named_and_not_retried(cluster, small, tmp_path):
    """A task whose recipe raises: its exception reaches the caller as what it is (a
    ValueError), with a note naming the model, it is not retried (it would fail the
    same way), and nothing is stored."""
    from cnnclaims.model import build_model

    folder, data = small
    notes = tmp_path / "pids"
    notes.mkdir()
    spec = TrainSpec("dummy", 100, 11, max_epochs=1, patience=1)
    with pytest.raises(ValueError, match="no subset for seed 11") as info:
        train_missing(
            [spec],
            data,
            str(folder),
            tmp_path / "cache",
            workers=2,
            progress=lambda *_: None,
            executor="ray",
            recipes={"dummy": (build_model, FailingSubset(notes))},
        )
    assert f"cnnclaims: raised by the Ray task training {spec.label}" in getattr(info.value, "__notes__", [])
    assert len(list(notes.iterdir())) == 1  # one attempt
    assert entries(tmp_path / "cache") == []


def ray_executor_recipe(notes):
    from cnnclaims.model import build_model

    return build_model, NotingSubset(notes)


# Trains three tiny models "forever" through a local Ray that train_missing starts; once
# interrupted it says what is left of Ray in this process, and stays alive meanwhile
# (its children must be gone while it lives: a caller may go on after the interrupt).
RAY_FOREVER = """
import signal
import sys
import time
from dataclasses import replace
from pathlib import Path

from cnnclaims import training
from cnnclaims.data import load_cifar10
from cnnclaims.testing import alive, descendants, random_cifar, write_image_folder

tmp = Path(sys.argv[1])
folder = write_image_folder(tmp / "imgs", *random_cifar(10, 3, seed=2), fmt="png")
data = load_cifar10(folder, tmp / "cache", per_class={"train": 10, "test": 3}, progress=lambda *_: None)
spec = training.TrainSpec("dummy", 50, seed=0, max_epochs=100_000, patience=100_000, batch_size=16)
try:
    training.train_missing([replace(spec, seed=s) for s in range(3)], data, str(folder), tmp / "cache", workers=2,
                           progress=lambda line: print(line, flush=True), executor="ray")
except KeyboardInterrupt as exc:
    import ray

    print(f"interrupted: {exc!r}; ray initialized: {ray.is_initialized()}; "
          f"SIGTERM handler: {signal.getsignal(signal.SIGTERM)!r}", flush=True)
    time.sleep(120)
"""


@pytest.mark.ray
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc")
def test_ctrl_c_and_sigterm_cancel_every_task_and_shut_the_local_ray_down(tmp_path):
    """Ctrl-C (SIGINT to the process group, as a terminal sends it) and SIGTERM (to the
    driver alone, as `timeout` sends it) while two tasks train and one is queued:
    KeyboardInterrupt reaches the caller within seconds (SIGTERM's says so), and while
    the caller lives on, every process the run started (the local Ray's and its
    workers) is gone, Ray is shut down, the caller's SIGTERM handler is back, the
    queued model never started, and the cache holds no entry and no .partial folder.
    Both run at once."""
    pytest.importorskip("ray", reason=RAY_MISSING)
    runs = {}
    for how in ("ctrl-c", "sigterm"):
        (tmp_path / how).mkdir()
        proc = subprocess.Popen(
            [sys.executable, "-c", RAY_FOREVER, str(tmp_path / how)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        lines = []
        reader = threading.Thread(target=lambda p=proc, out=lines: out.extend(p.stdout), daemon=True)
        reader.start()
        runs[how] = (proc, lines, reader)
    kids = {}
    try:
        deadline = time.monotonic() + 240
        while not all(any("epoch 1/" in line for line in lines) for _, lines, _ in runs.values()):
            for how, (proc, lines, _) in runs.items():
                assert proc.poll() is None and time.monotonic() < deadline, (how, "".join(lines))
            time.sleep(0.2)
        for how, (proc, lines, _) in runs.items():
            kids[how] = descendants(proc.pid)  # the local Ray's processes and its workers
            assert kids[how], (how, "".join(lines))
            if how == "ctrl-c":
                os.killpg(proc.pid, signal.SIGINT)
            else:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 60
        while any(
            not any("interrupted:" in line for line in lines) or alive(kids[how]) for how, (_, lines, _) in runs.items()
        ):
            if time.monotonic() > deadline:
                state = {
                    how: (any("interrupted:" in x for x in out), alive(kids[how])) for how, (_, out, _) in runs.items()
                }
                pytest.fail(f"60 s after the signal (interrupted, processes left): {state}")
            time.sleep(0.2)
        for how, (proc, lines, _reader) in runs.items():
            out = "".join(lines)
            assert proc.poll() is None, (how, out)  # the driver lives on; what it started does not
            assert "ray initialized: False; SIGTERM handler: <Handlers.SIG_DFL: 0>" in out, (how, out)
            assert "SIGTERM: training stopped" in out or how == "ctrl-c", (how, out)
            assert "training dummy seed=2" not in out, (how, out)  # the queued model never started
            assert entries(tmp_path / how / "cache") == [], (how, out)
    finally:
        for how, (proc, _, _) in runs.items():
            for pid in alive(kids.get(how, set()) | {proc.pid}):
                os.kill(pid, signal.SIGKILL)
            proc.wait(timeout=10)


# --- results that fail their checks: refused, nothing stored ------------------------------


@pytest.fixture(scope="module")
def one_result(small, tmp_path_factory):
    """(spec, key, model bytes, record, info) of one model as a task returns them."""
    _, data = small
    spec = PLAN[1]
    trained = get_trained(spec, data, tmp_path_factory.mktemp("one"), progress=lambda *_: None)
    info = {"node": "127.0.0.1", "pid": 1, "threads": 1, "seconds": 1.0}
    return spec, trained.key, (trained.path / "model.keras").read_bytes(), dict(trained.record), info


def _tamper(record, **changes):
    from cnnclaims.training import record_checksum

    record = {**record, **changes}
    record["checksum"] = record_checksum(record)
    return record


@pytest.mark.parametrize(
    "damage,expected",
    [
        (lambda b, r, i: (b[:-1] + bytes([b[-1] ^ 1]), r, i), "model bytes do not match"),
        (lambda b, r, i: (b, {**r, "test_accuracy": r["test_accuracy"] / 2}, i), "does not match its checksum"),
        (
            lambda b, r, i: (b, _tamper(r, versions={**r["versions"], "tensorflow": "2.20.0"}), i),
            "install the same versions on every node",
        ),
        (lambda b, r, i: (b, _tamper(r, key="0" * 16), i), "its key is 0000000000000000"),
        (lambda b, r, i: (b, r, {**i, "threads": 2}), "TensorFlow ran with 2 intra-op threads"),
        (lambda b, r, i: (b, {k: v for k, v in r.items() if k != "history"}, i), "lacks the field 'history'"),
    ],
    ids=["model-bytes", "edited-record", "other-versions", "other-key", "two-threads", "missing-field"],
)
def test_a_result_that_fails_its_checks_is_refused_and_nothing_stored(one_result, tmp_path, damage, expected):
    spec, key, model_bytes, record, info = one_result
    ray_executor._store(spec, key, model_bytes, record, info, tmp_path / "ok", False, record["versions"])
    assert len(entries(tmp_path / "ok")) == 1  # the undamaged result is stored
    with pytest.raises(ray_executor.RayResultError, match=expected):
        ray_executor._store(spec, key, *damage(model_bytes, record, info), tmp_path / "bad", False, record["versions"])
    assert entries(tmp_path / "bad") == []


# --- choosing the executor: no Ray needed ---------------------------------------------------


@pytest.mark.unit
@pytest.mark.parametrize("flag,env", [("bogus", None), (None, "bogus")])
def test_an_unknown_executor_is_named_with_the_choices(monkeypatch, flag, env):
    monkeypatch.delenv(options.ENV_RAY_ADDRESS, raising=False)
    if env:
        monkeypatch.setenv(options.ENV_EXECUTOR, env)
    else:
        monkeypatch.delenv(options.ENV_EXECUTOR, raising=False)
    where = "--executor" if flag else "\\$CNNCLAIMS_EXECUTOR"
    from cnnclaims.training.executors import NAMES

    names = ", ".join(NAMES)
    with pytest.raises(ValueError, match=f"{where} 'bogus' is not an executor; choose one of {names}"):
        options.check(lambda f: flag if f == "--executor" else None)
    with pytest.raises(ValueError, match=f"executor 'bogus' is not one of {names}"):
        train_missing([], None, None, executor="bogus")


@pytest.mark.unit
def test_every_registered_executor_loads_and_the_options_offer_each():
    from cnnclaims.training import executors

    assert options.EXECUTORS == executors.NAMES and {"local", "ray"} <= set(executors.NAMES)
    help_text = options.BY_FLAG["--executor"].help
    assert all(f"{name} (" in help_text for name in executors.NAMES), help_text
    for name in executors.NAMES:
        executor = executors.load(name)  # imports its module, not Ray
        assert callable(executor.takes) and callable(executor.train), name
    assert executors.load("ray").takes(1, 1) and not executors.load("local").takes(1, 4)


@pytest.fixture
def no_ray(monkeypatch):
    """This process as if Ray were not installed."""
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray: ImportError


@pytest.mark.unit
def test_executor_ray_without_ray_says_how_to_install_it(no_ray, monkeypatch, tmp_path, capsys):
    from cnnclaims.__main__ import main

    monkeypatch.delenv(options.ENV_RAY_ADDRESS, raising=False)
    with pytest.raises(
        ValueError, match=r'needs Ray, which is not installed here; install it with pip install -e "\.\[ray\]"'
    ):
        options.check(lambda f: "ray" if f == "--executor" else None)
    with pytest.raises(ray_executor.RayMissingError, match=r'install it with pip install -e "\.\[ray\]"'):
        ray_executor.import_ray()
    assert main(["run", "--executor=ray", "--cache-dir", str(tmp_path)]) == 2
    assert 'pip install -e ".[ray]"' in capsys.readouterr().err


@pytest.mark.unit
def test_a_ray_address_without_the_ray_executor_is_refused(monkeypatch):
    monkeypatch.delenv(options.ENV_EXECUTOR, raising=False)
    monkeypatch.setenv(options.ENV_RAY_ADDRESS, "10.0.0.5:6379")
    with pytest.raises(ValueError, match="'10.0.0.5:6379' is set, but the executor is 'local'; add --executor=ray"):
        options.check(lambda f: None)


@pytest.mark.unit
def test_a_ray_address_where_nothing_listens_is_refused_at_once():
    """ray.init waits many minutes for such an address (over 10, measured): the driver
    tries a plain connection first and says what to fix."""
    import socket

    with socket.socket() as sock:  # a loopback port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    t0 = time.monotonic()
    with pytest.raises(ray_executor.RayClusterError, match=f"nothing answers at --ray-address 127.0.0.1:{port}"):
        ray_executor.check_reachable(f"127.0.0.1:{port}")
    assert time.monotonic() - t0 < 5
    ray_executor.check_reachable("auto")  # no port: left to Ray


@pytest.mark.unit
def test_a_local_ray_that_fails_to_start_is_one_clear_error():
    """Ray raises a bare Exception when its node times out during start-up (a fresh
    user hit it on a loaded machine): it used to end the run as a raw traceback."""

    class FailingRay:
        def is_initialized(self):
            return False

        def init(self, **kw):
            raise Exception("The current node timed out during startup.")

        def shutdown(self):
            pass

    with pytest.raises(
        ray_executor.RayClusterError,
        match=r"could not start a local Ray with 2 CPUs .*timed out"
        r".*--executor=local",
    ):
        with ray_executor._connected(FailingRay(), None, 2):
            pass
