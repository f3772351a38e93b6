"""Reliability and security of run folders: loading a checkpoint never executes code, and one writer per folder.

Checkpoints are read with ``torch.load(weights_only=True)``; old ones (numpy RNG state as an array) still load and
resume exactly; a checkpoint holding a pickled object that would run code, or a truncated one, is refused with one
line naming the file. ``train``/``resume`` hold ``DIR/run.lock``; a second writer is refused naming the holder's
pid, a dead holder's lock is taken over, and ``train --out`` never overwrites a folder that holds another run.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import vaelab
from conftest import Crash, crash_at_step
from vaelab.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from vaelab.cli import main
from vaelab.config import load_config
from vaelab.runlock import RUN_LOCK, RunFolderLocked, RunLock, acquire_lock, lock_holder, release_lock
from vaelab.training.trainer import Trainer


def _summary(d: Path) -> dict:
    return json.loads((d / "summary.json").read_text())


def _files(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its bytes (to show that nothing changed)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _dead_pid() -> int:
    """The pid of a process that has exited."""
    r = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(r.stdout)


# --------------------------------------------------------------------------------------------------------------
# safe loading


class _RunsCode:
    """A pickled object whose unpickling would create ``marker`` (as a malicious checkpoint would run code)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (exec, (f"open({str(self.marker)!r}, 'w').close()",))


def _to_legacy_format(path: Path, numpy1_names: bool = False) -> None:
    """Rewrite a checkpoint as vaelab wrote it before checkpoints were plain data: numpy's RNG state as its
    ``get_state()`` tuple (a numpy array inside), python's as ``getstate()``; ``numpy1_names``: with the global
    names numpy 1 pickles under (``numpy.core.multiarray``)."""
    ckpt = torch.load(path, weights_only=True)
    rng = ckpt["rng"]
    n = rng["numpy"]
    keys = np.asarray(n["keys"].numpy(), dtype=np.uint32)
    rng["numpy"] = (n["kind"], keys, n["pos"], n["has_gauss"], n["cached_gaussian"])
    version, internal, gauss = rng["python"]
    rng["python"] = (version, tuple(internal), gauss)
    torch.save(ckpt, path)
    if numpy1_names:
        src = path.with_suffix(".new.pt")
        path.rename(src)
        with zipfile.ZipFile(src) as zin, zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zout:
            for info in zin.infolist():
                data = zin.read(info)
                if info.filename.endswith("data.pkl"):
                    data = data.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
                zout.writestr(info.filename, data)
        src.unlink()


def test_checkpoints_hold_plain_data_and_load_with_weights_only(tiny_config, tmp_path):
    Trainer(load_config(tiny_config()), tmp_path / "run").fit()
    for name in ("last.pt", "best.pt"):
        ckpt = torch.load(tmp_path / "run" / "checkpoints" / name, weights_only=True)  # no allow-list needed
        assert isinstance(ckpt["rng"]["numpy"]["keys"], torch.Tensor)
    with pytest.raises(TypeError, match=r"checkpoint\['x'\] is a numpy.float64"):
        save_checkpoint(tmp_path / "bad.pt", {"x": np.float64(1.0)})
    assert not (tmp_path / "bad.pt").exists()


@pytest.mark.parametrize("numpy1_names", [False, True], ids=["numpy2-names", "numpy1-names"])
def test_an_old_checkpoint_with_a_numpy_rng_state_still_resumes_exactly(tiny_config, tmp_path, numpy1_names):
    if torch.torch_version.TorchVersion(torch.__version__) < ((2, 6) if numpy1_names else (2, 5)):
        pytest.skip("allow-listing numpy globals (under another name) needs a newer torch")
    cfg = load_config(tiny_config())
    full = Trainer(cfg, tmp_path / "full").fit()
    crash_at_step(Trainer(cfg, tmp_path / "old"), 13)  # the last checkpoint is at step 12
    last = tmp_path / "old" / "checkpoints" / "last.pt"
    _to_legacy_format(last, numpy1_names)
    with pytest.raises(Exception, match="_reconstruct"):
        torch.load(last, weights_only=True)  # the plain safe reader refuses it: the allow-list is what reads it
    assert isinstance(load_checkpoint(last)["rng"]["numpy"], tuple)
    assert main(["resume", str(tmp_path / "old")]) == 0
    resumed = _summary(tmp_path / "old")
    for k in ("elbo", "rate", "distortion", "nll_iw", "mi", "au"):
        assert resumed[k] == full[k], k
    torch.load(last, weights_only=True)  # rewritten in the plain format


