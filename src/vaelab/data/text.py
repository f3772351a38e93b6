"""Text corpora: one sentence per line, a vocabulary, and length-bucketed, deterministic, resumable batches.

    from vaelab.data import DataConfig, load_dataset
    ds = load_dataset(DataConfig(name="ptb"))                 # Mikolov et al. (2010) PTB: 42,068 / 3,370 / 3,761
    for batch in ds.loader("train", 32, seed=0).epoch(0):    # batch.x: TokenBatch (B, L) with <s> ... </s> <pad>
        ...

Registered data sets (``data.name``):

- ``text``: any corpus; ``data.path`` is the folder (default: the data folder), ``data.files`` maps the roles
  ``train``, ``valid``, ``test`` to file names (default train.txt, valid.txt, test.txt). Without a ``valid``
  file, ``data.valid_size`` training sentences are held out (the image convention of :mod:`vaelab.data.base`).
- ``ptb``: the Penn Treebank language-modelling corpus of Mikolov et al. (2010), as used for text VAEs by Bowman
  et al. (2016), Kim et al. (2018) and He et al. (2019): ``<data>/ptb/ptb.{train,valid,test}.txt``. When a file
  has the standard sha256 (``SOURCE.md`` in the data folder) its sentence count is checked (42,068 / 3,370 /
  3,761); any other copy is loaded as it is and recorded as non-standard.

File formats (``data.format``): ``plain`` = whitespace-tokenised words; ``label_tab`` = ``LABEL<TAB>words`` with
an integer label >= 0 (Yelp/Yahoo style), kept as the batch's ``y`` (for probes). Empty lines and bad labels
raise a :class:`~vaelab.data.base.DataError` naming ``file:line``, or are skipped and counted with
``data.skip_malformed``.

Vocabulary. Four special tokens come first: ``<pad>`` = 0, ``<s>`` = 1, ``</s>`` = 2, ``<unk>`` = 3 (PTB's own
``<unk>`` word is the same token). The rest is either the ``vocab_size - 4`` most frequent words of the training
split (ties broken alphabetically, so the vocabulary is a function of the corpus alone), or every training word
type (``vocab_size: null``), or the words of ``data.vocab_file`` in file order. It is built from the whole
training split *before* ``train_size`` subsets it, so runs on different training-set sizes share one vocabulary
and their perplexities are comparable.

Sentences and tokens. Sentence i with n words is stored as n ids; a batch holds ``<s> w_1 .. w_n </s>`` padded
with ``<pad>``. The decoder predicts w_1 .. w_n and ``</s>``: n + 1 *predicted tokens* per sentence, the count
per-token perplexity divides by (the end token counts, the start token does not; methods.md section 5).

Batches. ``batch_size`` is the GLOBAL batch size. Every batch's content is a function of (seed, epoch, batch
index) alone (:class:`TextLoader`): the epoch's order, the length bucketing and the word-dropout noise, which is
drawn for the whole global batch from a generator seeded from (seed, "word_dropout", epoch, batch) and then
sliced, exactly as dynamic binarisation is for images (:mod:`vaelab.data.loader`); the model's dropout masks come
from per-sentence seeds (seed, "dropout", epoch, batch, position in the global batch) through a counter-based
hash (:func:`vaelab.seeds.hashed_uniform`). So a resumed epoch (``start_batch``) replays the uninterrupted one, and
the rank shards of a global batch, concatenated in rank order, are the 1-process batch element for element (every
shard is padded to the global batch's longest sentence) and get the same dropout masks.
"""

from __future__ import annotations

import itertools
import unicodedata
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from vaelab.data.base import (
    DATASETS,
    SPLITS,
    DataError,
    class_count,
    derive_seed,
    fixed_permutation,
    resolve_data_root,
    root_note,
    sha256_file,
    torch_generator,
)
from vaelab.data.checks import DATA_RULES, check_data
from vaelab.data.config import DataConfig
from vaelab.data.dataset import Dataset, Modality
from vaelab.data.loader import shard_bounds
from vaelab.errors import ConfigError
from vaelab.rules import check
from vaelab.seeds import hashed_uniform

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
SPECIALS: tuple[str, str, str, str] = (PAD, BOS, EOS, UNK)
PAD_ID, BOS_ID, EOS_ID, UNK_ID = 0, 1, 2, 3
RESERVED = frozenset((PAD, BOS, EOS))
"""Tokens a corpus may not hold as words (``<unk>`` may: it is read as vaelab's unknown word, as in PTB)."""

