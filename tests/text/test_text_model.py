"""LSTM VAE / LSTM LM: padding and masking, multi-sample log p(x|z), the PPL token convention, known-answer IW-NLL,
word dropout, decoding, and the vocabulary saved with the weights."""

from __future__ import annotations

import math

import pytest
import torch

from vaelab.config import ModelConfig
from vaelab.data.text import BOS_ID, EOS_ID, PAD_ID, UNK_ID, TokenBatch
from vaelab.metrics import collect, iw_log_likelihood, summarise
from vaelab.models import VAE, build_model
from vaelab.models.text import LSTMDecoder, LSTMEncoder, PriorEncoder

V, E, H, D = 30, 12, 16, 3
SENTS = [[4, 5, 6], [7], [8, 9, 10, 11, 12, 13], [5, 5]]


def _vae(word_dropout: float = 0.0, seed: int = 0) -> VAE:
    torch.manual_seed(seed)
    return VAE(LSTMEncoder(V, E, H, D), LSTMDecoder(V, E, H, D, word_dropout=word_dropout))


def _lm(seed: int = 0) -> VAE:
    torch.manual_seed(seed)
    return VAE(PriorEncoder(D), LSTMDecoder(V, E, H, D, use_z=False))


def test_padded_batch_equals_single_sentences():
    model = _vae().eval()
    x = TokenBatch.from_sentences(SENTS, pad_to=12)  # extra padding on purpose
    with torch.no_grad():
        mu, logvar = model.encoder(x)
        z = torch.randn(len(SENTS), D)
        lp = model.decoder.log_prob(x, z)
        for i, s in enumerate(SENTS):
            xi = TokenBatch.from_sentences([s])
            mu_i, lv_i = model.encoder(xi)
            assert torch.allclose(mu_i[0], mu[i], atol=1e-6) and torch.allclose(lv_i[0], logvar[i], atol=1e-6)
            assert torch.allclose(model.decoder.log_prob(xi, z[i : i + 1])[0], lp[i], atol=1e-5)


def test_multi_sample_log_prob_equals_a_loop_and_chunking_changes_nothing():
    model = _vae().eval()
    x = TokenBatch.from_sentences(SENTS)
    z = torch.randn(7, len(SENTS), D)
    with torch.no_grad():
        batched = model.decoder.log_prob(x, z)
        loop = torch.stack([model.decoder.log_prob(x, z[k]) for k in range(7)])
        model.decoder.max_activation_elements = 1  # one sequence per chunk
        chunked = model.decoder.log_prob(x, z)
    assert batched.shape == (7, len(SENTS))
    assert torch.allclose(batched, loop, atol=1e-5) and torch.allclose(batched, chunked, atol=1e-5)


def test_z_matters_for_the_vae_and_not_for_the_lm():
    x = TokenBatch.from_sentences(SENTS)
    z = torch.randn(2, len(SENTS), D)
    with torch.no_grad():
        vae, lm = _vae().eval(), _lm().eval()
        assert not torch.allclose(vae.decoder.log_prob(x, z[0]), vae.decoder.log_prob(x, z[1]))
        assert torch.equal(lm.decoder.log_prob(x, z[0]), lm.decoder.log_prob(x, z[1]))
        assert lm.decoder.log_prob(x, z).shape == (2, len(SENTS))


def _unigram_lm() -> VAE:
    """An LM whose next-token distribution is fixed: p(a) = 1/2, p(b) = 1/4, p(</s>) = 1/4 (vocab: 4 specials, a, b)."""
    dec = LSTMDecoder(6, 4, 4, 2, use_z=False, dropout_in=0.0, dropout_out=0.0)
    with torch.no_grad():
        dec.out.weight.zero_()
        probs = torch.tensor([0.0, 0.0, 0.25, 0.0, 0.5, 0.25])
        dec.out.bias.copy_(torch.log(probs))  # -inf for <pad>, <s>, <unk>
    return VAE(PriorEncoder(2), dec)


