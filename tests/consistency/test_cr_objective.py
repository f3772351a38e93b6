"""Consistency-regularisation terms: closed-form KL, the identity known answer, the shared pass, determinism."""

from __future__ import annotations

import math

import pytest
import torch

from vaelab.distributions import DiagonalGaussian, kl_diag_gaussians
from vaelab.models import ModelConfig, build_model
from vaelab.objectives import ObjectiveConfig, ScheduleConfig, build_objective
from vaelab.objectives.consistency import (
    ConsistencyKL,
    augmented_pass,
    configured_transform,
    consistency_kl,
    cr_terms,
)
from vaelab.registry import UnknownChoiceError
from vaelab.transforms import build_transform


def _gaussians(seed: int, b: int = 4, d: int = 3) -> tuple[DiagonalGaussian, DiagonalGaussian]:
    g = torch.Generator().manual_seed(seed)
    q = DiagonalGaussian(torch.randn(b, d, generator=g), torch.randn(b, d, generator=g) * 0.7)
    p = DiagonalGaussian(torch.randn(b, d, generator=g), torch.randn(b, d, generator=g) * 0.7)
    return q, p


def test_closed_form_kl_matches_monte_carlo():
    q, p = _gaussians(0)
    q64 = DiagonalGaussian(q.mu.double(), q.logvar.double())
    p64 = DiagonalGaussian(p.mu.double(), p.logvar.double())
    exact = consistency_kl(q64, p64)  # (B,)
    z = q64.rsample(num_samples=400_000)  # (S, B, D)
    log_ratio = q64.log_prob(z) - p64.log_prob(z)  # (S, B)
    mc, se = log_ratio.mean(0), log_ratio.std(0) / math.sqrt(z.shape[0])
    assert ((exact - mc).abs() < 4 * se + 1e-6).all(), (exact, mc, se)
    assert (exact > 0.1).all()  # a non-trivial check
    # the authors' release bug (the variance used as a standard deviation) gives a different number: this test
    # would catch it
    wrong_logvar_q, wrong_logvar_p = 2 * q64.logvar, 2 * p64.logvar
    wrong = consistency_kl(DiagonalGaussian(q64.mu, wrong_logvar_q), DiagonalGaussian(p64.mu, wrong_logvar_p))
    assert ((wrong - mc).abs() > 10 * se).any()
    assert torch.equal(consistency_kl(q, q), torch.zeros(4))
    torch.testing.assert_close(exact, kl_diag_gaussians(q64.mu, q64.logvar, p64.mu, p64.logvar).sum(-1))
    # nearly identical posteriors: relative accuracy kept (the textbook form loses it in float32)
    near = DiagonalGaussian(q.mu + 1e-4, q.logvar + 1e-4)
    ref = consistency_kl(DiagonalGaussian(near.mu.double(), near.logvar.double()), q64)
    torch.testing.assert_close(consistency_kl(near, q).double(), ref, rtol=1e-3, atol=0)


def test_kl_gradients_flow_through_both_posteriors():
    q, p = _gaussians(1)
    for t in (q.mu, q.logvar, p.mu, p.logvar):
        t.requires_grad_(True)
    consistency_kl(q, p).sum().backward()
    for t in (q.mu, q.logvar, p.mu, p.logvar):
        assert t.grad is not None and t.grad.abs().sum() > 0


def _model(seed: int = 0):
    torch.manual_seed(seed)
    return build_model(ModelConfig(type="mlp", latent_dim=3, hidden=[16]), {"image_shape": (1, 6, 6)})


def _x(seed: int = 1) -> torch.Tensor:
    return (torch.rand(8, 1, 6, 6, generator=torch.Generator().manual_seed(seed)) < 0.4).float()


def _objective(terms, beta=1.0, **cfg):
    return build_objective(ObjectiveConfig(beta=ScheduleConfig(value=beta), terms=terms, **cfg), 10, 100)