POOL_BATCHES = 50
"""``bucketing: pool``: sentences are sorted by length within random pools of this many global batches."""

PTB_FILES = {"train": "ptb.train.txt", "valid": "ptb.valid.txt", "test": "ptb.test.txt"}
PTB_STANDARD: dict[str, tuple[str, int]] = {
    "ptb.train.txt": ("fcea919f6cf83f35d4d00c6cbf08040d13d4155226340912e2fef9c9c4102cbf", 42068),
    "ptb.valid.txt": ("c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2", 3370),
    "ptb.test.txt": ("dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0", 3761),
}
"""sha256 and sentence count of the standard Mikolov et al. (2010) files (see SOURCE.md in the data folder)."""


# --------------------------------------------------------------------------------------------------------
# vocabulary


class Vocabulary:
    """Word <-> id map. Ids 0..3 are ``<pad>``, ``<s>``, ``</s>``, ``<unk>``; words follow in the given order."""

    def __init__(self, words: Sequence[str]) -> None:
        itos = list(SPECIALS)
        seen = set(itos)
        for w in words:
            if w not in seen:
                itos.append(w)
                seen.add(w)
        self.itos: list[str] = itos
        self.stoi: dict[str, int] = {w: i for i, w in enumerate(itos)}

    pad_id, bos_id, eos_id, unk_id = PAD_ID, BOS_ID, EOS_ID, UNK_ID

    def __len__(self) -> int:
        return len(self.itos)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.itos == other.itos

    __hash__ = None  # type: ignore[assignment]

    def __contains__(self, word: str) -> bool:
        return word in self.stoi

    @classmethod
    def from_counts(cls, counts: Counter[str], max_size: int | None = None) -> Vocabulary:
        """The most frequent words, ties broken alphabetically, so that the total size (with the 4 specials) is
        at most ``max_size`` (None: every word)."""
        words = sorted((w for w in counts if w not in SPECIALS), key=lambda w: (-counts[w], w))
        if max_size is not None:
            check("data.vocab_size", max_size, DATA_RULES["data.vocab_size"])  # more than the 4 special tokens
            words = words[: max_size - len(SPECIALS)]
        return cls(words)

    @classmethod
    def from_file(cls, path: Path | str, max_size: int | None = None, unk_token: str | None = None) -> Vocabulary:
        """One token per line, in order (special tokens in the file are skipped: they always take ids 0..3, and so
        is ``unk_token``, the corpus's own name of <unk>). Empty lines and repeated tokens raise a DataError naming
        file and line."""
        path = Path(path)
        if not path.is_file():
            raise DataError(f"file {path}: vocabulary file does not exist (data.vocab_file)")
        words: list[str] = []
        seen: dict[str, int] = {}
        for lineno, line in enumerate(_read_lines(path), start=1):
            w = line.strip()
            if not w or len(w.split()) != 1:
                raise DataError(f"{path}:{lineno}: expected one token per line, got {line!r}")
            if w in seen:
                raise DataError(f"{path}:{lineno}: token {w!r} repeats line {seen[w]}")
            seen[w] = lineno
            if w not in SPECIALS and w != unk_token:
                words.append(w)
        if not words:
            raise DataError(
                f"{path}: the vocabulary file holds no words besides the special tokens, so every word would be "
                "<unk>; give one word per line (data.vocab_file)"
            )
        if max_size is not None:
            words = words[: max(0, max_size - len(SPECIALS))]
        return cls(words)

    def encode(self, words: Sequence[str]) -> list[int]:
        """Word ids, unknown words -> ``<unk>`` (no <s> / </s> added)."""
        get = self.stoi.get
        return [get(w, UNK_ID) for w in words]

    def decode(self, ids: Sequence[int] | Tensor, *, strip: bool = True) -> list[str]:
        """Words of ids; with ``strip``, stop at ``</s>`` and leave out ``<s>`` and ``<pad>``."""
        out: list[str] = []
        for i in ids.tolist() if isinstance(ids, Tensor) else ids:
            i = int(i)
            if strip and i == EOS_ID:
                break
            if strip and i in (PAD_ID, BOS_ID):
                continue
            out.append(self.itos[i] if 0 <= i < len(self.itos) else UNK)
        return out

    def write(self, path: Path | str) -> None:
        """One token per line (specials included), readable by :meth:`from_file`."""
        Path(path).write_text("\n".join(self.itos) + "\n", encoding="utf-8")


