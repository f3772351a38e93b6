"""The rule of every config key and of every numeric command-line option, in one place.

:data:`RULES` maps each leaf key of a run config (``train.batch_size``, ``eval.mi_pool``, ...) to the values it
accepts; :func:`validate_config` applies them (and the few rules that relate two keys, and the options of the
chosen strategy, regulariser and loss terms) to a loaded config before any data is read or any folder written.
A value outside its rule is a :class:`~vaelab.config.ConfigError` of one line naming the full key and the allowed
values: ``train.batch_size must be an integer >= 1, got 0``. The loader's type checks (``from_dict``) run first;
keys whose type is the whole rule (booleans, closed choices) are listed here as :class:`Typed` so that the table
is complete (a test checks that every key of :class:`~vaelab.config.RunConfig` has a rule).

Functions that can be called without a loaded config (``load_dataset``, ``build_model``, ``build_objective``,
``build_schedule``, the regularisers, strategies and terms, from Python) apply the same rules through
:func:`check`, :func:`check_section`, :func:`check_data`, :func:`check_model` and :func:`check_schedule`, so
that each range and its message are written once, here.

Command-line options use the same rule objects as argparse ``type=`` converters (:func:`option`), so
``vaelab sample -n 0`` and ``vaelab sweep --workers -3`` fail like a bad config value.

:data:`RESUME_KEYS` and :data:`EVALUATE_KEYS` are the settings that ``vaelab resume`` and ``vaelab evaluate``
accept as ``key=value`` overrides: those that do not change the trained model.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from vaelab.config import ConfigError, RunConfig


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e15 else repr(v)


@dataclass(frozen=True)
class Rule:
    """Base class: ``check(key, value)`` raises a :class:`ConfigError` naming ``key``; ``describe()`` says what
    is allowed, as in "``key`` must be DESCRIPTION, got VALUE"."""

    optional: bool = False
    """None (YAML ``null``) is allowed too."""

    def describe(self) -> str:
        raise NotImplementedError

    def ok(self, value: Any) -> bool:
        raise NotImplementedError

    def check(self, key: str, value: Any) -> None:
        if value is None and self.optional:
            return
        if not self.ok(value):
            what = self.describe()
            raise ConfigError(f"{key} must be {'null or ' if self.optional else ''}{what}, got {value!r}")


@dataclass(frozen=True)
class Num(Rule):
    """A number (an integer with ``integer``) in a range; ``lo_open``/``hi_open`` exclude the bound."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    integer: bool = False

    def describe(self) -> str:
        kind = "an integer" if self.integer else "a number"
        lo, hi = self.lo, self.hi
        if lo is not None and hi is not None:
            return f"{kind} in {'(' if self.lo_open else '['}{_fmt(lo)}, {_fmt(hi)}{')' if self.hi_open else ']'}"
        if lo is not None:
            return f"{kind} {'>' if self.lo_open else '>='} {_fmt(lo)}"
        if hi is not None:
            return f"{kind} {'<' if self.hi_open else '<='} {_fmt(hi)}"
        return f"a finite {'integer' if self.integer else 'number'}"

    def ok(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if self.integer and not isinstance(value, int):
            return False
        if not math.isfinite(value):
            return False
        if self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo):
            return False
        return not (self.hi is not None and (value >= self.hi if self.hi_open else value > self.hi))


def Int(lo: int | None = None, hi: int | None = None, *, optional: bool = False) -> Num:
    """An integer in [lo, hi]."""
    return Num(optional=optional, lo=lo, hi=hi, integer=True)


@dataclass(frozen=True)
class Text(Rule):
    """A non-empty string; ``no_slash``: without a path separator; ``one_token``: without whitespace."""

    no_slash: bool = False
    one_token: bool = False

    def describe(self) -> str:
        if self.one_token:
            return "one token (a non-empty string without spaces)"
        return "a non-empty name without '/'" if self.no_slash else "a non-empty string"

    def ok(self, value: Any) -> bool:
        if not isinstance(value, str) or not value.strip():
            return False
        if self.no_slash and ("/" in value or "\\" in value):
            return False
        return not (self.one_token and len(value.split()) != 1)


@dataclass(frozen=True)
class Choice(Rule):
    """A name registered in a registry (``registry()`` returns it; imported lazily)."""

    registry: Callable[[], Any] = lambda: ()

    def describe(self) -> str:
        return f"one of {', '.join(sorted(self.registry()))}"

    def ok(self, value: Any) -> bool:
        return isinstance(value, str) and value in self.registry()


