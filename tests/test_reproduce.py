"""The cache's inventory (list, verify, prune, key) and the proof by retraining
(``cache reproduce``), on a tiny profile of the article's experiment over random
images: three models (benchmark, dummy, null), two epochs each."""

import dataclasses
import json

import pytest

from cnnclaims import inventory, reproduce
from cnnclaims.cache import write_json
from cnnclaims.declaration import Profile
from cnnclaims.testing import random_cifar, write_image_folder
from cnnclaims.training import record_checksum

TINY = Profile("tiny", {"benchmark": 100, "dummy": 50}, max_epochs=2, patience=2, n_seeds=1, batch_size=16)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A Run of the tiny profile whose three models are trained into its cache."""
    from cnnclaims.article import ARTICLE
    from cnnclaims.data import load_cifar10
    from cnnclaims.run import Run

    tmp = tmp_path_factory.mktemp("reproduce")
    folder = write_image_folder(tmp / "imgs", *random_cifar(10, 3, seed=3), fmt="png")
    experiment = dataclasses.replace(ARTICLE, profiles={"tiny": TINY}, default_profile="tiny")
    r = Run(
        "tiny",
        data_path=str(folder),
        cache_dir=tmp / "cache",
        progress=lambda *_: None,
        experiment=experiment,
        workers=2,
    )
    r.__dict__["data"] = load_cifar10(
        folder, tmp / "cache", per_class={"train": 10, "test": 3}, progress=lambda *_: None
    )
    r.train()
    for role in r.roles:
        r.models(role)
    return r


@pytest.mark.integration  # trains or runs TensorFlow sessions: minutes on 2 cores
def test_the_sample_is_one_model_per_group_cheapest_first(run):
    specs = reproduce.sample(run)
    assert [s.role for s in specs] == ["dummy", "null", "benchmark"]
    assert [s.role for s in reproduce.sample(run, ["null"])] == ["null"]
    with pytest.raises(KeyError, match="unknown group 'nul'; valid groups: benchmark, dummy, null"):
        reproduce.sample(run, ["nul"])


@pytest.mark.integration  # trains or runs TensorFlow sessions: minutes on 2 cores
def test_retrained_from_scratch_every_model_is_identical(run):
    rows = reproduce.reproduce(
        run, reproduce.choose(run, reproduce.sample(run), None, 2, print), workers=2, progress=lambda *_: None
    )
    assert [r["identical"] for r in rows] == [True, True, True] and {r["check"] for r in rows} == {"whole model"}
    assert "identical" in reproduce.table(rows)


@pytest.mark.integration  # trains or runs TensorFlow sessions: minutes on 2 cores
def test_a_cached_model_that_is_not_what_the_code_trains_is_named(run, tmp_path):
    """A cached entry whose weights are not what the code trains (here: its record's
    digest, with a valid checksum, as another machine's numerics would give) fails,
    named; its first epoch is checked against the per-epoch digests too."""
    spec = reproduce.sample(run, ["dummy"])[0]
    record, folder = reproduce._cached_record(run, spec)
    try:
        bad = {**record, "weights_sha256": "0" * 64, "epoch_weights_sha256": ["1" * 64] * record["epochs"]}
        bad["checksum"] = record_checksum(bad)
        write_json(folder / "record.json", bad)
        rows = reproduce.reproduce(run, [(spec, None), (spec, 1)], workers=1, progress=lambda *_: None)
    finally:
        write_json(folder / "record.json", record)
    assert [(r["identical"], r["check"], r["why"]) for r in rows] == [
        (False, "whole model", "weights"),
        (False, "first 1 epochs", "weights after epoch 1"),
    ]
    assert rows[0]["entry"] == folder.name and "DIFFERS" in reproduce.table(rows)


@pytest.mark.integration  # trains or runs TensorFlow sessions: minutes on 2 cores
def test_a_budget_checks_what_fits_whole_and_the_rest_for_their_first_epochs(run, monkeypatch):
    from cnnclaims import forecast

    tp = forecast.Throughput(train=1.0, evaluate=1e9, workers=2, seconds=0.0)  # 100 images: 100 s an epoch
    monkeypatch.setattr(forecast, "measure", lambda *a, **k: tp)
    plan = reproduce.choose(run, reproduce.sample(run), 160.0, 2, lambda *_: None)
    # dummy and null (2 epochs of 50 s + 8 s each) fit side by side; the benchmark
    # (2 x 100 s) does not, so its first epoch is checked
    assert [(s.role, k) for s, k in plan] == [("dummy", None), ("null", None), ("benchmark", 1)]
    rows = reproduce.reproduce(run, plan, workers=2, progress=lambda *_: None)
    assert [r["check"] for r in rows] == ["whole model", "whole model", "first 1 epochs"]
    assert all(r["identical"] for r in rows)


@pytest.mark.integration  # trains or runs TensorFlow sessions: minutes on 2 cores
def test_a_cold_cache_is_not_cached_neither_identical_nor_different(run, tmp_path):
    """A cache that holds none of the sample (a fresh machine, CI's first run) was
    reported DIFFERS and failed CI: nothing was compared. Now each group is named
    'not cached' and the command exits 0 saying nothing was compared."""
    from cnnclaims.run import Run

    cold = Run(
        "tiny",
        data_path=run.data_path,
        cache_dir=tmp_path / "cold",
        progress=lambda *_: None,
        experiment=run.experiment,
        workers=2,
    )
    cold.__dict__["data"] = run.data
    specs = reproduce.sample(cold, prefer_cached=True)
    assert [s.role for s in specs] == ["dummy", "null", "benchmark"]
    assert not any(reproduce.is_cached(cold, s) for s in specs)
    rows = reproduce.missing(cold, specs)
    assert [r["identical"] for r in rows] == [None, None, None]
    text = reproduce.table(rows)
    assert text.count("not cached") >= 3 and "DIFFERS" not in text
    code, message = reproduce.outcome(rows, cold.cache_dir)
    assert code == 0 and message.startswith("nothing compared: none of the 3 groups")
    # the warm cache of the fixture lacks nothing
    assert reproduce.missing(run, reproduce.sample(run, prefer_cached=True)) == []


def test_the_outcome_fails_on_any_difference_and_counts_what_went_unchecked():
    same = {"entry": "a", "identical": True}
    differs = {"entry": "b", "identical": False}
    absent = {"entry": "c", "identical": None}
    assert reproduce.outcome([same, absent], "/c") == (
        0,
        "1 models retrained from scratch, each bit for bit as cached; 1 of the 2 groups have no cached model "
        "and were not checked (train the plan first: python -m cnnclaims run --all)",
    )
    code, message = reproduce.outcome([same, differs, absent], "/c")
    assert code == 1 and "these differ from the cache: b;" in message
    assert reproduce.outcome([same], "/c")[0] == 0


@pytest.mark.integration  # trains or runs TensorFlow sessions: minutes on 2 cores
def test_a_partly_warm_cache_checks_a_cached_model_of_the_group(run, monkeypatch):
    """The cheapest model of a group not cached, another of the group cached: that one
    is checked (the group is not left unchecked)."""
    import dataclasses as dc

    dummy = reproduce.sample(run, ["dummy"])[0]
    other = dc.replace(dummy, seed=dummy.seed + 1)
    monkeypatch.setattr(type(run), "plan_specs", lambda self, roles: [dummy, other], raising=True)
    monkeypatch.setattr(reproduce, "is_cached", lambda r, s: s.seed == other.seed)
    assert reproduce.sample(run, ["dummy"]) == [dummy]
    assert reproduce.sample(run, ["dummy"], prefer_cached=True) == [other]


# --- the inventory ---------------------------------------------------------------------


@pytest.mark.integration  # trains or runs TensorFlow sessions: minutes on 2 cores
def test_list_and_verify_an_intact_cache(run):
    text = inventory.listing(run.cache_dir)
    assert "3 model entries" in text and text.count(" ok ") == 3 and "portable" in text
    assert inventory.verify(run.cache_dir) == []


@pytest.mark.integration  # trains or runs TensorFlow sessions: minutes on 2 cores
@pytest.mark.parametrize("damage", ["record-digit", "model-bytes", "record-json"])
def test_verify_names_each_damaged_entry(run, tmp_path, damage):
    import shutil

    cache = tmp_path / "cache"
    shutil.copytree(run.cache_dir / "models", cache / "models")
    entry = inventory.model_entries(cache)[0]
    if damage == "record-digit":
        rec = json.loads((entry / "record.json").read_text())
        rec["test_accuracy"] = rec["test_accuracy"] / 2
        (entry / "record.json").write_text(json.dumps(rec))
    elif damage == "model-bytes":
        with open(entry / "model.keras", "r+b") as f:
            f.seek(100)
            f.write(b"\0\1\2")
    else:
        (entry / "record.json").write_text("{not json")
    (problem,) = inventory.verify(cache)
    assert str(entry) in problem


@pytest.mark.integration  # trains or runs TensorFlow sessions: minutes on 2 cores
def test_prune_by_name_versions_and_damage(run, tmp_path):
    import shutil

    cache = tmp_path / "cache"
    shutil.copytree(run.cache_dir / "models", cache / "models")
    with pytest.raises(ValueError, match="prune needs a criterion"):
        inventory.prune(cache)
    assert inventory.prune(cache, other_versions=True) == []  # all trained here, now
    assert [p.name.split("-")[0] for p in inventory.prune(cache, match="null-*", dry_run=True)] == ["null"]
    assert len(inventory.model_entries(cache)) == 3
    (gone,) = inventory.prune(cache, match="null-*")
    assert not gone.exists() and len(inventory.model_entries(cache)) == 2
    assert inventory.prune(cache, older_than_days=1) == []
    (inventory.model_entries(cache)[0] / "model.keras").write_bytes(b"x")
    assert len(inventory.prune(cache, damaged=True)) == 1


@pytest.mark.integration  # trains or runs TensorFlow sessions: minutes on 2 cores
def test_the_plan_key_changes_with_the_plan(run):
    key = inventory.plan_key(run)
    assert key.startswith("cnnclaims-tf") and key.endswith(key.rsplit("-", 1)[1]) and "-tiny-" in key
    assert inventory.plan_key(run) == key
    other = dataclasses.replace(run, n_seeds=2)
    other.__dict__["data"] = run.data
    assert inventory.plan_key(other) != key


@pytest.mark.integration  # trains or runs TensorFlow sessions: minutes on 2 cores
def test_cli_verify_exits_1_on_damage(run, tmp_path, capsys):
    import shutil

    from cnnclaims.__main__ import main

    assert main(["cache", "verify", "--cache-dir", str(run.cache_dir)]) == 0
    cache = tmp_path / "c"
    shutil.copytree(run.cache_dir / "models", cache / "models")
    (inventory.model_entries(cache)[0] / "model.keras").write_bytes(b"x")
    assert main(["cache", "verify", "--cache-dir", str(cache)]) == 1
    out = capsys.readouterr().out
    assert "DAMAGED: cached model" in out and "2 of 3 entries and result files" in out


# --- damaged entries are missing, never cached ------------------------------------------


@pytest.fixture
def damaged_copy(run, tmp_path):
    """A copy of the fixture's cache with the dummy's record edited by hand (its
    checksum no longer matches) and the null model's file truncated."""
    import shutil

    from cnnclaims.run import Run

    shutil.copytree(run.cache_dir / "models", tmp_path / "cache" / "models")
    copy = Run(
        "tiny",
        data_path=run.data_path,
        cache_dir=tmp_path / "cache",
        progress=lambda *_: None,
        experiment=run.experiment,
        workers=2,
    )
    copy.__dict__["data"] = run.data
    dummy, null = reproduce.sample(copy, ["dummy"])[0], reproduce.sample(copy, ["null"])[0]
    _, folder = reproduce._cached_record(copy, dummy)
    rec = json.loads((folder / "record.json").read_text())
    rec["test_accuracy"] = rec["test_accuracy"] / 2
    (folder / "record.json").write_text(json.dumps(rec))
    _, folder = reproduce._cached_record(copy, null)
    with open(folder / "model.keras", "r+b") as f:
        f.truncate(100)
    return copy, dummy, null


@pytest.mark.integration  # trains or runs TensorFlow sessions: minutes on 2 cores
def test_a_damaged_entry_is_missing_so_predicted_and_budgeted(damaged_copy):
    """A damaged entry was counted as cached: retrained past --time-budget, with no
    prediction, and the summary said '15 cached, 0 trained' (a fresh user's finding)."""
    from cnnclaims.training import entry_problem, is_cached

    copy, dummy, null = damaged_copy
    assert "does not match its checksum" in entry_problem(dummy, copy.data.fingerprint, copy.cache_dir)
    assert "does not match the SHA-256" in entry_problem(null, copy.data.fingerprint, copy.cache_dir)
    assert not is_cached(dummy, copy.data.fingerprint, copy.cache_dir)
    from cnnclaims.run_plan import missing

    assert {s.role for s in missing(copy, copy.plan_specs())} == {"dummy", "null"}


@pytest.mark.integration  # trains or runs TensorFlow sessions: minutes on 2 cores
def test_reproduce_names_a_damaged_entry_damaged_not_identical_or_differs(damaged_copy):
    copy, dummy, null = damaged_copy
    rows = reproduce.reproduce(copy, [(dummy, None), (null, None)], workers=1, progress=lambda *_: None)
    assert [r["why"].split(":")[0] for r in rows] == ["damaged", "damaged"]
    assert reproduce.table(rows).count("DAMAGED") == 2
    code, message = reproduce.outcome(rows, copy.cache_dir)
    assert code == 1 and "damaged" in message and "cache prune --damaged" in message
    # sampling prefers an intact entry; here the group has none, so it keeps its cheapest
    assert reproduce.sample(copy, ["dummy"], prefer_cached=True) == [dummy]
    # every sampled spec is in exactly one of damaged, missing, cached (the command line
    # dropped a damaged one: "nothing compared: none of the 0 groups", found by a helper)
    specs = reproduce.sample(copy, prefer_cached=True)
    bad, absent = reproduce.damaged(copy, specs), reproduce.missing(copy, specs)
    cached = [s for s in specs if reproduce.is_cached(copy, s)]
    assert len(bad) == 2 and absent == [] and len(bad) + len(absent) + len(cached) == len(specs) == 3


@pytest.mark.integration  # trains or runs TensorFlow sessions: minutes on 2 cores
def test_the_hint_names_the_profile(run):
    assert reproduce.train_hint(run) == "python -m cnnclaims run --all --profile tiny"


# --- the command line ------------------------------------------------------------------


def test_cache_key_prints_only_the_key_on_stdout(tmp_path, capsys, monkeypatch):
    """A CI step reads the key from stdout; the data-decoding lines went there too, so
    GitHub Actions' `echo "key=$(...)" >> $GITHUB_OUTPUT` got three lines."""
    from cnnclaims import __main__ as cli

    def experiment(args, progress=None):
        (progress or print)("cnnclaims: decoding CIFAR-10 from ...")  # what a cold runner's Run says
        return "a run"

    monkeypatch.setattr(cli, "_experiment", experiment)
    monkeypatch.setattr(inventory, "plan_key", lambda run: f"cnnclaims-key-of-{run}")
    assert cli.main(["cache", "key", "--cache-dir", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert out == "cnnclaims-key-of-a run\n" and "decoding" in err


def test_a_misspelled_cache_folder_is_not_an_empty_cache(tmp_path, capsys):
    from cnnclaims.__main__ import main

    for action in ("list", "verify"):
        assert main(["cache", action, "--cache-dir", str(tmp_path / "nope")]) == 2
        assert f"no cache folder at {tmp_path / 'nope'}" in capsys.readouterr().err
    assert not (tmp_path / "nope").exists()


def test_reproduce_on_a_cache_without_models_decodes_nothing(tmp_path, capsys):
    from cnnclaims.__main__ import main

    assert main(["cache", "reproduce", "--cache-dir", str(tmp_path), "--data", str(tmp_path / "absent")]) == 0
    assert capsys.readouterr().out.startswith(f"nothing compared: {tmp_path} holds no model")


def test_a_reader_that_leaves_is_no_traceback(monkeypatch, capsys):
    from cnnclaims import __main__ as cli

    monkeypatch.setattr(cli, "cmd_cache", lambda args: (_ for _ in ()).throw(BrokenPipeError()))
    assert cli.main(["cache", "list"]) == 1
