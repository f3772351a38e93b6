"""Shared fixtures: a tiny run config on synthetic data that trains in about a second, the environment of
`python -m vaelab` subprocesses, a tiny text corpus with a text-VAE run config, and a helper that crashes a
trainer at a chosen step."""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


class Crash(RuntimeError):
    """The simulated crash of :func:`crash_at_step`."""


def crash_at_step(trainer, step: int, exc: type[BaseException] = Crash) -> None:
    """Run ``trainer.fit()`` and raise ``exc`` from inside its training step number ``step`` (0-based), as a
    crash in the middle of an epoch would; asserts that the crash propagated out of ``fit``."""
    real = trainer.strategy.train_step

    def train_step(ctx, x, i):
        if i == step:
            raise exc
        return real(ctx, x, i)

    trainer.strategy.train_step = train_step
    with pytest.raises(exc):
        trainer.fit()


TINY = {
    "name": "tiny",
    "seed": 3,
    "data": {"name": "synthetic_blobs", "num_examples": 256, "image_shape": [1, 6, 6], "eval_size": 64},
    "model": {"type": "mlp", "latent_dim": 4, "hidden": [32]},
    # a warm-up of one step (beta 0.1 at step 0, then 1.0): it must reach its value within the shortest tiny run
    # (train.max_steps=2), or the trainer refuses it (objectives.schedules.check_schedule_fits)
    "objective": {"beta": {"type": "linear", "start": 0.1, "value": 1.0, "warmup_steps": 1}},
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


@pytest.fixture(scope="session")
def cli_env() -> dict[str, str]:
    """Environment for running `python -m vaelab` in a subprocess (no GPU, 1 thread per process)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    env["CUDA_VISIBLE_DEVICES"] = ""
    return env


PYTHON = sys.executable


# ------------------------------------------------------------------------------------------------------------
# a tiny text corpus and a text-VAE run config on it (tests/text, tests/report)

SUBJECTS = ["the cat", "a dog", "the old man", "my sister", "the bank"]
VERBS = ["sees", "likes", "sold", "watched", "wants"]
OBJECTS = ["the ball", "a house", "the stock", "some bread", "the red car", "it"]


def tiny_sentences(n: int, seed: int) -> list[str]:
    """n sentences of 3..8 words from a small grammar (deterministic in seed)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        s = f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}"
        if rng.random() < 0.4:
            s += " today"
        out.append(s)
    return out


def write_corpus(folder: Path, n_train: int = 160, n_eval: int = 40) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, n, seed in (("train.txt", n_train, 0), ("valid.txt", n_eval, 1), ("test.txt", n_eval, 2)):
        (folder / name).write_text("\n".join(tiny_sentences(n, seed)) + "\n")
    return folder


@pytest.fixture
def corpus_dir(tmp_path: Path) -> Path:
    """A folder with train.txt (160 sentences), valid.txt and test.txt (40 each)."""
    return write_corpus(tmp_path / "corpus")


TINY_TEXT_RUN = {
    "name": "tiny_text",
    "seed": 5,
    "model": {
        "type": "lstm_vae",
        "latent_dim": 4,
        "emb_dim": 16,
        "hidden_dim": 32,
        "dropout_in": 0.2,
        "dropout_out": 0.2,
        "word_dropout": 0.1,
    },
    "train": {
        "optimizer": "sgd",
        "lr": 1.0,
        "grad_clip": 5.0,
        "batch_size": 16,
        "epochs": 2,
        "progress": False,
        "checkpoint_every_steps": 4,
    },
    "eval": {"batch_size": 20, "iw_samples": 5, "iw_chunk": 3, "mi_pool": "all"},
}


@pytest.fixture
def text_run_config(tmp_path: Path, corpus_dir: Path):
    """Write a tiny text-VAE run config on the tiny corpus (sections updated by keyword) and return its path."""

    def make(**sections) -> Path:
        data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in TINY_TEXT_RUN.items()}
        data["data"] = {"name": "text", "path": str(corpus_dir)}
        for k, v in sections.items():
            data[k] = {**data.get(k, {}), **v} if isinstance(v, dict) else v
        p = tmp_path / "tiny_text.yaml"
        p.write_text(yaml.safe_dump(data))
        return p

    return make


@pytest.fixture
def one_thread():
    """torch on one thread for the test (the machine's other core runs other work), restored after it."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
