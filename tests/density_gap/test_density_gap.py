"""Density-gap regulariser (Zhang et al., NeurIPS 2022): exact identities at b = 1, a brute-force reference, the
Monte-Carlo error of the sampled estimator, log-space stability, gradients, config options and composition."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from vaelab.config import load_config
from vaelab.distributions import DiagonalGaussian
from vaelab.objectives import ObjectiveConfig, build_objective
from vaelab.objectives.density_gap import DensityGap, _LogMixture, density_gap
from vaelab.objectives.terms import ForwardPass, Rate
from vaelab.training.trainer import Trainer


def _posteriors(b: int = 7, d: int = 3, seed: int = 0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(b, d, generator=g, dtype=dtype) * 1.5
    logvar = torch.randn(b, d, generator=g, dtype=dtype) - 0.5
    return mu, logvar


def _kl_per_dim(mu, logvar):
    return 0.5 * (mu**2 + logvar.exp() - logvar - 1.0)


def _fp(mu, logvar):
    q = DiagonalGaussian(mu, logvar)
    return ForwardPass(model=None, x=None, posterior=q, z=mu, log_px_z=torch.zeros(mu.shape[0]), step=0)


def _brute_force(mu, logvar, eps, b):
    """The paper's formula with explicit loops, in probability space and float64 (fine for moderate values)."""
    mu, logvar, eps = mu.double().numpy(), logvar.double().numpy(), eps.double().numpy()
    m, n, d = eps.shape
    sd = np.exp(0.5 * logvar)
    total = np.zeros(d)
    for start in range(0, n, b):
        chunk = range(start, min(start + b, n))
        for i in chunk:
            for j in range(m):
                for k in range(d):
                    z = mu[i, k] + sd[i, k] * eps[j, i, k]
                    dens = [
                        math.exp(-0.5 * (z - mu[c, k]) ** 2 / sd[c, k] ** 2) / (sd[c, k] * math.sqrt(2 * math.pi))
                        for c in chunk
                    ]
                    log_agg = math.log(sum(dens) / len(dens))
                    total[k] += log_agg - (-0.5 * math.log(2 * math.pi) - 0.5 * z * z)
    return total / (m * n)


def test_analytic_estimator_at_b1_is_the_rate_bit_for_bit():
    mu, logvar = _posteriors(9, 4)
    per_dim = density_gap(mu, logvar, chunk_size=1, samples=5, estimator="analytic_rate")
    # the correction log q_agg - log q_i is logsumexp of one term minus that term: exactly zero
    assert torch.equal(per_dim, _kl_per_dim(mu, logvar).mean(0))
    # and as a regulariser it equals the ordinary rate, values and gradients
    mu32, lv32 = mu.float().requires_grad_(), logvar.float().requires_grad_()
    reg = DensityGap(chunk_size=1, samples=4, estimator="analytic_rate")(_fp(mu32, lv32))
    g_dg = torch.autograd.grad(reg, (mu32, lv32))
    rate = Rate()(_fp(mu32, lv32))
    g_rate = torch.autograd.grad(rate, (mu32, lv32))
    assert reg.item() == pytest.approx(rate.item(), rel=1e-6)
    for a, b in zip(g_dg, g_rate, strict=True):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-7)


def test_sampled_estimator_at_b1_is_exact_for_moment_matched_noise():
    # Per dimension the draw's term is -logvar/2 + mu^2/2 + mu sigma eps + (sigma^2 - 1) eps^2 / 2: with noise whose
    # sample mean is 0 and sample mean square is 1 for every (example, dim), the average is the analytic KL.
    mu, logvar = _posteriors(6, 3, seed=1)
    g = torch.Generator().manual_seed(2)
    eps = torch.randn(16, 6, 3, generator=g, dtype=torch.float64)
    eps = eps - eps.mean(0)
    eps = eps / eps.pow(2).mean(0).sqrt()
    per_dim = density_gap(mu, logvar, chunk_size=1, eps=eps)
    assert torch.allclose(per_dim, _kl_per_dim(mu, logvar).mean(0), rtol=0, atol=1e-12)
    # with un-matched noise it is not exact (so the identity above tests something)
    raw = torch.randn(16, 6, 3, generator=g, dtype=torch.float64)
    assert not torch.allclose(
        density_gap(mu, logvar, chunk_size=1, eps=raw), _kl_per_dim(mu, logvar).mean(0), atol=1e-3
    )


