"""Tetrominoes: a procedural 32x32 RGB data set with five known factors (Bozkurt, Esmaeili, Tristan, Brooks, Dy &
van de Meent, *Rate-Regularization and Generalization in Variational Autoencoders*, AISTATS 2021).

Every image shows one T-tetromino (four unit cells: three in a row and one centred below them) in a single
colour on a black background. Five factors, each on a regular grid of bins, are crossed in full:

============  ======  ==================================================================================
factor        bins    values
============  ======  ==================================================================================
``angle``     16      0, 22.5, ..., 337.5 degrees, rotation about the shape's centroid (counter-clockwise)
``hue``       8       0, 0.125, ..., 0.875 (HSV hue; saturation and value 1)
``scale``     5       2, 2.75, 3.5, 4.25, 5 pixels per cell edge
``x``, ``y``  16 each centroid position in pixels, evenly spaced over [m, 32 - m] with m = the largest
                      centroid-to-corner distance at the largest scale (8.39 px), so every rendering lies
                      inside the image at every angle
============  ======  ==================================================================================

16 * 8 * 5 * 16 * 16 = 163,840 images. Image ``i`` is the combination ``np.unravel_index(i, (16, 8, 5, 16, 16))``
of bin indices (angle, hue, scale, x, y): the order is C order over the factors as listed.

Rendering is vectorised (torch): the coverage of each pixel is the fraction of its 4x4 supersamples that fall
inside the shape (anti-aliasing), computed once for each of the 16 * 5 * 16 * 16 = 20,480 (angle, scale, x, y)
masks and multiplied by the 8 colours. Pixels are stored as uint8 (round(255 * value)); the loader serves
floats in [0, 1]. The rendering has no randomness; the cache file ``tetrominoes_v1.npz`` (compressed,
``images`` (N, 3, 32, 32) uint8 + ``factors`` (N, 5) uint8) is written once to ``data.cache_dir``, else
``<data folder>/tetrominoes`` when that folder is writable, else ``$XDG_CACHE_HOME/vaelab`` (``~/.cache/vaelab``).

Labels: ``Split.y`` is int64 of shape (N, 5), the factor bin indices in the order of :data:`FACTOR_NAMES`
(``num_classes`` is None). Splits (``data.split_kind``):

- ``random`` (in-distribution): test = the first half (81,920) of a fixed permutation seeded by
  ``data.split_seed``; the rest is the training pool.
- ``checkerboard`` (out-of-distribution, combinatorial generalisation): an image is a test image iff the sum of
  its five bin indices is odd (81,920 images), so every test combination differs from its nearest training
  combinations by one bin in one factor, and every factor value occurs in both halves. The split does not depend
  on ``split_seed``.

Both kinds hold out the same number of test images, so the training pools have equal size. The validation split
is the last ``data.valid_size`` images of a fixed permutation of the training pool (in-distribution for both
kinds); ``train_size`` and ``eval_size`` then apply as for every data set (:func:`vaelab.data.base.finalize`).

Likelihood: the pixels are continuous in [0, 1]; the data set's default binarisation is ``none``, to be paired
with ``model.likelihood: gaussian`` (a fixed ``model.gaussian_std``, e.g. 0.1, keeps beta's meaning fixed
across a sweep; ``learn_std: true`` fits it). A Bernoulli likelihood on grey levels is not a density.
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from vaelab.data.base import (
    DATASETS,
    DataError,
    ImageDataset,
    Split,
    finalize,
    fixed_permutation,
    holdout_split,
    resolve_data_root,
)
from vaelab.data.config import DataConfig
from vaelab.errors import ConfigError

GENERATOR_VERSION = 1
"""Bumped whenever the rendering changes; part of the cache file name, so stale caches are never read."""

FACTOR_NAMES: tuple[str, ...] = ("angle", "hue", "scale", "x", "y")

CELLS: tuple[tuple[int, int], ...] = ((0, 0), (1, 0), (2, 0), (1, 1))
"""The T-tetromino as (column, row) unit cells, rows growing downwards in the image."""

SUPERSAMPLES = 16
"""Anti-aliasing: S x S point samples per pixel (coverage in steps of 1/256, positions rounded to 1/16 pixel)."""


@dataclass(frozen=True)
class TetrominoGrid:
    """Bin counts and ranges of the five factors and the image size (defaults: the published set).

    Smaller grids render the same shapes on coarser factor grids (used by the tests); the factor values of a bin
    are given by :meth:`values`.
    """

    angle_bins: int = 16
    hue_bins: int = 8
    scale_bins: int = 5
    position_bins: int = 16
    image_size: int = 32
    angle_step_deg: float = 22.5
    hue_step: float = 0.125
    scale_range: tuple[float, float] = (2.0, 5.0)

    @property
    def shape(self) -> tuple[int, int, int, int, int]:
        """Bins per factor, in the order of :data:`FACTOR_NAMES`."""
        return (self.angle_bins, self.hue_bins, self.scale_bins, self.position_bins, self.position_bins)

    @property
    def size(self) -> int:
        """Number of images: the product of the bin counts."""
        return math.prod(self.shape)

    def margin(self) -> float:
        """Largest centroid-to-corner distance of the shape at the largest scale, in pixels."""
        centroid = _centroid()
        corners = [(c + dx, r + dy) for c, r in CELLS for dx in (0, 1) for dy in (0, 1)]
        radius = max(math.hypot(u - centroid[0], v - centroid[1]) for u, v in corners)
        return radius * self.scale_range[1]

    def values(self) -> dict[str, np.ndarray]:
        """Factor value of every bin: angle in degrees, hue in [0, 1), scale and x/y in pixels."""
        lo, hi = self.scale_range
        m = self.margin()
        if 2 * m >= self.image_size:
            raise ConfigError(f"a tetromino of scale {hi} does not fit a {self.image_size}-pixel image")
        pos = np.linspace(m, self.image_size - m, self.position_bins)
        return {
            "angle": np.arange(self.angle_bins) * self.angle_step_deg,
            "hue": np.arange(self.hue_bins) * self.hue_step,
            "scale": np.linspace(lo, hi, self.scale_bins) if self.scale_bins > 1 else np.array([lo]),
            "x": pos,
            "y": pos,
        }


def _centroid() -> tuple[float, float]:
    """Area centroid of the unit cells (= the mean of the cell centres)."""
    return (
        sum(c + 0.5 for c, _ in CELLS) / len(CELLS),
        sum(r + 0.5 for _, r in CELLS) / len(CELLS),
    )


def hsv_to_rgb(hue: np.ndarray) -> np.ndarray:
    """RGB in [0, 1] of fully saturated, full-value colours with the given hues in [0, 1): shape (..., 3)."""
    h = np.asarray(hue, dtype=np.float64)[..., None]
    k = (np.array([5.0, 3.0, 1.0]) + h * 6.0) % 6.0
    return 1.0 - np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)


def shape_mask(angle_deg: float, scale: float, radius: float, resolution: int) -> np.ndarray:
    """Point samples of the tetromino rotated by ``angle_deg`` (counter-clockwise on screen) and scaled to
    ``scale`` pixels per cell, centred on its centroid: bool (2 R r, 2 R r) over the square [-R, R)^2 pixels,
    ``resolution`` r samples per pixel, sample k at -R + (k + 0.5) / r (rows = y, growing downwards).

    A point p is inside iff its shape coordinate u = R(-angle) p / scale + centroid lies in one of the cells.
    """
    n = round(2 * radius * resolution)
    p = -radius + (np.arange(n) + 0.5) / resolution
    px, py = p[None, :], p[:, None]
    theta = math.radians(angle_deg)
    cos, sin = math.cos(theta), math.sin(theta)
    gx, gy = _centroid()
    # image y grows downwards, so a counter-clockwise rotation on screen is clockwise in (x, y) coordinates
    u = (cos * px - sin * py) / scale + gx
    v = (sin * px + cos * py) / scale + gy
    cu, cv = np.floor(u), np.floor(v)
    inside = np.zeros((n, n), dtype=bool)
    for c, r in CELLS:
        inside |= (cu == c) & (cv == r)
    return inside


def render_coverage(grid: TetrominoGrid = TetrominoGrid(), resolution: int = SUPERSAMPLES) -> np.ndarray:
    """Pixel coverage in [0, 1] of every (angle, scale, x, y) pose: float32 (A, S, X, Y, H, W).

    Coverage = the fraction of a pixel's ``resolution`` x ``resolution`` point samples inside the shape (box-filter
    anti-aliasing). Each (angle, scale) is sampled once on a fine grid around the centroid; a summed-area table of
    that grid then gives every pixel's count for every position by four look-ups, with the position rounded to
    1 / ``resolution`` pixel. So the cost does not grow with the number of positions x rendering resolution.
    """
    vals = grid.values()
    r = resolution
    size = grid.image_size
    radius = float(math.ceil(grid.margin()) + 1)
    n = int(2 * radius * r)
    pix = np.arange(size)
    out = np.empty((grid.angle_bins, grid.scale_bins, grid.position_bins, grid.position_bins, size, size), np.float32)
    # first fine-sample index of pixel j for a centroid at c: the sample grid starts at c - radius
    first = {k: np.rint((pix[None, :] - vals[k][:, None] + radius) * r).astype(np.int64) for k in ("x", "y")}
    lo = {k: np.clip(v, 0, n) for k, v in first.items()}
    hi = {k: np.clip(v + r, 0, n) for k, v in first.items()}
    rows_lo, rows_hi = lo["y"][None, :, :, None], hi["y"][None, :, :, None]  # (1, Y, H, 1)
    cols_lo, cols_hi = lo["x"][:, None, None, :], hi["x"][:, None, None, :]  # (X, 1, 1, W)
    for ia, angle in enumerate(vals["angle"]):
        for isc, scale in enumerate(vals["scale"]):
            inside = shape_mask(float(angle), float(scale), radius, r)
            sat = np.zeros((n + 1, n + 1), dtype=np.int32)
            sat[1:, 1:] = inside.cumsum(0).cumsum(1)
            count = sat[rows_hi, cols_hi] - sat[rows_lo, cols_hi] - sat[rows_hi, cols_lo] + sat[rows_lo, cols_lo]
            out[ia, isc] = count / float(r * r)  # (X, Y, H, W)
    return out


def render_tetrominoes(grid: TetrominoGrid = TetrominoGrid()) -> tuple[np.ndarray, np.ndarray]:
    """Render every factor combination of ``grid``: images uint8 (N, 3, H, W) and factor bins uint8 (N, 5).

    Image i has bins ``np.unravel_index(i, grid.shape)`` over (angle, hue, scale, x, y); pixel value =
    round(255 * coverage * rgb(hue)). Deterministic (no randomness at all).
    """
    cover = render_coverage(grid)  # (A, S, X, Y, H, W)
    rgb = hsv_to_rgb(grid.values()["hue"]) * 255.0  # (hues, 3)
    na, nh, ns, nx, ny = grid.shape
    size = grid.image_size
    images = np.empty((na, nh, ns, nx, ny, 3, size, size), dtype=np.uint8)
    shades: dict[float, np.ndarray] = {}  # the 8 published hues use only 5 channel intensities: render each once
    for h in range(nh):
        for ch in range(3):
            level = float(rgb[h, ch])
            if level not in shades:
                shades[level] = np.rint(cover * np.float32(level)).astype(np.uint8)
            images[:, h, :, :, :, ch] = shades[level]
    factors = np.stack(np.unravel_index(np.arange(grid.size), grid.shape), axis=1).astype(np.uint8)
    return images.reshape(grid.size, 3, size, size), factors


def checkerboard_test_mask(factors: np.ndarray) -> np.ndarray:
    """True for the out-of-distribution test combinations: the sum of the bin indices is odd."""
    return (np.asarray(factors, dtype=np.int64).sum(axis=1) % 2) == 1


# --------------------------------------------------------------------------------------------------------------
# labels with several factors


class FactorSplit(Split):
    """A :class:`Split` whose labels ``y`` are int64 of shape (N, K), one column per factor.

    :class:`Split` requires (N,) class labels; the loaders and :func:`vaelab.metrics.collect` pass (N, ...)
    labels through unchanged, so only the construction check and :meth:`subset` differ here.
    """

    def __post_init__(self) -> None:
        if self.x.dim() != 4 or self.x.dtype not in (torch.uint8, torch.float32):
            raise ValueError(f"FactorSplit.x must be uint8/float32 (N, C, H, W), got {self.x.dtype} {self.x.shape}")
        if self.y is None or self.y.dtype != torch.int64 or self.y.dim() != 2 or len(self.y) != len(self.x):
            shape = None if self.y is None else (self.y.dtype, tuple(self.y.shape))
            raise ValueError(f"FactorSplit.y must be int64 of shape ({len(self.x)}, K), got {shape}")
        if self.source_index is not None and self.source_index.shape != (len(self.x),):
            raise ValueError(f"FactorSplit.source_index must have shape ({len(self.x)},)")

    def subset(self, index: Tensor | np.ndarray | Sequence[int]) -> FactorSplit:
        """The examples at ``index``, as a new FactorSplit holding copies (``source_index`` follows them)."""
        idx = torch.as_tensor(np.asarray(index), dtype=torch.long)
        src = idx if self.source_index is None else self.source_index[idx]
        assert self.y is not None
        return FactorSplit(self.x[idx], self.y[idx], src)


# --------------------------------------------------------------------------------------------------------------
# the cache and the registered data set


def _default_cache_dir(cfg: DataConfig) -> tuple[Path, str]:
    if cfg.cache_dir:
        return Path(cfg.cache_dir).expanduser(), "config key data.cache_dir"
    root, setting = resolve_data_root(cfg)
    folder = root / "tetrominoes"
    probe = folder if folder.exists() else root
    if probe.exists() and os.access(probe, os.W_OK):
        return folder, f"data folder ({setting})"
    cache = Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "vaelab"
    return cache, f"user cache (the data folder {root} is not writable)"


def cache_file(cfg: DataConfig) -> tuple[Path, str]:
    """Where the rendered set is cached, and the setting that chose the folder."""
    folder, why = _default_cache_dir(cfg)
    return folder / f"tetrominoes_v{GENERATOR_VERSION}.npz", why


_MEMORY: dict[str, tuple[np.ndarray, np.ndarray]] = {}


def load_or_render(cfg: DataConfig) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """The full rendered set (images, factors) from the per-process memo, the cache file, or a fresh rendering
    that is then written to the cache file (atomically; an unwritable cache is reported and skipped)."""
    path, why = cache_file(cfg)
    key = str(path.resolve())
    info: dict[str, Any] = {"cache_file": str(path), "cache_folder_chosen_by": why}
    if key in _MEMORY:
        images, factors = _MEMORY[key]
        return images, factors, {**info, "cache": "memory"}
    grid = TetrominoGrid()
    if path.is_file():
        try:
            with np.load(path) as f:
                images, factors = f["images"], f["factors"]
        except Exception as e:  # a truncated or foreign file
            raise DataError(f"file {path}: not a readable tetrominoes cache ({e}); delete it to re-render") from None
        if images.shape != (grid.size, 3, grid.image_size, grid.image_size) or factors.shape != (grid.size, 5):
            raise DataError(
                f"file {path}: images {images.shape}, factors {factors.shape} (expected "
                f"{(grid.size, 3, grid.image_size, grid.image_size)} and {(grid.size, 5)}); delete it to re-render"
            )
        info["cache"] = "file"
    else:
        t0 = time.perf_counter()
        images, factors = render_tetrominoes(grid)
        info["render_seconds"] = round(time.perf_counter() - t0, 2)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".npz.tmp", delete=False) as tmp:
                np.savez_compressed(tmp, images=images, factors=factors)
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp.name, 0o666 & ~umask)  # readable like any other data file (tempfile makes it 0600)
            os.replace(tmp.name, path)
            info["cache"] = "written"
        except OSError as e:
            print(f"vaelab: tetrominoes not cached ({path}: {e})", file=sys.stderr)
            info["cache"] = f"not written: {e}"
    _MEMORY[key] = (images, factors)
    return images, factors, info


@DATASETS.register("tetrominoes", modality="image")
def load_tetrominoes(cfg: DataConfig) -> ImageDataset:
    """The Tetrominoes set split by ``data.split_kind`` (``random`` or ``checkerboard``); see the module doc."""
    images, factors, cache_info = load_or_render(cfg)
    n = len(images)
    if cfg.split_kind == "checkerboard":
        is_test = checkerboard_test_mask(factors)
        rule = "test iff the sum of the 5 factor bin indices is odd (5-D checkerboard; out-of-distribution)"
    elif cfg.split_kind == "random":
        perm = fixed_permutation(n, cfg.split_seed, "tetrominoes/random")
        is_test = np.zeros(n, dtype=bool)
        is_test[perm[: n // 2]] = True
        rule = f"test = first {n // 2} of a fixed permutation (numpy RandomState, split_seed={cfg.split_seed})"
    else:  # the config loader rejects other values; direct callers get the same message
        raise ConfigError(
            f"data.split_kind: {cfg.split_kind!r} is not a valid choice; valid choices: random, checkerboard"
        )
    x = torch.from_numpy(images)
    y = torch.from_numpy(factors.astype(np.int64))
    full = FactorSplit(x, y)
    test = full.subset(np.flatnonzero(is_test))
    pool = full.subset(np.flatnonzero(~is_test))
    train, valid, valid_rule = holdout_split(pool, cfg.valid_size, cfg.split_seed, "tetrominoes")
    vals = TetrominoGrid().values()
    info = {
        "source": f"rendered procedurally (generator v{GENERATOR_VERSION}; no download)",
        **cache_info,
        "factors": {k: [round(float(v), 4) for v in vals[k]] for k in FACTOR_NAMES},
        "factor_units": {"angle": "degrees", "hue": "HSV hue", "scale": "pixels per cell", "x": "px", "y": "px"},
        "labels": "y = (N, 5) int64 factor bin indices (angle, hue, scale, x, y)",
        "split_kind": cfg.split_kind,
        "split": rule,
        "valid_split": valid_rule,
    }
    return finalize("tetrominoes", cfg, train, valid, test, default_binarize="none", num_classes=None, info=info)
