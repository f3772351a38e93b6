"""A generative fuzzer of bad inputs (issue 16): every config key, every command-line option and the numeric
arguments of the Python API, each tried with a family of bad values, so that a new kind of bad input is found by
the generator rather than by a hand-made list.

- **Config keys**: every leaf key of :class:`~vaelab.runconfig.RunConfig` (:func:`vaelab.checks.leaf_keys`), every
  declared option of every registered strategy (``train.strategy_options.*``), regulariser
  (``objective.regulariser_options.*``) and loss term (the keys of an ``objective.terms`` entry, and its weight's
  schedule keys). Each key is tried in a context that reads it (found by loading a valid value in a list of
  contexts: the image config, a text config, ``model.type=conv``, ``train.optimizer=sgd``, ...).
- **Command-line options**: every option that takes a value, of every sub-command (walked from the argparse
  parsers of ``vaelab --help``), and every file or folder argument.
- **Python API**: every int, float or str keyword argument of the metric functions of ``vaelab.__all__``.
- **Nested values** (:func:`fuzz_nested`, :func:`fuzz_sweep_lists`, :func:`fuzz_study_lists`): the items of every
  list-valued key (a bad item in first place, and a huge list: :data:`ITEM_FAMILIES`), every option of every
  transformation policy of ``POLICY_OPTIONS`` (directly, inside a compose, inside a compose inside a compose, and
  an undeclared option), the options of a loss term's own regulariser, every key of every schedule type (in
  ``objective.beta`` and in a term's weight), the list values of a sweep file (its dataclasses' list fields, the
  value lists of ``grid`` and ``zip``) and the comma-separated lists of ``vaelab study collapse``. The fast run
  tries a subset chosen by :data:`FUZZ_SEED`; ``test_nested_values_exhaustive`` (``slow``) tries them all.

Each value comes from a family (:data:`FAMILIES`): a wrong type (a string, a list, a mapping, a boolean, null),
negative, zero, huge (1e18), NaN, infinity, empty, a fraction where an integer goes, an out-of-range fraction.
The verdict of one input (:class:`Verdict`):

- refused in one line (exit status 2, or a :class:`~vaelab.errors.UserError` from the API) that names the key, the
  option or the argument, with nothing written: ``ok``;
- accepted: then it really runs (a tiny training of 2 steps and its final evaluation; the command; the function),
  which must finish without a traceback, within a time limit, and with finite metrics: ``ok``;
- otherwise a failure of a kind: ``traceback``, ``silently_wrong`` (a value that cannot mean anything, e.g. NaN or
  a string for a number, or a negative size, was accepted), ``late`` (accepted, then failed: a NaN loss, out of
  memory, ...), ``nonsense`` (finished with non-finite metrics), ``vague`` (refused, but the message is not one
  line naming the key), ``written`` (refused after writing a folder), ``hang`` (ran past the time limit).

Accepted configs are trained once per resolved config (the cache), on a tiny data set, under a memory cap and a
time limit, so that the whole module takes well under a minute on one thread. The tallies are printed
(``pytest -s``), and :func:`tally` gives them to a script (the before-fix count of issue 16 was made so).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import inspect
import io
import json
import math
import os
import resource
import shutil
import signal
import stat
import time
import typing
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from conftest import write_corpus
from vaelab.checks import RULES, Choice, Device, Either, Items, Num, Rule, Text, leaf_keys
from vaelab.config import ConfigError, load_config, to_dict
from vaelab.data.checks import TEXT_ONLY_DATA_KEYS
from vaelab.errors import UserError
from vaelab.objectives.objective import EXTRA_TERMS
from vaelab.objectives.schedules import SCHEDULE_RULES
from vaelab.objectives.terms import REGULARISERS
from vaelab.options import Options
from vaelab.rules import MAX_LAYERS
from vaelab.runconfig import RunConfig
from vaelab.training.strategies import STRATEGIES

# --------------------------------------------------------------------------------------------------------------
# the bad values

FAMILIES: dict[str, list[str]] = {
    "string": ["abc"],
    "list": ["[1, 2]"],
    "mapping": ["{a: 1}"],
    "bool": ["true"],
    "null": ["null"],
    "negative": ["-1", "-0.5"],
    "zero": ["0"],
    "huge": ["1000000000000000000", "1.0e+18"],
    "nan": [".nan", "nan"],
    "inf": [".inf", "-.inf"],
    "empty": ["''", "[]"],
    "fraction": ["0.5", "1.5"],
}
"""Families of bad values, as YAML text (as written after ``key=`` on the command line). ``fraction``: a float
where an integer goes, and an out-of-range fraction (1.5)."""

FLAG_VALUES: dict[str, list[str]] = {
    "string": ["abc"],
    "list": ["[1]"],
    "negative": ["-1"],
    "zero": ["0"],
    "huge": ["1e18"],
    "nan": ["nan"],
    "inf": ["inf"],
    "empty": [""],
    "fraction": ["1.5"],
}
"""Families of bad values of a command-line option (argv text)."""

FAILURES = ("traceback", "silently_wrong", "late", "nonsense", "vague", "written", "hang")

TIME_LIMIT = 20
"""Seconds an accepted input may run (a tiny run takes about 0.1 s)."""
MEMORY_HEADROOM = 3 * 2**30
"""Bytes of address space an accepted input may add (a huge size must fail fast, not take the machine)."""


@dataclass
class Verdict:
    area: str
    item: str
    family: str
    value: str
    kind: str
    detail: str = ""

    @property
    def failed(self) -> bool:
        return self.kind in FAILURES

    def line(self) -> str:
        return f"[{self.kind}] {self.area} {self.item}={self.value!r} ({self.family}): {self.detail[:300]}"


class _Hang(BaseException):
    """Raised by the alarm: not an Exception, so no handler of vaelab's takes it for a user error."""


@contextlib.contextmanager
def _limits(seconds: int = TIME_LIMIT) -> Iterator[None]:
    """A time limit (SIGALRM raises :class:`_Hang`) and a cap on new address space (an allocation past it fails
    at once, as on a machine without that memory)."""

    def alarm(signum: int, frame: Any) -> None:
        raise _Hang

    old_handler = signal.signal(signal.SIGALRM, alarm)
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    vm = 0
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                vm = int(line.split()[1]) * 1024
    cap = vm + MEMORY_HEADROOM if vm else soft
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old_handler)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@dataclass
class Outcome:
    rc: int | None
    err: str
    exc: BaseException | None = None
    hang: bool = False


_PARSER: list[argparse.ArgumentParser] = []
_CWD: list[Path] = []
"""The working folder of every command (a relative path given as a bad value lands there, not in the checkout)."""


def cli(argv: list[str], seconds: int = TIME_LIMIT) -> Outcome:
    """``vaelab ARGV`` in-process (the parser built once): exit status, stderr, and an exception that escaped
    ``main`` (a traceback)."""
    import vaelab.cli as vcli

    if not _PARSER:
        _PARSER.append(vcli.build_parser())
    err, out = io.StringIO(), io.StringIO()
    real = vcli.build_parser
    vcli.build_parser = lambda: _PARSER[0]  # type: ignore[assignment]
    try:
        cwd = contextlib.chdir(_CWD[0]) if _CWD else contextlib.nullcontext()
        with cwd, contextlib.redirect_stderr(err), contextlib.redirect_stdout(out), _limits(seconds):
            try:
                rc = vcli.main(argv)
            except SystemExit as e:
                rc = e.code if isinstance(e.code, int) else 2
    except _Hang:
        return Outcome(None, err.getvalue(), hang=True)
    except Exception as e:  # escaped main: a traceback
        return Outcome(None, err.getvalue(), exc=e)
    finally:
        vcli.build_parser = real  # type: ignore[assignment]
    return Outcome(rc, err.getvalue())


def _message(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if ln.strip() and not ln.startswith(("epoch ", "resuming "))]


# --------------------------------------------------------------------------------------------------------------
# the world: tiny configs, a trained image run and text run, a sweep


