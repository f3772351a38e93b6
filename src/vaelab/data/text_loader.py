"""Length-bucketed, deterministic, resumable, sharded batches of a text split (:class:`TextLoader`).

Every batch's content is a function of (seed, epoch, batch index) alone: the epoch's order, the length bucketing
and the word-dropout noise (drawn for the whole global batch, then sliced per process); the model's dropout masks
come from per-sentence seeds through :func:`vaelab.seeds.hashed_uniform`. See :mod:`vaelab.data.text`.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import torch
from torch import Tensor

from vaelab.data.loader import shard_bounds
from vaelab.data.text_batches import TextBatch, TextSplit
from vaelab.seeds import derive_seed, torch_generator

POOL_BATCHES = 50
"""``bucketing: pool``: sentences are sorted by length within random pools of this many global batches."""


def _keep_batch(size: int, batch_size: int, world_size: int, drop_last: bool) -> bool:
    """Whether a global batch of ``size`` is yielded: not when ``drop_last`` and it is incomplete, and never when
    some rank would get an empty shard (size < world_size), so every rank always has work."""
    return size >= world_size and not (drop_last and size < batch_size)


class TextLoader:
    """Length-bucketed mini-batches of a :class:`TextSplit`, deterministic in (seed, epoch), resumable and
    sharded for data parallelism.

    Args:
        split: the sentences.
        batch_size: GLOBAL batch size (summed over ranks).
        shuffle: a new random order every epoch (from (seed, epoch)); else the split sorted by length (stable),
            which is what evaluation uses (few pad tokens; every sentence exactly once).
        seed: the run seed.
        rank, world_size: this process's contiguous chunk of each global batch (:func:`shard_bounds`).
        drop_last: drop incomplete global batches (with ``bucketing="exact"``: the incomplete tail of every
            length). Global batches smaller than ``world_size`` are always dropped (an empty shard would make a
            rank's mean loss undefined); with one process nothing is dropped unless ``drop_last``.
        bucketing: ``pool`` (shuffle, sort by length within pools of ``pool_batches`` batches, cut, shuffle the
            batches), ``exact`` (shuffle, group sentences of equal length, cut each group, shuffle the batches;
            He et al. 2019) or ``none`` (shuffle and cut: every batch a uniform random sample of the split, at the
            price of padding; what batch statistics such as BN-VAE's need).
        word_noise: attach uniform noise for word dropout and per-sentence dropout seeds to every batch
            (training).

    The number of batches per epoch does not depend on the epoch: full pools give exactly ``pool_batches``
    batches, and the length histogram fixes the batches of ``exact`` bucketing.
    """

    def __init__(
        self,
        split: TextSplit,
        batch_size: int,
        *,
        shuffle: bool,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = False,
        bucketing: str = "pool",
        pool_batches: int = POOL_BATCHES,
        word_noise: bool = False,
    ) -> None:
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if world_size <= 0 or not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
        if bucketing not in ("pool", "exact", "none"):
            raise ValueError(f"unknown bucketing {bucketing!r}; valid choices: pool, exact, none")
        if pool_batches < 1:
            raise ValueError(f"pool_batches must be >= 1, got {pool_batches}")
        derive_seed(seed)  # validates
        self.split = split
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.drop_last = bool(drop_last)
        self.bucketing = bucketing
        self.pool_batches = int(pool_batches)
        self.word_noise = bool(word_noise)
        self._len = sum(1 for size in self._batch_sizes() if self._keep(size))

    def _keep(self, size: int) -> bool:
        return _keep_batch(size, self.batch_size, self.world_size, self.drop_last)

    def _batch_sizes(self) -> list[int]:
        """Sizes of the global batches before dropping; the same for every epoch."""
        n, b = len(self.split), self.batch_size
        if self.bucketing == "exact":
            counts = torch.bincount(self.split.lengths).tolist() if n else []
            groups = [c for c in counts if c]
        else:
            groups = [n] if n else []
        return [min(b, c - s) for c in groups for s in range(0, c, b)]

    def __len__(self) -> int:
        """Global batches per epoch (the same on every rank and in every epoch)."""
        return self._len

    def batch_sizes(self) -> list[int]:
        """This rank's batch sizes in an epoch, sorted (the multiset is the same in every epoch)."""
        kept = sorted(size for size in self._batch_sizes() if self._keep(size))
        return [hi - lo for lo, hi in (shard_bounds(g, self.rank, self.world_size) for g in kept)]

    def _cut(self, order: Tensor) -> list[Tensor]:
        """Cut an order (already grouped by length where it matters) into global batches."""
        b = self.batch_size
        if self.bucketing == "exact":
            lens = self.split.lengths[order]
            out: list[Tensor] = []
            # boundaries where the length changes (order is sorted by length here)
            change = torch.nonzero(lens[1:] != lens[:-1]).flatten() + 1
            bounds = [0, *change.tolist(), len(order)]
            for lo, hi in itertools.pairwise(bounds):
                out += [order[s : min(s + b, hi)] for s in range(lo, hi, b)]
            return out
        return [order[s : s + b] for s in range(0, len(order), b)]

    def plan(self, epoch: int) -> list[Tensor]:
        """The epoch's global batches as int64 index tensors into the split, after dropping (see class docs)."""
        n = len(self.split)
        lengths = self.split.lengths
        if n == 0:
            return []
        if not self.shuffle:
            order = torch.sort(lengths, stable=True).indices
            batches = self._cut(order)
        else:
            perm = torch.randperm(n, generator=torch_generator(self.seed, "perm", epoch))
            if self.bucketing == "exact":
                batches = self._cut(perm[torch.sort(lengths[perm], stable=True).indices])
            elif self.bucketing == "none":
                batches = self._cut(perm)
            else:
                pool = self.batch_size * self.pool_batches
                batches = []
                for s in range(0, n, pool):
                    chunk = perm[s : s + pool]
                    batches += self._cut(chunk[torch.sort(lengths[chunk], stable=True).indices])
            shuffle = torch.randperm(len(batches), generator=torch_generator(self.seed, "batches", epoch))
            batches = [batches[i] for i in shuffle.tolist()]
        return [bt for bt in batches if self._keep(len(bt))]

    def epoch(self, epoch: int, start_batch: int = 0) -> Iterator[TextBatch]:
        """Yield this rank's batches of ``epoch``, starting at global batch ``start_batch`` (for resuming)."""
        if epoch < 0 or start_batch < 0:
            raise ValueError(f"epoch and start_batch must be non-negative, got {epoch}, {start_batch}")
        plan = self.plan(epoch)
        for b in range(start_batch, len(plan)):
            global_idx = plan[b]
            width = int(self.split.lengths[global_idx].max()) + 2  # every shard padded like the global batch
            lo, hi = shard_bounds(len(global_idx), self.rank, self.world_size)
            idx = global_idx[lo:hi]
            x = self.split.batch(idx, pad_to=width)
            if self.word_noise:
                g = torch_generator(self.seed, "word_dropout", epoch, b)
                x.noise = torch.rand((len(global_idx), width - 1), generator=g)[lo:hi]
                base = derive_seed(self.seed, "dropout", epoch, b) >> 2  # room to add positions without overflow
                x.seeds = base + torch.arange(lo, hi, dtype=torch.long)
            y = None if self.split.y is None else self.split.y[idx]
            yield TextBatch(x, y, idx, len(global_idx))


__all__ = [
    "POOL_BATCHES",
    "TextLoader",
]
