"""The ``vaelab theory linear-vae`` command (Ichikawa & Hukushima, AISTATS 2024 figures)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from vaelab.theory.cli import add_theory_parser, main


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vaelab")
    add_theory_parser(parser.add_subparsers(dest="command", required=True))
    return parser


def test_parser_contract() -> None:
    args = _parser().parse_args(["theory", "linear-vae", "--figure", "3", "--figure", "5", "--quick", "--N", "200"])
    assert callable(args.func)
    assert args.figure == ["3", "5"] and args.quick and args.N == 200
    assert args.out == "runs/theory/linear_vae"


@pytest.mark.parametrize(
    "argv",
    [
        ["theory", "linear-vae", "--figure", "7"],
        ["theory", "linear-vae", "--N", "0"],
        ["theory", "linear-vae", "--tau", "-1"],
        ["theory", "linear-vae", "--backend", "gpu"],
        ["theory"],
    ],
)
def test_bad_arguments_exit_with_usage_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        _parser().parse_args(argv)
    assert exc.value.code == 2
    assert "error" in capsys.readouterr().err


def test_quick_run_writes_all_six_figures(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["theory", "linear-vae", "--quick", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    pngs = sorted(tmp_path.glob("fig*.png"))
    assert [p.name.split("_")[0] for p in pngs] == [f"fig{k}" for k in range(1, 7)]
    for p in pngs:
        assert 10_000 < p.stat().st_size < 200_000
        assert str(p) in printed
    for k in range(1, 7):
        assert (tmp_path / f"fig{k}.json").exists()
        assert any(tmp_path.glob(f"fig{k}_*.csv"))
    summary = json.loads((tmp_path / "summary.json").read_text())
    # numbers that do not depend on the quick settings
    run = summary["figure_1"]["authors_run"]
    assert run["max_abs_diff_ode_vs_published"] < 0.01
    assert summary["figure_1"]["threshold_final_eps_g"]["2.1"] == pytest.approx(1.0, abs=0.01)
    assert summary["figure_3"]["first_beta_with_stable_collapse"] > summary["figure_3"]["beta_c"]
    f4 = summary["figure_4"]["by_beta"]
    assert f4["1.5"]["Q_sup_ode_final"] < 1e-3 < f4["0.5"]["Q_sup_ode_final"]
