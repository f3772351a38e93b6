"""skip-VAE for the LSTM decoder (Dieng et al., AISTATS 2019) and the ``vaelab latent-plot`` command."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from vaelab.cli import main
from vaelab.config import load_config
from vaelab.data.text import TokenBatch
from vaelab.models import ModelConfig, build_model
from vaelab.models.text import LSTMDecoder
from vaelab.plots.latent import latent_figure, pca_2d
from vaelab.training.trainer import Trainer

V, E, H, D = 20, 6, 8, 3
SENTS = [[4, 5, 6, 7], [8], [9, 10, 11]]


def _decoder(skip: bool) -> LSTMDecoder:
    torch.manual_seed(0)
    return LSTMDecoder(V, E, H, D, skip=skip, dropout_in=0.0, dropout_out=0.0).eval()


def test_skip_logits_are_w_h_plus_u_z():
    dec = _decoder(skip=True)
    with torch.no_grad():
        dec.skip_out.weight.normal_()
    z = torch.randn(1, D)
    x = TokenBatch.from_sentences(SENTS[:1])
    # the same decoder without skip, with the output bias shifted by U z, is the same model for this sentence
    ref = LSTMDecoder(V, E, H, D, skip=False, dropout_in=0.0, dropout_out=0.0).eval()
    state = {k: v for k, v in copy.deepcopy(dec.state_dict()).items() if not k.startswith("skip_out")}
    ref.load_state_dict(state)
    with torch.no_grad():
        ref.out.bias += dec.skip_out(z)[0]
        assert torch.allclose(dec.log_prob(x, z), ref.log_prob(x, z), atol=1e-5)
        # a zero U is exactly the plain decoder
        dec.skip_out.weight.zero_()
        plain = LSTMDecoder(V, E, H, D, skip=False, dropout_in=0.0, dropout_out=0.0).eval()
        plain.load_state_dict(state)
        assert torch.equal(dec.log_prob(x, z), plain.log_prob(x, z))


def test_skip_multi_sample_blocks_chunks_and_sampling_agree():
    dec = _decoder(skip=True)
    with torch.no_grad():
        dec.skip_out.weight.normal_()
    x = TokenBatch.from_sentences(SENTS)
    z = torch.randn(4, len(SENTS), D)
    with torch.no_grad():
        batched = dec.log_prob(x, z)
        loop = torch.stack([dec.log_prob(x, z[k]) for k in range(4)])
        dec.softmax_block_tokens = 2
        dec.max_activation_elements = 1
        chunked = dec.log_prob(x, z)
    assert torch.allclose(batched, loop, atol=1e-5) and torch.allclose(batched, chunked, atol=1e-5)
    out = dec.sample(torch.randn(2, D), mean=True, max_length=5)
    assert len(out) == 2


def test_skip_is_built_for_lstm_vae_only():
    info = {"vocab_size": V}
    cfg = ModelConfig(type="lstm_vae", latent_dim=D, emb_dim=E, hidden_dim=H, skip=True)
    assert build_model(cfg, info).decoder.skip_out is not None
    assert (
        build_model(ModelConfig(type="lstm_vae", latent_dim=D, emb_dim=E, hidden_dim=H), info).decoder.skip_out is None
    )
    lm = ModelConfig(type="lstm_lm", latent_dim=D, emb_dim=E, hidden_dim=H, skip=True)
    with pytest.raises(ValueError, match="skip"):
        build_model(lm, info)


def test_pca_known_answer():
    t = np.linspace(-1, 1, 50)
    x = np.stack([t, 2 * t, np.zeros_like(t)], 1) + np.array([3.0, 0.0, 1.0])
    center, comps, ratios = pca_2d(x)
    assert np.allclose(center, [3.0, 0.0, 1.0])
    assert np.allclose(np.abs(comps[0]), np.array([1, 2, 0]) / np.sqrt(5))
    assert ratios[0] == pytest.approx(1.0) and ratios[1] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("latent_dim", [2, 4])
def test_latent_plot_command(tiny_config, tmp_path, latent_dim):
    cfg = load_config(tiny_config(), [f"model.latent_dim={latent_dim}", "train.epochs=1", "eval.iw_samples=0"])
    Trainer(cfg, tmp_path / "run").fit()
    png = tmp_path / "latent.png"
    assert main(["latent-plot", str(tmp_path / "run"), "--out", str(png), "--prior-samples", "300"]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    fig = latent_figure(torch.randn(40, latent_dim), torch.zeros(40, latent_dim), torch.arange(40) % 3)
    assert len([a for a in fig.axes if a.get_label() != "<colorbar>"]) == (3 if latent_dim == 2 else 2)
    assert main(["latent-plot", str(tmp_path / "nothing")]) == 2
