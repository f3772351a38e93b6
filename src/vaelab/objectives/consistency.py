"""Consistency regularisation (Sinha & Dieng, "Consistency Regularization for Variational Auto-Encoders",
NeurIPS 2021) as loss terms that compose with every model, objective and training strategy.

For a random semantics-preserving transformation t (:mod:`vaelab.transforms`) the paper maximises

    L_CR(x) = ELBO(x) + ELBO(t(x)) - lambda * KL( q(z|t(x)) || q(z|x) )

with ONE shared encoder and gradients through both arguments of the KL. vaelab minimises a loss in nats per
example (batch mean, every term summed over data and latent dimensions; never a per-pixel mean), so the CR run's
loss is assembled from the objective's own part and three extra terms (``objective.terms``):

    loss = D(x)    + beta_t  * Reg(x)             objective.beta, objective.regulariser: the ELBO of x
         + w_t     * D(t(x))                      term ``aug_distortion`` (weight 1 in the paper)
         + beta'_t * Reg'(t(x))                   term ``aug_rate`` (its weight is the beta of ELBO(t(x)))
         + lambda_t * KL(q(z|t(x)) || q(z|x))     term ``consistency_kl`` (its weight is lambda)

With unit weights and beta = beta' = 1, loss = -L_CR(x). Every coefficient is a framework weight, so each is a
number or any schedule of :mod:`vaelab.objectives.schedules` (epochs included): beta of ELBO(x) and of ELBO(t(x))
and lambda are configured and scheduled independently. Each term logs its unweighted value (nats per example):
``aug_distortion`` = D(t(x)), ``aug_rate`` = Reg'(t(x)) (the rate KL(q(z|t(x)) || p(z)) with the default
``regulariser: kl``) and ``consistency_kl`` = E_x KL(q(z|t(x)) || q(z|x)); the weights are logged as
``<name>_weight``. So -ELBO(t(x)) = aug_distortion + aug_rate and lambda = consistency_kl_weight.

The paper's setting (CR-VAE; for CR-beta-VAE give ``aug_rate`` the same weight as ``objective.beta``)::

    objective:
      beta: 1.0
      terms:
        - {type: aug_distortion, weight: 1.0, transform: simple}
        - {type: aug_rate, weight: 1.0}
        - {type: consistency_kl, weight: 0.001}     # lambda: 1e-3 in the authors' release (summed losses)

An omitted ``weight`` of ``consistency_kl`` is :attr:`ConsistencyKL.default_weight` = 1e-3, the authors' lambda
(summed losses); the other terms default to 1.

One transformed pass per loss evaluation. The three terms share one encoder/decoder pass on t(x) through
``ForwardPass.cache``: the first consistency term that runs draws t and the reparameterisation noise; the others
reuse its pass. Their pass options (``transform``, ``noise``, ``seed``) are therefore set once: give them on the
first consistency term (the others inherit), or the same values on all; a term whose explicit value disagrees with
the pass it would reuse raises a ConfigError. Options:

- ``transform``: a policy name or ``{name: ..., options}`` (:func:`vaelab.transforms.build_transform`); default
  ``simple`` (rotation ±15°, translation ±5 %, scale 0.9–1.1). Binary images are re-binarised after interpolation
  (see :mod:`vaelab.transforms`). Text token batches need a text policy (``text``, ``word_dropout``,
  ``word_swap``), which is much weaker than the image policies.
- ``noise``: ``independent`` (default): z' ~ q(z|t(x)) with fresh noise; ``shared``: z' = mu' + sigma' * eps with
  the eps of the x pass (common random numbers: with t = identity the pass on t(x) then reproduces the pass on x
  exactly).
- ``seed``: seed of the transformation (and independent noise) stream; default: the run seed (the global torch
  seed when the objective is built, which the trainer sets to ``seed``).

Randomness and resumption. The draws of a loss evaluation come from a generator seeded from (seed, step, k, rank),
where k counts the loss evaluations within the optimisation step (aggressive training evaluates the loss several
times per step) and rank is the data-parallel process. A resumed run therefore replays the uninterrupted one. Under
data parallelism each process draws its own transformations; runs on n processes are statistically, not
bit-for-bit, equal to 1-process runs (the reparameterisation noise of the x pass does stay bit-equal).

Composition. The terms only call ``model.encode`` / ``model.log_likelihood`` on t(x), so they work with any VAE
(MLP, conv, PixelCNN decoders, text LSTMs with a text policy), any regulariser of x (KL, both free-bits variants),
any beta schedule, and every training strategy: the aggressive strategy (He et al., ICLR 2019) evaluates the same
objective, so its encoder-only inner steps also see the consistency terms. Deviations of the authors' release
that are *not* copied: the KL between diagonal Gaussians uses the standard deviation sigma = exp(logvar / 2), not
the variance, and the reconstruction term is summed over pixels, like the KL (methods.md section 3).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from vaelab.distributions import DiagonalGaussian
from vaelab.errors import ConfigError
from vaelab.objectives.objective import EXTRA_TERMS
from vaelab.objectives.terms import REGULARISERS, ForwardPass, Term, check_free_bits_apply
from vaelab.options import Options, setting
from vaelab.rules import SEED
from vaelab.seeds import torch_generator
from vaelab.transforms import Transform, build_transform, describe

DEFAULT_TRANSFORM = "simple"
"""The policy used when no consistency term names one (the paper's "simple" affine augmentation)."""

CONSISTENCY_TERMS: tuple[str, ...] = ("aug_distortion", "aug_rate", "consistency_kl")
"""Registered names of the consistency-regularisation terms (they share one pass on t(x))."""

NOISE_MODES: tuple[str, ...] = ("independent", "shared")
_CACHE_KEY = "consistency_pass"


def consistency_kl(q_t: DiagonalGaussian, q: DiagonalGaussian) -> Tensor:
    """KL( q(z|t(x)) || q(z|x) ) per example, summed over latent dimensions, nats; shape (B,).

    Closed form for diagonal Gaussians, with (mu', var') of t(x) and r_d = logvar'_d - logvar_d:

        0.5 * sum_d [ logvar_d - logvar'_d + (var'_d + (mu'_d - mu_d)^2) / var_d - 1 ]
      = 0.5 * sum_d [ expm1(r_d) - r_d + (mu'_d - mu_d)^2 / var_d ]

    (the same value as :func:`vaelab.distributions.kl_diag_gaussians`). The second form is exactly 0 for identical
    posteriors and keeps its relative accuracy for nearly identical ones, the regime a consistent encoder is in,
    where the first form cancels 1 against var'/var. Differentiable in both arguments (Sinha & Dieng 2021
    back-propagate through both).
    """
    r = q_t.logvar - q.logvar
    return 0.5 * (torch.expm1(r) - r + (q_t.mu - q.mu) ** 2 * torch.exp(-q.logvar)).sum(-1)


def augmented_pass(
    model: nn.Module,
    x: Any,
    transform: Transform,
    generator: torch.Generator,
    step: int,
    eps: Tensor | None = None,
) -> ForwardPass:
    """One encoder/decoder pass on t(x): draw t(x) with ``generator``, encode it, draw z' ~ q(z|t(x)) (with the
    given standard-normal ``eps`` (B, D), else fresh noise from ``generator``) and score log p(t(x)|z')."""
    tx = transform(x, generator)
    q_t = model.encode(tx)
    if eps is None:
        eps = torch.randn(q_t.mu.shape, generator=generator).to(device=q_t.mu.device, dtype=q_t.mu.dtype)
    z_t = q_t.rsample(eps=eps)
    return ForwardPass(model=model, x=tx, posterior=q_t, z=z_t, log_px_z=model.log_likelihood(tx, z_t), step=step)


@dataclass(frozen=True)
class PassSettings:
    """What fixes the pass on t(x): the policy (as :func:`vaelab.transforms.describe` text), noise mode, seed."""

    transform: str
    noise: str
    seed: int


@dataclass
class _SharedPass:
    settings: PassSettings
    maker: str
    fp: ForwardPass


def _rank() -> int:
    dist = torch.distributed
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


@dataclass
class PassOptions(Options):
    """The options of every consistency term (an ``objective.terms`` entry's keys besides ``type`` and ``weight``):
    the policy ``transform`` (a name or a mapping, checked by :func:`vaelab.transforms.build_transform`), the
    ``noise`` of the pass on t(x) and its ``seed``; given on the first consistency term, or the same on all."""

    transform: Any = None
    noise: Literal["independent", "shared"] | None = None
    seed: int | None = setting(None, replace(SEED, optional=True))


@dataclass
class AugmentedRateOptions(PassOptions):
    """The options of ``aug_rate``: the pass options, and the regulariser of ELBO(t(x)) with its options."""

    regulariser: str = "kl"
    free_bits: float = 0.0
    free_bits_groups: int | None = None
    regulariser_options: dict[str, Any] = field(default_factory=dict)


class ConsistencyTerm(Term):
    """Base of the three consistency terms: owns the pass options (:class:`PassOptions`) and the shared pass on
    t(x)."""

    name = "consistency"
    Options: ClassVar[type[Options]] = PassOptions

    def __init__(self, **options: Any) -> None:
        super().__init__()
        where = f"objective.terms[type={self.name}]"
        self.options = self.Options.parse(options, where, f"loss term {self.name!r}")
        transform, noise, seed = self.options.transform, self.options.noise, self.options.seed
        spec = DEFAULT_TRANSFORM if transform is None else transform
        self.transform: Transform = build_transform(spec, key=f"{where}.transform")
        self.settings = PassSettings(
            transform=describe(spec),
            noise=noise or "independent",
            seed=int(seed) if seed is not None else int(torch.initial_seed()) % 2**63,
        )
        self.explicit = {
            k: v
            for k, v in (
                ("transform", None if transform is None else self.settings.transform),
                ("noise", noise),
                ("seed", None if seed is None else int(seed)),
            )
            if v is not None
        }
        self._step = -1
        self._calls = 0

    def check_with_earlier(self, earlier: list[Term], key: str) -> None:
        """At config time (``key``: this term's ``objective.terms[i]``): the settings this term gives agree with
        those of the first consistency term among ``earlier``, which makes the shared pass on t(x) (its defaults
        for transform and noise; a seed only if it gives one), as :meth:`augmented` requires during training."""
        first = next((t for t in earlier if isinstance(t, ConsistencyTerm)), None)
        if first is None:
            return
        for name, value in self.explicit.items():
            theirs = first.explicit.get(name) if name == "seed" else getattr(first.settings, name)
            if theirs != value:
                raise ConfigError(
                    f"{key}.{name}: consistency terms disagree on {name!r}: {theirs!r} (term {first.name!r}, which "
                    f"makes the shared pass on t(x)) vs {value!r} (term {self.name!r}); give {name} on the first "
                    "consistency term only, or the same on all"
                )

    def _count_call(self, step: int) -> int:
        """k: how many times this term ran before in optimisation step ``step``."""
        if step != self._step:
            self._step, self._calls = step, 0
        k = self._calls
        self._calls += 1
        return k

    def augmented(self, fp: ForwardPass) -> ForwardPass:
        """The pass on t(x) of this loss evaluation: made here if no consistency term made it yet."""
        k = self._count_call(fp.step)
        shared: _SharedPass | None = fp.cache.get(_CACHE_KEY)
        if shared is not None:
            for key, value in self.explicit.items():
                if getattr(shared.settings, key) != value:
                    raise ConfigError(
                        f"objective.terms: consistency terms disagree on {key!r}: {getattr(shared.settings, key)!r} "
                        f"(term {shared.maker!r}, which makes the shared pass on t(x)) vs {value!r} (term "
                        f"{self.name!r}); give {key} on the first consistency term only, or the same on all"
                    )
            return shared.fp
        s = self.settings
        g = torch_generator(s.seed, "consistency", fp.step, k, _rank())
        eps = None
        if s.noise == "shared":
            q = fp.posterior
            eps = ((fp.z - q.mu) / q.std).detach()
        afp = augmented_pass(fp.model, fp.x, self.transform, g, fp.step, eps=eps)
        fp.cache[_CACHE_KEY] = _SharedPass(s, self.name, afp)
        return afp


@EXTRA_TERMS.register("aug_distortion")
class AugmentedDistortion(ConsistencyTerm):
    """D(t(x)) = -E_{q(z|t(x))} log p(t(x)|z), one reparameterised sample, nats per example (batch mean).

    Weight 1 gives the distortion part of ELBO(t(x)) in L_CR (Sinha & Dieng 2021)."""

    name = "aug_distortion"

    def forward(self, fp: ForwardPass) -> Tensor:
        return -self.augmented(fp).log_px_z.mean()


@EXTRA_TERMS.register("aug_rate")
class AugmentedRate(ConsistencyTerm):
    """The regulariser of ELBO(t(x)), nats per example (batch mean): by default the rate
    KL(q(z|t(x)) || p(z)) (analytic); ``regulariser`` may name any of ``objective.regulariser``'s choices
    (``free_bits_batch``, ``free_bits_fine`` with ``free_bits`` / ``free_bits_groups``, ...), to treat t(x) as x is
    treated; ``regulariser_options`` are that regulariser's further options (as ``objective.regulariser_options``).
    The term's weight is the beta of ELBO(t(x))."""

    name = "aug_rate"
    Options = AugmentedRateOptions

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        o = self.options
        where = f"objective.terms[type={self.name}]"
        reg_cls = REGULARISERS.get(o.regulariser, key=f"{where}.regulariser")
        check_free_bits_apply(o.regulariser, o.free_bits, o.free_bits_groups, prefix=where)
        # the regulariser's own options, named under this term (objective.terms[type=aug_rate].regulariser_options.X)
        declared = getattr(reg_cls, "Options", None)
        if declared is not None:
            declared.parse(o.regulariser_options, f"{where}.regulariser_options", f"regulariser {o.regulariser!r}")
        self.regulariser = reg_cls(free_bits=o.free_bits, groups=o.free_bits_groups, **o.regulariser_options)

    def forward(self, fp: ForwardPass) -> Tensor:
        return self.regulariser(self.augmented(fp))


@EXTRA_TERMS.register("consistency_kl")
class ConsistencyKL(ConsistencyTerm):
    """The consistency penalty E_x KL( q(z|t(x)) || q(z|x) ), closed form, nats per example (batch mean),
    gradients through both posteriors (Sinha & Dieng 2021). The term's weight is lambda."""

    name = "consistency_kl"
    default_weight = 1e-3
    """lambda of the authors' release (with summed losses). Not yet applied by ``build_objective``, which gives
    every term weight 1 when ``weight`` is omitted: set it explicitly."""

    def forward(self, fp: ForwardPass) -> Tensor:
        return consistency_kl(self.augmented(fp).posterior, fp.posterior).mean()


def cr_terms(
    lam: Any = 1e-3,
    beta_aug: Any = 1.0,
    transform: str | Mapping[str, Any] = DEFAULT_TRANSFORM,
    distortion_weight: Any = 1.0,
    **pass_options: Any,
) -> list[dict[str, Any]]:
    """The ``objective.terms`` entries of consistency regularisation: lambda ``lam``, the beta of ELBO(t(x))
    ``beta_aug``, each a number or a schedule mapping, the policy ``transform`` and further pass options
    (``noise``, ``seed``) given once on the first term."""
    return [
        {"type": "aug_distortion", "weight": distortion_weight, "transform": transform, **pass_options},
        {"type": "aug_rate", "weight": beta_aug},
        {"type": "consistency_kl", "weight": lam},
    ]


def configured_transform_key(terms: Any) -> tuple[str, str | Mapping[str, Any]] | None:
    """(config key, spec) of the policy :func:`configured_transform` finds, e.g.
    ``("objective.terms[0].transform", "simple")``; None without consistency terms."""
    if not isinstance(terms, list):
        return None
    cr = [(i, t) for i, t in enumerate(terms) if isinstance(t, Mapping) and t.get("type") in CONSISTENCY_TERMS]
    for i, t in cr:
        if t.get("transform") is not None:
            return f"objective.terms[{i}].transform", t["transform"]
    if cr:
        return f"objective.terms[{cr[0][0]}].transform (default {DEFAULT_TRANSFORM})", DEFAULT_TRANSFORM
    return None


def configured_transform(terms: list[dict[str, Any]]) -> str | Mapping[str, Any] | None:
    """The policy spec a list of ``objective.terms`` uses for consistency regularisation: the first explicit
    ``transform`` of a consistency term, :data:`DEFAULT_TRANSFORM` if consistency terms name none, None if there
    are no consistency terms."""
    cr = [t for t in terms if isinstance(t, Mapping) and t.get("type") in CONSISTENCY_TERMS]
    for t in cr:
        if t.get("transform") is not None:
            return t["transform"]
    return DEFAULT_TRANSFORM if cr else None


__all__ = [
    "CONSISTENCY_TERMS",
    "DEFAULT_TRANSFORM",
    "AugmentedDistortion",
    "AugmentedRate",
    "ConsistencyKL",
    "ConsistencyTerm",
    "PassSettings",
    "augmented_pass",
    "configured_transform",
    "consistency_kl",
    "cr_terms",
]
