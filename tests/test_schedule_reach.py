"""A scheduled weight (beta, a term's weight) that cannot reach its value within the run's optimiser steps is
refused before anything is trained or written (objectives.schedules.check_schedule_fits): a cyclical schedule
whose cycles are one step long (beta 0 throughout: an autoencoder reported as a VAE) and a KL warm-up cut off by
the end of the run (tester's cases C06 and K15)."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest
import yaml

from conftest import TINY
from vaelab.config import load_config
from vaelab.errors import ConfigError
from vaelab.objectives.objective import ObjectiveConfig, check_schedules_fit
from vaelab.objectives.schedules import (
    MIN_SAWTOOTH_STEPS,
    REACH,
    ScheduleConfig,
    build_schedule,
    check_schedule_fits,
)
from vaelab.training.trainer import Trainer

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


def _fits(cfg: ScheduleConfig, steps_per_epoch: int, total_steps: int, epochs: int | None = None) -> str | None:
    """None if the schedule is accepted, else the error's text."""
    try:
        check_schedule_fits(cfg, steps_per_epoch, total_steps, "objective.beta", epochs)
    except ConfigError as e:
        return str(e)
    return None


# ---- the tester's cases, with their numbers -----------------------------------------------------------------


def test_c06_cyclical_one_step_cycles_are_refused_and_beta_would_be_zero_throughout():
    cfg = ScheduleConfig(type="cyclical")  # cycles: 4 (the default) over 1 epoch of 4 steps
    assert [build_schedule(cfg, 4, 4)(t) for t in range(4)] == [0.0] * 4  # what the run would have trained
    err = _fits(cfg, 4, 4, epochs=1)
    assert err == (
        "objective.beta: cyclical annealing with 4 cycles over the run's steps gives cycles of 1 step in a run of "
        "1 epoch (4 steps); cycle 1 is too short for its ramp (ratio 0.5 of the cycle) to reach the value: "
        "objective.beta would peak at 0 of its value 1. To fix: lower objective.beta.cycles or "
        "objective.beta.ratio or lengthen train.epochs"
    )
    assert "\n" not in err


def test_k15_linear_warmup_cut_off_by_a_one_epoch_run_is_refused():
    cfg = ScheduleConfig(type="linear", start=0.1, value=1.0, warmup_epochs=10)
    s = build_schedule(cfg, 4, 4)
    assert sum(s(t) for t in range(4)) / 4 == pytest.approx(0.13375)  # the tester's epoch-mean beta of 0.13
    assert _fits(cfg, 4, 4, epochs=1) == (
        "objective.beta: the linear warm-up takes 10 epochs (40 steps) but the run has 1 epoch (4 steps); "
        "objective.beta would end at 0.168, 8% of the way from its start 0.1 to its value 1. "
        "Shorten objective.beta.warmup_epochs or lengthen train.epochs"
    )
    # the brief's 8-step epoch: beta ends at step 7 at 0.1 + 0.9 * 7 / 80
    assert "would end at 0.179, 9% of the way" in _fits(cfg, 8, 8, epochs=1)


