"""Image encoders and decoders: MLP (Kingma & Welling, ICLR 2014) and convolutional, for (C, H, W) images.

Decoders output the likelihood's parameters per pixel and implement the :class:`~vaelab.models.base.Decoder`
contract: ``log_prob(x, z)`` with z (B, D) or (S, B, D), in nats summed over pixels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from vaelab.errors import ConfigError
from vaelab.models.base import Decoder, Encoder, full_precision
from vaelab.models.likelihoods import Gaussian, Likelihood

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "softplus": nn.Softplus,
}


def activation(name: str) -> nn.Module:
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ConfigError(f"unknown activation {name!r}; valid choices: {', '.join(sorted(ACTIVATIONS))}") from None


def mlp(sizes: Sequence[int], act: str, final_act: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2 or final_act:
            layers.append(activation(act))
    return nn.Sequential(*layers)


class ImageDecoder(Decoder):
    """Shared multi-sample logic: decode (S*B, D) at once, compare with x broadcast over samples."""

    def __init__(self, latent_dim: int, image_shape: tuple[int, int, int], likelihood: Likelihood) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.image_shape = tuple(image_shape)
        self.likelihood = likelihood

    def params(self, z: Tensor) -> Tensor:
        """Likelihood parameters (N, C, H, W) for z (N, D)."""
        raise NotImplementedError

    def log_prob(self, x: Tensor, z: Tensor) -> Tensor:
        lead = z.shape[:-1]
        p = self.params(z.reshape(-1, z.shape[-1])).reshape(*lead, *self.image_shape)
        return self.likelihood.log_prob(full_precision(p), x)

    def sample(self, z: Tensor, mean: bool = False) -> Tensor:
        return self.likelihood.sample(self.params(z), mean=mean)


class MLPEncoder(Encoder):
    """x -> MLP -> (mu, logvar): the encoder of Kingma & Welling (2014) / Burda et al. (2016)."""

    def __init__(self, image_shape: Sequence[int], latent_dim: int, hidden: Sequence[int], act: str = "relu"):
        super().__init__()
        self.latent_dim = latent_dim
        n_in = math.prod(image_shape)
        self.net = mlp([n_in, *hidden], act, final_act=True)
        self.head = nn.Linear(hidden[-1] if hidden else n_in, 2 * latent_dim)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.net(x.flatten(1))
        mu, logvar = self.head(h).chunk(2, dim=-1)
        return mu, logvar


class MLPDecoder(ImageDecoder):
    """z -> MLP -> per-pixel likelihood parameters."""

    def __init__(
        self,
        image_shape: Sequence[int],
        latent_dim: int,
        hidden: Sequence[int],
        likelihood: Likelihood,
        act: str = "relu",
    ):
        super().__init__(latent_dim, tuple(image_shape), likelihood)
        self.net = mlp([latent_dim, *hidden, math.prod(image_shape)], act)

    def params(self, z: Tensor) -> Tensor:
        return self.net(z).view(-1, *self.image_shape)


class ConvEncoder(Encoder):
    """Strided convolutions (channels doubling, stride 2) -> linear -> (mu, logvar)."""

    def __init__(self, image_shape: Sequence[int], latent_dim: int, channels: Sequence[int], act: str = "relu"):
        super().__init__()
        self.latent_dim = latent_dim
        c, h, w = image_shape
        layers: list[nn.Module] = []
        for i, ch in enumerate(channels):
            if h < 2 or w < 2:
                raise ConfigError(
                    f"model.type=conv: {image_shape[1]}x{image_shape[2]} images are too small for "
                    f"{len(channels)} strided convolutions (model.channels={list(channels)}; layer {i} would get "
                    f"{h}x{w}, each layer needs >= 2x2 and halves it); use fewer model.channels or model.type=mlp"
                )
            layers += [nn.Conv2d(c, ch, 4, stride=2, padding=1), activation(act)]
            c, h, w = ch, (h + 2 - 4) // 2 + 1, (w + 2 - 4) // 2 + 1
        self.conv = nn.Sequential(*layers)
        self.head = nn.Linear(c * h * w, 2 * latent_dim)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mu, logvar = self.head(self.conv(x).flatten(1)).chunk(2, dim=-1)
        return mu, logvar


class ConvDecoder(ImageDecoder):
    """linear -> transposed convolutions (the encoder mirrored) -> crop to the image size."""

    def __init__(
        self,
        image_shape: Sequence[int],
        latent_dim: int,
        channels: Sequence[int],
        likelihood: Likelihood,
        act: str = "relu",
    ):
        super().__init__(latent_dim, tuple(image_shape), likelihood)
        c_out, h, w = image_shape
        n = len(channels)
        self.h0, self.w0 = math.ceil(h / 2**n), math.ceil(w / 2**n)
        chans = list(reversed(channels))
        self.c0 = chans[0]
        self.fc = nn.Sequential(nn.Linear(latent_dim, self.c0 * self.h0 * self.w0), activation(act))
        layers: list[nn.Module] = []
        for i, ch in enumerate(chans):
            nxt = chans[i + 1] if i + 1 < n else c_out * likelihood.params_per_dim
            layers.append(nn.ConvTranspose2d(ch, nxt, 4, stride=2, padding=1))
            if i + 1 < n:
                layers.append(activation(act))
        self.deconv = nn.Sequential(*layers)

    def params(self, z: Tensor) -> Tensor:
        out = self.deconv(self.fc(z).view(-1, self.c0, self.h0, self.w0))
        _, h, w = self.image_shape
        return out[..., :h, :w].contiguous()


class LinearGaussianDecoder(ImageDecoder):
    """p(x|z) = N(x; W z + b, s^2 I): probabilistic PCA (Tipping & Bishop, 1999).

    Its marginal log p(x) = log N(x; b, W W^T + s^2 I) is known exactly (:meth:`exact_log_marginal`), which
    makes it the known-answer case for IW-NLL and ELBO estimators.
    """

    def __init__(self, image_shape: Sequence[int], latent_dim: int, std: float = 1.0, learn_std: bool = True):
        super().__init__(latent_dim, tuple(image_shape), Gaussian(event_dims=3, std=std, learn_std=learn_std))
        n = math.prod(image_shape)
        self.linear = nn.Linear(latent_dim, n)

    def params(self, z: Tensor) -> Tensor:
        return self.linear(z).view(-1, *self.image_shape)

    @torch.no_grad()
    def exact_log_marginal(self, x: Tensor) -> Tensor:
        """log p(x) = log N(x; b, W W^T + s^2 I) in nats, per example (B,), computed in float64."""
        w = self.linear.weight.double()
        b = self.linear.bias.double()
        s2 = torch.exp(2 * self.likelihood.log_std.double())
        cov = w @ w.T + s2 * torch.eye(w.shape[0], dtype=torch.float64)
        dist = torch.distributions.MultivariateNormal(b, covariance_matrix=cov)
        return dist.log_prob(x.flatten(1).double()).to(x.dtype)

    @torch.no_grad()
    def exact_posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The true posterior p(z|x) = N(m, S): returns (m (B, D), S (D, D)), float64."""
        w = self.linear.weight.double()
        b = self.linear.bias.double()
        s2 = torch.exp(2 * self.likelihood.log_std.double())
        prec = torch.eye(w.shape[1], dtype=torch.float64) + w.T @ w / s2
        cov = torch.linalg.inv(prec)
        m = (x.flatten(1).double() - b) @ w @ cov.T / s2
        return m, cov


class LinearEncoder(Encoder):
    """mu = A x + c and a learned, data-independent logvar: the family that contains pPCA's exact posterior."""

    def __init__(self, image_shape: Sequence[int], latent_dim: int):
        super().__init__()
        self.latent_dim = latent_dim
        self.linear = nn.Linear(math.prod(image_shape), latent_dim)
        self.logvar = nn.Parameter(torch.zeros(latent_dim))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mu = self.linear(x.flatten(1))
        return mu, self.logvar.expand_as(mu)
