"""An image split held in memory (:class:`Split`) and the seeded generators of :mod:`vaelab.data`
(:func:`fixed_permutation`; :func:`~vaelab.seeds.derive_seed` and :func:`~vaelab.seeds.torch_generator` live in
:mod:`vaelab.seeds` and are served here too): the layer below the batch loader (:mod:`vaelab.data.loader`) and the
data sets (:mod:`vaelab.data.base`), which both read them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from vaelab.seeds import derive_seed
from vaelab.seeds import torch_generator as torch_generator  # served here too (vaelab.data imports it from here)


def fixed_permutation(n: int, seed: int, purpose: str) -> np.ndarray:
    """A permutation of range(n) that depends only on (seed, purpose): numpy's legacy RandomState stream."""
    rs = np.random.RandomState(derive_seed(seed, purpose) % (2**32))
    return rs.permutation(n)


@dataclass
class Split:
    """One split of an image data set, held in memory.

    ``x``: (N, C, H, W), either uint8 intensities 0..255 (0/1 data are stored as 0/255) or float32 in [0, 1]
    (real-valued for ``synthetic_gaussian``). ``y``: int64 labels (N,) or None. ``source_index``: int64 (N,)
    positions of the examples in the source file/array they were taken from (e.g. the 60,000 MNIST training
    images for both the train and valid splits), or None when the split is the source itself. Treat all as
    read-only: the loaders share them with a per-process cache.
    """

    x: Tensor
    y: Tensor | None = None
    source_index: Tensor | None = None
    _binarized: dict[int, Tensor] = field(default_factory=dict, init=False, repr=False, compare=False)
    """Cache of fixed binarisations of x by seed (filled by the BatchLoader for evaluation)."""

    def __post_init__(self) -> None:
        if self.x.dim() != 4:
            raise ValueError(f"Split.x must be (N, C, H, W), got shape {tuple(self.x.shape)}")
        if self.x.dtype not in (torch.uint8, torch.float32):
            raise ValueError(f"Split.x must be uint8 or float32, got {self.x.dtype}")
        if self.y is not None:
            if self.y.dtype != torch.int64 or self.y.dim() != 1:
                raise ValueError(f"Split.y must be int64 of shape (N,), got {self.y.dtype} {tuple(self.y.shape)}")
            if len(self.y) != len(self.x):
                raise ValueError(f"Split.y has {len(self.y)} labels for {len(self.x)} images")
        if self.source_index is not None and self.source_index.shape != (len(self.x),):
            raise ValueError(f"Split.source_index must have shape ({len(self.x)},)")

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def subset(self, index: Tensor | np.ndarray | Sequence[int]) -> Split:
        """The examples at ``index``, as a new Split holding copies (``source_index`` follows them)."""
        idx = torch.as_tensor(np.asarray(index), dtype=torch.long)
        src = idx if self.source_index is None else self.source_index[idx]
        return Split(self.x[idx], None if self.y is None else self.y[idx], src)

    def is_binary(self) -> bool:
        """True when every value is 0 or 1 (0 or 255 for uint8)."""
        return is_binary(self.x)


def to_float(x: Tensor) -> Tensor:
    """uint8 0..255 -> float32 in [0, 1]; float32 unchanged."""
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()


def is_binary(x: Tensor) -> bool:
    """Whether a uint8 tensor holds only 0/255 or a float tensor only 0.0/1.0."""
    if x.numel() == 0:
        return True
    top = 255 if x.dtype == torch.uint8 else 1
    return bool(((x == 0) | (x == top)).all())
