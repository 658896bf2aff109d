"""Progress of a training plan: which models run and at which epoch, how many are done
out of how many planned, the elapsed time, and an ETA for the whole plan; and the
makespan of a plan on W workers (longest-processing-time-first list scheduling).

The ETA is predicted from the recorded training times of models of the same size
(``record.json`` in the cache's models folder): the longest-processing-time-first
makespan (``lpt_makespan``) of the work left on the plan's workers, where a running
model keeps its worker for its estimate less the time it has run. Once models finish
in this run, the estimates are corrected by the ratio of their observed to their
estimated times (a busier or faster machine than the one that recorded them). A model
that nothing predicts (no record of its size, no forecast: a fresh cache, or a Ray
plan, which has no forecast) is predicted from the epoch just finished: the epochs left
to its epoch limit times that epoch's time, an upper bound since early stopping may end
it sooner; a queued model of such a size from the same epoch's time per training image.

Every executor reports the same three events (``started``, ``epoch``, ``finished``) to
a ``PlanProgress``: its workers talk through a ``ProgressChannel``, and the driver
passes what they said on with ``relay``. Nothing here trains or imports TensorFlow;
the clock is injected, so the lines are testable without waiting.

LPT (Graham 1969): sort the jobs longest first and give each to the worker that frees
up first. Its makespan is at most (4/3 - 1/(3W)) times the optimum, and never below
the two lower bounds ``max(longest job, total / W)``; once W exceeds the number of
jobs, or the longest job dominates, adding workers cannot help: the longest single
model bounds the makespan.
"""

from __future__ import annotations

import heapq
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..cache import is_json_number

# --- the makespan of a plan -----------------------------------------------------------


def lpt_makespan(seconds, workers: int, busy=()) -> float:
    """Makespan in seconds of jobs ``seconds`` ((n,) non-negative floats) on
    ``workers`` identical workers under LPT list scheduling.

    ``busy``: seconds that some workers (at most ``workers``) still need for a job
    already running on them ((k,) non-negative floats, k <= workers): a running job
    stays where it is, and the queued jobs go to whichever worker frees up first (what
    a pool does while a plan is under way; ``PlanProgress`` predicts its ETA so).

    Raises ValueError for fewer than one worker, a negative or non-finite time, or
    more busy workers than workers."""
    t = np.asarray(seconds, dtype=np.float64).ravel()
    b = np.asarray(busy, dtype=np.float64).ravel()
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    for name, values in (("job times", t), ("busy times", b)):
        if values.size and (not np.isfinite(values).all() or (values < 0).any()):
            raise ValueError(f"{name} must be finite and non-negative seconds")
    if b.size > workers:
        raise ValueError(f"{b.size} busy workers but only {workers} workers; pass at most one busy time per worker")
    # Idle workers beyond the job count never receive a job: leaving them out keeps
    # the heap small for 256 workers and gives the same maximum.
    loads = [float(x) for x in b] + [0.0] * min(workers - b.size, t.size) or [0.0]
    heapq.heapify(loads)
    for job in np.sort(t)[::-1]:
        heapq.heappush(loads, heapq.heappop(loads) + float(job))
    return max(loads)


def lower_bound(seconds, workers: int) -> float:
    """``max(longest job, total / workers)``: no schedule finishes sooner."""
    t = np.asarray(seconds, dtype=np.float64).ravel()
    return float(max(t.max(initial=0.0), t.sum() / workers))


def makespan_table(seconds, workers=(1, 2, 4, 8, 16, 64, 256)) -> list[dict]:
    """One row per worker count: ``workers``, ``makespan_s`` (LPT), ``lower_bound_s``,
    ``speedup`` over one worker, and ``bound_by_longest`` (the longest single model
    is the makespan: more workers cannot help)."""
    t = np.asarray(seconds, dtype=np.float64).ravel()
    one = lpt_makespan(t, 1)
    longest = float(t.max(initial=0.0))
    rows = []
    for w in workers:
        ms = lpt_makespan(t, w)
        rows.append(
            {
                "workers": int(w),
                "makespan_s": ms,
                "lower_bound_s": lower_bound(t, w),
                "speedup": one / ms if ms > 0 else float("nan"),
                "bound_by_longest": bool(np.isclose(ms, longest)),
            }
        )
    return rows


# --- recorded times -----------------------------------------------------------------


