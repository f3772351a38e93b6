"""Rules for values: the building blocks of every config key's rule and of every numeric command-line option.

A :class:`Rule` says what a value may be (:class:`Num`, :func:`Int`, :class:`Text`, :class:`Choice`,
:class:`Items`, :class:`Either`, :class:`Device`, :class:`Typed`); ``rule.check(key, value)`` raises a
:class:`~vaelab.errors.ConfigError` of one line naming the key and the allowed values
(``train.batch_size must be an integer >= 1, got 0``). Each layer declares the rules of the keys it reads with
these blocks (:data:`vaelab.data.checks.DATA_RULES`, :data:`vaelab.models.MODEL_RULES`,
:data:`vaelab.objectives.objective.OBJECTIVE_RULES`, the options of each strategy, regulariser and term);
:mod:`vaelab.checks` gathers them into the table of every key of a run config.

Command-line options use the same rule objects as argparse ``type=`` converters (:func:`option`), so
``vaelab sample -n 0`` and ``vaelab sweep --workers -3`` fail like a bad config value. This module imports only
:mod:`vaelab.errors`, so that every layer can use it.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vaelab.errors import ConfigError


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e15 else repr(v)


@dataclass(frozen=True)
class Rule:
    """Base class: ``check(key, value)`` raises a :class:`ConfigError` naming ``key``; ``describe()`` says what
    is allowed, as in "``key`` must be DESCRIPTION, got VALUE"."""

    optional: bool = False
    """None (YAML ``null``) is allowed too."""

    def describe(self) -> str:
        raise NotImplementedError

    def ok(self, value: Any) -> bool:
        raise NotImplementedError

    def check(self, key: str, value: Any) -> None:
        if value is None and self.optional:
            return
        if not self.ok(value):
            what = self.describe()
            raise ConfigError(f"{key} must be {'null or ' if self.optional else ''}{what}, got {value!r}")


INT64_MAX = 2**63 - 1
"""The largest integer a config value may hold (torch and numpy sizes and seeds are 64-bit)."""


@dataclass(frozen=True)
class Num(Rule):
    """A number (an integer with ``integer``) in a range; ``lo_open``/``hi_open`` exclude the bound."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    integer: bool = False

    def describe(self) -> str:
        kind = "an integer" if self.integer else "a number"
        lo, hi = self.lo, self.hi
        if lo is not None and hi is not None:
            return f"{kind} in {'(' if self.lo_open else '['}{_fmt(lo)}, {_fmt(hi)}{')' if self.hi_open else ']'}"
        if lo is not None:
            return f"{kind} {'>' if self.lo_open else '>='} {_fmt(lo)}"
        if hi is not None:
            return f"{kind} {'<' if self.hi_open else '<='} {_fmt(hi)}"
        return f"a finite {'integer' if self.integer else 'number'}"

    def ok(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if self.integer and (not isinstance(value, int) or abs(value) > INT64_MAX):
            return False
        if not math.isfinite(value):
            return False
        if self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo):
            return False
        return not (self.hi is not None and (value >= self.hi if self.hi_open else value > self.hi))

    def check(self, key: str, value: Any) -> None:
        if self.integer and isinstance(value, int) and not isinstance(value, bool) and abs(value) > INT64_MAX:
            raise ConfigError(
                f"{key} must be {self.describe()} that fits in 64 bits (at most {INT64_MAX}), got {value}"
            )
        super().check(key, value)


def Int(lo: int | None = None, hi: int | None = None, *, optional: bool = False) -> Num:
    """An integer in [lo, hi]."""
    return Num(optional=optional, lo=lo, hi=hi, integer=True)


@dataclass(frozen=True)
class Text(Rule):
    """A non-empty string; ``no_slash``: without a path separator; ``one_token``: without whitespace."""

    no_slash: bool = False
    one_token: bool = False

    def describe(self) -> str:
        if self.one_token:
            return "one token (a non-empty string without spaces or control characters)"
        if self.no_slash:
            return "a non-empty name without '/' or control characters"
        return "a non-empty string without control characters"

    def ok(self, value: Any) -> bool:
        if not isinstance(value, str) or not value.strip() or not value.isprintable():
            return False
        if self.no_slash and ("/" in value or "\\" in value):
            return False
        return not (self.one_token and len(value.split()) != 1)


