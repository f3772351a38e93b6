"""VAE models: the encoder/decoder/prior contract (:mod:`vaelab.models.base`) and the built-in architectures.

New architectures register a builder ``f(cfg: ModelConfig, data_info: dict) -> VAE`` in :data:`MODELS`;
``data_info`` carries at least ``image_shape`` for image data, and ``vocab_size`` (plus the special ids and the
vocabulary) for text data (``lstm_vae``, ``lstm_lm``: :mod:`vaelab.models.text`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from vaelab.errors import ConfigError
from vaelab.models.base import VAE, Decoder, Encoder, StandardNormalPrior, batch_size
from vaelab.models.config import ModelConfig
from vaelab.models.image import (
    ACTIVATIONS,
    ConvDecoder,
    ConvEncoder,
    LinearEncoder,
    LinearGaussianDecoder,
    MLPDecoder,
    MLPEncoder,
)
from vaelab.models.likelihoods import GAUSSIAN_STD, LIKELIHOODS
from vaelab.models.posterior_heads import BN_GAMMA, DELTA_RATE, apply_posterior_head
from vaelab.models.text import WORD_DROPOUT, LSTMDecoder, LSTMEncoder, PriorEncoder
from vaelab.registry import Registry
from vaelab.rules import (
    MAX_INIT_RANGE,
    MAX_LAYERS,
    PROBABILITY_OPEN,
    WIDTH,
    Choice,
    Int,
    Items,
    Num,
    Rule,
    Typed,
    check_section,
)

ModelBuilder = Callable[[ModelConfig, dict[str, Any]], VAE]
MODELS: Registry[ModelBuilder] = Registry("model type")


MODEL_RULES: dict[str, Rule] = {
    "model.type": Choice(registry=lambda: MODELS),
    "model.latent_dim": WIDTH,
    "model.factory": Typed(why="'package.module:function' or '/path/file.py:function' (checked when built)"),
    "model.factory_kwargs": Typed(why="keyword arguments of model.factory"),
    "model.hidden": Items(item=WIDTH, max_len=MAX_LAYERS),  # 10**4 layers hung in building and training
    "model.channels": Items(item=WIDTH, min_len=1, max_len=MAX_LAYERS),
    "model.activation": Choice(registry=lambda: ACTIVATIONS),
    "model.likelihood": Choice(registry=lambda: LIKELIHOODS),
    "model.gaussian_std": GAUSSIAN_STD,
    "model.learn_std": Typed(),
    "model.posterior": Typed(),
    "model.bn_gamma": BN_GAMMA,
    "model.delta_rate": DELTA_RATE,
    "model.emb_dim": WIDTH,
    "model.hidden_dim": WIDTH,
    "model.dropout_in": PROBABILITY_OPEN,
    "model.dropout_out": PROBABILITY_OPEN,
    "model.word_dropout": WORD_DROPOUT,
    "model.init_range": Num(lo=0, hi=MAX_INIT_RANGE, lo_open=True),
    "model.emb_init_range": Num(lo=0, hi=MAX_INIT_RANGE, lo_open=True),
    "model.decoder_init_from_z": Typed(),
    "model.skip": Typed(),
    "model.pixelcnn_channels": WIDTH,
    "model.pixelcnn_layers": Int(1, MAX_LAYERS),
}
"""The rule of every ``model.*`` key."""

TEXT_MODELS = ("lstm_vae", "lstm_lm")
"""Model types that read sentences (the others but ``custom`` read images)."""
LIKELIHOOD_READERS = ("mlp", "conv")
"""Model types whose decoder's likelihood is ``model.likelihood``."""
FIXED_LIKELIHOOD = {"linear": "gaussian", "pixelcnn": "bernoulli"}
"""The likelihood a model type always has (``model.likelihood`` may name it; ``bernoulli``, the default, is
accepted for every type)."""
OWN_LIKELIHOOD = {
    "linear": "its decoder is always Gaussian, with model.gaussian_std",
    "pixelcnn": "its decoder is always Bernoulli",
    "lstm_vae": "its decoder is a softmax over words",
    "lstm_lm": "its decoder is a softmax over words",
    "custom": "the factory's decoder defines log_prob",
}


