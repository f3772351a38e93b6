"""The run layer: one run's pieces built from its config or loaded from its folder, below training.

    run = build_run(config, "runs/x")           # data set, model (fresh weights), objective: what training starts from
    run = load_run("runs/x", which="best")      # the same pieces, with a checkpoint's weights (eval mode)
    Evaluator(run).evaluate("test", iw_samples=100)      # vaelab.evaluation

A :class:`Run` bundles the validated config, the data set, the model, the objective (built for the run's step
count, so its schedules are the training's), the run folder, and where it runs (device, precision, the process's
place in a torchrun job). It holds no optimiser and no training state: the Trainer
(:mod:`vaelab.training.trainer`) builds its run here and adds the strategy, the optimisers and the loop; every
command that reads a run folder (evaluate, diagnose, plots, report, sweep measurement) loads it here.

Building is deterministic: the global RNGs are seeded with the run's seed before the data set and the model are
built (:func:`vaelab.seeds.seed_everything`), in the order training uses, so ``build_run`` gives the model a run
started from, and ``load_run`` replaces its weights by the checkpoint's. Checkpoints are read with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from vaelab.checkpoint import CheckpointError, load_checkpoint, load_model_state
from vaelab.checks import (
    check_batch_norm_batches,
    check_bernoulli_data,
    check_device_available,
    check_metrics_have_labels,
    device_available,
)
from vaelab.config import RunConfig, load_saved_config, read_yaml, save_config, to_dict, update_saved_config
from vaelab.data import DataError, Dataset, Loader, load_dataset
from vaelab.data.base import eval_subset
from vaelab.data.checks import GENERATED_DATASETS
from vaelab.distributed import DistInfo, broadcast_object, broadcast_parameters, init_distributed
from vaelab.errors import ConfigError
from vaelab.metrics.extras import EXTRA_METRICS
from vaelab.models import VAE, build_model
from vaelab.objectives import build_objective
from vaelab.objectives.objective import Objective
from vaelab.precision import Precision
from vaelab.rules import MIN_EVAL_EXAMPLES, too_few_to_evaluate
from vaelab.runfolder import RunFolder, not_a_run_folder, provenance
from vaelab.runlock import RunLock
from vaelab.seeds import seed_everything

Checkpoint = Literal["best", "last"]


@dataclass(eq=False)
class Run:
    """One run's pieces (see the module's docstring): ``config``, ``dataset`` (the splits as trained on),
    ``model`` (on ``device``), ``objective``, ``folder`` (None for a run built without one), ``device``,
    ``precision`` (``train.precision``'s autocast), ``dist`` (this process's rank of the job), ``train_loader``
    (this process's shard of the shuffled training split, ``train.batch_size`` per global batch), ``total_steps``
    (the training's step count, epochs x steps per epoch capped by ``train.max_steps``), ``checkpoint`` (the
    file whose weights the model holds; None: fresh weights) and ``run_id`` (the training's id, config.yaml's
    ``_meta.run_id``, which every checkpoint it writes holds; set by :func:`open_for_training`).

    The Python API serves this class as ``vaelab.LoadedRun``; ``vaelab.Run`` is another class, the handle on a run
    folder that :func:`vaelab.train` returns (:class:`vaelab.api.Run`)."""

    config: RunConfig
    dataset: Dataset
    model: VAE
    objective: Objective
    folder: RunFolder | None
    device: torch.device
    precision: Precision
    dist: DistInfo
    train_loader: Loader
    total_steps: int
    checkpoint: Path | None = None
    run_id: str | None = None

    @property
    def path(self) -> Path | None:
        """The run folder's path (None for a run built without a folder)."""
        return None if self.folder is None else self.folder.root

    @property
    def steps_per_epoch(self) -> int:
        """Training steps per epoch (batches of this process's shard of the training split)."""
        return len(self.train_loader)

    def load_weights(self, path: str | Path) -> dict[str, Any]:
        """Load a checkpoint's model weights into :attr:`model` (read with ``weights_only=True``, onto
        :attr:`device`); returns the whole checkpoint (the trainer restores its own state from it). A checkpoint
        of another run than the folder's is refused (:func:`load_run_checkpoint`)."""
        ckpt = load_run_checkpoint(self.folder, path, map_location=self.device)
        load_model_state(self.model, ckpt["model"], path)
        self.checkpoint = Path(path)
        return ckpt

    def eval_loader(self, split: str, batch_size: int | None = None) -> Loader:
        """The split in fixed order, ``eval.batch_size`` (or ``batch_size``) at a time, binarised with
        ``eval.binarize_seed``: the batches every evaluation reads."""
        ev = self.config.eval
        return self.dataset.loader(
            split,
            batch_size or ev.batch_size,
            seed=self.config.seed,
            shuffle=False,
            eval_binarize_seed=ev.binarize_seed,
        )

    def batches(self, split: str = "test", batch_size: int | None = None) -> Iterator[Any]:
        """The split's evaluation batches (:meth:`eval_loader`, as ``vaelab evaluate`` uses), each with ``.x`` on
        the model's device and ``.y`` (labels or None). An unknown ``split`` is refused at the call, not at the first
        ``next``."""
        loader = self.eval_loader(split, batch_size)
        return (batch.to(self.device) for batch in loader.epoch(0))


def resolve_device(name: str) -> torch.device:
    """The device of ``train.device``; one that this machine lacks is a one-line ConfigError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    check_device_available(name)
    return torch.device(name)


def build_run(config: RunConfig, folder: str | Path | None = None, *, dataset: Dataset | None = None) -> Run:
    """The run ``config`` describes, with fresh weights: the device (``train.device``; one this machine lacks is
    a one-line ConfigError), the precision, the process group under torchrun, the data set (``dataset`` if given,
    else loaded from ``config.data``), the model (initialised from the run's seed, the same on every process), the
    training split's loader and the objective. Nothing is written; ``folder`` is only named.

    Raises ConfigError when the training split is smaller than one batch, and the registry's error for an unknown
    ``eval.extra_metrics`` name (before any training)."""
    device = resolve_device(config.train.device)
    precision = Precision(config.train.precision, device)  # fp16 on a CPU: a one-line ConfigError
    dist = init_distributed(device)
    seed_everything(config.seed)
    dataset = dataset if dataset is not None else load_dataset(config.data)
    model: VAE = _build_model(config, dataset).to(device)
    broadcast_parameters(model.parameters(), dist)
    tr = config.train
    n_train = len(dataset.split("train"))
    train_loader = dataset.loader(
        "train",
        tr.batch_size,
        seed=config.seed,
        shuffle=True,
        rank=dist.rank,
        world_size=dist.world_size,
        drop_last=0 < n_train % tr.batch_size < dist.world_size,
    )
    steps_per_epoch = len(train_loader)
    if steps_per_epoch == 0:
        raise ConfigError(f"the training split is empty or smaller than one batch (train.batch_size={tr.batch_size})")
    total = tr.epochs * steps_per_epoch
    total_steps = min(total, tr.max_steps) if tr.max_steps else total
    objective = build_objective(config.objective, steps_per_epoch, total_steps).to(device)
    for i, name in enumerate(config.eval.extra_metrics):  # fail now, not after training
        EXTRA_METRICS.get(name, key=f"eval.extra_metrics[{i}]")
    return Run(
        config=config,
        dataset=dataset,
        model=model,
        objective=objective,
        folder=None if folder is None else RunFolder(folder),
        device=device,
        precision=precision,
        dist=dist,
        train_loader=train_loader,
        total_steps=total_steps,
    )


MODEL_SIZE_KEYS = {
    "mlp": ("latent_dim", "hidden"),
    "conv": ("latent_dim", "channels", "hidden"),
    "pixelcnn": ("latent_dim", "channels", "hidden", "pixelcnn_channels", "pixelcnn_layers"),
    "lstm_vae": ("latent_dim", "emb_dim", "hidden_dim"),
    "lstm_lm": ("emb_dim", "hidden_dim"),
}
"""The ``model`` keys that set the size of each model type (named when a model does not fit in memory)."""


def _build_model(config: RunConfig, dataset: Dataset) -> VAE:
    """:func:`build_model`; a model too large for this machine's memory is a one-line ConfigError naming the
    size keys (not torch's allocator error)."""
    try:
        return build_model(config.model, dataset.model_info())
    except (MemoryError, RuntimeError) as e:
        if not isinstance(e, MemoryError) and "allocate" not in str(e):
            raise
        m = config.model
        keys = MODEL_SIZE_KEYS.get(m.type, ("latent_dim",))
        sizes = ", ".join(f"model.{k}={getattr(m, k)}" for k in keys if getattr(m, k, None) is not None)
        raise ConfigError(
            f"the model (model.type={m.type}) does not fit in this machine's memory ({sizes}); choose smaller sizes"
        ) from None


def _split_size_fix(cfg: RunConfig, split: str) -> str:
    """What sizes ``split`` of ``cfg``'s data set, as advice for a split too small to evaluate."""
    d = cfg.data
    if d.name in GENERATED_DATASETS:  # valid and test: eval_size examples each
        return (
            f"set data.eval_size >= {MIN_EVAL_EXAMPLES} (its default is data.num_examples // 4, so data.num_examples "
            f">= {4 * MIN_EVAL_EXAMPLES} with it unset)"
        )
    if split == "valid":
        return f"set data.valid_size >= {MIN_EVAL_EXAMPLES}, or give the data set a larger validation file"
    return f"give the {split} file more examples, or set eval.final_split to another split"


def check_trainable(run: Run) -> None:
    """Before any training: BN-VAE's training batches hold >= 2 examples, the final split (``eval.final_split``)
    has examples, the final and validation splits are not of 1 example (MI and active units of one example are
    undefined), and without a validation split (``data.valid_size: 0``) nothing needs one (LR decay, early stopping,
    a strategy that watches validation MI). Raises a one-line DataError or ConfigError."""
    cfg, dataset = run.config, run.dataset
    check_batch_norm_batches(cfg, run.train_loader.batch_sizes(), len(dataset.split("train")))
    check_metrics_have_labels(cfg.eval.extra_metrics, dataset.num_classes, "eval.extra_metrics", cfg.data.name)
    check_data_range(run)
    check_transform_fits(run)
    final = cfg.eval.final_split
    for split in sorted({final, "valid"}):  # MI and active units of one example are undefined
        what = f"data set {cfg.data.name}: the {split} split"
        if reason := too_few_to_evaluate(len(dataset.split(split)), what, _split_size_fix(cfg, split)):
            raise DataError(reason)
    if len(dataset.split(final)) == 0:
        raise DataError(
            f"data set {cfg.data.name}: the {final} split is empty, so the final evaluation (eval.final_split) "
            "has nothing to measure; give it examples or set eval.final_split to another split"
        )
    if len(dataset.split("valid")) > 0:
        return
    tr = cfg.train
    needs = [
        key
        for key, on in (
            ("train.lr_decay.enabled", tr.lr_decay.enabled),
            ("train.early_stopping_patience", tr.early_stopping_patience is not None),
            (f"train.strategy={tr.strategy}", tr.strategy != "joint"),
        )
        if on
    ]
    if needs:
        raise ConfigError(
            f"data set {cfg.data.name} has no validation split (data.valid_size=0), which {', '.join(needs)} "
            "needs; set data.valid_size > 0"
        )


def check_transform_fits(run: Run) -> None:
    """The consistency terms' policy fits the data's modality and image size (a ``crop_shift`` shift smaller
    than the images): :func:`vaelab.transforms.check_transform_data`, now that the image shape is known."""
    from vaelab.objectives.consistency import configured_transform_key
    from vaelab.transforms import check_transform_data

    found = configured_transform_key(run.config.objective.terms)
    if found is None:
        return
    key, spec = found
    from vaelab.data.base import ImageDataset

    shape = run.dataset.image_shape if isinstance(run.dataset, ImageDataset) else None
    check_transform_data(spec, key, run.config.data.name, run.dataset.modality, shape)


def check_data_range(run: Run) -> None:
    """A built-in Bernoulli decoder sees data in [0, 1] (:func:`vaelab.checks.check_bernoulli_data`): only the
    user's arrays (``data.name: arrays``) can hold other floats; the range is that of every split, as stored."""
    if run.config.model.type == "custom" or run.dataset.modality != "image":
        return
    xs = [run.dataset.split(s).x for s in ("train", "valid", "test")]
    xs = [x for x in xs if isinstance(x, torch.Tensor) and x.numel() and x.is_floating_point()]
    if xs:
        check_bernoulli_data(run.config, min(float(x.min()) for x in xs), max(float(x.max()) for x in xs))


RUN_ID_KEY = "run_id"
"""The key of the run id in config.yaml's ``_meta`` and in every checkpoint (a plain str: checkpoints load with
``weights_only=True``)."""


def new_run_id() -> str:
    """A fresh run's id (random, 32 hex digits)."""
    return uuid.uuid4().hex


def recorded_run_id(config_path: Path) -> str | None:
    """The run id in config.yaml's ``_meta`` (None: a folder written before run ids, or no readable config)."""
    try:
        meta = read_yaml(config_path).get("_meta")
    except (ConfigError, OSError):
        return None
    run_id = meta.get(RUN_ID_KEY) if isinstance(meta, dict) else None
    return run_id if isinstance(run_id, str) else None


def load_run_checkpoint(
    folder: RunFolder | None, path: str | Path, map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """:func:`~vaelab.checkpoint.load_checkpoint` of a run folder's checkpoint, the one place every reader of a
    run folder loads one (evaluate, resume, diagnose, report, sample, the API): a checkpoint whose run id differs
    from config.yaml's ``_meta.run_id`` (copied from another run folder, even of the same architecture) is a
    one-line :class:`~vaelab.checkpoint.CheckpointError` naming the file. When either side has no id (older folders
    and checkpoints) nothing is compared."""
    path = Path(path)
    ckpt = load_checkpoint(path, map_location=map_location)
    if folder is not None:
        theirs, ours = ckpt.get(RUN_ID_KEY), recorded_run_id(folder.config)
        if isinstance(theirs, str) and ours is not None and theirs != ours:
            raise CheckpointError(
                f"{path} belongs to another run (its run id {theirs}, config.yaml's _meta.run_id {ours}): it was "
                "copied from another run folder; put this run's checkpoint back, or read it in its own run folder"
            )
    return ckpt


def _generated_eval_subset(run_folder: RunFolder, cfg: RunConfig) -> Dataset | None:
    """For a generated data set (:data:`~vaelab.data.checks.GENERATED_DATASETS`) whose ``data.eval_size`` the
    caller changed: the data the run was trained and validated on, with ``data.eval_size``'s subset of their valid
    and test splits (a generator given another eval_size would draw other examples); a value above the splits the
    run has is refused. None when nothing needs it."""
    saved = load_saved_config(run_folder.config).data
    wanted = cfg.data.eval_size
    if cfg.data.name not in GENERATED_DATASETS or wanted == saved.eval_size:
        return None
    had = saved.eval_size if saved.eval_size is not None else max(1, saved.num_examples // 4)
    if wanted is None or wanted > had:
        raise ConfigError(
            f"data.eval_size={wanted}: the run's valid and test splits hold {had} examples each, drawn by "
            f"{cfg.data.name}'s generator with its data.eval_size; another size would draw other examples: give at "
            f"most {had}, a subset of them"
        )
    full = load_dataset(saved)
    return dataclasses.replace(
        full,
        valid=eval_subset(full.valid, "valid", wanted, saved.split_seed),
        test=eval_subset(full.test, "test", wanted, saved.split_seed),
    )


def run_checkpoint(folder: str | Path, which: Checkpoint = "best") -> tuple[RunFolder, Path]:
    """The run folder and the path of its ``best`` or ``last`` checkpoint; errors say which file is missing."""
    run_folder = RunFolder(folder)
    if not run_folder.config.is_file():
        raise FileNotFoundError(not_a_run_folder(run_folder.root))
    ckpt = run_folder.best if which == "best" else run_folder.last
    wrong = run_folder.checkpoint_not_a_file(ckpt)
    if wrong:
        raise FileNotFoundError(wrong)
    if not ckpt.is_file():
        if run_folder.has_records():  # not "has not finished an epoch"
            other = "best" if which == "last" else "last"
            other_path = run_folder.best if which == "last" else run_folder.last
            if not other_path.is_file():
                raise FileNotFoundError(
                    f"{ckpt} does not exist, nor {other_path.name}, but the run logged evaluations: its checkpoints "
                    "were moved or deleted; put them back, or train the run again"
                )
            raise FileNotFoundError(
                f"{ckpt} does not exist but the run logged evaluations; put it back if it was moved, or read the "
                f"{other} checkpoint ({other_path.name}: `--checkpoint {other}` of evaluate, sample, reconstruct, "
                "interpolate and latent-plot)"
            )
        raise FileNotFoundError(f"{ckpt} does not exist (the run has not finished an epoch yet?)")
    return run_folder, ckpt


def load_run(
    folder: str | Path,
    which: Checkpoint = "best",
    *,
    overrides: list[str] | tuple[str, ...] = (),
    dataset: Dataset | None = None,
) -> Run:
    """A run folder's run (any: ``vaelab train``, :func:`vaelab.train`, a sweep or study point) with the weights
    of its ``best`` or ``last`` checkpoint, the model in eval mode.

    The config is the folder's config.yaml with ``overrides`` (``key=value``; the caller checks which keys it
    accepts, e.g. :data:`vaelab.checks.EVALUATE_KEYS`). A saved device that this machine lacks (a run trained on a
    GPU) is replaced by ``auto`` unless ``train.device`` is overridden. ``dataset``: the run's data set if already
    loaded. Old run folders load as they are (the checkpoint format is unchanged)."""
    run_folder, ckpt = run_checkpoint(folder, which)
    cfg = load_saved_config(run_folder.config, list(overrides))
    cfg.train.progress = False
    if not any(o.startswith("train.device=") for o in overrides) and not device_available(cfg.train.device):
        cfg.train.device = "auto"
    if dataset is None and (dataset := _generated_eval_subset(run_folder, cfg)) is not None:
        check_trained_data_content(run_folder.config, dataset)
    run = build_run(cfg, run_folder.root, dataset=dataset)
    if dataset is None:  # a data set the caller gives is the caller's choice
        check_trained_data_content(run_folder.config, run.dataset)
    run.load_weights(ckpt)
    run.model.eval()
    return run


CONTENT_FACTS = ("name", "generator", "image_shape", "vocab_size", "counts.train", "split_seed", "binarize")
"""The facts of a data set's record (``info``, stored as ``_meta.data`` in config.yaml) that say which data it is,
besides its files' sha256: :func:`check_trained_data_content` compares them. (``counts`` of valid and test
change with ``data.eval_size``, which ``vaelab evaluate`` accepts; paths change when a data folder moves.)"""


def _facts(info: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(info, dict):
        for k, v in info.items():
            key = f"{prefix}{k}"
            if key in CONTENT_FACTS or (str(k) == "sha256" and not isinstance(v, dict)):
                out[key] = json.loads(json.dumps(v, sort_keys=True, default=str))
            else:
                out.update(_facts(v, f"{key}."))
    return out


def check_trained_data_content(config_path: Path, dataset: Dataset) -> None:
    """Refuse data that differ from those the run was trained on, by the facts recorded in config.yaml's
    ``_meta.data`` (the data set's name, generator, image shape, vocabulary size, training count, split seed,
    binarisation and each file's sha256; :data:`CONTENT_FACTS`): config.yaml's data section edited after training
    (older folders have no ``_meta.data_config`` to compare it with), or data files replaced. A moved data folder
    with the same files passes. One line naming the fact and both values; a folder without the record loads."""
    try:
        meta = read_yaml(config_path).get("_meta")
    except ConfigError:
        return
    recorded = meta.get("data") if isinstance(meta, dict) else None
    if not isinstance(recorded, dict):
        return
    then, now = _facts(recorded), _facts(dataset.info)
    for key in then:
        if key in now and then[key] != now[key]:
            raise DataError(
                f"{config_path}: the data differ from those the run was trained on: {key} was {then[key]!r} "
                f"(_meta.data.{key}), the data that config.yaml names now give {now[key]!r}; was config.yaml's "
                "data section edited or a data file replaced after training? put it back"
            )


def open_for_training(run: Run, lock: RunLock, *, fresh: bool, resume_overrides: Sequence[str] = ()) -> None:
    """Make ``run``'s folder the training's. The main process takes ``lock`` (``DIR/run.lock``; a live holder is
    refused with :class:`~vaelab.runlock.RunFolderLocked` naming it) and, for a ``fresh`` run, checks again that the
    folder holds no other run (:meth:`RunFolder.holds_run`), now that no one else can write there; a refusal is
    raised on every process. Then the main process creates the folder and writes config.yaml: a fresh run's config
    with its provenance (versions, hardware, command, world size, the data set's facts), or a resumed run's
    ``resume_overrides`` (the evaluation, logging and device settings given to ``vaelab resume``)."""
    dist, folder = run.dist, run.folder
    assert folder is not None
    refusal: FileExistsError | None = None
    if dist.is_main:
        try:
            lock.acquire()
            if fresh and (reason := folder.holds_run()):
                raise FileExistsError(reason)
        except FileExistsError as e:
            refusal = e
    refusal = broadcast_object(refusal, dist)
    if refusal is not None:
        raise refusal
    # a fresh run's new id; a resumed run (a sweep point continued too) keeps the id its config.yaml records
    run_id = (new_run_id() if fresh else recorded_run_id(folder.config)) if dist.is_main else None
    run.run_id = broadcast_object(run_id, dist)
    if dist.is_main:
        folder.create()
        if fresh:
            meta = {**provenance(), RUN_ID_KEY: run.run_id, "world_size": dist.world_size, "data": run.dataset.info}
            meta["data_config"] = to_dict(run.config.data)  # what evaluate and resume compare config.yaml with
            meta["trained_config"] = {k: v for k, v in to_dict(run.config).items() if k != "data"}  # and the rest
            save_config(run.config, folder.config, extra=meta)
        elif resume_overrides:
            update_saved_config(folder.config, run.config, list(resume_overrides))


__all__ = [
    "Checkpoint",
    "Run",
    "build_run",
    "check_data_range",
    "check_trainable",
    "load_run",
    "load_run_checkpoint",
    "new_run_id",
    "open_for_training",
    "recorded_run_id",
    "resolve_device",
    "run_checkpoint",
]
