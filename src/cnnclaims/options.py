"""Every option of the harness, declared once for pytest and the command line.

Each ``Option`` names its flag, the environment variable that stands in for it, its
type, default and help; ``add_to_pytest`` and ``add_to_argparse`` turn the table into
pytest's and argparse's options, and ``check`` validates the values the same way for
both (pytest: one ``UsageError`` at start; the command line: one ``error:`` line).
The help text says the environment variable, so the two front ends cannot drift.

A leaf: the environment variables' names are declared here, and the modules that
read them import them from here (``cache``, ``data``, ``declaration``, ``numerics``,
``probe`` keep them as names of their own). The executors come from their registry,
``training.executors``, which imports nothing of the package either. The numerics are
applied (before anything imports TensorFlow) by ``numerics.check_options``, which the
front ends call: it applies them, then calls ``check``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from .training.executors import NAMES as EXECUTORS
from .training.executors import REGISTRY, missing_text

ENV_CACHE = "CNNCLAIMS_CACHE"  # read by cache.default_cache_dir
ENV_DATA = "CNNCLAIMS_DATA"  # read by data.load_cifar10
ENV_EXPERIMENT = "CNNCLAIMS_EXPERIMENT"  # read by declaration.load_experiment
DEFAULT_EXPERIMENT = "cnnclaims.article:ARTICLE"
ENV_NUMERICS = "CNNCLAIMS_NUMERICS"  # read by numerics.mode
NUMERICS_MODES = ("portable", "native")
ENV_PROBE = "CNNCLAIMS_PROBE"  # read by probe.probe_index
ENV_WORKERS = "CNNCLAIMS_WORKERS"  # read by training.default_workers
ENV_PROFILE = "CNNCLAIMS_PROFILE"
ENV_ARTIFACTS = "CNNCLAIMS_ARTIFACTS"
ENV_EXECUTOR = "CNNCLAIMS_EXECUTOR"  # read by executor_choice (experiment.Run.train)
ENV_RAY_ADDRESS = "CNNCLAIMS_RAY_ADDRESS"
ENV_TIME_BUDGET = "CNNCLAIMS_TIME_BUDGET"
BOTH, PYTEST, CLI = ("pytest", "cli"), ("pytest",), ("cli",)


@dataclass(frozen=True)
class Option:
    flag: str
    help: str
    env: str | None = None  # the environment variable used when the option is not given
    type: type | None = str  # None: a switch (store_true)
    choices: tuple | None = None
    default: object = None
    fronts: tuple = BOTH
    env_at_parse: bool = False  # the env var is the option's default (else read where it is used)

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")

    # pytest's spelling: prefixed, as plugins users know prefix theirs (--benchmark-*,
    # --hypothesis-*), so that no other plugin's --profile or --workers clashes. The
    # command line, whose subcommands are all cnnclaims's, keeps the short names.
    @property
    def pytest_flag(self) -> str:
        return "--cnnclaims-" + self.flag.removeprefix("--")

    @property
    def pytest_dest(self) -> str:
        return "cnnclaims_" + self.dest

    def full_help(self) -> str:
        return self.help + (f" (also ${self.env})" if self.env else "")

    def kwargs(self) -> dict:
        if self.type is None:
            return {"action": "store_true", "help": self.full_help()}
        default = (os.environ.get(self.env) or self.default) if self.env_at_parse and self.env else self.default
        kw = {"default": default, "help": self.full_help()}
        if self.type is not str:
            kw["type"] = self.type
        if self.choices:
            kw["choices"] = self.choices
        return kw


OPTIONS = (
    Option(
        "--experiment",
        f"the experiment, as 'package.module:NAME' (default {DEFAULT_EXPERIMENT}, the article)",
        ENV_EXPERIMENT,
    ),
    Option(
        "--profile",
        "the experiment's profile (default: the experiment's default; the article: article, "
        "the real experiment, or smoke, fast)",
        ENV_PROFILE,
        env_at_parse=True,
    ),
    Option(
        "--data",
        "the data source, for the article CIFAR-10 as cifar-10-batches-py or an image-folder tree "
        "(default: Keras's downloader)",
        ENV_DATA,
    ),
    Option(
        "--cache-dir",
        "cache for decoded data, trained models and statistics (default: the user's cache "
        "folder, $XDG_CACHE_HOME/cnnclaims or ~/.cache/cnnclaims)",
        ENV_CACHE,
    ),
    Option("--retrain", "retrain every model instead of loading it from the cache", type=None),
    Option(
        "--workers",
        "models trained at once, one TensorFlow thread each (default: one per core, at most 8 "
        "and one per 4 GiB of memory)",
        ENV_WORKERS,
        type=int,
    ),
    Option(
        "--executor",
        "where models train: "
        + "; ".join(
            f"{name} ({r.summary}{'; needs ' + r.install if r.install else ''})" for name, r in REGISTRY.items()
        ),
        ENV_EXECUTOR,
        choices=EXECUTORS,
    ),
    Option(
        "--ray-address",
        "the Ray cluster --executor=ray trains on, the head's host:port (default: a local Ray "
        "started for the run, one CPU per worker)",
        ENV_RAY_ADDRESS,
    ),
    Option(
        "--numerics",
        "portable: the same bits on every x86-64 CPU with AVX2 (oneDNN custom operations on, "
        "its kernels capped at AVX2; the default), or native: TensorFlow's defaults on this CPU (faster, models "
        "and pins of their own)",
        ENV_NUMERICS,
        choices=NUMERICS_MODES,
    ),
    Option(
        "--time-budget",
        "minutes the missing models may take to train, as predicted from throughput measured "
        "here before training: a longer plan trains nothing and its claims are reported skipped, saying so "
        "(default: no limit)",
        ENV_TIME_BUDGET,
        type=float,
    ),
    Option("--seeds", "training seeds per condition (default: the profile's)", type=int),
    Option(
        "--probe-index",
        "test-set index of the probe image, one of the probe class (default: the first test image of the class)",
        ENV_PROBE,
    ),
    Option(
        "--artifacts",
        "folder for verdict JSON and plots (default: build/artifacts under pytest's rootdir)",
        ENV_ARTIFACTS,
        fronts=PYTEST,
    ),
    Option(
        "--plots",
        "write diagnostic plots for failing claims (default), for every claim, or never",
        choices=("failed", "always", "never"),
        default="failed",
        fronts=PYTEST,
    ),
    Option(
        "--table",
        "the verdict table at the session's end: compact (about 110 columns: claim, scope, verdict, effect, "
        "p_adj, pin; the default) or full (every statistic; verdicts.json always has them all)",
        choices=("compact", "full"),
        default="compact",
        fronts=PYTEST,
    ),
    Option(
        "--regen-verdicts",
        "rewrite the pinned verdicts for this version family and profile from this run",
        type=None,
        fronts=PYTEST,
    ),
    Option(
        "--pinned-verdicts",
        "pinned verdicts file (default: the experiment's pins file beside the test file "
        "that parametrizes its claims, else tests/pinned_verdicts.json under pytest's rootdir)",
        fronts=PYTEST,
    ),
)
BY_FLAG = {o.flag: o for o in OPTIONS}


def add_to_pytest(group) -> None:
    """The table's pytest options on ``group``, each as ``--cnnclaims-NAME``. The old
    short names are not registered (another plugin's ``--profile`` or ``--workers``
    would clash with them, whichever loads later): ``rewrite_deprecated`` maps them."""
    for o in OPTIONS:
        if "pytest" in o.fronts:
            group.addoption(o.pytest_flag, dest=o.pytest_dest, **o.kwargs())


def rewrite_deprecated(args: list, taken=frozenset()) -> list[str]:
    """Rewrite, in place, each old short pytest flag in ``args`` (``--profile smoke``,
    ``--profile=smoke``) to its ``--cnnclaims-`` spelling, unless another plugin or
    conftest registered that short name itself (``taken``); returns the flags
    rewritten, for one deprecation warning each. A deprecated alias for one release."""
    old = {o.flag: o.pytest_flag for o in OPTIONS if "pytest" in o.fronts and o.flag not in taken}
    done = []
    for i, arg in enumerate(args):
        if arg == "--":
            break
        flag, eq, value = str(arg).partition("=")
        if flag in old:
            args[i] = old[flag] + eq + value
            done.append(flag)
    return list(dict.fromkeys(done))


def add_to_argparse(parser, skip=()) -> None:
    """Every command-line option of the table on ``parser``, but those in ``skip`` (flags
    that do not apply to its command; the command then reads them as None)."""
    for o in OPTIONS:
        if "cli" in o.fronts and o.flag not in skip:
            parser.add_argument(o.flag, dest=o.dest, **o.kwargs())


def positive_int_env(name: str, what: str) -> int | None:
    """A positive integer from environment variable ``name``, None when unset; a bad
    value is an error that names the variable. (Here, not in ``compat``, which imports
    TensorFlow: checking the options at pytest's start must not start it.)"""
    raw = os.environ.get(name)
    if raw in (None, ""):
        return None
    try:
        n = int(raw)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"${name}={raw!r} is not a positive number of {what}; unset it for the default")
    return n


