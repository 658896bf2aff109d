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
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from .cache import ENV_CACHE, to_jsonable

from .options import ENV_ARTIFACTS  # noqa: E402
REPORT_KEY = "cnnclaims"  # report attribute (and workeroutput key): JSON text
_EXPERIMENT = pytest.StashKey()
_RESULTS = pytest.StashKey()  # what the reporting process collected from reports
_LOCAL = pytest.StashKey()  # what this process ran
_VERDICT = pytest.StashKey()  # on an item: its verdict payload, for its report


class ClaimNotSupported(AssertionError):
    """The claim did not come out supported."""


class PinnedVerdictChanged(AssertionError):
    """The verdict differs from the pinned one (in a way strict xfail cannot see)."""


class NullControlFalsePositive(AssertionError):
    """The null control supports a directional claim: a false positive."""


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
    config.stash[_RESULTS] = {"verdicts": {}, "null": {}, "models": {}, "null_splits": None, "plan": None,
                              "not_checked": 0}
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
    """pytest picks its rootdir from the command line before it loads any plugin, so in
    ``pytest --data PATH`` (a space, no test path given) PATH looks like a test path and
    becomes the rootdir: no ini file, no testpaths, defaults under PATH. Say so once
    instead of collecting the wrong folder."""
    if config.inipath is not None or config.args_source == pytest.Config.ArgsSource.ARGS:
        return  # an ini file was found (the rootdir is right), or test paths were named
    args = list(config.invocation_params.args)
    root = Path(config.rootpath).resolve()
    start = Path(config.invocation_params.dir).resolve()
    if root == start or _pytest_ini(start) is None:
        return  # nothing moved the rootdir, or there was no ini file to lose
    for flag in ("--data", "--cache-dir", "--artifacts", "--pinned-verdicts"):
        if flag not in args or args.index(flag) + 1 >= len(args):
            continue  # not given, or given as --flag=value (which pytest reads right)
        value = args[args.index(flag) + 1]
        v = Path(value).expanduser().resolve()
        if v.exists() and (v == root or root in v.parents):
            raise pytest.UsageError(
                f"cnnclaims: pytest took {flag}'s value {value} for a test path and chose its rootdir from it "
                f"({root}; no ini file, so no testpaths): it reads paths before it loads plugins. Write "
                f"{flag}={value} (with '='), or name the tests first: pytest tests {flag} {value}")


def _pytest_ini(folder: Path):
    """The pytest configuration file pytest would find from ``folder`` upwards, or None
    (the same files pytest reads: pytest.ini, pyproject.toml with [tool.pytest.ini_options],
    tox.ini with [pytest], setup.cfg with [tool:pytest])."""
    marks = {"pytest.ini": None, ".pytest.ini": None, "pyproject.toml": "[tool.pytest.ini_options]",
             "tox.ini": "[pytest]", "setup.cfg": "[tool:pytest]"}
    for d in (folder, *folder.parents):
        for name, section in marks.items():
            f = d / name
            try:
                if f.is_file() and (section is None or section in f.read_text(errors="replace")):
                    return f
            except OSError:
                continue
    return None


def _check_usage(config) -> None:
    """Bad option or environment values are one usage error at start, not a failure
    of every test (whether the probe index names an image of the probe class needs the
    data: checked later)."""
    from .errors import CnnClaimsError
    from .options import check

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


def _path(config, option: str, env: str | None, default: Path) -> Path:
    """The option, else the environment variable (both as given, relative to the
    working directory), else ``default`` under pytest's rootdir: started from tests/
    or any other folder, a run finds the same cache, artifacts and pins."""
    raw = config.getoption(option) or (os.environ.get(env) if env else None)
    return Path(raw).absolute() if raw else Path(config.rootpath) / default


def cache_dir(config) -> Path:
    """--cache-dir, else $CNNCLAIMS_CACHE, else the user's cache folder
    (``cache.default_cache_dir``: ``$XDG_CACHE_HOME/cnnclaims`` or ``~/.cache/cnnclaims``)."""
    from .cache import default_cache_dir

    raw = config.getoption("--cache-dir")
    return Path(raw).absolute() if raw else default_cache_dir()


