"""``vaelab report DIR [--out FILE] [--no-samples]``: the command line of :func:`vaelab.report.write_report`."""

from __future__ import annotations

import argparse
from typing import Any

from vaelab.oserrors import check_output_file
from vaelab.report.pages import write_report


def cmd_report(args: argparse.Namespace) -> int:
    if args.out:
        check_output_file(args.out)
    path = write_report(args.dir, args.out, samples=not args.no_samples)
    print(f"report: {path}")
    return 0


def add_report_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "report",
        help="write a self-contained HTML report of a run, sweep or study folder",
        description="Write DIR/report.html: metrics, diagnosis, training curves, per-unit KL, samples (run); "
        "results and rate-distortion figures (sweep); the comparison table and every method side by side (study).",
    )
    p.add_argument("dir", help="run, sweep or study folder")
    p.add_argument("--out", help="HTML file to write (default DIR/report.html)")
    p.add_argument("--no-samples", action="store_true", help="skip drawing samples from the models (faster)")
    p.set_defaults(func=cmd_report)


__all__ = ["add_report_parser", "cmd_report"]
