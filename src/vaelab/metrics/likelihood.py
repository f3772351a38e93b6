"""Likelihood metrics: importance-weighted log-likelihood, the ELBO and its parts, bits/dim, perplexity.

Everything here is in nats per example, summed over data dimensions (pixels, tokens) and latent dimensions
(methods.md sections 1 and 5), unless a name says otherwise (``bits_per_dim``, ``perplexity``).

The model is used only through the VAE contract (:mod:`vaelab.models.base`): ``encode(x)``,
``log_likelihood(x, z)`` and ``log_joint(x, z)`` with ``z`` of shape (S, B, D). ``x`` is never indexed here,
so structured batches (token batches with a ``batch_size``) work as well as image tensors.

These functions do not switch the model to eval mode (that would be a hidden side effect): call
``model.eval()`` first, or use :func:`vaelab.metrics.collect`, which does it and restores the previous mode.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from vaelab.distributions import DiagonalGaussian
from vaelab.models.base import VAE, StandardNormalPrior
from vaelab.rules import COUNT, Either, check

#: Default number of importance samples drawn per example at once by the functions of this module. Memory grows
#: as chunk_size * B decoded examples; for an MNIST-sized MLP decoder and B = 100 that is ~31 MB per float32
#: (chunk, B, 784) tensor.
DEFAULT_IW_CHUNK = 100

OTHER_IW_CHUNK = 500
"""What ``chunk_size="auto"`` uses for inputs that are not image tensors (token batches): the chunk they got
before ``auto`` (the old ``eval.iw_chunk`` default). The text decoder bounds its own activations (row chunks of
2**24 logits), so a larger chunk only means fewer calls: on configs/ptb_vae_small.yaml, K = 500, 500 took 0.91x
the wall and 0.94x the user time of 100 at a 5 % higher peak (``benchmarks/eval_memory.py --config ...``)."""

IW_CHUNK_BUDGET = 1 << 22
"""``chunk_size="auto"`` (the default of ``eval.iw_chunk``) draws, for a batch of B examples of P data dimensions,
the largest chunk c with c * B * P <= this many floats (16 MiB of float32), at least 1 and at most K: the decoder's
output and the likelihood's elementwise terms are (c, B, P) tensors, a few of them alive at once. Measured on
MNIST with the 784-512-256-32 MLP VAE, K = 500 (``benchmarks/eval_memory.py``, README): B = 500 gives c = 10 and a
process peak of 0.46 GiB where c = 500 (the fixed default before) peaked at 3.35 GiB. The budget also keeps each
tensor under the 32 MiB above which glibc's allocator gives every allocation fresh pages (mmap): chunks above it
(500 x 25 and up) cost 1.5-1.8x the system time of those below (500 x 10, 16, 20; 100 x 100) at equal user time."""

IW_CHUNK = Either(words=("auto",), rule=COUNT)
"""The rule of ``eval.iw_chunk`` (and ``measure.iw_chunk``): ``auto`` (:data:`IW_CHUNK_BUDGET`) or a count >= 1."""


NORMAL_BLOCK = 16
"""torch's CPU sampler fills normals 16 at a time (Box-Muller on blocks of 16 uniforms; a draw of n values that is
not a multiple of 16 redraws its last 16), so consecutive draws of multiples of 16 values are the values of one
draw of their total size."""


def resolve_iw_chunk(chunk_size: int | str, x: Any, batch: int, num_samples: int, latent_dim: int | None = None) -> int:
    """The number of importance samples drawn at once for a batch ``x`` of ``batch`` examples: ``chunk_size``
    itself, or for ``"auto"`` the largest chunk whose (chunk, B, P) float tensor stays within
    :data:`IW_CHUNK_BUDGET` when ``x`` is a tensor of P = prod(x.shape[1:]) data dimensions per example, else
    :data:`OTHER_IW_CHUNK`; at most ``num_samples`` either way.

    With ``latent_dim`` D, ``"auto"`` rounds its chunk down to a multiple of 16 / gcd(16, B * D) (or up to it, for
    a chunk below it), so that every chunk draws a multiple of :data:`NORMAL_BLOCK` normals: on a CPU the K draws
    of a batch are then exactly those of a single draw of K samples, and the estimate is that of a chunk >= K (the
    old default 500, for K <= 500) up to float rounding (the log-sum-exp over chunks is accumulated in float64).
    A fixed chunk gives the same draws when chunk * B * D is a multiple of 16 (always for D = 32 and B = 500);
    otherwise equally distributed ones, and the estimate changes within its Monte Carlo error."""
    check("chunk_size", chunk_size, IW_CHUNK)
    if chunk_size != "auto":
        return int(chunk_size)
    if not isinstance(x, Tensor) or x.dim() < 1:
        chunk = OTHER_IW_CHUNK
    else:
        chunk = max(1, IW_CHUNK_BUDGET // max(1, batch * math.prod(x.shape[1:])))
        if latent_dim is not None:
            step = NORMAL_BLOCK // math.gcd(NORMAL_BLOCK, batch * latent_dim)
            chunk = max(step, chunk - chunk % step)
    return min(num_samples, chunk)


def _standard_normal(shape: tuple[int, ...], like: Tensor, generator: torch.Generator | None) -> Tensor:
    return torch.randn(shape, generator=generator, dtype=like.dtype, device=like.device)


@torch.no_grad()
def iw_log_likelihood_from_posterior(
    model: VAE,
    x: Any,
    q: DiagonalGaussian,
    num_samples: int,
    chunk_size: int | str = DEFAULT_IW_CHUNK,
    eps_generator: torch.Generator | None = None,
) -> Tensor:
    """:func:`iw_log_likelihood` given an already computed posterior ``q = model.encode(x)``.

    Lets a caller that also needs ``q`` for other metrics (the ELBO, MI, active units) encode once.
    """
    _count("num_samples", num_samples)
    b, d = q.mu.shape
    chunk_size = resolve_iw_chunk(chunk_size, x, b, num_samples, latent_dim=d)
    # Running log-sum-exp over chunks, kept in float64 so that many chunks add no rounding drift.
    running = torch.full((b,), -math.inf, dtype=torch.float64, device=q.mu.device)
    for start in range(0, num_samples, chunk_size):
        s = min(chunk_size, num_samples - start)
        z = q.rsample(s, eps=_standard_normal((s, b, d), q.mu, eps_generator))  # (s, B, D)
        log_w = model.log_joint(x, z) - q.log_prob(z)  # (s, B): log p(x, z) - log q(z|x)
        running = torch.logaddexp(running, torch.logsumexp(log_w.double(), dim=0))
    return (running - math.log(num_samples)).to(q.mu.dtype)


@torch.no_grad()
def iw_log_likelihood(
    model: VAE,
    x: Any,
    num_samples: int,
    chunk_size: int | str = DEFAULT_IW_CHUNK,
    eps_generator: torch.Generator | None = None,
) -> Tensor:
    """Importance-weighted estimate of log p(x), nats per example, shape (B,).

    L_K(x) = log (1/K) sum_k p(x, z_k) / q(z_k|x),  z_k ~ q(z|x) iid  (Burda, Grosse & Salakhutdinov,
    "Importance Weighted Autoencoders", ICLR 2016). E[L_K] <= log p(x), is non-decreasing in K, equals the
    ELBO for K = 1 and tends to log p(x) as K grows. K = 500 is the image/text standard, 5000 for MNIST
    tables (methods.md section 5). When q(z|x) is the exact posterior every weight equals p(x), so the
    estimate is exact for every K.

    The whole batch is scored at once; the K samples are drawn ``chunk_size`` at a time as a (chunk, B, D)
    tensor, and a running log-sum-exp is kept in log space, so memory is bounded by chunk_size * B decoder
    evaluations whatever K is; ``"auto"`` chooses the chunk from a memory budget (:func:`resolve_iw_chunk`).
    ``eps_generator`` makes the draw reproducible. Runs under ``torch.no_grad``.
    """
    return iw_log_likelihood_from_posterior(model, x, model.encode(x), num_samples, chunk_size, eps_generator)


def iw_nll(
    model: VAE,
    x: Any,
    num_samples: int,
    chunk_size: int | str = DEFAULT_IW_CHUNK,
    eps_generator: torch.Generator | None = None,
) -> Tensor:
    """The IW negative log-likelihood -L_K(x), nats per example, shape (B,); see :func:`iw_log_likelihood`."""
    return -iw_log_likelihood(model, x, num_samples, chunk_size, eps_generator)


@torch.no_grad()
def elbo_terms_from_posterior(
    model: VAE,
    x: Any,
    q: DiagonalGaussian,
    num_samples: int = 1,
    eps_generator: torch.Generator | None = None,
) -> dict[str, Tensor]:
    """:func:`elbo_terms` given an already computed posterior ``q = model.encode(x)``."""
    _count("num_samples", num_samples)
    z = q.rsample(num_samples, eps=_standard_normal((num_samples, *q.mu.shape), q.mu, eps_generator))
    distortion = -model.log_likelihood(x, z).mean(0)
    if isinstance(model.prior, StandardNormalPrior):
        rate = q.kl_to_standard_normal()
    else:  # a learned or non-Gaussian prior: Monte-Carlo rate E_q[log q(z|x) - log p(z)] on the same draws
        rate = (q.log_prob(z) - model.prior.log_prob(z)).mean(0)
    return {"elbo": -(distortion + rate), "rate": rate, "distortion": distortion}


@torch.no_grad()
def elbo_terms(
    model: VAE, x: Any, num_samples: int = 1, eps_generator: torch.Generator | None = None
) -> dict[str, Tensor]:
    """The unweighted ELBO and its two parts, nats per example, each of shape (B,).

    - ``distortion`` D(x) = -E_{q(z|x)} log p(x|z), a Monte-Carlo mean over ``num_samples`` draws per example
      (report the sample count with it);
    - ``rate`` R(x) = KL(q(z|x) || p(z)), analytic for the standard-normal prior (Kingma & Welling, ICLR
      2014, appendix B), else a Monte-Carlo mean over the same draws;
    - ``elbo`` = -(D + R).

    These are the quantities of methods.md section 1, whatever beta or reduction the training used.
    Runs under ``torch.no_grad``.
    """
    return elbo_terms_from_posterior(model, x, model.encode(x), num_samples, eps_generator)


def bits_per_dim(nll_nats: float | Tensor, num_dims: int) -> float | Tensor:
    """Convert a negative log-likelihood in nats per example into bits per data dimension.

    bpd = nll / (num_dims * ln 2), e.g. ``num_dims`` = 784 for MNIST. Accepts a float or a tensor of
    per-example values (returned elementwise).
    """
    if num_dims < 1:
        raise ValueError(f"num_dims must be >= 1, got {num_dims}")
    return nll_nats / (num_dims * math.log(2.0))


def perplexity(total_nll: float | Tensor, num_tokens: int) -> float:
    """Per-token perplexity exp(total NLL / number of predicted tokens) from a total NLL in nats.

    Per methods.md section 5, the end-of-sentence token counts as predicted, the start token does not.
    Pass the ELBO-based total (-sum ELBO) or the IW-based total (sum IW-NLL) and name the result accordingly.
    """
    if num_tokens < 1:
        raise ValueError(f"num_tokens must be >= 1, got {num_tokens}")
    total = float(total_nll.sum()) if isinstance(total_nll, Tensor) else float(total_nll)
    return math.exp(total / num_tokens)


def _count(name: str, value: Any) -> None:
    """``value`` is an integer >= 1 (the rule of every sample count; one-line error naming ``name``)."""
    check(name, value, COUNT)
