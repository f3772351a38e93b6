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
``epochs_since_best`` (0 = the last epoch was the best) says how far it was from its best and ``late_gain`` how much
its validation loss still improved over its last 10% of steps (the step-cap line of results.md quotes it).

:func:`training_record` reads one point folder; :func:`stop_counts` and :func:`step_cap_line` count a sweep's rows.
"""

from __future__ import annotations

import contextlib
import statistics
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
    "late_gain",
)
"""The keys of :func:`training_record`, in table order. ``epochs``/``steps``: where training stopped (the epochs
validated and the optimisation steps taken); ``best_epoch``/``best_step``: the measured (best-validation) model;
``max_steps``/``max_epochs``/``patience``: the run's ``train.max_steps``, ``train.epochs`` and
``train.early_stopping_patience``; ``late_gain``: how much the validation loss of ``train.selection`` improved over
the last :data:`LATE_FRACTION` of the steps (nats, >= 0; :func:`late_gain`) — for a point stopped by the step cap,
how far from converged it still was."""

LATE_FRACTION = 0.1
"""The tail of a run (fraction of its steps) over which :func:`late_gain` measures the remaining improvement."""


def selection_loss(record: dict[str, Any], selection: str, beta: float | None) -> float | None:
    """The validation loss that ``train.selection`` minimises, from one metrics.jsonl validation record: -ELBO, or
    D + beta R for ``beta_elbo`` (constant beta). None when a value is missing."""
    try:
        if selection == "beta_elbo":
            if beta is None:
                return None
            return float(record["distortion"]) + float(beta) * float(record["rate"])
        return -float(record["elbo"])
    except (KeyError, TypeError, ValueError):
        return None


def late_gain(
    records: list[dict[str, Any]], steps: int, selection: str = "elbo", beta: float | None = None
) -> float | None:
    """Improvement of the best validation loss over the last :data:`LATE_FRACTION` of ``steps``: best loss of the
    validation records up to step (1 - fraction) * steps minus the best of all (nats, >= 0). None without
    validation records on both sides of that step."""
    cut = (1 - LATE_FRACTION) * steps
    early: list[float] = []
    every: list[float] = []
    for rec in records:
        if rec.get("split") != "valid" or not isinstance(rec.get("step"), int):
            continue
        loss = selection_loss(rec, selection, beta)
        if loss is None:
            continue
        every.append(loss)
        if rec["step"] <= cut:
            early.append(loss)
    if not early or len(every) == len(early):
        return None
    return max(0.0, min(early) - min(every))


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
        "late_gain": None,
    }
    records: list[dict[str, Any]] = []
    with contextlib.suppress(OSError, ValueError):
        records = list(read_jsonl(folder.metrics))
    best = record["best_epoch"]
    if isinstance(best, int) and best > 0:
        if isinstance(record["epochs"], int):
            record["epochs_since_best"] = record["epochs"] - best
        for rec in records:
            if rec.get("epoch") == best and rec.get("split") == "valid":
                record["best_step"] = rec.get("step")
    selection, beta = "elbo", None
    with contextlib.suppress(Exception):  # a config of another version: the limits stay unknown
        cfg = load_saved_config(folder.config)
        train = cfg.train
        record["max_steps"] = train.max_steps
        record["max_epochs"] = train.epochs
        record["patience"] = train.early_stopping_patience
        selection = train.selection
        beta = cfg.objective.beta.value if cfg.objective.beta.type == "constant" else None
    if isinstance(record["steps"], int):
        record["late_gain"] = late_gain(records, record["steps"], selection, beta)
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
    the stop reasons' counts and, for the capped points, their :func:`late_gain` (median and largest)."""
    counts = stop_counts(rows)
    m = sum(counts.values())
    n = counts.get("step_cap", 0)
    caps = sorted({r["max_steps"] for r in rows if r.get("stopped_by") and isinstance(r.get("max_steps"), int)})
    cap = f" (train.max_steps = {', '.join(map(str, caps))})" if caps else " (no train.max_steps)"
    others = ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in counts.items())
    gains = sorted(
        float(r["late_gain"])
        for r in rows
        if r.get("stopped_by") == "step_cap" and isinstance(r.get("late_gain"), int | float)
    )
    late = ""
    if gains:
        late = (
            f"; the capped points' validation loss still improved by {statistics.median(gains):.2f} nats (median; "
            f"at most {gains[-1]:.2f}) over their last {100 * LATE_FRACTION:g}% of steps"
        )
    return f"{n} of {m} points hit the step cap{cap}; stopped by {others or 'nothing yet'}{late}"
