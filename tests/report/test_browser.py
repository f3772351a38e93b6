"""`vaelab report` pages opened in headless Chromium: they load without a JavaScript error, a console message or a
failed load, every figure decodes and is laid out, and the page is self-contained (no script, no http(s) reference).

Three reports are built from scratch: a collapse study on synthetic images (`vaelab study collapse`, which writes its
report at the end), a run on synthetic images and a text-VAE run on a tiny corpus (`vaelab train` then `vaelab
report`). A screenshot of the study's page is kept in build/test-output/report_screenshot.png. Negative controls show
that the browser check does fail on a broken image, a missing file and a script error.

Skips when no Chromium is installed (`apt-get install chromium`; .ci/run tries that when it runs as root).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .browser import PageCheck, check_page, count_figures, find_chromium, screenshot, static_problems

REPO = Path(__file__).resolve().parents[2]
SCREENSHOT = REPO / "build" / "test-output" / "report_screenshot.png"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

STUDY_ARGS = [
    "study",
    "collapse",
    "--data",
    "synthetic_blobs",
    "--set",
    "data.num_examples=512",
    "data.image_shape=[1,8,8]",
    "data.eval_size=128",
    "data.train_size=null",
    "--budget",
    "2",
    "--iw-samples",
    "8",
    "--methods",
    "plain,free_bits,aggressive",
]


def _vaelab(env: dict[str, str], *args: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "vaelab", *args], capture_output=True, text=True, env=env, timeout=300, check=False
    )
    assert proc.returncode == 0, f"vaelab {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}"


def _assert_clean(report: Path, check: PageCheck) -> str:
    """The checks every report passes; returns the page's source."""
    source = report.read_text(encoding="utf-8")
    assert static_problems(source) == []
    n = count_figures(source)
    assert n > 0
    assert check.errors == []
    assert check.console == []
    assert check.bad == []
    assert check.images == n and check.all_images == n
    assert check.rendered == n
    assert check.height > 1000  # laid out, not an empty page
    return source


@pytest.fixture(scope="module")
def chromium() -> str:
    path = find_chromium()
    if path is None:
        pytest.skip("chromium not installed: apt-get install chromium")
    return path


@pytest.fixture(scope="module")
def study_report(chromium: str, tmp_path_factory: pytest.TempPathFactory, cli_env: dict[str, str]) -> Path:
    """report.html of a three-method collapse study on 8x8 synthetic images (about 10 s)."""
    out = tmp_path_factory.mktemp("study") / "study"
    _vaelab(cli_env, *STUDY_ARGS, "--out", str(out))
    report = out / "report.html"
    assert report.is_file()
    return report


def test_study_report_loads_cleanly(chromium: str, study_report: Path):
    check = check_page(chromium, study_report)
    source = _assert_clean(study_report, check)
    # comparison bars, curves, units heatmap, rate-distortion, then one sample grid per method
    assert count_figures(source) >= 4 + 3
    for label in ("VAE", "free bits", "aggressive"):
        assert label in source


def test_study_report_screenshot(chromium: str, study_report: Path):
    import matplotlib.image

    png = screenshot(chromium, study_report, SCREENSHOT, window=(1280, 3000))
    assert png == SCREENSHOT and png.stat().st_size > 20_000
    assert png.read_bytes()[:8] == PNG_SIGNATURE
    pixels = matplotlib.image.imread(png)
    assert pixels.shape[:2] == (3000, 1280)
    assert float(pixels[..., :3].std()) > 0.01  # not a blank page of one colour


def test_image_run_report_loads_cleanly(chromium: str, tiny_config, tmp_path: Path, cli_env: dict[str, str]):
    run = tmp_path / "run"
    _vaelab(cli_env, "train", str(tiny_config()), "--out", str(run))
    _vaelab(cli_env, "report", str(run))
    report = run / "report.html"
    source = _assert_clean(report, check_page(chromium, report))
    # curves, unit bars, reconstructions + prior samples, traversals, interpolation
    assert count_figures(source) == 5


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def test_text_run_report_loads_cleanly(chromium: str, tmp_path: Path, text_run_config, cli_env: dict[str, str]):
    cfg = text_run_config()  # the tiny corpus of tests/conftest.py, in tmp_path / "corpus"
    run = tmp_path / "run"
    _vaelab(cli_env, "train", str(cfg), "--out", str(run))
    _vaelab(cli_env, "report", str(run))
    report = run / "report.html"
    check = check_page(chromium, report)
    _assert_clean(report, check)
    # sentences are tables, not images: the prior samples, the test sentences and their decodings are shown
    assert check.sentence_cells, "no table.sentences cells in the rendered page"
    vocabulary = set((tmp_path / "corpus" / "train.txt").read_text().split())
    test_sentences = set((tmp_path / "corpus" / "test.txt").read_text().splitlines())
    assert test_sentences & set(check.sentence_cells)
    words = [c for c in check.sentence_cells if c.strip() and not _is_number(c)]  # less the interpolation's t column
    assert all(set(cell.split()) <= vocabulary | {"<unk>"} for cell in words), words


# ------------------------------------------------------------------------------------------------------------
# negative controls: the check is not vacuous

FIGURE = '<figure><img class="figure" alt="{alt}" src="{src}"><figcaption>x</figcaption></figure>'


def _page(body: str) -> str:
    head = '<head><meta charset="utf-8"><title>t</title></head>'
    return f'<!DOCTYPE html>\n<html lang="en">{head}<body>{body}</body></html>'


@pytest.mark.parametrize(
    ("src", "alt"),
    [("data:image/png;base64,AAAA", "broken data uri"), ("missing.png", "missing file")],
)
def test_check_reports_a_broken_image(chromium: str, tmp_path: Path, src: str, alt: str):
    page = tmp_path / "broken.html"
    page.write_text(_page("<h1>broken</h1>" + FIGURE.format(alt=alt, src=src)))
    check = check_page(chromium, page)
    assert check.bad == [alt]
    assert check.images == count_figures(page.read_text()) == 1 and check.rendered == 0
    assert any("failed load" in e and alt in e for e in check.errors)


def test_check_reports_a_script_error(chromium: str, tmp_path: Path):
    page = tmp_path / "script.html"
    page.write_text(_page("<p>x</p><script>console.error('oops'); undefinedFunction();</script>"))
    assert static_problems(page.read_text()) == ["contains a <script>"]
    check = check_page(chromium, page)
    assert any("console.error: oops" in e for e in check.errors)
    assert any("undefinedFunction" in e for e in check.errors)
    assert any("undefinedFunction" in c for c in check.console)


def test_static_check_flags_external_references():
    assert static_problems(_page('<img class="figure" alt="a" src="data:image/png;base64,AAAA">')) == []
    for bad in (
        '<img src="https://example.com/a.png">',
        "<link rel=stylesheet href='http://example.com/a.css'>",
        '<img src="//example.com/a.png">',
        "<style>body { background: url(https://example.com/bg.png) }</style>",
    ):
        assert static_problems(_page(bad)), bad
