"""The pytest session's state for the cnnclaims plugin: its stash keys, the
declared experiment and its Run, the folders of its options, the checks that stop a
session once with one usage error, and the printers that reach the terminal through
pytest's capture. Read by the plugin's hooks and fixtures (``cnnclaims.pytest_plugin``)
and by ``plugin.cases``; pytest plumbing only, no science."""

from __future__ import annotations

import contextlib
import functools
import os
from pathlib import Path
from typing import Any

import pytest

from ..cache import ENV_CACHE
from ..locations import DEFAULT_PINS_NAME, misread_path_option, resolve_pins_path, under_root
from ..options import BY_FLAG, ENV_ARTIFACTS


def option(config, flag: str):
    """The value of the table's option ``flag`` (``--profile``) in this session, given as
    ``--cnnclaims-profile`` or its deprecated alias (``options.Option.pytest_flag``).
    ``functools.partial(option, config)`` is the ``get(flag)`` that ``options.check``,
    ``numerics.check_options`` and ``Run.from_options`` take."""
    return config.getoption(BY_FLAG[flag].pytest_dest)


REPORT_KEY = "cnnclaims"  # report attribute (and workeroutput key): JSON text
EXPERIMENT: pytest.StashKey[Any] = pytest.StashKey()  # the session's Run
RESULTS: pytest.StashKey[Any] = pytest.StashKey()  # what the reporting process collected from reports
LOCAL: pytest.StashKey[Any] = pytest.StashKey()  # what this process ran
VERDICT: pytest.StashKey[Any] = pytest.StashKey()  # on an item: its verdict payload, for its report


def is_worker(config) -> bool:
    """A pytest-xdist worker: it runs tests; its controller reports them."""
    return hasattr(config, "workerinput")


def check_named_folders(config) -> None:
    """A cache or artifacts folder named by an option or variable that cannot be
    created is one usage error now, before TensorFlow is imported, not a traceback per
    test after minutes of decoding (default folders: when the Run is built)."""
    from ..errors import CacheWriteError

    try:
        for flag, env, what in FOLDERS:
            if option(config, flag) or os.environ.get(env):
                check_folder(config, flag, env, what)
    except CacheWriteError as exc:
        raise pytest.UsageError(f"cnnclaims: {exc}") from None


def check_rootdir(config) -> None:
    """A path option written with a space that pytest took for a test path, moving
    its rootdir (``locations.misread_path_option``): one usage error, instead of
    collecting the wrong folder."""
    if config.inipath is not None or config.args_source == pytest.Config.ArgsSource.ARGS:
        return  # an ini file was found (the rootdir is right), or test paths were named
    why = misread_path_option(config.invocation_params.args, config.rootpath, config.invocation_params.dir)
    if why:
        raise pytest.UsageError(f"cnnclaims: {why}")


def check_usage(config) -> None:
    """Bad option or environment values are one usage error at start, not a failure
    of every test (whether the probe index names an image of the probe class needs the
    data: checked later)."""
    from ..errors import CnnClaimsError
    from ..numerics import check_options as check

    check_rootdir(config)
    try:
        if option(config, "--experiment") or os.environ.get("CNNCLAIMS_EXPERIMENT"):
            # A test file's parametrize_claims may name another experiment, whose
            # profiles are checked when its tests are generated.
            declared(config).profile(option(config, "--profile"), option(config, "--seeds"))
        check(functools.partial(option, config))
    except (ValueError, TypeError, KeyError, CnnClaimsError) as exc:
        raise pytest.UsageError(f"cnnclaims: {exc}") from None


USAGE: pytest.StashKey[Any] = pytest.StashKey()


def cache_dir(config) -> Path:
    """--cache-dir, else $CNNCLAIMS_CACHE, else the user's cache folder
    (``cache.default_cache_dir``: ``$XDG_CACHE_HOME/cnnclaims`` or ``~/.cache/cnnclaims``)."""
    from ..cache import default_cache_dir

    raw = option(config, "--cache-dir")
    return Path(raw).absolute() if raw else default_cache_dir()


