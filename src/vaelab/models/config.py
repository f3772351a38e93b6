"""Model section of a run config (``model.*`` keys)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ModelConfig:
    """Which VAE to build. ``type`` picks the architecture from :data:`vaelab.models.MODELS`.

    - ``mlp``: MLP encoder/decoder with ``hidden`` units per layer (decoder mirrors the encoder).
    - ``conv``: strided convolutions with ``channels`` per layer, mirrored by transposed convolutions.
    - ``linear``: linear encoder, linear-Gaussian decoder (probabilistic PCA): exact log p(x) is known.
    """

    type: str = "mlp"
    latent_dim: int = 32
    hidden: list[int] = field(default_factory=lambda: [512, 256])
    channels: list[int] = field(default_factory=lambda: [32, 64])
    activation: str = "relu"
    likelihood: str = "bernoulli"
    gaussian_std: float = 1.0
    learn_std: bool = False