@dataclass(frozen=True)
class Choice(Rule):
    """A name registered in a registry (``registry()`` returns it; imported lazily)."""

    registry: Callable[[], Any] = lambda: ()

    def describe(self) -> str:
        return f"one of {', '.join(sorted(self.registry()))}"

    def ok(self, value: Any) -> bool:
        return isinstance(value, str) and value in self.registry()


@dataclass(frozen=True)
class Items(Rule):
    """A list whose every item follows ``item`` (``min_len``/``max_len`` items)."""

    item: Rule = dataclasses.field(default_factory=lambda: Int(1))
    min_len: int = 0
    max_len: int | None = None
    unique: bool = False
    """No item twice."""

    def describe(self) -> str:
        n = f"{self.min_len} to {self.max_len} " if self.max_len is not None else ""
        n = n or (f"at least {self.min_len} " if self.min_len else "")
        return f"a list of {n}{'distinct ' if self.unique else ''}items, each {self.item.describe()}"

    def ok(self, value: Any) -> bool:
        if not isinstance(value, list | tuple) or len(value) < self.min_len:
            return False
        if self.max_len is not None and len(value) > self.max_len:
            return False
        if self.unique and len({repr(v) for v in value}) != len(value):
            return False
        return all(self.item.ok(v) for v in value)

    def check(self, key: str, value: Any) -> None:
        if isinstance(value, list | tuple):  # name the item at fault: model.hidden[1] must be ...
            for i, v in enumerate(value):
                self.item.check(f"{key}[{i}]", v)
        super().check(key, value)


@dataclass(frozen=True)
class Either(Rule):
    """One of the fixed ``words`` or a value following ``rule``."""

    words: tuple[str, ...] = ()
    rule: Rule = dataclasses.field(default_factory=Num)

    def describe(self) -> str:
        return f"{' or '.join(repr(w) for w in self.words)} or {self.rule.describe()}"

    def ok(self, value: Any) -> bool:
        return value in self.words or self.rule.ok(value)


DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


@dataclass(frozen=True)
class Device(Rule):
    """A device name: auto, cpu, cuda, cuda:N or mps (whether it exists here is checked when it is used:
    :func:`check_device_available`)."""

    def describe(self) -> str:
        return "auto, cpu, cuda, cuda:N or mps"

    def ok(self, value: Any) -> bool:
        return isinstance(value, str) and bool(DEVICE_PATTERN.match(value))


@dataclass(frozen=True)
class Typed(Rule):
    """The loader's type check is the whole rule (booleans, closed choices, paths), or the value is checked by
    the component it configures (``why``)."""

    why: str = ""

    def describe(self) -> str:
        return self.why or "a value of the declared type"

    def ok(self, value: Any) -> bool:
        return True


PROBABILITY_OPEN = Num(lo=0, hi=1, hi_open=True)
COUNT = Int(1)
SEED = Int(0, 2**63 - 1)

# Upper bounds. A value past one of these is a typo (1e18 for 1e3), not a request: without the bound it was
# accepted and then failed late (a traceback of torch's size arithmetic, out of memory after the data were
# generated), trained into NaN, or ran for ever. Each bound is far above any published setting; the fuzzer of
# tests/test_fuzz_inputs.py tries 1e18 on every key.
MAX_UNITS = 10**5
"""The most units of one layer or space: latent dimensions, hidden units, embedding sizes, channels (published VAEs
use at most a few thousand; 10**5 x 10**5 weights would already be 40 GB)."""
MAX_LAYERS = 10**3
"""The most layers of a stack (``model.pixelcnn_layers``, the items of ``model.hidden`` and ``model.channels``)."""
MAX_EXAMPLES = 10**7
"""The most examples a data set generates or an evaluation subset holds (the synthetic sets are made in memory)."""
MAX_EPOCHS = 10**6
"""The most epochs of a run."""
MIN_EVAL_EXAMPLES = 2
"""The fewest examples an evaluation measures: MI compares each example's z with the other examples' posteriors
and active units take a variance over examples, both undefined for one example."""
MAX_SAMPLES = 10**4
"""The most Monte Carlo samples per example of a training loss (``objective.regulariser_options.samples``): each
costs a (samples, batch, latent) tensor at every step."""
MAX_INIT_RANGE = 10.0
"""The widest initial weight range U(-r, r) (He et al. 2019 use 0.01 and 0.1): past it the first step is NaN."""
MAX_LR = 10.0
"""The largest learning rate: 10x the largest published one (SGD 1.0 on text, He et al. 2019)."""