def artifacts_dir(config) -> Path:
    """--artifacts, else $CNNCLAIMS_ARTIFACTS, else build/artifacts under the rootdir."""
    raw = option(config, "--artifacts") or os.environ.get(ENV_ARTIFACTS)
    return under_root(raw, config.rootpath, Path("build") / "artifacts")


DECLARED: pytest.StashKey[Any] = pytest.StashKey()  # the experiment a parametrize_claims mark chose


BESIDE: pytest.StashKey[Any] = pytest.StashKey()  # the folder of the test file that parametrizes it


def pins_path(config) -> Path:
    """--pinned-verdicts, else the experiment's pins file beside the test file that
    parametrizes its claims, else in tests/ under the rootdir
    (``locations.resolve_pins_path``, which the report and the command line share)."""
    chosen = EXPERIMENT in config.stash or DECLARED in config.stash
    return resolve_pins_path(
        declared(config).pins_name if chosen else DEFAULT_PINS_NAME,
        explicit=option(config, "--pinned-verdicts"),
        rootdir=config.rootpath,
        beside=config.stash.get(BESIDE, None),
    )


def progress_printer(config):
    """Print through pytest's capture so long work is never minutes of silence."""
    capman = config.pluginmanager.getplugin("capturemanager")
    tw = config.get_terminal_writer()

    def emit(msg: str) -> None:
        def write():
            if tw.width_of_current_line:  # after a row of progress dots
                tw.line()
            tw.line(msg)

        if capman is not None:
            with capman.global_and_fixture_disabled():
                write()
        else:
            write()

    return emit


def set_experiment(config, experiment) -> None:
    """Use a ready Experiment (e.g. a synthetic one in the harness's own tests)."""
    config.stash[EXPERIMENT] = experiment


def declared(config):
    """The declared experiment of this session: a Run set with ``set_experiment``
    brings its own; else the one a ``parametrize_claims`` mark chose; else
    ``--experiment`` / $CNNCLAIMS_EXPERIMENT / the default."""
    from ..declaration import load_experiment

    if EXPERIMENT in config.stash:
        return config.stash[EXPERIMENT].experiment
    if DECLARED in config.stash:
        return config.stash[DECLARED]
    return load_experiment(option(config, "--experiment"))


def choose(config, experiment, where) -> bool:
    """Record the experiment a parametrize_claims mark names. A second, different one
    in the same session, or one that --experiment contradicts, is a usage error
    (reported once from pytest_collection_modifyitems; verdict tables and pins are
    per session). Returns False then."""
    from ..declaration import load_experiment

    current = config.stash.get(DECLARED, None)
    if current is None and EXPERIMENT in config.stash:
        current = config.stash[EXPERIMENT].experiment
    msg = None
    if current is not None and current is not experiment:
        same = " (another object with the same name)" if current.name == experiment.name else ""
        msg = (
            f"cnnclaims: {where} parametrizes experiment {experiment.name!r}, but this session already runs "
            f"{current.name!r}{same}; run one experiment per pytest session (e.g. pytest path/to/its/test_file.py)"
        )
    elif option(config, "--experiment"):
        try:
            given = load_experiment(option(config, "--experiment"))
        except (KeyError, TypeError) as exc:
            given, msg = None, f"cnnclaims: --experiment: {exc}"
        if given is not None and given is not experiment:
            msg = (
                f"cnnclaims: --experiment {option(config, '--experiment')} names {given.name!r}, but {where} "
                f"parametrizes {experiment.name!r}; drop --experiment (a test file's own experiment wins) or "
                "run another test file"
            )
    if msg:
        config.stash.setdefault(USAGE, msg)
        return False
    config.stash[DECLARED] = experiment
    return True