@dataclass(frozen=True)
class Items(Rule):
    """A list whose every item follows ``item`` (``min_len``/``max_len`` items)."""

    item: Rule = dataclasses.field(default_factory=lambda: Int(1))
    min_len: int = 0
    max_len: int | None = None
    unique: bool = False
    """No item twice."""

    def describe(self) -> str:
        n = f"{self.min_len} to {self.max_len} " if self.max_len is not None else ""
        n = n or (f"at least {self.min_len} " if self.min_len else "")
        return f"a list of {n}{'distinct ' if self.unique else ''}items, each {self.item.describe()}"

    def ok(self, value: Any) -> bool:
        if not isinstance(value, list | tuple) or len(value) < self.min_len:
            return False
        if self.max_len is not None and len(value) > self.max_len:
            return False
        if self.unique and len({repr(v) for v in value}) != len(value):
            return False
        return all(self.item.ok(v) for v in value)

    def check(self, key: str, value: Any) -> None:
        if isinstance(value, list | tuple):  # name the item at fault: model.hidden[1] must be ...
            for i, v in enumerate(value):
                self.item.check(f"{key}[{i}]", v)
        super().check(key, value)


@dataclass(frozen=True)
class Either(Rule):
    """One of the fixed ``words`` or a value following ``rule``."""

    words: tuple[str, ...] = ()
    rule: Rule = dataclasses.field(default_factory=Num)

    def describe(self) -> str:
        return f"{' or '.join(repr(w) for w in self.words)} or {self.rule.describe()}"

    def ok(self, value: Any) -> bool:
        return value in self.words or self.rule.ok(value)


DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


@dataclass(frozen=True)
class Device(Rule):
    """A device name: auto, cpu, cuda, cuda:N or mps (whether it exists here is checked when it is used:
    :func:`check_device_available`)."""

    def describe(self) -> str:
        return "auto, cpu, cuda, cuda:N or mps"

    def ok(self, value: Any) -> bool:
        return isinstance(value, str) and bool(DEVICE_PATTERN.match(value))


@dataclass(frozen=True)
class Typed(Rule):
    """The loader's type check is the whole rule (booleans, closed choices, paths), or the value is checked by
    the component it configures (``why``)."""

    why: str = ""

    def describe(self) -> str:
        return self.why or "a value of the declared type"

    def ok(self, value: Any) -> bool:
        return True


def _models() -> Any:
    from vaelab.models import MODELS

    return MODELS


def _datasets() -> Any:
    from vaelab.data import DATASETS

    return DATASETS


def _text_data(name: str) -> bool:
    """Whether ``data.name`` holds sentences: the modality its loader registered with (:mod:`vaelab.data.dataset`;
    the others hold images or arrays)."""
    datasets = _datasets()
    return name in datasets and datasets.modality(name) == "text"


def _activations() -> Any:
    from vaelab.models.image import ACTIVATIONS

    return ACTIVATIONS


def _likelihoods() -> Any:
    from vaelab.models.likelihoods import LIKELIHOODS

    return LIKELIHOODS


def _strategies() -> Any:
    from vaelab.training.strategies import STRATEGIES

    return STRATEGIES


def _regularisers() -> Any:
    from vaelab.objectives import REGULARISERS

    return REGULARISERS


def _extra_metrics() -> Any:
    from vaelab.metrics.extras import EXTRA_METRICS

    return EXTRA_METRICS


PROBABILITY_OPEN = Num(lo=0, hi=1, hi_open=True)
COUNT = Int(1)
SEED = Int(0, 2**63 - 1)

SCHEDULE_RULES: dict[str, Rule] = {
    "type": Typed(why="a schedule type"),
    "value": Num(lo=0),
    "start": Num(lo=0),
    "warmup_steps": Int(0, optional=True),
    "warmup_epochs": Num(lo=0, optional=True),
    "cycles": COUNT,
    "ratio": Num(lo=0, hi=1),
    "total_steps": Int(1, optional=True),
    "delay_steps": Int(0, optional=True),
    "delay_epochs": Num(lo=0, optional=True),
}
"""The rule of each key of a schedule (``objective.beta.*`` and every term's ``weight.*``)."""

