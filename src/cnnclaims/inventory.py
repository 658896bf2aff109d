"""What a cache holds, whether it is intact, and pruning it: ``python -m cnnclaims
cache list | verify | prune``.

A cache folder (``cache.default_cache_dir``) holds ``data/`` (decoded data sets),
``models/<group>-n<images>-s<seed>-<key>/`` (``model.keras``, ``record.json``, per-image
statistics) and result files (``verdicts/``, ``null-splits/``, ``calibration/``: JSON
with a key and a checksum). Nothing here trains; ``verify`` and ``list`` only read.
"""

from __future__ import annotations

import json
import shutil
import time
from fnmatch import fnmatch
from pathlib import Path

from . import cache
from .errors import CacheError

RESULT_KINDS = ("verdicts", "null-splits", "calibration")


def model_entries(cache_dir) -> list[Path]:
    """The complete model entries of ``cache_dir`` (folders under ``models/``; not the
    ``.partial`` folders of models being built, nor lock files), sorted by name."""
    folder = Path(cache_dir) / "models"
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.endswith(".partial"))


def _bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else path.stat().st_size


def verify_entry(folder: Path) -> str | None:
    """None when a model entry is intact: its record is a valid record (fields and
    types) matching its checksum and its folder's key, and ``model.keras`` matches the
    record's SHA-256; else what is wrong, naming the file. Reads only."""
    from .training.entries import check_record, record_checksum

    record_path = folder / "record.json"
    try:
        record = check_record(cache.read_json(record_path), record_path)
        if "checksum" not in record:
            raise CacheError(
                f"cache record {record_path} has no checksum (written before records carried one; "
                "a run loading it adds it)"
            )
        if record["checksum"] != record_checksum(record):
            raise CacheError(f"cache record {record_path} does not match its checksum (edited or damaged)")
        if not folder.name.endswith("-" + record["key"]):
            raise CacheError(f"cache record {record_path} holds key {record['key']}, not its folder's")
        model = folder / "model.keras"
        if not model.is_file():
            raise CacheError(f"cached model {model} is missing")
        if "model_sha256" in record and cache.file_sha256(model) != record["model_sha256"]:
            raise CacheError(f"cached model {model} does not match the SHA-256 in its record (damaged or replaced)")
    except CacheError as exc:
        return str(exc)
    return None


def verify_result(path: Path) -> str | None:
    """None when a result file's content matches its checksum and its name's key."""
    try:
        doc = json.loads(path.read_text())
        if not isinstance(doc, dict) or "value" not in doc:
            return f"result file {path} is not a result (no 'value')"
        if doc.get("checksum") != cache.stable_hash(doc["value"]):
            return f"result file {path} does not match its checksum (edited or damaged)"
        if not path.stem.endswith("-" + str(doc.get("key"))):
            return f"result file {path} holds key {doc.get('key')!r}, not its name's"
    except (OSError, ValueError) as exc:
        return f"result file {path} is unreadable ({exc})"
    return None


def result_files(cache_dir) -> list[Path]:
    return sorted(p for kind in RESULT_KINDS for p in (Path(cache_dir) / kind).glob("*.json"))


def describe(folder: Path) -> dict:
    """One model entry as a row: name, group, images, seed, key, bytes, trained_at,
    epochs, test accuracy, versions family and numerics, and ``problem`` (None when
    intact, see ``verify_entry``)."""
    row = {"name": folder.name, "bytes": _bytes(folder), "problem": verify_entry(folder)}
    try:
        record = json.loads((folder / "record.json").read_text())
        spec, v = record.get("spec", {}), record.get("versions", {})
        num = v.get("numerics") or {}
        row.update(
            group=spec.get("role"),
            n_train=spec.get("n_train"),
            seed=spec.get("seed"),
            key=record.get("key"),
            trained_at=record.get("trained_at"),
            epochs=record.get("epochs"),
            test_accuracy=record.get("test_accuracy"),
            versions=f"tf {v.get('tensorflow')} keras {v.get('keras')} threads {v.get('tf_intra_op_threads')}",
            numerics=num.get("mode", "native (recorded before numerics were fixed)"),
        )
    except (OSError, ValueError, AttributeError):
        pass
    return row