def get_experiment(config):
    """The session's ``experiment.Run`` (built on first use; see ``start_checks``)."""
    if EXPERIMENT not in config.stash:
        from ..run import Run

        config.stash[EXPERIMENT] = start_checks(
            config,
            Run.from_options(
                functools.partial(option, config),
                experiment=declared(config),
                cache_dir=cache_dir(config),
                progress=progress_printer(config),
            ),
        )
    return config.stash[EXPERIMENT]


FOLDERS = (("--cache-dir", ENV_CACHE, "cache folder"), ("--artifacts", ENV_ARTIFACTS, "artifacts folder"))


def check_folder(config, flag, env, what) -> None:
    """CacheWriteError unless the folder can be created (a read-only cache that exists
    passes: it serves what it holds; the artifacts folder must be writable)."""
    from ..cache import check_folder

    path = cache_dir(config) if flag == "--cache-dir" else artifacts_dir(config)
    check_folder(path, flag, env, what, must_write=flag == "--artifacts")


def start_checks(config, run):
    """``run``, once its folders (the default ones too) and the probe index (which
    needs the data's labels) are known to be usable; else the session stops here with
    one message (pytest.exit, a usage error), instead of every test failing alike."""
    from ..errors import CnnClaimsError
    from ..probe import ENV_PROBE

    try:
        for flag, env, what in FOLDERS:
            check_folder(config, flag, env, what)
    except CnnClaimsError as exc:
        stop(config, f"cnnclaims: {exc}")
    if option(config, "--probe-index") or os.environ.get(ENV_PROBE) or run.experiment.probe.index is not None:
        try:
            run.data  # noqa: B018 - a data that does not load is said as such, not as a bad probe index
        except Exception as exc:
            msg = session_error(config, exc)
            if msg is None:
                raise
            stop(config, msg)
        try:
            run.probe_index  # noqa: B018 - reading it checks the index against the data's labels
        except CnnClaimsError as exc:
            err = write_error(config, exc, run)
            stop(
                config,
                f"cnnclaims: {err}"
                if err
                else f"cnnclaims: --probe-index / ${ENV_PROBE}: {exc}; pass the "
                f"test-set index of an image of the probe class, or unset both for the first one",
            )
    # The declaration's own mistakes (a builder, a training size, a declared probe
    # index) stop the session once, before training, not in every test.
    try:
        run.check(data=False)  # the data is loaded by the first test that needs it
    except (CnnClaimsError, ValueError) as exc:
        err = write_error(config, exc, run)
        stop(config, f"cnnclaims: experiment {run.experiment.name!r}: {err or exc}")
    return run


class SessionStop(Exception):
    """On an xdist worker, where pytest.exit crashes the controller: the test that met
    it fails in one line and the session stops (see pytest_runtest_makereport)."""


def stop(config, msg: str):
    if is_worker(config):
        raise SessionStop(msg)
    pytest.exit(msg, returncode=pytest.ExitCode.USAGE_ERROR)


def session_error(config, exc: BaseException, item=None) -> str | None:
    """The one line (``cnnclaims: ...``) that stops the session when ``exc`` has a cause
    that every later test would meet alike, else None: a ``SessionStop``; a failed
    write into the cache (``write_error``: a full disk, a read-only folder); the data
    refused (``DataContractError``); or any other DataError (data missing, unreachable,
    damaged) in a test that uses cnnclaims (``item``: the test; None: the session's own
    checks), where it comes from the session's data, so each test would retry the load
    and fail alike. A DataError of a unit test that does not use cnnclaims stays its own."""
    from ..errors import DataContractError, DataError

    if isinstance(exc, SessionStop):
        return str(exc)
    err = write_error(config, exc)
    if err is not None:
        return f"cnnclaims: {err}"
    if isinstance(exc, DataContractError) or (isinstance(exc, DataError) and (item is None or uses(item))):
        return f"cnnclaims: {exc}"
    return None