def check_model(m: Any) -> None:
    """Every rule of the ``model`` section (:data:`MODEL_RULES` and the relations between its keys)."""
    check_section(m, "model", MODEL_RULES)
    if (m.type == "custom") != (m.factory is not None):
        raise ConfigError(
            "model.type=custom needs model.factory ('package.module:function' or '/path/file.py:function')"
            if m.type == "custom"
            else f"model.factory is only read by model.type=custom, not {m.type!r}"
        )
    if m.skip and m.type != "lstm_vae":
        raise ConfigError(f"model.skip (skip-VAE) is implemented for model.type=lstm_vae, not {m.type!r}")
    if m.posterior != "gaussian" and m.type == "lstm_lm":
        raise ConfigError(f"model.posterior={m.posterior} needs a model with an encoder (lstm_lm has none)")
    if m.likelihood not in ("bernoulli", FIXED_LIKELIHOOD.get(m.type)) and m.type not in LIKELIHOOD_READERS:
        raise ConfigError(
            f"model.likelihood={m.likelihood} is read only by model.type={' or '.join(LIKELIHOOD_READERS)}; "
            f"{m.type} would ignore it ({OWN_LIKELIHOOD.get(m.type, 'its decoder defines its own likelihood')})"
        )


MODEL_KEYS: dict[str, frozenset[str]] = {}
"""The ``model.*`` keys each model type reads (its builder and the builder's helpers), besides
:data:`COMMON_MODEL_KEYS` and the posterior head's (:data:`HEAD_KEYS`). A fresh config that sets another one is
refused by :func:`check_model_keys`; a type registered with a bare ``MODELS.register`` declares none and is not
checked."""
COMMON_MODEL_KEYS = ("type", "latent_dim")
"""Keys every model type reads."""
HEAD_KEYS = {"gaussian": (), "bn": ("bn_gamma",), "delta": ("delta_rate",)}
"""The keys each ``model.posterior`` head reads; ``posterior`` itself is read by every type with an encoder
(every type but ``lstm_lm``)."""
LIKELIHOOD_KEYS = {"bernoulli": (), "gaussian": ("gaussian_std", "learn_std")}
"""The keys each ``model.likelihood`` reads, for the types whose likelihood is ``model.likelihood``
(:data:`LIKELIHOOD_READERS`); a type with a fixed likelihood reads its own likelihood's keys (``linear``:
``gaussian_std`` and ``learn_std``) whatever ``model.likelihood`` says."""
NO_ENCODER = ("lstm_lm",)
_LSTM_KEYS = (
    "emb_dim",
    "hidden_dim",
    "dropout_in",
    "dropout_out",
    "word_dropout",
    "init_range",
    "emb_init_range",
)


def model_type(name: str, reads: tuple[str, ...]) -> Callable[[ModelBuilder], ModelBuilder]:
    """Register a builder as ``model.type: name`` in :data:`MODELS`, declaring the ``model.*`` keys it reads
    (besides :data:`COMMON_MODEL_KEYS` and the posterior head's) in :data:`MODEL_KEYS`."""
    unknown = sorted(set(reads) - set(ModelConfig.__dataclass_fields__))
    if unknown:
        raise ValueError(f"model type {name!r} declares keys that ModelConfig lacks: {', '.join(unknown)}")

    def deco(builder: ModelBuilder) -> ModelBuilder:
        MODELS.register(name)(builder)
        MODEL_KEYS[name] = frozenset(reads)
        return builder

    return deco


def model_keys_read(m: ModelConfig) -> set[str] | None:
    """The ``model.*`` keys (leaf names) that ``m.type`` with ``m.posterior`` reads; None for a type that
    declares none."""
    own = MODEL_KEYS.get(m.type)
    if own is None:
        return None
    keys = {*COMMON_MODEL_KEYS, *own}
    if m.type in LIKELIHOOD_READERS:  # the keys of the other likelihoods are not read
        keys -= {k for name, ks in LIKELIHOOD_KEYS.items() if name != m.likelihood for k in ks}
    if m.type not in NO_ENCODER:
        keys |= {"posterior", *HEAD_KEYS.get(m.posterior, ())}
    return keys


