"""The numerics probe through the project's own code, and the digests it must give.

Two checks, both run by ``tests/test_numerics.py`` on every machine CI runs on and by
``python -m cnnclaims numerics``:

- **training**: the article's CNN, seed 0, one epoch on 2,000 fixed pseudo-random
  images (``numpy.random.default_rng(0)``), batch 32, Adam 1e-3, through
  ``training.fit`` (the project's path: its callbacks, validation, steps per
  execution, one TensorFlow thread). Its weight digest is the digest
  ``../shared/reference/numerics_probe.py`` prints: the reference for
  ``tf2.21-keras3.15`` is what machine A (AMD EPYC, AVX2, no AVX-512) printed under
  the portable setting, reproduced here on an Intel Xeon with AVX-512.
- **forward**: 64 of those images through the seed-0 initial model, sliced at every
  layer by ``activations.layer_activations``: the digest of every layer's
  activations and the softmax.

A digest differs wherever other kernels run: under ``--numerics native`` on a CPU
whose native kernels differ from the portable ones, with the ISA cap removed, under
another TensorFlow/Keras family. Digests are the first 16 hex digits of a SHA-256.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from pathlib import Path

import numpy as np

# Portable-numerics digests per base family (compat.base_family()). "train" of
# tf2.21-keras3.15 is the digest of ../shared/reference/numerics_reference.md, machine A
# (AMD EPYC, AVX2), TF_ENABLE_ONEDNN_OPTS=1 ONEDNN_MAX_CPU_ISA=AVX2, and machine B (Intel
# Xeon, AVX-512) gave it too; every other digest was recorded on machine B, in the tox
# environment of its family (`python -m cnnclaims numerics`). Keras 3.15 on TF 2.18
# (oneDNN 3.5.0) trains the same bits as on TF 2.21 (oneDNN 3.7.3). Native numerics are
# compared with the same digests: they differ wherever this CPU's own kernels differ.
REFERENCE = {
    "tf2.21-keras3.15": {"train": "4d91040eb1eee37f", "forward": "c981ef60134791b5"},
    "tf2.18-keras3.15": {"train": "4d91040eb1eee37f", "forward": "c981ef60134791b5"},
    "tf2.16-keras3.0": {"train": "76fd42aaad06d17e", "forward": "c981ef60134791b5"},
    "tf2.15-keras2.15": {"train": "f08e21bb1d792c15", "forward": "69ba27848274ecf2"},
    "tf2.21-keras2.21": {"train": "cbfd8f8b688b9edd", "forward": "69ba27848274ecf2"},
}
N_IMAGES = 2000
N_FORWARD = 64
SEED = 0


def probe_data(n: int = N_IMAGES) -> tuple[np.ndarray, np.ndarray]:
    """The probe's images and labels, as numerics_probe.py draws them: float32 pixels
    in [0, 1), shape (n, 32, 32, 3), and one-hot float32 labels (n, 10)."""
    rng = np.random.default_rng(0)
    x = rng.random((n, 32, 32, 3), dtype=np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, n)]
    return x, y


def train_digest() -> tuple[str, float]:
    """(weight digest, seconds) of the probe's one-epoch training through
    ``training.fit`` (validation on the first 200 images: it changes no weight)."""
    from .training.fitting import fit, weights_sha256
    from .training.spec import TrainSpec

    x, y = probe_data()
    spec = TrainSpec("probe", len(x), SEED, max_epochs=1, patience=1)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        model, *_ = fit(spec, x, y, x[:200], y[:200], Path(tmp) / "best.weights.h5", progress=lambda line: None)
        seconds = time.perf_counter() - t0
    return weights_sha256(model)[:16], seconds


def forward_digest() -> str:
    """Digest of every layer's activations (and the softmax, the last layer) of the
    first ``N_FORWARD`` probe images through the seed-0 initial article model, sliced by
    ``activations.layer_activations``; arrays hashed in layer order, as float32."""
    from .activations import layer_activations
    from .compat import set_determinism
    from .model import build_model

    set_determinism(SEED)
    model = build_model()
    x, _ = probe_data()
    acts = layer_activations(model, x[:N_FORWARD])
    h = hashlib.sha256()
    for name in sorted(acts):
        h.update(name.encode())
        h.update(np.ascontiguousarray(acts[name], dtype=np.float32).tobytes())
    return h.hexdigest()[:16]


def expected(kind: str, family: str | None = None) -> str | None:
    """The recorded portable digest of ``kind`` ("train" or "forward") for base family
    ``family`` (default this process's, ``compat.base_family``), None when none is recorded."""
    from .compat import base_family

    return REFERENCE.get(family or base_family(), {}).get(kind) or None


def mismatch_text(kind: str, got: str, want: str | None) -> str:
    """Why a digest differs, and what it means, for a test failure or the CLI."""
    from .compat import NUMERICS, base_family

    family = base_family()
    if want is None:
        return (
            f"no {kind} digest is recorded for {family}; this machine gives {got} under portable numerics. "
            f"Record it in cnnclaims.portability.REFERENCE[{family!r}][{kind!r}], saying on which machines it "
            "was seen (a second CPU kind giving the same digest is the proof)"
        )
    mode = NUMERICS["mode"]
    why = (
        "native numerics run this CPU's own kernels, so this is expected where they differ from the portable ones"
        if mode == "native"
        else "portable numerics should give the recorded bits on every x86-64 CPU with AVX2: check "
        f"the settings {NUMERICS['settings']} reached TensorFlow (python -m cnnclaims numerics), and that "
        "TensorFlow, Keras and numpy are the pinned versions"
    )
    return f"{kind} digest {got} differs from the {want} recorded for {family} ({mode} numerics): {why}"


def onednn_version(timeout: float = 300) -> str | None:
    """The oneDNN version this TensorFlow bundles, as oneDNN itself prints it
    (``ONEDNN_VERBOSE=1``) while a fresh process runs one convolution with this process's
    numerics settings; None when it prints none (the custom operations off in native mode
    need not load oneDNN's verbose layer)."""
    import os
    import re
    import subprocess
    import sys

    code = "import numpy as np, cnnclaims.compat as c; c.keras.layers.Conv2D(2, 3)(np.zeros((1, 8, 8, 1), np.float32))"
    env = {**os.environ, "ONEDNN_VERBOSE": "1"}
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=timeout)
    m = re.search(r"oneDNN v(\d+\.\d+\.\d+)", r.stdout + r.stderr)
    return m.group(1) if m else None