@pytest.fixture
def trained_run(tiny_config, tmp_path) -> Path:
    out = tmp_path / "run"
    cfg = load_config(tiny_config(train={"epochs": 1}))
    Trainer(cfg, out).fit()
    return out


@pytest.mark.parametrize("command", ["evaluate", "resume", "diagnose"])
def test_a_checkpoint_that_would_run_code_is_refused_and_nothing_runs(trained_run, tmp_path, cli_env, command):
    marker = tmp_path / "payload-ran"
    for name in ("best.pt", "last.pt"):
        path = trained_run / "checkpoints" / name
        ckpt = torch.load(path, weights_only=True)
        ckpt["model"]["extra"] = _RunsCode(marker)
        torch.save(ckpt, path)
    args = {"diagnose": ["diagnose", str(trained_run), "--evaluate"]}.get(command, [command, str(trained_run)])
    r = subprocess.run([sys.executable, "-m", "vaelab", *args], env=cli_env, capture_output=True, text=True)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    name = "last.pt" if command == "resume" else "best.pt"
    assert str(trained_run / "checkpoints" / name) in lines[0] and "refused" in lines[0]
    assert not marker.exists()


def test_a_truncated_checkpoint_is_one_line_naming_the_file(trained_run, capsys):
    best = trained_run / "checkpoints" / "best.pt"
    data = best.read_bytes()
    best.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=str(best)):
        load_checkpoint(best)
    capsys.readouterr()
    assert main(["evaluate", str(trained_run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(best) in err[0] and "truncated" in err[0]


# --------------------------------------------------------------------------------------------------------------
# run identity: a checkpoint belongs to the run folder whose config.yaml holds its run id


def _meta_run_id(d: Path) -> str | None:
    return yaml.safe_load((d / "config.yaml").read_text())["_meta"].get("run_id")


def _ckpt_run_id(d: Path, name: str) -> str | None:
    return torch.load(d / "checkpoints" / name, weights_only=True).get("run_id")


def test_a_best_pt_copied_from_another_run_of_the_same_config_is_refused(tiny_config, tmp_path, capsys):
    cfg = load_config(tiny_config(train={"epochs": 1}))
    run, other = tmp_path / "run", tmp_path / "other"
    Trainer(cfg, run).fit()
    Trainer(cfg, other).fit()  # the same config, seed and architecture: only the run id differs
    assert _meta_run_id(run) != _meta_run_id(other)
    best = run / "checkpoints" / "best.pt"
    shutil.copy(other / "checkpoints" / "best.pt", best)
    capsys.readouterr()
    assert main(["evaluate", str(run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{best} belongs to another run" in err[0], err
    assert _meta_run_id(other) in err[0] and _meta_run_id(run) in err[0]
    assert not (run / "eval.json").exists()
    with pytest.raises(CheckpointError, match="belongs to another run"):
        vaelab.load_run(run)
    vaelab.load_run(run, "last")  # its own last.pt still loads


def test_resume_keeps_the_run_id_and_its_new_checkpoints_carry_it(tiny_config, tmp_path):
    d = tmp_path / "run"
    crash_at_step(Trainer(load_config(tiny_config()), d), 13)  # the last checkpoint is at step 12
    run_id = _meta_run_id(d)
    assert isinstance(run_id, str) and len(run_id) == 32
    assert _ckpt_run_id(d, "last.pt") == run_id and _ckpt_run_id(d, "best.pt") == run_id
    assert main(["resume", str(d)]) == 0
    assert _meta_run_id(d) == run_id
    last = torch.load(d / "checkpoints" / "last.pt", weights_only=True)
    assert last["trainer"]["step"] > 12 and last["run_id"] == run_id
    assert _ckpt_run_id(d, "best.pt") == run_id


def test_folders_and_checkpoints_without_a_run_id_still_load(trained_run, capsys):
    best = trained_run / "checkpoints" / "best.pt"
    ckpt = torch.load(best, weights_only=True)
    ckpt["run_id"] = "0123456789abcdef0123456789abcdef"  # another run's id ...
    torch.save(ckpt, best)
    config = trained_run / "config.yaml"
    saved = config.read_text()
    data = yaml.safe_load(saved)
    del data["_meta"]["run_id"]  # ... but config.yaml written before run ids: nothing to compare
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    assert main(["evaluate", str(trained_run)]) == 0
    config.write_text(saved)
    with pytest.raises(CheckpointError, match="belongs to another run"):
        vaelab.load_run(trained_run)
    del ckpt["run_id"]  # an old checkpoint in a folder with an id: nothing to compare either
    torch.save(ckpt, best)
    vaelab.load_run(trained_run)


# --------------------------------------------------------------------------------------------------------------
# one writer per run folder


def test_lock_names_its_holder_and_a_dead_holder_is_taken_over(tmp_path):
    path = tmp_path / RUN_LOCK
    assert acquire_lock(path)
    held = json.loads(path.read_text())
    assert held["pid"] == os.getpid() and held["host"] == socket.gethostname()
    assert not acquire_lock(path)  # held by a live process (this one)
    with pytest.raises(RunFolderLocked, match=f"pid {os.getpid()} on host"):
        RunLock(tmp_path).acquire()
    release_lock(path)
    assert not path.exists()

    path.write_text(json.dumps({"host": socket.gethostname(), "pid": _dead_pid()}))
    assert lock_holder(path) is None and acquire_lock(path)  # stale: taken over
    assert json.loads(path.read_text())["pid"] == os.getpid()
    release_lock(path)

    other = {"host": "another-host.invalid", "pid": os.getpid()}  # liveness unknown on another host: respected
    path.write_text(json.dumps(other))
    assert lock_holder(path) == other and not acquire_lock(path)
    release_lock(path)  # not this process's lock: left alone
    assert json.loads(path.read_text()) == other


@pytest.mark.parametrize("exc", [Crash, KeyboardInterrupt])
def test_the_run_lock_is_released_on_a_crash_and_an_interrupt(tiny_config, tmp_path, exc):
    trainer = Trainer(load_config(tiny_config()), tmp_path / "run")
    seen = []
    real = trainer.strategy.train_step

    def step(ctx, x, i):
        seen.append(lock_holder(tmp_path / "run" / RUN_LOCK))
        return real(ctx, x, i)

    trainer.strategy.train_step = step
    crash_at_step(trainer, 5, exc)
    assert seen and all(h is not None and h["pid"] == os.getpid() for h in seen)  # held while training
    assert not (tmp_path / "run" / RUN_LOCK).exists()


PAUSED_TRAINER = """
import sys, time
from pathlib import Path
from vaelab.config import load_config
from vaelab.training.trainer import Trainer

cfg, out, ready = sys.argv[1:]
trainer = Trainer(load_config(cfg), out)
real = trainer.strategy.train_step

def step(ctx, x, i):
    if i == 5:  # after the checkpoint at step 4: hold the folder as a long run would
        Path(ready).touch()
        time.sleep(300)
    return real(ctx, x, i)

trainer.strategy.train_step = step
trainer.fit()
"""


def test_a_second_trainer_is_refused_naming_the_holder_then_takes_over_once_it_died(tiny_config, tmp_path, cli_env):
    out, ready = tmp_path / "run", tmp_path / "ready"
    first = subprocess.Popen(
        [sys.executable, "-c", PAUSED_TRAINER, str(tiny_config()), str(out), str(ready)],
        env=cli_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not ready.exists() and first.poll() is None:
            time.sleep(0.05)
        assert ready.exists() and (out / "checkpoints" / "last.pt").exists(), "the first trainer did not start"
        assert json.loads((out / RUN_LOCK).read_text())["pid"] == first.pid
        second = subprocess.run(
            [sys.executable, "-m", "vaelab", "resume", str(out)], env=cli_env, capture_output=True, text=True
        )
        assert second.returncode == 2, second.stderr
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and f"pid {first.pid} on host {socket.gethostname()}" in lines[0], second.stderr
        assert str(out / RUN_LOCK) in lines[0]
        before = _files(out)
        with pytest.raises(RunFolderLocked, match=f"pid {first.pid} on host"):  # a trainer's fit, past the CLI
            Trainer(load_config(tiny_config()), out, resume=True).fit()
        assert _files(out) == before
        assert first.poll() is None  # the holder was never disturbed
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert json.loads((out / RUN_LOCK).read_text())["pid"] == first.pid  # left behind by the killed holder
    assert main(["resume", str(out)]) == 0  # the holder is dead: its lock is taken over
    assert _summary(out)["status"] == "completed" and not (out / RUN_LOCK).exists()


def test_fit_rechecks_the_folder_once_it_holds_the_lock(tiny_config, tmp_path):
    """A trainer created while the folder was empty does not overwrite a run that finished there meanwhile."""
    cfg = load_config(tiny_config())
    late = Trainer(cfg, tmp_path / "run")
    Trainer(cfg, tmp_path / "run").fit()
    before = _files(tmp_path / "run")
    with pytest.raises(FileExistsError, match="already holds a run"):
        late.fit()
    assert _files(tmp_path / "run") == before


def test_train_out_on_a_finished_run_is_refused_and_nothing_changes(tiny_config, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", str(tiny_config()), "--out", str(out)]) == 0
    before = _files(out)
    capsys.readouterr()
    assert main(["train", str(tiny_config()), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"vaelab resume {out}" in err[0] and "another --out" in err[0]
    assert _files(out) == before

    for ckpt in (out / "checkpoints").iterdir():  # without checkpoints, summary.json still marks a finished run
        ckpt.unlink()
    before = _files(out)
    assert main(["train", str(tiny_config()), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "finished run" in err[0] and "another --out" in err[0]
    assert _files(out) == before

    (out / "summary.json").unlink()  # ... and so does metrics.jsonl
    before = _files(out)
    assert main(["train", str(tiny_config()), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "metrics.jsonl" in err[0] and "another --out" in err[0]
    assert _files(out) == before


def test_train_out_may_restart_what_a_crashed_or_failed_start_left(tiny_config, tmp_path):
    cfg = load_config(tiny_config())
    out = tmp_path / "run"
    crash_at_step(Trainer(cfg, out), 2)  # before the first checkpoint (step 4): config.yaml, steps.jsonl
    assert not (out / "checkpoints" / "last.pt").exists() and (out / "config.yaml").exists()
    (out / "summary.json").write_text(json.dumps({"status": "failed", "reason": "loss is nan"}))
    (out / RUN_LOCK).write_text(json.dumps({"host": socket.gethostname(), "pid": _dead_pid()}))  # stale
    (out / "notes.txt").write_text("mine")
    assert Trainer(cfg, out).fit()["status"] == "completed"
    assert (out / "notes.txt").read_text() == "mine" and not (out / RUN_LOCK).exists()


def test_rng_state_round_trip_is_exact():
    from vaelab.checkpoint import rng_state, set_rng_state

    state = rng_state()
    a = (torch.rand(3), np.random.rand(3), random.random(), np.random.standard_normal())
    set_rng_state(state)
    b = (torch.rand(3), np.random.rand(3), random.random(), np.random.standard_normal())
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2:] == b[2:]


# --------------------------------------------------------------------------------------------------------------
# what resume and evaluate accept; messages that point somewhere real


def test_resume_takes_evaluation_overrides_and_finishes_a_run_whose_saved_value_was_bad(tiny_config, tmp_path, capsys):
    import yaml

    out = tmp_path / "run"
    crash_at_step(Trainer(load_config(tiny_config()), out), 6)
    data = yaml.safe_load((out / "config.yaml").read_text())
    data["eval"]["iw_samples"] = -1  # as an older vaelab accepted, and failed on only after training
    (out / "config.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    before = _files(out)
    assert main(["resume", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "eval.iw_samples must be an integer in [0, 1000000], got -1" in err[0]
    assert _files(out) == before
    assert main(["resume", str(out), "eval.iw_samples=7", "train.log_every_steps=3"]) == 0
    assert _summary(out)["iw_samples"] == 7
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["eval"]["iw_samples"] == 7 and saved["train"]["log_every_steps"] == 3
    assert saved["_meta"]["overrides_on_resume"] == ["eval.iw_samples=7", "train.log_every_steps=3"]
    assert saved["_meta"]["vaelab"]  # the provenance block is kept


def test_evaluate_takes_the_evaluation_subset(trained_run, capsys):
    assert main(["evaluate", str(trained_run), "data.eval_size=16", "--iw-samples", "3"]) == 0
    result = json.loads((trained_run / "eval.json").read_text())
    assert result["n"] == 16 and result["iw_samples"] == 3 and result["overrides"] == ["data.eval_size=16"]


def test_evaluate_takes_the_precision_and_leaves_the_model_alone(trained_run, capsys):
    """train.precision changes only the evaluation's matrix products: bf16 is close to fp32 on the same checkpoint,
    the override is recorded in eval.json, config.yaml and the checkpoints are unchanged; fp16 on a CPU and an
    unknown precision are one line naming the key."""
    before = _files(trained_run)
    assert main(["evaluate", str(trained_run), "--iw-samples", "3"]) == 0
    fp32 = json.loads((trained_run / "eval.json").read_text())
    assert main(["evaluate", str(trained_run), "train.precision=bf16", "--iw-samples", "3"]) == 0
    bf16 = json.loads((trained_run / "eval.json").read_text())
    assert bf16["overrides"] == ["train.precision=bf16"]
    assert bf16["elbo"] == pytest.approx(fp32["elbo"], rel=2e-2) and bf16["elbo"] != fp32["elbo"]
    assert bf16["nll_iw"] == pytest.approx(fp32["nll_iw"], rel=2e-2)
    assert {k: v for k, v in _files(trained_run).items() if k != "eval.json"} == before
    capsys.readouterr()
    bad = ["train.precision=fp64"] + ([] if torch.cuda.is_available() else ["train.precision=fp16"])
    for override in bad:
        assert main(["evaluate", str(trained_run), override]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "train.precision" in err[0], err
    assert main(["resume", str(trained_run), "train.precision=bf16"]) == 2  # it would change the trained model
    assert "vaelab resume does not accept train.precision" in capsys.readouterr().err


def _nan_at(trainer: Trainer, step: int) -> None:
    from vaelab.objectives import NonFiniteLossError

    real = trainer.strategy.train_step

    def train_step(ctx, x, i):
        if i == step:
            raise NonFiniteLossError("rate", i, float("nan"))
        return real(ctx, x, i)

    trainer.strategy.train_step = train_step


def test_the_nan_message_names_a_real_checkpoint_or_says_there_is_none(tiny_config, tmp_path):
    from vaelab.training.trainer import TrainingFailed

    cfg = load_config(tiny_config())
    early = Trainer(cfg, tmp_path / "early")
    _nan_at(early, 2)  # the first checkpoint is at step 4
    with pytest.raises(TrainingFailed) as e:
        early.fit()
    msg = str(e.value)
    assert "before the first checkpoint was written" in msg and "none written" not in msg
    assert "into a new folder (--out) with a lower train.lr" in msg and "resume cannot change" in msg
    late = Trainer(cfg, tmp_path / "late")
    _nan_at(late, 6)
    with pytest.raises(TrainingFailed, match=r"last good checkpoint is .*last.pt \(step 4\); train again"):
        late.fit()


def test_the_iw_suggestion_states_its_time(tiny_config, tmp_path, capsys):
    from vaelab.cli import iw_time_estimate

    assert iw_time_estimate({"eval_time": 2880.0, "iw_samples": 500}) == "about 8.0 h"
    assert iw_time_estimate({"eval_time": 6.0, "iw_samples": 500}) == "about 60 s"
    assert iw_time_estimate({}) == ""
    assert main(["train", str(tiny_config()), "--out", str(tmp_path / "run")]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if "--iw-samples 5000" in ln)
    assert "K=5000: about" in line and "the final evaluation with K=20 took" in line


def test_no_validation_split_trains_on_everything(tiny_config, tmp_path):
    rng = np.random.default_rng(0)
    npz = tmp_path / "d.npz"
    np.savez(npz, train=(rng.random((96, 36)) > 0.5).astype("float32"), test=(rng.random((32, 36)) > 0.5))
    path = tiny_config(data={"name": "npz", "path": str(npz), "image_shape": [1, 6, 6], "valid_size": 0})
    data = yaml.safe_load(path.read_text())
    del data["data"]["num_examples"]  # the tiny config's generator setting, which npz does not read
    path.write_text(yaml.safe_dump(data))
    cfg = load_config(path)
    summary = Trainer(cfg, tmp_path / "run").fit()
    assert summary["status"] == "completed" and summary["best_epoch"] == 3
    records = [json.loads(ln) for ln in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert {r["split"] for r in records} == {"train"} and len(records) == 3
    assert main(["evaluate", str(tmp_path / "run")]) == 0


def test_text_bom_unknown_token_and_labelled_plain_files(tmp_path):
    from vaelab.data import DataError, load_dataset

    d = tmp_path / "c"
    d.mkdir()
    (d / "train.txt").write_bytes("\ufeffhello world _UNK\nhello _UNK there\n".encode())
    (d / "test.txt").write_text("hello world\n")
    (d / "valid.txt").write_text("world _UNK\n")
    cfg = load_config(None, ["model.type=lstm_vae", "data.name=text", f"data.path={d}", "data.unk_token=_UNK"]).data
    ds = load_dataset(cfg)
    assert "hello" in ds.vocab and not any("\ufeff" in w for w in ds.vocab.itos) and "_UNK" not in ds.vocab
    assert ds.info["unk_rate"]["train"] == pytest.approx(2 / 6) and ds.info["unk_rate"]["valid"] == 0.5
    (d / "train.txt").write_text("1\thello world\n0\tworld there\n2\thello\n")
    with pytest.raises(DataError, match=r"train.txt: 3 of the first 3 lines look like LABEL<TAB>sentence"):
        load_dataset(cfg)