def check_model_keys(m: ModelConfig, given: Iterable[str]) -> None:
    """Refuse a ``model.*`` key the user wrote (``given``: leaf names) that ``m.type`` does not read: a key
    another type (or another likelihood, or another posterior head) reads is otherwise silently ignored.
    ``model.likelihood`` may name the likelihood a type always has (:data:`FIXED_LIKELIHOOD`). Only fresh configs
    are checked (:func:`vaelab.config.load_config`, sweep points and study arms); a run folder's saved config, which
    holds every key, is not."""
    reads = model_keys_read(m)
    if reads is None:
        return
    for key in given:
        if key in reads or key not in ModelConfig.__dataclass_fields__:
            continue
        if key == "likelihood" and m.likelihood == FIXED_LIKELIHOOD.get(m.type):
            continue
        if key in ("bn_gamma", "delta_rate") and m.type not in NO_ENCODER:
            heads = [h for h, ks in HEAD_KEYS.items() if key in ks]
            raise ConfigError(
                f"model.{key}: not read by model.posterior={m.posterior} (only by model.posterior="
                f"{' or '.join(heads)}); remove it or set model.posterior={heads[0]}"
            )
        likelihoods = [name for name, ks in LIKELIHOOD_KEYS.items() if key in ks]
        if likelihoods and m.type in LIKELIHOOD_READERS:
            raise ConfigError(
                f"model.{key}: not read by model.likelihood={m.likelihood} (only by model.likelihood="
                f"{' or '.join(likelihoods)}); remove it or set model.likelihood={likelihoods[0]}"
            )
        raise ConfigError(
            f"model.{key}: not read by model.type={m.type} (it reads: {', '.join(sorted(reads - {'type'}))}); "
            "remove it or choose a model.type that uses it"
        )


def _likelihood(cfg: ModelConfig):
    cls = LIKELIHOODS.get(cfg.likelihood, key="model.likelihood")
    return cls(event_dims=3, std=cfg.gaussian_std, learn_std=cfg.learn_std)


def _image_shape(info: dict[str, Any]) -> tuple[int, int, int]:
    try:
        return tuple(info["image_shape"])  # type: ignore[return-value]
    except KeyError:
        raise ConfigError("this model type needs image data (data_info['image_shape'] is missing)") from None


@model_type("mlp", reads=("hidden", "activation", "likelihood", "gaussian_std", "learn_std"))
def _build_mlp(cfg: ModelConfig, info: dict[str, Any]) -> VAE:
    shape = _image_shape(info)
    enc = MLPEncoder(shape, cfg.latent_dim, cfg.hidden, cfg.activation)
    dec = MLPDecoder(shape, cfg.latent_dim, list(reversed(cfg.hidden)), _likelihood(cfg), cfg.activation)
    return VAE(enc, dec)


@model_type("conv", reads=("channels", "activation", "likelihood", "gaussian_std", "learn_std"))
def _build_conv(cfg: ModelConfig, info: dict[str, Any]) -> VAE:
    shape = _image_shape(info)
    enc = ConvEncoder(shape, cfg.latent_dim, cfg.channels, cfg.activation)
    dec = ConvDecoder(shape, cfg.latent_dim, cfg.channels, _likelihood(cfg), cfg.activation)
    return VAE(enc, dec)


@model_type("linear", reads=("gaussian_std", "learn_std"))
def _build_linear(cfg: ModelConfig, info: dict[str, Any]) -> VAE:
    shape = _image_shape(info)
    dec = LinearGaussianDecoder(shape, cfg.latent_dim, std=cfg.gaussian_std, learn_std=cfg.learn_std)
    return VAE(LinearEncoder(shape, cfg.latent_dim), dec)