RULES: dict[str, Rule] = {
    "name": Text(no_slash=True),
    "seed": SEED,
    # data
    "data.name": Choice(registry=_datasets),
    "data.root": Typed(why="a folder"),
    "data.binarize": Typed(why="a binarisation mode"),
    "data.valid_size": Int(0),
    "data.train_size": Int(1, optional=True),
    "data.eval_size": Int(2, optional=True),  # MI and active units need two examples
    "data.split_seed": SEED,
    "data.path": Typed(why="a path"),
    "data.files": Typed(why="a mapping of roles to file names (roles checked by the data set)"),
    "data.image_shape": Items(optional=True, item=Int(1), min_len=1, max_len=3),
    "data.num_examples": COUNT,
    "data.latent_dim": COUNT,
    "data.noise": Num(lo=0),
    "data.num_templates": COUNT,
    "data.verify_checksum": Typed(),
    "data.split_kind": Typed(),
    "data.cache_dir": Typed(why="a folder"),
    "data.format": Typed(),
    "data.vocab_size": Int(5, optional=True),
    "data.vocab_file": Typed(why="a file"),
    "data.max_length": Int(1, optional=True),
    "data.min_length": COUNT,
    "data.length_policy": Typed(),
    "data.lowercase": Typed(),
    "data.skip_malformed": Typed(),
    "data.labels_as_words": Typed(),
    "data.bucketing": Typed(),
    "data.unk_token": Text(optional=True, one_token=True),
    # model
    "model.type": Choice(registry=_models),
    "model.latent_dim": COUNT,
    "model.factory": Typed(why="'package.module:function' or '/path/file.py:function' (checked when built)"),
    "model.factory_kwargs": Typed(why="keyword arguments of model.factory"),
    "model.hidden": Items(item=Int(1)),
    "model.channels": Items(item=Int(1), min_len=1),
    "model.activation": Choice(registry=_activations),
    "model.likelihood": Choice(registry=_likelihoods),
    "model.gaussian_std": Num(lo=0, lo_open=True),
    "model.learn_std": Typed(),
    "model.posterior": Typed(),
    "model.bn_gamma": Num(lo=0, lo_open=True),
    "model.delta_rate": Num(lo=0, lo_open=True),
    "model.emb_dim": COUNT,
    "model.hidden_dim": COUNT,
    "model.dropout_in": PROBABILITY_OPEN,
    "model.dropout_out": PROBABILITY_OPEN,
    "model.word_dropout": Num(lo=0, hi=1),
    "model.init_range": Num(lo=0, lo_open=True),
    "model.emb_init_range": Num(lo=0, lo_open=True),
    "model.decoder_init_from_z": Typed(),
    "model.skip": Typed(),
    "model.pixelcnn_channels": COUNT,
    "model.pixelcnn_layers": COUNT,
    # objective
    "objective.regulariser": Choice(registry=_regularisers),
    "objective.free_bits": Num(lo=0),
    "objective.free_bits_groups": Int(1, optional=True),
    "objective.regulariser_options": Typed(why="options the regulariser names (checked by it)"),
    **{f"objective.beta.{k}": r for k, r in SCHEDULE_RULES.items()},
    "objective.terms": Typed(why="a list of {type: TERM, weight: ..., options} (checked by each term)"),
    # train
    "train.strategy": Choice(registry=_strategies),
    "train.optimizer": Typed(),
    "train.lr": Num(lo=0, lo_open=True),
    "train.momentum": PROBABILITY_OPEN,
    "train.weight_decay": Num(lo=0),
    "train.batch_size": COUNT,
    "train.epochs": COUNT,
    "train.max_steps": Int(1, optional=True),
    "train.grad_clip": Num(lo=0, lo_open=True, optional=True),
    "train.early_stopping_patience": Int(1, optional=True),
    "train.lr_decay.enabled": Typed(),
    "train.lr_decay.factor": Num(lo=0, hi=1, lo_open=True, hi_open=True),
    "train.lr_decay.patience": COUNT,
    "train.lr_decay.max_decays": Int(0),
    "train.lr_decay.reload_best": Typed(),
    "train.checkpoint_every_steps": Int(1, optional=True),
    "train.log_every_steps": COUNT,
    "train.progress": Typed(),
    "train.device": Device(),
    "train.precision": Typed(),
    "train.tensorboard": Typed(),
    "train.strategy_options": Typed(why="options the strategy names (checked by it)"),
    # eval
    "eval.batch_size": COUNT,
    "eval.iw_samples": Int(0),
    "eval.iw_chunk": COUNT,
    "eval.mi_pool": Either(words=("all",), rule=Int(2)),
    "eval.au_threshold": Num(lo=0),
    "eval.final_split": Typed(),
    "eval.binarize_seed": SEED,
    "eval.extra_metrics": Items(item=Choice(registry=_extra_metrics), unique=True),
    "eval.extras_every_epoch": Typed(),
    "eval.hole_prior_samples": COUNT,
}
"""The rule of every leaf key of a run config."""


