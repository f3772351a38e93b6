"""Progress of long evaluations (an IW-NLL with K samples over a split takes minutes on a CPU).

:class:`EvalProgress` shows a tqdm bar when its stream is a terminal and otherwise writes a plain line at most
every ``interval`` seconds, e.g. ``IW-NLL K=100 on test: 120/300 sentences, 1m40s left``, plus a closing line
when it has written any. Inside a sweep point the stream is the point's log.txt, whose lines the sweep shows
prefixed by the point's name. The cost per update is one clock read: call it once per batch, not per sample.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

REPORT_EVERY_S = 30.0
"""Seconds between two plain progress lines."""


def format_duration(seconds: float) -> str:
    """``45s``, ``1m40s``, ``2h05m`` (rounded to whole seconds, minutes above an hour)."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def time_left(done: int, total: int, elapsed: float) -> float | None:
    """Seconds left at the mean rate so far (``elapsed / done`` per item), None before the first item."""
    if done <= 0:
        return None
    return elapsed / done * max(total - done, 0)


class EvalProgress:
    """Progress of ``total`` items (examples, sentences) of a long evaluation; ``update(n)`` after each batch.

    ``stream``: where it writes (default: ``sys.stderr`` at creation); a bar when ``bar`` (default: the stream
    is a terminal), else plain lines, the first ``interval`` seconds (default :data:`REPORT_EVERY_S`) after the
    start and at most one per ``interval`` after that. ``clock``: a monotonic clock in seconds (a fake one in tests).
    """

    def __init__(
        self,
        total: int,
        *,
        label: str,
        unit: str = "examples",
        stream: TextIO | None = None,
        interval: float | None = None,
        bar: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = int(total)
        self.label = label
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.interval = REPORT_EVERY_S if interval is None else interval
        self.clock = clock
        self.done = 0
        self.lines = 0
        self._start = clock()
        self._last = self._start
        self._bar: Any = None
        if bar is None:
            isatty = getattr(self.stream, "isatty", None)
            bar = bool(isatty()) if callable(isatty) else False
        if bar:
            from tqdm import tqdm

            self._bar = tqdm(total=self.total, desc=label, unit=f" {unit}", leave=False, file=self.stream)

    def line(self, now: float | None = None) -> str:
        """The plain progress line at time ``now`` (default: the clock)."""
        now = self.clock() if now is None else now
        left = time_left(self.done, self.total, now - self._start)
        tail = "" if left is None else f", {format_duration(left)} left"
        return f"{self.label}: {self.done}/{self.total} {self.unit}{tail}"

    def update(self, n: int) -> None:
        """``n`` more items are done (clamped at ``total``)."""
        before, self.done = self.done, min(self.done + int(n), self.total)
        if self._bar is not None:
            self._bar.update(self.done - before)  # tqdm limits its own redraws
            return
        now = self.clock()
        if now - self._last >= self.interval:
            self._last = now
            self._write(self.line(now))

    def close(self) -> None:
        """Close the bar, or write the closing line (total time) if a progress line was written."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.lines:
            took = format_duration(self.clock() - self._start)
            self._write(f"{self.label}: {self.done}/{self.total} {self.unit} in {took}")

    def _write(self, text: str) -> None:
        self.lines += 1
        print(text, file=self.stream, flush=True)

    def __enter__(self) -> EvalProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
