"""Training and the model cache on tiny synthetic data: hit, miss, corruption,
concurrent writers, determinism, and the probe never being trained on."""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnclaims.data import Cifar10
from cnnclaims.declaration import load_experiment
from cnnclaims.errors import CacheError, InputError
from cnnclaims.testing import alive, descendants, random_cifar, write_image_folder
from cnnclaims.training import (
    TrainSpec,
    cache_key,
    fit,
    get_trained,
    is_cached,
    load_entry,
    prepare,
    specs_for,
    stratified_subset,
    train_missing,
)


@pytest.fixture(scope="module")
def tiny():
    (xtr, ytr), (xte, yte) = random_cifar(10, 3, seed=2)
    return Cifar10(xtr, ytr, xte, yte, source="synthetic", fingerprint="tiny")


SPEC = TrainSpec("dummy", 50, seed=7, max_epochs=2, patience=1, batch_size=16)


def quiet(msgs):
    return msgs.append


@pytest.fixture(scope="module")
def trained(tiny, tmp_path_factory):
    """SPEC trained once into a cache folder; tests copy the folder (training is the
    slow part of these tests) and the progress messages of that first training."""
    cache_dir = tmp_path_factory.mktemp("trained")
    msgs = []
    return get_trained(SPEC, tiny, cache_dir, progress=msgs.append), cache_dir, msgs


def copy_cache(trained, tmp_path):
    shutil.copytree(trained[1], tmp_path / "cache")
    return tmp_path / "cache"


def test_cache_miss_then_hit(tiny, trained, tmp_path):
    a, _, msgs = trained
    assert any("training dummy seed=7" in m for m in msgs)
    assert any("epoch 1/2" in m and "elapsed" in m for m in msgs)  # progress per epoch
    rec = json.loads((a.path / "record.json").read_text())
    for field in (
        "history",
        "test_accuracy",
        "epochs",
        "train_seconds",
        "versions",
        "data_source",
        "data_fingerprint",
        "spec",
        "key",
    ):
        assert field in rec
    assert rec["versions"]["tf_intra_op_threads"] == 1
    assert (a.path / "model.keras").exists()
    msgs = []
    b = get_trained(SPEC, tiny, copy_cache(trained, tmp_path), progress=quiet(msgs))
    assert msgs == [] and b.key == a.key
    for wa, wb in zip(a.model.get_weights(), b.model.get_weights(), strict=False):
        np.testing.assert_array_equal(wa, wb)


def test_key_covers_what_changes_the_result(tiny):
    k = cache_key(SPEC, "tiny")
    assert cache_key(replace(SPEC, seed=8), "tiny") != k
    assert cache_key(replace(SPEC, n_train=60), "tiny") != k
    assert cache_key(replace(SPEC, max_epochs=3), "tiny") != k
    assert cache_key(SPEC, "other-data") != k


def test_key_includes_versions(monkeypatch):
    k = cache_key(SPEC, "tiny")
    monkeypatch.setattr("cnnclaims.training.spec.versions", lambda: {"tensorflow": "0.0", "keras": "0.0"})
    assert cache_key(SPEC, "tiny") != k


def damage_entry(path, damage):
    if damage == "truncate-model":
        p = path / "model.keras"
        p.write_bytes(p.read_bytes()[:500])
    elif damage == "garbage-record":
        (path / "record.json").write_text("{not json")
    elif damage == "wrong-key":
        rec = json.loads((path / "record.json").read_text())
        rec["key"] = "0" * 16
        (path / "record.json").write_text(json.dumps(rec))
    else:
        (path / "model.keras").unlink()


@pytest.mark.parametrize("damage", ["truncate-model", "garbage-record", "wrong-key", "delete-model"])
def test_corrupt_entry_is_detected(trained, tmp_path, damage):
    path = copy_cache(trained, tmp_path) / "models" / trained[0].path.name
    damage_entry(path, damage)
    with pytest.raises(CacheError, match=str(path)):
        load_entry(SPEC, path, trained[0].key)


@pytest.mark.integration  # trains models of its own: seconds to minutes on 2 cores
def test_corrupt_entry_is_reported_and_retrained(tiny, trained, tmp_path, capsys):
    cache_dir = copy_cache(trained, tmp_path)
    damage_entry(cache_dir / "models" / trained[0].path.name, "truncate-model")
    msgs = []
    b = get_trained(SPEC, tiny, cache_dir, progress=quiet(msgs))
    assert "discarding corrupt cache entry" in capsys.readouterr().err
    assert any("training" in m for m in msgs)
    assert b.path.name == trained[0].path.name and (b.path / "model.keras").exists()
    # Retrained from scratch, the same seed gives the same model, bit for bit.
    for wa, wb in zip(trained[0].model.get_weights(), b.model.get_weights(), strict=False):
        np.testing.assert_array_equal(wa, wb)


