"""The public API: declare an experiment and its claims, in Python.

An ``Experiment`` names everything the harness needs and nothing else:

- ``load_data``: the images, as uint8 (0-255) or float ([0, 1]) arrays (n, H, W, C) of
  the declared ``input_shape`` (channels last), with integer or one-hot labels of the
  declared ``classes`` (see ``data.dataset``);
- ``build_model``: an uncompiled Keras model with named layers (an image input, a
  softmax output of one unit per class; nested models inside it are sliced to any
  depth, their layers named by path, ``backbone/block_1_conv``). Several inputs take
  ``feed``, several outputs ``output_layer`` (see ``cnnclaims.modelio``);
- two ``Condition``s to compare (``a`` and ``b``, e.g. 50,000 vs 10,000 training
  images, or 32 vs 8 filters), each a named training recipe: its training-set size per
  profile, optionally its own model builder or subset function;
- the ``Probe``: a class name (every test image of it is a replicate of the images
  scope; the first, or ``index``, is the single probe image);
- ``claims``: each a ``Metric`` (a function of named layers' activations), a direction
  or a threshold, its scopes, its SESOI with a reason, and whether it is primary;
- ``profiles``: how many images, epochs and seeds (e.g. a full one and a smoke one);
- ``early_stopping``: which images choose the epoch (``EarlyStopping``); by default the
  article's protocol, the whole test set, which the claims are then judged on too
  (leakage, kept because the article did it): ``EarlyStopping("test-half")`` monitors a
  stratified half and evaluates the other, ``EarlyStopping("train-holdout",
  holdout=N)`` monitors N training images that no model trains on.

Everything downstream (training and its cache, activations, evidence, verdicts, pins,
plots, report) reads the declaration; the article's own is ``cnnclaims.article``.

Scopes are named by kind: ``"probe"`` (the single probe image through the first
pair of models: descriptive), ``"images"`` (every test image of the probe class,
paired per image, first pair of models; the experiment may rename it, the article
calls it ``"frogs"``), ``"seeds"`` (``n_seeds`` models per condition, one number per
model), and, when the profile declares training ``sizes``, ``"sizes"`` (a dose-response
sweep: condition a's recipe at each size, ``size_seeds`` models per size, one number
per model, the claimed direction read as a monotone trend in log10(training size);
only for comparisons of conditions that differ in training-set size alone). The null
control trains condition ``b``'s recipe again with other seeds.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, cast

import numpy as np

from .errors import unknown
from .monitoring import EarlyStopping
from .options import DEFAULT_EXPERIMENT, ENV_EXPERIMENT
from .strenum import StrEnum

__all__ = [
    "ALPHA",
    "BUILTIN_METRICS",
    "Claim",
    "ClaimKind",
    "claims_key",
    "Condition",
    "EarlyStopping",
    "Experiment",
    "load_experiment",
    "Metric",
    "ModelMetric",
    "NULL",
    "NULL_CONTROL",
    "OUTPUT",
    "Plot",
    "Probe",
    "Profile",
    "SCOPE_KINDS",
    "softmax_metric",
    "Subject",
    "SWEEP",
]

# The built-in metrics' functions (_argmax, _correct, _p_true, below) stay unannotated:
# their source is hashed into the statistics' cache key (evidence.metrics_key), so an
# annotation would change that key. mypy's inline config can only allow that for the
# whole file; every other function here is annotated.
# mypy: disable-error-code="no-untyped-def"

ALPHA = 0.05
SCOPE_KINDS = ("probe", "images", "seeds", "sizes")
SWEEP = "sizes"  # the sweep's group of models (training-set sizes) and its scope
PRIMARY, SECONDARY = "primary", "secondary"
NULL = "null"  # the null control's group: condition b's recipe, other seeds
NULL_CONTROL = "null control"  # the null control's evidence label and its verdicts' family
# The experiment a plain `pytest` or `python -m cnnclaims` runs (--experiment /
# $CNNCLAIMS_EXPERIMENT choose another), "module:attribute": options.DEFAULT_EXPERIMENT.


def load_experiment(ref: Experiment | str | None = None) -> Experiment:
    """The Experiment named by ``ref`` ("package.module:NAME", default
    $CNNCLAIMS_EXPERIMENT or ``DEFAULT_EXPERIMENT``), or ``ref`` itself if it is one.

    Raises UnknownNameError (a KeyError) naming the module or attribute that is
    missing, TypeError when the attribute is not an Experiment."""
    import importlib
    import os

    if isinstance(ref, Experiment):
        return ref
    ref = ref or os.environ.get(ENV_EXPERIMENT) or DEFAULT_EXPERIMENT
    module_name, _, attr = str(ref).partition(":")
    from .errors import UnknownNameError

    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UnknownNameError(
            f"experiment {ref!r}: cannot import module {module_name!r} ({type(exc).__name__}: "
            f"{exc}); give 'package.module:NAME' of an importable module, e.g. "
            f"{DEFAULT_EXPERIMENT}"
        ) from exc
    attr = attr or "EXPERIMENT"
    if not hasattr(module, attr):
        found = [k for k, v in vars(module).items() if isinstance(v, Experiment)]
        raise UnknownNameError(
            f"experiment {ref!r}: module {module_name!r} has no {attr!r}; the Experiments it "
            f"declares: {', '.join(found) or 'none (declare a cnnclaims.Experiment)'}"
        )
    exp = getattr(module, attr)
    if not isinstance(exp, Experiment):
        raise TypeError(f"{ref} is a {type(exp).__name__}, not a cnnclaims.Experiment")
    return exp


@dataclass(frozen=True)
class Metric:
    """A per-image statistic of a model's activations.

    ``fn(acts, labels)`` gets ``acts``: ``{layer path: array (n, ...)}`` for every layer
    in ``layers`` (a path names a layer inside a nested model: ``backbone/bb_conv``;
    ``"input"`` is the float32 image batch in [0, 1], (n, H, W, C); the output layer's
    array is the softmax, (n, classes)), and ``labels``: int64 (n,) class
    indices; it returns (n,) numbers, one per image (float64; NaN where the statistic
    is undefined for an image, explained by ``undefined_why``). It must be a pure
    function of its arguments, so that its cached values stay valid.
    """

    name: str  # key in tables, pins and plots: letters, digits, '_'
    layers: tuple[str, ...]
    fn: Callable[..., Any]
    label: str = ""  # what it is, for people (axis labels, tables)
    undefined_why: str = ""  # why it can be NaN for an image

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").isalnum():
            raise ValueError(f"metric name {self.name!r}: use letters, digits and '_' (it names files and columns)")
        if isinstance(self.layers, str):
            object.__setattr__(self, "layers", (self.layers,))
        if not callable(self.fn):
            raise TypeError(f"metric {self.name!r}: fn must be a function of (acts, labels), got {self.fn!r}")

    @property
    def title(self) -> str:
        return self.label or self.name


# The closed vocabularies of a Claim. StrEnums, so a declaration may write the plain
# string ("threshold") or the member (ClaimKind.THRESHOLD): they compare, hash and
# print alike, and either is checked at declaration.
class ClaimKind(StrEnum):
    """What a claim compares: condition a with b, or one subject with a threshold."""

    COMPARE = "compare"
    THRESHOLD = "threshold"


class Subject(StrEnum):
    """Whose values a threshold claim tests: a model of a or of b, the images
    themselves, or the smaller of the two models' values."""

    A = "a"
    B = "b"
    INPUT = "input"
    BOTH = "both"


