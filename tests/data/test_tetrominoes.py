"""Tetrominoes (Bozkurt et al. 2021): counts, factor ranges, rendering known answers, the random and checkerboard
splits, determinism and the cache file."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from vaelab.config import load_config
from vaelab.data import DataConfig, load_dataset
from vaelab.data import tetrominoes as tm
from vaelab.training.trainer import Trainer

N = 16 * 8 * 5 * 16 * 16


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    """A cache folder shared by this module: the full set is rendered once (~3 s of CPU) and cached there."""
    return tmp_path_factory.mktemp("tetrominoes")


def cfg(cache_dir: Path, **kw) -> DataConfig:
    return DataConfig(name="tetrominoes", cache_dir=str(cache_dir), **kw)


@pytest.fixture(scope="module")
def rendered(cache_dir) -> tuple[np.ndarray, np.ndarray, dict]:
    return tm.load_or_render(cfg(cache_dir))


def test_counts_and_factor_ranges(rendered) -> None:
    images, factors, info = rendered
    assert images.shape == (N, 3, 32, 32) and images.dtype == np.uint8
    assert factors.shape == (N, 5) and N == 163_840
    assert factors.max(axis=0).tolist() == [15, 7, 4, 15, 15] and factors.min() == 0
    np.testing.assert_array_equal(factors, np.stack(np.unravel_index(np.arange(N), (16, 8, 5, 16, 16)), 1))
    vals = tm.TetrominoGrid().values()
    assert vals["angle"][0] == 0.0 and vals["angle"][-1] == 337.5 and len(vals["angle"]) == 16
    assert vals["hue"].tolist() == [i / 8 for i in range(8)]
    assert vals["scale"].tolist() == [2.0, 2.75, 3.5, 4.25, 5.0]
    assert len(vals["x"]) == 16 and vals["x"][0] > 8 and vals["x"][-1] < 24
    # every image shows the shape entirely: summed coverage = 4 cells x scale^2 (in pixel units)
    cover = images.max(axis=1).sum(axis=(1, 2), dtype=np.int64) / 255.0  # the max channel is 1 at every hue
    area = 4 * vals["scale"][factors[:, 2]] ** 2
    assert np.abs(cover - area).max() < 1.0
    assert info["cache"] == "written"


def reference_coverage(angle: float, scale: float, cx: float, cy: float, size: int = 32, s: int = 16) -> np.ndarray:
    """Direct point sampling of one pose (no summed-area table, no rounding of the position)."""
    p = (np.arange(size)[:, None] + (np.arange(s) + 0.5) / s).reshape(-1)
    px, py = p[None, :] - cx, p[:, None] - cy
    t = math.radians(angle)
    u = (math.cos(t) * px - math.sin(t) * py) / scale + 1.5
    v = (math.sin(t) * px + math.cos(t) * py) / scale + 0.75
    inside = ((v >= 0) & (v < 1) & (u >= 0) & (u < 3)) | ((v >= 1) & (v < 2) & (u >= 1) & (u < 2))
    return inside.reshape(size, s, size, s).mean(axis=(1, 3))


def test_rendering_matches_direct_point_sampling_and_colours() -> None:
    grid = tm.TetrominoGrid(angle_bins=3, hue_bins=8, scale_bins=2, position_bins=2, angle_step_deg=67.5)
    images, factors = tm.render_tetrominoes(grid)
    vals = grid.values()
    rgb = tm.hsv_to_rgb(vals["hue"])
    np.testing.assert_allclose(rgb[0], [1, 0, 0])  # hue 0 is red, 1/3 green, 2/3 blue
    np.testing.assert_allclose(tm.hsv_to_rgb(np.array([1 / 3, 2 / 3])), [[0, 1, 0], [0, 0, 1]], atol=1e-12)
    for i in range(0, len(images), 37):
        a, h, sc, x, y = factors[i]
        ref = reference_coverage(vals["angle"][a], vals["scale"][sc], vals["x"][x], vals["y"][y])
        for ch in range(3):
            expected = 255 * rgb[h, ch] * ref
            assert np.abs(images[i, ch] - expected).mean() < 0.5  # positions rounded to 1/16 pixel
            assert np.abs(images[i, ch] - expected).max() <= 255 * rgb[h, ch] * 0.25 + 1


def test_orientation_the_bar_is_on_top_at_angle_zero() -> None:
    size = 32
    rows = np.arange(size) + 0.5
    for angle, top_heavy in ((0.0, True), (180.0, False)):
        c = reference_coverage(angle, 4.0, 16.0, 16.0)
        assert (c.sum(axis=1) * rows).sum() / c.sum() == pytest.approx(16.0, abs=0.05)  # rotation about the centroid
        above, below = c[:16].sum(), c[16:].sum()
        assert (above > below) == top_heavy  # area above the centroid: 2.25 cells of 4 when the bar is on top


def test_checkerboard_split_holds_out_exactly_the_odd_combinations(cache_dir) -> None:
    ds = load_dataset(cfg(cache_dir, split_kind="checkerboard", valid_size=10_000))
    assert ds.image_shape == (3, 32, 32) and ds.num_classes is None and ds.binarize == "none"
    assert (len(ds.train), len(ds.valid), len(ds.test)) == (N // 2 - 10_000, 10_000, N // 2)
    assert ds.train.y.shape == (len(ds.train), 5) and ds.train.y.dtype == torch.int64
    assert bool((ds.test.y.sum(1) % 2 == 1).all())
    assert bool((ds.train.y.sum(1) % 2 == 0).all()) and bool((ds.valid.y.sum(1) % 2 == 0).all())
    idx = [set(s.source_index.tolist()) for s in (ds.train, ds.valid, ds.test)]
    assert not (idx[0] & idx[1]) and not (idx[0] & idx[2]) and not (idx[1] & idx[2])
    assert len(idx[0] | idx[1] | idx[2]) == N
    # the labels are the source image's factors
    flat = np.ravel_multi_index(ds.test.y.numpy().T, (16, 8, 5, 16, 16))
    assert flat.tolist() == ds.test.source_index.tolist()
    # every factor value occurs in both halves: the test set asks for new combinations, not new values
    for k in range(5):
        assert set(ds.test.y[:, k].tolist()) == set(ds.train.y[:, k].tolist())
    json.dumps(ds.info)


def test_random_split_is_deterministic_in_the_seed(cache_dir) -> None:
    a = load_dataset(cfg(cache_dir, split_kind="random", valid_size=1000, eval_size=500))
    b = load_dataset(cfg(cache_dir, split_kind="random", valid_size=1000, eval_size=500))
    c = load_dataset(cfg(cache_dir, split_kind="random", valid_size=1000, eval_size=500, split_seed=1))
    assert (len(a.train), len(a.valid), len(a.test)) == (N // 2 - 1000, 500, 500)
    for s in ("train", "valid", "test"):
        assert torch.equal(a.split(s).source_index, b.split(s).source_index)
        assert torch.equal(a.split(s).x, b.split(s).x)
    assert not torch.equal(a.test.source_index, c.test.source_index)
    assert not set(a.train.source_index.tolist()) & set(a.test.source_index.tolist())
    odd = (a.test.y.sum(1) % 2).float().mean().item()
    assert 0.4 < odd < 0.6  # a random half, not the checkerboard
    d = load_dataset(cfg(cache_dir, split_kind="checkerboard", valid_size=1000, split_seed=1))
    e = load_dataset(cfg(cache_dir, split_kind="checkerboard", valid_size=1000, split_seed=2))
    assert torch.equal(d.test.source_index, e.test.source_index)  # the checkerboard does not depend on the seed


def test_the_cache_file_is_read_back(cache_dir, rendered, monkeypatch) -> None:
    path, _ = tm.cache_file(cfg(cache_dir))
    assert path.is_file() and path.name == f"tetrominoes_v{tm.GENERATOR_VERSION}.npz"
    monkeypatch.setattr(tm, "_MEMORY", {})
    monkeypatch.setattr(tm, "render_tetrominoes", lambda *a, **k: pytest.fail("rendered again"))
    images, factors, info = tm.load_or_render(cfg(cache_dir))
    assert info["cache"] == "file"
    assert np.array_equal(images[::101], rendered[0][::101]) and np.array_equal(factors, rendered[1])


def test_a_gaussian_vae_trains_on_tetrominoes(cache_dir, tmp_path) -> None:
    run = load_config(
        None,
        [
            "data.name=tetrominoes",
            f"data.cache_dir={cache_dir}",
            "data.split_kind=checkerboard",
            "data.train_size=256",
            "data.eval_size=64",
            "model.likelihood=gaussian",
            "model.gaussian_std=0.1",
            "model.latent_dim=4",
            "model.hidden=[32]",
            "train.epochs=1",
            "train.batch_size=64",
            "train.progress=false",
            "eval.iw_samples=4",
            "eval.iw_chunk=4",
        ],
    )
    summary = Trainer(run, tmp_path / "run").fit()
    assert summary["status"] == "completed" and math.isfinite(summary["nll_iw"]) and summary["n"] == 64
