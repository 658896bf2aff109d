"""What a failing claim test raises and says.

The exceptions double as built-in types (AssertionError: pytest reports them as
failed assertions, and ``xfail(raises=...)`` names them), and every message is built
here from plain values, so the plugin only raises what ``pinned.judge`` decided and
these texts can be read and tested without pytest. Imports nothing from the package.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

__all__ = [
    "ClaimNotSupported",
    "PinnedVerdictChanged",
    "NullControlFalsePositive",
    "shown",
    "no_pin",
    "not_recorded",
    "changed",
    "not_supported",
    "false_positive",
    "accept_hint",
    "with_details",
]


class ClaimNotSupported(AssertionError):
    """The claim did not come out supported."""


class PinnedVerdictChanged(AssertionError):
    """The verdict differs from the pinned one (in a way strict xfail cannot see)."""


class NullControlFalsePositive(AssertionError):
    """The null control supports a directional claim: a false positive."""


def shown(x: object) -> str:
    """A pinned or obtained number as the diff table shows it (a number the pin or the
    verdict lacks: ``(absent)``)."""
    return "(absent)" if x is None else str(x)


def no_pin(case: str, key: str, label: str) -> str:
    """A case the pins lack: this run's label, to be reviewed."""
    return f"no pinned verdict for {case} under [{key}]: {label}, review it"


def not_recorded(case: str, key: str, why: str) -> str:
    """A case the pins lack, where this run's entry could not be written either."""
    return f"no pinned verdict for {case} under [{key}]; {why}"


def changed(
    case: str,
    key: str,
    label: str,
    pin: str,
    diffs: Sequence[tuple],
    null: bool,
    labels_only: bool,
    rel_tol: float,
    abs_tol: float,
) -> str:
    """The label or a pinned number moved: a table of ``diffs`` ``(field, pinned,
    obtained)``, one line each (``labels_only``: the entry pins no numbers)."""
    what = f"verdict {label}, pinned {pin}" if label != pin else f"verdict {pin} as pinned, numbers changed"
    width = max(len(f) for f, _, _ in diffs)
    table = "".join(f"\n    {f:<{width}}  {shown(old):>18} -> {shown(new)}" for f, old, new in diffs)
    note = (
        f"\n  [{key}] pins labels only (written before numbers were pinned): numbers not compared"
        if labels_only
        else ""
    )
    return (
        f"{case}{' (null control)' if null else ''}: {what} [{key}]"
        f" (numbers compared within relative {rel_tol:g} / absolute {abs_tol:g}):"
        f"\n    {'field':<{width}}  {'pinned':>18} -> obtained{table}{note}"
    )


def not_supported(label: str) -> str:
    return f"claim not supported ({label})"


def false_positive(label: str) -> str:
    return f"null control finds a direction ({label}): a false positive"


def accept_hint(
    path: Path, key: str, recorded: tuple | str, opts: str, explicit: bool, offer_cli: bool, start: Path | None = None
) -> str:
    """Where this run's entry was written and the commands that accept it.

    ``recorded``: (obtained path, note) as ``pinned.write_obtained`` returns it, or the
    reason it could not be written; ``opts``: the options that select this run's pin
    key (`` --profile smoke --seeds 2``); ``explicit``: the pins file was named with
    --pinned-verdicts (the command names it, not its folder); ``offer_cli``: the
    experiment is the one ``python -m cnnclaims`` loads; ``start``: the folder the
    command is typed in (default: the working directory)."""
    if isinstance(recorded, str):
        where, copy = f"\n  obtained: none, {recorded}", ""
    else:
        obtained, note = recorded
        where = f"\n  obtained: {obtained} (this run's entry for [{key}]{f'; {note}' if note else ''})"
        copy = f", or `cp {obtained} {path}`"
    # Pins beside a test file: the command names that folder (from the repository root, a
    # bare `pytest` runs the article's tests). The command line pins the default
    # experiment: offered only for it (another one's module is a test's neighbour).
    folder = "" if explicit else os.path.relpath(Path(path).parent, start)
    folder = "" if folder in ("", ".") else f" {folder}"
    cli = f" or `python -m cnnclaims pin{opts} --file {path}`" if offer_cli else ""
    # pytest spells the same options with the plugin's prefix (options.Option.pytest_flag).
    under_pytest = opts.replace(" --", " --cnnclaims-")
    # A new experiment's pins file does not exist yet, and its folder need not be a git
    # checkout: say so rather than "(unchanged)" and a `git diff` of nothing.
    exists = Path(path).exists()
    review = f"review `git diff {path}` and commit it" if exists else f"review {path} and commit it"
    return (
        f"\n  pinned:   {path} ({'unchanged' if exists else 'does not exist yet'}){where}"
        f"\n  to accept this run's entry, if the change is deliberate: `pytest{folder} --cnnclaims-regen-verdicts"
        f"{under_pytest}{f' --cnnclaims-pinned-verdicts {path}' if explicit else ''}`{cli}"
        f"{copy}; then {review}"
    )


def with_details(message: str, summary: str, hint: str = "", plots: Sequence[object] = ()) -> str:
    """A failure's whole text: ``message``, the accept ``hint`` (where this run's entry
    was written), the verdict's one-line ``summary`` and its diagnostic ``plots``."""
    where = f"\n  diagnostic plots: {', '.join(map(str, plots))}" if plots else ""
    return f"{message}{hint}\n  {summary}{where}"
