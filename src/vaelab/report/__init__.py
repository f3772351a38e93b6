"""``vaelab report DIR``: one self-contained HTML page for a run, a sweep or a study.

- a **run** folder: the final metrics, the collapse diagnosis (:mod:`vaelab.diagnose`), training curves (ELBO,
  rate, distortion, MI, AU, beta against the step), per-unit KL and activity bars, and what the model generates:
  reconstructions, prior samples, latent traversals and an interpolation (images) or decoded sentences (text);
- a **sweep** folder: its results table and the rate-distortion / generalisation figures of
  :mod:`vaelab.sweep.plots`;
- a **study** folder: the comparison table (He et al. 2019, Table 1 layout), the methods' metrics side by side,
  validation curves overlaid, per-unit KL of every method, a rate-distortion plot, the diagnosis and the samples
  of every method.

Figures are matplotlib PNGs embedded as data URIs: the page needs no server and no network. Written to
``DIR/report.html`` (or ``--out``).

The pages are built in :mod:`vaelab.report.pages` (with :mod:`~vaelab.report.page`, the HTML; figures.py,
samples.py), the command line is :mod:`vaelab.report.cli`; their public names are served here.
"""

from __future__ import annotations

from vaelab.report.cli import add_report_parser, cmd_report
from vaelab.report.pages import (
    METRIC_ROWS,
    REPORT_FILE,
    Log,
    final_metrics,
    folder_kind,
    run_page,
    study_page,
    sweep_page,
    write_report,
)

__all__ = [
    "METRIC_ROWS",
    "REPORT_FILE",
    "Log",
    "add_report_parser",
    "cmd_report",
    "final_metrics",
    "folder_kind",
    "run_page",
    "study_page",
    "sweep_page",
    "write_report",
]