def listing(cache_dir) -> str:
    """The text of ``cache list``: one line per model entry, then totals."""
    cache_dir = Path(cache_dir)
    rows = [describe(p) for p in model_entries(cache_dir)]
    lines = [f"cache {cache_dir}: {len(rows)} model entries"]
    for r in rows:
        acc = r.get("test_accuracy")
        state = "ok" if r["problem"] is None else "DAMAGED"
        lines.append(
            f"  {r['name']:48s} {r['bytes'] / 1e6:6.2f} MB  {state:7s}  {r.get('trained_at', '?')}  "
            f"epochs {r.get('epochs', '?')}  acc {acc if acc is None else f'{acc:.4f}'}  "
            f"{r.get('versions', '?')}  {r.get('numerics', '?')}"
        )
    data = sorted((cache_dir / "data").glob("*")) if (cache_dir / "data").is_dir() else []
    results = result_files(cache_dir)
    total = sum(r["bytes"] for r in rows)
    lines.append(
        f"models {total / 1e6:.1f} MB; data {sum(_bytes(p) for p in data) / 1e6:.1f} MB in {len(data)} "
        f"files; {len(results)} result files"
    )
    return "\n".join(lines)


def verify(cache_dir) -> list[str]:
    """Every problem of the cache's model entries and result files (empty: intact)."""
    return [
        p
        for p in (
            *(verify_entry(e) for e in model_entries(cache_dir)),
            *(verify_result(f) for f in result_files(cache_dir)),
        )
        if p
    ]


def prune(
    cache_dir,
    older_than_days: float | None = None,
    match: str | None = None,
    other_versions: bool = False,
    damaged: bool = False,
    dry_run: bool = False,
) -> list[Path]:
    """Remove the model entries that every given criterion selects (at least one must
    be given): trained more than ``older_than_days`` days ago (by their folder's
    modification time), whose name matches the glob ``match`` (e.g. ``'dummy-*'``),
    trained under other library versions or numerics than this process's
    (``other_versions``: no run here would load them), or ``damaged`` (``verify_entry``).
    Each entry goes under its lock, so a run training it is waited for. Returns the
    entries removed (with ``dry_run``, those that would be). Raises ValueError when no
    criterion is given."""
    if older_than_days is None and match is None and not other_versions and not damaged:
        raise ValueError("prune needs a criterion: --older-than DAYS, --match GLOB, --other-versions or --damaged")
    now = time.time()
    current = None
    if other_versions:
        from .compat import versions

        current = cache.to_jsonable(versions())
    chosen = []
    for folder in model_entries(cache_dir):
        if older_than_days is not None and now - folder.stat().st_mtime <= older_than_days * 86400:
            continue
        if match is not None and not fnmatch(folder.name, match):
            continue
        if damaged and verify_entry(folder) is None:
            continue
        if current is not None:
            try:
                if json.loads((folder / "record.json").read_text()).get("versions") == current:
                    continue
            except (OSError, ValueError):
                pass  # unreadable: not of these versions either
        chosen.append(folder)
    if not dry_run:
        from .training.entries import entry_lock

        for folder in chosen:
            with entry_lock(folder):
                shutil.rmtree(folder, ignore_errors=True)
            folder.with_suffix(".lock").unlink(missing_ok=True)
    return chosen


def plan_key(run) -> str:
    """One hash of a run's whole plan for a CI system's cache step (GitHub Actions'
    ``actions/cache`` key): the cache keys of every model the run needs (which cover
    the specs, data content, library versions, numerics and training code version),
    as ``cnnclaims-<pins key family>-<profile>-<16 hex digits>``."""
    from .compat import version_family
    from .training.spec import cache_key

    keys = sorted(cache_key(s, run.data.fingerprint) for s in run.plan_specs())
    return f"cnnclaims-{version_family()}-{run.profile.name}-{cache.stable_hash(keys)[:16]}"
