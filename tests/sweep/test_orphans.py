"""Sweep workers die with their parent: SIGKILL of `vaelab sweep --workers 2` leaves no worker training (issue 16)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from vaelab.runlock import pid_alive
from vaelab.sweep import spec_from_dict
from vaelab.sweep.runner import LOCK_FILE, point_dir

from .helpers import sweep_dict


def _wait(cond, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.1)
    return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process checks through /proc and os.kill")
def test_killing_the_sweep_process_kills_its_workers(tmp_path: Path, cli_env) -> None:
    data = sweep_dict(seeds=[0], grid={}, fixed={"train.epochs": 100000})  # points that would train for hours
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(data))
    out = tmp_path / "out"
    script = textwrap.dedent(
        f"""
        import json
        from vaelab.sweep import run_sweep, spec_from_dict
        spec = spec_from_dict(json.load(open({str(spec_file)!r})))
        run_sweep(spec, {str(out)!r}, workers=2, log=lambda s: None)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script], env=cli_env, start_new_session=True)
    spec = spec_from_dict(data)
    locks = [point_dir(out, spec.point(i)) / LOCK_FILE for i in range(2)]
    try:
        assert _wait(lambda: all(p.is_file() and p.read_text().strip() for p in locks), 120), "workers never started"
        workers = [int(json.loads(p.read_text())["pid"]) for p in locks]
        assert all(pid != parent.pid and pid_alive(pid) for pid in workers)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(10)
        assert _wait(lambda: not any(pid_alive(pid) for pid in workers), 15), "orphaned workers kept training"
    finally:
        if parent.poll() is None:
            os.killpg(parent.pid, signal.SIGKILL)
        with_pids = [p for p in locks if p.is_file()]
        for p in with_pids:  # never leave a stray worker behind, whatever failed above
            with contextlib.suppress(OSError, ValueError, KeyError):
                os.kill(int(json.loads(p.read_text())["pid"]), signal.SIGKILL)


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # a shell's background job starts with Ctrl-C ignored


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process checks through /proc and os.kill")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_stops_a_parallel_sweep_promptly_and_leaves_its_points_resumable(tmp_path: Path, cli_env, sig) -> None:
    """Ctrl-C (SIGINT to the sweep process alone, as `kill -INT` sends it) or SIGTERM: the workers save their
    point's checkpoint and exit, the sweep says how to continue in one line and exits 130 within seconds."""
    import yaml

    from vaelab.sweep.runner import point_state

    data = sweep_dict(seeds=[0, 1, 2], variants=[], grid={}, fixed={"train.epochs": 100000})
    data["fixed"]["train.checkpoint_every_steps"] = 2
    spec_file = tmp_path / "sweep.yaml"
    spec_file.write_text(yaml.safe_dump(data))
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "vaelab", "sweep", str(spec_file), "--workers", "2", "--out", str(out)]
    parent = subprocess.Popen(argv, env=cli_env, stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint)
    spec = spec_from_dict(data)
    locks = [point_dir(out, spec.point(i)) / LOCK_FILE for i in range(2)]
    lasts = [point_dir(out, spec.point(i)) / "checkpoints" / "last.pt" for i in range(2)]
    workers: list[int] = []
    try:
        assert _wait(lambda: all(p.is_file() for p in lasts), 120), "workers never checkpointed"
        workers = [int(json.loads(p.read_text())["pid"]) for p in locks]
        t0 = time.monotonic()
        os.kill(parent.pid, sig)
        _, err = parent.communicate(timeout=25)
        assert time.monotonic() - t0 < 15, "the sweep took too long to stop"
        assert parent.returncode == 130, err
        assert "Traceback" not in err, err
        last = err.strip().splitlines()[-1]
        assert last.startswith("vaelab sweep: interrupted") and "vaelab sweep" in last, err
        assert _wait(lambda: not any(pid_alive(pid) for pid in workers), 5), "workers kept running"
        assert [point_state(point_dir(out, spec.point(i))) for i in range(3)] == ["partial", "partial", "missing"]
    finally:
        if parent.poll() is None:
            parent.kill()
        for pid in workers:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