def artifacts_dir(config) -> Path:
    return _path(config, "--artifacts", ENV_ARTIFACTS, Path("build") / "artifacts")


_DECLARED = pytest.StashKey()  # the experiment a parametrize_claims mark chose
_PINS_AT = pytest.StashKey()  # the pins file beside the test file that uses it


def pins_path(config) -> Path:
    """--pinned-verdicts, else the file beside the test file that parametrizes the
    claims (``parametrize_claims``), else ``tests/<experiment's pins_name>`` under the
    rootdir. Never inside an installed package: site-packages is not the user's."""
    if config.getoption("--pinned-verdicts") or _PINS_AT not in config.stash:
        name = declared(config).pins_name if _EXPERIMENT in config.stash or _DECLARED in config.stash else "pinned_verdicts.json"
        return _path(config, "--pinned-verdicts", None, _default_pins_folder(config) / name)
    return config.stash[_PINS_AT]


def _default_pins_folder(config) -> Path:
    """``tests/`` under the rootdir when it exists, else the rootdir (relative to it)."""
    return Path("tests") if (Path(config.rootpath) / "tests").is_dir() else Path(".")


def _pins_beside(config, test_path: Path, experiment) -> None:
    package = Path(__file__).resolve().parent
    test_path = Path(test_path).resolve()
    if package in test_path.parents:  # e.g. `pytest --pyargs cnnclaims.article`
        folder = Path(config.rootpath) / _default_pins_folder(config)
    else:
        folder = test_path.parent
    config.stash[_PINS_AT] = folder / experiment.pins_name


def parametrize_claims(experiment, null: bool = False):
    """A mark: the test function runs once per (claim, scope) of ``experiment``
    (``null=True``: of its null control), with a ``claim_case`` (``null_case``)
    argument to hand to the ``claim_checker`` fixture. Ids read
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
        from .run import Run

        config.stash[_EXPERIMENT] = _start_checks(config, Run.from_options(
            config.getoption, experiment=declared(config), cache_dir=cache_dir(config),
            progress=progress_printer(config)))
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
def run(request):
    """The session's ``cnnclaims.run.Run``: the experiment under the chosen profile."""
    return get_experiment(request.config)


@pytest.fixture(scope="session")
def experiment(run):
    """Deprecated: the ``run`` fixture's old name."""
    import warnings

    warnings.warn("the 'experiment' fixture is deprecated: use the 'run' fixture (the same cnnclaims.run.Run)",
                  DeprecationWarning, stacklevel=2)
    return run


@pytest.fixture(scope="session")
def cifar10(run):
    return run.data


@pytest.fixture(scope="session")
def probe_image(run):
    """(index in the test set, uint8 image (H, W, C)) of the probe image."""
    return run.probe_index, run.probe_image


@pytest.fixture(scope="session")
def probe_images(run):
    """(test-set indices (n,), uint8 images (n, H, W, C)) of every test image of the probe class."""
    return run.probe_indices, run.probe_images


@pytest.fixture(scope="session")
def models_a(run):
    """Trained models of condition a, one per seed."""
    return run.models(run.a)


@pytest.fixture(scope="session")
def models_b(run):
    """Trained models of condition b, one per seed."""
    return run.models(run.b)


@pytest.fixture(scope="session")
def activations(run):
    """``{condition: {layer: array}}`` for the probe image through each condition's first model."""
    return {role: run.probe_activations(role) for role in (run.a, run.b)}


# --- claim parametrisation --------------------------------------------------------

