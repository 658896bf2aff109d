"""What the reporting process gathers from a pytest session: the verdicts riding on
the claim tests' reports, and what belongs to the session rather than to one test
(model records, null splits, the plan) from each process that ran tests (pytest-xdist's
workers send it through ``workeroutput``); and the ``verdicts.json`` document made
from them. Plain dictionaries in, plain dictionaries out: the plugin's hooks only
carry them.
"""

from __future__ import annotations

__all__ = ["new_results", "add_verdict", "merge_session", "case_of", "collected", "verdicts_document"]


def new_results() -> dict:
    """An empty collection: ``verdicts`` and ``null`` (case -> verdict dict), the
    session's ``models``, ``null_splits`` and ``plan``, the count of cases
    ``not_checked`` (a time budget skipped them), and ``recorded``: where this run's
    entry was written when its pins differ (``[obtained path, note]``, or the text
    saying it could not be written; None while no case recorded it)."""
    return {
        "verdicts": {},
        "null": {},
        "models": {},
        "null_splits": None,
        "plan": None,
        "not_checked": 0,
        "recorded": None,
    }


def case_of(d: dict) -> str:
    """``<claim>/<scope>`` of a verdict dict."""
    return f"{d['claim']}/{d['scope']}"


def add_verdict(res: dict, payload: dict) -> None:
    """One claim test's payload (its verdict, whether a null control, the pin key,
    profile and data source of the run, and ``recorded`` where the case wrote this
    run's entry to ``<pins>.obtained``) into ``res``; the first ``recorded`` wins (every
    process writes the same entry to the same file)."""
    res["null" if payload["null"] else "verdicts"][case_of(payload["verdict"])] = payload["verdict"]
    for name in ("pin_key", "profile", "data_source"):
        res.setdefault(name, payload[name])
    if payload.get("recorded") and res.get("recorded") is None:
        res["recorded"] = payload["recorded"]


def merge_session(res: dict, extras: dict) -> None:
    """One process's session results (``models``, ``null_splits``, ``plan``,
    ``profile_name``) into ``res``: the first of each wins, except the plan's counts,
    which xdist's workers each saw in part."""
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


def collected(res: dict, experiment) -> tuple[list, list]:
    """(verdicts, null verdicts) of ``res`` as ``verdicts.Verdict``, in the order of
    ``experiment``'s scopes and claims (the order of collection, whatever order
    workers ran them in)."""
    from .verdicts import Verdict

    order = {c.id: i for i, c in enumerate(experiment.claims)}
    scopes = {s: i for i, s in enumerate(experiment.scopes)}

    def ordered(section):
        return [
            Verdict.from_dict(d)
            for d in sorted(
                res[section].values(),
                key=lambda d: (scopes.get(d["scope"], len(scopes)), order.get(d["claim"], len(order))),
            )
        ]

    return ordered("verdicts"), ordered("null")


def verdicts_document(res: dict, found: list, null: list, written: str) -> dict:
    """The ``verdicts.json`` document of a session (``written``: its time stamp)."""
    from .verdicts import false_positive_rates

    return {
        "pin_key": res["pin_key"],
        "profile": res["profile"],
        "data_source": res["data_source"],
        "written": written,
        "verdicts": [v.to_dict() for v in found],
        "null_control": [v.to_dict() for v in null],
        "null_control_false_positive_rate": false_positive_rates(null),
        "null_splits": res["null_splits"] if null else None,
        "models": res["models"],
    }