IMG = {
    "name": "fz",
    "seed": 0,
    "data": {"name": "synthetic_blobs", "num_examples": 64, "image_shape": [1, 8, 8], "eval_size": 16},
    "model": {"type": "mlp", "latent_dim": 2},
    # a warm-up that reaches its value within the 2-step run (the trainer refuses one that does not)
    "objective": {"beta": {"type": "linear", "start": 0.5, "value": 1.0, "warmup_steps": 1}},
    "train": {"batch_size": 32, "epochs": 1, "progress": False},
    "eval": {"batch_size": 64, "iw_samples": 3, "iw_chunk": 3},
}
"""The tiny image config: 2 steps of training, a final evaluation of 16 examples (about 0.1 s)."""

TEXT_MODEL = {"type": "lstm_vae", "latent_dim": 2, "emb_dim": 8, "hidden_dim": 8}

FACTORY = """
import torch.nn as nn


def build(latent_dim=2):
    enc = nn.Sequential(nn.Flatten(), nn.Linear(64, 2 * latent_dim))
    dec = nn.Sequential(nn.Linear(latent_dim, 64), nn.Unflatten(1, (1, 8, 8)))
    return enc, dec
"""


def _yaml(path: Path, data: object) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@dataclass
class World:
    root: Path
    img: Path
    plain: Path
    text: Path
    npz: Path
    factory: Path
    run: Path
    text_run: Path
    sweep: Path
    sweep_dir: Path
    file: Path
    folder: Path
    fifo: Path
    counter: list[int] = field(default_factory=lambda: [0])

    def new(self) -> Path:
        self.counter[0] += 1
        return self.root / "new" / str(self.counter[0])


def make_world(root: Path) -> World:
    root.mkdir(parents=True, exist_ok=True)
    (root / "cwd").mkdir(exist_ok=True)
    _CWD[:] = [root / "cwd"]
    corpus = write_corpus(root / "corpus", n_train=40, n_eval=12)
    text = {
        **IMG,
        "data": {"name": "text", "path": str(corpus)},
        "model": TEXT_MODEL,
        "objective": {"beta": {"type": "constant", "value": 1.0}},
        "train": {"batch_size": 20, "epochs": 1, "progress": False},
        "eval": {"batch_size": 20, "iw_samples": 2, "iw_chunk": 2},
    }
    rng = np.random.default_rng(0)
    npz = root / "d.npz"
    np.savez(
        npz, train=(rng.random((64, 64)) > 0.5).astype("float32"), test=(rng.random((16, 64)) > 0.5).astype("float32")
    )
    factory = root / "fz_factory.py"
    factory.write_text(FACTORY)
    w = World(
        root=root,
        img=_yaml(root / "img.yaml", IMG),
        plain=_yaml(root / "plain.yaml", {**IMG, "objective": {}}),  # a study's base: the plain ELBO
        text=_yaml(root / "text.yaml", text),
        npz=npz,
        factory=factory,
        run=root / "run",
        text_run=root / "text_run",
        sweep=root / "sweep.yaml",
        sweep_dir=root / "sweep_dir",
        file=root / "a_file.txt",
        folder=root / "a_folder",
        fifo=root / "a_fifo",
    )
    os.mkfifo(w.fifo)
    w.file.write_text("not a folder\n")
    w.folder.mkdir()
    (root / TETROMINOES_ROOT).mkdir()  # the tetrominoes cache goes there (rendered only when a run needs it)
    for argv in (["train", str(w.img), "--out", str(w.run)], ["train", str(w.text), "--out", str(w.text_run)]):
        o = cli(argv, seconds=120)
        assert o.rc == 0, (argv, o)
    _yaml(w.sweep, {"name": "fzs", "base": str(w.img), "grid": {"seed": [0]}})
    o = cli(["sweep", str(w.sweep), "--workers", "1", "--out", str(w.sweep_dir)], seconds=120)
    assert o.rc == 0, o
    return w


# --------------------------------------------------------------------------------------------------------------
# config keys


@dataclass
class Key:
    """One config key: ``name`` as the user names it, ``overrides(value)`` the ``key=value`` items that set it, the
    type hint and the rule it should follow (for the oracle of impossible values)."""

    name: str
    overrides: Callable[[str], list[str]]
    hint: Any
    rule: Rule | None
    valid: str
    """A valid value (YAML), to find a context that reads the key."""
    context: tuple[str, list[str]] = ("img", [])
    oracle: Callable[[str, str], bool] | None = None
    """Whether accepting (family, value) can only be wrong, where the type hint cannot say (a list's item, a
    policy's option): :func:`impossible` asks it first."""
    probe: list[str] | None = None
    """Overrides that load in the key's context (default: the key at its valid value)."""
    names: tuple[str, ...] = ()
    """What a refusal may name instead of the key (the key, as errors write it); default: the key and its last
    part."""


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _hint_of(key: str) -> Any:
    cls: Any = RunConfig
    parts = key.split(".")
    for p in parts[:-1]:
        cls = _hints(cls)[p]
    return _hints(cls)[parts[-1]]


def _default_of(key: str) -> Any:
    obj: Any = RunConfig()
    for p in key.split("."):
        obj = getattr(obj, p)
    return obj


def _flow(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=10**6).strip().removesuffix("\n...").strip()


def _sample(rule: Rule | None) -> Any:
    """A value that ``rule`` accepts (None when it cannot say)."""
    if isinstance(rule, Num):
        lo = rule.lo if rule.lo is not None else 0
        v = lo + 1 if rule.hi is None or rule.hi >= lo + 1 else (lo + rule.hi) / 2
        return int(v) if rule.integer else float(v)
    if isinstance(rule, Items):
        return [_sample(rule.item)] * max(rule.min_len, 1)
    if isinstance(rule, Either):
        return rule.words[0] if rule.words else _sample(rule.rule)
    if isinstance(rule, Choice):
        return sorted(rule.registry())[0]
    if isinstance(rule, Text):
        return "abc"
    if isinstance(rule, Device):
        return "cpu"
    return None


def _options_class(obj: Any) -> type[Options] | None:
    cls = getattr(obj, "Options", None)
    return cls if isinstance(cls, type) and issubclass(cls, Options) else None


def _valid_value(f: dataclasses.Field) -> Any:
    """A value the declared option ``f`` accepts: its default (or its default factory's), else a sample of its rule."""
    default = f.default if f.default is not dataclasses.MISSING else None
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        default = f.default_factory()  # type: ignore[misc]
    return default if default is not None else _sample(f.metadata.get("rule"))


def _declared_keys(prefix: str, cls: type, context: Callable[[str], tuple[str, list[str]]]) -> Iterator[Key]:
    """A key ``PREFIX.OPTION=value`` per declared option of the Options class ``cls``, in the setup
    ``context(name)``."""
    for f in dataclasses.fields(cls):
        key = f"{prefix}.{f.name}"
        yield Key(
            key,
            lambda v, key=key: [f"{key}={v}"],
            _hints(cls)[f.name],
            f.metadata.get("rule"),
            _flow(_valid_value(f)),
            context(f.name),
        )


