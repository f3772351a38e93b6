"""Known-answer model for the metrics tests: probabilistic PCA (float64) with a controllable encoder."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from vaelab.models import VAE, ModelConfig, build_model

IMAGE_SHAPE = (1, 4, 4)
NUM_DIMS = 16
LATENT_DIM = 3
OBS_STD = 0.5


@dataclass
class PPCA:
    """A float64 pPCA VAE whose decoder W has orthogonal columns, so the exact posterior is diagonal."""

    model: VAE
    w: Tensor  # (n, D)
    b: Tensor  # (n,)
    s2: float

    def sample_x(self, n: int, generator: torch.Generator) -> Tensor:
        z = torch.randn(n, LATENT_DIM, generator=generator, dtype=torch.float64)
        noise = torch.randn(n, NUM_DIMS, generator=generator, dtype=torch.float64)
        return (z @ self.w.T + self.b + math.sqrt(self.s2) * noise).view(n, *IMAGE_SHAPE)

    @torch.no_grad()
    def elbo(self, x: Tensor) -> Tensor:
        """The ELBO in closed form, nats per example (B,)."""
        return self.expected_log_likelihood(x) - self.model.encode(x).kl_to_standard_normal()

    def set_encoder(self, a: Tensor, c: Tensor, logvar: Tensor) -> None:
        enc = self.model.encoder
        with torch.no_grad():
            enc.linear.weight.copy_(a)
            enc.linear.bias.copy_(c)
            enc.logvar.copy_(logvar)

    def set_exact_encoder(self) -> None:
        """q(z|x) = p(z|x): mean A (x - b) with A = S W^T / s^2, S = (I + W^T W / s^2)^-1 (diagonal here)."""
        cov_diag = 1.0 / (1.0 + (self.w**2).sum(0) / self.s2)
        a = cov_diag[:, None] * self.w.T / self.s2
        self.set_encoder(a, -a @ self.b, cov_diag.log())

    def perturb_encoder(self, generator: torch.Generator, scale: float = 0.15, logvar_shift: float = 0.7) -> None:
        """An inexact posterior: the exact one with noise on the mean map and a too-wide variance."""
        self.set_exact_encoder()
        enc = self.model.encoder
        a = enc.linear.weight + scale * torch.randn(enc.linear.weight.shape, generator=generator, dtype=torch.float64)
        self.set_encoder(a, enc.linear.bias.detach().clone(), enc.logvar.detach() + logvar_shift)

    @torch.no_grad()
    def expected_log_likelihood(self, x: Tensor) -> Tensor:
        """E_{q(z|x)} log N(x; W z + b, s^2 I) in closed form, nats per example (B,)."""
        q = self.model.encode(x)
        resid = x.flatten(1) - q.mu @ self.w.T - self.b
        trace = (q.var * (self.w**2).sum(0)).sum(-1)  # tr(W diag(v) W^T)
        return -0.5 * NUM_DIMS * math.log(2 * math.pi * self.s2) - ((resid**2).sum(-1) + trace) / (2 * self.s2)


def make_ppca(seed: int = 1234) -> PPCA:
    """pPCA with latent_dim 3 on 4x4 images; W has orthogonal columns (norms 2, 1, 0.6), s = 0.5."""
    g = torch.Generator().manual_seed(seed)
    cfg = ModelConfig(
        type="linear", likelihood="gaussian", latent_dim=LATENT_DIM, gaussian_std=OBS_STD, learn_std=False
    )
    model = build_model(cfg, {"image_shape": IMAGE_SHAPE}).double()
    basis, _ = torch.linalg.qr(torch.randn(NUM_DIMS, LATENT_DIM, generator=g, dtype=torch.float64))
    w = basis * torch.tensor([2.0, 1.0, 0.6], dtype=torch.float64)  # orthogonal columns of distinct norms
    b = 0.3 * torch.randn(NUM_DIMS, generator=g, dtype=torch.float64)
    with torch.no_grad():
        model.decoder.linear.weight.copy_(w)
        model.decoder.linear.bias.copy_(b)
        model.decoder.likelihood.log_std.fill_(math.log(OBS_STD))  # exact in float64, not a float32 round-off
    model.eval()
    return PPCA(model=model, w=w, b=b, s2=OBS_STD**2)
