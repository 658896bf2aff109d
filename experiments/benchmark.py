"""Measure the harness against the machine's roof; print figures and write JSON.

    python experiments/benchmark.py --data ../shared/data/cifar10-jpeg [--epochs 2] [--suite smoke]

Prints, side by side: images/s and achieved GFLOP/s of the project's training loop
(``steps_per_execution=50``) and of the article's plain ``fit`` (batch 32, one step
per execution) on the same data and seed, whether their weights are bitwise equal;
a practical roof (a large float32 matrix product through TensorFlow) and each loop's
fraction of it; activation extraction time for the 10,000 test images; and cold/warm
wall time and peak resident memory of the test suite for a profile. Asserts nothing.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def forward_flops(model) -> int:
    """Multiply-adds x 2 of one image's forward pass, from the layer shapes."""
    total = 0
    for layer in model.layers:
        cfg = layer.get_config()
        out = tuple(layer.output.shape[1:])
        if "kernel_size" in cfg:  # Conv2D
            cin = layer.input.shape[-1]
            kh, kw = cfg["kernel_size"]
            total += 2 * int(np.prod(out[:-1])) * kh * kw * cin * out[-1]
        elif "units" in cfg:  # Dense (applied per position before flattening)
            cin = layer.input.shape[-1]
            positions = int(np.prod(out[:-1])) if len(out) > 1 else 1
            total += 2 * positions * cin * out[-1]
    return total


def matmul_roof(n: int = 2048, repeats: int = 20) -> float:
    """Best GFLOP/s of an n x n float32 matrix product chain through TensorFlow."""
    import tensorflow as tf

    a = tf.random.uniform((n, n), dtype=tf.float32)
    b = tf.random.uniform((n, n), dtype=tf.float32)

    @tf.function
    def chain(a, b):
        c = a
        for _ in range(repeats):
            c = tf.matmul(c, b) * 1e-3
        return c

    chain(a, b).numpy()  # trace
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        chain(a, b).numpy()
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 * repeats / best / 1e9


