"""`vaelab report` and `vaelab diagnose` of a text run: sentences instead of images."""

from __future__ import annotations

from pathlib import Path

from vaelab.cli import main


def test_text_run_report_shows_sentences(tmp_path: Path, text_run_config, capsys):
    out = tmp_path / "run"
    assert main(["train", str(text_run_config()), "--out", str(out)]) == 0
    assert main(["report", str(out)]) == 0
    html = (out / "report.html").read_text()
    assert "z ~ p(z), greedy decoding" in html and "greedy decoding of its posterior mean" in html
    assert html.count('class="sentences"') == 3
    assert "Samples could not be drawn" not in html
    assert main(["diagnose", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "verdict:" in printed and "what to try:" in printed
