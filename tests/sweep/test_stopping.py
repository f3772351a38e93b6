"""Why each sweep point stopped (early stopping, step cap, epoch limit), and the tables that count it; the
confidence intervals over seeds; ln N - MI."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
from pathlib import Path

import pytest
import torch
import yaml

from vaelab.cli import main
from vaelab.sweep import read_results
from vaelab.sweep.aggregate import t_interval
from vaelab.sweep.measure import ln_n_minus_mi
from vaelab.sweep.stopping import late_gain, selection_loss, step_cap_line, stop_kind

from .helpers import sweep_dict

PATIENCE = 2
CAP = 8  # steps; the tiny data set has 256 training examples, 64 per batch: 4 steps per epoch
EPOCHS = 40

VARIANTS = [
    # no learning (lr 1e-9): the validation ELBO changes only by the evaluation's sampling noise (a new draw each
    # epoch), so running 40 epochs would need a new best at least every other epoch; early stopping ends the run
    {"name": "early", "train.lr": 1.0e-9, "train.early_stopping_patience": PATIENCE, "train.epochs": EPOCHS},
    # the cap (2 epochs' steps) comes long before the epoch limit or the patience
    {"name": "cap", "train.max_steps": CAP, "train.epochs": EPOCHS, "train.early_stopping_patience": 20},
    # neither cap nor patience: the epoch limit
    {"name": "epochs", "train.epochs": 2},
]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> tuple[Path, list[dict], str]:
    """The 6-point sweep (3 variants x 2 seeds), run once for the module: (folder, rows, printed output)."""
    tmp = tmp_path_factory.mktemp("stops")
    spec = tmp / "stops.yaml"
    data = sweep_dict(variants=VARIANTS, grid={"objective.beta.value": [1.0]}, seeds=[0, 1], fixed={})
    spec.write_text(yaml.safe_dump(data, sort_keys=False))
    out = tmp / "out"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["sweep", str(spec), "--out", str(out), "--workers", "1"]) == 0
    return out, read_results(out), buf.getvalue()


def test_every_point_records_why_and_when_it_stopped(sweep) -> None:
    _, rows, printed = sweep
    assert "2 of 6 points hit the step cap (train.max_steps = 8)" in printed
    assert [r["variant"] for r in rows] == ["early", "cap", "epochs"] * 2
    assert [r["stopped_by"] for r in rows] == ["early_stopping", "step_cap", "epoch_limit"] * 2
    for r in rows:
        folder = Path(r["run_dir"])
        m = json.loads((folder / "measurements.json").read_text())
        summary = json.loads((folder / "summary.json").read_text())
        # the point's own record says the same as the table, and as the trainer's summary
        for key in ("stopped_by", "stop_reason", "epochs", "steps", "best_epoch", "best_step", "max_steps"):
            assert m[key] == r[key], key
        assert r["stop_reason"] == summary["stop_reason"] and r["steps"] == summary["steps"]
        # the measured model is the best-validation checkpoint, and best_step is the step it was saved at
        assert m["checkpoint"] == "best"
        best = torch.load(folder / "checkpoints" / "best.pt", map_location="cpu", weights_only=False)
        assert best["trainer"]["step"] == r["best_step"]
        assert r["epochs_since_best"] == r["epochs"] - r["best_epoch"] >= 0
        if r["variant"] == "early":
            assert r["epochs"] < EPOCHS and r["patience"] == PATIENCE
            assert r["epochs_since_best"] == PATIENCE  # stopped exactly `patience` epochs after the best one
            assert r["steps"] == 4 * r["epochs"] and r["max_steps"] is None
        elif r["variant"] == "cap":
            assert r["steps"] == r["max_steps"] == CAP and r["epochs"] == CAP // 4 < EPOCHS
        else:
            assert r["epochs"] == r["max_epochs"] == 2 and r["steps"] == 8 and r["patience"] is None


def test_the_aggregate_counts_the_step_cap_per_cell_and_per_point(sweep) -> None:
    out, rows, _ = sweep
    assert step_cap_line(rows).startswith("2 of 6 points hit the step cap (train.max_steps = 8); stopped by ")
    assert "early stopping: 2, step cap: 2, epoch limit: 2" in step_cap_line(rows)
    with open(out / "cells.csv", newline="") as f:
        cells = list(csv.DictReader(f))
    assert [(c["variant"], c["seeds"], c["step_cap"]) for c in cells] == [
        ("early", "2", "0"),
        ("cap", "2", "2"),
        ("epochs", "2", "0"),
    ]
    # the cell's interval is the 95% t-interval over its two seeds
    cap_rows = [r for r in rows if r["variant"] == "cap"]
    mean, half, n = t_interval([r["test_nll_iw"] for r in cap_rows])
    assert n == 2 and float(cells[1]["test_nll_iw_mean"]) == pytest.approx(mean)
    assert float(cells[1]["test_nll_iw_ci"]) == pytest.approx(half)
    md = (out / "results.md").read_text()
    assert "**2 of 6 points hit the step cap (train.max_steps = 8)" in md
    assert "95% Student-t" in md
    table = md.split("## Stopping, per point")[1]
    lines = {ln.split(" | ")[1]: ln for ln in table.splitlines() if ln.startswith("| ") and ln[2].isdigit()}
    assert len(lines) == len(rows)
    for r in rows:  # every point's stop reason, stop and best epoch/step
        cells_md = [c.strip() for c in lines[r["point"]].strip("| ").split(" | ")]
        expected = [r["stopped_by"], *(str(r[k]) for k in ("epochs", "steps", "best_epoch", "best_step"))]
        assert cells_md[3:8] == expected


def test_the_nll_figure_marks_the_cells_that_hit_the_step_cap(sweep, tmp_path: Path) -> None:
    from vaelab.sweep.plots import FIGURES, plot_sweep, seed_means

    out, rows, _ = sweep
    data = seed_means(rows, "objective.beta.value", ["variant"], ["test_nll_iw"])
    assert {g[0]: d["capped"].tolist() for g, d in data.items()} == {"cap": [2], "early": [0], "epochs": [0]}
    mean, lo, hi = data[("cap",)]["test_nll_iw"]
    _, half, _ = t_interval([r["test_nll_iw"] for r in rows if r["variant"] == "cap"])
    assert hi[0] - mean[0] == pytest.approx(half) and mean[0] - lo[0] == pytest.approx(half)
    paths = plot_sweep(out, plots_dir=tmp_path / "plots")
    assert [p.name for p in paths] == list(FIGURES)
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in paths)


def test_t_interval_known_answers() -> None:
    mean, half, n = t_interval([1.0, 2.0, 3.0])
    # s = 1, t_{0.975, 2} = 4.302652729749462
    assert (mean, n) == (2.0, 3) and half == pytest.approx(4.302652729749462 / math.sqrt(3), rel=1e-9)
    mean, half, n = t_interval([5.0, 7.0], level=0.90)  # s = sqrt(2), n = 2, t_{0.95, 1} = 6.313751514675037
    assert mean == 6.0 and half == pytest.approx(6.313751514675037, rel=1e-9)
    assert t_interval([4.0]) == (4.0, None, 1)
    assert t_interval([1.0, float("nan"), 3.0, None])[:1] == (2.0,)  # non-finite and missing values left out
    mean, half, n = t_interval([])
    assert math.isnan(mean) and half is None and n == 0


def test_stop_kinds_and_ln_n_minus_mi() -> None:
    assert stop_kind("early stopping (no improvement for 10 epochs)") == "early_stopping"
    assert stop_kind("max_steps") == "step_cap"
    assert stop_kind("completed") == "epoch_limit"
    assert stop_kind("lr decayed 5 times") == "lr_decay"
    assert stop_kind("something else") == stop_kind(None) == "unknown"
    assert ln_n_minus_mi({"mi": 1.5, "mi_pool": 1000}) == pytest.approx(math.log(1000) - 1.5)
    assert ln_n_minus_mi({"mi": math.log(64), "mi_pool": 64}) == pytest.approx(0.0, abs=1e-12)
    assert ln_n_minus_mi({"mi": 1.0}) is None


def test_late_gain_known_answers() -> None:
    recs = [
        {"split": "valid", "step": 10, "elbo": -100.0, "distortion": 80.0, "rate": 20.0},
        {"split": "train", "step": 10, "elbo": -50.0},  # training means are not validation
        {"split": "valid", "step": 50, "elbo": -95.0, "distortion": 70.0, "rate": 25.0},
        {"split": "valid", "step": 95, "elbo": -94.0, "distortion": 66.0, "rate": 28.0},
        {"split": "valid", "step": 100, "elbo": -96.0, "distortion": 65.0, "rate": 31.0},
    ]
    # cut at step 90: best -ELBO before it 95, after 94 -> 1.0; D + 0.1 R: 72.5 before, 68.1 after -> 4.4
    assert late_gain(recs, 100) == pytest.approx(1.0)
    assert late_gain(recs, 100, "beta_elbo", 0.1) == pytest.approx(4.4)
    assert selection_loss(recs[0], "beta_elbo", 0.1) == pytest.approx(82.0)
    assert selection_loss(recs[0], "beta_elbo", None) is None
    worse = [*recs[:3], {"split": "valid", "step": 100, "elbo": -99.0}]
    assert late_gain(worse, 100) == 0.0  # no better model in the tail: nothing gained
    assert late_gain(recs[:3], 100) is None  # no validation in the last 10%


def test_the_capped_points_report_how_much_they_still_improved(sweep) -> None:
    _, rows, printed = sweep
    for r in rows:
        recs = [json.loads(x) for x in (Path(r["run_dir"]) / "metrics.jsonl").read_text().splitlines()]
        valid = [x for x in recs if x["split"] == "valid"]
        before = [-x["elbo"] for x in valid if x["step"] <= 0.9 * r["steps"]]
        expected = max(0.0, min(before) - min(-x["elbo"] for x in valid)) if len(before) < len(valid) else None
        assert r["late_gain"] == pytest.approx(expected)
    gains = sorted(r["late_gain"] for r in rows if r["stopped_by"] == "step_cap")
    assert f"still improved by {(gains[0] + gains[1]) / 2:.2f} nats (median; at most {gains[1]:.2f})" in printed
