"""pytest plumbing: options, session fixtures, claim parametrisation, summary table.

Registered as the ``cnnclaims`` pytest11 entry point (pyproject.toml), so pytest
knows its options before it decides which arguments are test paths; the root
conftest loads it only where cnnclaims is not installed. No science lives here: the
plugin asks ``Experiment`` for verdicts and reports them.

Where verdicts travel: each claim test's verdict rides on its call-phase test
report (``report.cnnclaims``, a JSON string, as hypothesis's plugin carries its
statistics), and the process that reports (the only one, or pytest-xdist's
controller) builds the table and ``verdicts.json`` from the reports alone. What
belongs to the session rather than to one test (model records, null splits) comes
from the process that ran the tests, through xdist's ``workeroutput`` from each
worker. Workers write no verdict JSON and print no table.

Hooks and fixtures only, with the few functions that read the session's state
(``get_experiment``, ``declared``, the folders of its options): the pin policy is
``pinned.judge``, the failure messages ``failures``, the paths ``locations``, the
gathering of results ``session_results`` and the summary's lines ``summary``.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from . import session_results
from .cache import ENV_CACHE, to_jsonable
from .failures import ClaimNotSupported, NullControlFalsePositive, PinnedVerdictChanged  # noqa: F401 - their old home
from .locations import DEFAULT_PINS_NAME, misread_path_option, resolve_pins_path, under_root
from .options import ENV_ARTIFACTS
from .summary import fragile_line, labels_only_line, plan_line, recorded_line

REPORT_KEY = "cnnclaims"  # report attribute (and workeroutput key): JSON text
_EXPERIMENT = pytest.StashKey()
_RESULTS = pytest.StashKey()  # what the reporting process collected from reports
_LOCAL = pytest.StashKey()  # what this process ran
_VERDICT = pytest.StashKey()  # on an item: its verdict payload, for its report


def pytest_addoption(parser):
    from .options import add_to_pytest

    # The same table as the command line's (cnnclaims.options): one declaration each.
    add_to_pytest(parser.getgroup("cnnclaims", "cnnclaims: claims of a declared Keras experiment"))


def pytest_configure(config):
    for line in (
        "unit: fast tests on synthetic data (no CIFAR-10, no trained models); `pytest -m unit`",
        "integration: uses the real data and the configured profile's trained models",
        "claim: a claim of the experiment, checked against its pinned verdict",
        "cnnclaims_experiment(experiment, null): set by cnnclaims.parametrize_claims",
    ):
        config.addinivalue_line("markers", line)
    config.stash[_RESULTS] = session_results.new_results()
    config.stash[_LOCAL] = {"ran": False, "ran_null": False, "recorded": False}
    if not _is_worker(config):
        config.pluginmanager.register(_ReportCollector(config), "cnnclaims-reports")
    _check_named_folders(config)
    _check_usage(config)
    config.pluginmanager.register(_CacheNotices(config), "cnnclaims-notices")


def _check_named_folders(config) -> None:
    """A cache or artifacts folder named by an option or variable that cannot be
    created is one usage error now, before TensorFlow is imported, not a traceback per
    test after minutes of decoding (default folders: when the Run is built)."""
    from .errors import CacheWriteError

    try:
        for option, env, what in _FOLDERS:
            if config.getoption(option) or os.environ.get(env):
                _check_folder(config, option, env, what)
    except CacheWriteError as exc:
        raise pytest.UsageError(f"cnnclaims: {exc}") from None


def _check_rootdir(config) -> None:
    """A path option written with a space that pytest took for a test path, moving
    its rootdir (``locations.misread_path_option``): one usage error, instead of
    collecting the wrong folder."""
    if config.inipath is not None or config.args_source == pytest.Config.ArgsSource.ARGS:
        return  # an ini file was found (the rootdir is right), or test paths were named
    why = misread_path_option(config.invocation_params.args, config.rootpath, config.invocation_params.dir)
    if why:
        raise pytest.UsageError(f"cnnclaims: {why}")


def _check_usage(config) -> None:
    """Bad option or environment values are one usage error at start, not a failure
    of every test (whether the probe index names an image of the probe class needs the
    data: checked later)."""
    from .errors import CnnClaimsError
    from .numerics import check_options as check

    _check_rootdir(config)
    try:
        if config.getoption("--experiment") or os.environ.get("CNNCLAIMS_EXPERIMENT"):
            # A test file's parametrize_claims may name another experiment, whose
            # profiles are checked when its tests are generated.
            declared(config).profile(config.getoption("--profile"), config.getoption("--seeds"))
        check(config.getoption)
    except (ValueError, TypeError, KeyError, CnnClaimsError) as exc:
        raise pytest.UsageError(f"cnnclaims: {exc}") from None


def _is_worker(config) -> bool:
    """A pytest-xdist worker: it runs tests; its controller reports them."""
    return hasattr(config, "workerinput")


_USAGE = pytest.StashKey()


def pytest_collection_modifyitems(config, items):
    if _USAGE not in config.stash and config.getoption("--profile"):
        # Without claim tests (whose experiment checked it), check against the session's.
        try:
            declared(config).profile(config.getoption("--profile"), config.getoption("--seeds"))
        except (KeyError, ValueError) as exc:
            config.stash[_USAGE] = f"cnnclaims: {exc}"
    if _USAGE in config.stash:
        raise pytest.UsageError(config.stash[_USAGE])
    for item in items:
        if not any(item.get_closest_marker(m) for m in ("integration", "claim", "portability")):
            item.add_marker(pytest.mark.unit)


def cache_dir(config) -> Path:
    """--cache-dir, else $CNNCLAIMS_CACHE, else the user's cache folder
    (``cache.default_cache_dir``: ``$XDG_CACHE_HOME/cnnclaims`` or ``~/.cache/cnnclaims``)."""
    from .cache import default_cache_dir

    raw = config.getoption("--cache-dir")
    return Path(raw).absolute() if raw else default_cache_dir()


def artifacts_dir(config) -> Path:
    """--artifacts, else $CNNCLAIMS_ARTIFACTS, else build/artifacts under the rootdir."""
    raw = config.getoption("--artifacts") or os.environ.get(ENV_ARTIFACTS)
    return under_root(raw, config.rootpath, Path("build") / "artifacts")


_DECLARED = pytest.StashKey()  # the experiment a parametrize_claims mark chose
_BESIDE = pytest.StashKey()  # the folder of the test file that parametrizes it


def pins_path(config) -> Path:
    """--pinned-verdicts, else the experiment's pins file beside the test file that
    parametrizes its claims, else in tests/ under the rootdir
    (``locations.resolve_pins_path``, which the report and the command line share)."""
    chosen = _EXPERIMENT in config.stash or _DECLARED in config.stash
    return resolve_pins_path(declared(config).pins_name if chosen else DEFAULT_PINS_NAME,
                             explicit=config.getoption("--pinned-verdicts"), rootdir=config.rootpath,
                             beside=config.stash.get(_BESIDE, None))


def parametrize_claims(experiment, null: bool = False):
    """A mark: the test function runs once per (claim, scope) of ``experiment``
    (``null=True``: of its null control), with a ``claim_case`` (``null_case``)
    argument, a ``pinned.ClaimCase``, to hand to the ``claim_checker`` fixture. Ids read
    ``<id>-<slug>-<scope>``; verdicts pinned as not supported are strict xfails.
    The pins file defaults to ``experiment.pins_name`` beside the test file.
    One experiment per pytest session."""
    from .declaration import Experiment

    if not isinstance(experiment, Experiment):
        raise TypeError(f"parametrize_claims: expected a cnnclaims.Experiment, got {type(experiment).__name__}")
    return pytest.mark.cnnclaims_experiment(experiment=experiment, null=null)


def pytest_report_header(config):
    """Where this run's cache, artifacts, pins and data are (the data source is
    resolved, not loaded)."""
    from .data import resolve_source
    from .errors import CnnClaimsError

    try:
        data = resolve_source(config.getoption("--data")).describe()
    except CnnClaimsError as exc:
        data = f"unusable: {exc}"
    return [f"cnnclaims: cache {cache_dir(config)}, artifacts {artifacts_dir(config)}, "
            f"pinned verdicts {pins_path(config)}" + ("" if config.getoption("--pinned-verdicts") else
                                                    " (a test file using parametrize_claims keeps its own beside it)"),
            f"cnnclaims: data: {data}"]


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
    config.stash[_EXPERIMENT] = experiment


def declared(config):
    """The declared experiment of this session: a Run set with ``set_experiment``
    brings its own; else the one a ``parametrize_claims`` mark chose; else
    ``--experiment`` / $CNNCLAIMS_EXPERIMENT / the default."""
    from .declaration import load_experiment

    if _EXPERIMENT in config.stash:
        return config.stash[_EXPERIMENT].experiment
    if _DECLARED in config.stash:
        return config.stash[_DECLARED]
    return load_experiment(config.getoption("--experiment"))


def _choose(config, experiment, where) -> bool:
    """Record the experiment a parametrize_claims mark names. A second, different one
    in the same session, or one that --experiment contradicts, is a usage error
    (reported once from pytest_collection_modifyitems; verdict tables and pins are
    per session). Returns False then."""
    from .declaration import load_experiment

    current = config.stash.get(_DECLARED, None)
    if current is None and _EXPERIMENT in config.stash:
        current = config.stash[_EXPERIMENT].experiment
    msg = None
    if current is not None and current is not experiment:
        same = " (another object with the same name)" if current.name == experiment.name else ""
        msg = (f"cnnclaims: {where} parametrizes experiment {experiment.name!r}, but this session already runs "
               f"{current.name!r}{same}; run one experiment per pytest session (e.g. pytest path/to/its/test_file.py)")
    elif config.getoption("--experiment"):
        try:
            given = load_experiment(config.getoption("--experiment"))
        except (KeyError, TypeError) as exc:
            given, msg = None, f"cnnclaims: --experiment: {exc}"
        if given is not None and given is not experiment:
            msg = (f"cnnclaims: --experiment {config.getoption('--experiment')} names {given.name!r}, but {where} "
                   f"parametrizes {experiment.name!r}; drop --experiment (a test file's own experiment wins) or "
                   "run another test file")
    if msg:
        config.stash.setdefault(_USAGE, msg)
        return False
    config.stash[_DECLARED] = experiment
    return True


def get_experiment(config):
    """The session's ``experiment.Run`` (built on first use; see ``_start_checks``)."""
    if _EXPERIMENT not in config.stash:
        from .experiment import Run
        from .options import time_budget_choice

        config.stash[_EXPERIMENT] = _start_checks(config, Run(
            experiment=declared(config),
            profile_name=config.getoption("--profile"),
            data_path=config.getoption("--data"),
            cache_dir=cache_dir(config),
            n_seeds=config.getoption("--seeds"),
            probe=config.getoption("--probe-index"),
            retrain=config.getoption("--retrain"),
            progress=progress_printer(config),
            workers=config.getoption("--workers"),
            executor=config.getoption("--executor"),
            ray_address=config.getoption("--ray-address"),
            time_budget=time_budget_choice(config.getoption("--time-budget")),
        ))
    return config.stash[_EXPERIMENT]


