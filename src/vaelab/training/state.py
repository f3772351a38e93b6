"""The trainer's state and what a checkpoint holds.

The state is a plain dict (it goes into every checkpoint, which loads with ``weights_only=True``): where the loop
is (``step``, ``epoch``, ``batch_in_epoch``), model selection's counts (``best_val``, ``best_epoch``,
``bad_epochs``, ``decays``, :mod:`vaelab.training.selection`), the wall time, the epoch's running sums, the
training stats since the last steps.jsonl line (:class:`~vaelab.training.callbacks.MetricsLog`), ``done``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from vaelab.checkpoint import rng_state, set_rng_state
from vaelab.precision import Precision
from vaelab.training.strategies import Strategy


def new_state() -> dict[str, Any]:
    """The state of a run before its first step."""
    return {
        "step": 0,
        "epoch": 0,
        "batch_in_epoch": 0,
        "best_val": math.inf,
        "best_epoch": -1,
        "bad_epochs": 0,
        "decays": 0,
        "elapsed": 0.0,
        "epoch_sums": {},
        "step_window": {},
        "done": False,
    }


def is_fresh(state: Mapping[str, Any]) -> bool:
    """Whether the run has not taken a step yet (not a resume)."""
    return state["step"] == 0 and state["batch_in_epoch"] == 0


def summary_facts(state: Mapping[str, Any]) -> dict[str, Any]:
    """The training facts summary.json holds (:meth:`Evaluator.final_summary
    <vaelab.evaluation.Evaluator.final_summary>`): the best epoch, the epochs and steps taken, the training time."""
    return {
        "best_epoch": state["best_epoch"],
        "epochs": state["epoch"],
        "steps": state["step"],
        "train_time": state["elapsed"],
    }


def checkpoint_state(
    model: torch.nn.Module,
    optimizers: Mapping[str, torch.optim.Optimizer],
    strategy: Strategy,
    state: dict[str, Any],
    precision: Precision,
) -> dict[str, Any]:
    """What a checkpoint holds: the model, the optimisers, the strategy, the trainer's state, the RNGs (as tensors
    and plain data), fp16's loss scaler."""
    return {
        "model": model.state_dict(),
        "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
        "strategy": strategy.state_dict(),
        "trainer": dict(state),
        "rng": rng_state(),
        **({"precision": precision.state_dict()} if precision.scaler is not None else {}),
    }


def restore_state(
    ckpt: Mapping[str, Any],
    optimizers: Mapping[str, torch.optim.Optimizer],
    strategy: Strategy,
    state: dict[str, Any],
    precision: Precision,
) -> None:
    """Continue from a checkpoint of :func:`checkpoint_state` (the model's weights are loaded apart, by
    :meth:`Run.load_weights <vaelab.run.Run.load_weights>`): the optimisers, the strategy, ``state`` (updated in
    place), the RNGs, the loss scaler."""
    for k, o in optimizers.items():
        o.load_state_dict(ckpt["optimizers"][k])
    strategy.load_state_dict(ckpt["strategy"])
    state.update(ckpt["trainer"])
    set_rng_state(ckpt["rng"])
    precision.load_state_dict(ckpt.get("precision", {}))


__all__ = ["checkpoint_state", "is_fresh", "new_state", "restore_state", "summary_facts"]
