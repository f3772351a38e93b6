"""`vaelab diagnose`: the verdict on metrics and on runs that are collapsed / partly collapsed / healthy by
construction (the encoder's output layer set by hand, so the answer is known exactly)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from vaelab.checkpoint import load_checkpoint, save_checkpoint
from vaelab.cli import main
from vaelab.diagnose import diagnose_metrics, run_metrics, unit_table

D = 8


def metrics(kl, activity=None, mi=None, pool=1000, rate=None, **extra):
    out = {"kl_per_dim": kl, "rate": sum(kl) if rate is None else rate, "mi_pool": pool, "au_threshold": 0.01}
    if activity is not None:
        out["activity_per_dim"] = activity
        out["au"] = sum(a >= 0.01 for a in activity)
    if mi is not None:
        out["mi"] = mi
        out["marginal_kl"] = out["rate"] - mi
    out.update(extra)
    return out


def test_all_units_at_the_prior_is_collapse():
    d = diagnose_metrics(metrics([1e-4] * D, [1e-5] * D, mi=0.001))
    assert d.verdict == "collapsed"
    assert d.numbers["dead_units"] == D and d.numbers["au"] == 0
    assert any("annealing" in r for r in d.recommendations)
    assert not any("aggressive" in r for r in d.recommendations)  # not an autoregressive decoder


def test_autoregressive_collapse_recommends_aggressive_training_first():
    d = diagnose_metrics(metrics([1e-4] * D, [1e-5] * D, mi=0.001), model_type="lstm_vae")
    assert d.verdict == "collapsed"
    assert "aggressive" in d.recommendations[0]


def test_rate_without_information_is_collapse():
    """Every x gets the same posterior N(m, s^2) != p(z): KL > 0 but MI = 0 (and the activity is zero)."""
    d = diagnose_metrics(metrics([0.3] * D, [0.0] * D, mi=0.0))
    assert d.verdict == "collapsed"
    assert d.numbers["holes"]  # rate - MI = 2.4 nats > 1 and > 30% of the rate


def test_partial_collapse_counts_the_inactive_units():
    kl = [2.0] * 3 + [1e-3] * (D - 3)
    act = [1.0] * 3 + [1e-4] * (D - 3)
    d = diagnose_metrics(metrics(kl, act, mi=4.0))
    assert d.verdict == "partial"
    assert d.numbers["inactive_units"] == list(range(3, D))
    assert "5 of 8" in d.headline
    assert any("free bits" in r for r in d.recommendations)


def test_healthy_run_and_the_mi_ceiling():
    pool = 100
    d = diagnose_metrics(metrics([1.5] * D, [0.5] * D, mi=0.95 * math.log(pool), pool=pool))
    assert d.verdict == "healthy"
    assert any("at its ceiling" in f for f in d.findings)
    assert any("larger pool" in r for r in d.recommendations)
    d2 = diagnose_metrics(metrics([1.5] * D, [0.5] * D, mi=2.0, pool=pool))
    assert not any("at its ceiling" in f for f in d2.findings)


def test_beta_above_one_is_named():
    d = diagnose_metrics(metrics([1e-4] * D, [1e-5] * D, mi=0.0), beta=4.0)
    assert any("beta is 4" in f for f in d.findings)
    assert d.recommendations[0].startswith("lower beta")


def test_unit_table_shares_sum_to_one():
    rows = unit_table(metrics([1.0, 3.0], [0.5, 0.001]))
    assert [r["active"] for r in rows] == [True, False]
    assert sum(r["share"] for r in rows) == pytest.approx(1.0)
    assert rows[1]["share"] == pytest.approx(0.75)


def test_missing_per_unit_rate_is_a_clear_error():
    with pytest.raises(ValueError, match="kl_per_dim"):
        diagnose_metrics({"rate": 1.0})


# --------------------------------------------------------------------------------------------------------------
# run folders collapsed / healthy by construction


@pytest.fixture
def trained_run(tmp_path: Path, tiny_config) -> Path:
    cfg = tiny_config(model={"latent_dim": D, "hidden": [16]}, train={"epochs": 1})
    out = tmp_path / "run"
    assert main(["train", str(cfg), "--out", str(out)]) == 0
    return out


def _set_head(run: Path, active: int) -> None:
    """Rewrite best.pt so that q(z|x) = N(0, I) exactly on units >= ``active`` (weights and biases 0: the prior,
    for every x) and is sharp and input-dependent on units < ``active`` (large weights, logvar -4)."""
    path = run / "checkpoints" / "best.pt"
    state = load_checkpoint(path)
    w = state["model"]["encoder.head.weight"]
    b = state["model"]["encoder.head.bias"]
    g = torch.Generator().manual_seed(0)
    w.zero_()
    b.zero_()
    w[:active] = 3.0 * torch.randn(active, w.shape[1], generator=g)
    b[D : D + active] = -4.0
    save_checkpoint(path, state)


@pytest.mark.parametrize(("active", "verdict"), [(0, "collapsed"), (2, "partial"), (D, "healthy")])
def test_diagnose_runs_built_to_be_collapsed_partial_or_healthy(trained_run: Path, active: int, verdict: str, capsys):
    _set_head(trained_run, active)
    assert main(["diagnose", str(trained_run), "--evaluate"]) == 0
    out = capsys.readouterr().out
    assert f"verdict: {verdict.upper()}" in out
    diag = json.loads((trained_run / "diagnosis.json").read_text())
    assert diag["verdict"] == verdict
    n = diag["numbers"]
    assert n["au"] == active
    if active == 0:
        # q(z|x) = p(z) for every x: the rate, the MI (all posteriors equal) and the marginal KL are exactly 0
        assert n["rate"] == pytest.approx(0.0, abs=1e-6)
        assert n["mi"] == pytest.approx(0.0, abs=1e-6)
        assert n["dead_units"] == D
    else:
        assert n["dead_units"] == D - active
        assert n["mi"] > 1.0
    assert (trained_run / "diagnosis.md").read_text().startswith("# Diagnosis of run")
    assert "hole_kl" in json.loads((trained_run / "diagnosis_eval.json").read_text())


def test_diagnose_reads_files_without_evaluating(trained_run: Path):
    m, source = run_metrics(trained_run, evaluate=False)
    assert source.endswith("summary.json") and m["kl_per_dim"]
    # the default evaluates once (summary.json has no hole metrics), then reuses diagnosis_eval.json
    m2, source2 = run_metrics(trained_run)
    assert source2.endswith("diagnosis_eval.json") and "hole_kl" in m2
    mtime = (trained_run / "diagnosis_eval.json").stat().st_mtime_ns
    _, source3 = run_metrics(trained_run)
    assert source3.endswith("diagnosis_eval.json")
    assert (trained_run / "diagnosis_eval.json").stat().st_mtime_ns == mtime


def test_diagnose_a_folder_that_is_not_a_run(tmp_path: Path, capsys):
    assert main(["diagnose", str(tmp_path)]) == 2
    assert "not a run folder" in capsys.readouterr().err


def test_diagnose_says_when_the_run_has_not_finished(trained_run: Path, capsys):
    """A run killed before its end has no summary.json: the diagnosis of its best checkpoint so far says so first
    (issue 16, ninth set n27: it read 'healthy' as if the run were trained)."""
    assert main(["diagnose", str(trained_run), "--evaluate"]) == 0
    assert "has not finished" not in capsys.readouterr().out
    assert not json.loads((trained_run / "diagnosis.json").read_text())["numbers"].get("unfinished")
    (trained_run / "summary.json").unlink()
    assert main(["diagnose", str(trained_run), "--evaluate"]) == 0
    out = capsys.readouterr().out
    assert "The run has not finished: it has no summary.json (its last logged epoch is 1, step" in out
    assert f"vaelab resume {trained_run}" in out
    diag = json.loads((trained_run / "diagnosis.json").read_text())
    assert diag["numbers"]["unfinished"] is True and diag["findings"][0].startswith("The run has not finished")


def test_an_mi_estimate_above_the_rate_is_read_as_the_rate():
    """I(x; z) <= rate: an MI estimate of 0.09 nats over a rate of 0.04 is sampling error, so the information is
    0.04 nats (collapsed), and rate - MI < 0 is named as such rather than reported as a negative KL."""
    d = diagnose_metrics(metrics([0.005] * D, [0.5] * D, mi=0.09, rate=0.04))
    assert d.verdict == "collapsed"
    assert any("below 0, which KL(q(z) || p(z)) cannot be" in f for f in d.findings)
    assert not any(f.startswith("rate - MI = KL(") for f in d.findings)


def test_units_whose_means_vary_without_information_are_close_to_collapse():
    """Every unit's posterior mean varies (A_d = 0.02 >= 0.01: AU counts it), but the 8 units carry 0.07 nats
    together, under 0.01 each: not a healthy VAE (a KL of 0.07 nats was called healthy)."""
    d = diagnose_metrics(metrics([0.025, 0.021] + [0.004] * (D - 2), [0.02] * D, mi=0.07))
    assert d.numbers["au"] == D
    assert d.verdict == "partial" and "close to collapse" in d.headline and "0.07" in d.headline
    assert "free bits" in d.recommendations[0] and not any("superfluous" in r for r in d.recommendations)
    healthy = diagnose_metrics(metrics([0.05] * D, [0.05] * D, mi=0.3))  # 0.3 nats over 8 units: 0.0375 each
    assert healthy.verdict == "healthy"


def test_a_nan_evaluation_is_refused_not_called_healthy():
    """h16s13 B24: a rate of NaN compared false to every threshold and the verdict was "healthy"."""
    from vaelab.errors import UserError

    with pytest.raises(UserError, match="rate is not finite"):
        diagnose_metrics({"rate": float("nan"), "kl_per_dim": [0.1, 0.2]})
    with pytest.raises(UserError, match="kl_per_dim is not finite"):
        diagnose_metrics(metrics([0.5, float("nan")], [0.5, 0.5], mi=0.5, rate=1.0))
