"""A self-contained HTML page: inline CSS, figures as base64 PNG data URIs, no script, no external request.

The page opens from disk in any browser and can be mailed as one file. Every figure is an ``<img>`` with
``class="figure"`` and an ``alt`` text; every table has a header row.
"""

from __future__ import annotations

import base64
import html
import io
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 0 auto; max-width: 1200px;
       padding: 1.5em 2em 4em; color: #1d1d1f; line-height: 1.45; }
h1 { font-size: 1.7em; margin-bottom: 0.2em; } h2 { margin-top: 2em; border-bottom: 1px solid #ddd; }
h3 { margin-top: 1.4em; }
.meta { color: #666; font-size: 0.9em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 0.3em 0.6em; text-align: right; }
th { background: #f5f5f7; } td:first-child, th:first-child { text-align: left; }
figure { margin: 1em 0; } figcaption { color: #555; font-size: 0.88em; max-width: 900px; }
img.figure { max-width: 100%; height: auto; border: 1px solid #eee; }
pre, code { background: #f5f5f7; border-radius: 3px; } pre { padding: 0.6em; overflow-x: auto; }
.verdict-collapsed { color: #b00020; font-weight: bold; } .verdict-partial { color: #b36b00; font-weight: bold; }
.verdict-healthy { color: #1b7f3b; font-weight: bold; }
nav a { margin-right: 1em; } .sentences td { text-align: left; font-family: Georgia, serif; }
.grid { display: flex; flex-wrap: wrap; gap: 1.2em; } .grid figure { flex: 1 1 360px; }
"""


def png_data_uri(fig: Any, dpi: int = 100) -> str:
    """A matplotlib figure as a ``data:image/png;base64,...`` URI (the figure is closed)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def file_data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def fmt(value: Any, digits: int = 4) -> str:
    """Numbers with ``digits`` significant figures (integers as they are), None as a dash."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value:  # NaN
            return "nan"
        return f"{value:.{digits}g}" if abs(value) < 10**digits else f"{value:.1f}"
    return str(value)


@dataclass
class Page:
    """An HTML report under construction: sections of headings, paragraphs, tables and figures."""

    title: str
    subtitle: str = ""
    parts: list[str] = field(default_factory=list)
    toc: list[tuple[str, str]] = field(default_factory=list)
    figures: int = 0

    def section(self, title: str) -> None:
        anchor = f"s{len(self.toc)}"
        self.toc.append((anchor, title))
        self.parts.append(f'<h2 id="{anchor}">{esc(title)}</h2>')

    def heading(self, title: str) -> None:
        self.parts.append(f"<h3>{esc(title)}</h3>")

    def paragraph(self, text: str, *, raw: bool = False) -> None:
        self.parts.append(f"<p>{text if raw else esc(text)}</p>")

    def bullets(self, items: Sequence[str]) -> None:
        self.parts.append("<ul>" + "".join(f"<li>{esc(i)}</li>" for i in items) + "</ul>")

    def pre(self, text: str) -> None:
        self.parts.append(f"<pre>{esc(text)}</pre>")

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[Any]], *, css: str = "") -> None:
        head = "".join(f"<th>{esc(h)}</th>" for h in headers)
        body = "".join("<tr>" + "".join(f"<td>{esc(fmt(c))}</td>" for c in row) + "</tr>" for row in rows)
        cls = f' class="{css}"' if css else ""
        self.parts.append(f"<table{cls}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")

    def figure(self, fig_or_uri: Any, caption: str, *, alt: str | None = None, dpi: int = 100) -> None:
        uri = fig_or_uri if isinstance(fig_or_uri, str) else png_data_uri(fig_or_uri, dpi=dpi)
        self.figures += 1
        self.parts.append(
            f'<figure><img class="figure" alt="{esc(alt or caption)}" src="{uri}">'
            f"<figcaption>Figure {self.figures}. {esc(caption)}</figcaption></figure>"
        )

    def verdict(self, verdict: str, headline: str) -> None:
        self.parts.append(f'<p><span class="verdict-{esc(verdict)}">{esc(verdict.upper())}</span> {esc(headline)}</p>')

    def note(self, text: str) -> None:
        self.parts.append(f'<p class="meta">{esc(text)}</p>')

    def render(self) -> str:
        nav = " ".join(f'<a href="#{a}">{esc(t)}</a>' for a, t in self.toc)
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        return (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{esc(self.title)}</title>'
            f"<style>{CSS}</style></head><body>"
            f'<h1>{esc(self.title)}</h1><p class="meta">{esc(self.subtitle)} · written {stamp} by vaelab</p>'
            f"<nav>{nav}</nav>" + "\n".join(self.parts) + "</body></html>\n"
        )
