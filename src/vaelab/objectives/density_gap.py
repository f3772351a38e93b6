"""Density-gap regularisation (Zhang, Bai, Lin, Wang & Rong, "Improving variational autoencoders with density
gap-based regularization", NeurIPS 2022); methods.md section 4.

The ordinary rate E_x KL(q(z|x) || p(z)) pushes *every* posterior towards the prior, and so towards collapse.
The density gap instead compares the **aggregated** posterior with the prior, one latent dimension at a time.
For a minibatch split into chunks of b consecutive examples and M reparameterised draws z_ij ~ q(z|x_i):

    log q_agg,d(z) = log (1/b) sum_{k in chunk(i)} N(z; mu_kd, sigma_kd^2)          (log space: logsumexp)
    Reg_DG         = sum_d mean_{i,j} [ log q_agg,d(z_ijd) - log N(z_ijd; 0, 1) ]      (nats per example)

Its expectation is sum_d KL(q_agg,d || p_d) for the chunk's mixture, so a posterior can move away from the prior
as long as the chunk's mixture still covers it; for b = 1 the mixture is the example's own posterior and the
expectation is the ordinary rate. Every density stays in log space (a logsumexp over the chunk): a
probability-space mixture, as in the authors' release, loses the small terms and underflows to log 0 = -inf at
points far from every component in the chunk.

Two estimators of the same expectation (``estimator``):

- ``sampled`` (default, the paper's): the Monte-Carlo average above.
- ``analytic_rate``: Reg = KL(q(z|x_i) || p) in closed form + mean_{i,j} [log q_agg,d(z_ijd) - log q(z_ijd|x_i)].
  Since E_q[log q(z|x_i) - log p(z)] is the analytic rate, both estimators have the same expectation (and the
  same expected gradient); this one has no Monte-Carlo noise in the rate part, and for b = 1 its correction is
  log-sum-exp of one term minus that term, i.e. exactly 0: it *is* the ordinary rate, bit for bit.

With ``sampled`` and b = 1 the estimate equals the rate only in expectation (per dimension the draw's term is
-log sigma^2 / 2 + mu^2 / 2 + mu sigma eps + (sigma^2 - 1) eps^2 / 2), and exactly whenever the M noise draws of
each (example, dimension) have sample mean 0 and sample mean square 1.

Under data parallelism each process chunks its own shard and draws its own samples, so a DG run is not
bit-identical across process counts (the trainer's shared-noise scheme covers only the main sample z).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from vaelab.distributions import LOG_2PI, log_standard_normal
from vaelab.objectives.terms import REGULARISERS, ForwardPass, Term, check_free_bits_apply
from vaelab.options import Options, setting
from vaelab.rules import MAX_SAMPLES, Int

Estimator = Literal["sampled", "analytic_rate"]
ESTIMATORS: tuple[str, ...] = ("sampled", "analytic_rate")

DEFAULT_SAMPLES = 32
"""M, the draws per example (Zhang et al. 2022 use 32)."""

_BLOCK_ELEMENTS = 1 << 22
"""Pairwise (group, draw, component) log densities held at once (16 MiB of float32); larger problems are processed
in blocks of draws. :class:`_LogMixture` saves only its inputs and output for the backward pass (which recomputes a
block at a time), so memory stays bounded in training too."""


def _log_components(z: Tensor, mu: Tensor, logvar: Tensor, prec: Tensor) -> Tensor:
    """a[g, r, k] = log N(z_gr; mu_gk, exp(logvar_gk)) + 0.5 log 2 pi, shape (G, R, b); the constant is left out
    (it is added once after the reduction). The same operations in the same order are used wherever a log density
    of one component is needed, so that equal inputs give bit-equal values."""
    diff = z.unsqueeze(-1) - mu.unsqueeze(-2)
    return diff.square_().mul_(prec.unsqueeze(-2)).add_(logvar.unsqueeze(-2)).mul_(-0.5)


def _log_own(z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """Elementwise log N(z; mu, exp(logvar)) + 0.5 log 2 pi with the operations of :func:`_log_components`."""
    return (z - mu).square().mul(torch.exp(-logvar)).add(logvar).mul(-0.5)


def _row_blocks(g: int, r: int, b: int) -> int:
    return max(1, _BLOCK_ELEMENTS // max(1, g * b))


class _LogMixture(torch.autograd.Function):
    """log sum_k N(z_gr; mu_gk, var_gk) + 0.5 log 2 pi for G independent one-dimensional mixtures of b components
    evaluated at R points each: z (G, R), mu and logvar (G, b) -> (G, R).

    The backward pass is written out: with w the softmax over components of the log densities and
    t = g * w * (z - mu_k) / var_k,  dz = -sum_k t,  dmu_k = sum_r t,  dlogvar_k = sum_r [-g w / 2 + t (z - mu_k) / 2].
    It recomputes the (G, R_block, b) densities block by block instead of storing them, about a third of the
    passes over memory that autograd through the elementwise graph takes.
    """

    @staticmethod
    def forward(ctx: Any, z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:  # type: ignore[override]
        g, r = z.shape
        prec = torch.exp(-logvar)
        out = torch.empty_like(z)
        rows = _row_blocks(g, r, mu.shape[1])
        for s in range(0, r, rows):
            a = _log_components(z[:, s : s + rows], mu, logvar, prec)
            mx = a.amax(-1, keepdim=True)
            out[:, s : s + rows] = a.sub_(mx).exp_().sum(-1).log_().add_(mx.squeeze(-1))
        ctx.save_for_backward(z, mu, logvar, out)
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, Tensor, Tensor]:  # type: ignore[override]
        z, mu, logvar, out = ctx.saved_tensors
        g, r = z.shape
        prec = torch.exp(-logvar)
        dz = torch.empty_like(z)
        dmu = torch.zeros_like(mu)
        dlogvar = torch.zeros_like(logvar)
        rows = _row_blocks(g, r, mu.shape[1])
        for s in range(0, r, rows):
            zs = z[:, s : s + rows]
            diff = zs.unsqueeze(-1) - mu.unsqueeze(-2)  # (G, R_block, b)
            gw = (
                diff.square()
                .mul_(prec.unsqueeze(-2))
                .add_(logvar.unsqueeze(-2))
                .mul_(-0.5)
                .sub_(out[:, s : s + rows].unsqueeze(-1))
                .exp_()
                .mul_(grad[:, s : s + rows].unsqueeze(-1))
            )
            t = gw * diff
            t.mul_(prec.unsqueeze(-2))
            dz[:, s : s + rows] = -t.sum(-1)
            dmu += t.sum(-2)
            dlogvar += t.mul_(diff).sum(-2).sub_(gw.sum(-2)).mul_(0.5)
        return dz, dmu, dlogvar


def _gap_sum(mu: Tensor, logvar: Tensor, eps: Tensor, chunk: int, analytic: bool) -> Tensor:
    """(D,) sum over all draws and examples of the per-dimension gap, for chunks of ``chunk`` consecutive examples
    (the last one holds the remainder): log q_agg,d(z) - log N(z; 0, 1) (``analytic=False``) or
    log q_agg,d(z) - log q(z|x_i) (``analytic=True``)."""
    m, n, d = eps.shape
    z = mu + torch.exp(0.5 * logvar) * eps  # (M, B, D)
    total = mu.new_zeros(d)
    full = (n // chunk) * chunk
    for lo, hi, b in ((0, full, chunk), (full, n, n - full)):
        if hi <= lo:
            continue
        c = (hi - lo) // b
        # groups (chunk, dim) with the chunk's draws as points and its examples as components
        zg = z[:, lo:hi].reshape(m, c, b, d).permute(1, 3, 0, 2).reshape(c * d, m * b)
        mug = mu[lo:hi].reshape(c, b, d).permute(0, 2, 1).reshape(c * d, b)
        lvg = logvar[lo:hi].reshape(c, b, d).permute(0, 2, 1).reshape(c * d, b)
        log_mix = _LogMixture.apply(zg.contiguous(), mug.contiguous(), lvg.contiguous()) - math.log(b)
        log_mix = log_mix.reshape(c, d, m, b).permute(2, 0, 3, 1).reshape(m, hi - lo, d)  # back to (M, B_part, D)
        zp = z[:, lo:hi]
        if analytic:
            gap = log_mix - _log_own(zp, mu[lo:hi], logvar[lo:hi])
        else:
            gap = log_mix - 0.5 * LOG_2PI - log_standard_normal(zp)
        total = total + gap.sum(dim=(0, 1))
    return total


def density_gap(
    mu: Tensor,
    logvar: Tensor,
    *,
    chunk_size: int | None = None,
    samples: int = DEFAULT_SAMPLES,
    eps: Tensor | None = None,
    estimator: Estimator = "sampled",
    generator: torch.Generator | None = None,
) -> Tensor:
    """The density gap per latent dimension, (D,), in nats per example; Reg_DG is its sum (Zhang et al. 2022).

    Args:
        mu, logvar: (B, D) posterior parameters of the batch.
        chunk_size: b, examples per mixture (consecutive rows; the last chunk holds the remainder). None = B, and
            b > B is treated as B.
        samples: M, draws per example (ignored when ``eps`` is given).
        eps: optional (M, B, D) standard-normal noise, z_ij = mu_i + sigma_i * eps_ij (for tests, or to control
            the randomness); else drawn from ``generator`` / the global RNG.
        estimator: ``sampled`` (the paper's Monte-Carlo average) or ``analytic_rate`` (the closed-form rate plus
            the sampled log q_agg - log q correction; the same expectation, exactly the rate for b = 1). See the
            module docstring.

    Differentiable with respect to ``mu`` and ``logvar`` (through the draws and through the mixture).
    """
    if mu.dim() != 2 or mu.shape != logvar.shape:
        raise ValueError(f"mu and logvar must both be (B, D); got {tuple(mu.shape)} and {tuple(logvar.shape)}")
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown density-gap estimator {estimator!r}; valid choices: {', '.join(ESTIMATORS)}")
    n, d = mu.shape
    if n < 1:
        raise ValueError("the density gap needs at least one example")
    if eps is None:
        if samples < 1:
            raise ValueError(f"samples must be >= 1, got {samples}")
        eps = torch.randn((samples, n, d), generator=generator, dtype=mu.dtype, device=mu.device)
    elif eps.dim() != 3 or eps.shape[1:] != mu.shape:
        raise ValueError(f"eps must be (M, {n}, {d}); got {tuple(eps.shape)}")
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1 or None, got {chunk_size}")
    chunk = n if chunk_size is None else min(int(chunk_size), n)
    analytic = estimator == "analytic_rate"
    per_dim = _gap_sum(mu, logvar, eps, chunk, analytic) / (eps.shape[0] * n)
    if analytic:
        rate = 0.5 * (mu * mu + torch.exp(logvar) - logvar - 1.0)
        per_dim = rate.mean(0) + per_dim
    return per_dim


@dataclass
class DensityGapOptions(Options):
    """``objective.regulariser_options`` of ``density_gap``: ``chunk_size`` b (null: the batch), ``samples`` M,
    ``estimator``."""

    chunk_size: int | None = setting(None, Int(1, optional=True))
    samples: int = setting(DEFAULT_SAMPLES, Int(1, MAX_SAMPLES))
    estimator: Estimator = "sampled"


@REGULARISERS.register("density_gap")
class DensityGap(Term):
    """Density-gap regulariser Reg_DG (Zhang et al., NeurIPS 2022), in nats per example; replaces the rate.

    Options (``objective.regulariser_options``): ``chunk_size`` b (default: the batch), ``samples`` M (default
    32), ``estimator`` (``sampled`` | ``analytic_rate``). The training loss is D + beta_t * Reg_DG, so it composes
    with every beta schedule (the paper anneals 0 -> 1 over 10 epochs), with the aggressive strategy and with extra
    terms. The unweighted rate and ELBO are still reported by the objective.
    """

    name = "density_gap"
    Options = DensityGapOptions

    def __init__(self, free_bits: float = 0.0, groups: int | None = None, **options: Any) -> None:
        super().__init__()
        o = self.regulariser_options(options)
        check_free_bits_apply(self.name, free_bits, groups)
        self.chunk_size: int | None = o.chunk_size
        self.samples: int = o.samples
        self.estimator: Estimator = o.estimator

    def forward(self, fp: ForwardPass) -> Tensor:
        q = fp.posterior
        per_dim = density_gap(
            q.mu, q.logvar, chunk_size=self.chunk_size, samples=self.samples, estimator=self.estimator
        )
        fp.cache["density_gap_per_dim"] = per_dim.detach()
        return per_dim.sum()

    def extra_repr(self) -> str:
        return f"chunk_size={self.chunk_size}, samples={self.samples}, estimator={self.estimator}"


__all__ = ["DEFAULT_SAMPLES", "ESTIMATORS", "DensityGap", "density_gap"]
