"""The training loop: one epoch = the strategy's steps over the training split, then a validation.

The trainer builds its run with :func:`vaelab.run.build_run` (data set, model, objective), measures it with
:class:`vaelab.evaluation.Evaluator`, and adds the strategy, the optimisers and the loop. What surrounds the loop
lives apart: the run folder's lock and config.yaml (:func:`vaelab.run.open_for_training`), the state a checkpoint
holds (:mod:`vaelab.training.state`), the best model, LR decay and early stopping (:mod:`vaelab.training.selection`),
a NaN (:mod:`vaelab.training.failure`), summary.json (:meth:`Evaluator.final_summary
<vaelab.evaluation.Evaluator.final_summary>`), and the files written while training, as callbacks
(:mod:`vaelab.training.callbacks`: checkpoints, metrics.jsonl and steps.jsonl, TensorBoard, progress).

Reading guide (``Trainer.fit``, top to bottom):
  for each epoch: for each batch: ``strategy.train_step`` -> running sums -> on_step_end (steps.jsonl, checkpoint)
                  validation -> on_metrics (metrics.jsonl) -> best model (on_best_model), plateau -> on_epoch_end
  final: best model on the final split (IW-NLL with K samples) -> summary.json

Determinism: the epoch's data order and binarisation depend only on (seed, epoch, batch); the reparameterisation
noise only on (seed, step), drawn for the global batch and sliced per process (:mod:`vaelab.training.sharding`);
evaluation runs in a forked RNG. So a resumed run replays the uninterrupted one exactly on CPU, and 2 processes
match 1.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vaelab.config import RunConfig
from vaelab.data import Dataset
from vaelab.distributed import all_reduce_sum, barrier, broadcast_object
from vaelab.evaluation import Evaluator
from vaelab.models import batch_size
from vaelab.objectives import NonFiniteLossError
from vaelab.run import build_run, check_trainable, open_for_training
from vaelab.runfolder import DEFERRED, RunFolder
from vaelab.runlock import RunLock
from vaelab.training.callbacks import Callback, standard_callbacks
from vaelab.training.failure import TrainingFailed, check_epoch_finite, fail
from vaelab.training.interrupt import graceful_interrupt, stop_requested
from vaelab.training.optimizers import make_optimizer
from vaelab.training.selection import ModelSelection
from vaelab.training.sharding import GlobalBatch
from vaelab.training.state import checkpoint_state, new_state, restore_state
from vaelab.training.strategies import STRATEGIES, StepContext


class Trainer:
    """Trains one run described by a :class:`RunConfig` into a run folder (see :mod:`vaelab.runfolder`).

    ``callbacks`` run after the run folder's own (:func:`~vaelab.training.callbacks.standard_callbacks`)."""

    resume_overrides: tuple[str, ...] = ()
    """``key=value`` overrides given to ``vaelab resume`` (keys of :data:`vaelab.checks.RESUME_KEYS`), written into
    config.yaml once the folder's lock is held."""

    ignore_lock: bool = False
    """Take the run folder's lock even from a live holder (a sweep run with ``--ignore-locks``)."""

    final_evaluation: bool = True
    """Whether :meth:`_finish` evaluates the best model on ``eval.final_split`` (IW-NLL with ``eval.iw_samples``,
    the extra metrics) into summary.json. A study point sets it to False: its measurement
    (:mod:`vaelab.sweep.measure`) is the run's only evaluation and completes summary.json afterwards; until then
    summary.json holds the training facts and ``"final_evaluation": "deferred"``."""

    def __init__(
        self,
        cfg: RunConfig,
        run_dir: str | Path,
        *,
        resume: bool = False,
        dataset: Dataset | None = None,
        callbacks: Sequence[Callback] = (),
    ) -> None:
        self.run = run = build_run(cfg, run_dir, dataset=dataset)  # data set, model, objective (vaelab.run)
        self.evaluator = Evaluator(run)
        self.strategy = STRATEGIES.get(cfg.train.strategy, key="train.strategy")(**cfg.train.strategy_options)
        self.strategy.check_budget(cfg.train.epochs, run.total_steps, run.steps_per_epoch)
        self.optimizers = {
            name: make_optimizer(cfg.train, params) for name, params in self.strategy.param_groups(run.model).items()
        }
        self.batch = GlobalBatch(run)
        self.has_valid = len(run.dataset.split("valid")) > 0
        check_trainable(run)  # the splits hold what training and its evaluations need
        self.callbacks: list[Callback] = [*standard_callbacks(cfg), *callbacks]
        self.selection = ModelSelection(cfg)  # best model, LR decay, early stopping (training.selection)
        self.state: dict[str, Any] = new_state()  # where the loop is; in every checkpoint (training.state)
        self._t_start = time.perf_counter()
        if resume:
            self.load_state_dict(run.load_weights(self.folder.last))
        elif reason := self.folder.holds_run():
            raise FileExistsError(reason)  # never overwrite another run (RunFolder.holds_run says what may be)

    @property
    def folder(self) -> RunFolder:
        assert self.run.folder is not None
        return self.run.folder

    # ----------------------------------------------------------------------------------------------------------
    # what a strategy and a checkpoint see

    def _valid_mi(self) -> dict[str, float]:
        """Encoder-only MI and AU of the validation split between steps (:meth:`Evaluator.encoder_statistics
        <vaelab.evaluation.Evaluator.encoder_statistics>`): computed by the main process under an RNG seeded by
        (seed, step), so training is undisturbed, and broadcast (one decision for all processes)."""
        result = self.evaluator.encoder_statistics("valid", self.state["step"]) if self.run.dist.is_main else None
        return broadcast_object(result, self.run.dist)

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint holds (:func:`~vaelab.training.state.checkpoint_state`), :attr:`state`'s wall time
        brought up to date."""
        self.state["elapsed"] = self.elapsed()
        run = self.run
        return checkpoint_state(run.model, self.optimizers, self.strategy, self.state, run.precision)

    def load_state_dict(self, ckpt: dict[str, Any]) -> None:
        """Continue from a checkpoint of :meth:`state_dict` whose model weights the run holds."""
        restore_state(ckpt, self.optimizers, self.strategy, self.state, self.run.precision)

    def elapsed(self) -> float:
        """Seconds of training so far (a resumed run counts the time up to its checkpoint)."""
        return time.perf_counter() - self._t_start

    def _emit(self, hook: str, *args: Any) -> None:
        """Call ``hook`` on every callback, on the main process (which writes the run folder)."""
        if self.run.dist.is_main:
            for callback in self.callbacks:
                getattr(callback, hook)(self, *args)

    def _log(self, *lines: str) -> None:
        if self.run.dist.is_main:
            for line in lines:
                print(line, file=sys.stderr, flush=True)

    # ----------------------------------------------------------------------------------------------------------
    # the loop

    def fit(self) -> dict[str, Any]:
        """Train to the end (or early stop), evaluate the best model on the final split, write summary.json.

        Holds the run folder's lock (``DIR/run.lock``, rank 0 only) throughout: a second writer is refused with
        :class:`~vaelab.runlock.RunFolderLocked` naming the holder."""
        st = self.state
        lock = RunLock(self.folder.root, ignore=self.ignore_lock)
        fresh = st["step"] == 0 and st["batch_in_epoch"] == 0
        try:
            open_for_training(self.run, lock, fresh=fresh, resume_overrides=self.resume_overrides)
            self._emit("on_train_start")
            barrier(self.run.dist)
            return self._train()
        finally:
            self._emit("on_train_end")
            lock.release()

    def _train(self) -> dict[str, Any]:
        """The epochs, then :meth:`_finish`; a NaN or inf stops training with a failed summary.json."""
        run, st = self.run, self.state
        ctx = StepContext(
            model=run.model,
            objective=run.objective,
            optimizers=self.optimizers,
            dist=run.dist,
            grad_clip=run.config.train.grad_clip,
            noise=self.batch.noise,
            loss_scale=self.batch.loss_scale,
            random_batch=self.batch.random_batch,
            valid_mi=self._valid_mi,
            precision=run.precision,
        )
        self._t_start = time.perf_counter() - st["elapsed"]
        stop_reason = "completed"
        try:
            with graceful_interrupt():
                while st["epoch"] < run.config.train.epochs and not st["done"]:
                    stop_reason = self._run_epoch(ctx) or stop_reason
        except NonFiniteLossError as e:
            st["elapsed"] = self.elapsed()
            raise fail(self.folder, e, st["elapsed"], write=run.dist.is_main) from None
        st["done"] = True
        st["elapsed"] = self.elapsed()
        return self._finish(stop_reason)

    def _run_epoch(self, ctx: StepContext) -> str | None:
        """One epoch (or what is left of it after a resume): the steps, then :meth:`_end_epoch`."""
        run, st = self.run, self.state
        max_steps = run.config.train.max_steps
        sums: dict[str, float] = st["epoch_sums"]
        self._emit("on_epoch_start")
        run.model.train()
        for batch in run.train_loader.epoch(st["epoch"], start_batch=st["batch_in_epoch"]):
            self.batch.start(st["step"], st["batch_in_epoch"], batch)
            x = batch.x.to(run.device)
            stats = self.strategy.train_step(ctx, x, st["step"])
            self._log(*self.strategy.pop_messages())  # e.g. aggressive training switching off
            n = batch_size(x)
            for k, v in stats.items():
                sums[k] = sums.get(k, 0.0) + v * n
            sums["_n"] = sums.get("_n", 0.0) + n
            st["step"] += 1
            st["batch_in_epoch"] += 1
            self._emit("on_step_end", stats, n)
            if stop_requested():  # Ctrl-C / SIGTERM: the checkpoint callback has saved this step
                raise KeyboardInterrupt
            if max_steps and st["step"] >= max_steps:
                break
        return self._end_epoch()

    def _end_epoch(self) -> str | None:
        """The epoch's training means and validation -> on_metrics; model selection (best model, plateau, early
        stopping) -> on_epoch_end. Returns a stop reason or None. Without a validation split (``data.valid_size:
        0``, train on everything) the last epoch's model is the one kept."""
        cfg, st = self.run.config, self.state
        epoch = st["epoch"]
        totals = all_reduce_sum(st["epoch_sums"], self.run.dist)
        n_seen = max(totals.pop("_n", 0.0), 1.0)
        train = {k: v / n_seen for k, v in totals.items()}
        val = None
        if self.has_valid:
            val = self.evaluator.evaluate("valid", seed_offset=epoch + 1, extras=cfg.eval.extras_every_epoch)
            self.strategy.on_validation(epoch, val)
            self._log(*self.strategy.pop_messages())  # e.g. aggressive training switching off
        st["elapsed"] = self.elapsed()
        lrs = {f"lr_{k}": o.param_groups[0]["lr"] for k, o in self.optimizers.items()}
        common = {"epoch": epoch + 1, "step": st["step"], "wall_time": st["elapsed"], **lrs}
        common.update(self.strategy.log_fields())
        records = [{**common, "split": "train", "source": "running_mean", **train}]
        if val is not None:
            records.append({**common, "split": "valid", "source": "evaluation", "beta": train.get("beta"), **val})
        self._emit("on_metrics", records)
        check_epoch_finite(train, val, st["step"])
        st["epoch"], st["batch_in_epoch"], st["epoch_sums"] = epoch + 1, 0, {}
        reason = self._select(val)
        if cfg.train.max_steps and st["step"] >= cfg.train.max_steps:
            reason = reason or "max_steps"
        st["done"] = reason is not None or st["epoch"] >= cfg.train.epochs
        self._emit("on_epoch_end")
        return reason

    def _select(self, val: dict[str, Any] | None) -> str | None:
        """Model selection's verdict on the epoch (:class:`~vaelab.training.selection.ModelSelection`), acted on:
        keep the best model (on_best_model); on a plateau reload the best model and decay the learning rate.
        Returns a stop reason or None."""
        verdict = self.selection.judge(self.state, val, self.strategy)
        if verdict.best:
            self._emit("on_best_model")
        if verdict.decay:
            if self.selection.reload_best and self.folder.best.exists():
                barrier(self.run.dist)
                self.run.load_weights(self.folder.best)
            self._log(self.selection.decay(self.optimizers, self.state))
        return verdict.stop

    def _finish(self, stop_reason: str) -> dict[str, Any]:
        """summary.json (:meth:`Evaluator.final_summary <vaelab.evaluation.Evaluator.final_summary>`): the training
        facts and, with :attr:`final_evaluation`, the best model's metrics on the final split."""
        st = self.state
        barrier(self.run.dist)
        facts = {"best_epoch": st["best_epoch"], "epochs": st["epoch"], "steps": st["step"]}
        facts["train_time"] = st["elapsed"]
        return self.evaluator.final_summary(stop_reason, facts, evaluate=self.final_evaluation)


__all__ = ["DEFERRED", "Trainer", "TrainingFailed"]
