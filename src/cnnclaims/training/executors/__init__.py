"""Executors: where the models of a plan that the cache lacks are trained.

``training.train_missing`` finds the missing models, checks that their recipe can be
sent to other processes, and hands them to the executor named by ``--executor``
(``$CNNCLAIMS_EXECUTOR``) as one ``TrainJob``. An executor is an object with the two
methods of ``Executor``; ``REGISTRY`` names each by its ``"module:attribute"``, which
is imported only when that executor is chosen, so this module (which ``options``
reads for the choices) imports nothing of the package, of TensorFlow or of Ray.

- ``local`` (``local.py``): worker processes on this machine, the default.
- ``ray`` (``ray.py``): one Ray task per model, on a local Ray or a cluster.

A new executor is a module here implementing ``Executor`` and one line in
``REGISTRY``; docs/cluster.md, "Another executor",, says what it must do.
"""

from __future__ import annotations

import contextlib
import importlib
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Protocol


@dataclass(frozen=True)
class TrainJob:
    """What an executor trains, and with what.

    ``missing``: TrainSpecs whose entries the cache lacks (or all, with ``retrain``),
    longest first: the order to start them. ``data``: the session's ``Dataset``;
    ``data_path``: where it was loaded from (``--data``), for workers that load it
    again with ``load_data`` and ``per_class`` (images per class of the train and test
    splits) and must find ``data.fingerprint``. ``cache_dir``: the cache whose entries
    receive the models. ``workers``: models at once (``default_workers``; a cluster may
    decide for itself). ``recipes``: ``{role: (build_model, subset)}`` for every role
    in ``missing``, and ``io`` the experiment's ``modelio.ModelIO``: both picklable by
    reference (train_missing checked). ``progress``: takes one line of text.
    ``estimates``: ``{spec: seconds}`` from throughput measured here, or None.
    ``address``: the cluster to train on (``--ray-address``), None for one started
    here; executors without a cluster ignore it."""

    missing: list
    data: Any
    data_path: Any
    cache_dir: Path
    retrain: bool
    workers: int
    progress: Callable[[str], None]
    recipes: dict
    io: Any
    load_data: Callable
    per_class: dict
    estimates: dict | None = None
    address: str | None = None


class Executor(Protocol):
    """What ``train_missing`` needs from a backend."""

    def takes(self, n_models: int, workers: int) -> bool:
        """Whether this executor trains ``n_models`` missing models with ``workers``;
        False leaves them to ``get_trained``, one at a time in this process (the local
        pool starts no processes for one model or one worker)."""

    def train(self, job: TrainJob) -> list:
        """Train every spec of ``job.missing`` into its cache entry and return the specs
        trained here (one another process holds locked is left to it and not returned).

        Each entry is written as ``get_trained`` writes it: under its lock
        (``entries.entry_lock``), built in ``<entry>.partial`` and renamed into place
        (``entries.building``, ``entries.train_entry``). Progress: the workers' lines
        and their ``started`` / ``epoch`` / ``finished`` events (``progress.
        ProgressChannel``) reach a ``progress.PlanProgress`` that says them through
        ``job.progress``, every one of them before this returns. Interrupts: Ctrl-C or
        SIGTERM (``sigterm_interrupts``) or a worker's error stops every worker within
        seconds, stores nothing further, leaves no .partial folder, and the exception
        propagates (KeyboardInterrupt for the signals)."""


class Registered(NamedTuple):
    """An executor in ``REGISTRY``: ``target``, ``"module:attribute"`` of its class
    (made with no arguments), imported when chosen; ``requires``, a module it needs
    that may not be installed, found (not imported) when the options are checked;
    ``label`` and ``install``, that module's name in messages and how to install it;
    ``summary``, what it does in a few words, for ``--executor``'s help."""

    target: str
    requires: str = ""
    label: str = ""
    install: str = ""
    summary: str = ""


REGISTRY = {
    "local": Registered(
        "cnnclaims.training.executors.local:LocalExecutor", summary="worker processes here, the default"
    ),
    "ray": Registered(
        "cnnclaims.training.executors.ray:RayExecutor",
        "ray",
        "Ray",
        'pip install -e ".[ray]"',
        "one Ray task per model, on a local Ray or the cluster of --ray-address",
    ),
}
NAMES = tuple(REGISTRY)


def load(name: str) -> Executor:
    """The executor registered as ``name``; ValueError naming it and the choices for
    another name."""
    if name not in REGISTRY:
        raise ValueError(f"executor {name!r} is not one of {', '.join(NAMES)}")
    module, _, attr = REGISTRY[name].target.partition(":")
    return getattr(importlib.import_module(module), attr)()


def missing_text(name: str, detail: str = "") -> str:
    """The error text for executor ``name`` where the module it requires is not
    installed (``detail``: why, e.g. the ImportError), saying how to install it."""
    entry = REGISTRY[name]
    why = f" ({detail})" if detail else ""
    return (
        f"--executor={name} needs {entry.label}, which is not installed here{why}; install it with "
        f"{entry.install}, or train with --executor=local"
    )


def stopped(signum: int) -> str:
    """The message of the KeyboardInterrupt a signal raises: ``cnnclaims: SIGTERM:
    training stopped`` (the command line's exit status 143 reads the name)."""
    return f"cnnclaims: {signal.Signals(signum).name}: training stopped"


@contextlib.contextmanager
def sigterm_interrupts():
    """SIGTERM (what ``timeout`` and CI send) raises KeyboardInterrupt, as Ctrl-C does,
    so that an executor stops its workers the same way before this process ends;
    yields the list of the signal numbers received (a Ray driver re-raises with the
    message when Ray turned it into a bare KeyboardInterrupt). Only the main thread
    sets signal handlers; elsewhere nothing changes, and local workers still die with
    this process."""
    received: list = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def interrupt(signum, frame):
        received.append(signum)
        raise KeyboardInterrupt(stopped(signum))

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield received
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
