"""Aggregate a sweep folder into one table: ``DIR/results.csv`` (and ``DIR/results.parquet`` with pyarrow).

One row per point of the sweep (every index, finished or not), in index order. Columns:

- ``index``, ``point`` (folder name), ``status`` (completed, failed, trained, partial, missing, running);
- the point's parameters under their config keys (``objective.beta``, ``data.train_size``, ``variant``,
  ``seed``, ...); lists and mappings as JSON text;
- from measurements.json: ``train_*``, ``valid_*`` and ``test_*``, one prefix per split of ``measure.splits``
  (nll_iw, nll_iw_se, elbo, rate, distortion, mi, mi_se, mi_pool, marginal_kl = rate - MI, au, n, bpd, ln_n,
  ln_n_minus_mi, seconds), ``iw_samples``, ``checkpoint`` and
  the gaps ``gap_nll``, ``gap_distortion``, ``gap_rate``, ``gap_elbo``, ``gap_mi``, ``gap_marginal_kl``
  (test - train);
- how training ended (:func:`vaelab.sweep.stopping.training_record`, from summary.json, metrics.jsonl and
  config.yaml): ``stopped_by`` (early_stopping, step_cap, epoch_limit, lr_decay), ``stop_reason`` (the trainer's
  words), ``epochs`` and ``steps`` (where it stopped), ``best_epoch`` and ``best_step`` (the measured model),
  ``epochs_since_best``, ``max_steps``, ``max_epochs``, ``patience``; and ``train_time``;
- for failed points: ``error_type``, ``error`` (message) and ``error_phase``;
- ``overrides`` (the point's ``key=value`` list) and ``run_dir``.

All metrics are nats per example. Reading the table back: :func:`read_results`.

Across seeds, :func:`write_summary` writes ``DIR/cells.csv`` (one row per combination of the other parameters:
mean and confidence interval over seeds of every metric) and ``DIR/results.md`` (the same as Markdown tables, the
stop accounting "N of M points hit the step cap" and every point's stop reason). The interval is the two-sided
95% Student-t interval of the mean over seeds, :func:`t_interval`.
"""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from pathlib import Path
from typing import Any

from vaelab.checkpoint import atomic_write_text
from vaelab.errors import UserError
from vaelab.runfolder import read_json_object
from vaelab.sweep.claims import write_claims
from vaelab.sweep.measure import MEASUREMENTS_FILE
from vaelab.sweep.runner import ERROR_FILE, check_point_folder, display_state, load_stored_spec, point_dir
from vaelab.sweep.spec import SweepError, SweepSpec
from vaelab.sweep.stopping import TRAINING_KEYS, step_cap_line, stop_counts, training_record

RESULTS_CSV = "results.csv"
RESULTS_PARQUET = "results.parquet"
CELLS_CSV = "cells.csv"
RESULTS_MD = "results.md"
SUMMARY_KEYS = (*TRAINING_KEYS, "train_time")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _measurements(folder: Path) -> dict[str, Any]:
    """A completed point's measurements.json; one that cannot be read (a truncated copy) is an error naming it,
    never a completed point without numbers."""
    path = folder / MEASUREMENTS_FILE
    try:
        return read_json_object(path)
    except UserError as e:
        raise UserError(
            f"{e}; delete it and run `vaelab sweep` on this folder again to measure the point again"
        ) from None


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
        if state != "missing":
            check_point_folder(spec, point, folder)  # a foreign run in a point's folder is never counted
        row: dict[str, Any] = {"index": point.index, "point": folder.name, "status": state}
        row.update({k: _cell(v) for k, v in point.params.items()})
        if state == "completed":
            row.update({k: _cell(v) for k, v in _measurements(folder).items()})
        row.update(training_record(folder))  # also for points measured before it was in measurements.json
        summary = _read_json(folder / "summary.json")
        if "train_time" in summary:
            row["train_time"] = summary["train_time"]
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
    redo = f"re-create it with `vaelab sweep-aggregate {path.parent}`"
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f, strict=True)
            rows = []
            for row in reader:
                if None in row or None in row.values():  # more or fewer cells than the header names
                    raise SweepError(
                        f"{path}:{reader.line_num}: the row's cells do not match the header's "
                        f"{len(reader.fieldnames or ())} columns; {redo}"
                    )
                rows.append({k: _parse(v) for k, v in row.items()})
    except csv.Error as e:
        raise SweepError(f"{path}: not a valid CSV file ({e}); {redo}") from None
    except UnicodeDecodeError as e:
        raise SweepError(f"{path}: not UTF-8 text ({e.reason}); {redo}") from None
    missing = [c for c in ("index", "point", "status") if c not in (reader.fieldnames or ())]
    if missing:
        raise SweepError(f"{path}: no column {missing[0]!r} in its header; {redo}")
    return rows


def status_counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    """Number of points per status."""
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    return counts


# --------------------------------------------------------------------------------------------------------------
# across seeds: mean and confidence interval per cell

CI_LEVEL = 0.95
"""Confidence level of the intervals over seeds (two-sided Student-t interval of the mean)."""

