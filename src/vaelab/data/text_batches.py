"""The sentences of a split as word ids (:class:`TextSplit`) and the padded batches text models consume
(:class:`TokenBatch`; :class:`TextBatch` adds the labels and positions a loader yields).

A batch holds ``<s> w_1 .. w_n </s>`` padded with ``<pad>``; the decoder predicts w_1 .. w_n and ``</s>``: n + 1
*predicted tokens* per sentence, the count per-token perplexity divides by (methods.md section 5).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from vaelab.data.text_vocab import BOS_ID, EOS_ID, PAD_ID


@dataclass
class TokenBatch:
    """A padded batch of sentences, the ``x`` of text models.

    - ``tokens``: int64 (B, L): ``<s> w_1 .. w_n </s>`` then ``<pad>`` up to L (the longest sentence + 2).
    - ``lengths``: int64 (B,): n + 2 per sentence (both markers included).
    - ``noise``: optional float32 (B, L - 1) uniform draws for word dropout on the decoder inputs
      ``tokens[:, :-1]`` (Bowman et al. 2016); the training loader supplies it so that the dropout is
      deterministic in (seed, epoch, batch) and independent of the number of processes.
    - ``seeds``: optional int64 (B,) per-sentence seeds of the model's dropout masks (see
      :func:`~vaelab.seeds.hashed_uniform`), from (seed, epoch, batch, position in the global batch), for the same
      reason.

    ``num_tokens`` is the number of *predicted* tokens, sum(n + 1): the end token counts, the start token does
    not (methods.md section 5), the denominator of per-token perplexity.
    """

    tokens: Tensor
    lengths: Tensor
    noise: Tensor | None = None
    seeds: Tensor | None = None
    num_tokens: int = field(init=False)

    def __post_init__(self) -> None:
        if self.tokens.dim() != 2 or self.lengths.shape != (self.tokens.shape[0],):
            raise ValueError(
                f"tokens must be (B, L) and lengths (B,), got {tuple(self.tokens.shape)}, {tuple(self.lengths.shape)}"
            )
        self.num_tokens = int((self.lengths - 1).sum()) if len(self.lengths) else 0

    @property
    def batch_size(self) -> int:
        return int(self.tokens.shape[0])

    def __len__(self) -> int:
        return self.batch_size

    @property
    def max_len(self) -> int:
        """L, the padded length (with both markers)."""
        return int(self.tokens.shape[1])

    @property
    def device(self) -> torch.device:
        return self.tokens.device

    def target_mask(self) -> Tensor:
        """bool (B, L - 1): which positions of ``tokens[:, 1:]`` are predicted tokens (words and ``</s>``)."""
        pos = torch.arange(1, self.max_len, device=self.tokens.device)
        return pos.unsqueeze(0) < self.lengths.unsqueeze(1)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> TokenBatch:
        """This batch on ``device``."""
        out = TokenBatch(
            self.tokens.to(device, non_blocking=non_blocking),
            self.lengths.to(device, non_blocking=non_blocking),
            None if self.noise is None else self.noise.to(device, non_blocking=non_blocking),
            None if self.seeds is None else self.seeds.to(device, non_blocking=non_blocking),
        )
        return out

    def select(self, rows: Tensor | slice) -> TokenBatch:
        """The sentences at ``rows`` (padding kept at this batch's length)."""
        return TokenBatch(
            self.tokens[rows],
            self.lengths[rows],
            None if self.noise is None else self.noise[rows],
            None if self.seeds is None else self.seeds[rows],
        )

    def sentences(self) -> list[list[int]]:
        """Word ids of each sentence (markers and padding removed)."""
        return [row[1 : int(n) - 1] for row, n in zip(self.tokens.tolist(), self.lengths.tolist(), strict=True)]

    @classmethod
    def from_sentences(
        cls, sentences: Sequence[Sequence[int]], *, pad_to: int | None = None, device: torch.device | str = "cpu"
    ) -> TokenBatch:
        """Pack word-id lists (without markers) into a batch: ``<s> ids </s> <pad>..`` of length
        max(len) + 2, or ``pad_to`` if larger."""
        if not sentences:
            raise ValueError("need at least one sentence")
        lengths = torch.tensor([len(s) + 2 for s in sentences], dtype=torch.long)
        length = max(int(lengths.max()), pad_to or 0)
        tokens = torch.full((len(sentences), length), PAD_ID, dtype=torch.long)
        for i, s in enumerate(sentences):
            tokens[i, 0] = BOS_ID
            tokens[i, 1 : len(s) + 1] = torch.as_tensor(list(s), dtype=torch.long)
            tokens[i, len(s) + 1] = EOS_ID
        return cls(tokens.to(device), lengths.to(device))


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
