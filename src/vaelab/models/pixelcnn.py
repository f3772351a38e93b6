"""A decoder strong enough to ignore z: PixelCNN with the latent injected into every layer, and a ResNet encoder.

The image setting of He et al. (ICLR 2019) pairs a ResNet encoder with a PixelCNN decoder (van den Oord et al.,
ICML 2016; as a VAE decoder: Gulrajani et al., ICLR 2017 "PixelVAE"; Chen et al., ICLR 2017 "Variational Lossy
Autoencoder"). The autoregressive decoder can model binary images well without z, so a plain VAE tends to collapse:
that is the point of using it to test collapse remedies.

Architecture: a 7x7 mask-A convolution, then residual blocks of mask-B 3x3 convolutions, then 1x1 mask-B layers to
per-pixel Bernoulli logits. z enters every block as a per-channel bias (a linear map of z broadcast over space).
Masking follows van den Oord et al. 2016 (the plain masked variant, which has the known "blind spot" of the
receptive field; the gated two-stack variant removes it at twice the cost).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vaelab.errors import ConfigError
from vaelab.models.base import Encoder, full_precision
from vaelab.models.image import ImageDecoder
from vaelab.models.likelihoods import Bernoulli


class MaskedConv2d(nn.Conv2d):
    """A convolution that sees only pixels before the centre in raster order (mask "A": not the centre
    itself; mask "B": the centre too). Single-channel images, so no channel-group masking is needed beyond the
    input layer's exclusion of the centre."""

    def __init__(self, mask_type: str, in_ch: int, out_ch: int, kernel_size: int) -> None:
        if mask_type not in ("A", "B"):
            raise ValueError(f"mask_type must be 'A' or 'B', got {mask_type!r}")
        super().__init__(in_ch, out_ch, kernel_size, padding=kernel_size // 2)
        k = kernel_size
        mask = torch.ones(1, 1, k, k)
        c = k // 2
        mask[..., c, c + (1 if mask_type == "B" else 0) :] = 0
        mask[..., c + 1 :, :] = 0
        self.register_buffer("mask", mask)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, self.stride, self.padding)


class _Block(nn.Module):
    """Residual mask-B block with z conditioning: h + conv(relu(conv(relu(h)) + W z))."""

    def __init__(self, channels: int, latent_dim: int) -> None:
        super().__init__()
        self.c1 = MaskedConv2d("B", channels, channels, 3)
        self.c2 = MaskedConv2d("B", channels, channels, 3)
        self.cond = nn.Linear(latent_dim, channels)

    def forward(self, h: Tensor, z: Tensor) -> Tensor:
        u = self.c1(F.relu(h)) + self.cond(z)[:, :, None, None]
        return h + self.c2(F.relu(u))


class PixelCNNDecoder(ImageDecoder):
    """p(x|z) = prod_i Bernoulli(x_i | x_<i, z) for binary (1, H, W) images; ``log_prob`` in nats per image."""

    def __init__(self, image_shape: Sequence[int], latent_dim: int, channels: int = 64, layers: int = 6) -> None:
        image_shape = tuple(image_shape)
        if image_shape[0] != 1:
            raise ConfigError(f"the PixelCNN decoder models single-channel binary images, got shape {image_shape}")
        super().__init__(latent_dim, image_shape, Bernoulli(event_dims=3))
        self.inp = MaskedConv2d("A", 1, channels, 7)
        self.inp_cond = nn.Linear(latent_dim, channels)
        self.blocks = nn.ModuleList([_Block(channels, latent_dim) for _ in range(layers)])
        self.out1 = MaskedConv2d("B", channels, channels, 1)
        self.out2 = MaskedConv2d("B", channels, 1, 1)

    def logits(self, x: Tensor, z: Tensor) -> Tensor:
        """Per-pixel logits (N, 1, H, W) given the image x (N, 1, H, W) (its past pixels) and z (N, D)."""
        h = self.inp(x) + self.inp_cond(z)[:, :, None, None]
        for block in self.blocks:
            h = block(h, z)
        return self.out2(F.relu(self.out1(F.relu(h))))

    def log_prob(self, x: Tensor, z: Tensor) -> Tensor:
        lead = z.shape[:-1]
        zf = z.reshape(-1, z.shape[-1])
        xf = x.expand(*lead[:-1], *x.shape).reshape(-1, *self.image_shape)  # x repeated for each sample of z
        lp = self.likelihood.log_prob(full_precision(self.logits(xf, zf)), xf)
        return lp.view(lead)

    def params(self, z: Tensor) -> Tensor:  # pragma: no cover - an autoregressive decoder has no x-free params
        raise NotImplementedError("PixelCNN logits depend on x; use logits(x, z) or sample(z)")

    @torch.no_grad()
    def sample(self, z: Tensor, mean: bool = False) -> Tensor:
        """Ancestral sampling in raster order (H*W forward passes). ``mean=True`` returns the per-pixel
        probabilities of the last pass given the sampled past (the autoregressive "mean" image)."""
        _, h, w = self.image_shape
        x = torch.zeros(z.shape[0], *self.image_shape, device=z.device)
        probs = torch.zeros_like(x)
        for i in range(h):
            for j in range(w):
                p = torch.sigmoid(self.logits(x, z)[:, :, i, j])
                probs[:, :, i, j] = p
                x[:, :, i, j] = torch.bernoulli(p)
        return probs if mean else x


class _ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1)
        self.c2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1, stride=stride) if (stride != 1 or c_in != c_out) else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.skip(x) + self.c2(F.relu(self.c1(x))))


class ResNetEncoder(Encoder):
    """Residual convolutional encoder: stages of two residual blocks, the first of each stage downsampling by 2
    (He et al., CVPR 2016), global average pooling, then a linear map to (mu, logvar)."""

    def __init__(self, image_shape: Sequence[int], latent_dim: int, channels: Sequence[int] = (32, 64, 64)) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        c = image_shape[0]
        blocks: list[nn.Module] = []
        for ch in channels:
            blocks += [_ResBlock(c, ch, stride=2), _ResBlock(ch, ch, stride=1)]
            c = ch
        self.net = nn.Sequential(*blocks)
        self.head = nn.Linear(c, 2 * latent_dim)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.net(x).mean(dim=(2, 3))
        mu, logvar = self.head(h).chunk(2, dim=-1)
        return mu, logvar
