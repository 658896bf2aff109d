"""Run: the real data and the configured profile's trained models (integration), and
the options and aliases that build a Run (unit)."""

import numpy as np
import pytest

from cnnclaims.activations import layer_names
from cnnclaims.article import FROG
from cnnclaims.model import LAYER_NAMES, N_PARAMS
from cnnclaims.run import Run
from cnnclaims.training import get_trained

pytest_plugins = ["pytester"]


@pytest.mark.integration  # the real data or trained models, or TensorFlow sessions: minutes on 2 cores
def test_data_is_cifar10(cifar10):
    assert cifar10.x_train.shape == (50_000, 32, 32, 3) and cifar10.x_test.shape == (10_000, 32, 32, 3)
    assert np.bincount(cifar10.y_test).tolist() == [1000] * 10


@pytest.mark.integration  # the real data or trained models, or TensorFlow sessions: minutes on 2 cores
def test_probe_is_a_held_out_frog(cifar10, probe_image):
    idx, img = probe_image
    assert cifar10.y_test[idx] == FROG
    rows = np.ascontiguousarray(cifar10.x_train.reshape(len(cifar10.x_train), -1)).view(np.dtype((np.void, 3072)))
    probe = np.ascontiguousarray(img.reshape(1, -1)).view(np.dtype((np.void, 3072)))
    assert not (rows == probe).any(), "the probe frog appears in the training set"


@pytest.mark.integration  # the real data or trained models, or TensorFlow sessions: minutes on 2 cores
def test_probe_frogs(probe_images, probe_image, cifar10):
    idx, imgs = probe_images
    assert len(idx) == 1000 and (cifar10.y_test[idx] == FROG).all() and probe_image[0] in idx


@pytest.mark.integration  # the real data or trained models, or TensorFlow sessions: minutes on 2 cores
def test_models_trained_and_recorded(models_a, models_b, run):
    for t in models_a + models_b:
        assert t.model.count_params() == N_PARAMS and layer_names(t.model) == list(LAYER_NAMES)
        rec = t.record
        assert rec["data_fingerprint"] == run.data.fingerprint
        assert 0.1 < rec["test_accuracy"] <= 1 and rec["epochs"] >= 1
        assert rec["spec"]["n_train"] == run.profile.n_train[t.spec.role]


@pytest.mark.integration  # the real data or trained models, or TensorFlow sessions: minutes on 2 cores
def test_second_load_comes_from_cache(models_a, run):
    msgs = []
    t = get_trained(models_a[0].spec, run.data, run.cache_dir, progress=msgs.append)
    assert msgs == [] and t.key == models_a[0].key


@pytest.mark.integration  # the real data or trained models, or TensorFlow sessions: minutes on 2 cores
def test_activations_of_every_layer(activations):
    for role in ("benchmark", "dummy"):
        acts = activations[role]
        assert set(acts) == set(LAYER_NAMES)
        assert acts["conv2d_1"].shape == (1, 32, 32, 16) and acts["conv2d_6"].shape == (1, 8, 8, 16)
        assert acts["dense_2"].shape == (1, 10)


@pytest.mark.integration  # the real data or trained models, or TensorFlow sessions: minutes on 2 cores
def test_verdicts_are_cached_per_evidence(tmp_path, monkeypatch, capsys):
    import math

    from cnnclaims import verdicts as verdicts_module
    from cnnclaims.testing import synthetic_experiment

    first = synthetic_experiment(tmp_path, n_seeds=2, frogs=6)
    verdicts, null = first.verdicts, first.null_verdicts
    (stored,) = (tmp_path / "cache" / "verdicts").glob("article-*.json")

    def fresh():
        exp = Run(first.profile_name, cache_dir=first.cache_dir, n_seeds=2, progress=lambda *_: None)
        exp.__dict__["data"] = first.data
        exp.loaded.update(first.loaded)
        return exp

    calls = []
    monkeypatch.setattr(verdicts_module, "evaluate_catalog", lambda *a, **k: calls.append(1) or verdicts)
    again = fresh()
    same = lambda a, b: a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))  # noqa: E731
    for a, b in zip(verdicts + null, again.verdicts + again.null_verdicts, strict=False):
        da, db = a.to_dict(), b.to_dict()
        assert da.keys() == db.keys() and all(same(da[k], db[k]) or k == "extras" for k in da), a.name
    assert calls == []  # nothing recomputed
    stored.write_text("{broken")  # a damaged file is reported and recomputed, not trusted
    fresh().verdicts
    assert calls == [1] and "discarding corrupt cache entry" in capsys.readouterr().err


