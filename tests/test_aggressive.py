"""Aggressive inference-network training (He et al., ICLR 2019): inner loop, stopping rules, composition."""

from __future__ import annotations

import json

import pytest
import torch

from vaelab.config import load_config
from vaelab.models import ModelConfig, build_model
from vaelab.objectives import Objective, ObjectiveOutput
from vaelab.training.aggressive import AggressiveStrategy
from vaelab.training.strategies import StepContext
from vaelab.training.trainer import Trainer, make_optimizer


class ScriptedObjective(Objective):
    """A loss whose value follows a script (step by step) but has real gradients w.r.t. the model."""

    def __init__(self, script, grad_weight: float = 0.0):
        torch.nn.Module.__init__(self)
        self.script = list(script)
        self.calls = 0
        self.grad_weight = grad_weight

    def forward(self, model, x, step, eps=None):
        q = model.encode(x)
        dec = sum(p.sum() for p in model.decoder_parameters())
        value = self.script[min(self.calls, len(self.script) - 1)]
        self.calls += 1
        loss = (q.mu.sum() + dec) * 0 + value + self.grad_weight * ((q.mu**2).mean() + dec**2)
        return ObjectiveOutput(loss=loss, stats={"loss": loss.detach(), "distortion": loss.detach()}, forward=None)


def _ctx(objective, strategy):
    model = build_model(ModelConfig(type="mlp", latent_dim=2, hidden=[8]), {"image_shape": (1, 2, 2)})
    from vaelab.config import TrainConfig

    opts = {k: make_optimizer(TrainConfig(lr=0.01), p) for k, p in strategy.param_groups(model).items()}
    x = torch.ones(4, 1, 2, 2)
    ctx = StepContext.single_process(
        model, objective, opts, grad_clip=5.0, random_batch=lambda: torch.zeros(4, 1, 2, 2)
    )
    return ctx, model, x


def test_inner_loop_stops_when_the_window_mean_stops_decreasing():
    # losses 100, 99, ..., 80, then flat 80: windows of 5 have means 98, 93, 88, 83, 80, 80 -> stop after 30 steps
    script = [max(100.0 - i, 80.0) for i in range(200)]
    strat = AggressiveStrategy(window=5, max_inner_steps=100)
    ctx, _, x = _ctx(ScriptedObjective(script), strat)
    assert strat.inner_loop(ctx, x, step=0) == 30


def test_inner_loop_stops_at_the_cap_while_still_improving():
    strat = AggressiveStrategy(window=10, max_inner_steps=35)
    ctx, _, x = _ctx(ScriptedObjective([1000.0 - i for i in range(1000)]), strat)
    assert strat.inner_loop(ctx, x, step=0) == 35


def test_inner_steps_touch_only_the_encoder_and_the_outer_step_only_the_decoder():
    strat = AggressiveStrategy(window=2, max_inner_steps=4)
    ctx, model, x = _ctx(ScriptedObjective([10.0 - i for i in range(100)], grad_weight=1e-3), strat)
    enc0 = [p.detach().clone() for p in model.encoder_parameters()]
    dec0 = [p.detach().clone() for p in model.decoder_parameters()]
    strat.inner_loop(ctx, x, 0)
    assert all(torch.equal(a, b) for a, b in zip(dec0, model.decoder_parameters(), strict=True))
    assert any(not torch.equal(a, b) for a, b in zip(enc0, model.encoder_parameters(), strict=True))
    enc1 = [p.detach().clone() for p in model.encoder_parameters()]
    stats = strat.train_step(ctx, x, 1)
    assert stats["inner_steps"] >= 2
    # train_step = another inner loop + one decoder step: decoder moved
    assert any(not torch.equal(a, b) for a, b in zip(dec0, model.decoder_parameters(), strict=True))
    assert enc1  # encoder also moved during the second inner loop (not asserted: that is the inner loop test)


