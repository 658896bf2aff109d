"""Training the models of a plan, and the trained-model cache.

- ``spec``: what a model is (``TrainSpec``, its recipe and training subset, the
  sweep's plan) and the key that names it (``cache_key``, ``TRAINING_VERSION``);
- ``fitting``: fitting one model as the article does (``fit``; the module is not
  named ``fit``: a submodule becomes an attribute of its package, hiding the function);
- ``entries``: a model's cache entry, trained and stored, found and checked, loaded
  (``get_trained``);
- ``progress``: a plan's progress and ETA, and its makespan on W workers;
- ``missing``: ``train_missing``, the models of a plan the cache lacks, handed to
- ``executors``: where they train, worker processes on this machine or Ray tasks,
  behind one ``Executor`` protocol;
- ``digest``: the code that decides trained weights, and its digest.

Their public names are importable from here, as they were from the one ``training``
module this package replaces. This module imports none of them: each is imported on
first use (PEP 562), so that ``training.executors``, which ``options`` reads, imports
no TensorFlow, and nothing here takes part in an import cycle.
"""

from __future__ import annotations

import importlib

# Where each public name lives, imported on first use.
_EXPORTS = {
    "spec": (
        "TRAINING_VERSION",
        "TRAINING_CODE",
        "TrainSpec",
        "spec_dict",
        "recipe_functions",
        "recipe_id",
        "checked_config",
        "checked_subset",
        "specs_for",
        "stratified_subset",
        "nested_subset",
        "NestedSubset",
        "sweep_plan",
        "cache_key",
        "set_module",
    ),
    "fitting": ("prepare", "fit", "ProgressCallback", "WeightDigests", "weights_sha256"),
    "entries": (
        "TrainedModel",
        "entry_dir",
        "entry_lock",
        "get_trained",
        "expected_params",
        "RECORD_FIELDS",
        "LATER_FIELDS",
        "record_checksum",
        "check_record",
        "checked_record",
        "load_entry",
        "building",
        "abandon_builds",
        "train_entry",
        "entry_problem",
        "is_cached",
    ),
    "executors.local": ("default_workers", "WORKER_GIB"),
    "missing": ("train_missing",),
    "digest": ("code_digest", "training_functions", "training_code_digest", "source_of"),
}
_HOME = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = list(_HOME)


def __getattr__(name: str):
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
    globals()[name] = value  # found here from now on
    return value


def __dir__() -> list:
    return sorted({*globals(), *_HOME})
