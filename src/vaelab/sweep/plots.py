"""Figures of a sweep's results table (Bozkurt et al. 2021, AISTATS): ``vaelab plot-sweep DIR`` -> DIR/plots/.

- ``test_nll.png``: test IW-NLL (solid) and train IW-NLL (dashed) against beta, one panel per training-set size
  (``data.train_size``, else the last other varying parameter), one line per capacity (the remaining parameters);
  a red ring marks a beta where at least one seed stopped at the step cap (``train.max_steps``), i.e. may not
  have converged;
- ``rate_distortion.png``: distortion against rate on train and test, one line per group (the sweep's other
  varying parameters: capacity, training-set size, ...) through its beta values, points coloured by beta;
- ``nll_gap.png``: test IW-NLL and the generalisation gaps (test - train) of the IW-NLL, distortion and rate
  against beta, one line per group;
- ``mutual_information.png``: MI (train and test, pooled over the whole measured split) and rate - MI =
  KL(q(z) || p(z)) against beta, with ln N, the cap of the MI estimate, marked.

Points are averaged over seeds; error bars: the two-sided 95% Student-t confidence interval of the mean over seeds
(:func:`vaelab.sweep.aggregate.t_interval`, as in results.md), or the range over seeds with ``error="range"``.
Every quantity is in nats per example.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from vaelab.errors import ConfigError, UserError
from vaelab.sweep.aggregate import CI_LEVEL, cell_keys, read_results, t_interval
from vaelab.sweep.runner import load_stored_spec

FIGURES = ("rate_distortion.png", "nll_gap.png", "mutual_information.png", "test_nll.png")
ERROR_BARS = ("ci", "range")
MARKERS = "osD^v<>phX*"


def find_beta_key(columns: list[str]) -> str:
    """The parameter column holding beta: ``objective.beta.value`` or ``objective.beta`` (a schedule mapping),
    else the first column whose name contains ``beta``."""
    for c in ("objective.beta.value", "objective.beta"):
        if c in columns:
            return c
    for c in columns:
        if "beta" in c:
            return c
    params = [c for c in columns if "." in c or c in ("seed", "variant")]  # not the measured columns
    raise ConfigError(
        f"the sweep varies no beta (its parameters: {', '.join(params) or 'none'}), which the figures plot "
        "against; draw them against another parameter with `vaelab plot-sweep DIR --beta-key KEY`"
    )


def group_keys(out: str | Path, beta_key: str) -> list[str]:
    """The parameters that define a curve: every varying parameter but beta and the seed (a named variant
    stands for its own keys)."""
    return cell_keys(load_stored_spec(out), exclude=(beta_key, "seed"))


def _beta(value: Any) -> float:
    if isinstance(value, int | float):
        return float(value)
    try:  # a schedule mapping written as JSON: plot its final value
        data = json.loads(value)
        return float(data.get("value", math.nan))
    except (TypeError, ValueError, AttributeError):
        return math.nan


def _sort_key(group: tuple[Any, ...]) -> tuple[tuple[int, float, str], ...]:
    """Numbers in numeric order (2000 before 10000), then text."""
    return tuple((0, float(x), "") if isinstance(x, int | float) else (1, 0.0, str(x)) for x in group)


def _label(keys: list[str], group: tuple[Any, ...]) -> str:
    parts = []
    for k, v in zip(keys, group, strict=True):
        name = k.rsplit(".", 1)[-1]
        parts.append(str(v) if name == "variant" else f"{name}={v}")
    return ", ".join(parts) or "all"


def seed_means(
    rows: list[dict[str, Any]], beta_key: str, keys: list[str], metrics: list[str], error: str = "ci"
) -> dict[Any, Any]:
    """{group: {"beta": (n_b,), "capped": (n_b,), metric: (mean (n_b,), lo (n_b,), hi (n_b,))}} over completed
    rows, betas sorted; the mean over seeds and, with ``error="ci"``, mean -/+ the half-width of the 95% Student-t
    interval (lo = hi = mean for one seed), with ``error="range"`` the minimum and maximum over seeds; missing
    values ignored. ``capped``: the number of seeds stopped by the step cap."""
    if error not in ERROR_BARS:
        raise ConfigError(f"error bars {error!r}: valid choices: {', '.join(ERROR_BARS)}")
    cells: dict[tuple[Any, ...], dict[float, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r.get("status") != "completed":
            continue
        cells[tuple(r.get(k) for k in keys)][_beta(r.get(beta_key))].append(r)
    out: dict[Any, Any] = {}
    for group in sorted(cells, key=_sort_key):
        betas = sorted(b for b in cells[group] if math.isfinite(b))
        entry: dict[str, Any] = {"beta": np.array(betas)}
        entry["capped"] = np.array([sum(r.get("stopped_by") == "step_cap" for r in cells[group][b]) for b in betas])
        for m in metrics:
            vals = [[r[m] for r in cells[group][b] if isinstance(r.get(m), int | float)] for b in betas]
            if error == "range":
                entry[m] = tuple(np.array([f(v) if v else np.nan for v in vals]) for f in (np.mean, np.min, np.max))
                continue
            stats = [t_interval(v, CI_LEVEL) for v in vals]
            mean = np.array([s[0] for s in stats])
            half = np.array([s[1] if s[1] is not None else 0.0 for s in stats])
            entry[m] = (mean, mean - half, mean + half)
        out[group] = entry
    return out


def plot_sweep(
    out: str | Path, *, beta_key: str | None = None, plots_dir: str | Path | None = None, error: str = "ci"
) -> list[Path]:
    """Write the figures of :data:`FIGURES` from ``DIR/results.csv`` into ``DIR/plots`` (or ``plots_dir``);
    ``error``: the error bars, ``ci`` (95% Student-t interval over seeds) or ``range`` (over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm
    from matplotlib.lines import Line2D

    out = Path(out)
    rows = read_results(out)
    columns = list(rows[0]) if rows else []
    if beta_key is not None and rows and beta_key not in columns:  # every point would sit at one beta, None
        params = [c for c in columns if "." in c or c == "seed"]
        raise ConfigError(f"--beta-key {beta_key!r} is not a column of {out / 'results.csv'}; its parameters: {params}")
    beta_key = beta_key or find_beta_key(columns)
    keys = group_keys(out, beta_key)
    metrics = [
        "train_rate",
        "train_distortion",
        "test_rate",
        "test_distortion",
        "test_nll_iw",
        "train_nll_iw",
        "gap_nll",
        "gap_distortion",
        "gap_rate",
        "train_mi",
        "test_mi",
        "train_marginal_kl",
        "test_marginal_kl",
        "train_mi_pool",
        "test_mi_pool",
    ]
    data = seed_means(rows, beta_key, keys, metrics, error)
    if not data:
        raise UserError(f"{out}: no completed points to plot")
    target = Path(plots_dir) if plots_dir else out / "plots"
    target.mkdir(parents=True, exist_ok=True)
    all_betas = np.concatenate([d["beta"] for d in data.values()])
    positive = all_betas[all_betas > 0]
    norm = LogNorm(vmin=positive.min(), vmax=positive.max()) if positive.size else None
    cmap = plt.get_cmap("viridis")
    colours = plt.get_cmap("tab10")
    n_seeds = len({r.get("seed") for r in rows if r.get("status") == "completed"})
    bars = "95% t-interval over seeds" if error == "ci" else "range over seeds"
    note = f"mean over {n_seeds} seed(s)" if n_seeds > 1 else "one seed"
    written = []

    group_handles = [
        Line2D([], [], color=colours(j % 10), marker=MARKERS[j % len(MARKERS)], ls="-", ms=5, label=_label(keys, g))
        for j, g in enumerate(data)
    ]
    ncol = min(4, len(group_handles))

    # 1. rate-distortion, coloured by beta
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6), layout="constrained")
    for ax, split in zip(axes, ("train", "test"), strict=True):
        for j, d in enumerate(data.values()):
            rate, dist = d[f"{split}_rate"][0], d[f"{split}_distortion"][0]
            ax.plot(rate, dist, "-", color=colours(j % 10), lw=0.8, alpha=0.6, zorder=1)
            sc = ax.scatter(
                rate,
                dist,
                c=d["beta"],
                cmap=cmap,
                norm=norm,
                marker=MARKERS[j % len(MARKERS)],
                s=36,
                edgecolors=colours(j % 10),
                linewidths=0.9,
                zorder=2,
            )
        ax.set_xlabel(f"rate R ({split}, nats)")
        ax.set_ylabel(f"distortion D ({split}, nats)")
        ax.set_title(f"{split} split")
        ax.grid(alpha=0.3)
    fig.colorbar(sc, ax=axes, label="beta", shrink=0.9)
    fig.legend(handles=group_handles, loc="outside lower center", ncol=ncol, fontsize=8)
    fig.suptitle(f"Rate-distortion across beta ({note}; lines join a group's betas)", fontsize=10)
    written.append(_save(fig, target / FIGURES[0]))

    # 2. test NLL and generalisation gaps against beta
    fig, axes = plt.subplots(2, 2, figsize=(10, 7.4), sharex=True, layout="constrained")
    panels = [
        ("test_nll_iw", "test IW-NLL (nats)"),
        ("gap_nll", "gap IW-NLL, test - train (nats)"),
        ("gap_distortion", "gap distortion, test - train (nats)"),
        ("gap_rate", "gap rate, test - train (nats)"),
    ]
    for ax, (metric, label) in zip(axes.flat, panels, strict=True):
        for j, d in enumerate(data.values()):
            _errline(ax, d["beta"], d[metric], colours(j % 10), MARKERS[j % len(MARKERS)], None)
        ax.set_xscale("log")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, which="both")
        if metric.startswith("gap"):
            ax.axhline(0.0, color="k", lw=0.6)
    for ax in axes[1]:
        ax.set_xlabel("beta")
    fig.legend(handles=group_handles, loc="outside lower center", ncol=ncol, fontsize=8)
    fig.suptitle(f"Generalisation against beta ({note}; bars: {bars})", fontsize=10)
    written.append(_save(fig, target / FIGURES[1]))

    # 3. MI and rate - MI against beta, with ln N
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.8), sharex=True, layout="constrained")
    pools: set[float] = set()
    for j, d in enumerate(data.values()):
        c, mk = colours(j % 10), MARKERS[j % len(MARKERS)]
        for ax, metric in zip(axes, ("mi", "marginal_kl"), strict=True):
            _errline(ax, d["beta"], d[f"test_{metric}"], c, mk, None)
            _errline(ax, d["beta"], d[f"train_{metric}"], c, mk, None, ls="--", fill=False)
        for split in ("train", "test"):
            pools.update(float(p) for p in d[f"{split}_mi_pool"][0] if np.isfinite(p) and p > 0)
    for p in sorted(pools):
        axes[0].axhline(math.log(p), color="r", lw=0.8, ls=":")
        axes[0].annotate(
            f"ln N = ln {int(p)} = {math.log(p):.2f}",
            (0.02, math.log(p)),
            xycoords=("axes fraction", "data"),
            fontsize=7,
            color="r",
            va="bottom",
        )
    axes[0].set_ylabel("MI I_q(x; z) (nats)")
    axes[1].set_ylabel("rate - MI = KL(q(z) || p(z)) (nats)")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("beta")
        ax.grid(alpha=0.3, which="both")
    style = [
        Line2D([], [], color="k", ls="-", marker="o", ms=4, label="test"),
        Line2D([], [], color="k", ls="--", marker="o", mfc="white", ms=4, label="train (subset)"),
    ]
    fig.legend(handles=group_handles + style, loc="outside lower center", ncol=min(4, ncol + 2), fontsize=8)
    fig.suptitle(f"Mutual information pooled over the measured split ({note}; bars: {bars})", fontsize=10)
    written.append(_save(fig, target / FIGURES[2]))

    # 4. test (and train) IW-NLL against beta, one panel per training-set size, one line per capacity
    written.append(_save(_nll_panels(data, keys, note, bars), target / FIGURES[3]))
    return written


