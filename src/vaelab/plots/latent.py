"""Pictures of the latent space of a trained run: ``vaelab latent-plot DIR [--split test] [--out PNG]``.

- left: the posterior means mu(x) of the split projected on their first two principal components (PCA), coloured by
  label when the data have labels, with prior draws z ~ N(0, I) projected the same way on top (black +). Where the
  crosses lie away from every coloured one, the prior has mass the aggregated posterior does not cover: a hole (Zhang
  et al., NeurIPS 2022).
- D = 2: the log density of the aggregated posterior q_agg(z) = (1/N) sum_n q(z|x_n) with the prior's contours, and the
  hole-KL integrand p(z) log(p(z) / q_agg(z)) (what KL(p || q_agg) adds up; :mod:`vaelab.metrics.holes`).
- other D: per dimension, the rate E_x KL(q(z_d|x) || p(z_d)) (which units carry information) and the marginal hole
  KL(p(z_d) || q_agg,d) with the CU threshold tau = 0.03: DG-VAE's claim is that both can be high/low together.

Figures are written with matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from vaelab.data import DataError
from vaelab.metrics.collect import collect
from vaelab.metrics.holes import log_aggregate_posterior, per_dim_hole_kl
from vaelab.rules import SEED, Int, option

if TYPE_CHECKING:
    from vaelab.run import Run


def pca_2d(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(center (D,), components (2, D), explained-variance ratios (2,)) of the rows of ``x`` (N, D).

    With D = 1 the second component is zero; components are orthonormal rows (signs fixed so that each component's
    largest entry is positive, which makes pictures reproducible).
    """
    x = np.asarray(x, dtype=np.float64)
    center = x.mean(0)
    xc = x - center
    _, s, vt = np.linalg.svd(xc, full_matrices=False)
    comps = np.zeros((2, x.shape[1]))
    k = min(2, vt.shape[0])
    comps[:k] = vt[:k]
    for i in range(k):
        if comps[i, np.argmax(np.abs(comps[i]))] < 0:
            comps[i] = -comps[i]
    var = s**2
    ratios = np.zeros(2)
    if var.sum() > 0:
        ratios[:k] = var[:k] / var.sum()
    return center, comps, ratios


def log_aggregate_density_2d(mu: Tensor, logvar: Tensor, grid: Tensor) -> Tensor:
    """log q_agg at points ``grid`` (G, 2) for 2-D posteriors (N, 2): (G,) float64, nats."""
    return log_aggregate_posterior(grid, mu, logvar)


