"""Stopping a training run cleanly: the first Ctrl-C / SIGTERM asks for a stop after the current step (the
checkpoint callback saves last.pt, then the trainer raises KeyboardInterrupt); a second one stops at once."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_requested = {"flag": False}


def stop_requested() -> bool:
    """Whether a first Ctrl-C / SIGTERM arrived inside :func:`graceful_interrupt`."""
    return _requested["flag"]


@contextmanager
def graceful_interrupt() -> Iterator[None]:
    """Within: the first Ctrl-C / SIGTERM sets :func:`stop_requested`, the second raises KeyboardInterrupt. Only
    in the main thread (signal handlers can be set there only); elsewhere a no-op."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        if _requested["flag"]:
            raise KeyboardInterrupt
        _requested["flag"] = True
        print("\ninterrupt: saving a checkpoint after this step (again to abort)", file=sys.stderr, flush=True)

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    _requested["flag"] = False
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        _requested["flag"] = False


__all__ = ["graceful_interrupt", "stop_requested"]
