"""The one place where TensorFlow / Keras version differences live.

Everything else imports ``keras`` from here, never from TensorFlow or the
``keras`` package directly: mixing Keras 2 and Keras 3 objects in one model
builds models that silently never train (see ../shared/design/tf-keras-versions.md).

- TF 2.15: ``tf.keras`` is Keras 2.
- TF >= 2.16: ``import keras`` is Keras 3, unless ``TF_USE_LEGACY_KERAS=1`` and
  ``tf-keras`` is installed, in which case ``tf.keras`` is Keras 2 (``tf_keras``).
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import warnings

# --- TensorFlow's C++ log -------------------------------------------------------
# TF's C++ start-up chatter (oneDNN notices, CPU feature lines) is noise in test and
# command-line output. Level 3 (FATAL only): at level 2 every training worker of the
# command line still printed TF's harmless ERROR-level "NodeDef mentions attribute
# use_unbounded_threadpool" line, 37 lines for `run --all` (found by a fresh user);
# real failures come through as Python exceptions. A value the user set is kept.
# Set in os.environ, so spawned training workers inherit it.
LOG_LEVEL_ENV = "TF_CPP_MIN_LOG_LEVEL"
DEFAULT_LOG_LEVEL = "3"
os.environ.setdefault(LOG_LEVEL_ENV, DEFAULT_LOG_LEVEL)

# TF 2.16+ writes some lines through absl before absl's log is initialised, and
# those bypass TF_CPP_MIN_LOG_LEVEL (measured on TF 2.21: the oneDNN notice, twice,
# with the absl banner, even at level 3). They are written while tensorflow is
# imported, so stderr is captured for the import and replayed without them.
_ABSL_LINE = re.compile(r"([IWEF])\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [^ \]]+:\d+\] ")
_ABSL_BANNER = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
_SEVERITY = {"I": 0, "W": 1, "E": 2, "F": 3}


def _log_level() -> int:
    try:
        return int(os.environ[LOG_LEVEL_ENV])
    except ValueError:  # TF reads a non-number as 0: show everything
        return 0


def _start_up_log(text: str, level: int) -> str:
    """``text`` without absl log lines below ``level`` (TF_CPP_MIN_LOG_LEVEL's scale:
    0 INFO, 1 WARNING, 2 ERROR, 3 FATAL) and, from level 1, without absl's banner.
    Every other line (Python warnings, messages that are not absl's) is kept."""
    kept = []
    for line in text.splitlines(keepends=True):
        m = _ABSL_LINE.match(line)
        if (m and _SEVERITY[m.group(1)] < level) or (level > 0 and line.rstrip("\r\n") == _ABSL_BANNER):
            continue
        kept.append(line)
    return "".join(kept)


def _import_tensorflow():
    """``import tensorflow`` with the start-up lines below the log level removed."""
    level, saved = _log_level(), None
    if level > 0:
        try:
            if sys.stderr is not None:
                sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError):  # no file descriptor 2 to capture: import as is
            saved = None
    if saved is None:
        import tensorflow

        return tensorflow
    with tempfile.TemporaryFile() as buf:
        os.dup2(buf.fileno(), 2)
        try:
            import tensorflow
        finally:
            if sys.stderr is not None:
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            buf.seek(0)
            rest = _start_up_log(buf.read().decode("utf-8", "replace"), level)
            if rest and sys.stderr is not None:
                sys.stderr.write(rest)
                sys.stderr.flush()
    return tensorflow


# Portable numerics (or native, as chosen) before TensorFlow starts: see numerics.py.
from . import numerics  # noqa: E402
from .options import positive_int_env  # noqa: E402

numerics.apply()
tf = _import_tensorflow()

ENV_THREADS = "CNNCLAIMS_TF_THREADS"


def _requested_threads() -> int:
    return positive_int_env(ENV_THREADS, "threads") or 1


# Trained weights depend on TensorFlow's intra-op thread count (it splits reductions
# differently): seed 0 gave three different models with 1, 2 and 4 threads (measured).
# TF's default is the number of cores, so the same seed would give another model on
# another machine. One thread per process makes every machine agree, and the harness
# gets its speed back by training several models at once (training.train_missing).
TF_THREADS = _requested_threads()
try:
    tf.config.threading.set_intra_op_parallelism_threads(TF_THREADS)
except RuntimeError:  # TensorFlow already started; checked again before training
    pass


