"""Known-answer tests for active units (Burda et al., ICLR 2016) and the per-dimension rate."""

from __future__ import annotations

import math

import pytest
import torch

from vaelab.metrics import active_units, kl_per_dim


def test_active_units_unbiased_variance_on_constructed_means() -> None:
    # Column 0: constant (variance 0). Column 1: [0, .19, 0, .19] has biased variance 0.009025 (< 0.01) but
    # unbiased variance 0.0361 / 3 = 0.012033 (>= 0.01): active only with the unbiased estimator.
    # Column 2: [-a, a, -a, a] with a^2 = 0.005: unbiased variance 0.02 / 3, used to test ">=" at the threshold.
    # Column 3: large spread.
    mu = torch.tensor(
        [
            [1.0, 0.0, -math.sqrt(0.005), -3.0],
            [1.0, 0.19, math.sqrt(0.005), 3.0],
            [1.0, 0.0, -math.sqrt(0.005), -3.0],
            [1.0, 0.19, math.sqrt(0.005), 3.0],
        ],
        dtype=torch.float64,
    )
    count, variances = active_units(mu)
    torch.testing.assert_close(
        variances, torch.tensor([0.0, 0.0361 / 3, 0.02 / 3, 12.0], dtype=torch.float64), rtol=0, atol=1e-15
    )
    assert count == 2  # columns 1 and 3; column 2's unbiased variance is 0.00667
    assert active_units(mu, threshold=float(variances[2]))[0] == 3  # a unit exactly at the threshold counts
    assert active_units(mu, threshold=0.0)[0] == 4
    assert active_units(mu, threshold=100.0)[0] == 0


def test_active_units_shape_checks() -> None:
    with pytest.raises(ValueError):
        active_units(torch.zeros(1, 3))
    with pytest.raises(ValueError):
        active_units(torch.zeros(5))


def test_kl_per_dim_known_values() -> None:
    # Dim 0: q = N(0, 1) exactly -> 0. Dim 1: mu = +-1, var 1 -> 0.5. Dim 2: mu 0, var e -> 0.5 (e - 2).
    mu = torch.tensor([[0.0, 1.0, 0.0], [0.0, -1.0, 0.0]], dtype=torch.float64)
    logvar = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    expected = torch.tensor([0.0, 0.5, 0.5 * (math.e - 2.0)], dtype=torch.float64)
    torch.testing.assert_close(kl_per_dim(mu, logvar), expected, rtol=0, atol=1e-15)
    with pytest.raises(ValueError):
        kl_per_dim(mu, logvar[:, :2])
