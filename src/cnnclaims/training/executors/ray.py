"""Training through Ray (``--executor=ray``): one Ray task per model, on a local Ray
started for the run or on a running cluster (``--ray-address``).

Who does what:

- This process (the *driver*) puts the training data into Ray's object store once
  and submits one task per missing model, longest first, each asking for one CPU.
- A task trains its model with one TensorFlow thread, exactly as a local worker does
  (``entries.train_entry``: same code, same seed, so the same bits), in a temporary
  folder on its own node, and returns the model file's bytes and its record.
- The driver checks what comes back (record fields, checksum, key, spec, versions, the
  model bytes' SHA-256) and writes it into its own cache entry the way a local run
  does (``<entry>.partial``, renamed into place, under the entry's lock,
  ``entries.entry_lock``, which it holds from before the task is submitted). The
  workers need no shared filesystem and never see the cache.

A worker process or node that dies mid-training makes Ray run the task again (up to
``TASK_RETRIES`` times); only a task's returned result is stored, so each model lands
once. Ctrl-C or SIGTERM in the driver cancels every outstanding task (force: their
processes are killed), stores nothing further, shuts down the Ray this call started
and re-raises.

Ray is an optional dependency (``pip install -e ".[ray]"``, see ``REGISTRY``): nothing
here imports it before it is needed, and its absence is one ``RayMissingError`` naming
that command.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import pickle
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

from ... import cache, compat
from ...errors import CacheError, CnnClaimsError
from ...numerics import KERNEL_VARIABLES
from ..entries import building, check_record, entry_dir, entry_lock, is_cached, load_entry, record_checksum, train_entry
from ..progress import PlanProgress, ProgressChannel, relay
from ..spec import cache_key, spec_dict
from . import TrainJob, missing_text, sigterm_interrupts, stopped

# How often Ray starts a task again whose worker process or node died (a crash, the
# OOM killer, a lost node). A task's own exception is never retried: it would fail
# the same way (retry_exceptions=False).
TASK_RETRIES = 3
# Environment variables that change what a worker computes (thread count, Keras
# family, oneDNN kernels) or prints: a cluster's worker gets the environment of its
# node's `ray start`, not the driver's, so the driver's values travel with every task
# (a Ray the driver starts inherits them).
PASSED_ENV = (
    "CNNCLAIMS_TF_THREADS",
    "TF_USE_LEGACY_KERAS",
    "TF_CPP_MIN_LOG_LEVEL",
    "CNNCLAIMS_NUMERICS",
    *KERNEL_VARIABLES,
)
# Worker-local folders in which tasks train: <tmp>/cnnclaims-ray/<pid>-<random>/.
WORK_ROOT = "cnnclaims-ray"


class RayMissingError(CnnClaimsError, ImportError):
    """``--executor=ray`` where Ray is not installed."""


class RayClusterError(CnnClaimsError, ConnectionError):
    """The Ray cluster of ``--ray-address`` cannot be reached."""


class RayResultError(CnnClaimsError):
    """A Ray task returned a model that cannot be stored: a record that fails its
    checks, another key (other library versions on that node) or bytes that do not
    match the record's SHA-256."""


def import_ray():
    """The ``ray`` module; RayMissingError saying how to install it otherwise."""
    try:
        import ray
    except ImportError as exc:
        raise RayMissingError(missing_text("ray", str(exc))) from None
    return ray


class RayExecutor:
    """Every missing model, even one, as a Ray task (``train_with_ray``): its tasks may
    run on other machines."""

    def takes(self, n_models: int, workers: int) -> bool:
        return True

    def train(self, job: TrainJob) -> list:
        return train_with_ray(
            job.missing,
            job.data,
            job.cache_dir,
            job.retrain,
            job.workers,
            job.progress,
            job.recipes,
            job.address,
            io=job.io,
        )