def _option_keys() -> Iterator[Key]:
    """The declared options of every strategy, regulariser and loss term, and each term's weight schedule keys."""
    for name in STRATEGIES.names():
        cls = _options_class(STRATEGIES.get(name))
        if cls is not None:
            yield from _declared_keys(
                "train.strategy_options",
                cls,
                lambda n, s=name: OWN_CONTEXT.get(f"train.strategy_options.{n}", ("img", [f"train.strategy={s}"])),
            )
    for name in REGULARISERS.names():
        cls = _options_class(REGULARISERS.get(name))
        if cls is not None and cls is not Options:
            yield from _declared_keys(
                "objective.regulariser_options", cls, lambda n, r=name: ("img", [f"objective.regulariser={r}"])
            )
    for name in EXTRA_TERMS.names():
        cls = _options_class(EXTRA_TERMS.get(name))
        if cls is None:
            continue
        for f in dataclasses.fields(cls):
            yield Key(
                f"objective.terms[type={name}].{f.name}",
                lambda v, n=f.name, t=name: [f"objective.terms=[{{type: {t}, weight: 1.0, {n}: {v}}}]"],
                _hints(cls)[f.name],
                f.metadata.get("rule"),
                _flow(_valid_value(f)),
            )
    term = EXTRA_TERMS.names()[0]
    for k, rule in SCHEDULE_RULES.items():
        if k == "type":
            continue
        kind = "cyclical" if k in ("cycles", "ratio", "total_steps") else "constant" if k == "value" else "linear"
        given: dict[str, Any] = {"value": 1.0}  # a schedule that reaches its value within the 2-step run
        if kind == "linear" and k != "warmup_epochs":
            given["warmup_steps"] = 1
        elif kind == "cyclical" and k != "cycles":
            given["cycles"] = 1
        extra = "".join(f"{n}: {x}, " for n, x in given.items() if n != k)
        yield Key(
            f"objective.terms[0].weight.{k}",
            lambda v, k=k, kind=kind, extra=extra, t=term: [
                f"objective.terms=[{{type: {t}, weight: {{type: {kind}, {extra}{k}: {v}}}}}]"
            ],
            _hints(type(RunConfig().objective.beta))[k],
            rule,
            _flow(_sample(rule)),
        )


OWN_CONTEXT: dict[str, tuple[str, list[str]]] = {
    **{f"data.{k}": ("text", []) for k in TEXT_ONLY_DATA_KEYS},
    **{f"data.{k}": ("npz", []) for k in ("valid_size", "path", "files")},
    **{f"train.strategy_options.{k}": ("pretrain", []) for k in ("pretrain_epochs", "pretrain_steps", "reset_decoder")},
    **{f"data.{k}": ("gauss", []) for k in ("latent_dim", "noise")},
    "data.num_templates": ("synthetic_text", []),
    **{f"data.{k}": ("tetrominoes", []) for k in ("split_kind", "cache_dir")},
    "model.factory": ("custom", []),
    "objective.beta.warmup_epochs": ("img", ["objective.beta.warmup_steps=null"]),
    "train.batch_size": ("img", ["objective.beta.warmup_steps=0"]),  # a huge batch leaves 1 step: no warm-up fits
}
"""Contexts to try first for keys that the image config would accept without reading them (named contexts:
:func:`contexts`)."""


def config_keys() -> list[Key]:
    keys = []
    for k in leaf_keys():
        default = _default_of(k)
        rule = RULES.get(k)
        valid = default if default is not None else _sample(rule)
        keys.append(
            Key(
                k,
                lambda v, k=k: [f"{k}={v}"],
                _hint_of(k),
                rule,
                _flow(valid) if valid is not None else "null",
                OWN_CONTEXT.get(k, ("img", [])),
            )
        )
    keys.extend(_option_keys())
    return keys


NAMED_CONTEXTS = {
    "npz": lambda w: ("img", ["data.name=npz", f"data.path={w.npz}", "data.valid_size=8"]),
    "pretrain": lambda w: ("img", ["train.strategy=pretrain_reset", "train.epochs=3"]),
    "gauss": lambda w: ("img", ["data.name=synthetic_gaussian", "model.likelihood=gaussian"]),
    "synthetic_text": lambda w: (
        "text",
        ["data.name=synthetic_text", "data.path=null", "data.num_examples=40", "data.eval_size=12"],
    ),
    "custom": lambda w: ("img", ["model.type=custom", f"model.factory={w.factory}:build"]),
    "tetrominoes": lambda w: (
        "img",
        [
            "data.name=tetrominoes",
            f"data.root={w.root / TETROMINOES_ROOT}",
            "data.image_shape=null",
            "data.train_size=64",
            "data.valid_size=16",
            "model.likelihood=gaussian",
        ],
    ),
}


TETROMINOES_ROOT = "tetrominoes_data"
"""The data folder (``data.root``, under the world's temporary folder) of the tetrominoes context: its default cache
folder, for ``data.cache_dir`` null or empty (else the user's cache folder would be written). Rendering takes a few
seconds, once per cache folder and process (the rendered set stays in memory: :func:`world` releases it)."""


def resolve(w: World, ctx: tuple[str, list[str]]) -> tuple[str, list[str]]:
    if ctx[0] in NAMED_CONTEXTS:
        base, items = NAMED_CONTEXTS[ctx[0]](w)
        return base, [*items, *ctx[1]]
    return ctx


def contexts(w: World) -> list[tuple[str, list[str]]]:
    """Where a key may be read: the image config, the text config, and choices that read more keys."""
    return [
        ("img", []),
        ("text", []),
        ("img", ["model.type=conv", "model.channels=[4]"]),
        ("img", ["model.likelihood=gaussian"]),
        ("img", ["model.posterior=bn"]),
        ("img", ["model.posterior=delta"]),
        ("img", ["model.type=pixelcnn", "model.channels=[4]", "model.pixelcnn_channels=4", "model.pixelcnn_layers=1"]),
        ("img", ["model.type=custom", f"model.factory={w.factory}:build"]),
        ("img", ["objective.beta.type=cyclical", "objective.beta.cycles=1"]),  # 1 cycle: it reaches 1 in 2 steps
        ("img", ["train.optimizer=sgd"]),
        ("img", ["train.lr_decay.enabled=true"]),
        ("img", ["objective.regulariser=free_bits_batch", "objective.free_bits=0.1"]),
        ("img", ["data.name=npz", f"data.path={w.npz}"]),
        ("img", ["data.name=synthetic_gaussian", "model.likelihood=gaussian"]),
        ("text", ["data.name=synthetic_text", "data.path=null", "data.num_examples=40", "data.eval_size=12"]),
        ("text", ["model.type=lstm_lm"]),
    ]


def _base(w: World, name: str) -> Path:
    return w.img if name == "img" else w.text


def _loads(w: World, ctx: tuple[str, list[str]], items: list[str]) -> bool:
    try:
        load_config(_base(w, ctx[0]), [*ctx[1], *items])
    except (ConfigError, UserError):
        return False
    return True


def find_context(w: World, key: Key) -> tuple[str, list[str]] | None:
    """The first context in which the key with a valid value loads (its own context first)."""
    probe = key.probe if key.probe is not None else key.overrides(key.valid)
    if key.context != ("img", []):  # given by hand (OWN_CONTEXT, the options' own choice)
        own = resolve(w, key.context)
        return own if key.valid == "null" or _loads(w, own, probe) else None
    for ctx in contexts(w):
        if _loads(w, ctx, probe):
            return ctx
    return None


def _numeric(hint: Any, rule: Rule | None) -> bool:
    args = set(typing.get_args(hint)) | {hint}
    return bool(args & {int, float}) or isinstance(rule, Num)


def _kinds(hint: Any) -> set[Any]:
    args = typing.get_args(hint)
    if typing.get_origin(hint) is typing.Literal:
        return {str}
    if typing.get_origin(hint) in (list, dict):
        return {hint}
    return {a for a in (args or (hint,)) if a is not None}


def impossible(key: Key, family: str, value: str) -> bool:
    """Whether accepting ``value`` for ``key`` can only be wrong: a number key given a non-number, NaN, infinity
    or a negative value (no key of vaelab means something by a negative number), an integer key given a fraction,
    a boolean key given anything but a boolean, a string key given an empty string, a list or mapping key given
    another type."""
    if key.oracle is not None:
        return key.oracle(family, value)
    hint, rule = key.hint, key.rule
    kinds = _kinds(hint)
    optional = type(None) in typing.get_args(hint) or (rule is not None and rule.optional)
    if family == "null":
        return not optional and hint is not Any and not (isinstance(rule, Items) and rule.optional)
    origin = {typing.get_origin(k) or k for k in kinds}
    if origin and origin <= {list}:  # a list of numbers: [1, 2] and [] may be valid; an item is checked as a number
        return family in ("string", "mapping", "bool", "nan", "inf", "negative", "zero", "fraction", "huge")
    if (_numeric(hint, rule) and not (kinds & {str, list, dict})) or isinstance(rule, Num):
        if family in ("string", "list", "mapping", "bool", "nan", "inf", "empty", "negative"):
            return True
        return family == "fraction" and int in kinds and float not in kinds
    if isinstance(rule, Either):
        return family in ("string", "list", "mapping", "bool", "nan", "inf", "empty", "negative")
    if kinds == {bool}:
        return family != "bool"
    if origin <= {dict}:
        return family in ("string", "list", "bool", "nan", "inf", "negative", "zero", "fraction", "huge")
    if origin <= {str}:
        return family in ("list", "mapping") or (family == "empty" and value == "''")
    return False


