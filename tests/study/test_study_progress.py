"""A study decides what it measures (only its own IW-NLL K, whatever the base YAML's eval.iw_samples) and shows
each point's progress on its output."""

from __future__ import annotations

import csv
import importlib
import json
import re
from pathlib import Path

import vaelab.progress
from vaelab.study import StudyRequest, run_study


def test_a_study_from_a_yaml_computes_the_iw_nll_only_with_its_own_k(tiny_config, tmp_path, monkeypatch, capsys):
    ks: list[int] = []
    collect_module = importlib.import_module("vaelab.metrics.collect")  # vaelab.metrics.collect is the function
    real = collect_module.iw_log_likelihood_from_posterior

    def counting(model, x, q, num_samples, *args, **kwargs):
        ks.append(num_samples)
        return real(model, x, q, num_samples, *args, **kwargs)

    monkeypatch.setattr(collect_module, "iw_log_likelihood_from_posterior", counting)
    monkeypatch.setattr(vaelab.progress, "REPORT_EVERY_S", 0.0)  # a progress line after every batch
    config = tiny_config(
        objective={"beta": {"type": "constant", "value": 1.0}},
        eval={"batch_size": 32, "iw_samples": 500, "iw_chunk": 100},
    )
    req = StudyRequest(data=str(config), methods=["plain", "free_bits"], budget="2", iw_samples=3)
    out = tmp_path / "study"
    table, _ = run_study(req, out)

    assert ks and set(ks) == {3}  # never the YAML's K = 500
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["iw_samples"] for r in rows] == ["3", "3"] and [r["iw_samples"] for r in table] == [3, 3]
    for row, t in zip(rows, table, strict=True):
        folder = Path(row["run_dir"])
        summary = json.loads((folder / "summary.json").read_text())
        test = json.loads((folder / "eval_test.json").read_text())
        assert summary["iw_samples"] == 3 and summary["final_evaluation"] == "eval_test.json"
        assert summary["nll_iw"] == test["nll_iw"] == float(row["test_nll_iw"]) == t["test_nll_iw"]
        assert summary["train_time"] == float(row["train_time"])

    err = capsys.readouterr().err.splitlines()
    assert len(err) == len(set(err))
    for name, method in (("0000-plain", "plain"), ("0001-free_bits", "free_bits")):
        mine = [line for line in err if line.startswith(f"{name}: ")]
        assert mine[0].startswith(f"{name}: vaelab sweep: point") and f"variant={method}" in mine[0]
        assert mine[0].endswith("seed=0): train")
        assert [line.split(":")[1].strip() for line in mine if ": epoch " in line] == ["epoch 1", "epoch 2"]
        progress = [line.removeprefix(f"{name}: ") for line in mine if ": IW-NLL K=" in line]
        assert re.fullmatch(r"IW-NLL K=3 on test: 32/64 examples, \d+s left", progress[0])
        assert re.fullmatch(r"IW-NLL K=3 on test: 64/64 examples in \d+s", progress[-1])
        assert any(line.startswith("[") and f"point {name} completed (train" in line for line in err)
