"""A NaN or infinite loss: how training notices it, and what it leaves behind.

A loss term that becomes NaN or infinite raises :class:`~vaelab.objectives.NonFiniteLossError` in the step;
:func:`check_epoch_finite` raises it for an epoch whose training means (without validation) or validation metrics are
not finite. The trainer then writes a failed summary.json (:func:`fail`, which a new run may replace, see
:meth:`RunFolder.holds_run <vaelab.runfolder.RunFolder.holds_run>`) and stops with :class:`TrainingFailed`, whose
message says what to do and names the last good checkpoint.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from vaelab.checkpoint import load_checkpoint
from vaelab.objectives import NonFiniteLossError
from vaelab.runfolder import RunFolder


class TrainingFailed(RuntimeError):
    """Training stopped early for a reason the user must act on (the message says which and what is kept)."""


def check_epoch_finite(train: Mapping[str, float], val: Mapping[str, Any] | None, step: int) -> None:
    """Raise :class:`~vaelab.objectives.NonFiniteLossError` when the epoch's validation ELBO, rate or distortion
    (or, without a validation split, its training ELBO) is NaN or infinite."""
    if val is None and not math.isfinite(train.get("elbo", 0.0)):
        raise NonFiniteLossError("train elbo", step, train["elbo"])
    if val is not None and not all(math.isfinite(val[k]) for k in ("elbo", "rate", "distortion")):
        raise NonFiniteLossError("validation elbo", step, val["elbo"])


def fail(folder: RunFolder, e: NonFiniteLossError, wall_time: float, *, write: bool = True) -> TrainingFailed:
    """The error to raise for ``e``; with ``write`` (the main process) a failed summary.json first (the term, the
    step, the wall time)."""
    if write:
        failed = {"status": "failed", "reason": str(e), "term": e.term, "step": e.step}
        folder.write_json("summary.json", {**failed, "wall_time": wall_time})
    return TrainingFailed(failure_message(folder, e))


def failure_message(folder: RunFolder, e: NonFiniteLossError) -> str:
    """What stopped training and what to do: retrain into a new folder with other settings (``resume`` cannot
    change train.lr or grad_clip, and would meet the same NaN); names the last good checkpoint if any."""
    again = (
        "train again into a new folder (--out) with a lower train.lr or a train.grad_clip, or check the data "
        "(vaelab resume cannot change these settings)"
    )
    if folder.last.exists():
        step = int(load_checkpoint(folder.last)["trainer"]["step"])
        return f"training stopped: {e}. The last good checkpoint is {folder.last} (step {step}); {again}."
    return f"training stopped: {e}, before the first checkpoint was written; {again}."


__all__ = ["TrainingFailed", "check_epoch_finite", "fail", "failure_message"]
