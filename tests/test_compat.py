"""Version differences live in compat alone: nothing else imports TF or Keras."""
import re
from pathlib import Path

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
