"""Deterministic, resumable, DDP-aware mini-batches over an in-memory :class:`~vaelab.data.split.Split`.

Determinism. Everything a batch contains is a function of (seed, epoch, batch index):

- the order of an epoch is ``torch.randperm`` with a generator seeded from (seed, "perm", epoch) (identity
  order when ``shuffle=False``);
- dynamic binarisation draws uniform noise u for the *whole global batch* from a generator seeded from
  (seed, "binarize", epoch, batch index) and sets x = 1[u < intensity] (a Bernoulli(intensity) sample), then
  slices this rank's rows. So the noise does not depend on the number of processes, and a resumed run
  (``start_batch``) reproduces the remaining batches without drawing the skipped ones.

Sharding (DDP). ``batch_size`` is the GLOBAL batch size. Each global batch (a run of ``batch_size`` positions
of the epoch's order) is cut into ``world_size`` contiguous chunks (as ``torch.tensor_split`` cuts); rank r
gets chunk r. Concatenating the ranks' batches in rank order gives exactly the batch of a 1-process run,
element for element (indices, labels, binarised pixels). When the global batch is not a multiple of
``world_size`` the first ranks get one example more; a global batch smaller than ``world_size`` gives some
ranks an empty batch, so every rank runs the same number of steps. Use ``drop_last=True`` for training with
a batch size that is a multiple of ``world_size`` to keep per-rank batches equal, and sum (not average)
per-rank evaluation totals.

Evaluation. Under dynamic binarisation, validation and test splits are binarised once with a fixed seed
(``eval_binarize_seed``, cached on the split, so new loaders over it reuse it) and never resampled, the standard
practice that keeps evaluation numbers comparable across epochs (training batches are still resampled: Burda et
al. 2016).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from vaelab.data.config import BINARIZE_MODES
from vaelab.data.split import Split, derive_seed, is_binary, to_float, torch_generator

_EVAL_CHUNK = 4096


@dataclass
class Batch:
    """One mini-batch: ``x`` float32 (b, C, H, W) (0/1 unless binarize is "none"), ``y`` int64 (b,) or None,
    ``index`` int64 (b,) positions in the split."""

    x: Tensor
    y: Tensor | None
    index: Tensor

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        """This batch on ``device``."""
        return Batch(
            self.x.to(device, non_blocking=non_blocking),
            None if self.y is None else self.y.to(device, non_blocking=non_blocking),
            self.index.to(device, non_blocking=non_blocking),
        )


def shard_bounds(n: int, rank: int, world_size: int) -> tuple[int, int]:
    """[lo, hi) of rank's contiguous chunk of n items, as ``torch.tensor_split``: the first n % world_size
    ranks get one item more."""
    q, r = divmod(n, world_size)
    lo = rank * q + min(rank, r)
    return lo, lo + q + (1 if rank < r else 0)


def binarize_once(x: Tensor, seed: int) -> Tensor:
    """A fixed Bernoulli(intensity) sample of a whole split, uint8 0/255, deterministic in ``seed``.

    ``x`` is uint8 0..255 or float32 in [0, 1], (N, C, H, W). Drawn in chunks of 4,096 examples, chunk c from
    a generator seeded from (seed, "eval-binarize", c).
    """
    out = torch.empty(x.shape, dtype=torch.uint8)
    for c, start in enumerate(range(0, len(x), _EVAL_CHUNK)):
        p = to_float(x[start : start + _EVAL_CHUNK])
        u = torch.rand(p.shape, generator=torch_generator(seed, "eval-binarize", c))
        out[start : start + _EVAL_CHUNK] = (u < p).to(torch.uint8) * 255
    return out


class BatchLoader:
    """Mini-batches of one split, deterministic in (seed, epoch), resumable and sharded for DDP.

    Args:
        split: the examples.
        batch_size: GLOBAL batch size (summed over ranks).
        shuffle: new random order every epoch (from (seed, epoch)); else the split order.
        binarize: "dynamic", "static", "threshold" or "none" (see :data:`vaelab.data.config.BinarizeMode`).
        seed: the run seed.
        rank, world_size: this process's slice of every global batch (contiguous chunks, see module docs).
        drop_last: drop a last incomplete global batch.
        eval_binarize_seed: with ``binarize="dynamic"``, binarise the split once with this seed and never
            resample (for validation/test); None = resample every batch (training).
    """

    def __init__(
        self,
        split: Split,
        batch_size: int,
        *,
        shuffle: bool,
        binarize: str,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = False,
        eval_binarize_seed: int | None = None,
    ) -> None:
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if binarize not in BINARIZE_MODES:
            raise ValueError(f"unknown binarize {binarize!r}; valid choices: {', '.join(BINARIZE_MODES)}")
        if world_size <= 0 or not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
        derive_seed(seed)  # validates: non-negative integer
        self.split = split
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.binarize = binarize
        self.seed = int(seed)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.drop_last = bool(drop_last)
        self.eval_binarize_seed = eval_binarize_seed
        if binarize == "static" and not is_binary(split.x):
            raise ValueError("binarize='static' needs a split whose values are already 0/1 (0/255 for uint8)")
        if binarize == "dynamic" and split.x.dtype == torch.float32 and len(split):
            lo, hi = float(split.x.min()), float(split.x.max())
            if lo < 0.0 or hi > 1.0:
                raise ValueError(f"binarize='dynamic' needs intensities in [0, 1], got values in [{lo:g}, {hi:g}]")

    def __len__(self) -> int:
        """Global batches per epoch (the same on every rank)."""
        n = len(self.split)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def batch_sizes(self) -> list[int]:
        """This rank's batch sizes in an epoch, in order (the same in every epoch)."""
        n, b = len(self.split), self.batch_size
        sizes = [min(b, n - s) for s in range(0, n, b)][: len(self)]
        return [hi - lo for lo, hi in (shard_bounds(g, self.rank, self.world_size) for g in sizes)]

    @property
    def fixed_binarization(self) -> bool:
        """Whether batches come from a split binarised once (dynamic + ``eval_binarize_seed``)."""
        return self.binarize == "dynamic" and self.eval_binarize_seed is not None

    def _source(self) -> Tensor:
        if self.fixed_binarization:
            seed = self.eval_binarize_seed
            assert seed is not None
            cache = self.split._binarized  # shared by every loader over this split
            if seed not in cache:
                cache[seed] = binarize_once(self.split.x, seed)
            return cache[seed]
        return self.split.x

    def order(self, epoch: int) -> Tensor:
        """The order of the split's examples in ``epoch`` (int64 (N,)), identical on every rank."""
        n = len(self.split)
        if not self.shuffle:
            return torch.arange(n)
        return torch.randperm(n, generator=torch_generator(self.seed, "perm", epoch))

    def epoch(self, epoch: int, start_batch: int = 0) -> Iterator[Batch]:
        """Yield this rank's batches of ``epoch``, starting at global batch ``start_batch`` (for resuming)."""
        if epoch < 0 or start_batch < 0:
            raise ValueError(f"epoch and start_batch must be non-negative, got {epoch}, {start_batch}")
        n_batches = len(self)
        order = self.order(epoch)
        source = self._source()
        mode = "static" if self.fixed_binarization else self.binarize
        for b in range(start_batch, n_batches):
            global_idx = order[b * self.batch_size : (b + 1) * self.batch_size]
            lo, hi = shard_bounds(len(global_idx), self.rank, self.world_size)
            idx = global_idx[lo:hi]
            x = to_float(source[idx])
            if mode == "dynamic":
                g = torch_generator(self.seed, "binarize", epoch, b)
                u = torch.rand((len(global_idx), *source.shape[1:]), generator=g)[lo:hi]
                x = (u < x).to(torch.float32)
            elif mode == "threshold":
                x = (x > 0.5).to(torch.float32)
            y = None if self.split.y is None else self.split.y[idx]
            yield Batch(x, y, idx)
