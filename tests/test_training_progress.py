"""cnnclaims.training.progress: plan progress (which models run, done out of planned,
elapsed, ETA), the LPT makespan against worked examples, and the simulated makespan,
on fake records and an injected clock: no training, no TensorFlow except where the
worker-side wiring is checked."""

import json
import math
import warnings

import numpy as np
import pytest

from cnnclaims.makespan import knee, markdown, plan_jobs, simulate
from cnnclaims.training.progress import (
    EPOCH_BASIS,
    PlanProgress,
    estimate,
    estimate_seconds,
    lower_bound,
    lpt_makespan,
    makespan_table,
    recorded,
)

pytestmark = pytest.mark.unit


class Spec:
    """A TrainSpec stand-in (hashable, the fields PlanProgress reads), so this file
    needs no TensorFlow."""

    def __init__(self, role, n_train, seed, max_epochs=30, patience=3):
        self.role, self.n_train, self.seed, self.max_epochs, self.patience = role, n_train, seed, max_epochs, patience

    @property
    def label(self):
        return f"{self.role} seed={self.seed} n={self.n_train}"


def rec(n, seconds, max_epochs=30, patience=3):
    return {
        "spec": {"role": "x", "n_train": n, "seed": 0, "max_epochs": max_epochs, "patience": patience},
        "train_seconds": seconds,
    }


RECORDS = [rec(1000, 90.0), rec(1000, 110.0), rec(4000, 400.0), rec(4000, 5.0, max_epochs=2, patience=1)]


class Clock:
    def __init__(self):
        self.t = 1000.0  # not 0: elapsed must be measured from the plan's start

    def __call__(self):
        return self.t


# --- estimates ----------------------------------------------------------------------


def test_same_size_is_the_mean_of_its_records():
    (e,) = estimate([Spec("a", 1000, 0)], RECORDS)
    assert e.seconds == 100.0 and e.basis == "recorded (2 models)" and not e.scaled


def test_a_size_without_records_is_scaled_from_the_nearest_recorded_size():
    # 3000 is nearer 4000 (ratio 1.33) than 1000 (ratio 3): 400 * 3000 / 4000.
    # 2000 is as near both (ratio 2): the larger, 4000, gives 400 * 2000 / 4000.
    # The 2-epoch record of n=4000 is never used for a 30-epoch spec.
    got = estimate([Spec("a", 3000, 0), Spec("a", 2000, 0), Spec("a", 500, 0)], RECORDS)
    assert [e.seconds for e in got] == [300.0, 200.0, 50.0]
    assert [e.basis for e in got] == [
        "scaled from n=4000 (1 model)",
        "scaled from n=4000 (1 model)",
        "scaled from n=1000 (2 models)",
    ]
    assert all(e.scaled for e in got)


def test_no_record_of_the_setting_is_nan_and_says_so():
    (e,) = estimate([Spec("a", 1000, 0, max_epochs=10)], RECORDS)
    assert math.isnan(e.seconds) and e.basis == "no record"
    assert math.isnan(estimate_seconds([Spec("a", 1000, 0)], [])[0])
    assert estimate_seconds([{"n_train": 4000, "max_epochs": 2, "patience": 1}], RECORDS) == [5.0]


def test_bad_records_and_specs_are_named():
    with pytest.raises(ValueError, match=r"record 1 of 2: .*recorded\(cache_dir\)"):
        estimate([Spec("a", 1000, 0)], [rec(1000, 1.0), {"spec": {"n_train": 1000}}])
    with pytest.raises(ValueError, match="needs integer n_train"):
        estimate([object()], RECORDS)


def test_recorded_reads_the_cache_tolerantly(tmp_path):
    models = tmp_path / "models"
    good = rec(1000, 12.5)
    for name, content in {
        "good": json.dumps(good),
        "not-json": "{",
        "a-list": "[1, 2]",
        "no-time": json.dumps({"spec": good["spec"]}),
        "negative": json.dumps(rec(1000, -1.0)),
        "nan": json.dumps(rec(1000, float("nan"))),
        "busy.partial": json.dumps(rec(1000, 99.0)),
        "bytes": None,
    }.items():
        (models / name).mkdir(parents=True)
        path = models / name / "record.json"
        path.write_bytes(b"\xff\xfe\x00") if content is None else path.write_text(content)
    (models / "empty").mkdir()  # a folder without a record
    assert recorded(tmp_path) == [good]
    assert recorded(tmp_path / "nowhere") == []


