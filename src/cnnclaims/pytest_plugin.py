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

ENV_ARTIFACTS = "CNNCLAIMS_ARTIFACTS"
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
    g = parser.getgroup("cnnclaims", "cnnclaims: the article's experiment")
    g.addoption("--profile", default=os.environ.get("CNNCLAIMS_PROFILE", "article"),
                help="experiment profile: article (the real experiment, default) or smoke (fast)")
    g.addoption("--data", default=None, help="CIFAR-10 source: cifar-10-batches-py or image-folder tree "
                "(default: $CNNCLAIMS_DATA, else Keras's downloader)")
    g.addoption("--cache-dir", default=None, help="cache for decoded data, trained models and statistics "
                "(default: $CNNCLAIMS_CACHE, else build/cache under pytest's rootdir)")
    g.addoption("--retrain", action="store_true", help="retrain every model instead of loading it from the cache")
    g.addoption("--workers", type=int, default=None, help="models trained at once, one TensorFlow thread each "
                "(default: $CNNCLAIMS_WORKERS, else one per core, at most 8 and one per 4 GiB of memory)")
    g.addoption("--seeds", type=int, default=None, help="training seeds per condition (default: the profile's)")
    g.addoption("--probe-index", default=None, help="test-set index of the probe frog (default: the first test frog)")
    g.addoption("--artifacts", default=None, help="folder for verdict JSON and plots "
                "(default: $CNNCLAIMS_ARTIFACTS, else build/artifacts under pytest's rootdir)")
    g.addoption("--plots", choices=("failed", "always", "never"), default="failed",
                help="write diagnostic plots for failing claims (default), for every claim, or never")
    g.addoption("--regen-verdicts", action="store_true",
                help="rewrite the pinned verdicts for this version family and profile from this run")
    g.addoption("--pinned-verdicts", default=None, help="pinned verdicts file "
                "(default: tests/pinned_verdicts.json under pytest's rootdir)")


def pytest_configure(config):
    for line in (
        "unit: fast tests on synthetic data (no CIFAR-10, no trained models); `pytest -m unit`",
        "integration: uses the real data and the configured profile's trained models",
        "claim: a claim of the article, checked against its pinned verdict",
    ):
        config.addinivalue_line("markers", line)
    config.stash[_RESULTS] = {"verdicts": {}, "null": {}, "models": {}, "null_splits": None}
    config.stash[_LOCAL] = {"ran": False, "ran_null": False, "recorded": False}
    if not _is_worker(config):
        config.pluginmanager.register(_ReportCollector(config), "cnnclaims-reports")
    _check_usage(config)


def _check_usage(config) -> None:
    """Bad option or environment values are one usage error at start, not a failure
    of every test (whether the probe index names a frog needs the data: checked later)."""
    from .compat import positive_int_env
    from .errors import CnnClaimsError
    from .profiles import get_profile

    try:
        get_profile(config.getoption("--profile"), config.getoption("--seeds"))
        workers = config.getoption("--workers")
        if workers is not None and workers < 1:
            raise ValueError(f"--workers must be at least 1, got {workers}")
        positive_int_env("CNNCLAIMS_WORKERS", "training processes")
        raw = config.getoption("--probe-index") or os.environ.get("CNNCLAIMS_PROBE")
        if raw not in (None, ""):
            try:
                index = int(raw)
            except ValueError:
                raise ValueError(f"--probe-index / $CNNCLAIMS_PROBE {raw!r} is not an integer; "
                                 "give the test-set index of a frog") from None
            if index < 0:
                raise ValueError(f"--probe-index / $CNNCLAIMS_PROBE {index} is negative; "
                                 "give the test-set index of a frog")
    except (ValueError, CnnClaimsError) as exc:
        raise pytest.UsageError(f"cnnclaims: {exc}") from None


def _is_worker(config) -> bool:
    """A pytest-xdist worker: it runs tests; its controller reports them."""
    return hasattr(config, "workerinput")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if not any(item.get_closest_marker(m) for m in ("integration", "claim")):
            item.add_marker(pytest.mark.unit)


def _path(config, option: str, env: str | None, default: Path) -> Path:
    """The option, else the environment variable (both as given, relative to the
    working directory), else ``default`` under pytest's rootdir: started from tests/
    or any other folder, a run finds the same cache, artifacts and pins."""
    raw = config.getoption(option) or (os.environ.get(env) if env else None)
    return Path(raw).absolute() if raw else Path(config.rootpath) / default


def cache_dir(config) -> Path:
    return _path(config, "--cache-dir", ENV_CACHE, Path("build") / "cache")


def artifacts_dir(config) -> Path:
    return _path(config, "--artifacts", ENV_ARTIFACTS, Path("build") / "artifacts")


def pins_path(config) -> Path:
    # Not pinned.DEFAULT_PATH: beside the package, that is site-packages when installed.
    return _path(config, "--pinned-verdicts", None, Path("tests") / "pinned_verdicts.json")


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
            f"pinned verdicts {pins_path(config)}",
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


def get_experiment(config):
    if _EXPERIMENT not in config.stash:
        from .experiment import Experiment

        config.stash[_EXPERIMENT] = Experiment(
            profile_name=config.getoption("--profile"),
            data_path=config.getoption("--data"),
            cache_dir=cache_dir(config),
            n_seeds=config.getoption("--seeds"),
            probe=config.getoption("--probe-index"),
            retrain=config.getoption("--retrain"),
            progress=progress_printer(config),
            workers=config.getoption("--workers"),
        )
    return config.stash[_EXPERIMENT]


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
def probe_frog(experiment):
    """(index in the test set, uint8 image) of the article's probe frog."""
    return experiment.probe_index, experiment.probe_image


