"""Sweep files and their deterministic expansion into indexed points.

A sweep file (YAML) names a base run config and what varies::

    name: mnist_rd                     # used for the default output folder
    base: mnist_rd_base.yaml           # a run config; relative paths are relative to the sweep file
    fixed:                             # overrides applied to every point (dotted keys)
      train.epochs: 3
    variants:                          # alternatives, one per point (optional ``name`` for folder names)
      - {name: small, model.hidden: [64]}
      - {name: large, model.hidden: [512, 512]}
    zip:                               # lists of equal length, varied together (optional)
      model.latent_dim: [8, 32]
      eval.batch_size: [100, 500]
    grid:                              # cartesian product (optional)
      data.train_size: [2000, 10000]
      objective.beta: [0.1, 1.0, 10.0]
    seeds: [0, 1]                      # sets the run config's ``seed``; omitted: the base config's seed
    measure:                           # what is measured per point (see MeasureSpec)
      iw_samples: 100

Instead of ``base`` a sweep may hold the base config inline as ``base_config`` (a mapping; it takes precedence):
``DIR/sweep.yaml`` in a sweep's output folder is written that way, so a sweep folder is self-contained.

Ordering (the index contract)
-----------------------------
Points are the product seeds x variants x zip x grid, enumerated in C order (the last factor varies fastest):
seeds outermost, then variants, then the zipped lists, then the grid keys in the order they are written in the
file (the last grid key fastest). With n_s seeds, n_v variants, n_z zip entries and grid sizes g_1..g_k::

    index = ((((s * n_v + v) * n_z + z) * g_1 + i_1) * g_2 + i_2) ... * g_k + i_k

A section that is absent counts as one entry. Seeds outermost means that appending seeds to a sweep keeps every
existing index, and that a sweep stopped halfway holds complete replicas. Point i's overrides are ``fixed``,
then the variant's, the zip entry's and the grid's keys, then ``seed=S``; later ones win on equal keys.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from vaelab.config import (
    SWEEP_FILE_KEYS,
    ConfigError,
    RunConfig,
    apply_overrides,
    check_written_keys,
    from_dict,
    read_yaml,
    run_config,
    to_dict,
    written_part,
)
from vaelab.configio import override_text
from vaelab.runconfig import expand_sections


class SweepError(ConfigError):
    """A bad sweep file or a sweep folder that does not match the sweep; the message says what to change."""


SPEC_KEYS = ("name", *SWEEP_FILE_KEYS)
RUN_CONFIG_KEYS = tuple(f.name for f in dataclasses.fields(RunConfig) if f.name != "name")
"""A run config's top-level keys besides ``name`` (seed, data, model, ...): in a sweep file they name a run config
given as one."""


@dataclass
class MeasureSpec:
    """``measure:`` section: the per-point measurements written after training (``eval_<split>.json``).

    - ``splits``: the splits measured (the generalisation gaps need ``train`` and ``test``).
    - ``iw_samples``: K of the IW-NLL (default 100: smaller than the K = 500 standard to keep sweeps affordable;
      the IW-NLL is an upper bound on -log p(x) that tightens with K, so compare points at equal K).
    - ``iw_chunk``: importance samples per chunk, or ``auto`` (None: the run's ``eval.iw_chunk``); no part of what
      is measured (:data:`MEASURE_NOT_IDENTITY_KEYS`).
    - ``train_subset``: the training examples measured: ``test`` = a fixed subset the size of the measured test
      split (bounds the cost and makes train and test MI share the ln N cap), an integer n = a fixed subset of n,
      ``all`` = the whole training split. The subset is the first n of a fixed permutation seeded by the data
      config's ``split_seed``, the same for every point with that data config.
    - ``checkpoint``: ``best`` (lowest validation loss, as summary.json) or ``last``.
    - ``mi_pool``: the MI pool; ``all`` = the whole measured split (cap ln N, Bozkurt et al. 2021).
    - ``extra_metrics``: names from :data:`vaelab.metrics.extras.EXTRA_METRICS` (``probe``, ``holes``, ...) run on
      each measured split; their numeric results join the record as ``<split>_<key>``. None (default): the run
      config's ``eval.extra_metrics``; ``[]``: none.
    """

    splits: list[str] = field(default_factory=lambda: ["train", "test"])
    iw_samples: int = 100
    iw_chunk: int | Literal["auto"] | None = None
    train_subset: str | int = "test"
    checkpoint: str = "best"
    mi_pool: str | int = "all"
    extra_metrics: list[str] | None = None

    def validate(self) -> None:
        for s in self.splits:
            if s not in ("train", "valid", "test"):
                raise SweepError(f"measure.splits: {s!r} is not a valid split; valid choices: train, valid, test")
        from vaelab.checks import COUNT, RULES, check

        if not self.splits or len(set(self.splits)) != len(self.splits):
            raise SweepError(
                f"measure.splits must name each measured split once (train, valid, test), got {self.splits}"
            )
        try:
            check("measure.iw_samples", self.iw_samples, RULES["eval.iw_samples"])  # 0 = no IW-NLL
            check("measure.iw_chunk", self.iw_chunk, dataclasses.replace(RULES["eval.iw_chunk"], optional=True))
            check("measure.mi_pool", self.mi_pool, RULES["eval.mi_pool"])
            if isinstance(self.train_subset, int):
                check("measure.train_subset", self.train_subset, COUNT)
        except ConfigError as e:
            raise SweepError(str(e)) from None
        if isinstance(self.train_subset, str) and self.train_subset not in ("test", "all"):
            raise SweepError(f"measure.train_subset: {self.train_subset!r} is not valid; use test, all or an integer")
        if self.train_subset != "test" and "train" not in self.splits:  # the default is written back by to_dict
            raise SweepError(
                f"measure.train_subset={self.train_subset} is not read: measure.splits {self.splits} has no train "
                "split; add train to measure.splits or remove measure.train_subset"
            )
        if self.checkpoint not in ("best", "last"):
            raise SweepError(f"measure.checkpoint: {self.checkpoint!r} is not valid; valid choices: best, last")
        if self.extra_metrics is not None:
            from vaelab.metrics.extras import EXTRA_METRICS

            for i, name in enumerate(self.extra_metrics):
                EXTRA_METRICS.get(name, key=f"measure.extra_metrics[{i}]")
            try:
                check("measure.extra_metrics", self.extra_metrics, RULES["eval.extra_metrics"])  # no name twice
            except ConfigError as e:
                raise SweepError(str(e)) from None


@dataclass(frozen=True)
class SweepPoint:
    """One point of a sweep: its index, its overrides of the base config and a short slug for its folder.

    ``params`` holds the values that define the point (variant name, zip, grid keys and ``seed``), for tables.
    """

    index: int
    overrides: tuple[str, ...]
    params: dict[str, Any]
    slug: str
    legacy_slugs: tuple[str, ...] = ()
    """Slugs an earlier version gave this point's folder (a sweep folder written then keeps its name:
    :func:`vaelab.sweep.runner.point_dir` finds it, so resuming does not train the point again)."""

    @property
    def folder_name(self) -> str:
        """``NNNN-<slug>``: the folder of the point under ``DIR/points/``."""
        return f"{self.index:04d}-{self.slug}"

    @property
    def legacy_folder_names(self) -> tuple[str, ...]:
        """``NNNN-<slug>`` of each of :attr:`legacy_slugs`."""
        return tuple(f"{self.index:04d}-{slug}" for slug in self.legacy_slugs)


@dataclass
class SweepSpec:
    """A parsed sweep file (see the module docstring for the format and the ordering of points)."""

    name: str
    base_config: dict[str, Any]
    base: str | None = None
    fixed: dict[str, Any] = field(default_factory=dict)
    variants: list[dict[str, Any]] = field(default_factory=list)
    zip: dict[str, list[Any]] = field(default_factory=dict)
    grid: dict[str, list[Any]] = field(default_factory=dict)
    seeds: list[int] | None = None
    measure: MeasureSpec = field(default_factory=MeasureSpec)

    # ---- expansion ----

    @property
    def shape(self) -> tuple[int, ...]:
        """Sizes of the factors in index order: (seeds, variants, zip, *grid)."""
        n_zip = len(next(iter(self.zip.values()))) if self.zip else 1
        return (
            len(self.seeds) if self.seeds else 1,
            len(self.variants) or 1,
            n_zip,
            *(len(v) for v in self.grid.values()),
        )

    def __len__(self) -> int:
        return math.prod(self.shape)

    def point(self, index: int) -> SweepPoint:
        """Point ``index`` (0 <= index < len(self)); the same index always gives the same point."""
        n = len(self)
        if not 0 <= index < n:
            raise SweepError(f"point index {index} is out of range: sweep {self.name!r} has {n} points (0..{n - 1})")
        digits = []
        rest = index
        for size in reversed(self.shape):
            rest, d = divmod(rest, size)
            digits.append(d)
        s, v, z, *g = reversed(digits)
        values: dict[str, Any] = {}
        params: dict[str, Any] = {}
        if self.variants:
            variant = dict(self.variants[v])
            vname = variant.pop("name", None)
            params["variant"] = vname if vname is not None else v
            values.update(variant)
            params.update(variant)
        for key, options in self.zip.items():
            values[key] = params[key] = options[z]
        for (key, options), i in zip(self.grid.items(), g, strict=True):
            values[key] = params[key] = options[i]
        try:
            values = expand_sections(values)  # a grid/zip value given for a section (train: [{lr: ...}])
        except ConfigError as e:
            raise SweepError(f"sweep {self.name!r}, point {index}: {e}") from None
        merged = {**self.fixed, **values}
        overrides = [f"{k}={yaml_value(val)}" for k, val in merged.items()]
        if self.seeds:
            overrides.append(f"seed={self.seeds[s]}")
            params["seed"] = self.seeds[s]
        slug = self._slug(params)
        legacy = (LEGACY_SLUG,) if slug != LEGACY_SLUG and self._slug(params, legacy=True) == LEGACY_SLUG else ()
        return SweepPoint(index, tuple(overrides), params, slug, legacy)

    def points(self) -> Iterator[SweepPoint]:
        """Every point in index order."""
        for i in range(len(self)):
            yield self.point(i)

    def varying_keys(self) -> list[str]:
        """Parameter names that take more than one value across the sweep, in index order."""
        keys: list[str] = []
        if self.seeds and len(self.seeds) > 1:
            keys.append("seed")
        if len(self.variants) > 1:
            keys.append("variant")
            for var in self.variants:
                keys += [k for k in var if k != "name" and k not in keys]
        keys += [k for k, v in self.zip.items() if len(v) > 1 and k not in keys]
        keys += [k for k, v in self.grid.items() if len(v) > 1 and k not in keys]
        return keys

    def _slug(self, params: dict[str, Any], legacy: bool = False) -> str:
        """The factors that vary, short; a sweep of one point is named by its variant's name if it has one (else,
        and before issue 16 in every case, ``point``: ``legacy``)."""
        varying = set(self.varying_keys())
        named_variant = isinstance(params.get("variant"), str)
        parts = []
        if "variant" in params and "variant" in varying:
            parts.append(_slug_part("v", params["variant"]) if not named_variant else _safe(str(params["variant"])))
        for key, val in params.items():
            if key in ("variant", "seed") or key not in varying:
                continue
            if named_variant and self.variants and any(key in var for var in self.variants):
                continue  # the variant's name stands for its keys
            parts.append(_slug_part(_short_name(key), val))
        if "seed" in params and "seed" in varying:
            parts.append(_slug_part("seed", params["seed"]))
        if not parts and not legacy and isinstance(params.get("variant"), str):
            parts.append(_safe(str(params["variant"])))
        slug = "-".join(parts) or LEGACY_SLUG
        if len(slug) > 80:
            digest = hashlib.sha1(slug.encode()).hexdigest()[:8]
            slug = slug[:71] + "-" + digest
        return slug

    # ---- configs ----

    def config_dict(self, point: SweepPoint) -> dict[str, Any]:
        """The point's run config as a plain mapping (base config + overrides), not yet validated."""
        return apply_overrides(self.base_config, list(point.overrides))

    def config(self, point: SweepPoint) -> RunConfig:
        """The point's validated run config; errors name the point and the key."""
        try:
            return run_config(self.config_dict(point))
        except ConfigError as e:
            raise SweepError(f"sweep {self.name!r}, point {point.index} ({' '.join(point.overrides)}): {e}") from None

    def check_keys_read(self, point: SweepPoint, cfg: RunConfig | None = None) -> None:
        """Refuse a key that the point sets (in the base config, except the mappings written out in full there, as a
        study stores its resolved base, or in its overrides: ``fixed``, its variant, zip entry and grid values) and
        that its config does not read (a ``model.*`` key of another model type, likelihood or posterior head, a
        schedule key of another schedule type, ...), as a fresh ``vaelab train`` config is refused
        (:func:`vaelab.checks.check_written_keys`); one line naming the point (and its variant) and the key."""
        cfg = cfg if cfg is not None else self.config(point)
        try:
            check_written_keys(cfg, written_part(self.base_config), list(point.overrides))
        except ConfigError as e:
            variant = point.params.get("variant")
            named = f"variant {variant}: " if isinstance(variant, str) else ""
            raise SweepError(
                f"sweep {self.name!r}, point {point.index} ({named}{' '.join(point.overrides)}): {e}"
            ) from None

    def validate(self) -> None:
        """Build every point's config once (no data, no model) and check the keys it sets
        (:meth:`check_keys_read`): a typo fails before anything runs."""
        for p in self.points():
            self.check_keys_read(p, self.config(p))

    def to_dict(self) -> dict[str, Any]:
        """A self-contained mapping (``base_config`` inline) that :func:`spec_from_dict` reads back."""
        out: dict[str, Any] = {"name": self.name}
        if self.base:
            out["base"] = self.base
        out["base_config"] = self.base_config
        for key in ("fixed", "variants", "zip", "grid"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        if self.seeds:
            out["seeds"] = list(self.seeds)
        out["measure"] = dataclasses.asdict(self.measure)
        return out


NOT_IDENTITY_KEYS = ("train.progress", "train.tensorboard", "eval.iw_chunk")
"""Run config keys that are no part of a run's identity: two configs that differ only in them train the same model
and measure the same numbers, so a finished run folder whose config.yaml has other values of them is the same point
(:func:`config_hash`, the sweep-folder comparison of :func:`vaelab.sweep.runner.prepare_out`, ``--reuse`` and
``vaelab study``'s continuation). ``train.progress`` and ``train.tensorboard`` only log; ``eval.iw_chunk`` only
bounds the memory of the IW-NLL: the K samples of a batch come from one seeded stream whatever the chunk (exactly
the same draws when every chunk but the last draws a multiple of 16 normals, e.g. D = 32 or a chunk that is a
multiple of 16), so the estimate is unchanged. (``eval.batch_size`` is part of the identity: each evaluation batch
has its own seed, so it changes the validation draws, hence checkpoint selection and early stopping.)"""

MEASURE_NOT_IDENTITY_KEYS = ("iw_chunk",)
"""The keys of ``measure`` (:class:`MeasureSpec`) that are no part of what a sweep measures (see
:data:`NOT_IDENTITY_KEYS`): a sweep folder measured with another ``measure.iw_chunk`` holds the same numbers."""


def identity(config: dict[str, Any]) -> dict[str, Any]:
    """A copy of a run config mapping (nested, as :func:`vaelab.config.to_dict` gives) without the keys of
    :data:`NOT_IDENTITY_KEYS`: what decides whether two configs are the same run."""
    data = {k: dict(v) if isinstance(v, dict) else v for k, v in config.items()}
    for key in NOT_IDENTITY_KEYS:
        section, _, name = key.partition(".")
        if isinstance(data.get(section), dict):
            data[section].pop(name, None)
    return data


def measure_identity(measure: MeasureSpec) -> dict[str, Any]:
    """``measure`` as a mapping without :data:`MEASURE_NOT_IDENTITY_KEYS`: equal when two sweeps measure alike."""
    data = dataclasses.asdict(measure)
    for key in MEASURE_NOT_IDENTITY_KEYS:
        data.pop(key, None)
    return data


def config_hash(cfg: RunConfig) -> str:
    """A short, stable hash of a resolved run config without the keys of :data:`NOT_IDENTITY_KEYS` (logging and
    the IW-NLL's chunk size, which change neither the trained model nor the measured numbers), to detect changed
    points."""
    data = identity(to_dict(cfg))
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


# --------------------------------------------------------------------------------------------------------------
# values in overrides and folder names


def yaml_value(value: Any) -> str:
    """An override value that ``vaelab.config.apply_overrides`` parses back to ``value`` (YAML flow style):
    :func:`vaelab.configio.override_text`, its error a :class:`SweepError`."""
    try:
        return override_text(value)
    except ConfigError as e:
        raise SweepError(str(e)) from None


LEGACY_SLUG = "point"
"""The slug of a point none of whose factors varies and that has no variant name; until issue 16 also that of a
sweep's only point when it is a named variant (now named by it: ``0000-<name>``)."""


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", text).strip("_") or "x"


def _short_name(key: str) -> str:
    """The last component of a dotted key, or the one before a generic last one (``objective.beta.value``)."""
    parts = key.split(".")
    if len(parts) > 1 and parts[-1] in ("value", "type", "start"):
        return parts[-2]
    return parts[-1]


def _slug_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple):
        return "x".join(_slug_value(v) for v in value)
    if isinstance(value, dict):
        return hashlib.sha1(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:6]
    return str(value)


