"""Coefficient schedules as functions of the optimisation step (not the epoch).

A schedule is a small object ``s(step) -> float`` attachable to any named coefficient (beta, the lambda of a
consistency term, ...). Schedules are stateless: resuming a run at step t gives the same value as running to t.
Durations may be given in steps or in epochs (converted with the run's steps per epoch).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from vaelab.errors import ConfigError
from vaelab.registry import Registry
from vaelab.rules import COUNT, Int, Num, Rule, Typed


class Schedule(Protocol):
    def __call__(self, step: int) -> float: ...


@dataclass
class ScheduleConfig:
    """``beta: {type: linear, start: 0.1, value: 1.0, warmup_epochs: 10}`` and the like.

    - ``constant``: ``value`` at every step.
    - ``linear``: ``min(value, start + (value - start) * t / T)`` (He et al., ICLR 2019: start 0.1, T 10 epochs).
    - ``sigmoid`` / ``cosine``: smooth ramps from ``start`` to ``value`` over T steps.
    - ``cyclical``: ``cycles`` cycles over ``total`` steps (default: the whole run); in each, a linear ramp
      0 -> ``value`` over a fraction ``ratio`` of the cycle, then flat (Fu et al., NAACL 2019; M = 4, R = 0.5).
    T is ``warmup_steps``, or ``warmup_epochs`` times the steps per epoch. A ramp may wait: ``delay_steps`` or
    ``delay_epochs`` hold ``start`` that long before the ramp begins (e.g. beta = 0 while an encoder is pretrained
    as an autoencoder, then 0 -> 1: Li et al., EMNLP 2019).
    """

    type: Literal["constant", "linear", "sigmoid", "cosine", "cyclical"] = "constant"
    value: float = 1.0
    start: float = 0.0
    warmup_steps: int | None = None
    warmup_epochs: float | None = None
    cycles: int = 4
    ratio: float = 0.5
    total_steps: int | None = None
    delay_steps: int | None = None
    delay_epochs: float | None = None


@dataclass(frozen=True)
class Constant:
    value: float

    def __call__(self, step: int) -> float:
        return self.value


@dataclass(frozen=True)
class Ramp:
    """From ``start`` to ``end`` over ``duration`` steps with shape ``linear``, ``sigmoid`` or ``cosine``, after
    holding ``start`` for ``delay`` steps."""

    start: float
    end: float
    duration: int
    shape: str = "linear"
    delay: int = 0

    def __call__(self, step: int) -> float:
        if step < self.delay:
            return self.start
        if self.duration <= 0:
            return self.end
        u = min(max((step - self.delay) / self.duration, 0.0), 1.0)
        if self.shape == "sigmoid":
            # logistic through (0, ~0) and (1, ~1), rescaled to hit the endpoints exactly.
            lo, hi = 1 / (1 + math.exp(6)), 1 / (1 + math.exp(-6))
            u = (1 / (1 + math.exp(-12 * (u - 0.5))) - lo) / (hi - lo)
        elif self.shape == "cosine":
            u = 0.5 * (1 - math.cos(math.pi * u))
        return self.start + (self.end - self.start) * u


@dataclass(frozen=True)
class Cyclical:
    """Cyclical annealing (Fu et al., NAACL 2019): ``cycles`` cycles over ``total`` steps."""

    value: float
    total: int
    cycles: int = 4
    ratio: float = 0.5

    def __call__(self, step: int) -> float:
        period = self.total / self.cycles
        tau = (step % period) / period
        return self.value * min(1.0, tau / self.ratio) if self.ratio > 0 else self.value


ScheduleFactory = Callable[[ScheduleConfig, int, int], Schedule]
"""How a schedule type is built: (its config, the run's steps per epoch, the run's total steps) -> the schedule."""

SCHEDULES: Registry[ScheduleFactory] = Registry("schedule type")
"""The schedule types of ``type:`` (:class:`ScheduleConfig`), each with its factory: :func:`build_schedule` builds
every schedule through this registry."""

RAMP_SHAPES = ("linear", "sigmoid", "cosine")
"""The schedule types that ramp from ``start`` to ``value`` (:class:`Ramp`): they need a length and may wait."""

SCHEDULE_KEYS: dict[str, tuple[str, ...]] = {
    "constant": ("value",),
    "cyclical": ("value", "cycles", "ratio", "total_steps"),
    **{
        shape: ("start", "value", "warmup_steps", "warmup_epochs", "delay_steps", "delay_epochs")
        for shape in RAMP_SHAPES
    },
}
"""The keys each schedule type reads besides ``type`` (its factory's): a fresh config that writes another one is
refused by :func:`check_schedule_keys` (``warmup_epochs`` under ``constant`` would otherwise be ignored)."""


def _steps(steps: int | None, epochs: float | None, steps_per_epoch: int) -> int:
    """A duration given in steps, or in epochs (converted with the run's steps per epoch); 0 when neither."""
    return steps if steps is not None else round((epochs or 0.0) * steps_per_epoch)


@SCHEDULES.register("constant")
def _constant(cfg: ScheduleConfig, steps_per_epoch: int, total_steps: int) -> Schedule:
    return Constant(cfg.value)


@SCHEDULES.register("cyclical")
def _cyclical(cfg: ScheduleConfig, steps_per_epoch: int, total_steps: int) -> Schedule:
    return Cyclical(cfg.value, max(cfg.total_steps or total_steps, 1), cfg.cycles, cfg.ratio)


def _ramp(cfg: ScheduleConfig, steps_per_epoch: int, total_steps: int) -> Schedule:
    duration = _steps(cfg.warmup_steps, cfg.warmup_epochs, steps_per_epoch)
    delay = _steps(cfg.delay_steps, cfg.delay_epochs, steps_per_epoch)
    return Ramp(cfg.start, cfg.value, duration, cfg.type, delay)


for _shape in RAMP_SHAPES:
    SCHEDULES.register(_shape)(_ramp)

SCHEDULE_RULES: dict[str, Rule] = {
    "type": Typed(why="a schedule type"),
    "value": Num(lo=0),
    "start": Num(lo=0),
    "warmup_steps": Int(0, optional=True),
    "warmup_epochs": Num(lo=0, optional=True),
    "cycles": COUNT,
    "ratio": Num(lo=0, hi=1),
    "total_steps": Int(1, optional=True),
    "delay_steps": Int(0, optional=True),
    "delay_epochs": Num(lo=0, optional=True),
}
"""The rule of each key of a schedule (``objective.beta.*`` and every term's ``weight.*``)."""


def check_schedule(value: Any, key: str) -> None:
    """A schedule (``objective.beta``, ``objective.terms[i].weight``): a number >= 0, or a
    :class:`ScheduleConfig` whose keys follow :data:`SCHEDULE_RULES` and fit its
    type (a ramp needs its length; a delay applies to ramps only)."""
    if not isinstance(value, ScheduleConfig):
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise ConfigError(f"{key} must be a number >= 0 or a schedule mapping, got {value!r}")
        Num(lo=0).check(key, value)
        return
    for k, rule in SCHEDULE_RULES.items():
        rule.check(f"{key}.{k}", getattr(value, k))
    for part, other in (("warmup_steps", "warmup_epochs"), ("delay_steps", "delay_epochs")):
        if getattr(value, part) is not None and getattr(value, other) is not None:
            raise ConfigError(f"{key}: give {part} or {other}, not both")
    if value.type not in RAMP_SHAPES:
        if value.delay_steps or value.delay_epochs:
            raise ConfigError(
                f"{key}: delay_steps/delay_epochs apply to ramps (linear, sigmoid, cosine), not {value.type}"
            )
    elif value.warmup_steps is None and value.warmup_epochs is None:
        raise ConfigError(f"{key}: a {value.type} schedule needs warmup_steps or warmup_epochs")


def check_schedule_keys(kind: str, given: Iterable[str], key: str) -> None:
    """Refuse a key of a schedule the user wrote (``given``: the keys of the mapping written at ``key``) that a
    schedule of type ``kind`` does not read (:data:`SCHEDULE_KEYS`); a type without an entry there is not checked.
    Fresh configs only (:func:`vaelab.checks.check_written_keys`)."""
    reads = SCHEDULE_KEYS.get(kind)
    if reads is None:
        return
    for k in given:
        if k == "type" or k in reads or k not in ScheduleConfig.__dataclass_fields__:
            continue
        readers = [name for name, keys in SCHEDULE_KEYS.items() if k in keys]
        raise ConfigError(
            f"{key}.{k}: not read by {key}.type={kind} (only by {' or '.join(readers)}); remove it or set "
            f"{key}.type={readers[0]}"
        )


def check_schedule_fits(cfg: Any, steps_per_epoch: int, total_steps: int, key: str) -> None:
    """A ramp whose delay (``delay_steps``, or ``delay_epochs`` of ``steps_per_epoch``) lasts the whole run never
    starts: the weight stays at ``start`` (0 for beta: an autoencoder reported as a VAE). Refused in one line
    naming the key and the run's length (the trainer's check, once the data give the run's steps)."""
    if not isinstance(cfg, ScheduleConfig) or cfg.type not in RAMP_SHAPES:
        return
    if cfg.delay_steps is not None:
        delay, what = cfg.delay_steps, f"{key}.delay_steps={cfg.delay_steps}"
    elif cfg.delay_epochs:
        delay, what = round(cfg.delay_epochs * steps_per_epoch), f"{key}.delay_epochs={cfg.delay_epochs:g}"
    else:
        return
    if delay >= total_steps:
        zero = " (beta 0: an autoencoder reported as a VAE)" if cfg.start == 0 and key.endswith("beta") else ""
        raise ConfigError(
            f"{what} delays the ramp past the run's {total_steps} steps, so {key} stays at its start "
            f"{cfg.start:g} throughout{zero}; shorten the delay or train longer"
        )


def build_schedule(
    cfg: ScheduleConfig | float | int, steps_per_epoch: int, total_steps: int, key: str = "beta"
) -> Schedule:
    """Turn a config (or a plain number, meaning constant) into a schedule of the step.

    ``key`` is the config path, named in errors.
    """
    if not isinstance(cfg, ScheduleConfig):
        check_schedule(cfg, key)
        return Constant(float(cfg))
    factory = SCHEDULES.get(cfg.type, key=f"{key}.type")
    check_schedule(cfg, key)  # the ranges and the keys a type needs (SCHEDULE_RULES)
    return factory(cfg, steps_per_epoch, total_steps)