def train_with_ray(
    missing, data, cache_dir, retrain: bool, workers: int, progress, recipes: dict, address: str | None = None, io=None
) -> list:
    """Train every spec of ``missing`` (TrainSpecs, in the order to start them) as a Ray
    task and store each model in ``cache_dir``'s entry for it; returns the specs
    trained here.

    ``data``: the session's ``Dataset`` (sent once through the object store).
    ``recipes``: ``{role: (build_model, subset)}`` for every role in ``missing``,
    picklable by reference (``training.train_missing`` checks that); ``io``: the
    experiment's ``modelio.ModelIO`` (None: the article's). ``workers``: CPUs
    of the local Ray started when ``address`` is None and this process is not connected
    to a Ray already (one task per CPU); with ``address`` (``host:port`` of a running
    cluster's head, or ``ray://...``) the cluster's CPUs decide how many run at once.

    Every line a task said has been passed to ``progress`` when this returns; the
    tasks' events (started, epoch, finished) go to a ``progress.PlanProgress``,
    which says them with the plan's status and ETA.

    A model whose entry another process holds locked (training it) is left to that
    process and not returned; the caller's get_trained waits for it.

    Raises RayMissingError without Ray, RayClusterError when ``address`` cannot be
    reached, RayResultError for a result that fails its checks, a task's own exception
    (as Ray re-raises it: an instance of the original class too), Ray's
    WorkerCrashedError when a task's process died ``TASK_RETRIES + 1`` times, and
    KeyboardInterrupt on Ctrl-C or SIGTERM (after cancelling every task)."""
    ray = import_ray()
    cache_dir = Path(cache_dir)
    keys = {spec: cache_key(spec, data.fingerprint) for spec in missing}
    # Each entry's lock is held from before its task is submitted until it is stored,
    # as get_trained holds it while it trains: another process (a pytest-xdist worker)
    # that wants the model waits for it instead of training it a second time, and a
    # model another process is training is left to it here. A lock file that cannot be
    # created (a read-only cache) is an OSError.
    with contextlib.ExitStack() as held:
        mine = []
        for spec in missing:
            with contextlib.ExitStack() as lock:
                # (a model stored by another process since the caller looked is not mine either)
                if lock.enter_context(entry_lock(entry_dir(cache_dir, spec, keys[spec]), wait=False)) and (
                    retrain or not is_cached(spec, data.fingerprint, cache_dir)
                ):
                    mine.append(spec)
                    held.push(lock.pop_all())  # kept until the model is stored
        if len(mine) < len(missing):
            progress(
                f"cnnclaims: {len(missing) - len(mine)} of the {len(missing)} models are trained (or were just "
                "stored) by another process; they are loaded when needed"
            )
        if mine:
            _train(ray, mine, keys, data, cache_dir, retrain, workers, progress, recipes, address, io)
    return mine


def _train(ray, missing, keys, data, cache_dir, retrain, workers, progress, recipes, address, io=None) -> None:
    t0 = time.perf_counter()
    with _connected(ray, address, workers) as (where, cpus, started_here):
        progress(
            f"cnnclaims: training {len(missing)} models through Ray ({where}; one CPU and "
            f"{compat.TF_THREADS} TensorFlow thread each) ..."
        )
        env = {k: os.environ[k] for k in PASSED_ENV if k in os.environ}
        env[compat.ENV_THREADS] = str(compat.TF_THREADS)
        # runtime_env (a cluster's nodes have the environment of their `ray start`):
        # Ray starts (and reuses) worker processes per runtime environment, so these
        # variables are set before the worker imports TensorFlow, which reads the
        # thread count once (compat, at import); the task checks it again.
        # A Ray started here inherits this process's environment (its raylet is our
        # child), so its tasks need no runtime_env; without one they run in the
        # workers Ray prestarts at init instead of starting more (0.3-0.5 s sooner on
        # 2 cores, measured, and no idle processes). The task checks the count either way.
        options = {} if started_here else {"runtime_env": {"env_vars": env}}
        task = ray.remote(_train_task).options(num_cpus=1, max_retries=TASK_RETRIES, retry_exceptions=False, **options)
        lines = ray.remote(_Lines).options(num_cpus=0).remote()  # 0 CPUs: never holds back a training task
        data_ref = ray.put(data)  # once: every task on a node reads the same copy
        blobs = {role: pickle.dumps((recipe, io)) for role, recipe in recipes.items()}
        versions, path = compat.versions(), list(sys.path)
        pending = {}
        for spec in missing:
            key = keys[spec]
            ref = task.remote(spec, key, data_ref, blobs[spec.role], path, lines, compat.TF_THREADS, versions)
            pending[ref] = (spec, key)
        # Its ETA spreads the plan over the CPUs that can take a task.
        plan = _Plan(PlanProgress(missing, max(1, min(cpus, len(missing))), cache_dir, progress), progress)
        received = []  # the signal numbers of SIGTERMs received (sigterm_interrupts fills it)
        try:
            with sigterm_interrupts() as received:
                while pending:
                    ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
                    _relay(ray, lines, plan, progress)
                    for ref in ready:
                        spec, key = pending.pop(ref)
                        try:
                            model_bytes, record, info = ray.get(ref)
                        except Exception as exc:
                            if hasattr(exc, "add_note"):  # Python 3.11+
                                exc.add_note(f"cnnclaims: raised by the Ray task training {spec.label}")
                            raise
                        _relay(ray, lines, plan, progress)  # its last lines came before its result
                        _store(spec, key, model_bytes, record, info, cache_dir, retrain, versions, lock=False)
                        plan.finished(spec, float(info["seconds"]))
        except BaseException as exc:
            # Ctrl-C, SIGTERM, a task's error, a bad result: no task goes on training
            # (force: a running task's process is killed; a queued one never starts).
            for ref in pending:
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)
            with contextlib.suppress(Exception):  # what a failed task said before its error
                _relay(ray, lines, plan, progress)
            if received and isinstance(exc, KeyboardInterrupt) and not str(exc):
                # Raised from inside ray.wait, Ray turns the handler's exception into a
                # bare KeyboardInterrupt; the message says SIGTERM (the command line's
                # exit status 143 reads it), as the local pool's does.
                raise KeyboardInterrupt(stopped(received[0])) from exc
            raise
        finally:
            with contextlib.suppress(Exception):
                ray.kill(lines)
            del data_ref
    progress(f"cnnclaims: trained {len(missing)} models through Ray in {time.perf_counter() - t0:.0f}s")


