"""The dataclasses of a run config: :class:`RunConfig` (``name``, ``seed`` and one section per stage) with the
sections that belong to no single layer, ``train`` (:class:`TrainConfig`, :class:`LRDecayConfig`) and ``eval``
(:class:`EvalConfig`); the others are declared by their layer (:class:`~vaelab.data.config.DataConfig`,
:class:`~vaelab.models.config.ModelConfig`, :class:`~vaelab.objectives.objective.ObjectiveConfig`).

Plain data, no validation: the rules of the keys are gathered in :mod:`vaelab.checks` and a config is loaded and
validated by :mod:`vaelab.config`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from vaelab.data.config import DataConfig
from vaelab.models.config import ModelConfig
from vaelab.objectives.objective import ObjectiveConfig


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
