"""Model selection after each epoch's validation: the best model, the plateau's LR decay, early stopping.

:class:`ModelSelection` reads ``train.selection`` (the validation loss: -ELBO, or D + beta R at a constant beta),
``train.lr_decay`` and ``train.early_stopping_patience``, and keeps its counts in the trainer's state (``best_val``,
``best_epoch``, ``bad_epochs``, ``decays``: they are in every checkpoint, so a resumed run selects as the
uninterrupted one). It decides; the trainer acts (keeps best.pt through its callbacks, reloads the best model).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from vaelab.runconfig import RunConfig
from vaelab.training.strategies import Strategy

IMPROVEMENT = 1e-6
"""How much lower than the best so far a validation loss must be to count as an improvement."""


@dataclass(frozen=True)
class Verdict:
    """What one epoch's validation decided: ``best`` (this epoch's model is the best so far: keep it), ``decay``
    (a plateau: decay the learning rate, after reloading the best model with ``train.lr_decay.reload_best``),
    ``stop`` (the reason training stops here, or None)."""

    best: bool = False
    decay: bool = False
    stop: str | None = None


class ModelSelection:
    """The best model, LR decay and early stopping of a run's config (see the module's docstring)."""

    def __init__(self, config: RunConfig) -> None:
        self.train = config.train
        self.beta = float(config.objective.beta.value) if config.train.selection == "beta_elbo" else None

    @property
    def reload_best(self) -> bool:
        """Whether a decay of the learning rate starts again from the best model."""
        return self.train.lr_decay.reload_best

    def loss(self, val: Mapping[str, Any]) -> float:
        """The validation loss of ``train.selection``: -ELBO, or D + beta R (``beta_elbo``, constant beta)."""
        if self.beta is not None:
            return float(val["distortion"]) + self.beta * float(val["rate"])
        return -float(val["elbo"])

    def judge(self, state: dict[str, Any], val: Mapping[str, Any] | None, strategy: Strategy) -> Verdict:
        """The epoch just ended (``state["epoch"]`` counts it) with validation ``val`` (None: no validation split,
        and every epoch's model is the best so far). Updates the counts in ``state``. ``strategy`` may restart the
        selection (a new phase: its models are compared among themselves only) and may keep plateaus from
        counting (:class:`~vaelab.training.strategies.Strategy`)."""
        if val is None:
            state["best_epoch"] = state["epoch"]
            return Verdict(best=True)
        if strategy.restart_selection():
            state["best_val"], state["best_epoch"], state["bad_epochs"] = math.inf, -1, 0
        loss = self.loss(val)
        if loss < state["best_val"] - IMPROVEMENT:
            state["best_val"], state["best_epoch"], state["bad_epochs"] = loss, state["epoch"], 0
            return Verdict(best=True)
        if not strategy.counts_plateaus():
            return Verdict()
        state["bad_epochs"] += 1
        decay, decayed = self.train.lr_decay, False
        if decay.enabled and state["bad_epochs"] >= decay.patience:
            if state["decays"] >= decay.max_decays:
                return Verdict(stop=f"lr decayed {decay.max_decays} times")
            state["decays"] += 1
            state["bad_epochs"] = 0
            decayed = True
        patience = self.train.early_stopping_patience
        if patience is not None and state["bad_epochs"] >= patience:
            return Verdict(decay=decayed, stop=f"early stopping (no improvement for {patience} epochs)")
        return Verdict(decay=decayed)

    def decay(self, optimizers: Mapping[str, torch.optim.Optimizer], state: dict[str, Any]) -> str:
        """Multiply every optimiser's learning rate by ``train.lr_decay.factor``; returns the line to log."""
        decay = self.train.lr_decay
        for o in optimizers.values():
            for g in o.param_groups:
                g["lr"] *= decay.factor
        return f"validation plateau: learning rate x{decay.factor} (decay {state['decays']}/{decay.max_decays})"


__all__ = ["IMPROVEMENT", "ModelSelection", "Verdict"]
