"""The training objective, assembled from terms with scheduled weights.

    loss_t = D + beta_t * Reg + sum_i w_i(t) * Term_i        (nats per example, batch mean)

with D = -E_q log p(x|z) (one reparameterised sample), Reg the regulariser (the rate KL(q(z|x)||p(z)) unless a
free-bits variant or another regulariser replaces it) and optional extra terms. Whatever the weights, the
unweighted distortion, rate and ELBO = -(D + R) are always reported (methods.md section 1).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from vaelab.configio import from_dict
from vaelab.errors import ConfigError
from vaelab.objectives.schedules import (
    SCHEDULE_RULES,
    Schedule,
    ScheduleConfig,
    build_schedule,
    check_schedule_fits,
)
from vaelab.objectives.terms import (
    FREE_BITS,
    FREE_BITS_GROUPS,
    REGULARISER_OPTIONS_KEY,
    REGULARISERS,
    ForwardPass,
    Term,
)
from vaelab.options import Options
from vaelab.registry import Registry
from vaelab.rules import Choice, Rule, Typed

EXTRA_TERMS: Registry[Callable[..., Term]] = Registry("loss term")


@dataclass
class ObjectiveConfig:
    """``objective.*`` keys.

    - ``regulariser``: ``kl`` (the ELBO's rate), ``free_bits_batch`` (Kingma et al. 2016) or ``free_bits_fine``
      (Li et al. 2019), or any registered regulariser.
    - ``free_bits``: lambda in nats (per dimension/group for batch FB, per example for fine FB).
    - ``regulariser_options``: extra keyword options of the chosen regulariser, e.g. for ``density_gap``
      (Zhang et al. 2022) ``{chunk_size: 32, samples: 32, estimator: sampled}``. Only options the regulariser
      names are accepted (an unknown one is an error that lists the valid ones).
    - ``beta``: the regulariser's weight, a number or a schedule (see ScheduleConfig).
    - ``terms``: extra loss terms, each ``{type: NAME, weight: NUMBER-or-SCHEDULE, ...term options}``.
    """

    regulariser: str = "kl"
    free_bits: float = 0.0
    free_bits_groups: int | None = None
    regulariser_options: dict[str, Any] = field(default_factory=dict)
    beta: ScheduleConfig = field(default_factory=ScheduleConfig)
    terms: list[dict[str, Any]] = field(default_factory=list)


OBJECTIVE_RULES: dict[str, Rule] = {
    "objective.regulariser": Choice(registry=lambda: REGULARISERS),
    "objective.free_bits": FREE_BITS,
    "objective.free_bits_groups": FREE_BITS_GROUPS,
    "objective.regulariser_options": Typed(why="options the regulariser names (checked by it)"),
    **{f"objective.beta.{k}": r for k, r in SCHEDULE_RULES.items()},
    "objective.terms": Typed(why="a list of {type: TERM, weight: ..., options} (checked by each term)"),
}
"""The rule of every ``objective.*`` key (the options of the regulariser and the terms are checked by each)."""


@dataclass
class ObjectiveOutput:
    """``loss``: the scalar to minimise. ``stats``: detached batch means (nats per example) and weights."""

    loss: Tensor
    stats: dict[str, Tensor]
    forward: ForwardPass


class NonFiniteLossError(FloatingPointError):
    """A loss term became NaN or infinite; ``term`` names it."""

    def __init__(self, term: str, step: int, value: float) -> None:
        super().__init__(f"loss term {term!r} is {value} at step {step}")
        self.term = term
        self.step = step


class Objective(nn.Module):
    """distortion + beta(step) * regulariser + sum_i weight_i(step) * term_i."""

    def __init__(
        self,
        regulariser: Term,
        beta: Schedule,
        terms: list[tuple[Term, Schedule]] | None = None,
    ) -> None:
        super().__init__()
        self.regulariser = regulariser
        self.beta = beta
        self.extra = nn.ModuleList([t for t, _ in terms or []])
        self.weights: list[Schedule] = [w for _, w in terms or []]
        self._beta_override: float | None = None

    @contextmanager
    def fixed_beta(self, beta: float) -> Iterator[None]:
        """Within the block, the regulariser's weight is ``beta`` whatever the schedule says (a training strategy
        that pretrains as an autoencoder uses beta = 0: Li et al., EMNLP 2019); ``stats["beta"]`` reports it."""
        previous, self._beta_override = self._beta_override, float(beta)
        try:
            yield
        finally:
            self._beta_override = previous

    def forward(self, model: nn.Module, x: Any, step: int, eps: Tensor | None = None) -> ObjectiveOutput:
        posterior = model.encode(x)
        z = posterior.rsample(eps=eps)
        log_px_z = model.log_likelihood(x, z)
        fp = ForwardPass(model=model, x=x, posterior=posterior, z=z, log_px_z=log_px_z, step=step)
        distortion = -log_px_z.mean()
        rate = fp.rate_per_dim.sum(-1).mean()
        reg = self.regulariser(fp)
        beta = self.beta(step) if self._beta_override is None else self._beta_override
        loss = distortion + beta * reg
        stats: dict[str, Tensor] = {
            "distortion": distortion.detach(),
            "rate": rate.detach(),
            "elbo": -(distortion + rate).detach(),
            "reg": reg.detach(),
            "beta": torch.tensor(float(beta)),
        }
        for term, weight in zip(self.extra, self.weights, strict=True):
            value = term(fp)
            w = weight(step)
            loss = loss + w * value
            stats[term.name] = value.detach()
            stats[f"{term.name}_weight"] = torch.tensor(float(w))
        stats["loss"] = loss.detach()
        return ObjectiveOutput(loss=loss, stats=stats, forward=fp)

    @staticmethod
    def check_finite(out: ObjectiveOutput, step: int) -> None:
        """Raise :class:`NonFiniteLossError` naming the first non-finite term (distortion first)."""
        for name in ["distortion", "rate", "reg", *[k for k in out.stats if k not in ("loss", "elbo")]]:
            v = out.stats.get(name)
            if v is not None and not torch.isfinite(v).all():
                raise NonFiniteLossError(name, step, float(v))
        if not torch.isfinite(out.loss):
            raise NonFiniteLossError("loss", step, float(out.loss))


def _regulariser_options(options: dict[str, Any]) -> dict[str, Any]:
    """``objective.regulariser_options`` without the two options that have their own keys (the regulariser reads
    and checks the rest: :meth:`~vaelab.objectives.terms.Term.regulariser_options`)."""
    for opt in ("free_bits", "groups"):
        if opt in options:
            own = "free_bits" if opt == "free_bits" else "free_bits_groups"
            raise ConfigError(f"{REGULARISER_OPTIONS_KEY}.{opt}: use objective.{own}")
    return dict(options)


def check_schedules_fit(
    cfg: ObjectiveConfig, steps_per_epoch: int, total_steps: int, epochs: int | None = None
) -> None:
    """Every schedule of the objective (beta, each term's weight) reaches its value within the run's
    ``total_steps`` (``epochs``: ``train.epochs``, to name ``train.max_steps`` when it ends the run first;
    :func:`~vaelab.objectives.schedules.check_schedule_fits`)."""
    check_schedule_fits(cfg.beta, steps_per_epoch, total_steps, "objective.beta", epochs)
    for i, spec in enumerate(cfg.terms):
        weight = spec.get("weight") if isinstance(spec, dict) else None
        if isinstance(weight, dict):
            weight = from_dict(ScheduleConfig, weight, f"objective.terms[{i}].weight")
            check_schedule_fits(weight, steps_per_epoch, total_steps, f"objective.terms[{i}].weight", epochs)


def build_objective(cfg: ObjectiveConfig, steps_per_epoch: int, total_steps: int) -> Objective:
    """Build the objective a config describes. Errors name the config key at fault."""
    reg_cls = REGULARISERS.get(cfg.regulariser, key="objective.regulariser")
    regulariser = reg_cls(
        free_bits=cfg.free_bits,
        groups=cfg.free_bits_groups,
        **_regulariser_options(cfg.regulariser_options),
    )
    beta = build_schedule(cfg.beta, steps_per_epoch, total_steps, key="objective.beta")
    terms: list[tuple[Term, Schedule]] = []
    seen: dict[str, int] = {}
    for i, spec in enumerate(cfg.terms):
        key = f"objective.terms[{i}]"
        if not isinstance(spec, dict) or "type" not in spec:
            raise ConfigError(f"{key} must be a mapping with a 'type' key; got {spec!r}")
        opts = dict(spec)
        name = opts.pop("type")
        factory = EXTRA_TERMS.get(name, key=f"{key}.type")
        if name in seen:  # Objective logs one value per term type: a second entry would be summed but not logged
            raise ConfigError(
                f"{key}: loss term type {name!r} is listed twice in objective.terms (also "
                f"objective.terms[{seen[name]}]); give each term type once, with the summed weight"
            )
        seen[name] = i
        weight_cfg = opts.pop("weight", getattr(factory, "default_weight", 1.0))  # a term may set its paper default
        if isinstance(weight_cfg, dict):
            weight_cfg = from_dict(ScheduleConfig, weight_cfg, f"{key}.weight")
        declared = getattr(factory, "Options", Options)
        if declared is not Options:  # an unknown option is named with the entry's index: objective.terms[0].lambda
            declared.check_keys(opts, key, f"loss term {name!r}")
        try:
            term = factory(**opts)
        except TypeError as e:  # a factory without declared options
            raise ConfigError(f"{key}: {e}") from None
        if (check_with := getattr(term, "check_with_earlier", None)) is not None:  # terms that share a pass
            check_with([t for t, _ in terms], key)
        terms.append((term, build_schedule(weight_cfg, steps_per_epoch, total_steps, key=f"{key}.weight")))
    return Objective(regulariser, beta, terms)
