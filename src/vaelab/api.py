"""vaelab's Python API: train your own encoder and decoder on your own data, and measure collapse on any model.

    import vaelab

    def build(latent_dim: int = 16):                      # a module-level factory: the run folder records it
        return MyEncoder(latent_dim), MyDecoder(latent_dim)

    run = vaelab.train(build, x_train, "runs/mine", model_kwargs={"latent_dim": 16},
                       overrides=["train.strategy=aggressive", "train.epochs=20"])
    print(run.summary["nll_iw"], run.diagnose().verdict)   # the same files as `vaelab train`; every command reads them

The contract (:mod:`vaelab.models.custom`): ``encoder(x) -> (mu, logvar)``, each (B, D); ``decoder.log_prob(x, z)``
-> log p(x|z) per example in nats, shape (B,), for z (B, D); optionally ``decoder.sample(z, mean=False)``. It is
checked on the first training batch, before any training, with one-line errors.

Data (:mod:`vaelab.data.user`): tensors or numpy arrays (N, ...), ``(x, labels)`` pairs, a torch ``Dataset`` of
``x`` or ``(x, label)`` items, or lists of token-id sequences; a copy is written into the run folder (``DIR/data/``)
so that ``vaelab evaluate / diagnose / report / resume DIR`` reload exactly those data.

Metrics (nats per example, summed over data and latent dimensions) take a model (a vaelab VAE, a loaded run's
model, or a pair ``(encoder, decoder)`` of modules meeting the contract) and data: a tensor (N, ...), a list of
token-id sequences, or an iterable of batches (tensors, ``(x, y)`` pairs, or objects with ``.x`` and ``.y`` such as
:meth:`LoadedRun.batches`). See docs/api.md.
"""

from __future__ import annotations

import json
import numbers
import os
import shutil
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import Tensor, nn

from vaelab import run as _run
from vaelab.checks import (
    COUNT,
    EVALUATE_KEYS,
    RULES,
    Int,
    Num,
    check,
    check_override_keys,
    check_override_values,
    validate_config,
)
from vaelab.config import (
    RunConfig,
    apply_overrides,
    check_written_keys,
    load_saved_config,
    read_yaml,
    run_config,
    to_dict,
    written_part,
)
from vaelab.data import load_dataset
from vaelab.data.base import to_float
from vaelab.data.config import DataConfig
from vaelab.data.text import TokenBatch
from vaelab.data.user import (
    TOKEN_OFFSET,
    UserData,
    as_intensities,
    as_user_data,
    kind_phrase,
    refuse_float_intensities,
    tensor_data,
    token_data,
)
from vaelab.errors import ConfigError, UserError
from vaelab.metrics.collect import EvalCollection, collect, eval_mode, pooled_mutual_information, summarise
from vaelab.metrics.holes import DEFAULT_PRIOR_SAMPLES, DEFAULT_TAUS
from vaelab.metrics.holes import hole_metrics as _hole_metrics
from vaelab.metrics.information import MIEstimate
from vaelab.metrics.likelihood import DEFAULT_IW_CHUNK, elbo_terms, iw_log_likelihood
from vaelab.metrics.probe import PROBE_DRAWS, PROBE_SEED, linear_probe, majority_rate, posterior_draws
from vaelab.metrics.units import active_units as _active_units
from vaelab.metrics.units import kl_per_dim as _kl_per_dim
from vaelab.models.base import VAE, Decoder, Encoder
from vaelab.models.base import batch_size as _num_examples
from vaelab.models.custom import (
    ContractError,
    ContractTypeError,
    UserDecoder,
    UserEncoder,
    call_factory,
    check_first_batch,
    check_modules,
    check_posterior,
    check_runs_on,
    factory_spec,
    wrap_modules,
)
from vaelab.models.likelihoods import Bernoulli
from vaelab.rules import too_few_to_evaluate
from vaelab.runconfig import check_overrides_once, config_sections, expand_overrides
from vaelab.runfolder import RunFolder, read_json_object

DATA_DIR = "data"
"""Sub-folder of a run folder that holds the copy of the user's data."""

_API_DATA_KEYS = ("name", "path", "files", "vocab_file", "format")
_API_MODEL_KEYS = ("type", "factory", "factory_kwargs")
_VALID_SIZE_UNREAD = (
    "{where}, which vaelab.train does not read: the data's validation split is written with them (a 'valid' "
    "split, else valid_fraction of vaelab.tensor_data / token_data, default 0.1), as an npz file's own "
    "validation array makes data.valid_size unread; pass valid_fraction=... instead"
)


# --------------------------------------------------------------------------------------------------------------
# runs


LoadedRun = _run.Run
"""A run folder loaded for use in Python (:func:`load_run`): a :class:`vaelab.run.Run`, with its validated
``config``, ``dataset`` (the splits as trained on), ``model`` (the checkpoint's weights, in eval mode), ``device``,
``objective``, ``path`` and :meth:`~vaelab.run.Run.batches`."""


