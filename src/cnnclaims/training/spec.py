"""What a trained model is: its spec, its recipe (model builder and training subset),
the sweep's plan, and the cache key that names it.

The key (``cache_key``) hashes everything that changes the trained weights: the spec,
the data's fingerprint, the library versions and numerics, and ``TRAINING_VERSION``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .. import cache
from ..compat import versions
from ..model import build_model
from ..modelio import fed, model_io, probabilities
from ..monitoring import EarlyStopping

# Bump when the training procedure changes in a way the spec does not capture: it is
# part of every model's key. TRAINING_CODE is training_code_digest() as of the last
# review of TRAINING_VERSION; tests/test_training.py fails when the code that trains
# changes without that review (bump TRAINING_VERSION if the change alters the trained
# bits, then record the new digest), as joblib.Memory keys results by function code
# but without retraining everything for a comment or a moved function.
TRAINING_VERSION = 1
TRAINING_CODE = "6369698b8b7e1477"
# Where the subset functions were defined before this package: their qualified names
# are part of the keys (recipe_id, sweep_plan), so they keep it (see set_module).
KEYED_MODULE = "cnnclaims.training"


def set_module(module: str):
    """Decorator setting a function's or class's ``__module__`` to ``module`` (numpy's
    ``set_module``): an object keyed by its qualified name keeps its key, and pickles
    by that name, when its code moves. A class also gets ``_module_source``, the module
    that defines it, where its source is read (``digest.source_of``)."""

    def decorator(obj):
        if isinstance(obj, type):
            obj._module_source = obj.__module__
        obj.__module__ = module
        return obj

    return decorator


@dataclass(frozen=True)
class TrainSpec:
    role: str  # the group: condition a's or b's name, or "null" (the null control's group)
    n_train: int
    seed: int
    max_epochs: int
    patience: int
    batch_size: int = 32
    learning_rate: float = 1e-3
    # Bitwise-identical weights to 1 (measured), ~30% faster on 2 cores.
    steps_per_execution: int = 50
    # The recipe when it is not the default CNN on a class-stratified subset: a hash
    # of the model's configuration and the subset function's name (see recipe_id).
    recipe: str = ""
    # Which images early stopping monitors (``monitoring.EarlyStopping``): the
    # experiment's protocol, so that a training worker, which gets the spec alone,
    # splits the data as the run does.
    early_stopping: EarlyStopping = EarlyStopping()

    def __post_init__(self):
        if not isinstance(self.early_stopping, EarlyStopping):
            raise TypeError(
                f"early_stopping must be a cnnclaims.EarlyStopping, got {type(self.early_stopping).__name__}"
            )
        if not isinstance(self.role, str) or not self.role or any(ch in self.role for ch in "/ "):
            raise ValueError(f"role {self.role!r}: a condition name (or 'null'), without spaces or '/'")

    @property
    def label(self) -> str:
        return f"{self.role} seed={self.seed} n={self.n_train}"


def spec_dict(spec: TrainSpec) -> dict:
    """The spec as keyed and recorded: an empty ``recipe`` and the default early
    stopping (the article's, on the test set) are left out, so models of the default
    recipe and protocol keep the keys they had before recipes and protocols existed;
    another protocol is its plain ``EarlyStopping.as_dict``."""
    d = asdict(spec)
    if not d["recipe"]:
        del d["recipe"]
    if spec.early_stopping.is_default:
        del d["early_stopping"]
    else:
        d["early_stopping"] = spec.early_stopping.as_dict()
    return d


def recipe_functions(experiment, role: str) -> tuple:
    """(build_model, subset) of a group: the condition's own or the experiment's
    builder, and its subset function or ``stratified_subset``."""
    cond = experiment.recipe(role)
    return cond.build_model or experiment.build_model, cond.subset or stratified_subset


def recipe_id(experiment, role: str) -> str:
    """ "" for the default recipe (``model.build_model`` on a stratified subset), else a
    hash of the built model's configuration and the subset function's qualified name,
    and, where the experiment feeds several inputs or trains one of several outputs,
    of that contract (``ModelIO.key``), so another architecture, subset, feed or trained
    output never shares a cache entry."""
    build, subset = recipe_functions(experiment, role)
    config = checked_config(build, experiment, role)
    io = model_io(experiment)
    # The images fed as they are to one output, as the article's models are: no
    # contract in the key (their keys predate it).
    plain = io.feed is None and _N_OUTPUTS[_config_key(build, experiment)] == 1
    if build is build_model and subset is stratified_subset and plain:
        return ""
    recipe = {"model": config, "subset": f"{subset.__module__}.{subset.__qualname__}"}
    if not plain:
        recipe["io"] = io.key()
    return cache.stable_hash(recipe)[:12]


_CONFIGS: dict = {}
_N_OUTPUTS: dict = {}


def _config_key(build, experiment) -> tuple:
    io = model_io(experiment)
    return build, io.n_classes, tuple(io.input_shape), io.output, io.feed


def checked_config(build, experiment, role: str) -> dict:
    """The configuration of the model ``build()`` returns, once it is known to be one
    the harness can train and read (memoised per builder and experiment shape).

    Raises ModelError naming the condition and the builder when it returns no Keras
    model, a model whose configuration changes from one build to the next (Keras's
    automatic names such as ``functional_3``: every run would get a new cache key and
    retrain), a model that does not fit the experiment's images and outputs (see
    ``modelio.checked_io``: channels-first layers, several inputs without a feed,
    another input shape, several outputs without ``output_layer``), an output of
    another size than the experiment's classes, or an output that is not a softmax
    (probabilities: non-negative, summing to 1). A build that fails under Keras's
    ``channels_first`` setting names that setting."""
    from ..compat import keras
    from ..errors import ModelError
    from ..modelio import build_error, checked_io

    key = _config_key(build, experiment)
    if key in _CONFIGS:
        return _CONFIGS[key]
    io = model_io(experiment)
    who = f"condition {experiment.recipe(role).name!r}: build_model {getattr(build, '__qualname__', build)!r}"
    try:
        model = build()
    except Exception as exc:  # noqa: BLE001 - re-raised unless Keras's channels_first setting explains it
        err = build_error(who, exc)
        if err is None:
            raise
        raise err from exc
    if not isinstance(model, keras.Model):
        raise ModelError(
            f"{who} returned {type(model).__name__}, not a Keras model; return an uncompiled "
            "keras.Model with named layers"
        )
    config = model.get_config()
    if cache.stable_hash(build().get_config()) != cache.stable_hash(config):
        raise ModelError(
            f"{who} builds a different configuration each time (Keras's automatic model or layer "
            "names, e.g. 'functional_3', 'dense_7'): name the model and every layer, as "
            "cnnclaims.model.build_model does, so its trained models can be cached"
        )
    index = checked_io(model, io, who)
    out = probabilities(model(fed(model, io, np.zeros((1, *io.input_shape), np.float32)), training=False), index)
    out = np.asarray(out, dtype=np.float64)
    if out.shape != (1, io.n_classes):
        named = f" (output {io.output!r})" if len(model.outputs) > 1 else ""
        raise ModelError(
            f"{who} outputs shape {out.shape[1:]}{named}, but the experiment has {io.n_classes} "
            "classes; give the last layer one unit per class"
        )
    if (out < 0).any() or abs(out.sum() - 1) > 1e-3:
        raise ModelError(
            f"{who}: the output is not a softmax (values {np.round(out[0, :3], 3).tolist()}..., sum "
            f"{out.sum():.3g}); end the model with activation='softmax' (the claims read probabilities)"
        )
    _CONFIGS[key] = config
    _N_OUTPUTS[key] = len(model.outputs)
    return config


def checked_subset(subset, y_train, n: int, seed: int, role: str) -> np.ndarray:
    """``subset(y_train, n, seed)`` as sorted int64 indices, checked: exactly ``n``
    distinct integers inside the training split. Raises ValueError naming the group
    and the function otherwise (a silent wrong subset would train on other data than
    the record says)."""
    name = getattr(subset, "__qualname__", repr(subset))
    idx = np.asarray(subset(y_train, n, seed))
    where = f"group {role!r}: subset function {name!r}"
    if idx.ndim != 1 or not (np.issubdtype(idx.dtype, np.integer) or idx.size == 0):
        raise ValueError(
            f"{where} returned {idx.dtype} of shape {idx.shape}; return a 1-d array of integer "
            "indices into the training images"
        )
    if len(idx) != n or len(np.unique(idx)) != n:
        raise ValueError(
            f"{where} returned {len(idx)} indices ({len(np.unique(idx))} distinct) for a training "
            f"set of {n}; return exactly n distinct indices"
        )
    if idx.size and (idx.min() < 0 or idx.max() >= len(y_train)):
        raise ValueError(f"{where} returned indices outside 0..{len(y_train) - 1}")
    return np.sort(idx.astype(np.int64))


def specs_for(profile, role: str, experiment=None, seeds=None) -> list[TrainSpec]:
    """One TrainSpec per seed of a group (condition name or "null") under ``profile``.

    Raises UnknownNameError for a group the experiment lacks."""
    from ..declaration import NULL, load_experiment

    experiment = load_experiment(experiment)
    n = profile.n_train[experiment.recipe(role).name]
    if seeds is None:
        seeds = profile.null_seeds() if role == NULL else profile.seeds()
    return _group_specs(profile, experiment, role, n, seeds, recipe_id(experiment, role))


def _group_specs(profile, experiment, role: str, n: int, seeds, recipe: str) -> list[TrainSpec]:
    """One TrainSpec per seed of group ``role``, ``n`` training images, under ``profile``'s
    training settings and ``experiment``'s early stopping (the conditions' and the sweep's)."""
    return [
        TrainSpec(
            role,
            n,
            s,
            profile.max_epochs,
            profile.patience,
            profile.batch_size,
            profile.learning_rate,
            recipe=recipe,
            early_stopping=experiment.early_stopping,
        )
        for s in seeds
    ]


