"""Which CPU kernels TensorFlow runs, fixed before it is imported: the same bits on
every x86-64 machine with AVX2 and FMA.

Why (measured with ``../shared/reference/numerics_probe.py``, docs/reproducibility.md,
"Reproducibility across machines"): TensorFlow's convolutions and matrix products go through oneDNN,
whose kernels are chosen at run time from the CPU's features, and TensorFlow turns its
oneDNN custom operations on by default only on CPUs with AVX-512 VNNI/BF16 or AMX. So
an AVX-512 machine and an AVX2 machine trained different models from the same seed.
With the custom operations on and oneDNN capped at AVX2, both trained the same weights
bit for bit (probe digest ``4d91040eb1eee37f`` on an AMD EPYC with AVX2 and on an Intel
Xeon with AVX-512); with the custom operations off, Eigen's own matrix products took
their blocking from the CPU's cache sizes and the digests still differed.

Two modes (``--numerics``, ``$CNNCLAIMS_NUMERICS``):

- ``portable`` (the default): ``TF_ENABLE_ONEDNN_OPTS=1`` and ``ONEDNN_MAX_CPU_ISA=AVX2``.
  Needs an x86-64 CPU with AVX2 and FMA.
- ``native``: TensorFlow's own defaults on this CPU (and any kernel variables the user
  set, recorded): the fastest, bit-identical only on machines with the same CPU
  features.

This module imports nothing of TensorFlow, and of the package only the leaves
``errors`` and ``options``, so the plugin and the command line can apply it before
anything imports TensorFlow (``check_options``).
``compat`` applies it at import (every process that trains or evaluates imports
TensorFlow through ``compat``), and the variables it sets are in ``os.environ``, so
spawned training workers and a Ray started here inherit them.
"""

from __future__ import annotations

import os
import platform
import sys

from .errors import CnnClaimsError
from .options import ENV_NUMERICS
from .options import NUMERICS_MODES as MODES

