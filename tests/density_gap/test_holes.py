"""Hole metrics (Zhang et al., NeurIPS 2022): known answers (posteriors equal to the prior; a single posterior in
closed form; two components against numerical integration), CU counts, and the registered ``holes`` metric."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate
from scipy.special import logsumexp

from vaelab.config import load_config
from vaelab.evaluation import evaluate_run
from vaelab.metrics.extras import EXTRA_METRICS
from vaelab.metrics.holes import (
    count_close_units,
    hole_metrics,
    joint_hole_kl,
    log_aggregate_posterior,
    per_dim_hole_kl,
)
from vaelab.training.trainer import Trainer


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _kl_prior_to_gaussian(mu, var):
    """KL(N(0, 1) || N(mu, var)) in closed form, nats."""
    return 0.5 * (math.log(var) + (1 + mu**2) / var - 1)


def _log_mixture_pdf(z, mus, sds):
    terms = [-0.5 * ((z - m) / s) ** 2 - math.log(s * math.sqrt(2 * math.pi)) for m, s in zip(mus, sds, strict=True)]
    return float(logsumexp(terms)) - math.log(len(mus))


def _quad_hole_kl(mus, sds):
    def f(z):
        p = math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
        return p * (math.log(p) - _log_mixture_pdf(z, mus, sds))

    points = sorted(m for m in mus if -10 < m < 10)
    value, err = integrate.quad(f, -10, 10, points=points or None, limit=500, epsabs=1e-13, epsrel=1e-12)
    assert err < 1e-9
    return value


def test_posteriors_equal_to_the_prior_leave_no_holes():
    mu, logvar = torch.zeros(50, 6), torch.zeros(50, 6)
    joint = joint_hole_kl(mu, logvar, num_samples=4000, generator=_gen())
    assert abs(joint.value) < 1e-10 and joint.stderr < 1e-10  # log q_agg(z) = log p(z) for every draw
    per_dim = per_dim_hole_kl(mu, logvar)
    assert per_dim.abs().max() < 1e-10
    out = hole_metrics(mu, logvar, prior_samples=1000, generator=_gen())
    assert all(out[f"cu_{t:g}"] == 6 for t in (0.01, 0.03, 0.05, 0.1))


def test_single_posterior_against_the_closed_form():
    mus, variances = [0.5, -1.0, 2.0], [0.3, 1.7, 0.05]
    mu = torch.tensor([mus], dtype=torch.float64)
    logvar = torch.log(torch.tensor([variances], dtype=torch.float64))
    exact = [_kl_prior_to_gaussian(m, v) for m, v in zip(mus, variances, strict=True)]
    per_dim = per_dim_hole_kl(mu, logvar)
    assert np.allclose(per_dim.numpy(), exact, rtol=0, atol=1e-9)
    joint = joint_hole_kl(mu, logvar, num_samples=20000, generator=_gen(1))  # a product: the sum of the marginals
    assert abs(joint.value - sum(exact)) < 4 * joint.stderr and joint.stderr < 0.5


@pytest.mark.parametrize(
    ("mus", "sds"),
    [([-1.5, 2.0], [0.5, 0.3]), ([0.0, 0.1], [1.0, 1.2]), ([-0.7, 0.9], [0.02, 0.05])],
    ids=["apart", "close", "narrow"],
)
def test_two_components_against_numerical_integration(mus, sds):
    mu = torch.tensor(mus, dtype=torch.float64).unsqueeze(1)
    logvar = torch.log(torch.tensor(sds, dtype=torch.float64) ** 2).unsqueeze(1)
    ref = _quad_hole_kl(mus, sds)
    # smooth mixtures: exponentially small grid error; narrow far-apart components: log q_agg has a sharp bend where
    # the dominant component switches, and the trapezoid rule is O(h^2) there (relative error ~1e-6 at 210 nats)
    rel = 1e-5 if min(sds) < 0.1 else 1e-9
    assert float(per_dim_hole_kl(mu, logvar)[0]) == pytest.approx(ref, abs=1e-8, rel=rel)
    joint = joint_hole_kl(mu, logvar, num_samples=40000, generator=_gen(2))  # D = 1: the same quantity by MC
    assert abs(joint.value - ref) < 4 * joint.stderr


def test_two_dimensional_joint_against_a_grid_and_the_marginals():
    # a 2-D mixture whose components differ in both coordinates: the joint is not the sum of the marginals
    mu = torch.tensor([[-1.0, 1.0], [1.0, -1.0]], dtype=torch.float64)
    logvar = torch.log(torch.tensor([[0.3, 0.2], [0.25, 0.4]], dtype=torch.float64))
    lin = torch.linspace(-9, 9, 1201, dtype=torch.float64)
    zz = torch.cartesian_prod(lin, lin)
    log_p = -0.5 * (2 * math.log(2 * math.pi) + (zz**2).sum(-1))
    h = float(lin[1] - lin[0])
    grid = float((torch.exp(log_p) * (log_p - log_aggregate_posterior(zz, mu, logvar))).sum() * h * h)
    joint = joint_hole_kl(mu, logvar, num_samples=60000, generator=_gen(3))
    assert abs(joint.value - grid) < 4 * joint.stderr
    marginals = float(per_dim_hole_kl(mu, logvar).sum())
    assert grid > marginals + 0.5  # the joint sees the holes between the diagonal components


def test_chunking_and_given_draws_change_nothing():
    g = _gen(4)
    mu, logvar = torch.randn(30, 3, generator=g), torch.randn(30, 3, generator=g) - 1
    z = torch.randn(100, 3, generator=g)
    whole = log_aggregate_posterior(z, mu, logvar)
    assert torch.allclose(whole, log_aggregate_posterior(z, mu, logvar, chunk_size=7), rtol=0, atol=1e-12)
    direct = torch.logsumexp(
        (-0.5 * (math.log(2 * math.pi) + logvar + (z[:, None] - mu) ** 2 / logvar.exp())).double().sum(-1), dim=1
    ) - math.log(30)
    assert torch.allclose(whole, direct, atol=1e-5)
    a = joint_hole_kl(mu, logvar, z=z, chunk_size=9)
    b = joint_hole_kl(mu, logvar, z=z)
    assert a.value == pytest.approx(b.value, abs=1e-12) and a.samples == 100


def test_cu_counts_dimensions_below_each_threshold():
    # dim 0 equals the prior (KL 0); dim 1 is N(0.3, 1) (KL 0.045); dim 2 is N(1, 1) (KL 0.5)
    mu = torch.tensor([[0.0, 0.3, 1.0]], dtype=torch.float64)
    logvar = torch.zeros(1, 3, dtype=torch.float64)
    out = hole_metrics(mu, logvar, prior_samples=1000, generator=_gen())
    assert out["hole_kl_per_dim"] == pytest.approx([0.0, 0.045, 0.5], abs=1e-9)
    assert (out["cu_0.01"], out["cu_0.03"], out["cu_0.05"], out["cu_0.1"]) == (1, 1, 2, 2)
    assert count_close_units(torch.tensor([0.0, 0.03, 0.029]), 0.03) == 2  # strictly below tau
    assert out["hole_pool"] == 1 and out["hole_prior_samples"] == 1000


def test_holes_metric_runs_at_the_final_evaluation_and_in_evaluate(tiny_config, tmp_path):
    assert "holes" in EXTRA_METRICS
    cfg = load_config(tiny_config(), ["eval.extra_metrics=[holes]", "train.epochs=1"])
    summary = Trainer(cfg, tmp_path / "run").fit()
    assert summary["hole_prior_samples"] == 128_000 and summary["hole_pool"] == summary["n"]
    assert len(summary["hole_kl_per_dim"]) == 4 and summary["hole_kl"] >= -4 * summary["hole_kl_se"]
    assert 0 <= summary["cu_0.03"] <= 4
    ev = evaluate_run(tmp_path / "run", iw_samples=2)
    assert ev["hole_kl_per_dim"] == pytest.approx(summary["hole_kl_per_dim"], abs=1e-9)