class Plot(StrEnum):
    """The diagnostic plot of a claim's probe evidence (``diagnostics.claim_plots``)."""

    HISTOGRAM = "histogram"  # the claim's layer, values / image max, a vs b
    FEATURE_MAPS = "feature_maps"  # the probe image and the layer's maps, side by side
    INPUT = "input"  # the probe image's pixel values
    ENTROPY = "entropy"  # histogram entropy of the input and of each model's layer
    SOFTMAX = "softmax"  # each model's softmax on the probe image
    ACCURACY = "accuracy"  # the same bars, for a claim about test accuracy


class ModelMetric(StrEnum):
    """The seeds scope's number per model when it is not the metric's mean over the images."""

    TEST_ACCURACY = "test_accuracy"


def _choice(where: str, name: str, value: Any, choices: type[StrEnum], optional: bool = False) -> StrEnum | None:
    """``choices(value)`` (None stays None when ``optional``), or ValueError naming the
    field, the bad value, the allowed ones and the nearest of them."""
    if optional and value is None:
        return None
    try:
        return choices(value)
    except ValueError:
        allowed = [m.value for m in choices]
        shown = ["None"] * optional + [repr(v) for v in allowed]
        listed = ", ".join(shown[:-1]) + f" or {shown[-1]}"
        near = difflib.get_close_matches(str(value), allowed, n=1)
        fix = (
            f"did you mean {name}={near[0]!r}?"
            if near
            else f"write one of them, e.g. {name}={allowed[0]!r} (or cnnclaims.declaration.{choices.__name__})"
        )
        raise ValueError(f"{where}: {name} must be {listed}, got {value!r}; {fix}") from None


