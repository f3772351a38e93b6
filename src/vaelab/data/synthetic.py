"""Small synthetic image sets with known structure, generated in memory, deterministic in ``data.split_seed``.

- ``synthetic_blobs``: binary images made from ``num_templates`` random templates with each pixel flipped with
  probability ``noise``; labels = template id. Default binarisation: static.
- ``synthetic_gaussian``: the linear-Gaussian model x = W z + b + s * eps, z ~ N(0, I_k), eps ~ N(0, I_D)
  (probabilistic PCA, Tipping & Bishop 1999), returned with its ground truth ``truth = {"W", "b", "s"}`` so
  that tests can check exact log-likelihoods: marginally x ~ N(b, W W^T + s^2 I) (see
  :func:`linear_gaussian_log_likelihood`). Values are real, not in [0, 1]; default binarisation: none.

Sizes: ``num_examples`` training examples and ``eval_size`` (default ``num_examples // 4``, at least 1) each
for validation and test; ``image_shape`` sets the example shape. Each split is drawn from its own seeded
stream, so the training set does not change with ``eval_size``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from vaelab.data.base import DATASETS, ImageDataset, Split, finalize, normalize_image_shape, torch_generator
from vaelab.data.config import DataConfig


def _sizes(cfg: DataConfig) -> tuple[int, int]:
    """Training and evaluation sizes (the values were checked by ``load_dataset``:
    :func:`vaelab.data.checks.check_data`)."""
    n_eval = cfg.eval_size if cfg.eval_size is not None else max(1, cfg.num_examples // 4)
    return cfg.num_examples, n_eval


@DATASETS.register("synthetic_blobs", modality="image")
def load_synthetic_blobs(cfg: DataConfig) -> ImageDataset:
    """Binary template images with flip noise (uint8 0/255), labels = template id; default shape (1, 8, 8).

    ``truth["templates"]``: the templates, uint8 0/255 of shape (num_templates, C, H, W).
    """
    shape = normalize_image_shape(cfg.image_shape or [1, 8, 8])
    n_train, n_eval = _sizes(cfg)
    g = torch_generator(cfg.split_seed, "synthetic_blobs/templates")
    templates = torch.rand((cfg.num_templates, *shape), generator=g) < 0.35

    def draw(n: int, part: str) -> Split:
        gs = torch_generator(cfg.split_seed, f"synthetic_blobs/{part}")
        y = torch.randint(cfg.num_templates, (n,), generator=gs)
        flips = torch.rand((n, *shape), generator=gs) < cfg.noise
        x = templates[y] ^ flips
        return Split(x.to(torch.uint8) * 255, y.long())

    info = {
        "source": "generated in memory",
        "generator": (
            f"{cfg.num_templates} Bernoulli(0.35) templates of shape {list(shape)}, pixels flipped with "
            f"probability {cfg.noise}, seed split_seed={cfg.split_seed}"
        ),
        "split": f"{n_train} train, {n_eval} valid, {n_eval} test, each from its own stream",
    }
    return finalize(
        "synthetic_blobs",
        cfg,
        draw(n_train, "train"),
        draw(n_eval, "valid"),
        draw(n_eval, "test"),
        default_binarize="static",
        num_classes=cfg.num_templates,
        info=info,
        truth={"templates": templates.to(torch.uint8) * 255},  # (K, C, H, W), 0/255 like Split.x
    )


@DATASETS.register("synthetic_gaussian", modality="image")
def load_synthetic_gaussian(cfg: DataConfig) -> ImageDataset:
    """x = W z + b + s * eps, float32 of shape (N, C, H, W) (default (1, 4, 4), D = 16), no labels.

    ``truth``: ``W`` float64 (D, k), ``b`` float64 (D,), ``s`` (float, = ``data.noise``) and ``latent_dim`` k.
    W has i.i.d. N(0, 1/k) entries and b i.i.d. N(0, 1) (fixed by ``split_seed``). Data are generated in
    float64 and stored as float32.
    """
    shape = normalize_image_shape(cfg.image_shape or [1, 4, 4])
    d = math.prod(shape)
    k = cfg.latent_dim
    n_train, n_eval = _sizes(cfg)
    g = torch_generator(cfg.split_seed, "synthetic_gaussian/params")
    w = torch.randn((d, k), generator=g, dtype=torch.float64) / math.sqrt(k)
    b = torch.randn((d,), generator=g, dtype=torch.float64)
    s = float(cfg.noise)

    def draw(n: int, part: str) -> Split:
        gs = torch_generator(cfg.split_seed, f"synthetic_gaussian/{part}")
        z = torch.randn((n, k), generator=gs, dtype=torch.float64)
        eps = torch.randn((n, d), generator=gs, dtype=torch.float64)
        x = z @ w.T + b + s * eps
        return Split(x.to(torch.float32).reshape(n, *shape))

    info = {
        "source": "generated in memory",
        "generator": (
            f"x = W z + b + s eps, z ~ N(0, I_{k}), D = {d}, s = {s}, W ~ N(0, 1/k), b ~ N(0, 1), "
            f"seed split_seed={cfg.split_seed}"
        ),
        "split": f"{n_train} train, {n_eval} valid, {n_eval} test, each from its own stream",
    }
    return finalize(
        "synthetic_gaussian",
        cfg,
        draw(n_train, "train"),
        draw(n_eval, "valid"),
        draw(n_eval, "test"),
        default_binarize="none",
        num_classes=None,
        info=info,
        truth={"W": w, "b": b, "s": s, "latent_dim": k},
    )


def linear_gaussian_log_likelihood(x: Tensor, w: Tensor, b: Tensor, s: float) -> Tensor:
    """Exact log p(x) in nats per example under x = W z + b + s eps, i.e. N(b, W W^T + s^2 I).

    ``x``: (N, ...) flattened to (N, D); ``w``: (D, k); ``b``: (D,). Computed in float64; returns (N,).
    """
    xf = x.reshape(len(x), -1).to(torch.float64)
    d = xf.shape[1]
    cov = w.to(torch.float64) @ w.to(torch.float64).T + (s**2) * torch.eye(d, dtype=torch.float64)
    dist = torch.distributions.MultivariateNormal(b.to(torch.float64), covariance_matrix=cov)
    return dist.log_prob(xf)
