"""The pieces a VAE loss is assembled from.

The training loss is ``distortion + beta_t * regulariser + sum_i w_i(t) * extra_i``, each part a batch-mean
in nats per example. The **regulariser** stands where the rate KL(q(z|x) || p(z)) stands in the ELBO (free bits,
density gap, ... replace it); **extra terms** are added on top (consistency regularisation, ...). Terms see a
:class:`ForwardPass` and may run the model again (e.g. on a transformed batch) through it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from vaelab.distributions import DiagonalGaussian
from vaelab.errors import ConfigError
from vaelab.options import Options
from vaelab.registry import Registry
from vaelab.rules import Int, Num, check

REGULARISER_OPTIONS_KEY = "objective.regulariser_options"
"""The config key of the regulariser's options."""


@dataclass
class ForwardPass:
    """One encoder/decoder pass over a batch, shared by all terms.

    ``log_px_z``: (B,) log p(x|z) at the sample ``z`` (B, D); ``step``: the optimisation step.
    ``cache``: scratch space for terms that share work (e.g. a second pass on transformed data).
    """

    model: nn.Module
    x: Any
    posterior: DiagonalGaussian
    z: Tensor
    log_px_z: Tensor
    step: int
    cache: dict[str, Any] = field(default_factory=dict)

    @property
    def rate_per_dim(self) -> Tensor:
        """KL(q(z|x) || N(0, I)) per example and dimension, (B, D), nats."""
        if "rate_per_dim" not in self.cache:
            self.cache["rate_per_dim"] = self.posterior.kl_to_standard_normal_per_dim()
        return self.cache["rate_per_dim"]


class Term(nn.Module):
    """A loss term: ``forward(fp) -> scalar`` (nats per example, averaged over the batch).

    A term declares its options as :attr:`Options` (an :class:`~vaelab.options.Options` dataclass; the base: none).
    A regulariser reads them from ``objective.regulariser_options`` (:meth:`regulariser_options`); an extra term
    (``objective.terms``) from the keys of its entry."""

    name: str = "term"
    Options: ClassVar[type[Options]] = Options
    """The declared options (the base: none)."""

    def regulariser_options(self, options: dict[str, Any]) -> Any:
        """``options`` (``objective.regulariser_options``) read into :attr:`Options` and kept as ``self.options``;
        an unknown key, a wrong type or a value out of range is a one-line error naming the key."""
        self.options = self.Options.parse(options, REGULARISER_OPTIONS_KEY, f"regulariser {self.name!r}")
        return self.options

    def forward(self, fp: ForwardPass) -> Tensor:
        raise NotImplementedError


REGULARISERS: Registry[type[Term]] = Registry("regulariser")

FREE_BITS = Num(lo=0)
"""The rule of ``objective.free_bits``: the floor of the rate, nats."""
FREE_BITS_GROUPS = Int(1, optional=True)
"""The rule of ``objective.free_bits_groups``: null (one group per latent unit) or the number of groups."""


def check_free_bits_groups(groups: int | None, latent_dim: int) -> None:
    """``objective.free_bits_groups`` (null or an integer >= 1) divides the latent dimension."""
    check("objective.free_bits_groups", groups, FREE_BITS_GROUPS)
    if groups is not None and latent_dim % groups:
        raise ConfigError(f"objective.free_bits_groups={groups} must divide model.latent_dim={latent_dim}")


FREE_BITS_READERS: dict[str, tuple[str, ...]] = {
    "free_bits": ("free_bits_batch", "free_bits_fine"),
    "free_bits_groups": ("free_bits_batch",),
}
"""Which regularisers read ``objective.free_bits`` and ``objective.free_bits_groups`` (the others ignore them)."""


def check_free_bits_apply(regulariser: str, free_bits: float, groups: int | None, prefix: str = "objective") -> None:
    """``free_bits`` (> 0) and ``free_bits_groups`` (not null) only with a regulariser that reads them
    (:data:`FREE_BITS_READERS`): the plain rate (``kl``) or the density gap would ignore them without a word."""
    for key, given in (("free_bits", bool(free_bits)), ("free_bits_groups", groups is not None)):
        readers = FREE_BITS_READERS[key]
        if given and regulariser not in readers:
            value = free_bits if key == "free_bits" else groups
            raise ConfigError(
                f"{prefix}.{key}={value} is read only by {prefix}.regulariser={' or '.join(readers)}, not "
                f"{regulariser!r}, which would ignore it; set {prefix}.regulariser={readers[0]} or remove {key}"
            )


@REGULARISERS.register("kl")
class Rate(Term):
    """The rate R = E_x KL(q(z|x) || p(z)), analytic (Kingma & Welling, ICLR 2014)."""

    name = "kl"

    def __init__(self, free_bits: float = 0.0, groups: int | None = None, **options: Any) -> None:
        super().__init__()
        self.regulariser_options(options)
        check_free_bits_apply(self.name, free_bits, groups)

    def forward(self, fp: ForwardPass) -> Tensor:
        return fp.rate_per_dim.sum(-1).mean()


@REGULARISERS.register("free_bits_batch")
class BatchFreeBits(Term):
    """Free bits of Kingma et al. (NeurIPS 2016, IAF): sum_j max(lambda, E_batch[KL_j]).

    The latent dimensions are split into ``groups`` contiguous groups (default: one per dimension); each
    group's batch-mean KL is floored at ``free_bits`` nats, so no gradient pushes a group's rate below it.
    """

    name = "free_bits_batch"

    def __init__(self, free_bits: float = 0.0, groups: int | None = None, **options: Any) -> None:
        super().__init__()
        self.regulariser_options(options)
        check("objective.free_bits", free_bits, FREE_BITS)
        check("objective.free_bits_groups", groups, FREE_BITS_GROUPS)
        self.free_bits = free_bits
        self.groups = groups

    def forward(self, fp: ForwardPass) -> Tensor:
        kl = fp.rate_per_dim.mean(0)  # (D,)
        if self.groups is not None:
            d = kl.shape[0]
            check_free_bits_groups(self.groups, d)
            kl = kl.view(self.groups, d // self.groups).sum(-1)
        return torch.clamp(kl, min=self.free_bits).sum()


@REGULARISERS.register("free_bits_fine")
class FineFreeBits(Term):
    """Per-example, per-dimension free bits ("fine FB", Li et al., CoNLL 2019, as used by He et al. 2019):
    KL_{n,d} counts only where it exceeds target / D, where ``free_bits`` is the target in nats per example.
    """

    name = "free_bits_fine"

    def __init__(self, free_bits: float = 0.0, groups: int | None = None, **options: Any) -> None:
        super().__init__()
        self.regulariser_options(options)
        check("objective.free_bits", free_bits, FREE_BITS)
        check_free_bits_apply(self.name, free_bits, groups)
        self.free_bits = free_bits

    def forward(self, fp: ForwardPass) -> Tensor:
        kl = fp.rate_per_dim
        mask = (kl > self.free_bits / kl.shape[-1]).to(kl.dtype)
        return (kl * mask).sum(-1).mean()
