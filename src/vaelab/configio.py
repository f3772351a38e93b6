"""Typed loading of config dataclasses from mappings and YAML, with the key named in every error.

:func:`from_dict` builds a (nested) dataclass from a mapping, refusing unknown keys and wrongly typed values with
a :class:`~vaelab.errors.ConfigError` naming the key (``model.hidden``), what was given and what is valid;
:func:`read_yaml` reads a YAML mapping whose errors name the file and line (and refuses a key written twice);
:func:`apply_key_overrides` applies ``key=value`` overrides. No rule of a value lives here (:mod:`vaelab.checks`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

import yaml

from vaelab.errors import ConfigError

T = TypeVar("T")


def _type_name(tp: Any) -> str:
    if get_origin(tp) is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(tp: Any, value: Any, key: str) -> Any:
    """Check (and lightly coerce: int -> float, YAML strings of numbers) ``value`` against type hint ``tp``."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        options = get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        # Try the non-string options first so "3" in an override becomes 3 for `int | str`.
        for opt in sorted(options, key=lambda o: o is str):
            if opt is type(None):
                continue
            try:
                return _coerce(opt, value, key)
            except ConfigError as e:
                errors.append(str(e))
        if len(errors) == 1:  # e.g. an Optional[Literal]: its own message lists the choices
            raise ConfigError(errors[0])
        raise ConfigError(f"{key}: {value!r} is not a valid {' | '.join(_type_name(o) for o in options)}")
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            raise ConfigError(f"{key}: {value!r} is not a valid choice; valid choices: {', '.join(map(str, choices))}")
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping of {tp.__name__} keys, got {value!r}")
        return from_dict(tp, value, key)
    if origin is list:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        (item,) = get_args(tp) or (Any,)
        return [_coerce(item, v, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        _, vt = get_args(tp) or (Any, Any)
        return {str(k): _coerce(vt, v, f"{key}.{k}") for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    return value


def from_dict(cls: type[T], data: dict[str, Any], prefix: str = "") -> T:
    """Build dataclass ``cls`` from a mapping, rejecting unknown keys and wrongly typed values."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    for k, v in data.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if k not in names:
            same = [n for n in names if n.lower() == str(k).lower()]  # keys are lower case: TRAIN for train
            fixed = f"{prefix}.{same[0]}" if prefix and same else (same[0] if same else "")
            hint = f"; did you mean {fixed!r} (keys are case-sensitive)?" if same else ""
            raise ConfigError(f"unknown config key {key!r}{hint}; valid keys here: {', '.join(names)}")
        kwargs[k] = _coerce(hints[k], v, key)
    return cls(**kwargs)


def to_dict(cfg: Any) -> dict[str, Any]:
    """A plain, YAML-serialisable dict of a (nested) config dataclass."""
    return dataclasses.asdict(cfg)


def parse_scalar(text: str) -> Any:
    """An override value: parsed as YAML (``3``, ``1e-3``, ``true``, ``[512, 256]``, ``null``)."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def override_text(value: Any) -> str:
    """An override value that :func:`apply_overrides` parses back to ``value`` (YAML flow style).

    Floats keep a decimal point in the mantissa (PyYAML reads ``1e-05`` as a string but ``1.0e-05`` as a number).
    """
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        text = repr(value)
        if "e" in text:
            mant, _, exp = text.partition("e")
            mant = mant if "." in mant else mant + ".0"
            exp = exp if exp[0] in "+-" else "+" + exp
            text = f"{mant}e{exp}"
        return text
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        bare = bool(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_./-]*", value)) and yaml.safe_load(value) == value
        return value if bare else json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(override_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))}: {override_text(v)}" for k, v in value.items()) + "}"
    raise ConfigError(f"cannot write {value!r} ({type(value).__name__}) as an override value")


