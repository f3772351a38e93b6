"""The pages of ``vaelab report``: one self-contained HTML page for a run (:func:`run_page`), a sweep
(:func:`sweep_page`) or a study (:func:`study_page`), written by :func:`write_report` (see :mod:`vaelab.report`).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vaelab.checkpoint import atomic_write_text
from vaelab.errors import ConfigError
from vaelab.report.page import Page, esc, file_data_uri, fmt
from vaelab.runfolder import (
    EVALUATION_FILES,
    RunFolder,
    cut_last_line,
    read_jsonl,
    read_metrics_file,
    stale_evaluation,
)
from vaelab.runfolder import read_json_or_none as _read_json

REPORT_FILE = "report.html"

Log = Callable[[str], None]


def folder_kind(path: str | Path) -> str:
    """``study``, ``sweep`` or ``run`` (error if ``path`` is none of them)."""
    root = Path(path)
    if (root / "study.json").is_file():
        return "study"
    if (root / "sweep.yaml").is_file() and (root / "points").is_dir():
        return "sweep"
    if (root / "config.yaml").is_file():
        return "run"
    raise FileNotFoundError(
        f"{root} is not a run folder (config.yaml), a sweep folder (sweep.yaml + points/) or a study folder "
        "(study.json)"
    )


def write_report(
    path: str | Path, out: str | Path | None = None, *, samples: bool = True, log: Log | None = None
) -> Path:
    """Write the report of the run, sweep or study in ``path``; return the HTML file's path."""
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    root = Path(path)
    kind = folder_kind(root)
    builder = {"run": run_page, "sweep": sweep_page, "study": study_page}[kind]
    page = builder(root, samples=samples, log=log)
    target = Path(out) if out else root / REPORT_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(target, page.render())
    return target


# ------------------------------------------------------------------------------------------------------------
# a run

METRIC_ROWS: list[tuple[str, str]] = [
    ("nll_iw", "IW-NLL (nats)"),
    ("iw_samples", "IW samples K"),
    ("elbo", "ELBO (nats)"),
    ("distortion", "distortion (nats)"),
    ("rate", "rate = KL (nats)"),
    ("mi", "MI (nats)"),
    ("mi_pool", "MI pool (ceiling ln N)"),
    ("marginal_kl", "rate - MI = KL(q(z) || p(z)) (nats)"),
    ("au", "active units"),
    ("hole_kl", "hole KL(p(z) || q(z)) (nats)"),
    ("cu_0.03", "CU(0.03)"),
    ("probe_accuracy", "linear probe accuracy, z ~ q(z|x)"),
    ("probe_majority", "majority-class rate (probe baseline)"),
    ("probe_mean_accuracy", "linear probe accuracy on E[z|x]"),
    ("bpd", "bits/dim"),
    ("ppl_elbo", "PPL (ELBO)"),
    ("ppl_iw", "PPL (IW)"),
    ("n", "examples"),
    ("train_time", "train time (s)"),
    ("best_epoch", "best epoch"),
]


def final_metrics(root: Path) -> tuple[dict[str, Any], str]:
    """The run's final evaluation: eval_test.json (sweep/study measurement) or eval.json merged over summary.json
    (later files win), and a note of the files used."""
    merged: dict[str, Any] = {}
    used: list[str] = []
    left_out: list[str] = []  # an evaluation of an earlier checkpoint (stale_evaluation)
    for name in ("summary.json", "eval.json", "eval_test.json", "diagnosis_eval.json"):
        # a file that is there must be whole: a damaged one is a one-line error naming it, not "no evaluation yet"
        data = read_metrics_file(root / name) if (root / name).is_file() else None
        if data and name in EVALUATION_FILES and (why := stale_evaluation(root / name, data)):
            left_out.append(f"{name} left out: {why}; run vaelab evaluate again")
            continue
        if data and data.get("split", "test") == "test":
            merged.update({k: v for k, v in data.items() if v is not None})
            used.append(name)
    return merged, "; ".join([", ".join(used), *left_out])