RESUME_KEYS: tuple[str, ...] = (
    "eval.*",
    "train.log_every_steps",
    "train.progress",
    "train.device",
    "train.tensorboard",
)
"""What ``vaelab resume DIR key=value ...`` may change: the final evaluation, logging and the device; nothing that
changes the trained model."""

EVALUATE_KEYS: tuple[str, ...] = ("eval.*", "data.eval_size", "train.device", "train.precision")
"""What ``vaelab evaluate DIR key=value ...`` may change: the evaluation subset, the device, and the precision of
the evaluation's matrix products (``train.precision``; the trained parameters are read as they are)."""


def leaf_keys(cls: type = RunConfig, prefix: str = "") -> Iterator[str]:
    """Every leaf key of a config dataclass (nested dataclasses expanded), e.g. ``train.lr_decay.factor``."""
    import typing

    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(hints[f.name]):
            yield from leaf_keys(hints[f.name], f"{key}.")
        else:
            yield key


def get_key(cfg: Any, key: str) -> Any:
    """The value at a dotted key of a (nested) config dataclass."""
    for part in key.split("."):
        cfg = getattr(cfg, part)
    return cfg


def key_allowed(key: str, allowed: tuple[str, ...]) -> bool:
    """Whether ``key`` is one of ``allowed`` (an entry ``section.*`` allows the whole section)."""
    return any(key == a or (a.endswith(".*") and key.startswith(a[:-1])) for a in allowed)


def check_override_keys(overrides: list[str], allowed: tuple[str, ...], command: str) -> None:
    """Refuse an override whose key ``command`` does not accept (one line listing the keys it does accept)."""
    for item in overrides:
        key = item.partition("=")[0].strip()
        if "=" not in item or not key:
            raise ConfigError(f"override {item!r} must look like key=value (e.g. eval.iw_samples=1000)")
        if key not in RULES and not any(k.startswith(f"{key}.") for k in RULES):
            raise ConfigError(f"unknown config key {key!r} in override {item!r}")
        if not key_allowed(key, allowed):
            raise ConfigError(
                f"{command} does not accept {key}: it accepts only settings that do not change the trained model "
                f"({', '.join(allowed)}); to change {key}, train a new run with --out in another folder"
            )
    check_override_values(overrides)


def check_override_values(overrides: list[str]) -> None:
    """Check each ``key=value`` override's value (its type too) against its key's rule, so that the error names
    the key as given on the command line, not the config file (the loaded config is checked as a whole
    afterwards)."""
    from vaelab.config import parse_scalar

    for item in overrides:
        key, _, raw = item.partition("=")
        rule = RULES.get(key.strip())
        if rule is None or isinstance(rule, Typed):
            continue
        value = parse_scalar(raw)
        if isinstance(rule, Num) and not rule.integer and isinstance(value, str):
            with contextlib.suppress(ValueError):
                value = float(value)  # "1e-3" is a string to YAML, a number to the config loader
        if isinstance(rule, Num) and rule.integer and isinstance(value, float) and value.is_integer():
            value = int(value)  # the loader reads 2.0 as 2
        rule.check(key.strip(), value)  # a wrong type too: named as given on the command line, not as the file's


def check(key: str, value: Any, rule: Rule | None = None) -> Any:
    """Apply the rule of config key ``key`` (``rule``, else ``RULES[key]``) to ``value``: a one-line
    :class:`ConfigError` (a ValueError) naming ``key``. Returns ``value``. The guard of functions that can be
    called without a loaded config, and of the options that strategies, regularisers and terms name
    (``check("train.strategy_options.window", window, COUNT)``)."""
    (rule if rule is not None else RULES[key]).check(key, value)
    return value


