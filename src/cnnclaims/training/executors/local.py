"""The local executor (``--executor=local``, the default): worker processes on this
machine, one TensorFlow thread each, so the weights equal a one-at-a-time run.

Each worker loads the data once with the experiment's ``load_data`` and trains the
models it is given through ``get_trained`` (the entry's lock, ``.partial`` folder and
record, as in this process). Workers never outlive this process (``_worker_init``),
and Ctrl-C or SIGTERM stops them within seconds (``_stop_workers``).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from ...options import ENV_WORKERS, positive_int_env
from ..entries import abandon_builds, entry_dir, get_trained, remove_abandoned
from ..progress import PlanProgress, ProgressChannel, relay
from ..spec import cache_key
from . import TrainJob, sigterm_interrupts

WORKER_GIB = 4  # measured peak of one article training process: 3.75 GiB


def _machine() -> tuple[int, float, int]:
    """(cores, GiB of memory, training processes that memory holds: one per WORKER_GIB,
    2 GiB kept for the pytest process itself)."""
    cores = os.cpu_count() or 1
    try:
        mem_gib = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30
    except (ValueError, OSError):  # pragma: no cover - not on Linux
        mem_gib = 2 + 8 * WORKER_GIB
    return cores, mem_gib, max(1, int((mem_gib - 2) // WORKER_GIB))


_SAID: set = set()  # progress lines said once per process


def default_workers(requested: int | None = None, progress=None) -> int:
    """Training processes to run at once: ``requested`` (``--workers``), else
    $CNNCLAIMS_WORKERS, else one per core (each uses one TF thread), at most 8.

    Never more than the cores or the memory hold (one per 4 GiB, 2 GiB kept for the
    pytest process itself): extra processes only share the cores and add memory (100
    asked for gave 9 processes, 14.8 GiB and a slower run on 2 cores, measured). A
    request above that is capped and said once, through ``progress``, with the numbers."""
    name = "--workers"
    if requested is None:
        requested, name = positive_int_env(ENV_WORKERS, "processes"), f"${ENV_WORKERS}"
    cores, mem_gib, by_memory = _machine()
    limit = min(cores, by_memory)
    if requested is None:
        return min(limit, 8)
    if requested > limit and progress is not None:
        line = (
            f"cnnclaims: {name}={requested} capped at {limit} training processes: {cores} cores, and "
            f"{mem_gib:.1f} GiB of memory holds {by_memory} at {WORKER_GIB} GiB each "
            "(2 GiB kept for this process)"
        )
        if line not in _SAID:
            _SAID.add(line)
            progress(line)
    return max(1, min(requested, limit))


class LocalExecutor:
    """A process pool of ``min(workers, models)`` spawned workers (see the module)."""

    def takes(self, n_models: int, workers: int) -> bool:
        # With one worker or one model nothing is worth starting: get_trained trains here.
        return workers >= 2 and n_models >= 2

    def train(self, job: TrainJob) -> list:
        missing, progress = job.missing, job.progress
        n = min(job.workers, len(missing))
        progress(f"cnnclaims: training {len(missing)} models, {n} at a time (one TensorFlow thread each) ...")
        ctx = multiprocessing.get_context("spawn")  # TensorFlow does not survive fork
        # A SimpleQueue's put() writes into the pipe before it returns, so a worker's lines
        # are here before its result. A Queue's feeder thread could still hold them then,
        # and the last "trained ..." line was sometimes lost.
        messages = ctx.SimpleQueue()
        t0 = time.perf_counter()
        # Says which models run, done out of planned and the ETA from the cache's recorded times.
        plan = PlanProgress(missing, n, job.cache_dir, progress, priors=job.estimates)
        with sigterm_interrupts():
            pool = ProcessPoolExecutor(n, mp_context=ctx, initializer=_worker_init, initargs=(messages, os.getpid()))
            finished = False
            try:
                pending = {
                    pool.submit(
                        _worker_train,
                        s,
                        job.data_path,
                        str(job.cache_dir),
                        job.per_class,
                        job.data.fingerprint,
                        job.retrain,
                        job.load_data,
                        job.recipes[s.role],
                        job.io,
                    )
                    for s in missing
                }
                while pending:
                    done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                    relay(_drain(messages), progress, plan)
                    for f in done:
                        f.result()  # a worker's error stops the run, named by its message
                    if pending:
                        _check_workers(pool)  # a worker that died: the pool does not always say
                finished = True
            finally:
                try:
                    if not finished:
                        _stop_workers(pool)
                    pool.shutdown(wait=True, cancel_futures=True)
                finally:
                    if not finished:
                        _remove_abandoned(job)
        relay(_drain(messages), progress, plan)
        progress(f"cnnclaims: trained {len(missing)} models in {time.perf_counter() - t0:.0f}s")
        return missing


def _remove_abandoned(job: TrainJob) -> None:
    """After the workers were stopped: the .partial folders of the job's models that no
    process builds any more (``entries.remove_abandoned``). A worker removes its own when
    it takes the SIGTERM, but one whose main thread stays in native code past the grace
    (TensorFlow runs 50 steps per call, seconds on a busy machine) is SIGKILLed and
    cannot: its folder was left behind (an empty one, or one with best.weights.h5).
    Every worker is gone when this runs, so their entries' locks are free."""
    folders = [entry_dir(job.cache_dir, s, cache_key(s, job.data.fingerprint)) for s in job.missing]
    removed = [f for f in folders if remove_abandoned(f)]
    if removed:
        job.progress(
            f"cnnclaims: removed {len(removed)} .partial folder(s) of models whose workers were stopped "
            f"in {job.cache_dir / 'models'}"
        )


