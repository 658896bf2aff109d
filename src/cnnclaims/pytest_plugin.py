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

Hooks and fixtures only (tests/test_architecture.py checks it). The session's state,
folders and one-time checks are ``plugin.session``; a claim case's parametrisation and
check ``plugin.cases``; the pin policy ``pinned.judge``; the failure messages
``failures``; the paths ``locations``; the gathering of results ``session_results``;
the summary's lines ``summary``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from . import session_results
from .cache import to_jsonable
from .failures import ClaimNotSupported, NullControlFalsePositive, PinnedVerdictChanged  # noqa: F401 - their old home
from .plugin.cases import check_claim, collected, parametrize_claims  # noqa: F401 - parametrize_claims: public here
from .plugin.session import (  # noqa: F401 - get_experiment, set_experiment, cache_dir, progress_printer: public here
    BESIDE,
    DEPRECATED,
    EXPERIMENT,
    LOCAL,
    REPORT_KEY,
    RESULTS,
    USAGE,
    VERDICT,
    CacheNotices,
    SessionStop,
    artifacts_dir,
    before_test,
    cache_dir,
    check_named_folders,
    check_usage,
    choose,
    declared,
    get_experiment,
    is_worker,
    option,
    pins,
    pins_path,
    preflight_or_stop,
    progress_printer,
    registered_flags,
    release_gate,
    session_error,
    set_experiment,
    stop_after,
    tell_workers,
    used,
    warn_deprecated_flags,
    where_lines,
    write_error,
)
from .summary import (  # noqa: F401 - plan_line: public here
    fragile_line,
    labels_only_line,
    plan_line,
    plumbing_line,
    profile_line,
    recorded_line,
)


def pytest_addoption(parser):
    from .options import add_to_pytest

    # The same table as the command line's (cnnclaims.options): one declaration each.
    add_to_pytest(parser.getgroup("cnnclaims", "cnnclaims: claims of a declared Keras experiment"))


@pytest.hookimpl(hookwrapper=True)  # (old-style: pytest 7.4's pluggy lacks wrapper=True)
def pytest_load_initial_conftests(early_config, parser, args):
    # After the initial conftests registered their options, before pytest parses the
    # command line: the old short spellings become --cnnclaims-NAME (in place).
    yield
    from .options import rewrite_deprecated

    early_config.stash[DEPRECATED] = rewrite_deprecated(args, taken=registered_flags(parser))


# The tiers other than unit; a test with none of them is unit (pytest -m unit).
TIERS = ("integration", "claim", "portability", "ray")


def pytest_configure(config):
    for line in (
        "unit: fast in-process tests on synthetic data (no CIFAR-10, no training of their own); every test "
        "without another tier's mark; `pytest -m unit`",
        "integration: uses the real data or trained models, trains models, or runs whole sessions in subprocesses",
        "claim: a claim of the experiment, checked against its pinned verdict",
        "cnnclaims_experiment(experiment, null): set by cnnclaims.parametrize_claims",
    ):
        config.addinivalue_line("markers", line)
    config.stash[RESULTS] = session_results.new_results()
    config.stash[LOCAL] = {"ran": False, "ran_null": False, "recorded": False}
    warn_deprecated_flags(config)
    if not is_worker(config):
        config.pluginmanager.register(_ReportCollector(config), "cnnclaims-reports")
    check_named_folders(config)
    check_usage(config)
    config.pluginmanager.register(CacheNotices(config), "cnnclaims-notices")


def pytest_collection_modifyitems(config, items):
    if USAGE not in config.stash and option(config, "--profile"):
        # Without claim tests (whose experiment checked it), check against the session's.
        try:
            declared(config).profile(option(config, "--profile"), option(config, "--seeds"))
        except (KeyError, ValueError) as exc:
            config.stash[USAGE] = f"cnnclaims: {exc}"
    if USAGE in config.stash:
        raise pytest.UsageError(config.stash[USAGE])
    both = []
    for item in items:
        tiers = [m for m in TIERS if item.get_closest_marker(m)]
        if not tiers:
            item.add_marker(pytest.mark.unit)
        elif item.get_closest_marker("unit"):
            both.append(f"{item.nodeid} ({', '.join(tiers)})")
    if both:
        # `-m unit` selects a test that is marked unit anywhere (a module's pytestmark
        # included): twelve tests marked integration to leave the unit tier still ran in
        # it, 2 minutes of its 6 on a 2-core machine, until this was an error.
        raise pytest.UsageError(
            f"cnnclaims: {len(both)} test(s) marked unit and another tier: "
            + "; ".join(both[:5])
            + (f"; and {len(both) - 5} more" if len(both) > 5 else "")
            + ". A test is unit, integration, claim, portability or ray, never two: remove the unit mark "
            "(a test without a tier mark is unit) or the other one, or move the test out of the module whose "
            "pytestmark gives it."
        )


# --- fixtures -------------------------------------------------------------------


