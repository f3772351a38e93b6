"""Drive headless Chromium over a vaelab report: load it, record what went wrong, take a screenshot.

The report page has no script of its own, so :func:`check_page` works on an instrumented copy: a probe script
injected right after ``<head>`` records JavaScript errors, ``console.error`` calls and failed resource loads (the
``error`` event in the capture phase, which is how a broken ``<img>`` shows up), and a script at the end of the body
writes a JSON summary into ``<pre id="vaelab-check">`` once the page has loaded. Chromium prints the DOM with
``--dump-dom``; the summary is read back from it. Console messages Chromium itself logs (``--enable-logging``) are
collected from its stderr as well.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHECK_ID = "vaelab-check"
TIMEOUT_S = 120

# Recorded from the very start of the page: JS errors, unhandled rejections, console.error and failed loads.
HEAD_PROBE = """<script>
window.__vaelabErrors = [];
window.addEventListener("error", function (e) {
  var t = e.target;
  if (t && t !== window && t.tagName) {
    var what = t.getAttribute("alt") || t.getAttribute("src") || t.getAttribute("href") || "";
    window.__vaelabErrors.push("failed load: <" + t.tagName.toLowerCase() + "> " + what.slice(0, 120));
  } else {
    window.__vaelabErrors.push("js error: " + e.message + " (" + e.filename + ":" + e.lineno + ")");
  }
}, true);
window.addEventListener("unhandledrejection", function (e) {
  window.__vaelabErrors.push("unhandled rejection: " + String(e.reason));
});
(function () {
  var original = console.error;
  console.error = function () {
    window.__vaelabErrors.push("console.error: " + Array.prototype.join.call(arguments, " "));
    return original.apply(console, arguments);
  };
})();
</script>"""

# After load: every <img> decoded (naturalWidth > 0) and laid out (non-empty box), written into the DOM as JSON.
BODY_PROBE = """<script>
window.addEventListener("load", function () {
  var all = Array.prototype.slice.call(document.images);
  var figures = all.filter(function (img) { return img.classList.contains("figure"); });
  var bad = [];
  var rendered = 0;
  all.forEach(function (img) {
    var box = img.getBoundingClientRect();
    var ok = img.complete && img.naturalWidth > 0 && img.naturalHeight > 0 && box.width > 0 && box.height > 0;
    if (!ok) { bad.push(img.getAttribute("alt") || (img.getAttribute("src") || "").slice(0, 60)); }
    else if (img.classList.contains("figure")) { rendered += 1; }
  });
  var sentences = Array.prototype.map.call(document.querySelectorAll("table.sentences td"), function (td) {
    return td.textContent;
  });
  var out = document.createElement("pre");
  out.id = "__CHECK_ID__";
  out.textContent = JSON.stringify({
    errors: window.__vaelabErrors,
    images: figures.length,
    all_images: all.length,
    rendered: rendered,
    bad: bad,
    sentence_cells: sentences,
    height: document.documentElement.scrollHeight
  });
  document.body.appendChild(out);
});
</script>""".replace("__CHECK_ID__", CHECK_ID)

CONSOLE_LINE = re.compile(r":CONSOLE[:(]\d*\)?\]\s*(.*)")
FIGURE_TAG = re.compile(r"<img\s+class=\"figure\"", re.IGNORECASE)
EXTERNAL_REF = re.compile(
    r"""(?:\b(?:src|href|srcset|action|poster|data)\s*=\s*["']?\s*(?:https?:)?//)|(?:url\(\s*["']?\s*(?:https?:)?//)"""
    r"""|(?:@import\s+["']?(?:https?:)?//)""",
    re.IGNORECASE,
)


@dataclass
class PageCheck:
    """What the browser saw: errors recorded in the page, figure counts, broken images and console output."""

    errors: list[str]
    images: int
    all_images: int
    rendered: int
    bad: list[str]
    sentence_cells: list[str]
    height: int
    console: list[str] = field(default_factory=list)


def find_chromium() -> str | None:
    """The path of a Chromium (or Chrome) executable on PATH, or None."""
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def count_figures(page_html: str) -> int:
    """The number of ``<img class="figure"`` tags in the page's source."""
    return len(FIGURE_TAG.findall(page_html))


def static_problems(page_html: str) -> list[str]:
    """Why the page is not self-contained, from its source alone: scripts and references to http(s) URLs."""
    problems = []
    if re.search(r"<script\b", page_html, re.IGNORECASE):
        problems.append("contains a <script>")
    for m in EXTERNAL_REF.finditer(page_html):
        problems.append(f"external reference: {m.group(0)}")
    return problems


def instrument(page_html: str) -> str:
    """The page with the probe scripts: :data:`HEAD_PROBE` right after ``<head>``, :data:`BODY_PROBE` before
    ``</body>`` (appended when the page has no closing body tag)."""
    head = re.search(r"<head\b[^>]*>", page_html, re.IGNORECASE)
    if head is None:
        raise ValueError("the page has no <head>")
    out = page_html[: head.end()] + HEAD_PROBE + page_html[head.end() :]
    body_end = out.lower().rfind("</body>")
    if body_end < 0:
        return out + BODY_PROBE
    return out[:body_end] + BODY_PROBE + out[body_end:]


def _chromium_args(chromium: str, profile: Path, window: tuple[int, int]) -> list[str]:
    return [
        chromium,
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-extensions",
        "--no-first-run",
        "--no-default-browser-check",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        f"--window-size={window[0]},{window[1]}",
        f"--user-data-dir={profile}",
        # every host name fails to resolve: a page that reaches for the network shows a failed load
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--enable-logging=stderr",
        "--v=0",
    ]


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"chromium exited with {proc.returncode}:\n{proc.stderr[-3000:]}")
    return proc


def check_page(chromium: str, page: Path, *, budget_ms: int = 10000) -> PageCheck:
    """Load an instrumented copy of ``page`` (in a fresh temporary folder, so that any relative reference fails)
    in headless Chromium and return what the probe recorded."""
    with tempfile.TemporaryDirectory(prefix="vaelab-browser-") as tmp:
        copy = Path(tmp) / "page.html"
        copy.write_text(instrument(page.read_text(encoding="utf-8")), encoding="utf-8")
        args = _chromium_args(chromium, Path(tmp) / "profile", (1280, 3000))
        proc = _run([*args, "--dump-dom", f"--virtual-time-budget={budget_ms}", copy.as_uri()])
    m = re.search(rf'<pre id="{CHECK_ID}">(.*?)</pre>', proc.stdout, re.DOTALL)
    if m is None:
        raise AssertionError(f"no #{CHECK_ID} in the DOM: the load handler never ran.\n{proc.stderr[-3000:]}")
    data = json.loads(html.unescape(m.group(1)))
    console = [c.group(1) for c in map(CONSOLE_LINE.search, proc.stderr.splitlines()) if c]
    return PageCheck(console=console, **data)


def screenshot(chromium: str, page: Path, target: Path, *, window: tuple[int, int] = (1280, 3000)) -> Path:
    """A PNG screenshot of ``page`` at ``window`` (width, height) written to ``target``; returns ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="vaelab-browser-") as tmp:
        args = _chromium_args(chromium, Path(tmp) / "profile", window)
        _run([*args, f"--screenshot={target}", "--virtual-time-budget=5000", page.resolve().as_uri()])
    if not target.is_file():
        raise AssertionError(f"chromium wrote no screenshot to {target}")
    return target
