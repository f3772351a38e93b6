"""Running sweeps: index addressing, only-missing re-runs, resume of killed points, failures, locks, the table."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from vaelab.sweep import read_results, run_point, run_sweep, spec_from_dict, write_results
from vaelab.sweep.runner import RunOptions, point_dir, point_state
from vaelab.sweep.spec import SweepError
from vaelab.training.trainer import Trainer

from .helpers import sweep_dict


def quiet(_: str) -> None:
    """A log function that drops the progress lines."""


def small_spec(**changes):
    """4 points: seeds [0] x variants (ok, bad) x beta [0.1, 1.0]; the 'bad' variant fails when loading data."""
    data = sweep_dict(
        seeds=[0],
        variants=[{"name": "ok", "model.hidden": [8]}, {"name": "bad", "data.train_size": 10**6}],
    )
    data.update(changes)
    return spec_from_dict(data)


def test_failing_points_are_recorded_and_do_not_stop_the_others(tmp_path: Path) -> None:
    spec = small_spec()
    results = run_sweep(spec, tmp_path / "out", workers=1, log=quiet)
    assert [(r.index, r.status, r.action) for r in results] == [
        (0, "completed", "train"),
        (1, "completed", "train"),
        (2, "failed", "none"),
        (3, "failed", "none"),
    ]
    err = json.loads((point_dir(tmp_path / "out", spec.point(2)) / "error.json").read_text())
    assert err["error_type"] == "ValueError" and err["phase"] == "data" and "data.train_size" in err["message"]
    assert "Traceback" in err["traceback"]

    rows = read_results(write_results(tmp_path / "out"))
    assert [r["status"] for r in rows] == ["completed", "completed", "failed", "failed"]
    assert rows[2]["error_type"] == "ValueError" and "data.train_size" in rows[2]["error"]
    assert rows[2]["test_nll_iw"] is None

    # a re-run skips failed points unless asked to retry them
    again = run_sweep(spec, tmp_path / "out", workers=1, log=quiet)
    assert {r.status for r in again} == {"skipped"}
    retry = run_sweep(spec, tmp_path / "out", workers=1, options=RunOptions(retry_failed=True), log=quiet)
    assert [r.status for r in retry] == ["skipped", "skipped", "failed", "failed"]


def test_results_table_contents(tmp_path: Path) -> None:
    spec = small_spec(variants=[{"name": "ok", "model.hidden": [8]}])
    run_sweep(spec, tmp_path / "out", workers=1, log=quiet)
    rows = read_results(write_results(tmp_path / "out"))
    assert [r["index"] for r in rows] == [0, 1]
    header = (tmp_path / "out" / "results.csv").read_text().splitlines()[0].split(",")
    assert header[:3] == ["index", "point", "status"] and len(header) == len(set(header))
    for r, beta in zip(rows, [0.1, 1.0], strict=True):
        assert r["status"] == "completed" and r["objective.beta.value"] == beta and r["seed"] == 0
        assert r["model.hidden"] == "[8]" and r["variant"] == "ok"
        # the training measurement uses a fixed subset as large as the test split; MI pools the whole split
        assert r["train_n"] == r["test_n"] == 64 and r["train_mi_pool"] == r["test_mi_pool"] == 64
        assert r["test_ln_n"] == pytest.approx(math.log(64))
        assert r["iw_samples"] == 8
        for split in ("train", "test"):
            assert r[f"{split}_marginal_kl"] == pytest.approx(r[f"{split}_rate"] - r[f"{split}_mi"])
            assert r[f"{split}_elbo"] == pytest.approx(-(r[f"{split}_rate"] + r[f"{split}_distortion"]))
            assert r[f"{split}_nll_iw"] <= -r[f"{split}_elbo"] + 1e-6  # the IW bound is tighter than the ELBO
        assert r["gap_nll"] == pytest.approx(r["test_nll_iw"] - r["train_nll_iw"])
        assert r["gap_distortion"] == pytest.approx(r["test_distortion"] - r["train_distortion"])
        assert r["gap_rate"] == pytest.approx(r["test_rate"] - r["train_rate"])
        folder = Path(r["run_dir"])
        summary = json.loads((folder / "summary.json").read_text())
        assert r["epochs"] == summary["epochs"] == 2
        for split in ("train", "test"):
            ev = json.loads((folder / f"eval_{split}.json").read_text())
            assert ev["split"] == split and ev["nll_iw"] == pytest.approx(r[f"{split}_nll_iw"])
        assert not (folder / "eval.json").exists()  # `vaelab evaluate`'s file is left alone


def test_index_runs_exactly_one_point_and_a_rerun_runs_only_what_is_missing(tmp_path: Path) -> None:
    spec = small_spec(variants=[{"name": "ok", "model.hidden": [8]}], seeds=[0, 1])
    out = tmp_path / "out"
    first = run_sweep(spec, out, indices=[2], workers=1, log=quiet)
    assert [(r.index, r.status) for r in first] == [(2, "completed")]
    assert [point_state(point_dir(out, p)) for p in spec.points()] == ["missing", "missing", "completed", "missing"]
    rest = run_sweep(spec, out, workers=1, log=quiet)
    assert [(r.index, r.status, r.action) for r in rest] == [
        (0, "completed", "train"),
        (1, "completed", "train"),
        (2, "skipped", "none"),
        (3, "completed", "train"),
    ]
    # a point trained but not measured (killed during measurement) is only measured
    folder = point_dir(out, spec.point(1))
    before = json.loads((folder / "measurements.json").read_text())
    (folder / "measurements.json").unlink()
    again = run_sweep(spec, out, workers=1, log=quiet)
    assert [(r.index, r.status, r.action) for r in again if r.status != "skipped"] == [(1, "completed", "measure")]
    after = json.loads((folder / "measurements.json").read_text())
    timing = {k for k in after if k.endswith("seconds")}
    assert {k: v for k, v in after.items() if k not in timing} == {k: v for k, v in before.items() if k not in timing}


def test_a_killed_point_resumes_from_its_checkpoint_and_matches_an_uninterrupted_run(tmp_path, monkeypatch) -> None:
    spec = small_spec(variants=[{"name": "ok", "model.hidden": [8]}], grid={"objective.beta.value": [0.5]})
    original = Trainer._run_epoch

    def killed_after_first_epoch(self, *args):
        reason = original(self, *args)
        if self.state["epoch"] == 1:
            raise KeyboardInterrupt  # as if the job were killed right after the epoch's checkpoint
        return reason

    monkeypatch.setattr(Trainer, "_run_epoch", killed_after_first_epoch)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(spec, tmp_path / "a", workers=1, log=quiet)
    folder = point_dir(tmp_path / "a", spec.point(0))
    assert point_state(folder) == "partial" and not (folder / ".running").exists()
    monkeypatch.setattr(Trainer, "_run_epoch", original)
    resumed = run_sweep(spec, tmp_path / "a", workers=1, log=quiet)
    assert [(r.status, r.action) for r in resumed] == [("completed", "resume")]
    run_sweep(spec, tmp_path / "b", workers=1, log=quiet)
    a = read_results(write_results(tmp_path / "a"))[0]
    b = read_results(write_results(tmp_path / "b"))[0]
    for key in ("test_nll_iw", "train_nll_iw", "test_rate", "train_mi", "gap_distortion"):
        assert a[key] == b[key], key  # resume is exact on CPU


def test_locks_keep_a_second_process_off_a_point(tmp_path: Path) -> None:
    spec = small_spec(variants=[{"name": "ok", "model.hidden": [8]}], grid={"objective.beta.value": [0.5]})
    folder = point_dir(tmp_path, spec.point(0))
    folder.mkdir(parents=True)
    lock = folder / ".running"
    lock.write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid()}))  # a live process holds it
    assert run_point(spec, 0, tmp_path).status == "locked"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lock.write_text(json.dumps({"host": socket.gethostname(), "pid": int(dead.stdout)}))  # a dead one: stale
    assert run_point(spec, 0, tmp_path).status == "completed"
    assert not lock.exists()


def test_appending_a_seed_keeps_the_finished_points_of_a_one_seed_sweep(tmp_path: Path) -> None:
    """With one seed the folders are NNNN-<variant>; with two they carry -seedS. Appending a seed renames the
    finished folders instead of training them again."""
    one = small_spec(variants=[{"name": "ok", "model.hidden": [8]}], grid={"objective.beta.value": [0.5]})
    out = tmp_path / "out"
    assert [r.action for r in run_sweep(one, out, workers=1, log=quiet)] == ["train"]
    assert point_dir(out, one.point(0)).name == "0000-ok"
    first = (point_dir(out, one.point(0)) / "measurements.json").read_text()

    two = small_spec(variants=[{"name": "ok", "model.hidden": [8]}], grid={"objective.beta.value": [0.5]}, seeds=[0, 1])
    results = run_sweep(two, out, workers=1, log=quiet)
    assert [(r.index, r.status, r.action) for r in results] == [(0, "skipped", "none"), (1, "completed", "train")]
    kept = point_dir(out, two.point(0))
    assert kept.name == "0000-seed0" and not (out / "points" / "0000-ok").exists()
    assert (kept / "measurements.json").read_text() == first
    assert json.loads((kept / "point.json").read_text())["folder"] == "0000-seed0"


def test_a_one_variant_sweep_folder_of_an_earlier_version_keeps_its_point_folder(tmp_path: Path, capsys) -> None:
    """Until issue 16 a sweep's only point, a named variant, was ``0000-point`` (now ``0000-<name>``): a folder
    written then still resumes, aggregates and lists that point instead of training it again beside it, and
    appending a seed renames it as before."""
    from vaelab.cli import main
    from vaelab.sweep import collect_rows

    one = small_spec(variants=[{"name": "ok", "model.hidden": [8]}], grid={"objective.beta.value": [0.5]})
    out = tmp_path / "out"
    assert [r.action for r in run_sweep(one, out, workers=1, log=quiet)] == ["train"]
    old = out / "points" / "0000-point"  # what the earlier version wrote
    (out / "points" / "0000-ok").rename(old)
    record = json.loads((old / "point.json").read_text())
    (old / "point.json").write_text(json.dumps({**record, "folder": "0000-point"}))
    first = (old / "measurements.json").read_text()

    assert [(r.status, r.action) for r in run_sweep(one, out, workers=1, log=quiet)] == [("skipped", "none")]
    assert point_dir(out, one.point(0)) == old and not (out / "points" / "0000-ok").exists()
    assert [(r["point"], r["status"]) for r in collect_rows(out)] == [("0000-point", "completed")]
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(one.to_dict()))
    assert main(["sweep", str(tmp_path / "s.yaml"), "--out", str(out), "--list"]) == 0
    assert "0\t0000-point\tcompleted" in capsys.readouterr().out

    two = small_spec(variants=[{"name": "ok", "model.hidden": [8]}], grid={"objective.beta.value": [0.5]}, seeds=[0, 1])
    results = run_sweep(two, out, workers=1, log=quiet)
    assert [(r.index, r.status, r.action) for r in results] == [(0, "skipped", "none"), (1, "completed", "train")]
    kept = point_dir(out, two.point(0))
    assert kept.name == "0000-seed0" and not old.exists() and (kept / "measurements.json").read_text() == first


def test_a_process_releases_only_its_own_lock(tmp_path: Path) -> None:
    """A process taken for dead (or overridden with --ignore-locks) must not delete the lock of the process that
    took the point over when it finally exits."""
    from vaelab.sweep.runner import _acquire, _release

    lock = tmp_path / ".running"
    assert _acquire(tmp_path, ignore=False) and json.loads(lock.read_text())["pid"] == os.getpid()
    other = {"host": socket.gethostname(), "pid": os.getppid()}  # a live process other than this one
    lock.write_text(json.dumps(other))  # ... took the point over
    _release(tmp_path)
    assert json.loads(lock.read_text()) == other
    lock.write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid()}))
    _release(tmp_path)
    assert not lock.exists()


def test_a_point_folder_of_another_config_is_refused(tmp_path: Path) -> None:
    spec = small_spec(variants=[{"name": "ok", "model.hidden": [8]}], grid={"objective.beta.value": [0.5]})
    assert run_point(spec, 0, tmp_path).status == "completed"
    changed = small_spec(
        variants=[{"name": "ok", "model.hidden": [8]}], grid={"objective.beta.value": [0.5]}, fixed={"train.lr": 0.1}
    )
    with pytest.raises(SweepError, match="was run with another config"):
        run_point(changed, 0, tmp_path)


def test_parallel_workers_use_one_thread_each_and_give_the_numbers_of_one_process(tmp_path: Path) -> None:
    spec = small_spec(
        variants=[{"name": "ok", "model.hidden": [8]}, {"name": "bad", "data.train_size": 10**6}],
        grid={"objective.beta.value": [0.5]},
    )
    par = run_sweep(spec, tmp_path / "par", workers=2, log=quiet)
    assert [r.status for r in par] == ["completed", "failed"]
    meta = yaml.safe_load((point_dir(tmp_path / "par", spec.point(0)) / "config.yaml").read_text())["_meta"]
    assert meta["torch_threads"] == 1
    run_sweep(spec, tmp_path / "seq", indices=[0], workers=1, log=quiet)
    a = read_results(write_results(tmp_path / "par"))[0]
    b = read_results(write_results(tmp_path / "seq"))[0]
    assert a["test_nll_iw"] == pytest.approx(b["test_nll_iw"], rel=1e-5)
    assert a["train_mi"] == pytest.approx(b["train_mi"], abs=1e-4)


def test_a_folder_written_before_a_config_key_existed_keeps_its_finished_points(tmp_path: Path) -> None:
    """A later version adds config keys (at defaults that change nothing). A sweep folder written before the key
    existed must still match the same sweep asked again: its finished points are kept, not refused."""
    spec = small_spec(variants=[{"name": "ok", "model.hidden": [8]}], grid={"objective.beta.value": [0.5]})
    out = tmp_path / "out"
    assert [r.action for r in run_sweep(spec, out, workers=1, log=quiet)] == ["train"]
    folder = point_dir(out, spec.point(0))
    first = (folder / "measurements.json").read_text()
    # what the earlier version wrote: no train.precision anywhere, and the point's hash computed without it
    stored = yaml.safe_load((out / "sweep.yaml").read_text())
    stored["base_config"]["train"].pop("precision", None)
    (out / "sweep.yaml").write_text(yaml.safe_dump(stored, sort_keys=False))
    saved = yaml.safe_load((folder / "config.yaml").read_text())
    assert saved["train"].pop("precision") == "fp32"
    (folder / "config.yaml").write_text(yaml.safe_dump(saved, sort_keys=False))
    record = json.loads((folder / "point.json").read_text())
    (folder / "point.json").write_text(json.dumps({**record, "config_hash": "0123456789abcdef"}))

    results = run_sweep(spec, out, workers=1, log=quiet)
    assert [(r.status, r.action) for r in results] == [("skipped", "none")]
    assert (folder / "measurements.json").read_text() == first
    # an unfinished point of such a folder (checked before it trains or resumes) is accepted and re-hashed
    from vaelab.sweep.runner import _check_point_file
    from vaelab.sweep.spec import config_hash

    _check_point_file(folder, spec.point(0), config_hash(spec.config(spec.point(0))))
    assert json.loads((folder / "point.json").read_text())["config_hash"] == record["config_hash"]
    # a real change is still refused, and the message names the key
    changed = small_spec(variants=[{"name": "ok", "model.hidden": [8]}], grid={"objective.beta.value": [0.7]})
    with pytest.raises(SweepError, match=r"differs in objective.beta.value: 0.5 -> 0.7"):
        run_sweep(changed, out, workers=1, log=quiet)
