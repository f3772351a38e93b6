"""The generated topic corpus: determinism, sizes and labels, the topic's information in the words (known
answers), its exact likelihood, and the path from ``load_dataset`` to an LSTM VAE and a study preset."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
import torch

from vaelab.data import DataConfig, load_dataset
from vaelab.data import synthetic_text as st
from vaelab.data.text import TextDataset


def _cfg(**kw) -> DataConfig:
    return DataConfig(**{"name": "synthetic_text", "num_examples": 400, "num_templates": 5, "noise": 0.3, **kw})


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_deterministic_in_split_seed_with_the_requested_sizes() -> None:
    a, b = load_dataset(_cfg()), load_dataset(_cfg())
    c, d = load_dataset(_cfg(split_seed=1)), load_dataset(_cfg(eval_size=30))
    assert isinstance(a, TextDataset) and a.vocab == b.vocab
    for split in ("train", "valid", "test"):
        assert torch.equal(a.split(split).ids, b.split(split).ids)
        assert torch.equal(a.split(split).y, b.split(split).y)
    assert not torch.equal(a.train.ids, c.train.ids)
    assert torch.equal(a.train.ids, d.train.ids)  # the training split does not depend on the eval size
    assert (len(a.train), len(a.valid), len(a.test), len(d.valid), len(d.test)) == (400, 100, 100, 30, 30)
    assert bool((a.train.lengths == st.SENTENCE_WORDS).all())
    sub = load_dataset(_cfg(train_size=150))
    assert len(sub.train) == 150 and sub.vocab == a.vocab  # nested subset, the vocabulary of all 400
    json.dumps(a.info)


def test_labels_are_the_topics_and_topic_words_name_them() -> None:
    ds = load_dataset(_cfg(num_examples=2000, noise=0.0))
    assert ds.num_classes == 5 and ds.model_info()["num_classes"] == 5
    assert set(ds.train.y.tolist()) == set(range(5))
    counts = np.bincount(ds.train.y.numpy(), minlength=5)
    assert counts.min() > 300  # uniform topics
    for i in range(50):  # noise 0: every content word is one of its topic's words ("noun3_1" for topic 3)
        topic = int(ds.train.y[i])
        for w in ds.decode(ds.train.sentence(i)).split():
            if "_" in w:
                assert w.split("_")[0][-1] == str(topic)


def test_a_bag_of_words_classifier_recovers_the_topic() -> None:
    """Known answer: the topic is in the words. Naive Bayes counts from the training split classify the test split
    far above chance, and the exact Bayes classifier does at least as well."""
    ds = load_dataset(_cfg(num_examples=2000, eval_size=300, num_templates=8))
    counts = np.ones((8, len(ds.vocab)))
    for i in range(len(ds.train)):
        np.add.at(counts[int(ds.train.y[i])], ds.train.sentence(i), 1)
    log_p = np.log(counts / counts.sum(axis=1, keepdims=True))
    pred = np.array([log_p[:, ds.test.sentence(i)].sum(axis=1).argmax() for i in range(len(ds.test))])
    accuracy = float((pred == ds.test.y.numpy()).mean())
    majority = np.bincount(ds.test.y.numpy()).max() / len(ds.test)
    assert majority < 0.25 and accuracy > 0.9
    ref = ds.info["reference_test"]
    assert ref["bayes_accuracy_expected"] > 0.95
    assert 0.9 * math.log(8) < ref["topic_information"] <= math.log(8) + 1e-9
    assert ref["nll"] > 0


def test_the_exact_likelihood_sums_to_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every sentence of 2 words over the generator's words: sum_x p(x | c) = 1 for every topic; and the generator's
    sentences are possible under their own topic."""
    monkeypatch.setattr(st, "SENTENCE_WORDS", 2)
    lists = st._word_lists(2, 0)
    words = sorted({w for ws in lists.values() for w in ws})
    sentences = [list(p) for p in itertools.product(words, repeat=2)]
    ll = st.topic_log_likelihoods(sentences, 2, 0.3, 0)
    np.testing.assert_allclose(np.exp(ll).sum(axis=0), [1.0, 1.0], rtol=1e-10)
    sents, topics = st.generate(200, 2, 0.3, 0, "check")
    ll = st.topic_log_likelihoods(sents, 2, 0.3, 0)
    assert np.isfinite(ll[np.arange(200), topics]).all()


def test_it_loads_into_an_lstm_vae_and_gets_its_study_preset() -> None:
    from vaelab.config import RunConfig, from_dict
    from vaelab.models import build_model
    from vaelab.study.collapse import base_config, is_text_data, study_extra_metrics

    assert is_text_data("synthetic_text")
    base, text = base_config("synthetic_text", ["data.num_examples=200", "data.eval_size=20"])
    assert text and base["model"]["type"] == "lstm_vae" and base["model"]["hidden_dim"] == 64
    assert "probe" in study_extra_metrics(base, text)  # labelled without data.format: label_tab
    cfg = from_dict(RunConfig, base)
    ds = load_dataset(cfg.data)
    model = build_model(cfg.model, ds.model_info())
    assert model.decoder.vocab == ds.vocab.itos
    batch = next(iter(ds.loader("train", 8, seed=0).epoch(0)))
    assert batch.y is not None and batch.x.tokens.shape == (8, st.SENTENCE_WORDS + 2)
    with torch.no_grad():
        mu, _ = model.encoder(batch.x)
        assert mu.shape == (8, 8) and torch.isfinite(model.decoder.log_prob(batch.x, mu)).all()
