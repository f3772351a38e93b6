"""Evaluate a finished (or interrupted) run folder: ``vaelab evaluate DIR``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from vaelab.config import load_saved_config
from vaelab.training.runfolder import RunFolder

if TYPE_CHECKING:
    from vaelab.training.trainer import Trainer


def run_checkpoint(run_dir: str | Path, checkpoint: str = "best") -> tuple[RunFolder, Path]:
    """The run folder and the path of its ``best`` or ``last`` checkpoint; errors say which file is missing."""
    folder = RunFolder(run_dir)
    if not folder.config.is_file():
        raise FileNotFoundError(f"{folder.root} is not a run folder (no config.yaml)")
    ckpt = folder.best if checkpoint == "best" else folder.last
    if not ckpt.is_file():
        raise FileNotFoundError(f"{ckpt} does not exist (the run has not finished an epoch yet?)")
    return folder, ckpt


def load_trainer(run_dir: str | Path, checkpoint: str = "best", overrides: list[str] | None = None) -> Trainer:
    """A trainer for evaluation only: the run's saved config (with ``overrides``, whose keys the caller checked)
    and data set, the checkpoint's weights loaded. A saved device that this machine lacks (a run trained on a GPU)
    is replaced by ``auto`` unless ``train.device`` is overridden."""
    from vaelab.checks import device_available
    from vaelab.training.trainer import Trainer

    folder, ckpt = run_checkpoint(run_dir, checkpoint)
    cfg = load_saved_config(folder.config, overrides)
    cfg.train.progress = False
    if not any(o.startswith("train.device=") for o in overrides or []) and not device_available(cfg.train.device):
        cfg.train.device = "auto"
    trainer = Trainer(cfg, folder.root, resume=False, _evaluation_only=True)
    trainer._load(ckpt, weights_only=True)
    return trainer


def evaluate_run(
    run_dir: str | Path,
    *,
    split: str = "test",
    iw_samples: int | None = None,
    checkpoint: str = "best",
    overrides: list[str] | None = None,
) -> dict[str, Any]:
    """Load the run's config and checkpoint, compute the split's metrics (IW-NLL with K samples, ELBO, rate,
    distortion, MI with its pool, AU, KL per dimension), write DIR/eval.json and return the metrics. ``overrides``
    (``key=value``; e.g. ``data.eval_size=1000``, ``eval.mi_pool=all``) change the evaluation, not the model; they
    are recorded in eval.json."""
    trainer = load_trainer(run_dir, checkpoint, overrides)
    k = trainer.cfg.eval.iw_samples if iw_samples is None else iw_samples
    result = {
        "split": split,
        "checkpoint": checkpoint,
        **({"overrides": list(overrides)} if overrides else {}),
        **trainer.evaluate(split, iw_samples=k, seed_offset=2 * 10**6, extras=True),
    }
    trainer.folder.write_json("eval.json", result)
    return result
