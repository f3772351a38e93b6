"""Synthetic sets: determinism in the seed, sizes, and the linear-Gaussian ground truth."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

from vaelab.data import DataConfig, linear_gaussian_log_likelihood, load_dataset


@pytest.mark.parametrize("name", ["synthetic_blobs", "synthetic_gaussian"])
def test_deterministic_in_seed(name: str) -> None:
    a = load_dataset(DataConfig(name=name, num_examples=300))
    b = load_dataset(DataConfig(name=name, num_examples=300))
    c = load_dataset(DataConfig(name=name, num_examples=300, split_seed=1))
    d = load_dataset(DataConfig(name=name, num_examples=300, eval_size=10))
    for split in ("train", "valid", "test"):
        assert torch.equal(a.split(split).x, b.split(split).x)
    assert not torch.equal(a.train.x, c.train.x)
    assert torch.equal(a.train.x, d.train.x)  # the training set does not depend on the eval size
    assert (len(a.train), len(a.valid), len(a.test)) == (300, 75, 75) and len(d.test) == 10
    json.dumps(a.info)


def test_blobs() -> None:
    ds = load_dataset(DataConfig(name="synthetic_blobs", num_examples=2000, num_templates=3, noise=0.05))
    assert ds.image_shape == (1, 8, 8) and ds.num_classes == 3 and ds.binarize == "static"
    assert ds.train.x.dtype == torch.uint8 and ds.train.is_binary()
    templates = ds.truth["templates"]
    flips = (ds.train.x != templates[ds.train.y]).float().mean().item()
    assert abs(flips - 0.05) < 0.01
    assert set(ds.train.y.tolist()) == {0, 1, 2}
    b = next(ds.loader("train", 100, seed=0).epoch(0))
    assert torch.equal(b.x, ds.train.x[b.index].float() / 255)


def test_gaussian_ground_truth() -> None:
    cfg = DataConfig(name="synthetic_gaussian", num_examples=20000, latent_dim=3, noise=0.5, image_shape=[1, 2, 3])
    ds = load_dataset(cfg)
    assert ds.image_shape == (1, 2, 3) and ds.binarize == "none" and ds.train.y is None
    w, b, s = ds.truth["W"], ds.truth["b"], ds.truth["s"]
    assert w.shape == (6, 3) and b.shape == (6,) and s == 0.5
    x = ds.train.x.reshape(20000, 6).double()
    cov = w @ w.T + s**2 * torch.eye(6, dtype=torch.float64)
    assert (x.mean(0) - b).abs().max() < 0.05
    assert (torch.cov(x.T) - cov).abs().max() < 0.1
    # exact log-likelihood against scipy, and its mean near minus the Gaussian entropy
    ll = linear_gaussian_log_likelihood(ds.test.x, w, b, s)
    ref = multivariate_normal(b.numpy(), cov.numpy()).logpdf(ds.test.x.reshape(len(ds.test), 6).double().numpy())
    np.testing.assert_allclose(ll.numpy(), ref, rtol=1e-10, atol=1e-10)
    entropy = 0.5 * torch.logdet(2 * math.pi * math.e * cov).item()
    assert abs(ll.mean().item() + entropy) < 0.1
    with pytest.raises(ValueError, match="binarize='dynamic' needs intensities in"):
        load_dataset(DataConfig(name="synthetic_gaussian", binarize="dynamic"))