def pytest_generate_tests(metafunc):
    if "claim_case" not in metafunc.fixturenames and "null_case" not in metafunc.fixturenames:
        return
    from . import pinned
    from .verdicts import FALSE_POSITIVES

    config = metafunc.config
    mark = metafunc.definition.get_closest_marker("cnnclaims_experiment")
    if mark is not None:
        if not _choose(config, mark.kwargs["experiment"], metafunc.definition.nodeid):
            metafunc.parametrize("null_case" if "null_case" in metafunc.fixturenames else "claim_case", [])
            return
        _pins_beside(config, metafunc.definition.path, mark.kwargs["experiment"])
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
            expect_fail = pin in FALSE_POSITIVES if null else pin not in (None, "supported")
            if expect_fail and not regen:
                exc = NullControlFalsePositive if null else ClaimNotSupported
                marks.append(pytest.mark.xfail(
                    strict=True, raises=exc,
                    reason=f"pinned verdict for {case}: {pin} ({path.name} [{key}])",
                ))
            params.append(pytest.param((claim, scope, pin, key, path), id=f"{claim.name}-{scope}", marks=marks))
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


def check_claim(request, case, null: bool = False):
    """Assert one claim against its pinned verdict; on failure, plots named in the message."""
    __tracebackhide__ = True
    from .verdicts import FALSE_POSITIVES

    claim, scope, pin, key, path = case
    config = request.config
    exp = get_experiment(config)
    v = exp.verdict(claim.id, scope, null=null)
    local = config.stash[_LOCAL]
    local["ran"] = True
    local["ran_null"] |= null
    # For this test's report (pytest_runtest_makereport), whichever process reports it.
    from . import pinned

    request.node.stash[_VERDICT] = {"verdict": to_jsonable(v.to_dict(), keep_nan=True), "null": null,
                                    "pin_key": exp.pin_key, "profile": exp.profile.as_dict(),
                                    "data_source": exp.data.source}
    if config.getoption("--regen-verdicts"):
        return
    plots_mode = config.getoption("--plots")
    ok = v.verdict not in FALSE_POSITIVES if null else v.verdict == "supported"
    plots = []
    if plots_mode == "always" or (plots_mode == "failed" and (not ok or pin not in (None, v.verdict))):
        from .diagnostics import cached_claim_plots

        plots = cached_claim_plots(exp, v, artifacts_dir(config) / "plots")
    where = f"\n  diagnostic plots: {', '.join(map(str, plots))}" if plots else ""
    if pin is None:
        obtained = _write_obtained(config, exp, path, key)
        if obtained is None:
            pytest.fail(f"no pinned verdict for {claim.id}/{scope} under [{key}]; {local['recorded']}", pytrace=False)
        pytest.fail(
            f"no pinned verdict for {claim.id}/{scope} under [{key}]: {v.verdict}, review it"
            f"{_accept_hint(config, path, key)}\n  {v.summary()}{where}", pytrace=False)
    entry = pinned.entry(_pins_cached(config), key)
    pin_numbers = pinned.case_numbers(entry, "null_control" if null else "verdicts", f"{claim.id}/{scope}")
    diffs = pinned.case_diff(pin, pin_numbers, v)
    if diffs:  # whichever way it is reported (a failure here, or strict xfail's XPASS)
        _write_obtained(config, exp, path, key)
    pin_ok = pin not in FALSE_POSITIVES if null else pin == "supported"
    number_diffs = [d for d in diffs if d[0] != "verdict"]
    if (v.verdict != pin and (pin_ok or not ok)) or number_diffs:
        # Changes strict xfail cannot see (e.g. refuted -> inconclusive), a passing pin
        # that now fails, or a pinned number that moved. xfail(raises=...) lets this
        # exception through as a real failure; a change to passing under an
        # expected-failure pin, its numbers as pinned, is strict xfail's XPASS.
        what = f"verdict {v.verdict}, pinned {pin}" if v.verdict != pin else f"verdict {pin} as pinned, numbers changed"
        width = max(len(f) for f, _, _ in diffs)
        table = "".join(f"\n    {f:<{width}}  {_shown(old):>18} -> {_shown(new)}" for f, old, new in diffs)
        labels_only = ("" if pin_numbers is not None else
                       f"\n  [{key}] pins labels only (written before numbers were pinned): numbers not compared")
        raise PinnedVerdictChanged(
            f"{claim.id}/{scope}{' (null control)' if null else ''}: {what} [{key}]"
            f" (numbers compared within relative {pinned.REL_TOL:g} / absolute {pinned.ABS_TOL:g}):"
            f"\n    {'field':<{width}}  {'pinned':>18} -> obtained{table}{labels_only}"
            f"{_accept_hint(config, path, key)}\n  {v.summary()}{where}")
    if not ok:
        exc = NullControlFalsePositive if null else ClaimNotSupported
        what = (f"null control finds a direction ({v.verdict}): a false positive" if null
                else f"claim not supported ({v.verdict})")
        raise exc(f"{what}\n  {v.summary()}{where}")


