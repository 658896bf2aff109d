"""Training time predicted before training, and the time budget that acts on it."""

import pytest

import cnnclaims.run  # noqa: F401  (in the outer process: pytester restores sys.modules)
import cnnclaims.testing
from cnnclaims import forecast
from cnnclaims.errors import TrainingBudgetError
from cnnclaims.training import TrainSpec

pytest_plugins = ["pytester"]

BENCH = TrainSpec("benchmark", 50000, 0, 30, 3)
DUMMY = TrainSpec("dummy", 10000, 0, 30, 3)


def record(spec, epochs):
    return {
        "spec": {"role": spec.role, "n_train": spec.n_train, "max_epochs": spec.max_epochs, "patience": spec.patience},
        "epochs": epochs,
        "train_seconds": 1.0,
    }


def test_epochs_come_from_cached_models_of_the_group_else_the_limit():
    recs = [record(BENCH, 14), record(BENCH, 20), record(BENCH, 17), record(DUMMY, 9)]
    assert forecast.expected_epochs(BENCH, recs) == (17, "median of 3 cached")
    assert forecast.expected_epochs(TrainSpec("null", 10000, 5, 30, 3), recs)[0] == 16  # same limit, any group
    assert forecast.expected_epochs(TrainSpec("x", 10, 0, 2, 1), recs) == (2, "the epoch limit")


def test_model_seconds_and_the_plan_on_workers():
    tp = forecast.Throughput(train=1000.0, evaluate=4000.0, workers=2, seconds=9.0)
    one = forecast.model_seconds(DUMMY, 10000, tp, 10)
    assert one == pytest.approx(10 * (10 + 2.5) + forecast.OVERHEAD_SECONDS)
    pred = forecast.predict([BENCH, DUMMY, DUMMY], 10000, tp, [], workers=2)
    # every model to its limit (no records): the benchmark alone on one worker
    assert pred.expected == pytest.approx(30 * (50 + 2.5) + forecast.OVERHEAD_SECONDS)
    assert pred.upper == pred.expected and pred.workers == 2 and len(pred.per_spec) == 2
    line = pred.line("3 models")
    assert "predicted 26m to train 3 models on 2 workers" in line and "1,000 training and 4,000 evaluation" in line


@pytest.mark.integration  # trains or runs TensorFlow sessions: minutes on 2 cores
def test_throughput_is_measured_here(monkeypatch):
    from cnnclaims.model import build_model

    tp = forecast.measure(build_model, (32, 32, 3), 10, 32, 50, workers=1)
    assert tp.train > 50 and tp.evaluate > tp.train and tp.workers == 1 and tp.seconds > 0


def slow(*args, **kwargs):
    return forecast.Throughput(train=5.0, evaluate=20.0, workers=1, seconds=0.0)


@pytest.fixture
def unfit_run(tmp_path, monkeypatch):
    """A smoke-profile Run over random images with nothing cached, whose measured
    throughput makes its plan far longer than a one-minute budget."""
    from cnnclaims.data import Cifar10
    from cnnclaims.run import Run
    from cnnclaims.testing import random_cifar

    monkeypatch.setattr(forecast, "measure", slow)
    (xtr, ytr), (xte, yte) = random_cifar(400, 10)
    run = Run("smoke", cache_dir=tmp_path / "cache", progress=lambda *_: None, time_budget=1.0)
    run.__dict__["data"] = Cifar10(xtr, ytr, xte, yte, source="random", fingerprint="random")
    return run


def test_a_plan_over_the_budget_trains_nothing_and_says_what_it_will_not_check(unfit_run):
    lines = []
    unfit_run.progress = lines.append
    with pytest.raises(
        TrainingBudgetError,
        match=r"not training: 15 models of profile 'smoke' \(0 of its 15 are "
        r"cached\) are predicted to take .* more than the time budget of 1m",
    ):
        unfit_run.models(unfit_run.a)
    assert lines[0].startswith("cnnclaims: predicted ") and "not training" in lines[-1]
    with pytest.raises(TrainingBudgetError):  # refused once, refused at once for the session
        unfit_run.models(unfit_run.b)
    from cnnclaims.inventory import model_entries

    assert model_entries(unfit_run.cache_dir) == []
    assert unfit_run.plan_summary() == {
        "planned": 15,
        "cached": 0,
        "trained": 0,
        "not_trained": 15,
        "reason": unfit_run.plan_status["budget"],
    }


@pytest.mark.integration  # trains or runs TensorFlow sessions: minutes on 2 cores
def test_without_a_budget_the_prediction_is_said_and_training_starts(unfit_run, monkeypatch):
    import cnnclaims.run_plan as run_plan

    started = []
    monkeypatch.setattr(run_plan, "train_missing", lambda specs, *a, **k: started.append(k["estimates"]) or [])
    unfit_run.time_budget = None
    unfit_run.train()
    assert started and len(started[0]) == 15  # the measured estimates go to the progress's ETA


@pytest.mark.integration  # trains or runs TensorFlow sessions: minutes on 2 cores
def test_pytest_reports_the_claims_skipped_and_one_summary_line(unfit_run, pytester, cnnclaims_plugin_args):
    cnnclaims.testing.SHARED["experiment"] = unfit_run
    try:
        pytester.makeconftest(cnnclaims.testing.INNER_CONFTEST)
        pytester.makepyfile(test_inner="def test_claim(claim_case, claim_checker):\n    claim_checker(claim_case)\n")
        r = pytester.runpytest_inprocess(
            "--profile",
            "smoke",
            "--pinned-verdicts",
            str(pytester.path / "p.json"),
            "--artifacts",
            str(pytester.path / "art"),
            "-p",
            "no:cacheprovider",
            "-rs",
            *cnnclaims_plugin_args,
        )
    finally:
        cnnclaims.testing.SHARED.clear()
    outcomes = r.parseoutcomes()
    assert outcomes.get("skipped", 0) >= 30 and "failed" not in outcomes and "passed" not in outcomes, outcomes
    r.stdout.fnmatch_lines(
        [
            "cnnclaims: profile smoke: 15 models: 0 cached, 0 trained here, 15 not trained; "
            "0 claim cases and 0 null-control cases checked against their pins, "
            f"{outcomes['skipped']} not checked (not training: 15 models of profile 'smoke'*",
            "*SKIPPED*cnnclaims: not training: 15 models of profile 'smoke' (0 of its 15 are cached)*",
        ]
    )


def test_the_plan_line_counts_models_and_cases():
    from cnnclaims.pytest_plugin import plan_line

    plan = {"planned": 40, "cached": 38, "trained": 2, "not_trained": 0, "reason": None}
    assert plan_line(plan, "article", 64, 18, 0) == (
        "cnnclaims: profile article: 40 models: 38 cached, 2 trained here; 64 claim cases and 18 null-control "
        "cases checked against their pins"
    )
    assert plan_line(None, "smoke", 1, 0, 3) == (
        "cnnclaims: profile smoke: no models asked for; 1 claim case and "
        "0 null-control cases checked against their pins, 3 not checked"
    )