def facet_key(keys: list[str]) -> str | None:
    """The parameter that gets one panel each in ``test_nll.png``: ``data.train_size`` when it varies, else the
    last of the group keys when there are two or more, else None (one panel)."""
    if "data.train_size" in keys:
        return "data.train_size"
    return keys[-1] if len(keys) >= 2 else None


def _nll_panels(data: dict[Any, Any], keys: list[str], note: str, bars: str) -> Any:
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    colours = plt.get_cmap("tab10")
    facet = facet_key(keys)
    j_facet = keys.index(facet) if facet else None
    panels = sorted({g[j_facet] for g in data} if facet else {None}, key=lambda v: _sort_key((v,)))
    line_keys = [k for k in keys if k != facet]
    lines = sorted({tuple(v for i, v in enumerate(g) if i != j_facet) for g in data}, key=_sort_key)
    fig, axes = plt.subplots(
        1,
        len(panels),
        figsize=(max(8.0, 4.2 * len(panels) + 0.8), 4.8),
        sharey=True,
        squeeze=False,
        layout="constrained",
    )
    capped_any = False
    for ax, panel in zip(axes[0], panels, strict=True):
        for group, d in data.items():
            if facet and group[j_facet] != panel:
                continue
            li = lines.index(tuple(v for i, v in enumerate(group) if i != j_facet))
            c, mk = colours(li % 10), MARKERS[li % len(MARKERS)]
            _errline(ax, d["beta"], d["test_nll_iw"], c, mk, None)
            _errline(ax, d["beta"], d["train_nll_iw"], c, mk, None, ls="--", fill=False)
            capped = d["capped"] > 0
            if capped.any():
                capped_any = True
                ax.scatter(d["beta"][capped], d["test_nll_iw"][0][capped], s=140, facecolors="none", edgecolors="r")
        ax.set_xscale("log")
        ax.set_xlabel("beta")
        ax.grid(alpha=0.3, which="both")
        if facet:
            ax.set_title(f"{facet.rsplit('.', 1)[-1]} = {panel}", fontsize=9)
    axes[0][0].set_ylabel("IW-NLL (nats)")
    handles = [
        Line2D([], [], color=colours(i % 10), marker=MARKERS[i % len(MARKERS)], ms=5, label=_label(line_keys, g))
        for i, g in enumerate(lines)
    ]
    handles += [
        Line2D([], [], color="k", ls="-", marker="o", ms=4, label="test"),
        Line2D([], [], color="k", ls="--", marker="o", mfc="white", ms=4, label="train (subset)"),
    ]
    if capped_any:
        handles.append(Line2D([], [], ls="", marker="o", ms=10, mfc="none", mec="r", label="a seed hit the step cap"))
    fig.legend(handles=handles, loc="outside lower center", ncol=min(5, len(handles)), fontsize=8)
    fig.suptitle(f"IW-NLL against beta ({note}; bars: {bars})", fontsize=10)
    return fig


def _errline(
    ax: Any,
    x: np.ndarray,
    stats: tuple[np.ndarray, ...],
    colour: Any,
    marker: str,
    label: str | None,
    ls: str = "-",
    fill: bool = True,
) -> None:
    mean, lo, hi = stats
    ok = np.isfinite(mean)
    if not ok.any():
        return
    err = np.vstack([mean[ok] - lo[ok], hi[ok] - mean[ok]])
    ax.errorbar(
        x[ok],
        mean[ok],
        yerr=err,
        color=colour,
        marker=marker,
        ls=ls,
        ms=4,
        lw=1,
        capsize=2,
        label=label,
        mfc=colour if fill else "white",
    )


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