def test_models_load_lazily_and_old_records_get_their_hash(tiny, trained, tmp_path):
    cache_dir = copy_cache(trained, tmp_path)
    b = get_trained(SPEC, tiny, cache_dir)
    assert b.loaded is None and b.record["model_sha256"]  # found by its hash, not loaded
    assert b.model.count_params() == trained[0].model.count_params() and b.loaded is not None
    record = b.path / "record.json"
    rec = json.loads(record.read_text())
    del rec["model_sha256"], rec["checksum"]  # as written before records carried either
    record.write_text(json.dumps(rec))
    c = get_trained(SPEC, tiny, cache_dir)
    assert c.loaded is not None  # validated by loading instead
    migrated = json.loads(record.read_text())
    assert migrated["model_sha256"] == b.record["model_sha256"] and migrated["checksum"] == b.record["checksum"]


@pytest.mark.integration  # trains models of its own: seconds to minutes on 2 cores
def test_retrain_flag(tiny, trained, tmp_path):
    msgs = []
    get_trained(SPEC, tiny, copy_cache(trained, tmp_path), retrain=True, progress=quiet(msgs))
    assert any("training" in m for m in msgs)


@pytest.mark.integration  # trains models of its own: seconds to minutes on 2 cores
def test_same_seed_same_weights_and_activations(tiny, trained, tmp_path):
    from cnnclaims.activations import layer_activations

    a = trained[0]
    b = get_trained(SPEC, tiny, tmp_path / "b", progress=lambda *_: None)
    for wa, wb in zip(a.model.get_weights(), b.model.get_weights(), strict=False):
        np.testing.assert_array_equal(wa, wb)
    np.testing.assert_array_equal(
        layer_activations(a.model, tiny.x_test, ["conv2d_6"])["conv2d_6"],
        layer_activations(b.model, tiny.x_test, ["conv2d_6"])["conv2d_6"],
    )
    assert a.record["history"] == b.record["history"]


@pytest.mark.integration  # trains or runs TensorFlow sessions: minutes on 2 cores
def test_parallel_training_equals_one_at_a_time_and_trains_each_model_once(trained, tmp_path):
    """Two models trained at once in worker processes while this process asks for one
    of them too: the shared model is trained once (the cache's file lock), each model
    equals the one trained alone in this process (one TensorFlow thread everywhere),
    and the other seed differs."""
    from cnnclaims.data import load_cifar10

    a = trained[0]
    folder = write_image_folder(tmp_path / "imgs", *random_cifar(10, 3, seed=2), fmt="png")
    data = load_cifar10(folder, tmp_path / "cache", per_class={"train": 10, "test": 3}, progress=lambda *_: None)
    msgs, here = [], []
    specs = [SPEC, replace(SPEC, seed=8)]
    rival = threading.Thread(target=lambda: get_trained(SPEC, data, tmp_path / "cache", progress=here.append))
    rival.start()
    done = train_missing(specs, data, str(folder), tmp_path / "cache", workers=2, progress=msgs.append)
    rival.join()
    assert done == sorted(specs, key=lambda s: s.seed)
    assert any("2 at a time" in m for m in msgs) and any("[dummy seed=8 n=50] epoch 1/2" in m for m in msgs)
    assert sum("training dummy seed=7 " in m for m in msgs + here) == 1
    assert len([p for p in (tmp_path / "cache" / "models").glob("dummy-n50-s7-*") if p.is_dir()]) == 1
    b, c = (get_trained(s, data, tmp_path / "cache", progress=quiet(msgs)) for s in specs)
    assert train_missing(specs, data, str(folder), tmp_path / "cache", workers=2) == []  # all cached now
    for wa, wb in zip(a.model.get_weights(), b.model.get_weights(), strict=False):
        np.testing.assert_array_equal(wa, wb)
    assert not np.array_equal(a.model.get_weights()[0], c.model.get_weights()[0])


@given(n_per=st.integers(1, 5), seed=st.integers(0, 10_000))
@settings(max_examples=30, deadline=None)
def test_stratified_subset(n_per, seed):
    y = np.repeat(np.arange(10), 6)
    idx = stratified_subset(y, n_per * 10, seed)
    assert len(idx) == len(set(idx)) == n_per * 10
    assert np.bincount(y[idx], minlength=10).tolist() == [n_per] * 10
    np.testing.assert_array_equal(idx, stratified_subset(y, n_per * 10, seed))


def test_stratified_subset_errors():
    y = np.repeat(np.arange(10), 3)
    with pytest.raises(ValueError, match="not divisible"):
        stratified_subset(y, 15, 0)
    with pytest.raises(ValueError, match="only 30"):
        stratified_subset(y, 40, 0)
    assert len(stratified_subset(y, 30, 0)) == 30


