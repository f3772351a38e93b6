"""The rule of every key of a run config, gathered in one table, and the rules that relate keys of different
sections.

:data:`RULES` maps each leaf key of a run config (``train.batch_size``, ``eval.mi_pool``, ...) to the values it
accepts; :func:`validate_config` applies them (and the rules that relate two keys, and the options of the chosen
strategy, regulariser and loss terms) to a loaded config before any data is read or any folder written. A value
outside its rule is a :class:`~vaelab.errors.ConfigError` of one line naming the full key and the allowed values:
``train.batch_size must be an integer >= 1, got 0``. The loader's type checks (``from_dict``) run first; keys
whose type is the whole rule (booleans, closed choices) are listed as :class:`Typed` so that the table is
complete (a test checks that every key of :class:`~vaelab.runconfig.RunConfig` has a rule).

Each rule is written once, by the layer that reads the key, and this table gathers them: ``data.*`` in
:data:`vaelab.data.checks.DATA_RULES` (with :func:`~vaelab.data.checks.check_data`), ``model.*`` in
:data:`vaelab.models.MODEL_RULES` (with :func:`~vaelab.models.check_model`), ``objective.*`` in
:data:`vaelab.objectives.objective.OBJECTIVE_RULES` (schedules: :data:`vaelab.objectives.schedules.SCHEDULE_RULES`;
free bits: :mod:`vaelab.objectives.terms`), ``eval.mi_pool`` and ``eval.au_threshold`` by the metrics that read
them, ``name``, ``seed``, ``train.*`` and the rest of ``eval.*`` here. Functions that can be called without a
loaded config (``load_dataset``, ``build_model``, ``build_objective``, the regularisers, strategies and terms,
from Python) apply the same rule objects, so that each range and its message are written once. The building
blocks (:class:`Num`, :class:`Choice`, ..., :func:`option`) are in :mod:`vaelab.rules` and importable from here.

:data:`RESUME_KEYS` and :data:`EVALUATE_KEYS` are the settings that ``vaelab resume`` and ``vaelab evaluate``
accept as ``key=value`` overrides: those that do not change the trained model.
"""

from __future__ import annotations

import contextlib
import dataclasses
import typing
from collections.abc import Callable, Iterator
from typing import Any

from vaelab.configio import parse_scalar
from vaelab.data.checks import DATA_RULES as DATA_RULES
from vaelab.data.checks import FIXED_VALID_SPLIT as FIXED_VALID_SPLIT
from vaelab.data.checks import check_data as check_data
from vaelab.data.checks import check_data_keys as check_data_keys
from vaelab.data.checks import is_text_data as _text_data
from vaelab.data.config import DataConfig
from vaelab.errors import ConfigError as ConfigError
from vaelab.errors import UserError
from vaelab.metrics.collect import MI_POOL
from vaelab.metrics.extras import EXTRA_METRICS
from vaelab.metrics.likelihood import IW_CHUNK
from vaelab.metrics.units import AU_THRESHOLD
from vaelab.models import FIXED_LIKELIHOOD as FIXED_LIKELIHOOD
from vaelab.models import LIKELIHOOD_READERS as LIKELIHOOD_READERS
from vaelab.models import MODEL_RULES as MODEL_RULES
from vaelab.models import OWN_LIKELIHOOD as OWN_LIKELIHOOD
from vaelab.models import TEXT_MODELS as TEXT_MODELS
from vaelab.models import check_model as check_model
from vaelab.models import check_model_keys as check_model_keys
from vaelab.objectives import build_objective
from vaelab.objectives.objective import OBJECTIVE_RULES as OBJECTIVE_RULES
from vaelab.objectives.schedules import SCHEDULE_RULES as SCHEDULE_RULES
from vaelab.objectives.schedules import ScheduleConfig
from vaelab.objectives.schedules import check_schedule as check_schedule
from vaelab.objectives.schedules import check_schedule_keys as check_schedule_keys
from vaelab.objectives.terms import check_free_bits_apply as check_free_bits_apply
from vaelab.objectives.terms import check_free_bits_groups as check_free_bits_groups
from vaelab.registry import UnknownChoiceError
from vaelab.rules import COUNT as COUNT
from vaelab.rules import DEVICE_PATTERN as DEVICE_PATTERN
from vaelab.rules import MAX_EPOCHS, MAX_LR
from vaelab.rules import PROBABILITY_OPEN as PROBABILITY_OPEN
from vaelab.rules import SEED as SEED
from vaelab.rules import Choice as Choice
from vaelab.rules import Device as Device
from vaelab.rules import Either as Either
from vaelab.rules import Int as Int
from vaelab.rules import Items as Items
from vaelab.rules import Num as Num
from vaelab.rules import Rule as Rule
from vaelab.rules import Text as Text
from vaelab.rules import Typed as Typed
from vaelab.rules import check_device_available as check_device_available
from vaelab.rules import device_available as device_available
from vaelab.rules import get_key as get_key
from vaelab.rules import option as option
from vaelab.runconfig import EvalConfig, LRDecayConfig, RunConfig, TrainConfig, apply_overrides, expand_overrides
from vaelab.training.strategies import STRATEGIES