@contextlib.contextmanager
def _connected(ray, address, workers: int):
    """Yield a description of the Ray this process trains on: the one it is already
    connected to (left as it is), the cluster at ``address``, or a local Ray of
    ``workers`` CPUs started now; the last two are disconnected (a local one shut down)
    on the way out, however it is left."""
    if ray.is_initialized():
        yield f"the Ray this process is connected to, {_cpus(ray)} CPUs", _cpus(ray), False
        return
    quiet = {
        "include_dashboard": False,
        "logging_level": logging.ERROR,
        # Progress comes through cnnclaims' own channel (_Lines), and a task's
        # errors come back as exceptions; the workers' raw output would only
        # repeat TensorFlow's start-up chatter outside pytest's capture.
        "log_to_driver": False,
    }
    # ray.init installs a SIGTERM handler that calls sys.exit, and leaves it after
    # shutdown; the caller's handler is put back (main thread only: the others cannot
    # set one, and ray.init does not there).
    main = threading.current_thread() is threading.main_thread()
    sigterm = signal.getsignal(signal.SIGTERM) if main else None
    # No usage report from a local Ray (there may be no network; nothing to send).
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        if address:
            check_reachable(address)
            try:
                ray.init(address=address, **quiet)
            except (ConnectionError, TimeoutError, RuntimeError) as exc:
                # Ray's own message does not say why (its log lines above it may: a
                # missing token reads "InvalidAuthToken").
                raise RayClusterError(
                    f"cannot reach the Ray cluster at --ray-address {address} ({type(exc).__name__}: {exc}); start "
                    "it with `ray start --head` there, fix --ray-address / $CNNCLAIMS_RAY_ADDRESS, or, when the "
                    "cluster uses token authentication, set RAY_AUTH_MODE=token here with its token in "
                    "~/.ray/auth_token or $RAY_AUTH_TOKEN"
                ) from exc
            where, cpus = f"the cluster at {address}, {_cpus(ray)} CPUs", _cpus(ray)
        else:
            # "local": a new Ray for this run even when $RAY_ADDRESS names another (the
            # cluster to use is chosen with --ray-address only).
            try:
                ray.init(address="local", num_cpus=workers, **quiet)
            except Exception as exc:  # noqa: BLE001 - Ray raises bare Exception when its node fails to start
                # e.g. "The current node timed out during startup" on a heavily loaded
                # machine (seen by a fresh user): say what failed and the ways out.
                raise RayClusterError(
                    f"could not start a local Ray with {workers} CPUs ({type(exc).__name__}: {exc}); try again when "
                    "the machine is less loaded, train with --executor=local, or start one yourself with "
                    "`ray start --head` and pass --ray-address"
                ) from exc
            where, cpus = f"a local Ray with {workers} CPUs", workers
        yield where, cpus, not address
    finally:
        with contextlib.suppress(Exception):
            ray.shutdown()
        if main and sigterm is not None:
            signal.signal(signal.SIGTERM, sigterm)
        if not address:
            sweep_work_folders()  # a local Ray's killed tasks trained here