def test_profiles_and_specs():
    p = load_experiment().profile("article")
    assert (p.n_train["benchmark"], p.n_train["dummy"]) == (50_000, 10_000)
    b, d, n = specs_for(p, "benchmark"), specs_for(p, "dummy"), specs_for(p, "null")
    assert [s.seed for s in b] == [s.seed for s in d] == list(range(p.n_seeds))
    assert all(s.n_train == p.n_train["dummy"] for s in n) and not set(s.seed for s in n) & set(s.seed for s in d)
    assert load_experiment().profile("smoke", 2).n_seeds == 2
    with pytest.raises(KeyError, match="unknown profile 'huge'.*article, smoke"):
        load_experiment().profile("huge")


def test_training_only_draws_from_the_train_split(tiny):
    # The probe comes from x_test; training indexes x_train only.
    idx = stratified_subset(tiny.y_train, 50, 0)
    assert idx.max() < len(tiny.x_train)


def test_workers_setting(monkeypatch):
    from cnnclaims.training import default_workers

    monkeypatch.setenv("CNNCLAIMS_WORKERS", "1")
    assert default_workers() == 1
    monkeypatch.setenv("CNNCLAIMS_WORKERS", "none")
    with pytest.raises(ValueError, match="CNNCLAIMS_WORKERS='none'"):
        default_workers()
    monkeypatch.delenv("CNNCLAIMS_WORKERS")
    assert 1 <= default_workers() <= 8


def test_one_missing_model_trains_in_this_process(tiny, trained, tmp_path):
    # Nothing to share between workers: no processes are started.
    assert train_missing([SPEC], tiny, None, tmp_path, workers=4) == []
    assert train_missing([SPEC, replace(SPEC, seed=8)], tiny, None, copy_cache(trained, tmp_path), workers=1) == []


# --- what goes to fit: pixels and labels checked by the same helper as the model's door
def test_prepare_scales_uint8_once_and_passes_unit_floats_through(tiny):
    x, y = prepare(tiny.x_test, tiny.y_test)
    assert x.dtype == np.float32 and x.max() <= 1 and y.shape == (len(x), 10)
    again, _ = prepare(x, tiny.y_test)  # used to be divided by 255 a second time: near-black images
    np.testing.assert_array_equal(again, x)


def test_prepare_refuses_float_pixels_in_0_255(tiny):
    with pytest.raises(InputError, match=r"prepare: .*up to 255.*divide by 255"):
        prepare(tiny.x_test.astype(np.float64) * 1.0, tiny.y_test)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_prepare_refuses_non_finite_pixels(tiny, bad):
    x = tiny.x_test / 255.0
    x[3, 0, 0, 0] = bad
    with pytest.raises(InputError, match=r"prepare: .*NaN/inf.*image 3.*check the input for NaN/inf"):
        prepare(x, tiny.y_test)


@pytest.mark.parametrize("dtype", [np.int64, np.uint16, bool])
def test_prepare_refuses_other_pixel_dtypes(tiny, dtype):
    with pytest.raises(InputError, match=rf"prepare: .*dtype {np.dtype(dtype)}.*uint8"):
        prepare(tiny.x_test.astype(dtype), tiny.y_test)


def test_prepare_refuses_one_image_without_batch_axis(tiny):
    with pytest.raises(InputError, match=r"prepare: .*\(32, 32, 3\).*\(n, 32, 32, 3\).*x\[None\]"):
        prepare(tiny.x_test[0], tiny.y_test[:1])


def test_prepare_labels(tiny):
    x, y = tiny.x_test, tiny.y_test
    np.testing.assert_array_equal(prepare(x, y.reshape(-1, 1))[1], prepare(x, y)[1])  # (n, 1) as Keras gives
    for labels, msg in [
        (y.astype(np.int64) - 1, r"labels outside 0\.\.9.*-1"),  # -1 used to become class 9
        (y + 10, r"labels outside 0\.\.9.*10"),
        (y.astype(np.float32), r"dtype float32.*integer"),
        (y[:-1], rf"{len(y) - 1} labels for {len(y)} images"),
        (y.reshape(-1, 2), r"shape \(15, 2\).*\(n,\) or \(n, 1\)"),
    ]:
        with pytest.raises(InputError, match=r"prepare: .*" + msg):
            prepare(x, labels)


def test_fit_refuses_unprepared_arrays_before_training(tiny, tmp_path):
    x, y = prepare(tiny.x_test, tiny.y_test)
    with pytest.raises(InputError, match=r"fit: x_train .*up to 255.*divide by 255"):
        fit(SPEC, tiny.x_test.astype(np.float32), y, x, y, tmp_path / "w.h5")
    with pytest.raises(InputError, match=r"fit: y_val got shape \(30,\).*one-hot \(30, 10\).*prepare"):
        fit(SPEC, x, y, x, tiny.y_test, tmp_path / "w.h5")
    with pytest.raises(InputError, match=r"fit: x_val holds uint8 pixels.*prepare\(\)"):
        fit(SPEC, x, y, tiny.x_test, y, tmp_path / "w.h5")


# --- damaged records: wrong types, edited content (discarded and retrained, never used)
def edit_record(path, edit):
    """Rewrite ``record.json`` of the entry at ``path`` with ``edit(record)``'s value."""
    record = path / "record.json"
    record.write_text(json.dumps(edit(json.loads(record.read_text()))))