@dataclass(frozen=True)
class Claim:
    """One claim about conditions ``a`` and ``b`` (or about one subject vs a threshold).

    ``kind="compare"``: ``a`` is ``alternative`` ("greater"/"less") than ``b`` in
    ``metric``. ``kind="threshold"``: the ``subject`` ("a", "b", "input": the images
    themselves, or "both": the smaller of the two models' values) is ``alternative``
    than ``threshold``. ``sesoi`` is the smallest effect size of interest in the
    metric's units (a difference for a comparison, a distance from the threshold
    otherwise); ``primary`` puts the claim in the primary multiplicity family.
    ``model_metric="test_accuracy"`` makes the seeds scope compare each model's test
    accuracy instead of the metric's mean over the probe-class images.
    ``sesoi_per_decade``: the sizes scope's equivalence margin, in the metric's units
    per decade of training-set size; default (None) the SESOI spread over the decades
    between the two conditions' training-set sizes, SESOI / |log10(n_a / n_b)|
    (``verdicts.sizes_margin``).
    ``probe_checks``: ``(description, "a"/"b", metric name, "eq"/"ne", value)`` that
    must also hold on the probe image (else the probe verdict is refuted).
    """

    id: str
    slug: str
    text: str  # the claim in the paper's words
    metric: Metric
    # The four vocabularies accept their plain strings (``kind="threshold"``), which
    # __post_init__ turns into the members; after that each field holds a member.
    kind: ClaimKind | str = ClaimKind.COMPARE
    alternative: str = "greater"
    sesoi: float = float("nan")
    sesoi_reason: str = ""
    primary: bool = False
    # Also run the minimal-effect test (the difference exceeds the SESOI in the claimed
    # direction, one-sided) and report its p beside the verdict; it does not change it.
    minimal_effect: bool = False
    subject: Subject | str = Subject.A
    threshold: float | None = None
    # Default: every scope the claim's kind allows (a comparison: probe, images, seeds
    # and sizes; a threshold claim: probe, images, seeds).
    scopes: tuple[str, ...] | None = None
    extras: tuple[Metric, ...] = ()  # Metrics reported beside the tested one
    model_metric: ModelMetric | str | None = None  # "test_accuracy": the seeds scope's number per model
    probe_checks: tuple[tuple[str, str, str, str, Any], ...] = ()
    figure: str = ""  # where the paper shows it
    plot: Plot | str = Plot.HISTOGRAM  # diagnostic plot kind (diagnostics.claim_plots)
    alpha: float = ALPHA  # family-wise error rate of the claim's family
    # The sizes scope's margin per decade of training-set size (None: SESOI / decades
    # between the conditions' sizes; see verdicts.sizes_margin).
    sesoi_per_decade: float | None = None

    def __post_init__(self) -> None:
        where = f"claim {self.id!r}"
        if not self.id or any(ch in self.id + self.slug for ch in " /[]"):
            raise ValueError(
                f"{where}: id and slug must be non-empty, without spaces, '/' or brackets (they name tests)"
            )
        # Each closed field becomes its StrEnum member (equal to the string it was given).
        for name, choices in (("kind", ClaimKind), ("subject", Subject), ("plot", Plot), ("model_metric", ModelMetric)):
            object.__setattr__(self, name, _choice(where, name, getattr(self, name), choices, name == "model_metric"))
        if self.alternative not in ("greater", "less"):
            raise ValueError(f"{where}: alternative must be 'greater' or 'less', got {self.alternative!r}")
        if not isinstance(self.minimal_effect, bool):
            raise TypeError(f"{where}: minimal_effect must be True or False, got {self.minimal_effect!r}")
        if not isinstance(self.metric, Metric):
            raise TypeError(f"{where}: metric must be a cnnclaims.Metric, got {type(self.metric).__name__}")
        if self.kind == "threshold":
            if self.threshold is None or not math.isfinite(self.threshold):
                raise ValueError(f"{where}: a threshold claim needs a finite threshold")
        if not (isinstance(self.sesoi, (int, float)) and self.sesoi > 0):
            raise ValueError(
                f"{where}: sesoi must be a positive number in the metric's units, got {self.sesoi!r} "
                "(the smallest effect that would matter; see docs/concepts.md, 'The verdicts, in plain words')"
            )
        if self.sesoi_per_decade is not None and not (
            isinstance(self.sesoi_per_decade, (int, float))
            and not isinstance(self.sesoi_per_decade, bool)
            and math.isfinite(self.sesoi_per_decade)
            and self.sesoi_per_decade > 0
        ):
            raise ValueError(
                f"{where}: sesoi_per_decade must be a positive number in the metric's units per decade of "
                f"training-set size, or None (the SESOI over the decades between the conditions' sizes), "
                f"got {self.sesoi_per_decade!r}"
            )
        if self.scopes is None:
            object.__setattr__(self, "scopes", SCOPE_KINDS if self.kind == "compare" else SCOPE_KINDS[:3])
        if isinstance(self.scopes, str):  # ("seeds") is a string, not a tuple: said, not split into letters
            raise TypeError(
                f"{where}: scopes must be a tuple of scope kinds, got the string {self.scopes!r}; write "
                f"({self.scopes!r},)"
            )
        assert self.scopes is not None  # set above when it was None
        object.__setattr__(self, "scopes", tuple(self.scopes))
        bad = [s for s in self.scopes if s not in SCOPE_KINDS]
        if bad or not self.scopes:
            raise ValueError(
                f"{where}: scopes must be among {', '.join(SCOPE_KINDS)}, got {self.scopes!r} (the images "
                "scope is declared as 'images' whatever name the experiment gives it in test ids, e.g. "
                "'frogs' or 'eights')"
            )
        if self.kind != "compare" and SWEEP in self.scopes:
            raise ValueError(
                f"{where}: the sizes scope tests a trend of a comparison (a vs b along training-set "
                "size); a threshold claim has none: leave 'sizes' out of its scopes"
            )
        if self.sesoi_per_decade is not None and SWEEP not in self.scopes:
            raise ValueError(
                f"{where}: sesoi_per_decade is the sizes scope's margin, and this claim has no sizes scope; "
                "leave sesoi_per_decade out, or add 'sizes' to its scopes (comparisons only)"
            )
        if self.subject == "input" and "seeds" in self.scopes:
            raise ValueError(f"{where}: a claim about the input images has no seeds scope (no model is involved)")
        if not 0 < self.alpha < 1:
            raise ValueError(f"{where}: alpha must be in (0, 1), got {self.alpha}")

    @property
    def name(self) -> str:
        return f"{self.id}-{self.slug}"

    @property
    def stat(self) -> str:
        return self.metric.name

    @property
    def tier(self) -> str:
        return PRIMARY if self.primary else SECONDARY

    @property
    def directional(self) -> bool:
        return self.kind == "compare"

    @property
    def label(self) -> str:
        return self.metric.title

    @property
    def seeds_label(self) -> str:
        return "test accuracy" if self.model_metric == "test_accuracy" else f"mean {self.label} over the images"

    def describe(self, a: str = "a", b: str = "b") -> str:
        rel = ">" if self.alternative == "greater" else "<"
        if self.kind == "compare":
            return f"{self.label}: {a} {rel} {b}"
        who = {"a": a, "b": b, "input": "input", "both": f"both {a} and {b}"}[self.subject]
        return f"{self.label} of {who} {rel} {self.threshold:g}"


