"""The training loop: one epoch = the strategy's steps over the training split, then a validation.

The trainer builds its run with :func:`vaelab.run.build_run` (data set, model, objective) and measures it with
:class:`vaelab.evaluation.Evaluator`; it adds the strategy, the optimisers, the loop and the run folder's files.

Reading guide (top to bottom, ``Trainer.fit``):
  for each epoch: for each batch: ``strategy.train_step`` -> running sums -> periodic checkpoint
                  validation metrics -> metrics.jsonl -> best/plateau logic -> checkpoint
  final: best model on the test split (IW-NLL with K samples) -> summary.json

Determinism: the epoch's data order and binarisation depend only on (seed, epoch, batch); the
reparameterisation noise only on (seed, step), drawn for the global batch and sliced per process; evaluation runs
in a forked RNG. So a resumed run replays the uninterrupted one exactly on CPU, and 2 processes match 1.
"""

from __future__ import annotations

import math
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from vaelab.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from vaelab.checks import check_batch_norm_batches
from vaelab.config import ConfigError, RunConfig, save_config, update_saved_config
from vaelab.data import DataError
from vaelab.data.loader import shard_bounds
from vaelab.distributed import all_reduce_sum, barrier, broadcast_object
from vaelab.evaluation import FINAL_OFFSET, Evaluator
from vaelab.models import batch_size
from vaelab.objectives import NonFiniteLossError
from vaelab.run import build_run
from vaelab.seeds import mix_seed
from vaelab.training.optimizers import make_optimizer
from vaelab.training.runfolder import provenance
from vaelab.training.runlock import RunLock
from vaelab.training.strategies import STRATEGIES, StepContext
from vaelab.training.tensorboard import TENSORBOARD_DIR, TensorBoardLogger, require_tensorboard


class TrainingFailed(RuntimeError):
    """Training stopped early for a reason the user must act on (the message says which and what is kept)."""