def without_checksum(**fields):
    """A record edited as if written before records carried a checksum."""

    def edit(rec):
        rec.pop("checksum", None)
        rec.update(fields)
        return rec

    return edit


@pytest.mark.parametrize(
    "edit",
    [
        lambda rec: None,
        lambda rec: [rec],
        lambda rec: "record",
        lambda rec: 3,
        without_checksum(test_accuracy="0.5"),
        without_checksum(test_accuracy=True),
        without_checksum(test_accuracy=1.5),
        without_checksum(history=None),
        without_checksum(history={"loss": "0.1"}),
        without_checksum(history=[1.0]),
        without_checksum(spec=[]),
        without_checksum(epochs="2"),
        without_checksum(best_epoch=None),
        without_checksum(key=7),
        without_checksum(model_sha256=None),
        without_checksum(versions="tf"),
        lambda rec: {k: v for k, v in rec.items() if k not in ("checksum", "test_accuracy")},
    ],
    ids=[
        "null",
        "list",
        "string",
        "number",
        "accuracy-string",
        "accuracy-bool",
        "accuracy-range",
        "history-null",
        "history-string",
        "history-list",
        "spec-list",
        "epochs-string",
        "best-epoch-null",
        "key-number",
        "hash-null",
        "versions-string",
        "accuracy-missing",
    ],
)
def test_record_of_wrong_type_is_a_cache_error_naming_the_file(trained, tmp_path, edit):
    path = copy_cache(trained, tmp_path) / "models" / trained[0].path.name
    edit_record(path, edit)
    with pytest.raises(CacheError, match=str(path / "record.json")):
        load_entry(SPEC, path, trained[0].key)


@pytest.mark.integration  # trains models of its own: seconds to minutes on 2 cores
@pytest.mark.parametrize("damage", ["null", "one-digit"])
def test_damaged_record_is_discarded_and_retrained_bit_identical(tiny, trained, tmp_path, capsys, damage):
    """A record that is JSON null (55 AttributeErrors on every rerun) or has one digit of
    its test accuracy changed (accepted silently) is discarded, named, and retrained:
    the same model bit for bit."""
    cache_dir = copy_cache(trained, tmp_path)
    record = cache_dir / "models" / trained[0].path.name / "record.json"
    text = record.read_text()
    if damage == "null":
        record.write_text("null")
    else:
        acc = json.loads(text)["test_accuracy"]
        digits = repr(acc)
        i = digits.index(".") + 1
        changed = digits[:i] + str((int(digits[i]) + 1) % 10)
        assert float(changed) != acc
        record.write_text(text.replace(f'"test_accuracy": {digits}', f'"test_accuracy": {changed}'))
        assert json.loads(record.read_text())["test_accuracy"] == float(changed)
    msgs = []
    b = get_trained(SPEC, tiny, cache_dir, progress=msgs.append)
    err = capsys.readouterr().err
    assert f"discarding corrupt cache entry {record}" in err
    assert ("checksum" in err) == (damage == "one-digit")
    assert any("training dummy seed=7" in m for m in msgs)
    assert b.record["test_accuracy"] == trained[0].record["test_accuracy"]
    assert b.record["checksum"] == json.loads(record.read_text())["checksum"]
    for wa, wb in zip(trained[0].model.get_weights(), b.model.get_weights(), strict=False):
        np.testing.assert_array_equal(wa, wb)
    assert get_trained(SPEC, tiny, cache_dir, progress=msgs.append).loaded is None  # valid again: found, not trained


# --- interrupted training: nothing half-built is left or used
def interrupted(*args, **kwargs):
    raise KeyboardInterrupt


def test_interrupted_training_leaves_no_partial_entry_and_never_uses_one(tiny, trained, tmp_path, monkeypatch):
    cache_dir = copy_cache(trained, tmp_path)
    entry = cache_dir / "models" / trained[0].path.name
    partial = entry.with_name(entry.name + ".partial")
    entry.rename(partial)  # a complete-looking model left behind by a killed process
    assert not is_cached(SPEC, tiny.fingerprint, cache_dir)
    monkeypatch.setattr("cnnclaims.training.entries.fit", interrupted)  # Ctrl-C during training
    with pytest.raises(KeyboardInterrupt):
        get_trained(SPEC, tiny, cache_dir)  # trains (the .partial folder is not loaded) ...
    assert not partial.exists() and not entry.exists()  # ... and leaves nothing behind


