"""The Ray backend against a local Ray instance (skipped when Ray is not installed: pip install 'vaelab[ray]')."""

from __future__ import annotations

from pathlib import Path

import pytest

from vaelab.sweep import read_results, run_sweep, spec_from_dict, write_results

from .helpers import sweep_dict

pytestmark = pytest.mark.ray  # ~17 s here: ~7 s to start Ray, then 2 points on 2 Ray workers


def test_ray_backend_runs_points_like_the_local_backend(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    spec = spec_from_dict(
        sweep_dict(
            seeds=[0],
            variants=[{"name": "ok", "model.hidden": [8]}, {"name": "bad", "data.train_size": 10**6}],
            grid={"objective.beta.value": [0.5]},
        )
    )
    results = run_sweep(spec, tmp_path / "ray", workers=2, backend="ray", log=lambda _: None)
    assert [(r.index, r.status) for r in results] == [(0, "completed"), (1, "failed")]
    again = run_sweep(spec, tmp_path / "ray", workers=2, backend="ray", log=lambda _: None)
    assert {r.status for r in again} == {"skipped"}  # nothing left to do: Ray is not even started
    run_sweep(spec, tmp_path / "local", indices=[0], workers=1, log=lambda _: None)
    a = read_results(write_results(tmp_path / "ray"))
    b = read_results(write_results(tmp_path / "local"))
    assert a[1]["status"] == "failed" and a[1]["error_type"] == "ValueError"
    assert a[0]["test_nll_iw"] == pytest.approx(b[0]["test_nll_iw"], rel=1e-5)
    assert a[0]["gap_rate"] == pytest.approx(b[0]["gap_rate"], abs=1e-5)
