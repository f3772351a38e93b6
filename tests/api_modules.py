"""The tiny user modules of the Python API tests (tests/test_api_set1*.py): an encoder and a decoder on 12-pixel
binary data, their factory, the data and the overrides of a one-epoch run, and the one-line check of a refusal."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn


class Enc(nn.Module):
    """(mu, logvar) of a linear map of the flattened x; ``calls`` counts forward passes (a refusal made before any
    work leaves it 0)."""

    def __init__(self, latent: int = 3) -> None:
        super().__init__()
        self.net = nn.Linear(12, 2 * latent)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.net(x.flatten(1)).chunk(2, -1)


class Dec(nn.Module):
    """log p(x|z) of a Bernoulli with logits (a cross-entropy: any real x is scored); ``nan=True`` returns NaN."""

    def __init__(self, latent: int = 3, nan: bool = False) -> None:
        super().__init__()
        self.net = nn.Linear(latent, 12)
        self.nan = nan

    def log_prob(self, x, z):
        ll = -F.binary_cross_entropy_with_logits(self.net(z), x.flatten(1), reduction="none").sum(1)
        return ll * float("nan") if self.nan else ll


def build(latent_dim: int = 3):
    """The model factory of ``vaelab.train`` (model_kwargs ``latent_dim``)."""
    return Enc(latent_dim), Dec(latent_dim)


X = (torch.rand(120, 12, generator=torch.Generator().manual_seed(0)) < 0.3).float()
FAST = ["train.epochs=1", "train.batch_size=40", "eval.iw_samples=2", "train.progress=false"]


def one_line(e: pytest.ExceptionInfo) -> str:
    """The refusal's message, asserted to be one line."""
    text = str(e.value)
    assert "\n" not in text
    return text