def check_section(section: Any, prefix: str) -> None:
    """Apply every rule of ``RULES`` under ``prefix`` (``data``, ``model``, ``train.lr_decay``, ...) to the
    section dataclass ``section``."""
    for key, rule in RULES.items():
        if key.startswith(f"{prefix}."):
            rule.check(key, get_key(section, key[len(prefix) + 1 :]))


FIXED_VALID_SPLIT = {
    "synthetic_blobs": "data.eval_size examples (default num_examples // 4)",
    "synthetic_gaussian": "data.eval_size examples (default num_examples // 4)",
    "synthetic_text": "data.eval_size examples (default num_examples // 4)",
    "binarized_mnist": "the official one (10,000 images)",
}
"""Data sets whose validation split does not come from ``data.valid_size``, and what it is."""
FIXED_VALID_SPLIT_DEFAULT = 10000
"""``DataConfig.valid_size``'s default: the value those data sets accept (a saved config always holds it)."""


def check_data(d: Any) -> None:
    """Every rule of the ``data`` section (:data:`RULES` and the relations between its keys and the data set)."""
    check_section(d, "data")
    if d.max_length is not None and d.min_length > d.max_length:
        raise ConfigError(f"data.min_length={d.min_length} exceeds data.max_length={d.max_length}")
    if d.name == "synthetic_blobs" and d.noise > 0.5:
        raise ConfigError(f"data.noise must be a flip probability in [0, 0.5] for synthetic_blobs, got {d.noise}")
    if d.name == "synthetic_gaussian" and not d.noise > 0:
        raise ConfigError(f"data.noise must be a number > 0 (the noise sd) for synthetic_gaussian, got {d.noise}")
    if d.name == "synthetic_text":
        if not d.noise < 1:
            raise ConfigError(f"data.noise must be a probability in [0, 1) for synthetic_text, got {d.noise}")
        if d.num_templates < 2:
            raise ConfigError(
                f"data.num_templates must be an integer >= 2 (topics) for synthetic_text, got {d.num_templates}"
            )
    if d.name in FIXED_VALID_SPLIT and d.valid_size != FIXED_VALID_SPLIT_DEFAULT:
        raise ConfigError(
            f"data.valid_size={d.valid_size} is not read by data.name={d.name}, whose validation split is "
            f"{FIXED_VALID_SPLIT[d.name]}; remove data.valid_size"
        )
    _check_modality_keys(d)
    if d.labels_as_words and d.format != "plain":
        raise ConfigError(f"data.labels_as_words applies to data.format=plain, not {d.format}")
    if d.name == "ptb" and d.format != "plain":
        raise ConfigError(f"data.format={d.format!r}: the ptb files are plain text (use data.name=text)")


TEXT_ONLY_DATA_KEYS = (
    "format",
    "vocab_size",
    "vocab_file",
    "max_length",
    "min_length",
    "length_policy",
    "unk_token",
    "lowercase",
    "skip_malformed",
    "bucketing",
    "labels_as_words",
)
"""``data`` keys that only a text corpus reads; on image data each must keep its default."""
IMAGE_ONLY_DATA_KEYS = ("binarize", "image_shape")
"""``data`` keys that only image data read; on text each must keep its default (None)."""


def _check_modality_keys(d: Any) -> None:
    """A key that the data set's modality does not read is refused rather than ignored (``data.max_length`` on
    MNIST, ``data.binarize`` on a corpus). Unknown data set names are left to the registry's own error."""
    if d.name not in _datasets():
        return
    from vaelab.data.config import DataConfig

    default = DataConfig()
    text = _text_data(d.name)
    keys = IMAGE_ONLY_DATA_KEYS if text else TEXT_ONLY_DATA_KEYS
    for key in keys:
        value = getattr(d, key)
        if value != getattr(default, key):
            kind = "a text corpus" if text else "image data"
            raise ConfigError(f"data.{key}={value!r} is not read by data.name={d.name} ({kind}); remove data.{key}")


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
    """Every rule of the ``model`` section (:data:`RULES` and the relations between its keys)."""
    check_section(m, "model")
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


def check_free_bits_groups(groups: int | None, latent_dim: int) -> None:
    """``objective.free_bits_groups`` (null or an integer >= 1) divides the latent dimension."""
    check("objective.free_bits_groups", groups)
    if groups is not None and latent_dim % groups:
        raise ConfigError(f"objective.free_bits_groups={groups} must divide model.latent_dim={latent_dim}")


