"""What text models and text data share: the special tokens and their ids, and the padded batch of sentences
(:class:`TokenBatch`) that a text model reads.

It sits below both :mod:`vaelab.data` (which reads corpora into these batches) and :mod:`vaelab.models` (whose text
models and user-module wrappers read them), so that the models import nothing from the data layer. The same names
are served by :mod:`vaelab.data.text` (and its pieces ``text_vocab`` and ``text_batches``), as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
SPECIALS: tuple[str, str, str, str] = (PAD, BOS, EOS, UNK)
PAD_ID, BOS_ID, EOS_ID, UNK_ID = 0, 1, 2, 3


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


__all__ = [
    "BOS",
    "BOS_ID",
    "EOS",
    "EOS_ID",
    "PAD",
    "PAD_ID",
    "SPECIALS",
    "UNK",
    "UNK_ID",
    "TokenBatch",
]