# --- the ETA ------------------------------------------------------------------------


def test_busy_workers_keep_their_jobs_in_the_lpt_makespan():
    # Worker loads 50 and 350; 200 goes to the first (250), then 100 to it again (350).
    assert lpt_makespan([200, 100], 2, busy=[350, 50]) == 350
    assert lpt_makespan([3], 2, busy=[5]) == 5  # the idle worker takes the job
    assert lpt_makespan([], 4, busy=[7, 2]) == 7
    with pytest.raises(ValueError, match="3 busy workers but only 2"):
        lpt_makespan([1], 2, busy=[1, 1, 1])
    with pytest.raises(ValueError, match="busy times"):
        lpt_makespan([1], 2, busy=[-1])


def test_eta_is_the_lpt_makespan_of_the_work_left():
    a, b, c, d = Spec("benchmark", 4000, 0), Spec("dummy", 1000, 1), Spec("dummy", 1000, 2), Spec("sizes", 2000, 3)
    clock, lines = Clock(), []
    plan = PlanProgress([a, b, c, d], 2, progress=lines.append, clock=clock, records=RECORDS)
    plan.started(a)
    plan.started(b)
    clock.t += 50
    # Estimates a 400, b 100, c 100, d 200 (scaled). After 50 s: a needs 350, b 50 on
    # their workers; LPT puts d (200) then c (100) on b's worker: 50 + 200 + 100 = 350.
    assert plan.eta()[0] == 350
    clock.t += 50
    plan.finished(b, 150.0)  # 1.5 times its estimate: every estimate is corrected so
    # a 600 - 100 = 500 on its worker; d 300 and c 150 on the other: 450. Makespan 500.
    seconds, basis = plan.eta()
    assert seconds == 500 and plan.ratio() == 1.5
    assert basis == (
        "LPT over 3 left on 2 workers, from recorded times, n=2000 scaled from other sizes, "
        "x1.50 as observed on 1 model of this run"
    )
    assert lines[-1] == (
        "cnnclaims: finished dummy seed=1 n=1000 in 2m30s (estimated 2m); plan 1/4 done, running: "
        "benchmark s0 n=4000 starting; elapsed 1m40s, ETA 8m (" + basis + ")"
    )
    clock.t += 1000  # a ran past its estimate: its remaining time is 0, not negative
    assert plan.eta()[0] == 300


def test_running_models_keep_their_workers_in_the_eta():
    # Two 100 s models running for 90 s hold both workers for 10 s more; the queued
    # 400 s model starts after: 410 s. (Scheduling the 10 s remainders as if they were
    # queued would give 400: the big model on a free worker that does not exist.)
    a, b, c = Spec("dummy", 1000, 0), Spec("dummy", 1000, 1), Spec("benchmark", 4000, 2)
    clock = Clock()
    plan = PlanProgress([a, b, c], 2, progress=[].append, clock=clock, records=RECORDS)
    plan.started(a)
    plan.started(b)
    clock.t += 90
    assert plan.eta()[0] == 410


def test_lines_say_what_runs_its_epoch_and_each_epoch_once():
    a, b = Spec("benchmark", 4000, 3), Spec("dummy", 1000, 6)
    clock, lines = Clock(), []
    plan = PlanProgress([a, b, Spec("null", 1000, 7)], 2, progress=lines.append, clock=clock, records=RECORDS)
    plan.started(a)
    assert lines == [
        "cnnclaims: started benchmark seed=3 n=4000 (estimated 7m, recorded (1 model)); plan 0/3 done, "
        "running: benchmark s3 n=4000 starting; elapsed 0s, ETA 7m (LPT over 3 left on 2 workers, "
        "from recorded times)"
    ]
    plan.started(b)
    clock.t += 724
    plan.epoch(a, 4, 30, "loss=1.2345")
    plan.epoch(a, 4, 30, "loss=1.2345")  # said once
    plan.epoch(b, 9, 30)
    assert len(lines) == 4
    assert lines[2].startswith(
        "cnnclaims: [benchmark seed=3 n=4000] epoch 4/30 loss=1.2345; plan 0/3 done, running: "
        "benchmark s3 n=4000 epoch 4/30, dummy s6 n=1000 starting; elapsed 12m04s, ETA "
    )
    assert "running: benchmark s3 n=4000 epoch 4/30, dummy s6 n=1000 epoch 9/30;" in lines[3]
    assert plan.status().startswith("cnnclaims: plan 0/3 done")


