"""Fixtures for the text tests: the tiny corpus loaded as a data set, one thread per test. The corpus and its run
config (``corpus_dir``, ``text_run_config``) are in tests/conftest.py, shared with the report tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import OBJECTS, SUBJECTS, TINY_TEXT_RUN, VERBS  # noqa: F401 (re-exported to the text tests)
from vaelab.data import DataConfig, load_dataset
from vaelab.data.text import TextDataset


@pytest.fixture
def tiny_text(corpus_dir: Path) -> TextDataset:
    return load_dataset(DataConfig(name="text", path=str(corpus_dir)))


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread per test: these tensors are tiny, and on a shared 2-core machine a second thread
    mostly waits for a busy core. The previous setting is restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
