"""The dataclasses of a run config: :class:`RunConfig` (``name``, ``seed`` and one section per stage) with the
sections that belong to no single layer, ``train`` (:class:`TrainConfig`, :class:`LRDecayConfig`) and ``eval``
(:class:`EvalConfig`); the others are declared by their layer (:class:`~vaelab.data.config.DataConfig`,
:class:`~vaelab.models.config.ModelConfig`, :class:`~vaelab.objectives.objective.ObjectiveConfig`).

Plain data, no validation: the rules of the keys are gathered in :mod:`vaelab.checks` and a config is loaded and
validated by :mod:`vaelab.config`.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from vaelab.configio import apply_key_overrides, override_text, parse_scalar
from vaelab.data.config import DataConfig
from vaelab.errors import ConfigError
from vaelab.models.config import ModelConfig
from vaelab.objectives.objective import ObjectiveConfig
from vaelab.objectives.schedules import ScheduleConfig


@dataclass
class LRDecayConfig:
    """Learning-rate decay on a validation plateau (Bowman et al. 2016; He et al. 2019 for text):
    after ``patience`` epochs without improvement of the validation loss, multiply the LR by ``factor``,
    optionally reload the best model, at most ``max_decays`` times (then stop)."""

    enabled: bool = False
    factor: float = 0.5
    patience: int = 2
    max_decays: int = 5
    reload_best: bool = True


@dataclass
class TrainConfig:
    """``train.*`` keys: optimisation, validation, early stopping and checkpointing.

    ``tensorboard``: also write the per-epoch scalars of metrics.jsonl (``train/*``, ``valid/*``), the KL per latent
    unit and pictures (reconstructions and prior samples: images, or sentences for text models) as TensorBoard
    event files in DIR/tensorboard/; view them with ``tensorboard --logdir DIR/tensorboard``. Needs
    ``pip install 'vaelab[tensorboard]'`` (see :mod:`vaelab.training.tensorboard`).

    ``selection``: what the best model, LR decay and early stopping are judged by, on the validation split:
    ``elbo`` (the ELBO, beta = 1) or ``beta_elbo`` (-(D + beta R) with the constant ``objective.beta.value``: the
    objective a beta-VAE minimises). For a beta sweep ``beta_elbo`` is the convergence criterion: with beta << 1 the
    validation ELBO peaks in the first epochs, before the rate grows, and falls for hundreds of epochs while the
    model still improves (Bozkurt et al. 2021 train every point to convergence).

    ``precision``: the matrix products of training and evaluation in ``fp32``, ``bf16`` (``torch.autocast``, CPU or
    CUDA) or ``fp16`` (CUDA only, with loss scaling); log-sum-exps, the rate and reported metrics stay float32
    (see :mod:`vaelab.precision`).
    """

    strategy: str = "joint"
    optimizer: Literal["adam", "sgd"] = "adam"
    lr: float = 1e-3
    momentum: float = 0.0
    weight_decay: float = 0.0
    batch_size: int = 128
    epochs: int = 10
    max_steps: int | None = None
    grad_clip: float | None = None
    early_stopping_patience: int | None = None
    selection: Literal["elbo", "beta_elbo"] = "elbo"
    lr_decay: LRDecayConfig = field(default_factory=LRDecayConfig)
    checkpoint_every_steps: int | None = None
    log_every_steps: int = 50
    progress: bool = True
    device: str = "auto"
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    tensorboard: bool = False
    strategy_options: dict[str, Any] = field(default_factory=dict)


@dataclass
class EvalConfig:
    """``eval.*`` keys: what is measured each epoch (validation) and at the end (test).

    ``mi_pool``: ``all`` pools MI over the whole split (cap ln N; Bozkurt et al. 2021, Zhang et al. 2022) or an
    integer B pools within minibatches of B (He et al. 2019; cap ln B). ``iw_samples``: K for the final IW-NLL.
    ``iw_chunk``: importance samples drawn at once per batch; ``auto`` (default) = the most whose (chunk,
    batch_size, data dims) float tensor fits :data:`vaelab.metrics.likelihood.IW_CHUNK_BUDGET` (16 MiB; 10 for
    MNIST at batch 500; 500 for token batches), which bounds the memory and does not change the estimate (it is no
    part of a run's identity: :data:`vaelab.sweep.spec.NOT_IDENTITY_KEYS`).
    ``extra_metrics``: names from :data:`vaelab.metrics.extras.EXTRA_METRICS` computed at the final evaluation
    (and each epoch with ``extras_every_epoch``). ``hole_prior_samples``: draws z ~ p(z) for the joint hole KL
    of the ``holes`` metric (Zhang et al. 2022 use 1000 x 128).
    """

    batch_size: int = 500
    iw_samples: int = 500
    iw_chunk: int | Literal["auto"] = "auto"
    mi_pool: str | int = "all"
    au_threshold: float = 0.01
    final_split: Literal["test", "valid", "train"] = "test"
    binarize_seed: int = 1234
    extra_metrics: list[str] = field(default_factory=list)
    extras_every_epoch: bool = False
    hole_prior_samples: int = 128000


@dataclass
class RunConfig:
    """A whole run: ``name``, ``seed`` and one section per stage of the pipeline."""

    name: str = "run"
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


def config_sections() -> frozenset[tuple[str, ...]]:
    """The config's sections, as key paths: every key of :class:`~vaelab.runconfig.RunConfig` whose value is a
    group of settings (a dataclass: ``data``, ``model``, ``objective``, ``train``, ``eval``, ``train.lr_decay``),
    except a schedule (``objective.beta``), which is one value whose ``type`` decides which keys it reads.

    A mapping given for a section (``train={lr: 0.002}`` on the command line, ``{train: {lr: 0.002}}`` in a sweep
    variant) is merged into it key by key, as if written ``train.lr=0.002`` (:func:`expand_sections`); a mapping
    given for any other key (a schedule, ``train.strategy_options``, ``objective.regulariser_options``, a list
    item) replaces the value whole: a schedule of another type must not keep keys that only the old type reads."""
    global _SECTIONS
    if _SECTIONS is None:
        found: set[tuple[str, ...]] = set()

        def walk(cls: type, path: tuple[str, ...]) -> None:
            hints = typing.get_type_hints(cls)
            for f in dataclasses.fields(cls):  # type: ignore[arg-type]
                tp = hints[f.name]
                if dataclasses.is_dataclass(tp) and tp is not ScheduleConfig:
                    found.add((*path, f.name))
                    walk(tp, (*path, f.name))  # type: ignore[arg-type]

        walk(RunConfig, ())
        _SECTIONS = frozenset(found)
    return _SECTIONS


_SECTIONS: frozenset[tuple[str, ...]] | None = None


def expand_sections(mapping: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``mapping`` (dotted config key -> value, in order) with each mapping given for a section
    (:func:`config_sections`) spread into its dotted keys: ``{"train": {"lr": 0.002}}`` -> ``{"train.lr": 0.002}``
    (recursively: ``train.lr_decay``). A key reached twice (``train.lr`` and ``train: {lr: ...}``) is refused,
    naming both: the later would overwrite the earlier without a word."""
    out: dict[str, Any] = {}
    origin: dict[str, str] = {}

    def add(key: str, value: Any, given: str) -> None:
        if tuple(key.split(".")) in config_sections() and isinstance(value, dict):
            for k, v in value.items():
                add(f"{key}.{k}", v, given)
            return
        if key in out:
            first = origin[key]
            what = key if first == given == key else f"{key} (in {first} and in {given})"
            raise ConfigError(f"{what} is given twice; give it once")
        out[key] = value
        origin[key] = given

    for k, v in mapping.items():
        add(f"{prefix}{k}", v, f"{prefix}{k}")
    return out


def expand_overrides(overrides: list[str]) -> list[str]:
    """``key=value`` overrides with each mapping given for a section spread into one override per key
    (``train={lr: 0.002, epochs: 3}`` -> ``train.lr=0.002``, ``train.epochs=3``; :func:`expand_sections`);
    other items as they are."""
    out: list[str] = []
    for item in overrides:
        key, sep, raw = item.partition("=")
        value = parse_scalar(raw) if sep else None
        if not sep or tuple(key.strip().split(".")) not in config_sections() or not isinstance(value, dict):
            out.append(item)
            continue
        for k, v in expand_sections({key.strip(): value}).items():
            try:
                out.append(f"{k}={override_text(v)}")
            except ConfigError as e:
                raise ConfigError(f"override {item!r}: {e}") from None
    return out


def check_overrides_once(overrides: list[str]) -> None:
    """Refuse a key that ``overrides`` set twice (also through a mapping for its section: ``train.lr=1`` and
    ``train={lr: 2}``), naming both items: which one was meant? The last would win without a word."""
    given = [(e.partition("=")[0].strip(), o) for o in overrides if "=" in o for e in expand_overrides([o])]
    keys = [k for k, _ in given]
    twice = next((k for k in keys if keys.count(k) > 1), None)
    if twice is not None:
        items = " and ".join(repr(o) for k, o in given if k == twice)
        raise ConfigError(f"override key {twice} is given twice ({items}); give it once")


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` overrides to a run config mapping, in order (:func:`vaelab.configio.apply_key_overrides`),
    a mapping given for a section merged into it key by key (:func:`expand_overrides`); a mapping for any other key
    replaces its value."""
    return apply_key_overrides(data, expand_overrides(overrides))