def _pins_cached(config) -> dict:
    """The pins as loaded once per process (check_claim reads them per case)."""
    local = config.stash[_LOCAL]
    if "pins" not in local:
        local["pins"] = _pins(config)[1]
    return local["pins"]


def _shown(x) -> str:
    return "(absent)" if x is None else str(x)


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
    """Where this run's entry was written and the commands that accept it."""
    recorded = config.stash[_LOCAL]["recorded"]
    opts = f" --profile {get_experiment(config).profile.name}"  # the option may be unset: the default's name
    for option in ("--experiment", "--seeds"):
        if config.getoption(option):
            opts += f" {option} {config.getoption(option)}"
    explicit = config.getoption("--pinned-verdicts")
    if isinstance(recorded, str):
        where, copy = f"\n  obtained: none, {recorded}", ""
    else:
        obtained, note = recorded
        where = f"\n  obtained: {obtained} (this run's entry for [{key}]{f'; {note}' if note else ''})"
        copy = f", or `cp {obtained} {path}`"
    # Pins beside a test file: the command names that folder (from the repository root, a
    # bare `pytest` runs the article's tests). The command line pins the default
    # experiment: offered only for it (another one's module is a test's neighbour).
    folder = "" if explicit else os.path.relpath(Path(path).parent)
    folder = "" if folder in ("", ".") else f" {folder}"
    cli = f" or `python -m cnnclaims pin{opts} --file {path}`" if _is_default_experiment(config) else ""
    return (
        f"\n  pinned:   {path} (unchanged){where}"
        f"\n  to accept this run's entry, if the change is deliberate: `pytest{folder} --regen-verdicts{opts}"
        f"{f' --pinned-verdicts {path}' if explicit else ''}`{cli}"
        f"{copy}; then review `git diff {path}` and commit it")


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
    def check(case, null=False):
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
        d = json.loads(payload)
        res = self.config.stash[_RESULTS]
        res["null" if d["null"] else "verdicts"][_case(d["verdict"])] = d["verdict"]
        for name in ("pin_key", "profile", "data_source"):
            res.setdefault(name, d[name])

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node, error):
        raw = getattr(node, "workeroutput", {}).get(REPORT_KEY)
        if raw is not None:
            _merge_session(self.config, json.loads(raw))


def _case(d: dict) -> str:
    return f"{d['claim']}/{d['scope']}"


def _merge_session(config, extras: dict) -> None:
    res = config.stash[_RESULTS]
    for role, records in extras["models"].items():
        res["models"].setdefault(role, records)
    if extras["null_splits"] is not None and res["null_splits"] is None:
        res["null_splits"] = extras["null_splits"]
    if extras.get("profile_name"):
        res.setdefault("profile_name", extras["profile_name"])
    plan = extras.get("plan")
    if plan and plan["planned"]:
        if res["plan"] is None:
            res["plan"] = dict(plan)
        else:  # xdist: each worker saw the plan; the models trained add up, the first saw the most missing
            mine = res["plan"]
            mine["trained"] += plan["trained"]
            mine["planned"] = max(mine["planned"], plan["planned"])
            mine["not_trained"] = max(mine["not_trained"], plan["not_trained"])
            mine["cached"] = max(0, mine["planned"] - mine["trained"] - mine["not_trained"])
            mine["reason"] = mine["reason"] or plan["reason"]