def test_ppl_token_convention_by_hand():
    """'a b' and 'a': predicted tokens a b </s> and a </s> (5; the start token is given, not predicted).
    log p = log(1/2 * 1/4 * 1/4) + log(1/2 * 1/4) = -log 256, so PPL = 256 ** (1/5)."""
    model = _unigram_lm()
    a, b = 4, 5
    x = TokenBatch.from_sentences([[a, b], [a]])
    assert x.num_tokens == 5
    with torch.no_grad():
        lp = model.decoder.log_prob(x, torch.zeros(2, 2))
    assert lp.tolist() == pytest.approx([-math.log(32), -math.log(8)])
    col = collect(model, [x], iw_samples=4, iw_chunk=3)
    out = summarise(col)
    assert out["rate"] == 0.0 and out["nll_elbo"] == pytest.approx(math.log(256) / 2)
    assert out["ppl_elbo"] == pytest.approx(256 ** (1 / 5)) and out["ppl_iw"] == pytest.approx(256 ** (1 / 5))


@pytest.mark.parametrize("k", [1, 7, 50])
def test_iw_nll_is_exact_when_q_is_the_exact_posterior(k):
    """LM: q = p(z) and p(x|z) = p(x), so every importance weight is p(x). The same holds for an lstm_vae whose
    decoder ignores z and whose encoder outputs the prior (zeroed output layer)."""
    x = TokenBatch.from_sentences(SENTS)
    lm = _lm().eval()
    torch.manual_seed(1)
    vae = VAE(LSTMEncoder(V, E, H, D), LSTMDecoder(V, E, H, D, use_z=False)).eval()
    with torch.no_grad():
        vae.encoder.linear.weight.zero_()
        vae.encoder.linear.bias.zero_()
    g = torch.Generator().manual_seed(k)
    for model in (lm, vae):
        with torch.no_grad():
            exact = model.decoder.log_prob(x, torch.zeros(len(SENTS), D))
            est = iw_log_likelihood(model, x, k, chunk_size=3, eps_generator=g)
        assert torch.allclose(est, exact, atol=1e-4), (est, exact)
    out = summarise(collect(lm, [x], iw_samples=k, iw_chunk=4))
    assert out["nll_iw"] == pytest.approx(out["nll_elbo"], abs=1e-4)
    assert out["rate"] == 0.0 and out["mi"] == pytest.approx(0.0, abs=1e-9) and out["au"] == 0


def test_word_dropout_uses_the_batch_noise_and_only_in_training():
    model = _vae(word_dropout=0.5)
    dec = model.decoder
    dec.dropout_in.p = dec.dropout_out.p = 0.0
    with torch.no_grad():  # weights large enough for the inputs to matter visibly
        for p in dec.parameters():
            p.uniform_(-0.5, 0.5)
    x = TokenBatch.from_sentences(SENTS)
    z = torch.randn(len(SENTS), D)
    x.noise = torch.rand(x.batch_size, x.max_len - 1, generator=torch.Generator().manual_seed(0))
    inp = x.tokens[:, :-1]
    model.train()
    dropped = dec.drop_words(inp, x.noise)
    expect = inp.masked_fill((x.noise < 0.5) & (inp != BOS_ID) & (inp != PAD_ID), UNK_ID)
    assert torch.equal(dropped, expect) and bool((dropped != inp).any())
    a, b = dec.log_prob(x, z), dec.log_prob(x, z)
    assert torch.equal(a, b)  # deterministic given the batch's noise
    model.eval()
    assert torch.equal(dec.drop_words(inp, x.noise), inp)
    clean = dec.log_prob(x, z)
    assert not torch.allclose(a, clean)  # inputs changed (targets did not)
    dec.word_dropout = 0.0
    assert torch.equal(clean, dec.log_prob(x, z))


def test_sampling_and_greedy_decoding():
    model = _vae().eval()
    z = torch.randn(5, D)
    g1, g2 = model.decoder.sample(z, mean=True, max_length=7), model.decoder.sample(z, mean=True, max_length=7)
    assert g1 == g2 and len(g1) == 5
    s1 = model.decoder.sample(z, max_length=7, generator=torch.Generator().manual_seed(0))
    s2 = model.decoder.sample(z, max_length=7, generator=torch.Generator().manual_seed(0))
    assert s1 == s2
    for sent in g1 + s1:
        assert len(sent) <= 7 and all(w not in (PAD_ID, BOS_ID, EOS_ID) and 0 <= w < V for w in sent)
    # a decoder that always says </s> gives empty sentences
    with torch.no_grad():
        model.decoder.out.weight.zero_()
        model.decoder.out.bias.fill_(-10.0)
        model.decoder.out.bias[EOS_ID] = 10.0
    assert model.decoder.sample(z, mean=True) == [[]] * 5
    assert model.training is False


