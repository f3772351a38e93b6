"""The inference-lag picture of He, Spokoyny, Neubig & Berg-Kirkpatrick (ICLR 2019), section 3.

Posterior collapse begins when the encoder lags behind the model's true posterior: early in training the
approximate posterior mean E_q[z|x] stays near 0 for every x while the model posterior mean E_p[z|x] moves, the
decoder learns to ignore z, and both end at the origin. Aggressive inference-network training keeps the points near
the diagonal E_q = E_p.

The experiment here follows the paper's recipe on vaelab's own models:

- **data**: binary sequences x in {0, 1}^L (stored as 1 x 1 x L images) from a randomly initialised PixelCNN
  "teacher" decoder with a 1-D latent z ~ N(0, 1), whose z-conditioning weights are scaled up so that z matters;
- **model**: a VAE with a 1-D latent, an MLP encoder and a PixelCNN decoder (autoregressive, so it can model the data
  without z: the setting in which a plain VAE collapses);
- **measurement**, at chosen training steps, for a fixed set of training points: E_q[z|x] = mu(x), and the model
  posterior mean E_p[z|x] = sum_g z_g p(x|z_g) p(z_g) / sum_g p(x|z_g) p(z_g) on a grid of z (the paper uses
  [-20, 20] with step 0.01; the default here is [-10, 10] with step 0.02, which holds all prior mass that matters).

``vaelab lag-plot --out lag.png`` trains a plain VAE and an aggressive one from the same initialisation and plots
the two panels side by side; the numbers are saved next to the PNG as JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from vaelab.distributions import log_standard_normal
from vaelab.metrics import mutual_information
from vaelab.models.base import VAE
from vaelab.models.image import MLPEncoder
from vaelab.models.pixelcnn import PixelCNNDecoder
from vaelab.objectives import ObjectiveConfig, build_objective
from vaelab.rules import SEED, Int, Num, option
from vaelab.runconfig import TrainConfig
from vaelab.seeds import mix_seed
from vaelab.training.optimizers import make_optimizer
from vaelab.training.strategies import STRATEGIES, StepContext


@dataclass
class LagConfig:
    """Sizes and budgets of the lag experiment (defaults: a few minutes on 2 CPU cores per strategy)."""

    length: int = 20
    num_train: int = 5000
    num_valid: int = 500
    num_points: int = 200
    teacher_channels: int = 16
    teacher_z_scale: float = 2.5
    channels: int = 32
    layers: int = 2
    hidden: list[int] = field(default_factory=lambda: [64])
    batch_size: int = 50
    lr: float = 1e-3
    steps: int = 2000
    snapshots: list[int] = field(default_factory=lambda: [0, 100, 400, 1000, 2000])
    eval_every: int = 100
    grid_low: float = -10.0
    grid_high: float = 10.0
    grid_step: float = 0.02
    window: int = 10
    max_inner_steps: int = 100
    patience: int = 5
    seed: int = 0


def make_data(cfg: LagConfig) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Sample (x_train, z_train, x_valid, z_valid) from the teacher; x is (N, 1, 1, L) in {0, 1}."""
    torch.manual_seed(mix_seed(cfg.seed, 101))
    teacher = PixelCNNDecoder((1, 1, cfg.length), 1, channels=cfg.teacher_channels, layers=1)
    with torch.no_grad():
        for lin in [teacher.inp_cond, *[b.cond for b in teacher.blocks]]:
            lin.weight.mul_(cfg.teacher_z_scale)
    g = torch.Generator().manual_seed(mix_seed(cfg.seed, 102))
    n = cfg.num_train + cfg.num_valid
    z = torch.randn(n, 1, generator=g)
    torch.manual_seed(mix_seed(cfg.seed, 103))
    x = torch.cat([teacher.sample(z[i : i + 1000]) for i in range(0, n, 1000)])
    return x[: cfg.num_train], z[: cfg.num_train], x[cfg.num_train :], z[cfg.num_train :]


def build_student(cfg: LagConfig) -> VAE:
    torch.manual_seed(mix_seed(cfg.seed, 201))
    shape = (1, 1, cfg.length)
    return VAE(MLPEncoder(shape, 1, cfg.hidden), PixelCNNDecoder(shape, 1, channels=cfg.channels, layers=cfg.layers))