@dataclass
class Run:
    """A run folder written by :func:`train` (or ``vaelab train``): the files are the record, these are shortcuts.

    ``vaelab.Run`` is this handle on a folder; the run layer's bundle of config, data set, model and objective
    is another class, :class:`vaelab.run.Run`, served here as :data:`LoadedRun` (what :meth:`load` returns)."""

    path: Path

    def __post_init__(self) -> None:
        self.path = _folder_path(self.path, "path")
        if not self.path.is_dir():
            kind, what = (
                (NotADirectoryError, "is a file") if self.path.exists() else (FileNotFoundError, "does not exist")
            )
            raise kind(f"vaelab.Run: {self.path} {what}; give a run folder (one `vaelab train` wrote)")
        if not (self.path / "config.yaml").is_file():
            inside = (
                " (a sweep or study folder: its runs are in points/)" if (self.path / "sweep.yaml").is_file() else ""
            )
            raise FileNotFoundError(f"vaelab.Run: {self.path} is not a run folder (no config.yaml){inside}")

    @property
    def summary(self) -> dict[str, Any]:
        """summary.json: the final metrics of the best model on the test split (nats per example)."""
        path = self.path / "summary.json"
        if not path.exists():  # a run that crashed or is still training has none yet
            resume = (self.path / "checkpoints" / "last.pt").is_file()
            todo = f"finish it with `vaelab resume {self.path}`" if resume else "train it again (it has no checkpoint)"
            raise UserError(
                f"vaelab.Run: {self.path} has no summary.json: the run never finished (it crashed or was stopped) or "
                f"is still training; {todo}, or wait for the training to end"
            )
        return read_json_object(path)

    @property
    def config(self) -> RunConfig:
        """The run's config (config.yaml, validated)."""
        self._check_config_file()
        return load_saved_config(self.path / "config.yaml")

    def _check_config_file(self) -> None:
        """config.yaml, there when the handle was made, is still there (else one line, not a missing file)."""
        if not (self.path / "config.yaml").exists():
            raise UserError(
                f"vaelab.Run: {self.path} has no config.yaml any more (deleted or moved after vaelab.Run opened it), "
                "so the run can no longer be read; restore config.yaml or train the run again"
            )

    def load(self, checkpoint: str = "best") -> LoadedRun:
        """The run's model and data (:func:`load_run`)."""
        self._check_config_file()
        return load_run(self.path, checkpoint)

    def evaluate(self, *, split: str = "test", iw_samples: int | None = None, overrides: Sequence[str] = ()) -> dict:
        """``vaelab evaluate DIR``: metrics of the best checkpoint on ``split`` (IW-NLL with ``iw_samples``, default
        ``eval.iw_samples``), written to DIR/eval.json and returned."""
        from vaelab.evaluation import evaluate_run

        _check_split(split)
        if iw_samples is not None:  # the rule of eval.iw_samples, before anything is loaded
            check("iw_samples", iw_samples, RULES["eval.iw_samples"])
        items = _evaluate_overrides(overrides, split, iw_samples)
        self._check_config_file()
        return evaluate_run(self.path, split=split, iw_samples=iw_samples, overrides=items)

    def diagnose(self, *, evaluate: bool | None = None, split: str = "test") -> Any:
        """``vaelab diagnose DIR``: a :class:`~vaelab.diagnose.Diagnosis` (``.verdict``, ``.text()``), written to
        DIR/diagnosis.md and diagnosis.json. ``evaluate``: True re-evaluates the best checkpoint, False only reads
        the run's files, None (the default) evaluates when they lack what a diagnosis needs."""
        from vaelab.diagnose import diagnose_run

        if evaluate is not None and not isinstance(evaluate, bool):  # 'no' would count as true
            raise ConfigError(f"evaluate must be True, False or None, got {evaluate!r:.60}")
        _check_split(split)
        self._check_config_file()
        return diagnose_run(self.path, evaluate=evaluate, split=split)

    def write_report(self, *, samples: bool = True) -> Path:
        """``vaelab report DIR``: the self-contained HTML page DIR/report.html; returns its path."""
        self._check_config_file()
        return write_report(self.path, samples=samples)


def _folder_path(path: Any, name: str) -> Path:
    """A folder argument given as a str or an os.PathLike, as a Path (anything else refused, naming ``name``; an
    empty one too: ``Path('')`` is the working directory, as the CLI's empty ``--out`` would be)."""
    if isinstance(path, str | PathLike) and not isinstance(path, bytes):
        if not str(os.fspath(path)).strip():
            raise ConfigError(f"{name} is empty: give a folder's path")
        return Path(path)
    raise ConfigError(f"{name} must be a folder's path (a str or Path), got {type(path).__name__}")


def _check_split(split: Any) -> None:
    """``split`` is one of :data:`SPLIT_NAMES` (one line, before any work)."""
    if not isinstance(split, str) or split not in SPLIT_NAMES:
        raise ConfigError(f"split must be one of {', '.join(SPLIT_NAMES)}, got {split!r:.60}")


def _evaluate_overrides(overrides: Any, split: str, iw_samples: int | None) -> list[str]:
    """``overrides`` of :meth:`Run.evaluate`, refused as ``vaelab evaluate`` refuses them (:data:`EVALUATE_KEYS`,
    and the settings that evaluate would ignore or that contradict its arguments), before any work."""
    from vaelab.evaluation import check_evaluate_overrides

    items = _override_list(overrides)
    check_evaluate_overrides(items, split, iw_samples, api=True)
    return items


def _override_list(overrides: Any) -> list[str]:
    """``overrides`` as a list of ``key=value`` strings; a single string (iterated, one override per character)
    or anything else refused in one line."""
    if isinstance(overrides, str):
        raise ConfigError(f"overrides must be a list of 'key=value' strings, got the string {overrides!r}")
    if not isinstance(overrides, Sequence) or not all(isinstance(o, str) for o in overrides):
        raise ConfigError(f"overrides must be a list of 'key=value' strings, got {overrides!r}")
    check_overrides_once(list(overrides))  # as the command line refuses
    return list(overrides)


def load_run(path: str | Path, checkpoint: str = "best", overrides: Sequence[str] = ()) -> LoadedRun:
    """Load a run folder (any: ``vaelab train``, :func:`train`, a sweep or study point) for use in Python.

    Safe by construction: the checkpoint is read with ``torch.load(weights_only=True)`` (no code runs); a run of
    a custom model imports only the module that config.yaml records in ``model.factory``. ``overrides``: the
    ``key=value`` settings ``vaelab evaluate`` accepts (``eval.*``, ``data.eval_size``, ``train.device``)."""
    if checkpoint not in ("best", "last"):
        raise ConfigError(f"checkpoint must be 'best' or 'last', got {checkpoint!r}")
    items = _override_list(overrides)
    check_override_keys(items, EVALUATE_KEYS, "vaelab.load_run")
    return _run.load_run(_folder_path(path, "path"), checkpoint, overrides=tuple(items))


def write_report(path: str | Path, *, samples: bool = True) -> Path:
    """``vaelab report DIR`` for a run, sweep or study folder: writes DIR/report.html and returns its path."""
    from vaelab.report import write_report as _write

    if not isinstance(samples, bool):  # 'no' would count as true
        raise ConfigError(f"samples must be True or False, got {samples!r}")
    return Path(_write(_folder_path(path, "path"), samples=samples))


def _config_mapping(config: Mapping[str, Any] | RunConfig | str | Path | None) -> dict[str, Any]:
    if config is None:
        return {}
    if isinstance(config, RunConfig):
        return to_dict(config)
    if isinstance(config, str | Path):
        return read_yaml(config)
    if isinstance(config, Mapping):
        try:
            mapping = json.loads(json.dumps(dict(config)))  # a deep copy of plain values
        except (TypeError, ValueError) as e:
            raise ConfigError(
                f"config must hold plain values (numbers, strings, booleans, lists, dicts): {e}"
            ) from None
        for section, value in mapping.items():  # train={...} is merged key by key: a list there is a slip
            if (section,) in config_sections() and value is not None and not isinstance(value, dict):
                raise ConfigError(f"config's {section} section must be a mapping of keys, got {type(value).__name__}")
        return mapping
    raise ConfigError(f"config must be a mapping, a RunConfig or a YAML file path, got {type(config).__name__}")