def test_no_recorded_times_says_eta_unknown_until_this_run_gives_some():
    a, b = Spec("dummy", 1000, 0), Spec("dummy", 1000, 1)
    clock, lines = Clock(), []
    plan = PlanProgress([a, b], 1, progress=lines.append, clock=clock, records=[])
    plan.started(a)
    assert lines[-1].endswith("ETA unknown (no recorded times yet)") and "(no estimate yet)" in lines[-1]
    clock.t += 60
    plan.finished(a, 60.0)
    plan.started(b)
    assert "estimated 1m, from this run's models" in lines[-1]
    assert lines[-1].endswith("ETA 1m (LPT over 1 left on 1 worker, from this run's times)")
    clock.t += 60
    plan.finished(b, 61.0)
    assert lines[-1].endswith("plan 2/2 done, running: none; elapsed 2m00s, all done")


def test_with_nothing_recorded_the_epoch_just_finished_gives_the_eta():
    """Issue 22: with no record and no forecast (a fresh cache, or a Ray plan) the first
    model said "ETA unknown" the whole time, even after an epoch. After an epoch the ETA
    is the epochs left to the limit times that epoch's time (an upper bound: early
    stopping may end sooner); a queued model of a size nothing predicts takes the same
    epoch's seconds per training image."""
    # b's epoch limit differs, so that a's finished model does not predict it.
    a, b = Spec("benchmark", 4000, 0), Spec("dummy", 1000, 1, max_epochs=20)
    clock, lines = Clock(), []
    plan = PlanProgress([a, b], 1, progress=lines.append, clock=clock, records=[])
    plan.started(a)
    assert lines[-1].endswith("ETA unknown (no recorded times yet)")
    clock.t += 50
    plan.epoch(a, 1, 30, "loss=2.0")  # no time given: the clock's 50 s since the start
    # a: 29 epochs left x 50 s; b queued behind it: 1,000 images x 50/4,000 s x 20 epochs.
    assert plan.eta() == (29 * 50 + 250, "LPT over 2 left on 1 worker, " + EPOCH_BASIS)
    assert lines[-1].endswith(f"elapsed 50s, ETA 28m ({plan.eta()[1]})")
    clock.t += 45
    plan.epoch(a, 2, 30, "", 40.0)  # the worker's own measure of the epoch: 40 s
    # From epoch 2's end: 28 x 40 s left for a, then b at 40/4,000 s per image.
    assert plan.eta()[0] == 28 * 40 + 200
    clock.t += 5  # time passing counts down from the epoch's end
    assert plan.eta()[0] == 28 * 40 - 5 + 200
    plan.epoch(a, 3, 30, "", 40.0)
    plan.finished(a, 150.0)  # stopped early after 3 epochs
    # b's size has no finished model: the epoch's per-image time still predicts it.
    assert plan.eta() == (200, "LPT over 1 left on 1 worker, " + EPOCH_BASIS)
    plan.started(b)
    assert f"estimated 3m, {EPOCH_BASIS}" in lines[-1]
    clock.t += 10
    plan.epoch(b, 1, 20, "", 10.0)
    assert plan.eta()[0] == 19 * 10  # b's own epoch now


def test_a_forecast_predicts_the_eta_before_any_epoch_and_wins_over_epochs():
    """The plan's forecast (``priors``, throughput measured here) gives the ETA from the
    start; an epoch does not replace it."""
    a, b = Spec("benchmark", 4000, 0), Spec("dummy", 1000, 1)
    clock, lines = Clock(), []
    plan = PlanProgress([a, b], 1, progress=lines.append, clock=clock, records=[], priors={a: 600.0, b: 150.0})
    plan.started(a)
    assert lines[-1].endswith("ETA 12m (LPT over 2 left on 1 worker, from throughput measured here)")
    assert "estimated 10m, from throughput measured here" in lines[-1]
    clock.t += 50
    plan.epoch(a, 1, 30, "", 50.0)
    assert plan.eta() == (700.0, "LPT over 2 left on 1 worker, from throughput measured here")