def uses(item) -> bool:
    """Whether the test ``item`` uses cnnclaims: one of its fixtures or parameters, or an
    experiment's claim."""
    return bool(FIXTURES & set(getattr(item, "fixturenames", ())) or item.get_closest_marker("cnnclaims_experiment"))


def is_claim(item) -> bool:
    """Whether ``item`` checks a claim or the null control (it needs the data and the models)."""
    names = getattr(item, "fixturenames", ())
    return "claim_case" in names or "null_case" in names


# --- one stop for the whole session, under pytest-xdist too ---------------------------
#
# Before the first claim test, the checks every claim needs run once (``preflight``, from
# a session fixture that claim_checker requests, so that an experiment a session fixture
# sets is seen). A cause every test would meet alike stops the session there, in one
# line. An xdist worker cannot end the session with pytest.exit (the controller crashes),
# and each worker meets such a cause on its own, in parallel: two workers used to fail
# their tests alike. The workers of one run on this machine share the controller's
# basetemp: the first worker to meet such a cause reports it as its first claim test's
# error, in that one line, and writes the line there; every worker reads it before each
# cnnclaims test, so that the others stop without running or reporting anything, and the
# run ends with the line ("Interrupted: ..."). Until a worker's preflight has run, it
# holds a lock there, so that one worker at a time runs it and only the first meets a
# failure.

STOP_FILE = "cnnclaims-session-stop.txt"
GATE: pytest.StashKey[Any] = pytest.StashKey()  # this worker's hold on the preflight lock (None: released)
STOP_AFTER: pytest.StashKey[str] = pytest.StashKey()  # the line to stop with after a test's error


def shared_dir(config) -> Path | None:
    """The folder the local pytest-xdist workers of this run share (the controller's
    basetemp, of which each worker's basetemp ``popen-gwN`` is a child); None outside
    a local worker (a plain run, or a remote worker that shares no folder)."""
    base = getattr(config.option, "basetemp", None)
    if not is_worker(config) or not base or not Path(base).name.startswith("popen-"):
        return None
    return Path(base).parent


def stopped_elsewhere(config) -> str | None:
    """The line another worker of this run stopped the session with, if one did."""
    folder = shared_dir(config)
    if folder is None:
        return None
    try:
        return (folder / STOP_FILE).read_text() or None
    except OSError:
        return None


def tell_workers(config, msg: str) -> None:
    """On a worker: leave the session's stop line where the other workers read it
    (written whole: they read it without the lock)."""
    from ..cache import atomic_path

    folder = shared_dir(config)
    if folder is not None and not (folder / STOP_FILE).exists():
        with contextlib.suppress(OSError), atomic_path(folder / STOP_FILE) as tmp:
            tmp.write_text(msg)


def before_test(item) -> bool | None:
    """Before a test that uses cnnclaims (pytest_runtest_protocol), on an xdist worker:
    True when another worker stopped the session (nothing is run or reported for this
    test), else None; before this worker's first claim test, it waits for the preflight
    lock (``release_gate`` lets it go), then looks again."""
    config = item.config
    folder = shared_dir(config)
    if folder is None or not uses(item):
        return None
    msg = stopped_elsewhere(config)
    if msg is None and is_claim(item) and GATE not in config.stash:
        from ..cache import file_lock

        hold = contextlib.ExitStack()
        config.stash[GATE] = hold
        hold.enter_context(file_lock(folder / "cnnclaims-preflight.lock"))
        msg = stopped_elsewhere(config)
    if msg is None:
        return None
    release_gate(config)
    item.session.shouldstop = msg
    return True


def release_gate(config) -> None:
    """Let the preflight lock go, if this worker holds it (once its preflight ran, or
    its first claim test ended without it)."""
    hold = config.stash.get(GATE, None)
    if hold is not None:
        config.stash[GATE] = None
        hold.close()


