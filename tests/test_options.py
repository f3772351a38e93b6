"""Declared options (issue 17, item 3): each strategy, regulariser and loss term reads its options into its own
dataclass (:class:`vaelab.options.Options`); a typo fails when the config is read, with one line naming the full
key and the declared options, as a typo in ``train`` does."""

from __future__ import annotations

import pytest

from vaelab.config import ConfigError, load_config
from vaelab.objectives.density_gap import DensityGap, DensityGapOptions
from vaelab.training.aggressive import AggressiveOptions, AggressiveStrategy


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["train.strategy=aggressive", "train.strategy_options.inner_stepz=3"],
            r"^train\.strategy_options\.inner_stepz: unknown option 'inner_stepz' .*valid options: check_every_steps, "
            r"clip_scope, max_aggressive_steps, max_inner_steps, min_aggressive_steps, monitor_every_steps, patience, "
            r"rule, window$",
        ),
        (["train.strategy_options.foo=1"], r"^train\.strategy_options\.foo: unknown option .*takes no options"),
        (
            ["objective.regulariser=density_gap", "objective.regulariser_options.chunk=4"],
            r"^objective\.regulariser_options\.chunk: unknown option 'chunk' .*chunk_size, estimator, samples$",
        ),
        (
            ["objective.terms=[{type: consistency_kl, lambda: 1}]"],
            r"^objective\.terms\[0\]\.lambda: unknown option 'lambda' .*valid options: noise, seed, transform$",
        ),
        (
            ["objective.terms=[{type: aug_rate, regulariser: density_gap, regulariser_options: {samples: 0}}]"],
            r"^objective\.terms\[type=aug_rate\]\.regulariser_options\.samples "
            r"must be an integer in \[1, 10000\], got 0$",
        ),
        (
            ["train.strategy=aggressive", "train.strategy_options.window=abc"],
            r"^train\.strategy_options\.window: expected an integer, got 'abc'$",
        ),
    ],
)
def test_a_bad_option_fails_when_the_config_is_read_naming_the_full_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, overrides)


def test_the_declared_options_are_the_components_attributes():
    strategy = AggressiveStrategy(window=5, rule="first_decrease")
    assert strategy.options == AggressiveOptions(window=5, rule="first_decrease")
    assert (strategy.window, strategy.rule, strategy.max_inner_steps) == (5, "first_decrease", 100)
    reg = DensityGap(chunk_size=4)
    assert reg.options == DensityGapOptions(chunk_size=4) and (reg.chunk_size, reg.samples) == (4, 32)