_FOLDERS = (("--cache-dir", ENV_CACHE, "cache folder"), ("--artifacts", ENV_ARTIFACTS, "artifacts folder"))


def _check_folder(config, option, env, what) -> None:
    """CacheWriteError unless the folder can be created (a read-only cache that exists
    passes: it serves what it holds; the artifacts folder must be writable)."""
    from .cache import check_folder

    path = cache_dir(config) if option == "--cache-dir" else artifacts_dir(config)
    check_folder(path, option, env, what, must_write=option == "--artifacts")


def _start_checks(config, run):
    """``run``, once its folders (the default ones too) and the probe index (which
    needs the data's labels) are known to be usable; else the session stops here with
    one message (pytest.exit, a usage error), instead of every test failing alike."""
    from .errors import CnnClaimsError
    from .probe import ENV_PROBE

    try:
        for option, env, what in _FOLDERS:
            _check_folder(config, option, env, what)
    except CnnClaimsError as exc:
        _stop(config, f"cnnclaims: {exc}")
    if config.getoption("--probe-index") or os.environ.get(ENV_PROBE) or run.experiment.probe.index is not None:
        try:
            run.probe_index
        except CnnClaimsError as exc:
            err = _write_error(config, exc, run)
            _stop(config, f"cnnclaims: {err}" if err else f"cnnclaims: --probe-index / ${ENV_PROBE}: {exc}; pass the "
                  f"test-set index of an image of the probe class, or unset both for the first one")
    # The declaration's own mistakes (a builder, a training size, a declared probe
    # index) stop the session once, before training, not in every test.
    try:
        run.check(data=False)  # the data is loaded by the first test that needs it
    except (CnnClaimsError, ValueError) as exc:
        err = _write_error(config, exc, run)
        _stop(config, f"cnnclaims: experiment {run.experiment.name!r}: {err or exc}")
    return run


