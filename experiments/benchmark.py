"""Measure the harness against the machine's roof; print figures and write JSON.

    python experiments/benchmark.py --data ../shared/data/cifar10-jpeg [--epochs 3] [--suite smoke]

Prints, side by side, images/s and achieved GFLOP/s of
- the article's plain ``fit`` (batch 32, one step per execution, TensorFlow's default
  thread count = every core), as the article's code runs;
- the same plain fit on one thread (the project's reference: same seed, same data);
- the project's training loop: one model per core at once, one TensorFlow thread and
  ``steps_per_execution=50`` each (seed 0 is compared bitwise with the one-thread fit);
- a bare ``tf.function`` loop of the same steps without Keras (what the kernels cost);
each under portable and native numerics (``--numerics``, cnnclaims.numerics), with a
practical roof per mode (a float32 matrix-product chain through TensorFlow, every core
and one core) and each loop's fraction of the machine's roof (the faster mode's) and of
its own mode's; how much the plain fit's
weights move between every-core and one-thread runs; activation extraction time for
the 10,000 test images; and cold/warm wall time and peak resident memory (largest
process and the whole process tree) of the test suite for a profile. Asserts nothing.
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


def _child(job: dict) -> None:
    """Run one measurement in this (child) process and write its result as .npz/JSON.

    Children exist because TensorFlow's thread count is fixed when it starts: the
    roof and the article's plain fit use every core, the project's workers one each.
    """
    from cnnclaims.compat import TF_THREADS
    from cnnclaims.data import load_cifar10
    from cnnclaims.training import TrainSpec, fit, prepare, stratified_subset

    out = Path(job["out"])
    if job["kind"] == "roof":
        out.write_text(json.dumps({"gflops": matmul_roof(), "threads": TF_THREADS}))
        return
    if job["kind"] == "bare":
        out.write_text(json.dumps({"epoch_seconds": bare_epoch_seconds(job["n"]), "threads": TF_THREADS}))
        return
    data = load_cifar10(job["data"], job["cache_dir"], progress=lambda *_: None)
    spec = TrainSpec(
        "benchmark",
        job["n"],
        seed=job["seed"],
        max_epochs=job["epochs"],
        patience=job["epochs"],
        steps_per_execution=job["spe"],
    )
    idx = stratified_subset(data.y_train, spec.n_train, spec.seed)
    x, y = prepare(data.x_train[idx], data.y_train[idx])
    xv, yv = prepare(data.x_test, data.y_test)
    epoch_times = []

    def progress(msg):
        if "] epoch" in msg:
            epoch_times.append(float(msg.rsplit("(", 1)[1].split("s,")[0]))
            print(f"    [{job['name']}, {TF_THREADS} thread(s)] {msg.split('] ', 1)[1]}", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        model, history, epochs, seconds, _ = fit(spec, x, y, xv, yv, Path(tmp) / "best.weights.h5", progress)
    np.savez(out, *model.get_weights())
    out.with_suffix(".json").write_text(
        json.dumps(
            {
                "epoch_seconds": epoch_times,
                "seconds": seconds,
                "val_accuracy": history["val_accuracy"],
                "threads": TF_THREADS,
            }
        )
    )


def bare_epoch_seconds(n: int, batch: int = 32) -> float:
    """One epoch of the same model, loss and optimizer as a bare tf.function loop over
    batches of 32 (no Keras fit, no callbacks, no validation): what the kernels cost."""
    import tensorflow as tf

    from cnnclaims.compat import keras, set_determinism
    from cnnclaims.model import build_model

    set_determinism(0)
    model, opt = build_model(), keras.optimizers.Adam(1e-3)
    loss = keras.losses.CategoricalCrossentropy()
    n = n // batch * batch
    x = tf.random.uniform((n, 32, 32, 3))
    y = tf.one_hot(tf.random.uniform((n,), 0, 10, tf.int32), 10)

    @tf.function
    def epoch(x, y):
        for i in tf.range(tf.shape(x)[0] // batch):
            xb, yb = x[i * batch : (i + 1) * batch], y[i * batch : (i + 1) * batch]
            with tf.GradientTape() as tape:
                value = loss(yb, model(xb, training=True))
            grads = tape.gradient(value, model.trainable_variables)
            opt.apply_gradients(zip(grads, model.trainable_variables, strict=False))

    epoch(x[: batch * 4], y[: batch * 4])  # trace
    times = []
    for _ in range(2):
        t = time.perf_counter()
        epoch(x, y)
        times.append(time.perf_counter() - t)
    return min(times)


def run_children(jobs: list, tmp: Path) -> list:
    """Start every job at once (each in its own process, with its thread count), wait."""
    procs = []
    for i, job in enumerate(jobs):
        job = {**job, "out": str(tmp / f"job{i}.npz")}
        env = {
            **os.environ,
            "CNNCLAIMS_TF_THREADS": str(job["threads"]),
            "CNNCLAIMS_NUMERICS": job.get("numerics", "portable"),
        }
        for name in ("TF_ENABLE_ONEDNN_OPTS", "ONEDNN_MAX_CPU_ISA"):  # each mode sets its own (numerics.apply)
            env.pop(name, None)
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(job)]
        procs.append((job, subprocess.Popen(cmd, env=env)))
    results = []
    for job, proc in procs:
        if proc.wait() != 0:
            raise SystemExit(f"benchmark child {job['name']} failed (exit {proc.returncode})")
        out = Path(job["out"])
        if job["kind"] == "train":
            with np.load(out) as z:
                weights = [z[k] for k in z.files]
            results.append({**json.loads(out.with_suffix(".json").read_text()), "weights": weights})
        else:
            results.append(json.loads(out.read_text()))
    return results


def weight_difference(a: list, b: list) -> dict:
    diff = max(float(np.max(np.abs(x - y))) for x, y in zip(a, b, strict=False))
    sq = sum(np.sum((x - y) ** 2) for x, y in zip(a, b, strict=False))
    norm = float(np.sqrt(sq) / np.sqrt(sum(np.sum(x**2) for x in a)))
    same = all(np.array_equal(x, y) for x, y in zip(a, b, strict=False))
    return {"bitwise_equal": same, "max_abs": diff, "relative_l2": norm}


def _tree_rss(pid: int) -> tuple:
    """Resident bytes of a process and all its descendants (training workers included),
    and of the largest single one."""
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
    total, largest, todo = 0, 0, [pid]
    while todo:
        p = todo.pop()
        total += rss.get(p, 0)
        largest = max(largest, rss.get(p, 0))
        todo.extend(children.get(p, []))
    return total, largest


def time_suite(profile: str, cache_dir: Path, data: str | None, extra=()) -> dict:
    """Wall time and peak resident memory of `pytest --profile ...` in a child process:
    the largest single process, and the whole process tree sampled every second."""
    import threading

    # "--opt=value" form: pytest takes a bare existing path for a test path and would
    # pick its rootdir from it, missing this project's conftest.
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        f"--profile={profile}",
        f"--cache-dir={cache_dir}",
        *extra,
    ]
    if data:
        cmd.append(f"--data={data}")
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = [0, 0]

    def sample():
        while proc.poll() is None:
            total, largest = _tree_rss(proc.pid)
            peak[0], peak[1] = max(peak[0], total), max(peak[1], largest)
            time.sleep(1.0)

    threading.Thread(target=sample, daemon=True).start()
    lines = []
    for line in proc.stdout:
        lines.append(line.rstrip("\n"))
        if line.startswith("cnnclaims: trained") or line.startswith("cnnclaims: training "):
            print("   ", line.rstrip(), flush=True)
    rc = proc.wait()
    seconds = time.perf_counter() - t
    tail = [line for line in lines if " passed" in line or " failed" in line]
    return {
        "returncode": rc,
        "seconds": seconds,
        "peak_rss_gib": peak[1] / 2**30,
        "peak_tree_rss_gib": peak[0] / 2**30,
        "summary": tail[-1] if tail else "",
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.environ.get("CNNCLAIMS_DATA"))
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--epochs", type=int, default=3, help="epochs per training loop (the first is warm-up)")
    ap.add_argument(
        "--suite",
        choices=("none", "smoke", "article"),
        default="smoke",
        help="profile of the test suite to time cold and warm (default smoke)",
    )
    ap.add_argument(
        "--suite-cache",
        default=None,
        help="cache folder for the suite timing (default: a fresh one, so the first run is cold)",
    )
    ap.add_argument("--suite-args", default="", help="extra pytest arguments for the timed suite runs")
    ap.add_argument("--suite-only", action="store_true", help="only time the test suite")
    ap.add_argument("--skip-training", action="store_true", help="skip the training loop comparison")
    ap.add_argument(
        "--numerics",
        nargs="+",
        choices=("portable", "native"),
        default=["portable", "native"],
        help="numerics modes to measure (default both; each loop and roof runs once per mode)",
    )
    ap.add_argument("--out", default=str(ROOT / "build" / "benchmarks" / "benchmark.json"))
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return _child(json.loads(args.child))

    from cnnclaims.activations import layer_activations
    from cnnclaims.article import ARTICLE
    from cnnclaims.compat import set_determinism, versions
    from cnnclaims.data import load_cifar10
    from cnnclaims.evidence import image_stats
    from cnnclaims.model import build_model
    from cnnclaims.training import default_workers

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

    cores = os.cpu_count() or 1
    tmp = Path(tempfile.mkdtemp(prefix="cnnclaims-bench-"))
    roofs = {}
    for mode in args.numerics:
        (roof_all,) = run_children([{"kind": "roof", "name": "roof", "threads": cores, "numerics": mode}], tmp)
        (roof_one,) = run_children([{"kind": "roof", "name": "roof", "threads": 1, "numerics": mode}], tmp)
        roofs[mode] = {"all": roof_all["gflops"], "one": roof_one["gflops"]}
        print(
            f"practical roof under {mode} numerics (float32 2048^2 matmul chain through TF): "
            f"{roof_all['gflops']:.1f} GFLOP/s on {cores} threads, {roof_one['gflops']:.1f} on one"
        )
    # The machine's roof: the fastest kernels it has (native numerics where measured).
    roof = max(r["all"] for r in roofs.values())
    res["roofs_gflops"] = roofs
    res["roof_gflops"] = roof

    if not args.skip_training:
        n_tr, n_val = len(data.x_train), len(data.x_test)
        flops_epoch = n_tr * train_flops + n_val * fwd
        workers = default_workers()

        def steady(r):
            # Median of the epochs after the first (tracing, warm-up): single epochs on
            # this VM sometimes stall for seconds.
            return float(np.median(r["epoch_seconds"][1:] or r["epoch_seconds"]))

        def row(seconds, mode, models=1, **extra):
            gf = models * flops_epoch / seconds / 1e9
            return {
                "numerics": mode,
                "epoch_seconds": seconds,
                "models_at_once": models,
                "images_per_second": models * n_tr / seconds,
                "gflops": gf,
                "fraction_of_roof": gf / roof,
                "fraction_of_mode_roof": gf / roofs[mode]["all"],
                **extra,
            }

        loops, weights = {}, {}
        for mode in args.numerics:
            base = {
                "kind": "train",
                "data": args.data,
                "cache_dir": args.cache_dir,
                "n": n_tr,
                "epochs": args.epochs,
                "numerics": mode,
            }
            print(
                f"training under {mode} numerics, {args.epochs} epochs of {n_tr} images each (the first epoch "
                "is warm-up) ...",
                flush=True,
            )
            (plain,) = run_children([{**base, "name": "article plain fit", "seed": 0, "spe": 1, "threads": cores}], tmp)
            (plain_one,) = run_children(
                [{**base, "name": "plain fit, one thread", "seed": 0, "spe": 1, "threads": 1}], tmp
            )
            project = run_children(
                [{**base, "name": f"project worker {i}", "seed": i, "spe": 50, "threads": 1} for i in range(workers)],
                tmp,
            )
            (bare,) = run_children(
                [{"kind": "bare", "name": "bare", "n": n_tr, "threads": cores, "numerics": mode}], tmp
            )
            loops[f"{mode}: article plain fit"] = row(steady(plain), mode, threads=cores, steps_per_execution=1)
            loops[f"{mode}: plain fit, one thread"] = row(steady(plain_one), mode, threads=1, steps_per_execution=1)
            loops[f"{mode}: project loop"] = row(
                max(steady(r) for r in project), mode, models=workers, threads=1, steps_per_execution=50
            )
            loops[f"{mode}: bare TF loop (no Keras)"] = row(
                bare["epoch_seconds"], mode, threads=cores, steps_per_execution=None
            )
            weights[mode] = {"plain": plain, "plain_one": plain_one, "project": project}
        res["training"] = {"loops": loops, "epochs": args.epochs}
        print(
            f"\n{'loop':36s} {'models':>6s} {'s/epoch':>8s} {'img/s':>8s} {'GFLOP/s':>8s} {'of roof':>8s} "
            f"{'of its mode roof':>16s}"
        )
        for name, r in loops.items():
            print(
                f"{name:36s} {r['models_at_once']:6d} {r['epoch_seconds']:8.2f} {r['images_per_second']:8.0f} "
                f"{r['gflops']:8.1f} {r['fraction_of_roof']:8.1%} {r['fraction_of_mode_roof']:16.1%}"
            )
        for mode, w in weights.items():
            same = weight_difference(w["plain_one"]["weights"], w["project"][0]["weights"])
            threads = weight_difference(w["plain"]["weights"], w["plain_one"]["weights"])
            res["training"][mode] = {"project_vs_plain_one_thread": same, "plain_all_threads_vs_one_thread": threads}
            print(
                f"{mode}: project worker (seed 0) vs plain fit on one thread: weights bitwise equal: "
                f"{same['bitwise_equal']}; plain fit on {cores} threads vs one: relative L2 "
                f"{threads['relative_l2']:.2e}"
            )
        if len(weights) == 2:
            modes = list(weights)
            cross = weight_difference(
                weights[modes[0]]["plain_one"]["weights"], weights[modes[1]]["plain_one"]["weights"]
            )
            res["training"]["modes_compared"] = cross
            print(
                f"{modes[0]} vs {modes[1]} (one thread, seed 0): weights bitwise equal: {cross['bitwise_equal']}, "
                f"relative L2 {cross['relative_l2']:.2e}"
            )
        print()

    x = data.x_test
    layer_activations(model, x[:500], ["conv2d_6"])  # warm-up
    t = time.perf_counter()
    layer_activations(model, x, ["conv2d_1", "conv2d_6", "dense_2"])
    t_acts = time.perf_counter() - t
    t = time.perf_counter()
    image_stats(model, x, data.y_test, ARTICLE)  # the article's statistics
    t_stats = time.perf_counter() - t
    res["activations"] = {"images": len(x), "layer_activations_seconds": t_acts, "image_stats_seconds": t_stats}
    print(
        f"activations of {len(x)} test images (conv2d_1, conv2d_6, dense_2): {t_acts:.2f}s; "
        f"all per-image statistics: {t_stats:.2f}s"
    )

    suite(args, res)


def suite(args, res) -> None:
    if args.suite != "none":
        cache = Path(args.suite_cache or tempfile.mkdtemp(prefix="cnnclaims-bench-"))
        print(f"test suite, {args.suite} profile, cache {cache} ...", flush=True)
        res["suite"] = {"profile": args.suite, "cache": str(cache)}
        for label in ("cold", "warm"):
            r = time_suite(args.suite, cache, args.data, args.suite_args.split())
            res["suite"][label] = r
            print(
                f"  {label}: {r['seconds']:.1f}s, peak RSS {r['peak_rss_gib']:.2f} GiB (largest process), "
                f"{r['peak_tree_rss_gib']:.2f} GiB (all processes), exit {r['returncode']} "
                f"({r['summary']})",
                flush=True,
            )

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"figures written to {out}")


if __name__ == "__main__":
    main()