def check_reachable(address: str, timeout: float = 10.0) -> None:
    """RayClusterError unless something accepts a TCP connection at ``address``
    (``host:port``, or ``ray://host:port``); an address without a port ("auto") is
    left to Ray. ray.init retries an address where nothing listens for many minutes
    (over 10 with Ray 2.60, measured): a mistyped --ray-address would look like a hang."""
    import socket

    host, sep, port = address.split("://", 1)[-1].rpartition(":")
    if not sep or not port.isdigit():
        return
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise RayClusterError(
            f"nothing answers at --ray-address {address} ({exc.strerror or exc}); start the "
            "cluster's head there with `ray start --head --port=PORT`, or fix --ray-address / "
            "$CNNCLAIMS_RAY_ADDRESS"
        ) from None


def _cpus(ray) -> int:
    return int(ray.cluster_resources().get("CPU", 0))


class _Lines:
    """A Ray actor holding what the tasks say (their ``ProgressChannel``'s lines and
    events) until the driver collects it."""

    def __init__(self):
        self.items = []

    def put(self, item) -> None:
        self.items.append(item)

    def drain(self) -> list:
        items, self.items = self.items, []
        return items


def _relay(ray, lines, plan, progress) -> None:
    relay(ray.get(lines.drain.remote()), progress, plan)


class _Plan:
    """``PlanProgress`` with a line when a model starts again: Ray retried its task
    after the worker process (or node) running it died."""

    def __init__(self, plan, progress):
        self.plan, self.progress, self.starts = plan, progress, {}

    def started(self, spec) -> None:
        self.starts[spec] = self.starts.get(spec, 0) + 1
        if self.starts[spec] > 1:
            self.progress(
                f"cnnclaims: {spec.label} starts again (attempt {self.starts[spec]}): Ray retried it "
                "after its worker process died"
            )
        self.plan.started(spec)

    def epoch(self, spec, *args) -> None:
        self.plan.epoch(spec, *args)

    def finished(self, spec, seconds: float) -> None:
        self.plan.finished(spec, seconds)


def _store(
    spec,
    key: str,
    model_bytes: bytes,
    record,
    info: dict,
    cache_dir: Path,
    retrain: bool,
    versions: dict,
    lock: bool = True,
) -> Path:
    """Write a task's result as ``spec``'s cache entry once it passes every check; the
    entry's folder. Raises RayResultError naming the model and the node otherwise.
    ``lock``: take the entry's lock (False: this process holds it already; a second
    flock on it from here would wait for ever)."""
    folder = entry_dir(cache_dir, spec, key)
    node = f"node {info.get('node', '?')}, pid {info.get('pid', '?')}" if isinstance(info, dict) else "unknown node"
    where = f"the Ray task for {spec.label} ({node})"
    try:
        check_record(record, where)
    except CacheError as exc:
        raise RayResultError(f"{exc}; the task's model was not stored") from None
    problems = []
    if record["versions"] != versions:
        problems.append(
            f"it trained with {record['versions']}, this process with {versions}: install the same "
            "versions on every node (pip install -c .ci/constraints.txt ...)"
        )
    if record["key"] != key:
        problems.append(f"its key is {record['key']}, expected {key}")
    if record["spec"] != spec_dict(spec):
        problems.append(f"its spec is {record['spec']}, expected {spec_dict(spec)}")
    threads = info.get("threads") if isinstance(info, dict) else None
    if threads != record["versions"].get("tf_intra_op_threads"):
        # What TensorFlow ran with, not what was asked: the key records the latter.
        problems.append(
            f"TensorFlow ran with {threads} intra-op threads, its record says "
            f"{record['versions'].get('tf_intra_op_threads')}"
        )
    if record.get("checksum") != record_checksum(record):
        problems.append("its record does not match its checksum")
    if not isinstance(model_bytes, bytes) or hashlib.sha256(model_bytes).hexdigest() != record.get("model_sha256"):
        problems.append("the model bytes do not match the record's model_sha256")
    if problems:
        raise RayResultError(f"{where} returned a model that cannot be stored: {'; '.join(problems)}")
    with entry_lock(folder) if lock else contextlib.nullcontext():
        if folder.exists():
            if not retrain:
                try:  # another process (an xdist worker) stored it meanwhile: the same bits
                    load_entry(spec, folder, key)
                    return folder
                except CacheError as exc:
                    cache.discard(folder / "record.json", str(exc))
            shutil.rmtree(folder)
        work = folder.with_name(folder.name + ".partial")
        with building(work):
            (work / "model.keras").write_bytes(model_bytes)
            cache.write_json(work / "record.json", record)
            work.rename(folder)  # the entry appears complete or not at all
    return folder


