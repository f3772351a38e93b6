"""Aggregate a sweep folder into one table: ``DIR/results.csv`` (and ``DIR/results.parquet`` with pyarrow).

One row per point of the sweep (every index, finished or not), in index order. Columns:

- ``index``, ``point`` (folder name), ``status`` (completed, failed, trained, partial, missing, running);
- the point's parameters under their config keys (``objective.beta``, ``data.train_size``, ``variant``,
  ``seed``, ...); lists and mappings as JSON text;
- from measurements.json: ``train_*`` and ``test_*`` (nll_iw, nll_iw_se, elbo, rate, distortion, mi, mi_se,
  mi_pool, marginal_kl = rate - MI, au, n, bpd, ln_n, seconds), ``iw_samples``, ``checkpoint`` and the gaps
  ``gap_nll``, ``gap_distortion``, ``gap_rate``, ``gap_elbo`` (test - train);
- from summary.json: ``best_epoch``, ``epochs``, ``steps``, ``train_time``, ``stop_reason``;
- for failed points: ``error_type``, ``error`` (message) and ``error_phase``;
- ``overrides`` (the point's ``key=value`` list) and ``run_dir``.

All metrics are nats per example. Reading the table back: :func:`read_results`.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from vaelab.sweep.measure import MEASUREMENTS_FILE
from vaelab.sweep.runner import ERROR_FILE, display_state, load_stored_spec, point_dir
from vaelab.training.checkpoint import atomic_write_text

RESULTS_CSV = "results.csv"
RESULTS_PARQUET = "results.parquet"
SUMMARY_KEYS = ("best_epoch", "epochs", "steps", "train_time", "stop_reason")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _cell(value: Any) -> Any:
    if isinstance(value, list | tuple | dict):
        return json.dumps(value)
    return value


def collect_rows(out: str | Path) -> list[dict[str, Any]]:
    """One row (a flat dict) per point of the sweep stored in ``out``, in index order."""
    spec = load_stored_spec(out)
    rows = []
    for point in spec.points():
        folder = point_dir(out, point)
        state = display_state(folder)
        row: dict[str, Any] = {"index": point.index, "point": point.folder_name, "status": state}
        row.update({k: _cell(v) for k, v in point.params.items()})
        if state == "completed":
            row.update({k: _cell(v) for k, v in _read_json(folder / MEASUREMENTS_FILE).items()})
        summary = _read_json(folder / "summary.json")
        row.update({k: summary[k] for k in SUMMARY_KEYS if k in summary})
        if state == "failed":
            err = _read_json(folder / ERROR_FILE)
            row["error_type"] = err.get("error_type")
            row["error"] = err.get("message")
            row["error_phase"] = err.get("phase")
        row["overrides"] = " ".join(point.overrides)
        row["run_dir"] = str(folder)
        rows.append(row)
    return rows


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    """Stable column order: identity, parameters, train/test metrics, gaps, bookkeeping, errors, provenance."""
    seen: dict[str, None] = {}
    for r in rows:
        for k in r:
            seen.setdefault(k, None)
    keys = list(seen)
    head = ["index", "point", "status"]
    tail_order = [*SUMMARY_KEYS, "error_type", "error", "error_phase", "overrides", "run_dir"]
    metrics = [k for k in keys if k.startswith(("train_", "test_", "valid_")) and k not in tail_order]
    metrics.sort(key=lambda k: (k.split("_", 1)[1], k))  # train_x next to test_x
    gaps = sorted(k for k in keys if k.startswith("gap_"))
    other = [k for k in ("iw_samples", "checkpoint") if k in seen]
    params = [k for k in keys if k not in {*head, *tail_order, *metrics, *gaps, *other}]
    return [*head, *params, *metrics, *gaps, *other, *[k for k in tail_order if k in seen]]


def write_results(out: str | Path) -> Path:
    """Write ``DIR/results.csv`` (and ``DIR/results.parquet`` when pyarrow is installed); return the CSV path."""
    rows = collect_rows(out)
    cols = _columns(rows)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: r.get(k) for k in cols})
    path = Path(out) / RESULTS_CSV
    atomic_write_text(path, buf.getvalue())
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        return path
    table = pa.Table.from_pylist([{k: _parquet_value(r.get(k)) for k in cols} for r in rows])
    pq.write_table(table, Path(out) / RESULTS_PARQUET)
    return path


def _parquet_value(v: Any) -> Any:
    return str(v) if isinstance(v, bool) else v


def _parse(text: str) -> Any:
    if text == "":
        return None
    try:
        f = float(text)
    except ValueError:
        return text
    if math.isfinite(f) and f.is_integer() and "." not in text and "e" not in text.lower():
        return int(f)
    return f


def read_results(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a results.csv (or of ``DIR/results.csv`` given a folder) with numbers parsed and empty cells None.
    List-valued parameters stay JSON text."""
    path = Path(path)
    if path.is_dir():
        path = path / RESULTS_CSV
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; run `vaelab sweep-aggregate DIR` first")
    with open(path, newline="") as f:
        return [{k: _parse(v) for k, v in row.items()} for row in csv.DictReader(f)]


def status_counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    """Number of points per status."""
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    return counts