def _plain(kwargs: Any) -> dict[str, Any]:
    """``model_kwargs`` as plain YAML values (they are written to config.yaml and read back)."""
    if kwargs is None:
        return {}
    if not isinstance(kwargs, Mapping):
        raise ContractTypeError(f"model_kwargs must be a mapping of keyword arguments, got {type(kwargs).__name__}")
    bad = next((k for k in kwargs if not isinstance(k, str)), None)
    if bad is not None:
        raise ContractTypeError(f"model_kwargs: keys must be argument names (strings), got {bad!r:.60}")
    out = dict(kwargs)
    try:
        back = yaml.safe_load(yaml.safe_dump(out))
    except yaml.YAMLError:
        back = None
    if back != out:
        raise ContractTypeError(
            "model_kwargs must hold plain values (numbers, strings, booleans, lists, dicts) that YAML writes and "
            f"reads back unchanged, so that the run folder can rebuild the model; got {out!r:.200}"
        )
    return out


def train(
    model: Callable[..., Any] | str,
    data: Any,
    out: str | Path,
    *,
    model_kwargs: Mapping[str, Any] | None = None,
    config: Mapping[str, Any] | RunConfig | str | Path | None = None,
    overrides: Sequence[str] = (),
) -> Run:
    """Train a VAE made of your own encoder and decoder on your own data into the run folder ``out``.

    Args:
        model: the **factory**, a module-level function (or its ``'package.module:function'`` /
            ``'/path/file.py:function'`` name) returning ``(encoder, decoder)`` (or a vaelab ``VAE``), called with
            ``model_kwargs``. Its import path and kwargs are recorded in config.yaml (``model.factory``,
            ``model.factory_kwargs``) so that every command can rebuild the model.
        data: a tensor / numpy array (N, ...), ``(x, labels)``, a torch Dataset, a list of token-id sequences, a
            mapping ``{"train", "valid", "test"}`` of those, or :func:`vaelab.tensor_data` /
            :func:`vaelab.token_data` (which also set the binarisation, held-out fractions, vocabulary). A copy is
            written to ``out/data/``.
        out: the run folder; one that holds another run is refused (as ``vaelab train --out``).
        model_kwargs: keyword arguments of the factory, a mapping of names to plain YAML values.
        config: the rest of the run config, as a mapping like a YAML config (``{"objective": ..., "train": ...}``),
            a :class:`~vaelab.config.RunConfig` or a YAML file; every objective, regulariser, term and strategy of
            the config system is available (e.g. ``{"train": {"strategy": "aggressive"}}``). ``model.latent_dim``
            defaults to the D the encoder returns.
        overrides: ``key=value`` strings as on the command line (``"objective.free_bits=0.5"``); a key given
            twice is refused, as the command line refuses it.

    Returns:
        A :class:`Run` (``.summary``, ``.load()``, ``.evaluate()``, ``.diagnose()``, ``.write_report()``).

    The config is validated first (one-line :class:`~vaelab.config.ConfigError`), then the modules are run once on
    the first training batch: a broken contract raises a one-line :class:`~vaelab.models.custom.ContractError`
    (a ValueError; a :class:`~vaelab.models.custom.ContractTypeError`, also a TypeError, for wrong types) before
    any training.
    """
    from vaelab.oserrors import check_not_inside_sweep
    from vaelab.training.trainer import Trainer

    overrides = _override_list(overrides)
    root = _folder_path(out, "out")
    spec = factory_spec(model)
    kwargs = _plain(model_kwargs)
    user = as_user_data(data)
    if root.exists() and not root.is_dir():
        raise FileExistsError(f"out={str(root)!r} is a file, not a folder; choose another run folder")
    if reason := RunFolder(root).holds_run():
        raise FileExistsError(reason)
    check_not_inside_sweep(root, "out=", new_run=True)  # a run among a sweep's points would be taken for one

    mapping = _config_mapping(config)
    for section, keys in (("data", _API_DATA_KEYS), ("model", _API_MODEL_KEYS)):
        given = sorted(set(mapping.get(section) or {}) & set(keys))
        if given:
            raise ConfigError(f"config sets {section}.{given[0]}, which vaelab.train sets itself; leave it out")
    valid_size = (mapping.get("data") or {}).get("valid_size", DataConfig.valid_size)
    if valid_size != DataConfig.valid_size:  # the default: what a RunConfig or a saved config.yaml holds
        raise ConfigError(_VALID_SIZE_UNREAD.format(where=f"config sets data.valid_size={valid_size}"))
    for item in expand_overrides(list(overrides)):  # data={path: ...} sets data.path
        key = item.partition("=")[0].strip()
        if any(key == f"data.{k}" for k in _API_DATA_KEYS) or any(key == f"model.{k}" for k in _API_MODEL_KEYS):
            raise ConfigError(f"override {item!r} sets a key that vaelab.train sets itself; leave it out")
        if key == "data.valid_size":  # whatever its value: the override asks for a held-out count
            raise ConfigError(_VALID_SIZE_UNREAD.format(where=f"override {item!r}"))
    written = written_part(mapping, saved=isinstance(mapping.get("_meta"), dict))  # before train sets its keys
    data_dir = (root / DATA_DIR).resolve()
    mapping["data"] = {**(mapping.get("data") or {}), **user.section(data_dir)}
    mapping["model"] = {**(mapping.get("model") or {}), "type": "custom", "factory": spec, "factory_kwargs": kwargs}
    mapping = apply_overrides(mapping, list(overrides))
    latent_given = "latent_dim" in mapping["model"]
    check_override_values(list(overrides))
    cfg = run_config(mapping)
    check_written_keys(cfg, written, list(overrides))  # a key the config does not read, as `vaelab train` refuses

    created = not data_dir.exists()
    root_created = not root.exists()
    user.write(data_dir)
    try:
        dataset = load_dataset(cfg.data)
        made = call_factory(spec, kwargs, "model_kwargs")
        enc, dec = (made.encoder, made.decoder) if isinstance(made, VAE) else made
        info = dataset.model_info()
        batch = next(iter(dataset.loader("train", cfg.train.batch_size, seed=cfg.seed).epoch(0)))
        x = batch.x
        shape = info.get("example_shape")
        if shape and isinstance(x, Tensor) and not isinstance(made, VAE):
            x = x.reshape(x.shape[0], *shape)
        latent = check_first_batch(enc, dec, x, cfg.model.latent_dim if latent_given else None)
        if not latent_given:
            cfg.model.latent_dim = latent
            cfg = validate_config(cfg)
        trainer = Trainer(cfg, root, dataset=dataset)  # its checks too, before anything but the data is written
    except BaseException:  # nothing of a run that never started stays behind
        if root_created:
            shutil.rmtree(root, ignore_errors=True)
        elif created:
            shutil.rmtree(data_dir, ignore_errors=True)
        raise
    trainer.fit()
    return Run(root)