def check(get) -> None:
    """Validate the options ``get(flag)`` returns, and their environment variables,
    before any work. Raises ValueError naming the option and the fix. (``--numerics``
    is checked by ``numerics.apply``, which ``numerics.check_options`` calls first.)"""
    workers = get("--workers")
    if workers is not None and workers < 1:
        raise ValueError(f"--workers must be at least 1, got {workers}")
    positive_int_env(ENV_WORKERS, "training processes")
    executor = executor_choice(get("--executor"))
    address = ray_address_choice(get("--ray-address"))
    if address and executor != "ray":
        # Not ignored silently: the user meant a cluster, and would train here.
        raise ValueError(
            f"--ray-address / ${ENV_RAY_ADDRESS} {address!r} is set, but the executor is {executor!r}; "
            f"add --executor=ray (or set ${ENV_EXECUTOR}=ray), or drop the address"
        )
    time_budget_choice(get("--time-budget"))
    seeds = get("--seeds")
    if seeds is not None and seeds < 1:
        raise ValueError(f"--seeds must be at least 1, got {seeds}")
    raw = get("--probe-index") or os.environ.get(ENV_PROBE)
    if raw not in (None, ""):
        try:
            index = int(raw)
        except ValueError:
            raise ValueError(
                f"--probe-index / ${ENV_PROBE} {raw!r} is not an integer; "
                "give the test-set index of an image of the probe class"
            ) from None
        if index < 0:
            raise ValueError(
                f"--probe-index / ${ENV_PROBE} {index} is negative; "
                "give the test-set index of an image of the probe class"
            )