_TRAINED: dict[str, Verdict] = {}


def _finite_summary(out: Path) -> str:
    """'' when the run folder's summary is complete and finite, else what is wrong."""
    try:
        s = json.loads((out / "summary.json").read_text())
    except (OSError, ValueError) as e:
        return f"no summary: {e}"
    for k in ("elbo", "rate", "distortion", "nll_iw"):
        v = s.get(k)
        if v is not None and not (isinstance(v, int | float) and math.isfinite(v)):
            return f"{k}={v}"
    if isinstance(s.get("rate"), int | float) and s["rate"] < -1e-4:
        return f"rate={s['rate']} < 0"
    return ""


def judge_refusal(o: Outcome, names: list[str], new: Path | None) -> tuple[str, str]:
    lines = _message(o.err)
    msg = " | ".join(lines)
    if new is not None and new.exists() and any(new.iterdir()):
        done = (new / "metrics.jsonl").exists() or (new / "checkpoints").exists()
        return ("late" if done else "written"), msg
    if len(lines) != 1:
        return "vague", msg
    if not any(n in lines[0] for n in names):
        return "vague", msg
    return "ok", msg


def fuzz_key(w: World, key: Key, ctx: tuple[str, list[str]], family: str, value: str) -> Verdict:
    items = [*ctx[1], *key.overrides(value)]
    base = _base(w, ctx[0])
    names = list(key.names) or [key.name, key.name.rpartition(".")[2]]
    v = Verdict("config", key.name, family, value, "ok")
    try:
        cfg = load_config(base, items)
        digest = hashlib.sha256(yaml.safe_dump(to_dict(cfg)).encode()).hexdigest()
    except (ConfigError, UserError) as e:
        # refused where `vaelab train` reads the config, before anything is made: main prints this one line
        msg = " | ".join(ln.strip() for ln in str(e).splitlines() if ln.strip())
        v.kind, v.detail = ("ok" if any(n in msg for n in names) else "vague"), msg
        return v
    except Exception as e:
        v.kind, v.detail = "traceback", f"{type(e).__name__}: {e}"
        return v
    if digest is not None and digest in _TRAINED:
        cached = _TRAINED[digest]
        v.kind, v.detail = cached.kind, f"(as {cached.item}={cached.value}) {cached.detail}"
        if v.kind == "ok" and impossible(key, family, value):
            v.kind, v.detail = "silently_wrong", "accepted and ran"
        return v
    new = w.new()
    o = cli(["train", str(base), *items, "--out", str(new)])
    if o.exc is not None:
        v.kind, v.detail = "traceback", f"{type(o.exc).__name__}: {o.exc}"
    elif o.hang:
        v.kind, v.detail = "hang", f"still running after {TIME_LIMIT} s"
    elif o.rc == 2:
        if digest is not None and not (new.exists() and any(new.iterdir())):
            lines = _message(o.err)
            v.kind, v.detail = (
                ("late" if len(lines) == 1 else "vague"),
                "accepted by the config, refused later: " + (" | ".join(lines)),
            )
            if any(n in " ".join(lines) for n in names) and len(lines) == 1:
                v.kind = "ok"  # refused before any work, by a check that needs the data (still names the key)
        else:
            v.kind, v.detail = judge_refusal(o, names, new)
    elif o.rc == 0:
        wrong = _finite_summary(new)
        if wrong:
            v.kind, v.detail = "nonsense", wrong
        elif impossible(key, family, value):
            v.kind, v.detail = "silently_wrong", "accepted and ran"
        else:
            v.detail = "accepted and ran"
    else:
        lines = _message(o.err)
        diverged = o.rc == 1 and len(lines) == 1 and "training stopped" in lines[0]
        if diverged and family not in ("huge", "inf"):  # a plausible value that diverged: stopped, named, exit 1
            v.kind = "diverged"
        else:
            v.kind = "late"
        v.detail = f"exit {o.rc}: {' | '.join(lines)}"
    if digest is not None:
        _TRAINED[digest] = dataclasses.replace(v)
    shutil.rmtree(new, ignore_errors=True)
    return v


ALL_VALUES = os.environ.get("VAELAB_FUZZ_ALL") == "1"
"""Every value of every family (the tally of the notes); by default one value per family and key (chosen by a hash
of the key: deterministic, and each value of a family is tried on some keys)."""


def sample(values: list[str], key: str) -> list[str]:
    if ALL_VALUES or len(values) == 1:
        return values
    return [values[int(hashlib.sha256(key.encode()).hexdigest(), 16) % len(values)]]


def fuzz_config(w: World) -> tuple[list[Verdict], dict[str, Any]]:
    verdicts: list[Verdict] = []
    info: dict[str, Any] = {"keys": 0, "no_context": []}
    for key in config_keys():
        ctx = find_context(w, key)
        info["keys"] += 1
        if ctx is None:
            info["no_context"].append(key.name)
            ctx = resolve(w, key.context)
        for family, values in FAMILIES.items():
            for value in sample(values, key.name):
                verdicts.append(fuzz_key(w, key, ctx, family, value))
    return verdicts, info


# --------------------------------------------------------------------------------------------------------------
# command-line options


def _walk(p: argparse.ArgumentParser, path: list[str]) -> Iterator[tuple[list[str], argparse.Action]]:
    for a in p._actions:
        if isinstance(a, argparse._SubParsersAction):
            for name, sp in a.choices.items():
                yield from _walk(sp, [*path, name])
        elif not isinstance(a, argparse._HelpAction | argparse._VersionAction):
            yield path, a


def templates(w: World) -> dict[str, Callable[[Path], dict[str, Any]]]:
    """A valid invocation of each command: positionals and options (None: the option's default); ``new`` is a
    path that must not be written when the input is refused."""
    return {
        "train": lambda new: {"pos": [str(w.img)], "--out": str(new)},
        "resume": lambda new: {"pos": [str(w.run)]},
        "evaluate": lambda new: {"pos": [str(w.run)]},
        "theory linear-vae": lambda new: {
            "pos": [],
            "--quick": True,
            "--figure": "1",
            "--N": "20",
            "--seeds": "1",
            "--out": str(new),
        },
        "sample": lambda new: {"pos": [str(w.text_run)], "-n": "2"},
        "reconstruct": lambda new: {"pos": [str(w.text_run), "the cat sees it"]},
        "interpolate": lambda new: {"pos": [str(w.text_run), "the cat", "a dog"], "--steps": "2"},
        "latent-plot": lambda new: {
            "pos": [str(w.run)],
            "--out": str(new / "l.png"),
            "--max-examples": "16",
            "--prior-samples": "10",
        },
        "lag-plot": lambda new: {"pos": [], "--quick": True, "--steps": "2", "--out": str(new / "lag.png")},
        "sweep": lambda new: {"pos": [str(w.sweep)], "--workers": "1", "--out": str(new)},
        "sweep-aggregate": lambda new: {"pos": [str(w.sweep_dir)]},
        "plot-sweep": lambda new: {"pos": [str(w.sweep_dir)], "--plots-dir": str(new), "--beta-key": "seed"},
        "study collapse": lambda new: {
            "pos": [],
            "--data": str(w.plain),
            "--methods": "plain",
            "--budget": "2steps",
            "--iw-samples": "2",
            "--out": str(new),
            "--report": False,
        },
        "diagnose": lambda new: {"pos": [str(w.run)], "--no-evaluate": True},
        "report": lambda new: {"pos": [str(w.run)], "--no-samples": True, "--out": str(new / "r.html")},
    }


