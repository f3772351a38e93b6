"""Consistency regularisation in real (tiny) runs: every strategy x objective, resumption, and its effect."""

from __future__ import annotations

import json

import pytest

from conftest import crash_at_step
from vaelab.cli import main
from vaelab.config import load_config
from vaelab.training.trainer import Trainer

CR = (
    "objective.terms=[{type: aug_distortion, transform: simple}, {type: aug_rate, weight: 1.0}, "
    "{type: consistency_kl, weight: 0.001}]"
)
STRATEGIES = {
    "joint": [],
    "aggressive": ["train.strategy=aggressive", "train.strategy_options={window: 2, max_inner_steps: 4}"],
}
OBJECTIVES = {
    "kl": ["objective.beta={type: constant, value: 1.0}"],
    "beta4": ["objective.beta={type: constant, value: 4.0}"],
    "free_bits": ["objective.regulariser=free_bits_batch", "objective.free_bits=0.1"],
    "annealed": [],  # the tiny config's linear warm-up of beta
}


def _records(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("objective", list(OBJECTIVES))
@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_cr_composes_with_strategies_and_objectives(tiny_config, tmp_path, strategy, objective):
    overrides = [CR, "train.epochs=2", *STRATEGIES[strategy], *OBJECTIVES[objective]]
    cfg = load_config(tiny_config(), overrides)
    summary = Trainer(cfg, tmp_path / "run").fit()
    assert summary["status"] == "completed"
    train = [r for r in _records(tmp_path / "run") if r["split"] == "train"]
    for r in train:
        assert r["consistency_kl"] > 0 and r["consistency_kl_weight"] == pytest.approx(1e-3)
        assert r["aug_distortion"] > 0 and r["aug_rate"] >= 0
        # the loss holds the CR addition (running means of products: exact when beta is constant)
        if objective in ("kl", "beta4"):
            expected = r["distortion"] + r["beta"] * r["reg"] + r["aug_distortion"] + r["aug_rate"]
            assert r["loss"] == pytest.approx(expected + 1e-3 * r["consistency_kl"], rel=1e-5)
    if strategy == "aggressive":
        valid = [r for r in _records(tmp_path / "run") if r["split"] == "valid"]
        assert all(r["inner_steps_per_step"] >= 2 for r in valid)  # encoder-only steps ran on the CR loss


def test_cr_resume_after_crash_is_exact(tiny_config, tmp_path):
    cfg = load_config(
        tiny_config(),
        [CR, "train.strategy=aggressive", "train.strategy_options={window: 2, max_inner_steps: 4}"],
    )
    full = Trainer(cfg, tmp_path / "full").fit()
    crash_at_step(Trainer(cfg, tmp_path / "crash"), 13, KeyboardInterrupt)
    resumed = Trainer(cfg, tmp_path / "crash", resume=True).fit()
    for k in ("elbo", "rate", "distortion", "nll_iw", "mi"):
        assert resumed[k] == full[k], k


def test_a_large_lambda_makes_the_encoder_consistent_and_metrics_report_it(tiny_config, tmp_path):
    """The held-out consistency KL falls when lambda grows (same seed, data, budget); probe and consistency are
    reported at the end of training and by `vaelab evaluate`."""
    results = {}
    for lam in (0.0, 30.0):
        terms = (
            "objective.terms=[{type: aug_distortion, transform: large}, {type: aug_rate, weight: 1.0}, "
            f"{{type: consistency_kl, weight: {lam}}}]"
        )
        cfg = load_config(
            tiny_config(),
            [
                terms,
                "train.epochs=4",
                "objective.beta={type: constant, value: 1.0}",
                "eval.extra_metrics=[probe, consistency]",
            ],
        )
        results[lam] = Trainer(cfg, tmp_path / f"lam{lam}").fit()
    for s in results.values():
        assert s["consistency_policy"] == "large" and s["consistency_draws"] >= 1
        assert 0.0 <= s["probe_accuracy"] <= 1.0 and s["probe_n_train"] == 256
    assert results[30.0]["consistency_kl"] < 0.5 * results[0.0]["consistency_kl"]
    assert main(["evaluate", str(tmp_path / "lam30.0"), "--iw-samples", "5"]) == 0
    ev = json.loads((tmp_path / "lam30.0" / "eval.json").read_text())
    assert ev["consistency_kl"] == pytest.approx(results[30.0]["consistency_kl"], rel=0.5)
    assert {"probe_accuracy", "au", "mi", "mi_pool"} <= set(ev)
