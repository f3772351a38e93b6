"""Bad inputs of the command line, set 13: an evaluation split whose words are all unknown (X_oovtest), real-valued
npz arrays (N17b), a data.image_shape that flattens the stored images (N20/N20b), and `vaelab sweep --list` after
seeds were appended to a finished sweep (S19)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from vaelab.cli import main
from vaelab.data import DataConfig, DataError, load_dataset

WORDS = ["the", "cat", "dog", "sat", "ran", "on", "mat", "a", "big", "small"]

TEXT_RUN: dict[str, Any] = {
    "name": "oov",
    "seed": 0,
    "data": {"name": "text"},
    "model": {"type": "lstm_vae", "latent_dim": 2, "emb_dim": 8, "hidden_dim": 8},
    "train": {"epochs": 1, "batch_size": 8, "progress": False},
    "eval": {"iw_samples": 2},
}

IMAGE_RUN: dict[str, Any] = {
    "name": "npz",
    "seed": 0,
    "data": {"name": "npz"},
    "model": {"type": "mlp", "latent_dim": 2, "hidden": [8]},
    "train": {"epochs": 1, "batch_size": 16, "progress": False},
    "eval": {"iw_samples": 2},
}


def write_yaml(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def write_corpus(folder: Path, test: list[str], valid: list[str] | None = None) -> Path:
    """A training file of 40 five-word sentences over :data:`WORDS`, and the given test (and validation) lines."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    train = [" ".join(rng.choice(WORDS, 5)) for _ in range(40)]
    (folder / "train.txt").write_text("\n".join(train) + "\n")
    (folder / "test.txt").write_text("\n".join(test) + "\n")
    if valid is not None:
        (folder / "valid.txt").write_text("\n".join(valid) + "\n")
    return folder


# ------------------------------------------------------------------------------------------------------------
# 1. X_oovtest: an evaluation split in which no word is in the training vocabulary


