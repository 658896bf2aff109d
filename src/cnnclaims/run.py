"""A run of a declared experiment under one profile: data, probes, trained models,
evidence, verdicts.

Used alike by the pytest plugin, the command line, the figures and the report, so a
verdict means the same everywhere. Everything is computed lazily and memoised. The
training plan's checks and forecast are in ``run_plan``, the stored results in
``cache.ResultStore``, the calibration of a run in ``calibration``.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import calibration, claims, declaration, metrics, pinned, run_plan, stats
from . import evidence as evidence_module
from . import verdicts as verdicts_module
from .activations import layer_activations
from .cache import ResultStore, default_cache_dir
from .calibration import run_calibration, run_null_splits
from .declaration import SWEEP, Experiment, claims_key, load_experiment
from .evidence import null_control_evidence, run_evidence
from .monitoring import run_split
from .options import time_budget_choice
from .probe import ENV_PROBE, run_probe_index, run_probe_indices
from .training.spec import specs_for, sweep_plan
from .verdicts import null_control_verdicts, run_verdicts

__all__ = ["CODE_DIGEST", "Run", "claims_key"]


def _source_digest(modules) -> str:
    from .cache import stable_hash

    return stable_hash([Path(mod.__file__).read_text() for mod in modules])


# The source of every module that computes a cached verdict, read when this module is
# imported, right after those modules were: a run keys its results by the code it
# runs. (Read at call time, a run started before an edit would store old results
# under the new code's key, and later runs would trust them.)
CODE_DIGEST = _source_digest((claims, stats, metrics, evidence_module, verdicts_module, calibration, declaration))


# Run's fields that come from an option as it is (``Run.from_options``).
OPTION_FIELDS = {
    "experiment": "--experiment",
    "profile_name": "--profile",
    "data_path": "--data",
    "cache_dir": "--cache-dir",
    "n_seeds": "--seeds",
    "probe": "--probe-index",
    "retrain": "--retrain",
    "workers": "--workers",
    "executor": "--executor",
    "ray_address": "--ray-address",
}


@dataclass
class Run:
    """``experiment`` (a declaration, or a "module:NAME" reference; default
    ``declaration.DEFAULT_EXPERIMENT``) under profile ``profile_name`` (default: the
    experiment's default profile). ``from_options`` builds one from the harness's options."""

    profile_name: str | None = None
    data_path: str | None = None
    cache_dir: Path | None = None
    n_seeds: int | None = None
    probe: int | None = None
    retrain: bool = False
    progress: object = print
    workers: int | None = None  # training processes at once (default: one per core, at most 8)
    # Given as an Experiment, a "module:NAME" reference or None; loaded in __post_init__.
    experiment: Experiment = None  # type: ignore[assignment]
    executor: str | None = None  # "local" or "ray" (default: $CNNCLAIMS_EXECUTOR, else "local")
    ray_address: str | None = None  # --executor=ray's cluster (default: $CNNCLAIMS_RAY_ADDRESS, else a local Ray)
    time_budget: float | None = None  # minutes training may be predicted to take (None: no limit)
    loaded: dict = field(default_factory=dict, repr=False)  # trained models by role, as loaded (SWEEP: by size)
    retrained: set = field(default_factory=set, repr=False)  # specs retrained this session
    _probe_acts: dict = field(default_factory=dict, repr=False)
    # The plan's models: planned, cached when first asked, trained here, and why the
    # rest were not (the summary line of a pytest session says them; see run_plan).
    plan_status: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        self.experiment = load_experiment(self.experiment)
        self.profile = self.experiment.profile(self.profile_name, self.n_seeds)
        self.profile_name = self.profile.name
        self.cache_dir = Path(self.cache_dir or default_cache_dir())
        self.results = ResultStore(self.cache_dir, CODE_DIGEST)  # verdicts, null splits, calibrations

    @classmethod
    def from_options(cls, get, **given) -> Run:
        """A Run of the harness's options (``options.OPTIONS``): ``get(flag)`` gives the
        option's value (pytest's ``config.getoption``; the command line's arguments by
        ``options.BY_FLAG[flag].dest``). ``given`` fields win over the options."""
        fields = {name: get(flag) for name, flag in OPTION_FIELDS.items()}
        return cls(**{**fields, "time_budget": time_budget_choice(get("--time-budget")), **given})

    @property
    def pin_key(self) -> str:
        """This run's pins key (``pinned.pin_key``: profile, seeds, probe image)."""
        probe = self.probe if self.probe not in (None, "") else os.environ.get(ENV_PROBE)
        return pinned.pin_key(self.profile, self.experiment, probe)

    @property
    def scopes(self) -> tuple:
        """This run's scopes: the experiment's, and "sizes" when the profile has a sweep."""
        return self.experiment.scopes_for(self.profile)

    @functools.cached_property
    def sweep(self) -> dict:
        """``training.sweep_plan``: ``{"specs": {size: [TrainSpec]}, "recipes": {...}}`` (empty without sizes)."""
        if not self.profile.sizes:
            return {"specs": {}, "recipes": {}}
        return sweep_plan(self.profile, self.experiment, len(self.split.train_pool))

    a = property(lambda self: self.experiment.a.name, doc="condition a's name")
    b = property(lambda self: self.experiment.b.name, doc="condition b's name")
    roles = property(lambda self: self.experiment.roles, doc="a, b and the null group")

    @functools.cached_property
    def data(self):
        from .data import load_dataset

        return load_dataset(self.experiment, self.data_path, self.cache_dir, self.progress)

    # The data as the experiment's early stopping splits it (training pool, monitoring
    # images, evaluated test images: monitoring.split), and the probe image and the
    # probe-class images among the evaluated ones.
    split = functools.cached_property(run_split)
    probe_index = functools.cached_property(run_probe_index)
    probe_indices = functools.cached_property(run_probe_indices)

    probe_position = property(lambda self: int(np.flatnonzero(self.probe_indices == self.probe_index)[0]))
    probe_image = property(lambda self: self.data.x_test[self.probe_index])
    probe_images = property(lambda self: self.data.x_test[self.probe_indices])

    def train(self, roles=None, first_only: bool = False) -> int:
        """Train the models of ``roles`` (default the plan's groups; ``first_only``: each
        group's first seed) not cached, several at once (``run_plan.train``); how many were trained."""
        roles = self.plan_roles if roles is None else roles
        return run_plan.train(self, [r for r in roles if r not in self.loaded], first_only)

    plan_roles = property(
        lambda self: self.roles + ((SWEEP,) if self.profile.sizes else ()),
        doc="every group this run trains: a, b, null, and the sweep when the profile has one",
    )

    # The plan's functions (run_plan), as methods: run.check(), run.plan_specs(roles), ...
    check, plan_specs, plan_summary = run_plan.check, run_plan.plan_specs, run_plan.plan_summary
    retraining, trained, records = run_plan.retraining, run_plan.trained, run_plan.records

    def models(self, role: str) -> list:
        """Trained models of a group (condition a's or b's name, or "null"), one per seed."""
        if role not in self.loaded:
            if role not in self.roles:
                from .errors import unknown

                raise unknown("condition", role, self.roles)
            # Every role at once: the workers stay busy (5 long runs of condition a
            # alone would leave a core idle for the last one) and the claims need them all.
            self.train(self.plan_roles)
            self.loaded[role] = [self.trained(spec) for spec in specs_for(self.profile, role, self.experiment)]
        return self.loaded[role]

    def sweep_models(self) -> dict:
        """``{size: [trained model per seed]}`` of the sizes sweep (empty without one);
        sizes equal to a condition's reuse its models (``training.sweep_plan``)."""
        if SWEEP not in self.loaded:
            self.train(self.plan_roles)
            self.loaded[SWEEP] = {n: [self.trained(s) for s in group] for n, group in self.sweep["specs"].items()}
        return self.loaded[SWEEP]

    def probe_activations(self, role: str) -> dict:
        """``{layer: activations}`` of the probe image through the role's first model
        (every layer; memoised, since figures, diagnostics and fixtures all ask)."""
        if role not in self._probe_acts:
            self._probe_acts[role] = layer_activations(
                self.models(role)[0].model, self.probe_image, feed=self.experiment.feed
            )
        return self._probe_acts[role]

    def first_model(self, role: str):
        """The first seed's model of a group (the probe's single comparison)."""
        if role in self.loaded:
            return self.loaded[role][0]
        return self.trained(specs_for(self.profile, role, self.experiment)[0])

    evidence = functools.cached_property(run_evidence)  # conditions a and b, and the sweep
    null_evidence = functools.cached_property(null_control_evidence)  # b's recipe, other seeds, against b

    verdicts = functools.cached_property(run_verdicts)  # every (claim, scope), decided (stored)
    null_verdicts = functools.cached_property(null_control_verdicts)  # the null control's (stored)

    def verdict(self, claim_id: str, scope: str, null: bool = False):
        for v in self.null_verdicts if null else self.verdicts:
            if v.claim == claim_id and v.scope == scope:
                return v
        raise KeyError(f"no verdict for {claim_id}/{scope}{' (null control)' if null else ''}")

    null_splits = functools.cached_property(run_null_splits)  # among every model of b's recipe; None under 4
    calibration = run_calibration  # the seeds design's error rates at this profile's N