def usable_record(record) -> bool:
    """Whether a record carries what an estimate reads: spec.n_train, spec.max_epochs,
    spec.patience (positive / non-negative integers) and a finite, non-negative
    train_seconds."""
    if not isinstance(record, dict) or not isinstance(record.get("spec"), dict):
        return False
    spec, secs = record["spec"], record.get("train_seconds")
    ints: list = [spec.get(k) for k in ("n_train", "max_epochs", "patience")]
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in ints):
        return False
    if not is_json_number(secs):
        return False
    return ints[0] >= 1 and ints[1] >= 1 and ints[2] >= 0 and math.isfinite(secs) and secs >= 0


def recorded(cache_dir) -> list[dict]:
    """The model records (``<cache_dir>/models/*/record.json`` as dicts) that an
    estimate can read, sorted by path.

    Tolerant by design: the cache may be written while this reads it, and a progress
    line must never stop a training run. A record that cannot be read, is not JSON, or
    lacks the fields an estimate needs (see ``usable_record``) is skipped silently (training
    itself reports and replaces damaged entries); a missing or unreadable folder gives
    []. ``.partial`` folders (models being built) are never read."""
    folder = Path(cache_dir) / "models"
    try:
        paths = sorted(p for p in folder.glob("*/record.json") if not p.parent.name.endswith(".partial"))
    except OSError:
        return []
    records = []
    for path in paths:
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):  # UnicodeDecodeError is a ValueError
            continue
        if usable_record(record):
            records.append(record)
    return records


def _size(spec, what: str = "spec") -> tuple[int, int, int]:
    """(n_train, max_epochs, patience) of a TrainSpec, of anything with those
    attributes, or of a dict with those keys (a record's ``spec``)."""
    get = spec.get if isinstance(spec, dict) else (lambda k: getattr(spec, k, None))
    values: tuple = tuple(get(k) for k in ("n_train", "max_epochs", "patience"))
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in values) or values[0] < 1:
        raise ValueError(
            f"{what} {spec!r}: needs integer n_train (>= 1), max_epochs and patience; pass a "
            "training.TrainSpec or a dict with those keys"
        )
    return values


@dataclass(frozen=True)
class Estimate:
    """A model's predicted training time: ``seconds`` (float, NaN when nothing predicts
    it) and ``basis``: ``"recorded (k models)"`` (the mean of k records of the same
    size; "1 model" for one), ``"scaled from n=N (k models)"`` (the mean at the nearest
    recorded size N, times n_train / N), or ``"no record"``."""

    seconds: float
    basis: str

    @property
    def scaled(self) -> bool:
        return self.basis.startswith("scaled")


def estimate(specs, records) -> list[Estimate]:
    """One Estimate per spec, from ``records`` (dicts as in record.json, e.g. from
    ``recorded(cache_dir)``).

    Same size means the same n_train, max_epochs and patience: the epoch limit and
    early stopping set the epochs trained, n_train the time per epoch. A size without
    records is scaled from the nearest recorded size of the same max_epochs and patience
    (nearest by ratio, so 25,000 scales from 50,000 rather than 10,000), proportionally
    to n_train: the time per epoch grows with the images, and the epochs to early
    stopping are assumed unchanged (a guess, which the basis says). Records of another
    epoch limit or patience are not used: a 2-epoch smoke record says little about a
    30-epoch early-stopped run. The recipe (architecture) is not compared.

    Raises ValueError naming the spec or the record (by position) that lacks the fields."""
    by_setting: dict[tuple, dict[int, list[float]]] = {}
    for i, r in enumerate(records):
        if not usable_record(r):
            raise ValueError(
                f"record {i} of {len(records)}: needs spec.n_train, spec.max_epochs, spec.patience "
                "and a finite train_seconds >= 0; read records with progress.recorded(cache_dir), "
                "which skips unusable ones"
            )
        n, epochs, patience = _size(r["spec"], "record spec")
        by_setting.setdefault((epochs, patience), {}).setdefault(n, []).append(float(r["train_seconds"]))
    out = []
    for spec in specs:
        n, epochs, patience = _size(spec)
        sizes = by_setting.get((epochs, patience), {})
        if n in sizes:
            times = sizes[n]
            out.append(Estimate(sum(times) / len(times), f"recorded ({_models(len(times))})"))
        elif sizes:
            near = min(sizes, key=lambda m: (abs(math.log(n / m)), -m))  # a tie: the larger, better measured
            times = sizes[near]
            out.append(Estimate(sum(times) / len(times) * n / near, f"scaled from n={near} ({_models(len(times))})"))
        else:
            out.append(Estimate(math.nan, "no record"))
    return out


def _models(k: int) -> str:
    return f"{k} model" + ("s" if k != 1 else "")


