"""Training strategies: how one outer optimisation step uses a batch.

A strategy owns its optimisers' parameter groups and its own state (saved in checkpoints). ``joint`` is the
ordinary VAE step; aggressive inference-network training (He et al., ICLR 2019) steps the encoder and decoder
separately and registers itself here too. Strategies are selected by ``train.strategy`` and receive
``train.strategy_options`` as keyword arguments.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from vaelab.distributed import DistInfo, average_gradients
from vaelab.objectives import Objective, ObjectiveOutput
from vaelab.options import Options
from vaelab.precision import Precision
from vaelab.registry import Registry

OPTIONS_KEY = "train.strategy_options"
"""The config key of a strategy's options."""


@dataclass
class StepContext:
    """What a strategy may use: the model, objective, optimisers, data-parallel info and helpers.

    ``noise(step, x, sub)`` returns this process's slice of the global batch's reparameterisation noise (so runs
    on 1 or several processes see the same numbers); ``loss_scale(x, sub)`` rescales a local mean loss so that
    the all-reduced gradient is the gradient of the global batch mean; ``random_batch()`` draws a fresh random
    training minibatch (aggressive training's inner loop), whose noise and scale use ``sub`` >= 1 (0 is the
    step's own batch); ``valid_mi()`` measures the encoder on the validation split between steps and returns
    ``{"mi": nats, "mi_pool": pool, "au": active units}``, the same number on every process (aggressive
    training's switch-off checked every few steps). ``precision`` (``train.precision``) runs the forward under
    autocast and, for fp16, scales the loss (:mod:`vaelab.precision`).
    """

    model: nn.Module
    objective: Objective
    optimizers: dict[str, torch.optim.Optimizer]
    dist: DistInfo
    grad_clip: float | None
    noise: Callable[..., Tensor | None]
    loss_scale: Callable[..., float]
    random_batch: Callable[[], Any]
    valid_mi: Callable[[], dict[str, float]] = field(default=lambda: _unavailable("valid_mi"))
    precision: Precision = field(default_factory=Precision)

    @classmethod
    def single_process(
        cls,
        model: nn.Module,
        objective: Objective,
        optimizers: dict[str, torch.optim.Optimizer],
        *,
        grad_clip: float | None = None,
        random_batch: Callable[[], Any] | None = None,
        valid_mi: Callable[[], dict[str, float]] | None = None,
        precision: Precision | None = None,
    ) -> StepContext:
        """A context for a loop outside the trainer (one process; noise from the global RNG; no rescaling)."""
        return cls(
            model=model,
            objective=objective,
            optimizers=optimizers,
            dist=DistInfo(),
            grad_clip=grad_clip,
            noise=lambda step, x, sub=0: None,
            loss_scale=lambda x, sub=0: 1.0,
            random_batch=random_batch or (lambda: _unavailable("random_batch")),
            valid_mi=valid_mi or (lambda: _unavailable("valid_mi")),
            precision=precision or Precision(),
        )


def _unavailable(name: str) -> Any:
    raise RuntimeError(f"this StepContext was built without {name}")