SPLIT_METRICS: tuple[tuple[str, str], ...] = (
    ("nll_iw", "IW-NLL"),
    ("elbo", "ELBO"),
    ("rate", "R"),
    ("distortion", "D"),
    ("mi", "MI"),
    ("ln_n_minus_mi", "ln N - MI"),
    ("marginal_kl", "R - MI"),
    ("au", "AU"),
)
MEASURED_SPLITS: tuple[tuple[str, str], ...] = (
    ("test", "Test split"),
    ("valid", "Validation split"),
    ("train", "Train split (measured subset)"),
)
"""(split, section title) of the splits ``measure.splits`` can name, in the order of results.md's sections."""
CELL_METRICS: tuple[tuple[str, str], ...] = (
    *((f"{split}_{m}", label) for split, _ in MEASURED_SPLITS for m, label in SPLIT_METRICS),
    ("gap_nll", "IW-NLL"),
    ("gap_distortion", "D"),
    ("gap_rate", "R"),
    ("gap_elbo", "ELBO"),
    ("gap_mi", "MI"),
    ("gap_marginal_kl", "R - MI"),
    ("steps", "steps"),
    ("best_step", "best step"),
    ("best_epoch", "best epoch"),
    ("train_time", "train time (s)"),
)
"""(column, short label) of the metrics summarised per cell, in table order."""
TRAINING_LENGTH = ("steps", "best_step", "best_epoch", "train_time")


def t_interval(values: list[float], level: float = CI_LEVEL) -> tuple[float, float | None, int]:
    """(mean, half-width, n) of the two-sided Student-t confidence interval of the mean of ``values``:
    half-width = t_{(1+level)/2, n-1} * s / sqrt(n), s the sample standard deviation (n - 1 in the denominator).
    Non-finite values are left out; the half-width is None with fewer than two values (mean NaN with none)."""
    from scipy.stats import t as student_t

    xs = [float(v) for v in values if isinstance(v, int | float) and math.isfinite(v)]
    n = len(xs)
    if n == 0:
        return math.nan, None, 0
    mean = statistics.fmean(xs)
    if n < 2:
        return mean, None, n
    q = float(student_t.ppf(0.5 + level / 2, n - 1))
    return mean, q * statistics.stdev(xs) / math.sqrt(n), n


def cell_keys(spec: SweepSpec, exclude: tuple[str, ...] = ("seed",)) -> list[str]:
    """The parameters that define a cell (a point up to the ``exclude``d ones, by default the seed): every varying
    parameter of the sweep, a named variant standing for its own keys."""
    named = bool(spec.variants) and all("name" in v for v in spec.variants)
    variant_keys = {k for v in spec.variants for k in v}
    return [k for k in spec.varying_keys() if k not in exclude and not (named and k != "variant" and k in variant_keys)]


