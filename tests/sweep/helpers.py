"""The tiny sweep shared by the sweep tests: synthetic data, points that train in well under a second."""

from __future__ import annotations

from typing import Any

BASE: dict[str, Any] = {
    "name": "tiny",
    "seed": 3,
    "data": {"name": "synthetic_blobs", "num_examples": 256, "image_shape": [1, 6, 6], "eval_size": 64},
    "model": {"type": "mlp", "latent_dim": 4, "hidden": [16]},
    "train": {"batch_size": 64, "epochs": 2, "lr": 3e-3, "progress": False},
    "eval": {"batch_size": 64, "iw_samples": 4, "iw_chunk": 4},
}


def sweep_dict(**changes: Any) -> dict[str, Any]:
    """A 2 seeds x 2 variants x 2 betas sweep (8 points) over the tiny base config; ``changes`` replace keys."""
    data: dict[str, Any] = {
        "name": "tiny",
        "base_config": BASE,
        "fixed": {"train.epochs": 2},
        "variants": [{"name": "narrow", "model.hidden": [8]}, {"name": "wide", "model.hidden": [32]}],
        "grid": {"objective.beta.value": [0.1, 1.0]},
        "seeds": [0, 1],
        "measure": {"iw_samples": 8},
    }
    data.update(changes)
    return data
