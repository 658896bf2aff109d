"""Per-model statistics: shapes, the per-model cache, and corruption handling."""
import numpy as np
import pytest

from cnnclaims.compat import set_determinism
from cnnclaims.evidence import STATS, cached_image_stats, image_stats
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
