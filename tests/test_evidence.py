"""Per-model statistics: shapes, the per-model cache, and corruption handling."""

import numpy as np
import pytest

from cnnclaims.article import ARTICLE
from cnnclaims.compat import set_determinism
from cnnclaims.errors import InputError
from cnnclaims.evidence import cached_image_stats as _cached
from cnnclaims.evidence import image_stats as _stats
from cnnclaims.evidence import table_metrics

STATS = tuple(table_metrics(ARTICLE))


def image_stats(model, x, y, batch_size=500):
    return _stats(model, x, y, ARTICLE, batch_size)


def cached_image_stats(trained, x, y):
    return _cached(trained, x, y, ARTICLE)


from cnnclaims.model import build_model
from cnnclaims.training import TrainedModel, TrainSpec


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    set_determinism(3)
    path = tmp_path_factory.mktemp("entry")
    return TrainedModel(TrainSpec("dummy", 10, 3, 1, 1), build_model(), {"key": "k"}, path)


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(5)
    return rng.integers(0, 256, (9, 32, 32, 3), dtype=np.uint8), np.full(9, 6, np.uint8)


def test_every_statistic_per_image(trained, images):
    table = image_stats(trained.model, *images, batch_size=4)
    assert set(table) == set(STATS)
    assert all(v.shape == (9,) and v.dtype == np.float64 for v in table.values())
    assert ((0 <= table["c6_zero_fraction"]) & (table["c6_zero_fraction"] <= 1)).all()
    np.testing.assert_allclose(table["info_gain"], table["input_entropy"] - table["c6_entropy"])


def test_cached_and_corruption_recomputed(trained, images, capsys):
    a = cached_image_stats(trained, *images)
    (f,) = trained.path.glob("stats-*.npz")
    mtime = f.stat().st_mtime_ns
    b = cached_image_stats(trained, *images)
    assert f.stat().st_mtime_ns == mtime
    for k in STATS:
        np.testing.assert_array_equal(a[k], b[k])
    f.write_bytes(b"junk")
    c = cached_image_stats(trained, *images)
    assert "discarding corrupt cache entry" in capsys.readouterr().err
    np.testing.assert_array_equal(c["p_frog"], a["p_frog"])


# --- images and labels reaching the evidence are checked at its door -------------
@pytest.mark.parametrize("door", ["image_stats", "cached_image_stats"])
def test_bad_pixels_are_refused(trained, images, door):
    x, y = images
    call = (
        (lambda xx, yy: image_stats(trained.model, xx, yy))
        if door == "image_stats"
        else (lambda xx, yy: cached_image_stats(trained, xx, yy))
    )
    with pytest.raises(InputError, match=rf"{door}: .*up to 255.*divide by 255"):
        call(x.astype(np.float32), y)
    nan = x / 255.0
    nan[4, 1, 1, 2] = np.nan
    with pytest.raises(InputError, match=rf"{door}: .*NaN/inf.*image 4.*check the input for NaN/inf"):
        call(nan, y)
    with pytest.raises(InputError, match=rf"{door}: .*\(32, 32, 3\).*x\[None\]"):
        call(x[0], y[:1])  # one image: the cache would have keyed it as 32 images


def test_labels_must_match_the_images(trained, images):
    x, y = images
    table = image_stats(trained.model, x, y.reshape(-1, 1))
    np.testing.assert_array_equal(table["correct"], image_stats(trained.model, x, y)["correct"])
    with pytest.raises(InputError, match=r"image_stats: .*10 labels for 9 images"):
        image_stats(trained.model, x, np.append(y, 6))  # extra labels used to be ignored
    with pytest.raises(InputError, match=r"image_stats: .*1 labels for 9 images"):
        image_stats(trained.model, x, y[:1])  # one label used to be broadcast to every image
    with pytest.raises(InputError, match=r"image_stats: .*labels outside 0\.\.9"):
        image_stats(trained.model, x, y + 10)


