"""Posterior heads: re-parameterisations of q(z|x) that bound the rate from below, for ANY encoder.

A head wraps an :class:`~vaelab.models.base.Encoder` and maps its raw outputs (mu, logvar) to the posterior's
parameters; it is selected with ``model.posterior`` and applied by :func:`~vaelab.models.build_model` to whatever
encoder the model type built (``model.encoder.inner`` is the wrapped network). Both heads are collapse baselines
that DG-VAE (Zhang et al., NeurIPS 2022) compares with; methods.md section 1.

- ``bn`` (:class:`BatchNormHead`): BN-VAE (Zhu, Bi, Liu, Ma, Li & Wu, ACL 2020). Batch normalisation of mu with a
  FIXED scale gamma and a learned shift beta: mu'_d = gamma * (mu_d - m_d) / sqrt(v_d + eps) + beta_d, with m, v the
  batch mean and (biased) variance in training and the running estimates in evaluation. Over a training batch
  mean_i mu'_id^2 = gamma^2 v_d / (v_d + eps) + beta_d^2, and since sigma^2 - log sigma^2 - 1 >= 0 the batch-mean
  rate satisfies  R >= (gamma^2 / 2) sum_d v_d / (v_d + eps),  i.e. E[R] >= D gamma^2 / 2 up to the BatchNorm
  epsilon (exact as eps -> 0). The bound needs some spread of mu in the batch: a dimension whose raw means are all
  equal (v_d = 0) is normalised to beta_d and escapes it. log sigma^2 is not touched. In evaluation mode the
  running estimates replace the batch statistics (BatchNorm momentum 0.1: roughly the last 10-20 training batches),
  so there the bound holds only once they describe the encoder's current outputs, not after a handful of steps.

  Two loopholes close the bound in practice unless they are shut (both were measured on PTB with an LSTM encoder):
  (1) epsilon: with the small initialisation of text models (weights U(-0.01, 0.01)) the raw means' batch variance
  is about 1e-7, below torch's default eps = 1e-5, so v / (v + eps) ~ 0.01 and the guaranteed rate is ~1% of
  D gamma^2 / 2; the head therefore uses eps = 1e-12 (``BN_EPS``). (2) batches that are not random samples: text
  batches sorted by length let the encoder carry information *between* batches (e.g. sentence length), which the
  per-batch normalisation removes in training and the running statistics amplify in evaluation, so the model is
  trained on one posterior and evaluated on another; train BN-VAE on text with ``data.bucketing: none``.

  Evaluation statistics: BatchNorm's running estimates (momentum 0.1) lag an encoder that moves fast, and
  BatchNorm makes it move fast (the normalised output is invariant to the scale and offset of the raw means, so
  nothing holds them in place). Measured on PTB after 300 SGD steps: the validation set's raw means sat 3.7 running
  standard deviations from the running mean, and the evaluation-mode rate was 152 nats against 8.2 in training.
  :func:`refresh_batch_norm` therefore recomputes the statistics for the current encoder ("precise BN") before
  every evaluation: the average of the batch means and variances over a fixed set of training batches, so that an
  evaluated posterior is the one the model is trained on.
- ``delta`` (:class:`DeltaHead`): delta-VAE (Razavi, van den Oord, Poole & Vinyals, ICLR 2019) for the standard
  normal prior. Per dimension KL_d = (mu^2 + f(s)) / 2 with s = sigma^2 and f(s) = s - ln s - 1 >= 0. The variance is
  confined to [s_l, s_u], the two roots of ln s - s + 2 delta + 1 = 0 (i.e. f(s) = 2 delta), where f(s) <= 2 delta,
  and the mean is floored at m(s) = sqrt(2 delta - f(s)):
      log s = log s_l + (log s_u - log s_l) * sigmoid(raw_logvar),      mu = m(s) + softplus(raw_mu).
  So mu^2 >= 2 delta - f(s) and KL_d >= delta for every input, with no penalty or clipping needed. The map is
  one-sided (mu > 0): a continuous map from R onto {|mu| >= m} must be, and a sign-symmetric map would jump at
  raw_mu = 0. A floor of 1e-6 nats is added inside the square root so that the guarantee survives float32 rounding
  of the KL.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vaelab.errors import ConfigError, UserError
from vaelab.models.base import Encoder
from vaelab.rules import Num, check

BN_GAMMA = Num(lo=0, lo_open=True)
"""The rule of ``model.bn_gamma`` (BN-VAE's fixed scale of the posterior means)."""
DELTA_RATE = Num(lo=0, hi=50, lo_open=True)
"""The rule of ``model.delta_rate`` (delta-VAE's committed rate per unit, nats; Razavi et al. use 0.1 to 1): the
variance bound s_l ~ e^(-2 delta - 1) must stay a double (a delta near 372 made math.log(0) a traceback)."""

BN_EPS = 1e-12
"""BatchNorm epsilon of the BN-VAE head: far below the batch variance of any encoder's raw means, so the rate bound
(gamma^2 / 2) sum_d v_d / (v_d + eps) is D gamma^2 / 2 in practice (torch's default 1e-5 is not, at small init)."""

DELTA_SLACK = 1e-6
"""Nats added to the squared mean floor of the delta head (keeps KL_d >= delta through float32 rounding)."""


class PosteriorHead(Encoder):
    """An encoder wrapper: ``forward(x) = transform(*inner(x))``; ``latent_dim`` is the inner encoder's."""

    def __init__(self, inner: Encoder) -> None:
        super().__init__()
        self.inner = inner
        self.latent_dim = inner.latent_dim

    def transform(self, mu: Tensor, logvar: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def forward(self, x: Any) -> tuple[Tensor, Tensor]:
        mu, logvar = self.inner(x)
        return self.transform(mu, logvar)


class BatchNormHead(PosteriorHead):
    """BN-VAE head (Zhu et al., ACL 2020): BatchNorm on mu with fixed scale ``gamma`` and a learned shift.

    Guarantees a batch-mean rate of at least (gamma^2 / 2) sum_d v_d / (v_d + eps) nats in training (about
    D gamma^2 / 2; see the module docstring). ``momentum`` and ``eps`` are those of :class:`torch.nn.BatchNorm1d`.
    """

    def __init__(self, inner: Encoder, gamma: float = 0.5, momentum: float | None = 0.1, eps: float = BN_EPS) -> None:
        super().__init__(inner)
        check("model.bn_gamma", gamma, BN_GAMMA)
        self.gamma = float(gamma)
        self.norm = nn.BatchNorm1d(self.latent_dim, affine=False, momentum=momentum, eps=eps)
        self.shift = nn.Parameter(torch.zeros(self.latent_dim))

    def transform(self, mu: Tensor, logvar: Tensor) -> tuple[Tensor, Tensor]:
        if self.training and mu.shape[0] < 2:
            raise UserError(
                "BN-VAE (model.posterior=bn) normalises over the batch and needs >= 2 examples per training batch; "
                f"got {mu.shape[0]} (choose train.batch_size so that no batch holds a single example)"
            )
        return self.gamma * self.norm(mu) + self.shift, logvar

    def rate_bound(self) -> float:
        """D gamma^2 / 2 nats: the lower bound on the expected rate (up to the BatchNorm epsilon)."""
        return 0.5 * self.latent_dim * self.gamma**2

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}"


def refresh_batch_norm(model: nn.Module, batches: Iterable[Any]) -> bool:
    """Recompute the running statistics of every :class:`BatchNormHead` in ``model`` for its current encoder: the
    cumulative average of the batch means and (unbiased) variances over ``batches`` (inputs of the encoder, e.g.
    training batches in training order). Touches nothing else (no RNG, no gradients; the inner encoders run in
    evaluation mode). Returns whether the model had such a head. Deterministic in the batches, so a saved model
    and a resumed run get the same statistics."""
    heads = [m for m in model.modules() if isinstance(m, BatchNormHead)]
    if not heads:
        return False
    modes = [(m, m.training) for m in model.modules()]
    momenta = [h.norm.momentum for h in heads]
    try:
        model.eval()
        for h in heads:
            h.norm.reset_running_stats()
            h.norm.momentum = None  # cumulative moving average: every batch weighs the same
            h.norm.train()
        with torch.no_grad():
            for x in batches:
                for h in heads:
                    mu, _ = h.inner(x)
                    if mu.shape[0] >= 2:
                        h.norm(mu)
    finally:
        for h, momentum in zip(heads, momenta, strict=True):
            h.norm.momentum = momentum
        for m, training in modes:
            m.training = training
    return True


def delta_variance_bounds(delta: float, tol: float = 1e-15) -> tuple[float, float]:
    """(s_l, s_u): the two roots of ln s - s + 2 delta + 1 = 0, s_l < 1 < s_u (Razavi et al. 2019), by bisection in
    double precision. For s in [s_l, s_u], f(s) = s - ln s - 1 <= 2 delta."""
    check("model.delta_rate", delta, DELTA_RATE)

    def g(s: float) -> float:  # f(s) - 2 delta: positive outside [s_l, s_u]
        return s - math.log(s) - 1.0 - 2.0 * delta

    def bisect(lo: float, hi: float) -> float:  # g(lo) and g(hi) have opposite signs
        glo = g(lo)
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            gm = g(mid)
            if (gm > 0) == (glo > 0):
                lo, glo = mid, gm
            else:
                hi = mid
            if hi - lo <= tol * max(1.0, abs(mid)):
                break
        return 0.5 * (lo + hi)

    lo = 0.5
    while g(lo) <= 0:
        lo *= 0.5
    hi = 2.0
    while g(hi) <= 0:
        hi *= 2.0
    return bisect(lo, 1.0), bisect(1.0, hi)


class DeltaHead(PosteriorHead):
    """delta-VAE head (Razavi et al., ICLR 2019): every dimension's KL(q(z_d|x) || N(0, 1)) >= ``delta`` nats, so
    the rate is at least D * delta for every input. See the module docstring for the parameterisation."""

    def __init__(self, inner: Encoder, delta: float = 0.1) -> None:
        super().__init__(inner)
        self.delta = float(delta)
        s_l, s_u = delta_variance_bounds(self.delta)
        self.var_bounds = (s_l, s_u)
        self.log_lo = math.log(s_l)
        self.log_span = math.log(s_u) - math.log(s_l)

    def transform(self, mu: Tensor, logvar: Tensor) -> tuple[Tensor, Tensor]:
        lv = self.log_lo + self.log_span * torch.sigmoid(logvar)
        f = torch.exp(lv) - lv - 1.0  # in [0, 2 delta] up to rounding
        floor = torch.sqrt(torch.clamp(2.0 * self.delta - f, min=0.0) + DELTA_SLACK)
        return floor + F.softplus(mu), lv

    def rate_bound(self) -> float:
        """D * delta nats: the minimum rate of every example."""
        return self.latent_dim * self.delta

    def extra_repr(self) -> str:
        return f"delta={self.delta}, var_bounds=({self.var_bounds[0]:.6g}, {self.var_bounds[1]:.6g})"


POSTERIOR_HEADS: tuple[str, ...] = ("gaussian", "bn", "delta")


def apply_posterior_head(encoder: Encoder, kind: str, *, bn_gamma: float = 0.5, delta_rate: float = 0.1) -> Encoder:
    """Wrap ``encoder`` in the head named ``kind`` (``gaussian``: unchanged)."""
    if kind == "gaussian":
        return encoder
    if kind == "bn":
        return BatchNormHead(encoder, gamma=bn_gamma)
    if kind == "delta":
        return DeltaHead(encoder, delta=delta_rate)
    raise ConfigError(f"model.posterior: {kind!r} is not a valid choice; valid choices: {', '.join(POSTERIOR_HEADS)}")


__all__ = [
    "BN_EPS",
    "DELTA_SLACK",
    "POSTERIOR_HEADS",
    "BatchNormHead",
    "DeltaHead",
    "PosteriorHead",
    "apply_posterior_head",
    "delta_variance_bounds",
    "refresh_batch_norm",
]