def _metric_table(page: Page, metrics: dict[str, Any]) -> None:
    rows = []
    for key, label in METRIC_ROWS:
        if key in metrics and not isinstance(metrics[key], list | dict):
            value = metrics[key]
            if key == "mi_pool" and isinstance(value, int) and value > 1:
                value = f"{value} ({math.log(value):.2f})"
            rows.append([label, value])
    page.table(["metric", "value"], rows)


def _config_line(root: Path) -> str:
    from vaelab.config import load_saved_config

    cfg = load_saved_config(root / "config.yaml")
    beta = cfg.objective.beta
    beta_s = f"{beta.type} {beta.value:g}" if hasattr(beta, "type") else str(beta)
    terms = ", ".join(t.get("type", "?") if isinstance(t, dict) else str(t) for t in cfg.objective.terms or [])
    return (
        f"data {cfg.data.name} · model {cfg.model.type} (D = {cfg.model.latent_dim}) · objective "
        f"{cfg.objective.regulariser}, beta {beta_s}{' + ' + terms if terms else ''} · strategy {cfg.train.strategy} · "
        f"seed {cfg.seed}"
    )


def _diagnosis_section(page: Page, root: Path, metrics: dict[str, Any]) -> Any:
    from vaelab.diagnose import diagnose_metrics, run_context

    if not metrics.get("kl_per_dim"):
        page.note("No per-unit rate in the run's files: run `vaelab diagnose DIR` to evaluate it.")
        return None
    model_type, beta = run_context(root)
    diag = diagnose_metrics(metrics, model_type=model_type, beta=beta)
    page.verdict(diag.verdict, diag.headline)
    page.bullets(diag.findings)
    page.heading("What to try")
    page.bullets(diag.recommendations)
    return diag


def _sample_sections(page: Page, root: Path, log: Log, *, compact: bool = False, label: str = "") -> None:
    from vaelab.report import figures
    from vaelab.report.samples import image_samples, is_image_run, text_samples
    from vaelab.run import load_run

    if not (root / "checkpoints" / "best.pt").is_file():
        page.note("No checkpoint (checkpoints/best.pt): no samples.")
        return
    try:
        image = is_image_run(root)
        # text runs decode on the CPU (the generator of the sampled words is a CPU one)
        run = load_run(root, overrides=() if image else ("train.device=cpu",))
        if image:
            s = image_samples(run)
            fig = figures.image_grid(
                [s.inputs, s.reconstructions, s.prior[: len(s.inputs)], s.prior[len(s.inputs) :]],
                ["test input", "reconstruction", "prior sample", "prior sample"],
            )
            page.figure(
                fig,
                f"{label}Test inputs and their reconstructions (decoder mean at the posterior mean), then decoder "
                "means "
                "of z ~ p(z) (fixed seed). A collapsed model reconstructs every input as the same average image.",
            )
            if compact:
                return
            if s.traversals:
                fig = figures.image_grid([t for _, t in s.traversals], [f"unit {d}" for d, _ in s.traversals])
                page.figure(
                    fig,
                    "Latent traversals: the units with the largest rate, each varied from -3 to 3 (columns) with the "
                    "other units at the first test example's posterior mean. Rows that do not change are units "
                    "the decoder ignores.",
                )
            if s.interpolation is not None:
                page.figure(
                    figures.image_grid([s.interpolation], ["interpolation"]),
                    "Decoder means along the line between two test examples' posterior means.",
                )
        else:
            s = text_samples(run)
            page.heading(f"{label}Sentences")
            page.table(["z ~ p(z), greedy decoding"], [[t] for t in s.prior], css="sentences")
            page.table(
                ["test sentence", "greedy decoding of its posterior mean"],
                [list(r) for r in s.reconstructions],
                css="sentences",
            )
            if s.interpolation and not compact:
                page.table(
                    ["t", "decoding of (1 - t) mu(a) + t mu(b)"],
                    [[f"{t:.2f}", txt] for t, txt in s.interpolation],
                    css="sentences",
                )
    except Exception as e:  # a report never fails for lack of samples
        log(f"report: no samples for {root}: {type(e).__name__}: {e}")
        page.note(f"Samples could not be drawn: {type(e).__name__}: {e}")


