"""VAE models: the encoder/decoder/prior contract (:mod:`vaelab.models.base`) and the built-in architectures.

New architectures register a builder ``f(cfg: ModelConfig, data_info: dict) -> VAE`` in :data:`MODELS`;
``data_info`` carries at least ``image_shape`` for image data.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vaelab.models.base import VAE, Decoder, Encoder, StandardNormalPrior, batch_size
from vaelab.models.config import ModelConfig
from vaelab.models.image import (
    ConvDecoder,
    ConvEncoder,
    LinearEncoder,
    LinearGaussianDecoder,
    MLPDecoder,
    MLPEncoder,
)
from vaelab.models.likelihoods import LIKELIHOODS
from vaelab.registry import Registry

ModelBuilder = Callable[[ModelConfig, dict[str, Any]], VAE]
MODELS: Registry[ModelBuilder] = Registry("model type")


def _likelihood(cfg: ModelConfig):
    cls = LIKELIHOODS.get(cfg.likelihood, key="model.likelihood")
    return cls(event_dims=3, std=cfg.gaussian_std, learn_std=cfg.learn_std)


def _image_shape(info: dict[str, Any]) -> tuple[int, int, int]:
    try:
        return tuple(info["image_shape"])  # type: ignore[return-value]
    except KeyError:
        raise ValueError("this model type needs image data (data_info['image_shape'] is missing)") from None


@MODELS.register("mlp")
def _build_mlp(cfg: ModelConfig, info: dict[str, Any]) -> VAE:
    shape = _image_shape(info)
    enc = MLPEncoder(shape, cfg.latent_dim, cfg.hidden, cfg.activation)
    dec = MLPDecoder(shape, cfg.latent_dim, list(reversed(cfg.hidden)), _likelihood(cfg), cfg.activation)
    return VAE(enc, dec)


@MODELS.register("conv")
def _build_conv(cfg: ModelConfig, info: dict[str, Any]) -> VAE:
    shape = _image_shape(info)
    enc = ConvEncoder(shape, cfg.latent_dim, cfg.channels, cfg.activation)
    dec = ConvDecoder(shape, cfg.latent_dim, cfg.channels, _likelihood(cfg), cfg.activation)
    return VAE(enc, dec)


@MODELS.register("linear")
def _build_linear(cfg: ModelConfig, info: dict[str, Any]) -> VAE:
    shape = _image_shape(info)
    dec = LinearGaussianDecoder(shape, cfg.latent_dim, std=cfg.gaussian_std, learn_std=cfg.learn_std)
    return VAE(LinearEncoder(shape, cfg.latent_dim), dec)


def build_model(cfg: ModelConfig, data_info: dict[str, Any]) -> VAE:
    """Build the VAE named by ``cfg.type`` for data described by ``data_info``."""
    if cfg.latent_dim < 1:
        raise ValueError(f"model.latent_dim must be >= 1, got {cfg.latent_dim}")
    return MODELS.get(cfg.type, key="model.type")(cfg, data_info)


__all__ = [
    "MODELS",
    "VAE",
    "Decoder",
    "Encoder",
    "ModelConfig",
    "StandardNormalPrior",
    "batch_size",
    "build_model",
]