@dataclass(frozen=True)
class Condition:
    """A named training recipe. ``build_model`` (a function returning an uncompiled
    model) replaces the experiment's builder for this condition; ``subset(y_train
    (n,) int, n, seed) -> sorted indices`` replaces the class-stratified subset (the
    labels it gets are the training pool's: every training image, less an
    ``EarlyStopping("train-holdout")``'s holdout; its indices are positions in them)."""

    name: str
    build_model: Callable[..., Any] | None = None
    subset: Callable[..., Any] | None = None
    label: str = ""

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").replace("-", "").isalnum() or self.name == NULL:
            raise ValueError(
                f"condition name {self.name!r}: letters, digits, '-', '_' and not {NULL!r} "
                "(it names cache folders and table columns)"
            )


@dataclass(frozen=True)
class Profile:
    """How big a run is: training images per condition, epochs, early stopping, seeds."""

    name: str
    n_train: dict[str, int]  # condition name -> training images (class-stratified subset)
    max_epochs: int
    patience: int  # EarlyStopping on the monitoring images' loss (Experiment.early_stopping), best weights restored
    n_seeds: int  # models per condition (the seeds scope's N)
    batch_size: int = 32
    learning_rate: float = 1e-3
    null_seed_offset: int = 1000  # the null group's seeds: offset + 0..n_seeds-1
    # The dose-response sweep (the sizes scope): training-set sizes, ascending, and the
    # models per size (seeds 0..size_seeds-1; 0: none). Sizes equal to a condition's
    # n_train reuse that condition's models when their subsets nest (see
    # training.sweep_specs).
    sizes: tuple[int, ...] = ()
    size_seeds: int = 0

    def __post_init__(self) -> None:
        where = f"profile {self.name!r}"
        for field_name, low in (("max_epochs", 1), ("patience", 0), ("n_seeds", 1), ("batch_size", 1)):
            value = getattr(self, field_name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{where}: {field_name} must be an integer of at least {low}, got {value!r}")
        if not isinstance(self.n_train, dict) or not self.n_train:
            raise ValueError(
                f"{where}: n_train must map each condition's name to its training images, "
                f"e.g. {{'a_name': 10000, 'b_name': 10000}}, got {self.n_train!r}"
            )
        for cond, n in self.n_train.items():
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise ValueError(f"{where}: n_train[{cond!r}] must be a positive number of images, got {n!r}")
        if not self.learning_rate > 0:
            raise ValueError(f"{where}: learning_rate must be positive, got {self.learning_rate!r}")
        object.__setattr__(self, "sizes", tuple(self.sizes))
        if self.sizes:
            if any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in self.sizes):
                raise ValueError(f"{where}: sizes must be positive numbers of training images, got {self.sizes!r}")
            if list(self.sizes) != sorted(set(self.sizes)) or len(self.sizes) < 3:
                raise ValueError(
                    f"{where}: sizes must be at least 3 distinct sizes in ascending order (a trend "
                    f"needs three points), got {self.sizes!r}"
                )
            if isinstance(self.size_seeds, bool) or not isinstance(self.size_seeds, int) or self.size_seeds < 2:
                raise ValueError(
                    f"{where}: size_seeds must be an integer of at least 2 (models per size) when "
                    f"sizes are given, got {self.size_seeds!r}"
                )

    def seeds(self) -> list[int]:
        return list(range(self.n_seeds))

    def n_models(self) -> int:
        """Models a run of this profile trains: n_seeds for each condition and the null
        group, plus the sweep's at sizes that are not a condition's (those reuse the
        condition's models when their subsets nest; see training.sweep_plan)."""
        own = [n for n in self.sizes if n not in self.n_train.values()]
        return 3 * self.n_seeds + len(own) * self.size_seeds

    def null_seeds(self) -> list[int]:
        return [self.null_seed_offset + s for s in range(self.n_seeds)]

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "name": self.name,
            "n_train": dict(self.n_train),
            "max_epochs": self.max_epochs,
            "patience": self.patience,
            "n_seeds": self.n_seeds,
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
        }
        if self.sizes:  # left out otherwise, so profiles without a sweep keep their dicts
            d.update(sizes=list(self.sizes), size_seeds=self.size_seeds)
        return d

    def with_seeds(self, n_seeds: int | None) -> Profile:
        if n_seeds is None:
            return self
        if n_seeds < 1:
            raise ValueError(f"--seeds must be at least 1, got {n_seeds}")
        return replace(self, n_seeds=n_seeds)


