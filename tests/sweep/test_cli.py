"""The sweep commands end to end: --list, --index / SLURM_ARRAY_TASK_ID, sweep-aggregate and plot-sweep."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from vaelab.cli import main
from vaelab.sweep import read_results
from vaelab.sweep.cli import parse_indices
from vaelab.sweep.plots import FIGURES


def test_list_prints_every_point_in_index_order(write_sweep, tmp_path, capsys) -> None:
    assert main(["sweep", str(write_sweep()), "--list", "--out", str(tmp_path / "out")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("# sweep tiny: 8 points")
    rows = [ln.split("\t") for ln in lines[1:]]
    assert [int(r[0]) for r in rows] == list(range(8))
    overrides = "train.epochs=2 model.hidden=[32] objective.beta.value=1.0 seed=0"
    assert rows[3][1:] == ["0003-wide-beta1-seed0", "missing", overrides]
    assert not (tmp_path / "out").exists()  # listing runs nothing


def test_slurm_array_task_id_selects_the_point(write_sweep, tmp_path, monkeypatch, capsys) -> None:
    out = tmp_path / "out"
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "6")
    assert main(["sweep", str(write_sweep()), "--out", str(out)]) == 0
    done = sorted(p.parent.name for p in out.glob("points/*/measurements.json"))
    assert done == ["0006-wide-beta0.1-seed1"]
    assert not (out / "results.csv").exists()  # array tasks leave aggregation to sweep-aggregate
    assert main(["sweep-aggregate", str(out)]) == 0
    assert "1 completed, 7 missing" in capsys.readouterr().out
    rows = read_results(out)
    assert [r["status"] for r in rows] == ["missing"] * 6 + ["completed", "missing"]


def test_bad_index_and_bad_sweep_are_one_line_errors(write_sweep, tmp_path, capsys) -> None:
    assert main(["sweep", str(write_sweep()), "--index", "8", "--out", str(tmp_path / "o")]) == 2
    assert "point index 8 is out of range" in capsys.readouterr().err
    assert main(["sweep", str(write_sweep(seeds="zero")), "--out", str(tmp_path / "o")]) == 2
    assert "seeds must be a non-empty list" in capsys.readouterr().err


def test_parse_indices() -> None:
    assert parse_indices("3") == [3]
    assert parse_indices("0-2,7,2") == [0, 1, 2, 7]
    with pytest.raises(ValueError, match="--index"):
        parse_indices("a-b")


def test_sweep_aggregate_and_plots(write_sweep, tmp_path, capsys) -> None:
    path = write_sweep(
        variants=[{"name": "narrow", "model.hidden": [8]}],
        grid={"data.train_size": [128, 256], "objective.beta.value": [0.1, 1.0, 3.0]},
        seeds=[0],
    )
    out = tmp_path / "out"
    t0 = time.perf_counter()
    assert main(["sweep", str(path), "--out", str(out), "--workers", "1"]) == 0
    assert time.perf_counter() - t0 < 60
    assert "results:" in capsys.readouterr().out
    rows = read_results(out)
    assert len(rows) == 6 and {r["status"] for r in rows} == {"completed"}
    assert [r["data.train_size"] for r in rows] == [128, 128, 128, 256, 256, 256]
    assert main(["plot-sweep", str(out)]) == 0
    for name in FIGURES:
        png = out / "plots" / name
        data = png.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and 10_000 < len(data) < 200_000, name
    written = capsys.readouterr().out
    assert written.count("written:") == len(FIGURES) == 4


def test_plot_groups_follow_the_varying_parameters(write_sweep, tmp_path) -> None:
    from vaelab.sweep.plots import group_keys
    from vaelab.sweep.runner import prepare_out
    from vaelab.sweep.spec import load_sweep

    spec = load_sweep(write_sweep(zip={"data.train_size": [128, 256]}))
    prepare_out(spec, tmp_path / "o")
    assert group_keys(Path(tmp_path / "o"), "objective.beta.value") == ["variant", "data.train_size"]