def preflight(config) -> None:
    """What every claim test needs before any of them runs, checked once: the session's
    Run (its folders, probe index and declaration, ``start_checks``), its data, and,
    where models must be trained, that the cache can store them and the data has their
    training sizes (``run_plan.can_store``, ``check_sizes``: what training checks
    first, in its order). Raises what those raise (DataError, CacheWriteError, ...;
    ``start_checks`` stops the session itself)."""
    from .. import run_plan

    run = get_experiment(config)
    run.data  # noqa: B018 - loads it (DataError: missing, unreachable, damaged)
    roles = [r for r in run.plan_roles if r not in run.loaded]
    if roles:
        run_plan.can_store(run, run.plan_specs(roles))
        run_plan.check_sizes(run)


def preflight_or_stop(config) -> None:
    """``preflight``, from the claim tests' session fixture. A cause every test would meet
    alike (``session_error``: data missing, unreachable, damaged or not as declared, a
    cache that cannot store the models, a bad probe index or declaration) stops the
    session with its one line, as ``stop`` does: before any test (pytest.exit), or on an
    xdist worker in this test alone, the other workers told. Anything else (a bug in an
    experiment's load_data) is raised as it is, the first claim test's setup error with
    its traceback, and the session stops after it (``stop_after``)."""
    try:
        preflight(config)
    except pytest.exit.Exception:
        raise
    except Exception as exc:
        msg = session_error(config, exc)
        if msg is None:
            msg = (
                f"cnnclaims: the session stopped: preparing the claim tests failed with {type(exc).__name__}: "
                f"{exc} (its traceback: the first claim test's setup error)"
            )
            config.stash[STOP_AFTER] = msg
            tell_workers(config, msg)
            raise
        tell_workers(config, msg)
        stop(config, msg)
    finally:
        release_gate(config)


def stop_after(config) -> str | None:
    """The line the session stops with after a test whose error ``preflight_or_stop``
    let through, if it did."""
    return config.stash.get(STOP_AFTER, None)


def write_error(config, exc, run=None):
    """The one clear CacheWriteError when ``exc`` is a failed write into the cache (a
    full disk, a read-only folder), sized by this run's plan; else None."""
    from ..cache import write_failure

    run = run if run is not None else config.stash.get(EXPERIMENT, None)
    root, n_models, data_bytes = getattr(run, "cache_dir", None) or cache_dir(config), None, None
    if run is not None:
        try:
            n_models = run.profile.n_models()
        except Exception:  # noqa: BLE001 - a plan that cannot be counted: the message omits it
            pass
        data = run.__dict__.get("data")
        if data is not None:
            data_bytes = sum(a.nbytes for a in (data.x_train, data.y_train, data.x_test, data.y_test))
    return write_failure(exc, root, n_models, data_bytes)


class CacheNotices:
    """Cache notices (a corrupt entry discarded, a read-only cache not stored to) printed
    inside a test or fixture went to a stderr that pytest's capture hides: under
    capture they are shown through it as they happen (and still written to the captured
    stderr, where a failing test's report and capsys find them); without capture (-s)
    and outside pytest they go to stderr."""

    def __init__(self, config):
        from .. import cache

        self.config = config
        self.previous = cache.set_notice_printer(self.emit)

    def emit(self, msg: str) -> None:
        import sys

        capman = self.config.pluginmanager.getplugin("capturemanager")
        if capman is not None and capman.is_globally_capturing():
            progress_printer(self.config)(msg)
        print(msg, file=sys.stderr, flush=True)

    def pytest_unconfigure(self, config):
        from .. import cache

        cache.set_notice_printer(self.previous)


def pins(config):
    from .. import pinned

    path = pins_path(config)
    return path, pinned.load(path)


def pins_cached(config) -> dict:
    """The pins as loaded once per process (check_claim reads them per case)."""
    local = config.stash[LOCAL]
    if "pins" not in local:
        local["pins"] = pins(config)[1]
    return local["pins"]


