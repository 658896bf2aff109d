"""LPT makespan against worked examples."""
import numpy as np
import pytest

from cnnclaims.schedule import lower_bound, lpt_makespan, makespan_table

pytestmark = pytest.mark.unit


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