def test_a_size_nothing_predicts_leaves_the_eta_unknown_and_says_which(tmp_path):
    known, other = Spec("dummy", 1000, 0), Spec("dummy", 1000, 0, max_epochs=5)
    plan = PlanProgress([known, other], 2, cache_dir=tmp_path, progress=[].append, clock=Clock())
    assert plan.eta() == (pytest.approx(math.nan, nan_ok=True), "no recorded times yet")  # empty cache
    (tmp_path / "models" / "m").mkdir(parents=True)
    (tmp_path / "models" / "m" / "record.json").write_text(json.dumps(rec(1000, 10.0)))
    plan = PlanProgress([known, other], 2, cache_dir=tmp_path, progress=[].append, clock=Clock())
    assert plan.eta()[1] == "no recorded time for n=1000 (5 epochs, patience 3) yet"
    with pytest.raises(ValueError, match="workers"):
        PlanProgress([known], 0, progress=print)


# --- the worker-side wiring ---------------------------------------------------------


class Queue:
    """A worker's queue to the parent, as the channel sees it."""

    def __init__(self):
        self.items = []

    def put(self, item):
        self.items.append(item)


def test_worker_events_reach_the_plan_and_lines_reach_progress():
    from cnnclaims.training import ProgressCallback, TrainSpec
    from cnnclaims.training.progress import ProgressChannel, relay

    spec = TrainSpec("dummy", 1000, 4, 30, 3)
    q, lines, clock = Queue(), [], Clock()
    channel = ProgressChannel(q.put)
    channel("a plain line")
    channel.event("started")  # no model yet: nothing to say
    channel.spec = spec
    channel.event("started")
    cb = ProgressCallback(spec.label, 30, channel)
    cb.on_train_begin()
    cb.on_epoch_begin(0)
    cb.on_epoch_end(0, {"loss": 1.5, "accuracy": 0.25, "val_loss": 1.75, "val_accuracy": 0.2})
    channel.event("finished", 12.0)
    assert [m if isinstance(m, str) else m[0] for m in q.items] == ["a plain line", "started", "epoch", "finished"]
    *_, seconds = q.items[2]  # the epoch's own time, for the ETA of a size nothing predicts
    assert isinstance(seconds, float) and seconds >= 0
    no_plan: list = []
    relay([q.items[2]], no_plan.append)  # without a plan: the plain epoch line
    assert no_plan[0].startswith("cnnclaims: [dummy seed=4 n=1000] epoch 1/30 loss=1.5000")
    plan = PlanProgress([spec], 2, progress=lines.append, clock=clock, records=[rec(1000, 10.0)])
    relay(q.items, lines.append, plan)
    assert lines[0] == "a plain line" and lines[1].startswith("cnnclaims: started dummy seed=4 n=1000")
    assert lines[2].startswith(
        "cnnclaims: [dummy seed=4 n=1000] epoch 1/30 loss=1.5000 acc=0.2500 val_loss=1.7500 val_acc=0.2000 ("
    )
    assert lines[3].startswith("cnnclaims: finished dummy seed=4 n=1000 in 12s") and "plan 1/1 done" in lines[3]
    # Without a channel (training in this process) the epoch line is the plain one.
    plain = []
    cb = ProgressCallback(spec.label, 30, plain.append)
    cb.on_train_begin()
    cb.on_epoch_begin(0)
    cb.on_epoch_end(0, {"loss": 1.5})
    assert plain[0].startswith("cnnclaims: [dummy seed=4 n=1000] epoch 1/30 loss=1.5000 acc=nan")
    # ... with this model's own ETA (no plan's ETA there): the epochs left at this epoch's time.
    assert plain[0].endswith(" left for this model (29 epochs at this epoch's time, at most)")
    cb.on_epoch_begin(29)
    cb.on_epoch_end(29, {"loss": 1.5})  # the last epoch: nothing left to say
    assert plain[1].endswith("s)")