# The $CNNCLAIMS_ variables the user set: read when pytest loads the plugin, before its
# configure hook sets $CNNCLAIMS_NUMERICS itself (numerics.apply).
USER_VARIABLES = sorted(name for name in os.environ if name.startswith("CNNCLAIMS_"))

# The plugin's fixtures and parameters: a test that asks for one uses cnnclaims.
FIXTURES = frozenset(
    {"run", "experiment", "cifar10", "probe_image", "probe_images", "models_a", "models_b", "activations"}
    | {"claim_checker", "claim_case", "null_case"}
)


def used(config, items) -> bool:
    """Whether this session uses cnnclaims, so that its lines belong in the output: a
    cnnclaims option on the command line (or in $PYTEST_ADDOPTS), a $CNNCLAIMS_
    variable set, or a collected test that asks for one of its fixtures or is one of
    an experiment's claims. A project that merely has the plugin installed hears
    nothing from it."""
    from ..options import OPTIONS

    if USER_VARIABLES:
        return True
    given = given_args(config)
    flags = {f for o in OPTIONS if "pytest" in o.fronts for f in (o.flag, o.pytest_flag)}
    if any(str(a).split("=")[0] in flags for a in given):
        return True
    return any(
        FIXTURES & set(getattr(i, "fixturenames", ())) or i.get_closest_marker("cnnclaims_experiment") for i in items
    )


def where_lines(config) -> list[str]:
    """Where this run's cache, artifacts, pins and data are (the data source is
    resolved, not loaded)."""
    from ..data import resolve_source
    from ..errors import CnnClaimsError

    try:
        data = resolve_source(option(config, "--data")).describe()
    except CnnClaimsError as exc:
        data = f"unusable: {exc}"
    from ..formatting import terminal_width, wrapped

    # A line each (they were one line of about 220 columns); a path is never broken
    # from its label, and the notes go on lines of their own where they do not fit.
    width = terminal_width()
    pins = f"cnnclaims: pinned verdicts {pins_path(config)}"
    own = "(a test file using parametrize_claims keeps its own beside it)"
    if option(config, "--pinned-verdicts"):
        pins_lines = [pins]
    else:
        pins_lines = [f"{pins} {own}"] if len(pins) + 1 + len(own) <= width else [pins, f"  {own}"]
    data_line = f"cnnclaims: data: {data}"
    return [
        f"cnnclaims: cache {cache_dir(config)}",
        f"cnnclaims: artifacts {artifacts_dir(config)}",
        *pins_lines,
        *(wrapped(data_line, width) if data.startswith("unusable") else [data_line]),
    ]


def given_args(config) -> list[str]:
    """The session's command line and $PYTEST_ADDOPTS, as pytest was given them."""
    return [*map(str, config.invocation_params.args), *os.environ.get("PYTEST_ADDOPTS", "").split()]


DEPRECATED: pytest.StashKey[list[str]] = pytest.StashKey()  # old short flags this session rewrote


def registered_flags(parser) -> set[str]:
    """Every option string registered with pytest's ``parser`` so far (pytest's own,
    other plugins', conftests')."""
    groups = [*getattr(parser, "_groups", ()), getattr(parser, "_anonymous", None)]
    return {name for g in groups if g is not None for o in g.options for name in o.names()}


def warn_deprecated_flags(config) -> None:
    """One deprecation warning per old short flag this session was given (``--profile``),
    naming the new spelling (``--cnnclaims-profile``); it still works for this release."""
    for flag in config.stash.get(DEPRECATED, []):
        config.issue_config_time_warning(
            pytest.PytestDeprecationWarning(
                f"cnnclaims: {flag} is deprecated and will be removed in the next release: "
                f"write {BY_FLAG[flag].pytest_flag} (the same option)"
            ),
            stacklevel=2,
        )
