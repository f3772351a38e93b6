"""Fixtures for the sweep tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from .helpers import sweep_dict


@pytest.fixture
def write_sweep(tmp_path: Path):
    """Write a sweep file (``sweep_dict`` with changes) and return its path."""

    def make(name: str = "tiny.yaml", **changes: Any) -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(sweep_dict(**changes), sort_keys=False))
        return path

    return make