@pytest.mark.integration  # the real data or trained models, or TensorFlow sessions: minutes on 2 cores
def test_one_seed_per_condition_has_no_null_splits_and_says_unreachable(tmp_path):
    """--seeds 1: no seed-to-seed spread. The run still gives every verdict (seeds:
    underpowered, unreachable with N = 1 per condition), no null splits, no crash."""
    from cnnclaims.report import verdict_table_text
    from cnnclaims.testing import synthetic_experiment

    exp = synthetic_experiment(tmp_path, n_seeds=1, frogs=6)
    assert exp.null_splits is None
    seeds = [v for v in exp.verdicts if v.scope == "seeds"]
    assert seeds and all(v.verdict == "underpowered" and v.unreachable and v.n_per_group == 1 for v in seeds)
    text = verdict_table_text(exp.verdicts, exp.null_verdicts, full=True)
    assert "underpowered (unreachable with N = 1)" in text and "unreachable with N = 1:" in text
    assert "underpowered (unreachable)" in verdict_table_text(exp.verdicts, exp.null_verdicts)


@pytest.mark.integration  # the real data or trained models, or TensorFlow sessions: minutes on 2 cores
def test_cached_results_are_keyed_by_the_code_as_imported(tmp_path, monkeypatch):
    """An edit of the source after import must not change this run's cache keys: the
    run computes with the code it imported, so that code must key what it stores
    (read at call time, an old run stored old results under the new code's key)."""
    from pathlib import Path

    from cnnclaims.testing import synthetic_experiment

    exp = synthetic_experiment(tmp_path, n_seeds=2, frogs=6)
    exp.verdicts
    before = sorted(p.name for p in (tmp_path / "cache" / "verdicts").glob("*.json"))
    src = Path(Run.__module__.replace(".", "/")).parts[0]
    real = Path.read_text
    monkeypatch.setattr(
        Path,
        "read_text",
        lambda self, *a, **k: (
            "# edited after import\n" if src in self.parts and self.suffix == ".py" else real(self, *a, **k)
        ),
    )
    again = Run(exp.profile_name, cache_dir=exp.cache_dir, n_seeds=2, progress=lambda *_: None)
    again.__dict__["data"] = exp.data
    again.loaded.update(exp.loaded)
    again.verdicts
    assert sorted(p.name for p in (tmp_path / "cache" / "verdicts").glob("*.json")) == before


@pytest.mark.integration  # trains or runs TensorFlow sessions: minutes on 2 cores
def test_edited_decision_code_is_never_served_stale_verdicts(tmp_path, monkeypatch):
    """The verdict cache is keyed by the code that decides (verdicts.decision_code):
    a fixed TOST or a new rule in an upgraded cnnclaims recomputes; the key used to
    hold only the models and the claims, so an upgrade served the old verdicts."""
    from cnnclaims import verdicts as verdicts_module
    from cnnclaims.testing import synthetic_experiment

    first = synthetic_experiment(tmp_path, n_seeds=2, frogs=6)
    first.verdicts
    calls = []
    real = verdicts_module.evaluate_catalog
    monkeypatch.setattr(verdicts_module, "evaluate_catalog", lambda *a, **k: calls.append(1) or real(*a, **k))
    synthetic_experiment(tmp_path, n_seeds=2, frogs=6).verdicts
    assert calls == []  # same code: served from the cache
    monkeypatch.setattr(verdicts_module, "decision_code", lambda: "another")
    synthetic_experiment(tmp_path, n_seeds=2, frogs=6).verdicts
    assert calls == [1]