def run_page(root: Path, *, samples: bool = True, log: Log) -> Page:
    from vaelab.report import figures

    folder = RunFolder(root)
    metrics, used = final_metrics(root)
    page = Page(f"vaelab run report: {root.name}", _config_line(root))
    page.section("Final metrics")
    if metrics:
        _metric_table(page, metrics)
        page.note(f"Test split; numbers from {used}.")
    else:
        page.note("The run has no final evaluation yet (no summary.json).")
    page.section("Collapse diagnosis")
    _diagnosis_section(page, root, metrics)
    page.section("Training curves")
    records = folder.read_metrics()
    steps = read_jsonl(folder.steps)
    for path in (folder.metrics, folder.steps):  # read_jsonl skips a cut last line: the report says so
        if (line := cut_last_line(path)) is not None:
            why = f"{line}: the line is cut short (not JSON) and left out of the curves"
            log(f"report: {path}:{why}")
            page.note(f"{path.name}:{why}: the file is damaged, or the run was stopped while it wrote that line.")
    if records or steps:
        page.figure(
            figures.training_curves(records, steps),
            "ELBO, rate, distortion, MI (pooled over the validation split), active units and beta against the "
            "optimiser step: validation after each epoch (red), the epoch's training mean (blue, dashed) and the "
            "training mean over each logging window (grey).",
        )
    else:
        page.note("metrics.jsonl holds no record." if folder.metrics.exists() else "The run has no metrics.jsonl.")
    page.section("Latent units")
    if metrics.get("kl_per_dim"):
        page.figure(
            figures.unit_bars(
                metrics["kl_per_dim"], metrics.get("activity_per_dim"), metrics.get("au_threshold", 0.01)
            ),
            "Per-unit rate KL_d = E_x KL(q(z_d|x) || p(z_d)) and activity Var_x E[z_d|x] on the test split; a unit "
            "is active when its activity is at least the threshold (Burda et al. 2016).",
        )
    if samples:
        page.section("Samples")
        _sample_sections(page, root, log)
    return page


# ------------------------------------------------------------------------------------------------------------
# a sweep


def sweep_page(root: Path, *, samples: bool = True, log: Log) -> Page:
    from vaelab.sweep.aggregate import RESULTS_CSV, read_results, write_results
    from vaelab.sweep.plots import plot_sweep

    if not (root / RESULTS_CSV).is_file():
        write_results(root)
    rows = read_results(root)
    page = Page(f"vaelab sweep report: {root.name}", f"{len(rows)} points · {root}")
    page.section("Results")
    cols = ["point", "status"] + [
        c
        for c in (
            "test_nll_iw",
            "test_elbo",
            "test_rate",
            "test_distortion",
            "test_mi",
            "test_au",
            "gap_nll",
            "train_time",
        )
        if any(r.get(c) is not None for r in rows)
    ]
    page.table(cols, [[r.get(c) for c in cols] for r in rows])
    page.note("Nats per example; gap = test - train. The full table: results.csv.")
    page.section("Figures")
    try:
        paths = plot_sweep(root)
    except ConfigError as e:  # a sweep the beta figures do not fit (no beta varied); a bug keeps its traceback
        log(f"report: no sweep figures: {e}")
        page.note(f"No figures: {e}.")
        paths = []
    for p in paths:
        page.figure(file_data_uri(Path(p).read_bytes()), Path(p).stem.replace("_", " "))
    return page


# ------------------------------------------------------------------------------------------------------------
# a study


