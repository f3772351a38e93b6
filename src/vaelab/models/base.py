"""The model contract every vaelab VAE follows, so that objectives, strategies and metrics work on any of them.

A :class:`VAE` is three parts:

- an **encoder** ``encode(x) -> (mu, logvar)``, each (B, D): the Gaussian posterior q(z|x);
- a **decoder** with ``log_prob(x, z)``: log p(x|z) in nats, *summed over data dimensions*
  (pixels, tokens). ``z`` is (B, D) or (S, B, D) for S samples per example; the result is (B,) or (S, B);
- a **prior** p(z), standard normal unless a model overrides it.

Data ``x`` is whatever the decoder understands: an image tensor (B, C, H, W) for the image models, a token batch
for text models. Code that only needs the batch size uses :func:`batch_size`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch
from torch import Tensor, nn

from vaelab.distributions import DiagonalGaussian, log_standard_normal
from vaelab.errors import UserError


def full_precision(t: Tensor) -> Tensor:
    """``t`` as float32 if it is float16 or bfloat16 (an autocast output), else unchanged (float64 stays): the
    posterior's parameters and the decoders' log-likelihoods are float32 under mixed precision."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def batch_size(x: Any) -> int:
    """Number of examples in a batch: ``x.shape[0]`` for tensors, ``x.batch_size`` for structured batches."""
    if isinstance(x, Tensor):
        return int(x.shape[0])
    return int(x.batch_size)


class Encoder(nn.Module, ABC):
    """Gaussian inference network: ``forward(x) -> (mu, logvar)``, each of shape (B, latent_dim)."""

    latent_dim: int

    @abstractmethod
    def forward(self, x: Any) -> tuple[Tensor, Tensor]: ...


class Decoder(nn.Module, ABC):
    """Generative network p(x|z). Subclasses implement :meth:`log_prob` and :meth:`sample`."""

    latent_dim: int

    @abstractmethod
    def log_prob(self, x: Any, z: Tensor) -> Tensor:
        """log p(x|z) in nats summed over data dimensions; z (B, D) -> (B,), z (S, B, D) -> (S, B)."""

    @abstractmethod
    def sample(self, z: Tensor, mean: bool = False) -> Any:
        """Draw x ~ p(x|z) for z (N, D); with ``mean=True`` return the distribution's mean instead."""

    def reset_parameters(self) -> None:
        """Draw every parameter afresh from its initialisation (global RNG), as a new decoder would have it: the
        decoder reset of Li et al. (EMNLP 2019). The default calls ``reset_parameters`` of every submodule that
        has one (linear, convolutional, recurrent, embedding layers); decoders with a custom initialisation
        override it."""
        for module in self.modules():
            if module is not self and callable(getattr(module, "reset_parameters", None)):
                module.reset_parameters()


class StandardNormalPrior(nn.Module):
    """p(z) = N(0, I)."""

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.latent_dim = latent_dim

    def log_prob(self, z: Tensor) -> Tensor:
        """log p(z) summed over D: (..., D) -> (...)."""
        return log_standard_normal(z).sum(-1)

    def sample(self, n: int, device: torch.device | str = "cpu", generator: torch.Generator | None = None) -> Tensor:
        return torch.randn(n, self.latent_dim, device=device, generator=generator)


class VAE(nn.Module):
    """A variational autoencoder: encoder, decoder and prior (Kingma & Welling, ICLR 2014).

    Parameter groups ``encoder_parameters()`` / ``decoder_parameters()`` are what aggressive inference-network
    training (He et al., ICLR 2019) steps separately; the prior has no parameters by default.
    """

    def __init__(self, encoder: Encoder, decoder: Decoder, prior: nn.Module | None = None) -> None:
        super().__init__()
        if encoder.latent_dim != decoder.latent_dim:
            raise UserError(f"encoder latent_dim {encoder.latent_dim} != decoder latent_dim {decoder.latent_dim}")
        self.encoder = encoder
        self.decoder = decoder
        self.prior = prior if prior is not None else StandardNormalPrior(encoder.latent_dim)

    @property
    def latent_dim(self) -> int:
        return self.encoder.latent_dim

    def encode(self, x: Any) -> DiagonalGaussian:
        """The posterior q(z|x) for a batch."""
        mu, logvar = self.encoder(x)
        return DiagonalGaussian(full_precision(mu), full_precision(logvar))

    def log_likelihood(self, x: Any, z: Tensor) -> Tensor:
        """log p(x|z), nats, summed over data dimensions (see :class:`Decoder`)."""
        return self.decoder.log_prob(x, z)

    def log_joint(self, x: Any, z: Tensor) -> Tensor:
        """log p(x, z) = log p(x|z) + log p(z)."""
        return self.decoder.log_prob(x, z) + self.prior.log_prob(z)

    def encoder_parameters(self) -> list[nn.Parameter]:
        return list(self.encoder.parameters())

    def decoder_parameters(self) -> list[nn.Parameter]:
        """Everything that is not the encoder: decoder and any learned prior."""
        enc = {id(p) for p in self.encoder.parameters()}
        return [p for p in self.parameters() if id(p) not in enc]

    @torch.no_grad()
    def sample(self, n: int, mean: bool = True, generator: torch.Generator | None = None) -> Any:
        """n draws from the model: z ~ p(z), then the decoder's mean (``mean=True``) or a sample."""
        device = next(self.parameters()).device
        z = self.prior.sample(n, device=device, generator=generator)
        return self.decoder.sample(z, mean=mean)

    @torch.no_grad()
    def reconstruct(self, x: Any, mean: bool = True) -> Any:
        """Decode the posterior mean of each example."""
        return self.decoder.sample(self.encode(x).mu, mean=mean)
