"""Early stopping's monitoring images (issue 19, item 6): the declared protocol is
validated, its split is stratified, disjoint, seeded and deterministic, the claims are
evaluated on images that never chose an epoch, and the article's protocol keeps every
model key it had."""

from dataclasses import replace

import numpy as np
import pytest

from cnnclaims import EarlyStopping
from cnnclaims.article import ARTICLE, FROG
from cnnclaims.data import Cifar10
from cnnclaims.errors import DataError
from cnnclaims.monitoring import Monitor, split
from cnnclaims.testing import random_cifar

HALF = EarlyStopping("test-half")


def labels(per_class: int, classes: int = 10, odd: bool = False) -> np.ndarray:
    """Shuffled labels, ``per_class`` of each class (one more of class 0 with ``odd``)."""
    y = np.repeat(np.arange(classes), per_class)
    if odd:
        y = np.append(y, 0)
    return np.random.default_rng(5).permutation(y).astype(np.uint8)


# --- the declaration ------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (
            {"monitor": "test-halve"},
            "monitor must be 'test', 'test-half' or 'train-holdout'.*did you mean monitor='test-half'",
        ),
        ({"monitor": "validation"}, "monitor must be .*e.g. EarlyStopping\\(monitor='test-half'\\)"),
        ({"monitor": "train-holdout"}, "needs holdout=N"),
        ({"monitor": "test-half", "holdout": 500}, "only monitor='train-holdout' does"),
        ({"monitor": "test", "seed": 3}, "seed=3 has nothing to draw"),
        ({"monitor": "test-half", "seed": -1}, "seed must be a non-negative integer"),
        ({"monitor": "train-holdout", "holdout": 2.5}, "holdout must be a non-negative integer"),
        ({"monitor": "train-holdout", "holdout": True}, "holdout must be a non-negative integer"),
    ],
)
def test_a_bad_protocol_is_one_error_naming_the_field_and_the_fix(kwargs, message):
    with pytest.raises(ValueError, match=message):
        EarlyStopping(**kwargs)


def test_the_experiment_takes_a_protocol_and_checks_it():
    assert ARTICLE.early_stopping == EarlyStopping() and ARTICLE.early_stopping.leaks  # the article's: leakage
    assert replace(ARTICLE, early_stopping=HALF).early_stopping.monitor is Monitor.TEST_HALF
    with pytest.raises(
        TypeError,
        match="early_stopping must be a cnnclaims.EarlyStopping, got str 'test-half'; "
        "write early_stopping=EarlyStopping\\('test-half'\\)",
    ):
        replace(ARTICLE, early_stopping="test-half")
    with pytest.raises(TypeError, match="got int 1; write early_stopping=EarlyStopping\\('test-half'\\)"):
        replace(ARTICLE, early_stopping=1)
    with pytest.raises(ValueError, match="holds out 995 training images, not a multiple of the 10 classes.*990"):
        replace(ARTICLE, early_stopping=EarlyStopping("train-holdout", holdout=995))


def test_the_protocol_reads_as_declared():
    assert repr(EarlyStopping()) == "EarlyStopping('test')"
    assert (
        repr(EarlyStopping("train-holdout", holdout=5000, seed=2))
        == "EarlyStopping('train-holdout', holdout=5000, seed=2)"
    )
    assert [p.tag for p in (EarlyStopping(), HALF, EarlyStopping("test-half", seed=3))] == [
        "test",
        "test-half",
        "test-half-seed3",
    ]
    assert EarlyStopping("train-holdout", holdout=5000).tag == "train-holdout5000"
    assert "leakage" in EarlyStopping().describe() and "other half" in HALF.describe()


# --- the split ------------------------------------------------------------------------