FREE_BITS_READERS: dict[str, tuple[str, ...]] = {
    "free_bits": ("free_bits_batch", "free_bits_fine"),
    "free_bits_groups": ("free_bits_batch",),
}
"""Which regularisers read ``objective.free_bits`` and ``objective.free_bits_groups`` (the others ignore them)."""


def check_free_bits_apply(regulariser: str, free_bits: float, groups: int | None, prefix: str = "objective") -> None:
    """``free_bits`` (> 0) and ``free_bits_groups`` (not null) only with a regulariser that reads them
    (:data:`FREE_BITS_READERS`): the plain rate (``kl``) or the density gap would ignore them without a word."""
    for key, given in (("free_bits", bool(free_bits)), ("free_bits_groups", groups is not None)):
        readers = FREE_BITS_READERS[key]
        if given and regulariser not in readers:
            value = free_bits if key == "free_bits" else groups
            raise ConfigError(
                f"{prefix}.{key}={value} is read only by {prefix}.regulariser={' or '.join(readers)}, not "
                f"{regulariser!r}, which would ignore it; set {prefix}.regulariser={readers[0]} or remove {key}"
            )


def check_batch_norm_batches(cfg: RunConfig, batch_sizes: list[int], n_train: int) -> None:
    """BN-VAE (``model.posterior=bn``) normalises over the batch: every training batch (``batch_sizes``, this
    process's batches of an epoch) needs >= 2 examples, checked before training rather than at the batch of 1."""
    if cfg.model.posterior == "bn" and min(batch_sizes, default=2) < 2:
        hint = " or data.bucketing=none" if _text_data(cfg.data.name) and cfg.data.bucketing == "exact" else ""
        raise ConfigError(
            f"model.posterior=bn (BN-VAE) normalises over the batch and needs >= 2 examples in every training "
            f"batch, but train.batch_size={cfg.train.batch_size} leaves a batch of 1 of the {n_train} training "
            f"examples; choose another train.batch_size{hint}"
        )


def check_schedule(value: Any, key: str) -> None:
    """A schedule (``objective.beta``, ``objective.terms[i].weight``): a number >= 0, or a
    :class:`~vaelab.objectives.schedules.ScheduleConfig` whose keys follow :data:`SCHEDULE_RULES` and fit its
    type (a ramp needs its length; a delay applies to ramps only)."""
    from vaelab.objectives.schedules import ScheduleConfig

    if not isinstance(value, ScheduleConfig):
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise ConfigError(f"{key} must be a number >= 0 or a schedule mapping, got {value!r}")
        Num(lo=0).check(key, value)
        return
    for k, rule in SCHEDULE_RULES.items():
        rule.check(f"{key}.{k}", getattr(value, k))
    for part, other in (("warmup_steps", "warmup_epochs"), ("delay_steps", "delay_epochs")):
        if getattr(value, part) is not None and getattr(value, other) is not None:
            raise ConfigError(f"{key}: give {part} or {other}, not both")
    if value.type in ("constant", "cyclical"):
        if value.delay_steps or value.delay_epochs:
            raise ConfigError(
                f"{key}: delay_steps/delay_epochs apply to ramps (linear, sigmoid, cosine), not {value.type}"
            )
    elif value.warmup_steps is None and value.warmup_epochs is None:
        raise ConfigError(f"{key}: a {value.type} schedule needs warmup_steps or warmup_epochs")


