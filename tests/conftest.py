"""Shared fixtures: a tiny run config on synthetic data that trains in about a second."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]

TINY = {
    "name": "tiny",
    "seed": 3,
    "data": {"name": "synthetic_blobs", "num_examples": 256, "image_shape": [1, 6, 6], "eval_size": 64},
    "model": {"type": "mlp", "latent_dim": 4, "hidden": [32]},
    "objective": {"beta": {"type": "linear", "start": 0.1, "value": 1.0, "warmup_steps": 10}},
    "train": {"batch_size": 32, "epochs": 3, "lr": 3e-3, "progress": False, "checkpoint_every_steps": 4},
    "eval": {"batch_size": 64, "iw_samples": 20, "iw_chunk": 8},
}


@pytest.fixture
def tiny_config(tmp_path: Path):
    """Write the tiny config (optionally updated) to a YAML file and return its path."""

    def make(**sections) -> Path:
        data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in TINY.items()}
        for k, v in sections.items():
            if isinstance(v, dict):
                data[k] = {**data.get(k, {}), **v}
            else:
                data[k] = v
        p = tmp_path / "tiny.yaml"
        p.write_text(yaml.safe_dump(data))
        return p

    return make


@pytest.fixture
def cli_env() -> dict[str, str]:
    """Environment for running `python -m vaelab` in a subprocess (no GPU, 1 thread per process)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    env["CUDA_VISIBLE_DEVICES"] = ""
    return env


PYTHON = sys.executable