# --------------------------------------------------------------------------------------------------------
# token batches (what the text models consume)


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


# --------------------------------------------------------------------------------------------------------
# splits


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


# --------------------------------------------------------------------------------------------------------
# the loader


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


# --------------------------------------------------------------------------------------------------------
# the data set


@dataclass
class TextDataset(Dataset):
    """A text corpus with train / valid / test splits and one vocabulary (``modality`` "text" of the contract
    :class:`~vaelab.data.dataset.Dataset`).

    ``num_classes``: None without labels. ``info``: JSON-serialisable record for the run folder (files, sha256,
    line / sentence / word / token counts, vocabulary size and source, <unk> rates, dropped or truncated
    sentences, skipped malformed lines).
    """

    name: str
    train: TextSplit
    valid: TextSplit
    test: TextSplit
    vocab: Vocabulary
    num_classes: int | None = None
    lowercase: bool = False
    bucketing: str = "pool"
    info: dict[str, Any] = field(default_factory=dict)
    modality: ClassVar[Modality] = "text"

    def split(self, name: str) -> TextSplit:
        """The split called ``name``: "train", "valid" or "test"."""
        if name not in SPLITS:
            raise KeyError(f"unknown split {name!r} of data set {self.name!r}; valid choices: {', '.join(SPLITS)}")
        return getattr(self, name)

    def loader(
        self,
        split: str,
        batch_size: int,
        *,
        seed: int,
        shuffle: bool | None = None,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = False,
        eval_binarize_seed: int | None = None,
    ) -> TextLoader:
        """A :class:`TextLoader` over a split. ``shuffle`` defaults to True for train (with word-dropout
        noise) and False otherwise (sorted by length). ``eval_binarize_seed`` is accepted and ignored."""
        del eval_binarize_seed
        is_train = split == "train"
        shuffle = is_train if shuffle is None else shuffle
        return TextLoader(
            self.split(split),
            batch_size,
            shuffle=shuffle,
            seed=seed,
            rank=rank,
            world_size=world_size,
            drop_last=drop_last,
            bucketing=self.bucketing,
            word_noise=is_train and shuffle,
        )

    def model_info(self) -> dict[str, Any]:
        """What a text model builder needs: vocabulary size and special ids, the vocabulary itself (``vocab``,
        saved with the model weights so a run folder decodes without the corpus), the longest training
        sentence and the number of classes."""
        return {**self.info["model_info"], "vocab": list(self.vocab.itos)}

    def tokenize(self, sentence: str) -> list[str]:
        """Split a raw sentence into words as the corpus files were (whitespace; lower-cased if configured)."""
        words = sentence.split()
        return [w.lower() for w in words] if self.lowercase else words

    def encode(self, sentence: str) -> list[int]:
        """Word ids of a raw sentence (unknown words -> <unk>)."""
        return self.vocab.encode(self.tokenize(sentence))

    def decode(self, ids: Sequence[int] | Tensor) -> str:
        """The words of ``ids`` joined by spaces (stops at </s>)."""
        return " ".join(self.vocab.decode(ids))


# --------------------------------------------------------------------------------------------------------
# reading files


