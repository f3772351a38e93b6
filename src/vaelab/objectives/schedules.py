"""Coefficient schedules as functions of the optimisation step (not the epoch).

A schedule is a small object ``s(step) -> float`` attachable to any named coefficient (beta, the lambda of a
consistency term, ...). Schedules are stateless: resuming a run at step t gives the same value as running to t.
Durations may be given in steps or in epochs (converted with the run's steps per epoch).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from fractions import Fraction
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
    A schedule must reach its value within the run (a ramp by its last step, a cyclical schedule in each cycle):
    the trainer refuses one that does not (:func:`check_schedule_fits`).
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


REACH = 0.99
"""How far a ramp must get from its ``start`` to its ``value`` within the run (and a cyclical schedule towards its
``value`` in each cycle) for :func:`check_schedule_fits` to accept it: a weight that stays further off trains as
something else than the config says (a cut-off KL warm-up; beta 0 at every step of a too-short cycle)."""

MIN_SAWTOOTH_STEPS = 4
"""The steps each cycle of a cyclical schedule with ``ratio: 1`` needs: its ramp fills the cycle, so by design it
only approaches ``value`` (at the cycle's last step, (n - 1) / n of it); at least this many steps keep it a ramp."""


def _plural(n: float, unit: str) -> str:
    """``"1 epoch"``, ``"40 steps"``, ``"2.5 steps"``."""
    text = str(int(n)) if float(n).is_integer() else f"{n:.3g}"
    return f"{text} {unit}" if n == 1 else f"{text} {unit}s"


def _run_length(steps_per_epoch: int, total_steps: int, epochs: int | None) -> tuple[str, str]:
    """The run's length in words and the key that lengthens it: ``("1 epoch (8 steps)", "lengthen train.epochs")``,
    or ``("50 steps (train.max_steps)", "raise train.max_steps")`` when the step cap ends it first."""
    capped = total_steps < epochs * steps_per_epoch if epochs is not None else total_steps % steps_per_epoch != 0
    if capped:
        return f"{_plural(total_steps, 'step')} (train.max_steps)", "raise train.max_steps"
    n = epochs if epochs is not None else total_steps // steps_per_epoch
    return f"{_plural(n, 'epoch')} ({_plural(total_steps, 'step')})", "lengthen train.epochs"


def _duration(steps: int | None, epochs: float | None, steps_per_epoch: int) -> str:
    n = _plural(_steps(steps, epochs, steps_per_epoch), "step")
    return n if steps is not None else f"{_plural(epochs or 0.0, 'epoch')} ({n})"


def _check_ramp_reach(
    cfg: ScheduleConfig, steps_per_epoch: int, total_steps: int, epochs: int | None, key: str
) -> None:
    """A ramp must get :data:`REACH` of the way from ``start`` to ``value`` by the run's last step (its value is
    monotone in the step, so the last step is its furthest)."""
    if cfg.value == cfg.start:
        return
    end = _ramp(cfg, steps_per_epoch, total_steps)(total_steps - 1)
    reached = (end - cfg.start) / (cfg.value - cfg.start)
    if reached >= REACH - 1e-9:
        return
    length, longer = _run_length(steps_per_epoch, total_steps, epochs)
    warmup = "warmup_steps" if cfg.warmup_steps is not None else "warmup_epochs"
    takes = _duration(cfg.warmup_steps, cfg.warmup_epochs, steps_per_epoch)
    shorten = f"{key}.{warmup}"
    if cfg.delay_steps is not None or cfg.delay_epochs:
        delay = "delay_steps" if cfg.delay_steps is not None else "delay_epochs"
        takes += f" after a delay of {_duration(cfg.delay_steps, cfg.delay_epochs, steps_per_epoch)}"
        shorten += f" or {key}.{delay}"
    raise ConfigError(
        f"{key}: the {cfg.type} warm-up takes {takes} but the run has {length}; {key} would end at {end:.3g}, "
        f"{reached:.0%} of the way from its start {cfg.start:g} to its value {cfg.value:g}. Shorten {shorten} or "
        f"{longer}"
    )


def _check_cycles_reach(
    cfg: ScheduleConfig, steps_per_epoch: int, total_steps: int, epochs: int | None, key: str
) -> None:
    """Every cycle of a cyclical schedule that starts within the run must hold a step at :data:`REACH` of
    ``value`` within the run (with ``ratio: 1``, :data:`MIN_SAWTOOTH_STEPS` steps instead). Exact arithmetic on the
    cycle bounds (:class:`Cyclical`'s period is ``total / cycles`` steps, not always a whole number)."""
    if cfg.value == 0 or cfg.ratio == 0:
        return
    span = cfg.total_steps or total_steps
    period = Fraction(max(span, 1), cfg.cycles)
    need = REACH if cfg.ratio < 1 else (MIN_SAWTOOTH_STEPS - 1) / MIN_SAWTOOTH_STEPS
    n = math.ceil(total_steps / period)  # the cycles that start within the run
    # the steps of a cycle fall alike every cycles / gcd(span, cycles) cycles: the first 10,000 and the last suffice
    for c in itertools.chain(range(min(n, 10_000)), [n - 1]):
        first = math.ceil(c * period)
        last = min(math.ceil((c + 1) * period) - 1, total_steps - 1)
        peak = 0.0 if last < first else min(1.0, float((last - c * period) / period) / cfg.ratio)
        if peak < need - 1e-9:
            break
    else:
        return
    length, longer = _run_length(steps_per_epoch, total_steps, epochs)
    over = f"{key}.total_steps={cfg.total_steps}" if cfg.total_steps else "the run's steps"
    if last >= first and (c + 1) * period > total_steps:  # total_steps does not end with the run
        what = f"is cut by the end of the run at step {total_steps} before its ramp reaches the value"
        if cfg.total_steps and cfg.total_steps > total_steps:
            fix = f"lower {key}.total_steps to at most {total_steps} (or remove it: the run's length)"
        else:
            fix = f"remove {key}.total_steps (the cycles then span the run)"
    else:
        if last < first:
            what = "holds no step"
        elif cfg.ratio < 1:
            what = f"is too short for its ramp (ratio {cfg.ratio:g} of the cycle) to reach the value"
        else:
            what = f"is too short: with ratio 1 each cycle needs at least {MIN_SAWTOOTH_STEPS} steps of ramp"
        fix = f"lower {key}.cycles" + (f" or {key}.ratio" if cfg.ratio < 1 else "")
        if cfg.total_steps:
            fix += f", raise {key}.total_steps"
    raise ConfigError(
        f"{key}: cyclical annealing with {_plural(cfg.cycles, 'cycle')} over {over} gives cycles of "
        f"{_plural(float(period), 'step')} in a run of {length}; cycle {c + 1} {what}: {key} would peak at "
        f"{peak * cfg.value:.3g} of its value {cfg.value:g}. To fix: {fix} or {longer}"
    )


def check_schedule_fits(cfg: Any, steps_per_epoch: int, total_steps: int, key: str, epochs: int | None = None) -> None:
    """A schedule must reach its value within the run's ``total_steps`` optimiser steps (``steps_per_epoch`` per
    epoch; ``epochs``: ``train.epochs``, which tells a run cut short by ``train.max_steps`` apart). Refused in one
    line naming the key, the run's length and the keys that fix it (the trainer's check, once the data give the
    run's steps):

    - a ramp whose delay (``delay_steps``, or ``delay_epochs``) lasts the whole run never starts: the weight stays
      at ``start`` (0 for beta: an autoencoder reported as a VAE);
    - a ramp that gets less than :data:`REACH` of the way to ``value`` by the last step is cut off (a 10-epoch
      warm-up in a 1-epoch run);
    - a cyclical schedule with a cycle that never reaches :data:`REACH` of ``value`` (4 cycles over 4 steps: beta
      0 at every step).

    A constant (or a plain number) always fits; a schedule type registered elsewhere is not checked."""
    if not isinstance(cfg, ScheduleConfig) or total_steps < 1:
        return
    if cfg.type == "cyclical":
        _check_cycles_reach(cfg, steps_per_epoch, total_steps, epochs, key)
        return
    if cfg.type not in RAMP_SHAPES:
        return
    if cfg.delay_steps is not None:
        delay, what = cfg.delay_steps, f"{key}.delay_steps={cfg.delay_steps}"
    elif cfg.delay_epochs:
        delay, what = round(cfg.delay_epochs * steps_per_epoch), f"{key}.delay_epochs={cfg.delay_epochs:g}"
    else:
        delay, what = 0, ""
    if delay >= total_steps:
        zero = " (beta 0: an autoencoder reported as a VAE)" if cfg.start == 0 and key.endswith("beta") else ""
        raise ConfigError(
            f"{what} delays the ramp past the run's {total_steps} steps, so {key} stays at its start "
            f"{cfg.start:g} throughout{zero}; shorten the delay or train longer"
        )
    _check_ramp_reach(cfg, steps_per_epoch, total_steps, epochs, key)


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