PATH_OPTIONS = ("--out", "--file", "--plots-dir", "--data", "--reuse")


def _argv(command: str, spec: dict[str, Any]) -> list[str]:
    argv = command.split()
    argv += spec["pos"]
    for k, v in spec.items():
        if k == "pos" or v is None or v is False:
            continue
        argv += [k] if v is True else ([k, *v] if isinstance(v, list) else [k, v])
    return argv


TEXT_FAMILIES = ("string", "list", "negative", "huge", "empty")
"""The families tried on a free-text option (a name, a list of methods, an address): its other values ('0', 'nan',
'inf', '1.5') are text like 'abc' to it, and each accepted one would run a whole study or sweep."""


def flag_values(w: World, flag: str, typed: bool = True) -> list[tuple[str, str]]:
    out = [(fam, v) for fam, vals in FLAG_VALUES.items() for v in vals if typed or fam in TEXT_FAMILIES]
    if flag in PATH_OPTIONS:
        # a FIFO of our own stands for a device: a command that replaced /dev/null would break the machine
        out += [("path", "/nonexistent/x/y"), ("path", str(w.file)), ("path", str(w.folder)), ("path", str(w.fifo))]
    return out


def judge_command(o: Outcome, names: list[str], new: Path, accepted_ok: Callable[[], str]) -> tuple[str, str]:
    if o.exc is not None:
        return "traceback", f"{type(o.exc).__name__}: {o.exc}"
    if o.hang:
        return "hang", f"still running after {TIME_LIMIT} s"
    if o.rc == 2:
        return judge_refusal(o, names, new)
    if o.rc == 0:
        wrong = accepted_ok()
        return ("nonsense", wrong) if wrong else ("ok", "accepted and ran")
    return "late", f"exit {o.rc}: {' | '.join(_message(o.err))}"


def fuzz_flags(w: World) -> tuple[list[Verdict], dict[str, Any]]:
    import vaelab.cli as vcli

    verdicts: list[Verdict] = []
    parser = vcli.build_parser()
    temps = templates(w)
    info: dict[str, Any] = {"flags": 0, "commands": 0}
    seen_commands = set()
    for path, action in _walk(parser, []):
        command = " ".join(path)
        if command not in temps or action.nargs == 0:
            continue
        seen_commands.add(command)
        flag = action.option_strings[-1] if action.option_strings else action.dest
        if not action.option_strings and action.dest in ("overrides", "sentences", "a", "b"):
            continue  # free text and key=value overrides (the config fuzz covers the keys)
        info["flags"] += 1
        for family, value in flag_values(w, flag, typed=action.type is not None):
            if flag == "--reuse" and family not in ("path", "empty", "string"):
                continue
            new = w.new()
            spec = temps[command](new)
            if action.option_strings:
                spec[action.option_strings[0]] = value
                if action.option_strings[0] == "--out":
                    pass
            else:  # a positional path
                index = [a.dest for a in _positionals(parser, path)].index(action.dest)
                spec["pos"][index] = value
            argv = _argv(command, spec)
            o = cli(argv)
            names = [*action.option_strings, action.dest.upper(), value if value.strip() else "\0", "empty"]
            kind, detail = judge_command(o, [n for n in names if n], new, lambda: "")
            if not stat.S_ISFIFO(w.fifo.lstat().st_mode):  # replaced by a file it wrote: a device would be gone
                kind, detail = "silently_wrong", f"replaced the pipe {w.fifo} with a regular file"
                w.fifo.unlink()
                os.mkfifo(w.fifo)
            typed = action.type is not None  # a number or a device (rules.option): free text is not judged
            if kind == "ok" and o.rc == 0 and family in ("nan", "inf", "negative", "list") and typed:
                kind, detail = "silently_wrong", f"accepted {value!r} and ran"
            verdicts.append(Verdict("flag", f"{command} {flag}", family, value, kind, detail))
            shutil.rmtree(new, ignore_errors=True)
            for p in _CWD[0].iterdir():  # what a relative --out made: the next input must not find it
                shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
    info["commands"] = len(seen_commands)
    return verdicts, info


def _positionals(parser: argparse.ArgumentParser, path: list[str]) -> list[argparse.Action]:
    p = parser
    for name in path:
        sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
        p = sub.choices[name]
    return [a for a in p._actions if not a.option_strings and not isinstance(a, argparse._SubParsersAction)]


# --------------------------------------------------------------------------------------------------------------
# the Python API

API_VALUES: dict[str, list[Any]] = {
    "string": ["abc"],
    "list": [[1, 2]],
    "mapping": [{"a": 1}],
    "bool": [True],
    "null": [None],
    "negative": [-1, -0.5],
    "zero": [0],
    "huge": [10**18, 1e18],
    "nan": [float("nan")],
    "inf": [float("inf")],
    "empty": [""],
    "fraction": [0.5, 1.5],
}

API_FUNCTIONS = (
    "evaluate",
    "iw_nll",
    "elbo",
    "posteriors",
    "mutual_information",
    "active_units",
    "kl_per_dim",
    "hole_metrics",
)


def _finite(result: Any) -> bool:
    if isinstance(result, torch.Tensor):
        return bool(torch.isfinite(result.float()).all()) if result.is_floating_point() else True
    if isinstance(result, dict):
        return all(_finite(v) for v in result.values())
    if isinstance(result, list | tuple):
        return all(_finite(v) for v in result)
    if isinstance(result, float):
        return math.isfinite(result)
    value = getattr(result, "value", None)
    return _finite(value) if value is not None else True


def fuzz_api(w: World) -> tuple[list[Verdict], dict[str, Any]]:
    import vaelab

    run = vaelab.load_run(w.run)
    data = torch.rand(12, 1, 8, 8).round()
    verdicts: list[Verdict] = []
    info: dict[str, Any] = {"arguments": 0}
    for fname in API_FUNCTIONS:
        fn = getattr(vaelab, fname)
        for pname, param in inspect.signature(fn).parameters.items():
            if param.kind is not inspect.Parameter.KEYWORD_ONLY:
                continue
            if not isinstance(param.default, int | float | str) or isinstance(param.default, bool):
                continue
            info["arguments"] += 1
            for family, values in API_VALUES.items():
                for value in values:
                    v = Verdict("api", f"{fname}({pname}=)", family, repr(value), "ok")
                    try:
                        with _limits():
                            result = fn(run, data, **{pname: value})
                    except _Hang:
                        v.kind, v.detail = "hang", f"still running after {TIME_LIMIT} s"
                    except UserError as e:
                        msg = str(e)
                        named = pname in msg
                        v.kind = "ok" if named and "\n" not in msg else "vague"
                        v.detail = msg
                    except Exception as e:
                        v.kind, v.detail = "traceback", f"{type(e).__name__}: {e}"
                    else:
                        numeric = isinstance(param.default, int | float) and not isinstance(param.default, str)
                        bad = family in ("string", "list", "mapping", "bool", "nan", "inf", "negative")
                        if family == "null" and not isinstance(param.default, str):
                            bad = True
                        if family == "fraction" and isinstance(param.default, int) and numeric:
                            bad = True
                        if family == "empty":
                            bad = True
                        if not _finite(result):
                            v.kind, v.detail = "nonsense", "non-finite result"
                        elif bad and (numeric or family in ("empty", "list", "mapping")):
                            v.kind, v.detail = "silently_wrong", "accepted"
                        else:
                            v.detail = "accepted"
                    verdicts.append(v)
    return verdicts, info


# --------------------------------------------------------------------------------------------------------------
# nested values: the items of every list-valued key, the options of every transformation policy (inside composes
# too), the options of a loss term's own regulariser, every key of every schedule type, and the list values of
# sweep files and study options. Each is generated from a declaration (the config dataclasses and their rules,
# POLICY_OPTIONS, the Options classes of the registries, SCHEDULE_KEYS, the sweep spec's dataclasses), never
# listed by hand; the fast run tries a subset chosen by FUZZ_SEED, the slow test every combination.

