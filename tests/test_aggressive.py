"""Aggressive inference-network training (He et al., ICLR 2019): inner loop, stopping rules, composition."""

from __future__ import annotations

import itertools
import json

import pytest
import torch

from conftest import crash_at_step
from vaelab.config import load_config
from vaelab.models import ModelConfig, build_model
from vaelab.objectives import Objective, ObjectiveOutput
from vaelab.training.aggressive import AggressiveStrategy
from vaelab.training.optimizers import make_optimizer
from vaelab.training.strategies import StepContext
from vaelab.training.trainer import Trainer


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


class PerTokenObjective(ScriptedObjective):
    """Loss per example = (per-token loss) x (tokens per example), the per-token loss falling by 0.01 per call."""

    def forward(self, model, x, step, eps=None):
        q = model.encode(x)
        per_token = 5.0 - 0.01 * self.calls
        self.calls += 1
        loss = q.mu.sum() * 0 + per_token * x.num_tokens / x.shape[0]
        return ObjectiveOutput(loss=loss, stats={"loss": loss.detach(), "distortion": loss.detach()}, forward=None)


def _with_tokens(t, n):
    t.num_tokens = n  # a text batch's predicted-token count (TokenBatch.num_tokens)
    return t


def test_inner_loop_compares_per_token_losses_across_batches_of_different_lengths():
    # batches alternate long (100 tokens per example) and short (10): window means per *sentence* go up and down
    # with the mix of lengths (350, 200, 350: stop after 9 steps), while the per-token loss keeps falling
    long_x = _with_tokens(torch.ones(4, 1, 2, 2), 400)
    draws = itertools.cycle([_with_tokens(torch.zeros(4, 1, 2, 2), 40), _with_tokens(torch.ones(4, 1, 2, 2), 400)])
    strat = AggressiveStrategy(window=3, max_inner_steps=30)
    ctx, _, _ = _ctx(PerTokenObjective([0.0]), strat)
    ctx.random_batch = lambda: next(draws)
    assert strat.inner_loop(ctx, long_x, step=0) == 30