def test_switch_off_first_decrease_rule():
    s = AggressiveStrategy(rule="first_decrease")
    for epoch, mi in enumerate([1.0, 2.0, 2.5]):
        s.on_validation(epoch, {"mi": mi})
    assert s.aggressive
    s.on_validation(3, {"mi": 2.4})
    assert not s.aggressive and s.stopped_epoch == 4
    s.on_validation(4, {"mi": 9.0})  # never switches back on
    assert not s.aggressive


def test_switch_off_patience_rule():
    s = AggressiveStrategy(rule="patience", patience=3)
    mis = [1.0, 2.0, 1.9, 2.1, 2.0, 2.05, 1.5]
    for epoch, mi in enumerate(mis):
        s.on_validation(epoch, {"mi": mi})
        if epoch < 6:
            assert s.aggressive, epoch
    assert not s.aggressive and s.stopped_epoch == 7


def test_bad_options_name_the_key():
    with pytest.raises(ValueError, match="rule"):
        AggressiveStrategy(rule="sometimes")
    with pytest.raises(ValueError, match="unknown option"):
        AggressiveStrategy(windw=3)


@pytest.mark.parametrize(
    "objective",
    [
        [],
        ["objective.beta.type=constant"],
        ["objective.regulariser=free_bits_batch", "objective.free_bits=0.1"],
        ["objective.regulariser=free_bits_fine", "objective.free_bits=0.5"],
        ["objective.beta={type: cyclical, value: 1.0}"],
    ],
    ids=["annealed", "plain", "fb_batch", "fb_fine", "cyclical"],
)
def test_aggressive_composes_with_objectives(tiny_config, tmp_path, objective):
    cfg = load_config(
        tiny_config(),
        [
            "train.strategy=aggressive",
            "train.strategy_options={window: 3, max_inner_steps: 9}",
            "train.epochs=2",
            *objective,
        ],
    )
    summary = Trainer(cfg, tmp_path / "run").fit()
    assert summary["status"] == "completed"
    recs = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    valid = [r for r in recs if r["split"] == "valid"]
    assert all(3 <= r["inner_steps_per_step"] <= 9 for r in valid)
    assert valid[-1]["grad_evals_per_step"] > 1.0
    assert "lr_encoder" in valid[0] and "lr_decoder" in valid[0]


def test_aggressive_resume_after_crash_is_exact(tiny_config, tmp_path):
    cfg = load_config(
        tiny_config(), ["train.strategy=aggressive", "train.strategy_options={window: 2, max_inner_steps: 6}"]
    )
    full = Trainer(cfg, tmp_path / "full").fit()
    crashed = Trainer(cfg, tmp_path / "crash")
    real = crashed.strategy.train_step

    def step(ctx, x, i):
        if i == 13:
            raise KeyboardInterrupt
        return real(ctx, x, i)

    crashed.strategy.train_step = step
    with pytest.raises(KeyboardInterrupt):
        crashed.fit()
    resumed = Trainer(cfg, tmp_path / "crash", resume=True).fit()
    for k in ("elbo", "rate", "distortion", "nll_iw", "mi"):
        assert resumed[k] == full[k], k


@pytest.mark.parametrize("strategy", ["aggressive", "joint"])
def test_freezing_the_parameters_a_step_does_not_update_changes_no_number(tiny_config, tmp_path, monkeypatch, strategy):
    """gradient_step freezes the other optimisers' parameters (the speed-up of the inner loop); the trained
    parameters equal those of the same run with every gradient computed."""
    from vaelab.training import strategies
    from vaelab.training.checkpoint import load_checkpoint

    cfg = load_config(
        tiny_config(),
        [f"train.strategy={strategy}", "train.strategy_options={window: 2, max_inner_steps: 6}", "train.epochs=1"]
        if strategy == "aggressive"
        else ["train.epochs=1"],
    )
    Trainer(cfg, tmp_path / "frozen").fit()
    monkeypatch.setattr(strategies, "FREEZE_OTHERS", False)
    Trainer(cfg, tmp_path / "all_grads").fit()
    a = load_checkpoint(tmp_path / "frozen" / "checkpoints" / "last.pt")["model"]
    b = load_checkpoint(tmp_path / "all_grads" / "checkpoints" / "last.pt")["model"]
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)