class _SessionStop(Exception):
    """On an xdist worker, where pytest.exit crashes the controller: the test that met
    it fails in one line and the session stops (see pytest_runtest_makereport)."""


def _stop(config, msg: str):
    if _is_worker(config):
        raise _SessionStop(msg)
    pytest.exit(msg, returncode=pytest.ExitCode.USAGE_ERROR)


def _write_error(config, exc, run=None):
    """The one clear CacheWriteError when ``exc`` is a failed write into the cache (a
    full disk, a read-only folder), sized by this run's plan; else None."""
    from .cache import write_failure

    run = run if run is not None else config.stash.get(_EXPERIMENT, None)
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


class _CacheNotices:
    """Cache notices (a corrupt entry discarded, a read-only cache not stored to) printed
    inside a test or fixture went to a stderr that pytest's capture hides: under
    capture they are shown through it as they happen (and still written to the captured
    stderr, where a failing test's report and capsys find them); without capture (-s)
    and outside pytest they go to stderr."""

    def __init__(self, config):
        from . import cache

        self.config = config
        self.previous = cache.set_notice_printer(self.emit)

    def emit(self, msg: str) -> None:
        import sys

        capman = self.config.pluginmanager.getplugin("capturemanager")
        if capman is not None and capman.is_globally_capturing():
            progress_printer(self.config)(msg)
        print(msg, file=sys.stderr, flush=True)

    def pytest_unconfigure(self, config):
        from . import cache

        cache.set_notice_printer(self.previous)