@set_module(KEYED_MODULE)
def stratified_subset(y: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Sorted indices of a class-stratified random subset of size ``n``."""
    y = np.asarray(y).reshape(-1)
    if n >= len(y):
        if n > len(y):
            raise ValueError(f"asked for {n} training images but only {len(y)} exist")
        return np.arange(len(y))
    classes = np.unique(y)
    if n % len(classes):
        raise ValueError(f"subset size {n} is not divisible by the {len(classes)} classes")
    rng = np.random.default_rng(seed)
    per = n // len(classes)
    picks = []
    for c in classes:
        idx = np.flatnonzero(y == c)
        if len(idx) < per:
            raise ValueError(f"class {c} has {len(idx)} images, fewer than the {per} needed")
        picks.append(rng.choice(idx, size=per, replace=False))
    return np.sort(np.concatenate(picks))


def nested_subset(y: np.ndarray, n: int, seed: int, anchor: int) -> np.ndarray:
    """Sorted indices of a class-stratified subset of size ``n`` that nests: for one
    ``seed``, every smaller size's subset lies inside every larger one's, and size
    ``anchor`` gives exactly ``stratified_subset(y, anchor, seed)`` (so the sweep's point
    at the smaller condition's size is that condition's cached model).

    How: per class, the order in which ``stratified_subset(y, anchor, seed)`` draws its
    images (the same generator, the same calls), followed by the class's other images
    in an order drawn from a second generator (``[seed, 1]``, which leaves the anchor's
    draws untouched); size ``n`` takes the first ``n / classes`` of every class's order.
    Raises ValueError when ``n`` or ``anchor`` is not divisible by the number of
    classes or exceeds a class's images."""
    y = np.asarray(y).reshape(-1)
    classes = np.unique(y)
    for name, size in (("subset size", n), ("anchor size", anchor)):
        if size % len(classes):
            raise ValueError(f"{name} {size} is not divisible by the {len(classes)} classes")
    per, per_anchor = n // len(classes), min(anchor, len(y)) // len(classes)
    rng, rest_rng = np.random.default_rng(seed), np.random.default_rng([seed, 1])
    picks = []
    for c in classes:
        idx = np.flatnonzero(y == c)
        if len(idx) < per:
            raise ValueError(f"class {c} has {len(idx)} images, fewer than the {per} needed")
        # stratified_subset(anchor) returns everything, drawing nothing, when the anchor
        # is the whole set.
        first = rng.choice(idx, size=per_anchor, replace=False) if anchor < len(y) else idx[:0]
        order = np.concatenate([first, rest_rng.permutation(np.setdiff1d(idx, first))])
        picks.append(order[:per])
    return np.sort(np.concatenate(picks))


@set_module(KEYED_MODULE)
class NestedSubset:
    """``nested_subset`` anchored at ``anchor``, as a subset function ``(y, n, seed)``
    that pickles (training workers receive it)."""

    def __init__(self, anchor: int):
        self.anchor = int(anchor)

    def __call__(self, y, n: int, seed: int) -> np.ndarray:
        return nested_subset(y, n, seed, self.anchor)

    def __repr__(self) -> str:
        return f"NestedSubset(anchor={self.anchor})"


def sweep_plan(profile, experiment, n_data: int) -> dict:
    """The sizes sweep of ``profile``: ``{size: [TrainSpec per seed 0..size_seeds-1]}``
    and the recipes of its new models.

    Returns ``{"specs": {size: [...]}, "recipes": {role: (build_model, subset)}}``. The
    sweep trains condition a's recipe (the conditions differ in size alone, which the
    declaration checks) on ``nested_subset`` anchored at the smaller condition's size.
    A size equal to the smaller condition's ``n_train`` is that condition's specs (its
    cached models: the same subsets), and so is the larger condition's size when it is
    the whole training pool (``n_data`` images: every training image, less an early-stopping
    holdout, ``monitoring.split``; every subset of it nests); any other size
    is a spec of group ``"sizes"`` whose recipe id names the nesting and its anchor."""
    from ..declaration import SWEEP, load_experiment

    experiment = load_experiment(experiment)
    if not profile.sizes:
        return {"specs": {}, "recipes": {}}
    a, b = experiment.a.name, experiment.b.name
    small, large = sorted((a, b), key=lambda r: profile.n_train[r])
    anchor = profile.n_train[small]
    seeds = list(range(profile.size_seeds))
    build, _ = recipe_functions(experiment, a)
    recipe = cache.stable_hash(
        {
            "model": checked_config(build, experiment, a),
            "subset": f"{NestedSubset.__module__}.NestedSubset",
            "anchor": anchor,
        }
    )[:12]
    specs = {}
    for n in profile.sizes:
        if n == anchor:
            specs[n] = specs_for(profile, small, experiment, seeds)
        elif n == profile.n_train[large] and n >= n_data:
            specs[n] = specs_for(profile, large, experiment, seeds)
        else:
            specs[n] = _group_specs(profile, experiment, SWEEP, n, seeds, recipe)
    return {"specs": specs, "recipes": {SWEEP: (build, NestedSubset(anchor))}}


def cache_key(spec: TrainSpec, data_fingerprint: str) -> str:
    return cache.stable_hash(
        {"spec": spec_dict(spec), "data": data_fingerprint, "versions": versions(), "training": TRAINING_VERSION}
    )[:16]
