"""Wall time of one small training plan on each executor: the local process pool with
2 workers, Ray with 1 worker and Ray with 2 workers (a local Ray started for each),
every run into a fresh temporary cache. Prints the times, the overhead ratio
Ray(2) / local(2) (target: 1.05 or less) and the machine's load averages around each
run (other jobs on the cores move the figures). A script that prints figures; it
asserts nothing about time.

    python benchmarks/executors.py --data PATH [--models 4] [--images 10000] [--epochs 3]

``--data``: CIFAR-10 (default $CNNCLAIMS_DATA); decoded once into ``--data-cache``
(default: a folder under the system's temporary folder, kept between runs) and copied
into each fresh cache, as a real run's driver would have decoded it there before
training. The models of the three runs are compared weight by weight at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:  # not Linux
        return "?"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=os.environ.get("CNNCLAIMS_DATA"), help="CIFAR-10 (default $CNNCLAIMS_DATA)")
    p.add_argument(
        "--data-cache",
        default=str(Path(tempfile.gettempdir()) / "cnnclaims-bench-data"),
        help="where the decoded data is kept between runs",
    )
    p.add_argument("--models", type=int, default=4, help="models in the plan (seeds 0..N-1)")
    p.add_argument("--images", type=int, default=10_000, help="training images per model (the dummy's size)")
    p.add_argument("--epochs", type=int, default=3, help="epochs per model (no early stopping)")
    p.add_argument("--runs", default="local2,ray1,ray2", help="comma-separated: local2, ray1, ray2")
    p.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run the sequence this many times (the load of other jobs drifts; medians are compared)",
    )
    args = p.parse_args(argv)
    if not args.data:
        p.error("pass --data PATH or set CNNCLAIMS_DATA to CIFAR-10")

    from cnnclaims.data import load_cifar10
    from cnnclaims.training import TrainSpec, get_trained, train_missing

    t0 = time.perf_counter()
    data = load_cifar10(args.data, args.data_cache, progress=print)
    print(f"data: {data.source}, {len(data.y_train)} + {len(data.y_test)} images ({time.perf_counter() - t0:.1f}s)")
    spec = TrainSpec("dummy", args.images, 0, max_epochs=args.epochs, patience=args.epochs)
    plan = [replace(spec, seed=s) for s in range(args.models)]
    print(f"plan: {args.models} models x {args.images} images x {args.epochs} epochs, one TensorFlow thread each")
    runs = {"local2": ("local", 2), "ray1": ("ray", 1), "ray2": ("ray", 2)}
    times, caches = {}, {}
    root = Path(tempfile.mkdtemp(prefix="cnnclaims-bench-"))
    try:
        for rep, name in [(r, n) for r in range(args.repeat) for n in args.runs.split(",")]:
            executor, workers = runs[name]
            cache = root / f"{name}-{rep}"
            shutil.copytree(Path(args.data_cache) / "data", cache / "data")  # decoded, as a real run's driver has it
            before = load_average()
            lines = []
            t = time.perf_counter()
            trained = train_missing(
                plan, data, args.data, cache, workers=workers, progress=lines.append, executor=executor
            )
            seconds = time.perf_counter() - t
            times.setdefault(name, []).append(seconds)
            if len(trained) != len(plan):
                print(f"{name}: trained {len(trained)} of {len(plan)} models; the figures are not comparable")
                return 1
            caches[f"{name}-{rep}"] = cache
            print(
                f"{name:7s} {executor:5s} {workers} worker(s): {seconds:7.1f}s  (load average before "
                f"{before}, after {load_average()})",
                flush=True,
            )
        med = {name: statistics.median(ts) for name, ts in times.items()}
        if args.repeat > 1:
            print("medians: " + ", ".join(f"{name} {m:.1f}s" for name, m in med.items()))
        if "local2" in med and "ray2" in med:
            print(f"overhead Ray(2) / local(2): {med['ray2'] / med['local2']:.3f} (target <= 1.05)")
        if "ray1" in med and "ray2" in med:
            print(f"speed-up Ray(2) over Ray(1): {med['ray1'] / med['ray2']:.2f}x")
        import numpy as np

        names = list(caches)
        same = all(
            all(
                np.array_equal(x, y)
                for x, y in zip(
                    get_trained(s, data, caches[names[0]], progress=print).model.get_weights(),
                    get_trained(s, data, caches[n], progress=print).model.get_weights(),
                    strict=False,
                )
            )
            for s in plan
            for n in names[1:]
        )
        print(f"models of {', '.join(names)} identical weight by weight: {same}")
        return 0 if same else 1
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":  # the local pool's spawned workers import this module
    sys.exit(main())
