"""Evaluate a finished (or interrupted) run folder: ``vaelab evaluate DIR``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vaelab.config import load_saved_config
from vaelab.training.runfolder import RunFolder


def evaluate_run(
    run_dir: str | Path, *, split: str = "test", iw_samples: int | None = None, checkpoint: str = "best"
) -> dict[str, Any]:
    """Load the run's config and checkpoint, compute the split's metrics (IW-NLL with K samples, ELBO, rate,
    distortion, MI with its pool, AU, KL per dimension), write DIR/eval.json and return the metrics."""
    from vaelab.training.trainer import Trainer

    folder = RunFolder(run_dir)
    if not folder.config.is_file():
        raise FileNotFoundError(f"{folder.root} is not a run folder (no config.yaml)")
    ckpt = folder.best if checkpoint == "best" else folder.last
    if not ckpt.is_file():
        raise FileNotFoundError(f"{ckpt} does not exist (the run has not finished an epoch yet?)")
    cfg = load_saved_config(folder.config)
    cfg.train.progress = False
    trainer = Trainer(cfg, folder.root, resume=False, _evaluation_only=True)
    trainer._load(ckpt, weights_only=True)
    k = cfg.eval.iw_samples if iw_samples is None else iw_samples
    result = {
        "split": split,
        "checkpoint": checkpoint,
        **trainer.evaluate(split, iw_samples=k, seed_offset=2 * 10**6, extras=True),
    }
    folder.write_json("eval.json", result)
    return result
