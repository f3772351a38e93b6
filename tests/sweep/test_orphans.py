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
