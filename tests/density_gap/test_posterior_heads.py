"""BN-VAE and delta-VAE posterior heads: their rate guarantees for arbitrary encoder outputs, the delta roots against
the closed form, building them around every encoder, and training with them."""

from __future__ import annotations

import json
import math

import pytest
import torch
from scipy.special import lambertw

from vaelab.config import ConfigError, load_config
from vaelab.models import ModelConfig, build_model
from vaelab.models.base import Encoder
from vaelab.models.posterior_heads import DELTA_SLACK, BatchNormHead, DeltaHead, delta_variance_bounds
from vaelab.training.trainer import Trainer


class Fixed(Encoder):
    """An 'encoder' that returns whatever raw (mu, logvar) it is given: the head sees arbitrary outputs."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.latent_dim = d

    def forward(self, x):
        return x


def _kl(mu, logvar):
    return 0.5 * (mu**2 + logvar.exp() - logvar - 1.0)


def _raw(n, d, scale, seed, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=dtype) * scale, torch.randn(n, d, generator=g, dtype=dtype) * scale


@pytest.mark.parametrize("delta", [0.01, 0.1, 0.5, 2.0])
def test_delta_roots_match_the_lambert_w_closed_form(delta):
    # ln s - s + 2 delta + 1 = 0  <=>  s = -W_k(-exp(-(1 + 2 delta))), k = 0 (s_l < 1) and k = -1 (s_u > 1)
    s_l, s_u = delta_variance_bounds(delta)
    arg = -math.exp(-(1 + 2 * delta))
    assert s_l == pytest.approx(-lambertw(arg, 0).real, rel=1e-12)
    assert s_u == pytest.approx(-lambertw(arg, -1).real, rel=1e-12)
    for s in (s_l, s_u):
        assert abs(math.log(s) - s + 2 * delta + 1) < 1e-12
    with pytest.raises(ValueError, match="delta_rate"):
        delta_variance_bounds(0.0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("delta", [0.01, 0.125, 1.0])
def test_delta_head_every_dimension_commits_delta_nats_for_any_encoder_output(delta, dtype):
    head = DeltaHead(Fixed(16), delta=delta).to(dtype)
    s_l, s_u = delta_variance_bounds(delta)
    for seed, scale in enumerate([1e-3, 1.0, 10.0, 1e3, 1e5]):
        mu_raw, lv_raw = _raw(512, 16, scale, seed, dtype)
        mu, logvar = head((mu_raw, lv_raw))
        kl = _kl(mu, logvar)
        assert torch.isfinite(kl).all()
        assert (kl >= delta).all(), float((kl - delta).min())
        var = logvar.exp()
        tol = 1e-6 if dtype == torch.float32 else 1e-12
        assert (var >= s_l * (1 - tol)).all() and (var <= s_u * (1 + tol)).all()
    # the floor is tight: with the mean at its floor and the variance at s = 1, KL = delta + slack / 2
    mu, logvar = head((torch.full((1, 16), -60.0, dtype=dtype), torch.full((1, 16), 0.0, dtype=dtype)))
    lv0 = math.log(s_l) + (math.log(s_u) - math.log(s_l)) * 0.5
    f0 = math.exp(lv0) - lv0 - 1
    assert float(_kl(mu, logvar).max()) == pytest.approx(delta + DELTA_SLACK / 2, abs=1e-5 + 1e-6 * f0)
    # and gradients flow to the raw outputs
    mu_raw, lv_raw = _raw(8, 16, 1.0, 9, dtype)
    mu_raw.requires_grad_()
    lv_raw.requires_grad_()
    _kl(*head((mu_raw, lv_raw))).sum().backward()
    assert torch.isfinite(mu_raw.grad).all() and mu_raw.grad.abs().sum() > 0 and lv_raw.grad.abs().sum() > 0


@pytest.mark.parametrize("gamma", [0.3, 0.5, 1.0])
def test_bn_head_batch_rate_bound_for_any_encoder_output(gamma):
    head = BatchNormHead(Fixed(8), gamma=gamma)
    with torch.no_grad():
        head.shift.normal_()  # any learned shift only adds beta_d^2 / 2
    d, eps = 8, head.norm.eps
    for seed, scale in enumerate([1e-1, 1.0, 30.0, 1e4]):
        mu_raw, lv_raw = _raw(64, d, scale, seed)
        mu_raw = mu_raw + 5.0  # a common offset the normalisation removes
        with torch.no_grad():
            mu, logvar = head((mu_raw, lv_raw))
        rate = float(_kl(mu, logvar).sum(-1).mean())
        v = mu_raw.double().var(0, unbiased=False)
        bound = 0.5 * gamma**2 * float((v / (v + eps)).sum())  # = D gamma^2 / 2 up to the BN epsilon
        assert rate >= bound * (1 - 1e-5)
        assert bound == pytest.approx(head.rate_bound(), rel=1e-3) or scale < 1
    # the rate can sit right at the bound: logvar = 0 and zero shift give mean_i mu'^2 = gamma^2 v / (v + eps)
    with torch.no_grad():
        head.shift.zero_()
    mu_raw, _ = _raw(256, d, 1.0, 11)
    with torch.no_grad():
        mu, logvar = head((mu_raw, torch.zeros(256, d)))
    assert float(_kl(mu, logvar).sum(-1).mean()) == pytest.approx(head.rate_bound(), rel=1e-4)
    # mu is normalised with a fixed scale: the only learned parameter is the shift
    assert [n for n, _ in head.named_parameters()] == ["shift"]


@pytest.mark.parametrize("model_type", ["mlp", "conv", "linear"])
@pytest.mark.parametrize("posterior", ["bn", "delta"])
def test_heads_wrap_every_image_encoder(model_type, posterior):
    cfg = ModelConfig(type=model_type, latent_dim=3, hidden=[8], channels=[4], posterior=posterior, delta_rate=0.2)
    model = build_model(cfg, {"image_shape": (1, 8, 8)})
    assert isinstance(model.encoder, BatchNormHead if posterior == "bn" else DeltaHead)
    q = model.encode(torch.rand(5, 1, 8, 8))
    assert q.mu.shape == (5, 3)
    if posterior == "delta":
        assert (q.kl_to_standard_normal_per_dim() >= 0.2).all()
    enc = {id(p) for p in model.encoder_parameters()}
    assert all(id(p) in enc for p in model.encoder.parameters())  # the head belongs to the encoder (aggressive)
    plain = build_model(
        ModelConfig(type=model_type, latent_dim=3, hidden=[8], channels=[4]), {"image_shape": (1, 8, 8)}
    )
    assert not hasattr(plain.encoder, "inner")  # the default builds exactly what it built before


def test_heads_wrap_the_text_encoder_and_bn_needs_two_examples():
    from vaelab.data.text import TokenBatch

    info = {"vocab_size": 12}
    cfg = ModelConfig(type="lstm_vae", latent_dim=3, emb_dim=4, hidden_dim=6, posterior="delta", delta_rate=0.3)
    q = build_model(cfg, info).encode(TokenBatch.from_sentences([[4, 5], [6]]))
    assert (q.kl_to_standard_normal_per_dim() >= 0.3).all()
    bn = build_model(ModelConfig(type="lstm_vae", latent_dim=3, emb_dim=4, hidden_dim=6, posterior="bn"), info)
    with pytest.raises(ValueError, match=">= 2 examples"):
        bn.encode(TokenBatch.from_sentences([[4, 5]]))
    bn.eval()
    assert bn.encode(TokenBatch.from_sentences([[4, 5]])).mu.shape == (1, 3)  # running statistics in evaluation
    with pytest.raises(ValueError, match="has none"):
        build_model(ModelConfig(type="lstm_lm", latent_dim=3, emb_dim=4, hidden_dim=6, posterior="bn"), info)


def test_head_config_errors(tiny_config):
    with pytest.raises(ConfigError, match="valid choices: gaussian, bn, delta"):
        load_config(tiny_config(), ["model.posterior=batchnorm"])
    with pytest.raises(ValueError, match="bn_gamma"):
        build_model(ModelConfig(posterior="bn", bn_gamma=0.0, hidden=[4]), {"image_shape": (1, 2, 2)})
    with pytest.raises(ValueError, match="skip"):
        build_model(ModelConfig(type="mlp", skip=True, hidden=[4]), {"image_shape": (1, 2, 2)})


def test_bn_vae_training_keeps_the_rate_above_the_bound(tiny_config, tmp_path):
    # every training step's batch rate is >= D gamma^2 / 2 (up to the BN epsilon), so are their running means
    cfg = load_config(
        tiny_config(), ["model.posterior=bn", "model.bn_gamma=0.6", "objective.beta.type=constant", "train.epochs=2"]
    )
    summary = Trainer(cfg, tmp_path / "bn").fit()
    rows = [json.loads(x) for x in (tmp_path / "bn" / "metrics.jsonl").read_text().splitlines()]
    bound = 0.5 * 4 * 0.6**2
    train = [r for r in rows if r["split"] == "train"]
    assert len(train) == 2 and all(r["rate"] >= bound * 0.999 for r in train)
    # (evaluation uses the running statistics, for which the bound is not guaranteed; see the module docstring)
    assert summary["status"] == "completed"


def test_delta_vae_training_keeps_every_dimension_above_delta(tiny_config, tmp_path):
    cfg = load_config(tiny_config(), ["model.posterior=delta", "model.delta_rate=0.15", "train.epochs=1"])
    summary = Trainer(cfg, tmp_path / "delta").fit()
    assert min(summary["kl_per_dim"]) >= 0.15 and summary["rate"] >= 4 * 0.15


def test_bn_head_bound_holds_at_text_initialisation_scale():
    """The epsilon loophole (issue 15): raw means with a batch variance of ~1e-7, as an LSTM encoder initialised
    U(-0.01, 0.01) gives, must still get a rate of D gamma^2 / 2 (torch's default eps = 1e-5 gives ~1% of it)."""
    gamma, d = 0.7, 32
    head = BatchNormHead(Fixed(d), gamma=gamma)
    mu_raw, _ = _raw(32, d, 3e-4, 5)
    with torch.no_grad():
        mu, logvar = head((mu_raw, torch.zeros(32, d)))
    assert float(mu_raw.var(0, unbiased=False).max()) < 1e-6
    assert float(_kl(mu, logvar).sum(-1).mean()) == pytest.approx(head.rate_bound(), rel=1e-3)
    loose = BatchNormHead(Fixed(d), gamma=gamma, eps=1e-5)  # the default BatchNorm epsilon takes the loophole
    with torch.no_grad():
        mu, logvar = loose((mu_raw, torch.zeros(32, d)))
    assert float(_kl(mu, logvar).sum(-1).mean()) < 0.05 * head.rate_bound()


def test_refresh_batch_norm_gives_the_current_encoders_statistics():
    """Precise BN: after the raw means moved (scale x10, offset +5), evaluation statistics recomputed over the
    batches equal the average batch mean and unbiased variance, whatever the running estimates said before."""
    from vaelab.models.posterior_heads import refresh_batch_norm

    class Model(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = BatchNormHead(Fixed(3), gamma=0.7)

    model = Model()
    batches = [_raw(16, 3, 1.0, s) for s in range(4)]
    with torch.no_grad():
        for b in batches:  # training with momentum 0.1 leaves lagging running estimates
            model.encoder((b[0], b[1]))
    moved = [(b[0] * 10 + 5, b[1]) for b in batches]
    model.eval()
    assert refresh_batch_norm(model, moved) is True
    assert not model.training and not model.encoder.norm.training  # modes restored
    assert model.encoder.norm.momentum == 0.1
    means = torch.stack([m.mean(0) for m, _ in moved]).mean(0)
    variances = torch.stack([m.var(0, unbiased=True) for m, _ in moved]).mean(0)
    assert torch.allclose(model.encoder.norm.running_mean, means, rtol=1e-5, atol=1e-5)
    assert torch.allclose(model.encoder.norm.running_var, variances, rtol=1e-5)
    # evaluation now gives about the training-mode rate: mean_i mu'^2 ~ gamma^2 per dimension
    mu, _ = model.encoder((torch.cat([m for m, _ in moved]), torch.zeros(64, 3)))
    assert float((mu.detach() ** 2).mean()) == pytest.approx(0.49, rel=0.15)
    assert refresh_batch_norm(torch.nn.Linear(2, 2), []) is False