def latent_figure(
    mu: Tensor,
    logvar: Tensor,
    y: Tensor | None = None,
    *,
    prior_samples: int = 2000,
    seed: int = 0,
    title: str = "",
    grid_points: int = 121,
    extent: float = 4.0,
) -> Any:
    """The latent-space figure (a matplotlib Figure) for posteriors ``mu``, ``logvar`` (N, D) and labels ``y``.

    Panels as described in the module docstring: 3 for D = 2, 2 otherwise.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mu64, lv64 = mu.double().cpu(), logvar.double().cpu()
    n, d = mu64.shape
    g = torch.Generator().manual_seed(seed)
    prior = torch.randn(prior_samples, d, generator=g, dtype=torch.float64).numpy()
    center, comps, ratios = pca_2d(mu64.numpy())
    proj = (mu64.numpy() - center) @ comps.T
    proj_prior = (prior - center) @ comps.T

    ncols = 3 if d == 2 else 2
    fig, axes = plt.subplots(1, ncols, figsize=(5.0 * ncols, 4.6))
    ax = axes[0]
    if y is not None and y.dim() == 1 and len(y) == n:
        sc = ax.scatter(proj[:, 0], proj[:, 1], s=3, c=y.numpy(), cmap="tab10", rasterized=True)
        fig.colorbar(sc, ax=ax, fraction=0.046, pad=0.04, label="label of the posterior mean")
    else:
        ax.scatter(proj[:, 0], proj[:, 1], s=3, c="C0", label="posterior means", rasterized=True)
    ax.scatter(
        proj_prior[:, 0],
        proj_prior[:, 1],
        s=8,
        c="k",
        marker="+",
        linewidths=0.5,
        alpha=0.6,
        label="prior draws z ~ N(0, I)",
        rasterized=True,
    )
    ax.set_xlabel(f"PC1 ({100 * ratios[0]:.0f}% of mean variance)")
    ax.set_ylabel(f"PC2 ({100 * ratios[1]:.0f}%)")
    ax.set_title(f"posterior means (N = {n}) and prior draws, PCA")
    ax.legend(loc="upper right", fontsize=7, markerscale=3)

    if d == 2:
        lin = torch.linspace(-extent, extent, grid_points, dtype=torch.float64)
        zz = torch.cartesian_prod(lin, lin)  # (G*G, 2), first coordinate slow
        log_q = log_aggregate_density_2d(mu64, lv64, zz).view(grid_points, grid_points).T
        log_p = (-0.5 * (2 * math.log(2 * math.pi) + (zz**2).sum(-1))).view(grid_points, grid_points).T
        ext = (-extent, extent, -extent, extent)
        ax = axes[1]
        top = float(log_q.max())
        im = ax.imshow(log_q.numpy(), origin="lower", extent=ext, cmap="magma", vmin=top - 12.0, vmax=top)
        ax.contour(lin.numpy(), lin.numpy(), torch.exp(log_p).numpy(), levels=_prior_levels(), colors="w")
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        ax.set_title("log q_agg(z) (colour), p(z) contours (1, 2, 3 sd)")
        ax.set_xlabel("z1")
        ax.set_ylabel("z2")
        ax = axes[2]
        integrand = (torch.exp(log_p) * (log_p - log_q)).numpy()
        h = (2 * extent / (grid_points - 1)) ** 2
        lim = float(np.abs(integrand).max()) or 1.0
        im = ax.imshow(integrand, origin="lower", extent=ext, cmap="RdBu_r", vmin=-lim, vmax=lim)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        ax.set_title(f"holes: p log(p / q_agg); sum ~ {float(integrand.sum() * h):.3f} nats")
        ax.set_xlabel("z1")
        ax.set_ylabel("z2")
    else:
        ax = axes[1]
        rate = (0.5 * (mu64**2 + lv64.exp() - lv64 - 1)).mean(0).numpy()
        holes = per_dim_hole_kl(mu64, lv64).numpy()
        idx = np.arange(d)
        floor = 1e-4
        ax.bar(idx - 0.2, np.maximum(rate, floor), width=0.4, label="rate E_x KL(q(z_d|x) || p)")
        ax.bar(idx + 0.2, np.maximum(holes, floor), width=0.4, label="hole KL(p(z_d) || q_agg,d)")
        ax.axhline(0.03, color="k", ls="--", lw=0.8, label="tau = 0.03 (CU)")
        ax.set_yscale("log")
        ax.set_xlabel("latent dimension")
        ax.set_ylabel("nats")
        cu = int((holes < 0.03).sum())
        au = int((mu64.var(0) >= 0.01).sum()) if n > 1 else 0
        ax.set_title(f"per dimension: AU = {au}, CU(0.03) = {cu} of {d}")
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _prior_levels() -> list[float]:
    """Density levels of N(0, I_2) at radii 3, 2, 1 (increasing, as contour wants)."""
    return [math.exp(-0.5 * r * r) / (2 * math.pi) for r in (3.0, 2.0, 1.0)]


def load_posteriors(
    run_dir: str | Path, *, split: str = "test", checkpoint: str = "best", max_examples: int | None = None
) -> tuple[Tensor, Tensor, Tensor | None, Any]:
    """(mu, logvar, labels or None, config) of a run folder's ``split`` under its ``checkpoint`` (see
    :func:`vaelab.run.load_run` and :func:`run_posteriors`)."""
    from vaelab.run import load_run

    return run_posteriors(load_run(run_dir, "best" if checkpoint == "best" else "last"), split, max_examples)


def run_posteriors(
    run: Run, split: str = "test", max_examples: int | None = None
) -> tuple[Tensor, Tensor, Tensor | None, Any]:
    """(mu, logvar, labels or None, config) of a loaded run's ``split`` (its evaluation batches), the first
    ``max_examples`` examples."""
    if len(run.dataset.split(split)) == 0:
        raise DataError(f"data set {run.config.data.name}: the {split} split is empty; there is nothing to plot")
    loader = run.eval_loader(split)

    def batches() -> Any:
        seen = 0
        for batch in loader.epoch(0):
            if max_examples is not None and seen >= max_examples:
                return
            seen += int(batch.x.shape[0]) if isinstance(batch.x, Tensor) else int(batch.x.batch_size)
            yield batch

    col = collect(run.model, batches(), iw_samples=0)
    assert col.mu is not None and col.logvar is not None
    mu, logvar, y = col.mu, col.logvar, col.y
    if max_examples is not None:
        mu, logvar = mu[:max_examples], logvar[:max_examples]
        y = None if y is None else y[:max_examples]
    return mu, logvar, y, run.config


def cmd_latent_plot(args: argparse.Namespace) -> int:
    from vaelab.oserrors import IMAGE_SUFFIXES, check_output_file

    if args.out:
        check_output_file(args.out, suffixes=IMAGE_SUFFIXES)
    mu, logvar, y, cfg = load_posteriors(
        args.dir, split=args.split, checkpoint=args.checkpoint, max_examples=args.max_examples
    )
    out = Path(args.out) if args.out else Path(args.dir) / f"latent_{args.split}.png"
    if not out.suffix:  # matplotlib would add .png itself, and `written:` would name another file
        out = out.with_suffix(".png")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig = latent_figure(
        mu, logvar, y, prior_samples=args.prior_samples, seed=args.seed, title=f"{cfg.name}: {args.split} split"
    )
    fig.savefig(out, dpi=120)
    import matplotlib.pyplot as plt

    plt.close(fig)
    print(f"written: {out}")
    return 0


def add_latent_parser(subparsers: argparse._SubParsersAction) -> None:
    """``vaelab latent-plot DIR``: the latent-space picture of a trained run (PCA of posterior means with prior
    draws; q_agg against p for D = 2; per-dimension rate and hole KL otherwise)."""
    p = subparsers.add_parser("latent-plot", help="latent-space picture of a run: PCA, q_agg vs prior, holes")
    p.add_argument("dir", help="run folder")
    p.add_argument("--split", default="test", choices=["train", "valid", "test"])
    p.add_argument("--out", default=None, help="PNG path (default DIR/latent_SPLIT.png)")
    p.add_argument("--checkpoint", default="best", choices=["best", "last"])
    p.add_argument(
        "--max-examples",
        type=option(Int(2), "--max-examples"),
        default=5000,
        help="use the split's first N examples (default 5000)",
    )
    p.add_argument(
        "--prior-samples",
        type=option(Int(1, 10**7), "--prior-samples"),
        default=2000,
        help="prior draws shown in the PCA panel",
    )
    p.add_argument("--seed", type=option(SEED, "--seed"), default=0, help="seed of the prior draws")
    p.set_defaults(func=cmd_latent_plot)


__all__ = ["add_latent_parser", "latent_figure", "load_posteriors", "pca_2d", "run_posteriors"]
