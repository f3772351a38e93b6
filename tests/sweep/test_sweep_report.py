"""`vaelab report` of a sweep folder: the results table and the sweep's figures."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from vaelab.cli import main
from vaelab.report import folder_kind, write_report

from .helpers import sweep_dict


def _figures(html: str) -> int:
    return len(re.findall(r'<img class="figure" alt="[^"]*" src="data:image/png;base64,[A-Za-z0-9+/=]{200,}"', html))


def test_sweep_report_embeds_the_sweep_figures(tmp_path: Path):
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump(sweep_dict(seeds=[0], variants=[{"name": "narrow", "model.hidden": [8]}])))
    out = tmp_path / "sweep"
    assert main(["sweep", str(spec), "--out", str(out), "--workers", "1"]) == 0
    assert folder_kind(out) == "sweep"
    html = write_report(out).read_text()
    assert ">Results</h2>" in html and html.count("<tr>") >= 3
    assert _figures(html) >= 2


def test_a_mean_that_rounds_to_zero_is_shown_without_a_sign():
    """MI a hair above ln N (ln N - MI = -1e-17) reads 0.00 in results.md, not -0.00; real negatives keep theirs."""
    from vaelab.sweep.aggregate import _fmt

    assert _fmt(-1e-17) == "0.00"
    assert _fmt(-0.004, 0.01) == "0.00 ± 0.01"
    assert _fmt(-0.006) == "-0.01"
    assert _fmt(-3.0, digits=1) == "-3.0"
    assert _fmt(float("nan")) == "-"