class Trainer:
    """Trains one run described by a :class:`RunConfig` into a run folder (see :mod:`vaelab.training.runfolder`)."""

    def __init__(self, cfg: RunConfig, run_dir: str | Path, *, resume: bool = False, dataset: Any = None) -> None:
        self.run = run = build_run(cfg, run_dir, dataset=dataset)  # data set, model, objective (vaelab.run)
        assert run.folder is not None
        self.cfg, self.folder, self.dataset, self.model = cfg, run.folder, run.dataset, run.model
        self.objective, self.train_loader = run.objective, run.train_loader
        self.device, self.precision, self.dist = run.device, run.precision, run.dist
        self.evaluator = Evaluator(run)
        self.steps_per_epoch, self.total_steps = run.steps_per_epoch, run.total_steps

        strategy_cls = STRATEGIES.get(cfg.train.strategy, key="train.strategy")
        self.strategy = strategy_cls(**cfg.train.strategy_options)
        self.strategy.check_budget(cfg.train.epochs, self.total_steps, self.steps_per_epoch)
        self.optimizers = {
            name: make_optimizer(cfg.train, params) for name, params in self.strategy.param_groups(self.model).items()
        }
        n_train = len(self.dataset.split("train"))
        self._first_global_batch = min(cfg.train.batch_size, n_train)
        self._random_global_batch = self._first_global_batch
        self.has_valid = len(self.dataset.split("valid")) > 0
        self._check_splits()
        if cfg.train.tensorboard:
            require_tensorboard()  # fail now (a ConfigError naming the key and the install command)
        self._tensorboard: TensorBoardLogger | None = None

        self.state: dict[str, Any] = {
            "step": 0,
            "epoch": 0,
            "batch_in_epoch": 0,
            "best_val": math.inf,
            "best_epoch": -1,
            "bad_epochs": 0,
            "decays": 0,
            "elapsed": 0.0,
            "epoch_sums": {},
            "step_window": {},  # training stats since the last steps.jsonl line (saved: a resume continues it)
            "done": False,
        }
        self._random_batches = 0
        if resume:
            self._load(self.folder.last)
        elif reason := self.folder.holds_run():
            raise FileExistsError(reason)  # never overwrite another run (RunFolder.holds_run says what may be)

    def _check_splits(self) -> None:
        """Before any training: the final split has examples, and without a validation split (``data.valid_size:
        0``) nothing needs one (LR decay, early stopping, a strategy that watches validation MI)."""
        cfg = self.cfg
        check_batch_norm_batches(cfg, self.train_loader.batch_sizes(), len(self.dataset.split("train")))
        final = cfg.eval.final_split
        for split in sorted({final, "valid"}):  # MI and active units of one example are undefined
            if len(self.dataset.split(split)) == 1:
                raise DataError(
                    f"data set {cfg.data.name}: the {split} split holds 1 example; its evaluation (MI, active units) "
                    "needs at least 2: give it more examples"
                )
        if len(self.dataset.split(final)) == 0:
            raise DataError(
                f"data set {cfg.data.name}: the {final} split is empty, so the final evaluation (eval.final_split) "
                "has nothing to measure; give it examples or set eval.final_split to another split"
            )
        if self.has_valid:
            return
        needs = [
            key
            for key, on in (
                ("train.lr_decay.enabled", cfg.train.lr_decay.enabled),
                ("train.early_stopping_patience", cfg.train.early_stopping_patience is not None),
                (f"train.strategy={cfg.train.strategy}", cfg.train.strategy != "joint"),
            )
            if on
        ]
        if needs:
            raise ConfigError(
                f"data set {cfg.data.name} has no validation split (data.valid_size=0), which {', '.join(needs)} "
                "needs; set data.valid_size > 0"
            )

    # ----------------------------------------------------------------------------------------------------------
    # randomness shared by all processes

    def _global_noise(self, step: int, x: Any, sub: int = 0) -> Tensor:
        """This process's rows of N(0, I) noise drawn for the whole global batch of ``step``.

        The loader gives rank r the contiguous chunk r of each global batch (:func:`shard_bounds`), so slicing
        the same rows of the global noise makes an n-process run see the numbers of a 1-process run. ``sub`` > 0
        numbers the extra batches a strategy draws within one step (fresh random batches: aggressive training).
        """
        g = torch.Generator().manual_seed(mix_seed(self.cfg.seed, 17, step, sub))
        b_global = self._global_size(sub)
        eps = torch.randn(b_global, self.model.latent_dim, generator=g)
        lo, hi = shard_bounds(b_global, self.dist.rank, self.dist.world_size)
        if hi - lo != batch_size(x):
            raise RuntimeError(f"batch of {batch_size(x)} examples does not match its shard [{lo}, {hi})")
        return eps[lo:hi].to(self.device)

    def _global_size(self, sub: int) -> int:
        """Global size of the step's own batch (sub 0) or of a fresh random batch (sub > 0)."""
        return self._global_batch if sub == 0 else self._random_global_batch

    def _loss_scale(self, x: Any, sub: int = 0) -> float:
        """Local-mean loss -> share of the global-mean loss, so averaged gradients are the global gradient."""
        if not self.dist.enabled:
            return 1.0
        return batch_size(x) * self.dist.world_size / self._global_size(sub)

    def _set_global_batch(self, epoch_batch: int, batch: Any = None) -> None:
        """Record the size of the global batch the current local batch is a shard of. Loaders whose batches
        vary in size (text, bucketed by length) say so with ``batch.global_size``; otherwise batch b of an
        epoch holds examples [b * B, (b + 1) * B) of the epoch's order."""
        size = getattr(batch, "global_size", None)
        if size is None:
            n, b = len(self.dataset.split("train")), self.cfg.train.batch_size
            size = min(b, n - epoch_batch * b)
        self._global_batch = int(size)

    def _random_batch(self) -> Any:
        """A fresh random training minibatch: the first batch of a virtual epoch with its own seed."""
        self._random_batches += 1
        virtual_epoch = 1_000_000 + mix_seed(self.state["step"], self._random_batches) % 1_000_000_000
        batch = next(iter(self.train_loader.epoch(virtual_epoch)))
        self._random_global_batch = int(getattr(batch, "global_size", None) or self._first_global_batch)
        return batch.x.to(self.device)

    def _context(self) -> StepContext:
        return StepContext(
            model=self.model,
            objective=self.objective,
            optimizers=self.optimizers,
            dist=self.dist,
            grad_clip=self.cfg.train.grad_clip,
            noise=self._global_noise,
            loss_scale=self._loss_scale,
            random_batch=self._random_batch,
            valid_mi=self._valid_mi,
            precision=self.precision,
        )

    def _valid_mi(self) -> dict[str, float]:
        """Encoder-only measurement of the validation split between training steps (MI, AU:
        :meth:`~vaelab.evaluation.Evaluator.encoder_statistics`). The main process computes it under a forked RNG
        seeded by (seed, step), so training is undisturbed, and every process gets its numbers (one decision for
        all)."""
        if len(self.dataset.split("valid")) == 0:
            raise TrainingFailed(
                "aggressive training checks MI on the validation split, which is empty: set data.valid_size > 0 "
                "or check MI once per epoch (remove train.strategy_options.check_every_steps)"
            )
        result = self.evaluator.encoder_statistics("valid", self.state["step"]) if self.dist.is_main else None
        return broadcast_object(result, self.dist)

    # ----------------------------------------------------------------------------------------------------------
    # checkpoints

    def _checkpoint_state(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "strategy": self.strategy.state_dict(),
            "trainer": dict(self.state),
            "rng": rng_state(),  # tensors and plain data: checkpoints load with weights_only=True
            **({"precision": self.precision.state_dict()} if self.precision.scaler is not None else {}),
        }

    def _save(self, path: Path) -> None:
        if self.dist.is_main:
            save_checkpoint(path, self._checkpoint_state())

    def _load(self, path: Path, weights_only: bool = False) -> None:
        ckpt = self.run.load_weights(path)
        if weights_only:
            return
        for k, o in self.optimizers.items():
            o.load_state_dict(ckpt["optimizers"][k])
        self.strategy.load_state_dict(ckpt["strategy"])
        self.state.update(ckpt["trainer"])
        set_rng_state(ckpt["rng"])
        self.precision.load_state_dict(ckpt.get("precision", {}))

    # ----------------------------------------------------------------------------------------------------------
    # evaluation

    def evaluate(
        self, split: str, *, iw_samples: int = 0, seed_offset: int = 0, extras: bool = False
    ) -> dict[str, Any]:
        """The current model's metrics on a split (:meth:`vaelab.evaluation.Evaluator.evaluate`)."""
        return self.evaluator.evaluate(split, iw_samples=iw_samples, seed_offset=seed_offset, extras=extras)

    # ----------------------------------------------------------------------------------------------------------
    # the loop

    def _log(self, msg: str) -> None:
        if self.dist.is_main:
            print(msg, file=sys.stderr, flush=True)

    def _log_strategy_messages(self) -> None:
        """Write what the strategy has to say (e.g. aggressive training switching off) to the run log."""
        for message in self.strategy.pop_messages():
            self._log(message)

    resume_overrides: tuple[str, ...] = ()
    """``key=value`` overrides given to ``vaelab resume`` (keys of :data:`vaelab.checks.RESUME_KEYS`), written into
    config.yaml once the folder's lock is held."""

    ignore_lock: bool = False
    """Take the run folder's lock even from a live holder (a sweep run with ``--ignore-locks``)."""

    def fit(self) -> dict[str, Any]:
        """Train to the end (or early stop), evaluate the best model on the final split, write summary.json.

        Holds the run folder's lock (``DIR/run.lock``, rank 0 only) throughout: a second writer is refused with
        :class:`~vaelab.training.runlock.RunFolderLocked` naming the holder."""
        lock = RunLock(self.folder.root, ignore=self.ignore_lock)
        refusal: FileExistsError | None = None
        if self.dist.is_main:
            try:
                lock.acquire()
                fresh = self.state["step"] == 0 and self.state["batch_in_epoch"] == 0
                if fresh and (reason := self.folder.holds_run()):  # again, now that no one else can write here
                    raise FileExistsError(reason)
            except FileExistsError as e:
                refusal = e
        refusal = broadcast_object(refusal, self.dist)
        try:
            if refusal is not None:
                raise refusal
            return self._fit_in_folder()
        finally:
            lock.release()

    def _fit_in_folder(self) -> dict[str, Any]:
        """``fit`` once the run folder is this process's: set it up, train, close the TensorBoard writer."""
        cfg, st = self.cfg, self.state
        if self.dist.is_main:
            self.folder.create()
            if st["step"] == 0 and st["batch_in_epoch"] == 0:
                meta = {**provenance(), "world_size": self.dist.world_size, "data": getattr(self.dataset, "info", {})}
                save_config(cfg, self.folder.config, extra=meta)
                self.folder.metrics.unlink(missing_ok=True)
                self.folder.steps.unlink(missing_ok=True)
            else:
                self.folder.truncate_metrics(st["step"])
                if self.resume_overrides:  # evaluation/logging/device settings given to `vaelab resume`
                    update_saved_config(self.folder.config, cfg, list(self.resume_overrides))
            if cfg.train.tensorboard:
                fresh = st["step"] == 0 and st["batch_in_epoch"] == 0
                self._tensorboard = TensorBoardLogger.open(
                    self.folder.root / TENSORBOARD_DIR,
                    fresh=fresh,
                    purge_step=None if fresh else st["step"] + 1,  # records after the checkpoint are logged again
                    seed=cfg.seed,
                    eval_binarize_seed=cfg.eval.binarize_seed,
                )
        barrier(self.dist)
        try:
            return self._fit()
        finally:
            if self._tensorboard is not None:
                self._tensorboard.close()
                self._tensorboard = None

    def _fit(self) -> dict[str, Any]:
        """The epochs, then :meth:`_finish` (``fit`` without the run-folder set-up and the TensorBoard writer)."""
        cfg, st = self.cfg, self.state
        ctx = self._context()
        self.model.train()
        t_start = time.perf_counter() - st["elapsed"]
        stop_reason = "completed"
        try:
            with _graceful_interrupt():
                while st["epoch"] < cfg.train.epochs and not st["done"]:
                    reason = self._run_epoch(ctx, t_start)
                    if reason:
                        stop_reason = reason
                        break
        except NonFiniteLossError as e:
            st["elapsed"] = time.perf_counter() - t_start
            msg = self._nan_message(e)
            if self.dist.is_main:
                self.folder.write_json(
                    "summary.json",
                    {
                        "status": "failed",
                        "reason": str(e),
                        "term": e.term,
                        "step": e.step,
                        "wall_time": st["elapsed"],
                    },
                )
            raise TrainingFailed(msg) from None
        st["done"] = True
        st["elapsed"] = time.perf_counter() - t_start
        self._save(self.folder.last)
        return self._finish(stop_reason)

    def _nan_message(self, e: NonFiniteLossError) -> str:
        """What stopped training and what to do: retrain into a new folder with other settings (``resume`` cannot
        change train.lr or grad_clip, and would meet the same NaN); names the last good checkpoint if there is
        one."""
        again = (
            "train again into a new folder (--out) with a lower train.lr or a train.grad_clip, or check the data "
            "(vaelab resume cannot change these settings)"
        )
        if self.folder.last.exists():
            step = int(load_checkpoint(self.folder.last)["trainer"]["step"])
            return f"training stopped: {e}. The last good checkpoint is {self.folder.last} (step {step}); {again}."
        return f"training stopped: {e}, before the first checkpoint was written; {again}."

    def _log_steps(self, window: dict[str, float], epoch: int, step: int, t_start: float) -> None:
        """Append the window's mean training stats to steps.jsonl and empty the window. Under data parallelism the
        means are those of rank 0's shard (no communication for a log line)."""
        n = window.pop("_n", 0.0)
        if self.dist.is_main and n > 0:
            rec = {"epoch": epoch + 1, "step": step, "wall_time": time.perf_counter() - t_start}
            self.folder.append_steps({**rec, **{k: v / n for k, v in window.items()}})
        window.clear()

    def _run_epoch(self, ctx: StepContext, t_start: float) -> str | None:
        cfg, st = self.cfg, self.state
        epoch = st["epoch"]
        sums: dict[str, float] = st["epoch_sums"]
        if st["batch_in_epoch"] == 0:  # a steps.jsonl line averages steps of one epoch
            st["step_window"] = {}
        window: dict[str, float] = st["step_window"]  # in the checkpoint, so the line spanning a resume is the same
        bar = None
        if cfg.train.progress and self.dist.is_main:
            from tqdm import tqdm

            bar = tqdm(
                total=self.steps_per_epoch,
                initial=st["batch_in_epoch"],
                desc=f"epoch {epoch + 1}/{cfg.train.epochs}",
                leave=False,
                dynamic_ncols=True,
                disable=None,  # no bar when stderr is not a terminal (logs, CI)
                file=sys.stderr,
            )
        self.model.train()
        for batch in self.train_loader.epoch(epoch, start_batch=st["batch_in_epoch"]):
            self._set_global_batch(st["batch_in_epoch"], batch)
            self._random_batches = 0  # random batches are keyed by (step, draw index): resumable
            x = batch.x.to(self.device)
            stats = self.strategy.train_step(ctx, x, st["step"])
            self._log_strategy_messages()
            n = batch_size(x)
            for k, v in stats.items():
                sums[k] = sums.get(k, 0.0) + v * n
                window[k] = window.get(k, 0.0) + v * n
            sums["_n"] = sums.get("_n", 0.0) + n
            window["_n"] = window.get("_n", 0.0) + n
            st["step"] += 1
            if st["step"] % max(1, cfg.train.log_every_steps) == 0:
                self._log_steps(window, epoch, st["step"], t_start)
            st["batch_in_epoch"] += 1
            if bar is not None:
                bar.update(1)
                if st["step"] % max(1, cfg.train.log_every_steps) == 0:
                    bar.set_postfix(elbo=f"{stats['elbo']:.2f}", kl=f"{stats['rate']:.2f}", beta=f"{stats['beta']:.3g}")
            every = cfg.train.checkpoint_every_steps
            if every and st["step"] % every == 0:
                st["elapsed"] = time.perf_counter() - t_start
                self._save(self.folder.last)
            if _interrupted["flag"]:
                st["elapsed"] = time.perf_counter() - t_start
                self._save(self.folder.last)
                raise KeyboardInterrupt
            if cfg.train.max_steps and st["step"] >= cfg.train.max_steps:
                break
        if bar is not None:
            bar.close()

        # epoch end: global training averages, validation, bookkeeping
        totals = all_reduce_sum(sums, self.dist)
        n_seen = max(totals.pop("_n", 0.0), 1.0)
        train_rec = {k: v / n_seen for k, v in totals.items()}
        if not self.has_valid:  # data.valid_size: 0 (train on everything): the last epoch's model is the one kept
            return self._epoch_without_validation(epoch, train_rec, t_start)
        val = self.evaluate("valid", seed_offset=epoch + 1, extras=cfg.eval.extras_every_epoch)
        self.strategy.on_validation(epoch, val)
        self._log_strategy_messages()
        st["elapsed"] = time.perf_counter() - t_start
        lrs = {f"lr_{k}": o.param_groups[0]["lr"] for k, o in self.optimizers.items()}
        common = {
            "epoch": epoch + 1,
            "step": st["step"],
            "wall_time": st["elapsed"],
            **lrs,
            **self.strategy.log_fields(),
        }
        if self.dist.is_main:
            records = [
                {**common, "split": "train", "source": "running_mean", **train_rec},
                {**common, "split": "valid", "source": "evaluation", "beta": train_rec.get("beta"), **val},
            ]
            for record in records:
                self.folder.append_metrics(record)
            if self._tensorboard is not None:
                for record in records:
                    self._tensorboard.log_record(record)
                self._tensorboard.log_images(self.model, self.dataset, st["step"])
                self._tensorboard.flush()
        self._log(
            f"epoch {epoch + 1}: train elbo {train_rec.get('elbo', float('nan')):.3f} | valid elbo {val['elbo']:.3f} "
            f"rate {val['rate']:.3f} distortion {val['distortion']:.3f} mi {val['mi']:.3f} (pool {val['mi_pool']}) "
            f"au {val['au']} | {st['elapsed']:.1f}s"
        )
        if not all(math.isfinite(val[k]) for k in ("elbo", "rate", "distortion")):
            raise NonFiniteLossError("validation elbo", st["step"], val["elbo"])

        # best model, plateau, early stopping (validation loss = -ELBO)
        val_loss = -val["elbo"]
        st["epoch"] = epoch + 1
        st["batch_in_epoch"] = 0
        st["epoch_sums"] = {}
        reason = None
        if self.strategy.restart_selection():  # a new phase: its models are compared among themselves only
            st["best_val"], st["best_epoch"], st["bad_epochs"] = math.inf, -1, 0
        if val_loss < st["best_val"] - 1e-6:
            st["best_val"], st["best_epoch"], st["bad_epochs"] = val_loss, epoch + 1, 0
            self._save(self.folder.best)
        elif self.strategy.counts_plateaus():
            st["bad_epochs"] += 1
            reason = self._plateau()
        if cfg.train.max_steps and st["step"] >= cfg.train.max_steps:
            reason = reason or "max_steps"
        if reason:
            st["done"] = True
        self._save(self.folder.last)
        return reason

    def _epoch_without_validation(self, epoch: int, train_rec: dict[str, float], t_start: float) -> str | None:
        """Epoch end without a validation split: log the training means, keep this epoch's model as best.pt."""
        cfg, st = self.cfg, self.state
        st["elapsed"] = time.perf_counter() - t_start
        if self.dist.is_main:
            lrs = {f"lr_{k}": o.param_groups[0]["lr"] for k, o in self.optimizers.items()}
            record = {"epoch": epoch + 1, "step": st["step"], "wall_time": st["elapsed"], **lrs}
            self.folder.append_metrics({**record, "split": "train", "source": "running_mean", **train_rec})
        self._log(
            f"epoch {epoch + 1}: train elbo {train_rec.get('elbo', float('nan')):.3f} (no validation split) | "
            f"{st['elapsed']:.1f}s"
        )
        if not math.isfinite(train_rec.get("elbo", 0.0)):
            raise NonFiniteLossError("train elbo", st["step"], train_rec["elbo"])
        st["epoch"], st["batch_in_epoch"], st["epoch_sums"] = epoch + 1, 0, {}
        st["best_epoch"] = epoch + 1
        self._save(self.folder.best)
        reason = "max_steps" if cfg.train.max_steps and st["step"] >= cfg.train.max_steps else None
        st["done"] = reason is not None
        self._save(self.folder.last)
        return reason

    def _plateau(self) -> str | None:
        """LR decay with reload of the best model, then early stopping; returns a stop reason or None."""
        cfg, st = self.cfg.train, self.state
        decay = cfg.lr_decay
        if decay.enabled and st["bad_epochs"] >= decay.patience:
            if st["decays"] >= decay.max_decays:
                return f"lr decayed {decay.max_decays} times"
            st["decays"] += 1
            st["bad_epochs"] = 0
            if decay.reload_best and self.folder.best.exists():
                barrier(self.dist)
                self._load(self.folder.best, weights_only=True)
            for o in self.optimizers.values():
                for g in o.param_groups:
                    g["lr"] *= decay.factor
            self._log(f"validation plateau: learning rate x{decay.factor} (decay {st['decays']}/{decay.max_decays})")
        if cfg.early_stopping_patience is not None and st["bad_epochs"] >= cfg.early_stopping_patience:
            return f"early stopping (no improvement for {cfg.early_stopping_patience} epochs)"
        return None

    final_evaluation: bool = True
    """Whether :meth:`_finish` evaluates the best model on ``eval.final_split`` (IW-NLL with ``eval.iw_samples``,
    the extra metrics) into summary.json. A study point sets it to False: its measurement
    (:mod:`vaelab.sweep.measure`) is the run's only evaluation and completes summary.json afterwards; until then
    summary.json holds the training facts and ``"final_evaluation": "deferred"``."""

    def _finish(self, stop_reason: str) -> dict[str, Any]:
        cfg, st = self.cfg, self.state
        barrier(self.dist)
        if not self.final_evaluation:
            summary = {
                "status": "completed",
                "stop_reason": stop_reason,
                "final_evaluation": DEFERRED,
                "best_epoch": st["best_epoch"],
                "epochs": st["epoch"],
                "steps": st["step"],
                "train_time": st["elapsed"],
                "world_size": self.dist.world_size,
            }
            if self.dist.is_main:
                self.folder.write_json("summary.json", summary)
            return summary
        if self.folder.best.exists():
            self._load(self.folder.best, weights_only=True)
        split = cfg.eval.final_split
        t0 = time.perf_counter()
        final = self.evaluate(split, iw_samples=cfg.eval.iw_samples, seed_offset=FINAL_OFFSET, extras=True)
        summary = {
            "status": "completed",
            "stop_reason": stop_reason,
            "split": split,
            **final,
            "best_epoch": st["best_epoch"],
            "epochs": st["epoch"],
            "steps": st["step"],
            "train_time": st["elapsed"],
            "eval_time": time.perf_counter() - t0,
            "world_size": self.dist.world_size,
        }
        if self.dist.is_main:
            self.folder.write_json("summary.json", summary)
        return summary


DEFERRED = "deferred"
"""summary.json's ``final_evaluation`` when the trainer left the evaluation to the sweep's measurement."""

_interrupted = {"flag": False}


@contextmanager
def _graceful_interrupt() -> Iterator[None]:
    """First Ctrl-C / SIGTERM: finish the current step, checkpoint, stop. Second: stop at once."""
    if not _is_main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        if _interrupted["flag"]:
            raise KeyboardInterrupt
        _interrupted["flag"] = True
        print("\ninterrupt: saving a checkpoint after this step (again to abort)", file=sys.stderr, flush=True)

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    _interrupted["flag"] = False
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        _interrupted["flag"] = False


def _is_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()
