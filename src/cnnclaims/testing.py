"""Synthetic stand-ins for tests: CIFAR-shaped data on disk and an Experiment whose
models are untrained (seconds to build) but which runs the real evidence, claims,
plot and report code.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from .data import CIFAR10_CLASSES as CLASSES

FROG = CLASSES.index("frog")

# Objects shared with in-process pytester sessions (see tests/test_plugin.py).
SHARED: dict = {}

# The conftest of an in-process pytester session that runs the claims on SHARED's
# synthetic experiment.
INNER_CONFTEST = """
import cnnclaims.testing
from cnnclaims.pytest_plugin import set_experiment

def pytest_configure(config):
    set_experiment(config, cnnclaims.testing.SHARED["experiment"])
"""


def random_cifar(n_per_class_train: int, n_per_class_test: int, seed: int = 0):
    """(x_train, y_train), (x_test, y_test) of random uint8 images in label order."""
    return random_images(n_per_class_train, n_per_class_test, seed)


def random_images(
    n_per_class_train: int, n_per_class_test: int, seed: int = 0, shape: tuple = (32, 32, 3), n_classes: int = 10
):
    """(x_train, y_train), (x_test, y_test) of random uint8 images of ``shape`` and
    ``n_classes`` classes, in label order (labels uint8 up to 256 classes, else int64)."""
    rng = np.random.default_rng(seed)
    dtype = np.uint8 if n_classes <= 256 else np.int64

    def split(n):
        y = np.repeat(np.arange(n_classes, dtype=dtype), n)
        x = rng.integers(0, 256, size=(len(y), *shape), dtype=np.uint8)
        return x, y

    return split(n_per_class_train), split(n_per_class_test)


def write_batches(folder, train, test) -> Path:
    """Write arrays in the official cifar-10-batches-py format (5 train batches)."""
    folder = Path(folder) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)

    def dump(name, x, y):
        rows = x.transpose(0, 3, 1, 2).reshape(len(x), -1)
        with open(folder / name, "wb") as fh:
            pickle.dump({b"data": rows, b"labels": [int(v) for v in y], b"batch_label": name.encode()}, fh)

    xtr, ytr = train
    for i, part in enumerate(np.array_split(np.arange(len(xtr)), 5), start=1):
        dump(f"data_batch_{i}", xtr[part], ytr[part])
    dump("test_batch", *test)
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump({b"label_names": [c.encode() for c in CLASSES]}, fh)
    return folder


def write_image_folder(folder, train, test, fmt: str = "png") -> Path:
    """Write arrays as train/<class>/NNNN.<fmt> and test/<class>/NNNN.<fmt>."""
    from PIL import Image

    folder = Path(folder)
    for split, (x, y) in (("train", train), ("test", test)):
        counters: dict = {}
        for img, label in zip(x, y, strict=False):
            d = folder / split / CLASSES[label]
            d.mkdir(parents=True, exist_ok=True)
            k = counters.get(label, 0)
            counters[label] = k + 1
            Image.fromarray(img).save(d / f"{k:04d}.{fmt}")
    return folder


def synthetic_experiment(tmp, n_seeds: int = 3, frogs: int = 12, profile: str = "smoke", experiment=None):
    """A Run of ``experiment`` (default: the article) over random images whose models
    are untrained networks.

    Every model is the experiment's architecture with its own random initialisation,
    so verdicts come out however chance has them; tests that need a particular outcome
    pin the opposite verdict or edit the evidence. The images have the experiment's
    ``input_shape`` and classes (CIFAR-10's for the article); ``frogs`` test images per
    class, two training images per class.
    """
    from .compat import set_determinism
    from .data import Cifar10
    from .declaration import SWEEP, load_experiment
    from .modelio import fed, model_io, output_index, probabilities
    from .run import Run
    from .training.entries import TrainedModel
    from .training.spec import recipe_functions, spec_dict, specs_for

    tmp = Path(tmp)
    declared = load_experiment(experiment)
    io = model_io(declared)
    (xtr, ytr), (xte, yte) = random_images(2, max(1, frogs), 0, io.input_shape, io.n_classes)
    exp = Run(profile, cache_dir=tmp / "cache", n_seeds=n_seeds, progress=lambda *_: None, experiment=experiment)
    exp.__dict__["data"] = Cifar10(xtr, ytr, xte, yte, source="synthetic random images", fingerprint="synthetic")

    def untrained(role, spec, init_seed):
        build, _subset = recipe_functions(exp.experiment, exp.a if role == SWEEP else role)
        set_determinism(init_seed)
        model = build()
        path = tmp / "models" / f"{role}-n{spec.n_train}-{spec.seed}"
        path.mkdir(parents=True, exist_ok=True)
        probs = probabilities(
            model.predict(fed(model, io, xte.astype(np.float32) / 255.0), verbose=0),
            output_index(model, io, "synthetic"),
        )
        acc = float(np.mean(probs.argmax(1) == yte))
        record = {
            "key": f"synthetic-{role}-n{spec.n_train}-{spec.seed}",
            "spec": spec_dict(spec),  # as a cached record holds it: JSON-able
            "epochs": 0,
            "best_epoch": 0,
            "test_accuracy": acc,
            "train_seconds": 0.0,
            "history": {},
        }
        return TrainedModel(spec, model, record, path)

    for role in exp.roles:
        exp.loaded[role] = [
            untrained(role, spec, spec.seed + (0 if role == exp.a else 500))
            for spec in specs_for(exp.profile, role, exp.experiment)
        ]
    if exp.profile.sizes:
        # The sweep: its points at a condition's size are that condition's models (as
        # in a real run), the others untrained networks of their own.
        sweep = {}
        for n, specs in exp.sweep["specs"].items():
            sweep[n] = [
                exp.loaded[spec.role][spec.seed]
                if spec.role in exp.roles and spec.seed < len(exp.loaded[spec.role])
                else untrained(spec.role, spec, spec.seed + 700 + n % 89)
                for spec in specs
            ]
        exp.loaded[SWEEP] = sweep
    assert (exp.data.y_test == exp.experiment.probe_class).sum() == frogs
    return exp


class SlowToSend(str):
    """A line that takes 0.3 s to pickle, as a line can still be on its way (a busy
    machine) when the worker's result arrives."""

    def __reduce__(self):
        import time

        time.sleep(0.3)
        return str, (str(self),)


def chatty_worker(spec, *args, lines: int = 50, **kwargs):
    """A stand-in for ``training.executors.local._worker_train`` (importable by spawned workers) that
    trains nothing: it says ``lines`` progress lines, the last one slow to send, and
    returns at once, as a real worker says "trained ..." just before its result."""
    from .training.executors.local import worker_progress

    progress = worker_progress()
    for i in range(lines):
        progress(f"{spec.label} line {i}" if i < lines - 1 else SlowToSend(f"{spec.label} line {i}"))
    return spec.label


def _proc_state(stat_path: Path) -> list:
    """The fields after the command name of a /proc/<pid>/stat file (state first)."""
    return stat_path.read_text().rsplit(")", 1)[1].split()


def descendants(pid: int) -> set:
    """Pids of the living descendants of ``pid`` (from /proc; zombies count as gone)."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = _proc_state(stat)
        except (OSError, IndexError):
            continue
        if fields[0] != "Z":
            parents[int(stat.parent.name)] = int(fields[1])
    found, todo = set(), [pid]
    while todo:
        parent = todo.pop()
        kids = {c for c, p in parents.items() if p == parent}
        found |= kids
        todo += kids
    return found


def alive(pids) -> set:
    """The pids of ``pids`` that still run (from /proc; zombies count as gone)."""
    out = set()
    for pid in pids:
        try:
            if _proc_state(Path(f"/proc/{pid}/stat"))[0] != "Z":
                out.add(pid)
        except (OSError, IndexError):
            pass
    return out
