"""IDX reading/writing and the generic ``idx`` / ``npz`` data sets, on files the tests write."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from vaelab.data import DataConfig, DataError, load_dataset, read_idx, write_idx
from vaelab.data.idx import read_idx_images, read_idx_labels


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize(
    "arr",
    [
        np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4),
        np.array([-3, 0, 7], dtype=np.int8),
        np.arange(-6, 6, dtype=np.int16).reshape(3, 4),
        np.array([[1, -70000], [123456789, 0]], dtype=np.int32),
        np.linspace(-1, 1, 10, dtype=np.float32).reshape(2, 5),
        np.linspace(-1, 1, 8, dtype=np.float64).reshape(2, 2, 2),
    ],
    ids=["uint8", "int8", "int16", "int32", "float32", "float64"],
)
def test_idx_round_trip(tmp_path: Path, arr: np.ndarray, suffix: str) -> None:
    p = write_idx(tmp_path / f"a.idx{suffix}", arr)
    back = read_idx(p)
    assert back.dtype == arr.dtype.newbyteorder("=")
    np.testing.assert_array_equal(back, arr)
    if suffix:
        with gzip.open(p) as f:
            raw = f.read()
    else:
        raw = p.read_bytes()
    assert raw[:4] == bytes([0, 0, raw[2], arr.ndim]) and raw[2] in (8, 9, 11, 12, 13, 14)


def test_idx_header_is_big_endian_mnist_layout(tmp_path: Path) -> None:
    x = np.zeros((5, 28, 28), np.uint8)
    raw = write_idx(tmp_path / "imgs", x).read_bytes()
    assert raw[:16] == bytes.fromhex("00000803") + (5).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
    assert len(raw) == 16 + 5 * 28 * 28


def test_bad_magic_names_file_and_expected(tmp_path: Path) -> None:
    p = write_idx(tmp_path / "labels-idx1-ubyte", np.zeros(4, np.uint8))
    with pytest.raises(DataError) as e:
        read_idx_images(p)
    msg = str(e.value)
    assert str(p) in msg and "bad IDX magic 0x00000801" in msg and "0x00000803 for uint8 images" in msg
    q = tmp_path / "garbage"
    q.write_bytes(b"PK\x03\x04" + b"\0" * 20)
    with pytest.raises(DataError, match=r"garbage: bad IDX magic 0x504B0304"):
        read_idx(q)


def test_truncated_and_trailing_bytes(tmp_path: Path) -> None:
    p = write_idx(tmp_path / "x-idx3-ubyte", np.ones((3, 4, 4), np.uint8))
    raw = p.read_bytes()
    short = tmp_path / "short-idx3-ubyte"
    short.write_bytes(raw[:-5])
    with pytest.raises(DataError, match=r"short-idx3-ubyte: truncated: header says 3x4x4 uint8 = 48 bytes.*has 43"):
        read_idx_images(short)
    head = tmp_path / "head-idx3-ubyte"
    head.write_bytes(raw[:9])
    with pytest.raises(DataError, match="head-idx3-ubyte: truncated header"):
        read_idx(head)
    long = tmp_path / "long-idx3-ubyte"
    long.write_bytes(raw + b"\0\0")
    with pytest.raises(DataError, match="long-idx3-ubyte: 2 unexpected bytes"):
        read_idx(long)
    wrong = tmp_path / "wrong-magic"  # 3-d data whose magic announces 2 dimensions (0x0802, not 0x0803)
    wrong.write_bytes(raw[:3] + b"\x02" + raw[4:])
    with pytest.raises(DataError, match=r"the bytes fit 3 dimensions \(3x4x4\): the magic should be 0x00000803"):
        read_idx(wrong)
    tiny = tmp_path / "tiny"
    tiny.write_bytes(b"\0\0")
    with pytest.raises(DataError, match="tiny: truncated"):
        read_idx(tiny)


def test_corrupt_gzip_and_missing_file(tmp_path: Path) -> None:
    p = write_idx(tmp_path / "x-idx3-ubyte.gz", np.ones((3, 4, 4), np.uint8))
    bad = tmp_path / "bad-idx3-ubyte.gz"
    bad.write_bytes(p.read_bytes()[:-12])
    with pytest.raises(DataError, match=r"bad-idx3-ubyte\.gz: cannot be read or decompressed"):
        read_idx(bad)
    with pytest.raises(DataError, match="nope-idx1-ubyte: not found"):
        read_idx_labels(tmp_path / "nope-idx1-ubyte", where="data folder X chosen by config key data.root")


def _write_mnist_like(folder: Path, n_train: int = 40, n_test: int = 12, gz: bool = True) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 6, 5), dtype=np.uint8),
        "train-labels-idx1-ubyte": (np.arange(n_train) % 3).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 6, 5), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": (np.arange(n_test) % 3).astype(np.uint8),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for stem, a in arrays.items():
        write_idx(folder / (stem + (".gz" if gz else "")), a)
    return arrays


def test_idx_dataset_default_names(tmp_path: Path) -> None:
    arrays = _write_mnist_like(tmp_path / "set")
    ds = load_dataset(DataConfig(name="idx", path=str(tmp_path / "set"), valid_size=10))
    assert ds.image_shape == (1, 6, 5) and ds.num_classes == 3 and ds.binarize == "dynamic"
    assert (len(ds.train), len(ds.valid), len(ds.test)) == (30, 10, 12)
    np.testing.assert_array_equal(ds.test.x[:, 0].numpy(), arrays["t10k-images-idx3-ubyte"])
    # train + valid is a partition of the training file, labels follow their images
    all_x = torch.cat([ds.train.x, ds.valid.x]).reshape(40, -1)
    src = torch.from_numpy(arrays["train-images-idx3-ubyte"]).reshape(40, -1)
    assert sorted(map(tuple, all_x.tolist())) == sorted(map(tuple, src.tolist()))
    assert ds.info["files"]["train_images"].endswith("train-images-idx3-ubyte.gz")


def test_idx_dataset_explicit_files_relative_to_root_and_flat_rows(tmp_path: Path) -> None:
    x = np.random.default_rng(1).integers(0, 2, (20, 12), dtype=np.uint8)
    write_idx(tmp_path / "tr.idx", x)
    write_idx(tmp_path / "te.idx", x[:5])
    write_idx(tmp_path / "va.idx", x[:3])
    cfg = DataConfig(
        name="idx",
        root=str(tmp_path),
        files={"train_images": "tr.idx", "test_images": "te.idx", "valid_images": "va.idx"},
        image_shape=[2, 3, 2],
    )
    ds = load_dataset(cfg)
    assert ds.image_shape == (2, 3, 2) and ds.num_classes is None
    assert (len(ds.train), len(ds.valid), len(ds.test)) == (20, 3, 5)
    assert ds.binarize == "static"  # 0/1 data default to static
    assert set(ds.train.x.unique().tolist()) <= {0, 255}


def test_idx_label_count_mismatch_names_both_files(tmp_path: Path) -> None:
    _write_mnist_like(tmp_path, gz=False)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(39, np.uint8))
    with pytest.raises(DataError) as e:
        load_dataset(DataConfig(name="idx", path=str(tmp_path), valid_size=5))
    msg = str(e.value)
    assert "train-labels-idx1-ubyte: 39 labels for the 40 images of" in msg and "train-images-idx3-ubyte" in msg


def test_idx_dataset_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no train_images file") as e:
        load_dataset(DataConfig(name="idx", root=str(tmp_path)))
    assert "config key data.root" in str(e.value)
    with pytest.raises(ValueError, match=r"unknown role.*train_imgs.*valid roles: train_images"):
        load_dataset(DataConfig(name="idx", root=str(tmp_path), files={"train_imgs": "a"}))
    _write_mnist_like(tmp_path)
    with pytest.raises(ValueError, match=r"data.valid_size=40 must be in \[0, 39\]"):
        load_dataset(DataConfig(name="idx", path=str(tmp_path), valid_size=40))


def _write_npz(path: Path, **arrays: np.ndarray) -> Path:
    np.savez_compressed(path, **arrays)
    return path


def test_npz_dataset_keys_labels_and_shapes(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    p = _write_npz(
        tmp_path / "d.npz",
        x_train=rng.random((30, 16), dtype=np.float32),
        y_train=np.arange(30) % 4,
        x_test=rng.random((8, 16), dtype=np.float32),
        y_test=np.arange(8) % 4,
    )
    ds = load_dataset(DataConfig(name="npz", path=str(p), valid_size=6))
    assert ds.image_shape == (1, 4, 4) and ds.num_classes == 4
    assert (len(ds.train), len(ds.valid), len(ds.test)) == (24, 6, 8)
    assert ds.train.x.dtype == torch.float32 and ds.info["keys"]["train"] == "x_train"
    ds2 = load_dataset(DataConfig(name="npz", path=str(p), valid_size=0, image_shape=[4, 2, 2]))
    assert ds2.image_shape == (4, 2, 2) and len(ds2.valid) == 0 and len(ds2.train) == 30


def test_npz_nchw_uint8_and_explicit_keys(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    _write_npz(
        tmp_path / "d.npz",
        a=rng.integers(0, 256, (10, 3, 4, 4), dtype=np.uint8),
        b=rng.integers(0, 256, (4, 3, 4, 4), dtype=np.uint8),
        c=rng.integers(0, 256, (5, 3, 4, 4), dtype=np.uint8),
    )
    ds = load_dataset(
        DataConfig(name="npz", root=str(tmp_path), path="d.npz", files={"train": "a", "valid": "b", "test": "c"})
    )
    assert ds.image_shape == (3, 4, 4) and ds.train.x.dtype == torch.uint8
    assert (len(ds.train), len(ds.valid), len(ds.test)) == (10, 4, 5)


def test_npz_wrong_keys_name_the_file(tmp_path: Path) -> None:
    p = _write_npz(tmp_path / "d.npz", images=np.zeros((4, 2, 2), np.uint8), test=np.zeros((2, 2, 2), np.uint8))
    with pytest.raises(DataError) as e:
        load_dataset(DataConfig(name="npz", path=str(p)))
    msg = str(e.value)
    assert str(p) in msg and "no train images" in msg and "images, test" in msg
    with pytest.raises(
        DataError, match=r"d.npz: no array 'imgs' \(config data.files.train\); arrays in file: images, test"
    ):
        load_dataset(DataConfig(name="npz", path=str(p), files={"train": "imgs"}))
    with pytest.raises(DataError, match=r"missing\.npz: not found"):
        load_dataset(DataConfig(name="npz", path=str(tmp_path / "missing.npz")))
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match=r"junk.npz: cannot be read as .npz"):
        load_dataset(DataConfig(name="npz", path=str(tmp_path / "junk.npz")))


def test_npz_value_checks(tmp_path: Path) -> None:
    p = _write_npz(tmp_path / "f.npz", train=np.full((4, 4), 1.5, np.float32), test=np.zeros((2, 4), np.float32))
    with pytest.raises(DataError, match=r"f.npz\[train\]: float values span 1.5..1.5 \(expected floats in \[0, 1\]\)"):
        load_dataset(DataConfig(name="npz", path=str(p), valid_size=0))
    q = _write_npz(tmp_path / "g.npz", train=np.zeros((4, 5), np.uint8), test=np.zeros((2, 5), np.uint8))
    with pytest.raises(DataError, match=r"not square images.*data\.image_shape"):
        load_dataset(DataConfig(name="npz", path=str(q), valid_size=0))
    r = _write_npz(tmp_path / "h.npz", train=np.full((4, 4), 128, np.uint8), test=np.zeros((2, 4), np.uint8))
    with pytest.raises(ValueError, match="binarize='static' needs data that are already 0/1"):
        load_dataset(DataConfig(name="npz", path=str(r), valid_size=0, binarize="static"))