def test_sampled_estimator_at_b1_matches_the_rate_within_its_monte_carlo_error():
    # Var of one draw's term in dim d: mu^2 sigma^2 + (sigma^2 - 1)^2 / 2
    # (eps and eps^2 are uncorrelated and Var eps^2 = 2).
    mu, logvar = _posteriors(32, 8, seed=3)
    m = 64
    var = (mu**2 * logvar.exp() + 0.5 * (logvar.exp() - 1) ** 2).sum() / (m * mu.shape[0] ** 2)
    se = float(var.sqrt())
    rate = float(_kl_per_dim(mu, logvar).sum(-1).mean())
    errors = []
    for seed in range(5):
        est = density_gap(mu, logvar, chunk_size=1, samples=m, generator=torch.Generator().manual_seed(seed)).sum()
        errors.append((float(est) - rate) / se)
    assert max(abs(e) for e in errors) < 4.5, errors  # 5 draws of a standardised error; a bias of ~1 SE would show
    assert abs(sum(errors) / math.sqrt(len(errors))) < 4.0, errors


@pytest.mark.parametrize("b", [1, 2, 3, 7, 50])
def test_matches_the_brute_force_formula(b):
    mu, logvar = _posteriors(7, 3, seed=4)
    eps = torch.randn(5, 7, 3, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    ours = density_gap(mu, logvar, chunk_size=b, eps=eps)
    ref = _brute_force(mu, logvar, eps, min(b, 7))
    assert np.allclose(ours.numpy(), ref, rtol=0, atol=1e-10)  # b = 3: chunks 3, 3, 1 (the tail is its own mixture)


def test_both_estimators_have_the_same_expectation():
    mu, logvar = _posteriors(8, 2, seed=6)
    g = torch.Generator().manual_seed(0)
    sampled = density_gap(mu, logvar, chunk_size=4, samples=40000, generator=g)
    analytic = density_gap(mu, logvar, chunk_size=4, samples=40000, generator=g, estimator="analytic_rate")
    assert torch.allclose(sampled, analytic, atol=0.03)
    assert (
        sampled < _kl_per_dim(mu, logvar).mean(0) + 0.03
    ).all()  # pooling lowers the penalty (a mixture covers more)


def test_identical_posteriors_in_a_chunk_give_the_b1_value():
    mu, logvar = _posteriors(1, 4, seed=7)
    mu, logvar = mu.expand(6, 4).contiguous(), logvar.expand(6, 4).contiguous()
    eps = torch.randn(3, 6, 4, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    assert torch.allclose(
        density_gap(mu, logvar, chunk_size=6, eps=eps), density_gap(mu, logvar, chunk_size=1, eps=eps)
    )


def test_log_space_with_narrow_far_apart_posteriors():
    # Narrow posteriors 20 units apart: every cross density underflows (exp(-0.5 * 400 / 1.2e-4) is 0 even in
    # float64), so log q_agg(z_i) = log q(z_i|x_i) - log b exactly, and the gap is the b = 1 value minus log b.
    for logvar_value in (-9.0, -60.0):  # sd 0.011 and 9e-14 (var 9e-27, still a normal float32)
        mu = torch.tensor([[-20.0], [20.0], [0.0], [40.0]], requires_grad=True)
        logvar = torch.full((4, 1), logvar_value, requires_grad=True)
        eps = torch.randn(8, 4, 1, generator=torch.Generator().manual_seed(0))
        pooled = density_gap(mu, logvar, chunk_size=4, eps=eps)
        single = density_gap(mu, logvar, chunk_size=1, eps=eps)
        assert torch.isfinite(pooled).all()
        assert pooled.item() == pytest.approx(single.item() - math.log(4), rel=1e-6)
        pooled.sum().backward()
        assert torch.isfinite(mu.grad).all() and torch.isfinite(logvar.grad).all()


def test_mixture_log_density_gradients():
    g = torch.Generator().manual_seed(9)
    z = torch.randn(3, 5, generator=g, dtype=torch.float64, requires_grad=True)
    mu = torch.randn(3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    lv = torch.randn(3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(_LogMixture.apply, (z, mu, lv))
    mu2, lv2 = _posteriors(5, 2, seed=10)
    eps = torch.randn(3, 5, 2, generator=g, dtype=torch.float64)
    for est in ("sampled", "analytic_rate"):
        f = lambda m, v, est=est: density_gap(m, v, chunk_size=2, eps=eps, estimator=est)  # noqa: E731
        assert torch.autograd.gradcheck(f, (mu2.requires_grad_(), lv2.requires_grad_()))


def test_blocking_changes_nothing(monkeypatch):
    import sys

    dg = sys.modules["vaelab.objectives.density_gap"]

    mu, logvar = _posteriors(12, 3, seed=11)
    mu.requires_grad_()
    eps = torch.randn(6, 12, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    whole = density_gap(mu, logvar, chunk_size=4, eps=eps).sum()
    (g_whole,) = torch.autograd.grad(whole, mu)
    monkeypatch.setattr(dg, "_BLOCK_ELEMENTS", 5)
    blocked = density_gap(mu, logvar, chunk_size=4, eps=eps).sum()
    (g_blocked,) = torch.autograd.grad(blocked, mu)
    assert torch.allclose(whole, blocked, atol=1e-12) and torch.allclose(g_whole, g_blocked, atol=1e-12)


def test_config_options_and_errors():
    cfg = ObjectiveConfig(regulariser="density_gap", regulariser_options={"chunk_size": 4, "samples": 8})
    reg = build_objective(cfg, 10, 100).regulariser
    assert isinstance(reg, DensityGap) and reg.chunk_size == 4 and reg.samples == 8 and reg.estimator == "sampled"
    with pytest.raises(ValueError, match=r"unknown option 'chunk' .*valid options: chunk_size, estimator, samples"):
        build_objective(ObjectiveConfig(regulariser="density_gap", regulariser_options={"chunk": 4}), 10, 100)
    with pytest.raises(ValueError, match="takes no options"):
        build_objective(ObjectiveConfig(regulariser="kl", regulariser_options={"chunk_size": 4}), 10, 100)
    with pytest.raises(ValueError, match=r"estimator.*valid choices: sampled, analytic_rate"):
        build_objective(ObjectiveConfig(regulariser="density_gap", regulariser_options={"estimator": "x"}), 10, 100)
    with pytest.raises(ValueError, match=r"regulariser_options.chunk_size must be null or an integer >= 1, got 0"):
        build_objective(ObjectiveConfig(regulariser="density_gap", regulariser_options={"chunk_size": 0}), 10, 100)
    with pytest.raises(ValueError, match=r"objective\.free_bits=0\.5 is read only by"):
        build_objective(ObjectiveConfig(regulariser="density_gap", free_bits=0.5), 10, 100)
    # the existing regularisers are built as before
    assert isinstance(build_objective(ObjectiveConfig(), 10, 100).regulariser, Rate)


@pytest.mark.parametrize(
    "overrides",
    [
        [],
        ["objective.beta={type: cyclical, value: 1.0}"],
        ["train.strategy=aggressive", "train.strategy_options={window: 2, max_inner_steps: 4}"],
        ["objective.regulariser_options={chunk_size: 1, estimator: analytic_rate}", "model.posterior=bn"],
    ],
    ids=["annealed", "cyclical", "aggressive", "b1_analytic_bn"],
)
def test_density_gap_trains_with_strategies_and_schedules(tiny_config, tmp_path, overrides):
    cfg = load_config(
        tiny_config(),
        [
            "objective.regulariser=density_gap",
            "objective.regulariser_options={chunk_size: 8, samples: 4}",
            "train.epochs=1",
            *overrides,
        ],
    )
    summary = Trainer(cfg, tmp_path / "run").fit()
    assert summary["status"] == "completed" and math.isfinite(summary["elbo"])
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if r["split"] == "train"]
    assert train and all(math.isfinite(r["reg"]) for r in train)
