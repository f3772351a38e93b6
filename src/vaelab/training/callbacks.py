"""What the trainer writes while it trains, as callbacks: checkpoints, metrics.jsonl and steps.jsonl, TensorBoard,
the progress bar, the epoch's line on stderr.

The protocol (:class:`Callback`, every hook optional) follows the loop of :class:`~vaelab.training.trainer.Trainer`:

==================================  ===========================================================================
``on_train_start(trainer)``         the run folder is the trainer's (locked, created, config.yaml written);
                                    ``trainer.state`` is fresh (step 0) or the checkpoint a resume starts from
``on_epoch_start(trainer)``         before the epoch's first step (or the step a resume continues with)
``on_step_end(trainer, stats, n)``  after each training step: ``stats`` are the step's means over its ``n``
                                    examples; ``state["step"]`` and ``state["batch_in_epoch"]`` count it
``on_metrics(trainer, records)``    the epoch's metrics.jsonl records (the training steps' running means, then
                                    the validation), before model selection and the check for NaN
``on_best_model(trainer)``          the epoch's model has the best validation ELBO so far (kept as best.pt)
``on_epoch_end(trainer)``           the epoch's bookkeeping is done: ``trainer.state`` is where a resume would
                                    continue (``state["done"]`` once training is over)
``on_train_end(trainer)``           always, last (also after an error): close what ``on_train_start`` opened
==================================  ===========================================================================

Hooks run on the main process only (rank 0 of a torchrun job writes the run folder), in the order of
``trainer.callbacks``: :func:`standard_callbacks` first, then those given to the trainer. A callback reads the
trainer (``trainer.run``: config, model, data set, folder; ``trainer.state``; ``trainer.elapsed()``) and must not
change the training: the numbers of a run do not depend on its callbacks.
"""

from __future__ import annotations

import math
import sys
from typing import TYPE_CHECKING, Any

from vaelab.checkpoint import save_checkpoint
from vaelab.config import RunConfig
from vaelab.training.interrupt import stop_requested
from vaelab.training.state import is_fresh
from vaelab.training.tensorboard import TENSORBOARD_DIR, TensorBoardLogger, require_tensorboard

if TYPE_CHECKING:
    from pathlib import Path

    from vaelab.training.trainer import Trainer


class Callback:
    """Hooks of the training loop (see the module's docstring); each does nothing unless overridden."""

    def on_train_start(self, trainer: Trainer) -> None:
        """The run folder is ready; ``trainer.state`` is fresh or resumed."""

    def on_epoch_start(self, trainer: Trainer) -> None:
        """Before the epoch's first (or first remaining) step."""

    def on_step_end(self, trainer: Trainer, stats: dict[str, float], n: int) -> None:
        """After each training step (``stats``: its means over ``n`` examples)."""

    def on_metrics(self, trainer: Trainer, records: list[dict[str, Any]]) -> None:
        """The epoch's metrics records."""

    def on_best_model(self, trainer: Trainer) -> None:
        """The model is the best so far by validation ELBO."""

    def on_epoch_end(self, trainer: Trainer) -> None:
        """The epoch is over and its bookkeeping done."""

    def on_train_end(self, trainer: Trainer) -> None:
        """Always called last, also after an error."""


class Checkpoints(Callback):
    """checkpoints/last.pt (every ``train.checkpoint_every_steps`` steps, when a stop is requested, after each
    epoch) and checkpoints/best.pt (the best model by validation ELBO): :meth:`Trainer.state_dict
    <vaelab.training.trainer.Trainer.state_dict>`, written atomically (:func:`vaelab.checkpoint.save_checkpoint`)."""

    def __init__(self, every_steps: int | None = None) -> None:
        self.every_steps = every_steps

    def save(self, trainer: Trainer, path: Path) -> None:
        save_checkpoint(path, trainer.state_dict())

    def on_step_end(self, trainer: Trainer, stats: dict[str, float], n: int) -> None:
        every = self.every_steps
        if (every and trainer.state["step"] % every == 0) or stop_requested():
            self.save(trainer, trainer.folder.last)

    def on_best_model(self, trainer: Trainer) -> None:
        self.save(trainer, trainer.folder.best)

    def on_epoch_end(self, trainer: Trainer) -> None:
        self.save(trainer, trainer.folder.last)


class MetricsLog(Callback):
    """metrics.jsonl (each epoch's records, synced to disk) and steps.jsonl (the training stats' means over windows
    of ``train.log_every_steps`` steps within an epoch). A fresh run starts both files anew; a resumed one drops the
    lines logged after its checkpoint (they are logged again). The window's running sums live in
    ``trainer.state["step_window"]``, so they are in the checkpoint and the line whose window spans a resume equals
    the uninterrupted run's."""

    def __init__(self, every_steps: int = 1) -> None:
        self.every_steps = max(1, every_steps)

    def on_train_start(self, trainer: Trainer) -> None:
        folder = trainer.folder
        if is_fresh(trainer.state):
            folder.metrics.unlink(missing_ok=True)
            folder.steps.unlink(missing_ok=True)
        else:
            folder.truncate_metrics(trainer.state["step"])

    def on_epoch_start(self, trainer: Trainer) -> None:
        if trainer.state["batch_in_epoch"] == 0:  # a steps.jsonl line averages steps of one epoch
            trainer.state["step_window"] = {}

    def on_step_end(self, trainer: Trainer, stats: dict[str, float], n: int) -> None:
        st = trainer.state
        window: dict[str, float] = st["step_window"]
        for k, v in stats.items():
            window[k] = window.get(k, 0.0) + v * n
        window["_n"] = window.get("_n", 0.0) + n
        if st["step"] % self.every_steps == 0:
            total = window.pop("_n")
            rec = {"epoch": st["epoch"] + 1, "step": st["step"], "wall_time": trainer.elapsed()}
            trainer.folder.append_steps({**rec, **{k: v / total for k, v in window.items()}})
            window.clear()

    def on_metrics(self, trainer: Trainer, records: list[dict[str, Any]]) -> None:
        for record in records:
            trainer.folder.append_metrics(record)