@model_type("pixelcnn", reads=("channels", "pixelcnn_channels", "pixelcnn_layers"))
def _build_pixelcnn(cfg: ModelConfig, info: dict[str, Any]) -> VAE:
    """ResNet encoder + PixelCNN decoder with z in every layer (He et al. 2019's image setting)."""
    from vaelab.models.pixelcnn import PixelCNNDecoder, ResNetEncoder

    shape = _image_shape(info)
    enc = ResNetEncoder(shape, cfg.latent_dim, cfg.channels)
    dec = PixelCNNDecoder(shape, cfg.latent_dim, channels=cfg.pixelcnn_channels, layers=cfg.pixelcnn_layers)
    return VAE(enc, dec)


@model_type("custom", reads=("factory", "factory_kwargs"))
def _build_custom(cfg: ModelConfig, info: dict[str, Any]) -> VAE:
    """The user's own encoder and decoder from ``model.factory`` (see :mod:`vaelab.models.custom`)."""
    from vaelab.models.custom import build_custom

    return build_custom(cfg.factory, cfg.factory_kwargs, cfg.latent_dim, info)


def _text_info(info: dict[str, Any]) -> dict[str, Any]:
    if "vocab_size" not in info:
        raise ConfigError(
            "this model type needs text data (data_info['vocab_size'] is missing; use data.name=ptb/text)"
        )
    return info


def _lstm_decoder(cfg: ModelConfig, info: dict[str, Any], use_z: bool) -> LSTMDecoder:
    return LSTMDecoder(
        int(info["vocab_size"]),
        cfg.emb_dim,
        cfg.hidden_dim,
        cfg.latent_dim,
        use_z=use_z,
        init_from_z=cfg.decoder_init_from_z,
        dropout_in=cfg.dropout_in,
        dropout_out=cfg.dropout_out,
        word_dropout=cfg.word_dropout,
        init_range=cfg.init_range,
        emb_init_range=cfg.emb_init_range,
        vocab=info.get("vocab"),
        skip=use_z and cfg.skip,
    )


@model_type("lstm_vae", reads=(*_LSTM_KEYS, "decoder_init_from_z", "skip"))
def _build_lstm_vae(cfg: ModelConfig, info: dict[str, Any]) -> VAE:
    """LSTM VAE (Bowman et al. 2016; Kim et al. 2018; He et al. 2019), see :mod:`vaelab.models.text`."""
    info = _text_info(info)
    enc = LSTMEncoder(
        int(info["vocab_size"]),
        cfg.emb_dim,
        cfg.hidden_dim,
        cfg.latent_dim,
        init_range=cfg.init_range,
        emb_init_range=cfg.emb_init_range,
    )
    return VAE(enc, _lstm_decoder(cfg, info, use_z=True))


@model_type("lstm_lm", reads=_LSTM_KEYS)
def _build_lstm_lm(cfg: ModelConfig, info: dict[str, Any]) -> VAE:
    """LSTM language model inside the VAE contract: the decoder ignores z, the encoder returns the prior."""
    info = _text_info(info)
    return VAE(PriorEncoder(cfg.latent_dim), _lstm_decoder(cfg, info, use_z=False))


def build_model(cfg: ModelConfig, data_info: dict[str, Any]) -> VAE:
    """Build the VAE named by ``cfg.type`` for data described by ``data_info``. Every ``model.*`` value is checked
    first, by :func:`check_model` (the guard of a :class:`ModelConfig` built in Python)."""
    builder = MODELS.get(cfg.type, key="model.type")
    check_model(cfg)
    model = builder(cfg, data_info)
    if cfg.posterior != "gaussian":
        if isinstance(model.encoder, PriorEncoder):
            raise ConfigError(f"model.posterior={cfg.posterior} needs a model with an encoder ({cfg.type} has none)")
        model.encoder = apply_posterior_head(
            model.encoder, cfg.posterior, bn_gamma=cfg.bn_gamma, delta_rate=cfg.delta_rate
        )
    return model


__all__ = [
    "LIKELIHOOD_KEYS",
    "MODELS",
    "MODEL_KEYS",
    "MODEL_RULES",
    "VAE",
    "Decoder",
    "Encoder",
    "ModelConfig",
    "StandardNormalPrior",
    "batch_size",
    "build_model",
    "check_model",
    "check_model_keys",
    "model_type",
]
