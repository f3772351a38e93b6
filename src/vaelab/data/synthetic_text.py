"""``synthetic_text``: a labelled toy corpus generated in memory, on which a plain LSTM VAE collapses.

Every sentence has a latent *topic* c, uniform over ``data.num_templates`` topics, which is its label, and
:data:`SENTENCE_WORDS` words drawn from a local grammar shared by all topics, with content words that depend on c:

1. part-of-speech tags follow one first-order Markov chain (:data:`GRAMMAR`: determiner, adjective, noun, verb,
   adverb, preposition, conjunction), the same for every topic;
2. function words (determiners, prepositions, conjunctions) come from shared lists (:data:`FUNCTION_WORDS`);
3. each content word (noun, verb, adjective, adverb) comes from the topic's own list for its tag with probability
   ``1 - data.noise``, and from a shared list otherwise (:data:`CONTENT_WORDS`). Topic words are named like
   ``noun3_1`` and shared ones like ``noun_1``, so a reader sees a sentence's topic. Within a list, the word of
   rank r has probability proportional to 1 / (r + 1) (Zipf), and each topic ranks its words in its own random
   order.

An LSTM language model predicts much of a sentence locally (the grammar, the shared words) and picks the topic
up from the first content words. Knowing the topic in advance is worth the mutual information I(x; c) <= ln K
nats per sentence (computed exactly by :func:`reference`, see below). A VAE
trained on the plain ELBO ignores z here: its decoder infers the topic itself, the classic posterior collapse of
Bowman et al. (2016). The linear probe on z shows whether a model's code carries the topic; the majority-class
rate is about 1 / K. Every sentence has the same length, so a code cannot get by on the sentence length instead.

Sizes as for the other synthetic sets: ``data.num_examples`` training sentences (default 1000) and
``data.eval_size`` sentences in each of validation and test (default ``num_examples // 4``). Each split is drawn
from its own stream seeded by ``data.split_seed``, so the training split does not change with ``eval_size``;
``split_seed`` also fixes the topics' word orders. ``data.train_size`` keeps a nested subset of the training
sentences (the vocabulary stays that of all of them, as for files) and ``data.vocab_size`` caps the vocabulary.
The result is a :class:`~vaelab.data.text.TextDataset` like a ``label_tab`` corpus (labels in ``y``), so
loaders, vocabulary, samples and the probe work as on real text.

Because every word names its tag, p(x | c) is a product of grammar and word probabilities, and p(x) is a
K-term mixture of those products. ``info["reference_test"]`` holds :func:`reference` of the test split: its
exact negative log-likelihood (nats per sentence, a floor for any model's IW-NLL), I(x; c) and the expected
accuracy of the Bayes classifier argmax_c p(c | x) (a ceiling for any probe).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from vaelab.data.base import DATASETS, derive_seed, fixed_permutation
from vaelab.data.config import DataConfig
from vaelab.data.text import UNK_ID, TextDataset, TextSplit, Vocabulary, corpus_info
from vaelab.errors import ConfigError

GRAMMAR: dict[str, dict[str, float]] = {
    "start": {"det": 0.6, "adj": 0.15, "noun": 0.25},
    "det": {"adj": 0.35, "noun": 0.65},
    "adj": {"adj": 0.15, "noun": 0.85},
    "noun": {"verb": 0.6, "prep": 0.2, "conj": 0.2},
    "verb": {"det": 0.5, "adv": 0.25, "noun": 0.25},
    "adv": {"prep": 0.5, "conj": 0.5},
    "prep": {"det": 0.7, "noun": 0.3},
    "conj": {"det": 0.6, "noun": 0.4},
}
"""The shared tag chain: state -> {next tag: probability}."""

SENTENCE_WORDS = 10
"""Words per sentence. All sentences have this length, so a sentence's length tells nothing about it."""

FUNCTION_WORDS: dict[str, tuple[str, ...]] = {
    "det": ("the", "a", "this", "that", "every", "some"),
    "prep": ("in", "on", "with", "from", "near", "under"),
    "conj": ("and", "but", "while"),
}
"""Shared function words."""

CONTENT_WORDS: dict[str, tuple[int, int]] = {"noun": (10, 8), "verb": (8, 6), "adj": (8, 6), "adv": (4, 3)}
"""Content tags: (words per topic, shared words)."""