def estimate_seconds(specs, records) -> list[float]:
    """Predicted training seconds per spec (a list of floats, NaN where no record of
    the same epoch limit and patience exists); ``estimate`` gives the basis of each."""
    return [e.seconds for e in estimate(specs, records)]


# --- the progress of a plan ---------------------------------------------------------

# How an estimate from the epoch just finished is said: it assumes every epoch up to
# the limit is trained, so it is an upper bound (early stopping may end a model sooner).
EPOCH_BASIS = "at most, from the epoch just finished x the epochs left to the limit"


def duration(seconds: float) -> str:
    """``12m04s``, ``1h02m04s``, ``45s``; ``?`` for NaN."""
    if not math.isfinite(seconds):
        return "?"
    s = int(round(max(0.0, seconds)))
    h, m, sec = s // 3600, s // 60 % 60, s % 60
    return f"{h}h{m:02d}m{sec:02d}s" if h else f"{m}m{sec:02d}s" if m else f"{sec}s"


def rough(seconds: float) -> str:
    """A prediction, no finer than it is: ``31m``, ``1h05m``, ``40s``."""
    s = int(round(max(0.0, seconds)))
    if s < 60:
        return f"{s}s"
    m = int(round(s / 60))
    return f"{m // 60}h{m % 60:02d}m" if m >= 60 else f"{m}m"


def short_name(spec) -> str:
    """``benchmark s3 n=50000``: role, seed and size, for the list of running models."""
    return f"{getattr(spec, 'role', '?')} s{getattr(spec, 'seed', '?')} n={getattr(spec, 'n_train', '?')}"


def _label(spec) -> str:
    return getattr(spec, "label", None) or short_name(spec)


