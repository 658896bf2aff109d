"""cnnclaims.data on small synthetic copies of every supported format."""

import os
import pickle

import numpy as np
import pytest
from PIL import Image

from cnnclaims.data import BATCH_FILES, CLASSES, load_cifar10, resolve_source
from cnnclaims.errors import DataError
from cnnclaims.testing import random_cifar, write_batches, write_image_folder

SMALL = {"train": 3, "test": 2}


@pytest.fixture(scope="module")
def arrays():
    return random_cifar(SMALL["train"], SMALL["test"], seed=1)


@pytest.fixture
def folder(tmp_path, arrays):
    return write_image_folder(tmp_path / "imgs", *arrays, fmt="png")


@pytest.fixture
def batches(tmp_path, arrays):
    return write_batches(tmp_path / "raw", *arrays)


def load(path, tmp_path, **kw):
    return load_cifar10(path, tmp_path / "cache", per_class=SMALL, progress=kw.pop("progress", lambda *_: None), **kw)


def test_image_folder_round_trip(folder, arrays, tmp_path):
    d = load(folder, tmp_path)
    (xtr, ytr), (xte, yte) = arrays
    assert d.x_train.dtype == np.uint8 and d.x_train.shape == (30, 32, 32, 3)
    np.testing.assert_array_equal(d.x_train, xtr)  # PNG is lossless
    np.testing.assert_array_equal(d.y_test, yte)
    assert "image folder" in d.source


def test_jpeg_folder_decodes_close(tmp_path, arrays):
    smooth = tuple(
        (np.full_like(x, 100) + (np.arange(32)[None, :, None, None] * 3).astype(np.uint8), y) for x, y in arrays
    )
    f = write_image_folder(tmp_path / "jpg", *smooth, fmt="jpg")
    d = load(f, tmp_path)
    assert np.abs(d.x_train.astype(int) - smooth[0][0].astype(int)).mean() < 3


def test_batches_round_trip(batches, arrays, tmp_path):
    d = load(batches.parent, tmp_path)  # the folder containing cifar-10-batches-py
    (xtr, ytr), (xte, yte) = arrays
    np.testing.assert_array_equal(d.x_train, xtr)
    np.testing.assert_array_equal(d.y_train, ytr)
    np.testing.assert_array_equal(d.x_test, xte)
    assert "cifar-10-batches-py" in d.source


def test_environment_variable_selects_source(folder, tmp_path, monkeypatch):
    monkeypatch.setenv("CNNCLAIMS_DATA", str(folder))
    assert resolve_source(None).kind == "folder"
    assert load(None, tmp_path).x_test.shape == (20, 32, 32, 3)


def test_keras_downloader_when_no_path(tmp_path, monkeypatch, arrays):
    monkeypatch.delenv("CNNCLAIMS_DATA", raising=False)
    (xtr, ytr), (xte, yte) = arrays
    calls = []

    def fake_download():
        calls.append(1)
        return (xtr, ytr.reshape(-1, 1)), (xte, yte.reshape(-1, 1))

    monkeypatch.setattr("cnnclaims.compat.cifar10_download", fake_download)
    d = load(None, tmp_path)
    assert calls and d.y_train.shape == (30,) and "keras.datasets" in d.source


def test_keras_download_failure_says_how_to_fix(tmp_path, monkeypatch):
    monkeypatch.delenv("CNNCLAIMS_DATA", raising=False)

    def offline():
        raise OSError("no network")

    monkeypatch.setattr("cnnclaims.compat.cifar10_download", offline)
    with pytest.raises(DataError, match="CNNCLAIMS_DATA"):
        load(None, tmp_path)


def test_warm_load_uses_cache(folder, tmp_path):
    msgs = []
    load(folder, tmp_path, progress=msgs.append)
    assert any("decoding" in m for m in msgs)
    msgs.clear()
    load(folder, tmp_path, progress=msgs.append)
    assert msgs == []


def test_corrupt_cache_is_reported_and_rebuilt(folder, tmp_path, capsys):
    load(folder, tmp_path)
    (cache_file,) = (tmp_path / "cache" / "data").glob("*.npz")
    cache_file.write_bytes(cache_file.read_bytes()[:100])
    msgs = []
    d = load(folder, tmp_path, progress=msgs.append)
    assert d.x_train.shape == (30, 32, 32, 3)
    assert "discarding corrupt cache entry" in capsys.readouterr().err
    assert any("decoding" in m for m in msgs)


def test_changed_source_changes_fingerprint(folder, tmp_path):
    a = load(folder, tmp_path).fingerprint
    img = folder / "test" / "cat" / "0000.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(img)
    os.utime(img, ns=(1, 1))
    assert load(folder, tmp_path).fingerprint != a