def _slug_part(name: str, value: Any) -> str:
    return _safe(f"{name}{_slug_value(value)}")


# --------------------------------------------------------------------------------------------------------------
# reading sweep files


def _flat_mapping(value: Any, key: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SweepError(f"{key}: expected a mapping of dotted config keys to values, got {value!r}")
    return {str(k): v for k, v in value.items()}


def _value_lists(value: Any, key: str, distinct: bool = False) -> dict[str, list[Any]]:
    """``distinct``: no value twice in a list (a grid; a zip list may repeat a value that its partners vary)."""
    mapping = _flat_mapping(value, key)
    for k, v in mapping.items():
        if not isinstance(v, list) or not v:
            raise SweepError(f"{key}.{k}: expected a non-empty list of values, got {v!r}")
        seen = [repr(x) for x in v]
        if distinct and len(set(seen)) != len(seen):  # identical points: twice the work, counted twice in cells
            raise SweepError(f"{key}.{k}: values must be distinct, got {v!r}")
    return mapping


def spec_from_dict(data: dict[str, Any], where: str = "sweep", root: Path | None = None) -> SweepSpec:
    """Validate a sweep mapping; ``root`` resolves a relative ``base`` path. Errors name the key."""
    unknown = [k for k in data if k not in SPEC_KEYS]
    run_sections = [k for k in unknown if k in RUN_CONFIG_KEYS]
    if run_sections and "base" not in data and "base_config" not in data:  # a run config given as a sweep file
        raise SweepError(
            f"{where} is a run config ({', '.join(run_sections)}), not a sweep file: train it with `vaelab train`, "
            "or write a sweep file that names it as its base (base: FILE, grid: {key: [values]})"
        )
    if unknown:
        raise SweepError(f"{where}: unknown sweep key {unknown[0]!r}; valid keys: {', '.join(SPEC_KEYS)}")
    base = data.get("base")
    base_config = data.get("base_config")
    if base_config is None:
        if not base:
            raise SweepError(f"{where}: set base (a run config file) or base_config (an inline run config)")
        given = Path(str(base)).expanduser()  # base: ~/cfg.yaml is the home folder's, as in a shell
        base_path = given if root is None or given.is_absolute() else root / given
        base_config = read_yaml(base_path)
        if {"base", "base_config", "grid", "zip", "variants", "fixed"} & set(base_config):
            raise SweepError(f"{where}: base {base_path} is a sweep file, not a run config; name a run config")
        base_config.pop("_meta", None)
        base = str(base_path.resolve())
    elif not isinstance(base_config, dict):
        raise SweepError(f"{where}: base_config must be a mapping (a run config)")
    variants = data.get("variants") or []
    if not isinstance(variants, list) or not all(isinstance(v, dict) for v in variants):
        raise SweepError(f"{where}: variants must be a list of mappings (dotted config key -> value)")
    try:  # a mapping given for a section is merged into it key by key: spread into its dotted keys
        variants = [expand_sections({str(k): v for k, v in var.items()}) for var in variants]
        fixed = expand_sections(_flat_mapping(data.get("fixed"), "fixed"))
    except ConfigError as e:
        raise SweepError(f"{where}: {e}") from None
    names = [v.get("name") for v in variants if "name" in v]
    if len(set(map(str, names))) != len(names):
        raise SweepError(f"{where}: variant names must be unique, got {names}")
    zipped = _value_lists(data.get("zip"), "zip")
    if len({len(v) for v in zipped.values()}) > 1:
        sizes = {k: len(v) for k, v in zipped.items()}
        raise SweepError(f"{where}: the zip lists must have equal lengths, got {sizes}")
    seeds = data.get("seeds")
    if seeds is not None:
        if (
            not isinstance(seeds, list)
            or not seeds
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)  # true is no seed
        ):
            raise SweepError(f"{where}: seeds must be a non-empty list of non-negative integers, got {seeds!r}")
        if len(set(seeds)) != len(seeds):
            raise SweepError(f"{where}: seeds must be distinct, got {seeds}")
    try:
        measure = from_dict(MeasureSpec, _flat_mapping(data.get("measure"), "measure"), "measure")
    except ConfigError as e:
        raise SweepError(f"{where}: {e}") from None
    try:
        measure.validate()
    except SweepError as e:
        raise SweepError(f"{where}: {e}") from None
    if "name" in data and (not isinstance(data["name"], str) or not data["name"].strip()):
        raise SweepError(f"{where}: name must be a non-empty string (the sweep's name), got {data['name']!r}")
    name = data.get("name") or (Path(where).stem if where != "sweep" else "sweep")
    spec = SweepSpec(
        name=_safe(str(name)),
        base_config=base_config,
        base=base,
        fixed=fixed,
        variants=variants,
        zip=zipped,
        grid=_value_lists(data.get("grid"), "grid", distinct=True),
        seeds=seeds,
        measure=measure,
    )
    _check_factors_disjoint(spec, where)
    values = [*spec.fixed.items(), *((k, v) for var in variants for k, v in var.items() if k != "name")]
    values += [(k, v) for section in (zipped, spec.grid) for k, options in section.items() for v in options]
    for key, value in values:  # every value must come back unchanged from its override text
        if apply_overrides({}, [f"v={yaml_value(value)}"])["v"] != value:
            raise SweepError(f"{where}: the value {value!r} of {key} cannot be written as an override")
    return spec


