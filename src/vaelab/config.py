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

from pathlib import Path
from typing import Any

import yaml

from vaelab.checkpoint import atomic_write_text
from vaelab.checks import check_override_values, validate_config
from vaelab.configio import apply_overrides as apply_overrides
from vaelab.configio import from_dict as from_dict
from vaelab.configio import load_yaml_text as load_yaml_text
from vaelab.configio import parse_scalar as parse_scalar
from vaelab.configio import read_yaml as read_yaml
from vaelab.configio import to_dict as to_dict
from vaelab.data.config import DataConfig as DataConfig
from vaelab.errors import ConfigError as ConfigError
from vaelab.models import check_model_keys
from vaelab.models.config import ModelConfig as ModelConfig
from vaelab.objectives.objective import ObjectiveConfig as ObjectiveConfig
from vaelab.runconfig import EvalConfig as EvalConfig
from vaelab.runconfig import LRDecayConfig as LRDecayConfig
from vaelab.runconfig import RunConfig as RunConfig
from vaelab.runconfig import TrainConfig as TrainConfig


def run_config(data: dict[str, Any]) -> RunConfig:
    """A validated run config from a mapping: types (:func:`from_dict`), then the range of every value and the
    options of its components (:func:`vaelab.checks.validate_config`). Errors name the key."""
    return validate_config(from_dict(RunConfig, data))


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Load a run config from YAML (or defaults if ``path`` is None), apply overrides and validate it. A run
    folder's config.yaml may be given: its ``_meta`` provenance block is not part of the config and is dropped."""
    data = read_yaml(path) if path is not None else {}
    saved = isinstance(data.get("_meta"), dict)
    if saved:
        data.pop("_meta")
    written = model_keys_written(data, overrides or [], saved)
    data = apply_overrides(data, overrides or [])
    check_override_values(overrides or [])  # a bad value given on the command line is named as such
    where = f"{path}: " if path is not None else ""
    try:
        cfg = run_config(data)
        check_model_keys(cfg.model, written)
    except ConfigError as e:
        raise ConfigError(f"{where}{e}") from None
    return cfg


def model_keys_written(data: dict[str, Any], overrides: list[str], saved: bool = False) -> list[str]:
    """The ``model.*`` keys (leaf names) the user wrote: those of ``data``'s ``model`` section (a config file's, a
    sweep's base config) and of the ``overrides``. A run folder's saved config (``saved``: it had ``_meta``) or any
    complete ``model`` section (a resolved config) holds every key, written by vaelab, not chosen: only its
    overrides count. An override of the whole section (``model={...}``) replaces what came before it."""
    section = data.get("model")
    keys = list(section) if isinstance(section, dict) else []
    if saved or set(ModelConfig.__dataclass_fields__) <= set(keys):
        keys = []
    for item in overrides:
        name, _, raw = item.partition("=")
        name = name.strip()
        if name == "model":
            value = parse_scalar(raw)
            keys = [str(k) for k in value] if isinstance(value, dict) else []
        elif name.startswith("model."):
            keys.append(name.split(".")[1])
    return keys


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
    meta = read_yaml(path).get("_meta") or {}
    meta["overrides_on_resume"] = [*meta.get("overrides_on_resume", []), *overrides]
    data = to_dict(cfg)
    data["_meta"] = meta
    atomic_write_text(Path(path), yaml.safe_dump(data, sort_keys=False))