def _pins(config):
    from . import pinned

    path = pins_path(config)
    return path, pinned.load(path)


# --- fixtures -------------------------------------------------------------------

@pytest.fixture(scope="session")
def experiment(request):
    return get_experiment(request.config)


@pytest.fixture(scope="session")
def cifar10(experiment):
    return experiment.data


@pytest.fixture(scope="session")
def probe_image(experiment):
    """(index in the test set, uint8 image (H, W, C)) of the probe image."""
    return experiment.probe_index, experiment.probe_image


@pytest.fixture(scope="session")
def probe_images(experiment):
    """(test-set indices (n,), uint8 images (n, H, W, C)) of every test image of the probe class."""
    return experiment.probe_indices, experiment.probe_images


@pytest.fixture(scope="session")
def models_a(experiment):
    """Trained models of condition a, one per seed."""
    return experiment.models(experiment.a)


@pytest.fixture(scope="session")
def models_b(experiment):
    """Trained models of condition b, one per seed."""
    return experiment.models(experiment.b)


@pytest.fixture(scope="session")
def activations(experiment):
    """``{condition: {layer: array}}`` for the probe image through each condition's first model."""
    return {role: experiment.probe_activations(role) for role in (experiment.a, experiment.b)}


# --- claim parametrisation --------------------------------------------------------

