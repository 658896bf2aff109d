"""Every plot function on synthetic activations: a valid, non-blank PNG of the expected
size (structural checks; pixel baselines break across fonts and platforms)."""

import numpy as np
import pytest
from PIL import Image

from cnnclaims import plots

RNG = np.random.default_rng(0)
FIGS = {
    "feature_map_grid": (lambda: plots.feature_map_grid(RNG.random((32, 32, 16)), "maps"), (500, 530)),
    "side_by_side": (
        lambda: plots.feature_maps_side_by_side(
            RNG.integers(0, 255, (32, 32, 3), dtype=np.uint8),
            RNG.random((32, 32, 16)),
            RNG.random((32, 32, 16)),
            ("benchmark", "dummy"),
            title="C1",
        ),
        (1200, 520),
    ),
    "value_histograms": (
        lambda: plots.value_histograms({"benchmark": RNG.random(1024), "dummy": RNG.random(1024) ** 2}, "hist"),
        (700, 400),
    ),
    "paired_distributions": (
        lambda: plots.paired_distributions(
            {"benchmark": RNG.random(1000), "dummy": RNG.random(1000)}, "c6_zero_fraction", "t"
        ),
        (1100, 400),
    ),
    "seed_points": (
        lambda: plots.seed_points(
            {"benchmark": RNG.random(5), "dummy": RNG.random(5)}, "accuracy", (0.1, -0.05, 0.25), "t"
        ),
        (900, 400),
    ),
    "seed_points_no_ci": (lambda: plots.seed_points({"benchmark": RNG.random(5)}, "zero fraction"), (900, 400)),
    "entropy_bars": (
        lambda: plots.entropy_bars({"input": 4.8, "benchmark conv2d_6": 1.2, "dummy conv2d_6": 2.3}),
        (600, 400),
    ),
    "softmax_bars": (
        lambda: plots.softmax_bars(
            {"benchmark": np.eye(10)[6] * 0.9 + 0.01, "dummy": np.full(10, 0.1)}, tuple("abcdefghij"), 6
        ),
        (1000, 400),
    ),
    "text_figure": (lambda: plots.text_figure("Model: x\nlayer 1\nlayer 2", "Fig. 1"), (800, 108)),
}


@pytest.mark.parametrize("name", FIGS)
def test_plot_is_a_valid_png(name, tmp_path):
    make, size = FIGS[name]
    path = plots.save(make(), tmp_path / f"{name}.png")
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size == size
        px = np.asarray(im.convert("L"))
    assert px.std() > 1, "blank image"


def test_feature_map_grid_rejects_batches():
    with pytest.raises(ValueError, match="one image's maps"):
        plots.feature_map_grid(np.zeros((2, 8, 8, 16)))


def test_softmax_bars_wants_ten_classes():
    with pytest.raises(ValueError, match="10 class probabilities"):
        plots.softmax_bars({"m": np.ones(3) / 3}, tuple("abcdefghij"), 6)
