"""Data sets read from the shared data folder ($VAELAB_DATA or ../shared/data): skipped cleanly without it."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from vaelab.data import DataConfig, DataError, load_dataset

pytestmark = pytest.mark.data


def _need(root: Path, rel: str) -> Path:
    p = root / rel
    if not p.exists():
        pytest.skip(f"{p} is absent from the data folder")
    return p


def test_binarized_mnist(shared_data_root: Path) -> None:
    _need(shared_data_root, "binarized_mnist/binarized_mnist_uint8.npz")
    ds = load_dataset(DataConfig(name="binarized_mnist", root=str(shared_data_root)))
    assert (len(ds.train), len(ds.valid), len(ds.test)) == (50000, 10000, 10000)
    assert ds.image_shape == (1, 28, 28) and ds.binarize == "static" and ds.num_classes is None
    assert ds.train.y is None and ds.train.is_binary()
    assert ds.info["sha256"] == "350243cb824d66d022e0c3e87cac231231668817ff03f5f6d7b6533017d56b4b"
    # mean pixel of the published file (SOURCE.md: 0.130562 / 0.131127 / 0.132512)
    for s, m in ((ds.train, 0.130562), (ds.valid, 0.131127), (ds.test, 0.132512)):
        assert abs(s.x.float().mean().item() / 255 - m) < 1e-5
    b = next(ds.loader("train", 64, seed=0).epoch(0))
    assert b.x.shape == (64, 1, 28, 28) and set(b.x.unique().tolist()) == {0.0, 1.0}


def test_binarized_mnist_checksum_and_missing(shared_data_root: Path, tmp_path: Path) -> None:
    src = _need(shared_data_root, "binarized_mnist/binarized_mnist_uint8.npz")
    with np.load(src) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["test"] = arrays["test"].copy()
    arrays["test"][0, 0] ^= 1
    (tmp_path / "binarized_mnist").mkdir()
    np.savez(tmp_path / "binarized_mnist" / "binarized_mnist_uint8.npz", **arrays)
    with pytest.raises(DataError, match=r"binarized_mnist_uint8\.npz: sha256 .* does not match.*config key data\.root"):
        load_dataset(DataConfig(name="binarized_mnist", root=str(tmp_path)))
    ds = load_dataset(DataConfig(name="binarized_mnist", root=str(tmp_path), verify_checksum=False))
    assert int(ds.test.x[0, 0, 0, 0]) == 255 * int(arrays["test"][0, 0])
    assert ds.info["checksum_verified"] is False
    shutil.rmtree(tmp_path / "binarized_mnist")
    with pytest.raises(DataError) as e:
        load_dataset(DataConfig(name="binarized_mnist", root=str(tmp_path)))
    msg = str(e.value)
    assert "binarized_mnist_uint8.npz: not found" in msg and str(tmp_path) in msg and "data.root" in msg


def test_binarized_mnist_wrong_shape(tmp_path: Path) -> None:
    (tmp_path / "binarized_mnist").mkdir()
    bad = {"train": np.zeros((10, 784), np.uint8), "valid": np.zeros((10, 784), np.uint8)}
    np.savez(tmp_path / "binarized_mnist" / "binarized_mnist_uint8.npz", **bad)
    with pytest.raises(DataError, match=r"no arrays \['test'\]"):
        load_dataset(DataConfig(name="binarized_mnist", root=str(tmp_path), verify_checksum=False))
    np.savez(tmp_path / "binarized_mnist" / "binarized_mnist_uint8.npz", test=bad["train"], **bad)
    with pytest.raises(DataError, match=r"array 'train' have shape \(10, 784\) \(expected \(50000, 784\)\)"):
        load_dataset(DataConfig(name="binarized_mnist", root=str(tmp_path), verify_checksum=False))


def test_omniglot(shared_data_root: Path) -> None:
    _need(shared_data_root, "omniglot/images_background.npz")
    _need(shared_data_root, "omniglot/images_evaluation.npz")
    ds = load_dataset(DataConfig(name="omniglot", root=str(shared_data_root)))
    assert (len(ds.train), len(ds.valid), len(ds.test)) == (1623 * 14, 1623, 1623 * 5)
    assert ds.image_shape == (1, 28, 28) and ds.num_classes == 1623 and ds.binarize == "dynamic"
    x = ds.train.x
    assert x.dtype == torch.float32 and x.min() >= 0 and x.max() <= 1
    assert 0.05 < x.mean().item() < 0.12  # ink is a minority of pixels (about 8% at 105x105)
    assert x[:, 0, 0, :].mean() < x.mean()  # ink = 1 is in the middle, not on the border
    for s, k in ((ds.train, 14), (ds.valid, 1), (ds.test, 5)):  # every character, k drawers each
        assert torch.equal(torch.bincount(s.y, minlength=1623), torch.full((1623,), k))
    all_idx = torch.cat([ds.train.source_index, ds.valid.source_index, ds.test.source_index])
    assert sorted(all_idx.tolist()) == list(range(1623 * 20))
    pooled = load_dataset(DataConfig(name="omniglot", root=str(shared_data_root), valid_size=0, eval_size=100))
    assert (len(pooled.train), len(pooled.valid), len(pooled.test)) == (24345, 0, 100)


def test_omniglot_missing_names_file_and_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAELAB_DATA", str(tmp_path))
    with pytest.raises(DataError) as e:
        load_dataset(DataConfig(name="omniglot"))
    msg = str(e.value)
    assert "images_background.npz: not found" in msg and "environment variable VAELAB_DATA" in msg
