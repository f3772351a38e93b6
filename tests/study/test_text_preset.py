"""The study's text preset: He et al.'s LSTM VAE at CPU size, trained with Adam from U(-0.3, 0.3), and the saddle at
He et al.'s U(-0.01, 0.01) that is the reason (docs/text.md, "Why the text remedies collapsed")."""

from __future__ import annotations

import torch

from vaelab.config import run_config
from vaelab.data import DataConfig, load_dataset
from vaelab.metrics.units import active_units
from vaelab.models import build_model
from vaelab.study.collapse import _synthetic_text_preset, _text_preset


def test_text_preset_is_the_he_et_al_model_with_adam_and_a_wider_init() -> None:
    raw = _text_preset("ptb")
    m, t = raw["model"], raw["train"]
    assert (m["type"], m["latent_dim"], m["emb_dim"], m["hidden_dim"]) == ("lstm_vae", 32, 128, 256)
    assert (m["init_range"], t["optimizer"], t["lr"], t["batch_size"], t["grad_clip"]) == (0.3, "adam", 3e-3, 32, 5.0)
    small = _synthetic_text_preset("synthetic_text")
    assert (small["model"]["init_range"], small["train"]["optimizer"], small["train"]["lr"]) == (0.3, "adam", 3e-3)


def _activity_at_init(init_range: float) -> tuple[int, float]:
    raw = _text_preset("synthetic_text")
    raw["model"]["init_range"] = init_range
    data = load_dataset(DataConfig(name="synthetic_text", num_examples=200, eval_size=20))
    cfg = run_config({**raw, "data": {"name": "synthetic_text", "num_examples": 200, "eval_size": 20}})
    torch.manual_seed(0)
    model = build_model(cfg.model, data.info).eval()
    x = next(iter(data.loader("train", 200, seed=0, shuffle=False).epoch(0))).x
    with torch.no_grad():
        mu, _ = model.encoder(x)
    au, act = active_units(mu)
    return au, float(act.mean())


def test_at_he_et_al_init_the_encoder_means_hardly_differ_across_sentences() -> None:
    torch.set_num_threads(1)
    au_small, act_small = _activity_at_init(0.01)
    au_wide, act_wide = _activity_at_init(0.3)
    # U(-0.01, 0.01): products of small weights and a forget gate near 0.5 -> the means are almost constant
    assert au_small == 0 and act_small < 1e-6
    # U(-0.3, 0.3): the means differ by a fair fraction of the posterior's width from the first step
    assert au_wide >= 16 and act_wide > 1e-2
    assert act_wide > 1e4 * act_small


def test_every_registered_data_set_has_a_study_preset_that_validates() -> None:
    """The study's presets are valid configs for every registered data set (a real-valued set gets a Gaussian
    decoder, a corpus no image keys): ``base_config`` validates with the same rules as ``vaelab train``."""
    from vaelab.data import DATASETS
    from vaelab.study.collapse import base_config

    for name in DATASETS.names():
        overrides = ["data.path=corpus"] if name == "text" else []
        base, text = base_config(name, overrides)
        assert text == (DATASETS.modality(name) == "text"), name
        if name == "synthetic_gaussian":
            assert base["model"]["likelihood"] == "gaussian"