def seed_cells(rows: list[dict[str, Any]], keys: list[str], level: float = CI_LEVEL) -> list[dict[str, Any]]:
    """One dict per cell (the rows sharing the values of ``keys``), in order of first appearance: the key values,
    ``points`` (rows), ``seeds`` (completed rows), ``step_cap`` (rows stopped by the step cap), ``stopped_by``
    (counts as text) and, per metric of :data:`CELL_METRICS` present, ``<metric>_mean``, ``<metric>_ci`` (the
    half-width of :func:`t_interval` over the completed rows) and ``<metric>_n``."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(tuple(r.get(k) for k in keys), []).append(r)
    present = [m for m, _ in CELL_METRICS if any(isinstance(r.get(m), int | float) for r in rows)]
    cells = []
    for values, members in groups.items():
        done = [r for r in members if r.get("status") == "completed"]
        counts = stop_counts(members)
        cell: dict[str, Any] = dict(zip(keys, values, strict=True))
        cell.update(
            points=len(members),
            seeds=len(done),
            step_cap=counts.get("step_cap", 0),
            stopped_by=", ".join(f"{k} {n}" for k, n in counts.items()),
        )
        for m in present:
            mean, half, n = t_interval([r.get(m) for r in done], level)
            cell[f"{m}_mean"], cell[f"{m}_ci"], cell[f"{m}_n"] = (mean if n else None), half, n
        cells.append(cell)
    return cells


def _fmt(mean: Any, half: Any = None, digits: int = 2) -> str:
    if not isinstance(mean, int | float) or not math.isfinite(mean):
        return "-"
    text = f"{mean:.{digits}f}"
    if text.startswith("-") and not text.strip("-0."):  # -0.00: a value that rounds to zero has no sign
        text = text[1:]
    return f"{text} ± {half:.{digits}f}" if isinstance(half, int | float) else text


def _digits(metric: str) -> int:
    """Decimals shown in results.md: 1 for counts (AU, steps), 2 for nats."""
    return 1 if metric.endswith(("_au", "steps", "step", "time")) else 2


def _md_table(header: list[str], body: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in body]
    return lines


def results_markdown(out: str | Path, rows: list[dict[str, Any]] | None = None, level: float = CI_LEVEL) -> str:
    """The sweep as Markdown: stop accounting, per-cell tables (one per measured split of ``measure.splits``:
    test, valid, train; the gaps; mean ± CI over seeds) and the stop reason of every point. The header's MI pool N
    is that of the measured splits."""
    spec = load_stored_spec(out)
    rows = collect_rows(out) if rows is None else rows
    keys = cell_keys(spec)
    cells = seed_cells(rows, keys, level)
    status: dict[str, int] = {}
    for r in rows:
        status[r["status"]] = status.get(r["status"], 0) + 1
    done = [r for r in rows if r.get("status") == "completed"]
    iw = sorted({r["iw_samples"] for r in done if isinstance(r.get("iw_samples"), int)})
    measured = [s for s, _ in MEASURED_SPLITS if s in spec.measure.splits]
    pools = sorted({int(r[f"{s}_mi_pool"]) for r in done for s in measured if r.get(f"{s}_mi_pool")})
    pct = f"{100 * level:g}%"
    lines = [
        f"# Sweep {spec.name}",
        "",
        f"{len(rows)} points: " + ", ".join(f"{n} {s}" for s, n in sorted(status.items())) + ".",
        "",
        f"**{step_cap_line(rows)}.**",
        "",
        f"Cells: mean ± half-width of the two-sided {pct} Student-t confidence interval of the mean over the "
        f"completed seeds of the cell (t_{{{(1 + level) / 2:g}, n-1}} · s / √n; one seed: no interval). "
        f"IW-NLL with K = {', '.join(map(str, iw)) or '-'}; MI pooled over N = {', '.join(map(str, pools)) or '-'} "
        f"examples (cap ln N = {', '.join(f'{math.log(p):.2f}' for p in pools) or '-'}). Nats per example; "
        "every point is measured on its best-validation checkpoint (best epoch/step below).",
        "",
    ]
    labels = [k.rsplit(".", 1)[-1] if k != "objective.beta.value" else "beta" for k in keys]

    def head(r: dict[str, Any]) -> list[str]:
        return [str(r.get(k)) for k in keys]

    sections = [  # a section per measured split (measure.splits), then the gaps (train and test measured)
        *((title, [(f"{split}_{m}", lbl) for m, lbl in SPLIT_METRICS]) for split, title in MEASURED_SPLITS),
        ("Generalisation gaps (test - train)", [(m, lbl) for m, lbl in CELL_METRICS if m.startswith("gap_")]),
        ("Training length", [(m, lbl) for m, lbl in CELL_METRICS if m in TRAINING_LENGTH]),
    ]
    for title, metrics in sections:
        metrics = [(m, lbl) for m, lbl in metrics if cells and f"{m}_mean" in cells[0]]
        if not metrics:
            continue
        lines += [f"## {title}", ""]
        header = [*labels, "seeds", *(lbl for _, lbl in metrics), "step cap"]
        body = [
            [
                *head(c),
                str(c["seeds"]),
                *(_fmt(c[f"{m}_mean"], c[f"{m}_ci"], _digits(m)) for m, _ in metrics),
                f"{c['step_cap']}/{c['points']}",
            ]
            for c in cells
        ]
        lines += [*_md_table(header, body), ""]
    lines += ["## Stopping, per point", ""]
    header = [
        "index",
        "point",
        "status",
        "stopped by",
        "epochs",
        "steps",
        "best epoch",
        "best step",
        "since best",
        "late gain",
    ]
    body = [
        [
            str(r["index"]),
            str(r["point"]),
            str(r["status"]),
            str(r.get("stopped_by") or "-"),
            *(str(r[k]) if r.get(k) is not None else "-" for k in ("epochs", "steps", "best_epoch", "best_step")),
            str(r["epochs_since_best"]) if r.get("epochs_since_best") is not None else "-",
            f"{r['late_gain']:.2f}" if isinstance(r.get("late_gain"), int | float) else "-",
        ]
        for r in rows
    ]
    lines += [*_md_table(header, body), ""]
    return "\n".join(lines)


def write_summary(out: str | Path, level: float = CI_LEVEL) -> tuple[Path, ...]:
    """Write ``DIR/cells.csv`` (one row per cell: :func:`seed_cells`), ``DIR/results.md``
    (:func:`results_markdown`) and, for a beta sweep measured with the IW-NLL, ``DIR/claims.md``
    (:mod:`vaelab.sweep.claims`); return their paths."""
    spec = load_stored_spec(out)
    rows = collect_rows(out)
    cells = seed_cells(rows, cell_keys(spec), level)
    cols: dict[str, None] = {}
    for c in cells:
        for k in c:
            cols.setdefault(k, None)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(cols), lineterminator="\n")
    writer.writeheader()
    for c in cells:
        writer.writerow({k: _cell(c.get(k)) for k in cols})
    csv_path = Path(out) / CELLS_CSV
    atomic_write_text(csv_path, buf.getvalue())
    md_path = Path(out) / RESULTS_MD
    atomic_write_text(md_path, results_markdown(out, rows, level))
    claims = write_claims(out, cells, cell_keys(spec))
    return (csv_path, md_path) if claims is None else (csv_path, md_path, claims)
