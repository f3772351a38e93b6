"""Run configuration: a run config loaded from YAML with ``key=value`` overrides, validated, and saved.

Every unknown key, wrong type or invalid choice raises :class:`ConfigError` naming the key (``model.hidden``),
what was given, and what is valid. A resolved config is written back to every run folder (``config.yaml``) and
round-trips: loading it gives the same config.

This module is the top of the config layer: the dataclasses are declared in :mod:`vaelab.runconfig` (and the
sections' own modules), typed loading in :mod:`vaelab.configio`, the rule of every key in :mod:`vaelab.checks`;
they are imported here so that ``from vaelab.config import RunConfig, load_config, ConfigError`` keeps working.
Modules below the config layer import those modules, not this one.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from vaelab.checkpoint import atomic_write_text
from vaelab.checks import (
    RESUME_KEYS,
    check_override_values,
    check_written_keys,
    get_key,
    key_allowed,
    leaf_keys,
    validate_config,
)
from vaelab.configio import from_dict as from_dict
from vaelab.configio import load_yaml_text as load_yaml_text
from vaelab.configio import parse_scalar as parse_scalar
from vaelab.configio import read_yaml as read_yaml
from vaelab.configio import to_dict as to_dict
from vaelab.data.config import DataConfig as DataConfig
from vaelab.errors import ConfigError as ConfigError
from vaelab.models.config import ModelConfig as ModelConfig
from vaelab.objectives.objective import ObjectiveConfig as ObjectiveConfig
from vaelab.objectives.schedules import ScheduleConfig
from vaelab.runconfig import EvalConfig as EvalConfig
from vaelab.runconfig import LRDecayConfig as LRDecayConfig
from vaelab.runconfig import RunConfig as RunConfig
from vaelab.runconfig import TrainConfig as TrainConfig
from vaelab.runconfig import apply_overrides as apply_overrides
from vaelab.runconfig import expand_overrides


def run_config(data: dict[str, Any]) -> RunConfig:
    """A validated run config from a mapping: types (:func:`from_dict`), then the range of every value and the
    options of its components (:func:`vaelab.checks.validate_config`). Errors name the key."""
    return validate_config(from_dict(RunConfig, data))


def attribute_error(error: ConfigError, where: str, overrides: list[str], flag: str = "override") -> ConfigError:
    """The one-line error of a config read from ``where`` (a file, ``--data X``; "" for none) with command-line
    ``overrides``, prefixed with what gave the value at fault: the override whose key the message names (the
    longest such key, a parent of the named key included: ``override objective.beta=2: objective.beta: ...``; of
    keys of one length, the one the message names first; ``flag`` names the option, e.g. ``--set``), else
    ``where``, since the value came from the file. Without a file the error is left as it is."""
    msg = str(error)
    if not where:  # no file: every value is an override's or a default, as the message's key says
        return error
    blamed: tuple[tuple[int, int], str] | None = None
    for item in expand_overrides(overrides):
        key = item.partition("=")[0].strip()
        named = key and re.search(rf"(?<![\w.]){re.escape(key)}(?!\w)", msg)
        rank = (len(key), -named.start()) if named else None  # the longest key; of equal ones, the first named
        parts = key.split(".")
        for i in range(len(parts) - 1, 0, -1):  # an unknown section of the key, quoted: 'TRAIN' of TRAIN.LR
            if rank is None and (quoted := re.search(re.escape(repr(".".join(parts[:i]))), msg)):
                rank = (0, -quoted.start())
        if rank is not None and (blamed is None or rank > blamed[0]):
            blamed = (rank, item)
    if blamed is not None:
        return ConfigError(f"{flag} {blamed[1]}: {msg}")
    return ConfigError(f"{where}: {msg}")


SWEEP_FILE_KEYS = ("base", "base_config", "fixed", "variants", "zip", "grid", "seeds", "measure")
"""The top-level keys of a sweep file (:mod:`vaelab.sweep.spec`) that no run config has: a file of only these (and
``name``) given where a run config is expected is named as the sweep file it is."""


def check_not_a_sweep_file(path: str | Path, data: dict[str, Any], flag: str = "") -> None:
    """Refuse a sweep file (``data``: its mapping) read from ``path`` where a run config is expected, naming it as
    such rather than its first key as unknown."""
    sweep_keys = [k for k in SWEEP_FILE_KEYS if k in data]
    if sweep_keys and set(data) <= {"name", *SWEEP_FILE_KEYS}:
        raise ConfigError(
            f"{flag}{path} is a sweep file ({', '.join(sweep_keys)}), not a run config: run it with `vaelab sweep "
            f"{path}`, or name a run config here"
        )


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Load a run config from YAML (or defaults if ``path`` is None), apply overrides and validate it. A run
    folder's config.yaml may be given: its ``_meta`` provenance block is not part of the config and is dropped."""
    data = read_yaml(path) if path is not None else {}
    if path is not None:
        check_not_a_sweep_file(path, data)
    saved = isinstance(data.get("_meta"), dict)
    if saved:
        data.pop("_meta")
    written = written_part(data, saved)
    data = apply_overrides(data, overrides or [])
    check_override_values(overrides or [])  # a bad value given on the command line is named as such
    try:
        cfg = run_config(data)
        check_written_keys(cfg, written, overrides or [])
    except ConfigError as e:
        raise attribute_error(e, "" if path is None else str(path), overrides or []) from None
    return cfg


