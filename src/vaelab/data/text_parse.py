"""Reading a sentence-per-line corpus file into words (:func:`parse_corpus`), with the checks that name
``file:line``: ``data.format`` ``plain`` (whitespace-tokenised words) or ``label_tab`` (``LABEL<TAB>words``), empty
and malformed lines (refused, or skipped with ``data.skip_malformed``), vaelab's own tokens in the text, a plain file
that looks labelled, invisible format characters.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vaelab.data.base import DataError
from vaelab.data.text_vocab import RESERVED, UNK, read_lines
from vaelab.errors import ConfigError


@dataclass
class ParsedFile:
    """A corpus file read by :func:`parse_corpus`: the sentences' words, their labels (``label_tab``) and 1-based
    line numbers, the file's line count, and the skipped malformed lines as (line, problem)."""

    sentences: list[list[str]]
    labels: list[int] | None
    lines: list[int]
    num_lines: int
    skipped: list[tuple[int, str]]
    unk_token_count: int = 0
    """How many words were the configured ``unk_token`` (read as ``<unk>``)."""
    unk_token_near: dict[str, int] = field(default_factory=dict)
    """Words that equal ``unk_token`` but for case (``_unk`` for ``_UNK``), with their counts."""


_PARSE_CACHE: dict[tuple[Any, ...], ParsedFile] = {}


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
    # named labels (pos, neg, ...): one word before the TAB, drawn from a few values, on most lines
    named = [ln for ln in lines if "\t" in ln and len(ln.partition("\t")[0].split()) == 1]
    names = {ln.partition("\t")[0].strip() for ln in named}
    if lines and len(named) > LABEL_TAB_SHARE * len(lines) and len(names) <= max(2, min(50, len(named) // 4)):
        plural = "s" if len(names) != 1 else ""
        raise DataError(
            f"{path}: {len(named)} of the first {len(lines)} lines look like LABEL<TAB>sentence with {len(names)} "
            f"named label{plural} (e.g. {named[0][:40]!r}), but data.format is plain, which would read the labels "
            "as words; write the labels as integers 0..K-1 and set data.format=label_tab, or set "
            "data.labels_as_words=true if they are words of the text"
        )


def parse_corpus(
    path: Path,
    fmt: str,
    *,
    lowercase: bool = False,
    skip_malformed: bool = False,
    unk_token: str | None = None,
    labels_as_words: bool = False,
) -> ParsedFile:
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
    unk_count = 0
    near: dict[str, int] = {}
    raw = read_lines(path)
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
            words = split_words(text)
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
            unk_count += words.count(unk_token)
            for w in words:
                if w != unk_token and w.casefold() == unk_token.casefold():
                    near[w] = near.get(w, 0) + 1
            words = [UNK if w == unk_token else w for w in words]
        if lowercase:
            words = [w if w == UNK else w.lower() for w in words]
        sentences.append(words)
        kept_lines.append(lineno)
        if labels is not None:
            labels.append(label)
    parsed = ParsedFile(sentences, labels, kept_lines, len(raw), skipped, unk_count, near)
    _PARSE_CACHE[key] = parsed
    return parsed


def split_words(text: str) -> list[str]:
    """The words of one sentence as every corpus line is read: split on whitespace, a "word" made only of
    invisible format characters (a zero-width space, U+200B) dropped. Typed sentences (``vaelab reconstruct``) are
    read with it too."""
    return [w for w in text.split() if w.isascii() or not _invisible(w)]


def label_and_text(line: str) -> tuple[int, str] | None:
    """``(label, sentence)`` of a line that looks like ``LABEL<TAB>sentence`` (an integer >= 0, then a TAB), as
    ``data.format: label_tab`` reads it; None for any other line."""
    head, tab, text = line.partition("\t")
    head = head.strip()
    return (int(head), text) if tab and head.isdigit() and head.isascii() else None


def _invisible(word: str) -> bool:
    """Whether ``word`` is made only of invisible format characters (Unicode category Cf: zero-width space,
    zero-width joiner, word joiner, a stray byte-order mark), which ``str.split`` does not treat as space: such a
    "word" is not read as one, so a line holding only them is an empty line."""
    return all(unicodedata.category(c) == "Cf" for c in word)


__all__ = [
    "LABEL_TAB_SHARE",
    "ParsedFile",
    "label_and_text",
    "parse_corpus",
    "split_words",
]
