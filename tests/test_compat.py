"""Version differences live in compat alone: nothing else imports TF or Keras."""
import re
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
    assert re.fullmatch(r"tf\d+\.\d+-keras\d+\.\d+", fam)


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
    assert compat.version_family().endswith("-threads4")