FULL_MAPPINGS: dict[tuple[str, ...], type] = {
    ("data",): DataConfig,
    ("model",): ModelConfig,
    ("objective",): ObjectiveConfig,
    ("objective", "beta"): ScheduleConfig,
    ("train",): TrainConfig,
    ("train", "lr_decay"): LRDecayConfig,
    ("eval",): EvalConfig,
}
"""The mappings of a run config that vaelab writes out in full (a resolved config, a run folder's config.yaml): one
that holds every field of its class was not written key by key by the user (:func:`written_part`)."""


def written_part(data: dict[str, Any], saved: bool = False) -> dict[str, Any]:
    """What the user wrote in ``data`` (a config file's mapping, a sweep's base config), as a nested mapping: without
    the mappings vaelab writes out in full (all of it for a run folder's saved config, ``saved``: it had ``_meta``;
    else every mapping of :data:`FULL_MAPPINGS`, and each term's weight schedule, that holds every key of its
    class). :func:`vaelab.checks.check_written_keys` refuses what of it, and of the overrides on it, the config
    does not read."""
    return {} if saved else _user_part(data, ())


def _full(value: Any, cls: type) -> bool:
    return isinstance(value, dict) and set(cls.__dataclass_fields__) <= set(value)  # type: ignore[attr-defined]


def _user_part(node: Any, path: tuple[str, ...]) -> Any:
    if not isinstance(node, dict):
        return node
    cls = FULL_MAPPINGS.get(path)
    if cls is not None and _full(node, cls):
        return {}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if path == ("objective",) and key == "terms" and isinstance(value, list):
            value = [
                {**t, "weight": {}} if isinstance(t, dict) and _full(t.get("weight"), ScheduleConfig) else t
                for t in value
            ]
        out[key] = _user_part(value, (*path, str(key)))
    return out


def save_config(cfg: RunConfig, path: str | Path, extra: dict[str, Any] | None = None) -> None:
    """Write the resolved config (plus ``extra`` provenance under ``_meta``) as YAML."""
    data = to_dict(cfg)
    if extra:
        data["_meta"] = extra
    Path(path).write_text(yaml.safe_dump(data, sort_keys=False))


def load_saved_config(path: str | Path, overrides: list[str] | None = None) -> RunConfig:
    """Load a run folder's config.yaml (ignoring its ``_meta`` provenance block), apply ``overrides`` (the caller
    checks which keys it accepts) and validate it; errors name the file and the key. A config.yaml without
    ``_meta`` is refused: vaelab has written it into every run folder since its first version, so its absence
    means an edited file whose data and settings could not be checked against the training's."""
    data = read_yaml(path)
    meta = data.pop("_meta", None)
    if not isinstance(meta, dict):  # every config.yaml vaelab writes has had it, since the first Trainer
        raise ConfigError(
            f"{path}: no _meta record, which every config.yaml vaelab writes holds: the file was edited or "
            "replaced, so it no longer says which data and settings the run was trained with; restore it, or "
            "train a new run (vaelab train CONFIG --out NEW)"
        )
    data = apply_overrides(data, overrides or [])
    try:
        cfg = run_config(data)
    except ConfigError as e:
        raise attribute_error(e, str(path), overrides or []) from None
    check_trained_data(path, cfg, meta, overrides or [])
    check_trained_config(path, cfg, meta, overrides or [])
    return cfg


