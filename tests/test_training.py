"""The trainer and the CLI contract: run folder, resume after a kill, NaN handling, data parallelism."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml

from conftest import crash_at_step
from vaelab.checkpoint import load_checkpoint
from vaelab.cli import main
from vaelab.config import ConfigError, load_config
from vaelab.training.trainer import Trainer, TrainingFailed

METRIC_KEYS = {
    "epoch",
    "step",
    "split",
    "elbo",
    "rate",
    "distortion",
    "mi",
    "mi_pool",
    "au",
    "beta",
    "wall_time",
}


def _summary(d):
    return json.loads((d / "summary.json").read_text())


def test_train_cli_writes_the_run_folder(tiny_config, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", str(tiny_config()), "model.latent_dim=3", "--out", str(out)]) == 0
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["model"]["latent_dim"] == 3 and cfg["seed"] == 3
    assert {"torch", "python", "platform", "vaelab"} <= set(cfg["_meta"])
    recs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["split"] for r in recs] == ["train", "valid"] * 3
    for r in recs:
        if r["split"] == "valid":
            assert set(r) >= METRIC_KEYS, METRIC_KEYS - set(r)
        else:  # running means of the training steps: the loss terms, no MI/AU
            assert r["source"] == "running_mean" and {"elbo", "rate", "distortion", "beta", "loss"} <= set(r)
    assert recs[-1]["epoch"] == 3 and recs[-1]["mi_pool"] == 64
    s = _summary(out)
    assert s["status"] == "completed" and s["iw_samples"] == 20
    assert s["nll_iw"] <= -s["elbo"] + 0.5  # IW bound is tighter than the ELBO (up to MC noise)
    assert (out / "checkpoints" / "best.pt").exists() and (out / "checkpoints" / "last.pt").exists()
    printed = capsys.readouterr().out
    assert "run folder" in printed and "IW-NLL" in printed

    # evaluate: table + eval.json, with another K
    assert main(["evaluate", str(out), "--iw-samples", "7", "--split", "valid"]) == 0
    ev = json.loads((out / "eval.json").read_text())
    assert ev["iw_samples"] == 7 and ev["split"] == "valid"

    # a second train into the same folder is refused rather than overwriting it
    assert main(["train", str(tiny_config()), "--out", str(out)]) == 2


def test_bad_override_is_a_clear_error(tiny_config, tmp_path, capsys):
    assert main(["train", str(tiny_config()), "train.optimiser=adam", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "train.optimiser" in err and "optimizer" in err
    assert not (tmp_path / "r").exists()


def test_resume_after_a_crash_matches_an_uninterrupted_run(tiny_config, tmp_path):
    # a steps.jsonl line every 5 steps: the line at step 15 averages steps 11-15, across the resume from step 12
    cfg = load_config(tiny_config(train={**_tiny_train(), "log_every_steps": 5}))
    full = Trainer(cfg, tmp_path / "full").fit()

    crash_at_step(Trainer(cfg, tmp_path / "crash"), 13)  # mid-epoch 2; the last checkpoint is at step 12
    assert load_checkpoint(tmp_path / "crash" / "checkpoints" / "last.pt")["trainer"]["step"] == 12

    assert main(["resume", str(tmp_path / "crash")]) == 0
    resumed = _summary(tmp_path / "crash")
    for k in ("elbo", "rate", "distortion", "nll_iw", "mi", "au"):
        assert resumed[k] == full[k], k
    a = [json.loads(x) for x in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    b = [json.loads(x) for x in (tmp_path / "crash" / "metrics.jsonl").read_text().splitlines()]
    strip = lambda rs: [{k: v for k, v in r.items() if k != "wall_time"} for r in rs]  # noqa: E731
    assert strip(a) == strip(b)
    # steps.jsonl too, the line that spans the resume included (its window of steps is in the checkpoint);
    # wall_time is the only wall-clock field
    a = [json.loads(x) for x in (tmp_path / "full" / "steps.jsonl").read_text().splitlines()]
    b = [json.loads(x) for x in (tmp_path / "crash" / "steps.jsonl").read_text().splitlines()]
    assert [r["step"] for r in a] == [5, 10, 15, 20] and strip(a) == strip(b)
    wall_clock = ("train_time", "eval_time")  # summary.json's wall-clock fields
    drop = lambda d: {k: v for k, v in d.items() if k not in wall_clock}  # noqa: E731
    assert drop(_summary(tmp_path / "crash")) == drop(_summary(tmp_path / "full"))


def test_resume_after_sigkill(tiny_config, tmp_path, cli_env):
    cfg = tiny_config(train={**_tiny_train(), "epochs": 40, "checkpoint_every_steps": 2})
    out = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "vaelab", "train", str(cfg), "--out", str(out)],
        env=cli_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    last = out / "checkpoints" / "last.pt"
    deadline = time.time() + 60
    while time.time() < deadline and not (last.exists() and (out / "metrics.jsonl").exists()):
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert last.exists(), "no checkpoint was written before the kill"
    step_at_kill = load_checkpoint(last)["trainer"]["step"]
    assert not (out / "summary.json").exists()
    r = subprocess.run(
        [sys.executable, "-m", "vaelab", "resume", str(out)], env=cli_env, capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    s = _summary(out)
    assert s["status"] == "completed" and s["steps"] >= step_at_kill


def _tiny_train():
    from conftest import TINY

    return dict(TINY["train"])


def test_non_finite_loss_stops_cleanly_and_keeps_last_good_checkpoint(tiny_config, tmp_path):
    cfg = load_config(tiny_config())
    tr = Trainer(cfg, tmp_path / "nan")
    real = tr.run.objective.forward

    def poisoned(model, x, step, eps=None):
        out = real(model, x, step, eps)
        if step == 10:
            out.stats["rate"] = torch.tensor(float("nan"))
        return out

    tr.run.objective.forward = poisoned
    with pytest.raises(TrainingFailed, match=r"'rate' is nan at step 10.*last good checkpoint.*step 8"):
        tr.fit()
    s = _summary(tmp_path / "nan")
    assert s["status"] == "failed" and s["term"] == "rate"
    assert load_checkpoint(tmp_path / "nan" / "checkpoints" / "last.pt")["trainer"]["step"] == 8


def test_early_stopping_and_lr_decay(tiny_config, tmp_path):
    # lr so small nothing improves after the first epoch -> plateau logic fires.
    cfg = load_config(
        tiny_config(),
        [
            "train.lr=1e-9",
            "train.epochs=6",
            "train.lr_decay.enabled=true",
            "train.lr_decay.patience=1",
            "train.lr_decay.max_decays=1",
            "train.lr_decay.factor=0.5",
        ],
    )
    s = Trainer(cfg, tmp_path / "p").fit()
    assert s["stop_reason"].startswith("lr decayed")
    recs = [json.loads(x) for x in (tmp_path / "p" / "metrics.jsonl").read_text().splitlines()]
    lrs = [r["lr_model"] for r in recs if r["split"] == "valid"]
    assert lrs[0] == pytest.approx(1e-9) and lrs[-1] == pytest.approx(5e-10)

    cfg = load_config(tiny_config(), ["train.lr=1e-9", "train.epochs=6", "train.early_stopping_patience=2"])
    s = Trainer(cfg, tmp_path / "e").fit()
    assert s["stop_reason"].startswith("early stopping") and s["epochs"] < 6


def test_training_reduces_the_loss(tiny_config, tmp_path):
    cfg = load_config(tiny_config(), ["train.epochs=6"])
    Trainer(cfg, tmp_path / "r").fit()
    recs = [json.loads(x) for x in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    valid = [r["elbo"] for r in recs if r["split"] == "valid"]
    assert valid[-1] > valid[0] + 1.0


@pytest.mark.parametrize(
    "strategy",
    [
        {"strategy": "joint"},
        {"strategy": "aggressive", "strategy_options": {"window": 2, "max_inner_steps": 4}},
        {
            "strategy": "aggressive",
            "strategy_options": {"window": 2, "max_inner_steps": 4, "check_every_steps": 2, "patience": 2},
        },
    ],
    ids=["joint", "aggressive", "aggressive_step_checks"],
)
def test_two_process_gloo_matches_one_process(tiny_config, tmp_path, cli_env, strategy):
    cfg = tiny_config(train={**_tiny_train(), "epochs": 2, **strategy})
    one, two = tmp_path / "one", tmp_path / "two"
    r1 = subprocess.run(
        [sys.executable, "-m", "vaelab", "train", str(cfg), "--out", str(one)],
        env=cli_env,
        capture_output=True,
        text=True,
    )
    assert r1.returncode == 0, r1.stderr
    env = {**cli_env, "MASTER_ADDR": "127.0.0.1"}
    r2 = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_addr",
            "127.0.0.1",
            "--master_port",
            str(29500 + os.getpid() % 1000),
            "-m",
            "vaelab",
            "train",
            str(cfg),
            "--out",
            str(two),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r2.returncode == 0, r2.stderr[-3000:]
    s1, s2 = _summary(one), _summary(two)
    assert s2["world_size"] == 2 and s1["world_size"] == 1
    for k in ("elbo", "rate", "distortion", "nll_iw", "mi"):
        assert s2[k] == pytest.approx(s1[k], rel=1e-4, abs=1e-4), k
    assert s2["au"] == s1["au"] and s2["n"] == s1["n"]
    m1 = [json.loads(x) for x in (one / "metrics.jsonl").read_text().splitlines()]
    m2 = [json.loads(x) for x in (two / "metrics.jsonl").read_text().splitlines()]
    assert len(m1) == len(m2)
    for a, b in zip(m1, m2, strict=True):
        assert b["elbo"] == pytest.approx(a["elbo"], rel=1e-4, abs=1e-4)
    p1 = load_checkpoint(one / "checkpoints" / "last.pt")["model"]
    p2 = load_checkpoint(two / "checkpoints" / "last.pt")["model"]
    for k in p1:
        assert torch.allclose(p1[k], p2[k], atol=1e-5), k


def test_extra_metrics_hook(tiny_config, tmp_path):
    from vaelab.metrics.extras import EXTRA_METRICS

    seen = {}

    def label_mean(ctx):
        seen["split"] = ctx.split
        n_train = sum(len(b.x) for b in ctx.batches("train"))
        return {"mu_norm": float(ctx.collection.mu.norm(dim=1).mean()), "train_seen": n_train}

    if "test_label_mean" not in EXTRA_METRICS:
        EXTRA_METRICS.register("test_label_mean")(label_mean)
    cfg = load_config(tiny_config(), ["eval.extra_metrics=[test_label_mean]", "train.epochs=1"])
    s = Trainer(cfg, tmp_path / "x").fit()
    assert seen["split"] == "test" and s["train_seen"] == 256 and s["mu_norm"] > 0
    assert main(["evaluate", str(tmp_path / "x"), "--split", "valid"]) == 0
    assert json.loads((tmp_path / "x" / "eval.json").read_text())["train_seen"] == 256 and seen["split"] == "valid"
    # an unknown name is refused when the config is read, before any work (issue 16)
    with pytest.raises(ConfigError, match=r"eval.extra_metrics\[0\] must be one of .*got 'nope'"):
        load_config(tiny_config(), ["eval.extra_metrics=[nope]", "train.epochs=1"])
    assert not (tmp_path / "y").exists()


def test_model_selection_follows_train_selection(tiny_config, tmp_path):
    # beta = 0.05: the ELBO (beta = 1) peaks early, while the beta-VAE objective D + beta R keeps improving; the best
    # model is the epoch that minimises the chosen validation loss, computed here from metrics.jsonl.
    loss = {"elbo": lambda r: -r["elbo"], "beta_elbo": lambda r: r["distortion"] + 0.05 * r["rate"]}
    best = {}
    for selection, key in loss.items():
        overrides = [
            "train.epochs=6",
            "objective.beta.type=constant",
            "objective.beta.value=0.05",
            f"train.selection={selection}",
            "train.lr=3e-3",
        ]
        s = Trainer(load_config(tiny_config(), overrides), tmp_path / selection).fit()
        recs = [json.loads(x) for x in (tmp_path / selection / "metrics.jsonl").read_text().splitlines()]
        valid = [r for r in recs if r["split"] == "valid"]
        best[selection] = s["best_epoch"]
        assert s["best_epoch"] == min(valid, key=key)["epoch"]
    assert best["elbo"] != best["beta_elbo"]  # the case tells the two rules apart


def test_beta_elbo_selection_needs_a_constant_beta(tiny_config):
    bad = ["train.selection=beta_elbo", "objective.beta.type=linear", "objective.beta.warmup_steps=10"]
    with pytest.raises(ConfigError, match=r"train.selection=beta_elbo .* objective.beta.type=linear"):
        load_config(tiny_config(), bad)
    with pytest.raises(ConfigError, match=r"train\.selection"):
        load_config(tiny_config(), ["train.selection=nll"])
