"""Run configuration: typed dataclasses loaded from YAML with strict validation and ``key=value`` overrides.

Every unknown key, wrong type or invalid choice raises :class:`ConfigError` naming the key (``model.hidden``),
what was given, and what is valid. A resolved config is written back to every run folder (``config.yaml``) and
round-trips: loading it gives the same config.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

import yaml

from vaelab.data.config import DataConfig
from vaelab.models.config import ModelConfig
from vaelab.objectives.objective import ObjectiveConfig

T = TypeVar("T")


class ConfigError(ValueError):
    """A bad key or value in a config file or override; the message names the key and the valid choices."""


@dataclass
class LRDecayConfig:
    """Learning-rate decay on a validation plateau (Bowman et al. 2016; He et al. 2019 for text):
    after ``patience`` epochs without improvement of the validation loss, multiply the LR by ``factor``,
    optionally reload the best model, at most ``max_decays`` times (then stop)."""

    enabled: bool = False
    factor: float = 0.5
    patience: int = 2
    max_decays: int = 5
    reload_best: bool = True


@dataclass
class TrainConfig:
    """``train.*`` keys: optimisation, validation, early stopping and checkpointing.

    ``tensorboard``: also write the per-epoch scalars of metrics.jsonl (``train/*``, ``valid/*``), the KL per latent
    unit and pictures (reconstructions and prior samples: images, or sentences for text models) as TensorBoard
    event files in DIR/tensorboard/; view them with ``tensorboard --logdir DIR/tensorboard``. Needs
    ``pip install 'vaelab[tensorboard]'`` (see :mod:`vaelab.training.tensorboard`).

    ``precision``: the matrix products of training and evaluation in ``fp32``, ``bf16`` (``torch.autocast``, CPU or
    CUDA) or ``fp16`` (CUDA only, with loss scaling); log-sum-exps, the rate and reported metrics stay float32
    (see :mod:`vaelab.precision`).
    """

    strategy: str = "joint"
    optimizer: Literal["adam", "sgd"] = "adam"
    lr: float = 1e-3
    momentum: float = 0.0
    weight_decay: float = 0.0
    batch_size: int = 128
    epochs: int = 10
    max_steps: int | None = None
    grad_clip: float | None = None
    early_stopping_patience: int | None = None
    lr_decay: LRDecayConfig = field(default_factory=LRDecayConfig)
    checkpoint_every_steps: int | None = None
    log_every_steps: int = 50
    progress: bool = True
    device: str = "auto"
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    tensorboard: bool = False
    strategy_options: dict[str, Any] = field(default_factory=dict)


@dataclass
class EvalConfig:
    """``eval.*`` keys: what is measured each epoch (validation) and at the end (test).

    ``mi_pool``: ``all`` pools MI over the whole split (cap ln N; Bozkurt et al. 2021, Zhang et al. 2022) or an
    integer B pools within minibatches of B (He et al. 2019; cap ln B). ``iw_samples``: K for the final IW-NLL.
    ``extra_metrics``: names from :data:`vaelab.metrics.extras.EXTRA_METRICS` computed at the final evaluation
    (and each epoch with ``extras_every_epoch``). ``hole_prior_samples``: draws z ~ p(z) for the joint hole KL
    of the ``holes`` metric (Zhang et al. 2022 use 1000 x 128).
    """

    batch_size: int = 500
    iw_samples: int = 500
    iw_chunk: int = 500
    mi_pool: str | int = "all"
    au_threshold: float = 0.01
    final_split: Literal["test", "valid", "train"] = "test"
    binarize_seed: int = 1234
    extra_metrics: list[str] = field(default_factory=list)
    extras_every_epoch: bool = False
    hole_prior_samples: int = 128000


@dataclass
class RunConfig:
    """A whole run: ``name``, ``seed`` and one section per stage of the pipeline."""

    name: str = "run"
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


# --------------------------------------------------------------------------------------------------------------
# Typed loading


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
            raise ConfigError(f"unknown config key {key!r}; valid keys here: {', '.join(names)}")
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


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` overrides to a nested mapping (values parsed as YAML)."""
    out = _deepcopy(data)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key=value (e.g. model.latent_dim=16)")
        key, _, raw = item.partition("=")
        parts = key.strip().split(".")
        node = out
        for p in parts[:-1]:
            nxt = node.get(p)
            if nxt is None:
                nxt = node[p] = {}
            if not isinstance(nxt, dict):
                raise ConfigError(f"override {key!r}: {p!r} is not a section")
            node = nxt
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


def load_yaml_text(text: str) -> Any:
    """Parse YAML text like ``yaml.safe_load``, but refuse a key repeated within one mapping."""
    return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; errors name the file (and line, for syntax errors and a key written twice)."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"config file {str(path)!r} is a folder, not a YAML file")
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
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections (data, model, ...)")
    return data


def run_config(data: dict[str, Any]) -> RunConfig:
    """A validated run config from a mapping: types (:func:`from_dict`), then the range of every value and the
    options of its components (:func:`vaelab.checks.validate_config`). Errors name the key."""
    from vaelab.checks import validate_config

    return validate_config(from_dict(RunConfig, data))


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Load a run config from YAML (or defaults if ``path`` is None), apply overrides and validate it."""
    from vaelab.checks import check_override_values

    data = read_yaml(path) if path is not None else {}
    data = apply_overrides(data, overrides or [])
    check_override_values(overrides or [])  # a bad value given on the command line is named as such
    where = f"{path}: " if path is not None else ""
    try:
        return run_config(data)
    except ConfigError as e:
        raise ConfigError(f"{where}{e}") from None


def save_config(cfg: RunConfig, path: str | Path, extra: dict[str, Any] | None = None) -> None:
    """Write the resolved config (plus ``extra`` provenance under ``_meta``) as YAML."""
    data = to_dict(cfg)
    if extra:
        data["_meta"] = extra
    Path(path).write_text(yaml.safe_dump(data, sort_keys=False))


def load_saved_config(path: str | Path, overrides: list[str] | None = None) -> RunConfig:
    """Load a run folder's config.yaml (ignoring its ``_meta`` provenance block), apply ``overrides`` (the caller
    checks which keys it accepts) and validate it; errors name the file and the key."""
    data = read_yaml(path)
    data.pop("_meta", None)
    data = apply_overrides(data, overrides or [])
    try:
        return run_config(data)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


def update_saved_config(path: str | Path, cfg: RunConfig, overrides: list[str]) -> None:
    """Rewrite a run folder's config.yaml with ``cfg``'s values, keeping its ``_meta`` block and recording the
    ``overrides`` that changed it (``_meta.overrides_on_resume``)."""
    from vaelab.checkpoint import atomic_write_text

    meta = read_yaml(path).get("_meta") or {}
    meta["overrides_on_resume"] = [*meta.get("overrides_on_resume", []), *overrides]
    data = to_dict(cfg)
    data["_meta"] = meta
    atomic_write_text(Path(path), yaml.safe_dump(data, sort_keys=False))
