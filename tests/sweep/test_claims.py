"""vaelab.sweep.claims: the three statements of Bozkurt et al. decided from cells with known answers."""

from __future__ import annotations

import math

import pytest

from vaelab.sweep.claims import claims_markdown, compare, groups, is_beta_sweep, spearman

KEYS = ["variant", "objective.beta.value"]
LN_N = math.log(1000)


def cell(
    variant: str,
    beta: float,
    nll: float,
    mi: float,
    rate: float,
    *,
    ci: float = 0.5,
    train_mi: float | None = None,
    train_nll: float | None = None,
    train_d: float = 50.0,
) -> dict:
    train_mi = mi if train_mi is None else train_mi
    return {
        "variant": variant,
        "objective.beta.value": beta,
        "test_nll_iw_mean": nll,
        "test_nll_iw_ci": ci,
        "test_mi_mean": mi,
        "test_ln_n_minus_mi_mean": LN_N - mi,
        "test_marginal_kl_mean": rate - mi,
        "train_nll_iw_mean": nll - 5 if train_nll is None else train_nll,
        "train_ln_n_minus_mi_mean": LN_N - train_mi,
        "train_distortion_mean": train_d,
        "best_epoch_mean": 7.0,
    }


def test_compare_uses_the_combined_half_width() -> None:
    hi = {"m_mean": 100.0, "m_ci": 3.0}
    assert compare(hi, {"m_mean": 96.0, "m_ci": 4.0}, "m") == (-4.0, "within")  # |4| <= 5 = hypot(3, 4)
    assert compare(hi, {"m_mean": 94.0, "m_ci": 4.0}, "m") == (-6.0, "better")
    assert compare(hi, {"m_mean": 106.0, "m_ci": None}, "m") == (6.0, "worse")  # a missing half-width is 0


def test_spearman_known_answers() -> None:
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # ranks of y with a tie: [1, 2.5, 2.5, 4] -> rho = 0.9486832980505138 against 1..4
    assert spearman([1, 2, 3, 4], [1, 5, 5, 9]) == pytest.approx(0.9486832980505138)
    assert spearman([1, 2], [1, 2]) is None
    assert spearman([1, 1, 1], [1, 2, 3]) is None


def test_groups_sort_by_decreasing_beta_and_skip_cells_without_nll() -> None:
    cells = [cell("a", 0.1, 120, LN_N, 60), cell("a", 3.0, 110, 6.0, 9), cell("a", 1.0, 100, LN_N, 20)]
    cells.append({"variant": "b", "objective.beta.value": 1.0, "test_nll_iw_mean": None})
    ((label, members),) = groups(cells, KEYS)
    assert label == "variant=a"
    assert [c["objective.beta.value"] for c in members] == [3.0, 1.0, 0.1]
    assert is_beta_sweep(cells, KEYS) and not is_beta_sweep(cells, ["variant"])


def test_claims_on_a_sweep_with_known_answers() -> None:
    # group a: best at beta 1 (3 -> 1 better, 1 -> 0.1 worse); group b: best at beta 0.1, and 1 -> 0.1 is within
    # the intervals; beta 3 leaves MI short of ln N with a worse training NLL (underfits).
    cells = [
        cell("a", 3.0, 110.0, 6.0, 9.0, train_mi=6.0, train_nll=108.0, train_d=90.0),
        cell("a", 1.0, 100.0, LN_N, 20.0, train_nll=94.0, train_d=70.0),
        cell("a", 0.1, 120.0, LN_N, 80.0, train_nll=99.0, train_d=40.0),
        cell("b", 3.0, 105.0, 5.5, 8.0, train_mi=5.5, train_nll=101.0, train_d=85.0),
        cell("b", 1.0, 100.0, LN_N, 20.0, ci=2.0, train_nll=95.0),
        cell("b", 0.1, 99.0, LN_N, 70.0, ci=2.0, train_nll=93.0),
    ]
    md = claims_markdown(cells, KEYS)
    assert "| 3 → 1 | 2 | 2 | 0 | 0 | -10.00 to -5.00 |" in md
    assert "| 1 → 0.1 | 2 | 0 | 1 | 1 | -1.00 to 20.00 |" in md
    assert "- beta = 1: 1 of 2 groups (variant=a)" in md
    assert "- beta = 0.1: 1 of 2 groups (variant=b)" in md
    # claim 2: saturated cells 1 and 0.1 per group; spans 20 and 1 nats
    assert "| variant=a | 1, 0.1 | 20.00 | 13.09 to 73.09 | - |" in md
    assert "Test MI saturated in 4 of 6 cells" in md
    assert "spans 1.00 to 20.00 nats" in md
    # claim 3: beta 3 against the best saturated training NLL (a: beta 1 at 94; b: beta 0.1 at 93)
    assert f"| variant=a | 3 | {LN_N - 6.0:.2f} | +14.00 (vs beta 1) | +20.00 | +10.00 |" in md
    assert f"| variant=b | 3 | {LN_N - 5.5:.2f} | +8.00 (vs beta 0.1) | +35.00 | +6.00 |" in md
    assert "Unsaturated training MI with a worse training IW-NLL: 2 of 2 cells." in md
    assert "Anomalies" not in md


def test_an_mi_drop_at_a_smaller_beta_is_listed_as_an_anomaly() -> None:
    cells = [cell("a", 1.0, 100.0, LN_N, 20.0), cell("a", 0.03, 150.0, 2.0, 5.0)]
    md = claims_markdown(cells, KEYS)
    assert f"- variant=a, beta = 0.03: ln N - MI = {LN_N - 2.0:.2f} (beta 1: 0.00); best epoch 7" in md
