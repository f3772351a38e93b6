"""Reusing finished points of other study or sweep folders (``--reuse``), and a study continued with its preset
spelled out (`--set` compared by the resolved run config, not as written)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vaelab.cli import main
from vaelab.config import ConfigError
from vaelab.study import run_study
from vaelab.sweep.spec import SweepError

from .test_study import tiny_request


def _measurements(out: Path) -> dict[str, str]:
    return {p.name: (p / "measurements.json").read_text() for p in sorted((out / "points").iterdir())}


def test_a_study_extended_by_a_method_reuses_the_finished_runs(tmp_path: Path):
    first, second = tmp_path / "first", tmp_path / "second"
    run_study(tiny_request(methods=["plain"], seeds=[0, 1]), first)
    before = _measurements(first)
    table, _ = run_study(tiny_request(methods=["plain", "free_bits"], seeds=[0, 1]), second, reuse=[first])
    points = second / "points"
    assert sorted(p.name for p in points.iterdir()) == [
        "0000-plain-seed0",
        "0001-free_bits-seed0",
        "0002-plain-seed1",
        "0003-free_bits-seed1",
    ]
    for donor, name in (("0000-seed0", "0000-plain-seed0"), ("0001-seed1", "0002-plain-seed1")):
        record = json.loads((points / name / "point.json").read_text())
        assert record["index"] == int(name[:4]) and record["folder"] == name
        assert record["reused_from"] == str(first / "points" / donor)
        # copied, not trained again: the run's files are the first study's, byte for byte
        assert (points / name / "measurements.json").read_text() == before[donor]
        copied = (points / name / "metrics.jsonl").read_bytes()
        assert copied == (first / "points" / donor / "metrics.jsonl").read_bytes()
    for name in ("0001-free_bits-seed0", "0003-free_bits-seed1"):  # new: trained here
        assert "reused_from" not in json.loads((points / name / "point.json").read_text())
    assert [r["seeds_completed"] for r in table] == [2, 2]
    assert [r["seeds_reused"] for r in table] == [2, 0]
    assert "2 of the 4 runs were copied from earlier study folders" in (second / "study.md").read_text()


def test_reuse_matches_the_run_config_seed_included_and_remeasures_other_settings(tmp_path: Path):
    first, second = tmp_path / "first", tmp_path / "second"
    run_study(tiny_request(methods=["plain"], seeds=[1]), first)
    # seed 0 has another config than the first study's only run: trained, not copied
    run_study(tiny_request(methods=["plain"], seeds=[0, 1], iw_samples=3), second, reuse=[first])
    seed0 = json.loads((second / "points" / "0000-seed0" / "point.json").read_text())
    seed1 = json.loads((second / "points" / "0001-seed1" / "point.json").read_text())
    assert "reused_from" not in seed0 and "reused_from" in seed1
    # measured with K = 4 there and K = 3 here: the trained model is kept and measured again
    (donor,) = (first / "points").iterdir()
    old = json.loads((donor / "measurements.json").read_text())
    new = json.loads((second / "points" / "0001-seed1" / "measurements.json").read_text())
    assert old["iw_samples"] == 4 and new["iw_samples"] == 3
    assert (second / "points" / "0001-seed1" / "checkpoints" / "best.pt").read_bytes() == (
        donor / "checkpoints" / "best.pt"
    ).read_bytes()


def test_reuse_refuses_its_own_folder_and_a_folder_that_is_not_a_sweep(tmp_path: Path):
    out = tmp_path / "s"
    run_study(tiny_request(methods=["plain"]), out)
    with pytest.raises(SweepError, match="own folder"):
        run_study(tiny_request(methods=["plain"], seeds=[0, 1]), out, reuse=[out])
    (tmp_path / "empty").mkdir()
    with pytest.raises(SweepError, match="not a sweep or study folder"):
        run_study(tiny_request(), tmp_path / "t", reuse=[tmp_path / "empty"])


def test_a_study_continues_when_a_preset_value_is_spelled_out(tmp_path: Path):
    out = tmp_path / "s"
    run_study(tiny_request(methods=["plain"]), out)
    stamp = (out / "points" / "0000-plain" / "measurements.json").stat().st_mtime_ns
    spelled = tiny_request(methods=["plain"])
    spelled.overrides.append("train.batch_size=64")  # already the request's value: the same runs
    run_study(spelled, out)
    assert (out / "points" / "0000-plain" / "measurements.json").stat().st_mtime_ns == stamp
    changed = tiny_request(methods=["plain"])
    changed.overrides.append("train.batch_size=32")
    with pytest.raises((ConfigError, SweepError), match=r"train\.batch_size"):
        run_study(changed, out)


def test_cli_reuse_flag(tmp_path: Path, capsys):
    first = tmp_path / "first"
    run_study(tiny_request(methods=["plain"]), first)
    req = tiny_request()
    args = ["study", "collapse", "--data", req.data, "--methods", "plain,free_bits", "--budget", req.budget]
    args += ["--iw-samples", str(req.iw_samples), "--set", *req.overrides, "--no-report"]
    args += ["--out", str(tmp_path / "second"), "--reuse", str(first)]
    assert main(args) == 0
    assert "reused from" in capsys.readouterr().err
    record = json.loads((tmp_path / "second" / "points" / "0000-plain" / "point.json").read_text())
    assert record["reused_from"] == str(first / "points" / "0000-plain")
