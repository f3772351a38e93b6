"""The vocabulary of a text corpus and the one way vaelab reads a text file's lines.

Four special tokens come first: ``<pad>`` = 0, ``<s>`` = 1, ``</s>`` = 2, ``<unk>`` = 3 (declared in
:mod:`vaelab.tokens`, served here; PTB's own ``<unk>`` word is the same token); a corpus may not hold the first three
as words (:data:`RESERVED`). The words follow, either counted from a training split (:meth:`Vocabulary.from_counts`)
or read from a file (:meth:`Vocabulary.from_file`). Corpus and vocabulary files are read by :func:`read_lines`
(lines split on "\\n" only, so line numbers match an editor's).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from torch import Tensor

from vaelab.data.base import DataError
from vaelab.data.checks import DATA_RULES
from vaelab.rules import check
from vaelab.tokens import BOS, BOS_ID, EOS, EOS_ID, PAD, PAD_ID, SPECIALS, UNK, UNK_ID

RESERVED = frozenset((PAD, BOS, EOS))
"""Tokens a corpus may not hold as words (``<unk>`` may: it is read as vaelab's unknown word, as in PTB)."""


def read_lines(path: Path) -> list[str]:
    """Lines split on "\\n" only (never on other Unicode line breaks, so line numbers match ``wc -l``/editors),
    a trailing "\\r" removed; a final newline does not make an extra empty line. A UTF-8 byte-order mark (U+FEFF),
    at the start or anywhere else, is dropped (it never becomes part of a word)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        line = path.read_bytes()[: e.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: not UTF-8 text ({e.reason})") from None
    if "\x00" in text:  # UTF-16 without a byte-order mark, or a binary file: no text has NUL characters
        line = text[: text.index("\x00")].count("\n") + 1
        raise DataError(f"{path}:{line}: a NUL character: not a text file (UTF-16? save it as UTF-8)")
    # U+FEFF elsewhere is a zero-width no-break space (a byte-order mark left by joining files): it is invisible,
    # so it is dropped rather than glued to a word (the vocabulary and token counts are those of the text without it)
    text = text.replace("\ufeff", "")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [ln[:-1] if ln.endswith("\r") else ln for ln in lines]


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
        for lineno, line in enumerate(read_lines(path), start=1):
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


__all__ = [
    "BOS",
    "BOS_ID",
    "EOS",
    "EOS_ID",
    "PAD",
    "PAD_ID",
    "RESERVED",
    "SPECIALS",
    "UNK",
    "UNK_ID",
    "Vocabulary",
    "read_lines",
]
