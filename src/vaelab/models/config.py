"""Model section of a run config (``model.*`` keys)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass
class ModelConfig:
    """Which VAE to build. ``type`` picks the architecture from :data:`vaelab.models.MODELS`.

    - ``mlp``: MLP encoder/decoder with ``hidden`` units per layer (decoder mirrors the encoder).
    - ``conv``: strided convolutions with ``channels`` per layer, mirrored by transposed convolutions.
    - ``linear``: linear encoder, linear-Gaussian decoder (probabilistic PCA): exact log p(x) is known.
    - ``lstm_vae``: text VAE of He et al. (2019) / Kim et al. (2018): LSTM encoder, LSTM decoder fed z.
    - ``lstm_lm``: LSTM language model (no latent; the encoder returns the prior, so rate = 0 exactly).
    - ``custom``: the user's own encoder and decoder, built by ``factory`` (:mod:`vaelab.models.custom`).

    ``posterior`` re-parameterises q(z|x) of any encoder (:mod:`vaelab.models.posterior_heads`): ``bn`` (BN-VAE,
    Zhu et al. 2020; ``bn_gamma``) or ``delta`` (delta-VAE, Razavi et al. 2019; ``delta_rate``).
    """

    type: str = "mlp"
    latent_dim: int = 32
    factory: str | None = None
    """``custom``: the function that builds the user's modules, ``package.module:function`` or
    ``/path/to/file.py:function``; it returns (encoder, decoder) or a VAE (see :mod:`vaelab.models.custom`).
    Loading the run imports this module and nothing else."""
    factory_kwargs: dict[str, Any] = field(default_factory=dict)
    """``custom``: keyword arguments of ``factory`` (plain YAML values)."""
    hidden: list[int] = field(default_factory=lambda: [512, 256])
    channels: list[int] = field(default_factory=lambda: [32, 64])
    activation: str = "relu"
    likelihood: str = "bernoulli"
    gaussian_std: float = 1.0
    learn_std: bool = False

    # ---- posterior head (any model; see vaelab.models.posterior_heads) ----
    posterior: Literal["gaussian", "bn", "delta"] = "gaussian"
    """q(z|x) parameterisation: ``gaussian`` (the encoder's mu, logvar as they are), ``bn`` (BN-VAE: BatchNorm on mu
    with fixed scale ``bn_gamma``, learned shift; E[rate] >= D bn_gamma^2 / 2) or ``delta`` (delta-VAE: variance in
    [s_l, s_u] and a mean floor, so every dimension's KL >= ``delta_rate``)."""
    bn_gamma: float = 0.5
    """BN-VAE: the fixed scale gamma of the batch-normalised posterior means."""
    delta_rate: float = 0.1
    """delta-VAE: the committed rate delta per latent dimension, nats."""

    # ---- text models (lstm_vae, lstm_lm; see vaelab.models.text) ----
    emb_dim: int = 512
    """Text: word-embedding size (He et al. 2019: 512)."""
    hidden_dim: int = 1024
    """Text: LSTM units of the encoder and decoder (He et al. 2019: 1024); not the MLP ``hidden`` list."""
    dropout_in: float = 0.5
    """Text: dropout on the decoder's input word embeddings."""
    dropout_out: float = 0.5
    """Text: dropout on the decoder's LSTM outputs before the softmax layer."""
    word_dropout: float = 0.0
    """Text: probability that a decoder input word is replaced by <unk> in training (Bowman et al. 2016)."""
    init_range: float = 0.01
    """Text: LSTM and linear weights ~ U(-init_range, init_range) (He et al. 2019: 0.01)."""
    emb_init_range: float = 0.1
    """Text: embeddings ~ U(-emb_init_range, emb_init_range) (He et al. 2019: 0.1)."""
    decoder_init_from_z: bool = True
    """Text: the decoder's initial cell state is a linear map of z (h_0 = tanh(c_0)), besides z being fed at
    every step; false = zero initial state."""
    skip: bool = False
    """Text (lstm_vae): skip-VAE (Dieng, Kim, Rush & Blei, AISTATS 2019): z also feeds the softmax output layer
    (logits = W h_t + U z + b), besides every LSTM step's input."""

    # ---- PixelCNN decoder (pixelcnn; see vaelab.models.pixelcnn). The ResNet encoder uses ``channels``. ----
    pixelcnn_channels: int = 64
    """PixelCNN: feature maps per masked-convolution layer."""
    pixelcnn_layers: int = 6
    """PixelCNN: residual blocks of mask-B 3x3 convolutions, each conditioned on z."""