# Trains three tiny models "forever" with two workers: two start, one is queued.
TRAIN_FOREVER = """
import sys
from dataclasses import replace
from pathlib import Path

from cnnclaims import training
from cnnclaims.data import load_cifar10
from cnnclaims.testing import random_cifar, write_image_folder
from cnnclaims.training.executors import local

local._machine = lambda: (2, 64.0, 8)  # two workers on any machine: the models are tiny
tmp = Path(sys.argv[1])
folder = write_image_folder(tmp / "imgs", *random_cifar(10, 3, seed=2), fmt="png")
data = load_cifar10(folder, tmp / "cache", per_class={"train": 10, "test": 3}, progress=lambda *_: None)
spec = training.TrainSpec("dummy", 50, seed=0, max_epochs=100_000, patience=100_000, batch_size=16)
training.train_missing([replace(spec, seed=s) for s in range(3)], data, str(folder), tmp / "cache", workers=2,
                       progress=lambda line: print(line, flush=True))
"""


class TrainingForever:
    """TRAIN_FOREVER in a process of its own session (so that Ctrl-C can go to its
    process group, as a terminal sends it), its output collected by a thread."""

    def __init__(self, tmp):
        tmp.mkdir()
        self.tmp, self.lines, self.kids = tmp, [], set()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", TRAIN_FOREVER, str(tmp)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.reader = threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True)
        self.reader.start()

    def output(self) -> str:
        return "".join(self.lines)

    def training(self) -> bool:
        """Both workers have started a model (the third is queued)."""
        return sum("training dummy seed=" in line for line in self.lines) >= 2

    def stop(self, how: str) -> None:
        self.kids = descendants(self.proc.pid)  # the workers and multiprocessing's resource tracker
        assert len(self.kids) >= 2, (self.kids, self.output())
        if how == "ctrl-c":
            os.killpg(self.proc.pid, signal.SIGINT)
        else:
            self.proc.send_signal(signal.SIGTERM if how == "sigterm" else signal.SIGKILL)

    def kill(self) -> None:
        for pid in alive(self.kids | {self.proc.pid}):
            os.kill(pid, signal.SIGKILL)
        self.proc.wait(timeout=5)


@pytest.mark.integration  # trains or runs TensorFlow sessions: minutes on 2 cores
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc")
def test_stopping_training_stops_every_worker_within_seconds(tmp_path):
    """Ctrl-C (SIGINT to the process group), SIGTERM (what `timeout` sends) and SIGKILL,
    each to a process training with two workers: within seconds no process it started
    is left (workers, multiprocessing's resource tracker), the queued model never
    starts, and no .partial folder or entry of an unfinished model remains. The three
    run at once: most of their time is TensorFlow starting up in 9 processes."""
    runs = {how: TrainingForever(tmp_path / how) for how in ("ctrl-c", "sigterm", "sigkill")}
    try:
        deadline = time.monotonic() + 180
        while not all(run.training() for run in runs.values()):
            for how, run in runs.items():
                assert run.proc.poll() is None and time.monotonic() < deadline, (how, run.output())
            time.sleep(0.2)
        for how, run in runs.items():
            run.stop(how)
        deadline = time.monotonic() + 15
        while any(run.proc.poll() is None or alive(run.kids) for run in runs.values()):
            time.sleep(0.2)
            if time.monotonic() > deadline:
                left = {how: (run.proc.poll(), alive(run.kids)) for how, run in runs.items()}
                pytest.fail(f"still running 15 s after the signal (exit status, processes): {left}")
        for how, run in runs.items():
            run.reader.join(5)
            assert not any("training dummy seed=2" in line for line in run.lines), (how, run.output())
            models = run.tmp / "cache" / "models"
            assert [p.name for p in models.iterdir() if p.is_dir()] == [], (how, run.output())
    finally:
        for run in runs.values():
            run.kill()


# --- a stopped training leaves no .partial folder, even where a worker cannot stop in time
#
# A worker removes its .partial folder when it takes the SIGTERM that stops it, but only
# once its main thread runs Python again: TensorFlow runs 50 training steps per call, and
# on a busy 2-core machine a call (or the first one's graph building) can outlast the 5 s
# the driver grants before SIGKILL. A user found an empty benchmark-n50000-s0-*.partial
# after Ctrl-C, and a dummy-n10000-s0-*.partial/best.weights.h5 after SIGTERM. Here one
# worker's builder makes the worker act on SIGTERM only 10 minutes after it arrives (what
# a main thread stuck in native code does to Python's handler; the driver SIGKILLs it
# long before); the other worker answers at once.
STALLING = """
import os
import signal
import time
from pathlib import Path

from cnnclaims.model import build_model
from cnnclaims.training import entries


def _building(kind):
    if entries._IN_FLIGHT:  # the call inside the build (the .partial folder exists), not the parameter count
        (Path(os.environ["CNNCLAIMS_TEST_PIDS"]) / f"{kind}-{os.getpid()}").touch()
        return True
    return False


def stalled():
    if _building("stalled"):
        handler = signal.getsignal(signal.SIGTERM)  # the worker's: remove the build, exit

        def late(signum, frame):
            time.sleep(600)
            handler(signum, frame)

        signal.signal(signal.SIGTERM, late)
    return build_model()


def responsive():
    _building("responsive")
    return build_model()
"""

