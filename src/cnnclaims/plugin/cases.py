"""The claim cases of a pytest session: the ``parametrize_claims`` mark, the check of
one case against its pin (``pinned.judge`` decides; this raises what it says), the
``.obtained`` file and the verdicts collected at the session's end. Pytest plumbing
for ``cnnclaims.pytest_plugin``; the science is in ``verdicts`` and ``pinned``."""

from __future__ import annotations

import pytest

from .. import session_results
from ..cache import to_jsonable
from .session import LOCAL, RESULTS, VERDICT, artifacts_dir, declared, get_experiment, option, pins_cached


def parametrize_claims(experiment, null: bool = False):
    """A mark: the test function runs once per (claim, scope) of ``experiment``
    (``null=True``: of its null control), with a ``claim_case`` (``null_case``)
    argument, a ``pinned.ClaimCase``, to hand to the ``claim_checker`` fixture. Ids read
    ``<id>-<slug>-<scope>``; verdicts pinned as not supported are strict xfails.
    The pins file defaults to ``experiment.pins_name`` beside the test file.
    One experiment per pytest session."""
    from ..declaration import Experiment

    if not isinstance(experiment, Experiment):
        raise TypeError(f"parametrize_claims: expected a cnnclaims.Experiment, got {type(experiment).__name__}")
    return pytest.mark.cnnclaims_experiment(experiment=experiment, null=null)


def check_claim(request, case, null: bool | None = None):
    """Assert one claim case (a ``pinned.ClaimCase``) against its pinned verdict, as
    ``pinned.judge`` decides; on failure, plots named in the message. ``null``: for
    callers that still say it (the case knows whether it is a null control)."""
    __tracebackhide__ = True
    from .. import failures, pinned

    null = pinned.null_of(case, null)
    claim, scope, pin, key, path = case[:5]
    config = request.config
    exp = get_experiment(config)
    v = exp.verdict(claim.id, scope, null=null)
    local = config.stash[LOCAL]
    local["ran"] = True
    local["ran_null"] |= null
    # For this test's report (pytest_runtest_makereport), whichever process reports it.
    request.node.stash[VERDICT] = {
        "verdict": to_jsonable(v.to_dict(), keep_nan=True),
        "null": null,
        "pin_key": exp.pin_key,
        "profile": exp.profile.as_dict(),
        "data_source": exp.data.source,
    }
    if option(config, "--regen-verdicts"):
        return
    numbers = (
        None
        if pin is None
        else pinned.case_numbers(
            pinned.entry(pins_cached(config), key), "null_control" if null else "verdicts", f"{claim.id}/{scope}"
        )
    )
    outcome = pinned.judge(pin, numbers, v, null, key)
    plots_mode = option(config, "--plots")
    plots = []
    if plots_mode == "always" or (plots_mode == "failed" and outcome.flagged):
        from ..diagnostics import cached_claim_plots

        plots = cached_claim_plots(exp, v, artifacts_dir(config) / "plots")
    # This run's entry goes to <pins>.obtained whichever way the case is reported (a
    # failure here, or strict xfail's XPASS for a PASSED outcome with diffs).
    if outcome.records:
        obtained = write_obtained(config, exp, path, key)
        # Where it went rides on this test's report too, for the summary's line: under
        # xdist the reporting process (the controller) ran no test and wrote nothing.
        recorded = local["recorded"]
        request.node.stash[VERDICT]["recorded"] = (
            recorded if isinstance(recorded, str) else [str(recorded[0]), recorded[1]]
        )
        if obtained is None and outcome.kind == pinned.NO_PIN:
            pytest.fail(failures.not_recorded(f"{claim.id}/{scope}", key, local["recorded"]), pytrace=False)
    if not outcome.failed:
        return
    hint = accept_hint_for(config, path, key) if outcome.records else ""
    text = failures.with_details(outcome.message, v.summary(), hint, plots)
    if outcome.kind == pinned.NO_PIN:
        pytest.fail(text, pytrace=False)
    if outcome.exception is not None:
        raise outcome.exception(text)


def write_obtained(config, exp, path, key):
    """Write ``<pins>.obtained`` once per session (per xdist worker), never the pins
    file itself; its path, or None where it could not be written (said in
    ``local["recorded"]``)."""
    from .. import pinned

    local = config.stash[LOCAL]
    if not local["recorded"]:
        try:
            local["recorded"] = pinned.write_obtained(
                path,
                key,
                exp.verdicts,
                exp.null_verdicts,
                exp.profile,
                exp.data.source,
                fallback_dir=artifacts_dir(config),
            )
        except OSError as exc:  # read-only folders, full disk: say it once, in one line per case
            local["recorded"] = (
                f"could not write this run's pins beside {path} nor in "
                f"{artifacts_dir(config)} ({exc.strerror or exc}): make a folder writable "
                "or pass --pinned-verdicts PATH"
            )
    return None if isinstance(local["recorded"], str) else local["recorded"][0]


def accept_hint_for(config, path, key) -> str:
    """Where this run's entry was written and the commands that accept it
    (``failures.accept_hint``, from this session's options)."""
    from ..failures import accept_hint

    opts = f" --profile {get_experiment(config).profile.name}"  # the option may be unset: the default's name
    # The options that choose the pin key or the models (a command that dropped the cache
    # folder would retrain the plan into the default one).
    for flag in ("--experiment", "--seeds", "--probe-index", "--data", "--cache-dir"):
        if option(config, flag):
            opts += f" {flag} {option(config, flag)}"
    return accept_hint(
        path,
        key,
        config.stash[LOCAL]["recorded"],
        opts,
        explicit=bool(option(config, "--pinned-verdicts")),
        offer_cli=is_default_experiment(config),
    )


def is_default_experiment(config) -> bool:
    """Whether this run's experiment is the one the command line loads (--experiment,
    $CNNCLAIMS_EXPERIMENT or the article)."""
    from ..declaration import load_experiment

    try:
        return load_experiment(option(config, "--experiment") or None) is get_experiment(config).experiment
    except Exception:  # noqa: BLE001 - an experiment the command line cannot load: not offered
        return False


def collected(config):
    """(verdicts, null verdicts) this session reported, in catalog order."""
    return session_results.collected(config.stash[RESULTS], declared(config))
