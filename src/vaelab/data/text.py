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

This module holds the data set (:class:`TextDataset`) and the reading of a corpus (:func:`load_text_corpus`); its
pieces live in sibling modules and are served here too: :mod:`~vaelab.data.text_vocab` (the special tokens,
:class:`Vocabulary`, reading a file's lines), :mod:`~vaelab.data.text_parse` (a corpus file into words, its
checks), :mod:`~vaelab.data.text_batches` (:class:`TextSplit`, :class:`TokenBatch`, :class:`TextBatch`) and
:mod:`~vaelab.data.text_loader` (:class:`TextLoader`).
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from torch import Tensor

from vaelab.data.base import (
    DATASETS,
    SPLITS,
    DataError,
    class_count,
    fixed_permutation,
    resolve_data_root,
    root_note,
    sha256_file,
)
from vaelab.data.checks import check_data
from vaelab.data.config import DataConfig
from vaelab.data.dataset import Dataset, Modality
from vaelab.data.text_batches import TextBatch, TextSplit, TokenBatch
from vaelab.data.text_loader import POOL_BATCHES, TextLoader
from vaelab.data.text_parse import LABEL_TAB_SHARE, ParsedFile, parse_corpus, split_words
from vaelab.data.text_vocab import BOS, BOS_ID, EOS, EOS_ID, PAD, PAD_ID, RESERVED, SPECIALS, UNK, UNK_ID, Vocabulary
from vaelab.errors import ConfigError
from vaelab.registry import UnknownChoiceError
from vaelab.rules import MIN_EVAL_EXAMPLES
from vaelab.seeds import hashed_uniform

PTB_FILES = {"train": "ptb.train.txt", "valid": "ptb.valid.txt", "test": "ptb.test.txt"}
PTB_STANDARD: dict[str, tuple[str, int]] = {
    "ptb.train.txt": ("fcea919f6cf83f35d4d00c6cbf08040d13d4155226340912e2fef9c9c4102cbf", 42068),
    "ptb.valid.txt": ("c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2", 3370),
    "ptb.test.txt": ("dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0", 3761),
}
"""sha256 and sentence count of the standard Mikolov et al. (2010) files (see SOURCE.md in the data folder)."""


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
            raise UnknownChoiceError(
                f"unknown split {name!r} of data set {self.name!r}; valid choices: {', '.join(SPLITS)}"
            )
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
        """Split a raw sentence into words as the corpus files were (:func:`split_words`; lower-cased if
        configured)."""
        words = split_words(sentence)
        return [w.lower() for w in words] if self.lowercase else words

    def encode(self, sentence: str) -> list[int]:
        """Word ids of a raw sentence (unknown words -> <unk>)."""
        return self.vocab.encode(self.tokenize(sentence))

    def decode(self, ids: Sequence[int] | Tensor) -> str:
        """The words of ``ids`` joined by spaces (stops at </s>)."""
        return " ".join(self.vocab.decode(ids))


# --------------------------------------------------------------------------------------------------------
# reading a corpus


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


MAX_SENTENCE_WORDS = 10_000
"""The most words a sentence may hold after the length limits (as ``--max-length`` of the generation commands): a
longer "sentence" is a file without line breaks or a paragraph per line, whose padded batches would not fit in
memory; ``data.max_length`` truncates or drops such lines."""


def _check_sentence_lengths(
    sentences: list[list[str]], lines: list[int], role: str, folder: Path, files: dict[str, str]
) -> None:
    """Refuse a split whose longest sentence (after ``data.max_length``) exceeds :data:`MAX_SENTENCE_WORDS`,
    naming its file and line, before any run folder is written."""
    if not sentences:
        return
    i = max(range(len(sentences)), key=lambda k: len(sentences[k]))
    if len(sentences[i]) > MAX_SENTENCE_WORDS:
        source = folder / files[role if role in files else "train"]
        raise DataError(
            f"{source}:{lines[i]}: a sentence of {len(sentences[i]):,} words (at most {MAX_SENTENCE_WORDS:,}: one "
            "sentence per line is expected); split the text into sentences, or set data.max_length (with "
            "data.length_policy=drop to skip such lines)"
        )


RawSplit = tuple[list[list[str]], list[int] | None, list[int]]
"""A split as read, before the vocabulary: its sentences (words), labels (None without) and file line numbers."""