def pytest_generate_tests(metafunc):
    if "claim_case" not in metafunc.fixturenames and "null_case" not in metafunc.fixturenames:
        return
    from . import pinned

    config = metafunc.config
    mark = metafunc.definition.get_closest_marker("cnnclaims_experiment")
    if mark is not None:
        if not _choose(config, mark.kwargs["experiment"], metafunc.definition.nodeid):
            metafunc.parametrize("null_case" if "null_case" in metafunc.fixturenames else "claim_case", [])
            return
        config.stash[_BESIDE] = Path(metafunc.definition.path).parent
    exp = declared(config)
    try:
        profile = exp.profile(config.getoption("--profile"), config.getoption("--seeds"))
    except (KeyError, ValueError) as exc:
        # A usage error from here would become one collection error per test file;
        # raised from pytest_collection_modifyitems it stops the run as one.
        config.stash[_USAGE] = f"cnnclaims: experiment {exp.name!r}: {exc}"
        metafunc.parametrize("null_case" if "null_case" in metafunc.fixturenames else "claim_case", [])
        return
    from .probe import ENV_PROBE

    key = pinned.pin_key(profile, exp, config.getoption("--probe-index") or os.environ.get(ENV_PROBE))
    path, doc = _pins(config)
    entry = pinned.entry(doc, key) or {}
    regen = config.getoption("--regen-verdicts")
    null = "null_case" in metafunc.fixturenames
    section = "null_control" if null else "verdicts"
    scopes = exp.scopes[1:] if null else exp.scopes_for(profile)
    params = []
    for scope in scopes:
        for claim in exp.claims_for(scope, directional_only=null):
            case = f"{claim.id}/{scope}"
            pin = entry.get(section, {}).get(case)
            marks = [pytest.mark.claim, pytest.mark.integration]
            if pinned.expects_failure(pin, null) and not regen:
                marks.append(pytest.mark.xfail(
                    strict=True, raises=NullControlFalsePositive if null else ClaimNotSupported,
                    reason=f"pinned verdict for {case}: {pin} ({path.name} [{key}])",
                ))
            params.append(pytest.param(pinned.ClaimCase(claim, scope, pin, key, path, null),
                                       id=f"{claim.name}-{scope}", marks=marks))
    metafunc.parametrize("null_case" if null else "claim_case", params)


def pytest_report_collectionfinish(config, start_path, items):
    """Say at collection time which inferential verdicts no data could ever decide:
    the test's smallest attainable p cannot pass the corrected threshold."""
    if not any("claim_case" in getattr(i, "fixturenames", ()) or "null_case" in getattr(i, "fixturenames", ())
               for i in items):
        return None
    from .verdicts import unreachable_by_design

    if _USAGE in config.stash:  # the usage error is being reported
        return None
    exp = declared(config)
    profile = exp.profile(config.getoption("--profile"), config.getoption("--seeds"))
    lines = [f"cnnclaims: {text}" for text in unreachable_by_design("seeds", profile.n_seeds, exp.claims)]
    if profile.sizes:
        lines += [f"cnnclaims: {text}" for text in unreachable_by_design("sizes", profile.size_seeds, exp.claims)]
    return lines or None


def check_claim(request, case, null: bool | None = None):
    """Assert one claim case (a ``pinned.ClaimCase``) against its pinned verdict, as
    ``pinned.judge`` decides; on failure, plots named in the message. ``null``: for
    callers that still say it (the case knows whether it is a null control)."""
    __tracebackhide__ = True
    from . import failures, pinned

    null = pinned.null_of(case, null)
    claim, scope, pin, key, path = case[:5]
    config = request.config
    exp = get_experiment(config)
    v = exp.verdict(claim.id, scope, null=null)
    local = config.stash[_LOCAL]
    local["ran"] = True
    local["ran_null"] |= null
    # For this test's report (pytest_runtest_makereport), whichever process reports it.
    request.node.stash[_VERDICT] = {"verdict": to_jsonable(v.to_dict(), keep_nan=True), "null": null,
                                    "pin_key": exp.pin_key, "profile": exp.profile.as_dict(),
                                    "data_source": exp.data.source}
    if config.getoption("--regen-verdicts"):
        return
    numbers = None if pin is None else pinned.case_numbers(
        pinned.entry(_pins_cached(config), key), "null_control" if null else "verdicts", f"{claim.id}/{scope}")
    outcome = pinned.judge(pin, numbers, v, null, key)
    plots_mode = config.getoption("--plots")
    plots = []
    if plots_mode == "always" or (plots_mode == "failed" and outcome.flagged):
        from .diagnostics import cached_claim_plots

        plots = cached_claim_plots(exp, v, artifacts_dir(config) / "plots")
    # This run's entry goes to <pins>.obtained whichever way the case is reported (a
    # failure here, or strict xfail's XPASS for a PASSED outcome with diffs).
    if outcome.records and _write_obtained(config, exp, path, key) is None and outcome.kind == pinned.NO_PIN:
        pytest.fail(failures.not_recorded(f"{claim.id}/{scope}", key, local["recorded"]), pytrace=False)
    if not outcome.failed:
        return
    hint = _accept_hint(config, path, key) if outcome.records else ""
    text = failures.with_details(outcome.message, v.summary(), hint, plots)
    if outcome.kind == pinned.NO_PIN:
        pytest.fail(text, pytrace=False)
    if outcome.exception is not None:
        raise outcome.exception(text)