# --------------------------------------------------------------------------------------------------------------
# models and data for the metrics


def as_vae(model: Any, decoder: nn.Module | None = None, *, latent_dim: int | None = None, example: Any = None) -> VAE:
    """A vaelab :class:`~vaelab.models.base.VAE` from ``model``: a VAE (returned as it is), a :class:`LoadedRun`,
    a pair ``(encoder, decoder)``, or an encoder with ``decoder`` given. User modules are wrapped as in training
    (outputs checked, z of shape (S, B, D) handled). ``latent_dim`` defaults to the modules' ``latent_dim``
    attribute, else to the D the encoder returns for the batch ``example``."""
    if latent_dim is not None:
        check("latent_dim", latent_dim, COUNT)
    if isinstance(model, LoadedRun | VAE):
        vae = model.model if isinstance(model, LoadedRun) else model
        if decoder is not None:
            raise UserError(f"as_vae: decoder= is for an encoder given alone, not a {type(model).__name__}")
        if latent_dim is not None and latent_dim != vae.latent_dim:
            raise UserError(
                f"as_vae: latent_dim={latent_dim}, but the {type(model).__name__} has latent_dim={vae.latent_dim}; "
                "leave latent_dim out"
            )
        return vae
    if decoder is None:
        if not (isinstance(model, tuple | list) and len(model) == 2):
            raise ContractTypeError(
                f"a model for the metrics is a vaelab VAE, a loaded run or a pair (encoder, decoder), got "
                f"{type(model).__name__}"
            )
        model, decoder = model
    d = latent_dim or getattr(model, "latent_dim", None) or getattr(decoder, "latent_dim", None)
    if d is None or (latent_dim is not None and example is not None):  # both given: checked against each other now
        if example is None:
            raise UserError("as_vae needs latent_dim= (or example=, a batch the encoder can read)")
        check_modules(model, decoder)
        with torch.no_grad(), eval_mode(model):
            mu, _ = check_posterior(check_runs_on("encoder(x)", model, example), _num_examples(example), None)
        if latent_dim is not None and int(mu.shape[1]) != latent_dim:
            raise UserError(
                f"as_vae: latent_dim={latent_dim}, but the encoder returns D={int(mu.shape[1])} for example=; leave "
                "latent_dim out or fix it"
            )
        d = int(mu.shape[1])
    return wrap_modules(model, decoder, int(d))


def _resolve_model(model: Any, first_x: Any) -> VAE:
    return as_vae(model, example=first_x)


def _device_of(model: nn.Module) -> torch.device:
    for t in model.parameters():
        return t.device
    return torch.device("cpu")


def _is_token_lists(data: Any) -> bool:
    return (
        isinstance(data, list)
        and len(data) > 0
        and isinstance(data[0], list | tuple)
        and all(isinstance(t, int) for t in data[0])
    )


def token_batch(sequences: Sequence[Sequence[int]]) -> Any:
    """Token-id sequences (your ids, in [0, V)) as the :class:`~vaelab.data.text.TokenBatch` a model trained by
    :func:`train` receives: ``<s> ids+4 </s> <pad>..`` (ids shifted by :data:`TOKEN_OFFSET`)."""
    if isinstance(sequences, str | bytes) or not hasattr(sequences, "__iter__"):
        raise UserError(f"token_batch: sequences must be a list of token-id lists, got {type(sequences).__name__}")
    rows = []
    for i, s in enumerate(sequences):
        ids = s.tolist() if hasattr(s, "tolist") else s
        if isinstance(ids, str | bytes) or not isinstance(ids, Sequence) or not all(map(_is_token_id, ids)):
            raise UserError(
                f"token_batch: sequences[{i}] must be a list of integer token ids (in [0, V)), got {s!r:.60}; encode "
                "words with your vocabulary first (the id of each word, as given to vaelab.token_data)"
            )
        rows.append([int(t) + TOKEN_OFFSET for t in ids])
    if not rows:
        raise UserError("token_batch: sequences is empty; give at least one list of token ids")
    return TokenBatch.from_sentences(rows)


def _is_token_id(t: object) -> bool:
    """A token id: a Python or NumPy integer >= 0 (not a bool)."""
    return isinstance(t, numbers.Integral) and not isinstance(t, bool) and int(t) >= 0


def _batches(data: Any, batch_size: int, labels: Any = None, name: str = "data") -> Iterator[tuple[Any, Tensor | None]]:
    """(x, y) batches of ``data``: a tensor / array (N, ...) cut into ``batch_size`` rows, token-id lists as token
    batches, a TokenBatch, or an iterable of batches (tensor, (x, y), or objects with .x / .y). Anything else (a
    string, a dict, None, an item of a list that is none of these) is refused in one line naming ``name`` and the
    item's index, before the user's modules see it."""
    y_all = None if labels is None else torch.as_tensor(labels)
    if hasattr(data, "__array__") and not isinstance(data, Tensor):
        data = torch.as_tensor(data)
    if isinstance(data, Tensor) or _is_token_lists(data) or isinstance(data, TokenBatch):
        n = data.batch_size if isinstance(data, TokenBatch) else len(data)
        if y_all is not None and (y_all.ndim != 1 or len(y_all) != n):
            raise UserError(f"labels must be one per example, shape ({n},), got shape {tuple(y_all.shape)}")
        for s in range(0, n, batch_size):
            rows = slice(s, min(s + batch_size, n))
            if isinstance(data, Tensor):
                x: Any = data[rows]
            elif isinstance(data, TokenBatch):
                x = data.select(rows)
            else:
                x = token_batch(data[rows])
            yield x, None if y_all is None else y_all[rows]
        return
    if isinstance(data, str | bytes | Mapping) or not hasattr(data, "__iter__"):
        raise UserError(
            f"{name} must be a tensor or array (N, ...), a list of token-id sequences or a list of batches (tensors, "
            f"(x, y) pairs or objects with .x), got {kind_phrase(data)}"
        )
    if labels is not None:
        raise UserError("labels= goes with a tensor or token lists; batches carry their own labels (.y or (x, y))")
    for i, batch in enumerate(data):
        if isinstance(batch, tuple | list) and len(batch) == 2:
            yield _batch_x(batch[0], f"{name}[{i}][0]"), (None if batch[1] is None else torch.as_tensor(batch[1]))
        elif hasattr(batch, "x") and not isinstance(batch, Tensor):
            yield _batch_x(batch.x, f"{name}[{i}].x"), getattr(batch, "y", None)
        elif isinstance(batch, Tensor | np.ndarray) or hasattr(batch, "batch_size"):
            yield _batch_x(batch, f"{name}[{i}]"), None
        else:
            raise UserError(
                f"{name}[{i}] is {kind_phrase(batch)}, not a batch (a tensor, an (x, y) pair or an object with .x)"
            )