def test_clip_scope_model_clips_the_encoder_step_by_the_whole_models_gradient_norm():
    """He et al.'s code clips the norm of every gradient (decoder included) before an encoder-only step."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(type="mlp", latent_dim=2, hidden=[8]), {"image_shape": (1, 2, 2)})
    x = torch.rand(16, 1, 2, 2).bernoulli()
    from vaelab.config import TrainConfig
    from vaelab.objectives import ObjectiveConfig, build_objective

    objective = build_objective(ObjectiveConfig(), 10, 100)
    eps = torch.randn(16, 2)
    # the expected update: all gradients, one joint clip to norm 0.01, then only the encoder moves (SGD lr 1)
    ref = [p.detach().clone() for p in model.parameters()]
    model.zero_grad()
    objective(model, x, 0, eps=eps).loss.backward()
    grads = {id(p): p.grad.clone() for p in model.parameters()}
    total = torch.sqrt(sum((g**2).sum() for g in grads.values()))
    assert total > 0.01
    expected = [p.detach() - grads[id(p)] * (0.01 / (total + 1e-6)) for p in model.encoder_parameters()]
    for scope, want in (("model", expected), ("stepped", None)):
        with torch.no_grad():
            for p, r in zip(model.parameters(), ref, strict=True):
                p.copy_(r)
        strat = AggressiveStrategy(window=2, max_inner_steps=1, clip_scope=scope)
        opts = {
            k: make_optimizer(TrainConfig(optimizer="sgd", lr=1.0), p) for k, p in strat.param_groups(model).items()
        }
        ctx = StepContext.single_process(model, objective, opts, grad_clip=0.01)
        ctx.noise = lambda step, xx, sub=0: eps
        dec0 = [p.detach().clone() for p in model.decoder_parameters()]
        strat.inner_loop(ctx, x, 0)
        assert all(torch.equal(a, b) for a, b in zip(dec0, model.decoder_parameters(), strict=True))
        got = [p.detach() for p in model.encoder_parameters()]
        if want is not None:
            assert all(torch.allclose(g, w, atol=1e-6) for g, w in zip(got, want, strict=True))
        else:  # clipped by the encoder's own norm: a larger step than the joint clip allows
            assert not all(torch.allclose(g, w, atol=1e-6) for g, w in zip(got, expected, strict=True))
    with pytest.raises(ValueError, match="clip_scope"):
        AggressiveStrategy(clip_scope="all")


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
    assert s.pop_messages() == ["epoch 4: aggressive training off (first_decrease rule, validation MI 2.400)"]
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
    crash_at_step(Trainer(cfg, tmp_path / "crash"), 13, KeyboardInterrupt)
    resumed = Trainer(cfg, tmp_path / "crash", resume=True).fit()
    for k in ("elbo", "rate", "distortion", "nll_iw", "mi"):
        assert resumed[k] == full[k], k


@pytest.mark.parametrize("strategy", ["aggressive", "joint"])
def test_freezing_the_parameters_a_step_does_not_update_changes_no_number(tiny_config, tmp_path, monkeypatch, strategy):
    """gradient_step freezes the other optimisers' parameters (the speed-up of the inner loop); the trained
    parameters equal those of the same run with every gradient computed."""
    from vaelab.checkpoint import load_checkpoint
    from vaelab.training import strategies

    cfg = load_config(
        tiny_config(),
        [f"train.strategy={strategy}", "train.strategy_options={window: 2, max_inner_steps: 6}", "train.epochs=1"]
        if strategy == "aggressive"
        else ["train.epochs=1"],
    )
    Trainer(cfg, tmp_path / "frozen").fit()
    monkeypatch.setattr(strategies, "parameters_to_freeze", lambda ctx, clip_names: [])  # every gradient
    Trainer(cfg, tmp_path / "all_grads").fit()
    a = load_checkpoint(tmp_path / "frozen" / "checkpoints" / "last.pt")["model"]
    b = load_checkpoint(tmp_path / "all_grads" / "checkpoints" / "last.pt")["model"]
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


def _scripted_mi(values):
    calls = []

    def valid_mi():
        calls.append(len(calls))
        return {"mi": values[min(len(calls) - 1, len(values) - 1)], "mi_pool": 100.0, "au": 1.0}

    return valid_mi, calls


def test_step_checks_apply_the_rule_every_n_outer_steps_and_then_train_jointly():
    strat = AggressiveStrategy(window=2, max_inner_steps=4, rule="first_decrease", check_every_steps=2)
    ctx, _, x = _ctx(ScriptedObjective([10.0 - 0.01 * i for i in range(10_000)]), strat)
    ctx.valid_mi, calls = _scripted_mi([1.0, 2.0, 1.5, 3.0])
    inner = [strat.train_step(ctx, x, step)["inner_steps"] for step in range(10)]
    # checks after steps 2, 4, 6: MI 1.0, 2.0, 1.5 -> the first decrease switches off at step 6; no check after
    assert len(calls) == 3
    assert strat.stopped_step == 6 and not strat.aggressive
    assert all(n >= 2 for n in inner[:6]) and inner[6:] == [0.0] * 4
    assert [c["step"] for c in strat.mi_checks] == [2, 4, 6]
    messages = strat.pop_messages()
    assert len(messages) == 3 and messages[-1].startswith("step 6: validation MI 1.500")
    assert "aggressive training off (first_decrease rule)" in messages[-1] and strat.pop_messages() == []
    strat.on_validation(0, {"mi": 0.0})  # the per-epoch rule is off; the epoch of the switch is recorded
    assert strat.stopped_epoch == 1
    fields = strat.log_fields()
    assert fields["aggressive_stopped_step"] == 6 and fields["aggressive_steps"] == 6
    assert [c["mi"] for c in fields["mi_checks"]] == [1.0, 2.0, 1.5]
    assert strat.log_fields()["mi_checks"] == []  # each check is logged once


def test_step_checks_with_patience_count_checks():
    strat = AggressiveStrategy(window=2, max_inner_steps=4, rule="patience", patience=2, check_every_steps=1)
    ctx, _, x = _ctx(ScriptedObjective([10.0 - 0.01 * i for i in range(10_000)]), strat)
    ctx.valid_mi, _ = _scripted_mi([1.0, 2.0, 1.9, 2.5, 2.4, 2.5, 9.0])
    for step in range(7):
        strat.train_step(ctx, x, step)
    # best 2.5 at check 4; checks 5 (2.4) and 6 (2.5, not better) fail -> off after step 6
    assert strat.stopped_step == 6 and not strat.aggressive


def test_epoch_rule_is_not_applied_when_checking_every_n_steps():
    s = AggressiveStrategy(rule="first_decrease", check_every_steps=50)
    for epoch, mi in enumerate([3.0, 2.0, 1.0]):
        s.on_validation(epoch, {"mi": mi})
    assert s.aggressive and s.stopped_epoch is None


def test_max_aggressive_steps_caps_the_aggressive_phase():
    strat = AggressiveStrategy(window=2, max_inner_steps=4, max_aggressive_steps=3)
    ctx, _, x = _ctx(ScriptedObjective([10.0 - 0.01 * i for i in range(10_000)]), strat)
    inner = [strat.train_step(ctx, x, step)["inner_steps"] for step in range(5)]
    assert inner[3:] == [0.0, 0.0] and min(inner[:3]) >= 2
    assert strat.pop_messages() == ["step 3: aggressive training off (max_aggressive_steps = 3)"]
    assert strat.stopped_step == 3 and strat.aggressive_steps == 3


def test_min_aggressive_steps_ignores_decreases_of_noise_before_it():
    strat = AggressiveStrategy(
        window=2, max_inner_steps=4, rule="first_decrease", check_every_steps=1, min_aggressive_steps=3
    )
    ctx, _, x = _ctx(ScriptedObjective([10.0 - 0.01 * i for i in range(10_000)]), strat)
    ctx.valid_mi, _ = _scripted_mi([0.002, 0.001, 0.5, 0.4, 0.3])
    for step in range(6):
        strat.train_step(ctx, x, step)
    # the fall 0.002 -> 0.001 at step 2 comes before 3 aggressive steps: recorded, not acted on;
    # 0.5 at step 3, then the fall to 0.4 at step 4 switches off
    assert strat.stopped_step == 4 and strat.aggressive_steps == 4 and not strat.aggressive
    assert [c["mi"] for c in strat.mi_checks] == [0.002, 0.001, 0.5, 0.4]


def test_min_aggressive_steps_does_not_count_failed_checks_before_it():
    strat = AggressiveStrategy(
        window=2, max_inner_steps=4, rule="patience", patience=2, check_every_steps=1, min_aggressive_steps=4
    )
    ctx, _, x = _ctx(ScriptedObjective([10.0 - 0.01 * i for i in range(10_000)]), strat)
    ctx.valid_mi, _ = _scripted_mi([1.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5])
    for step in range(7):
        strat.train_step(ctx, x, step)
    # checks 2 and 3 fail before the minimum and are not counted; checks 4 and 5 fail -> off after step 5
    assert strat.stopped_step == 5


def test_min_above_max_aggressive_steps_is_an_error():
    with pytest.raises(ValueError, match="min_aggressive_steps=5 exceeds max_aggressive_steps=3"):
        AggressiveStrategy(min_aggressive_steps=5, max_aggressive_steps=3)


@pytest.mark.parametrize(
    "key", ["check_every_steps", "max_aggressive_steps", "min_aggressive_steps", "window", "patience"]
)
@pytest.mark.parametrize("bad", [0, -2, 1.5, True])
def test_bad_counts_name_the_key(key, bad):
    with pytest.raises(ValueError, match=f"strategy_options.{key}"):
        AggressiveStrategy(**{key: bad})


def test_trainer_valid_mi_is_zero_when_q_equals_the_prior_and_matches_the_validation_mi(tiny_config, tmp_path):
    cfg = load_config(tiny_config(), ["train.epochs=1"])
    trainer = Trainer(cfg, tmp_path / "r")
    trainer.fit()
    m = trainer._valid_mi()
    val = trainer.evaluator.evaluate("valid")
    assert m["mi_pool"] == val["mi_pool"] and m["au"] == val["au"]
    assert m["mi"] == pytest.approx(val["mi"], abs=5 * val["mi_se"] + 1e-3)  # same posteriors, other z draws
    state = torch.get_rng_state()
    assert trainer._valid_mi() == m  # seeded by the step: repeatable, and the training RNG is untouched
    assert torch.equal(state, torch.get_rng_state())
    head = trainer.run.model.encoder.head if hasattr(trainer.run.model.encoder, "head") else None
    assert head is not None, "the tiny model's encoder ends in a linear head"
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()  # q(z|x) = N(0, I) = p(z) for every x
    m0 = trainer._valid_mi()
    assert m0["mi"] == pytest.approx(0.0, abs=1e-9) and m0["au"] == 0


def test_trainer_step_checks_log_mi_and_switch_off(tiny_config, tmp_path, capsys):
    cfg = load_config(
        tiny_config(),
        [
            "train.strategy=aggressive",
            "train.strategy_options={window: 2, max_inner_steps: 4, check_every_steps: 2, patience: 1}",
            "train.epochs=2",
        ],
    )
    Trainer(cfg, tmp_path / "r").fit()
    recs = [json.loads(x) for x in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    valid = [r for r in recs if r["split"] == "valid"]
    checks = [c for r in valid for c in r["mi_checks"]]
    assert checks and all(c["step"] % 2 == 0 for c in checks)
    last = valid[-1]
    if last["aggressive_stopped_step"] is not None:  # patience 1: off at the first check that fails to beat the best
        mis = [c["mi"] for c in checks]
        first_fail = next(i for i in range(1, len(mis)) if mis[i] <= max(mis[:i]))
        assert last["aggressive_stopped_step"] == checks[first_fail]["step"]
        assert len(checks) == first_fail + 1
        assert f"step {last['aggressive_stopped_step']}: validation MI" in capsys.readouterr().err
    else:
        assert all(b["mi"] > a["mi"] for a, b in itertools.pairwise(checks))
