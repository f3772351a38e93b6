import math

import pytest
import torch

from vaelab.distributions import DiagonalGaussian, kl_diag_gaussians
from vaelab.models import ModelConfig, build_model
from vaelab.objectives import (
    EXTRA_TERMS,
    BatchFreeBits,
    FineFreeBits,
    ForwardPass,
    NonFiniteLossError,
    Objective,
    ObjectiveConfig,
    Rate,
    ScheduleConfig,
    Term,
    build_objective,
)


def _fp(mu, logvar):
    q = DiagonalGaussian(mu, logvar)
    return ForwardPass(model=None, x=None, posterior=q, z=mu, log_px_z=torch.zeros(mu.shape[0]), step=0)


def test_rate_closed_form():
    # KL(N(mu, s^2) || N(0, 1)) = 0.5 (mu^2 + s^2 - ln s^2 - 1), summed over dims, averaged over examples.
    mu = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    logvar = torch.log(torch.tensor([[1.0, 4.0], [0.25, 1.0]]))
    per = 0.5 * (mu**2 + logvar.exp() - logvar - 1)
    assert Rate()(_fp(mu, logvar)).item() == pytest.approx(per.sum(-1).mean().item())
    assert per[0, 0].item() == pytest.approx(0.5)


def test_rate_matches_torch_distributions():
    torch.manual_seed(0)
    mu, logvar = torch.randn(7, 5), torch.randn(7, 5)
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    p = torch.distributions.Normal(torch.zeros(5), torch.ones(5))
    ref = torch.distributions.kl_divergence(q, p).sum(-1)
    assert torch.allclose(DiagonalGaussian(mu, logvar).kl_to_standard_normal(), ref, atol=1e-5)
    # and the general two-Gaussian KL against torch
    mu2, lv2 = torch.randn(7, 5), torch.randn(7, 5)
    q2 = torch.distributions.Normal(mu2, (0.5 * lv2).exp())
    ref2 = torch.distributions.kl_divergence(q, q2)
    assert torch.allclose(kl_diag_gaussians(mu, logvar, mu2, lv2), ref2, atol=1e-5)


def test_batch_free_bits_floor_per_dimension_and_groups():
    # dimension 0 has batch-mean KL 0.5*(1) = 0.5, dimension 1 has 0: floor 0.2 -> 0.5 + 0.2
    mu = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    logvar = torch.zeros(2, 2)
    assert BatchFreeBits(free_bits=0.2)(_fp(mu, logvar)).item() == pytest.approx(0.7)
    # one group of both dims: total 0.5 >= 0.2, no floor
    assert BatchFreeBits(free_bits=0.2, groups=1)(_fp(mu, logvar)).item() == pytest.approx(0.5)
    assert BatchFreeBits(free_bits=0.6, groups=1)(_fp(mu, logvar)).item() == pytest.approx(0.6)
    with pytest.raises(ValueError, match=r"objective.free_bits_groups=3 must divide model.latent_dim=2"):
        BatchFreeBits(free_bits=0.1, groups=3)(_fp(mu, logvar))


def test_batch_free_bits_stops_gradient_below_floor():
    mu = torch.zeros(4, 3, requires_grad=True)
    BatchFreeBits(free_bits=0.5)(_fp(mu, torch.zeros(4, 3))).backward()
    assert torch.all(mu.grad == 0)


def test_fine_free_bits_masks_per_example_and_dimension():
    # target 1.0 nats over D = 2 -> threshold 0.5 per (n, d); KL entries: 0.5*mu^2
    mu = torch.tensor([[1.2, 0.5], [0.0, 2.0]])  # KL = 0.72, 0.125 / 0, 2.0
    fp = _fp(mu, torch.zeros(2, 2))
    assert FineFreeBits(free_bits=1.0)(fp).item() == pytest.approx((0.72 + 2.0) / 2)
    assert FineFreeBits(free_bits=0.0)(fp).item() == pytest.approx(Rate()(fp).item())


def test_objective_reports_unweighted_terms_whatever_beta():
    torch.manual_seed(0)
    model = build_model(ModelConfig(type="mlp", latent_dim=4, hidden=[16]), {"image_shape": (1, 4, 4)})
    x = torch.rand(8, 1, 4, 4).bernoulli()
    eps = torch.randn(8, 4)
    outs = {}
    for beta in (0.0, 1.0, 4.0):
        obj = build_objective(ObjectiveConfig(beta=ScheduleConfig(value=beta)), 10, 100)
        outs[beta] = obj(model, x, step=0, eps=eps)
    for beta, out in outs.items():
        s = out.stats
        assert s["elbo"].item() == pytest.approx(-(s["distortion"] + s["rate"]).item())
        assert out.loss.item() == pytest.approx((s["distortion"] + beta * s["rate"]).item(), rel=1e-6)
        assert s["rate"].item() == pytest.approx(outs[1.0].stats["rate"].item())
    # the distortion is a sum over the 16 pixels, not a mean: for a Bernoulli decoder it is >= 0 and
    # of order 16 * ln 2 at initialisation
    assert 16 * math.log(2) * 0.5 < outs[1.0].stats["distortion"].item() < 16 * math.log(2) * 2


class _Const(Term):
    name = "const"

    def __init__(self, value: float = 1.0):
        super().__init__()
        self.value = value

    def forward(self, fp):
        return fp.z.sum() * 0 + self.value


def test_extra_terms_with_scheduled_weights():
    if "const_test" not in EXTRA_TERMS:
        EXTRA_TERMS.register("const_test")(_Const)
    model = build_model(ModelConfig(type="mlp", latent_dim=2, hidden=[8]), {"image_shape": (1, 2, 2)})
    cfg = ObjectiveConfig(
        terms=[
            {
                "type": "const_test",
                "value": 3.0,
                "weight": {"type": "linear", "start": 0, "value": 1, "warmup_steps": 10},
            }
        ]
    )
    obj = build_objective(cfg, 5, 50)
    x = torch.ones(3, 1, 2, 2)
    eps = torch.zeros(3, 2)
    base = obj(model, x, step=0, eps=eps)
    later = obj(model, x, step=5, eps=eps)
    assert base.stats["const_weight"].item() == 0.0
    assert later.stats["const_weight"].item() == pytest.approx(0.5)
    assert (later.loss - base.loss).item() == pytest.approx(1.5, abs=1e-5)
    with pytest.raises(ValueError, match=r"objective.terms\[0\]"):
        build_objective(ObjectiveConfig(terms=[{"type": "const_test", "bogus": 1}]), 5, 50)
    with pytest.raises(KeyError, match="valid choices"):
        build_objective(ObjectiveConfig(terms=[{"type": "nope"}]), 5, 50)


def test_non_finite_loss_names_the_term():
    model = build_model(ModelConfig(type="mlp", latent_dim=2, hidden=[8]), {"image_shape": (1, 2, 2)})
    obj: Objective = build_objective(ObjectiveConfig(), 5, 50)
    x = torch.ones(3, 1, 2, 2)
    x[0, 0, 0, 0] = float("nan")
    out = obj(model, x, step=7, eps=torch.zeros(3, 2))
    with pytest.raises(NonFiniteLossError, match=r"'distortion'.*step 7") as e:
        Objective.check_finite(out, 7)
    assert e.value.term == "distortion"


def test_unknown_regulariser_lists_choices():
    with pytest.raises(KeyError, match="free_bits_batch"):
        build_objective(ObjectiveConfig(regulariser="freebits"), 1, 1)
