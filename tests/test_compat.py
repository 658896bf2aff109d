"""Version differences live in compat alone: nothing else imports TF or Keras."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cnnclaims import compat

SRC = Path(compat.__file__).parent


def test_only_compat_imports_tensorflow_or_keras():
    pattern = re.compile(r"^\s*(import|from)\s+(tensorflow|keras|tf_keras)\b", re.M)
    offenders = [p.name for p in SRC.glob("*.py") if p.name != "compat.py" and pattern.search(p.read_text())]
    assert offenders == []


def test_no_private_keras_paths():
    for p in SRC.glob("*.py"):
        assert "keras.src" not in p.read_text(), p.name


def test_versions_and_family():
    v = compat.versions()
    assert v["keras_family"] in ("keras2", "keras3") and v["tensorflow"].startswith("2.")
    fam = compat.version_family()
    assert re.fullmatch(r"tf\d+\.\d+-keras\d+\.\d+-(portable-avx2|native-[0-9a-f]{8})", fam)


def test_one_tensorflow_thread_by_default():
    # Weights depend on the intra-op thread count; one thread makes machines agree.
    assert compat.TF_THREADS == 1 and compat.versions()["tf_intra_op_threads"] == 1
    assert compat.tf.config.threading.get_intra_op_parallelism_threads() == 1
    compat.check_threads()


def test_training_refuses_a_tensorflow_started_with_other_threads(monkeypatch):
    monkeypatch.setattr(compat.tf.config.threading, "get_intra_op_parallelism_threads", lambda: 0)
    with pytest.raises(RuntimeError, match="default number of intra-op threads.*Import cnnclaims before"):
        compat.check_threads()


def test_thread_setting_is_validated(monkeypatch):
    monkeypatch.setenv(compat.ENV_THREADS, "zero")
    with pytest.raises(ValueError, match="CNNCLAIMS_TF_THREADS='zero'"):
        compat._requested_threads()


def test_non_default_threads_get_their_own_pin_family(monkeypatch):
    monkeypatch.setattr(compat, "TF_THREADS", 4)
    assert compat.base_family().endswith("-threads4") and "-threads4-" in compat.version_family()


# --- TensorFlow's C++ log ------------------------------------------------------------
# TF 2.21 writes its start-up lines (oneDNN notice, CPU features) through absl before
# absl's log is initialised, and those bypass TF_CPP_MIN_LOG_LEVEL (measured: even 3).
NOISE = re.compile(r"oneDNN|absl::InitializeLog|cpu_feature_guard|^[IW]\d{4} ", re.M)


def _python(code: str, **env):
    """Run ``code`` in a fresh interpreter without this process's TF_CPP_MIN_LOG_LEVEL."""
    clean = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    clean.update(env)
    return subprocess.run([sys.executable, "-c", code], env=clean, capture_output=True, text=True, timeout=600)


@pytest.mark.integration  # trains or runs TensorFlow sessions: minutes on 2 cores
def test_tensorflow_cpp_log_is_quiet_here_and_in_spawned_training_workers():
    """`python -m cnnclaims run` printed ~15 lines of TF's C++ log before its first own line."""
    r = _python(
        "import os, multiprocessing\n"
        "import cnnclaims.compat\n"
        "print(os.environ['TF_CPP_MIN_LOG_LEVEL'])\n"
        # A training worker as training.train_missing starts it: spawned, importing cnnclaims.training.
        "with multiprocessing.get_context('spawn').Pool(1) as pool:\n"
        "    pool.apply(exec, ('import cnnclaims.training',))\n"
        "    print(pool.apply(os.getenv, ('TF_CPP_MIN_LOG_LEVEL',)))\n"
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["3", "3"]
    assert not NOISE.search(r.stderr), r.stderr


@pytest.mark.integration  # trains or runs TensorFlow sessions: minutes on 2 cores
def test_a_user_set_log_level_is_respected():
    r = _python("import os, cnnclaims.compat; print(os.environ['TF_CPP_MIN_LOG_LEVEL'])", TF_CPP_MIN_LOG_LEVEL="0")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["0"]
    assert "oneDNN custom operations are on" in r.stderr  # level 0: TF's INFO lines are the user's wish


def test_start_up_log_filter_keeps_errors_and_other_output():
    text = (
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
        "I0000 00:00:1795967853.556336    2793 port.cc:153] oneDNN custom operations are on.\n"
        "W0000 00:00:1795967853.556336    2793 foo.cc:1] a warning\n"
        "E0000 00:00:1795967829.130396    2251 node_def_util.cc:682] an error\n"
        "/x/y.py:3: DeprecationWarning: from Python\n"
    )
    assert compat._start_up_log(text, 2) == text.splitlines(keepends=True)[3] + text.splitlines(keepends=True)[4]
    assert compat._start_up_log(text, 3) == text.splitlines(keepends=True)[4]
    assert compat._start_up_log(text, 1).count("\n") == 3
    assert compat._start_up_log(text, 0) == text