def _axis_keys(options: dict[str, list[Any]]) -> list[str]:
    """The dotted keys a ``zip`` or ``grid`` section sets: a key given for a section (``train: [{lr: 0.1}]``)
    stands for the keys of its mappings."""
    keys: list[str] = []
    for key, values in options.items():
        for value in values:
            try:
                keys += [k for k in expand_sections({key: value}) if k not in keys]
            except ConfigError:
                keys += [key] if key not in keys else []
    return keys


def _check_factors_disjoint(spec: SweepSpec, where: str) -> None:
    """A key varies in one factor only: the same key in ``variants``, ``zip`` and ``grid`` (or ``seed`` there while
    ``seeds`` is given) would let the later factor overwrite the earlier one at every point, so that the sweep
    holds copies of the same runs under different names.

    Nor may one key of a point lie inside another (``objective.beta.value`` and ``objective.beta``): the value of
    the outer key replaces everything under it, so the inner one would be lost, or would change part of the outer
    one's values. The one order that means what it says is allowed: an outer key in ``fixed`` (or earlier in the
    same variant) with an inner key after it (in any factor, or the same variant), which changes that key of the
    outer value, as ``--method-set aggressive:train.strategy_options.check_every_steps=50`` does to a study arm."""
    owners: dict[str, str] = {}
    zip_keys, grid_keys = _axis_keys(spec.zip), _axis_keys(spec.grid)
    factors = [("variants", k) for var in spec.variants for k in var if k != "name"]
    factors += [("zip", k) for k in zip_keys] + [("grid", k) for k in grid_keys]
    if spec.seeds:
        factors.append(("seeds", "seed"))
    for factor, key in factors:
        first = owners.setdefault(key, factor)
        if first != factor:
            raise SweepError(
                f"{where}: {key} is varied by both {first} and {factor}; the later would overwrite the earlier at "
                "every point: vary it in one of them"
            )
    in_every_variant = set.intersection(*(set(var) for var in spec.variants)) if spec.variants else set()
    for key in spec.fixed:  # a fixed value that a factor replaces at every point is never used
        if key in owners and (owners[key] != "variants" or key in in_every_variant):
            raise SweepError(
                f"{where}: {key} is set in fixed and varied by {owners[key]}, which replaces the fixed value at "
                f"every point: remove {key} from fixed (or stop varying it)"
            )
    seen: dict[tuple[tuple[str, str], ...], int] = {}
    for i, var in enumerate(spec.variants):  # two variants that set the same values would train the same runs
        same = seen.setdefault(tuple(sorted((k, repr(v)) for k, v in var.items() if k != "name")), i)
        if same != i:
            raise SweepError(
                f"{where}: variants {same} and {i} set the same values ({_variant_text(var)}), so their points "
                "would be the same runs: remove one or make them differ"
            )
    for i, var in enumerate(spec.variants or [{}]):
        label = f"variant {var['name']}" if "name" in var else f"variant {i}"
        keys = [("fixed", k) for k in spec.fixed] + [(label, k) for k in var if k != "name"]
        keys += [("zip", k) for k in zip_keys] + [("grid", k) for k in grid_keys]  # in the order they are applied
        for a, (fa, ka) in enumerate(keys):
            for fb, kb in keys[a + 1 :]:
                if kb.startswith(f"{ka}.") and (fa == "fixed" or (fa == fb != "zip" and fa != "grid")):
                    continue  # the later, inner key changes one key of the earlier value: what it says
                if kb.startswith(f"{ka}.") or ka.startswith(f"{kb}."):
                    (outer, fo), (inner, fi) = sorted([(ka, fa), (kb, fb)], key=lambda t: len(t[0]))
                    raise SweepError(
                        f"{where}: {inner} ({fi}) lies inside {outer} ({fo}), which the point also sets: one "
                        f"would silently overwrite the other; set {inner} in one place only (inside the values of "
                        f"{outer}, or {outer}'s other keys one by one)"
                    )