def test_a_test_file_of_unknown_words_only_is_refused_before_training(tmp_path: Path, capsys) -> None:
    corpus = write_corpus(tmp_path / "oovtest", ["zebra quux plonk", "quux zebra"] * 5)
    cfg = write_yaml(tmp_path / "textfile.yaml", TEXT_RUN)
    out = tmp_path / "run"
    assert main(["train", str(cfg), f"data.path={corpus}", "data.valid_size=5", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"{corpus / 'test.txt'}: none of its 25 words is in the training vocabulary (all would be <unk>)" in err
    assert "data.files.test" in err
    assert not out.exists()


def test_a_validation_file_of_unknown_words_only_is_refused(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "c", ["the cat sat"] * 3, valid=["<unk> zebra", "quux"] * 3)
    with pytest.raises(DataError, match=r"valid\.txt: none of its 9 words is in the training vocabulary"):
        load_dataset(DataConfig(name="text", path=str(corpus)))


def test_a_split_mostly_of_unknown_words_loads_with_a_warning(tmp_path: Path, capsys) -> None:
    corpus = write_corpus(tmp_path / "c", ["the zebra quux plonk"] * 4)
    ds = load_dataset(DataConfig(name="text", path=str(corpus), valid_size=5))
    assert ds.info["unk_rate"]["test"] == pytest.approx(0.75)
    err = capsys.readouterr().err
    assert "vaelab: warning:" in err and f"{corpus / 'test.txt'}: 75% of its 16 words" in err
    assert "test.txt" in err and "valid" not in err and "train.txt" not in err  # only the split that is off


def test_a_split_with_few_unknown_words_loads_silently(tmp_path: Path, capsys) -> None:
    corpus = write_corpus(tmp_path / "c", ["the cat sat zebra"] * 4)
    ds = load_dataset(DataConfig(name="text", path=str(corpus), valid_size=5))
    assert ds.info["unk_rate"]["test"] == pytest.approx(0.25)
    assert "warning" not in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------------------
# 2. N17b: real-valued npz arrays


def real_npz(path: Path) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(1)
    train = (rng.normal(size=(48, 8, 8)) * 1.5).astype(np.float32)
    np.savez(path, train=train, test=rng.normal(size=(12, 8, 8)).astype(np.float32))
    return path, train


def test_real_valued_npz_trains_with_binarize_none_and_a_gaussian_decoder(tmp_path: Path) -> None:
    path, train = real_npz(tmp_path / "neg.npz")
    ds = load_dataset(DataConfig(name="npz", path=str(path), valid_size=10, binarize="none"))
    xs = torch.cat([ds.train.x, ds.valid.x]).reshape(-1)
    assert ds.train.x.dtype == torch.float32 and float(xs.min()) == float(train.min()) < 0
    assert float(xs.max()) == float(train.max()) > 1
    cfg = write_yaml(tmp_path / "base.yaml", IMAGE_RUN)
    out = tmp_path / "run"
    args = [f"data.path={path}", "data.valid_size=10", "model.likelihood=gaussian", "data.binarize=none"]
    assert main(["train", str(cfg), *args, "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed"


def test_real_valued_npz_without_binarize_none_says_why_and_what_to_do(tmp_path: Path, capsys) -> None:
    path, _ = real_npz(tmp_path / "neg.npz")
    with pytest.raises(DataError) as e:
        load_dataset(DataConfig(name="npz", path=str(path), valid_size=10))
    msg = str(e.value)
    assert "float values span" in msg and "read floats as intensities" in msg
    assert "data.binarize=none" in msg and "model.likelihood=gaussian" in msg and "(x - min) / (max - min)" in msg
    cfg = write_yaml(tmp_path / "base.yaml", IMAGE_RUN)  # a Bernoulli decoder on them: refused, naming the key
    out = tmp_path / "run"
    assert main(["train", str(cfg), f"data.path={path}", "data.valid_size=10", "data.binarize=none"]) == 2
    err = capsys.readouterr().err
    assert "model.likelihood=bernoulli" in err and "use model.likelihood=gaussian" in err and not out.exists()


def test_float_intensities_and_non_finite_values_stay_refused(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    whole = rng.integers(0, 256, size=(20, 4, 4)).astype(np.float32)
    np.savez(tmp_path / "w.npz", train=whole, test=whole[:4])
    with pytest.raises(DataError, match=r"all whole numbers .*divide them by 255"):
        load_dataset(DataConfig(name="npz", path=str(tmp_path / "w.npz"), valid_size=4, binarize="none"))
    bad = rng.normal(size=(20, 4, 4)).astype(np.float32)
    bad[3, 1, 1] = np.nan
    np.savez(tmp_path / "n.npz", train=bad, test=bad[:4] * 0)
    with pytest.raises(DataError, match=r"n\.npz\[train\]: float values include NaN"):
        load_dataset(DataConfig(name="npz", path=str(tmp_path / "n.npz"), valid_size=4, binarize="none"))


# ------------------------------------------------------------------------------------------------------------
# 3. N20/N20b: data.image_shape that flattens the stored images or adds unit dimensions


@pytest.mark.parametrize(("image_shape", "stored"), [([64], (1, 1, 64)), ([1, 64, 1], (1, 64, 1)), ([8, 8], (1, 8, 8))])
def test_image_shape_may_flatten_the_stored_images(tmp_path: Path, image_shape, stored) -> None:
    x = np.random.default_rng(3).random((30, 8, 8)).astype(np.float32)
    np.savez(tmp_path / "img.npz", train=x, test=x[:5])
    ds = load_dataset(DataConfig(name="npz", path=str(tmp_path / "img.npz"), valid_size=0, image_shape=image_shape))
    assert ds.image_shape == stored
    assert torch.equal(ds.train.x.reshape(30, 64), torch.from_numpy(x.reshape(30, 64)))  # row-major, unchanged


def test_image_shape_flattening_trains_from_the_command_line(tmp_path: Path) -> None:
    x = np.random.default_rng(4).random((40, 8, 8)).astype(np.float32)
    np.savez(tmp_path / "img.npz", train=x, test=x[:8])
    cfg = write_yaml(tmp_path / "base.yaml", IMAGE_RUN)
    out = tmp_path / "run"
    args = [f"data.path={tmp_path / 'img.npz'}", "data.image_shape=[64]", "data.valid_size=8"]
    assert main(["train", str(cfg), *args, "--out", str(out)]) == 0
    assert (out / "summary.json").is_file()


def test_image_shape_that_regroups_the_dimensions_is_refused_accurately(tmp_path: Path) -> None:
    x = np.random.default_rng(5).random((20, 8, 8)).astype(np.float32)
    np.savez(tmp_path / "img.npz", train=x, test=x[:4])
    with pytest.raises(DataError) as e:
        load_dataset(DataConfig(name="npz", path=str(tmp_path / "img.npz"), valid_size=0, image_shape=[1, 4, 16]))
    msg = str(e.value)
    assert "data.image_shape=[1, 4, 16] does not keep the file's image shape (8, 8)" in msg
    assert "flatten them ([64])" in msg and "reordered" not in msg and "channels last" not in msg


def test_channels_last_images_are_still_named_as_such(tmp_path: Path) -> None:
    x = np.random.default_rng(6).random((20, 8, 8, 3)).astype(np.float32)
    np.savez(tmp_path / "rgb.npz", train=x, test=x[:4])
    with pytest.raises(DataError, match=r"would be reordered into data.image_shape=\[3, 8, 8\] \(channels last\?"):
        load_dataset(DataConfig(name="npz", path=str(tmp_path / "rgb.npz"), valid_size=0, image_shape=[3, 8, 8]))
    ds = load_dataset(DataConfig(name="npz", path=str(tmp_path / "rgb.npz"), valid_size=0, image_shape=[192]))
    assert ds.image_shape == (1, 1, 192)  # a flatten of the stored order (for an MLP) is no reordering


# ------------------------------------------------------------------------------------------------------------
# 4. S19: --list after seeds were appended to a finished sweep


SWEEP_BASE: dict[str, Any] = {
    "name": "tiny",
    "seed": 0,
    "data": {"name": "synthetic_blobs", "num_examples": 64, "image_shape": [1, 4, 4], "eval_size": 16},
    "model": {"type": "mlp", "latent_dim": 2, "hidden": [8]},
    "train": {"batch_size": 32, "epochs": 1, "progress": False},
    "eval": {"batch_size": 32, "iw_samples": 2, "iw_chunk": 2},
}


def test_list_after_appending_seeds_shows_the_finished_points_completed(tmp_path: Path, capsys) -> None:
    sweep = {"name": "tiny", "base_config": SWEEP_BASE, "grid": {"objective.beta.value": [0.5, 1.0]}}
    path = write_yaml(tmp_path / "sw.yaml", sweep)
    out = tmp_path / "folder"
    assert main(["sweep", str(path), "--out", str(out)]) == 0
    before = sorted(p.name for p in (out / "points").iterdir())
    assert before == ["0000-beta0.5", "0001-beta1"]
    stored = (out / "sweep.yaml").read_text()
    capsys.readouterr()

    write_yaml(path, {**sweep, "seeds": [0, 1]})
    assert main(["sweep", str(path), "--list", "--out", str(out)]) == 0
    rows = [ln.split("\t") for ln in capsys.readouterr().out.splitlines()[1:]]
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("0", "0000-beta0.5", "completed"),  # the folder that holds the point now
        ("1", "0001-beta1", "completed"),
        ("2", "0002-beta0.5-seed1", "missing"),
        ("3", "0003-beta1-seed1", "missing"),
    ]
    assert sorted(p.name for p in (out / "points").iterdir()) == before  # --list renamed nothing
    assert (out / "sweep.yaml").read_text() == stored  # ... and wrote nothing

    assert main(["sweep", str(path), "--index", "0", "--out", str(out)]) == 0  # a run renames, and trains nothing
    assert (out / "points" / "0000-beta0.5-seed0" / "measurements.json").is_file()
    capsys.readouterr()
    assert main(["sweep", str(path), "--list", "--out", str(out)]) == 0
    listed = capsys.readouterr().out
    assert "0\t0000-beta0.5-seed0\tcompleted" in listed and "1\t0001-beta1-seed0\tcompleted" in listed


def test_list_with_an_unrelated_missing_sweep_folder_is_unchanged(tmp_path: Path, capsys) -> None:
    sweep = {"name": "tiny", "base_config": SWEEP_BASE, "grid": {"objective.beta.value": [0.5]}, "seeds": [0, 1]}
    path = write_yaml(tmp_path / "sw.yaml", sweep)
    assert main(["sweep", str(path), "--list", "--out", str(tmp_path / "none")]) == 0
    rows = [ln.split("\t")[1:3] for ln in capsys.readouterr().out.splitlines()[1:]]
    assert rows == [["0000-seed0", "missing"], ["0001-seed1", "missing"]]
    assert not (tmp_path / "none").exists()


def test_a_vocabulary_cap_that_leaves_most_training_words_unknown_warns_to_raise_it(tmp_path: Path, capsys) -> None:
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "train.txt").write_text("a b c d\n" * 6)
    (corpus / "test.txt").write_text("a a b\n")
    ds = load_dataset(DataConfig(name="text", path=str(corpus), valid_size=2, vocab_size=5))  # <pad> <s> </s> <unk> a
    assert ds.vocab.itos[4:] == ["a"] and ds.info["unk_rate"]["train"] == pytest.approx(0.75)
    err = capsys.readouterr().err
    assert f"{corpus / 'train.txt'}: 75% of its 16 words are not in the training vocabulary" in err
    assert "raise data.vocab_size" in err
