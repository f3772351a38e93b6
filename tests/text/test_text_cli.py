"""End to end on a tiny corpus written by the test: vaelab train -> evaluate / sample / reconstruct / interpolate,
exact resume of a text run, and a PTB smoke run (marked data)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from conftest import crash_at_step
from vaelab.checkpoint import load_checkpoint
from vaelab.cli import main
from vaelab.config import load_config
from vaelab.training.trainer import Trainer

from .conftest import OBJECTS, SUBJECTS, TINY_TEXT_RUN, VERBS

TINY_TRAIN = TINY_TEXT_RUN["train"]

WORDS = {w for phrase in SUBJECTS + VERBS + OBJECTS for w in phrase.split()} | {"today", "<unk>"}


def _lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.strip()]


def test_train_then_generate(text_run_config, corpus_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", str(text_run_config()), "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["iw_samples"] == 5 and summary["n"] == 40
    # per-token perplexities with the right token count (words + </s>)
    test_text = (corpus_dir / "test.txt").read_text()
    n_tokens = sum(len(s.split()) + 1 for s in _lines(test_text))
    nll_total = summary["nll_iw"] * summary["n"]
    assert summary["ppl_iw"] == pytest.approx(2.718281828459045 ** (nll_total / n_tokens), rel=1e-6)
    assert summary["ppl_elbo"] >= summary["ppl_iw"] * 0.99
    capsys.readouterr()

    assert main(["evaluate", str(out), "--iw-samples", "3", "--split", "valid"]) == 0
    ev = json.loads((out / "eval.json").read_text())
    assert ev["iw_samples"] == 3 and "ppl_iw" in ev and ev["n"] == 40
    capsys.readouterr()

    assert main(["sample", str(out), "-n", "4", "--seed", "1"]) == 0
    samples = _lines(capsys.readouterr().out)
    assert len(samples) == 4 and all(set(s.split()) <= WORDS for s in samples)
    assert main(["sample", str(out), "-n", "4", "--seed", "1"]) == 0
    assert _lines(capsys.readouterr().out) == samples  # seeded
    assert main(["sample", str(out), "-n", "2", "--greedy", "--max-length", "5"]) == 0
    greedy = _lines(capsys.readouterr().out)
    assert len(greedy) == 2 and all(len(s.split()) <= 5 for s in greedy)

    assert main(["reconstruct", str(out), "the cat sees the ball", "a zebra likes it"]) == 0
    rec = capsys.readouterr().out.splitlines()
    assert rec[0] == "> the cat sees the ball" and rec[2] == "> a <unk> likes it" and len(rec) == 4
    f = tmp_path / "sents.txt"
    f.write_text("the bank sold the stock\n\nmy sister wants some bread today\n")
    assert main(["reconstruct", str(out), "--file", str(f), "--posterior-sample", "--samples", "3", "--sample"]) == 0
    rec = capsys.readouterr().out.splitlines()
    assert len(rec) == 2 * (1 + 3) and rec[4] == "> my sister wants some bread today"

    assert main(["interpolate", str(out), "the cat sees the ball", "my sister wants some bread", "--steps", "4"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [ln.split()[0] for ln in lines] == ["0.00", "0.33", "0.67", "1.00"]

    # errors a user can act on: exit 2, one line
    assert main(["reconstruct", str(out)]) == 2
    assert main(["sample", str(tmp_path / "nowhere")]) == 2
    assert "no sentences" in capsys.readouterr().err


def test_lm_run_has_zero_rate_and_exact_iw(text_run_config, tmp_path):
    cfg = load_config(text_run_config(model={"type": "lstm_lm"}), ["train.epochs=1"])
    s = Trainer(cfg, tmp_path / "lm").fit()
    assert s["rate"] == 0.0 and s["au"] == 0 and abs(s["mi"]) < 1e-9
    assert s["nll_iw"] == pytest.approx(s["nll_elbo"], abs=1e-4) and s["ppl_iw"] == pytest.approx(s["ppl_elbo"])
    assert main(["sample", str(tmp_path / "lm"), "-n", "2"]) == 0


def test_text_resume_after_a_crash_matches_an_uninterrupted_run(text_run_config, tmp_path):
    """Length-bucketed batches, word-dropout noise and dropout replay exactly from a mid-epoch checkpoint."""
    cfg = load_config(text_run_config(), ["train.epochs=2"])
    full = Trainer(cfg, tmp_path / "full").fit()
    # mid-epoch 2 (10 batches per epoch); the last checkpoint is at step 12
    crash_at_step(Trainer(cfg, tmp_path / "crash"), 14)
    assert load_checkpoint(tmp_path / "crash" / "checkpoints" / "last.pt")["trainer"]["step"] == 12
    assert main(["resume", str(tmp_path / "crash")]) == 0
    resumed = json.loads((tmp_path / "crash" / "summary.json").read_text())
    for k in ("elbo", "rate", "distortion", "nll_iw", "mi", "au", "ppl_iw"):
        assert resumed[k] == full[k], k


@pytest.mark.data
def test_ptb_smoke(tmp_path):
    from vaelab.data import DataConfig, resolve_data_root

    root, _ = resolve_data_root(DataConfig(name="ptb"))
    if not (root / "ptb" / "ptb.train.txt").is_file():
        pytest.skip(f"{root / 'ptb'} is absent")
    repo = Path(__file__).resolve().parents[2]
    cfg = load_config(
        repo / "configs" / "ptb_vae_small.yaml",
        [
            "data.train_size=64",
            "data.eval_size=16",
            "model.emb_dim=16",
            "model.hidden_dim=16",
            "train.max_steps=2",
            "train.progress=false",
            "eval.iw_samples=2",
        ],
    )
    s = Trainer(cfg, tmp_path / "ptb").fit()
    assert s["status"] == "completed" and s["n"] == 16 and s["ppl_iw"] > 1.0
    meta = load_checkpoint(tmp_path / "ptb" / "checkpoints" / "best.pt")["model"]["decoder._extra_state"]
    assert len(meta["vocab"]) == 10002


@pytest.mark.slow
def test_two_process_gloo_matches_one_process(text_run_config, tmp_path, cli_env):
    """Data parallelism on text: shards of length-bucketed batches, word dropout and dropout masks (per-sentence
    seeds) make a 2-process run reproduce the 1-process run."""
    import os
    import subprocess
    import sys

    import torch

    cfg = text_run_config(train={**TINY_TRAIN, "epochs": 2})
    one, two = tmp_path / "one", tmp_path / "two"
    r1 = subprocess.run(
        [sys.executable, "-m", "vaelab", "train", str(cfg), "--out", str(one)],
        env=cli_env,
        capture_output=True,
        text=True,
    )
    assert r1.returncode == 0, r1.stderr
    port = str(29500 + (os.getpid() + 7) % 1000)
    r2 = subprocess.run(
        [
            *(sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1"),
            *("--master_port", port, "-m", "vaelab", "train", str(cfg), "--out", str(two)),
        ],
        env={**cli_env, "MASTER_ADDR": "127.0.0.1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r2.returncode == 0, r2.stderr[-3000:]
    s1 = json.loads((one / "summary.json").read_text())
    s2 = json.loads((two / "summary.json").read_text())
    assert s2["world_size"] == 2 and s1["world_size"] == 1
    for k in ("elbo", "rate", "distortion", "nll_iw", "mi", "ppl_iw"):
        assert s2[k] == pytest.approx(s1[k], rel=1e-4, abs=1e-4), k
    p1 = load_checkpoint(one / "checkpoints" / "last.pt")["model"]
    p2 = load_checkpoint(two / "checkpoints" / "last.pt")["model"]
    for k in p1:
        if isinstance(p1[k], torch.Tensor):
            assert torch.allclose(p1[k], p2[k], atol=1e-5), k


@pytest.mark.parametrize("model_type", ["lstm_vae", "lstm_lm"])
def test_aggressive_strategy_runs_on_text(text_run_config, tmp_path, model_type):
    """He et al. (2019)'s aggressive inference-network training on text batches (text rule: first MI decrease);
    for the LM the encoder optimiser has only the empty dummy parameter."""
    cfg = load_config(
        text_run_config(model={"type": model_type}),
        [
            "train.epochs=1",
            "train.strategy=aggressive",
            "train.strategy_options={window: 2, max_inner_steps: 4, rule: first_decrease}",
        ],
    )
    s = Trainer(cfg, tmp_path / model_type).fit()
    assert s["status"] == "completed" and math.isfinite(s["nll_iw"])