# --- the simulated makespan ---------------------------------------------------------


def test_makespan_of_a_plan_from_fake_records():
    items = [("big", 4000)] * 2 + [("small", 1000)] * 4 + [("mid", 2000)]
    sim = simulate(items, RECORDS, workers=(1, 2, 4, 8), max_epochs=30, patience=3)
    # 400, 400, 200 (scaled), 100 x 4: total 1400, longest 400.
    assert [j.seconds for j in sim["jobs"]] == [400, 400, 100, 100, 100, 100, 200]
    assert sim["total_s"] == 1400 and sim["longest_s"] == 400 and sim["scaled"] == [2000]
    rows = {r["workers"]: r for r in sim["rows"]}
    assert rows[1]["makespan_s"] == 1400
    assert rows[2]["makespan_s"] == 700 and rows[2]["lower_bound_s"] == 700  # 400+200+100 | 400+100+100+100
    assert rows[4]["makespan_s"] == 400 and rows[4]["bound_by_longest"]
    # 3 workers: 400 | 400 | 200+100+100+100 = 500; from 4 on the longest model is the makespan.
    assert sim["knee"] == 4 == knee([j.seconds for j in sim["jobs"]])
    md = markdown({"toy": sim})
    assert "| toy | 2 | 11.7 | 11.7 | 2.00 | no | scaled for n=2000; others recorded |" in md
    assert "from 4 workers on the longest model is the makespan" in md and "n=2000: 3.3 min, scaled from n=4000" in md


def test_makespan_refuses_what_it_cannot_predict():
    with pytest.raises(ValueError, match=r"n_train=\[1000\].*--cache-dir"):
        simulate([("x", 1000)], [], max_epochs=30, patience=3)
    with pytest.raises(ValueError, match="needs max_epochs and patience"):
        plan_jobs([("x", 1000)], RECORDS)
    with pytest.raises(ValueError, match="expected a TrainSpec or a"):
        plan_jobs(["x"], RECORDS)
    assert knee([]) is None and simulate([], RECORDS)["rows"] == []


def test_makespan_plot_is_a_picture(tmp_path):
    from PIL import Image

    from cnnclaims import plots
    from cnnclaims.makespan import makespan_figure

    sim = simulate([("big", 4000)] * 2 + [("small", 1000)] * 4, RECORDS, max_epochs=30, patience=3)
    path = plots.save(makespan_figure({"toy": sim}), tmp_path / "m.png")
    with Image.open(path) as im:
        lo, hi = im.convert("L").getextrema()
        assert im.size[0] > 300 and hi > lo
    # Records of 0 s (models that were loaded, not trained): a linear axis, no warning.
    zero = simulate([("x", 1000)] * 3, [rec(1000, 0.0)], max_epochs=30, patience=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plots.save(makespan_figure({"zero": zero}), tmp_path / "z.png")


# --- the LPT makespan against worked examples ------------------------------------------


def test_graham_worst_case_example():
    # Graham's tight example for m = 2: jobs 3, 3, 2, 2, 2. LPT gives 7, the optimum is 6
    # (3+3 | 2+2+2): LPT is a heuristic, within 4/3 - 1/(3m) = 7/6 of the optimum.
    assert lpt_makespan([3, 3, 2, 2, 2], 2) == 7
    assert lower_bound([3, 3, 2, 2, 2], 2) == 6


def test_one_worker_is_the_sum_and_many_workers_the_longest_job():
    t = [5.0, 1.0, 2.0, 7.0]
    assert lpt_makespan(t, 1) == 15
    assert lpt_makespan(t, 4) == lpt_makespan(t, 256) == 7
    rows = makespan_table(t, (1, 2, 4, 256))
    assert [r["bound_by_longest"] for r in rows] == [False, False, True, True]
    assert rows[1]["makespan_s"] == 8  # 7+1 | 5+2
    assert rows[-1]["speedup"] == pytest.approx(15 / 7)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="workers"):
        lpt_makespan([1.0], 0)
    with pytest.raises(ValueError, match="non-negative"):
        lpt_makespan([1.0, -2.0], 2)
    with pytest.raises(ValueError, match="finite"):
        lpt_makespan([np.nan], 2)
    assert lpt_makespan([], 3) == 0