RULES: dict[str, Rule] = {
    "name": Text(no_slash=True),
    "seed": SEED,
    **DATA_RULES,
    **MODEL_RULES,
    **OBJECTIVE_RULES,
    # train
    "train.strategy": Choice(registry=lambda: STRATEGIES),
    "train.optimizer": Typed(),
    "train.lr": Num(lo=0, hi=MAX_LR, lo_open=True),
    "train.momentum": PROBABILITY_OPEN,
    "train.weight_decay": Num(lo=0),
    "train.batch_size": COUNT,
    "train.epochs": Int(1, MAX_EPOCHS),
    "train.max_steps": Int(1, optional=True),
    "train.grad_clip": Num(lo=0, lo_open=True, optional=True),
    "train.early_stopping_patience": Int(1, optional=True),
    "train.selection": Typed(),
    "train.lr_decay.enabled": Typed(),
    "train.lr_decay.factor": Num(lo=0, hi=1, lo_open=True, hi_open=True),
    "train.lr_decay.patience": COUNT,
    "train.lr_decay.max_decays": Int(0),
    "train.lr_decay.reload_best": Typed(),
    "train.checkpoint_every_steps": Int(1, optional=True),
    "train.log_every_steps": COUNT,
    "train.progress": Typed(),
    "train.device": Device(),
    "train.precision": Typed(),
    "train.tensorboard": Typed(),
    "train.strategy_options": Typed(why="options the strategy names (checked by it)"),
    # eval
    "eval.batch_size": COUNT,
    "eval.iw_samples": Int(0, 10**6),  # K importance samples; 5000 is the usual most, 10**6 catches a typo
    "eval.iw_chunk": IW_CHUNK,
    "eval.mi_pool": MI_POOL,
    "eval.au_threshold": AU_THRESHOLD,
    "eval.final_split": Typed(),
    "eval.binarize_seed": SEED,
    "eval.extra_metrics": Items(item=Choice(registry=lambda: EXTRA_METRICS), unique=True),
    "eval.extras_every_epoch": Typed(),
    "eval.hole_prior_samples": Int(1, 10**7),  # 78x the default; 10**12 (a typo) ran for hours after training
}
"""The rule of every leaf key of a run config."""


RESUME_KEYS: tuple[str, ...] = (
    "eval.batch_size",
    "eval.iw_samples",
    "eval.iw_chunk",
    "eval.au_threshold",
    "eval.final_split",
    "eval.extra_metrics",
    "eval.extras_every_epoch",
    "eval.hole_prior_samples",
    "train.log_every_steps",
    "train.progress",
    "train.device",
    "train.tensorboard",
)
"""What ``vaelab resume DIR key=value ...`` may change: the final evaluation, logging and the device; nothing that
changes the trained model. Not ``eval.binarize_seed`` (the validation split's binarisation, which picks the best
checkpoint and drives LR decay and early stopping) nor ``eval.mi_pool`` (the validation MI that the aggressive
strategy's switch-off reads)."""

EVALUATE_KEYS: tuple[str, ...] = ("eval.*", "data.eval_size", "train.device", "train.precision")
"""What ``vaelab evaluate DIR key=value ...`` may change: the evaluation subset, the device, and the precision of
the evaluation's matrix products (``train.precision``; the trained parameters are read as they are)."""