@pytest.fixture(scope="session")
def probe_frogs(experiment):
    """(test-set indices, uint8 images) of all test-set frogs."""
    return experiment.frog_indices, experiment.frogs


@pytest.fixture(scope="session")
def benchmark_models(experiment):
    return experiment.models("benchmark")


@pytest.fixture(scope="session")
def dummy_models(experiment):
    return experiment.models("dummy")


@pytest.fixture(scope="session")
def activations(experiment):
    """``{role: {layer: array}}`` for the probe frog through each role's first model."""
    return {role: experiment.probe_activations(role) for role in ("benchmark", "dummy")}


# --- claim parametrisation --------------------------------------------------------

def pytest_generate_tests(metafunc):
    if "claim_case" not in metafunc.fixturenames and "null_case" not in metafunc.fixturenames:
        return
    from . import pinned
    from .claims import SCOPES, claims_for
    from .profiles import get_profile
    from .verdicts import FALSE_POSITIVES

    config = metafunc.config
    profile = get_profile(config.getoption("--profile"), config.getoption("--seeds"))
    key = pinned.pin_key(profile)
    path, doc = _pins(config)
    entry = pinned.entry(doc, key) or {}
    regen = config.getoption("--regen-verdicts")
    null = "null_case" in metafunc.fixturenames
    section = "null_control" if null else "verdicts"
    scopes = ("frogs", "seeds") if null else SCOPES
    params = []
    for scope in scopes:
        for claim in claims_for(scope, directional_only=null):
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
    from .profiles import get_profile
    from .verdicts import unreachable_by_design

    profile = get_profile(config.getoption("--profile"), config.getoption("--seeds"))
    lines = [f"cnnclaims: {text}" for text in unreachable_by_design("seeds", profile.n_seeds)]
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
                                    "pin_key": pinned.pin_key(exp.profile), "profile": exp.profile.as_dict(),
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
        if not local["recorded"]:  # one write per session (per xdist worker), not per case
            try:
                pinned.write_entry(path, key, exp.verdicts, exp.null_verdicts, exp.profile, exp.data.source)
                local["recorded"] = True
            except OSError as exc:  # read-only folder, full disk: say it once, in one line per case
                local["recorded"] = f"could not record pins in {path} ({exc.strerror or exc}): " \
                    "make its folder writable or pass --pinned-verdicts PATH"
        if isinstance(local["recorded"], str):
            pytest.fail(f"no pinned verdict for {claim.id}/{scope} under [{key}]; {local['recorded']}", pytrace=False)
        pytest.fail(
            f"no pinned verdict for {claim.id}/{scope} under [{key}] in {path}; recorded this run's "
            f"verdicts there: review and commit them.\n  {v.summary()}{where}", pytrace=False)
    pin_ok = pin not in FALSE_POSITIVES if null else pin == "supported"
    if v.verdict != pin and (pin_ok or not ok):
        # Changes strict xfail cannot see (e.g. refuted -> inconclusive) or a passing pin
        # that now fails. xfail(raises=...) lets this exception through as a real failure;
        # a change to passing under an expected-failure pin is strict xfail's XPASS.
        raise PinnedVerdictChanged(
            f"{claim.id}/{scope}{' (null control)' if null else ''}: verdict {v.verdict}, pinned {pin} "
            f"[{key}] in {path}. If the change is deliberate, run with --regen-verdicts and review the diff."
            f"\n  {v.summary()}{where}")
    if not ok:
        exc = NullControlFalsePositive if null else ClaimNotSupported
        what = (f"null control finds a direction ({v.verdict}): a false positive" if null
                else f"claim not supported ({v.verdict})")
        raise exc(f"{what}\n  {v.summary()}{where}")


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


def _collected(config):
    """(verdicts, null verdicts) this session reported, in catalog order (the order
    of collection, whatever order workers ran them in)."""
    from .claims import CATALOG, SCOPES
    from .verdicts import Verdict

    order = {c.id: i for i, c in enumerate(CATALOG)}
    res = config.stash[_RESULTS]

    def ordered(section):
        return [Verdict.from_dict(d) for d in sorted(
            res[section].values(), key=lambda d: (SCOPES.index(d["scope"]), order.get(d["claim"], len(order))))]

    return ordered("verdicts"), ordered("null")


def pytest_sessionfinish(session, exitstatus):
    config = session.config
    local = config.stash.get(_LOCAL, None)
    if local and local["ran"]:
        # This process ran claims and holds the experiment: pins, models, null splits.
        from . import pinned

        exp = get_experiment(config)
        if config.getoption("--regen-verdicts"):
            path, _ = _pins(config)
            pinned.write_entry(path, pinned.pin_key(exp.profile), exp.verdicts, exp.null_verdicts, exp.profile,
                               exp.data.source)
        extras = {"models": exp.records(), "null_splits": exp.null_splits if local["ran_null"] else None}
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


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    res = config.stash.get(_RESULTS, None)
    if _is_worker(config) or not res or not (res["verdicts"] or res["null"]):
        return
    from . import pinned
    from .report import verdict_table_text

    found, null = _collected(config)
    key, profile_name = res["pin_key"], res["profile"]["name"]
    _, doc = _pins(config)
    entry = pinned.entry(doc, key) or {}
    tr = terminalreporter
    tr.section("cnnclaims verdicts")
    tr.write_line(f"profile {profile_name}, data: {res['data_source']}, pin key {key}")
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
