"""Makespan of a training plan on W workers: longest-processing-time-first (LPT) list
scheduling, from recorded per-model training times.

LPT (Graham 1969): sort the jobs longest first and give each to the worker that
frees up first. Its makespan is at most (4/3 - 1/(3W)) times the optimum, and never
below the two lower bounds ``max(longest job, total / W)``; once W exceeds the number
of jobs, or the longest job dominates, adding workers cannot help: the longest single
model bounds the makespan.
"""
from __future__ import annotations

import heapq

import numpy as np


def lpt_makespan(seconds, workers: int, busy=()) -> float:
    """Makespan in seconds of jobs ``seconds`` ((n,) non-negative floats) on
    ``workers`` identical workers under LPT list scheduling.

    ``busy``: seconds that some workers (at most ``workers``) still need for a job
    already running on them ((k,) non-negative floats, k <= workers): a running job
    stays where it is, and the queued jobs go to whichever worker frees up first (what
    a pool does while a plan is under way; ``plan_progress`` predicts its ETA so).

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
        rows.append({"workers": int(w), "makespan_s": ms, "lower_bound_s": lower_bound(t, w),
                     "speedup": one / ms if ms > 0 else float("nan"),
                     "bound_by_longest": bool(np.isclose(ms, longest))})
    return rows