def load_text_corpus(
    name: str,
    cfg: DataConfig,
    folder: Path,
    files: dict[str, str],
    where: str,
    standard: dict[str, tuple[str, int]] | None = None,
) -> TextDataset:
    """Read, check, split, subset and encode a corpus (the shared body of ``text`` and ``ptb``): the files into
    words (:func:`_read_files`), the validation split held out when there is no file for it
    (:func:`_raw_splits`), the vocabulary (:func:`_vocabulary`), the length limits and the ids
    (:func:`_encode_splits`), then ``train_size`` and ``eval_size`` (:func:`_subset_splits`) and the classes."""
    check_data(cfg)  # as load_dataset does: this function is public
    _check_roles(name, files)
    if "valid" in files and cfg.valid_size != DataConfig.valid_size:  # the file is the split: the key is unread
        raise ConfigError(
            f"data.valid_size={cfg.valid_size} is not read: {name}'s validation split is the file "
            f"{folder / files['valid']}; remove data.valid_size (or the validation file, to hold out training "
            "sentences instead)"
        )
    info: dict[str, Any] = {"name": name, "format": cfg.format, "folder": str(folder), "files": {}}
    parsed = _read_files(cfg, folder, files, where, standard, info)
    raw = _raw_splits(name, cfg, parsed, info)
    vocab = _vocabulary(cfg, folder, raw["train"][0], info)
    splits = _encode_splits(raw, vocab, cfg, folder, files, info)
    if len(splits["train"]) == 0:
        p = parsed["train"]
        why = f"all {len(p.skipped)} lines were skipped as malformed" if p.skipped else "it holds no sentences"
        raise DataError(f"{folder / files['train']}: the training split is empty: {why}")
    for role, split in splits.items():
        _check_unk_rate(role, info["unk_rate"][role], split.num_words, cfg, folder, files)
    _subset_splits(name, cfg, splits, info)
    num_classes = _num_classes(splits, folder)
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


def _check_roles(name: str, files: dict[str, str]) -> None:
    """``data.files`` names only the roles train, valid and test, and at least train and test."""
    unknown = sorted(set(files) - set(SPLITS))
    if unknown:
        raise ConfigError(
            f"unknown role(s) {unknown} in data.files for data set {name!r}; valid roles: train, valid, test"
        )
    for role in ("train", "test"):
        if role not in files:
            raise ConfigError(f"data.files needs a {role!r} file for data set {name!r}")


def _read_files(
    cfg: DataConfig,
    folder: Path,
    files: dict[str, str],
    where: str,
    standard: dict[str, tuple[str, int]] | None,
    info: dict[str, Any],
) -> dict[str, ParsedFile]:
    """Each role's file parsed into words (in the order train, valid, test), its record in ``info["files"]``."""
    parsed: dict[str, ParsedFile] = {}
    for role in SPLITS:
        if role not in files:
            continue
        path = folder / files[role]
        if path.is_dir():
            raise DataError(f"data.files.{role}: {path} is a folder, expected a text file (one sentence a line)")
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
            rec.update(_checksum_record(path, len(p.sentences), standard))
        if p.skipped:
            rec["skipped_malformed"] = len(p.skipped)
            rec["skipped_lines"] = [f"{ln}: {why}" for ln, why in p.skipped[:20]]
        info["files"][role] = rec
        parsed[role] = p
        if role == "train" and cfg.unk_token is not None and p.unk_token_count == 0:
            _unk_token_not_found(cfg.unk_token, path, p)
    return parsed


def _unk_token_not_found(unk_token: str, path: Path, parsed: ParsedFile) -> None:
    """Refuse a ``data.unk_token`` the training file never writes: it would change nothing, and a spelling slip
    (``_UNK`` for the corpus's ``_unk``) would leave the corpus's own unknown token an ordinary word."""
    hint = "check the spelling, or remove data.unk_token"
    if parsed.unk_token_near:
        word, count = max(parsed.unk_token_near.items(), key=lambda kv: (kv[1], kv[0]))
        hint = f"the file writes {word!r} {count} times; did you mean data.unk_token={word}?"
    raise DataError(f"data.unk_token={unk_token!r} occurs 0 times in the training file {path}; {hint}")