def too_few_to_evaluate(n: int, what: str, fix: str = "give it more examples") -> str | None:
    """The one-line reason why ``what`` (e.g. ``"data set X: the valid split"``) holding ``n`` examples cannot be
    evaluated (1 example: :data:`MIN_EVAL_EXAMPLES`), or None; 0 examples is the caller's own message. ``fix``: what
    to change (the keys that size the split)."""
    if 0 < n < MIN_EVAL_EXAMPLES:
        return f"{what} holds {n} example; its evaluation (MI, active units) needs at least {MIN_EVAL_EXAMPLES}: {fix}"
    return None


WIDTH = Int(1, MAX_UNITS)
"""A number of units (:data:`MAX_UNITS`)."""


def check(key: str, value: Any, rule: Rule) -> Any:
    """Apply ``rule`` to ``value``: a one-line :class:`ConfigError` (a ValueError) naming ``key``. Returns
    ``value``. The guard of functions that can be called without a loaded config, and of the options that
    strategies, regularisers and terms name (``check("train.strategy_options.window", window, COUNT)``)."""
    rule.check(key, value)
    return value


def option(rule: Rule, flag: str) -> Callable[[str], Any]:
    """An argparse ``type=`` converter that parses the option's text and checks ``rule``; the error names
    ``flag`` and the allowed values (argparse prints it as one line with exit status 2)."""

    def convert(text: str) -> Any:
        value: Any = text
        if isinstance(rule, Num) or (isinstance(rule, Either) and text not in rule.words):
            try:
                value = int(text)
            except ValueError:
                try:
                    value = float(text) if not (isinstance(rule, Num) and rule.integer) else text
                except ValueError:
                    value = text
        if value is None or not rule.ok(value):
            raise argparse.ArgumentTypeError(f"must be {rule.describe()}, got {text!r}")
        return value

    convert.__name__ = flag  # argparse names the converter in some messages
    return convert


def device_available(name: str) -> bool:
    """Whether device ``name`` (auto, cpu, cuda, cuda:N, mps) exists on this machine."""
    try:
        check_device_available(name)
    except ConfigError:
        return False
    return True


def check_device_available(name: str, key: str = "train.device") -> None:
    """Raise a one-line :class:`ConfigError` when device ``name`` does not exist on this machine."""
    import torch

    if not DEVICE_PATTERN.match(name):
        raise ConfigError(f"{key} must be {Device().describe()}, got {name!r}")
    if name in ("auto", "cpu"):
        return
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(
                f"{key}={name}: CUDA is not available on this machine (torch {torch.__version__}, "
                f"torch.cuda.is_available() is False); use {key}=cpu or auto"
            )
        index = int(name.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise ConfigError(
                f"{key}={name}: this machine has {torch.cuda.device_count()} CUDA device(s) (cuda:0 .. "
                f"cuda:{torch.cuda.device_count() - 1})"
            )
    if name == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ConfigError(f"{key}=mps: Apple's MPS backend is not available on this machine; use {key}=cpu or auto")


def get_key(cfg: Any, key: str) -> Any:
    """The value at a dotted key of a (nested) config dataclass."""
    for part in key.split("."):
        cfg = getattr(cfg, part)
    return cfg


def check_section(section: Any, prefix: str, rules: dict[str, Rule]) -> None:
    """Apply every rule of ``rules`` under ``prefix`` (``data``, ``model``, ``train.lr_decay``, ...) to the
    section dataclass ``section``."""
    for key, rule in rules.items():
        if key.startswith(f"{prefix}."):
            rule.check(key, get_key(section, key[len(prefix) + 1 :]))