# Two tiny models trained "forever" by two workers (local executor), one of them stalled;
# or (argv[2] == "alone") one model trained in this process, as with one worker.
TRAIN_TWO = """
import sys
from pathlib import Path

import stalling
from cnnclaims import training
from cnnclaims.data import load_cifar10
from cnnclaims.testing import random_cifar, write_image_folder
from cnnclaims.training.executors import local

local._machine = lambda: (2, 64.0, 8)  # two workers on any machine: the models are tiny
tmp = Path(sys.argv[1])
folder = write_image_folder(tmp / "imgs", *random_cifar(10, 3, seed=2), fmt="png")
data = load_cifar10(folder, tmp / "cache", per_class={"train": 10, "test": 3}, progress=lambda *_: None)
forever = dict(n_train=50, seed=0, max_epochs=100_000, patience=100_000, batch_size=16)
say = lambda line: print(line, flush=True)
if sys.argv[2] == "alone":
    training.get_trained(training.TrainSpec("dummy", **forever), data, tmp / "cache", progress=say,
                         recipe=(stalling.responsive, training.stratified_subset))
else:
    training.train_missing(
        [training.TrainSpec("benchmark", **forever), training.TrainSpec("dummy", **forever)], data, str(folder),
        tmp / "cache", workers=2, progress=say,
        recipes={"benchmark": (stalling.stalled, training.stratified_subset),
                 "dummy": (stalling.responsive, training.stratified_subset)},
    )
"""


class TrainingTwo:
    """TRAIN_TWO in a process of its own session, its output collected by a thread; the
    workers say their pids by files in ``pids/`` (stalled-PID, responsive-PID)."""

    def __init__(self, tmp: Path, how: str = "workers"):
        (tmp / "pids").mkdir(parents=True)
        (tmp / "stalling.py").write_text(STALLING)
        self.tmp, self.how, self.lines = tmp, how, []
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(tmp), *sys.path]),  # spawned workers import stalling too
            "CNNCLAIMS_TEST_PIDS": str(tmp / "pids"),
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-c", TRAIN_TWO, str(tmp), how],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
            env=env,
        )
        self.reader = threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True)
        self.reader.start()

    def output(self) -> str:
        return "".join(self.lines)

    def pids(self) -> dict:
        return {p.name.split("-")[0]: int(p.name.split("-")[1]) for p in (self.tmp / "pids").iterdir()}

    def partials(self) -> list:
        models = self.tmp / "cache" / "models"
        return sorted(p.name for p in models.iterdir() if p.name.endswith(".partial")) if models.exists() else []

    def wait_mid_training(self, timeout: float = 240) -> None:
        """Until every model has trained an epoch (its .partial folder holds the best
        epoch's weights so far), as in the user's dummy-n10000 leftover."""
        want = 1 if self.how == "alone" else 2
        models = self.tmp / "cache" / "models"
        deadline = time.monotonic() + timeout
        while len(list(models.glob("*.partial/best.weights.h5"))) < want or len(self.pids()) < want:
            assert self.proc.poll() is None and time.monotonic() < deadline, self.output()
            time.sleep(0.2)

    def wait_stopped(self, timeout: float = 90) -> None:
        """Until the process and every process it started are gone (within seconds; the
        limit is generous for a loaded machine, where TensorFlow's exit alone takes some)."""
        kids = descendants(self.proc.pid)
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None or alive(kids):
            if time.monotonic() > deadline:
                pytest.fail(
                    f"still running {timeout} s after the signal: {self.proc.poll()}, {alive(kids)}; output:\n"
                    + self.output()[-4000:]
                )
            time.sleep(0.2)
        self.reader.join(5)

    def kill(self) -> None:
        for pid in alive(descendants(self.proc.pid) | {self.proc.pid}):
            os.kill(pid, signal.SIGKILL)
        self.proc.wait(timeout=5)


@pytest.mark.integration
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc")
def test_sigterm_to_a_training_worker_leaves_no_partial_folder(tmp_path):
    """SIGTERM to one training worker mid-training: it removes its own .partial folder,
    the pool breaks and the driver stops the other worker, which does not stop within
    its grace and is SIGKILLed; its folder, which it could not remove, the driver
    removes (it used to stay: <entry>.partial/best.weights.h5)."""
    run = TrainingTwo(tmp_path)
    try:
        run.wait_mid_training()
        assert len(run.partials()) == 2
        os.kill(run.pids()["responsive"], signal.SIGTERM)
        run.wait_stopped()
        assert run.proc.returncode != 0, run.output()  # the pool broke: the run fails, it does not hang
        assert run.partials() == [], run.output()
        assert "removed 1 .partial folder(s) of models whose workers were stopped" in run.output()
    finally:
        run.kill()