def executor_choice(value: str | None = None) -> str:
    """The executor that trains models: ``value`` (``--executor``), else
    $CNNCLAIMS_EXECUTOR, else "local". Raises ValueError naming the value and the
    choices for another name, and for one whose required module is not installed (Ray
    for "ray"), saying how to install it (checked here, at start, not after the data
    is decoded)."""
    import importlib.util

    chosen = value or os.environ.get(ENV_EXECUTOR) or "local"
    if chosen not in EXECUTORS:
        where = "--executor" if value else f"${ENV_EXECUTOR}"
        raise ValueError(f"{where} {chosen!r} is not an executor; choose one of {', '.join(EXECUTORS)}")
    requires = REGISTRY[chosen].requires
    try:
        found = not requires or importlib.util.find_spec(requires) is not None
    except ValueError:  # a module without a spec (sys.modules["ray"] = None: blocked)
        found = False
    if not found:
        raise ValueError(missing_text(chosen))
    return chosen


def ray_address_choice(value: str | None = None) -> str | None:
    """The Ray cluster to train on: ``value`` (``--ray-address``), else
    $CNNCLAIMS_RAY_ADDRESS, else None (a local Ray started for the run)."""
    return value or os.environ.get(ENV_RAY_ADDRESS) or None


def time_budget_choice(value: float | None = None) -> float | None:
    """Minutes of predicted training a run may start: ``value`` (``--time-budget``),
    else $CNNCLAIMS_TIME_BUDGET, else None (no limit). Raises ValueError for a value that
    is not a non-negative number, naming where it came from."""
    raw, where = (
        (value, "--time-budget") if value is not None else (os.environ.get(ENV_TIME_BUDGET), f"${ENV_TIME_BUDGET}")
    )
    if raw in (None, ""):
        return None
    try:
        minutes = float(raw)
    except ValueError:
        minutes = float("nan")
    if not minutes >= 0 or minutes == float("inf"):
        raise ValueError(f"{where} {raw!r} is not a number of minutes (>= 0); unset it for no limit")
    return minutes