@torch.no_grad()
def model_posterior_mean(model: VAE, x: Tensor, grid: Tensor, chunk: int = 64) -> Tensor:
    """E_p[z|x] for a 1-D latent by quadrature on ``grid`` (G,): sum_g z_g w_g with
    w_g proportional to p(x|z_g) p(z_g) (normalised in log space). Returns (N,)."""
    was = model.training
    model.eval()
    out = []
    zg = grid.view(-1, 1, 1)
    log_prior = log_standard_normal(grid)
    for i in range(0, x.shape[0], chunk):
        xb = x[i : i + chunk]
        lp = model.log_likelihood(xb, zg.expand(-1, xb.shape[0], 1))  # (G, b)
        w = torch.softmax(lp + log_prior[:, None], dim=0)
        out.append((w * grid[:, None]).sum(0))
    model.train(was)
    return torch.cat(out)


def _random_batches(x: Tensor, batch_size: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    while True:
        perm = torch.randperm(x.shape[0], generator=g)
        for i in range(0, x.shape[0] - batch_size + 1, batch_size):
            yield x[perm[i : i + batch_size]]


def run(cfg: LagConfig, strategy: str, data: tuple[Tensor, Tensor, Tensor, Tensor] | None = None) -> dict[str, Any]:
    """Train one strategy and record (E_q[z|x], E_p[z|x]) of the first ``num_points`` training points at each
    snapshot step, plus validation KL and MI (pool: the validation set) every ``eval_every`` steps."""
    x_tr, _, x_va, _ = data if data is not None else make_data(cfg)
    model = build_student(cfg)
    options = (
        {"window": cfg.window, "max_inner_steps": cfg.max_inner_steps, "rule": "patience", "patience": cfg.patience}
        if strategy == "aggressive"
        else {}
    )
    strat = STRATEGIES.get(strategy)(**options)
    tcfg = TrainConfig(lr=cfg.lr, grad_clip=5.0)
    opts = {k: make_optimizer(tcfg, p) for k, p in strat.param_groups(model).items()}
    objective = build_objective(ObjectiveConfig(), 1, cfg.steps)
    batches = _random_batches(x_tr, cfg.batch_size, mix_seed(cfg.seed, 301))
    extra = _random_batches(x_tr, cfg.batch_size, mix_seed(cfg.seed, 302))
    ctx = StepContext.single_process(model, objective, opts, grad_clip=5.0, random_batch=lambda: next(extra))
    grid = torch.arange(cfg.grid_low, cfg.grid_high + cfg.grid_step / 2, cfg.grid_step)
    points = x_tr[: cfg.num_points]
    snaps: dict[int, dict[str, list[float]]] = {}
    curve: list[dict[str, float]] = []
    torch.manual_seed(mix_seed(cfg.seed, 401))
    t0 = time.perf_counter()
    for step in range(cfg.steps + 1):
        if step in cfg.snapshots:
            with torch.no_grad():
                model.eval()
                mu_q = model.encode(points).mu[:, 0]
                model.train()
            snaps[step] = {"approx": mu_q.tolist(), "model": model_posterior_mean(model, points, grid).tolist()}
        if step % cfg.eval_every == 0:
            with torch.no_grad():
                model.eval()
                q = model.encode(x_va)
                model.train()
            mi = mutual_information(q.mu, q.logvar, generator=torch.Generator().manual_seed(step)).value
            kl = float(q.kl_to_standard_normal().mean())
            curve.append({"step": step, "kl": kl, "mi": mi, "aggressive": bool(getattr(strat, "aggressive", False))})
            if step > 0:
                strat.on_validation(step // cfg.eval_every - 1, {"mi": mi})
        if step == cfg.steps:
            break
        strat.train_step(ctx, next(batches), step)
    return {
        "strategy": strategy,
        "snapshots": {str(k): v for k, v in snaps.items()},
        "curve": curve,
        "wall_time": time.perf_counter() - t0,
        "log_fields": strat.log_fields(),
    }


_DISPLAY_NAMES = {"joint": "plain VAE", "aggressive": "aggressive"}


def plot(results: list[dict[str, Any]], cfg: LagConfig, path: Path) -> None:
    """Side-by-side panels: E_q[z|x] (y) against E_p[z|x] (x) at each snapshot, one panel per strategy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(5.2 * len(results), 4.8), squeeze=False)
    cmap = plt.get_cmap("viridis")
    # one scale for all panels, so that the spread of the two strategies can be compared by eye
    lim = 0.5
    for res in results:
        for snap in res["snapshots"].values():
            lim = max(lim, float(np.abs(snap["model"]).max()) * 1.05, float(np.abs(snap["approx"]).max()) * 1.05)
    for ax, res in zip(axes[0], results, strict=True):
        steps = sorted(int(s) for s in res["snapshots"])
        for k, s in enumerate(steps):
            snap = res["snapshots"][str(s)]
            xs, ys = np.asarray(snap["model"]), np.asarray(snap["approx"])
            ax.scatter(xs, ys, s=8, alpha=0.7, color=cmap(k / max(len(steps) - 1, 1)), label=f"step {s}")
        ax.plot([-lim, lim], [-lim, lim], "k--", lw=0.8)
        ax.axhline(0, color="0.7", lw=0.5)
        ax.axvline(0, color="0.7", lw=0.5)
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_xlabel("model posterior mean  E_p[z|x]  (grid)")
        ax.set_ylabel("approximate posterior mean  E_q[z|x]")
        last = res["curve"][-1]
        name = _DISPLAY_NAMES.get(res["strategy"], res["strategy"])
        ax.set_title(f"{name}: final KL {last['kl']:.2f}, MI {last['mi']:.2f} nats")
        ax.legend(fontsize=8, loc="upper left")
    fig.suptitle(f"Inference lag (He et al. 2019): 1-D latent, PixelCNN decoder, {cfg.num_points} training points")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def quick_config() -> LagConfig:
    """A small setting for smoke tests (seconds)."""
    return LagConfig(
        length=8,
        num_train=400,
        num_valid=100,
        num_points=30,
        channels=8,
        layers=1,
        steps=40,
        snapshots=[0, 20, 40],
        eval_every=20,
        grid_step=0.1,
        max_inner_steps=6,
        window=2,
    )


def cmd_lag_plot(args: argparse.Namespace) -> int:
    from vaelab.oserrors import IMAGE_SUFFIXES, check_output_file

    check_output_file(args.out, suffixes=IMAGE_SUFFIXES)
    numbers = Path(args.out).with_suffix(".json")  # written beside the figure: it must not replace a run's record
    check_output_file(numbers, flag=f"--out {args.out} (its numbers, {numbers.name})")
    cfg = quick_config() if args.quick else LagConfig()
    if args.steps is not None:
        cfg.steps = args.steps
        cfg.snapshots = sorted({0, *[round(args.steps * f) for f in (0.05, 0.2, 0.5, 1.0)]})
    cfg.seed = args.seed
    if args.teacher_z_scale is not None:
        cfg.teacher_z_scale = args.teacher_z_scale
    data = make_data(cfg)
    results = []
    for strategy in ("joint", "aggressive"):
        res = run(cfg, strategy, data)
        last = res["curve"][-1]
        print(
            f"{strategy:>10}: {res['wall_time']:.1f}s, final KL {last['kl']:.3f}, MI {last['mi']:.3f} "
            f"(pool {cfg.num_valid}), {res['log_fields']}"
        )
        results.append(res)
    if results[0]["wall_time"] > 0:
        print(f"wall-time ratio aggressive / plain: {results[1]['wall_time'] / results[0]['wall_time']:.2f}")
    out = Path(args.out)
    plot(results, cfg, out)
    out.with_suffix(".json").write_text(json.dumps({"config": asdict(cfg), "results": results}))
    print(f"written: {out} and {out.with_suffix('.json')}")
    return 0


def add_lag_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "lag-plot", help="the inference-lag picture (He et al. 2019): plain vs aggressive, side by side"
    )
    p.add_argument("--out", default="runs/lag/lag.png", help="PNG path (numbers go next to it as .json)")
    p.add_argument("--quick", action="store_true", help="a tiny setting that runs in seconds")
    p.add_argument("--steps", type=option(Int(1, 10**6), "--steps"), default=None, help="training steps per strategy")
    p.add_argument("--seed", type=option(SEED, "--seed"), default=0)
    p.add_argument(
        "--teacher-z-scale",
        type=option(Num(lo=0, lo_open=True), "--teacher-z-scale"),
        default=None,
        help="how strongly z drives the synthetic data (default 2.5: a plain VAE stays collapsed; docs/aggressive.md)",
    )
    p.set_defaults(func=cmd_lag_plot)


__all__ = ["LagConfig", "add_lag_parser", "make_data", "model_posterior_mean", "plot", "run"]