class Strategy:
    """Base class. Subclasses define :meth:`param_groups` and :meth:`train_step`, and declare their options
    (``train.strategy_options``) as :attr:`Options`, an :class:`~vaelab.options.Options` dataclass: the keyword
    arguments are read into it (an unknown key, a wrong type or a value out of range is a one-line
    :class:`~vaelab.errors.ConfigError` naming ``train.strategy_options.KEY``), kept as :attr:`options` and set
    as attributes of the same names."""

    name = "strategy"
    Options: ClassVar[type[Options]] = Options
    """The declared options (the base: none)."""

    def __init__(self, **options: Any) -> None:
        self._messages: list[str] = []
        self.options = self.Options.parse(options, OPTIONS_KEY, f"strategy {self.name!r}")
        for name, value in self.options.as_kwargs().items():
            setattr(self, name, value)

    def param_groups(self, model: nn.Module) -> dict[str, list[nn.Parameter]]:
        return {"model": list(model.parameters())}

    def train_step(self, ctx: StepContext, x: Any, step: int) -> dict[str, float]:
        raise NotImplementedError

    def check_budget(self, epochs: int, total_steps: int | None, steps_per_epoch: int | None = None) -> None:
        """Refuse (one-line ConfigError naming the keys) options that do not fit the training budget: ``epochs``
        (``train.epochs``), ``total_steps`` (the run's steps; ``train.max_steps`` or None before the data are read)
        and ``steps_per_epoch`` (None before the data are read). Called when the config is read and again by the
        trainer."""

    def on_validation(self, epoch: int, metrics: dict[str, Any]) -> None:
        """Called after each validation with its metrics (aggressive training switches itself off here)."""

    def log_fields(self) -> dict[str, Any]:
        """Extra fields for the epoch's metrics record."""
        return {}

    def counts_plateaus(self) -> bool:
        """Whether the last validation may count towards a plateau (LR decay, early stopping); False while the
        model is in a phase that is not the one being selected (autoencoder pretraining)."""
        return True

    def restart_selection(self) -> bool:
        """True once, at the first validation of a phase whose models are not comparable with the previous
        phase's (after autoencoder pretraining): the trainer then forgets its best model and plateau counters
        before it looks at this validation."""
        return False

    def pop_messages(self) -> list[str]:
        """Lines for the run's log since the last call (e.g. "aggressive training switched off at step 75")."""
        messages, self._messages = self._messages, []
        return messages

    def say(self, message: str) -> None:
        """Queue a line for the run's log (the trainer writes it after the step)."""
        self._messages.append(message)

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved (attribute by attribute)."""
        for k, v in state.items():
            setattr(self, k, v)


STRATEGIES: Registry[Callable[..., Strategy]] = Registry("training strategy")


def _group_params(ctx: StepContext, names: list[str]) -> list[nn.Parameter]:
    return [p for n in names for g in ctx.optimizers[n].param_groups for p in g["params"]]


def parameters_to_freeze(ctx: StepContext, clip_names: list[str]) -> list[nn.Parameter]:
    """The parameters :func:`gradient_step` freezes for a step: those of the optimisers outside ``clip_names``
    that need no gradient for the clipping norm (and are trainable)."""
    needed = {id(p) for p in _group_params(ctx, clip_names)}
    return [
        p
        for name, o in ctx.optimizers.items()
        if name not in clip_names
        for g in o.param_groups
        for p in g["params"]
        if p.requires_grad and id(p) not in needed
    ]


def gradient_step(
    ctx: StepContext,
    x: Any,
    step: int,
    optimizer_names: list[str],
    *,
    sub: int = 0,
    clip_names: list[str] | None = None,
) -> ObjectiveOutput:
    """One loss evaluation, backward, cross-process gradient averaging, clipping, and a step of the named
    optimisers (only their parameters are averaged, clipped and stepped). ``sub`` numbers extra batches within one
    outer step (see :class:`StepContext`).

    ``clip_names`` (default: ``optimizer_names``) names the optimisers whose parameters' gradients enter the
    clipping norm: naming all of them clips by the norm of the whole model's gradient while stepping only some
    (He et al.'s aggressive code: a large decoder gradient scales the encoder's step down), at the price of
    computing the gradients of parameters that are not stepped.

    The parameters of the other optimisers are frozen (``requires_grad=False``) for the step, so autograd neither
    computes their gradients nor, when nothing upstream needs it, records their part of the graph: an encoder-only
    step of aggressive training skips the decoder's weight gradients, a decoder-only step the encoder's backward.
    The stepped parameters' gradients, hence the update, are the same as with every gradient computed."""
    opts = [ctx.optimizers[n] for n in optimizer_names]
    clip_names = list(optimizer_names) if clip_names is None else list(clip_names)
    unknown = sorted(set(optimizer_names) - set(clip_names))
    if unknown:
        raise ValueError(f"clip_names must include the stepped optimisers; missing {unknown}")
    clipped = _group_params(ctx, clip_names)
    frozen = parameters_to_freeze(ctx, clip_names)
    for o in ctx.optimizers.values():
        o.zero_grad(set_to_none=True)
    for p in frozen:
        p.requires_grad_(False)
    precision = ctx.precision
    try:
        with precision.autocast():
            out = ctx.objective(ctx.model, x, step, eps=ctx.noise(step, x, sub))
        Objective.check_finite(out, step)
        scaled = out.loss.requires_grad  # False when the stepped parameters do not reach the loss (an LM's "encoder")
        if scaled:
            precision.backward(out.loss * ctx.loss_scale(x, sub))
    finally:
        for p in frozen:
            p.requires_grad_(True)
    average_gradients(clipped, ctx.dist)  # under fp16 an inf reaches every process, which then all skip the step
    precision.unscale((ctx.optimizers[n] for n in clip_names), scaled)
    finite = True
    if ctx.grad_clip is not None:
        norm = nn.utils.clip_grad_norm_(clipped, ctx.grad_clip)
        finite = precision.scaler is None or bool(torch.isfinite(norm))
    precision.step(opts, finite, scaled)
    return out


@STRATEGIES.register("joint")
class JointStrategy(Strategy):
    """The ordinary VAE step: encoder and decoder updated together on the same loss."""

    name = "joint"

    def train_step(self, ctx: StepContext, x: Any, step: int) -> dict[str, float]:
        out = gradient_step(ctx, x, step, ["model"])
        return {k: float(v) for k, v in out.stats.items()}