def _read_lines(path: Path) -> list[str]:
    """Lines split on "\\n" only (never on other Unicode line breaks, so line numbers match ``wc -l``/editors),
    a trailing "\\r" removed; a final newline does not make an extra empty line. A UTF-8 byte-order mark at the
    start is dropped (it never becomes part of a word)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        line = path.read_bytes()[: e.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: not UTF-8 text ({e.reason})") from None
    if "\x00" in text:  # UTF-16 without a byte-order mark, or a binary file: no text has NUL characters
        line = text[: text.index("\x00")].count("\n") + 1
        raise DataError(f"{path}:{line}: a NUL character: not a text file (UTF-16? save it as UTF-8)")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [ln[:-1] if ln.endswith("\r") else ln for ln in lines]


@dataclass
class _Parsed:
    sentences: list[list[str]]
    labels: list[int] | None
    lines: list[int]
    num_lines: int
    skipped: list[tuple[int, str]]


_PARSE_CACHE: dict[tuple[Any, ...], _Parsed] = {}


LABEL_TAB_SHARE = 0.5
"""``data.format: plain`` refuses a file where more than this share of the lines look like ``LABEL<TAB>words``."""


def _looks_labelled(path: Path, raw: list[str], sample: int = 1000) -> None:
    """Refuse a ``plain`` file whose lines mostly look like ``LABEL<TAB>sentence`` (an integer, then a TAB): read
    as plain text its labels would become words. One line naming the file, an example line and the fix."""
    lines = [ln for ln in raw[:sample] if ln.strip()]
    labelled = [ln for ln in lines if "\t" in ln and ln.partition("\t")[0].strip().lstrip("-").isdigit()]
    if lines and len(labelled) > LABEL_TAB_SHARE * len(lines):
        raise DataError(
            f"{path}: {len(labelled)} of the first {len(lines)} lines look like LABEL<TAB>sentence (e.g. "
            f"{labelled[0][:40]!r}), but data.format is plain, which would read the labels as words; set "
            "data.format=label_tab, or data.labels_as_words=true if the numbers are words of the text"
        )


def parse_corpus(
    path: Path,
    fmt: str,
    *,
    lowercase: bool = False,
    skip_malformed: bool = False,
    unk_token: str | None = None,
    labels_as_words: bool = False,
) -> _Parsed:
    """Read a sentence-per-line file into word lists (and labels for ``label_tab``), cached per process.

    Malformed lines (empty, no TAB or a label that is not an integer >= 0 for ``label_tab``, no words after the
    label) raise a DataError "FILE:LINE: problem", or are skipped and returned in ``skipped`` as (line, problem).
    A ``plain`` file that looks like ``LABEL<TAB>sentence`` is refused unless ``labels_as_words``. ``unk_token``:
    the corpus's own unknown token, read as ``<unk>``. A line holding one of vaelab's own tokens (``<pad>``, ``<s>``,
    ``</s>``) raises a DataError.
    """
    if fmt not in ("plain", "label_tab"):
        raise ConfigError(f"unknown data.format {fmt!r}; valid choices: plain, label_tab")
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, fmt, lowercase, skip_malformed, unk_token, labels_as_words)
    if key in _PARSE_CACHE:
        return _PARSE_CACHE[key]
    sentences: list[list[str]] = []
    labels: list[int] | None = [] if fmt == "label_tab" else None
    kept_lines: list[int] = []
    skipped: list[tuple[int, str]] = []
    raw = _read_lines(path)
    if fmt == "plain" and not labels_as_words:
        _looks_labelled(path, raw)
    for lineno, line in enumerate(raw, start=1):
        problem = None
        label = 0
        text = line
        if fmt == "label_tab":
            head, tab, text = line.partition("\t")
            if not tab:
                problem = "no TAB between label and sentence (expected LABEL<TAB>words)"
            else:
                try:
                    label = int(head.strip())
                    if label < 0:
                        raise ValueError
                except ValueError:
                    problem = f"bad label {head!r} (expected an integer >= 0)"
        if problem is None:
            words = [w for w in text.split() if w.isascii() or not _invisible(w)]
            if not words:
                problem = "empty line" if not line.strip() else "empty sentence"
            elif reserved := RESERVED.intersection(words):
                raise DataError(
                    f"{path}:{lineno}: the word {sorted(reserved)[0]!r} is one of vaelab's own tokens (<pad>, <s>, "
                    "</s>: padding and sentence boundaries, added by vaelab), so it would not be read as a word; "
                    "remove it or rename it in the file"
                )
        if problem is not None:
            if not skip_malformed:
                raise DataError(f"{path}:{lineno}: {problem}; set data.skip_malformed=true to skip such lines")
            skipped.append((lineno, problem))
            continue
        if unk_token is not None:
            words = [UNK if w == unk_token else w for w in words]
        if lowercase:
            words = [w if w == UNK else w.lower() for w in words]
        sentences.append(words)
        kept_lines.append(lineno)
        if labels is not None:
            labels.append(label)
    parsed = _Parsed(sentences, labels, kept_lines, len(raw), skipped)
    _PARSE_CACHE[key] = parsed
    return parsed


def _invisible(word: str) -> bool:
    """Whether ``word`` is made only of invisible format characters (Unicode category Cf: zero-width space,
    zero-width joiner, word joiner, a stray byte-order mark), which ``str.split`` does not treat as space: such a
    "word" is not read as one, so a line holding only them is an empty line."""
    return all(unicodedata.category(c) == "Cf" for c in word)


def corpus_info(
    splits: dict[str, TextSplit], vocab_size: int, num_classes: int | None, cfg: DataConfig, *, lowercase: bool
) -> dict[str, Any]:
    """What every text data set reports about its splits (sizes, words, predicted tokens) and the
    ``model_info`` a text model is built from (vocabulary size, special ids, longest training sentence, classes)."""
    return {
        "counts": {r: len(s) for r, s in splits.items()},
        "words": {r: s.num_words for r, s in splits.items()},
        "tokens": {r: s.num_tokens for r, s in splits.items()},
        "tokens_convention": "predicted tokens = words + one </s> per sentence (<s> not counted)",
        "vocab_size": vocab_size,
        "num_classes": num_classes,
        "split_seed": cfg.split_seed,
        "bucketing": cfg.bucketing,
        "model_info": {
            "vocab_size": vocab_size,
            "pad_id": PAD_ID,
            "bos_id": BOS_ID,
            "eos_id": EOS_ID,
            "unk_id": UNK_ID,
            "max_length": int(splits["train"].lengths.max()),
            "num_classes": num_classes,
            "lowercase": lowercase,
        },
    }


def _resolve_folder(cfg: DataConfig, default: str | None) -> tuple[Path, str]:
    root, setting = resolve_data_root(cfg)
    where = root_note(root, setting)
    folder = root / default if default else root
    if cfg.path:
        p = Path(cfg.path).expanduser()
        folder, where = (p, "folder given by data.path") if p.is_absolute() else (root / p, f"data.path in the {where}")
    if folder.is_file():
        raise DataError(
            f"data.path {folder} is a file; give the folder that holds the corpus files (train.txt, valid.txt, "
            "test.txt, or the names in data.files)"
        )
    return folder, where


def _apply_length_limits(
    sentences: list[list[str]], keep: list[int], cfg: DataConfig
) -> tuple[list[list[str]], list[int], dict[str, int]]:
    """min_length / max_length on one split: returns kept sentences, their positions and the counts."""
    out, pos = [], []
    counts = {"dropped_short": 0, "dropped_long": 0, "truncated": 0}
    for s, p in zip(sentences, keep, strict=True):
        if len(s) < cfg.min_length:
            counts["dropped_short"] += 1
            continue
        if cfg.max_length is not None and len(s) > cfg.max_length:
            if cfg.length_policy == "drop":
                counts["dropped_long"] += 1
                continue
            counts["truncated"] += 1
            s = s[: cfg.max_length]
        out.append(s)
        pos.append(p)
    return out, pos, counts


def load_text_corpus(
    name: str,
    cfg: DataConfig,
    folder: Path,
    files: dict[str, str],
    where: str,
    standard: dict[str, tuple[str, int]] | None = None,
) -> TextDataset:
    """Read, check, split, subset and encode a corpus (the shared body of ``text`` and ``ptb``)."""
    check_data(cfg)  # as load_dataset does: this function is public
    unknown = sorted(set(files) - set(SPLITS))
    if unknown:
        raise ConfigError(
            f"unknown role(s) {unknown} in data.files for data set {name!r}; valid roles: train, valid, test"
        )
    for role in ("train", "test"):
        if role not in files:
            raise ConfigError(f"data.files needs a {role!r} file for data set {name!r}")

    info: dict[str, Any] = {"name": name, "format": cfg.format, "folder": str(folder), "files": {}}
    parsed: dict[str, _Parsed] = {}
    for role in SPLITS:
        if role not in files:
            continue
        path = folder / files[role]
        if not path.is_file():
            raise DataError(f"file {path}: does not exist (data.files.{role}); {where}")
        p = parse_corpus(
            path,
            cfg.format,
            lowercase=cfg.lowercase,
            skip_malformed=cfg.skip_malformed,
            unk_token=cfg.unk_token,
            labels_as_words=cfg.labels_as_words,
        )
        rec: dict[str, Any] = {"path": str(path), "lines": p.num_lines, "sentences": len(p.sentences)}
        if cfg.verify_checksum:
            digest = sha256_file(path)
            rec["sha256"] = digest
            if standard and path.name in standard:
                want, n_lines = standard[path.name]
                if digest == want:
                    if len(p.sentences) != n_lines:
                        raise DataError(
                            f"file {path}: has the standard sha256 but {len(p.sentences)} sentences were read "
                            f"(expected {n_lines}); check data.format / data.skip_malformed"
                        )
                    rec["standard"] = True
                else:
                    rec["standard"] = False
                    rec["note"] = f"sha256 differs from the standard {path.name} ({want[:12]}...); loaded as it is"
        if p.skipped:
            rec["skipped_malformed"] = len(p.skipped)
            rec["skipped_lines"] = [f"{ln}: {why}" for ln, why in p.skipped[:20]]
        info["files"][role] = rec
        parsed[role] = p

    # raw splits: (sentences, labels, line numbers)
    def raw(role: str) -> tuple[list[list[str]], list[int] | None, list[int]]:
        p = parsed[role]
        return p.sentences, p.labels, p.lines

    train_s, train_y, train_l = raw("train")
    if "valid" in parsed:
        valid_s, valid_y, valid_l = raw("valid")
    else:
        n = len(train_s)
        if not 0 < cfg.valid_size < n:
            raise ConfigError(
                f"{name} has no validation file (no valid.txt in data.path={cfg.path}, no data.files.valid), and "
                f"data.valid_size={cfg.valid_size} must be in [1, {n - 1}] to hold out a validation split of its {n} "
                "training sentences; add the file, name it in data.files.valid, or set data.valid_size"
            )
        perm = fixed_permutation(n, cfg.split_seed, "valid")
        tr, va = np.sort(perm[: n - cfg.valid_size]), np.sort(perm[n - cfg.valid_size :])
        valid_s, valid_l = [train_s[i] for i in va], [train_l[i] for i in va]
        valid_y = None if train_y is None else [train_y[i] for i in va]
        train_s, train_l = [train_s[i] for i in tr], [train_l[i] for i in tr]
        train_y = None if train_y is None else [train_y[i] for i in tr]
        info["valid_rule"] = (
            f"valid = last {cfg.valid_size} of a fixed permutation of the {n} training sentences "
            f"(split_seed={cfg.split_seed}); train = the other {n - cfg.valid_size}"
        )
    test_s, test_y, test_l = raw("test")

    # vocabulary: from the whole training split (before train_size), or a file
    if cfg.vocab_file:
        vf = Path(cfg.vocab_file).expanduser()
        vf = vf if vf.is_absolute() else folder / vf
        vocab = Vocabulary.from_file(vf, cfg.vocab_size, unk_token=cfg.unk_token)
        info["vocab_source"] = f"file {vf}" + (f", first {cfg.vocab_size}" if cfg.vocab_size else "")
    else:
        counts: Counter[str] = Counter()
        for s in train_s:
            counts.update(s)
        vocab = Vocabulary.from_counts(counts, cfg.vocab_size)
        info["vocab_source"] = (
            f"training split word counts ({len(counts)} types), "
            + (f"the {cfg.vocab_size - 4} most frequent" if cfg.vocab_size else "every type")
            + " (ties alphabetical) + <pad> <s> </s> <unk>"
        )

    splits: dict[str, TextSplit] = {}
    info["length_limits"] = {}
    info["unk_rate"] = {}
    for role, (sents, ys, lines) in {
        "train": (train_s, train_y, train_l),
        "valid": (valid_s, valid_y, valid_l),
        "test": (test_s, test_y, test_l),
    }.items():
        kept, pos, lim = _apply_length_limits(sents, list(range(len(sents))), cfg)
        if any(lim.values()):
            info["length_limits"][role] = lim
        if sents and not kept:
            source = folder / files[role] if role in files else f"the valid split held out of {folder / files['train']}"
            raise DataError(
                f"{source}: all {len(sents)} sentences were dropped by the length limits (data.min_length="
                f"{cfg.min_length}, data.max_length={cfg.max_length}, data.length_policy={cfg.length_policy}); "
                "loosen them"
            )
        encoded = [vocab.encode(s) for s in kept]
        split = TextSplit.from_sentences(encoded, None if ys is None else [ys[i] for i in pos], [lines[i] for i in pos])
        n_words = split.num_words
        info["unk_rate"][role] = float((split.ids == UNK_ID).sum()) / n_words if n_words else 0.0
        splits[role] = split
    if not info["length_limits"]:
        del info["length_limits"]

    train = splits["train"]
    n_train = len(train)
    if n_train == 0:
        p = parsed["train"]
        why = f"all {len(p.skipped)} lines were skipped as malformed" if p.skipped else "it holds no sentences"
        raise DataError(f"{folder / files['train']}: the training split is empty: {why}")
    if cfg.train_size is not None:
        if not 0 < cfg.train_size <= n_train:
            raise ConfigError(
                f"data.train_size={cfg.train_size} must be in [1, {n_train}]: {name} has {n_train} training sentences"
            )
        if cfg.train_size < n_train:
            keep = np.sort(fixed_permutation(n_train, cfg.split_seed, "train_size")[: cfg.train_size])
            splits["train"] = train.subset(keep)
        info["train_size_rule"] = (
            f"first {cfg.train_size} of a fixed permutation of the {n_train} training sentences "
            f"(split_seed={cfg.split_seed}), in file order; nested across sizes; the vocabulary is that of all "
            f"{n_train}"
        )
    if cfg.eval_size is not None:
        for role in ("valid", "test"):
            s = splits[role]
            if len(s) > cfg.eval_size:
                keep = np.sort(fixed_permutation(len(s), cfg.split_seed, f"eval_size/{role}")[: cfg.eval_size])
                splits[role] = s.subset(keep)
        info["eval_size_rule"] = f"valid/test capped at {cfg.eval_size} sentences (fixed permutation, split_seed)"

    labels = [s.y for s in splits.values()]
    num_classes = None
    if all(y is not None for y in labels):
        ys = [y for y in labels if y is not None and len(y)]
        num_classes = class_count(
            [int(y.min()) for y in ys], [int(y.max()) for y in ys], sum(len(y) for y in ys), f"{folder} (labels)"
        )

    info.update(corpus_info(splits, len(vocab), num_classes, cfg, lowercase=cfg.lowercase))
    return TextDataset(
        name=name,
        train=splits["train"],
        valid=splits["valid"],
        test=splits["test"],
        vocab=vocab,
        num_classes=num_classes,
        lowercase=cfg.lowercase,
        bucketing=cfg.bucketing,
        info=info,
    )


@DATASETS.register("text", modality="text")
def load_text(cfg: DataConfig) -> TextDataset:
    """Any sentence-per-line corpus: ``data.path`` (folder, default the data folder) and ``data.files``
    (roles train / valid / test; default train.txt / valid.txt / test.txt)."""
    folder, where = _resolve_folder(cfg, None)
    files = dict(cfg.files) if cfg.files else {"train": "train.txt", "valid": "valid.txt", "test": "test.txt"}
    if not cfg.files and not (folder / "valid.txt").is_file():
        files.pop("valid")
    return load_text_corpus("text", cfg, folder, files, where)


@DATASETS.register("ptb", modality="text")
def load_ptb(cfg: DataConfig) -> TextDataset:
    """Penn Treebank, Mikolov et al. (2010) version: ``<data>/ptb/ptb.{train,valid,test}.txt`` (plain text,
    10,000 word types incl. <unk>; 42,068 / 3,370 / 3,761 sentences)."""
    folder, where = _resolve_folder(cfg, "ptb")
    files = {**PTB_FILES, **(cfg.files or {})}
    return load_text_corpus("ptb", cfg, folder, files, where, standard=PTB_STANDARD)


__all__ = [
    "BOS_ID",
    "EOS_ID",
    "PAD_ID",
    "SPECIALS",
    "UNK_ID",
    "TextBatch",
    "TextDataset",
    "TextLoader",
    "TextSplit",
    "TokenBatch",
    "Vocabulary",
    "hashed_uniform",
    "load_text_corpus",
    "parse_corpus",
]