def time_training(spec, data, steps_per_execution: int):
    from cnnclaims.training import fit, prepare, stratified_subset

    idx = stratified_subset(data.y_train, spec.n_train, spec.seed)
    x, y = prepare(data.x_train[idx], data.y_train[idx])
    xv, yv = prepare(data.x_test, data.y_test)
    epoch_times = []

    def progress(msg):
        if "] epoch" in msg:
            epoch_times.append(float(msg.rsplit("(", 1)[1].split("s,")[0]))
        print("   ", msg, flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        model, history, epochs, seconds = fit(replace(spec, steps_per_execution=steps_per_execution), x, y, xv, yv,
                                              Path(tmp) / "best.weights.h5", progress)
    return model, seconds, epoch_times


def _tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants (training workers included)."""
    children: dict = {}
    rss = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(d.name))
            rss[int(d.name)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += rss.get(p, 0)
        todo.extend(children.get(p, []))
    return total


def time_suite(profile: str, cache_dir: Path, data: str | None, extra=()) -> dict:
    """Wall time and peak resident memory of `pytest --profile ...` in a child process:
    the largest single process, and the whole process tree sampled every second."""
    import threading

    # "--opt=value" form: pytest takes a bare existing path for a test path and would
    # pick its rootdir from it, missing this project's conftest.
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
           f"--profile={profile}", f"--cache-dir={cache_dir}", *extra]
    if data:
        cmd.append(f"--data={data}")
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = [0]

    def sample():
        while proc.poll() is None:
            peak[0] = max(peak[0], _tree_rss(proc.pid))
            time.sleep(1.0)

    threading.Thread(target=sample, daemon=True).start()
    lines = []
    for line in proc.stdout:
        lines.append(line.rstrip("\n"))
        if line.startswith("cnnclaims: trained") or line.startswith("cnnclaims: training "):
            print("   ", line.rstrip(), flush=True)
    rc = proc.wait()
    seconds = time.perf_counter() - t
    import resource

    tail = [l for l in lines if " passed" in l or " failed" in l]
    return {"returncode": rc, "seconds": seconds,
            "peak_rss_gib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20,
            "peak_tree_rss_gib": peak[0] / 2**30, "summary": tail[-1] if tail else ""}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.environ.get("CNNCLAIMS_DATA"))
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--epochs", type=int, default=2, help="epochs per training loop (the first is warm-up)")
    ap.add_argument("--suite", choices=("none", "smoke", "article"), default="smoke",
                    help="profile of the test suite to time cold and warm (default smoke)")
    ap.add_argument("--suite-cache", default=None,
                    help="cache folder for the suite timing (default: a fresh one, so the first run is cold)")
    ap.add_argument("--suite-args", default="", help="extra pytest arguments for the timed suite runs")
    ap.add_argument("--suite-only", action="store_true", help="only time the test suite")
    ap.add_argument("--skip-training", action="store_true", help="skip the training loop comparison")
    ap.add_argument("--out", default=str(ROOT / "build" / "benchmarks" / "benchmark.json"))
    args = ap.parse_args(argv)

    from cnnclaims.activations import layer_activations
    from cnnclaims.compat import set_determinism, versions
    from cnnclaims.data import load_cifar10
    from cnnclaims.evidence import image_stats
    from cnnclaims.model import build_model
    from cnnclaims.training import TrainSpec

    res = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(), **versions()}}
    if args.suite_only:
        suite(args, res)
        return
    data = load_cifar10(args.data, args.cache_dir)
    set_determinism(0)
    model = build_model()
    fwd = forward_flops(model)
    train_flops = 3 * fwd  # forward + backward (two products per layer)
    res["flops"] = {"forward_per_image": fwd, "train_per_image": train_flops}
    print(f"model: {fwd / 1e6:.2f} MFLOP forward, ~{train_flops / 1e6:.1f} MFLOP per training image")

    roof = matmul_roof()
    res["roof_gflops"] = roof
    print(f"practical roof (float32 2048^2 matmul through TF): {roof:.1f} GFLOP/s")

    if not args.skip_training:
        spec = TrainSpec("benchmark", len(data.x_train), seed=0, max_epochs=args.epochs, patience=args.epochs)
        loops = {}
        weights = {}
        for name, spe in (("article plain fit", 1), ("project loop", spec.steps_per_execution)):
            print(f"training: {name} (steps_per_execution={spe}), {args.epochs} epochs ...", flush=True)
            m, seconds, epochs = time_training(spec, data, spe)
            # Median of the epochs after the first (tracing, warm-up): single epochs on
            # this VM sometimes stall for seconds.
            steady = epochs[1:] or epochs
            per_epoch = float(np.median(steady))
            n_tr, n_val = spec.n_train, len(data.x_test)
            flops_epoch = n_tr * train_flops + n_val * fwd
            loops[name] = {"steps_per_execution": spe, "seconds_total": seconds, "epoch_seconds": epochs,
                           "steady_epoch_seconds": per_epoch, "images_per_second": n_tr / per_epoch,
                           "gflops": flops_epoch / per_epoch / 1e9, "fraction_of_roof": flops_epoch / per_epoch / 1e9 / roof}
            weights[name] = m.get_weights()
        equal = all(np.array_equal(a, b) for a, b in zip(*weights.values()))
        a, b = loops["article plain fit"], loops["project loop"]
        res["training"] = {"loops": loops, "weights_bitwise_equal": equal,
                           "speedup": a["steady_epoch_seconds"] / b["steady_epoch_seconds"]}
        print(f"\n{'loop':20s} {'s/epoch':>8s} {'img/s':>8s} {'GFLOP/s':>8s} {'of roof':>8s}")
        for name, r in loops.items():
            print(f"{name:20s} {r['steady_epoch_seconds']:8.2f} {r['images_per_second']:8.0f} {r['gflops']:8.1f} "
                  f"{r['fraction_of_roof']:8.1%}")
        print(f"speed-up {res['training']['speedup']:.2f}x; weights bitwise equal: {equal}\n")

    x = data.x_test
    layer_activations(model, x[:500], ["conv2d_6"])  # warm-up
    t = time.perf_counter()
    layer_activations(model, x, ["conv2d_1", "conv2d_6", "dense_2"])
    t_acts = time.perf_counter() - t
    t = time.perf_counter()
    image_stats(model, x, data.y_test)
    t_stats = time.perf_counter() - t
    res["activations"] = {"images": len(x), "layer_activations_seconds": t_acts, "image_stats_seconds": t_stats}
    print(f"activations of {len(x)} test images (conv2d_1, conv2d_6, dense_2): {t_acts:.2f}s; "
          f"all per-image statistics: {t_stats:.2f}s")

    suite(args, res)


def suite(args, res) -> None:
    if args.suite != "none":
        cache = Path(args.suite_cache or tempfile.mkdtemp(prefix="cnnclaims-bench-"))
        print(f"test suite, {args.suite} profile, cache {cache} ...", flush=True)
        res["suite"] = {"profile": args.suite, "cache": str(cache)}
        for label in ("cold", "warm"):
            r = time_suite(args.suite, cache, args.data, args.suite_args.split())
            res["suite"][label] = r
            print(f"  {label}: {r['seconds']:.1f}s, peak RSS {r['peak_rss_gib']:.2f} GiB (largest process), "
                  f"{r['peak_tree_rss_gib']:.2f} GiB (all processes), exit {r['returncode']} "
                  f"({r['summary']})", flush=True)

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"figures written to {out}")


if __name__ == "__main__":
    main()
