"""Matplotlib figures of the reports (Agg backend; every function returns a Figure that the page embeds).

Units: rates, distortions, ELBOs and MI in nats per example; steps are optimiser steps.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

Record = Mapping[str, Any]

CURVES: list[tuple[str, str]] = [
    ("elbo", "ELBO (nats)"),
    ("rate", "rate = KL (nats)"),
    ("distortion", "distortion (nats)"),
    ("mi", "MI (nats)"),
    ("au", "active units"),
    ("beta", "beta"),
]


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) else None


def _series(records: Sequence[Record], key: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for r in records:
        y = _num(r.get(key))
        x = _num(r.get("step"))
        if y is not None and x is not None:
            xs.append(x)
            ys.append(y)
    return xs, ys


def training_curves(epochs: Sequence[Record], steps: Sequence[Record] = (), *, title: str | None = None) -> Figure:
    """ELBO, rate, distortion, MI, AU and beta against the step: validation per epoch (circles), the training
    running mean per epoch (dashed) and, when logged, per-step training values (thin line)."""
    valid = [r for r in epochs if r.get("split") == "valid"]
    train = [r for r in epochs if r.get("split") == "train"]
    fig, axes = plt.subplots(2, 3, figsize=(13, 6.5))
    for ax, (key, label) in zip(axes.flat, CURVES, strict=True):
        drawn = False
        per_step, ys = _series(steps, key)
        if per_step:
            ax.plot(per_step, ys, lw=0.8, alpha=0.7, color="tab:gray", label="train (per step)")
            drawn = True
        xs, ys = _series(train, key)
        if xs and not (key == "beta" and per_step):
            ax.plot(xs, ys, "--", color="tab:blue", label="train (epoch mean)")
            drawn = True
        xs, ys = _series(valid, key)
        if xs and key != "beta":
            ax.plot(xs, ys, "o-", color="tab:red", label="validation")
            drawn = True
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if drawn:
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes, color="gray")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def unit_bars(kl_per_dim: Sequence[float], activity: Sequence[float] | None = None, threshold: float = 0.01) -> Figure:
    """Per latent unit: the rate KL_d (bars; dark = active) and the activity Var_x E[z_d|x] (log scale) with
    the AU threshold."""
    kl = np.asarray(kl_per_dim, dtype=float)
    d = len(kl)
    panels = 2 if activity is not None and len(activity) == d else 1
    fig, axes = plt.subplots(1, panels, figsize=(6.5 * panels, 3.4), squeeze=False)
    active = np.asarray(activity, dtype=float) >= threshold if panels == 2 else kl >= 0.01
    colors = np.where(active, "tab:blue", "lightgray")
    ax = axes[0, 0]
    ax.bar(np.arange(d), kl, color=colors)
    ax.set_xlabel("latent unit")
    ax.set_ylabel("KL_d (nats)")
    ax.set_title(f"per-unit rate (total {kl.sum():.2f} nats; grey = inactive)", fontsize=10)
    if panels == 2:
        act = np.maximum(np.asarray(activity, dtype=float), 1e-8)
        ax = axes[0, 1]
        ax.bar(np.arange(d), act, color=colors)
        ax.set_yscale("log")
        ax.axhline(threshold, color="tab:red", ls="--", lw=1, label=f"AU threshold {threshold:g}")
        ax.set_xlabel("latent unit")
        ax.set_ylabel("Var_x E[z_d|x]")
        ax.set_title(f"activity: {int(active.sum())} of {d} units active", fontsize=10)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def image_grid(rows: Sequence[np.ndarray], row_labels: Sequence[str] | None = None, title: str | None = None) -> Figure:
    """Rows of images (each an array (N, C, H, W) in [0, 1]) as one grid, a label left of each row."""
    n_rows = len(rows)
    n_cols = max(len(r) for r in rows)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(0.9 * n_cols + 0.8, 0.95 * n_rows + 0.3), squeeze=False)
    for i, row in enumerate(rows):
        for j in range(n_cols):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            for s in ax.spines.values():
                s.set_visible(False)
            if j < len(row):
                img = np.asarray(row[j], dtype=float)
                if img.shape[0] in (1, 3):
                    img = np.moveaxis(img, 0, -1)
                ax.imshow(img.squeeze(), cmap="gray" if img.shape[-1] == 1 or img.ndim == 2 else None, vmin=0, vmax=1)
        if row_labels:
            axes[i, 0].set_ylabel(row_labels[i], rotation=0, ha="right", va="center", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(pad=0.2)
    return fig


def metric_bars(table: Sequence[Record]) -> Figure:
    """A study's methods side by side: IW-NLL, KL, MI, AU and the time ratio (error bars: sd over seeds)."""
    panels = [
        ("test_nll_iw", "IW-NLL (nats, lower is better)"),
        ("test_rate", "KL (nats)"),
        ("test_mi", "MI (nats)"),
        ("test_au", "active units"),
        ("time_ratio", "time / plain VAE"),
    ]
    labels = [str(r.get("label", r.get("method"))) for r in table]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.3 * len(panels), 3.8))
    for ax, (key, title) in zip(axes, panels, strict=True):
        vals = [_num(r.get(key)) for r in table]
        sds = [_num(r.get(f"{key}_sd")) or 0.0 for r in table]
        y = np.arange(len(table))
        ax.barh(y, [v if v is not None else 0.0 for v in vals], xerr=sds, color="tab:blue", alpha=0.8)
        for yi, v in zip(y, vals, strict=True):
            if v is None:
                ax.text(0, yi, " n/a", va="center", color="gray", fontsize=8)
        ax.set_yticks(y)
        ax.set_yticklabels(labels if ax is axes[0] else [""] * len(labels), fontsize=8)
        ax.invert_yaxis()
        ax.set_title(title, fontsize=9)
        ax.grid(axis="x", alpha=0.3)
        finite = [v for v in vals if v is not None]
        if key == "test_nll_iw" and finite:
            lo, hi = min(finite), max(finite)
            pad = max(hi - lo, 1.0) * 0.3
            ax.set_xlim(lo - pad, hi + pad)
    fig.tight_layout()
    return fig


