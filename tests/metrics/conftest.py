"""Fixtures for the metrics tests."""

from __future__ import annotations

import pytest

from .helpers import PPCA, make_ppca


@pytest.fixture
def ppca() -> PPCA:
    return make_ppca()