def test_unit_floats_give_the_same_table(trained, images):
    x, y = images
    a, b = image_stats(trained.model, x, y), image_stats(trained.model, x.astype(np.float32) / np.float32(255), y)
    for k in STATS:
        np.testing.assert_array_equal(a[k], b[k])


def test_statistics_copied_from_another_model_are_refused(trained, images, tmp_path, capsys):
    # Every model folder names its statistics file alike: one copied into another
    # model's folder was used silently (196 numbers changed, found by a fresh user).
    import shutil

    cached_image_stats(trained, *images)
    (f,) = trained.path.glob("stats-*.npz")
    other = TrainedModel(TrainSpec("dummy", 10, 4, 1, 1), trained.model, {"key": "other"}, tmp_path)
    shutil.copy(f, tmp_path / f.name)
    cached_image_stats(other, *images)
    assert "holds the statistics of another model" in capsys.readouterr().err


# --- a metric gets the layers it declares; its code keys its cached values ---------
def _with_metric(fn, layers=("conv2d_5",)):
    import dataclasses

    from cnnclaims.declaration import Metric

    extra = Metric("probe_me", layers, fn, "a test metric")
    claim = dataclasses.replace(ARTICLE.claims[0], metric=extra)
    return dataclasses.replace(ARTICLE, claims=(*ARTICLE.claims, dataclasses.replace(claim, id="X1")))


def test_a_metric_reading_a_layer_it_does_not_declare_is_named(trained, images):
    """It got another metric's array by accident, or a raw KeyError after every
    model had trained (found by a fresh user on the digits experiment)."""
    from cnnclaims.errors import UnknownNameError

    exp = _with_metric(lambda acts, y: acts["conv2d"].mean(axis=(1, 2, 3)))
    with pytest.raises(
        UnknownNameError,
        match=r"metric 'probe_me' reads layer 'conv2d', which it does not declare: "
        r"its layers are 'conv2d_5'; add 'conv2d' to Metric\('probe_me'",
    ):
        _stats(trained.model, *images, exp)
    ok = _with_metric(lambda acts, y: acts["conv2d_5"].mean(axis=(1, 2, 3)))
    assert _stats(trained.model, *images, ok)["probe_me"].shape == (9,)


def test_an_edited_metric_function_gets_a_new_statistics_key():
    """The same metric name and experiment version with other code was served its old
    cached values (a fresh user's edit passed its pins silently)."""
    from cnnclaims.evidence import metrics_key

    one = _with_metric(lambda acts, y: acts["conv2d_5"].mean(axis=(1, 2, 3)))
    two = _with_metric(lambda acts, y: acts["conv2d_5"].max(axis=(1, 2, 3)))
    assert metrics_key(one) != metrics_key(two) != metrics_key(ARTICLE)
    assert metrics_key(one) == metrics_key(_with_metric(one.metrics["probe_me"].fn))
    assert metrics_key(ARTICLE).startswith("article-v2-")


def test_an_edited_softmax_metric_gets_a_new_statistics_key():
    """softmax_metric wraps the user's function in a lambda whose own source never
    changes: the key follows the closure, so an edited function is recomputed, not
    served its old cached values (a fresh user's verdicts stayed the same, all pins =)."""
    import dataclasses

    from cnnclaims import softmax_metric
    from cnnclaims.article import ARTICLE
    from cnnclaims.evidence import metrics_key

    def top(p, labels):
        return p.max(1)

    def flipped(p, labels):
        return 1 - p.max(1)

    keys = set()
    for fn in (top, flipped):
        metric = softmax_metric("top", fn)
        claim = dataclasses.replace(ARTICLE.claims[0], metric=metric, extras=())
        keys.add(metrics_key(dataclasses.replace(ARTICLE, claims=(claim, *ARTICLE.claims[1:]))))
    assert len(keys) == 2
