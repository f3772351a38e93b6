"""Diagonal Gaussians in closed form: the posterior family q(z|x) and the standard-normal prior p(z).

All log densities are in nats and summed over the latent dimensions unless a ``per_dim`` variant is used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

LOG_2PI = math.log(2.0 * math.pi)


def log_normal(z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """Elementwise log N(z; mu, exp(logvar)) in nats (no reduction; broadcasting applies)."""
    return -0.5 * (LOG_2PI + logvar + (z - mu) ** 2 * torch.exp(-logvar))


def log_standard_normal(z: Tensor) -> Tensor:
    """Elementwise log N(z; 0, 1) in nats (no reduction)."""
    return -0.5 * (LOG_2PI + z**2)


def kl_diag_gaussians(mu_q: Tensor, logvar_q: Tensor, mu_p: Tensor, logvar_p: Tensor) -> Tensor:
    """Elementwise KL( N(mu_q, var_q) || N(mu_p, var_p) ) in nats, per dimension (no reduction).

    0.5 * ( logvar_p - logvar_q + (var_q + (mu_q - mu_p)^2) / var_p - 1 ).
    Used by consistency regularisation (Sinha & Dieng, NeurIPS 2021) and by the rate.
    """
    return 0.5 * (logvar_p - logvar_q + (torch.exp(logvar_q) + (mu_q - mu_p) ** 2) * torch.exp(-logvar_p) - 1.0)


@dataclass
class DiagonalGaussian:
    """q(z|x) = N(mu, diag exp(logvar)) for a batch: ``mu`` and ``logvar`` have shape (B, D)."""

    mu: Tensor
    logvar: Tensor

    @property
    def std(self) -> Tensor:
        return torch.exp(0.5 * self.logvar)

    @property
    def var(self) -> Tensor:
        return torch.exp(self.logvar)

    @property
    def batch_size(self) -> int:
        return self.mu.shape[0]

    @property
    def latent_dim(self) -> int:
        return self.mu.shape[-1]

    def rsample(self, num_samples: int | None = None, eps: Tensor | None = None) -> Tensor:
        """Reparameterised samples: (B, D) if ``num_samples`` is None, else (S, B, D).

        ``eps`` (standard-normal noise of the output shape) may be given so that a caller controls the
        randomness (the trainer does this to make data-parallel runs match single-process runs exactly).
        """
        shape = self.mu.shape if num_samples is None else (num_samples, *self.mu.shape)
        if eps is None:
            eps = torch.randn(shape, dtype=self.mu.dtype, device=self.mu.device)
        elif eps.shape != shape:
            raise ValueError(f"eps has shape {tuple(eps.shape)}, expected {tuple(shape)}")
        return self.mu + self.std * eps

    def log_prob(self, z: Tensor) -> Tensor:
        """log q(z|x) summed over D; ``z`` is (..., B, D), the result (..., B)."""
        return log_normal(z, self.mu, self.logvar).sum(-1)

    def kl_to_standard_normal_per_dim(self) -> Tensor:
        """Analytic KL(q(z|x) || N(0, I)) per example and dimension, shape (B, D), nats.

        0.5 * (mu^2 + sigma^2 - log sigma^2 - 1) (Kingma & Welling, ICLR 2014, appendix B).
        """
        return 0.5 * (self.mu**2 + self.var - self.logvar - 1.0)

    def kl_to_standard_normal(self) -> Tensor:
        """The rate R(x) = KL(q(z|x) || N(0, I)) per example, shape (B,), nats."""
        return self.kl_to_standard_normal_per_dim().sum(-1)

    def kl(self, other: DiagonalGaussian) -> Tensor:
        """KL(self || other) per example, summed over D, shape (B,), nats."""
        return kl_diag_gaussians(self.mu, self.logvar, other.mu, other.logvar).sum(-1)

    def detach(self) -> DiagonalGaussian:
        return DiagonalGaussian(self.mu.detach(), self.logvar.detach())

    def __getitem__(self, idx: slice | Tensor) -> DiagonalGaussian:
        return DiagonalGaussian(self.mu[idx], self.logvar[idx])
