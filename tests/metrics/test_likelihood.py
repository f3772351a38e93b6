"""Known-answer tests for the IW log-likelihood, the ELBO terms, bits/dim and perplexity (pPCA, float64)."""

from __future__ import annotations

import math

import pytest
import torch

from vaelab.metrics import bits_per_dim, elbo_terms, iw_log_likelihood, iw_nll, perplexity

from .helpers import NUM_DIMS, PPCA

# Every Monte-Carlo comparison below allows Z_TOL standard errors (two-sided p ~ 6e-5 per check); each test
# uses a fixed generator, so it is deterministic and the tolerance is a statement about the estimator.
Z_TOL = 4.0


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _mean_se(t: torch.Tensor) -> tuple[float, float]:
    return float(t.mean()), float(t.std() / math.sqrt(t.numel()))


def test_exact_posterior_is_diagonal_and_matches_encoder(ppca: PPCA) -> None:
    """Precondition of the strongest test: the fixture's encoder reproduces pPCA's exact posterior."""
    ppca.set_exact_encoder()
    x = ppca.sample_x(8, _gen())
    m, cov = ppca.model.decoder.exact_posterior(x)
    q = ppca.model.encode(x)
    torch.testing.assert_close(cov, torch.diag(torch.diag(cov)), rtol=0, atol=1e-14)
    torch.testing.assert_close(q.mu.detach(), m, rtol=0, atol=1e-12)
    torch.testing.assert_close(q.var.detach(), torch.diag(cov).expand_as(m), rtol=0, atol=1e-12)


@pytest.mark.parametrize(("k", "chunk"), [(1, 100), (7, 3), (100, 100), (250, 64)])
def test_iw_exact_posterior_is_exact_for_every_k(ppca: PPCA, k: int, chunk: int) -> None:
    """With q = p(z|x) every importance weight equals p(x): the estimate is exact, whatever K and chunking."""
    ppca.set_exact_encoder()
    x = ppca.sample_x(32, _gen())
    exact = ppca.model.decoder.exact_log_marginal(x)
    est = iw_log_likelihood(ppca.model, x, k, chunk_size=chunk, eps_generator=_gen(1))
    assert est.shape == (32,)
    torch.testing.assert_close(est, exact, rtol=0, atol=1e-10)
    torch.testing.assert_close(iw_nll(ppca.model, x, k, chunk_size=chunk), -exact, rtol=0, atol=1e-10)


def test_iw_inexact_posterior_bound_monotone_and_converging(ppca: PPCA) -> None:
    """Burda et al. (2016): E[L_1] = ELBO < E[L_10] < E[L_100] <= log p(x), and L_K -> log p(x) as K grows.

    One example is replicated R times along the batch, so the batch holds R independent draws of L_K(x).
    """
    g = _gen(2)
    ppca.perturb_encoder(g)
    x = ppca.sample_x(1, g)
    exact = float(ppca.model.decoder.exact_log_marginal(x))
    elbo = float(ppca.elbo(x))
    assert exact - elbo > 1.0, "the perturbed encoder must leave a clear gap for this test to have power"

    def draws(k: int, reps: int) -> tuple[float, float]:
        return _mean_se(iw_log_likelihood(ppca.model, x.expand(reps, *x.shape[1:]), k, 64, eps_generator=g))

    stats = {k: draws(k, 2000) for k in (1, 10, 100)}
    # K = 1 is the single-sample ELBO estimator: unbiased for the analytic ELBO.
    m1, se1 = stats[1]
    assert abs(m1 - elbo) < Z_TOL * se1
    for lo, hi in ((1, 10), (10, 100)):
        (m_lo, se_lo), (m_hi, se_hi) = stats[lo], stats[hi]
        assert m_hi - m_lo > Z_TOL * math.hypot(se_lo, se_hi), f"E[L_{hi}] not above E[L_{lo}]"
        assert m_hi < exact + Z_TOL * se_hi, f"E[L_{hi}] above log p(x)"
    # K = 5000: the remaining bias is ~Var(w/p) / (2K), a few 1e-3 nats here (1.9e-3 measured at K = 1000).
    m_big, se_big = draws(5000, 50)
    assert -Z_TOL * se_big < exact - m_big < 0.01 + Z_TOL * se_big