# The settings of ../shared/reference/numerics_reference.md, in its order.
CANDIDATES: tuple[dict[str, str], ...] = (
    {},
    {"TF_ENABLE_ONEDNN_OPTS": "0"},
    {"TF_ENABLE_ONEDNN_OPTS": "1"},
    {"TF_ENABLE_ONEDNN_OPTS": "0", "ONEDNN_MAX_CPU_ISA": "AVX2"},
    {"TF_ENABLE_ONEDNN_OPTS": "1", "ONEDNN_MAX_CPU_ISA": "AVX2"},
    {"TF_ENABLE_ONEDNN_OPTS": "0", "ONEDNN_MAX_CPU_ISA": "SSE41"},
)


def settings_table(timeout: float = 600) -> list[str]:
    """The probe's training digest under each of ``CANDIDATES``, each in a fresh
    process under native numerics (so the setting is used as given): markdown rows
    ``| setting | digest | one epoch (s) |``."""
    import os
    import subprocess
    import sys

    from .numerics import ENV_NUMERICS, KERNEL_VARIABLES

    code = "from cnnclaims import portability as p; d, s = p.train_digest(); print(d, f'{s:.1f}')"
    rows = ["| setting | digest | one epoch (s) |", "| --- | --- | --- |"]
    for setting in CANDIDATES:
        env = {k: v for k, v in os.environ.items() if k not in KERNEL_VARIABLES}
        env.update(setting, **{ENV_NUMERICS: "native"})
        r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=timeout)
        out = r.stdout.split()
        digest, seconds = (out[-2], out[-1]) if r.returncode == 0 and len(out) >= 2 else ("failed", "-")
        name = " ".join(f"{k}={v}" for k, v in setting.items()) or "defaults"
        rows.append(f"| {name} | {digest} | {seconds} |")
    return rows
