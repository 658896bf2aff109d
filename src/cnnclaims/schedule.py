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


def lpt_makespan(seconds, workers: int) -> float:
    """Makespan in seconds of jobs ``seconds`` ((n,) non-negative floats) on
    ``workers`` identical workers under LPT list scheduling.

    Raises ValueError for fewer than one worker or a negative or non-finite time."""
    t = np.asarray(seconds, dtype=np.float64).ravel()
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if t.size and (not np.isfinite(t).all() or (t < 0).any()):
        raise ValueError("job times must be finite and non-negative seconds")
    loads = [0.0] * min(workers, max(1, t.size))
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