def test_iw_reproducible_with_generator(ppca: PPCA) -> None:
    ppca.perturb_encoder(_gen(3))
    x = ppca.sample_x(16, _gen(4))
    a = iw_log_likelihood(ppca.model, x, 50, chunk_size=20, eps_generator=_gen(5))
    b = iw_log_likelihood(ppca.model, x, 50, chunk_size=20, eps_generator=_gen(5))
    c = iw_log_likelihood(ppca.model, x, 50, chunk_size=20, eps_generator=_gen(6))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_iw_rejects_bad_arguments(ppca: PPCA) -> None:
    x = ppca.sample_x(2, _gen())
    with pytest.raises(ValueError, match="num_samples"):
        iw_log_likelihood(ppca.model, x, 0)
    with pytest.raises(ValueError, match="chunk_size"):
        iw_log_likelihood(ppca.model, x, 10, chunk_size=0)


@pytest.mark.parametrize("num_samples", [1, 8])
def test_elbo_terms_match_closed_form(ppca: PPCA, num_samples: int) -> None:
    """Rate equals the analytic KL; the MC distortion is unbiased for the closed-form E_q log p(x|z)."""
    g = _gen(7)
    ppca.perturb_encoder(g)
    x = ppca.sample_x(1, g)
    reps = x.expand(2000, *x.shape[1:])
    terms = elbo_terms(ppca.model, reps, num_samples=num_samples, eps_generator=g)
    assert set(terms) == {"elbo", "rate", "distortion"}
    q = ppca.model.encode(x)
    kl = 0.5 * (q.mu**2 + q.var - q.logvar - 1).sum(-1)
    torch.testing.assert_close(terms["rate"], kl.detach().expand(2000), rtol=0, atol=1e-12)
    torch.testing.assert_close(terms["elbo"], -(terms["distortion"] + terms["rate"]), rtol=0, atol=1e-12)
    expected = -float(ppca.expected_log_likelihood(x))
    m, se = _mean_se(terms["distortion"])
    assert abs(m - expected) < Z_TOL * se


def test_elbo_terms_more_samples_reduce_variance(ppca: PPCA) -> None:
    """The distortion is a mean over num_samples draws: its spread shrinks like 1/sqrt(S)."""
    g = _gen(8)
    ppca.perturb_encoder(g)
    reps = ppca.sample_x(1, g).expand(2000, *ppca.sample_x(1, g).shape[1:])
    sd1 = float(elbo_terms(ppca.model, reps, 1, eps_generator=g)["distortion"].std())
    sd16 = float(elbo_terms(ppca.model, reps, 16, eps_generator=g)["distortion"].std())
    # sd1 / sd16 should be 4; the sample-std ratio from 2000 draws is within ~10 % of it.
    assert 3.2 < sd1 / sd16 < 4.8


def test_bits_per_dim_and_perplexity() -> None:
    assert bits_per_dim(NUM_DIMS * math.log(2.0), NUM_DIMS) == pytest.approx(1.0)
    assert bits_per_dim(784 * 3 * math.log(2.0), 784) == pytest.approx(3.0)
    torch.testing.assert_close(bits_per_dim(torch.tensor([0.0, 2 * math.log(2.0)]), 2), torch.tensor([0.0, 1.0]))
    # A uniform model over V tokens has per-token perplexity V.
    assert perplexity(100 * math.log(10_000), 100) == pytest.approx(10_000)
    assert perplexity(torch.full((4,), 5 * math.log(7.0)), 20) == pytest.approx(7.0)
    with pytest.raises(ValueError):
        bits_per_dim(1.0, 0)
    with pytest.raises(ValueError):
        perplexity(1.0, 0)