@pytest.fixture(scope="session")
def run(request):
    """The session's ``cnnclaims.run.Run``: the experiment under the chosen profile."""
    return get_experiment(request.config)


@pytest.fixture(scope="session")
def experiment(run):
    """Deprecated: the ``run`` fixture's old name."""
    import warnings

    warnings.warn(
        "the 'experiment' fixture is deprecated: use the 'run' fixture (the same cnnclaims.run.Run)",
        DeprecationWarning,
        stacklevel=2,
    )
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

    config = metafunc.config
    mark = metafunc.definition.get_closest_marker("cnnclaims_experiment")
    if mark is not None:
        if not choose(config, mark.kwargs["experiment"], metafunc.definition.nodeid):
            metafunc.parametrize("null_case" if "null_case" in metafunc.fixturenames else "claim_case", [])
            return
        config.stash[BESIDE] = Path(metafunc.definition.path).parent
    exp = declared(config)
    try:
        profile = exp.profile(option(config, "--profile"), option(config, "--seeds"))
    except (KeyError, ValueError) as exc:
        # A usage error from here would become one collection error per test file;
        # raised from pytest_collection_modifyitems it stops the run as one.
        config.stash[USAGE] = f"cnnclaims: experiment {exp.name!r}: {exc}"
        metafunc.parametrize("null_case" if "null_case" in metafunc.fixturenames else "claim_case", [])
        return
    from .probe import ENV_PROBE

    key = pinned.pin_key(profile, exp, option(config, "--probe-index") or os.environ.get(ENV_PROBE))
    path, doc = pins(config)
    entry = pinned.entry(doc, key) or {}
    regen = option(config, "--regen-verdicts")
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
                marks.append(
                    pytest.mark.xfail(
                        strict=True,
                        raises=NullControlFalsePositive if null else ClaimNotSupported,
                        reason=f"pinned verdict for {case}: {pin} ({path.name} [{key}])",
                    )
                )
            params.append(
                pytest.param(
                    pinned.ClaimCase(claim, scope, pin, key, path, null), id=f"{claim.name}-{scope}", marks=marks
                )
            )
    metafunc.parametrize("null_case" if null else "claim_case", params)


def pytest_report_collectionfinish(config, start_path, items):
    """Once the tests are collected, and only in a session that uses cnnclaims
    (``plugin.session.used``): where its cache, artifacts, pins and data are, and which
    inferential verdicts no data could ever decide (the test's smallest attainable p
    cannot pass the corrected threshold)."""
    if USAGE in config.stash or not used(config, items):  # (a usage error is being reported)
        return None
    lines = where_lines(config)
    if not any(
        "claim_case" in getattr(i, "fixturenames", ()) or "null_case" in getattr(i, "fixturenames", ()) for i in items
    ):
        return lines
    from .verdicts import unreachable_by_design

    exp = declared(config)
    profile = exp.profile(option(config, "--profile"), option(config, "--seeds"))
    lines += [f"cnnclaims: {text}" for text in unreachable_by_design("seeds", profile.n_seeds, exp.claims)]
    if profile.sizes:
        lines += [f"cnnclaims: {text}" for text in unreachable_by_design("sizes", profile.size_seeds, exp.claims)]
    return lines


@pytest.fixture(scope="session")
def _cnnclaims_preflight(request):
    """Before the first claim test, once: what every claim needs (the data, a cache
    that can store the models); a cause every test would meet stops the session in one
    line (``plugin.session.preflight_or_stop``)."""
    preflight_or_stop(request.config)


@pytest.fixture
def claim_checker(request, _cnnclaims_preflight):
    """``check(case)``: assert a ``claim_case`` or ``null_case`` against its pin."""

    def check(case, null=None):
        __tracebackhide__ = True
        check_claim(request, case, null)

    return check


# --- verdicts on reports; session end: regen, JSON, table ------------------------------


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
    # On an xdist worker, before a cnnclaims test: a stop another worker met ends this
    # one too, silently; the first claim test waits for the preflight lock (plugin.session).
    return before_test(item)


def pytest_runtest_teardown(item, nextitem):
    release_gate(item.config)  # (a first claim test whose setup failed before the preflight)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    from .errors import TrainingBudgetError

    if call.excinfo is not None and isinstance(call.excinfo.value, TrainingBudgetError):
        # Not a failure of the claim: it was not checked, which the summary counts and says.
        rep = outcome.get_result()
        rep.outcome, rep.longrepr = (
            "skipped",
            (str(item.path), item.location[1] or 0, f"Skipped: cnnclaims: {call.excinfo.value}"),
        )
        return
    # A cause every later test would meet alike, each retrying the load, the decoding or
    # the training first (the data missing, refused or damaged, a cache that cannot be
    # written): one line, the session stops, and other xdist workers are told.
    msg = session_error(item.config, call.excinfo.value, item) if call.excinfo is not None else None
    if msg is not None:
        if outcome.get_result().failed:  # (an xfail's report keeps its own form)
            outcome.get_result().longrepr = msg
        item.session.shouldstop = msg
        tell_workers(item.config, msg)
    elif call.excinfo is not None and stop_after(item.config):
        # The claim tests' preflight met an error it does not know: this report shows
        # its traceback, once; the session stops.
        item.session.shouldstop = stop_after(item.config)
    if call.when == "call" and VERDICT in item.stash:
        # A plain attribute survives xdist's report serialisation (pytest copies the
        # report's __dict__); JSON text keeps it to what execnet can carry.
        outcome.get_result().__dict__[REPORT_KEY] = json.dumps(item.stash[VERDICT])


