"""vaelab.tune_allocator (issue 18): on glibc, a large tensor freed and made again reuses the heap's pages instead of
a fresh mmap that faults every page in again; the user's opt-out and the user's own settings are respected.

Each case runs in a fresh interpreter (the tuning cannot be undone in a process), with one thread."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vaelab.allocator import _glibc_mallopt

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(_glibc_mallopt() is None, reason="glibc's mallopt is not available")

SCRIPT = """
import json, os, resource, sys
import torch
import vaelab

def faults():
    counts = []
    for _ in range(30):  # 64 MiB of float32 (16,384 pages of 4 KiB), made, written and freed
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        t = torch.empty(16 * 2**20, dtype=torch.float32).fill_(1)
        del t
        counts.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    # the last 20: tuned, the heap grows for the first ~8 (each aligned block leaves a small remainder that
    # glibc's per-thread cache keeps between the freed block and the top, 7 of them), then reuses its pages
    return sum(counts[10:])

untuned = faults()
applied = vaelab.tune_allocator()
tuned = faults()
names = ("MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_")
print(json.dumps({"untuned": untuned, "tuned": tuned, "applied": applied, "again": vaelab.tune_allocator(),
                  "env": {k: os.environ.get(k) for k in names}}))
"""


def _run(**env_vars: str) -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES", "VAELAB_MALLOC_TUNING")
    }
    env.update(OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="", PYTHONPATH=str(REPO / "src"), **env_vars)
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_tuned_allocations_reuse_the_heap_instead_of_faulting_every_page_in_again():
    r = _run()
    assert r["applied"] is True and r["again"] is True
    assert r["untuned"] > 20 * 16384 * 0.8, r  # a fresh mmap per tensor: every page faulted in, every time
    assert r["tuned"] < r["untuned"] / 4, r  # the heap's pages are reused (in fact about 0 faults)
    assert r["env"] == {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(2**31 - 1)}  # for child processes


def test_the_opt_out_leaves_the_allocator_untuned():
    r = _run(VAELAB_MALLOC_TUNING="0")
    assert r["applied"] is False and r["again"] is False
    assert r["tuned"] > r["untuned"] * 0.8, r
    assert r["env"] == {"MALLOC_MMAP_MAX_": None, "MALLOC_TRIM_THRESHOLD_": None}


def test_a_setting_the_user_made_is_not_overwritten():
    r = _run(MALLOC_MMAP_MAX_="65536")  # the user keeps mmap for large blocks
    assert r["env"] == {"MALLOC_MMAP_MAX_": "65536", "MALLOC_TRIM_THRESHOLD_": str(2**31 - 1)}
    assert r["tuned"] > r["untuned"] * 0.8, r  # still a fresh mmap per tensor, as the user asked


def test_importing_vaelab_or_its_command_line_changes_nothing():
    code = "import os, vaelab, vaelab.cli; print(os.environ.get('MALLOC_MMAP_MAX_'))"
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_MMAP_MAX_"}
    env["PYTHONPATH"] = str(REPO / "src")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "None", out.stderr


def _command_line_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MALLOC_MMAP_MAX_", "VAELAB_MALLOC_TUNING")}
    env["PYTHONPATH"] = str(REPO / "src")
    env.update(extra)
    return env


COMMAND_LINE = (
    "import os\nfrom vaelab.cli import main\ntry:\n    main(['--version'])\nexcept SystemExit:\n    pass\n"
    "print(os.environ.get('MALLOC_MMAP_MAX_'))"
)


@pytest.mark.parametrize(("setting", "expected"), [(None, "None"), ("1", "0"), ("0", "None")])
def test_the_command_line_tunes_its_process_and_its_children_only_when_asked(setting, expected):
    env = _command_line_env(**({} if setting is None else {"VAELAB_MALLOC_TUNING": setting}))
    out = subprocess.run([sys.executable, "-c", COMMAND_LINE], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip().splitlines()[-1] == expected, (out.stdout, out.stderr)
