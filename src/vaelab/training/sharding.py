"""The global batch of a step as one process sees it: its shard, the shared noise, the loss scale, fresh batches.

Under data parallelism each process trains on a contiguous shard of every global batch (:func:`shard_bounds`).
:class:`GlobalBatch` gives a strategy (through :class:`~vaelab.training.strategies.StepContext`) what makes an
n-process run see the numbers of a 1-process run: this process's rows of the reparameterisation noise drawn for the
whole global batch, seeded by (seed, step, draw) (stream 17 of :mod:`vaelab.seeds`), and the factor that turns a
local mean loss into its share of the global mean. A strategy that draws fresh random training batches within a
step (aggressive training's inner loop) numbers them ``sub`` = 1, 2, ... (0 is the step's own batch); each is the
first batch of a virtual epoch seeded by (step, draw), so a resumed run draws the same ones.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from vaelab.data.loader import shard_bounds
from vaelab.models import batch_size
from vaelab.run import Run
from vaelab.seeds import mix_seed
from vaelab.training.strategies import StepContext


class GlobalBatch:
    """The current step's global batch for one process of ``run`` (see the module's docstring). The trainer calls
    :meth:`start` before each step; :meth:`noise`, :meth:`loss_scale` and :meth:`random_batch` go into the
    strategy's StepContext (:meth:`step_context`)."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.first_size = min(run.config.train.batch_size, len(run.dataset.split("train")))
        self.size = self.random_size = self.first_size  # the step's own batch; the last fresh random batch
        self.step = 0
        self.draws = 0

    def step_context(
        self, optimizers: dict[str, torch.optim.Optimizer], valid_mi: Callable[[], dict[str, float]]
    ) -> StepContext:
        """What the strategy sees at every step of the run: its model, objective, ``train.grad_clip`` and precision,
        the processes, ``optimizers``, this batch's :meth:`noise`, :meth:`loss_scale` and :meth:`random_batch`, and
        ``valid_mi`` (the trainer's encoder statistics of the validation split)."""
        run = self.run
        return StepContext(
            model=run.model,
            objective=run.objective,
            optimizers=optimizers,
            dist=run.dist,
            grad_clip=run.config.train.grad_clip,
            noise=self.noise,
            loss_scale=self.loss_scale,
            random_batch=self.random_batch,
            valid_mi=valid_mi,
            precision=run.precision,
        )

    def start(self, step: int, batch_in_epoch: int, batch: Any) -> None:
        """A new step: record the size of the global batch the local ``batch`` is a shard of. Loaders whose batches
        vary in size (text, bucketed by length) say so with ``batch.global_size``; otherwise batch b of an epoch
        holds examples [b * B, (b + 1) * B) of the epoch's order."""
        size = getattr(batch, "global_size", None)
        if size is None:
            n, b = len(self.run.dataset.split("train")), self.run.config.train.batch_size
            size = min(b, n - batch_in_epoch * b)
        self.size, self.step, self.draws = int(size), step, 0  # random batches are keyed by (step, draw): resumable

    def global_size(self, sub: int) -> int:
        """Global size of the step's own batch (sub 0) or of the last fresh random batch (sub > 0)."""
        return self.size if sub == 0 else self.random_size

    def noise(self, step: int, x: Any, sub: int = 0) -> Tensor:
        """This process's rows of N(0, I) noise drawn for the whole global batch of ``step`` (draw ``sub``)."""
        run = self.run
        g = torch.Generator().manual_seed(mix_seed(run.config.seed, 17, step, sub))
        b_global = self.global_size(sub)
        eps = torch.randn(b_global, run.model.latent_dim, generator=g)
        lo, hi = shard_bounds(b_global, run.dist.rank, run.dist.world_size)
        if hi - lo != batch_size(x):
            raise RuntimeError(f"batch of {batch_size(x)} examples does not match its shard [{lo}, {hi})")
        return eps[lo:hi].to(run.device)

    def loss_scale(self, x: Any, sub: int = 0) -> float:
        """Local-mean loss -> share of the global-mean loss, so averaged gradients are the global gradient."""
        dist = self.run.dist
        if not dist.enabled:
            return 1.0
        return batch_size(x) * dist.world_size / self.global_size(sub)

    def random_batch(self) -> Any:
        """A fresh random training minibatch (this process's shard): the first batch of a virtual epoch with its
        own seed."""
        self.draws += 1
        virtual_epoch = 1_000_000 + mix_seed(self.step, self.draws) % 1_000_000_000
        batch = next(iter(self.run.train_loader.epoch(virtual_epoch)))
        self.random_size = int(getattr(batch, "global_size", None) or self.first_size)
        return batch.x.to(self.run.device)


__all__ = ["GlobalBatch"]