def _batch_x(x: Any, where: str) -> Any:
    """A batch's x: an array as a tensor; None, a string, a number or a mapping refused in one line (the user's
    encoder would fail on it with its own words); a batch of the user's own kind passes unchanged."""
    if isinstance(x, np.ndarray):
        return torch.as_tensor(x)
    if x is None or isinstance(x, str | bytes | numbers.Number | Mapping):
        raise UserError(f"{where} is {kind_phrase(x)}, not a batch's x (a tensor of shape (B, ...))")
    return x


class _Batch:
    __slots__ = ("x", "y")

    def __init__(self, x: Any, y: Tensor | None) -> None:
        self.x, self.y = x, y


def _model_and_batches(
    model: Any,
    data: Any,
    batch_size: int,
    labels: Any = None,
    *,
    caller: str,
    raw: bool = False,
    likelihood: bool = False,
    name: str = "data",
) -> tuple[VAE, list[_Batch]]:
    """The model as a VAE and the data as checked batches on its device. ``caller``: the API function (named in
    the advice to pass ``raw=True``); ``raw``: whole-number data 0..255 are used as given (else refused, as by
    :func:`vaelab.tensor_data`); ``likelihood``: the decoder's log_prob on the first batch must be finite too."""
    check("batch_size", batch_size, COUNT)
    if not isinstance(raw, bool):  # 'no' would count as true
        raise ConfigError(f"raw must be True or False, got {raw!r}")
    hint = f"vaelab.{caller}(..., raw=True)"
    parts = [_Batch(x, y) for x, y in _batches(data, batch_size, labels, name)]
    if not parts:
        raise UserError("the data have no examples")
    for i, p in enumerate(parts):
        if isinstance(p.x, Tensor) and p.x.ndim < 2:
            raise UserError(
                f"data: expected a tensor of shape (N, ...), one row per example, got a batch of shape "
                f"{tuple(p.x.shape)} (a single example x: pass x[None])"
            )
        if isinstance(p.x, Tensor) and p.x.is_meta:
            raise UserError("data: a tensor on the meta device holds no values; pass real data")
        if isinstance(p.x, Tensor) and p.x.is_floating_point() and not torch.isfinite(p.x).all():
            raise UserError(f"data: batch {i} holds NaN or infinite values; every metric would be NaN")
    dtype = _float_dtype(model)
    for p in parts:  # read as train() reads the user's arrays: bool and uint8 through as_intensities, then [0, 1]
        if isinstance(p.x, Tensor) and p.x.dtype in (torch.uint8, torch.bool):
            p.x = to_float(torch.from_numpy(as_intensities(p.x.cpu().numpy())))
        elif isinstance(p.x, Tensor) and not p.x.is_floating_point() and not p.x.is_complex():
            if not raw:  # 0..255 as int64: as train() refuses
                refuse_float_intensities({"to evaluate": (p.x.cpu().numpy(), None)}, hint)
            p.x = p.x.to(dtype or torch.float32)  # integer 0/1 data: read as floats, as train() does
        elif isinstance(p.x, Tensor) and p.x.is_floating_point() and not raw:  # 0..255 as floats: as train() refuses
            refuse_float_intensities({"to evaluate": (p.x.detach().float().cpu().numpy(), None)}, hint)
        if dtype is not None and isinstance(p.x, Tensor) and p.x.is_floating_point() and p.x.dtype != dtype:
            p.x = p.x.to(dtype)  # float64 data for a float32 model: converted, as train() does
    vae = _resolve_model(model, parts[0].x)
    _check_finite_parameters(vae)
    _check_bernoulli_range(vae, parts)
    device = _device_of(vae)
    for p in parts:
        if hasattr(p.x, "to"):
            p.x = p.x.to(device)
    with torch.no_grad(), eval_mode(vae):  # modules that do not fit the data: one line, as in train()
        terms = check_runs_on("the model (encoder and decoder.log_prob)", lambda x: elbo_terms(vae, x, 1), parts[0].x)
    _check_finite_output(terms["rate"], _RATE_OF_ENCODER, "the data's first batch")
    if likelihood:
        _check_finite_output(terms["distortion"], "decoder.log_prob(x, z) returned", "the data's first batch")
    return vae, parts


_RATE_OF_ENCODER = "encoder(x)'s rate KL(q(z|x) || p(z)) is"


def _check_finite_parameters(vae: VAE) -> None:
    """Refuse a model whose parameters (or buffers) hold NaN or inf, naming the module and the parameter: every
    number computed from them would be NaN, some metrics (rate, MI) possibly not, without a word."""
    for role in ("encoder", "decoder", "prior"):
        module = getattr(vae, role)
        inner = module.module if isinstance(module, UserEncoder | UserDecoder) else module
        for kind, named in (("parameter", inner.named_parameters()), ("buffer", inner.named_buffers())):
            for name, t in named:
                if t.is_floating_point() and not t.is_meta and not bool(torch.isfinite(t).all()):
                    raise UserError(
                        f"the {role}'s {kind} {name} holds NaN or infinite values, so every metric computed from "
                        "it would be NaN or infinite; load finite weights (a checkpoint before the NaN) or train again"
                    )


def _check_finite_output(values: Tensor, what: str, where: str) -> None:
    """Refuse per-example values (N, ...) that are NaN or infinite in one line: ``what`` names them with a verb
    (``decoder.log_prob(x, z) returned``) and starts with the module to check (``decoder``, ``encoder``)."""
    bad = ~torch.isfinite(values)
    if not bool(bad.any()):
        return
    found = " and ".join(k for k, m in (("NaN", values.isnan()), ("infinite values", values.isinf())) if bool(m.any()))
    rows = int(bad.reshape(len(values), -1).any(1).sum())
    advice = {
        "decoder": "check the decoder (a log of 0, a division by 0, data outside the range it scores: [0, 1] for a "
        "Bernoulli)",
        "encoder": "check the encoder (an exp or a division that overflows, data of a scale it was not made for)",
    }.get(what.split(".")[0].split("(")[0].split("'")[0], "check the encoder's posterior and the decoder's log_prob")
    raise ContractError(
        f"{what} {found} for {rows} of {len(values)} examples of {where}, so the metrics would not be finite; {advice}"
    )


