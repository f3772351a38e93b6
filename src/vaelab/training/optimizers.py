"""The optimisers of a run: one per parameter group of the training strategy, all from the ``train`` section."""

from __future__ import annotations

import torch
from torch import nn

from vaelab.runconfig import TrainConfig
from vaelab.training.strategies import Strategy


def make_optimizer(cfg: TrainConfig, params: list[nn.Parameter], lr: float | None = None) -> torch.optim.Optimizer:
    """``train.optimizer`` (Adam, or SGD with ``train.momentum``) over ``params`` at ``train.lr`` (or ``lr``), with
    ``train.weight_decay``."""
    lr = cfg.lr if lr is None else lr
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def make_optimizers(cfg: TrainConfig, strategy: Strategy, model: nn.Module) -> dict[str, torch.optim.Optimizer]:
    """One optimiser (:func:`make_optimizer`) per parameter group of ``strategy`` over ``model``, by group name."""
    return {name: make_optimizer(cfg, params) for name, params in strategy.param_groups(model).items()}


__all__ = ["make_optimizer", "make_optimizers"]