def apply_key_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` overrides to a nested mapping (values parsed as YAML), in order; a mapping value
    replaces the key's value whole (a run config's sections are merged first by
    :func:`vaelab.runconfig.apply_overrides`). An override that would replace a value that an earlier override set
    inside it (``objective.beta.value=2 objective.beta={type: linear}``) is refused: the earlier one would be lost."""
    out = _deepcopy(data)
    done: list[tuple[str, ...]] = []
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key=value (e.g. model.latent_dim=16)")
        key, _, raw = item.partition("=")
        parts = key.strip().split(".")
        if not all(p.strip() for p in parts):  # "=1", ".lr=1", "train..lr=1", "train.=1"
            raise ConfigError(
                f"override {item!r}: the key {key.strip()!r} has an empty part; write a dotted key such as train.lr"
            )
        node = out
        for p in parts[:-1]:
            nxt = node.get(p)
            if nxt is None:
                nxt = node[p] = {}
            if not isinstance(nxt, dict):
                raise ConfigError(f"override {key!r}: {p!r} is not a section")
            node = nxt
        path = tuple(p.strip() for p in parts)
        lost = next((d for d in done if len(d) > len(path) and d[: len(path)] == path), None)
        if lost is not None:
            inner, outer = ".".join(lost), ".".join(path)
            raise ConfigError(
                f"override {outer}=... replaces the whole value of {outer}, so {inner} set before it would be lost; "
                f"give {inner} after it, or inside {outer}'s value"
            )
        done.append(path)
        node[parts[-1]] = parse_scalar(raw)
    return out


def _deepcopy(d: Any) -> Any:
    if isinstance(d, dict):
        return {k: _deepcopy(v) for k, v in d.items()}
    if isinstance(d, list):
        return [_deepcopy(v) for v in d]
    return d


class _DuplicateKey(yaml.MarkedYAMLError):
    """A key written twice in one mapping (PyYAML keeps the last silently)."""


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key written twice in one mapping (two ``train:`` sections, ``lr`` twice):
    PyYAML would keep the last one without a word, so half of what the file says would be ignored."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == MERGE_TAG:  # `<<: *defaults`: merged keys may be overridden by the mapping's own
                continue
            key = self.construct_object(key_node, deep=True)  # type: ignore[no-untyped-call]
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: PyYAML's own error follows
                continue
            if first is not None:
                raise _DuplicateKey(
                    problem=f"key {key!r} appears twice in one mapping (first on line {first + 1}); merge them",
                    problem_mark=key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


MERGE_TAG = "tag:yaml.org,2002:merge"
MAX_YAML_VALUES = 100_000
"""The most values a YAML file may expand to once its aliases (``*name``) are followed: a config holds a few
hundred; nested aliases can stand for billions (an "alias bomb"), which would hang the loader."""


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    """How many values ``node`` stands for with every alias expanded (each shared node counted once per use)."""
    if id(node) in memo:
        return memo[id(node)]
    memo[id(node)] = 1  # a recursive alias counts once
    n = 1
    if isinstance(node, yaml.SequenceNode):
        n += sum(_expanded_size(child, memo) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        n += sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value)
    memo[id(node)] = n
    return n


def load_yaml_text(text: str) -> Any:
    """Parse YAML text like ``yaml.safe_load`` (anchors, aliases and ``<<`` merge keys included), but refuse a key
    repeated within one mapping and aliases that expand past :data:`MAX_YAML_VALUES` values."""
    loader = _StrictLoader(text)  # a SafeLoader subclass
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, {}) > MAX_YAML_VALUES:
            raise yaml.MarkedYAMLError(
                problem=f"its aliases (*name) expand to more than {MAX_YAML_VALUES} values; write the values out",
                problem_mark=node.start_mark,
            )
        return loader.construct_document(node)
    finally:
        loader.dispose()


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; errors name the file (and line, for syntax errors and a key written twice)."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"config file {str(path)!r} is a folder, not a YAML file")
    if path.exists() and not path.is_file():  # a FIFO or a device would block or read as nothing
        raise ConfigError(f"config file {str(path)!r} is not a regular file (a pipe or a device); give a YAML file")
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"config file {str(path)!r} cannot be read: {e.strerror}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: not UTF-8 text ({e.reason}); save the file as UTF-8") from None
    try:
        data = load_yaml_text(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}:{where}: not valid YAML: {getattr(e, 'problem', e)}") from None
    if data is None:  # an explicit `{}` still means "every default"
        raise ConfigError(f"{path}: the file is empty (or holds only comments); write its sections (data, model, ...)")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections (data, model, ...)")
    return data