@pytest.mark.parametrize("odd", [False, True])
def test_test_half_is_stratified_disjoint_and_covers_the_test_set(odd):
    y_test = labels(101, odd=odd)
    parts = split(HALF, labels(7), y_test)
    assert parts.monitor_split == "test"
    assert np.intersect1d(parts.monitor, parts.evaluated).size == 0
    np.testing.assert_array_equal(np.union1d(parts.monitor, parts.evaluated), np.arange(len(y_test)))
    counts = np.bincount(y_test)
    # Per class: floor(n / 2) monitor, the rest evaluated.
    np.testing.assert_array_equal(np.bincount(y_test[parts.monitor], minlength=10), counts // 2)
    np.testing.assert_array_equal(np.bincount(y_test[parts.evaluated], minlength=10), counts - counts // 2)
    np.testing.assert_array_equal(parts.train_pool, np.arange(70))  # every training image may be trained on
    for a in (parts.monitor, parts.evaluated):
        assert a.dtype == np.int64 and (np.diff(a) > 0).all()


def test_the_split_is_seeded_and_deterministic():
    y_train, y_test = labels(50), labels(100)
    one, again = split(HALF, y_train, y_test), split(HALF, y_train, y_test)
    np.testing.assert_array_equal(one.monitor, again.monitor)
    assert one.record() == again.record()  # the recorded digests too
    other = split(EarlyStopping("test-half", seed=1), y_train, y_test)
    assert not np.array_equal(one.monitor, other.monitor)
    assert one.record()["monitor_indices_sha256"] != other.record()["monitor_indices_sha256"]
    # Fixed numbers, so that a change to the draw (which would move every test-half model) fails here.
    assert one.monitor[:5].tolist() == [2, 3, 5, 6, 7]
    holdout = EarlyStopping("train-holdout", holdout=40)
    np.testing.assert_array_equal(split(holdout, y_train, y_test).monitor, split(holdout, y_train, y_test).monitor)
    assert not np.array_equal(
        split(holdout, y_train, y_test).monitor, split(replace(holdout, seed=1), y_train, y_test).monitor
    )


def test_train_holdout_is_stratified_and_never_in_the_pool():
    y_train, y_test = labels(50), labels(10)
    parts = split(EarlyStopping("train-holdout", holdout=100), y_train, y_test)
    assert parts.monitor_split == "train"
    np.testing.assert_array_equal(np.bincount(y_train[parts.monitor], minlength=10), [10] * 10)
    assert np.intersect1d(parts.monitor, parts.train_pool).size == 0
    np.testing.assert_array_equal(np.union1d(parts.monitor, parts.train_pool), np.arange(500))
    np.testing.assert_array_equal(parts.evaluated, np.arange(100))  # the test set untouched: all evaluated


def test_the_articles_protocol_monitors_and_evaluates_the_whole_test_set():
    parts = split(EarlyStopping(), labels(5), labels(3))
    for a in (parts.monitor, parts.evaluated):
        np.testing.assert_array_equal(a, np.arange(30))
    np.testing.assert_array_equal(parts.train_pool, np.arange(50))


@pytest.mark.parametrize(
    "holdout,message", [(15, "multiple of the training split's 10 classes"), (500, "nothing would be left to train on")]
)
def test_a_holdout_the_data_cannot_give_is_refused(holdout, message):
    with pytest.raises(ValueError, match=message):
        split(EarlyStopping("train-holdout", holdout=holdout), labels(50), labels(10))


# --- keys -----------------------------------------------------------------------------


def test_the_articles_protocol_keeps_every_model_key():
    """The spec dicts of the article's and the smoke plan (every group, the sweep's
    too), hashed: the value computed on the code before early stopping was declared
    (commit fe0503b). Equal spec dicts give equal cache keys (``training.cache_key``
    hashes them with the data, versions and TRAINING_VERSION alone). Fails when the
    default protocol enters the key (shown by keeping it in ``spec_dict``)."""
    from cnnclaims import cache
    from cnnclaims.training.spec import spec_dict, specs_for, sweep_plan

    dicts = []
    for name in ("article", "smoke"):
        p = ARTICLE.profile(name)
        specs = [s for role in ARTICLE.roles for s in specs_for(p, role, ARTICLE)]
        specs += [s for g in sweep_plan(p, ARTICLE, 50_000)["specs"].values() for s in g]
        dicts.append([spec_dict(s) for s in specs])
    assert cache.stable_hash(dicts) == "ba6568fd73ddf89510650c4af0b5dcefb0b7de88de020926f2644007b45e8285"


def test_another_protocol_is_in_the_key_and_the_pins_key():
    from cnnclaims import pinned
    from cnnclaims.training import TrainSpec, cache_key, spec_dict

    spec = TrainSpec("dummy", 50, seed=7, max_epochs=2, patience=1)
    half = replace(spec, early_stopping=HALF)
    assert "early_stopping" not in spec_dict(spec)
    assert spec_dict(half)["early_stopping"] == {"monitor": "test-half", "holdout": 0, "seed": 0}
    keys = {cache_key(s, "fp") for s in (spec, half, replace(spec, early_stopping=EarlyStopping("test-half", seed=1)))}
    assert len(keys) == 3
    smoke = ARTICLE.profile("smoke")
    assert pinned.pin_key(smoke, ARTICLE).endswith("/smoke")
    assert pinned.pin_key(smoke, replace(ARTICLE, early_stopping=HALF)).endswith("/smoke/monitor-test-half")
    with pytest.raises(TypeError, match="early_stopping must be a cnnclaims.EarlyStopping"):
        TrainSpec("dummy", 50, seed=7, max_epochs=2, patience=1, early_stopping="test-half")


# --- a run: what is evaluated ----------------------------------------------------------


@pytest.fixture(scope="module")
def half_run(tmp_path_factory):
    from cnnclaims.testing import synthetic_experiment

    # The smoke profile without its sweep (fewer untrained models to build), its sizes
    # within the synthetic data's 20 training images.
    smoke = replace(ARTICLE.profiles["smoke"], n_train={"benchmark": 20, "dummy": 10}, sizes=(), size_seeds=0)
    exp = replace(ARTICLE, early_stopping=HALF, profiles={"smoke": smoke}, default_profile="smoke")
    return synthetic_experiment(tmp_path_factory.mktemp("half"), n_seeds=2, frogs=12, experiment=exp)


def test_the_claims_are_evaluated_on_images_that_never_monitored(half_run, monkeypatch):
    monkeypatch.delenv("CNNCLAIMS_PROBE", raising=False)
    parts = half_run.split
    y = half_run.data.y_test
    frogs = np.flatnonzero(y == FROG)
    assert len(half_run.probe_indices) == 6  # 12 frogs, 6 monitor
    assert np.isin(half_run.probe_indices, parts.evaluated).all()
    assert not np.isin(half_run.probe_indices, parts.monitor).any()
    np.testing.assert_array_equal(half_run.probe_indices, frogs[np.isin(frogs, parts.evaluated)])
    assert half_run.probe_index == half_run.probe_indices[0]  # the first evaluated frog by default
    assert half_run.evidence.n_images == 6  # the images scope sees the evaluated frogs alone
    assert all(len(v) == 6 for v in half_run.evidence.first(half_run.a).stats.values())


def test_a_probe_that_monitored_is_a_clear_error(half_run, tmp_path):
    from cnnclaims.run import Run

    parts = half_run.split
    y = half_run.data.y_test
    watched = int(parts.monitor[y[parts.monitor] == FROG][0])
    run = Run("smoke", cache_dir=tmp_path, probe=watched, experiment=half_run.experiment)
    run.__dict__["data"] = half_run.data
    with pytest.raises(
        DataError,
        match=f"test image {watched} monitors early stopping \\(EarlyStopping\\('test-half'\\)\\)"
        f".*e.g. {half_run.probe_indices[0]}",
    ):
        run.probe_index  # noqa: B018


def test_a_holdout_counts_against_the_training_sizes(tmp_path):
    from cnnclaims import run_plan
    from cnnclaims.declaration import Profile
    from cnnclaims.run import Run

    small = Profile("small", {"benchmark": 100, "dummy": 50}, max_epochs=1, patience=1, n_seeds=2)
    exp = replace(
        ARTICLE,
        profiles={"small": small},
        default_profile="small",
        early_stopping=EarlyStopping("train-holdout", holdout=20),
    )
    (xtr, ytr), (xte, yte) = random_cifar(10, 2)
    data = Cifar10(xtr, ytr, xte, yte, source="synthetic", fingerprint="synthetic")
    run = _with_data(Run("small", cache_dir=tmp_path, experiment=exp), data)
    with pytest.raises(
        DataError,
        match="asks for 100 training images, but the data has 80 once early stopping holds out 20 .*hold out fewer",
    ):
        run_plan.check_sizes(run)
    # Without the holdout the same 100 images fit.
    run_plan.check_sizes(
        _with_data(Run("small", cache_dir=tmp_path, experiment=replace(exp, early_stopping=EarlyStopping())), data)
    )


def _with_data(run, data):
    run.__dict__["data"] = data
    return run


# --- training: what monitors, what is trained on, what the accuracy is on ---------------


@pytest.fixture(scope="module")
def tiny():
    (xtr, ytr), (xte, yte) = random_cifar(10, 4, seed=3)
    return Cifar10(xtr, ytr, xte, yte, source="synthetic", fingerprint="tiny-monitoring")


def _rows(x) -> set:
    """Each image as bytes; prepared float images in [0, 1] are scaled back to their uint8 pixels."""
    x = np.asarray(x)
    if x.dtype != np.uint8:
        x = np.rint(x * 255).astype(np.uint8)
    return {bytes(r) for r in x.reshape(len(x), int(np.prod(x.shape[1:])))}


@pytest.mark.parametrize("protocol", [HALF, EarlyStopping("train-holdout", holdout=30)], ids=lambda p: p.tag)
def test_training_monitors_the_protocols_images_and_never_trains_on_them(tiny, tmp_path, monkeypatch, protocol):
    from cnnclaims.compat import set_determinism
    from cnnclaims.training import TrainSpec, entries, get_trained, prepare

    seen = {}

    def spy(spec, x_train, y_train, x_val, y_val, checkpoint, progress, build, io=None):
        # What the fit is given, and an untrained model in place of the fit (the fit
        # itself is tests/test_training.py's): what follows is train_entry's own work.
        seen.update(x_train=x_train, x_val=x_val)
        set_determinism(spec.seed)
        return build(), {"loss": [1.0], "val_loss": [1.0]}, 1, 0.0, ["0" * 64]

    monkeypatch.setattr(entries, "fit", spy)
    spec = TrainSpec("dummy", 50, seed=7, max_epochs=1, patience=1, batch_size=16, early_stopping=protocol)
    trained = get_trained(spec, tiny, tmp_path, progress=lambda *_: None)
    parts = split(protocol, tiny.y_train, tiny.y_test)
    source = tiny.x_test if protocol.monitor == "test-half" else tiny.x_train
    assert _rows(seen["x_val"]) == _rows(source[parts.monitor])  # early stopping watched the protocol's images
    if parts.monitor_split == "train":
        assert not _rows(seen["x_train"]) & _rows(tiny.x_train[parts.monitor])  # never trained on
    assert _rows(seen["x_train"]) <= _rows(tiny.x_train[parts.train_pool])
    record = trained.record
    assert record["early_stopping"]["monitor"] == protocol.monitor
    assert record["early_stopping"]["n_monitor"] == len(parts.monitor)
    assert record["early_stopping"]["n_evaluated"] == len(parts.evaluated)
    assert record["early_stopping"]["monitor_indices_sha256"] == parts.record()["monitor_indices_sha256"]
    x_eval = prepare(tiny.x_test[parts.evaluated], tiny.y_test[parts.evaluated])[0]
    pred = trained.model.predict(x_eval, verbose=0).argmax(axis=1)
    assert record["test_accuracy"] == pytest.approx(float(np.mean(pred == tiny.y_test[parts.evaluated])))
