"""The seeds of a run: the global RNGs at the start (:func:`seed_everything`) and the stream of each seeded
piece (:func:`mix_seed`).

Every random draw of training and evaluation comes from a generator seeded by ``mix_seed(run seed, stream, ...)``,
so a draw depends only on what it is for, never on what ran before. The streams in use (the second argument):

====  =========================================================================================================
17    training: the reparameterisation noise of (step, draw) (:class:`vaelab.training.trainer.Trainer`)
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


__all__ = ["mix_seed", "seed_everything"]
