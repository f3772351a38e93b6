"""Why and when a sweep point stopped training: the accounting that a "trained to convergence" claim rests on.

The trainer (:class:`vaelab.training.trainer.Trainer`) validates once per epoch, keeps the model of the best
validation ELBO as ``checkpoints/best.pt`` (the one a sweep measures, ``measure.checkpoint: best``) and stops for
one of these reasons, written to summary.json's ``stop_reason``:

================  ===================================================  ==================================
``stopped_by``    summary.json ``stop_reason``                         meaning
================  ===================================================  ==================================
early_stopping    ``early stopping (no improvement for P epochs)``     the validation loss did not improve
                                                                       for ``train.early_stopping_patience``
                                                                       epochs: converged (on validation)
step_cap          ``max_steps``                                        ``train.max_steps`` reached first
epoch_limit       ``completed``                                        ``train.epochs`` reached first
lr_decay          ``lr decayed N times``                               ``train.lr_decay.max_decays`` used up
unknown           anything else                                        (a strategy's own reason)
================  ===================================================  ==================================

The step cap is checked after every step; an epoch cut short by it is still validated (and may become the best).
When the patience runs out at the same epoch as the cap is reached, the reason is early stopping. The validation
loss is ``train.selection``'s: the negative ELBO (beta = 1, whatever the training objective) or D + beta R
(``beta_elbo``), estimated each epoch with fresh samples.

Only ``early_stopping`` (and ``lr_decay``, which also waits for a plateau) says that the validation loss had stopped
improving; a point stopped by the step cap or the epoch limit may still have been improving, and
``epochs_since_best`` (0 = the last epoch was the best) says how far it was from its best.

:func:`training_record` reads one point folder; :func:`stop_counts` and :func:`step_cap_line` count a sweep's rows.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from vaelab.config import load_saved_config
from vaelab.runfolder import RunFolder, read_json_or_none, read_jsonl

STOP_KINDS = ("early_stopping", "step_cap", "epoch_limit", "lr_decay", "unknown")

TRAINING_KEYS = (
    "stopped_by",
    "stop_reason",
    "epochs",
    "steps",
    "best_epoch",
    "best_step",
    "epochs_since_best",
    "max_steps",
    "max_epochs",
    "patience",
)
"""The keys of :func:`training_record`, in table order. ``epochs``/``steps``: where training stopped (the epochs
validated and the optimisation steps taken); ``best_epoch``/``best_step``: the measured (best-validation) model;
``max_steps``/``max_epochs``/``patience``: the run's ``train.max_steps``, ``train.epochs`` and
``train.early_stopping_patience``."""


def stop_kind(stop_reason: str | None) -> str:
    """The category (one of :data:`STOP_KINDS`) of a summary.json ``stop_reason``; None for a run not finished."""
    if stop_reason is None:
        return "unknown"
    reason = str(stop_reason)
    if reason.startswith("early stopping"):
        return "early_stopping"
    if reason == "max_steps":
        return "step_cap"
    if reason == "completed":
        return "epoch_limit"
    if reason.startswith("lr decayed"):
        return "lr_decay"
    return "unknown"


def training_record(run_dir: str | Path) -> dict[str, Any]:
    """The stop accounting of a finished run folder (summary.json completed), keys :data:`TRAINING_KEYS`; an
    empty dict when the run has not finished.

    ``best_step`` is the step of the validation record of ``best_epoch`` in metrics.jsonl (None when the run never
    validated, or when no record has that epoch); the limits come from the run's config.yaml.
    """
    folder = RunFolder(run_dir)
    summary = read_json_or_none(folder.summary)
    if not summary or summary.get("status") != "completed":
        return {}
    record: dict[str, Any] = {
        "stopped_by": stop_kind(summary.get("stop_reason")),
        "stop_reason": summary.get("stop_reason"),
        "epochs": summary.get("epochs"),
        "steps": summary.get("steps"),
        "best_epoch": summary.get("best_epoch"),
        "best_step": None,
        "epochs_since_best": None,
        "max_steps": None,
        "max_epochs": None,
        "patience": None,
    }
    best = record["best_epoch"]
    if isinstance(best, int) and best > 0:
        if isinstance(record["epochs"], int):
            record["epochs_since_best"] = record["epochs"] - best
        with contextlib.suppress(OSError, ValueError):
            for rec in read_jsonl(folder.metrics):
                if rec.get("epoch") == best and rec.get("split") == "valid":
                    record["best_step"] = rec.get("step")
    with contextlib.suppress(Exception):  # a config of another version: the limits stay unknown
        train = load_saved_config(folder.config).train
        record["max_steps"] = train.max_steps
        record["max_epochs"] = train.epochs
        record["patience"] = train.early_stopping_patience
    return record


def stop_counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    """Number of rows per ``stopped_by`` (rows without one, i.e. points not trained yet, are not counted), in the
    order of :data:`STOP_KINDS`, zero counts left out."""
    counts = {k: 0 for k in STOP_KINDS}
    for r in rows:
        kind = r.get("stopped_by")
        if kind:
            counts[kind if kind in counts else "unknown"] += 1
    return {k: n for k, n in counts.items() if n}


def step_cap_line(rows: list[dict[str, Any]]) -> str:
    """``"N of M points hit the step cap (train.max_steps = S)"`` over the rows with a stop record, followed by
    the other stop reasons' counts."""
    counts = stop_counts(rows)
    m = sum(counts.values())
    n = counts.get("step_cap", 0)
    caps = sorted({r["max_steps"] for r in rows if r.get("stopped_by") and isinstance(r.get("max_steps"), int)})
    cap = f" (train.max_steps = {', '.join(map(str, caps))})" if caps else " (no train.max_steps)"
    others = ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in counts.items())
    return f"{n} of {m} points hit the step cap{cap}; stopped by {others or 'nothing yet'}"
