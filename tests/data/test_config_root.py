"""The data folder setting, the registry and the config dataclass."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

import pytest

from vaelab.data import DATASETS, DataConfig, load_dataset, resolve_data_root
from vaelab.registry import UnknownChoiceError


def test_resolve_data_root_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "work" / "repo"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    monkeypatch.delenv("VAELAB_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    root, setting = resolve_data_root(DataConfig())
    assert root == tmp_path / "home" / ".vaelab" / "data" and "~/.vaelab/data" in setting
    (tmp_path / "work" / "shared" / "data").mkdir(parents=True)
    root, setting = resolve_data_root(DataConfig())
    assert root == (tmp_path / "work" / "shared" / "data").resolve() and "../shared/data" in setting
    monkeypatch.setenv("VAELAB_DATA", str(tmp_path / "env"))
    assert resolve_data_root(DataConfig()) == (tmp_path / "env", "environment variable VAELAB_DATA")
    assert resolve_data_root(DataConfig(root=str(tmp_path / "cfg"))) == (tmp_path / "cfg", "config key data.root")


def test_registry_and_unknown_name() -> None:
    assert set(DATASETS.names()) >= {
        "mnist",
        "fashion_mnist",
        "binarized_mnist",
        "omniglot",
        "idx",
        "npz",
        "synthetic_blobs",
        "synthetic_gaussian",
    }
    with pytest.raises(UnknownChoiceError, match=r"unknown data set 'mnsit' \(config key 'data.name'\).*mnist"):
        load_dataset(DataConfig(name="mnsit"))


def test_config_fields_are_plain_typed() -> None:
    hints = typing.get_type_hints(DataConfig)
    assert typing.get_args(hints["binarize"])[0] == typing.Literal["dynamic", "static", "threshold", "none"]
    names = {f.name for f in dataclasses.fields(DataConfig)}
    assert {"name", "root", "binarize", "valid_size", "train_size", "eval_size", "split_seed", "path"} <= names
    d = DataConfig()
    assert (d.name, d.valid_size, d.split_seed, d.binarize) == ("mnist", 10000, 0, None)