def _check_bernoulli_range(vae: VAE, parts: list[_Batch]) -> None:
    """A built-in Bernoulli decoder (mlp/conv with ``model.likelihood=bernoulli``, pixelcnn) scores data in [0, 1]
    only, as :func:`vaelab.checks.check_bernoulli_data` requires for training: other values give numbers that are
    no log-likelihood."""
    if not any(isinstance(m, Bernoulli) for m in vae.modules()):
        return
    xs = [p.x for p in parts if isinstance(p.x, Tensor) and p.x.is_floating_point() and p.x.numel()]
    if not xs:
        return
    lo, hi = min(float(x.min()) for x in xs), max(float(x.max()) for x in xs)
    if lo < 0 or hi > 1:
        raise UserError(
            f"data: the model's decoder is Bernoulli (model.likelihood=bernoulli), which needs data in [0, 1], but "
            f"the data hold values {lo:g}..{hi:g}; scale them to [0, 1] (8-bit intensities: divide by 255)"
        )


def _check_evaluable(parts: list[_Batch]) -> None:
    """The data hold enough examples for MI and active units (:func:`vaelab.rules.too_few_to_evaluate`, the rule
    ``vaelab train`` and ``data.eval_size`` apply to a split)."""
    if not all(isinstance(p.x, Tensor) or hasattr(p.x, "batch_size") for p in parts):
        return  # a batch of the user's own kind: its size is known only to the model
    if reason := too_few_to_evaluate(sum(_num_examples(p.x) for p in parts), "data"):
        raise UserError(reason)


def _float_dtype(model: Any) -> torch.dtype | None:
    """The dtype of the first floating-point parameter of ``model`` (a module, or a tuple of modules)."""
    for m in model if isinstance(model, tuple | list) else (model,):
        if isinstance(m, nn.Module):
            for t in m.parameters():
                if t.is_floating_point():
                    return t.dtype
    return None


SPLIT_NAMES = ("train", "valid", "test")


def _seed(seed: int) -> int:
    """``seed`` checked with the rule of the config's ``seed`` (an integer in [0, 2**63 - 1])."""
    check("seed", seed, RULES["seed"])
    return int(seed)


def _generator(model: nn.Module, seed: int) -> torch.Generator:
    return torch.Generator(device=_device_of(model)).manual_seed(_seed(seed))


# --------------------------------------------------------------------------------------------------------------
# metrics


SAMPLES = Int(1, 10**6)
"""The rule of the ``num_samples`` of :func:`iw_nll` and :func:`elbo`: as ``eval.iw_samples`` (at least one)."""


def evaluate(
    model: Any,
    data: Any,
    *,
    iw_samples: int = 0,
    iw_chunk: int | str = "auto",
    mi_pool: str | int = "all",
    au_threshold: float = 0.01,
    batch_size: int = 500,
    labels: Any = None,
    seed: int = 0,
    raw: bool = False,
) -> dict[str, Any]:
    """Every core metric of ``model`` on ``data`` in one pass, as summary.json reports them (nats per example):
    ``elbo``, ``rate``, ``distortion``; ``nll_iw`` with ``iw_samples`` > 0 (Burda et al., ICLR 2016); ``mi`` with
    ``mi_pool`` (Hoffman & Johnson 2016; He et al., ICLR 2019); ``marginal_kl`` = rate - MI; ``au`` (Burda et al.
    2016) with ``activity_per_dim``; ``kl_per_dim``; ``bpd`` for tensors, ``ppl_*`` for token batches.
    ``iw_chunk``: importance samples drawn at once per batch, ``"auto"`` (the default, as ``eval.iw_chunk``) from a
    memory budget (:func:`~vaelab.metrics.likelihood.resolve_iw_chunk`; 10 for a batch of 500 MNIST images, whose
    (chunk, 500, 784) tensors a fixed 100 made 10x larger), or a count; the estimate does not depend on it beyond
    float rounding (the same draws). ``labels``: deprecated, no metric here reads labels (the linear probe is
    :func:`probe`); checked (integer classes >= 0, one per example) and then ignored with a FutureWarning.
    ``raw``: float or integer data of whole numbers 0..255 are refused as 8-bit intensities (divide by 255), as
    :func:`vaelab.tensor_data` refuses them, unless ``raw=True`` (a decoder of real values); the same in every
    metric function. NaN or inf in the parameters or in what the modules return are refused in one line."""
    check("iw_samples", iw_samples, RULES["eval.iw_samples"])  # named as the caller wrote them, before any work
    check("iw_chunk", iw_chunk, RULES["eval.iw_chunk"])
    check("mi_pool", mi_pool, RULES["eval.mi_pool"])
    check("au_threshold", au_threshold, RULES["eval.au_threshold"])
    labels = _labels_argument(labels, "labels")
    vae, parts = _model_and_batches(model, data, batch_size, labels, caller="evaluate", raw=raw, likelihood=True)
    if labels is not None:
        _check_class_labels(torch.cat([torch.as_tensor(p.y).reshape(-1) for p in parts]), "labels")
        warnings.warn(
            "evaluate: labels= has no effect (no metric of evaluate reads labels) and will be removed; leave it out, "
            "or measure the linear probe with vaelab.probe(model, train_data, test_data, train_labels=..., "
            "test_labels=...)",
            FutureWarning,
            stacklevel=2,
        )
    _check_evaluable(parts)
    gen = _generator(vae, seed)
    col = collect(vae, parts, iw_samples=iw_samples, iw_chunk=iw_chunk, generator=gen)
    assert col.mu is not None and col.logvar is not None
    _check_finite_output(torch.cat([col.mu, col.logvar], 1), "encoder(x) returned", "the data")
    _check_finite_output(col.rate, _RATE_OF_ENCODER, "the data")
    _check_finite_output(col.distortion, "decoder.log_prob(x, z) returned", "the data")
    if col.nll_iw is not None:
        _check_finite_output(col.nll_iw, "the importance-weighted log p(x) is", "the data")
    return summarise(
        col, mi_pool=mi_pool, au_threshold=au_threshold, generator=torch.Generator().manual_seed(_seed(seed))
    )