@pytest.mark.integration  # the real data or trained models, or TensorFlow sessions: minutes on 2 cores
def test_edited_claims_are_never_served_stale_verdicts(tmp_path):
    # The verdict cache is keyed by the declaration's claims: a flipped direction or a
    # new SESOI under the same experiment name recomputes (it used to serve the old).
    from dataclasses import replace

    from cnnclaims.article import ARTICLE
    from cnnclaims.testing import synthetic_experiment

    first = synthetic_experiment(tmp_path, n_seeds=2, experiment=ARTICLE)
    old = {v.key: v for v in first.verdicts}["C3/seeds"]
    flipped = tuple(replace(c, alternative="less", sesoi=0.5) if c.id == "C3" else c for c in ARTICLE.claims)
    again = synthetic_experiment(tmp_path, n_seeds=2, experiment=replace(ARTICLE, claims=flipped))
    new = {v.key: v for v in again.verdicts}["C3/seeds"]
    assert new.sesoi == 0.5 and old.sesoi == 0.02
    assert "<" in new.claimed and ">" in old.claimed


# --- a slim Run (issue 20, item 2) ------------------------------------------------------


def test_run_stays_under_150_lines():
    import inspect

    assert len(inspect.getsourcelines(Run)[0]) < 150


def test_from_options_reads_each_option_by_its_flag_and_given_fields_win(tmp_path, monkeypatch):
    from cnnclaims.options import ENV_TIME_BUDGET, OPTIONS

    monkeypatch.delenv(ENV_TIME_BUDGET, raising=False)
    given = {
        "--experiment": "cnnclaims.article:ARTICLE",
        "--profile": "smoke",
        "--data": "/data",
        "--cache-dir": str(tmp_path),
        "--seeds": 2,
        "--probe-index": "7",
        "--retrain": True,
        "--workers": 3,
        "--executor": "local",
        "--ray-address": None,
        "--time-budget": 30.0,
    }
    asked = []
    run = Run.from_options(lambda flag: asked.append(flag) or given.get(flag))
    assert set(asked) <= {o.flag for o in OPTIONS} and set(asked) == set(given)
    assert (
        run.experiment.name,
        run.profile_name,
        run.profile.n_seeds,
        run.data_path,
        run.cache_dir,
        run.probe,
        run.retrain,
        run.workers,
        run.executor,
        run.time_budget,
    ) == ("article", "smoke", 2, "/data", tmp_path, "7", True, 3, "local", 30.0)
    other = Run.from_options(given.get, cache_dir=tmp_path / "x", profile_name="article")
    assert other.cache_dir == tmp_path / "x" and other.profile_name == "article"


def test_the_experiment_module_is_a_deprecated_alias_of_run():
    import importlib
    import sys

    import cnnclaims.run

    sys.modules.pop("cnnclaims.experiment", None)
    with pytest.warns(DeprecationWarning, match="cnnclaims.experiment is deprecated: import Run from cnnclaims.run"):
        old = importlib.import_module("cnnclaims.experiment")
    assert (old.Run, old.CODE_DIGEST, old.claims_key) == (
        cnnclaims.run.Run,
        cnnclaims.run.CODE_DIGEST,
        cnnclaims.run.claims_key,
    )


def test_the_experiment_fixture_is_a_deprecated_alias_of_run(pytester, synthetic_exp, cnnclaims_plugin_args):
    import cnnclaims.testing

    cnnclaims.testing.SHARED["experiment"] = synthetic_exp
    try:
        pytester.makeconftest(cnnclaims.testing.INNER_CONFTEST)
        pytester.makepyfile(test_inner="def test_x(experiment, run):\n    assert experiment is run\n")
        r = pytester.runpytest_inprocess(
            "--profile",
            "smoke",
            "--artifacts",
            str(pytester.path / "art"),
            "-p",
            "no:cacheprovider",
            *cnnclaims_plugin_args,
        )
    finally:
        cnnclaims.testing.SHARED.clear()
    r.assert_outcomes(passed=1)
    r.stdout.fnmatch_lines(["*DeprecationWarning: the 'experiment' fixture is deprecated: use the 'run' fixture*"])