def _train_task(spec, key: str, data, recipe_blob: bytes, driver_path: list, lines, threads: int, versions: dict):
    """One model, in a Ray worker: ``(model.keras bytes, record, {"node", "pid",
    "threads"})``. ``data`` is the session's Dataset (Ray resolves the ObjectRef);
    ``recipe_blob`` the pickled ((build_model, subset), ModelIO), unpickled once the driver's
    import path is known here (a recipe defined in a test's or an example's module).
    "threads" is TensorFlow's intra-op thread count as this worker ran it. What it
    says goes to the driver through ``lines`` (a ``_Lines`` actor)."""
    import ray

    node = ray.util.get_node_ip_address()
    # The same check as check_threads, with the reason: this worker's TensorFlow was
    # set up with another thread count than the driver's (which keys every model).
    if compat.TF_THREADS != threads:
        raise RuntimeError(
            f"the Ray worker on {node} (pid {os.getpid()}) trains with {compat.TF_THREADS} TensorFlow "
            f"threads, the driver with {threads}; its ${compat.ENV_THREADS} did not reach it"
        )
    compat.check_threads()
    compat.check_numerics()
    mine = cache_key(spec, data.fingerprint)
    if mine != key:
        # Checked before training, not after: another TensorFlow, Keras or numpy here
        # would give other weights, and the driver would refuse them hours later.
        raise RuntimeError(
            f"the Ray worker on {node} would train {spec.label} under key {mine}, the driver expects "
            f"{key}: this node has {compat.versions()}, the driver {versions}; install the same "
            "versions on every node"
        )
    for entry in driver_path:  # as multiprocessing's spawn gives its children the parent's path
        if entry not in sys.path and os.path.isdir(entry):
            sys.path.append(entry)
    (build, subset), io = pickle.loads(recipe_blob)
    # A put does not wait for the actor: a task blocked in ray.get gives its CPU back to
    # Ray, which starts a queued task on it (three trainings ran on two CPUs, measured).
    # Ray runs one caller's calls to an actor in order, so waiting for the last put at
    # the end of the task puts everything it said there before its result.
    progress = ProgressChannel(lines.put.remote, spec)
    progress.event("started")
    t0 = time.perf_counter()
    sweep_work_folders()
    root = Path(tempfile.gettempdir()) / WORK_ROOT
    root.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(prefix=f"{os.getpid()}-", dir=root) as tmp:
            folder = Path(tmp) / entry_dir(".", spec, key).name
            trained = train_entry(spec, data, folder, key, progress, build, subset, io)
            model_bytes = (folder / "model.keras").read_bytes()
    finally:  # also before an error: its lines reach the driver first
        if progress.last is not None:
            ray.get(progress.last)
    # "seconds": the task's wall time, as a local worker reports it (training and saving).
    info = {
        "node": node,
        "pid": os.getpid(),
        "seconds": time.perf_counter() - t0,
        "threads": compat.tf.config.threading.get_intra_op_parallelism_threads(),
    }
    return model_bytes, trained.record, info


def sweep_work_folders() -> list:
    """Remove the task folders under ``<tmp>/cnnclaims-ray/`` whose process is gone (a
    task killed mid-training, by a crash or a cancellation, cannot remove its own);
    returns what was removed. A folder is named ``<pid>-...`` by the process using it."""
    root = Path(tempfile.gettempdir()) / WORK_ROOT
    removed = []
    with contextlib.suppress(OSError):
        for folder in root.iterdir():
            pid = folder.name.split("-", 1)[0]
            if pid.isdigit() and not _alive(int(pid)):
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