def iw_nll(
    model: Any,
    data: Any,
    *,
    num_samples: int = 500,
    chunk_size: int = DEFAULT_IW_CHUNK,
    batch_size: int = 100,
    seed: int = 0,
    raw: bool = False,
) -> Tensor:
    """Importance-weighted NLL -log p(x) of every example, nats, shape (N,): -log (1/K) sum_k p(x, z_k) / q(z_k|x),
    z_k ~ q(z|x), K = ``num_samples`` (Burda, Grosse & Salakhutdinov, ICLR 2016); an upper bound on the NLL that
    tightens as K grows. The model is in eval mode during the call."""
    check("num_samples", num_samples, SAMPLES)
    check("chunk_size", chunk_size, COUNT)
    vae, parts = _model_and_batches(model, data, batch_size, caller="iw_nll", raw=raw, likelihood=True)
    gen = _generator(vae, seed)
    with eval_mode(vae):
        nll = torch.cat([-iw_log_likelihood(vae, p.x, num_samples, chunk_size, gen).cpu() for p in parts])
    _check_finite_output(nll, "the importance-weighted log p(x) is", "the data")
    return nll


def elbo(
    model: Any, data: Any, *, num_samples: int = 1, batch_size: int = 500, seed: int = 0, raw: bool = False
) -> dict[str, Tensor]:
    """The unweighted ELBO of every example and its parts, nats, each (N,): ``distortion`` = -E_q log p(x|z)
    (``num_samples`` draws), ``rate`` = KL(q(z|x) || p(z)) (Kingma & Welling, ICLR 2014), ``elbo`` = -(D + R)."""
    check("num_samples", num_samples, SAMPLES)
    vae, parts = _model_and_batches(model, data, batch_size, caller="elbo", raw=raw, likelihood=True)
    gen = _generator(vae, seed)
    out: dict[str, list[Tensor]] = {"elbo": [], "rate": [], "distortion": []}
    with eval_mode(vae):
        for p in parts:
            for k, v in elbo_terms(vae, p.x, num_samples, gen).items():
                out[k].append(v.cpu())
    terms = {k: torch.cat(v) for k, v in out.items()}
    _check_finite_output(terms["rate"], _RATE_OF_ENCODER, "the data")
    _check_finite_output(terms["distortion"], "decoder.log_prob(x, z) returned", "the data")
    return terms


def posteriors(model: Any, data: Any, *, batch_size: int = 500, raw: bool = False) -> tuple[Tensor, Tensor]:
    """The posterior parameters of every example: ``(mu, logvar)``, each (N, D), on the CPU (eval mode)."""
    col = _posterior_collection(model, data, batch_size, caller="posteriors", raw=raw)
    assert col.mu is not None and col.logvar is not None
    return col.mu, col.logvar


def _posteriors(model: Any, data: Any, batch_size: int, caller: str, raw: bool) -> tuple[Tensor, Tensor]:
    col = _posterior_collection(model, data, batch_size, caller=caller, raw=raw)
    assert col.mu is not None and col.logvar is not None
    return col.mu, col.logvar


def _posterior_collection(
    model: Any, data: Any, batch_size: int, labels: Any = None, *, caller: str, raw: bool = False, name: str = "data"
) -> EvalCollection:
    vae, parts = _model_and_batches(model, data, batch_size, labels, caller=caller, raw=raw, name=name)
    mus, logvars, ys = [], [], []
    with torch.no_grad(), eval_mode(vae):
        for p in parts:
            q = vae.encode(p.x)
            mus.append(q.mu.cpu())
            logvars.append(q.logvar.expand_as(q.mu).cpu())
            ys.append(p.y)
    mu = torch.cat(mus)
    _check_finite_output(torch.cat([mu, torch.cat(logvars)], 1), "encoder(x) returned", "the data")
    y = torch.cat([torch.as_tensor(v).cpu() for v in ys]) if all(v is not None for v in ys) else None
    zeros = torch.zeros(len(mu))
    return EvalCollection(elbo=zeros, rate=zeros, distortion=zeros, mu=mu, logvar=torch.cat(logvars), y=y)


def mutual_information(
    model: Any, data: Any, *, pool: str | int = "all", batch_size: int = 500, seed: int = 0, raw: bool = False
) -> MIEstimate:
    """I_q(x; z) in nats (Hoffman & Johnson 2016; the estimator of He et al., ICLR 2019) with its pool: ``"all"``
    pools over every example of ``data`` (cap ln N), an int B within consecutive groups of B (cap ln B). Report
    ``.value`` with ``.pool``: an MI near ln(pool) is at the estimator's ceiling."""
    mu, logvar = _posteriors(model, data, batch_size, "mutual_information", raw)
    if reason := too_few_to_evaluate(len(mu), "data"):  # each z is compared with the other examples' posteriors
        raise UserError(reason)
    return pooled_mutual_information(mu, logvar, pool, generator=torch.Generator().manual_seed(_seed(seed)))


def active_units(
    model: Any, data: Any, *, threshold: float = 0.01, batch_size: int = 500, raw: bool = False
) -> tuple[int, Tensor]:
    """Active units (Burda et al., ICLR 2016): the number of latent dimensions d with Var_x E_q[z_d|x] >=
    ``threshold``, and that activity per dimension (D,)."""
    mu, _ = _posteriors(model, data, batch_size, "active_units", raw)
    return _active_units(mu, threshold)


def kl_per_dim(model: Any, data: Any, *, batch_size: int = 500, raw: bool = False) -> Tensor:
    """The rate per latent dimension, E_x KL(q(z_d|x) || N(0, 1)), nats, shape (D,); sums to the mean rate.
    Dimensions near 0 carry nothing (collapsed units)."""
    mu, logvar = _posteriors(model, data, batch_size, "kl_per_dim", raw)
    return _kl_per_dim(mu.double(), logvar.double()).float()


def hole_metrics(
    model: Any,
    data: Any,
    *,
    prior_samples: int = DEFAULT_PRIOR_SAMPLES,
    taus: Sequence[float] = DEFAULT_TAUS,
    batch_size: int = 500,
    seed: int = 0,
    raw: bool = False,
) -> dict[str, Any]:
    """Hole metrics of the aggregated posterior q_agg of ``data`` (Zhang et al., NeurIPS 2022), nats:
    ``hole_kl`` = KL(p || q_agg) by Monte Carlo over ``prior_samples`` draws (with ``hole_kl_se``),
    ``hole_kl_per_dim`` (quadrature) and ``cu_<tau>``, the dimensions whose per-dimension hole KL is below tau."""
    check("prior_samples", prior_samples, RULES["eval.hole_prior_samples"])
    taus = _number_list(taus, "taus")
    for i, tau in enumerate(taus):
        check(f"taus[{i}]", tau, Num(lo=0))  # a unit counts as collapsed below tau nats: tau < 0 counts none
    mu, logvar = _posteriors(model, data, batch_size, "hole_metrics", raw)
    gen = torch.Generator().manual_seed(_seed(seed))
    return _hole_metrics(mu, logvar, prior_samples=prior_samples, taus=taus, generator=gen)


