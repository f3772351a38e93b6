"""glibc's allocator tuned for large tensors (issue 18): no fresh ``mmap`` per large block.

    tune_allocator()        # True where applied: Linux with glibc, not opted out (VAELAB_MALLOC_TUNING=0)
    opted_in()              # VAELAB_MALLOC_TUNING=1: the `vaelab` command tunes its process (off by default)

PyTorch allocates CPU tensors with the C library's ``malloc``. glibc serves every block above its mmap threshold
(at most 32 MiB) with a fresh ``mmap`` and returns it with ``munmap`` on free, so a tensor of that size made anew
at every step (the text model's 1024 x 10,002 float32 logits, 41 MB) page-faults and zero-fills all its pages
again at every step. Measured on the 2-core development machine (docs/text.md, issue 18): ``torch.mm`` into a
fresh 1024 x 10,002 output ran at 49-50 GFLOP/s against 61-63 with the tuning; a text benchmark's system time fell
from 1.85-2.56 s to 0.70-0.81 s and its minor page faults from 733k-935k to 179k-186k, with the same peak RSS.

:func:`tune_allocator` sets two glibc parameters for the current process with ``mallopt`` and, for the processes
it starts (sweep workers under forkserver or spawn, torchrun workers), in the environment:

- ``M_MMAP_MAX = 0`` (``MALLOC_MMAP_MAX_=0``): every block comes from the heap, and a freed block is reused;
- ``M_TRIM_THRESHOLD`` = 2**31 - 1 bytes (``MALLOC_TRIM_THRESHOLD_``, the largest value ``mallopt``'s int takes):
  free memory at the top of the heap is kept, not handed back and faulted in again at the next step.

A process then keeps the memory of its peak (up to 2 GiB of it free at the top of its heap) until it exits.

The ``vaelab`` command calls it first thing when ``VAELAB_MALLOC_TUNING=1`` (opt-in: on an MNIST training with
its K = 500 evaluation the peak RSS grew from 3.59 to 4.07 GB with no gain in time); ``import vaelab`` never does
(an API user's process is theirs): an API user may call ``vaelab.tune_allocator()`` before the tensor work.
A parameter the user set (its ``MALLOC_*_`` variable, or its name in ``GLIBC_TUNABLES``) is left as the user set
it. ``VAELAB_MALLOC_TUNING=0`` (or ``false``, ``no``, ``off``) keeps even an explicit call from acting.
Elsewhere (macOS, Windows, musl) it does nothing.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Callable

OPT_OUT = "VAELAB_MALLOC_TUNING"
"""The environment variable that turns the tuning off (``0``, ``false``, ``no`` or ``off``)."""

M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
"""glibc's ``mallopt`` parameter numbers (malloc.h)."""

TRIM_THRESHOLD = 2**31 - 1
"""Bytes free at the top of the heap before glibc trims it: the largest C int (``mallopt`` takes an int)."""

SETTINGS = (
    ("MALLOC_MMAP_MAX_", "glibc.malloc.mmap_max", M_MMAP_MAX, 0),
    ("MALLOC_TRIM_THRESHOLD_", "glibc.malloc.trim_threshold", M_TRIM_THRESHOLD, TRIM_THRESHOLD),
)
"""(environment variable, glibc tunable, mallopt parameter, value) of each setting."""

_applied = False


def _glibc_mallopt() -> Callable[[int, int], int] | None:
    """glibc's ``mallopt`` in this process, or None (not Linux, or a C library that is not glibc)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # noqa: B018 -- glibc's own: not in musl or other C libraries
    except (OSError, AttributeError):
        return None
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return mallopt


ON = ("1", "true", "yes", "on")
OFF = ("0", "false", "no", "off")
"""The values of ``VAELAB_MALLOC_TUNING`` (any case, surrounding blanks ignored); unset or empty: the default."""


def setting_error() -> str | None:
    """A one-line message when ``VAELAB_MALLOC_TUNING`` holds a value that is neither on nor off (``banana``, a
    typo): the ``vaelab`` command refuses it rather than leave the tuning at its default without a word."""
    value = os.environ.get(OPT_OUT, "").strip().lower()
    if value and value not in ON + OFF:
        return (
            f"environment variable {OPT_OUT}={os.environ[OPT_OUT]!r} is neither on ({', '.join(ON)}) nor off "
            f"({', '.join(OFF)}); set one of these or unset it"
        )
    return None


def opted_in() -> bool:
    """Whether the user asked the ``vaelab`` command to tune its process (``VAELAB_MALLOC_TUNING=1``)."""
    return os.environ.get(OPT_OUT, "").strip().lower() in ON


def opted_out() -> bool:
    """Whether the user turned the tuning off (``VAELAB_MALLOC_TUNING=0``)."""
    return os.environ.get(OPT_OUT, "").strip().lower() in OFF


def tune_allocator() -> bool:
    """Keep glibc from serving large blocks with a fresh ``mmap`` (this process and the processes it starts).

    Returns whether the tuning is applied (by this call or an earlier one): False where the user opted out
    (``VAELAB_MALLOC_TUNING=0``), set both parameters themselves, or the C library is not glibc. Never raises.
    """
    global _applied
    if _applied:
        return True
    if opted_out():
        return False
    mallopt = _glibc_mallopt()
    if mallopt is None:
        return False
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    for variable, tunable, parameter, value in SETTINGS:
        if variable in os.environ or tunable in tunables:  # the user's choice, already read by glibc at start
            continue
        if mallopt(parameter, value) == 1:  # 1 on success
            os.environ[variable] = str(value)
            _applied = True
    return _applied