def _variant_text(variant: dict[str, Any]) -> str:
    """A variant's values as overrides, for messages (``base values`` for one that sets nothing)."""
    items = [f"{k}={yaml_value(v)}" for k, v in variant.items() if k != "name"]
    return " ".join(items) or "base values"


def load_sweep(path: str | Path, *, validate: bool = True) -> SweepSpec:
    """Read a sweep file; with ``validate`` every point's run config is built once (errors name point and key)."""
    path = Path(path)
    data = read_yaml(path)
    if data.get("base") and isinstance(data.get("base_config"), dict):
        _check_base_agrees(data, path)
    spec = spec_from_dict(data, str(path), path.parent)
    if validate:
        spec.validate()
    return spec


def _check_base_agrees(data: dict[str, Any], path: Path) -> None:
    """A sweep file with both ``base`` and ``base_config``: ``base_config`` is used and ``base`` is only its
    provenance (as a sweep folder's own sweep.yaml stores them), so a ``base`` file that says otherwise is refused
    rather than silently ignored."""
    base = Path(data["base"]) if Path(data["base"]).is_absolute() else path.parent / data["base"]
    if not base.is_file():
        return  # a stored sweep whose base file has moved: base_config holds the config
    file = read_yaml(base)
    file.pop("_meta", None)
    if file != data["base_config"]:
        raise SweepError(
            f"{path}: sets both base ({data['base']}) and base_config, and they differ; base_config would be used "
            "and base ignored: give one of them"
        )


def dump_spec(spec: SweepSpec, path: str | Path) -> None:
    """Write ``spec`` as a self-contained sweep file (base config inline), atomically (job-array tasks may write
    the same folder's file at once)."""
    from vaelab.checkpoint import atomic_write_text

    atomic_write_text(Path(path), yaml.safe_dump(spec.to_dict(), sort_keys=False))