def _number_list(values: Any, name: str) -> list[Any]:
    """A sequence argument (a list, tuple, 1-d array or tensor) as a list; a string (iterated, one item per
    character), a mapping, a scalar or anything else refused in one line naming ``name``."""
    if isinstance(values, str | bytes):
        raise ConfigError(f"{name} must be a list of numbers, got the string {values!r:.60}")
    if isinstance(values, Tensor | np.ndarray):
        if values.ndim != 1:
            raise ConfigError(f"{name} must be a list of numbers, got an array of shape {tuple(values.shape)}")
        return values.tolist()
    if not isinstance(values, Sequence):
        raise ConfigError(f"{name} must be a list of numbers, got {type(values).__name__}")
    return list(values)


def _labels_argument(labels: Any, name: str) -> Any:
    """A labels argument (one class id per example): a string or a mapping refused in one line naming ``name``
    (torch.as_tensor would fail with its own words, or read a mapping's keys)."""
    if labels is None or isinstance(labels, Tensor | np.ndarray):
        return labels
    if isinstance(labels, str | bytes):
        raise UserError(f"{name} must be a list of integer class indices, got the string {labels!r:.60}")
    if not isinstance(labels, Sequence):
        raise UserError(f"{name} must be a list of integer class indices, got {type(labels).__name__}")
    try:
        return torch.as_tensor(labels)
    except (TypeError, ValueError, RuntimeError):
        raise UserError(f"{name} must be a list of integer class indices, got {labels!r:.60}") from None


def probe(
    model: Any,
    train_data: Any,
    test_data: Any,
    *,
    train_labels: Any = None,
    test_labels: Any = None,
    batch_size: int = 500,
    raw: bool = False,
) -> dict[str, Any]:
    """The fixed-protocol linear probe of vaelab (Sinha & Dieng, NeurIPS 2021; :mod:`vaelab.metrics.probe`):
    multinomial logistic regression trained on ``train_data``'s latents, accuracy on ``test_data``'s.
    ``accuracy`` reads sampled z ~ q(z|x) (what a decoder can use; a collapsed model sits at ``majority``),
    ``mean_accuracy`` the posterior means. Labels come with the batches or as ``*_labels``."""
    train_labels = _labels_argument(train_labels, "train_labels")
    test_labels = _labels_argument(test_labels, "test_labels")
    tr = _posterior_collection(model, train_data, batch_size, train_labels, caller="probe", raw=raw, name="train_data")
    te = _posterior_collection(model, test_data, batch_size, test_labels, caller="probe", raw=raw, name="test_data")
    if tr.y is None or te.y is None:
        raise UserError("the probe needs labels for both splits: (x, y) batches, .y, or train_labels/test_labels")
    for name, y in (("train labels", tr.y), ("test labels", te.y)):
        _check_class_labels(y, name)
    assert tr.mu is not None and tr.logvar is not None and te.mu is not None and te.logvar is not None
    y_tr, y_te = tr.y.long().reshape(-1), te.y.long().reshape(-1)
    seen = set(y_tr.unique().tolist())
    if unseen := sorted(set(y_te.unique().tolist()) - seen):
        raise UserError(
            f"test labels {_class_list(unseen)} do not occur in the training labels (classes "
            f"{_class_list(sorted(seen))}); a linear probe cannot predict a class it never saw"
        )
    k = int(max(y_tr.max(), y_te.max())) + 1
    z_tr = posterior_draws(tr.mu, tr.logvar, 1, torch.Generator().manual_seed(PROBE_SEED))
    z_te = posterior_draws(te.mu, te.logvar, PROBE_DRAWS, torch.Generator().manual_seed(PROBE_SEED + 1))
    sampled = linear_probe(z_tr, y_tr, z_te, y_te.repeat(PROBE_DRAWS), num_classes=k)
    mean = linear_probe(tr.mu, y_tr, te.mu, y_te, num_classes=k)
    return {
        "accuracy": sampled.test_accuracy,
        "train_accuracy": sampled.train_accuracy,
        "mean_accuracy": mean.test_accuracy,
        "mean_train_accuracy": mean.train_accuracy,
        "majority": majority_rate(y_te),
        "classes": k,
        "draws": PROBE_DRAWS,
    }


def _class_list(classes: list[int]) -> str:
    """Sorted class ids for a message: ``3..7`` when consecutive, else the first few (``0, 2, 5, ... (9 in all)``)."""
    if len(classes) > 2 and classes[-1] - classes[0] == len(classes) - 1:
        return f"{classes[0]}..{classes[-1]}"
    more = f", ... ({len(classes)} in all)" if len(classes) > 5 else ""
    return ", ".join(map(str, classes[:5])) + more


def _check_class_labels(y: Tensor, name: str) -> None:
    """``y`` as class indices: integers >= 0 (one line naming ``name`` otherwise)."""
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise UserError(f"{name} must be integer class indices, got dtype {y.dtype}")
    if y.numel() and int(y.min()) < 0:
        raise UserError(f"{name} must be class indices >= 0, got {int(y.min())}")


def diagnosis(source: str | Path | Mapping[str, Any], *, model_type: str | None = None) -> Any:
    """A collapse diagnosis (:class:`~vaelab.diagnose.Diagnosis`: ``verdict`` collapsed / partial / healthy,
    ``findings``, ``recommendations``, ``text()``) of a run folder (as ``vaelab diagnose DIR``, which writes
    DIR/diagnosis.md) or of a metrics dict from :func:`evaluate` (it needs ``kl_per_dim``; add
    :func:`hole_metrics` for the hole findings)."""
    from vaelab.checks import RULES, check
    from vaelab.diagnose import diagnose_metrics, diagnose_run

    if model_type is not None:
        check("model_type", model_type, RULES["model.type"])
    if isinstance(source, Mapping):
        return diagnose_metrics(dict(source), model_type=model_type)
    if model_type is not None:  # a run folder's config.yaml says which model it trained
        raise UserError(
            "model_type is read from the run folder's config.yaml; pass model_type only with a metrics dict"
        )
    return diagnose_run(_folder_path(source, "source"))


__all__ = [
    "TOKEN_OFFSET",
    "ContractError",
    "ContractTypeError",
    "Decoder",
    "Encoder",
    "LoadedRun",
    "MIEstimate",
    "Run",
    "UserData",
    "active_units",
    "as_vae",
    "diagnosis",
    "elbo",
    "evaluate",
    "hole_metrics",
    "iw_nll",
    "kl_per_dim",
    "load_run",
    "mutual_information",
    "posteriors",
    "probe",
    "tensor_data",
    "token_batch",
    "token_data",
    "train",
    "write_report",
]