def check_threads() -> None:
    """Refuse to train when TensorFlow runs with another thread count than the one
    recorded in the models' keys (it was started before cnnclaims was imported)."""
    actual = tf.config.threading.get_intra_op_parallelism_threads()
    if actual != TF_THREADS:
        raise RuntimeError(
            f"TensorFlow runs with {actual or 'the default number of'} intra-op threads, but cnnclaims "
            f"trains with {TF_THREADS} (${ENV_THREADS}); TensorFlow was started before cnnclaims was "
            "imported. Import cnnclaims before running any TensorFlow operation."
        )


def _pick_keras():
    legacy = os.environ.get("TF_USE_LEGACY_KERAS", "").lower() in ("1", "true", "yes")
    if legacy:
        try:
            import tf_keras  # noqa: F401
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(
                "TF_USE_LEGACY_KERAS=1 is set but the 'tf-keras' package is not "
                "installed; install tf-keras matching your TensorFlow version or unset "
                "TF_USE_LEGACY_KERAS"
            ) from exc
        return tf_keras
    if hasattr(tf.keras, "version") or _tf_at_least(2, 16):
        import keras as k  # Keras 3

        return k
    return tf.keras  # TF 2.15: Keras 2 bundled as tf.keras


def _tf_at_least(major: int, minor: int) -> bool:
    parts = tf.__version__.split(".")
    return (int(parts[0]), int(parts[1])) >= (major, minor)


keras = _pick_keras()


def keras_version() -> str:
    v = getattr(keras, "__version__", None)
    if v is None and hasattr(keras, "version"):
        v = keras.version()
    if v is None:
        # TF 2.15's tf.keras is the keras 2.15 package under another name, without
        # __version__; ask the installed distribution instead.
        from importlib.metadata import PackageNotFoundError, version

        try:
            v = version("tf-keras" if keras.__name__.startswith("tf_keras") else "keras")
        except PackageNotFoundError:  # pragma: no cover
            v = tf.__version__
    return str(v)


KERAS3 = keras_version().startswith("3.")


def _onednn_opts_on() -> bool | None:
    """Whether TensorFlow's oneDNN custom operations are on in this process (None where
    this TensorFlow does not say)."""
    try:
        from tensorflow.python.util import _pywrap_util_port

        return bool(_pywrap_util_port.IsMklEnabled())
    except (ImportError, AttributeError):  # pragma: no cover - depends on the build
        return None


# What decides the kernels (numerics.fingerprint), fixed for the life of the process.
NUMERICS = numerics.fingerprint(tf.__version__, _onednn_opts_on())


def versions() -> dict:
    """Versions and settings that change trained weights and therefore the numbers:
    TensorFlow, Keras, numpy, the intra-op thread count and the numerics fingerprint
    (``numerics.fingerprint``: mode, kernel settings, ISA cap, oneDNN version, and in
    native mode the CPU features)."""
    import numpy

    return {
        "tensorflow": tf.__version__,
        "keras": keras_version(),
        "keras_family": "keras3" if KERAS3 else "keras2",
        "numpy": numpy.__version__,
        "tf_intra_op_threads": TF_THREADS,
        "numerics": NUMERICS,
    }


def base_family() -> str:
    """TensorFlow and Keras major.minor, and ``-threadsN`` for N != 1 TensorFlow
    threads: ``tf2.21-keras3.15``. The portability digests are recorded per base family."""
    v = versions()
    threads = "" if TF_THREADS == 1 else f"-threads{TF_THREADS}"
    return f"tf{_major_minor(v['tensorflow'])}-keras{_major_minor(v['keras'])}{threads}"


def version_family() -> str:
    """Key under which pinned verdicts are stored: same family, same numbers. The base
    family and the numerics tag: ``tf2.21-keras3.15-portable-avx2``, or
    ``...-native-<hash>`` for native numerics (whose bits depend on the CPU)."""
    return f"{base_family()}-{numerics.tag(NUMERICS)}"


def check_numerics() -> None:
    """Refuse to train when the kernel settings in the environment are no longer the
    ones this process started TensorFlow with (changed after import)."""
    now = numerics.user_settings()
    if now != NUMERICS["settings"]:
        raise RuntimeError(
            f"the kernel settings changed after TensorFlow started ({NUMERICS['settings']} -> {now}); "
            "set them before starting Python, or leave them to cnnclaims (--numerics)"
        )


