"""Pinned verdicts: the reviewed verdicts that CI regresses the claims against.

The file (``tests/pinned_verdicts.json``) holds one entry per *pin key*
``<version family>/<profile>[/seeds<N>]``, e.g. ``tf2.21-keras3.15/article``, because
numerics, and so verdicts, may differ across TensorFlow/Keras versions. Each entry
records the versions and the data source it was obtained on, the verdict of every
(claim, scope), and the null control's verdicts; beside the labels, under
``numbers``, each case's statistic, two-sided p, adjusted p (p_adjusted), effect and 95% CI
(``NUMBER_FIELDS``, to ``SIGNIFICANT_DIGITS``, one line per case). An entry written
before numbers were pinned (labels only) still loads; its numbers are not compared.

Semantics (as pytest-regressions): a run never rewrites the pins from inside a test.
A missing entry or case, a changed label or a number beyond the tolerance
(``REL_TOL``/``ABS_TOL``) fails the claim test, and this run's entry is written to
``<pins>.obtained`` (the whole file, this key's entry replaced) for review; only
``--regen-verdicts`` (or ``python -m cnnclaims pin``) rewrites the whole entry for the
current key in the pins file itself.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, cast

from . import failures
from .cache import atomic_path, is_json_number, to_jsonable
from .compat import version_family, versions
from .errors import CnnClaimsError
from .verdicts import FALSE_POSITIVES, INCONCLUSIVE, SUPPORTED, VERDICTS

__all__ = [
    "case_diff",
    "case_numbers",
    "CHANGED",
    "ClaimCase",
    "dumps",
    "entry",
    "expects_failure",
    "FALSE_POSITIVE",
    "fragile",
    "has_numbers",
    "INFERENTIAL",
    "judge",
    "load",
    "make_entry",
    "NO_PIN",
    "NOT_SUPPORTED",
    "null_of",
    "NUMBER_FIELDS",
    "numbers_of",
    "obtained_path",
    "OBTAINED_SUFFIX",
    "Outcome",
    "OutcomeKind",
    "PASSED",
    "passes",
    "path_for",
    "pin_key",
    "same_number",
    "SIGNIFICANT_DIGITS",
    "VALID",
    "write_entry",
    "write_obtained",
]

if TYPE_CHECKING:
    from .declaration import Claim, Experiment, Profile
    from .verdicts import Verdict

VALID = VERDICTS
INFERENTIAL = tuple(v for v in VERDICTS if v != INCONCLUSIVE)  # frogs, seeds

# The numbers pinned beside each label (Verdict field names). A number the verdict
# lacks (NaN: the probe scope has no p or CI) is left out of the pin.
NUMBER_FIELDS = ("statistic", "p_two_sided", "p_adjusted", "effect", "ci_low", "ci_high")
SIGNIFICANT_DIGITS = 10
# Within a version family training and statistics are bit-for-bit deterministic, so a
# pinned number comes back to every stored digit: the tolerance only absorbs the
# rounding to SIGNIFICANT_DIGITS (5e-10 relative) and last-bit float noise, and lies far
# below any change that matters (verdicts read p to two or three digits).
REL_TOL, ABS_TOL = 1e-6, 1e-9
OBTAINED_SUFFIX = ".obtained"


def pin_key(profile: Profile, experiment: Experiment | None = None, probe: int | str | None = None) -> str:
    """``<version family>/<profile>[/monitor-<tag>][/seeds<N>][/probe<I>]``: the monitor
    suffix when the experiment's early stopping is not the article's protocol
    (``EarlyStopping.tag``, e.g. ``monitor-test-half``: other models, other evaluated
    images, so other verdicts, never compared with or written over the default's), the
    seeds suffix when N differs from the experiment's profile, the probe suffix when the
    probe image is another than the declared one (``--probe-index`` / $CNNCLAIMS_PROBE):
    its probe verdicts are another image's and must not overwrite the reviewed ones
    (default experiment: ``declaration.DEFAULT_EXPERIMENT``)."""
    from .declaration import load_experiment

    exp = experiment or load_experiment()
    key = f"{version_family()}/{profile.name}"
    if not exp.early_stopping.is_default:
        key += f"/monitor-{exp.early_stopping.tag}"
    declared = exp.profiles.get(profile.name)
    if declared is not None and profile.n_seeds != declared.n_seeds:
        key += f"/seeds{profile.n_seeds}"
    if probe not in (None, "") and str(probe).strip() != str(exp.probe.index):
        key += f"/probe{int(probe)}"
    return key


def path_for(experiment: Experiment) -> Path:
    """Deprecated: ``locations.pins_path_for(experiment)``, the one resolver the plugin,
    the report and the command line share."""
    import warnings

    from .locations import pins_path_for

    warnings.warn(
        "cnnclaims.pinned.path_for is deprecated; use cnnclaims.locations.pins_path_for",
        DeprecationWarning,
        stacklevel=2,
    )
    return pins_path_for(experiment)


def load(path: Path) -> dict[str, Any]:
    """The pins file at ``path`` (``locations`` says where it is), checked; a missing
    file is an empty one. Raises CnnClaimsError naming the file and the fix."""
    path = Path(path)
    if not path.exists():
        return {"entries": {}}
    try:
        doc = json.loads(path.read_text())
    except OSError as exc:
        raise CnnClaimsError(
            f"pinned verdicts file {path} cannot be read ({exc.strerror or exc}); "
            "pass --pinned-verdicts with a readable JSON file"
        ) from exc
    except ValueError as exc:
        raise CnnClaimsError(
            f"pinned verdicts file {path} is not valid JSON ({exc}); fix it or restore it from git"
        ) from exc
    shape = (
        'expected {"entries": {"<version family>/<profile>": {"verdicts": {"C1/frogs": "supported", ...}, '
        '"null_control": {...}}}}; fix it or restore it from git'
    )
    if not isinstance(doc, dict) or not isinstance(doc.get("entries", {}), dict):
        raise CnnClaimsError(f"pinned verdicts file {path} has the wrong shape: {shape}")
    for key, entry in doc.get("entries", {}).items():
        if not isinstance(entry, dict) or not all(
            isinstance(entry.get(sec, {}), dict) for sec in ("verdicts", "null_control")
        ):
            raise CnnClaimsError(f"pinned verdicts file {path}: entry {key!r} has the wrong shape: {shape}")
        for section in ("verdicts", "null_control"):
            for case, verdict in entry.get(section, {}).items():
                scope = case.split("/")[-1]
                valid = VALID if scope == "probe" else INFERENTIAL
                if verdict not in valid:
                    raise CnnClaimsError(
                        f"pinned verdicts file {path}: {key} {section} {case} is {verdict!r}; valid: {', '.join(valid)}"
                        + (
                            " ('inconclusive' is split into negligible and underpowered since the four-verdict "
                            "vocabulary: regenerate the entry with --regen-verdicts and review the diff)"
                            if verdict == "inconclusive"
                            else ""
                        )
                    )
        numbers = entry.get("numbers", {})
        if _pins_p_holm(numbers):
            # Written by the two-Holm-families pipeline: p_holm is p_adjusted now, and the
            # numbers (and some labels) changed with the step-down. Its labels are kept,
            # read as an entry that pins labels only, which says to regenerate it; a
            # refusal here would block the very regeneration that fixes it.
            del entry["numbers"]
            entry["stale_numbers"] = "p_holm: pinned before the family's step-down over 2m hypotheses"
            numbers = {}
        shape_n = (
            f'expected "numbers": {{"verdicts": {{"C1/frogs": {{"statistic": 1.5, ...}}}}, "null_control": '
            f'{{...}}}} with numbers or "inf"/"-inf" for {", ".join(NUMBER_FIELDS)}; fix it or regenerate the entry'
        )
        if not isinstance(numbers, dict) or not all(
            isinstance(cases, dict)
            and all(
                isinstance(nums, dict) and all(f in NUMBER_FIELDS and _is_number(x) for f, x in nums.items())
                for nums in cases.values()
            )
            for cases in numbers.values()
        ):
            raise CnnClaimsError(f"pinned verdicts file {path}: entry {key!r} has wrong numbers: {shape_n}")
    return doc


def _pins_p_holm(numbers: object) -> bool:
    return isinstance(numbers, dict) and any(
        isinstance(nums, dict) and "p_holm" in nums
        for cases in numbers.values()
        if isinstance(cases, dict)
        for nums in cases.values()
    )


def _is_number(x: object) -> bool:
    """A pinned number: a JSON number, or an infinity as ``to_jsonable`` writes it."""
    return is_json_number(x) or x in ("inf", "-inf")


def _stored(x: float | None) -> float | str | None:
    """A number as pinned: SIGNIFICANT_DIGITS digits; infinities as "inf"/"-inf" (JSON
    has none); None for a number the verdict lacks (None or NaN)."""
    if x is None or x != x:
        return None
    x = float(x)
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return float(f"{x:.{SIGNIFICANT_DIGITS}g}")


def _value(x: float | str | None) -> float:
    return float("nan") if x is None else float(x)


def numbers_of(v: Verdict) -> dict[str, float | str]:
    """The pinned numbers of one verdict: ``{field: value}``, lacking ones left out."""
    out = {f: _stored(getattr(v, f)) for f in NUMBER_FIELDS}
    return {f: x for f, x in out.items() if x is not None}


def same_number(a: float | str | None, b: float | str | None) -> bool:
    """Pinned and obtained agree within the tolerance; NaN (or absent) equals NaN."""
    a, b = _value(a), _value(b)
    if a != a or b != b:
        return a != a and b != b
    return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=ABS_TOL)


def has_numbers(e: dict[str, Any] | None) -> bool:
    """False for an entry written before numbers were pinned (labels only)."""
    return bool(e) and "numbers" in cast("dict[str, Any]", e)  # not None where bool(e)


def case_numbers(e: dict[str, Any] | None, section: str, case: str) -> dict[str, Any] | None:
    """A case's pinned numbers; None where the entry pins labels only."""
    if not has_numbers(e):
        return None
    assert e is not None  # has_numbers(None) is False
    return cast("dict[str, Any]", e["numbers"].get(section, {}).get(case, {}))


def case_diff(pin_label: str, pin_numbers: dict[str, Any] | None, v: Verdict) -> list[tuple[str, Any, Any]]:
    """``[(field, pinned, obtained)]`` for what differs: the label, then each number
    beyond the tolerance (none compared where ``pin_numbers`` is None)."""
    diffs: list[tuple[str, Any, Any]] = [("verdict", pin_label, v.verdict)] if pin_label != v.verdict else []
    if pin_numbers is not None:
        new = numbers_of(v)
        diffs += [
            (f, pin_numbers.get(f), new.get(f))
            for f in NUMBER_FIELDS
            if not same_number(pin_numbers.get(f), new.get(f))
        ]
    return diffs


def obtained_path(path: Path) -> Path:
    path = Path(path)
    return path.with_name(path.name + OBTAINED_SUFFIX)


def entry(doc: dict[str, Any], key: str) -> dict[str, Any] | None:
    return cast("dict[str, Any] | None", doc.get("entries", {}).get(key))


def make_entry(
    verdicts: Collection[Verdict], null_verdicts: Collection[Verdict], profile: Profile, data_source: str
) -> dict[str, Any]:
    """The entry this run's verdicts make: labels, then their numbers."""
    return {
        "profile": profile.name,
        "n_seeds": profile.n_seeds,
        "versions": versions(),
        "data_source": data_source,
        "recorded": time.strftime("%Y-%m-%d"),
        "verdicts": {v.key: v.verdict for v in verdicts},
        "null_control": {v.key: v.verdict for v in null_verdicts},
        "numbers": {
            "verdicts": {v.key: numbers_of(v) for v in verdicts},
            "null_control": {v.key: numbers_of(v) for v in null_verdicts},
        },
    }


def dumps(doc: dict[str, Any]) -> str:
    """The pins file's text: indented JSON, each case's numbers on one line (small diffs)."""
    lines: dict[str, str] = {}

    def mark(nums: Any) -> str:
        lines[f"@@numbers-{len(lines)}@@"] = json.dumps(nums)
        return f"@@numbers-{len(lines) - 1}@@"

    doc = to_jsonable(doc)
    for e in doc.get("entries", {}).values():
        if isinstance(e.get("numbers"), dict):
            e["numbers"] = {
                sec: {case: mark(nums) for case, nums in cases.items()} for sec, cases in e["numbers"].items()
            }
    text = json.dumps(doc, indent=2, sort_keys=False) + "\n"
    return re.sub(r'"(@@numbers-\d+@@)"', lambda m: lines[m.group(1)], text)


def _with_entry(path: Path, key: str, new: dict[str, Any]) -> dict[str, Any]:
    doc = load(path)
    doc.setdefault("entries", {})[key] = new
    doc["_about"] = (
        "Reviewed verdicts per TF/Keras version family and profile; regenerate with "
        "`python -m cnnclaims pin --profile <profile>` or `pytest --cnnclaims-regen-verdicts`, then review the diff. "
        f"numbers: {', '.join(NUMBER_FIELDS)} of each case to {SIGNIFICANT_DIGITS} significant digits, "
        f"compared within relative {REL_TOL:g} / absolute {ABS_TOL:g} (absent: the verdict has none)."
    )
    doc["entries"] = dict(sorted(doc["entries"].items()))
    return doc


def write_entry(
    path: Path,
    key: str,
    verdicts: Collection[Verdict],
    null_verdicts: Collection[Verdict],
    profile: Profile,
    data_source: str,
) -> dict[str, Any]:
    """Rewrite the whole entry for ``key`` from this run's verdicts."""
    path = Path(path)
    new = make_entry(verdicts, null_verdicts, profile, data_source)
    doc = _with_entry(path, key, new)
    with atomic_path(path) as tmp:
        tmp.write_text(dumps(doc))
    return new


def write_obtained(
    path: Path,
    key: str,
    verdicts: Collection[Verdict],
    null_verdicts: Collection[Verdict],
    profile: Profile,
    data_source: str,
    fallback_dir: Path | None = None,
) -> tuple[Path, str]:
    """Write the pins file as it would be with this run's entry for ``key`` to
    ``<pins>.obtained`` (beside it; in ``fallback_dir`` where that folder is not
    writable), never touching the pins file. Returns (obtained path, note: why it is in
    the fallback folder, or "")."""
    path = Path(path)
    text = dumps(_with_entry(path, key, make_entry(verdicts, null_verdicts, profile, data_source)))
    target = obtained_path(path)
    try:
        with atomic_path(target) as tmp:
            tmp.write_text(text)
        return target, ""
    except OSError as exc:
        if fallback_dir is None:
            raise
        note = f"the pins' folder {path.parent} is not writable ({exc.strerror or exc})"
        target = Path(fallback_dir) / target.name
        with atomic_path(target) as tmp:
            tmp.write_text(text)
        return target, note


def fragile(doc: dict[str, Any], profile_name: str) -> dict[tuple[str, str], dict[str, str]]:
    """(section, case) -> {family: verdict} for cases whose verdict differs across families."""
    by_case: dict[tuple[str, str], dict[str, str]] = {}
    for key, e in doc.get("entries", {}).items():
        family, prof = key.split("/")[:2]
        if prof != profile_name or "/seeds" in key or "/monitor-" in key:
            continue
        for section in ("verdicts", "null_control"):
            for case, verdict in e.get(section, {}).items():
                by_case.setdefault((section, case), {})[family] = verdict
    return {k: v for k, v in by_case.items() if len(set(v.values())) > 1}


# --- one case against its pin: what a claim test does ------------------------------


class ClaimCase(NamedTuple):
    """One parametrized claim test: the claim (``declaration.Claim``) in one scope, its
    pinned label (None where the pins lack it), the pin key and pins file it was read
    from, and whether it is a null-control case (``claim_checker(case)`` reads it)."""

    claim: Claim
    scope: str
    pin: str | None
    key: str
    path: Path
    null: bool = False

    @property
    def case(self) -> str:
        """``<claim id>/<scope>``, as pinned."""
        return f"{self.claim.id}/{self.scope}"

    @property
    def section(self) -> str:
        """The pins' section that holds it: ``verdicts`` or ``null_control``."""
        return "null_control" if self.null else "verdicts"


def null_of(case: ClaimCase | tuple[Any, ...], null: bool | None = None) -> bool:
    """Whether ``case`` is a null-control case: the ``ClaimCase`` says so; a ``null``
    given too (``claim_checker(case, null=True)``, as before cases knew) must agree;
    a plain 5-tuple: ``null`` alone. Raises ValueError naming the fix."""
    known = getattr(case, "null", None)
    if null is None:
        return bool(known)
    if known is not None and bool(null) != known:
        raise ValueError(
            f"claim_checker(case, null={null!r}) for a {'null-control' if known else 'claim'} case "
            f"{cast(ClaimCase, case).case}: drop null=..., the case knows which it is"
        )
    return bool(null)


OutcomeKind = Literal[
    "passed", "no pin", "pinned verdict changed", "claim not supported", "null-control false positive"
]
PASSED: OutcomeKind
NO_PIN: OutcomeKind
CHANGED: OutcomeKind
NOT_SUPPORTED: OutcomeKind
FALSE_POSITIVE: OutcomeKind
PASSED, NO_PIN, CHANGED, NOT_SUPPORTED, FALSE_POSITIVE = (
    "passed",
    "no pin",
    "pinned verdict changed",
    "claim not supported",
    "null-control false positive",
)


class Outcome(NamedTuple):
    """What ``judge`` decided for one case.

    ``kind``: ``PASSED``, ``NO_PIN`` (the pins lack the case: fail, asking for review),
    ``CHANGED`` (the label or a pinned number moved: ``failures.PinnedVerdictChanged``,
    a failure even under strict xfail), ``NOT_SUPPORTED`` or ``FALSE_POSITIVE`` (the
    verdict fails on its own, as pinned: a strict xfail where the pin says so);
    ``message``: the failure's first lines ("" when passed; ``failures.with_details``
    adds the rest); ``diffs``: ``(field, pinned, obtained)`` of what differs from the
    pin; ``supported``: the verdict passes on its own (supported; for a null control,
    no false positive)."""

    kind: OutcomeKind
    message: str
    diffs: tuple[tuple[str, Any, Any], ...] = ()
    supported: bool = True

    @property
    def failed(self) -> bool:
        return self.kind != PASSED

    @property
    def records(self) -> bool:
        """This run's entry goes to ``<pins>.obtained`` for review: the pins lack the
        case or it differs from them (however it is reported: a failure, or strict
        xfail's XPASS for a change to passing under an expected-failure pin)."""
        return self.kind == NO_PIN or bool(self.diffs)

    @property
    def flagged(self) -> bool:
        """The verdict fails on its own or its label moved: ``--plots=failed`` draws
        its diagnostic plots."""
        return not self.supported or any(field == "verdict" for field, _, _ in self.diffs)

    @property
    def exception(self) -> type[AssertionError] | None:
        """What the claim test raises (None: it passes; NO_PIN is a plain failure)."""
        return {
            CHANGED: failures.PinnedVerdictChanged,
            NOT_SUPPORTED: failures.ClaimNotSupported,
            FALSE_POSITIVE: failures.NullControlFalsePositive,
        }.get(self.kind)


def passes(label: str | None, null: bool) -> bool:
    """Whether ``label`` passes a claim test: supported; for a null control, not a
    direction (a false positive)."""
    return label not in FALSE_POSITIVES if null else label == SUPPORTED


def expects_failure(pin: str | None, null: bool) -> bool:
    """A case pinned as failing: collected as a strict xfail (raising
    ``Outcome(...).exception`` of NOT_SUPPORTED or FALSE_POSITIVE)."""
    return pin is not None and not passes(pin, null)


def judge(pin: str | None, numbers: dict[str, Any] | None, verdict: Verdict, null: bool, key: str = "") -> Outcome:
    """Decide one claim case against its pin; pure (no pytest, no files).

    ``pin``: the pinned label, None where the pins lack the case; ``numbers``: its
    pinned numbers (``case_numbers``; None where the entry pins labels only: numbers
    are not compared); ``verdict``: this run's ``verdicts.Verdict``; ``null``: a
    null-control case; ``key``: the pin key, named in the message.

    Changes strict xfail cannot see fail as CHANGED: a label that moves between two
    failing labels (refuted -> negligible), a passing pin that now fails, or a pinned
    number that moved beyond the tolerance. A change to passing under an
    expected-failure pin, its numbers as pinned, is PASSED here (with ``diffs``): the
    strict xfail reports it as XPASS."""
    label, case = verdict.verdict, verdict.key
    ok = passes(label, null)
    if pin is None:
        return Outcome(NO_PIN, failures.no_pin(case, key, label), (), ok)
    diffs = tuple(case_diff(pin, numbers, verdict))
    if (label != pin and (passes(pin, null) or not ok)) or any(f != "verdict" for f, _, _ in diffs):
        return Outcome(
            CHANGED, failures.changed(case, key, label, pin, diffs, null, numbers is None, REL_TOL, ABS_TOL), diffs, ok
        )
    if not ok:
        return Outcome(
            FALSE_POSITIVE if null else NOT_SUPPORTED,
            failures.false_positive(label) if null else failures.not_supported(label),
            diffs,
            ok,
        )
    return Outcome(PASSED, "", diffs, ok)