ITEM_FAMILIES: dict[str, list[Any]] = {
    "huge": [10**18, 1e18],
    "zero": [0],
    "negative": [-3, -0.5],
    "bool": [True],
    "string": ["a"],
    "empty": [""],
    "null": [None],
    "nested": [[1], []],
    "mapping": [{"a": 1}],
    "nan": [math.nan],
    "inf": [math.inf, -math.inf],
    "fraction": [0.5, 1.5],
}
"""Families of bad items of a list (Python values, written into the list as YAML)."""

HUGE_LIST = (MAX_LAYERS + 1, 10**4 + 1)
"""The length of the ``huge_list`` family (fast run, exhaustive): a valid item repeated past any sensible count
(the most layers of a stack, and ten times that)."""

FUZZ_SEED = 16
"""Chooses the subset of nested inputs of the fast run (deterministic: the same inputs every run)."""

UNKNOWN_OPTION = "fz_unknown_option"
"""An option no Options class declares (the ``unknown`` family of a nested mapping)."""


def _chosen(label: str, share: float, exhaustive: bool) -> bool:
    """Whether the fast run tries ``label`` (a share of the labels, chosen by :data:`FUZZ_SEED`)."""
    if exhaustive or share >= 1:
        return True
    digest = hashlib.sha256(f"{FUZZ_SEED}:{label}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def _strip_optional(hint: Any) -> Any:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, __import__("types").UnionType) and len(args) == 1:
        return args[0]
    return hint


def _list_item(hint: Any) -> Any | None:
    """The item type of a list hint (``list[int] | None`` -> int); None when ``hint`` is no list."""
    hint = _strip_optional(hint)
    if typing.get_origin(hint) is list:
        (item,) = typing.get_args(hint) or (Any,)
        return item
    return None


def _item_oracle(item_hint: Any, item_rule: Rule | None) -> Callable[[str, str], bool]:
    """Whether accepting an item of a family can only be wrong, from the item's type (and rule)."""
    kinds = _kinds(item_hint) if item_hint is not Any else set()

    def bad(family: str, value: str) -> bool:
        if family == "huge_list":
            return False  # a size: judged by running it (it must fail fast or run)
        if kinds & {int, float} or isinstance(item_rule, Num):
            if family in ("string", "empty", "bool", "null", "nested", "mapping", "nan", "inf", "negative"):
                return True
            return family == "fraction" and int in kinds and float not in kinds
        if kinds == {str} or isinstance(item_rule, Choice | Text):
            return family != "string"
        if {typing.get_origin(k) or k for k in kinds} == {dict}:
            return family != "mapping"
        return family in ("null", "nested", "empty")

    return bad


def _item_texts(
    valid: list[Any], exhaustive: bool, label: str, item_rule: Rule | None = None, huge: bool = True
) -> Iterator[tuple[str, str]]:
    """(family, YAML text of the list) with a bad item in first place of the valid list ``valid`` (one item per
    family by a hash of ``label``, unless ``exhaustive``), and a huge list of its first item."""
    for family, items in ITEM_FAMILIES.items():
        if not exhaustive and len(items) > 1:
            items = [items[int(hashlib.sha256(f"{label}:{family}".encode()).hexdigest(), 16) % len(items)]]
        for item in items:
            yield family, _flow([item, *valid[1:]])
    if huge and valid:  # the smallest valid item (a huge list of 512-unit layers would be a memory test)
        small = _sample(item_rule) if _sample(item_rule) is not None else valid[0]
        yield "huge_list", "[" + ", ".join([_flow(small)] * HUGE_LIST[exhaustive]) + "]"


def _valid_of(hint: Any, rule: Rule | None, default: Any) -> Any:
    """A valid value of an option: its default, else what its rule or type allows."""
    if default is not None:
        return default
    value = _sample(rule)
    if value is not None:
        return value
    hint = _strip_optional(hint)
    if typing.get_origin(hint) is typing.Literal:
        return typing.get_args(hint)[0]
    return None


def _option_fields(cls: type[Options]) -> Iterator[tuple[str, Any, Rule | None, Any]]:
    """(name, type hint, rule, a valid value) of each declared option of ``cls``."""
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else None
        if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            default = f.default_factory()  # type: ignore[misc]
        rule = f.metadata.get("rule")
        yield f.name, hints[f.name], rule, _valid_of(hints[f.name], rule, default)


PLACEHOLDER = "FZ_VALUE_HERE"


def _mapping_keys(
    cls: type[Options],
    name: str,
    wrap: Callable[[dict[str, Any]], list[str]],
    base: dict[str, Any],
    valid_of: Callable[[str], Any] = lambda n: None,
    exhaustive: bool = True,
) -> Iterator[Key]:
    """A :class:`Key` for each declared option of ``cls`` at config key ``name`` (a nested mapping ``base`` +
    the option, written into the config by ``wrap``), one for each item of a list-valued option, and one for an
    undeclared option."""

    def setter(opt: str) -> Callable[[str], list[str]]:
        return lambda v: [
            item.replace(repr(PLACEHOLDER), v).replace(PLACEHOLDER, v) for item in wrap({**base, opt: PLACEHOLDER})
        ]

    for opt, hint, rule, valid in _option_fields(cls):
        valid = valid if valid is not None else valid_of(opt)
        key = f"{name}.{opt}"
        yield Key(key, setter(opt), hint, rule, _flow(valid) if valid is not None else "null", names=(key,))
        item = _list_item(hint)
        if item is not None and isinstance(valid, list) and valid:
            item_rule = rule.item if isinstance(rule, Items) else None
            yield Key(
                f"{key}[0]",
                setter(opt),
                hint,
                rule,
                _flow(valid),
                oracle=_item_oracle(item, item_rule),
                names=(f"{key}[0]", key),
            )
    required = {opt: valid_of(opt) for opt, *_ in _option_fields(cls) if valid_of(opt) is not None}
    base = {**base, **required}  # compose's policies: the mapping is valid but for the undeclared option
    yield Key(
        f"{name}.{UNKNOWN_OPTION}",
        lambda v: [
            i.replace(repr(PLACEHOLDER), v).replace(PLACEHOLDER, v) for i in wrap({**base, UNKNOWN_OPTION: PLACEHOLDER})
        ],
        Any,
        None,
        "null",
        oracle=lambda family, value: True,  # no value of an undeclared option may be accepted
        names=(f"{name}.{UNKNOWN_OPTION}", UNKNOWN_OPTION),
        probe=wrap(base),
    )


def _terms(entry: dict[str, Any]) -> list[str]:
    return [f"objective.terms=[{_flow(entry)}]"]


def _consistency_term() -> str:
    """The first registered loss term that reads a transformation policy (its Options declare ``transform``)."""
    return next(
        n
        for n in EXTRA_TERMS.names()
        if "transform" in getattr(_options_class(EXTRA_TERMS.get(n)), "__dataclass_fields__", {})
    )


def policy_keys(exhaustive: bool) -> Iterator[Key]:
    """Every option of every transformation policy of POLICY_OPTIONS, given directly, inside a compose and inside a
    compose inside a compose (the fast run: every policy directly, a seeded share of the nested ones)."""
    from vaelab.transforms import POLICY_MODALITY, POLICY_OPTIONS

    term = _consistency_term()
    where = f"objective.terms[type={term}].transform"

    def inner_valid(modality: str) -> list[str]:
        return [next(n for n, m in POLICY_MODALITY.items() if m == modality)] if modality else ["identity"]

    for policy, cls in POLICY_OPTIONS.items():
        modality = POLICY_MODALITY.get(policy, "")
        for depth in range(3):
            if not _chosen(f"{policy}/{depth}", 1.0 if depth == 0 else 0.3, exhaustive):
                continue

            def wrap(spec: dict[str, Any], depth: int = depth) -> list[str]:
                for _ in range(depth):
                    spec = {"name": "compose", "policies": [spec]}
                return _terms({"type": term, "weight": 1.0, "transform": spec})

            name = where + ".policies[0]" * depth
            keys = _mapping_keys(
                cls,
                name,
                wrap,
                {"name": policy},
                lambda opt, m=modality: inner_valid(m) if opt == "policies" else None,
            )
            yield from keys


def term_regulariser_keys(exhaustive: bool) -> Iterator[Key]:
    """The options of the regulariser a loss term names (a term whose Options declare ``regulariser`` and
    ``regulariser_options``), for every regulariser with declared options."""
    for term in EXTRA_TERMS.names():
        fields = getattr(_options_class(EXTRA_TERMS.get(term)), "__dataclass_fields__", {})
        if not {"regulariser", "regulariser_options"} <= set(fields):
            continue
        for reg in REGULARISERS.names():
            cls = _options_class(REGULARISERS.get(reg))
            if cls is None or cls is Options:
                continue

            def wrap(opts: dict[str, Any], term: str = term, reg: str = reg) -> list[str]:
                return _terms({"type": term, "weight": 1.0, "regulariser": reg, "regulariser_options": opts})

            yield from _mapping_keys(cls, f"objective.terms[type={term}].regulariser_options", wrap, {})


def schedule_keys(exhaustive: bool) -> Iterator[Key]:
    """Every key of every schedule type (SCHEDULE_KEYS), in objective.beta and in a loss term's weight (the fast
    run: each key under a seeded choice of the types that read it, in each place)."""
    from vaelab.objectives.schedules import RAMP_SHAPES, SCHEDULE_KEYS, ScheduleConfig

    hints = _hints(ScheduleConfig)
    term = EXTRA_TERMS.names()[0]
    places = {
        "objective.beta": lambda m: [f"objective.beta={_flow(m)}"],
        "objective.terms[0].weight": lambda m: _terms({"type": term, "weight": m}),
    }
    for place, wrap in places.items():
        for k in sorted({k for keys in SCHEDULE_KEYS.values() for k in keys}):
            kinds = [t for t, keys in SCHEDULE_KEYS.items() if k in keys]
            chosen = (
                kinds
                if exhaustive
                else [kinds[int(hashlib.sha256(f"{FUZZ_SEED}:{place}.{k}".encode()).hexdigest(), 16) % len(kinds)]]
            )
            for kind in chosen:
                given: dict[str, Any] = {"type": kind, "value": 1.0}  # it reaches its value in the 2-step run
                if kind in RAMP_SHAPES and k not in ("warmup_steps", "warmup_epochs"):
                    given["warmup_steps"] = 1
                elif kind == "cyclical" and k != "cycles":
                    given["cycles"] = 1
                given.pop(k, None)
                rule = SCHEDULE_RULES[k]

                def setter(v: str, given: dict[str, Any] = given, k: str = k, wrap: Any = wrap) -> list[str]:
                    return [
                        i.replace(repr(PLACEHOLDER), v).replace(PLACEHOLDER, v) for i in wrap({**given, k: PLACEHOLDER})
                    ]

                valid = _sample(rule)
                yield Key(
                    f"{place}.{k}[type={kind}]",
                    setter,
                    hints[k],
                    rule,
                    _flow(valid),
                    names=(f"{place}.{k}", k),
                )


def list_item_keys(exhaustive: bool) -> Iterator[Key]:
    """The first item of every list-valued key of a run config (leaf keys whose type is a list)."""
    for k in leaf_keys():
        item = _list_item(_hint_of(k))
        if item is None:
            continue
        rule = RULES.get(k)
        section, _, leaf = k.partition(".")
        valid = IMG.get(section, {}).get(leaf) or _default_of(k) or _sample(rule)  # type: ignore[attr-defined]
        if not valid and item is not Any:
            valid = [_valid_of(item, rule.item if isinstance(rule, Items) else None, None)]
        if not valid or valid == [None]:
            valid = [{"type": _consistency_term()}] if k == "objective.terms" else [1]
        yield Key(
            f"{k}[0]",
            lambda v, k=k: [f"{k}={v}"],
            _hint_of(k),
            rule,
            _flow(valid),
            OWN_CONTEXT.get(k, ("img", [])),
            oracle=_item_oracle(item, rule.item if isinstance(rule, Items) else None),
            names=(f"{k}[0]", k),
        )


def nested_keys(exhaustive: bool) -> list[Key]:
    return [
        *list_item_keys(exhaustive),
        *policy_keys(exhaustive),
        *term_regulariser_keys(exhaustive),
        *schedule_keys(exhaustive),
    ]


def _values_of(key: Key, exhaustive: bool) -> Iterator[tuple[str, str]]:
    """The bad values of a nested key: bad items of a list (and a huge list), else the families of a value."""
    if key.name.endswith("[0]"):
        valid = yaml.safe_load(key.valid)
        item_rule = key.rule.item if isinstance(key.rule, Items) else None
        yield from _item_texts(valid if isinstance(valid, list) else [valid], exhaustive, key.name, item_rule)
        return
    for family, values in FAMILIES.items():
        for value in values if exhaustive else sample(values, key.name):
            yield family, value


def fuzz_nested(w: World, exhaustive: bool = False) -> tuple[list[Verdict], dict[str, Any]]:
    verdicts: list[Verdict] = []
    info: dict[str, Any] = {"keys": 0, "no_context": []}
    for key in nested_keys(exhaustive):
        ctx = find_context(w, key)
        info["keys"] += 1
        if ctx is None:
            info["no_context"].append(key.name)
            ctx = resolve(w, key.context)
        for family, value in _values_of(key, exhaustive):
            verdicts.append(fuzz_key(w, key, ctx, family, value))
    return verdicts, info


GRID_KEY = "train.lr"
"""The config key whose values a sweep's ``grid``, ``zip`` and ``variants`` lists carry here (every key's values are
fuzzed as config keys; this checks that a bad value in a list of a sweep is named like one of a config)."""


def sweep_lists(
    w: World,
) -> Iterator[tuple[str, Callable[[str], dict[str, Any]], list[Any], Callable[[str, str], bool], bool]]:
    """(name, spec with the list at ``name`` set to the YAML text given, a valid list, oracle, whether a huge
    list is tried) for each list-valued field of a sweep file (:class:`~vaelab.sweep.spec.SweepSpec`,
    :class:`~vaelab.sweep.spec.MeasureSpec`) and the value lists of its mappings of lists (``grid``, ``zip``). A
    huge list is tried where its length is not the number of points asked for (seeds, variants, zip: a request)."""
    from vaelab.sweep.spec import MeasureSpec, SweepSpec

    base = {"name": "fzl", "base": str(w.img)}
    grid_rule = RULES[GRID_KEY]
    for cls, section in ((SweepSpec, None), (MeasureSpec, "measure")):
        for f in dataclasses.fields(cls):
            hint = _strip_optional(_hints(cls)[f.name])
            item = _list_item(hint)
            name = f"{section}.{f.name}" if section else f.name
            if item is not None:
                rule = RULES.get(f"eval.{f.name}") if section else None  # measure.extra_metrics: eval's rule
                default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default  # type: ignore[misc]
                valid = default or ([_sample(rule.item)] if isinstance(rule, Items) else None)
                if valid is None:
                    valid = [{"name": "fz"}] if typing.get_origin(item) is dict else [0]

                def spec(v: str, f: str = f.name, section: str | None = section) -> dict[str, Any]:
                    value = yaml.safe_load(v)
                    return {**base, section: {f: value}} if section else {**base, f: value}

                yield (
                    name,
                    spec,
                    valid,
                    _item_oracle(item, rule.item if isinstance(rule, Items) else None),
                    bool(section),
                )
            elif typing.get_origin(hint) is dict and _list_item(typing.get_args(hint)[1]) is not None:

                def spec(v: str, f: str = f.name) -> dict[str, Any]:
                    return {**base, f: {GRID_KEY: yaml.safe_load(v)}}

                yield f"{name}.{GRID_KEY}", spec, [1e-3], _item_oracle(float, grid_rule), False


def fuzz_sweep_lists(w: World, exhaustive: bool = False) -> tuple[list[Verdict], dict[str, Any]]:
    verdicts: list[Verdict] = []
    info: dict[str, Any] = {"lists": 0}
    for name, spec, valid, oracle, huge in sweep_lists(w):
        info["lists"] += 1
        for family, text in _item_texts(valid, exhaustive, f"sweep.{name}", huge=huge):
            new = w.new()
            path = w.root / "fz_sweep_list.yaml"
            try:
                path.write_text(yaml.safe_dump(spec(text), sort_keys=False, width=10**9))
            except yaml.YAMLError:
                continue
            o = cli(["sweep", str(path), "--workers", "1", "--out", str(new)])
            item = (yaml.safe_load(text) or [None])[0]
            names = [f"{name}[0]", name, name.rpartition(".")[2]]
            names += [str(k) for k in item] if isinstance(item, dict) else []  # a variant's keys: the one at fault
            kind, detail = judge_command(o, names, new, lambda: "")
            stopped = o.rc == 1 and "training stopped" in o.err and "failed (train" in o.err
            if kind == "late" and stopped and family not in ("huge", "inf"):
                kind = "diverged"  # a plausible value whose point diverged: stopped, named, exit 1 (as a config's)
            if kind == "ok" and o.rc == 0 and oracle(family, text):
                kind, detail = "silently_wrong", "accepted and ran"
            verdicts.append(Verdict("sweep", f"{name}[0]", family, text[:60], kind, detail))
            shutil.rmtree(new, ignore_errors=True)
    return verdicts, info


def study_lists(w: World) -> Iterator[tuple[str, str, Callable[[str, str], bool]]]:
    """(option, a valid value, oracle) of each option of ``vaelab study collapse`` that takes a comma-separated list
    (its help says so: ``comma-separated``, ``S,T``)."""
    import vaelab.cli as vcli

    temps = templates(w)
    for path, action in _walk(vcli.build_parser(), []):
        command = " ".join(path)
        if command != "study collapse" or not action.option_strings or not action.help:
            continue
        if "comma-separated" not in action.help and "S,T" not in action.help:
            continue
        flag = action.option_strings[0]
        valid = temps[command](w.root).get(flag) or action.default
        numeric = str(valid).isdigit()
        yield flag, str(valid), _item_oracle(int if numeric else str, None)


STUDY_ITEMS: dict[str, list[str]] = {
    "huge": ["1e18", "1000000000000000000"],
    "zero": ["0"],
    "negative": ["-3"],
    "bool": ["true"],
    "string": ["a"],
    "empty": [""],
    "null": ["null"],
    "nested": ["[1]"],
    "mapping": ["{a: 1}"],
    "nan": ["nan"],
    "inf": ["inf"],
    "fraction": ["1.5"],
}
"""Bad items of a comma-separated option (argv text)."""


def fuzz_study_lists(w: World, exhaustive: bool = False) -> tuple[list[Verdict], dict[str, Any]]:
    verdicts: list[Verdict] = []
    info: dict[str, Any] = {"lists": 0}
    for flag, valid, oracle in study_lists(w):
        info["lists"] += 1
        for family, items in STUDY_ITEMS.items():
            for item in items if exhaustive else sample(items, f"study{flag}"):
                new = w.new()
                spec = templates(w)["study collapse"](new)
                spec[flag] = f"{valid},{item}"
                o = cli(_argv("study collapse", spec))
                kind, detail = judge_command(o, [flag, item or "empty"], new, lambda: "")
                if kind == "ok" and o.rc == 0 and oracle(family, item):
                    kind, detail = "silently_wrong", "accepted and ran"
                verdicts.append(Verdict("study", f"{flag}[1]", family, spec[flag], kind, detail))
                shutil.rmtree(new, ignore_errors=True)
    return verdicts, info


# --------------------------------------------------------------------------------------------------------------
# the tests


def tally(verdicts: list[Verdict]) -> Counter[str]:
    return Counter(v.kind for v in verdicts)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Iterator[World]:
    yield make_world(tmp_path_factory.mktemp("fuzz"))
    from vaelab.data import tetrominoes

    tetrominoes._MEMORY.clear()  # the rendered sets of the tetrominoes context (500 MB each)


def _report(name: str, verdicts: list[Verdict], info: dict[str, Any]) -> list[str]:
    failed = [v for v in verdicts if v.failed]
    print(f"\n{name}: {info}, {len(verdicts)} inputs, {dict(tally(verdicts))}")
    for v in failed:
        print("  " + v.line())
    return [v.line() for v in failed]


def test_every_config_key_with_every_family_of_bad_values(world):
    verdicts, info = fuzz_config(world)
    failed = _report("config keys", verdicts, info)
    assert info["keys"] >= len(RULES)
    assert not info["no_context"], f"keys read in no context: {info['no_context']}"
    assert not failed, "\n".join(failed)


def test_every_command_line_option_with_every_family_of_bad_values(world):
    verdicts, info = fuzz_flags(world)
    failed = _report("command-line options", verdicts, info)
    assert info["commands"] == len(templates(world))
    assert not failed, "\n".join(failed)


def test_every_numeric_api_argument_with_every_family_of_bad_values(world):
    verdicts, info = fuzz_api(world)
    failed = _report("API arguments", verdicts, info)
    assert info["arguments"] >= 15
    assert not failed, "\n".join(failed)


def test_nested_values_sampled(world):
    """The items of every list, the options of every policy, term regulariser and schedule type: a subset chosen
    by FUZZ_SEED (every key, one value per family; every policy directly, a share of the composes; each schedule
    key under one of its types)."""
    verdicts, info = fuzz_nested(world)
    failed = _report("nested values", verdicts, info)
    assert info["keys"] >= 60
    assert not info["no_context"], f"keys read in no context: {info['no_context']}"
    assert not failed, "\n".join(failed)


def test_sweep_and_study_list_items(world):
    sweep, info = fuzz_sweep_lists(world)
    study, study_info = fuzz_study_lists(world)
    failed = _report("sweep and study lists", [*sweep, *study], {**info, "study_lists": study_info["lists"]})
    assert info["lists"] >= 6 and study_info["lists"] >= 2
    assert not failed, "\n".join(failed)


@pytest.mark.slow
def test_nested_values_exhaustive(world):
    """Every value of every family on every nested key, every policy at every depth, every schedule type."""
    verdicts, info = fuzz_nested(world, exhaustive=True)
    more, _ = fuzz_sweep_lists(world, exhaustive=True)
    study, _ = fuzz_study_lists(world, exhaustive=True)
    failed = _report("nested values (exhaustive)", [*verdicts, *more, *study], info)
    assert not info["no_context"], f"keys read in no context: {info['no_context']}"
    assert not failed, "\n".join(failed)


if __name__ == "__main__":  # a tally for the notes: python tests/test_fuzz_inputs.py OUT.json
    import sys
    import tempfile

    t0 = time.time()
    w = make_world(Path(tempfile.mkdtemp(prefix="vaelab_fuzz_")))
    results = {}
    areas = (
        ("config", fuzz_config),
        ("flags", fuzz_flags),
        ("api", fuzz_api),
        ("nested", lambda w: fuzz_nested(w, ALL_VALUES)),
        ("sweep_lists", lambda w: fuzz_sweep_lists(w, ALL_VALUES)),
        ("study_lists", lambda w: fuzz_study_lists(w, ALL_VALUES)),
    )
    only = sys.argv[2].split(",") if len(sys.argv) > 2 else [a for a, _ in areas]
    for area, fn in ((a, f) for a, f in areas if a in only):
        t = time.time()
        vs, inf = fn(w)
        results[area] = {
            "info": inf,
            "tally": dict(tally(vs)),
            "seconds": round(time.time() - t, 1),
            "failures": [v.line() for v in vs if v.failed],
            "n": len(vs),
        }
        print(area, results[area]["n"], results[area]["tally"], results[area]["seconds"], file=sys.stderr)
    results["seconds"] = round(time.time() - t0, 1)
    Path(sys.argv[1]).write_text(json.dumps(results, indent=1))