class PlanProgress:
    """The progress of training ``specs`` (TrainSpecs, hashable) on ``workers`` workers,
    said through ``progress`` (a callable taking one line of text).

    Executors call ``started(spec)`` when a model begins training, ``epoch(spec,
    epoch, max_epochs)`` after each epoch and ``finished(spec, seconds)`` when it is
    stored; each prints one line (an epoch at most once per model and epoch) ending in
    ``status()``. Estimates come from the records in ``cache_dir`` when this is made
    (or ``records``, a list of record dicts, when given), and ``priors`` (``{spec:
    seconds}``, from ``forecast``) replace them where given; ``clock`` gives seconds
    (default ``time.monotonic``), injected by tests. A spec the plan did not list is
    added to it rather than refused: a progress line must never stop a training run.

    Raises ValueError for fewer than one worker or specs without n_train, max_epochs
    and patience."""

    def __init__(
        self,
        specs,
        workers: int,
        cache_dir=None,
        progress=print,
        clock=time.monotonic,
        records=None,
        priors: dict | None = None,
    ):
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be an integer of at least 1, got {workers!r}")
        self.workers, self.progress, self.clock = workers, progress, clock
        self.records = list(records) if records is not None else recorded(cache_dir) if cache_dir else []
        self.specs = list(dict.fromkeys(specs))
        self._prior = dict(zip(self.specs, estimate(self.specs, self.records), strict=False))
        for spec, seconds in (priors or {}).items():  # measured here: preferred to records
            if spec in self._prior and math.isfinite(seconds):
                self._prior[spec] = Estimate(float(seconds), "from throughput measured here")
        self.t0 = clock()
        self._running: dict = {}  # spec -> [start time, last epoch, max epochs]
        self._done: dict = {}  # spec -> observed seconds
        self._said: set = set()  # (spec, epoch) already said
        # The epoch just finished, per running model: (clock at its event, its seconds);
        # and the latest one's seconds per training image, for sizes nothing predicts.
        self._last_epoch: dict = {}
        self._per_image: float = math.nan

    # -- events ---------------------------------------------------------------------

    def _add(self, spec) -> None:
        if spec not in self._prior:
            self.specs.append(spec)
            self._prior[spec] = estimate([spec], self.records)[0]

    def started(self, spec) -> None:
        """``spec`` began training now; says one line."""
        self._add(spec)
        self._done.pop(spec, None)  # trained again (a retry): it is not done
        self._last_epoch.pop(spec, None)
        self._running[spec] = [self.clock(), 0, getattr(spec, "max_epochs", 0)]
        est, how = self._estimated().get(spec, (math.nan, ""))
        basis = {"prior": self._prior[spec].basis, "epoch": EPOCH_BASIS}.get(how, "from this run's models")
        guess = f"estimated {rough(est)}, {basis}" if math.isfinite(est) else "no estimate yet"
        self.progress(f"cnnclaims: started {_label(spec)} ({guess}); {self.status(prefix=False)}")

    def epoch(self, spec, epoch: int, max_epochs: int, detail: str = "", seconds: float | None = None) -> None:
        """``spec`` finished epoch ``epoch`` (1-based) of at most ``max_epochs``;
        ``detail``: the epoch's metrics, shown as they are; ``seconds``: the epoch's wall
        time as the worker measured it (default: the clock's time since this model's
        previous epoch or start, per epoch). Says one line, unless this model's epoch was
        said already."""
        if (spec, epoch) in self._said:
            return
        self._said.add((spec, epoch))
        now = self.clock()
        if spec not in self._running:  # its start was not reported: it runs since now
            self._add(spec)
            self._running[spec] = [now, 0, max_epochs]
        start, before, _ = self._running[spec]
        if seconds is None or not math.isfinite(seconds) or seconds < 0:
            # The driver's clock: events arrive within a poll (0.5 s) of being said.
            since = self._last_epoch.get(spec, (start, 0.0))[0]
            seconds = (now - since) / max(1, epoch - before) if epoch > before else math.nan
        if math.isfinite(seconds):
            self._last_epoch[spec] = (now, float(seconds))
            n = _size(spec)[0]
            self._per_image = float(seconds) / n
        self._running[spec][1:] = [epoch, max_epochs]
        detail = f" {detail}" if detail else ""
        self.progress(f"cnnclaims: [{_label(spec)}] epoch {epoch}/{max_epochs}{detail}; {self.status(prefix=False)}")

    def finished(self, spec, seconds: float) -> None:
        """``spec`` is trained and stored, after ``seconds`` of wall time; says one line."""
        self._add(spec)
        est = self._estimates().get(spec, math.nan)
        self._running.pop(spec, None)
        self._last_epoch.pop(spec, None)
        self._done[spec] = float(seconds)
        vs = f" (estimated {rough(est)})" if math.isfinite(est) else ""
        self.progress(f"cnnclaims: finished {_label(spec)} in {duration(seconds)}{vs}; {self.status(prefix=False)}")

    # -- the prediction -------------------------------------------------------------

    def ratio(self) -> float:
        """Observed over estimated seconds of the models finished in this run that had
        an estimate (1.0 before any): how much slower (> 1) this run trains than the
        records predicted."""
        pairs = [
            (secs, self._prior[s].seconds)
            for s, secs in self._done.items()
            if math.isfinite(self._prior[s].seconds) and self._prior[s].seconds > 0
        ]
        est = sum(p for _, p in pairs)
        return sum(o for o, _ in pairs) / est if pairs and est > 0 else 1.0

    def _estimates(self) -> dict:
        """Current estimate in seconds per spec not done (``_estimated`` less how)."""
        return {s: seconds for s, (seconds, _) in self._estimated().items()}

    def _estimated(self) -> dict:
        """``{spec: (seconds, how)}`` per spec not done, ``how`` naming the source:
        ``"prior"``, the prior (records or the forecast) times the observed ratio; for a
        size with no prior, ``"epoch"`` for a running model that finished an epoch (its
        time so far to that epoch's end, plus the epochs left to its limit times that
        epoch's time), ``"observed"``, what this run's finished models of its size
        predict, else ``"epoch"`` again, the latest epoch's seconds per training image
        times its images and epoch limit; NaN and ``""`` where nothing predicts it."""
        ratio = self.ratio()
        observed = [
            {"spec": {"n_train": n, "max_epochs": e, "patience": p}, "train_seconds": secs}
            for s, secs in self._done.items()
            for n, e, p in [_size(s)]
        ]
        out: dict = {}
        for s in self.specs:
            if s in self._done:
                continue
            prior = self._prior[s].seconds
            if math.isfinite(prior):
                out[s] = (prior * ratio, "prior")
            elif s in self._last_epoch:
                at, seconds = self._last_epoch[s]
                start, epoch, max_epochs = self._running[s]
                out[s] = (at - start + max(0, max_epochs - epoch) * seconds, "epoch")
            else:
                seen = estimate([s], observed)[0].seconds
                n, max_epochs, _ = _size(s)
                upper = self._per_image * n * max_epochs  # NaN before any epoch
                out[s] = (seen, "observed") if math.isfinite(seen) else (upper, "epoch" if math.isfinite(upper) else "")
        return out

    def eta(self) -> tuple[float, str]:
        """(seconds until the plan is done, NaN when unknown; the basis in words)."""
        now = self.clock()
        estimated = self._estimated()
        est = {s: seconds for s, (seconds, _) in estimated.items()}
        if not est:
            return 0.0, "nothing left"
        unknown = sorted({_size(s) for s, v in est.items() if not math.isfinite(v)})
        if unknown:
            if len(unknown) == len({_size(s) for s in est}) and not self._done:
                return math.nan, "no recorded times yet"
            sizes = ", ".join(f"n={n} ({e} epochs, patience {p})" for n, e, p in unknown)
            return math.nan, f"no recorded time for {sizes} yet"
        busy = [max(0.0, est[s] - (now - start)) for s, (start, *_) in self._running.items() if s in est]
        queued = [v for s, v in est.items() if s not in self._running]
        # More running than declared workers (an executor that oversubscribes): each
        # running model holds a worker of its own.
        workers = max(self.workers, len(busy))
        seconds = lpt_makespan(queued, workers, busy=busy)
        how = {h for _, h in estimated.values()}
        basis = [
            "from throughput measured here"
            if any(self._prior[s].basis.endswith("measured here") for s in est)
            else "from recorded times"
            if any(self._prior[s].basis.startswith("recorded") for s in est) or any(self._prior[s].scaled for s in est)
            else "from this run's times"
        ]
        if how == {"epoch"}:  # nothing else predicts any of them
            basis = [EPOCH_BASIS]
        elif "epoch" in how:
            basis.append(EPOCH_BASIS)
        scaled = sorted({_size(s)[0] for s in est if self._prior[s].scaled})
        if scaled:
            basis.append(f"n={', '.join(map(str, scaled))} scaled from other sizes")
        ratio = self.ratio()
        if self._done and abs(ratio - 1) > 0.005:
            basis.append(
                f"x{ratio:.2f} as observed on {len(self._done)} model{'s' * (len(self._done) != 1)} of this run"
            )
        return seconds, f"LPT over {len(est)} left on {workers} worker{'s' * (workers != 1)}, {', '.join(basis)}"

    def status(self, prefix: bool = True) -> str:
        """``cnnclaims: plan 5/24 done, running: benchmark s3 n=50000 epoch 4/30, ...;
        elapsed 12m04s, ETA 31m (LPT over 19 left on 2 workers, from recorded times)``."""
        running = [
            f"{short_name(s)} epoch {e}/{m}" if e else f"{short_name(s)} starting"
            for s, (_, e, m) in self._running.items()
        ]
        seconds, basis = self.eta()
        if basis == "nothing left":
            eta = "all done"
        elif math.isfinite(seconds):
            eta = f"ETA {rough(seconds)} ({basis})"
        else:
            eta = f"ETA unknown ({basis})"
        line = (
            f"plan {len(self._done)}/{len(self.specs)} done, running: {', '.join(running) or 'none'}; "
            f"elapsed {duration(self.clock() - self.t0)}, {eta}"
        )
        return f"cnnclaims: {line}" if prefix else line


