"""Cache primitives: atomic writes, validated reads, JSON conversion, stable keys."""

import json

import numpy as np
import pytest

from cnnclaims.cache import atomic_path, read_npz, stable_hash, to_jsonable, write_json, write_npz
from cnnclaims.errors import CacheError


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "x.keras"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            assert tmp.suffix == ".keras"
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_npz_round_trip_and_validation(tmp_path):
    p = tmp_path / "a.npz"
    write_npz(p, a=np.arange(3.0))
    assert read_npz(p, {"a": (np.float64, (3,))})["a"].tolist() == [0, 1, 2]
    with pytest.raises(CacheError, match="lacks array 'b'"):
        read_npz(p, {"b": (np.float64, (3,))})
    with pytest.raises(CacheError, match=r"array 'a' is float64\(3,\), expected float64\(4,\)"):
        read_npz(p, {"a": (np.float64, (4,))})
    p.write_bytes(b"PK\x03\x04 broken")
    with pytest.raises(CacheError, match="a.npz is unreadable"):
        read_npz(p, {})


def test_json_handles_numpy(tmp_path):
    obj = {"a": np.float32(1.5), "b": np.arange(2), "c": float("nan"), 3: (np.int64(4),)}
    write_json(tmp_path / "r.json", obj)
    assert json.loads((tmp_path / "r.json").read_text()) == {"a": 1.5, "b": [0, 1], "c": None, "3": [4]}
    assert to_jsonable(np.bool_(True)) is True


def test_stable_hash_ignores_key_order():
    assert stable_hash({"a": 1, "b": 2}) == stable_hash({"b": 2, "a": 1}) != stable_hash({"a": 1, "b": 3})


@pytest.mark.unit
def test_a_file_where_a_cache_folder_must_be_is_one_clear_error(tmp_path):
    # A file in place of the cache's verdicts/ gave a raw FileExistsError per test.
    from cnnclaims.cache import write_json
    from cnnclaims.errors import CacheWriteError

    (tmp_path / "verdicts").write_text("x")
    with pytest.raises(CacheWriteError, match=r"verdicts is a file where cnnclaims needs a folder.*--cache-dir"):
        write_json(tmp_path / "verdicts" / "v.json", {"a": 1})