def _checksum_record(path: Path, sentences: int, standard: dict[str, tuple[str, int]] | None) -> dict[str, Any]:
    """A file's sha256 and, for a file of a standard corpus (``standard``: name -> (sha256, sentences)), whether it
    is the standard copy: one that is must hold the standard number of sentences."""
    digest = sha256_file(path)
    rec: dict[str, Any] = {"sha256": digest}
    if standard and path.name in standard:
        want, n_lines = standard[path.name]
        if digest == want:
            if sentences != n_lines:
                raise DataError(
                    f"file {path}: has the standard sha256 but {sentences} sentences were read "
                    f"(expected {n_lines}); check data.format / data.skip_malformed"
                )
            rec["standard"] = True
        else:
            rec["standard"] = False
            rec["note"] = f"sha256 differs from the standard {path.name} ({want[:12]}...); loaded as it is"
    return rec


def _raw_splits(name: str, cfg: DataConfig, parsed: dict[str, ParsedFile], info: dict[str, Any]) -> dict[str, RawSplit]:
    """The three splits as read; without a validation file, ``data.valid_size`` training sentences are held out
    (the last of a fixed permutation seeded by ``data.split_seed``; both parts keep file order)."""

    def raw(role: str) -> RawSplit:
        p = parsed[role]
        return p.sentences, p.labels, p.lines

    train_s, train_y, train_l = raw("train")
    if "valid" in parsed:
        valid = raw("valid")
    else:
        n = len(train_s)
        if n <= MIN_EVAL_EXAMPLES:  # a held-out split needs 2 sentences (MI, AU) and training at least 1 more
            raise DataError(
                f"{name} has no validation file (no valid.txt in data.path={cfg.path}, no data.files.valid), and its "
                f"{n} training sentence{'s are' if n != 1 else ' is'} too few to hold out a validation split (it needs "
                f"{MIN_EVAL_EXAMPLES}, and training at least 1 more); add training sentences or a validation file "
                "(valid.txt, or name it in data.files.valid)"
            )
        if not 0 < cfg.valid_size < n:
            raise ConfigError(
                f"{name} has no validation file (no valid.txt in data.path={cfg.path}, no data.files.valid), and "
                f"data.valid_size={cfg.valid_size} must be in [1, {n - 1}] to hold out a validation split of its {n} "
                "training sentences; add the file, name it in data.files.valid, or set data.valid_size"
            )
        perm = fixed_permutation(n, cfg.split_seed, "valid")
        tr, va = np.sort(perm[: n - cfg.valid_size]), np.sort(perm[n - cfg.valid_size :])
        valid = (
            [train_s[i] for i in va],
            None if train_y is None else [train_y[i] for i in va],
            [train_l[i] for i in va],
        )
        train_s, train_l = [train_s[i] for i in tr], [train_l[i] for i in tr]
        train_y = None if train_y is None else [train_y[i] for i in tr]
        info["valid_rule"] = (
            f"valid = last {cfg.valid_size} of a fixed permutation of the {n} training sentences "
            f"(split_seed={cfg.split_seed}); train = the other {n - cfg.valid_size}"
        )
    return {"train": (train_s, train_y, train_l), "valid": valid, "test": raw("test")}


def _vocabulary(cfg: DataConfig, folder: Path, train: list[list[str]], info: dict[str, Any]) -> Vocabulary:
    """The vocabulary: from ``data.vocab_file`` (relative to the corpus folder), or from the word counts of the
    whole training split (before ``train_size``); where it came from goes to ``info["vocab_source"]``."""
    if cfg.vocab_file:
        vf = Path(cfg.vocab_file).expanduser()
        vf = vf if vf.is_absolute() else folder / vf
        vocab = Vocabulary.from_file(vf, cfg.vocab_size, unk_token=cfg.unk_token)
        known = vocab.stoi
        if train and not any(w in known for s in train for w in s):  # every word <unk>: a perfect, empty model
            raise DataError(
                f"{vf}: none of the training split's words is in this vocabulary (every word would be <unk>); "
                "check data.vocab_file (and data.lowercase)"
            )
        info["vocab_source"] = f"file {vf}" + (f", first {cfg.vocab_size}" if cfg.vocab_size else "")
        return vocab
    counts: Counter[str] = Counter()
    for s in train:
        counts.update(s)
    info["vocab_source"] = (
        f"training split word counts ({len(counts)} types), "
        + (f"the {cfg.vocab_size - 4} most frequent" if cfg.vocab_size else "every type")
        + " (ties alphabetical) + <pad> <s> </s> <unk>"
    )
    return Vocabulary.from_counts(counts, cfg.vocab_size)