def _pins_cached(config) -> dict:
    """The pins as loaded once per process (check_claim reads them per case)."""
    local = config.stash[_LOCAL]
    if "pins" not in local:
        local["pins"] = _pins(config)[1]
    return local["pins"]


def _write_obtained(config, exp, path, key):
    """Write ``<pins>.obtained`` once per session (per xdist worker), never the pins
    file itself; its path, or None where it could not be written (said in
    ``local["recorded"]``)."""
    from . import pinned

    local = config.stash[_LOCAL]
    if not local["recorded"]:
        try:
            local["recorded"] = pinned.write_obtained(path, key, exp.verdicts, exp.null_verdicts, exp.profile,
                                                      exp.data.source, fallback_dir=artifacts_dir(config))
        except OSError as exc:  # read-only folders, full disk: say it once, in one line per case
            local["recorded"] = (f"could not write this run's pins beside {path} nor in "
                                 f"{artifacts_dir(config)} ({exc.strerror or exc}): make a folder writable "
                                 "or pass --pinned-verdicts PATH")
    return None if isinstance(local["recorded"], str) else local["recorded"][0]


def _accept_hint(config, path, key) -> str:
    """Where this run's entry was written and the commands that accept it
    (``failures.accept_hint``, from this session's options)."""
    from .failures import accept_hint

    opts = f" --profile {get_experiment(config).profile.name}"  # the option may be unset: the default's name
    for option in ("--experiment", "--seeds"):
        if config.getoption(option):
            opts += f" {option} {config.getoption(option)}"
    return accept_hint(path, key, config.stash[_LOCAL]["recorded"], opts,
                       explicit=bool(config.getoption("--pinned-verdicts")), offer_cli=_is_default_experiment(config))


def _is_default_experiment(config) -> bool:
    """Whether this run's experiment is the one the command line loads (--experiment,
    $CNNCLAIMS_EXPERIMENT or the article)."""
    from .declaration import load_experiment

    try:
        return load_experiment(config.getoption("--experiment") or None) is get_experiment(config).experiment
    except Exception:  # noqa: BLE001 - an experiment the command line cannot load: not offered
        return False


@pytest.fixture
def claim_checker(request):
    """``check(case)``: assert a ``claim_case`` or ``null_case`` against its pin."""
    def check(case, null=None):
        __tracebackhide__ = True
        check_claim(request, case, null)

    return check


# --- verdicts on reports; session end: regen, JSON, table ------------------------------

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    from .errors import TrainingBudgetError

    if call.excinfo is not None and isinstance(call.excinfo.value, TrainingBudgetError):
        # Not a failure of the claim: it was not checked, which the summary counts and says.
        rep = outcome.get_result()
        rep.outcome, rep.longrepr = "skipped", (str(item.path), item.location[1] or 0,
                                                f"Skipped: cnnclaims: {call.excinfo.value}")
        return
    from .errors import DataContractError

    err = _write_error(item.config, call.excinfo.value) if call.excinfo is not None else None
    if call.excinfo is not None and isinstance(call.excinfo.value, (_SessionStop, DataContractError)):
        # The experiment's data refused (another shape than declared, labels outside its
        # classes): every test would fail alike; one line, and the session stops.
        err = str(call.excinfo.value).removeprefix("cnnclaims: ")
    if err is not None:
        # A cache that cannot be written (full, read-only) fails every later test alike,
        # each retrying the decoding or training first: one line, and the session stops.
        if outcome.get_result().failed:  # (an xfail's report keeps its own form)
            outcome.get_result().longrepr = f"cnnclaims: {err}"
        item.session.shouldstop = f"cnnclaims: {err}"
    if call.when == "call" and _VERDICT in item.stash:
        # A plain attribute survives xdist's report serialisation (pytest copies the
        # report's __dict__); JSON text keeps it to what execnet can carry.
        outcome.get_result().__dict__[REPORT_KEY] = json.dumps(item.stash[_VERDICT])