@pytest.mark.integration
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc")
def test_sigint_to_the_driver_leaves_no_partial_folder(tmp_path):
    """SIGINT to the driver alone (not its process group) mid-training: it stops both
    workers; the stalled one is SIGKILLed after its grace, and its .partial folder is
    removed by the driver all the same (an empty benchmark-*.partial used to stay)."""
    run = TrainingTwo(tmp_path)
    try:
        run.wait_mid_training()
        assert len(run.partials()) == 2
        run.proc.send_signal(signal.SIGINT)
        run.wait_stopped()
        assert "KeyboardInterrupt" in run.output()
        # No .partial folder, nor an entry of an unfinished model.
        assert [p.name for p in (tmp_path / "cache" / "models").iterdir() if p.is_dir()] == [], run.output()
    finally:
        run.kill()


@pytest.mark.integration
def test_sigterm_to_a_process_training_alone_leaves_no_partial_folder(tmp_path):
    """A model trained in the process that asked for it (one worker, one missing model:
    no pool is started), SIGTERM mid-training (what `timeout` sends): the process ends
    and its .partial folder is removed. SIGTERM's default action used to end it at once,
    the folder left behind."""
    run = TrainingTwo(tmp_path, how="alone")
    try:
        run.wait_mid_training()
        run.proc.send_signal(signal.SIGTERM)
        run.wait_stopped()
        assert run.partials() == [], run.output()
        assert "SIGTERM: training stopped" in run.output()
    finally:
        run.kill()


@pytest.mark.integration  # spawns two TensorFlow worker processes: seconds to minutes on 2 cores
def test_every_line_a_worker_said_is_relayed(tiny, tmp_path, monkeypatch):
    """A worker's last lines come right before its result (the last "trained ..." line
    used to be lost at times): all of them are passed on before train_missing returns."""
    from cnnclaims import testing
    from cnnclaims.training.executors import local

    monkeypatch.setattr(local, "_worker_train", testing.chatty_worker)
    monkeypatch.setattr(local, "_machine", lambda: (2, 64.0, 8))  # two workers anywhere
    specs = [SPEC, replace(SPEC, seed=8)]
    msgs = []
    assert set(train_missing(specs, tiny, None, tmp_path, workers=2, progress=msgs.append)) == set(specs)
    for spec in specs:
        assert [m for m in msgs if m.startswith(spec.label)] == [f"{spec.label} line {i}" for i in range(50)]


def test_a_worker_that_ended_breaks_the_run_though_the_pool_did_not_say():
    """The pool's manager thread can miss the end of a worker started after its last
    wake-up (a SIGTERM to that worker hung the run): the driver asks the workers' exit
    codes itself and stops the run with BrokenProcessPool, naming the worker."""
    from concurrent.futures.process import BrokenProcessPool
    from types import SimpleNamespace

    from cnnclaims.training.executors import local

    alive = SimpleNamespace(pid=11, exitcode=None)
    pool = SimpleNamespace(_processes={11: alive, 12: SimpleNamespace(pid=12, exitcode=143)})
    with pytest.raises(BrokenProcessPool, match=r"training worker 12 ended \(exit code 143\)"):
        local._check_workers(pool)
    local._check_workers(SimpleNamespace(_processes={11: alive}))  # all alive: nothing to say
    local._check_workers(SimpleNamespace(_processes=None))  # after shutdown


def test_explicit_worker_count_is_capped_by_cores_and_memory_and_said_once(tiny, tmp_path, monkeypatch):
    from cnnclaims.training.executors import local

    monkeypatch.setattr(local.os, "cpu_count", lambda: 6)
    monkeypatch.setattr(local.os, "sysconf", lambda name: {"SC_PHYS_PAGES": 10 * 2**18, "SC_PAGE_SIZE": 4096}[name])
    monkeypatch.setattr(local, "_SAID", set())
    monkeypatch.setenv("CNNCLAIMS_WORKERS", "100")
    msgs = []
    # 10 GiB: (10 - 2) // 4 = 2 processes, fewer than the 6 cores.
    assert local.default_workers(None, msgs.append) == 2
    assert local.default_workers(None, msgs.append) == 2
    assert msgs == [
        "cnnclaims: $CNNCLAIMS_WORKERS=100 capped at 2 training processes: 6 cores, and 10.0 GiB of "
        "memory holds 2 at 4 GiB each (2 GiB kept for this process)"
    ]
    monkeypatch.setattr(local.os, "cpu_count", lambda: 1)  # and by the cores
    msgs.clear()
    assert (
        train_missing([SPEC, replace(SPEC, seed=8)], tiny, None, tmp_path, workers=100, progress=msgs.append) == []
    )  # one process: nothing started, trained in this process
    assert msgs == [
        "cnnclaims: --workers=100 capped at 1 training processes: 1 cores, and 10.0 GiB of "
        "memory holds 2 at 4 GiB each (2 GiB kept for this process)"
    ]
    monkeypatch.delenv("CNNCLAIMS_WORKERS")
    assert local.default_workers() == 1


