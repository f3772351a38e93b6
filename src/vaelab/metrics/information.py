"""Mutual information I_q(x; z) between data and code under the encoder, with an explicit pool.

    I_q(x; z) = E_x KL(q(z|x) || p(z)) - KL(q(z) || p(z))

(Hoffman & Johnson, "ELBO surgery", NIPS 2016 Workshop on Advances in Approximate Bayesian Inference), where
q(z) = E_x q(z|x) is the aggregate posterior. It is estimated as in He et al. (ICLR 2019), by replacing q(z)
with the mixture of the P posteriors of a *pool* of examples:

    I_hat = mean_i [ log q(z_i|x_i) - log (1/P) sum_n q(z_i|x_n) ],   z_i ~ q(z|x_i),  i, n over the pool.

The estimate can never exceed ln P (the n = i term alone gives the mixture 1/P of q(z_i|x_i)), so the pool
size must be reported with every MI value (methods.md section 5): He et al. pool over the minibatch (cap
ln 32 = 3.47); DG-VAE and rate-distortion studies (Bozkurt et al., AISTATS 2021) pool over the whole
evaluation set (cap ln N). Small negative values are estimator noise. The marginal KL,
KL(q(z) || p(z)) = R - I_q ("rate minus MI", Bozkurt et al. 2021), follows from the rate and this estimate.

The first term is the sampled log q(z_i|x_i), not the analytic negative entropy: with it, identical posteriors
give exactly 0 and the ln P cap holds for every draw, not only in expectation.

All values are in nats (per example, summed over latent dimensions).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from vaelab.distributions import LOG_2PI, log_normal

#: Number of float64 entries of the (rows, P) block of pairwise log densities held at once (32 MiB).
_BLOCK_ELEMENTS = 1 << 22


@dataclass(frozen=True)
class MIEstimate:
    """A mutual-information estimate with the pool it was computed over.

    - ``value``: the estimate in nats (per example, summed over latent dimensions); at most ln ``pool``.
    - ``pool``: the number of posteriors the aggregate q(z) was approximated with (P, or the minibatch size
      B).
    - ``stderr``: naive standard error of the mean of the per-example terms, std / sqrt(N). It ignores the
      dependence the shared pool induces between terms, so read it as the Monte-Carlo scale, not a guarantee.
    """

    value: float
    pool: int
    stderr: float = float("nan")


def _check_posteriors(mu: Tensor, logvar: Tensor) -> None:
    if mu.dim() != 2 or mu.shape != logvar.shape:
        raise ValueError(f"mu and logvar must both be (N, D); got {tuple(mu.shape)} and {tuple(logvar.shape)}")
    if mu.shape[0] < 1:
        raise ValueError("need at least one posterior in the pool")


def mutual_information_terms(mu: Tensor, logvar: Tensor, z: Tensor, *, chunk_size: int | None = None) -> Tensor:
    """Per-example terms log q(z_i|x_i) - log (1/P) sum_n q(z_i|x_n), pooled over all P rows: (P,) float64.

    ``mu``, ``logvar`` and ``z`` are (P, D). Computed in float64 and in log space, chunked over i: only a
    (chunk, P) block of log densities exists at a time, never the (P, P, D) tensor, so P = 10,000 with D = 64
    needs tens of MB. The pairwise log densities use the quadratic expansion

        log q(z_i|x_n) = c_n - 0.5 * sum_d z_id^2 / s_nd^2 + sum_d z_id mu_nd / s_nd^2,

    i.e. one (chunk, 2D) x (2D, P) matrix product; the dominant n = i term is recomputed directly from
    (z_i - mu_i), so concentrated posteriors lose no precision to cancellation where it matters most.
    """
    _check_posteriors(mu, logvar)
    if z.shape != mu.shape:
        raise ValueError(f"z must have the shape of mu {tuple(mu.shape)}, got {tuple(z.shape)}")
    mu64, logvar64, z64 = mu.double(), logvar.double(), z.double()
    p, d = mu64.shape
    prec = torch.exp(-logvar64)  # (P, D)
    # c_n = -0.5 * (D log 2pi + sum_d logvar_nd + sum_d mu_nd^2 / s_nd^2)
    const = -0.5 * (d * LOG_2PI + logvar64.sum(-1) + (mu64**2 * prec).sum(-1))  # (P,)
    right = torch.cat([-0.5 * prec, mu64 * prec], dim=1).T.contiguous()  # (2D, P)
    log_self = log_normal(z64, mu64, logvar64).sum(-1)  # (P,) log q(z_i|x_i), direct
    rows = chunk_size if chunk_size is not None else max(1, _BLOCK_ELEMENTS // p)
    log_agg = torch.empty(p, dtype=torch.float64, device=mu.device)
    for start in range(0, p, rows):
        stop = min(start + rows, p)
        zc = z64[start:stop]
        block = torch.cat([zc**2, zc], dim=1) @ right + const  # (rows, P): log q(z_i|x_n)
        idx = torch.arange(stop - start, device=mu.device)
        block[idx, idx + start] = log_self[start:stop]
        log_agg[start:stop] = torch.logsumexp(block, dim=1) - math.log(p)
    return log_self - log_agg


def _sample(mu: Tensor, logvar: Tensor, generator: torch.Generator | None) -> Tensor:
    eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)
    return mu + torch.exp(0.5 * logvar) * eps


def _estimate(terms: Tensor, pool: int) -> MIEstimate:
    n = terms.numel()
    stderr = float(terms.std() / math.sqrt(n)) if n > 1 else float("nan")
    return MIEstimate(value=float(terms.mean()), pool=pool, stderr=stderr)


def mutual_information(
    mu: Tensor,
    logvar: Tensor,
    z: Tensor | None = None,
    *,
    generator: torch.Generator | None = None,
    chunk_size: int | None = None,
) -> MIEstimate:
    """I_q(x; z) in nats pooled over ALL the posteriors passed in: ``pool`` = P = ``mu.shape[0]``.

    ``mu``, ``logvar``: (P, D) posterior parameters of the evaluation set. ``z``: optional (P, D) draws
    z_i ~ q(z|x_i) (one per example, as in He et al., ICLR 2019); drawn with ``generator`` when omitted.
    The estimate is at most ln P; identical posteriors give exactly 0. See the module docstring for the
    estimator and :func:`mutual_information_terms` for how it stays within memory for P = 10,000.
    """
    _check_posteriors(mu, logvar)
    if z is None:
        z = _sample(mu, logvar, generator)
    terms = mutual_information_terms(mu, logvar, z, chunk_size=chunk_size)
    return _estimate(terms, pool=mu.shape[0])


def mutual_information_minibatches(
    mu: Tensor,
    logvar: Tensor,
    batch_size: int,
    generator: torch.Generator | None = None,
    z: Tensor | None = None,
) -> MIEstimate:
    """I_q(x; z) in nats pooled within consecutive minibatches of ``batch_size`` examples, then averaged.

    This is He et al.'s convention (ICLR 2019): each minibatch is its own pool, so the estimate is capped at
    ln B (3.47 nats for B = 32). A final partial minibatch of b < B examples is kept, pooled over its b
    examples, and weighted by b (the estimate is the mean of all per-example terms). The
    returned ``pool`` is min(B, N). Row order matters: pass the examples in evaluation-loader order.
    """
    _check_posteriors(mu, logvar)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if z is None:
        z = _sample(mu, logvar, generator)
    elif z.shape != mu.shape:
        raise ValueError(f"z must have the shape of mu {tuple(mu.shape)}, got {tuple(z.shape)}")
    n = mu.shape[0]
    terms = torch.cat(
        [
            mutual_information_terms(mu[s : s + batch_size], logvar[s : s + batch_size], z[s : s + batch_size])
            for s in range(0, n, batch_size)
        ]
    )
    return _estimate(terms, pool=min(batch_size, n))
