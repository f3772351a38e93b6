"""Per-latent-unit diagnostics: active units and the per-dimension rate.

KL alone does not diagnose collapse (design.md): these say *which* latent dimensions carry information.
"""

from __future__ import annotations

from torch import Tensor

from vaelab.rules import Num, check

AU_THRESHOLD = Num(lo=0)
"""The rule of ``eval.au_threshold``: the variance of the posterior mean above which a unit is active."""


def active_units(mu: Tensor, threshold: float = 0.01) -> tuple[int, Tensor]:
    """Number of active latent units and the per-dimension activity statistic.

    A unit d is active when A_d = Var_x( E_q[z_d | x] ) >= ``threshold`` (Burda, Grosse & Salakhutdinov,
    ICLR 2016, section 5.2; threshold 0.01 as there and in methods.md section 5). The variance is the unbiased
    one (divisor N - 1) over the N examples of the evaluation set.

    ``mu``: (N, D) posterior means, N >= 2. Returns ``(count, variances)`` with ``variances`` of shape (D,),
    in squared latent units.
    """
    check("threshold", threshold, AU_THRESHOLD)
    if mu.dim() != 2:
        raise ValueError(f"mu must be (N, D), got shape {tuple(mu.shape)}")
    if mu.shape[0] < 2:
        raise ValueError(f"need at least 2 examples for an unbiased variance, got {mu.shape[0]}")
    variances = mu.double().var(dim=0, correction=1).to(mu.dtype)
    return int((variances >= threshold).sum()), variances


def kl_per_dim(mu: Tensor, logvar: Tensor) -> Tensor:
    """The per-dimension rate E_x KL(q(z_d|x) || N(0, 1)), nats, shape (D,); sums to the mean rate.

    KL_d = 0.5 * (mu_d^2 + sigma_d^2 - log sigma_d^2 - 1) averaged over the N examples of ``mu``, ``logvar``
    (each (N, D)). Shows which units carry information (methods.md section 5, "per-dimension rate").
    """
    if mu.dim() != 2 or mu.shape != logvar.shape:
        raise ValueError(f"mu and logvar must both be (N, D); got {tuple(mu.shape)} and {tuple(logvar.shape)}")
    return (0.5 * (mu**2 + logvar.exp() - logvar - 1.0)).mean(0)
