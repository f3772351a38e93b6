"""The epoch's numbers: the running sums of its training steps, and its metrics.jsonl records.

Each step adds its stats, weighted by its ``n`` examples, to the epoch's sums (``state["epoch_sums"]``, kept in
every checkpoint, so a resumed epoch continues its means; ``_n`` counts the examples). At the end of the epoch the
sums of all processes give the training means (:func:`epoch_means`), and :func:`epoch_records` makes the records
that :meth:`Callback.on_metrics <vaelab.training.callbacks.Callback.on_metrics>` receives: the training steps'
running means, then the validation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from vaelab.distributed import DistInfo, all_reduce_sum
from vaelab.training.strategies import Strategy


def add_step(sums: dict[str, float], stats: Mapping[str, float], n: int) -> None:
    """Add a step's ``stats`` (its means over ``n`` examples) to the epoch's running ``sums``, in place."""
    for k, v in stats.items():
        sums[k] = sums.get(k, 0.0) + v * n
    sums["_n"] = sums.get("_n", 0.0) + n


def epoch_means(sums: dict[str, float], dist: DistInfo) -> dict[str, float]:
    """The epoch's training means: the running ``sums`` of every process, over the examples they saw."""
    totals = all_reduce_sum(sums, dist)
    n_seen = max(totals.pop("_n", 0.0), 1.0)
    return {k: v / n_seen for k, v in totals.items()}


def epoch_records(
    state: Mapping[str, Any],
    optimizers: Mapping[str, torch.optim.Optimizer],
    strategy: Strategy,
    train: Mapping[str, float],
    val: Mapping[str, Any] | None,
) -> list[dict[str, Any]]:
    """The metrics.jsonl records of the epoch ``state`` is at (``state["epoch"]`` not yet counted): the training
    means (``split: train``, ``source: running_mean``) and, with a validation, its metrics (``split: valid``,
    ``source: evaluation``, with the training's ``beta``); each with the epoch (from 1), step, wall time, every
    optimiser's learning rate and the strategy's log fields."""
    lrs = {f"lr_{k}": o.param_groups[0]["lr"] for k, o in optimizers.items()}
    common = {"epoch": state["epoch"] + 1, "step": state["step"], "wall_time": state["elapsed"], **lrs}
    common.update(strategy.log_fields())
    records = [{**common, "split": "train", "source": "running_mean", **train}]
    if val is not None:
        records.append({**common, "split": "valid", "source": "evaluation", "beta": train.get("beta"), **val})
    return records


__all__ = ["add_step", "epoch_means", "epoch_records"]