def _relations(cfg: RunConfig) -> None:
    """Rules that relate two keys, or a key and the data set or model it applies to (the schedules are checked
    when :func:`_components` builds the objective: :func:`check_schedule`)."""
    check_data(cfg.data)
    check_model(cfg.model)
    m, d = cfg.model, cfg.data
    if m.type != "custom" and (m.type in TEXT_MODELS) != _text_data(d.name):
        kind, other = ("a text", "sentences") if m.type in TEXT_MODELS else ("an image", "images")
        fit = "sentences (lstm_vae, lstm_lm)" if _text_data(d.name) else "images (mlp, conv, ...)"
        raise ConfigError(
            f"model.type={m.type} is {kind} model, but data.name={d.name} does not hold {other}; choose a "
            f"model.type for {fit}"
        )
    if d.name == "synthetic_gaussian" and m.type in LIKELIHOOD_READERS and m.likelihood == "bernoulli":
        raise ConfigError(
            "model.likelihood=bernoulli needs data in [0, 1], but data.name=synthetic_gaussian holds real numbers "
            "(x = W z + b + noise); set model.likelihood=gaussian"
        )
    if d.name == "synthetic_gaussian" and FIXED_LIKELIHOOD.get(m.type) == "bernoulli":
        raise ConfigError(
            f"model.type={m.type} ({OWN_LIKELIHOOD[m.type]}) needs data in [0, 1], but data.name=synthetic_gaussian "
            "holds real numbers (x = W z + b + noise); choose model.type=mlp or conv with model.likelihood=gaussian"
        )
    check_free_bits_groups(cfg.objective.free_bits_groups, cfg.model.latent_dim)
    for i, spec in enumerate(cfg.objective.terms):
        if isinstance(spec, dict) and isinstance(spec.get("weight"), dict):
            for k, rule in SCHEDULE_RULES.items():  # before the term's mapping is read (its types checked)
                if k in spec["weight"]:
                    rule.check(f"objective.terms[{i}].weight.{k}", spec["weight"][k])


def _components(cfg: RunConfig) -> None:
    """Build what needs no data (the strategy with its options, the objective with its regulariser, schedules and
    terms), so that their option checks run now; their errors name the key."""
    from vaelab.objectives import build_objective
    from vaelab.registry import UnknownChoiceError
    from vaelab.training.strategies import STRATEGIES

    try:
        strategy = STRATEGIES.get(cfg.train.strategy, key="train.strategy")(**cfg.train.strategy_options)
        strategy.check_budget(cfg.train.epochs, cfg.train.max_steps)  # the trainer checks again with the data
        build_objective(cfg.objective, 1, 1)
    except (UnknownChoiceError, ValueError) as e:
        raise ConfigError(str(e)) from None
    except TypeError as e:  # a strategy option of the wrong type
        raise ConfigError(f"train.strategy_options: {e}") from None


def validate_config(cfg: RunConfig) -> RunConfig:
    """Check every value of ``cfg`` against :data:`RULES`, the rules relating keys, and the options of its
    strategy, regulariser and terms; raise a one-line :class:`ConfigError` naming the key. Returns ``cfg``."""
    for key, rule in RULES.items():
        rule.check(key, get_key(cfg, key))
    _relations(cfg)
    _components(cfg)
    return cfg


# --------------------------------------------------------------------------------------------------------------
# command-line options


def option(rule: Rule, flag: str) -> Callable[[str], Any]:
    """An argparse ``type=`` converter that parses the option's text and checks ``rule``; the error names
    ``flag`` and the allowed values (argparse prints it as one line with exit status 2)."""

    def convert(text: str) -> Any:
        value: Any = text
        if isinstance(rule, Num) or (isinstance(rule, Either) and text not in rule.words):
            try:
                value = int(text)
            except ValueError:
                try:
                    value = float(text) if not (isinstance(rule, Num) and rule.integer) else text
                except ValueError:
                    value = text
        if value is None or not rule.ok(value):
            raise argparse.ArgumentTypeError(f"must be {rule.describe()}, got {text!r}")
        return value

    convert.__name__ = flag  # argparse names the converter in some messages
    return convert


def device_available(name: str) -> bool:
    """Whether device ``name`` (auto, cpu, cuda, cuda:N, mps) exists on this machine."""
    try:
        check_device_available(name)
    except ConfigError:
        return False
    return True


def check_device_available(name: str, key: str = "train.device") -> None:
    """Raise a one-line :class:`ConfigError` when device ``name`` does not exist on this machine."""
    import torch

    if not DEVICE_PATTERN.match(name):
        raise ConfigError(f"{key} must be {Device().describe()}, got {name!r}")
    if name in ("auto", "cpu"):
        return
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(
                f"{key}={name}: CUDA is not available on this machine (torch {torch.__version__}, "
                f"torch.cuda.is_available() is False); use {key}=cpu or auto"
            )
        index = int(name.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise ConfigError(
                f"{key}={name}: this machine has {torch.cuda.device_count()} CUDA device(s) (cuda:0 .. "
                f"cuda:{torch.cuda.device_count() - 1})"
            )
    if name == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ConfigError(f"{key}=mps: Apple's MPS backend is not available on this machine; use {key}=cpu or auto")
