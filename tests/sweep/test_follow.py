"""The sweep's progress: the running points' log.txt lines on the sweep's own output, each once, prefixed by the
point's folder name, with worker processes too; and a deferred final evaluation leaves the measured numbers as
they were."""

from __future__ import annotations

import json
from pathlib import Path

from vaelab.sweep import run_point, run_sweep, spec_from_dict
from vaelab.sweep.runner import LOG_FILE, LogFollower, RunOptions, point_dir

from .helpers import sweep_dict


def two_points():
    return spec_from_dict(sweep_dict(seeds=[0], grid={"objective.beta.value": [0.5]}))


def check_followed(lines: list[str], out: Path, spec) -> None:
    assert len(lines) == len(set(lines)), "a line was shown twice"
    for point in spec.points():
        name = point.folder_name
        logged = (point_dir(out, point) / LOG_FILE).read_text().splitlines()
        shown = [line for line in lines if line.startswith(f"{name}: ")]
        assert shown == [f"{name}: {line}" for line in logged]  # every log.txt line, once, in order
        assert shown[0].startswith(f"{name}: vaelab sweep: point {point.index} (variant=")
        assert shown[0].endswith("seed=0): train")
        assert any(f"{name}: epoch 2: train elbo" in line and "valid elbo" in line for line in shown)
        finished = lines.index(
            next(line for line in lines if line.startswith("[") and f"point {name} completed" in line)
        )
        assert finished > lines.index(shown[-1])  # the result comes after the point's last line


def test_points_lines_are_shown_once_prefixed_with_two_workers(tmp_path: Path) -> None:
    spec = two_points()
    lines: list[str] = []
    results = run_sweep(spec, tmp_path / "out", workers=2, log=lines.append)
    assert [r.status for r in results] == ["completed", "completed"]
    check_followed(lines, tmp_path / "out", spec)


def test_points_lines_are_shown_once_prefixed_in_this_process(tmp_path: Path, capsys) -> None:
    spec = two_points()
    run_sweep(spec, tmp_path / "out", workers=1)  # the default log: this stderr
    err = capsys.readouterr().err.splitlines()
    check_followed(err, tmp_path / "out", spec)
    for point in spec.points():  # log.txt holds the point's own lines only, not the shown ones
        logged = (point_dir(tmp_path / "out", point) / LOG_FILE).read_text()
        assert not any(line.startswith(f"{p.folder_name}: ") for p in spec.points() for line in logged.splitlines())


def test_the_follower_shows_new_lines_once_and_the_unfinished_last_line_at_the_end(tmp_path: Path) -> None:
    folder = tmp_path / "0007-x"
    folder.mkdir()
    log = folder / LOG_FILE
    log.write_text("from an earlier run\n")
    shown: list[str] = []
    follower = LogFollower({7: folder}, shown.append, interval=3600)  # polled by hand
    with open(log, "a") as f:
        f.write("epoch 1\nepoch 2 par")
    follower.poll()
    assert shown == ["0007-x: epoch 1"]
    with open(log, "a") as f:
        f.write("tly\nIW-NLL K=4 on test: 10/64")
    follower.poll()
    follower.poll()
    assert shown == ["0007-x: epoch 1", "0007-x: epoch 2 partly"]
    follower.finish(7)
    follower.finish(7)
    assert shown[-1] == "0007-x: IW-NLL K=4 on test: 10/64" and len(shown) == 3


def test_a_deferred_final_evaluation_is_the_measurement(tmp_path: Path) -> None:
    spec = spec_from_dict(sweep_dict(seeds=[0], variants=[{"name": "a"}], grid={}, measure={"iw_samples": 3}))
    run_point(spec, 0, tmp_path / "own", RunOptions())
    run_point(spec, 0, tmp_path / "deferred", RunOptions(final_evaluation=False))
    folders = {k: point_dir(tmp_path / k, spec.point(0)) for k in ("own", "deferred")}
    read = {
        k: {n: json.loads((f / n).read_text()) for n in ("measurements.json", "summary.json")}
        for k, f in folders.items()
    }
    drop = ("test_seconds", "train_seconds")
    own, deferred = ({k: v for k, v in read[k]["measurements.json"].items() if k not in drop} for k in read)
    assert own == deferred  # the same numbers in the table
    assert read["own"]["summary.json"]["iw_samples"] == 4  # the base config's eval.iw_samples
    summary = read["deferred"]["summary.json"]
    test = json.loads((folders["deferred"] / "eval_test.json").read_text())
    assert summary["iw_samples"] == 3 and summary["final_evaluation"] == "eval_test.json"
    assert summary["nll_iw"] == test["nll_iw"] and summary["split"] == "test" and summary["status"] == "completed"
    assert summary["train_time"] > 0 and summary["epochs"] == 2
