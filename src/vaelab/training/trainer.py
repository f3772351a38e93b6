"""The training loop, read top to bottom as the methods of :class:`Trainer`::

  fit          lock the run folder -> on_train_start -> _train -> on_train_end
  _train       _run_epoch until the last epoch or a stop (a NaN or inf: a failed summary.json) -> _finish
  _run_epoch   for each batch: strategy.train_step -> running sums -> on_step_end (steps.jsonl, checkpoint)
  _end_epoch   training means, validation -> on_metrics (metrics.jsonl) -> _select -> on_epoch_end
  _select      model selection: best model (on_best_model), LR decay on a plateau, early stopping
  _finish      the best model on the final split (IW-NLL with K samples) -> summary.json

What is not the loop lives apart: the run (:func:`vaelab.run.build_run`: data set, model, objective), its
measurements and summary.json (:class:`vaelab.evaluation.Evaluator`), the run folder's lock and config.yaml
(:func:`vaelab.run.open_for_training`), and in :mod:`vaelab.training`: the global batch and the strategy's
StepContext (``sharding``), the epoch's sums and records (``records``), what a checkpoint holds (``state``), model
selection's rules (``selection``), a NaN (``failure``), the files written while training (``callbacks``).

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
from vaelab.distributed import barrier, broadcast_object
from vaelab.evaluation import Evaluator
from vaelab.models import batch_size
from vaelab.objectives import NonFiniteLossError
from vaelab.objectives.objective import check_schedules_fit
from vaelab.run import RUN_ID_KEY, build_run, check_trainable, open_for_training
from vaelab.runfolder import DEFERRED, RunFolder
from vaelab.runlock import RunLock
from vaelab.training.callbacks import Callback, standard_callbacks
from vaelab.training.failure import TrainingFailed, check_epoch_finite, fail
from vaelab.training.interrupt import graceful_interrupt, stop_requested
from vaelab.training.optimizers import make_optimizers
from vaelab.training.records import add_step, epoch_means, epoch_records
from vaelab.training.selection import ModelSelection
from vaelab.training.sharding import GlobalBatch
from vaelab.training.state import checkpoint_state, is_fresh, new_state, restore_state, summary_facts
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
    """Whether :meth:`_finish` evaluates the best model on ``eval.final_split`` into summary.json. A study point
    sets it to False: its measurement (:mod:`vaelab.sweep.measure`) completes summary.json afterwards (until then
    ``"final_evaluation": "deferred"``)."""

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
        self.optimizers = make_optimizers(cfg.train, self.strategy, run.model)  # one per parameter group
        self.batch = GlobalBatch(run)
        self.has_valid = len(run.dataset.split("valid")) > 0
        check_trainable(run)  # the splits hold what training and its evaluations need
        check_schedules_fit(cfg.objective, run.steps_per_epoch, run.total_steps, cfg.train.epochs)  # data errors first
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

    # ---- what a strategy and a checkpoint see ------------------------------------------------------------------

    def _valid_mi(self) -> dict[str, float]:
        """Encoder-only MI and AU of the validation split between steps (:meth:`Evaluator.encoder_statistics
        <vaelab.evaluation.Evaluator.encoder_statistics>`): computed by the main process under an RNG seeded by
        (seed, step), so training is undisturbed, and broadcast (one decision for all processes)."""
        result = self.evaluator.encoder_statistics("valid", self.state["step"]) if self.run.dist.is_main else None
        return broadcast_object(result, self.run.dist)

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint holds (:func:`~vaelab.training.state.checkpoint_state`), :attr:`state`'s wall time
        brought up to date, and the run's id (:attr:`Run.run_id <vaelab.run.Run.run_id>`, which readers compare
        with config.yaml's)."""
        self.state["elapsed"] = self.elapsed()
        ckpt = checkpoint_state(self.run.model, self.optimizers, self.strategy, self.state, self.run.precision)
        if self.run.run_id is not None:
            ckpt[RUN_ID_KEY] = self.run.run_id
        return ckpt

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
        """Print ``lines`` to stderr, on the main process."""
        if self.run.dist.is_main and lines:
            print(*lines, sep="\n", file=sys.stderr, flush=True)

    # ---- the loop ----------------------------------------------------------------------------------------------

    def fit(self) -> dict[str, Any]:
        """Train to the end (or early stop), evaluate the best model on the final split, write summary.json.

        Holds the run folder's lock (``DIR/run.lock``, rank 0 only) throughout: a second writer is refused with
        :class:`~vaelab.runlock.RunFolderLocked` naming the holder."""
        lock = RunLock(self.folder.root, ignore=self.ignore_lock)
        try:
            open_for_training(self.run, lock, fresh=is_fresh(self.state), resume_overrides=self.resume_overrides)
            self._emit("on_train_start")
            barrier(self.run.dist)
            return self._train()
        finally:
            self._emit("on_train_end")
            lock.release()

    def _train(self) -> dict[str, Any]:
        """The epochs, then :meth:`_finish`; a NaN or inf stops training with a failed summary.json."""
        run, st = self.run, self.state
        ctx = self.batch.step_context(self.optimizers, self._valid_mi)  # what the strategy sees at every step
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
        self._emit("on_epoch_start")
        run.model.train()
        for batch in run.train_loader.epoch(st["epoch"], start_batch=st["batch_in_epoch"]):
            self.batch.start(st["step"], st["batch_in_epoch"], batch)
            x = batch.x.to(run.device)
            stats = self.strategy.train_step(ctx, x, st["step"])
            self._log(*self.strategy.pop_messages())  # e.g. aggressive training switching off
            n = batch_size(x)
            add_step(st["epoch_sums"], stats, n)  # the epoch's running means (training.records)
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
        train = epoch_means(st["epoch_sums"], self.run.dist)  # over all processes
        val = None
        if self.has_valid:
            val = self.evaluator.evaluate("valid", seed_offset=epoch + 1, extras=cfg.eval.extras_every_epoch)
            self.strategy.on_validation(epoch, val)
            self._log(*self.strategy.pop_messages())  # e.g. aggressive training switching off
        st["elapsed"] = self.elapsed()
        self._emit("on_metrics", epoch_records(st, self.optimizers, self.strategy, train, val))
        check_epoch_finite(train, val, st["step"])
        st["epoch"], st["batch_in_epoch"], st["epoch_sums"] = epoch + 1, 0, {}
        max_steps = cfg.train.max_steps
        reason = self._select(val) or ("max_steps" if max_steps and st["step"] >= max_steps else None)
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
        barrier(self.run.dist)
        facts = summary_facts(self.state)  # best_epoch, epochs, steps, train_time
        return self.evaluator.final_summary(stop_reason, facts, evaluate=self.final_evaluation)


__all__ = ["DEFERRED", "Trainer", "TrainingFailed"]