def _major_minor(v: str) -> str:
    return ".".join(v.split(".")[:2])


def set_determinism(seed: int) -> None:
    """Seed Python, numpy and TF, and make TF ops deterministic."""
    with warnings.catch_warnings():
        # Keras 2.15's set_random_seed uses a deprecated random.randrange form.
        warnings.simplefilter("ignore", DeprecationWarning)
        keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def is_graph_model(layer) -> bool:
    """Whether ``layer`` is a functional model (``keras.Model(inputs, outputs)``, which
    is also what ``keras.applications`` return): its layers form a graph of nodes that
    ``run_graph`` can walk. False for a Sequential, a subclassed model and a plain layer."""
    if not isinstance(layer, keras.Model) or isinstance(layer, keras.Sequential):
        return False
    if KERAS3:
        return hasattr(layer, "_nodes_by_depth")
    return bool(getattr(layer, "_is_graph_network", False))


class _Reuse(dict):
    """Keras 2's ``Node.map_arguments`` pops each tensor from a list of its uses; here a
    tensor is handed out as often as it is asked for."""

    def __getitem__(self, key):
        value = dict.__getitem__(self, key)

        class _Same:
            def pop(self):
                return value

        return _Same()


def run_graph(model, inputs: list, call) -> list:
    """Call ``model``'s graph again on ``inputs`` (symbolic tensors in the order of
    ``model.inputs``), node by node in the model's own order: ``call(layer, args,
    kwargs)`` computes each node's outputs from its inputs (e.g. by calling the layer,
    or by walking a nested model's graph in turn). Returns the model's outputs as a
    flat list. ``model`` must be a functional model (``is_graph_model``)."""
    if KERAS3:

        def operation_fn(op):
            return lambda *args, **kwargs: call(op, args, kwargs)

        return tf.nest.flatten(model._run_through_graph(list(inputs), operation_fn=operation_fn))
    tensors = {str(id(x)): y for x, y in zip(model.inputs, inputs, strict=False)}
    for depth in sorted(model._nodes_by_depth, reverse=True):
        for node in model._nodes_by_depth[depth]:
            if node.is_input or any(t not in tensors for t in node.flat_input_ids):
                continue
            args, kwargs = node.map_arguments(_Reuse(tensors))
            outputs = call(node.layer, args, kwargs)
            for key, y in zip(node.flat_output_ids, tf.nest.flatten(outputs), strict=False):
                tensors[key] = y
    return [tensors[str(id(x))] for x in model.outputs]


def flatten(structure) -> list:
    """The tensors of a nested structure (list, tuple, dict) in Keras's order."""
    return tf.nest.flatten(structure)


def input_name(tensor) -> str:
    """The name of a model input (its ``keras.Input``'s name), as a dict feeds it."""
    return str(tensor.name).split(":")[0]


def image_data_format() -> str:
    """Keras's global ``image_data_format``: ``channels_last`` unless keras.json (in
    ``$KERAS_HOME``, default ~/.keras) or ``set_image_data_format`` says otherwise."""
    return keras.backend.image_data_format()


def keras_config_file() -> str:
    """Where Keras reads its settings (``image_data_format`` among them) from."""
    return os.path.join(os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras"), "keras.json")


def layer_output_shape(layer) -> tuple:
    return tuple(layer.output.shape)


def count_params(model) -> int:
    return int(model.count_params())


def steps_per_execution(requested: int) -> int:
    """Keras 3.0.x runs several steps per execution as an unrolled get_next loop that
    TensorFlow rejects ("unusually high number of get_next() calls") above a few
    dozen; there one step per execution is used. Weights are bitwise identical either
    way (measured on Keras 3.15), so this changes speed, not results."""
    return 1 if keras_version().startswith("3.0.") else requested


def load_model(path):
    # compile=False: we only need weights and the graph; recompiling on load is what
    # the training code does explicitly, and it avoids optimizer-variable warnings.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return keras.models.load_model(path, compile=False)


def save_model(model, path) -> None:
    with warnings.catch_warnings():
        # TF 2.21 + numpy 2.4 warn about the __array__ copy keyword while saving.
        warnings.simplefilter("ignore", DeprecationWarning)
        model.save(path)


def cifar10_download():
    """Keras's own CIFAR-10 loader (downloads into Keras's cache on first use)."""
    return keras.datasets.cifar10.load_data()