DATA_LOCATION_KEYS = ("root", "path", "cache_dir", "verify_checksum")
"""``data`` keys that say where the data are (or whether to verify them), not which data: a run folder whose
config.yaml names a moved data folder still loads; its files are compared by content
(:func:`vaelab.run.check_trained_data_content`)."""


def check_trained_data(path: str | Path, cfg: RunConfig, meta: dict[str, Any], overrides: list[str]) -> None:
    """Refuse a run folder's config.yaml whose ``data`` section differs from the one the run was trained with
    (``_meta.data_config``, recorded at training since issue 16; older folders have none and are checked by the
    data's facts, :func:`vaelab.run.check_trained_data_content`): evaluating or resuming would measure or train on
    other data without a word. One line naming the key and both values. Keys given as ``overrides`` (``vaelab
    evaluate DIR data.eval_size=N``) and :data:`DATA_LOCATION_KEYS` are not compared."""
    recorded = meta.get("data_config")
    if not isinstance(recorded, dict):
        return
    given = {o.partition("=")[0].strip() for o in expand_overrides(overrides)}
    now = to_dict(cfg.data)
    missing = object()
    for key in [*now, *(k for k in recorded if k not in now)]:
        if key in DATA_LOCATION_KEYS or f"data.{key}" in given:
            continue
        then, value = recorded.get(key, missing), now.get(key, missing)
        if _plain(then) != _plain(value):
            was = "not set" if then is missing else f"data.{key}={then!r}"
            hint = "; to measure another subset give data.eval_size=N to vaelab evaluate" if key == "eval_size" else ""
            raise ConfigError(
                f"{path}: data.{key} is {value!r}, but the run was trained with {was} (_meta.data_config): "
                f"config.yaml was edited after training, so the run would be measured on other data; put the value "
                f"back{hint}"
            )


def check_trained_config(path: str | Path, cfg: RunConfig, meta: dict[str, Any], overrides: list[str]) -> None:
    """Refuse a run folder's config.yaml whose settings outside ``data`` differ from those the run was trained with
    (``_meta.trained_config``, recorded at training; older folders have none): ``train.lr`` or ``train.epochs``
    edited before ``vaelab resume`` would go on under settings that ``resume`` refuses as overrides, or leave a
    folder whose config.yaml no longer describes its run. The keys ``vaelab resume`` accepts
    (:data:`vaelab.checks.RESUME_KEYS`: evaluation, logging, device) and keys given as ``overrides`` are not
    compared; ``data`` is :func:`check_trained_data`'s."""
    recorded = meta.get("trained_config")
    if not isinstance(recorded, dict):
        return
    given = {o.partition("=")[0].strip() for o in expand_overrides(overrides)}
    missing = object()
    for key in leaf_keys():
        if key.startswith("data.") or key in given or key_allowed(key, RESUME_KEYS):
            continue
        then: Any = recorded
        for part in key.split("."):
            then = then.get(part, missing) if isinstance(then, dict) else missing
        if then is missing:  # a key added since the folder was written
            continue
        value = get_key(cfg, key)
        if _plain(then) != _plain(value):
            raise ConfigError(
                f"{path}: {key} is {_plain(value)!r}, but the run was trained with {key}={_plain(then)!r} "
                "(_meta.trained_config): config.yaml was edited after training, so it no longer describes the run; "
                "put the value back (for other settings train a new run with another --out)"
            )


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def update_saved_config(path: str | Path, cfg: RunConfig, overrides: list[str]) -> None:
    """Rewrite a run folder's config.yaml with ``cfg``'s values, keeping its ``_meta`` block and recording the
    ``overrides`` that changed it (``_meta.overrides_on_resume``)."""
    meta = read_yaml(path).get("_meta") or {}
    meta["overrides_on_resume"] = [*meta.get("overrides_on_resume", []), *overrides]
    data = to_dict(cfg)
    data["_meta"] = meta
    atomic_write_text(Path(path), yaml.safe_dump(data, sort_keys=False))
