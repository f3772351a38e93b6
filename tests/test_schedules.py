import itertools
import math

import pytest

from vaelab.objectives.schedules import Constant, Cyclical, Ramp, ScheduleConfig, build_schedule


def test_constant_and_plain_numbers():
    assert build_schedule(0.5, 10, 100)(1234) == 0.5
    assert build_schedule(ScheduleConfig(type="constant", value=2.0), 10, 100)(0) == 2.0


def test_linear_warmup_he_et_al():
    # beta_t = min(beta_max, beta_0 + (beta_max - beta_0) t / T_warm), T_warm = 10 epochs of 50 steps.
    s = build_schedule(ScheduleConfig(type="linear", start=0.1, value=1.0, warmup_epochs=10), 50, 10_000)
    assert isinstance(s, Ramp) and s.duration == 500
    assert s(0) == pytest.approx(0.1)
    assert s(250) == pytest.approx(0.55)
    assert s(500) == pytest.approx(1.0)
    assert s(10_000) == pytest.approx(1.0)


@pytest.mark.parametrize("shape", ["sigmoid", "cosine"])
def test_smooth_ramps_hit_endpoints_and_are_monotone(shape):
    s = build_schedule(ScheduleConfig(type=shape, start=0.0, value=1.0, warmup_steps=100), 1, 1000)
    vals = [s(t) for t in range(0, 120)]
    assert vals[0] == pytest.approx(0.0, abs=1e-12)
    assert vals[100] == pytest.approx(1.0)
    assert all(b >= a - 1e-12 for a, b in itertools.pairwise(vals))
    assert vals[50] == pytest.approx(0.5, abs=1e-9)


def test_cyclical_fu_et_al():
    # 4 cycles over 400 steps, ramp over the first half of each cycle.
    s = build_schedule(ScheduleConfig(type="cyclical", value=1.0, cycles=4, ratio=0.5), 10, 400)
    assert isinstance(s, Cyclical)
    assert s(0) == 0.0
    assert s(25) == pytest.approx(0.5)
    assert s(50) == pytest.approx(1.0)
    assert s(99) == pytest.approx(1.0)
    assert s(100) == 0.0  # the next cycle restarts
    assert s(325) == pytest.approx(0.5)


def test_ramp_needs_a_duration_and_names_the_key():
    with pytest.raises(ValueError, match=r"objective\.beta"):
        build_schedule(ScheduleConfig(type="linear"), 10, 100, key="objective.beta")
    with pytest.raises(ValueError, match="not both"):
        build_schedule(ScheduleConfig(type="linear", warmup_steps=1, warmup_epochs=1), 10, 100)


def test_schedules_are_stateless():
    s = Ramp(0.0, 1.0, 10)
    assert [s(t) for t in (7, 3, 7)] == [s(7), s(3), s(7)]
    assert Constant(3.0)(math.inf) == 3.0


def test_delayed_ramp_holds_start_then_ramps():
    # Li et al. (2019): beta = 0 during 2 epochs of autoencoder pretraining, then 0 -> 1 over 3 epochs (10 steps each)
    s = build_schedule(ScheduleConfig(type="linear", start=0.0, value=1.0, warmup_epochs=3, delay_epochs=2), 10, 100)
    assert [s(t) for t in (0, 10, 19)] == [0.0, 0.0, 0.0]
    assert s(20) == 0.0 and s(35) == pytest.approx(0.5) and s(50) == 1.0 and s(99) == 1.0
    same = build_schedule(ScheduleConfig(type="linear", start=0.0, value=1.0, warmup_steps=30, delay_steps=20), 10, 100)
    assert all(same(t) == s(t) for t in range(100))
    with pytest.raises(ValueError, match="delay_steps or delay_epochs"):
        build_schedule(ScheduleConfig(type="linear", warmup_steps=1, delay_steps=1, delay_epochs=1), 10, 100)
    with pytest.raises(ValueError, match="apply to ramps"):
        build_schedule(ScheduleConfig(type="cyclical", delay_steps=5), 10, 100)
    with pytest.raises(ValueError, match=">= 0"):
        build_schedule(ScheduleConfig(type="linear", warmup_steps=1, delay_steps=-1), 10, 100)