def test_same_images_with_new_mtimes_keep_the_fingerprint(folder, tmp_path):
    # A re-copied or re-mounted data set is decoded again but keeps its models' keys.
    a = load(folder, tmp_path).fingerprint
    for img in (folder / "train").rglob("*.png"):
        os.utime(img, ns=(2, 2))
    msgs = []
    assert load(folder, tmp_path, progress=msgs.append).fingerprint == a
    assert any("decoding" in m for m in msgs)


def test_batches_and_folder_of_same_images_share_the_fingerprint(folder, batches, tmp_path):
    assert load(folder, tmp_path).fingerprint == load(batches, tmp_path).fingerprint


def test_tampered_decoded_arrays_are_not_trusted(folder, tmp_path, capsys):
    d = load(folder, tmp_path)
    (cache_file,) = (tmp_path / "cache" / "data").glob("*.npz")
    with np.load(cache_file) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["x_train"][0, 0, 0, 0] ^= 1
    np.savez(cache_file, **arrays)
    again = load(folder, tmp_path)
    assert "do not match their stored fingerprint" in capsys.readouterr().err
    assert again.fingerprint == d.fingerprint and np.array_equal(again.x_train, d.x_train)


@pytest.mark.parametrize("path", ["does/not/exist"])
def test_missing_path(tmp_path, path):
    with pytest.raises(DataError, match="does not exist.*CNNCLAIMS_DATA"):
        load(tmp_path / path, tmp_path)


def test_folder_without_layout(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="neither data_batch"):
        load(tmp_path / "empty", tmp_path)


def test_missing_class_folder(folder, tmp_path):
    (folder / "train" / "frog").rename(folder / "train" / "frogs")
    with pytest.raises(DataError, match="missing frog.*unexpected frogs"):
        load(folder, tmp_path)


def test_corrupt_image_is_named(folder, tmp_path):
    bad = folder / "train" / "dog" / "0001.png"
    bad.write_bytes(b"not a png at all")
    with pytest.raises(DataError, match="0001.png is corrupt"):
        load(folder, tmp_path)


def test_wrong_size_image_is_named(folder, tmp_path):
    bad = folder / "test" / "ship" / "0000.png"
    Image.fromarray(np.zeros((28, 28, 3), np.uint8)).save(bad)
    with pytest.raises(DataError, match=r"ship/0000.png is a 28x28 RGB image"):
        load(folder, tmp_path)


def test_grey_image_is_named(folder, tmp_path):
    bad = folder / "test" / "ship" / "0001.png"
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(bad)
    with pytest.raises(DataError, match=r"0001.png is a 32x32 L image"):
        load(folder, tmp_path)


def test_stray_file_is_not_skipped(folder, tmp_path):
    (folder / "train" / "cat" / "notes.txt").write_text("hi")
    with pytest.raises(DataError, match="notes.txt is not a .jpg"):
        load(folder, tmp_path)


def test_wrong_counts(folder, tmp_path):
    (folder / "train" / "horse" / "0002.png").unlink()
    with pytest.raises(DataError, match="train split should hold 3 images per class, found horse: 2"):
        load(folder, tmp_path)


def test_full_counts_expected_by_default(folder, tmp_path):
    with pytest.raises(DataError, match="5000 images per class"):
        load_cifar10(folder, tmp_path / "c", progress=lambda *_: None)


def test_batches_missing_file(batches, tmp_path):
    (batches / "data_batch_3").unlink()
    with pytest.raises(DataError, match="lacks data_batch_3"):
        load(batches, tmp_path)


def test_batches_corrupt_file(batches, tmp_path):
    (batches / "test_batch").write_bytes(b"\x80\x04garbage")
    with pytest.raises(DataError, match="test_batch is not a readable CIFAR-10 batch"):
        load(batches, tmp_path)


def test_batches_wrong_shape(batches, tmp_path):
    with open(batches / "data_batch_1", "wb") as fh:
        pickle.dump({b"data": np.zeros((6, 100), np.uint8), b"labels": [0] * 6}, fh)
    with pytest.raises(DataError, match=r"data_batch_1: data is \(6, 100\)"):
        load(batches, tmp_path)


def test_label_order_is_cifar_order():
    assert CLASSES[6] == "frog" and list(CLASSES) == sorted(CLASSES)


# --- pixel dtype and label shape in the pickle format ------------------------------
def rewrite_batch(folder, name, data=None, labels=None):
    """Rewrite one batch file with its data and/or labels replaced."""
    with open(folder / name, "rb") as fh:
        d = pickle.load(fh, encoding="bytes")
    if data is not None:
        d[b"data"] = data(d[b"data"])
    if labels is not None:
        d[b"labels"] = labels(d[b"labels"])
    with open(folder / name, "wb") as fh:
        pickle.dump(d, fh)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.uint16, np.int8])