@pytest.mark.unit
@pytest.mark.parametrize(
    "subset,expected",
    [
        (lambda y, n, s: np.arange(n + 10), "returned 60 indices"),
        (lambda y, n, s: np.zeros(n, int), r"\(1 distinct\)"),
        (lambda y, n, s: np.arange(n) + 10_000, "outside 0..199"),
        (lambda y, n, s: np.arange(n) * 1.0, "float64"),
    ],
)
def test_a_subset_function_that_returns_other_than_n_distinct_indices_is_refused(subset, expected):
    # These trained silently on 60 images (recorded as 50) or on one image repeated.
    from cnnclaims.training import checked_subset

    with pytest.raises(ValueError, match=expected):
        checked_subset(subset, np.repeat(np.arange(10), 20), 50, 0, "small")
    assert len(checked_subset(stratified_subset, np.repeat(np.arange(10), 20), 50, 0, "small")) == 50


@pytest.mark.unit
def test_a_builder_with_automatic_names_is_refused_with_the_fix():
    # Keras's automatic names change per build, so every run got a new cache key.
    from dataclasses import replace

    from cnnclaims import Condition
    from cnnclaims.article import ARTICLE
    from cnnclaims.compat import keras
    from cnnclaims.errors import ModelError
    from cnnclaims.training import recipe_id

    def unnamed():
        i = keras.Input((32, 32, 3))
        return keras.Model(i, keras.layers.Dense(10, activation="softmax")(keras.layers.Flatten()(i)))

    with pytest.raises(ModelError, match="name the model and every layer"):
        # (without the sizes sweep, which needs both conditions to share a builder)
        profiles = {k: replace(p, sizes=(), size_seeds=0) for k, p in ARTICLE.profiles.items()}
        recipe_id(replace(ARTICLE, a=Condition("benchmark", build_model=unnamed), profiles=profiles), "benchmark")
    assert recipe_id(ARTICLE, "benchmark") == ""  # the article's models keep their keys


# --- the code that trains, and what a record proves ------------------------------------


def test_training_code_is_reviewed_with_training_version():
    """Fails when the code that decides trained weights changed since TRAINING_VERSION
    was last reviewed: a change that alters trained bits needs TRAINING_VERSION bumped
    (every model retrains); either way record the new digest in TRAINING_CODE."""
    from cnnclaims import training

    got = training.training_code_digest()
    assert got == training.TRAINING_CODE, (
        f"the training code changed (digest {got}, reviewed {training.TRAINING_CODE}): if it changes trained "
        f"weights, bump training.TRAINING_VERSION (now {training.TRAINING_VERSION}); then set "
        f"training.TRAINING_CODE = {got!r}"
    )


def test_code_digest_sees_code_and_ignores_comments_docstrings_and_layout():
    from cnnclaims.training import code_digest

    base = 'def f(x):\n    """Doc."""\n    return x * 2  # why\n'
    assert code_digest([base]) == code_digest(['def f(x):\n    """Other words."""\n\n    return (x *\n  2)\n'])
    assert code_digest([base]) != code_digest([base.replace("* 2", "* 3")])  # a constant: it fails
    assert code_digest([base]) != code_digest([base.replace("x * 2", "x + 2")])
    assert code_digest([base]) != code_digest([base.replace("def f", "def g")])


def test_a_change_to_the_fit_is_caught(monkeypatch):
    """The check fails on an edited training function (here: the learning-rate keyword
    in fit's compile call), proven on a copy of fit's source."""
    import inspect

    from cnnclaims import training

    edited = inspect.getsource(training.fit).replace("spec.learning_rate", "spec.learning_rate * 2")
    others = [training.source_of(f) for f in training.training_functions() if f is not training.fit]
    assert training.code_digest(others + [edited]) != training.TRAINING_CODE


def test_records_carry_the_weights_digest_per_epoch_and_at_the_end(trained):
    from cnnclaims.training import weights_sha256

    model, record = trained[0].model, trained[0].record
    assert record["weights_sha256"] == weights_sha256(model)
    assert len(record["epoch_weights_sha256"]) == record["epochs"] and all(
        len(d) == 64 for d in record["epoch_weights_sha256"]
    )
    # The best epoch's weights are the final ones (restored), and so its digest.
    assert record["epoch_weights_sha256"][record["best_epoch"] - 1] == record["weights_sha256"]


@pytest.mark.integration  # trains models of its own: seconds to minutes on 2 cores
def test_fit_can_stop_after_a_prefix_of_the_same_training(tiny, trained, tmp_path):
    """max_epochs=1: the same first epoch, bit for bit, as the whole training's."""
    from cnnclaims.training import fit, stratified_subset

    idx = stratified_subset(tiny.y_train, SPEC.n_train, SPEC.seed)
    x, y = prepare(tiny.x_train[idx], tiny.y_train[idx])
    xv, yv = prepare(tiny.x_test, tiny.y_test)
    *_, epochs, _, digests = fit(SPEC, x, y, xv, yv, tmp_path / "b.weights.h5", lambda *_: None, max_epochs=1)
    assert epochs == 1 and digests == trained[0].record["epoch_weights_sha256"][:1]