@dataclass(frozen=True)
class Probe:
    """The probe class (by name, one of the experiment's ``classes``), the single probe
    image's test-set index (default: the first test image of the class), and the name
    of the images scope in test ids and pins (default: the class name + "s")."""

    class_name: str
    index: int | None = None
    scope: str | None = None

    @property
    def scope_name(self) -> str:
        return self.scope or f"{self.class_name}s"


@dataclass(frozen=True)
class Experiment:
    """A declared experiment (see the module docstring). ``a`` and ``b`` are the two
    conditions compared: every "compare" claim reads "a <alternative> b"."""

    name: str
    title: str
    classes: tuple[str, ...]
    load_data: Callable[..., Any]  # (data_path, cache_dir, progress) -> cnnclaims.data.Dataset or ((x, y), (x, y))
    build_model: Callable[..., Any]
    a: Condition
    b: Condition
    probe: Probe
    claims: tuple[Claim, ...]
    profiles: dict[str, Profile]
    default_profile: str = ""
    input_shape: tuple[int, ...] = (32, 32, 3)  # (height, width, channels) of every image, channels last
    # The softmax layer's path (default: the model's last layer); for a model with several
    # outputs, the one that gives the class probabilities (that output alone is trained).
    output_layer: str = ""
    # For a model with several inputs: feed(images (n, H, W, C) float32 in [0, 1]) ->
    # {input name: array (n, ...)}, a pure module-level function (see cnnclaims.modelio).
    feed: Callable[..., Any] | None = None
    version: int = 1  # bump when a metric's code changes, so cached statistics are recomputed
    pins_name: str = "pinned_verdicts.json"
    extra: dict[str, Any] = field(default_factory=dict, compare=False)  # free-form, for the declaring module
    # The experiment's own figures (``figures.make_figures``): (run, folder, progress) ->
    # {name: (PNG path, claim ids it supports)}, a function of a ``cnnclaims.run.Run``.
    figures: Callable[[Any, Path, Callable[..., Any]], dict[str, Any]] | None = field(default=None, compare=False)
    # Which images early stopping and the best-epoch checkpoint monitor (monitoring.EarlyStopping):
    # by default the article's, the whole test set, also evaluated (leakage).
    early_stopping: EarlyStopping = EarlyStopping()

    def __post_init__(self) -> None:
        where = f"experiment {self.name!r}"
        self._check_early_stopping(where)
        if "figures" in self.extra:
            import warnings

            warnings.warn(
                f"{where}: extra['figures'] is deprecated; declare Experiment(..., figures=...)",
                DeprecationWarning,
                stacklevel=3,
            )
            if self.figures is None:
                object.__setattr__(self, "figures", self.extra["figures"])
        if self.figures is not None and not callable(self.figures):
            raise TypeError(
                f"{where}: figures must be a function (run, folder, progress) -> {{name: (path, claim "
                f"ids)}}, got {self.figures!r}"
            )
        self._check_contract(where)
        if self.a.name == self.b.name:
            raise ValueError(f"{where}: conditions a and b need different names, both are {self.a.name!r}")
        if self.probe.class_name not in self.classes:
            raise unknown("probe class", self.probe.class_name, self.classes)
        ids = [c.id for c in self.claims]
        if len(set(ids)) != len(ids):
            twice = sorted({i for i in ids if ids.count(i) > 1})
            slugs = "; ".join(f"{i}: " + ", ".join(c.slug for c in self.claims if c.id == i) for i in twice)
            raise ValueError(
                f"{where}: claim ids repeat: {twice} ({slugs}); give each claim its own id (ids name "
                "test cases and pins)"
            )
        if not self.claims:
            raise ValueError(f"{where}: declare at least one claim")
        names: dict[str, Metric] = {}
        for c in self.claims:
            for m in (c.metric, *c.extras):
                if names.setdefault(m.name, m) is not m:
                    raise ValueError(f"{where}: two different metrics are named {m.name!r}")
        if not self.profiles:
            raise ValueError(f"{where}: declare at least one profile")
        for p in self.profiles.values():
            missing = {self.a.name, self.b.name} - set(p.n_train)
            extra = set(p.n_train) - {self.a.name, self.b.name}
            if missing:
                raise ValueError(
                    f"{where}: profile {p.name!r} gives no training size for {sorted(missing)}"
                    + (f" (it names {sorted(extra)}: a misspelt condition?)" if extra else "")
                )
            if extra:
                raise ValueError(
                    f"{where}: profile {p.name!r} names unknown conditions {sorted(extra)}; "
                    f"the conditions are {self.a.name!r} and {self.b.name!r}"
                )
            if p.sizes:
                odd = [n for n in p.sizes if n % len(self.classes)]
                if odd:
                    raise ValueError(
                        f"{where}: profile {p.name!r}: sweep sizes {odd} are not divisible by the "
                        f"{len(self.classes)} classes (the subsets are class-stratified); use multiples "
                        f"of {len(self.classes)}"
                    )
                same = self.a.build_model is self.b.build_model and self.a.subset is None and self.b.subset is None
                if not same or p.n_train[self.a.name] == p.n_train[self.b.name]:
                    raise ValueError(
                        f"{where}: profile {p.name!r} declares a sizes sweep, which reads the claims as a trend "
                        f"in training-set size; that needs conditions {self.a.name!r} and {self.b.name!r} to differ "
                        "in training-set size alone (the same build_model, the default class-stratified subset, "
                        "different n_train)"
                    )
        if self.default_profile and self.default_profile not in self.profiles:
            raise unknown("profile", self.default_profile, self.profiles)
        if self.probe.scope_name in ("probe", "seeds", SWEEP):
            raise ValueError(f"{where}: the images scope cannot be named {self.probe.scope_name!r}")

    def _check_early_stopping(self, where: str) -> None:
        """``early_stopping`` is an ``EarlyStopping`` whose holdout is a multiple of the
        classes: TypeError or ValueError naming the fix."""
        es = self.early_stopping
        if not isinstance(es, EarlyStopping):
            fix = f"EarlyStopping({es!r})" if isinstance(es, str) else "EarlyStopping('test-half')"
            raise TypeError(
                f"{where}: early_stopping must be a cnnclaims.EarlyStopping, got {type(es).__name__} {es!r}; "
                f"write early_stopping={fix}"
            )
        k = len(self.classes) if isinstance(self.classes, (tuple, list)) else 0
        if es.holdout and k and es.holdout % k:
            raise ValueError(
                f"{where}: early_stopping holds out {es.holdout} training images, not a multiple of the "
                f"{k} classes (the holdout is class-stratified); use a multiple of {k}, e.g. "
                f"holdout={max(k, es.holdout // k * k)}"
            )

    def _check_contract(self, where: str) -> None:
        """The images' shape, the classes, the feed and the output: ValueError naming the fix."""
        shape = self.input_shape
        if (
            not isinstance(shape, (tuple, list))
            or len(shape) != 3
            or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in shape)
        ):
            raise ValueError(
                f"{where}: input_shape must be (height, width, channels) of positive integers, "
                f"channels last, e.g. (28, 28, 1) or (32, 32, 3); got {shape!r}"
            )
        object.__setattr__(self, "input_shape", tuple(shape))
        if shape[0] in (1, 3, 4) and shape[2] > 4 and shape[1] == shape[2]:
            raise ValueError(
                f"{where}: input_shape {tuple(shape)} looks channels-first; cnnclaims takes images "
                f"channels last: input_shape=({shape[1]}, {shape[2]}, {shape[0]}) (transpose the "
                "arrays with x.transpose(0, 2, 3, 1))"
            )
        classes = tuple(self.classes) if isinstance(self.classes, (tuple, list)) else None
        if (
            not classes
            or len(classes) < 2
            or len(set(classes)) != len(classes)
            or not all(isinstance(c, str) and c for c in classes)
        ):
            raise ValueError(
                f"{where}: classes must be two or more distinct names, in label order "
                f"(label k is classes[k]), e.g. ('0', '1', ..., '9'); got {self.classes!r}"
            )
        object.__setattr__(self, "classes", classes)
        if self.feed is not None and not callable(self.feed):
            raise TypeError(
                f"{where}: feed must be a function from a batch of images to {{input name: array}}, got {self.feed!r}"
            )
        if not isinstance(self.output_layer, str):
            raise TypeError(f"{where}: output_layer must be a layer path (a string), got {self.output_layer!r}")

    # --- names ------------------------------------------------------------------
    @property
    def probe_class(self) -> int:
        return self.classes.index(self.probe.class_name)

    @property
    def conditions(self) -> dict[str, Condition]:
        return {self.a.name: self.a, self.b.name: self.b}

    @property
    def roles(self) -> tuple[str, str, str]:
        """Every group of trained models: a, b and the null control's group."""
        return (self.a.name, self.b.name, NULL)

    def recipe(self, role: str) -> Condition:
        """The training recipe of a group (the null group trains b's)."""
        if role == NULL:
            return self.b
        if role not in self.conditions:
            raise unknown("condition", role, self.roles)
        return self.conditions[role]

    @property
    def scopes(self) -> tuple[str, str, str]:
        """Scope names in order: probe, the images scope, seeds."""
        return ("probe", self.probe.scope_name, "seeds")

    def scopes_for(self, profile: Profile) -> tuple[str, ...]:
        """The scopes a run under ``profile`` has: ``scopes``, then ``"sizes"`` when the
        profile declares a sweep."""
        return self.scopes + ((SWEEP,) if profile.sizes else ())

    def scope_kind(self, scope: str) -> str:
        if scope in ("probe", "seeds", SWEEP):
            return scope
        if scope == self.probe.scope_name:
            return "images"
        raise unknown("scope", scope, self.scopes + (SWEEP,))

    def scope_name(self, kind: str) -> str:
        return {"probe": "probe", "images": self.probe.scope_name, "seeds": "seeds", SWEEP: SWEEP}[kind]

    def profile(self, name: str | None = None, n_seeds: int | None = None) -> Profile:
        name = name or self.default_profile or next(iter(self.profiles))
        if name not in self.profiles:
            raise unknown("profile", name, self.profiles)
        return self.profiles[name].with_seeds(n_seeds)

    # --- claims -----------------------------------------------------------------
    def claim(self, claim_id: str) -> Claim:
        for c in self.claims:
            if c.id == claim_id:
                return c
        raise unknown("claim", claim_id, [c.id for c in self.claims])

    def claims_for(self, scope: str | None = None, directional_only: bool = False) -> list[Claim]:
        """Claims tested in ``scope`` (a name or a kind; None: all), in declaration order."""
        kind = None if scope is None else (scope if scope in SCOPE_KINDS else self.scope_kind(scope))
        # c.scopes is never None after Claim.__post_init__
        out = [c for c in self.claims if kind is None or kind in cast("tuple[str, ...]", c.scopes)]
        return [c for c in out if c.directional] if directional_only else out

    @property
    def metrics(self) -> dict[str, Metric]:
        """``{name: Metric}`` of every claim's metric and extras, in declaration order."""
        out: dict[str, Metric] = {}
        for c in self.claims:
            for m in (c.metric, *c.extras):
                out.setdefault(m.name, m)
        for _desc, _who, stat, _op, _val in (pc for c in self.claims for pc in c.probe_checks):
            if stat not in out and stat not in BUILTIN_METRICS:
                raise unknown("metric in a probe check", stat, list(out) + list(BUILTIN_METRICS))
        return out

    def stat_label(self, stat: str) -> str:
        m = self.metrics.get(stat) or BUILTIN_METRICS.get(stat)
        return m.title if m else stat

    def undefined_why(self, stat: str) -> str:
        m = self.metrics.get(stat) or BUILTIN_METRICS.get(stat)
        return (m.undefined_why if m else "") or "the statistic has no value for this input"


