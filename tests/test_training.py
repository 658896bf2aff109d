"""Training and the model cache on tiny synthetic data: hit, miss, corruption,
concurrent writers, determinism, and the probe never being trained on."""
import json
import multiprocessing as mp
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnclaims.data import Cifar10
from cnnclaims.profiles import get_profile
from cnnclaims.testing import random_cifar
from cnnclaims.training import TrainSpec, cache_key, get_trained, specs_for, stratified_subset


@pytest.fixture(scope="module")
def tiny():
    (xtr, ytr), (xte, yte) = random_cifar(10, 3, seed=2)
    return Cifar10(xtr, ytr, xte, yte, source="synthetic", fingerprint="tiny")


SPEC = TrainSpec("dummy", 50, seed=7, max_epochs=2, patience=1, batch_size=16)


def quiet(msgs):
    return msgs.append


def test_cache_miss_then_hit(tiny, tmp_path):
    msgs = []
    a = get_trained(SPEC, tiny, tmp_path, progress=quiet(msgs))
    assert any("training dummy seed=7" in m for m in msgs)
    assert any("epoch 1/2" in m and "elapsed" in m for m in msgs)  # progress per epoch
    rec = json.loads((a.path / "record.json").read_text())
    for field in ("history", "test_accuracy", "epochs", "train_seconds", "versions", "data_source",
                  "data_fingerprint", "spec", "key"):
        assert field in rec
    assert (a.path / "model.keras").exists()
    msgs.clear()
    b = get_trained(SPEC, tiny, tmp_path, progress=quiet(msgs))
    assert msgs == [] and b.key == a.key
    for wa, wb in zip(a.model.get_weights(), b.model.get_weights()):
        np.testing.assert_array_equal(wa, wb)


def test_key_covers_what_changes_the_result(tiny):
    k = cache_key(SPEC, "tiny")
    assert cache_key(replace(SPEC, seed=8), "tiny") != k
    assert cache_key(replace(SPEC, n_train=60), "tiny") != k
    assert cache_key(replace(SPEC, max_epochs=3), "tiny") != k
    assert cache_key(SPEC, "other-data") != k


def test_key_includes_versions(monkeypatch):
    k = cache_key(SPEC, "tiny")
    monkeypatch.setattr("cnnclaims.training.versions", lambda: {"tensorflow": "0.0", "keras": "0.0"})
    assert cache_key(SPEC, "tiny") != k


@pytest.mark.parametrize("damage", ["truncate-model", "garbage-record", "wrong-key", "delete-model"])
def test_corrupt_entry_is_reported_and_retrained(tiny, tmp_path, capsys, damage):
    a = get_trained(SPEC, tiny, tmp_path, progress=lambda *_: None)
    if damage == "truncate-model":
        p = a.path / "model.keras"
        p.write_bytes(p.read_bytes()[:500])
    elif damage == "garbage-record":
        (a.path / "record.json").write_text("{not json")
    elif damage == "wrong-key":
        rec = json.loads((a.path / "record.json").read_text())
        rec["key"] = "0" * 16
        (a.path / "record.json").write_text(json.dumps(rec))
    else:
        (a.path / "model.keras").unlink()
    msgs = []
    b = get_trained(SPEC, tiny, tmp_path, progress=quiet(msgs))
    assert "discarding corrupt cache entry" in capsys.readouterr().err
    assert any("training" in m for m in msgs)
    assert b.path == a.path and (b.path / "model.keras").exists()


def test_retrain_flag(tiny, tmp_path):
    get_trained(SPEC, tiny, tmp_path, progress=lambda *_: None)
    msgs = []
    get_trained(SPEC, tiny, tmp_path, retrain=True, progress=quiet(msgs))
    assert any("training" in m for m in msgs)


def test_same_seed_same_weights_and_activations(tiny, tmp_path):
    from cnnclaims.activations import layer_activations

    a = get_trained(SPEC, tiny, tmp_path / "a", progress=lambda *_: None)
    b = get_trained(SPEC, tiny, tmp_path / "b", progress=lambda *_: None)
    for wa, wb in zip(a.model.get_weights(), b.model.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    np.testing.assert_array_equal(
        layer_activations(a.model, tiny.x_test, ["conv2d_6"])["conv2d_6"],
        layer_activations(b.model, tiny.x_test, ["conv2d_6"])["conv2d_6"],
    )
    assert a.record["history"] == b.record["history"]
    c = get_trained(replace(SPEC, seed=8), tiny, tmp_path / "a", progress=lambda *_: None)
    assert not np.array_equal(a.model.get_weights()[0], c.model.get_weights()[0])


def _worker(args):
    cache_dir, data_arrays, out = args
    from cnnclaims.data import Cifar10
    from cnnclaims.training import get_trained

    data = Cifar10(*data_arrays, source="synthetic", fingerprint="tiny")
    msgs = []
    get_trained(SPEC, data, cache_dir, progress=msgs.append)
    with open(out, "w") as fh:
        fh.write("\n".join(msgs))


def test_concurrent_writers_train_once(tiny, tmp_path):
    arrays = (tiny.x_train, tiny.y_train, tiny.x_test, tiny.y_test)
    ctx = mp.get_context("spawn")
    outs = [tmp_path / f"w{i}.log" for i in range(2)]
    procs = [ctx.Process(target=_worker, args=((tmp_path / "cache", arrays, o),)) for o in outs]
    for p in procs:
        p.start()
    for p in procs:
        p.join(180)
        assert p.exitcode == 0
    logs = [o.read_text() for o in outs]
    assert sum("training dummy" in log for log in logs) == 1
    assert len([p for p in (tmp_path / "cache" / "models").glob("dummy-*") if p.is_dir()]) == 1


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
    p = get_profile("article")
    assert (p.n_benchmark, p.n_dummy) == (50_000, 10_000)
    b, d, n = specs_for(p, "benchmark"), specs_for(p, "dummy"), specs_for(p, "null")
    assert [s.seed for s in b] == [s.seed for s in d] == list(range(p.n_seeds))
    assert all(s.n_train == p.n_dummy for s in n) and not set(s.seed for s in n) & set(s.seed for s in d)
    assert get_profile("smoke", n_seeds=2).n_seeds == 2
    with pytest.raises(KeyError, match="unknown profile 'huge'.*article, smoke"):
        get_profile("huge")


def test_training_only_draws_from_the_train_split(tiny):
    # The probe comes from x_test; training indexes x_train only.
    idx = stratified_subset(tiny.y_train, 50, 0)
    assert idx.max() < len(tiny.x_train)
