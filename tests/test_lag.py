"""The inference-lag experiment (He et al. 2019): grid posterior mean known answer, and a smoke run."""

import json

import torch

from vaelab.cli import main
from vaelab.lag import model_posterior_mean
from vaelab.models import ModelConfig, build_model


def test_grid_posterior_mean_matches_the_exact_linear_gaussian_posterior():
    torch.manual_seed(0)
    m = build_model(
        ModelConfig(type="linear", latent_dim=1, likelihood="gaussian", gaussian_std=0.8), {"image_shape": (1, 1, 5)}
    )
    x = torch.randn(7, 1, 1, 5) * 2
    exact, _ = m.decoder.exact_posterior(x)
    grid = torch.arange(-10, 10.0001, 0.01)
    approx = model_posterior_mean(m, x, grid)
    assert torch.allclose(approx.double(), exact[:, 0], atol=1e-3)


def test_lag_plot_cli_quick(tmp_path, monkeypatch):
    import vaelab.lag as lag

    small = lag.quick_config()
    small.steps, small.snapshots, small.eval_every, small.num_train, small.num_points = 6, [0, 6], 3, 100, 10
    monkeypatch.setattr(lag, "quick_config", lambda: small)
    out = tmp_path / "lag.png"
    assert main(["lag-plot", "--quick", "--out", str(out)]) == 0
    assert out.stat().st_size > 10_000
    data = json.loads(out.with_suffix(".json").read_text())
    assert [r["strategy"] for r in data["results"]] == ["joint", "aggressive"]
    for r in data["results"]:
        assert set(r["snapshots"]) == {"0", "6"}
        assert len(r["snapshots"]["6"]["approx"]) == len(r["snapshots"]["6"]["model"]) == 10
    assert data["results"][1]["log_fields"]["grad_evals_per_step"] > 1


def test_lag_plot_rejects_a_non_positive_teacher_scale(tmp_path, capsys):
    import pytest

    with pytest.raises(SystemExit) as exc:
        main(["lag-plot", "--quick", "--teacher-z-scale", "0", "--out", str(tmp_path / "lag.png")])
    assert exc.value.code == 2
    assert "--teacher-z-scale: must be a number > 0, got '0'" in capsys.readouterr().err
    assert not (tmp_path / "lag.png").exists()
