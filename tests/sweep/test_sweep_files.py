"""The sweep files in sweeps/: every point's config builds, and the converged sweeps (issue 19) are set up to train
to convergence on the validation ELBO with a step cap, 3 seeds and betas over two decades around 1."""

from __future__ import annotations

from pathlib import Path

import pytest

from vaelab.sweep import load_sweep

SWEEPS = Path(__file__).resolve().parents[2] / "sweeps"
SWEEP_FILES = sorted(p for p in SWEEPS.glob("*.yaml") if not p.stem.endswith("_base"))


@pytest.mark.parametrize("path", SWEEP_FILES, ids=lambda p: p.name)
def test_every_point_of_every_sweep_file_builds(path: Path) -> None:
    spec = load_sweep(path)  # validates every point's run config
    assert len(spec) > 0


@pytest.mark.parametrize("name", ["mnist_converged", "tetrominoes_converged"])
def test_the_converged_sweeps_stop_on_the_validation_elbo(name: str) -> None:
    spec = load_sweep(SWEEPS / f"{name}.yaml")
    assert spec.seeds is not None and len(spec.seeds) >= 3
    betas = spec.grid["objective.beta.value"]
    assert min(betas) <= 0.03 and max(betas) >= 3.0 and 1.0 in betas
    assert spec.measure.checkpoint == "best" and spec.measure.iw_samples > 0
    assert spec.measure.splits == ["train", "test"] and spec.measure.mi_pool == "all"
    for point in spec.points():
        cfg = spec.config(point)
        train = cfg.train
        assert train.early_stopping_patience is not None and train.max_steps is not None
        # the epoch limit is out of reach: early stopping or the step cap ends every run
        n_train = cfg.data.train_size
        assert n_train is not None and train.epochs * (n_train // train.batch_size) > 10 * train.max_steps
        assert cfg.eval.iw_samples == 0  # the sweep's measurement computes the IW-NLL, not the trainer


def test_the_tetrominoes_sweep_has_both_split_kinds() -> None:
    spec = load_sweep(SWEEPS / "tetrominoes_converged.yaml")
    kinds = {spec.config(p).data.split_kind for p in spec.points()}
    assert kinds == {"random", "checkerboard"}