def _encode_splits(
    raw: dict[str, RawSplit],
    vocab: Vocabulary,
    cfg: DataConfig,
    folder: Path,
    files: dict[str, str],
    info: dict[str, Any],
) -> dict[str, TextSplit]:
    """Each split after the length limits (a split they empty is refused), as ids; the limits' counts and the
    <unk> rates go to ``info``."""
    splits: dict[str, TextSplit] = {}
    info["length_limits"] = {}
    info["unk_rate"] = {}
    for role, (sents, ys, lines) in raw.items():
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
        _check_sentence_lengths(kept, [lines[i] for i in pos], role, folder, files)
        encoded = [vocab.encode(s) for s in kept]
        split = TextSplit.from_sentences(encoded, None if ys is None else [ys[i] for i in pos], [lines[i] for i in pos])
        n_words = split.num_words
        info["unk_rate"][role] = float((split.ids == UNK_ID).sum()) / n_words if n_words else 0.0
        splits[role] = split
    if not info["length_limits"]:
        del info["length_limits"]
    return splits


UNK_WARN_RATE = 0.5
"""A split with a larger share of ``<unk>`` words is loaded with a printed warning (at 1.0 an evaluation split is
refused: its perplexities would measure nothing but the rate of one token)."""


def _check_unk_rate(role: str, rate: float, n_words: int, cfg: DataConfig, folder: Path, files: dict[str, str]) -> None:
    """Refuse a valid or test split in which every word is ``<unk>`` (none is in the training vocabulary), naming
    its file; warn (stderr) about any split whose ``<unk>`` rate exceeds :data:`UNK_WARN_RATE`."""
    if not n_words or rate <= UNK_WARN_RATE:
        return
    source = folder / files[role] if role in files else f"the valid split held out of {folder / files['train']}"
    key = f"data.files.{role}" if role in files else "data.files.train"
    vocab = f"data.vocab_file={cfg.vocab_file}" if cfg.vocab_file else "the training file"
    if role != "train" and rate >= 1.0:
        raise DataError(
            f"{source}: none of its {n_words} words is in the training vocabulary (all would be <unk>); its "
            f"perplexities would measure nothing: check that {key} (and data.path) names the right file, written "
            f"in the tokenisation and case (data.lowercase) of {vocab}"
            + (", or raise data.vocab_size" if cfg.vocab_size is not None and not cfg.vocab_file else "")
        )
    if role != "train":
        hint = f"check that it is written in the tokenisation and case (data.lowercase) of {vocab}"
    else:
        hint = "check data.vocab_file" if cfg.vocab_file else "raise data.vocab_size (null: every word type)"
    print(
        f"vaelab: warning: {source}: {rate:.0%} of its {n_words} words are not in the training vocabulary (read as "
        f"<unk>); {hint}",
        file=sys.stderr,
        flush=True,
    )


def _subset_splits(name: str, cfg: DataConfig, splits: dict[str, TextSplit], info: dict[str, Any]) -> None:
    """``data.train_size`` (nested across sizes) and ``data.eval_size`` (valid and test), each the first of a fixed
    permutation seeded by ``data.split_seed``, in file order; the rules go to ``info``."""
    n_train = len(splits["train"])
    if cfg.train_size is not None:
        if not 0 < cfg.train_size <= n_train:
            raise ConfigError(
                f"data.train_size={cfg.train_size} must be in [1, {n_train}]: {name} has {n_train} training sentences"
            )
        if cfg.train_size < n_train:
            keep = np.sort(fixed_permutation(n_train, cfg.split_seed, "train_size")[: cfg.train_size])
            splits["train"] = splits["train"].subset(keep)
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


def _num_classes(splits: dict[str, TextSplit], folder: Path) -> int | None:
    """The number of classes when every split has labels, else None."""
    labels = [s.y for s in splits.values()]
    if not all(y is not None for y in labels):
        return None
    ys = [y for y in labels if y is not None and len(y)]
    return class_count(
        [int(y.min()) for y in ys], [int(y.max()) for y in ys], sum(len(y) for y in ys), f"{folder} (labels)"
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
    "BOS",
    "BOS_ID",
    "EOS",
    "EOS_ID",
    "LABEL_TAB_SHARE",
    "PAD",
    "PAD_ID",
    "POOL_BATCHES",
    "PTB_FILES",
    "PTB_STANDARD",
    "RESERVED",
    "SPECIALS",
    "UNK",
    "UNK_ID",
    "TextBatch",
    "TextDataset",
    "TextLoader",
    "TextSplit",
    "TokenBatch",
    "Vocabulary",
    "corpus_info",
    "hashed_uniform",
    "load_ptb",
    "load_text",
    "load_text_corpus",
    "parse_corpus",
]
