"""Fashion-MNIST from IDX files: on full-size files the test writes, and on the Debian package when installed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vaelab.data import DataConfig, DataError, load_dataset, write_idx
from vaelab.data.images import FASHION_SYSTEM_DIRS


@pytest.fixture(scope="module")
def fake_fashion(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Full-size Fashion-MNIST-shaped IDX files (60,000 / 10,000, 10 balanced classes): image = label * 20."""
    root = tmp_path_factory.mktemp("data")
    folder = root / "fashion_mnist"
    folder.mkdir()
    for prefix, n, gz in (("train", 60000, False), ("t10k", 10000, True)):
        y = (np.arange(n) % 10).astype(np.uint8)
        x = np.broadcast_to((y * 20)[:, None, None], (n, 28, 28)).astype(np.uint8)
        sfx = ".gz" if gz else ""
        write_idx(folder / f"{prefix}-images-idx3-ubyte{sfx}", x)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{sfx}", y)
    return root


def test_fashion_from_data_root(fake_fashion: Path) -> None:
    ds = load_dataset(DataConfig(name="fashion_mnist", root=str(fake_fashion)))
    assert (len(ds.train), len(ds.valid), len(ds.test)) == (50000, 10000, 10000)
    assert ds.image_shape == (1, 28, 28) and ds.num_classes == 10 and ds.binarize == "dynamic"
    assert ds.info["classes"][0] == "T-shirt/top" and ds.info["files"]["test_images"].endswith(".gz")
    for s in (ds.train, ds.valid, ds.test):  # labels still match their images after the split
        assert torch.equal(s.x[:, 0, 0, 0].long(), s.y * 20)
    assert set(ds.train.source_index.tolist()).isdisjoint(ds.valid.source_index.tolist())
    # same validation rule (and seed) as MNIST: the same positions of the training file
    mnist_like = load_dataset(DataConfig(name="idx", path=str(fake_fashion / "fashion_mnist")))
    assert torch.equal(mnist_like.valid.source_index, ds.valid.source_index)


def test_fashion_class_count_check(fake_fashion: Path, tmp_path: Path) -> None:
    folder = tmp_path / "fashion-mnist"
    folder.mkdir()
    for f in (fake_fashion / "fashion_mnist").iterdir():
        (folder / f.name).symlink_to(f)
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    write_idx(folder / "t10k-labels-idx1-ubyte", np.zeros(10000, np.uint8))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte: test class counts \[10000, 0,.*differ"):
        load_dataset(DataConfig(name="fashion_mnist", root=str(tmp_path)))


def test_fashion_missing_lists_searched_places(tmp_path: Path) -> None:
    if any((Path(d) / "train-images-idx3-ubyte.gz").exists() for d in FASHION_SYSTEM_DIRS):
        pytest.skip("the Debian package dataset-fashion-mnist is installed, so nothing is missing")
    with pytest.raises(DataError) as e:
        load_dataset(DataConfig(name="fashion_mnist", root=str(tmp_path)))
    msg = str(e.value)
    assert str(tmp_path / "fashion_mnist") in msg and "config key data.root" in msg
    assert "/usr/share/datasets/fashion-mnist" in msg and "apt-get install dataset-fashion-mnist" in msg


@pytest.mark.data
def test_fashion_from_debian_package() -> None:
    folder = next((Path(d) for d in FASHION_SYSTEM_DIRS if (Path(d) / "train-images-idx3-ubyte.gz").exists()), None)
    if folder is None:
        pytest.skip("Debian package dataset-fashion-mnist not installed (/usr/share/datasets/fashion-mnist)")
    ds = load_dataset(DataConfig(name="fashion_mnist", path=str(folder)))
    assert (len(ds.train), len(ds.valid), len(ds.test)) == (50000, 10000, 10000)
    assert 0.27 < ds.test.x.float().mean().item() / 255 < 0.30  # mean Fashion-MNIST intensity is about 0.286