def _drain(messages):
    """What the workers put on ``messages`` so far, in order."""
    while not messages.empty():
        yield messages.get()


def _check_workers(pool) -> None:
    """Raise BrokenProcessPool, as the pool would, where one of its workers has ended
    while models are still being trained (a signal sent to it alone, the kernel's
    out-of-memory killer).

    The pool's manager thread is meant to notice and fail the futures, but it can miss
    the end of a worker that ``submit`` started: ``submit`` wakes that thread before it
    starts the process, and the thread can empty its wake-up pipe and list the workers'
    sentinels before the new process is in ``_processes``, then wait on that list, the
    new worker not in it, until something else wakes it. Nothing did: that worker's end
    left every future pending, the driver waiting forever and the other worker training
    on (the SIGTERM test's driver hung in 3 of 10 runs here; plain CPython 3.11.7,
    3.12.1 and 3.13.0 missed the SIGKILL of the second of two spawned workers in 1 pool
    of 4, measured). ``exitcode``, asked here every half second, does not depend on that
    thread; where the pool's own error comes first, the run stops the same way."""
    for p in list((getattr(pool, "_processes", None) or {}).values()):
        if p.exitcode is not None:
            raise BrokenProcessPool(
                f"training worker {p.pid} ended (exit code {p.exitcode}) while models were still being "
                "trained; the process pool is not usable any more"
            )


def _stop_workers(pool, grace: float = 5.0) -> None:
    """Stop the pool's workers now: SIGTERM (each removes its .partial folder and exits),
    then SIGKILL for any still alive after ``grace`` seconds. Shutting the pool down
    does not: it lets the running and queued calls finish (a Ctrl-C exited 190 s later,
    after a queued 50,000-image model, measured), and before Python 3.14
    (``terminate_workers``) the processes are only reachable as ``_processes``."""
    procs = list((getattr(pool, "_processes", None) or {}).values())
    try:
        for p in procs:
            p.terminate()
        deadline = time.monotonic() + grace
        for p in procs:
            p.join(max(0.0, deadline - time.monotonic()))
    finally:  # also after a second Ctrl-C
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join(1)


_WORKER: dict = {}


def worker_progress():
    """The ``progress`` of this training worker (a ``ProgressChannel`` to the parent),
    ``print`` outside one."""
    return _WORKER.get("progress", print)


def _worker_init(messages, parent: int) -> None:
    """Set up a training worker: its progress goes to ``messages``, and it never
    outlives ``parent`` (orphaned workers trained on for 49 minutes, 1.5 GiB each,
    after CI's timeout killed pytest, measured).

    SIGINT is ignored: Ctrl-C reaches the whole process group, and the parent stops
    every worker (a worker that took it abandoned its model and started the next queued
    one). SIGTERM removes the model being built and exits. The kernel sends that
    SIGTERM when the parent dies, by any signal or crash (Linux's PR_SET_PDEATHSIG); a
    thread that watches the parent's pid does it where that is not available, and
    ends the process 10 s later if the main thread is stuck in native code."""
    _WORKER["progress"] = ProgressChannel(messages.put)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _worker_stop)
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)  # 1: PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent,), name="cnnclaims-parent-watch", daemon=True).start()


def _worker_stop(signum, frame) -> None:
    abandon_builds()
    os._exit(128 + signum)


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1)
    os.kill(os.getpid(), signal.SIGTERM)  # _worker_stop, in the main thread
    time.sleep(10)
    abandon_builds()  # the main thread is stuck (in native code): remove its build from here
    os._exit(1)


def _worker_train(
    spec,
    data_path,
    cache_dir: str,
    per_class: dict,
    fingerprint: str,
    retrain: bool,
    load_data=None,
    recipe=None,
    io=None,
) -> str:
    from ...data import call_loader, load_cifar10

    progress = worker_progress()
    data = _WORKER.get("data")
    if data is None:
        data = _WORKER["data"] = call_loader(
            load_data or load_cifar10,
            "training worker",
            n_classes=io.n_classes if io is not None else 10,
            path=data_path,
            cache_dir=cache_dir,
            progress=progress,
            per_class=per_class,
        )
    if data.fingerprint != fingerprint:
        raise RuntimeError(
            f"a training worker read data with fingerprint {data.fingerprint} from {data.source}, "
            f"not the session's {fingerprint}; did the data change during the run?"
        )
    # Started after the data is loaded: a model's time is its training, as recorded.
    if hasattr(progress, "event"):
        progress.spec = spec
        progress.event("started")
    t0 = time.perf_counter()
    key = get_trained(spec, data, cache_dir, retrain, progress, recipe=recipe, io=io).key
    if hasattr(progress, "event"):
        progress.event("finished", time.perf_counter() - t0)
        progress.spec = None
    return key