def _tiny(tmp_path: Path, **train) -> Path:
    data = {**TINY, "objective": {}, "train": {**TINY["train"], "epochs": 1, "batch_size": 64, **train}}
    path = tmp_path / "base.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("objective.beta.type=cyclical", r"^objective\.beta: cyclical annealing with 4 cycles .* 1 epoch \(4 steps\)"),
        (
            "objective.beta={type: linear, start: 0.1, value: 1.0, warmup_epochs: 10}",
            r"^objective\.beta: the linear warm-up takes 10 epochs \(40 steps\) but the run has 1 epoch \(4 steps\)",
        ),
    ],
    ids=["C06", "K15"],
)
def test_the_trainer_refuses_before_writing_anything(tmp_path, override, message):
    cfg = load_config(_tiny(tmp_path), [override])
    with pytest.raises(ConfigError, match=message):
        Trainer(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_run_cut_by_max_steps_names_train_max_steps(tmp_path):
    cfg = load_config(_tiny(tmp_path, epochs=5, max_steps=6), ["objective.beta.type=cyclical"])
    with pytest.raises(ConfigError, match=r"in a run of 6 steps \(train\.max_steps\).* or raise train\.max_steps$"):
        Trainer(cfg, tmp_path / "run")  # 4 cycles of 1.5 steps
    assert not (tmp_path / "run").exists()
    ramp = ScheduleConfig(type="linear", start=0.0, value=1.0, warmup_epochs=2)
    assert _fits(ramp, 4, 6, epochs=5).endswith("Shorten objective.beta.warmup_epochs or raise train.max_steps")


# ---- what is accepted -----------------------------------------------------------------------------------------


def test_a_linear_warmup_that_just_fits_is_accepted():
    # 8 steps: the last is step 7, so a 7-step warm-up ends at its value and an 8-step one at 0.1 + 0.9 * 7 / 8
    assert _fits(ScheduleConfig(type="linear", start=0.1, value=1.0, warmup_steps=7), 8, 8, epochs=1) is None
    err = _fits(ScheduleConfig(type="linear", start=0.1, value=1.0, warmup_steps=8), 8, 8, epochs=1)
    assert "would end at 0.887, 88% of the way" in err and "Shorten objective.beta.warmup_steps" in err
    # REACH of the way is enough: a 100-step warm-up in a 100-step run ends at 99 / 100
    assert _fits(ScheduleConfig(type="linear", start=0.0, value=1.0, warmup_steps=100), 10, 100, epochs=10) is None
    assert _fits(ScheduleConfig(type="linear", start=0.0, value=1.0, warmup_steps=101), 10, 100, epochs=10)


def test_a_delay_counts_towards_the_warmup():
    cfg = ScheduleConfig(type="linear", start=0.0, value=1.0, warmup_steps=5, delay_steps=3)
    assert _fits(cfg, 10, 9, epochs=None) is None  # steps 3..8 ramp over 5 steps: the value at step 8
    err = _fits(cfg, 4, 8, epochs=2)
    assert "takes 5 steps after a delay of 3 steps but the run has 2 epochs (8 steps)" in err
    assert "Shorten objective.beta.warmup_steps or objective.beta.delay_steps or lengthen train.epochs" in err


def test_smooth_shapes_are_judged_by_their_own_values():
    # the sigmoid is 99.4% of the way at 9 / 10 of its warm-up, the linear ramp 90%, the cosine 97.6%
    for shape, fits in (("sigmoid", True), ("linear", False), ("cosine", False)):
        cfg = ScheduleConfig(type=shape, start=0.0, value=1.0, warmup_steps=10)
        assert (_fits(cfg, 10, 10, epochs=1) is None) is fits, shape


def test_a_decreasing_ramp_is_measured_from_its_start():
    cfg = ScheduleConfig(type="linear", start=1.0, value=0.0, warmup_steps=100)
    assert "would end at 0.51, 49% of the way from its start 1 to its value 0" in _fits(cfg, 10, 50, epochs=5)


def test_cyclical_with_enough_steps_is_accepted_and_reaches_its_value_every_cycle():
    cfg = ScheduleConfig(type="cyclical", value=1.0, cycles=4, ratio=0.5)
    assert _fits(cfg, 4, 32, epochs=8) is None
    s = build_schedule(cfg, 4, 32)
    assert [max(s(t) for t in range(8 * c, 8 * c + 8)) for c in range(4)] == [1.0] * 4
    # two steps a cycle are the least that reach the value with ratio 0.5 (0, then the value)
    assert _fits(cfg, 4, 8, epochs=2) is None and _fits(cfg, 7, 7, epochs=1)


def test_a_cycle_that_is_all_ramp_needs_a_few_steps():
    cfg = ScheduleConfig(type="cyclical", value=1.0, cycles=4, ratio=1.0)
    assert _fits(cfg, 4, 4 * MIN_SAWTOOTH_STEPS, epochs=MIN_SAWTOOTH_STEPS) is None
    err = _fits(cfg, 4, 4 * (MIN_SAWTOOTH_STEPS - 1), epochs=MIN_SAWTOOTH_STEPS - 1)
    assert f"with ratio 1 each cycle needs at least {MIN_SAWTOOTH_STEPS} steps of ramp" in err
    assert "objective.beta.ratio" not in err  # a lower ratio is no fix for a cycle's length


def test_a_cycle_cut_by_the_end_of_the_run_is_refused():
    cfg = ScheduleConfig(type="cyclical", value=1.0, cycles=4, total_steps=1000)  # cycles of 250 steps
    err = _fits(cfg, 4, 300, epochs=75)
    assert "cycle 2 is cut by the end of the run at step 300 before its ramp reaches the value" in err
    assert "would peak at 0.392" in err and "lower objective.beta.total_steps to at most 300" in err
    assert _fits(cfg, 4, 400, epochs=100) is None  # the run ends in cycle 2's flat part


def test_a_constant_always_fits():
    for cfg in (ScheduleConfig(), ScheduleConfig(type="constant", value=4.0), 0.5):
        assert _fits(cfg, 1, 1, epochs=1) is None


def test_a_terms_weight_schedule_is_checked_too():
    weight = {"type": "linear", "start": 0.0, "value": 2.0, "warmup_steps": 10}
    cfg = ObjectiveConfig(beta=ScheduleConfig(), terms=[{"type": "consistency_kl", "weight": weight}])
    with pytest.raises(ConfigError, match=r"^objective\.terms\[0\]\.weight: the linear warm-up takes 10 steps"):
        check_schedules_fit(cfg, 8, 8, 1)
    check_schedules_fit(cfg, 8, 11, None)  # the last step, 10, is the warm-up's end


def _oracle(cfg: ScheduleConfig, total: int) -> bool:
    """Whether the schedule, evaluated at every step of the run, does what check_schedule_fits asks."""
    s = build_schedule(cfg, 1, total)
    values = [s(t) for t in range(total)]
    if cfg.type != "cyclical":
        return max((v - cfg.start) / (cfg.value - cfg.start) for v in values) >= REACH - 1e-9
    span = cfg.total_steps or total
    need = REACH if cfg.ratio < 1 else 1 - 1 / MIN_SAWTOOTH_STEPS
    n_cycles = math.ceil(total * cfg.cycles / span)  # those that start within the run
    peaks = [0.0] * n_cycles
    for t, v in enumerate(values):
        c = t * cfg.cycles // span
        peaks[c] = max(peaks[c], v / cfg.value)
    return all(p >= need - 1e-9 for p in peaks)


@pytest.mark.parametrize("kind", ["linear", "sigmoid", "cosine", "cyclical"])
def test_the_check_agrees_with_the_schedule_step_by_step(kind):
    """Exhaustively over small runs: accepted exactly when the built schedule reaches its value (each cycle)."""
    cases = 0
    for total in range(1, 25):
        if kind == "cyclical":
            grid = [
                ScheduleConfig(type="cyclical", cycles=m, ratio=r, total_steps=ts)
                for m, r, ts in itertools.product((1, 2, 3, 4, 7), (0.3, 0.5, 0.9, 1.0), (None, 6, 30))
            ]
        else:
            grid = [
                ScheduleConfig(type=kind, start=0.1, value=1.0, warmup_steps=w, delay_steps=d)
                for w, d in itertools.product((1, 2, 5, 12, 20), (None, 0, 3))
            ]
        for cfg in grid:
            if cfg.type != "cyclical" and (cfg.delay_steps or 0) >= total:
                continue  # the delay's own message (test_schedules)
            assert (_fits(cfg, 1, total) is None) is _oracle(cfg, total), (cfg, total)
            cases += 1
    assert cases > 300


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_every_shipped_config_reaches_its_schedules_within_its_own_length(path):
    cfg = load_config(path)
    n_train = cfg.data.train_size or 1000  # a lower bound on the shipped data sets' training splits
    steps_per_epoch = math.ceil(n_train / cfg.train.batch_size)
    total = cfg.train.epochs * steps_per_epoch
    total = min(total, cfg.train.max_steps) if cfg.train.max_steps else total
    check_schedules_fit(cfg.objective, steps_per_epoch, total, cfg.train.epochs)
