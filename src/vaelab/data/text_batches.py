"""The sentences of a split as word ids (:class:`TextSplit`) and the padded batches text models consume
(:class:`TokenBatch`, declared in :mod:`vaelab.tokens` below both the data and the models, and served here;
:class:`TextBatch` adds the labels and positions a loader yields).

A batch holds ``<s> w_1 .. w_n </s>`` padded with ``<pad>``; the decoder predicts w_1 .. w_n and ``</s>``: n + 1
*predicted tokens* per sentence, the count per-token perplexity divides by (methods.md section 5).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from vaelab.tokens import BOS_ID, EOS_ID, PAD_ID, TokenBatch


@dataclass
class TextBatch:
    """One mini-batch from a :class:`TextLoader`: ``x`` the :class:`TokenBatch`, ``y`` int64 labels (b,) or
    None, ``index`` int64 (b,) positions in the split, ``global_size`` the size of the global batch this rank's
    batch is a shard of (batches vary in size under length bucketing)."""

    x: TokenBatch
    y: Tensor | None
    index: Tensor
    global_size: int

    def __len__(self) -> int:
        return self.x.batch_size

    def to(self, device: torch.device | str, non_blocking: bool = False) -> TextBatch:
        return TextBatch(
            self.x.to(device, non_blocking),
            None if self.y is None else self.y.to(device, non_blocking=non_blocking),
            self.index.to(device, non_blocking=non_blocking),
            self.global_size,
        )


@dataclass
class TextSplit:
    """The sentences of one split as word ids: sentence i is ``ids[offsets[i]:offsets[i + 1]]`` (no markers).

    ``y``: int64 (N,) labels or None; ``line``: int64 (N,) 1-based line numbers in the source file (provenance).
    Treat as read-only.
    """

    ids: Tensor
    offsets: Tensor
    y: Tensor | None = None
    line: Tensor | None = None

    def __post_init__(self) -> None:
        if self.offsets.dim() != 1 or len(self.offsets) < 1 or int(self.offsets[-1]) != len(self.ids):
            raise ValueError("TextSplit.offsets must be (N + 1,) and end at len(ids)")
        if self.y is not None and self.y.shape != (len(self),):
            raise ValueError(f"TextSplit.y must have shape ({len(self)},)")
        self._lengths = self.offsets[1:] - self.offsets[:-1]

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> Tensor:
        """Words per sentence, int64 (N,) (computed once)."""
        return self._lengths

    @property
    def num_words(self) -> int:
        return len(self.ids)

    @property
    def num_tokens(self) -> int:
        """Predicted tokens: words + one ``</s>`` per sentence."""
        return len(self.ids) + len(self)

    def sentence(self, i: int) -> list[int]:
        return self.ids[int(self.offsets[i]) : int(self.offsets[i + 1])].tolist()

    @classmethod
    def from_sentences(
        cls, sentences: Sequence[Sequence[int]], y: Sequence[int] | None = None, line: Sequence[int] | None = None
    ) -> TextSplit:
        lengths = torch.tensor([len(s) for s in sentences], dtype=torch.long)
        offsets = torch.zeros(len(sentences) + 1, dtype=torch.long)
        torch.cumsum(lengths, 0, out=offsets[1:])
        flat = [w for s in sentences for w in s]
        return cls(
            torch.tensor(flat, dtype=torch.long),
            offsets,
            None if y is None else torch.tensor(list(y), dtype=torch.long),
            None if line is None else torch.tensor(list(line), dtype=torch.long),
        )

    def subset(self, index: Tensor | np.ndarray | Sequence[int]) -> TextSplit:
        """The sentences at ``index`` (in that order), as a new split."""
        idx = torch.as_tensor(np.asarray(index), dtype=torch.long)
        return TextSplit.from_sentences(
            [self.sentence(int(i)) for i in idx],
            None if self.y is None else self.y[idx].tolist(),
            None if self.line is None else self.line[idx].tolist(),
        )

    def batch(self, index: Tensor, pad_to: int | None = None) -> TokenBatch:
        """A :class:`TokenBatch` of the sentences at ``index``, padded to max length + 2 (or ``pad_to``)."""
        lens = self.lengths[index]
        b = len(index)
        width = (int(lens.max()) if b else 0) + 2
        length = max(width, pad_to or 0)
        tokens = torch.full((b, length), PAD_ID, dtype=torch.long)
        if b:
            tokens[:, 0] = BOS_ID
            pos = torch.arange(length - 2)
            valid = pos.unsqueeze(0) < lens.unsqueeze(1)
            src = (self.offsets[index].unsqueeze(1) + pos.unsqueeze(0)).clamp(max=max(len(self.ids) - 1, 0))
            words = self.ids[src] if len(self.ids) else torch.zeros_like(src)
            tokens[:, 1 : length - 1] = torch.where(valid, words, PAD_ID)
            tokens[torch.arange(b), lens + 1] = EOS_ID
        return TokenBatch(tokens, lens + 2)


__all__ = [
    "TextBatch",
    "TextSplit",
    "TokenBatch",
]
