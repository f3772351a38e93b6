"""Autoencoder pretraining + decoder reset (Li et al., EMNLP 2019) as the ``pretrain_reset`` strategy."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from conftest import crash_at_step
from vaelab.config import TrainConfig, load_config
from vaelab.models import ModelConfig, build_model
from vaelab.objectives import ObjectiveConfig, build_objective
from vaelab.training.optimizers import make_optimizer
from vaelab.training.pretrain import PretrainResetStrategy
from vaelab.training.strategies import StepContext
from vaelab.training.trainer import Trainer


def _read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _ctx(strategy, model, beta=1.0):
    objective = build_objective(ObjectiveConfig(beta=beta), 10, 100)
    groups = strategy.param_groups(model).items()
    opts = {k: make_optimizer(TrainConfig(optimizer="adam", lr=1e-2), p) for k, p in groups}
    return StepContext.single_process(model, objective, opts, grad_clip=5.0)


def _state(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items() if isinstance(v, torch.Tensor)}


def test_pretraining_is_an_autoencoder_then_the_decoder_is_redrawn_and_the_encoder_kept():
    torch.manual_seed(0)
    model = build_model(ModelConfig(type="mlp", latent_dim=3, hidden=[8]), {"image_shape": (1, 2, 2)})
    strat = PretrainResetStrategy(pretrain_steps=3)
    ctx = _ctx(strat, model)
    x = torch.rand(6, 1, 2, 2).bernoulli()
    for step in range(3):  # beta = 0 whatever the schedule: the loss is the distortion alone
        stats = strat.train_step(ctx, x, step)
        assert stats["beta"] == 0.0 and stats["pretraining"] == 1.0
        assert stats["loss"] == pytest.approx(stats["distortion"])
    assert all(len(o.state) > 0 for o in ctx.optimizers.values())  # Adam moments exist before the reset
    enc, dec = _state(model.encoder), _state(model.decoder)
    # the reset draws the decoder as a new one would be drawn from the same RNG state
    twin = copy.deepcopy(model)
    torch.manual_seed(123)
    twin.decoder.reset_parameters()
    torch.manual_seed(123)
    strat._reset(ctx, 3)
    for k, v in _state(model.encoder).items():
        assert torch.equal(v, enc[k]), k  # the pretrained encoder is reused unchanged
    redrawn = _state(model.decoder)
    for k, v in _state(twin.decoder).items():
        assert torch.equal(redrawn[k], v), k
    assert any(not torch.equal(redrawn[k], dec[k]) for k in dec)
    assert all(len(o.state) == 0 for o in ctx.optimizers.values())  # no stale momentum for the new decoder
    assert strat.restart_selection() and not strat.restart_selection()  # once
    stats = strat.train_step(ctx, x, 4)
    assert stats["beta"] == 1.0 and stats["pretraining"] == 0.0


def test_lstm_decoder_reset_uses_the_papers_initialisation():
    model = build_model(
        ModelConfig(type="lstm_vae", latent_dim=4, emb_dim=8, hidden_dim=16), {"vocab_size": 30, "vocab": None}
    )
    with torch.no_grad():
        for p in model.decoder.parameters():
            p.fill_(3.0)
    model.decoder.reset_parameters()
    for name, p in model.decoder.named_parameters():
        bound = 0.1 if name.startswith("embed.") else 0.01
        assert float(p.detach().abs().max()) <= bound and float(p.detach().std()) > 0.2 * bound, name


@pytest.mark.parametrize("bad", [{"pretrain_epochs": 0}, {"pretrain_steps": -1}, {"pretrain_epochs": 1.5}])
def test_bad_options_name_the_key(bad):
    with pytest.raises(ValueError, match=f"train.strategy_options.{next(iter(bad))}"):
        PretrainResetStrategy(**bad)
    with pytest.raises(ValueError, match="not both"):
        PretrainResetStrategy(pretrain_epochs=1, pretrain_steps=5)


def test_trainer_selects_a_vae_phase_model_and_resumes_bit_exactly(tiny_config, tmp_path, capsys):
    overrides = [
        "train.strategy=pretrain_reset",
        "train.strategy_options.pretrain_epochs=1",
        "objective.regulariser=free_bits_fine",
        "objective.free_bits=1.0",
        "objective.beta.type=linear",
        "objective.beta.start=0.0",
        "objective.beta.value=1.0",
        "objective.beta.warmup_steps=8",
        "objective.beta.delay_epochs=1",
        "train.log_every_steps=1",
    ]
    cfg = load_config(tiny_config(), overrides)
    tr = Trainer(cfg, tmp_path / "run")
    summary = tr.fit()
    steps = _read(tmp_path / "run" / "steps.jsonl")
    per_epoch = tr.run.steps_per_epoch
    metrics = [r for r in _read(tmp_path / "run" / "metrics.jsonl") if r["split"] == "train"]
    assert metrics[0]["pretraining"] == 1.0 and metrics[0]["beta"] == 0.0 and metrics[0]["decoder_reset_step"] is None
    assert metrics[1]["pretraining"] == 0.0 and metrics[1]["decoder_reset_step"] == per_epoch
    assert all(r["beta"] == 0.0 for r in steps if r["step"] <= per_epoch)
    assert tr.state["best_epoch"] >= 2  # the autoencoder of epoch 1 is never the selected model
    assert "decoder re-initialised, encoder kept" in capsys.readouterr().err
    # a crash after the reset resumes to the identical run
    tr2 = Trainer(cfg, tmp_path / "crash")
    crash_at_step(tr2, per_epoch + 3)
    resumed = Trainer(cfg, tmp_path / "crash", resume=True).fit()
    assert resumed["elbo"] == summary["elbo"] and resumed["nll_iw"] == summary["nll_iw"]