def _zipf(n: int) -> np.ndarray:
    p = 1.0 / np.arange(1, n + 1)
    return p / p.sum()


def _word_lists(num_topics: int, seed: int) -> dict[tuple[str, int], list[str]]:
    """(tag, topic) -> words in decreasing probability; topic -1 = the shared list. Each list's order is a random
    permutation of its names (fixed by ``seed``), so the Zipf ranks differ between topics."""
    rs = np.random.RandomState(derive_seed(seed, "synthetic_text/words") % (2**32))
    lists: dict[tuple[str, int], list[str]] = {}
    for tag, words in FUNCTION_WORDS.items():
        lists[(tag, -1)] = list(words)
    for tag, (per_topic, shared) in CONTENT_WORDS.items():
        lists[(tag, -1)] = [f"{tag}_{i}" for i in rs.permutation(shared)]
        for t in range(num_topics):
            lists[(tag, t)] = [f"{tag}{t}_{i}" for i in rs.permutation(per_topic)]
    return lists


def _draw(rs: np.random.RandomState, p: np.ndarray) -> int:
    """An index drawn with probabilities ``p`` (inverse CDF of one uniform draw)."""
    return min(int(np.searchsorted(np.cumsum(p), rs.random_sample(), side="right")), len(p) - 1)


def _tags(rs: np.random.RandomState) -> list[str]:
    """One sentence's tag sequence: :data:`SENTENCE_WORDS` steps of :data:`GRAMMAR`."""
    tags: list[str] = []
    state = "start"
    for _ in range(SENTENCE_WORDS):
        nxt = GRAMMAR[state]
        state = list(nxt)[_draw(rs, np.array(list(nxt.values())))]
        tags.append(state)
    return tags


def generate(n: int, num_topics: int, noise: float, seed: int, part: str) -> tuple[list[list[str]], list[int]]:
    """``n`` sentences (word lists) and their topics, from the stream (seed, part)."""
    lists = _word_lists(num_topics, seed)
    probs = {key: _zipf(len(words)) for key, words in lists.items()}
    rs = np.random.RandomState(derive_seed(seed, f"synthetic_text/{part}") % (2**32))
    sentences: list[list[str]] = []
    topics = rs.randint(num_topics, size=n).tolist()
    for topic in topics:
        words = []
        for tag in _tags(rs):
            key = (tag, topic) if tag in CONTENT_WORDS and rs.random_sample() >= noise else (tag, -1)
            words.append(lists[key][_draw(rs, probs[key])])
        sentences.append(words)
    return sentences, topics


def topic_log_likelihoods(sentences: list[list[str]], num_topics: int, noise: float, seed: int) -> np.ndarray:
    """Exact log p(x | c) in nats, float64 (N, K), of word lists under the generator with these settings (every
    word names its tag, so the tag sequence is known and p(x | c) is a product). -inf where a sentence is
    impossible under a topic; a word the generator never makes raises a KeyError."""
    lists = _word_lists(num_topics, seed)
    tag_of = {w: tag for (tag, _), words in lists.items() for w in words}
    word_lp: dict[str, np.ndarray] = {}
    with np.errstate(divide="ignore"):
        for (tag, topic), words in lists.items():
            for w, p in zip(words, _zipf(len(words)), strict=True):
                row = word_lp.setdefault(w, np.zeros(num_topics))
                if tag not in CONTENT_WORDS:
                    row += p  # function word: the same under every topic
                elif topic < 0:
                    row += noise * p
                else:
                    row[topic] += (1.0 - noise) * p
        word_lp = {w: np.log(p) for w, p in word_lp.items()}
        out = np.zeros((len(sentences), num_topics))
        for i, words in enumerate(sentences):
            state, lp = "start", np.zeros(num_topics)
            for w in words:
                tag = tag_of[w]
                lp = lp + np.log(GRAMMAR[state].get(tag, 0.0)) + word_lp[w]
                state = tag
            out[i] = lp
    return out