def _collected(config):
    """(verdicts, null verdicts) this session reported, in catalog order (the order
    of collection, whatever order workers ran them in)."""
    from .verdicts import Verdict

    exp = declared(config)
    order = {c.id: i for i, c in enumerate(exp.claims)}
    scopes = {s: i for i, s in enumerate(exp.scopes)}
    res = config.stash[_RESULTS]

    def ordered(section):
        return [Verdict.from_dict(d) for d in sorted(
            res[section].values(), key=lambda d: (scopes.get(d["scope"], len(scopes)), order.get(d["claim"], len(order))))]

    return ordered("verdicts"), ordered("null")


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
            _merge_session(config, extras)
    if _is_worker(config):
        return  # the controller writes the JSON and prints the table
    res = config.stash.get(_RESULTS, None)
    if not res or not (res["verdicts"] or res["null"]):
        return
    from . import verdicts

    found, null = _collected(config)
    out = artifacts_dir(config)
    out.mkdir(parents=True, exist_ok=True)
    doc = {
        "pin_key": res["pin_key"],
        "profile": res["profile"],
        "data_source": res["data_source"],
        "written": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "verdicts": [v.to_dict() for v in found],
        "null_control": [v.to_dict() for v in null],
        "null_control_false_positive_rate": verdicts.false_positive_rates(null),
        "null_splits": res["null_splits"] if null else None,
        "models": res["models"],
    }
    (out / "verdicts.json").write_text(json.dumps(to_jsonable(doc), indent=2) + "\n")


def plan_line(plan: dict | None, profile: str, checked: int, checked_null: int, not_checked: int) -> str:
    """The session's one line on its plan: models planned, cached, trained here and not
    trained, and claim cases checked against pins or not."""
    models = ("no models asked for" if not plan else
              f"{plan['planned']} models: {plan['cached']} cached, {plan['trained']} trained here"
              + (f", {plan['not_trained']} not trained" if plan["not_trained"] else ""))
    def n(k, what):
        return f"{k} {what}{'s' * (k != 1)}"

    cases = f"{n(checked, 'claim case')} and {n(checked_null, 'null-control case')} checked against their pins"
    if not_checked:
        cases += f", {not_checked} not checked"
    reason = f" ({plan['reason']})" if plan and plan.get("reason") else ""
    return f"cnnclaims: profile {profile}: {models}; {cases}{reason}"


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
        tr.write_line(f"pin key {key} pins labels only (written before numbers were pinned): its numbers are "
                      f"not compared; `pytest --regen-verdicts --profile {profile_name}` pins them (review that "
                      "only numbers are added)")
    recorded = config.stash[_LOCAL]["recorded"] if _LOCAL in config.stash else None
    if recorded and not isinstance(recorded, str):
        tr.write_line(f"this run's pins differ from {_pins(config)[0]} (unchanged): this run's entry is in "
                      f"{recorded[0]}{f' ({recorded[1]})' if recorded[1] else ''}")
    text = verdict_table_text(found, null, entry.get("verdicts"), entry.get("null_control"))
    for line in text.splitlines():
        tr.write_line(line)
    if null and res["null_splits"] is not None:  # None: no worker that ran them finished
        from .calibration import format_null_splits

        tr.write_line(format_null_splits(res["null_splits"]))
    fragile = pinned.fragile(doc, profile_name)
    if fragile:
        tr.write_line(f"fragile across version families ({profile_name} profile): " + "; ".join(
            f"{case}{' (null)' if section == 'null_control' else ''}: "
            + ", ".join(f"{fam} {v}" for fam, v in fams.items()) for (section, case), fams in fragile.items()))
    tr.write_line(f"verdict JSON: {artifacts_dir(config) / 'verdicts.json'}")
    if plan_text:
        tr.write_line(plan_text)