class _ReportCollector:
    """In the reporting process (not on xdist workers): gathers the verdicts off the
    test reports and, from xdist workers, their session-wide results."""

    def __init__(self, config):
        self.config = config

    def pytest_runtest_logreport(self, report):
        payload = report.__dict__.get(REPORT_KEY)
        if report.skipped and "cnnclaims: not training:" in str(report.longrepr):
            self.config.stash[RESULTS]["not_checked"] += 1
        if payload is None:
            return
        session_results.add_verdict(self.config.stash[RESULTS], json.loads(payload))

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node, error):
        raw = getattr(node, "workeroutput", {}).get(REPORT_KEY)
        if raw is not None:
            session_results.merge_session(self.config.stash[RESULTS], json.loads(raw))


def pytest_sessionfinish(session, exitstatus):
    config = session.config
    local = config.stash.get(LOCAL, None)
    extras = None
    if local and local["ran"]:
        # This process ran claims and holds the experiment: pins, models, null splits.
        from . import pinned

        exp = get_experiment(config)
        if option(config, "--regen-verdicts"):
            path, _ = pins(config)
            pinned.write_entry(path, exp.pin_key, exp.verdicts, exp.null_verdicts, exp.profile, exp.data.source)
            # An earlier failing run's .obtained is now accepted or superseded: stale.
            pinned.obtained_path(path).unlink(missing_ok=True)
        extras = {"models": exp.records(), "null_splits": exp.null_splits if local["ran_null"] else None}
    if EXPERIMENT in config.stash:  # the plan's models, cached, trained or not (a time budget)
        extras = extras or {"models": {}, "null_splits": None}
        extras["plan"] = config.stash[EXPERIMENT].plan_summary()
        extras["profile_name"] = config.stash[EXPERIMENT].profile.name
    if extras is not None:
        if is_worker(config):
            config.workeroutput[REPORT_KEY] = json.dumps(to_jsonable(extras, keep_nan=True))
        else:
            session_results.merge_session(config.stash[RESULTS], extras)
    if is_worker(config):
        return  # the controller writes the JSON and prints the table
    res = config.stash.get(RESULTS, None)
    if not res or not (res["verdicts"] or res["null"]):
        return
    found, null = collected(config)
    out = artifacts_dir(config)
    out.mkdir(parents=True, exist_ok=True)
    doc = session_results.verdicts_document(res, found, null, time.strftime("%Y-%m-%dT%H:%M:%S"))
    (out / "verdicts.json").write_text(json.dumps(to_jsonable(doc), indent=2) + "\n")


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    res = config.stash.get(RESULTS, None)
    if is_worker(config) or not res:
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
    from .formatting import terminal_width, wrapped
    from .report import verdict_table_text

    width = terminal_width()
    found, null = collected(config)
    key, profile_name = res["pin_key"], res["profile"]["name"]
    _, doc = pins(config)
    entry = pinned.entry(doc, key) or {}
    tr = terminalreporter
    tr.section("cnnclaims verdicts")
    for line in wrapped(profile_line(profile_name, res["data_source"], key, pins_path(config)), width):
        tr.write_line(line)
    plumbing = plumbing_line(profile_name, res.get("models"))
    for line in wrapped(plumbing, width) if plumbing else []:
        tr.write_line(line)
    if entry and not pinned.has_numbers(entry):
        for line in wrapped(labels_only_line(key, profile_name), width):
            tr.write_line(line)
    # From the test reports, as the verdicts: under xdist the workers wrote it.
    recorded = res.get("recorded")
    if recorded and not isinstance(recorded, str):  # (a text: each failure said it could not be written)
        for line in recorded_line(pins_path(config), tuple(recorded)).splitlines():
            tr.write_line(line)
    full = option(config, "--table") == "full"
    text = verdict_table_text(found, null, entry.get("verdicts"), entry.get("null_control"), full=full, width=width)
    for line in text.splitlines():
        tr.write_line(line)
    if null and res["null_splits"] is not None:  # None: no worker that ran them finished
        from .calibration import format_null_splits

        for line in wrapped(format_null_splits(res["null_splits"]), width):
            tr.write_line(line)
    fragile = pinned.fragile(doc, profile_name)
    if fragile:
        tr.write_line(fragile_line(fragile, profile_name, width=width))
    tr.write_line(f"verdict JSON: {artifacts_dir(config) / 'verdicts.json'}")
    for line in wrapped(plan_text, width) if plan_text else []:
        tr.write_line(line)