def reference(sentences: list[list[str]], num_topics: int, noise: float, seed: int) -> dict[str, float]:
    """What the generator itself achieves on these sentences: ``nll`` = mean -log p(x) (nats per sentence; a floor
    for a model's NLL up to sampling noise), ``topic_information`` = I(x; c) = ln K - E_x H(c | x) (nats: what a
    code that carries the topic can save per sentence) and ``bayes_accuracy_expected`` = E_x max_c p(c | x) (the
    accuracy of the best topic classifier given the words: a ceiling for a probe)."""
    ll = topic_log_likelihoods(sentences, num_topics, noise, seed)
    top = ll.max(axis=1, keepdims=True)
    log_px = (top[:, 0] + np.log(np.exp(ll - top).sum(axis=1))) - np.log(num_topics)  # uniform p(c)
    post = np.exp(ll - np.log(num_topics) - log_px[:, None])
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.where(post > 0, post * np.log(post), 0.0).sum(axis=1)
    return {
        "nll": float(-log_px.mean()),
        "topic_information": float(np.log(num_topics) - entropy.mean()),
        "bayes_accuracy_expected": float(post.max(axis=1).mean()),
    }


@DATASETS.register("synthetic_text", modality="text")
def load_synthetic_text(cfg: DataConfig) -> TextDataset:
    """The generated topic corpus (see the module docs): ``num_templates`` topics (= classes), ``noise`` = the
    probability that a content word comes from the shared lists, ``num_examples`` / ``eval_size`` sentences."""
    k = cfg.num_templates  # the values were checked by load_dataset (vaelab.data.checks.check_data)
    n_eval = cfg.eval_size if cfg.eval_size is not None else max(1, cfg.num_examples // 4)
    raw = {
        role: generate(n, k, cfg.noise, cfg.split_seed, role)
        for role, n in (("train", cfg.num_examples), ("valid", n_eval), ("test", n_eval))
    }
    counts: Counter[str] = Counter()
    for s in raw["train"][0]:
        counts.update(s)
    vocab = Vocabulary.from_counts(counts, cfg.vocab_size)
    splits = {
        role: TextSplit.from_sentences([vocab.encode(s) for s in sents], ys, list(range(1, len(sents) + 1)))
        for role, (sents, ys) in raw.items()
    }
    info: dict[str, Any] = {
        "name": "synthetic_text",
        "format": "label_tab",
        "source": "generated in memory",
        "generator": (
            f"{k} topics (uniform; label = topic), a shared tag chain of {SENTENCE_WORDS} words, content words "
            f"from the topic's list with probability {1 - cfg.noise:g} else from the shared list (Zipf ranks), "
            f"seed split_seed={cfg.split_seed}"
        ),
        "grammar": GRAMMAR,
        "split": f"{cfg.num_examples} train, {n_eval} valid, {n_eval} test, each from its own stream",
        "vocab_source": f"training split word counts ({len(counts)} types) + <pad> <s> </s> <unk>",
        "reference_test": reference(raw["test"][0], k, cfg.noise, cfg.split_seed),
    }
    n_train = len(splits["train"])
    if cfg.train_size is not None:
        if not 0 < cfg.train_size <= n_train:
            raise ConfigError(f"data.train_size={cfg.train_size} must be in [1, {n_train}] (data.num_examples)")
        if cfg.train_size < n_train:
            keep = np.sort(fixed_permutation(n_train, cfg.split_seed, "train_size")[: cfg.train_size])
            splits["train"] = splits["train"].subset(keep)
        info["train_size_rule"] = f"first {cfg.train_size} of a fixed permutation of the {n_train} sentences"
    info.update(corpus_info(splits, len(vocab), k, cfg, lowercase=False))
    info["unk_rate"] = {
        r: float((s.ids == UNK_ID).sum()) / s.num_words if s.num_words else 0.0 for r, s in splits.items()
    }
    return TextDataset(
        name="synthetic_text",
        train=splits["train"],
        valid=splits["valid"],
        test=splits["test"],
        vocab=vocab,
        num_classes=k,
        lowercase=False,
        bucketing=cfg.bucketing,
        info=info,
    )


__all__ = [
    "CONTENT_WORDS",
    "FUNCTION_WORDS",
    "GRAMMAR",
    "SENTENCE_WORDS",
    "generate",
    "load_synthetic_text",
    "reference",
    "topic_log_likelihoods",
]