@pytest.mark.parametrize("noise", ["shared", "independent"])
def test_identity_transformation_gives_elbo_plus_zero(noise):
    """t = identity: KL(q(z|x) || q(z|x)) = 0 exactly, the pass on t(x) is the pass on x, so the CR addition is
    -ELBO(x) + 0 and the loss is -2 ELBO(x) (beta = 1, unit weights)."""
    model, x = _model(), _x()
    eps = torch.randn(8, 3, generator=torch.Generator().manual_seed(2))
    obj = _objective(cr_terms(lam=0.5, beta_aug=1.0, transform="identity", noise=noise))
    out = obj(model, x, step=0, eps=eps)
    s = out.stats
    assert s["consistency_kl"].item() == 0.0
    assert s["aug_rate"].item() == s["rate"].item()
    neg_elbo = s["distortion"] + s["rate"]
    if noise == "shared":
        assert s["aug_distortion"].item() == pytest.approx(s["distortion"].item(), rel=1e-5)
        assert out.loss.item() == pytest.approx(2 * neg_elbo.item(), rel=1e-5)
    else:  # fresh noise for z': the same expectation, a different sample
        assert s["aug_distortion"].item() != s["distortion"].item()
        assert out.loss.item() == pytest.approx((neg_elbo + s["aug_distortion"] + s["aug_rate"]).item(), rel=1e-6)


def test_loss_is_the_weighted_sum_and_weights_are_schedules():
    model, x = _model(), _x()
    lam = {"type": "linear", "start": 0.0, "value": 2.0, "warmup_steps": 10}
    terms = cr_terms(lam=lam, beta_aug=0.5, transform="large")
    obj = _objective(terms, beta=4.0)
    for step, lam_t in ((0, 0.0), (5, 1.0), (20, 2.0)):
        s = obj(model, x, step=step, eps=torch.zeros(8, 3)).stats
        assert s["consistency_kl_weight"].item() == pytest.approx(lam_t)
        assert s["aug_rate_weight"].item() == 0.5
        assert s["consistency_kl"].item() > 0  # a real transformation moves the posterior
        expected = s["distortion"] + 4.0 * s["reg"] + s["aug_distortion"] + 0.5 * s["aug_rate"]
        expected = expected + lam_t * s["consistency_kl"]
        assert s["loss"].item() == pytest.approx(expected.item(), rel=1e-6)


def test_one_shared_pass_on_the_transformed_batch():
    model, x = _model(), _x()
    calls = []
    real = model.encode

    def counting(inp):
        calls.append(inp)
        return real(inp)

    model.encode = counting
    obj = _objective(cr_terms(transform="simple"))
    out = obj(model, x, step=0, eps=torch.zeros(8, 3))
    assert len(calls) == 2  # x, then t(x) once for the three terms
    assert not torch.equal(calls[1], x)
    out.loss.backward()
    enc_grads = [p.grad for p in model.encoder_parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in enc_grads)


def test_gradient_of_the_kl_reaches_the_encoder_through_both_arguments():
    model, x = _model(), _x()
    obj = _objective([{"type": "consistency_kl", "weight": 1.0, "transform": "large"}])
    fp = obj(model, x, step=0, eps=torch.zeros(8, 3)).forward
    kl = ConsistencyKL()  # same pass (the cache), differentiated alone
    value = kl(fp)
    q_t = fp.cache["consistency_pass"].fp.posterior
    g_x, g_tx = torch.autograd.grad(value, [fp.posterior.mu, q_t.mu])
    assert g_x.abs().sum() > 0 and g_tx.abs().sum() > 0
    # d/dmu of (mu' - mu)^2 / (2 var) is the negative of d/dmu': both arguments receive the gradient
    torch.testing.assert_close(g_x, -g_tx)


def test_deterministic_per_step_and_evaluation_and_resumable():
    model, x = _model(), _x()
    terms = cr_terms(transform="simple", seed=11)
    a, b = _objective(terms), _objective(terms)
    s0 = [a(model, x, step=3, eps=torch.zeros(8, 3)).stats["consistency_kl"].item() for _ in range(3)]
    assert len(set(s0)) == 3  # three loss evaluations in one step (aggressive inner loop): three draws
    assert b(model, x, step=3, eps=torch.zeros(8, 3)).stats["consistency_kl"].item() == s0[0]  # fresh objective
    s4 = a(model, x, step=4, eps=torch.zeros(8, 3)).stats["consistency_kl"].item()
    b4 = b(model, x, step=4, eps=torch.zeros(8, 3)).stats["consistency_kl"].item()  # "resumed" at step 4
    assert s4 == b4 and s4 not in s0
    other = _objective(cr_terms(transform="simple", seed=12))
    assert other(model, x, step=3, eps=torch.zeros(8, 3)).stats["consistency_kl"].item() != s0[0]