def test_builders_and_vocabulary_in_the_state_dict():
    words = ["<pad>", "<s>", "</s>", "<unk>", "a", "b"]
    info = {"vocab_size": 6, "vocab": words}
    cfg = ModelConfig(type="lstm_vae", latent_dim=2, emb_dim=4, hidden_dim=5)
    vae = build_model(cfg, info)
    lm = build_model(ModelConfig(type="lstm_lm", latent_dim=2, emb_dim=4, hidden_dim=5), info)
    assert isinstance(lm.encoder, PriorEncoder) and not lm.decoder.use_z
    assert sum(p.numel() for p in lm.encoder.parameters()) == 0
    state = vae.state_dict()
    assert state["decoder._extra_state"]["vocab"] == words
    fresh = build_model(cfg, {"vocab_size": 6})  # no vocabulary yet: it comes with the weights
    fresh.load_state_dict(state)
    assert fresh.decoder.vocab == words
    other = build_model(cfg, {"vocab_size": 6, "vocab": [*words[:4], "b", "a"]})
    with pytest.raises(ValueError, match="vocabulary differs"):
        other.load_state_dict(state)
    with pytest.raises(ValueError, match="text data"):
        build_model(cfg, {"image_shape": (1, 4, 4)})
    # init ranges (He et al. 2019)
    emb, out = vae.decoder.embed.weight.detach(), vae.decoder.out.weight.detach()
    assert float(emb.abs().max()) <= 0.1 and float(out.abs().max()) <= 0.01
    assert float(emb.abs().max()) > 0.02


def test_hashed_uniform_statistics_and_determinism():
    from vaelab.data.text import hashed_uniform

    seeds = torch.arange(1000, dtype=torch.long) + 123456789
    u = hashed_uniform(seeds, 1, 200)
    assert u.shape == (1000, 200) and u.dtype == torch.float32
    assert float(u.min()) >= 0.0 and float(u.max()) < 1.0
    assert abs(float(u.mean()) - 0.5) < 0.005 and abs(float(u.var()) - 1 / 12) < 0.002
    assert torch.equal(u, hashed_uniform(seeds, 1, 200))
    assert torch.equal(u[:, :50], hashed_uniform(seeds, 1, 50))  # column t depends on t only, not on n
    assert torch.equal(u[7:9], hashed_uniform(seeds[7:9], 1, 200))  # row r depends on its seed only
    v = hashed_uniform(seeds, 2, 200)
    assert abs(float(torch.corrcoef(torch.stack([u.flatten(), v.flatten()]))[0, 1])) < 0.01  # salts independent
    assert abs(float((u[:-1] * u[1:]).mean()) - 0.25) < 0.005  # consecutive seeds uncorrelated


def test_seeded_dropout_does_not_depend_on_shards_or_chunks():
    """In training, with per-sentence seeds, a sentence's log p(x|z) (dropout on) is the same in any batch shard
    and row chunk; without dropout noise the training and eval values differ (dropout is really applied)."""
    model = _vae(word_dropout=0.3).train()
    x = TokenBatch.from_sentences(SENTS)
    x.seeds = torch.tensor([11, 12, 13, 14]) * 1_000_003
    x.noise = torch.rand(x.batch_size, x.max_len - 1, generator=torch.Generator().manual_seed(0))
    z = torch.randn(len(SENTS), D)
    full = model.decoder.log_prob(x, z)
    assert torch.equal(full, model.decoder.log_prob(x, z))
    parts = torch.cat(
        [model.decoder.log_prob(x.select(slice(0, 2)), z[:2]), model.decoder.log_prob(x.select(slice(2, 4)), z[2:])]
    )
    assert torch.allclose(full, parts, atol=1e-5)
    zs = torch.randn(3, len(SENTS), D)
    many = model.decoder.log_prob(x, zs)
    model.decoder.max_activation_elements = 1
    assert torch.allclose(many, model.decoder.log_prob(x, zs), atol=1e-5)
    assert not torch.allclose(many[0], many[1])
    model.eval()
    assert not torch.allclose(full, model.decoder.log_prob(x, z))
