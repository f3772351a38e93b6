"""`vaelab report`: the pages of a run and of a sweep hold their sections, tables and figures (the study page is
tested in tests/study; the pages in a browser in tests/report)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from vaelab.cli import main
from vaelab.report import write_report
from vaelab.report.page import Page, fmt
from vaelab.runfolder import read_jsonl


def _figures(html: str) -> int:
    return len(re.findall(r'<img class="figure" alt="[^"]*" src="data:image/png;base64,[A-Za-z0-9+/=]{200,}"', html))


@pytest.fixture
def image_run(tmp_path: Path, tiny_config) -> Path:
    out = tmp_path / "run"
    cfg = tiny_config(train={"epochs": 2, "log_every_steps": 2})
    assert main(["train", str(cfg), "--out", str(out)]) == 0
    return out


def test_run_report_has_metrics_diagnosis_curves_units_and_samples(image_run: Path, capsys):
    assert main(["report", str(image_run)]) == 0
    assert f"report: {image_run / 'report.html'}" in capsys.readouterr().out
    html = (image_run / "report.html").read_text()
    for section in ("Final metrics", "Collapse diagnosis", "Training curves", "Latent units", "Samples"):
        assert f">{section}</h2>" in html
    assert "IW-NLL (nats)" in html and "What to try" in html
    # curves, unit bars, reconstructions + prior samples, traversals, interpolation
    assert _figures(html) == 5
    assert "<script" not in html and "http://" not in html and "https://" not in html


def test_steps_jsonl_logs_every_window(image_run: Path):
    steps = read_jsonl(image_run / "steps.jsonl")
    assert [r["step"] for r in steps] == list(range(2, 2 * len(steps) + 1, 2))
    assert {"elbo", "rate", "distortion", "beta", "loss", "wall_time"} <= set(steps[0])


def test_report_without_samples_and_to_another_file(image_run: Path, tmp_path: Path):
    target = write_report(image_run, tmp_path / "elsewhere" / "r.html", samples=False)
    html = target.read_text()
    assert ">Samples</h2>" not in html and _figures(html) == 2


def test_report_of_a_folder_that_is_nothing(tmp_path: Path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "not a run folder" in capsys.readouterr().err


def test_page_escapes_text_and_numbers_are_formatted():
    page = Page("a <b> & c")
    page.section("s")
    page.table(["x"], [["<script>"], [0.123456789], [None], [7]])
    html = page.render()
    assert "<title>a &lt;b&gt; &amp; c</title>" in html
    assert "&lt;script&gt;" in html and "<td>0.1235</td>" in html and "<td>-</td>" in html and "<td>7</td>" in html
    assert fmt(float("nan")) == "nan" and fmt(123456.7) == "123456.7"


def test_report_out_never_replaces_a_run_folders_records(tmp_path):
    """``report DIR --out DIR/config.yaml`` (or a checkpoint) is refused before anything is written; an HTML file in
    the folder, and a file of that name in a folder vaelab did not write, are fine."""
    from vaelab.errors import ConfigError
    from vaelab.oserrors import check_output_file

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text("name: x\n")
    (run / "checkpoints" / "best.pt").write_bytes(b"\x80")
    (run / "report.html").write_text("<html></html>")
    for record in (run / "config.yaml", run / "checkpoints" / "best.pt"):
        with pytest.raises(ConfigError, match=r"would overwrite a record of the vaelab folder"):
            check_output_file(record)
    assert (run / "config.yaml").read_text() == "name: x\n"
    check_output_file(run / "report.html")
    check_output_file(run / "new.yaml")  # a new file is not a record
    study = tmp_path / "study"  # a study folder: its request is study.json
    study.mkdir()
    (study / "study.json").write_text("{}")
    (study / "results.csv").write_text("arm\n")
    with pytest.raises(ConfigError, match=r"would overwrite a record of the vaelab folder"):
        check_output_file(study / "results.csv")
    other = tmp_path / "elsewhere"  # no config.yaml, sweep.yaml or study.json: not a vaelab folder
    other.mkdir()
    (other / "notes.json").write_text("{}")
    check_output_file(other / "notes.json")