def test_augmented_pass_uses_the_given_noise():
    model, x = _model(), _x()
    eps = torch.randn(8, 3)
    afp = augmented_pass(model, x, build_transform("identity"), torch.Generator(), 0, eps=eps)
    q = model.encode(x)
    torch.testing.assert_close(afp.z, q.mu + q.std * eps)
    torch.testing.assert_close(afp.log_px_z, model.log_likelihood(x, q.mu + q.std * eps))


def test_aug_rate_can_use_free_bits():
    model, x = _model(), _x()
    terms = [
        {"type": "aug_rate", "transform": "identity", "regulariser": "free_bits_batch", "free_bits": 5.0},
    ]
    s = _objective(terms)(model, x, step=0, eps=torch.zeros(8, 3)).stats
    assert s["aug_rate"].item() == pytest.approx(15.0)  # 3 dimensions floored at 5 nats each (rate is tiny)


def test_configuration_errors_name_the_key():
    with pytest.raises(UnknownChoiceError, match=r"objective.terms\[type=aug_distortion\].transform.*simple"):
        _objective([{"type": "aug_distortion", "transform": "spin"}])
    with pytest.raises(ValueError, match=r"objective.terms\[0\].*unexpected keyword"):
        _objective([{"type": "consistency_kl", "lambda": 1.0}])
    with pytest.raises(ValueError, match="noise"):
        _objective([{"type": "consistency_kl", "noise": "fresh"}])
    with pytest.raises(UnknownChoiceError, match="regulariser"):
        _objective([{"type": "aug_rate", "regulariser": "free_bit"}])
    model, x = _model(), _x()
    clash = [
        {"type": "aug_distortion", "transform": "simple"},
        {"type": "consistency_kl", "transform": "large", "weight": 1e-3},
    ]
    with pytest.raises(ValueError, match="disagree on 'transform'"):
        _objective(clash)(model, x, step=0, eps=torch.zeros(8, 3))
    inherit = [{"type": "aug_distortion", "transform": "large"}, {"type": "consistency_kl", "weight": 1e-3}]
    _objective(inherit)(model, x, step=0, eps=torch.zeros(8, 3))  # later terms inherit the first one's policy
    assert configured_transform(inherit) == "large"
    assert configured_transform([{"type": "consistency_kl"}]) == "simple"
    assert configured_transform([]) is None


def _text_batch():
    from vaelab.data.text import TokenBatch

    return TokenBatch.from_sentences([[4, 5, 6, 7, 8, 9], [5, 4, 9], [6, 6, 7, 8]])


MODELS = {
    "mlp": (ModelConfig(type="mlp", latent_dim=3, hidden=[16]), {"image_shape": (1, 8, 8)}, "simple"),
    "conv": (ModelConfig(type="conv", latent_dim=3, channels=[4, 8]), {"image_shape": (1, 8, 8)}, "large"),
    "pixelcnn": (
        ModelConfig(type="pixelcnn", latent_dim=3, channels=[4], pixelcnn_channels=4, pixelcnn_layers=1),
        {"image_shape": (1, 8, 8)},
        "crop_shift",
    ),
    "lstm_vae": (
        ModelConfig(type="lstm_vae", latent_dim=3, emb_dim=4, hidden_dim=5),
        {"vocab_size": 10, "vocab": ["<pad>", "<s>", "</s>", "<unk>", *"abcdef"]},
        "text",
    ),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_terms_compose_with_every_model(name):
    cfg, info, policy = MODELS[name]
    torch.manual_seed(0)
    model = build_model(cfg, info)
    x = _text_batch() if name == "lstm_vae" else _x(3).repeat(1, 1, 2, 2)[:, :, :8, :8]
    obj = _objective(cr_terms(lam=1.0, transform=policy))
    out = obj(model, x, step=0, eps=torch.zeros(len(x), 3))
    assert out.stats["consistency_kl"].item() > 0 and torch.isfinite(out.loss)
    out.loss.backward()
    assert all(p.grad is not None for p in model.encoder_parameters())
