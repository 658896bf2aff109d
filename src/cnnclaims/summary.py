"""The lines of a session's verdict summary beside the table (``report.verdict_table_text``):
the plan, a labels-only pin, this run's recorded entry, claims fragile across version
families. Plain values in, text out.
"""

from __future__ import annotations

from pathlib import Path

from .formatting import WIDTH, wrapped

__all__ = ["plan_line", "profile_line", "labels_only_line", "recorded_line", "fragile_line"]


def plan_line(plan: dict | None, profile: str, checked: int, checked_null: int, not_checked: int) -> str:
    """The session's one line on its plan: models planned, cached, trained here and not
    trained, and claim cases checked against pins or not."""
    models = (
        "no models asked for"
        if not plan
        else f"{plan['planned']} models: {plan['cached']} cached, {plan['trained']} trained here"
        + (f", {plan['not_trained']} not trained" if plan["not_trained"] else "")
    )

    def n(k, what):
        return f"{k} {what}{'s' * (k != 1)}"

    cases = f"{n(checked, 'claim case')} and {n(checked_null, 'null-control case')} checked against their pins"
    if not_checked:
        cases += f", {not_checked} not checked"
    reason = f" ({plan['reason']})" if plan and plan.get("reason") else ""
    return f"cnnclaims: profile {profile}: {models}; {cases}{reason}"


def labels_only_line(key: str, profile: str) -> str:
    """The pin key's entry has labels and no numbers (written before numbers were pinned)."""
    return (
        f"pin key {key} pins labels only (written before numbers were pinned): its numbers are "
        f"not compared; `pytest --cnnclaims-regen-verdicts --cnnclaims-profile {profile}` pins them (review that "
        "only numbers are added)"
    )


def profile_line(profile: str, data_source: str, key: str, pins) -> str:
    """The line above the verdict table: the profile, the data and where its pins are
    (pytest's summary and ``python -m cnnclaims verdicts`` alike)."""
    return f"profile {profile}, data: {data_source}, pin key {key} in {pins}"


def recorded_line(pins, recorded: tuple) -> str:
    """This run's entry, written to ``recorded`` = (obtained path, note) for review: two
    lines, each path beside its label (one line was about 150 columns)."""
    obtained, note = recorded
    state = "unchanged" if Path(pins).exists() else "does not exist yet"
    return f"this run's pins differ from {pins} ({state})\n  this run's entry is in {obtained}" + (
        f" ({note})" if note else ""
    )


def fragile_line(fragile: dict, profile: str, shown: int = 4, width: int = WIDTH) -> str:
    """Cases pinned differently in several version families (``pinned.fragile``): how
    many, the first ``shown`` with each family's label, wrapped at ``width`` columns
    (it was one line of thousands of characters); the report has them all."""
    cases = [
        f"{case}{' (null)' if section == 'null_control' else ''}: " + ", ".join(f"{fam} {v}" for fam, v in fams.items())
        for (section, case), fams in fragile.items()
    ]
    more = f"; and {len(cases) - shown} more (the report's 'Fragile across versions' lists them all)"
    text = (
        f"fragile across version families ({profile} profile): {len(cases)} case(s) pinned differently; "
        + "; ".join(cases[:shown])
        + (more if len(cases) > shown else "")
    )
    return "\n".join(wrapped(text, width))  # at spaces only: family keys stay whole


# Profiles that check the harness's plumbing, not an experiment's claims.
PLUMBING_PROFILES = ("smoke",)


def plumbing_line(profile_name: str, models: dict | None) -> str | None:
    """A plain warning for a plumbing profile (``smoke``: a few images, an epoch or
    two), with its models' test accuracy where known; None for any other profile."""
    if profile_name not in PLUMBING_PROFILES:
        return None
    accs = [
        r["test_accuracy"]
        for group in (models or {}).values()
        for r in (group if isinstance(group, list) else [x for g in group.values() for x in g])
        if isinstance(r, dict) and isinstance(r.get("test_accuracy"), (int, float))
    ]
    seen = f" (test accuracy {min(accs):.2f}-{max(accs):.2f} here)" if accs else ""
    return (
        f"cnnclaims: the {profile_name} profile checks the plumbing: its models train briefly on few images{seen}, "
        "so these verdicts test the harness, not the experiment's claims; run its real profile for those"
    )