def leaf_keys(cls: type = RunConfig, prefix: str = "") -> Iterator[str]:
    """Every leaf key of a config dataclass (nested dataclasses expanded), e.g. ``train.lr_decay.factor``."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(hints[f.name]):
            yield from leaf_keys(hints[f.name], f"{key}.")
        else:
            yield key


def key_allowed(key: str, allowed: tuple[str, ...]) -> bool:
    """Whether ``key`` is one of ``allowed`` (an entry ``section.*`` allows the whole section)."""
    return any(key == a or (a.endswith(".*") and key.startswith(a[:-1])) for a in allowed)


def check_override_keys(overrides: list[str], allowed: tuple[str, ...], command: str) -> None:
    """Refuse an override whose key ``command`` does not accept (one line listing the keys it does accept); a
    mapping given for a section is checked key by key (:func:`vaelab.runconfig.expand_overrides`)."""
    overrides = expand_overrides(overrides)
    for item in overrides:
        key = item.partition("=")[0].strip()
        if "=" not in item or not key:
            raise ConfigError(f"override {item!r} must look like key=value (e.g. eval.iw_samples=1000)")
        if key not in RULES and not any(k.startswith(f"{key}.") for k in RULES):
            raise ConfigError(f"unknown config key {key!r} in override {item!r}")
        if not key_allowed(key, allowed):
            raise ConfigError(
                f"{command} does not accept {key}: it accepts only settings that do not change the trained model "
                f"({', '.join(allowed)}); to change {key}, train a new run with --out in another folder"
            )
    check_override_values(overrides)


def check_override_values(overrides: list[str]) -> None:
    """Check each ``key=value`` override's value (its type too) against its key's rule, so that the error names
    the key as given on the command line, not the config file (the loaded config is checked as a whole
    afterwards). A mapping given for a section is checked key by key."""
    for item in expand_overrides(overrides):
        key, _, raw = item.partition("=")
        rule = RULES.get(key.strip())
        if rule is None or isinstance(rule, Typed):
            continue
        value = parse_scalar(raw)
        if isinstance(rule, Num) and not rule.integer and isinstance(value, str):
            with contextlib.suppress(ValueError):
                value = float(value)  # "1e-3" is a string to YAML, a number to the config loader
        if isinstance(rule, Num) and rule.integer and isinstance(value, float) and value.is_integer():
            value = int(value)  # the loader reads 2.0 as 2
        rule.check(key.strip(), value)  # a wrong type too: named as given on the command line, not as the file's


def check(key: str, value: Any, rule: Rule | None = None) -> Any:
    """Apply the rule of config key ``key`` (``rule``, else ``RULES[key]``) to ``value``: a one-line
    :class:`ConfigError` (a ValueError) naming ``key``. Returns ``value``. The guard of functions that can be
    called without a loaded config, and of the options that strategies, regularisers and terms name
    (``check("train.strategy_options.window", window, COUNT)``)."""
    (rule if rule is not None else RULES[key]).check(key, value)
    return value


def check_section(section: Any, prefix: str) -> None:
    """Apply every rule of ``RULES`` under ``prefix`` (``data``, ``model``, ``train.lr_decay``, ...) to the
    section dataclass ``section``."""
    for key, rule in RULES.items():
        if key.startswith(f"{prefix}."):
            rule.check(key, get_key(section, key[len(prefix) + 1 :]))


def check_batch_norm_batches(cfg: RunConfig, batch_sizes: list[int], n_train: int) -> None:
    """BN-VAE (``model.posterior=bn``) normalises over the batch: every training batch (``batch_sizes``, this
    process's batches of an epoch) needs >= 2 examples, checked before training rather than at the batch of 1."""
    if cfg.model.posterior == "bn" and min(batch_sizes, default=2) < 2:
        hint = " or data.bucketing=none" if _text_data(cfg.data.name) and cfg.data.bucketing == "exact" else ""
        raise ConfigError(
            f"model.posterior=bn (BN-VAE) normalises over the batch and needs >= 2 examples in every training "
            f"batch, but train.batch_size={cfg.train.batch_size} leaves a batch of 1 of the {n_train} training "
            f"examples; choose another train.batch_size{hint}"
        )


LABEL_METRICS: dict[str, str] = {"probe": "a linear probe that predicts the labels from z"}
"""Extra metrics that need labelled data (``data.format: label_tab`` for a text corpus)."""


def check_metrics_have_labels(metrics: list[str], num_classes: int | None, key: str, data_name: str) -> None:
    """A metric of :data:`LABEL_METRICS` named in ``key`` (``eval.extra_metrics``, ``measure.extra_metrics``) on a
    data set without labels (``num_classes`` None) is refused before any training: an explicit request that the
    data cannot honour is an error, not a ``probe_skipped`` found in the results afterwards."""
    if num_classes is not None:
        return
    for i, name in enumerate(metrics):
        if name in LABEL_METRICS:
            hint = " (or data.format=label_tab for a corpus with labels)" if _text_data(data_name) else ""
            raise ConfigError(
                f"{key}[{i}]={name} needs labels ({LABEL_METRICS[name]}), but data set {data_name} has none; "
                f"remove {name} from {key}{hint}"
            )


def check_bernoulli_data(cfg: RunConfig, lo: float, hi: float) -> None:
    """A built-in decoder with a Bernoulli likelihood (``model.likelihood=bernoulli`` of mlp/conv, pixelcnn) needs
    data in [0, 1]; ``lo``..``hi`` is the range of the values the model sees (after ``data.binarize``)."""
    m = cfg.model
    bernoulli = (m.type in LIKELIHOOD_READERS and m.likelihood == "bernoulli") or FIXED_LIKELIHOOD.get(
        m.type
    ) == "bernoulli"
    if bernoulli and (lo < 0 or hi > 1):
        raise ConfigError(
            f"model.likelihood=bernoulli (model.type={m.type}) needs data in [0, 1], but data set {cfg.data.name} "
            f"holds values {lo:g}..{hi:g}; scale them to [0, 1] (8-bit intensities: divide by 255) or use "
            "model.likelihood=gaussian"
        )


def _relations(cfg: RunConfig) -> None:
    """Rules that relate two keys, or a key and the data set or model it applies to (the schedules are checked
    when :func:`_components` builds the objective: :func:`check_schedule`)."""
    check_data(cfg.data)
    check_model(cfg.model)
    m, d = cfg.model, cfg.data
    if m.type != "custom" and (m.type in TEXT_MODELS) != _text_data(d.name):
        kind, other = ("a text", "sentences") if m.type in TEXT_MODELS else ("an image", "images")
        fit = "sentences (lstm_vae, lstm_lm)" if _text_data(d.name) else "images (mlp, conv, ...)"
        raise ConfigError(
            f"model.type={m.type} is {kind} model, but data.name={d.name} does not hold {other}; choose a "
            f"model.type for {fit}"
        )
    if d.name == "synthetic_gaussian" and m.type in LIKELIHOOD_READERS and m.likelihood == "bernoulli":
        raise ConfigError(
            "model.likelihood=bernoulli needs data in [0, 1], but data.name=synthetic_gaussian holds real numbers "
            "(x = W z + b + noise); set model.likelihood=gaussian"
        )
    if d.name == "synthetic_gaussian" and FIXED_LIKELIHOOD.get(m.type) == "bernoulli":
        raise ConfigError(
            f"model.type={m.type} ({OWN_LIKELIHOOD[m.type]}) needs data in [0, 1], but data.name=synthetic_gaussian "
            "holds real numbers (x = W z + b + noise); choose model.type=mlp or conv with model.likelihood=gaussian"
        )
    if _text_data(d.name) and cfg.eval.binarize_seed != EvalConfig.binarize_seed:
        raise ConfigError(
            f"eval.binarize_seed={cfg.eval.binarize_seed} is not read by data.name={d.name} (a text corpus: nothing "
            "is binarised); remove eval.binarize_seed"
        )
    if cfg.train.selection == "beta_elbo" and cfg.objective.beta.type != "constant":
        raise ConfigError(
            f"train.selection=beta_elbo compares epochs at one beta, but objective.beta.type={cfg.objective.beta.type} "
            "changes beta during training; use train.selection=elbo or a constant beta"
        )
    check_free_bits_groups(cfg.objective.free_bits_groups, cfg.model.latent_dim)
    for i, spec in enumerate(cfg.objective.terms):
        if isinstance(spec, dict) and isinstance(spec.get("weight"), dict):
            for k, rule in SCHEDULE_RULES.items():  # before the term's mapping is read (its types checked)
                if k in spec["weight"]:
                    rule.check(f"objective.terms[{i}].weight.{k}", spec["weight"][k])


def _components(cfg: RunConfig) -> None:
    """Build what needs no data (the strategy with its options, the objective with its regulariser, schedules and
    terms), so that their option checks run now; their errors name the key."""
    try:
        factory = STRATEGIES.get(cfg.train.strategy, key="train.strategy")
        try:
            strategy = factory(**cfg.train.strategy_options)  # built-in strategies read them into their Options
        except TypeError as e:  # a strategy registered without declared options, given one it does not take
            raise ConfigError(f"train.strategy_options: {e}") from None
        strategy.check_budget(cfg.train.epochs, cfg.train.max_steps)  # the trainer checks again with the data
        build_objective(cfg.objective, 1, 1)
        _transform_modality(cfg)
    except (UnknownChoiceError, UserError) as e:  # a plain ValueError or TypeError is a bug: it keeps its traceback
        raise ConfigError(str(e)) from None


def _transform_modality(cfg: RunConfig) -> None:
    """The consistency terms' policy is of the data's modality (image policies on images, text ones on text),
    known from ``data.name`` before any file is read; the image size is checked with the data
    (:func:`vaelab.run.check_transform_fits`)."""
    from vaelab.data.dataset import DATASETS
    from vaelab.objectives.consistency import configured_transform_key
    from vaelab.transforms import check_transform_data

    found = configured_transform_key(cfg.objective.terms)
    if found is None or cfg.data.name not in DATASETS:
        return
    key, spec = found
    check_transform_data(spec, key, cfg.data.name, DATASETS.modality(cfg.data.name))


def validate_config(cfg: RunConfig) -> RunConfig:
    """Check every value of ``cfg`` against :data:`RULES`, the rules relating keys, and the options of its
    strategy, regulariser and terms; raise a one-line :class:`ConfigError` naming the key. Returns ``cfg``."""
    for key, rule in RULES.items():
        rule.check(key, get_key(cfg, key))
    _relations(cfg)
    _components(cfg)
    return cfg


def check_written_keys(cfg: RunConfig, written: dict[str, Any], overrides: list[str]) -> None:
    """Refuse a key the user wrote that ``cfg`` does not read given its other keys, in one line naming it: a key
    that would otherwise be ignored without a word. ``written``: what the user wrote in the config file (or a
    sweep's base config), as a nested mapping (:func:`vaelab.config.written_part`); ``overrides``: the ``key=value``
    items applied on it. Fresh configs only (``vaelab train``, sweep points, study arms): a run folder's saved
    config holds every key.

    - ``model.*``: by the final model type, likelihood and posterior head, wherever the key was written (an
      override ``model.type=conv`` on a file that sets ``model.hidden`` is refused:
      :func:`vaelab.models.check_model_keys`);
    - ``data.*`` settings of one generator (``data.latent_dim``, ``data.num_templates``, ...): by the final data set
      (:func:`vaelab.data.checks.check_data_keys`), or for a key written in the file, by the file's own
      ``data.name`` (an override ``data.name=npz`` leaves the file's generator settings unread, as for a schedule);
    - schedules (``objective.beta``, each ``objective.terms[i].weight``): by the schedule's type
      (:func:`vaelab.objectives.schedules.check_schedule_keys`); ``train.momentum``: only ``train.optimizer=sgd``
      reads it; ``train.lr_decay.*``: only read while ``train.lr_decay.enabled`` is true. For these, a key written
      by an override must be read by the final config; a key written in the file, by the final config or by the
      file's own choice (its schedule type, optimizer, ``enabled``): an override that switches the choice
      (``objective.beta.type=constant`` on an annealed config) leaves the file's settings for the other choice
      unread, as it says.
    """
    merged = apply_overrides(written, overrides)
    model = merged.get("model")
    check_model_keys(cfg.model, list(model) if isinstance(model, dict) else [])
    given = apply_overrides({}, overrides)
    file_name = _section(written, "data").get("name", DataConfig.name)
    # a data key set to null (unset: data.path=null on a generated set) asks for nothing, so it is not refused
    written_data = [k for k, v in _section(written, "data").items() if v is not None]
    try:  # the file's keys: read by the final data set, or by the file's own (an override switched data.name)
        check_data_keys(cfg.data.name, written_data)
    except ConfigError as e:
        try:
            check_data_keys(str(file_name), written_data)
        except ConfigError:
            raise e from None
    check_data_keys(cfg.data.name, [k for k, v in _section(given, "data").items() if v is not None])
    for source in (written, given):  # a term list is written whole: each weight is read as it is written
        terms = _section(source, "objective").get("terms")
        for i, term in enumerate(terms if isinstance(terms, list) else []):
            weight = term.get("weight") if isinstance(term, dict) else None
            if isinstance(weight, dict):
                kind = weight.get("type", ScheduleConfig.type)
                check_schedule_keys(str(kind), list(weight), f"objective.terms[{i}].weight")
    final = (cfg.objective.beta.type, cfg.train.optimizer, cfg.train.lr_decay.enabled)
    beta, train = _section(_section(written, "objective"), "beta"), _section(written, "train")
    own = (
        beta.get("type", ScheduleConfig.type),
        train.get("optimizer", TrainConfig.optimizer),
        _section(train, "lr_decay").get("enabled", LRDecayConfig.enabled),
    )
    for check in _choice_checks(written):
        try:
            check(final)
        except ConfigError as e:
            try:
                check(own)
            except ConfigError:
                raise e from None
    for check in _choice_checks(given):
        check(final)
    _check_unread_settings(cfg, _section(merged, "objective"))


FREE_BITS_REGULARISERS = ("free_bits_batch", "free_bits_fine")


def check_extras_every_epoch(cfg: RunConfig) -> None:
    """``eval.extras_every_epoch`` needs ``eval.extra_metrics`` to measure (a fresh config, or resume's overrides of
    either key); else it would change nothing."""
    if cfg.eval.extras_every_epoch and not cfg.eval.extra_metrics:
        raise ConfigError(
            "eval.extras_every_epoch=true measures eval.extra_metrics every epoch, but eval.extra_metrics is empty; "
            "add the metrics (e.g. eval.extra_metrics=[holes]) or remove eval.extras_every_epoch"
        )


def _check_unread_settings(cfg: RunConfig, objective: dict[str, Any]) -> None:
    """Settings of a fresh config that would change nothing given its other keys: an aggressive strategy's
    ``patience`` under ``rule: first_decrease``, ``eval.extras_every_epoch`` without extra metrics, and a free-bits
    regulariser whose ``objective.free_bits`` was never written (its default 0 is the plain KL). ``objective``: the
    objective section the user wrote, overrides applied."""
    options = cfg.train.strategy_options or {}
    if cfg.train.strategy == "aggressive" and "patience" in options:
        rule = options.get("rule", "patience")
        if rule != "patience":
            raise ConfigError(
                f"train.strategy_options.patience: not read by rule={rule} (only by rule=patience); remove it or "
                "set train.strategy_options.rule=patience"
            )
    check_extras_every_epoch(cfg)
    if cfg.objective.regulariser in FREE_BITS_REGULARISERS and "free_bits" not in objective:
        raise ConfigError(
            f"objective.regulariser={cfg.objective.regulariser} without objective.free_bits: its default 0 makes "
            "it the plain KL; set objective.free_bits (nats) or use objective.regulariser=kl"
        )


def _choice_checks(source: dict[str, Any]) -> list[Callable[[tuple[Any, Any, Any]], None]]:
    """One check per key of ``source`` (what the user wrote) that only a choice reads, given the choice
    (schedule type of ``objective.beta``, ``train.optimizer``, ``train.lr_decay.enabled``)."""

    def schedule_key(key: str) -> Callable[[tuple[Any, Any, Any]], None]:
        return lambda choice: check_schedule_keys(str(choice[0]), [key], "objective.beta")

    def momentum(choice: tuple[Any, Any, Any]) -> None:
        if choice[1] != "sgd":
            raise ConfigError(
                f"train.momentum: not read by train.optimizer={choice[1]} (only by train.optimizer=sgd); remove it "
                "or set train.optimizer=sgd"
            )

    def decay_key(key: str) -> Callable[[tuple[Any, Any, Any]], None]:
        def check(choice: tuple[Any, Any, Any]) -> None:
            if choice[2] is False:
                raise ConfigError(
                    f"train.lr_decay.{key}: not read while train.lr_decay.enabled is false; remove it or set "
                    "train.lr_decay.enabled=true"
                )

        return check

    train = _section(source, "train")
    checks = [schedule_key(k) for k in _section(_section(source, "objective"), "beta")]
    checks += [momentum] if "momentum" in train else []
    checks += [decay_key(k) for k in _section(train, "lr_decay") if k != "enabled"]
    return checks


def _section(mapping: Any, key: str) -> dict[str, Any]:
    value = mapping.get(key) if isinstance(mapping, dict) else None
    return value if isinstance(value, dict) else {}