# --- what workers say, and passing it on ------------------------------------------------


class ProgressChannel:
    """A training worker's ``progress``: text lines, and with ``event`` the events of the
    model it trains (``spec``; none while it is None), each handed to ``send``, which
    carries it to the driver: a local worker's SimpleQueue ``put`` (written before it
    returns), a Ray task's put to its lines actor. A line is a string and an event a
    tuple ``(kind, spec, *args)``, so ``relay`` tells them apart. ``last`` is what the
    last ``send`` returned (a Ray task waits for it before it returns its result)."""

    def __init__(self, send, spec=None):
        self.send, self.spec, self.last = send, spec, None

    def __call__(self, line: str) -> None:
        self.last = self.send(line)

    def event(self, kind: str, *args) -> None:
        if self.spec is not None:
            self.last = self.send((kind, self.spec, *args))


def relay(messages, progress, plan=None) -> None:
    """Pass on what workers said (``messages``, an iterable of what ``ProgressChannel``
    sent): a text line to ``progress``, an event ``(kind, spec, *args)`` to ``plan``'s
    method of that name (``started``, ``epoch``, ``finished``: a ``PlanProgress``);
    without a plan an epoch is said as the plain epoch line and other events not at all."""
    for message in messages:
        if isinstance(message, str):
            progress(message)
        elif plan is not None:
            kind, spec, *args = message
            getattr(plan, kind)(spec, *args)
        elif message[0] == "epoch":
            _, spec, epoch, max_epochs, detail, *_ = message  # (and the epoch's seconds)
            progress(f"cnnclaims: [{spec.label}] epoch {epoch}/{max_epochs} {detail}")
