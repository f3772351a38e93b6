"""Every seeding method of vaelab, by name: the global RNGs at the start (:func:`seed_everything`), the stream of
each seeded piece of training and evaluation (:func:`mix_seed`), the generators of the data sets (:func:`derive_seed`,
:func:`torch_generator`), and the counter-based draws of the text models' dropout (:func:`hashed_uniform`).

The three mixers stay apart on purpose: each fixes the numbers of existing runs (data order and splits from
:func:`derive_seed`, noise and evaluation from :func:`mix_seed`, dropout masks from :func:`hashed_uniform`), so
merging them would change every saved run's replay.

Every random draw of training and evaluation comes from a generator seeded by ``mix_seed(run seed, stream, ...)``,
so a draw depends only on what it is for, never on what ran before. The streams in use (the second argument):

====  =========================================================================================================
17    training: the reparameterisation noise of (step, draw) (:class:`vaelab.training.sharding.GlobalBatch`)
29    evaluation: batch b of an evaluation with seed offset o (:class:`vaelab.evaluation.Evaluator`)
31    evaluation: the MI pool's shuffle (offset o)
37    evaluation: the extra metrics' generator (offset o)
41    evaluation: the global RNG while the extra metrics run (offset o)
43    the encoder statistics between training steps (aggressive training's MI check), global RNG (step)
47    the same, the MI pool's shuffle (step)
59    the training batches over which BN-VAE's evaluation statistics are recomputed
101+  :mod:`vaelab.lag` (its own experiment)
====  =========================================================================================================
"""

from __future__ import annotations

import random
import zlib

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's global RNGs (the model's initialisation draws from torch's)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def mix_seed(*parts: int) -> int:
    """A 63-bit seed from integers (SplitMix64 finaliser), so that (seed, step) pairs give unrelated streams."""
    h = 0x9E3779B97F4A7C15
    for p in parts:
        h = (h ^ (int(p) & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        h = (h ^ (h >> 31)) * 0x94D049BB133111EB & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 29
    return h & 0x7FFFFFFFFFFFFFFF


def derive_seed(*parts: int | str) -> int:
    """A 63-bit seed mixed from integers and strings with numpy's SeedSequence (stable across versions).

    Used for every generator in vaelab.data, e.g. ``derive_seed(seed, "perm", epoch)``, so that streams for
    different purposes never coincide.
    """
    ints: list[int] = []
    for p in parts:
        if isinstance(p, str):
            ints.append(zlib.crc32(p.encode()))
        else:
            v = int(p)
            if v < 0:
                raise ValueError(f"seeds must be non-negative integers, got {v}")
            ints.append(v)
    state = np.random.SeedSequence(ints).generate_state(1, dtype=np.uint64)[0]
    return int(state >> np.uint64(1))


def torch_generator(*parts: int | str) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with :func:`derive_seed` of ``parts``."""
    g = torch.Generator()
    g.manual_seed(derive_seed(*parts))
    return g


def _as_signed(c: int) -> int:
    return c - (1 << 64) if c >= 1 << 63 else c


GOLDEN = _as_signed(0x9E3779B97F4A7C15)
"""The golden-ratio increment of SplitMix64, as a signed int64 (odd: multiplying by it keeps pairs distinct)."""
_MIX1, _MIX2 = _as_signed(0xBF58476D1CE4E5B9), _as_signed(0x94D049BB133111EB)


def _mix64(x: torch.Tensor) -> torch.Tensor:
    """SplitMix64's finaliser on int64 tensors (wrapping multiplication, logical shifts)."""
    x = x ^ ((x >> 30) & ((1 << 34) - 1))
    x = x * _MIX1
    x = x ^ ((x >> 27) & ((1 << 37) - 1))
    x = x * _MIX2
    return x ^ ((x >> 31) & ((1 << 33) - 1))


def hashed_uniform(seeds: torch.Tensor, salt: int, n: int) -> torch.Tensor:
    """Uniform [0, 1) float32 draws (R, n), row r a function of (seeds[r], salt, column) only: a counter-based
    generator (SplitMix64 finaliser of the seed, salted, plus the golden-ratio increment per column).

    Dropout masks drawn this way are the same whichever process or batch shard a sentence lands in, and for a
    resumed run, unlike masks from a generator's running state.
    """
    base = _mix64(seeds.long() * GOLDEN + salt)
    x = _mix64(base.unsqueeze(1) + torch.arange(1, n + 1, device=seeds.device, dtype=torch.long) * GOLDEN)
    return ((x >> 40) & 0xFFFFFF).to(torch.float32) * (1.0 / (1 << 24))


__all__ = ["GOLDEN", "derive_seed", "hashed_uniform", "mix_seed", "seed_everything", "torch_generator"]
