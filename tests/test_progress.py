"""The progress of long evaluations (vaelab.progress): time left, plain lines at most every interval, the bar."""

from __future__ import annotations

import io

import pytest

from vaelab.progress import EvalProgress, format_duration, time_left


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (0.4, "0s"), (59.4, "59s"), (60, "1m00s"), (100, "1m40s"), (3599, "59m59s"), (7500, "2h05m")],
)
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


def test_time_left_is_the_mean_rate_so_far_times_what_is_left():
    assert time_left(0, 300, 12.0) is None
    assert time_left(120, 300, 40.0) == pytest.approx(60.0)  # 1/3 s per sentence, 180 left
    assert time_left(300, 300, 99.0) == 0.0
    assert time_left(310, 300, 99.0) == 0.0


def test_plain_lines_at_most_every_interval_with_the_time_left():
    clock, out = FakeClock(), io.StringIO()
    p = EvalProgress(300, label="IW-NLL K=100 on test", unit="sentences", stream=out, interval=30, clock=clock)
    clock.now += 20
    p.update(60)
    assert out.getvalue() == ""  # nothing in the first 30 s
    clock.now += 20  # t = 40 s
    p.update(60)
    clock.now += 10  # t = 50 s: only 10 s after the last line
    p.update(30)
    clock.now += 21  # t = 71 s
    p.update(30)
    clock.now += 29  # t = 100 s
    p.update(500)  # clamped at the total
    p.close()
    assert out.getvalue().splitlines() == [
        "IW-NLL K=100 on test: 120/300 sentences, 1m00s left",
        "IW-NLL K=100 on test: 180/300 sentences, 47s left",  # 71 s / 180 * 120
        "IW-NLL K=100 on test: 300/300 sentences in 1m40s",
    ]


def test_a_short_evaluation_writes_nothing():
    clock, out = FakeClock(), io.StringIO()
    with EvalProgress(64, label="IW-NLL K=4 on test", stream=out, clock=clock) as p:
        clock.now += 2
        p.update(64)
    assert out.getvalue() == ""


def test_a_terminal_gets_a_bar_and_a_file_gets_lines():
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    term = Terminal()
    with EvalProgress(10, label="IW-NLL K=4 on test", stream=term) as p:
        assert p._bar is not None
        p.update(10)
    assert "IW-NLL K=4 on test" in term.getvalue()
    assert EvalProgress(10, label="x", stream=io.StringIO())._bar is None