def overlay_curves(runs: Mapping[str, Sequence[Record]]) -> Figure:
    """Validation ELBO, rate, MI and AU against the step, one line per run (a study's methods)."""
    keys = [
        ("elbo", "validation ELBO (nats)"),
        ("rate", "validation KL (nats)"),
        ("mi", "validation MI (nats)"),
        ("au", "active units"),
    ]
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.8))
    for ax, (key, title) in zip(axes, keys, strict=True):
        for label, records in runs.items():
            xs, ys = _series([r for r in records if r.get("split") == "valid"], key)
            if xs:
                ax.plot(xs, ys, "o-", ms=3, label=label)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(
            handles, labels, loc="lower center", ncol=min(len(labels), 5), fontsize=8, bbox_to_anchor=(0.5, -0.12)
        )
    fig.tight_layout()
    return fig


def units_heatmap(rows: Mapping[str, Sequence[float]]) -> Figure:
    """Per-unit rate KL_d of each run (rows: methods; columns: units sorted by rate within the row)."""
    labels = list(rows)
    d = max(len(v) for v in rows.values())
    mat = np.full((len(labels), d), np.nan)
    for i, lab in enumerate(labels):
        v = np.sort(np.asarray(rows[lab], dtype=float))[::-1]
        mat[i, : len(v)] = v
    fig, ax = plt.subplots(figsize=(min(3 + 0.22 * d, 11), 0.3 * len(labels) + 1.2))
    im = ax.imshow(np.log10(np.maximum(mat, 1e-4)), aspect="auto", cmap="viridis", vmin=-4)
    ax.set_yticks(range(len(labels)))
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_xlabel("latent units, sorted by KL_d within each row")
    cb = fig.colorbar(im, ax=ax)
    cb.set_label("log10 KL_d (nats)")
    fig.tight_layout()
    return fig


def rate_distortion(points: Sequence[tuple[str, float, float]]) -> Figure:
    """(label, rate, distortion) points in the rate-distortion plane, with the lines of constant ELBO."""
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    for label, r, d in points:
        ax.scatter([r], [d], s=40)
        ax.annotate(label, (r, d), fontsize=8, xytext=(4, 3), textcoords="offset points")
    if points:
        rs = [p[1] for p in points]
        ds = [p[2] for p in points]
        lo, hi = min(rs), max(rs)
        xs = np.linspace(max(lo - 0.2 * (hi - lo + 1), 0), hi + 0.2 * (hi - lo + 1), 50)
        for total in np.unique(np.round(np.quantile(np.add(rs, ds), [0.0, 0.5, 1.0]), 1)):
            ax.plot(xs, total - xs, color="gray", lw=0.6, ls=":")
        ax.set_ylim(min(ds) - 0.1 * (max(ds) - min(ds) + 1), max(ds) + 0.1 * (max(ds) - min(ds) + 1))
    ax.set_xlabel("rate R (nats)")
    ax.set_ylabel("distortion D (nats)")
    ax.set_title("rate-distortion (dotted: constant R + D = -ELBO)", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