class _ReportCollector:
    """In the reporting process (not on xdist workers): gathers the verdicts off the
    test reports and, from xdist workers, their session-wide results."""

    def __init__(self, config):
        self.config = config

    def pytest_runtest_logreport(self, report):
        payload = report.__dict__.get(REPORT_KEY)
        if report.skipped and "cnnclaims: not training:" in str(report.longrepr):
            self.config.stash[_RESULTS]["not_checked"] += 1
        if payload is None:
            return
        session_results.add_verdict(self.config.stash[_RESULTS], json.loads(payload))

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node, error):
        raw = getattr(node, "workeroutput", {}).get(REPORT_KEY)
        if raw is not None:
            session_results.merge_session(self.config.stash[_RESULTS], json.loads(raw))


def _collected(config):
    """(verdicts, null verdicts) this session reported, in catalog order."""
    return session_results.collected(config.stash[_RESULTS], declared(config))


def pytest_sessionfinish(session, exitstatus):
    config = session.config
    local = config.stash.get(_LOCAL, None)
    extras = None
    if local and local["ran"]:
        # This process ran claims and holds the experiment: pins, models, null splits.
        from . import pinned

        exp = get_experiment(config)
        if config.getoption("--regen-verdicts"):
            path, _ = _pins(config)
            pinned.write_entry(path, exp.pin_key, exp.verdicts, exp.null_verdicts, exp.profile,
                               exp.data.source)
            # An earlier failing run's .obtained is now accepted or superseded: stale.
            pinned.obtained_path(path).unlink(missing_ok=True)
        extras = {"models": exp.records(), "null_splits": exp.null_splits if local["ran_null"] else None}
    if _EXPERIMENT in config.stash:  # the plan's models, cached, trained or not (a time budget)
        extras = extras or {"models": {}, "null_splits": None}
        extras["plan"] = config.stash[_EXPERIMENT].plan_summary()
        extras["profile_name"] = config.stash[_EXPERIMENT].profile.name
    if extras is not None:
        if _is_worker(config):
            config.workeroutput[REPORT_KEY] = json.dumps(to_jsonable(extras, keep_nan=True))
        else:
            session_results.merge_session(config.stash[_RESULTS], extras)
    if _is_worker(config):
        return  # the controller writes the JSON and prints the table
    res = config.stash.get(_RESULTS, None)
    if not res or not (res["verdicts"] or res["null"]):
        return
    found, null = _collected(config)
    out = artifacts_dir(config)
    out.mkdir(parents=True, exist_ok=True)
    doc = session_results.verdicts_document(res, found, null, time.strftime("%Y-%m-%dT%H:%M:%S"))
    (out / "verdicts.json").write_text(json.dumps(to_jsonable(doc), indent=2) + "\n")


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    res = config.stash.get(_RESULTS, None)
    if _is_worker(config) or not res:
        return
    plan_text = None
    if res["plan"] is not None or res["not_checked"]:
        name = res.get("profile_name") or res.get("profile", {}).get("name") or "?"
        plan_text = plan_line(res["plan"], name, len(res["verdicts"]), len(res["null"]), res["not_checked"])
    if not (res["verdicts"] or res["null"]):
        if plan_text:
            terminalreporter.section("cnnclaims verdicts")
            terminalreporter.write_line(plan_text)
        return
    from . import pinned
    from .report import verdict_table_text

    found, null = _collected(config)
    key, profile_name = res["pin_key"], res["profile"]["name"]
    _, doc = _pins(config)
    entry = pinned.entry(doc, key) or {}
    tr = terminalreporter
    tr.section("cnnclaims verdicts")
    tr.write_line(f"profile {profile_name}, data: {res['data_source']}, pin key {key} in {pins_path(config)}")
    if entry and not pinned.has_numbers(entry):
        tr.write_line(labels_only_line(key, profile_name))
    recorded = config.stash[_LOCAL]["recorded"] if _LOCAL in config.stash else None
    if recorded and not isinstance(recorded, str):
        tr.write_line(recorded_line(pins_path(config), recorded))
    text = verdict_table_text(found, null, entry.get("verdicts"), entry.get("null_control"))
    for line in text.splitlines():
        tr.write_line(line)
    if null and res["null_splits"] is not None:  # None: no worker that ran them finished
        from .calibration import format_null_splits

        tr.write_line(format_null_splits(res["null_splits"]))
    fragile = pinned.fragile(doc, profile_name)
    if fragile:
        tr.write_line(fragile_line(fragile, profile_name))
    tr.write_line(f"verdict JSON: {artifacts_dir(config) / 'verdicts.json'}")
    if plan_text:
        tr.write_line(plan_text)
