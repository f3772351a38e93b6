"""eval.iw_chunk: ``auto`` (the default) chooses the chunk from a memory budget and gives the estimate of the old
fixed default (500) from the same seed: the same draws, so equal up to float rounding (issue 18, item 6)."""

from __future__ import annotations

import pytest
import torch

from vaelab.config import ConfigError, load_config, run_config
from vaelab.evaluation import EVALUATE_OFFSET, Evaluator
from vaelab.metrics import collect
from vaelab.metrics import likelihood as lk
from vaelab.metrics.likelihood import IW_CHUNK_BUDGET, OTHER_IW_CHUNK, resolve_iw_chunk
from vaelab.models import ModelConfig, build_model
from vaelab.run import build_run
from vaelab.runconfig import EvalConfig

OLD_DEFAULT_CHUNK = 500  # eval.iw_chunk before "auto"


def test_auto_is_the_default_and_resolves_from_the_budget() -> None:
    assert EvalConfig().iw_chunk == "auto" and EvalConfig().batch_size == 500
    mnist = torch.zeros(500, 1, 28, 28)
    assert resolve_iw_chunk("auto", mnist, 500, 500) == IW_CHUNK_BUDGET // (500 * 784) == 10
    assert resolve_iw_chunk("auto", mnist[:100], 100, 500) == 53
    assert resolve_iw_chunk("auto", mnist[:1], 1, 500) == 500  # never more than K
    big = torch.zeros(1, 3, 64, 64).expand(9999, -1, -1, -1)  # only the shape is read
    assert resolve_iw_chunk("auto", big, 9999, 500) == 1  # never less than 1
    assert resolve_iw_chunk("auto", mnist, 500, 500, latent_dim=32) == 10  # 10 x 500 x 32 normals: whole blocks
    # B x D = 7 x 5 = 35 normals per sample: a chunk of a multiple of 16 samples draws whole blocks of 16
    assert resolve_iw_chunk("auto", mnist[:7], 7, 5000, latent_dim=5) == 16 * (IW_CHUNK_BUDGET // (7 * 784) // 16)
    assert resolve_iw_chunk("auto", big, 9999, 500, latent_dim=5) == 16  # a whole number of blocks beats the budget
    assert resolve_iw_chunk(37, mnist, 500, 500) == 37  # a number is used as given
    # not an image tensor (a token batch: the text decoder bounds its own activations): the old default, 500
    assert resolve_iw_chunk("auto", object(), 32, 5000, latent_dim=32) == OTHER_IW_CHUNK == OLD_DEFAULT_CHUNK
    assert resolve_iw_chunk("auto", object(), 32, 20) == 20


def test_the_config_accepts_auto_and_counts_only() -> None:
    assert load_config(None, ["eval.iw_chunk=auto"]).eval.iw_chunk == "auto"
    assert load_config(None, ["eval.iw_chunk=25"]).eval.iw_chunk == 25
    for bad in (0, "big"):
        with pytest.raises(ConfigError, match=r"eval.iw_chunk"):
            run_config({"eval": {"iw_chunk": bad}})
    with pytest.raises(ValueError, match="chunk_size"):
        resolve_iw_chunk(0, torch.zeros(2, 3), 2, 10)


@pytest.mark.parametrize(
    ("batch", "latent", "k", "budget"),
    [(50, 8, 500, IW_CHUNK_BUDGET), (40, 32, 700, IW_CHUNK_BUDGET), (7, 5, 300, 7 * 784 * 40)],
)
def test_auto_gives_the_old_defaults_iw_nll(
    batch: int, latent: int, k: int, budget: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Known answer: an MNIST-shaped MLP VAE, the same seed, chunk "auto" (here 106, 133 and 32 samples) against
    the old fixed 500: the same K draws, so the same IW-NLL up to float rounding. (7 x 5 = 35 normals per sample:
    a chunk of 40 would draw other normals than one draw of K; "auto" makes it 32.)"""
    monkeypatch.setattr(lk, "IW_CHUNK_BUDGET", budget)
    torch.manual_seed(0)
    model = build_model(ModelConfig(type="mlp", latent_dim=latent, hidden=[64]), {"image_shape": (1, 28, 28)})
    x = (torch.rand(batch, 1, 28, 28, generator=torch.Generator().manual_seed(1)) < 0.2).float()
    results = {}
    for chunk in (OLD_DEFAULT_CHUNK, "auto"):
        torch.manual_seed(123)
        results[chunk] = collect(model, [x], iw_samples=k, iw_chunk=chunk).nll_iw
    assert resolve_iw_chunk("auto", x, batch, k, latent_dim=latent) in {106, 133, 32}
    torch.testing.assert_close(results["auto"], results[OLD_DEFAULT_CHUNK], rtol=1e-6, atol=1e-5)


def test_the_evaluator_gives_the_same_numbers_with_the_new_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """The path of ``vaelab evaluate``: a run evaluated with eval.iw_chunk=500 (the old default) and with the new
    default gives the same metrics, IW-NLL included (budget shrunk so that "auto" cuts K = 60 into chunks of 7)."""
    cfg = run_config(
        {
            "seed": 2,
            "data": {"name": "synthetic_blobs", "num_examples": 256, "image_shape": [1, 6, 6], "eval_size": 64},
            "model": {"type": "mlp", "latent_dim": 4, "hidden": [16]},
            "train": {"batch_size": 64, "progress": False},
            "eval": {"batch_size": 32},
        }
    )
    monkeypatch.setattr(lk, "IW_CHUNK_BUDGET", 32 * 36 * 7)
    run = build_run(cfg)
    assert cfg.eval.iw_chunk == "auto"
    new = Evaluator(run).evaluate("test", iw_samples=60, seed_offset=EVALUATE_OFFSET)
    run.config.eval.iw_chunk = OLD_DEFAULT_CHUNK
    old = Evaluator(run).evaluate("test", iw_samples=60, seed_offset=EVALUATE_OFFSET)
    assert set(new) == set(old)
    assert new["nll_iw"] == pytest.approx(old["nll_iw"], rel=1e-6)
    assert {k: v for k, v in new.items() if "nll_iw" not in k and k != "bpd"} == {
        k: v for k, v in old.items() if "nll_iw" not in k and k != "bpd"
    }


def test_the_python_api_evaluate_defaults_to_auto_with_the_same_estimate() -> None:
    """``vaelab.evaluate`` chooses its chunk like ``eval.iw_chunk`` (``auto``: 10 for 500 MNIST-shaped images, not
    the fixed 100 it had), and the estimate is that of the fixed 100 from the same seed: the same draws, so equal up
    to float rounding; every other metric is the same number."""
    import inspect

    from vaelab import api

    assert inspect.signature(api.evaluate).parameters["iw_chunk"].default == "auto"
    torch.manual_seed(0)
    model = build_model(ModelConfig(type="mlp", latent_dim=32, hidden=[64]), {"image_shape": (1, 28, 28)})
    x = (torch.rand(500, 1, 28, 28, generator=torch.Generator().manual_seed(1)) < 0.2).float()
    assert resolve_iw_chunk("auto", x, 500, 40, latent_dim=32) == 10
    new = api.evaluate(model, x, iw_samples=40, seed=3)
    old = api.evaluate(model, x, iw_samples=40, seed=3, iw_chunk=100)
    assert new["nll_iw"] == pytest.approx(old["nll_iw"], rel=1e-6)
    assert new["nll_iw"] != pytest.approx(api.evaluate(model, x, iw_samples=40, seed=4)["nll_iw"], rel=1e-6)
    same = [k for k, v in new.items() if "nll_iw" not in k and k != "bpd" and not isinstance(v, (dict, list))]
    assert same and all(new[k] == old[k] for k in same)
