"""A run of a declared experiment under one profile: data, probes, trained models,
evidence, verdicts.

Used alike by the pytest plugin, the command line, the figures and the report, so a
verdict means the same everywhere. Everything is computed lazily and memoised.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .activations import layer_activations
from .cache import default_cache_dir
from .declaration import NULL, SWEEP, Experiment, load_experiment
from .evidence import Evidence, build_model_evidence
from .options import executor_choice, ray_address_choice
from .probe import class_indices, probe_index
from . import calibration, claims, declaration, evidence as evidence_module, metrics, stats, verdicts as verdicts_module
from .training import get_trained, specs_for, sweep_plan, train_missing
from .verdicts import evaluate_catalog


def _source_digest(modules) -> str:
    from .cache import stable_hash

    return stable_hash([Path(mod.__file__).read_text() for mod in modules])


# The source of every module that computes a cached verdict, read when this module is
# imported, right after those modules were: a run keys its results by the code it
# runs. (Read at call time, a run started before an edit would store old results
# under the new code's key, and later runs would trust them.)
CODE_DIGEST = _source_digest((claims, stats, metrics, evidence_module, verdicts_module, calibration, declaration))


def claims_key(experiment) -> list:
    """What of a declaration decides its verdicts, for cache keys: each claim's
    settings (metrics by name; their code is versioned by ``experiment.version``)."""
    return [experiment.name, experiment.version, experiment.scopes, experiment.a.name, experiment.b.name,
            [[c.id, c.slug, c.kind, c.alternative, c.sesoi, c.primary, c.subject, c.threshold, list(c.scopes),
              c.stat, [x.name for x in c.extras], c.model_metric, [list(pc) for pc in c.probe_checks], c.alpha,
              c.text, c.metric.title]
             for c in experiment.claims]]


@dataclass
class Run:
    """``experiment`` (a declaration, or a "module:NAME" reference; default
    ``declaration.DEFAULT_EXPERIMENT``) under profile ``profile_name`` (default: the
    experiment's default profile)."""

    profile_name: str | None = None
    data_path: str | None = None
    cache_dir: Path | None = None
    n_seeds: int | None = None
    probe: int | None = None
    retrain: bool = False
    progress: object = print
    workers: int | None = None  # training processes at once (default: one per core, at most 8)
    experiment: Experiment | str | None = None
    executor: str | None = None  # "local" or "ray" (default: $CNNCLAIMS_EXECUTOR, else "local")
    ray_address: str | None = None  # --executor=ray's cluster (default: $CNNCLAIMS_RAY_ADDRESS, else a local Ray)
    time_budget: float | None = None  # minutes training may be predicted to take (None: no limit)
    _models: dict = field(default_factory=dict, repr=False)
    _fresh: set = field(default_factory=set, repr=False)  # specs retrained this session
    _probe_acts: dict = field(default_factory=dict, repr=False)
    # The plan's models: planned, cached when first asked, trained here, and why the
    # rest were not (the summary line of a pytest session says them).
    plan_status: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        self.experiment = load_experiment(self.experiment)
        self.profile = self.experiment.profile(self.profile_name, self.n_seeds)
        self.profile_name = self.profile.name
        self.cache_dir = Path(self.cache_dir or default_cache_dir())

    @property
    def pin_key(self) -> str:
        """This run's pins key (``pinned.pin_key``: profile, seeds, probe image)."""
        import os

        from .pinned import pin_key
        from .probe import ENV_PROBE

        return pin_key(self.profile, self.experiment, self.probe if self.probe not in (None, "")
                       else os.environ.get(ENV_PROBE))

    def check(self, data: bool = True) -> None:
        """What can be known wrong before any training, at once: every recipe builds a
        trainable softmax model with a stable configuration that takes the declared
        images, and has every layer the claims' metrics read; with ``data`` (which loads
        it), every training size fits the data and the probe index (declared or given)
        is an image of the probe class. Raises ModelError, DataError or ValueError
        naming the thing and the fix."""
        from .modelio import check_layers
        from .training import checked_config, recipe_functions

        for role in self.roles:
            build = recipe_functions(self.experiment, role)[0]
            checked_config(build, self.experiment, role)
            check_layers(build, self.experiment, role)
        if data:
            self.check_sizes()
            if self.probe is not None or self.experiment.probe.index is not None:
                self.probe_index  # noqa: B018 - raises DataError for an index of another class

    def check_sizes(self) -> None:
        """DataError naming the condition when a training size exceeds the data."""
        from .errors import DataError

        n_data = len(self.data.y_train)
        for cond, n in self.profile.n_train.items():
            if n > n_data:
                raise DataError(f"profile {self.profile.name!r}: condition {cond!r} asks for {n} training images, "
                                f"but the data has {n_data}; lower n_train or load more data")
        too_big = [n for n in self.profile.sizes if n > n_data]
        if too_big:
            raise DataError(f"profile {self.profile.name!r}: the sizes sweep asks for {too_big} training images, but "
                            f"the data has {n_data}; lower the profile's sizes or load more data")

    @property
    def scopes(self) -> tuple:
        """This run's scopes: the experiment's, and "sizes" when the profile has a sweep."""
        return self.experiment.scopes_for(self.profile)

    @functools.cached_property
    def sweep(self) -> dict:
        """``training.sweep_plan`` of this profile: ``{"specs": {size: [TrainSpec]},
        "recipes": {...}}`` (empty without sizes)."""
        if not self.profile.sizes:
            return {"specs": {}, "recipes": {}}
        return sweep_plan(self.profile, self.experiment, len(self.data.y_train))

    @property
    def a(self) -> str:
        return self.experiment.a.name

    @property
    def b(self) -> str:
        return self.experiment.b.name

    @property
    def roles(self) -> tuple:
        return self.experiment.roles

    @functools.cached_property
    def data(self):
        from .data import load_dataset

        return load_dataset(self.experiment, self.data_path, self.cache_dir, self.progress)

    @functools.cached_property
    def probe_index(self) -> int:
        return probe_index(self.data.y_test, self.probe if self.probe is not None else self.experiment.probe.index,
                           self.experiment.probe_class, self.experiment.classes)

    @functools.cached_property
    def probe_indices(self) -> np.ndarray:
        """Test-set indices of every image of the probe class (the images scope)."""
        return class_indices(self.data.y_test, self.experiment.probe_class, self.experiment.classes)

    @property
    def probe_position(self) -> int:
        return int(np.flatnonzero(self.probe_indices == self.probe_index)[0])

    @property
    def probe_image(self) -> np.ndarray:
        return self.data.x_test[self.probe_index]

    @property
    def probe_images(self) -> np.ndarray:
        return self.data.x_test[self.probe_indices]

    def train(self, roles=None, first_only: bool = False) -> int:
        """Train every model of ``roles`` (or only each role's first seed) that is not
        cached, several at once; returns how many were trained."""
        roles = self.plan_roles if roles is None else roles
        specs = self.plan_specs([r for r in roles if r not in self._models], first_only)
        if self.retrain:  # models retrained earlier this session are cached now
            specs = [s for s in specs if self._retrain(s)]
        self._can_store(specs)
        self.check_sizes()  # before any training: a size the data cannot give names the profile
        self._forecast(specs)
        done = train_missing(specs, self.data, self.data_path, self.cache_dir, self.retrain, self.workers,
                             self.progress, self.experiment, recipes=self.sweep["recipes"],
                             executor=executor_choice(self.executor), ray_address=ray_address_choice(self.ray_address),
                             estimates=self.plan_status.get("predicted"))
        self._fresh.update(done)
        # One worker (or one model, or functions that cannot reach a worker process):
        # nothing was started, so the plan trains here, now, as predicted once; left to
        # each group's first use it was predicted again per group, counts changing.
        rest = [s for s in self._missing(specs) if s not in done]
        for spec in sorted(rest, key=lambda s: (-s.n_train * s.max_epochs, s.role, s.seed)):
            self._get(spec)
        return len(done) + len(rest)

    def plan_specs(self, roles=None, first_only: bool = False) -> list:
        """The TrainSpecs of ``roles`` (default every group of the plan, the sweep's
        included; ``first_only``: each group's first seed), without repeats (the sweep
        reuses the conditions' models)."""
        roles = self.plan_roles if roles is None else roles
        specs = [s for role in roles if role != SWEEP
                 for s in specs_for(self.profile, role, self.experiment)[: 1 if first_only else None]]
        if SWEEP in roles:
            specs += [s for group in self.sweep["specs"].values() for s in group[: 1 if first_only else None]]
        return list(dict.fromkeys(specs))

    def _missing(self, specs) -> list:
        from .training import is_cached

        return [s for s in dict.fromkeys(specs)
                if self._retrain(s) or not is_cached(s, self.data.fingerprint, self.cache_dir)]

    def _forecast(self, specs) -> None:
        """Before training: say how long the missing models of ``specs`` will take here
        (``forecast``: throughput measured on this machine now), and when that exceeds
        ``time_budget``, raise TrainingBudgetError naming what will not be checked.
        The plan's counts go to ``plan_status``."""
        from . import forecast
        from .errors import TrainingBudgetError
        from .plan_progress import recorded, rough
        from .training import default_workers, recipe_functions

        if "budget" in self.plan_status:  # refused once: refused for the whole session
            raise TrainingBudgetError(self.plan_status["budget"])
        specs = list(dict.fromkeys(specs))
        missing = self._missing(specs)
        status = self.plan_status.setdefault("groups", {})
        for s in specs:
            status.setdefault(s, "cached" if s not in missing else "missing")
        if not missing:
            return
        if executor_choice(self.executor) != "local":
            self.progress(f"cnnclaims: {len(missing)} models to train on Ray: no prediction for a cluster's "
                          "machines from here")
            return
        workers = min(default_workers(self.workers), len(missing))
        from .modelio import model_io

        pred = forecast.predict_plan(
            missing, lambda s: (self.sweep["recipes"].get(s.role) or recipe_functions(self.experiment, s.role))[0],
            self.experiment.input_shape, len(self.experiment.classes), len(self.data.y_test),
            recorded(self.cache_dir), workers, io=model_io(self.experiment))
        what = (f"{len(missing)} models of profile {self.profile.name!r} ({len(specs) - len(missing)} of its "
                f"{len(specs)} are cached)")
        self.progress(pred.line(what))
        self.plan_status["predicted"] = pred.per_spec
        if self.time_budget is not None and pred.expected > self.time_budget * 60:
            msg = (f"not training: {what} are predicted to take {rough(pred.expected)} here, more than the time "
                   f"budget of {rough(self.time_budget * 60)} (--time-budget or $CNNCLAIMS_TIME_BUDGET); its claims "
                   "are not checked against their pins")
            self.plan_status["budget"] = msg
            self.progress(f"cnnclaims: {msg}")
            raise TrainingBudgetError(msg)

    def plan_summary(self) -> dict:
        """``{"planned", "cached", "trained", "not_trained", "reason"}``: the models this
        run asked for, found cached, trained here, and left untrained (with why)."""
        from .training import is_cached

        groups = self.plan_status.get("groups", {})
        missing = [s for s, state in groups.items() if state == "missing"]
        trained = sum(is_cached(s, self.data.fingerprint, self.cache_dir) for s in missing) \
            if missing and "data" in self.__dict__ else 0
        return {"planned": len(groups), "cached": len(groups) - len(missing), "trained": trained,
                "not_trained": len(missing) - trained, "reason": self.plan_status.get("budget")}

    def _can_store(self, specs) -> None:
        """CacheWriteError now, before minutes of training, when the models of ``specs``
        that are not cached cannot be stored: a read-only cache, or too little room."""
        from .cache import require_writable

        missing = self._missing(specs)
        if missing:
            require_writable(self.cache_dir / "models", self.cache_dir, len(missing))

    def _retrain(self, spec) -> bool:
        # --retrain retrains each model once per session, not again on every access.
        return self.retrain and spec not in self._fresh

    @property
    def plan_roles(self) -> tuple:
        """Every group this run trains: a, b, null, and the sweep when the profile has one."""
        return self.roles + ((SWEEP,) if self.profile.sizes else ())

    def _get(self, spec):
        trained = get_trained(spec, self.data, self.cache_dir, self._retrain(spec), self.progress, self.experiment,
                              recipe=self.sweep["recipes"].get(spec.role) if spec.role == SWEEP else None)
        self._fresh.add(spec)
        return trained

    def models(self, role: str) -> list:
        """Trained models of a group (condition a's or b's name, or "null"), one per seed."""
        if role not in self._models:
            if role not in self.roles:
                from .errors import unknown

                raise unknown("condition", role, self.roles)
            # Every role at once: the workers stay busy (5 long runs of condition a
            # alone would leave a core idle for the last one) and the claims need them all.
            self.train(self.plan_roles)
            self._models[role] = [self._get(spec) for spec in specs_for(self.profile, role, self.experiment)]
        return self._models[role]

    def sweep_models(self) -> dict:
        """``{size: [trained model per seed]}`` of the sizes sweep (empty without one);
        sizes equal to a condition's reuse its models (``training.sweep_plan``)."""
        if SWEEP not in self._models:
            self.train(self.plan_roles)
            self._models[SWEEP] = {n: [self._get(s) for s in group] for n, group in self.sweep["specs"].items()}
        return self._models[SWEEP]

    def probe_activations(self, role: str) -> dict:
        """``{layer: activations}`` of the probe image through the role's first model
        (every layer; memoised, since figures, diagnostics and fixtures all ask)."""
        if role not in self._probe_acts:
            self._probe_acts[role] = layer_activations(self.models(role)[0].model, self.probe_image,
                                                       feed=self.experiment.feed)
        return self._probe_acts[role]

    def records(self) -> dict:
        """Training records of the models loaded so far, by role."""
        out = {role: [t.record for t in models] for role, models in self._models.items() if role != SWEEP}
        if SWEEP in self._models:
            out[SWEEP] = {n: [t.record for t in models] for n, models in self._models[SWEEP].items()}
        return out

    def first_model(self, role: str):
        """The first seed's model of a group (the probe's single comparison)."""
        if role in self._models:
            return self._models[role][0]
        return self._get(specs_for(self.profile, role, self.experiment)[0])

    def _group(self, role: str) -> list:
        x, y = self.probe_images, self.data.y_test[self.probe_indices]
        return [build_model_evidence(t, x, y, self.experiment) for t in self.models(role)]

    @functools.cached_property
    def evidence(self) -> Evidence:
        x, y = self.probe_images, self.data.y_test[self.probe_indices]
        n_a, n_b = self.profile.n_train[self.a], self.profile.n_train[self.b]
        return Evidence(
            {self.a: self._group(self.a), self.b: self._group(self.b)},
            self.probe_position, len(self.probe_indices), self.experiment.name, self.data.source,
            self.a, self.b, self.experiment,
            sizes={n: [build_model_evidence(t, x, y, self.experiment) for t in models]
                   for n, models in self.sweep_models().items()},
            size_sign=1 if n_a > n_b else -1,
        )

    @functools.cached_property
    def null_evidence(self) -> Evidence:
        # b's recipe with other seeds against b: any "effect" here is a false positive.
        return Evidence(
            {NULL: self._group(NULL), self.b: self.evidence.groups[self.b]},
            self.probe_position, len(self.probe_indices), "null control", self.data.source,
            NULL, self.b, self.experiment,
        )

    @functools.cached_property
    def verdicts(self) -> list:
        return self._cached_verdicts(self.evidence, self.scopes)

    @functools.cached_property
    def null_verdicts(self) -> list:
        return self._cached_verdicts(self.null_evidence, self.experiment.scopes[1:])

    def _cached_verdicts(self, evidence: Evidence, scopes) -> list:
        """``evaluate_catalog``, stored per evidence: the bootstrap CIs cost seconds and a
        warm run should recompute nothing heavy."""
        from .evidence import metrics_key
        from .verdicts import Verdict, decision_code

        key = {"models": {g: [e.key for e in ms] for g, ms in sorted(evidence.groups.items())},
               "sizes": [[n, [e.key for e in ms]] for n, ms in evidence.sizes.items()], "size_sign": evidence.size_sign,
               "label": evidence.label, "probe": evidence.probe_position, "n_images": evidence.n_images,
               "images": self.probe_indices.tolist(), "scopes": list(scopes),
               "claims": claims_key(self.experiment), "decision_code": decision_code(),
               "statistics": metrics_key(self.experiment)}
        doc = self._cached("verdicts", evidence.label.replace(" ", "-"), key,
                           lambda: {"verdicts": [v.to_dict() for v in evaluate_catalog(evidence, scopes=scopes)]})
        return [Verdict.from_dict(d) for d in doc["verdicts"]]

    def same_size_models(self) -> list:
        """Evidence of every model of b's recipe: the b group, then the null group."""
        return self.evidence.groups[self.b] + self.null_evidence.groups[NULL]

    @functools.cached_property
    def null_splits(self) -> dict | None:
        """``calibration.null_splits`` over every model of b's recipe (cached); None with
        fewer than 4 such models (two per group at least)."""
        from .calibration import null_splits

        models = self.same_size_models()
        if len(models) < 4:
            return None
        return self._cached("null-splits", "seeds", {"models": [m.key for m in models], "images": self.probe_indices.tolist(),
                             "claims": claims_key(self.experiment)},
                            lambda: null_splits(models, self.experiment.claims_for("seeds", directional_only=True)))

    def seeds_covariance(self):
        """(claims, (k, k) pooled seed-to-seed covariance, (k,) means of b) of the
        seeds-scope claims' per-model numbers, from the trained models."""
        from .calibration import model_matrix, pooled_covariance

        claims = self.experiment.claims_for("seeds")
        xb = model_matrix(self.evidence.groups[self.a], claims)
        xd = model_matrix(self.evidence.groups[self.b], claims)
        return claims, pooled_covariance(xb, xd), xd.mean(axis=0)

    def calibration(self, n_experiments: int | None = None, seed: int | None = None, progress=None) -> dict:
        """``calibration.calibrate`` with this profile's N and the trained models'
        seed-to-seed covariance (cached per models, N, experiments and seed)."""
        from . import calibration as cal

        n_experiments = n_experiments or cal.DEFAULT_EXPERIMENTS
        seed = cal.DEFAULT_SEED if seed is None else seed
        claims, cov, base = self.seeds_covariance()
        key = {"models": [m.key for g in (self.a, self.b) for m in self.evidence.groups[g]],
               "n": self.profile.n_seeds, "experiments": n_experiments, "seed": seed,
               "images": self.probe_indices.tolist(), "claims": claims_key(self.experiment)}
        return self._cached("calibration", f"n{self.profile.n_seeds}", key, lambda: cal.calibrate(
            claims, self.profile.n_seeds, cov, base, n_experiments, seed=seed, progress=progress or self.progress))

    def _cached(self, kind: str, label: str, key: dict, compute) -> dict:
        """``compute()`` (a JSON-able dict), stored under ``<cache>/<kind>/``. The key
        covers ``key``, numpy/scipy/statsmodels versions and the source of every module
        that computes a verdict, so any change there recomputes; a damaged file is
        reported and recomputed."""
        import scipy
        import statsmodels

        from .cache import discard, read_json, stable_hash, to_jsonable, write_json
        from .errors import CacheError

        digest = stable_hash({**key, "code": CODE_DIGEST,
                              "versions": [np.__version__, scipy.__version__, statsmodels.__version__]})[:20]
        path = self.cache_dir / kind / f"{label}-{digest}.json"
        if path.exists():
            try:
                doc = read_json(path)
                if doc.get("key") != digest:
                    raise CacheError(f"it holds key {doc.get('key')!r}, expected {digest}")
                # A checksum of the content: a changed digit (tampering, bit rot) in
                # valid JSON is detected and recomputed, never trusted.
                if doc.get("checksum") != stable_hash(doc["value"]):
                    raise CacheError("its content does not match its checksum")
                return doc["value"]
            except (CacheError, KeyError, TypeError, AttributeError) as exc:
                discard(path, f"unusable {kind} cache ({exc})")
        value = to_jsonable(compute(), keep_nan=True)
        if write_json(path, {"key": digest, "value": value, "checksum": stable_hash(value)}, keep_nan=True):
            return read_json(path)["value"]  # the same round trip a warm run takes
        import json  # a read-only cache: the same round trip, in memory

        return json.loads(json.dumps(value))

    def verdict(self, claim_id: str, scope: str, null: bool = False):
        for v in self.null_verdicts if null else self.verdicts:
            if v.claim == claim_id and v.scope == scope:
                return v
        raise KeyError(f"no verdict for {claim_id}/{scope}{' (null control)' if null else ''}")