DEFAULT_MODE = "portable"
ISA_CAP = "AVX2"
PORTABLE_SETTINGS = {"TF_ENABLE_ONEDNN_OPTS": "1", "ONEDNN_MAX_CPU_ISA": ISA_CAP}
# Variables that change which kernels run or how they round (oneDNN's old DNNL_ names
# included). Under portable numerics any of them that is set and differs from the
# portable value is a usage error; under native numerics they are recorded.
KERNEL_VARIABLES = (
    "TF_ENABLE_ONEDNN_OPTS",
    "ONEDNN_MAX_CPU_ISA",
    "DNNL_MAX_CPU_ISA",
    "ONEDNN_CPU_ISA_HINTS",
    "DNNL_CPU_ISA_HINTS",
    "ONEDNN_DEFAULT_FPMATH_MODE",
    "DNNL_DEFAULT_FPMATH_MODE",
    "TF_XLA_FLAGS",
)
# CPU features that select oneDNN kernels (and TensorFlow's default for its custom
# operations), recorded in a native fingerprint.
KERNEL_FLAGS = (
    "sse4_1",
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512dq",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "avx_vnni",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)
PORTABLE_NEEDS = ("avx2", "fma")
# oneDNN is linked into the TensorFlow wheel, so TensorFlow's version names it; read
# from ONEDNN_VERBOSE=1 in each tox environment (`python -m cnnclaims numerics` reads it
# again on this machine and tests/test_numerics.py checks this table).
ONEDNN_BY_TENSORFLOW = {"2.15.1": "3.2.1", "2.16.2": "3.3.4", "2.18.1": "3.5.0", "2.21.0": "3.7.3"}


class NumericsError(CnnClaimsError, ValueError):
    """``--numerics`` / ``$CNNCLAIMS_NUMERICS`` names no mode, a kernel variable the
    user set contradicts portable numerics, the CPU cannot run them (no AVX2/FMA, not
    x86-64), or TensorFlow was imported before the settings could take effect."""


def mode(value: str | None = None) -> str:
    """The numerics mode: ``value`` (``--numerics``), else $CNNCLAIMS_NUMERICS, else
    "portable". Raises NumericsError naming the value and the modes."""
    chosen = value or os.environ.get(ENV_NUMERICS) or DEFAULT_MODE
    if chosen not in MODES:
        where = "--numerics" if value else f"${ENV_NUMERICS}"
        raise NumericsError(
            f"{where} {chosen!r} is not a numerics mode; choose portable (the same bits on every "
            "x86-64 CPU with AVX2) or native (TensorFlow's defaults on this CPU: faster, not portable)"
        )
    return chosen


def cpu_flags() -> tuple[str, ...] | None:
    """This CPU's kernel-selecting features (``KERNEL_FLAGS`` that /proc/cpuinfo lists),
    None where /proc/cpuinfo cannot be read (not Linux)."""
    try:
        with open("/proc/cpuinfo") as f:
            line = next((row for row in f if row.startswith("flags")), "")
    except OSError:
        return None
    have = set(line.split(":", 1)[-1].split())
    return tuple(f for f in KERNEL_FLAGS if f in have)


def cpu_caches() -> dict:
    """Cache sizes of CPU 0 by level and type (e.g. ``{"L1d": "48K", "L2": "2048K"}``):
    Eigen's own matrix products take their blocking from them. {} where unknown."""
    out: dict[str, str] = {}
    root = "/sys/devices/system/cpu/cpu0/cache"
    try:
        indexes = sorted(os.listdir(root))
    except OSError:
        return out
    for index in indexes:
        try:
            with open(f"{root}/{index}/level") as f:
                level = f.read().strip()
            with open(f"{root}/{index}/type") as f:
                kind = f.read().strip()
            with open(f"{root}/{index}/size") as f:
                size = f.read().strip()
        except OSError:
            continue
        suffix = {"Data": "d", "Instruction": "i"}.get(kind, "")
        out[f"L{level}{suffix}"] = size
    return out


def _check_cpu() -> None:
    machine = platform.machine().lower()
    if machine not in ("x86_64", "amd64"):
        raise NumericsError(
            f"portable numerics are defined for x86-64 CPUs with AVX2 and FMA; this machine is "
            f"{machine}. Use --numerics native (or ${ENV_NUMERICS}=native): TensorFlow's defaults, "
            "bit-identical only on machines like this one, pinned under their own key"
        )
    flags = cpu_flags()
    lacking = [f for f in PORTABLE_NEEDS if flags is not None and f not in flags]
    if lacking:
        raise NumericsError(
            f"portable numerics run oneDNN's AVX2 kernels, but this CPU lacks {', '.join(lacking)}; "
            f"use --numerics native (or ${ENV_NUMERICS}=native): its models are bit-identical only "
            "on CPUs with the same features, pinned under their own key"
        )


def user_settings() -> dict:
    """The kernel variables set in this environment, ``{name: value}``."""
    return {k: os.environ[k] for k in KERNEL_VARIABLES if os.environ.get(k, "") != ""}


def apply(value: str | None = None) -> str:
    """Fix the numerics of this process (and of the processes it starts) before
    TensorFlow is imported; returns the mode.

    Portable: sets ``PORTABLE_SETTINGS`` in ``os.environ``. A kernel variable already
    set to another value is a NumericsError naming it and the two fixes (unset it, or
    choose native numerics, which keeps and records it), never silently overridden;
    so is a CPU that cannot run the portable kernels. Native: changes nothing.
    Either way ``$CNNCLAIMS_NUMERICS`` is set to the mode, so child processes agree.

    Raises NumericsError when TensorFlow is already imported without these settings
    (they are read as TensorFlow starts): import cnnclaims first, or set them."""
    chosen = mode(value)
    if chosen == "portable":
        _check_cpu()
        for name, given in user_settings().items():
            if PORTABLE_SETTINGS.get(name) != given:
                raise NumericsError(
                    f"${name}={given} contradicts portable numerics ({_portable_text()}); unset {name}, or run "
                    f"with --numerics native (${ENV_NUMERICS}=native), which keeps it and records it in every "
                    "model's key"
                )
        missing = {k: v for k, v in PORTABLE_SETTINGS.items() if os.environ.get(k) != v}
        if missing and "tensorflow" in sys.modules:
            raise NumericsError(
                f"TensorFlow was imported before cnnclaims could set portable numerics ({_portable_text()}); "
                "import cnnclaims (or run pytest / python -m cnnclaims) before TensorFlow, or set those variables "
                "before starting Python"
            )
        os.environ.update(missing)
    os.environ[ENV_NUMERICS] = chosen
    return chosen


def check_options(get) -> None:
    """What both front ends (the pytest plugin, the command line) call at start with
    their ``get(flag)``: the numerics of ``--numerics`` applied first (``apply``:
    nothing after it may start TensorFlow with other settings), then every other
    option validated (``options.check``). Raises NumericsError or ValueError naming the
    option and the fix."""
    from .options import check

    apply(get("--numerics"))
    check(get)


def _portable_text() -> str:
    return " ".join(f"{k}={v}" for k, v in PORTABLE_SETTINGS.items())


def fingerprint(tensorflow_version: str, onednn_opts_on: bool | None) -> dict:
    """What decides this process's kernels, for cache keys, records and pins keys.

    ``{"mode", "settings" (the kernel variables in effect), "isa_cap", "onednn"
    (oneDNN's version, from the TensorFlow version), "onednn_opts" (whether
    TensorFlow's oneDNN custom operations are on)}``; a native fingerprint also has
    ``"cpu"`` (``cpu_flags``) and ``"caches"`` (``cpu_caches``), since there the kernels
    depend on them. Call after ``apply``."""
    chosen = mode()
    settings = user_settings()
    out = {
        "mode": chosen,
        "settings": settings,
        "isa_cap": settings.get("ONEDNN_MAX_CPU_ISA") or settings.get("DNNL_MAX_CPU_ISA") or "",
        "onednn": ONEDNN_BY_TENSORFLOW.get(tensorflow_version, f"bundled with tensorflow {tensorflow_version}"),
        "onednn_opts": onednn_opts_on,
    }
    if chosen == "native":
        out["cpu"] = list(cpu_flags() or ("unknown",))
        out["caches"] = cpu_caches()
    return out


def tag(fp: dict) -> str:
    """Short name of a fingerprint for pins keys: ``portable-avx2``, or
    ``native-<8 hex digits>`` (a hash of the whole native fingerprint: CPU features,
    caches and settings)."""
    if fp["mode"] == "portable":
        return f"portable-{ISA_CAP.lower()}"
    import hashlib
    import json

    return "native-" + hashlib.sha256(json.dumps(fp, sort_keys=True).encode()).hexdigest()[:8]