def study_page(root: Path, *, samples: bool = True, log: Log) -> Page:
    from vaelab.report import figures
    from vaelab.study.collapse import TABLE_MD, load_request, study_table, table_markdown

    req = load_request(root)
    table = study_table(root)
    page = Page(
        f"vaelab collapse study: {req['data']}",
        f"{len(req['methods'])} methods · budget {req['budget']} · seeds {req['seeds']} · {root}",
    )
    page.section("Comparison")
    headers = [
        "method",
        "IW-NLL",
        "KL",
        "MI",
        "AU",
        "CU(0.03)",
        "probe acc.",
        "hole KL",
        "train time (s)",
        "time ratio",
        "verdict",
        "seeds",
    ]
    keys = [
        "test_nll_iw",
        "test_rate",
        "test_mi",
        "test_au",
        "test_cu_0.03",
        "test_probe_accuracy",
        "test_hole_kl",
        "train_time",
    ]

    def cell(r: dict[str, Any], k: str) -> str:
        v, sd = r.get(k), r.get(f"{k}_sd")
        if v is None:
            return "-"
        return fmt(v) if sd is None else f"{fmt(v)} ± {fmt(sd, 2)}"

    rows = []
    for r in table:
        ratio = r.get("time_ratio")
        rows.append(
            [
                r["label"],
                *[cell(r, k) for k in keys],
                "-" if ratio is None else f"{ratio:.2f}x",
                r.get("verdict") or "-",
                r["seeds_completed"],
            ]
        )
    page.table(headers, rows)
    caption = table_markdown(table, req).split("\n\n", 1)[1].strip()
    page.note(caption)
    page.note(f"The same table as Markdown and CSV: {root / TABLE_MD}, {root / 'study.csv'}.")
    page.figure(figures.metric_bars(table), "The methods side by side (bars: mean over seeds; whiskers: sd).")

    # per method: the first completed seed's run folder
    runs: dict[str, Path] = {}
    from vaelab.sweep.aggregate import read_results

    for r in read_results(root):
        if r["status"] == "completed" and r.get("variant") not in runs:
            runs[str(r["variant"])] = Path(r["run_dir"])
    labels = {r["method"]: r["label"] for r in table}
    ordered = [(m, runs[m]) for m in req["methods"] if m in runs]
    evals = {m: _read_json(p / "eval_test.json") or {} for m, p in ordered}

    page.section("Training curves")
    curves = {labels[m]: RunFolder(p).read_metrics() for m, p in ordered}
    if curves:
        page.figure(
            figures.overlay_curves(curves),
            f"Validation ELBO, KL, MI and AU against the step, one line per method (seed {req['seeds'][0]}).",
        )
    page.section("Latent units and rate-distortion")
    units = {}
    rd = []
    for m, _ in ordered:
        ev = evals[m]
        if ev.get("kl_per_dim"):
            units[labels[m]] = ev["kl_per_dim"]
        if ev.get("rate") is not None and ev.get("distortion") is not None:
            rd.append((labels[m], float(ev["rate"]), float(ev["distortion"])))
    if units:
        page.figure(
            figures.units_heatmap(units),
            "Per-unit rate KL_d of each method on the test split, units sorted by "
            "rate within each row: dark rows are collapsed, a sharp edge marks how many units are used.",
        )
    if rd:
        page.figure(figures.rate_distortion(rd), "Each method's test rate and distortion (first seed).")

    page.section("Diagnosis per method")
    from vaelab.diagnose import diagnose_metrics, run_context

    for m, p in ordered:
        ev = evals[m]
        if not ev.get("kl_per_dim"):
            continue
        model_type, beta = run_context(p)
        diag = diagnose_metrics(ev, model_type=model_type, beta=beta)
        page.heading(labels[m])
        page.verdict(diag.verdict, diag.headline)
        if diag.recommendations and diag.verdict != "healthy":
            page.paragraph("Next: " + esc(diag.recommendations[0]), raw=True)
    if samples:
        page.section("Samples per method")
        for m, p in ordered:
            _sample_sections(page, p, log, compact=True, label=f"{labels[m]}: ")
    page.section("Method definitions")
    from vaelab.study.methods import METHODS

    page.table(
        ["method", "what changes from the plain VAE"],
        [[labels.get(m, m), METHODS.get(m).description] for m in req["methods"]],
    )
    return page


__all__ = [
    "METRIC_ROWS",
    "REPORT_FILE",
    "Log",
    "final_metrics",
    "folder_kind",
    "run_page",
    "study_page",
    "sweep_page",
    "write_report",
]