class TensorBoardLog(Callback):
    """The metrics records and per-epoch pictures as TensorBoard events in DIR/tensorboard
    (:class:`~vaelab.training.tensorboard.TensorBoardLogger`; ``train.tensorboard: true``). A resumed run hides
    the events logged after its checkpoint (``purge_step``)."""

    def __init__(self) -> None:
        require_tensorboard()  # fail at once (a ConfigError naming the key and the install command)
        self.logger: TensorBoardLogger | None = None

    def on_train_start(self, trainer: Trainer) -> None:
        cfg, fresh = trainer.run.config, is_fresh(trainer.state)
        self.logger = TensorBoardLogger.open(
            trainer.folder.root / TENSORBOARD_DIR,
            fresh=fresh,
            purge_step=None if fresh else trainer.state["step"] + 1,  # records after the checkpoint are logged again
            seed=cfg.seed,
            eval_binarize_seed=cfg.eval.binarize_seed,
        )

    def on_metrics(self, trainer: Trainer, records: list[dict[str, Any]]) -> None:
        if self.logger is None:
            return
        for record in records:
            self.logger.log_record(record)
        self.logger.log_images(trainer.run.model, trainer.run.dataset, trainer.state["step"])
        self.logger.flush()

    def on_train_end(self, trainer: Trainer) -> None:
        if self.logger is not None:
            self.logger.close()
            self.logger = None


class EpochLog(Callback):
    """One line per epoch on stderr: the training steps' mean ELBO; the validation's ELBO, rate, distortion, MI (with
    its pool) and active units; the wall time."""

    def on_metrics(self, trainer: Trainer, records: list[dict[str, Any]]) -> None:
        train, valid = records[0], (records[1] if len(records) > 1 else None)
        line = f"epoch {train['epoch']}: train elbo {train.get('elbo', math.nan):.3f}"
        if valid is None:
            line += f" (no validation split) | {train['wall_time']:.1f}s"
        else:
            line += (
                f" | valid elbo {valid['elbo']:.3f} rate {valid['rate']:.3f} distortion {valid['distortion']:.3f} "
                f"mi {valid['mi']:.3f} (pool {valid['mi_pool']}) au {valid['au']} | {valid['wall_time']:.1f}s"
            )
        print(line, file=sys.stderr, flush=True)


class ProgressBar(Callback):
    """A tqdm bar over each epoch's steps on a terminal (none when stderr is not one: logs, CI), with the ELBO,
    the rate and beta every ``train.log_every_steps`` steps."""

    def __init__(self, every_steps: int = 1) -> None:
        self.every_steps = max(1, every_steps)
        self.bar: Any = None

    def on_epoch_start(self, trainer: Trainer) -> None:
        from tqdm import tqdm

        self.bar = tqdm(
            total=trainer.run.steps_per_epoch,
            initial=trainer.state["batch_in_epoch"],
            desc=f"epoch {trainer.state['epoch'] + 1}/{trainer.run.config.train.epochs}",
            leave=False,
            dynamic_ncols=True,
            disable=None,  # no bar when stderr is not a terminal
            file=sys.stderr,
        )

    def on_step_end(self, trainer: Trainer, stats: dict[str, float], n: int) -> None:
        if self.bar is None:
            return
        st, max_steps = trainer.state, trainer.run.config.train.max_steps
        self.bar.update(1)
        if st["step"] % self.every_steps == 0:
            self.bar.set_postfix(elbo=f"{stats['elbo']:.2f}", kl=f"{stats['rate']:.2f}", beta=f"{stats['beta']:.3g}")
        if st["batch_in_epoch"] == trainer.run.steps_per_epoch or (max_steps and st["step"] >= max_steps):
            self.on_train_end(trainer)  # the epoch's steps are done: no bar during the validation

    def on_metrics(self, trainer: Trainer, records: list[dict[str, Any]]) -> None:
        self.on_train_end(trainer)

    def on_train_end(self, trainer: Trainer) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def standard_callbacks(cfg: RunConfig) -> list[Callback]:
    """The run folder's writers for ``cfg``: checkpoints, metrics.jsonl and steps.jsonl, TensorBoard
    (``train.tensorboard``), the progress bar (``train.progress``)."""
    tr = cfg.train
    callbacks: list[Callback] = [MetricsLog(tr.log_every_steps)]
    if tr.tensorboard:
        callbacks.append(TensorBoardLog())
    if tr.progress:
        callbacks.append(ProgressBar(tr.log_every_steps))
    return [*callbacks, EpochLog(), Checkpoints(tr.checkpoint_every_steps)]  # a checkpoint holds the others' state


__all__ = [
    "Callback",
    "Checkpoints",
    "EpochLog",
    "MetricsLog",
    "ProgressBar",
    "TensorBoardLog",
    "standard_callbacks",
]
