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


def load_trainer(run_dir: str | Path, checkpoint: str = "best") -> Trainer:
    """A trainer for evaluation only: the run's saved config and data set, the checkpoint's weights loaded."""
    from vaelab.training.trainer import Trainer

    folder, ckpt = run_checkpoint(run_dir, checkpoint)
    cfg = load_saved_config(folder.config)
    cfg.train.progress = False
    trainer = Trainer(cfg, folder.root, resume=False, _evaluation_only=True)
    trainer._load(ckpt, weights_only=True)
    return trainer


def evaluate_run(
    run_dir: str | Path, *, split: str = "test", iw_samples: int | None = None, checkpoint: str = "best"
) -> dict[str, Any]:
    """Load the run's config and checkpoint, compute the split's metrics (IW-NLL with K samples, ELBO, rate,
    distortion, MI with its pool, AU, KL per dimension), write DIR/eval.json and return the metrics."""
    trainer = load_trainer(run_dir, checkpoint)
    k = trainer.cfg.eval.iw_samples if iw_samples is None else iw_samples
    result = {
        "split": split,
        "checkpoint": checkpoint,
        **trainer.evaluate(split, iw_samples=k, seed_offset=2 * 10**6, extras=True),
    }
    trainer.folder.write_json("eval.json", result)
    return result