def test_batches_non_uint8_pixels_are_refused(batches, tmp_path, dtype):
    """Floats in [0, 1] used to load as all-black uint8 images, with no word."""
    scale = 1 / 255 if np.issubdtype(dtype, np.floating) else 1
    rewrite_batch(batches, "data_batch_2", data=lambda rows: (rows * scale).astype(dtype))
    with pytest.raises(DataError, match=rf"data_batch_2: pixel data has dtype {np.dtype(dtype)}; .*uint8"):
        load(batches, tmp_path)


def test_batches_pixels_as_a_list_are_refused(batches, tmp_path):
    rewrite_batch(batches, "test_batch", data=lambda rows: rows.tolist())
    with pytest.raises(DataError, match=r"test_batch: pixel data has dtype int64"):
        load(batches, tmp_path)


@pytest.mark.parametrize("form", ["list", "array", "column"])
def test_batches_labels_as_n_or_n_by_1_are_accepted(batches, arrays, tmp_path, form):
    """(n, 1) labels used to end in numpy's "object too deep" error."""
    conv = {"list": list, "array": np.asarray, "column": lambda v: np.asarray(v).reshape(-1, 1)}[form]
    for name in BATCH_FILES:
        rewrite_batch(batches, name, labels=conv)
    d = load(batches, tmp_path)
    (xtr, ytr), (xte, yte) = arrays
    assert d.y_train.shape == ytr.shape and d.y_train.dtype == np.uint8
    np.testing.assert_array_equal(d.y_train, ytr)
    np.testing.assert_array_equal(d.y_test, yte)


@pytest.mark.parametrize(
    "labels,msg",
    [
        (
            lambda v: np.asarray(v).reshape(-1, 1).repeat(2, axis=1),
            r"labels got shape \(\d+, 2\); expected \(n,\) or \(n, 1\)",
        ),
        (lambda v: np.asarray(v)[None], r"labels got shape \(1, \d+\)"),
        (lambda v: [float(i) for i in v], r"labels have dtype float64; expected integer"),
        (lambda v: np.asarray(v).astype(bool), r"labels have dtype bool"),
        (lambda v: [10] + list(v)[1:], r"labels outside 0\.\.9: 10"),
        (lambda v: [-1] + list(v)[1:], r"labels outside 0\.\.9: -1"),
        (lambda v: list(v)[:-1], r"\d+ labels for \d+ images"),
    ],
    ids=["n-by-2", "1-by-n", "floats", "bool", "ten", "minus-one", "one-short"],
)
def test_batches_bad_labels_are_refused(batches, tmp_path, labels, msg):
    rewrite_batch(batches, "data_batch_3", labels=labels)
    with pytest.raises(DataError, match=r"data_batch_3: " + msg):
        load(batches, tmp_path)


def test_keras_download_with_odd_arrays_is_refused(tmp_path, monkeypatch, arrays):
    monkeypatch.delenv("CNNCLAIMS_DATA", raising=False)
    (xtr, ytr), (xte, yte) = arrays
    cases = [
        (((xtr / 255.0, ytr), (xte, yte)), r"keras.datasets.cifar10 train split: pixel data has dtype float64"),
        (
            ((xtr, ytr.reshape(-1, 1)), (xte, yte.reshape(-1, 2))),
            r"keras.datasets.cifar10 test split: labels got shape",
        ),
        (((xtr, ytr + 10), (xte, yte)), r"keras.datasets.cifar10 train split: labels outside 0\.\.9"),
        (((xtr[:, :28], ytr), (xte, yte)), r"keras.datasets.cifar10 train split: images are \(30, 28, 32, 3\)"),
    ]
    for result, msg in cases:
        monkeypatch.setattr("cnnclaims.compat.cifar10_download", lambda result=result: result)
        with pytest.raises(DataError, match=msg):
            load(None, tmp_path)


@pytest.mark.unit
def test_an_unreadable_image_is_not_called_corrupt(tmp_path, monkeypatch):
    # The advice was "replace it from a clean copy" for a fine file without read permission.
    from PIL import Image

    from cnnclaims.data import decode_image

    f = tmp_path / "a.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(f)

    def denied(*a, **k):
        raise PermissionError(13, "Permission denied", str(f))

    monkeypatch.setattr(Image, "open", denied)
    with pytest.raises(DataError, match="cannot be read .*read permission"):
        decode_image(f)
