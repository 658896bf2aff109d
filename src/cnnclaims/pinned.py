"""Pinned verdicts: the reviewed verdicts that CI regresses the claims against.

The file (``tests/pinned_verdicts.json``) holds one entry per *pin key*
``<version family>/<profile>[/seeds<N>]``, e.g. ``tf2.21-keras3.15/article``, because
numerics, and so verdicts, may differ across TensorFlow/Keras versions. Each entry
records the versions and the data source it was obtained on, the verdict of every
(claim, scope), and the null control's verdicts.

Semantics (as pytest-regressions): a missing entry is written from the current run
and the claim tests fail, asking for review; ``--regen-verdicts`` (or
``python -m cnnclaims pin``) rewrites the whole entry for the current key.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from .cache import atomic_path, to_jsonable
from .compat import version_family, versions
from .errors import CnnClaimsError
from .verdicts import INCONCLUSIVE, VERDICTS

DEFAULT_PATH = Path(__file__).resolve().parents[2] / "tests" / "pinned_verdicts.json"
VALID = VERDICTS
INFERENTIAL = tuple(v for v in VERDICTS if v != INCONCLUSIVE)  # frogs, seeds


def pin_key(profile) -> str:
    from .profiles import PROFILES

    key = f"{version_family()}/{profile.name}"
    if profile.name in PROFILES and profile.n_seeds != PROFILES[profile.name].n_seeds:
        key += f"/seeds{profile.n_seeds}"
    return key


def load(path: Path = DEFAULT_PATH) -> dict:
    path = Path(path)
    if not path.exists():
        return {"entries": {}}
    try:
        doc = json.loads(path.read_text())
    except OSError as exc:
        raise CnnClaimsError(f"pinned verdicts file {path} cannot be read ({exc.strerror or exc}); "
                             "pass --pinned-verdicts with a readable JSON file") from exc
    except ValueError as exc:
        raise CnnClaimsError(f"pinned verdicts file {path} is not valid JSON ({exc}); fix it or restore it from git") from exc
    shape = ('expected {"entries": {"<version family>/<profile>": {"verdicts": {"C1/frogs": "supported", ...}, '
             '"null_control": {...}}}}; fix it or restore it from git')
    if not isinstance(doc, dict) or not isinstance(doc.get("entries", {}), dict):
        raise CnnClaimsError(f"pinned verdicts file {path} has the wrong shape: {shape}")
    for key, entry in doc.get("entries", {}).items():
        if not isinstance(entry, dict) or not all(isinstance(entry.get(sec, {}), dict)
                                                  for sec in ("verdicts", "null_control")):
            raise CnnClaimsError(f"pinned verdicts file {path}: entry {key!r} has the wrong shape: {shape}")
        for section in ("verdicts", "null_control"):
            for case, verdict in entry.get(section, {}).items():
                scope = case.split("/")[-1]
                valid = VALID if scope == "probe" else INFERENTIAL
                if verdict not in valid:
                    raise CnnClaimsError(
                        f"pinned verdicts file {path}: {key} {section} {case} is {verdict!r}; valid: {', '.join(valid)}"
                        + (" ('inconclusive' is split into negligible and underpowered since the four-verdict "
                           "vocabulary: regenerate the entry with --regen-verdicts and review the diff)"
                           if verdict == "inconclusive" else "")
                    )
    return doc


def entry(doc: dict, key: str) -> dict | None:
    return doc.get("entries", {}).get(key)


def write_entry(path: Path, key: str, verdicts, null_verdicts, profile, data_source: str) -> dict:
    """Rewrite the whole entry for ``key`` from this run's verdicts."""
    path = Path(path)
    doc = load(path)
    new = {
        "profile": profile.name,
        "n_seeds": profile.n_seeds,
        "versions": versions(),
        "data_source": data_source,
        "recorded": time.strftime("%Y-%m-%d"),
        "verdicts": {v.key: v.verdict for v in verdicts},
        "null_control": {v.key: v.verdict for v in null_verdicts},
    }
    doc.setdefault("entries", {})[key] = new
    doc["_about"] = (
        "Reviewed verdicts per TF/Keras version family and profile; regenerate with "
        "`python -m cnnclaims pin --profile <profile>` or `pytest --regen-verdicts`, then review the diff."
    )
    doc["entries"] = dict(sorted(doc["entries"].items()))
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(to_jsonable(doc), indent=2, sort_keys=False) + "\n")
    return new


def fragile(doc: dict, profile_name: str) -> dict:
    """(section, case) -> {family: verdict} for cases whose verdict differs across families."""
    by_case: dict = {}
    for key, e in doc.get("entries", {}).items():
        family, prof = key.split("/")[:2]
        if prof != profile_name or "/seeds" in key:
            continue
        for section in ("verdicts", "null_control"):
            for case, verdict in e.get(section, {}).items():
                by_case.setdefault((section, case), {})[family] = verdict
    return {k: v for k, v in by_case.items() if len(set(v.values())) > 1}