def claims_key(experiment: Experiment) -> list[Any]:
    """What of a declaration decides its verdicts, for cache keys: the experiment's
    names and every field of every claim, read from ``dataclasses.fields(Claim)`` so
    that a new field is keyed without an edit here. Metrics are keyed by name and
    title (their code is versioned by ``experiment.version`` and
    ``evidence.metrics_key``)."""
    return [
        experiment.name,
        experiment.version,
        experiment.scopes,
        experiment.a.name,
        experiment.b.name,
        [{f.name: _plain(getattr(c, f.name)) for f in fields(Claim)} for c in experiment.claims],
    ]


def _plain(value: Any) -> Any:
    """A claim field as JSON: a Metric by name and title, tuples as lists."""
    if isinstance(value, Metric):
        return [value.name, value.title]
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


# Per-image statistics every experiment has (from the softmax and the labels).
def _argmax(acts, labels):
    return np.asarray(acts["__output__"]).argmax(axis=1).astype(np.float64)


def _correct(acts, labels):
    return (np.asarray(acts["__output__"]).argmax(axis=1) == labels).astype(np.float64)


def _p_true(acts, labels):
    p = np.asarray(acts["__output__"])
    return p[np.arange(len(p)), labels].astype(np.float64)


BUILTIN_METRICS = {
    "argmax": Metric("argmax", ("__output__",), _argmax, "predicted class"),
    "correct": Metric("correct", ("__output__",), _correct, "correct (per image)"),
    "p_true": Metric("p_true", ("__output__",), _p_true, "softmax p(true class)"),
}
OUTPUT = "__output__"  # stands for the experiment's softmax layer in Metric.layers


def softmax_metric(name: str, fn: Callable[..., Any], label: str = "", undefined_why: str = "") -> Metric:
    """A Metric of the softmax output alone: ``fn(probs (n, classes), labels (n,))``."""
    return Metric(name, (OUTPUT,), lambda acts, labels: fn(acts[OUTPUT], labels), label, undefined_why)
