"""The whole experiment for one profile: data, probes, trained models, evidence, verdicts.

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
from .data import load_cifar10
from .evidence import Evidence, build_model_evidence
from .probe import frog_indices, probe_index
from .profiles import get_profile
from . import calibration, claims, evidence as evidence_module, metrics, stats, verdicts as verdicts_module
from .training import ROLES, get_trained, specs_for, train_missing
from .verdicts import evaluate_catalog


def _source_digest(modules) -> str:
    from .cache import stable_hash

    return stable_hash([Path(mod.__file__).read_text() for mod in modules])


# The source of every module that computes a cached verdict, read when this module is
# imported, right after those modules were: a run keys its results by the code it
# runs. (Read at call time, a run started before an edit would store old results
# under the new code's key, and later runs would trust them.)
CODE_DIGEST = _source_digest((claims, stats, metrics, evidence_module, verdicts_module, calibration))


@dataclass
class Experiment:
    profile_name: str = "article"
    data_path: str | None = None
    cache_dir: Path | None = None
    n_seeds: int | None = None
    probe: int | None = None
    retrain: bool = False
    progress: object = print
    workers: int | None = None  # training processes at once (default: one per core, at most 8)
    _models: dict = field(default_factory=dict, repr=False)
    _fresh: set = field(default_factory=set, repr=False)  # specs retrained this session
    _probe_acts: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        self.profile = get_profile(self.profile_name, self.n_seeds)
        self.cache_dir = Path(self.cache_dir or default_cache_dir())

    @functools.cached_property
    def data(self):
        return load_cifar10(self.data_path, self.cache_dir, progress=self.progress)

    @functools.cached_property
    def probe_index(self) -> int:
        return probe_index(self.data.y_test, self.probe)

    @functools.cached_property
    def frog_indices(self) -> np.ndarray:
        return frog_indices(self.data.y_test)

    @property
    def probe_position(self) -> int:
        return int(np.flatnonzero(self.frog_indices == self.probe_index)[0])

    @property
    def probe_image(self) -> np.ndarray:
        return self.data.x_test[self.probe_index]

    @property
    def frogs(self) -> np.ndarray:
        return self.data.x_test[self.frog_indices]

    def train(self, roles=ROLES, first_only: bool = False) -> int:
        """Train every model of ``roles`` (or only each role's first seed) that is not
        cached, several at once; returns how many were trained."""
        specs = [s for role in roles if role not in self._models
                 for s in specs_for(self.profile, role)[: 1 if first_only else None]]
        if self.retrain:  # models retrained earlier this session are cached now
            specs = [s for s in specs if self._retrain(s)]
        done = train_missing(specs, self.data, self.data_path, self.cache_dir, self.retrain, self.workers,
                             self.progress)
        self._fresh.update(done)
        return len(done)

    def _retrain(self, spec) -> bool:
        # --retrain retrains each model once per session, not again on every access.
        return self.retrain and spec not in self._fresh

    def _get(self, spec):
        trained = get_trained(spec, self.data, self.cache_dir, self._retrain(spec), self.progress)
        self._fresh.add(spec)
        return trained

    def models(self, role: str) -> list:
        """Trained models of a role ("benchmark", "dummy", "null"), one per seed."""
        if role not in self._models:
            # Every role at once: the workers stay busy (5 long benchmark runs alone
            # would leave a core idle for the last one) and the claims need them all.
            self.train(ROLES)
            self._models[role] = [self._get(spec) for spec in specs_for(self.profile, role)]
        return self._models[role]

    def probe_activations(self, role: str) -> dict:
        """``{layer: activations}`` of the probe frog through the role's first model
        (every layer; memoised, since figures, diagnostics and fixtures all ask)."""
        if role not in self._probe_acts:
            self._probe_acts[role] = layer_activations(self.models(role)[0].model, self.probe_image)
        return self._probe_acts[role]

    def records(self) -> dict:
        """Training records of the models loaded so far, by role."""
        return {role: [t.record for t in models] for role, models in self._models.items()}

    def first_model(self, role: str):
        """The first seed's model of a role (the article's single comparison)."""
        if role in self._models:
            return self._models[role][0]
        return self._get(specs_for(self.profile, role)[0])

    def _group(self, role: str) -> list:
        fx, fy = self.frogs, self.data.y_test[self.frog_indices]
        return [build_model_evidence(t, fx, fy) for t in self.models(role)]

    @functools.cached_property
    def evidence(self) -> Evidence:
        return Evidence(
            {"benchmark": self._group("benchmark"), "dummy": self._group("dummy")},
            self.probe_position, len(self.frog_indices), "article", self.data.source,
        )

    @functools.cached_property
    def null_evidence(self) -> Evidence:
        # Same training size, different seeds: any "effect" here is a false positive.
        return Evidence(
            {"benchmark": self._group("null"), "dummy": self.evidence.groups["dummy"]},
            self.probe_position, len(self.frog_indices), "null control", self.data.source,
        )

    @functools.cached_property
    def verdicts(self) -> list:
        return self._cached_verdicts(self.evidence, ("probe", "frogs", "seeds"))

    @functools.cached_property
    def null_verdicts(self) -> list:
        return self._cached_verdicts(self.null_evidence, ("frogs", "seeds"))

    def _cached_verdicts(self, evidence: Evidence, scopes) -> list:
        """``evaluate_catalog``, stored per evidence: the bootstrap CIs cost seconds and a
        warm run should recompute nothing heavy."""
        from .verdicts import Verdict

        key = {"models": {g: [e.key for e in ms] for g, ms in sorted(evidence.groups.items())},
               "label": evidence.label, "probe": evidence.probe_position, "n_images": evidence.n_images,
               "frogs": self.frog_indices.tolist(), "scopes": list(scopes)}
        doc = self._cached("verdicts", evidence.label.replace(" ", "-"), key,
                           lambda: {"verdicts": [v.to_dict() for v in evaluate_catalog(evidence, scopes=scopes)]})
        return [Verdict.from_dict(d) for d in doc["verdicts"]]

    def same_size_models(self) -> list:
        """Evidence of every dummy-size model: the dummy group, then the null group."""
        return self.evidence.groups["dummy"] + self.null_evidence.groups["benchmark"]

    @functools.cached_property
    def null_splits(self) -> dict | None:
        """``calibration.null_splits`` over every dummy-size model (cached); None with
        fewer than 4 such models (two per group at least)."""
        from .calibration import null_splits
        from .claims import claims_for

        models = self.same_size_models()
        if len(models) < 4:
            return None
        return self._cached("null-splits", "seeds", {"models": [m.key for m in models], "frogs": self.frog_indices.tolist()},
                            lambda: null_splits(models, claims_for("seeds", directional_only=True)))

    def seeds_covariance(self):
        """(claims, (k, k) pooled seed-to-seed covariance, (k,) dummy means) of the
        seeds-scope claims' per-model numbers, from the trained models."""
        from .calibration import model_matrix, pooled_covariance
        from .claims import claims_for

        claims = claims_for("seeds")
        xb = model_matrix(self.evidence.groups["benchmark"], claims)
        xd = model_matrix(self.evidence.groups["dummy"], claims)
        return claims, pooled_covariance(xb, xd), xd.mean(axis=0)

    def calibration(self, n_experiments: int | None = None, seed: int | None = None, progress=None) -> dict:
        """``calibration.calibrate`` with this profile's N and the trained models'
        seed-to-seed covariance (cached per models, N, experiments and seed)."""
        from . import calibration as cal

        n_experiments = n_experiments or cal.DEFAULT_EXPERIMENTS
        seed = cal.DEFAULT_SEED if seed is None else seed
        claims, cov, base = self.seeds_covariance()
        key = {"models": [m.key for g in ("benchmark", "dummy") for m in self.evidence.groups[g]],
               "n": self.profile.n_seeds, "experiments": n_experiments, "seed": seed,
               "frogs": self.frog_indices.tolist()}
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
        write_json(path, {"key": digest, "value": value, "checksum": stable_hash(value)}, keep_nan=True)
        return read_json(path)["value"]  # the same round trip a warm run takes

    def verdict(self, claim_id: str, scope: str, null: bool = False):
        for v in self.null_verdicts if null else self.verdicts:
            if v.claim == claim_id and v.scope == scope:
                return v
        raise KeyError(f"no verdict for {claim_id}/{scope}{' (null control)' if null else ''}")
