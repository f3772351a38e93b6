"""The six figures of the linear-VAE learning-dynamics study (Ichikawa & Hukushima, AISTATS 2024).

Each ``figure_k`` function writes a PNG (matplotlib, Agg backend), the underlying curves as CSV and the key
numbers as JSON into an output folder, and returns those numbers. :func:`make_figures` runs a selection and
writes ``summary.json``. Defaults reproduce the paper's setting ``rho = eta = 1``, ``tau = 0.01``,
``lambda = 0``; betas are chosen relative to ``eta`` and ``beta_c`` so other ``rho, eta`` also give sensible
plots. Times are SGD steps / N.
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from scipy.optimize import linear_sum_assignment

from vaelab.theory.linear_vae.fixed_points import (
    beta_c,
    collapse_stability,
    convergence_time,
    eps_g_star,
    escape_time,
    find_fixed_point,
    plateau_escape_rate,
    predicted_plateau_length,
    superfluous_latent_variance,
    typical_initial_params,
)
from vaelab.theory.linear_vae.ode import (
    AUTHORS_INIT,
    AUTHORS_SGD_EPS_G,
    AUTHORS_TIMES,
    solve_ode,
)
from vaelab.theory.linear_vae.setting import LinearVAESetting, Trajectory, make_beta_schedule
from vaelab.theory.linear_vae.simulate import random_initial_params, simulate_sgd

__all__ = ["FIGURES", "FigureConfig", "make_figures"]

DPI = 100
INIT_OVERLAP = 0.1  # initial overlap of the SGD runs of figures 1 and 2


@dataclass(frozen=True)
class FigureConfig:
    """Options shared by the figures.

    Attributes:
        N: input dimension of the SGD simulations.
        n_seeds: SGD runs per setting.
        seed: base random seed.
        rho, eta, tau: problem parameters (paper: 1, 1, 0.01).
        backend: SGD backend (``"reduced"`` or ``"weights"``, see :mod:`.simulate`).
        quick: smaller ``N``, fewer seeds and shorter runs for a smoke test (all six figures in well under a
            minute); the numbers are then only indicative.
    """

    N: int = 1000
    n_seeds: int = 5
    seed: int = 0
    rho: float = 1.0
    eta: float = 1.0
    tau: float = 0.01
    backend: str = "reduced"
    quick: bool = False

    @classmethod
    def quick_defaults(cls, **overrides: object) -> FigureConfig:
        base = {"N": 100, "n_seeds": 2, "quick": True}
        base.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**base)  # type: ignore[arg-type]

    def setting(self, **kw: object) -> LinearVAESetting:
        return LinearVAESetting(rho=self.rho, eta=self.eta, tau=self.tau, **kw)  # type: ignore[arg-type]

    @property
    def beta_c(self) -> float:
        return beta_c(self.rho, self.eta)

    @property
    def time_scale(self) -> float:
        """Times below are set for tau = 0.01 and rescaled by 0.01 / tau."""
        return 0.01 / self.tau


@dataclass
class _Context:
    cfg: FigureConfig
    out: Path
    cache: dict[str, object] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)

    def path(self, name: str) -> Path:
        p = self.out / name
        self.files.append(p)
        return p


# ----------------------------------------------------------------------------------------------------------
# small I/O helpers
# ------------------------------------------------------------------------------------------------------------


def _write_csv(path: Path, columns: dict[str, np.ndarray]) -> None:
    names = list(columns)
    cols = [np.asarray(columns[n]).ravel() for n in names]
    n = cols[0].size
    if any(c.size != n for c in cols):
        raise ValueError(f"CSV columns of {path.name} have different lengths")
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(names)
        for i in range(n):
            w.writerow([_fmt(c[i]) for c in cols])


def _fmt(v: object) -> str:
    if isinstance(v, float | np.floating):
        return f"{float(v):.8g}"
    return str(v)


def _long_csv(path: Path, curves: Sequence[tuple[str, np.ndarray, dict[str, np.ndarray]]]) -> None:
    """Write curves of different lengths in long format: ``series, t, <value columns>``."""
    keys = sorted({k for _, _, vals in curves for k in vals})
    rows: dict[str, list[object]] = {"series": [], "t": [], **{k: [] for k in keys}}
    for label, t, vals in curves:
        for i in range(len(t)):
            rows["series"].append(label)
            rows["t"].append(float(t[i]))
            for k in keys:
                rows[k].append(float(vals[k][i]) if k in vals else math.nan)
    _write_csv(path, {k: np.asarray(v, dtype=object) for k, v in rows.items()})


def _json_ready(obj: object) -> object:
    if isinstance(obj, dict):
        return {str(k): _json_ready(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_ready(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _json_ready(obj.tolist())
    if isinstance(obj, np.floating | float):
        f = float(obj)
        return None if not math.isfinite(f) else round(f, 6)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def _write_json(path: Path, data: dict[str, object]) -> None:
    path.write_text(json.dumps(_json_ready(data), indent=2) + "\n")


def _save(fig: plt.Figure, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def _mean_ode_from_seeds(setting: LinearVAESetting, sgd: Trajectory) -> Trajectory:
    """ODE started from every SGD seed's own initial order parameters (batch ``(n_seeds, n_t)``)."""
    return solve_ode(setting, sgd.params[:, 0], float(sgd.t[-1]), t_eval=sgd.t)


# ----------------------------------------------------------------------------------------------------------
# figure 1: eps_g(t) for several beta, threshold, authors' curve
# ------------------------------------------------------------------------------------------------------------


def _fig1_betas(cfg: FigureConfig) -> list[float]:
    bc, eta = cfg.beta_c, cfg.eta
    return [0.5 * eta, eta, 0.5 * (eta + bc), 1.25 * bc]


def _main_sgd(ctx: _Context) -> tuple[list[LinearVAESetting], list[Trajectory], list[Trajectory]]:
    """SGD + per-seed ODE for the figure-1 betas (shared with figure 2)."""
    if "main" in ctx.cache:
        return ctx.cache["main"]  # type: ignore[return-value]
    cfg = ctx.cfg
    t_max = (600.0 if cfg.quick else 2000.0) * cfg.time_scale
    settings = [cfg.setting(beta=b) for b in _fig1_betas(cfg)]
    # A small macroscopic initial overlap (m(0) ~ 0.1 instead of O(N^-1/2)) keeps the plateau but makes its exit
    # time deterministic, so ODE and SGD can be compared run by run (see linear-vae.md, "Finite-size").
    sgd = simulate_sgd(
        settings,
        cfg.N,
        t_max,
        n_seeds=cfg.n_seeds,
        n_record=41 if cfg.quick else 101,
        seed=cfg.seed,
        backend=cfg.backend,
        init_overlap=INIT_OVERLAP,
    )
    assert isinstance(sgd, list)
    odes = [_mean_ode_from_seeds(s, tr) for s, tr in zip(settings, sgd, strict=True)]
    ctx.cache["main"] = (settings, sgd, odes)
    return settings, sgd, odes


def figure_1(ctx: _Context) -> dict[str, object]:
    """eps_g(t): ODE lines vs SGD markers for several beta (one above beta_c); threshold; authors' run."""
    cfg = ctx.cfg
    settings, sgd, odes = _main_sgd(ctx)
    bc = cfg.beta_c
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    ax = axes[0]
    curves = []
    numbers: dict[str, object] = {
        "N": cfg.N,
        "n_seeds": cfg.n_seeds,
        "init_overlap": INIT_OVERLAP,
        "beta_c": bc,
        "final_eps_g": {},
    }
    for s, tr, ode in zip(settings, sgd, odes, strict=True):
        b = s.beta_final
        e_sgd, e_ode = tr.eps_g, ode.eps_g
        (line,) = ax.plot(ode.t, e_ode.mean(0), label=f"beta={b:g}" + (" > beta_c" if b > bc else ""))
        ax.errorbar(
            tr.t[::4],
            e_sgd.mean(0)[::4],
            yerr=e_sgd.std(0)[::4],
            fmt="o",
            ms=3.5,
            color=line.get_color(),
            alpha=0.8,
            capsize=0,
        )
        ax.axhline(float(eps_g_star(b, cfg.rho, cfg.eta)), color=line.get_color(), ls=":", lw=0.8)
        curves.append(
            (
                f"beta={b:g}",
                tr.t,
                {
                    "eps_g_sgd_mean": e_sgd.mean(0),
                    "eps_g_sgd_std": e_sgd.std(0),
                    "eps_g_ode_mean": e_ode.mean(0),
                },
            )
        )
        numbers["final_eps_g"][f"{b:g}"] = {  # type: ignore[index]
            "sgd_mean": float(e_sgd[:, -1].mean()),
            "ode_mean": float(e_ode[:, -1].mean()),
            "theory_tau0": float(eps_g_star(b, cfg.rho, cfg.eta)),
            "max_abs_mean_diff": float(np.abs(e_sgd.mean(0) - e_ode.mean(0)).max()),
        }
    ax.set(
        xlabel="t = steps / N",
        ylabel="eps_g",
        title=f"(a) ODE (lines) vs SGD N={cfg.N} (markers), m(0)~{INIT_OVERLAP:g}",
    )
    ax.legend(fontsize=8)

    # (b) just below / above the threshold, long times (ODE from the typical random initialisation)
    ax = axes[1]
    t_long = (8000.0 if cfg.quick else 60000.0) * cfg.time_scale
    t_eval = np.unique(np.r_[0.0, np.geomspace(1.0, t_long, 200 if cfg.quick else 400)])
    thr: dict[str, float] = {}
    for b in (0.95 * bc, 1.05 * bc):
        s = cfg.setting(beta=b)
        ode = solve_ode(s, typical_initial_params(s, 1000), t_long, t_eval=t_eval)
        ax.semilogx(ode.t, ode.eps_g, label=f"beta={b:.3g} ({'<' if b < bc else '>'} beta_c={bc:g})")
        thr[f"{b:.4g}"] = float(ode.eps_g[-1])
        curves.append((f"threshold beta={b:.4g}", ode.t, {"eps_g_ode_mean": ode.eps_g}))
    ax.axhline(cfg.rho, color="k", lw=0.6, ls="--")
    ax.set(xlabel="t", ylabel="eps_g", title="(b) learning vs collapse around beta_c (ODE)")
    ax.legend(fontsize=8)
    numbers["threshold_final_eps_g"] = thr
    numbers["threshold_t"] = t_long

    # (c) the authors' published run
    ax = axes[2]
    s = LinearVAESetting(rho=1.0, eta=1.0, tau=0.01, beta=1.0)
    tt = np.linspace(0, 1490, 150)
    ode = solve_ode(s, AUTHORS_INIT, 1490.0, t_eval=np.unique(np.r_[tt, AUTHORS_TIMES]))
    drift = solve_ode(s, AUTHORS_INIT, 1490.0, t_eval=ode.t, noise_terms=False)
    ax.semilogy(ode.t, ode.eps_g, label="ODE (with tau^2 terms)")
    ax.semilogy(drift.t, drift.eps_g, "--", label="ODE drift only (tau -> 0)")
    ax.semilogy(AUTHORS_TIMES, AUTHORS_SGD_EPS_G, "ks", ms=5, label="published SGD, N=200 (5 runs)")
    own = None
    if not cfg.quick:  # our SGD at N = 200 from the same initial order parameters (~300k steps)
        n_own = max(cfg.n_seeds, 20)
        t_own = np.unique(np.r_[np.linspace(0, 1490, 31), AUTHORS_TIMES])
        run = simulate_sgd(s, 200, 1490.0, n_seeds=n_own, t_record=t_own, seed=cfg.seed + 1, init=AUTHORS_INIT,
                           backend=cfg.backend)  # fmt: skip
        assert isinstance(run, Trajectory)
        own = run.eps_g.mean(0)[np.searchsorted(run.t, AUTHORS_TIMES)]
        ax.semilogy(run.t, run.eps_g.mean(0), "o", mfc="none", ms=4, label=f"vaelab SGD, N=200 ({n_own} runs)")
    ax.set(xlabel="t", ylabel="eps_g", title="(c) authors' run: rho=eta=beta=1, tau=0.01")
    ax.legend(fontsize=8)
    at = np.searchsorted(ode.t, AUTHORS_TIMES)
    at_d = np.searchsorted(drift.t, AUTHORS_TIMES)
    numbers["authors_run"] = {
        "t": AUTHORS_TIMES,
        "published_sgd": AUTHORS_SGD_EPS_G,
        "ode": ode.eps_g[at],
        "ode_drift_only": drift.eps_g[at_d],
        "max_abs_diff_ode_vs_published": float(np.abs(ode.eps_g[at] - AUTHORS_SGD_EPS_G).max()),
    }
    if own is not None:
        numbers["authors_run"]["vaelab_sgd_N200"] = own  # type: ignore[index]
        numbers["authors_run"]["max_abs_diff_vaelab_sgd_vs_published"] = float(  # type: ignore[index]
            np.abs(own - AUTHORS_SGD_EPS_G).max()
        )
        curves.append(("vaelab sgd N=200 from authors init", AUTHORS_TIMES, {"eps_g_sgd_mean": own}))
    curves.append(("authors ode", AUTHORS_TIMES, {"eps_g_ode_mean": ode.eps_g[at]}))
    curves.append(("authors published sgd", AUTHORS_TIMES, {"eps_g_sgd_mean": AUTHORS_SGD_EPS_G}))
    _save(fig, ctx.path("fig1_eps_g_vs_beta.png"))
    _long_csv(ctx.path("fig1_eps_g_vs_beta.csv"), curves)
    return numbers


# ----------------------------------------------------------------------------------------------------------
# figure 2: all order parameters, ODE vs SGD, and finite-size scaling
# ------------------------------------------------------------------------------------------------------------


def figure_2(ctx: _Context) -> dict[str, object]:
    """All order parameters vs t (one seed, ODE from its own initial condition); |SGD - ODE| vs N."""
    cfg = ctx.cfg
    settings, sgd, _ = _main_sgd(ctx)
    idx = 1  # beta = eta
    s = settings[idx]
    tr = sgd[idx].seed(0)
    ode = solve_ode(s, tr.params[0], float(tr.t[-1]), t_eval=np.linspace(0, tr.t[-1], 301)).aligned()
    # the latent's sign is arbitrary and, while m = O(N^-1/2) on the plateau, SGD noise can flip it: show both
    # trajectories with the sign that makes m >= 0 at the end
    tr = tr.aligned()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    ax = axes[0]
    names = [("m", "m"), ("d", "d"), ("Q", "Q"), ("E", "E"), ("R", "R"), ("D", "D")]
    for name, lab in names:
        v_ode = getattr(ode.params, name)[..., 0, 0] if name != "D" else ode.params.D[..., 0]
        v_sgd = getattr(tr.params, name)[..., 0, 0] if name != "D" else tr.params.D[..., 0]
        (line,) = ax.plot(ode.t, v_ode, label=lab)
        ax.plot(tr.t[::3], v_sgd[::3], "o", ms=3, color=line.get_color())
    ax.set(xlabel="t", ylabel="order parameter", title=f"(a) beta={s.beta_final:g}: ODE (lines), SGD N={cfg.N}")
    ax.legend(fontsize=8, ncol=3)
    ax = axes[1]
    ax.semilogy(ode.t, ode.eps_g, label="ODE")
    ax.semilogy(tr.t, tr.eps_g, "o", ms=3, label="SGD (one run)")
    ax.set(xlabel="t", ylabel="eps_g", title="(b) same run, eps_g")
    ax.legend(fontsize=8)

    # (c) finite-size scaling from a macroscopic-overlap initial condition
    Ns = [100, 400] if cfg.quick else [250, 1000, 4000]
    n_seeds = 4 if cfg.quick else 8
    t_fs = 50.0 * cfg.time_scale if cfg.quick else 100.0 * cfg.time_scale
    s_fs = cfg.setting(beta=0.5 * cfg.eta)
    devs = []
    for N in Ns:
        run = simulate_sgd(
            s_fs,
            N,
            t_fs,
            n_seeds=n_seeds,
            n_record=11,
            seed=cfg.seed + N,
            backend=cfg.backend,
            init_overlap=0.5,
        )
        assert isinstance(run, Trajectory)
        o = solve_ode(s_fs, run.params[:, 0], t_fs, t_eval=run.t)
        dev = np.max(
            [
                np.abs(getattr(run.params, f) - getattr(o.params, f)).reshape(n_seeds, -1).max(1)
                for f in ("m", "d", "Q", "E", "R", "D")
            ],
            axis=0,
        )
        devs.append(float(np.sqrt(np.mean(dev**2))))
    ax = axes[2]
    ax.loglog(Ns, devs, "o-", label="rms over seeds of max_t |SGD - ODE|")
    ref = devs[0] * np.sqrt(Ns[0] / np.asarray(Ns, dtype=float))
    ax.loglog(Ns, ref, "k--", label="N^-1/2")
    ax.set_xticks(Ns, [str(n) for n in Ns])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set(xlabel="N", ylabel="deviation", title="(c) finite-size deviation (overlap-0.5 start)")
    ax.legend(fontsize=8)
    slope = float(np.polyfit(np.log(Ns), np.log(devs), 1)[0])
    _save(fig, ctx.path("fig2_order_parameters.png"))
    cols = {"t": tr.t, "eps_g_sgd": tr.eps_g}
    cols.update({f"sgd_{k}": v for k, v in tr.params.columns().items()})
    o2 = solve_ode(s, tr.params[0], float(tr.t[-1]), t_eval=tr.t).aligned()
    cols["eps_g_ode"] = o2.eps_g
    cols.update({f"ode_{k}": v for k, v in o2.params.columns().items()})
    _write_csv(ctx.path("fig2_order_parameters.csv"), cols)
    _write_csv(ctx.path("fig2_finite_size.csv"), {"N": np.asarray(Ns), "rms_max_abs_dev": np.asarray(devs)})
    return {
        "beta": s.beta_final,
        "N": cfg.N,
        "finite_size": {"N": Ns, "rms_max_abs_dev": devs, "slope": slope, "t_max": t_fs, "n_seeds": n_seeds},
    }


# ----------------------------------------------------------------------------------------------------------
# figure 3: eps_g* and plateau length vs beta
# ------------------------------------------------------------------------------------------------------------


def figure_3(ctx: _Context) -> dict[str, object]:
    """eps_g* (tau -> 0 theory, finite-tau fixed point, long ODE runs) and plateau length vs beta."""
    cfg = ctx.cfg
    bc, eta, rho = cfg.beta_c, cfg.eta, cfg.rho
    fine = np.linspace(0.0, 1.3 * bc, 400)
    n_b = 8 if cfg.quick else 24
    betas = np.unique(np.r_[np.linspace(0.05 * bc, 0.97 * bc, n_b), 1.05 * bc, 1.2 * bc])
    N_plateau = 1000
    t_long = (20000.0 if cfg.quick else 80000.0) * cfg.time_scale
    t_eval = np.unique(np.r_[np.linspace(0, 5000 * cfg.time_scale, 2001), np.geomspace(1, t_long, 600)])
    ode_final, fp_noise, t_esc, stable = [], [], [], []
    for b in betas:
        s = cfg.setting(beta=float(b))
        ode = solve_ode(s, typical_initial_params(s, N_plateau), t_long, t_eval=t_eval)
        e_star = float(eps_g_star(b, rho, eta))
        ode_final.append(float(ode.eps_g[-1]))
        t_esc.append(escape_time(ode.t, ode.eps_g, 0.5 * (rho + e_star)) if b < bc else math.inf)
        stable.append(collapse_stability(s).stable)
        if b < bc:
            fp_noise.append(float(find_fixed_point(s).eps_g(rho)[()]))
        else:
            fp_noise.append(rho)
    pred = predicted_plateau_length(betas, N_plateau, rho, eta, cfg.tau)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    ax = axes[0]
    ax.plot(fine, eps_g_star(fine, rho, eta), label="eps_g* (tau -> 0)")
    ax.plot(betas, fp_noise, "x", label=f"fixed point with tau^2 terms (tau={cfg.tau:g})")
    ax.plot(betas, ode_final, "o", mfc="none", label=f"ODE at t={t_long:g}")
    for x, lab in ((eta, "beta = eta"), (bc, "beta_c = rho + eta")):
        ax.axvline(x, color="k", ls="--", lw=0.7)
        ax.text(x, 0.95 * rho, " " + lab, fontsize=8, va="top")
    ax.set(xlabel="beta", ylabel="eps_g*", title="(a) generalisation error at convergence")
    ax.legend(fontsize=8)
    ax = axes[1]
    ok = np.isfinite(t_esc)
    ax.semilogy(np.asarray(betas)[ok], np.asarray(t_esc)[ok], "o", label="ODE escape time (eps_g halfway)")
    fin = fine[fine < bc * 0.999]
    ax.semilogy(fin, predicted_plateau_length(fin, N_plateau, rho, eta, cfg.tau), label="ln N / (2 lambda_+)")
    for x in (eta, bc):
        ax.axvline(x, color="k", ls="--", lw=0.7)
    ax.set(xlabel="beta", ylabel="plateau length (t)", title=f"(b) plateau length, m(0) = N^-1/2, N={N_plateau}")
    ax.legend(fontsize=8)
    _save(fig, ctx.path("fig3_fixed_points_plateau.png"))
    _write_csv(
        ctx.path("fig3_fixed_points_plateau.csv"),
        {
            "beta": betas,
            "eps_g_star_tau0": eps_g_star(betas, rho, eta),
            "eps_g_fixed_point_tau": np.asarray(fp_noise),
            "eps_g_ode_final": np.asarray(ode_final),
            "escape_time_ode": np.asarray(t_esc),
            "plateau_pred_lnN_over_2lambda": pred,
            "lambda_plus": plateau_escape_rate(betas, rho, eta, cfg.tau),
            "collapsed_state_stable": np.asarray(stable, dtype=int),
        },
    )
    finite = np.isfinite(pred) & ok
    ratio = np.asarray(t_esc)[finite] / pred[finite]
    first_stable = float(np.asarray(betas)[np.asarray(stable)].min()) if any(stable) else math.nan
    return {
        "beta_c": bc,
        "first_beta_with_stable_collapse": first_stable,
        "N_plateau": N_plateau,
        "escape_over_prediction_range": [float(ratio.min()), float(ratio.max())],
        "max_abs_ode_final_minus_fixed_point": float(np.max(np.abs(np.asarray(ode_final) - fp_noise))),
    }


# ----------------------------------------------------------------------------------------------------------
# figure 4: superfluous latent
# ------------------------------------------------------------------------------------------------------------


def figure_4(ctx: _Context) -> dict[str, object]:
    """M = 2, M* = 1: the extra latent fits noise (Q_22 -> eta - beta) iff beta < eta."""
    cfg = ctx.cfg
    eta = cfg.eta
    betas = [0.5 * eta, eta, 1.5 * eta]
    settings = [cfg.setting(M=2, M_star=1, beta=b) for b in betas]
    t_sgd = (600.0 if cfg.quick else 3000.0) * cfg.time_scale
    t_ode = (6000.0 if cfg.quick else 30000.0) * cfg.time_scale
    n_seeds = 1 if cfg.quick else 2
    sgd = simulate_sgd(settings, cfg.N, t_sgd, n_seeds=n_seeds, n_record=31, seed=cfg.seed + 4, backend=cfg.backend)
    assert isinstance(sgd, list)
    t_eval = np.unique(np.r_[0.0, np.geomspace(1.0, t_ode, 300), sgd[0].t])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    numbers: dict[str, object] = {"N": cfg.N, "t_ode": t_ode, "t_sgd": t_sgd, "by_beta": {}}
    curves = []
    for s, tr in zip(settings, sgd, strict=True):
        b = s.beta_final
        ode = solve_ode(s, tr.params[:, 0], t_ode, t_eval=t_eval)
        e_ode = ode.eps_g.mean(0)
        # the superfluous latent is the one with the smaller |m| at the end
        sup = np.argmin(np.abs(ode.params.m[:, -1, :, 0]), axis=-1)
        q_sup_ode = np.take_along_axis(np.diagonal(ode.params.Q, axis1=-2, axis2=-1), sup[:, None, None], -1)[..., 0]
        sup_s = np.argmin(np.abs(tr.params.m[:, -1, :, 0]), axis=-1)
        q_sup_sgd = np.take_along_axis(np.diagonal(tr.params.Q, axis1=-2, axis2=-1), sup_s[:, None, None], -1)[..., 0]
        (line,) = axes[0].semilogx(ode.t[1:], e_ode[1:], label=f"beta={b:g}")
        axes[0].plot(tr.t[1:], tr.eps_g.mean(0)[1:], "o", ms=3, color=line.get_color())
        axes[0].axhline(float(eps_g_star(b, cfg.rho, eta, M=2)), color=line.get_color(), ls=":", lw=0.8)
        axes[1].loglog(ode.t[1:], q_sup_ode.mean(0)[1:], color=line.get_color(), label=f"beta={b:g}")
        axes[1].plot(tr.t[1:], q_sup_sgd.mean(0)[1:], "o", ms=3, color=line.get_color())
        if b < eta:
            axes[1].axhline(eta - b, color=line.get_color(), ls=":", lw=0.8)
        rise = e_ode - np.minimum.accumulate(e_ode)  # > 0 where eps_g has gone back up
        i_rise = int(np.argmax(rise))
        i_sgd_end = int(np.argmin(np.abs(ode.t - tr.t[-1])))
        numbers["by_beta"][f"{b:g}"] = {  # type: ignore[index]
            "Q_sup_ode_final": float(q_sup_ode.mean(0)[-1]),
            "Q_sup_sgd_final": float(q_sup_sgd.mean(0)[-1]),
            "Q_sup_theory": float(superfluous_latent_variance(b, eta)),
            "Q_sup_ode_at_t_sgd": float(q_sup_ode.mean(0)[i_sgd_end]),
            "Q_sup_ode_max": float(q_sup_ode.mean(0).max()),
            "eps_g_ode_final": float(e_ode[-1]),
            "eps_g_ode_largest_rise": float(rise[i_rise]),
            "t_largest_rise": float(ode.t[i_rise]),
            "eps_g_star_theory": float(eps_g_star(b, cfg.rho, eta, M=2)),
            "eps_g_sgd_final": float(tr.eps_g.mean(0)[-1]),
        }
        curves.append((f"ode beta={b:g}", ode.t, {"eps_g": e_ode, "Q_superfluous": q_sup_ode.mean(0)}))
        curves.append((f"sgd beta={b:g}", tr.t, {"eps_g": tr.eps_g.mean(0), "Q_superfluous": q_sup_sgd.mean(0)}))
    axes[0].set(xlabel="t", ylabel="eps_g", title=f"(a) M=2, M*=1: ODE (lines), SGD N={cfg.N} (markers)")
    axes[0].legend(fontsize=8)
    axes[1].set(
        xlabel="t",
        ylabel="Q_kk of the superfluous latent",
        title="(b) superfluous latent fits noise",
        ylim=(1e-4, 2),
    )
    axes[1].legend(fontsize=8)
    _save(fig, ctx.path("fig4_superfluous_latent.png"))
    _long_csv(ctx.path("fig4_superfluous_latent.csv"), curves)
    return numbers


# ----------------------------------------------------------------------------------------------------------
# figure 5: KL annealing
# ------------------------------------------------------------------------------------------------------------


def figure_5(ctx: _Context) -> dict[str, object]:
    """beta(t) = beta_f tanh(gamma t): eps_g(t) for several gamma; convergence time vs gamma (ODE)."""
    cfg = ctx.cfg
    eta, bc, ts = cfg.eta, cfg.beta_c, cfg.time_scale
    N_init = 1000
    beta_fs = [eta + f * (bc - eta) for f in (0.2, 0.5, 0.8)]
    grid = (
        [5e-4, 1e-3, 2e-3, 5e-3, 2e-2]
        if cfg.quick
        else [3e-4, 5e-4, 7e-4, 1e-3, 1.5e-3, 2e-3, 2.5e-3, 3e-3, 4e-3, 5e-3, 7e-3, 1e-2, 1.5e-2, 2e-2, 3e-2]
    )
    gammas = np.asarray(grid) / ts
    t_max = (12000.0 if cfg.quick else 40000.0) * ts
    t_eval = np.linspace(0.0, t_max, int(t_max / ts) // (10 if cfg.quick else 4) + 1)
    tol = 0.01
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    numbers: dict[str, object] = {
        "tol": tol,
        "N_init": N_init,
        "definition": "last t with |eps_g - eps_g(inf)| > tol",
    }
    rows: dict[str, list[float]] = {
        "beta_f": [],
        "gamma": [],
        "t_conv": [],
        "t_conv_constant": [],
        "speedup": [],
    }
    curves = []
    for bf in beta_fs:
        s = cfg.setting(beta=bf)
        init = typical_initial_params(s, N_init)
        const = solve_ode(s, init, t_max, t_eval=t_eval)
        target = float(const.eps_g[-1])
        t_const = convergence_time(const.t, const.eps_g, target, tol)
        speed = []
        for g in gammas:
            ann = solve_ode(s.with_(beta=make_beta_schedule("tanh", bf, gamma=float(g))), init, t_max, t_eval=t_eval)
            tc = convergence_time(ann.t, ann.eps_g, target, tol)
            speed.append(t_const / tc)
            for k, v in zip(rows, (bf, g, tc, t_const, t_const / tc), strict=True):
                rows[k].append(float(v))
            if abs(bf - beta_fs[1]) < 1e-12:
                curves.append((f"gamma={g * ts:.2g}", ann.t, ann.eps_g))
        axes[1].semilogx(gammas * ts, speed, "o-", label=f"beta_f={bf:g} (t_conv const={t_const:.0f})")
        if abs(bf - beta_fs[1]) < 1e-12:
            curves.insert(0, ("constant beta", const.t, const.eps_g))
        key = f"{bf:g}"
        i_best = int(np.argmax(speed))
        g2 = int(np.argmin(np.abs(np.log(gammas * ts / 2e-3))))  # gamma = 2e-3 (for tau = 0.01) is on the grid
        numbers[f"beta_f={key}"] = {
            "t_conv_constant": t_const,
            "best_gamma": float(gammas[i_best]),
            "best_speedup": float(speed[i_best]),
            "gamma_2e-3": float(gammas[g2]),
            "speedup_at_gamma_2e-3": float(speed[g2]),
            "speedup_smallest_gamma": float(speed[0]),
            "speedup_largest_gamma": float(speed[-1]),
        }
    ax = axes[0]
    shown = [curves[0], *curves[1 :: max(1, (len(curves) - 1) // 5)]]
    for label, t, e in shown:
        ax.semilogy(t, e, "k-" if "constant" in label else "-", lw=1.6 if "constant" in label else 1.0, label=label)
    ax.set(xlabel="t", ylabel="eps_g", title=f"(a) tanh annealing, beta_f={beta_fs[1]:g}", xlim=(0, t_max / 3))
    ax.legend(fontsize=7)
    axes[1].axhline(1.0, color="k", lw=0.6, ls="--")
    axes[1].set(
        xlabel="gamma (for tau=0.01)",
        ylabel="speed-up t_conv(const) / t_conv(tanh)",
        title=f"(b) convergence speed-up (tol {tol:g})",
    )
    axes[1].legend(fontsize=8)
    _save(fig, ctx.path("fig5_kl_annealing.png"))
    _write_csv(ctx.path("fig5_kl_annealing.csv"), {k: np.asarray(v) for k, v in rows.items()})
    _long_csv(ctx.path("fig5_kl_annealing_curves.csv"), [(lab, t, {"eps_g": e}) for lab, t, e in curves])
    return numbers


# ----------------------------------------------------------------------------------------------------------
# figure 6: entangled -> disentangled
# ------------------------------------------------------------------------------------------------------------


def _off_assignment_fraction(m: np.ndarray) -> np.ndarray:
    """Fraction of sum |m_kj| outside the best latent-factor assignment (0 = disentangled)."""
    flat = np.abs(m).reshape(-1, *m.shape[-2:])
    out = np.empty(flat.shape[0])
    for i, a in enumerate(flat):
        r, c = linear_sum_assignment(a, maximize=True)
        tot = a.sum()
        out[i] = 1.0 - a[r, c].sum() / tot if tot > 0 else 0.0
    return out.reshape(m.shape[:-2])


def _entanglement_times(ode: Trajectory, rho: float, eta: float, thresh: float = 0.05) -> dict[str, float]:
    S = ode.params.latent_mean_covariance(rho, eta)
    corr = S[..., 0, 1] / np.sqrt(S[..., 0, 0] * S[..., 1, 1])
    off = _off_assignment_fraction(ode.params.m)
    i_pk = int(np.argmax(np.abs(corr)))
    bad = np.nonzero(off > thresh)[0]
    t_dis = math.inf if bad.size and bad[-1] + 1 >= ode.t.size else float(ode.t[bad[-1] + 1] if bad.size else 0.0)
    return {
        "t_corr_peak": float(ode.t[i_pk]),
        "corr_peak": float(corr[i_pk]),
        "t_disentangled": t_dis,
        "ratio": t_dis / float(ode.t[i_pk]),
    }


def figure_6(ctx: _Context) -> dict[str, object]:
    """M = M* = 2, T = diag(1.5, 0.5): entangled first, disentangled much later; T = I only decorrelates."""
    cfg = ctx.cfg
    eta, ts = cfg.eta, cfg.time_scale
    beta = 0.5 * eta
    T = np.diag([1.5, 0.5])
    s = cfg.setting(M=2, M_star=2, T=T, beta=beta)
    t_ode = (20000.0 if cfg.quick else 100000.0) * ts
    t_sgd = (600.0 if cfg.quick else 3000.0) * ts
    sgd = simulate_sgd(s, cfg.N, t_sgd, n_seeds=1, n_record=31, seed=cfg.seed + 6, backend=cfg.backend)
    assert isinstance(sgd, Trajectory)
    t_eval = np.unique(np.r_[0.0, np.geomspace(1.0, t_ode, 400), sgd.t])
    ode = solve_ode(s, sgd.params[0, 0], t_ode, t_eval=t_eval)
    s_iso = cfg.setting(M=2, M_star=2, beta=beta)
    ode_iso = solve_ode(s_iso, random_initial_params(s_iso, cfg.N, seed=cfg.seed + 6), t_ode, t_eval=t_eval)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    ax = axes[0]
    for k in range(2):
        for j in range(2):
            lab = f"|m_{k + 1}{j + 1}|" + (" (factor 1 = strong)" if (k, j) == (0, 0) else "")
            (line,) = ax.semilogx(ode.t[1:], np.abs(ode.params.m[1:, k, j]), label=lab)
            ax.plot(sgd.t[1:], np.abs(sgd.params.m[0, 1:, k, j]), "o", ms=3, color=line.get_color())
    ax.set(xlabel="t", ylabel="|m_kj| (latent k, factor j)",
           title=f"(a) T=diag(1.5,0.5), beta={beta:g}: ODE, SGD N={cfg.N}")  # fmt: skip
    ax.legend(fontsize=8)
    ax = axes[1]
    S = ode.params.latent_mean_covariance(cfg.rho, eta)
    corr = S[:, 0, 1] / np.sqrt(S[:, 0, 0] * S[:, 1, 1])
    off = _off_assignment_fraction(ode.params.m)
    ax.semilogx(ode.t[1:], np.abs(corr[1:]), label="|corr(mu_1, mu_2)|")
    ax.semilogx(ode.t[1:], off[1:], label="off-assignment fraction of |m|")
    ax.semilogx(ode.t[1:], ode.eps_g[1:] / ode.eps_g[0], label="eps_g / eps_g(0)")
    ax.set(xlabel="t", title="(b) entanglement measures (ODE)")
    ax.legend(fontsize=8)
    ax = axes[2]
    S_iso = ode_iso.params.latent_mean_covariance(cfg.rho, eta)
    corr_iso = S_iso[:, 0, 1] / np.sqrt(S_iso[:, 0, 0] * S_iso[:, 1, 1])
    for k in range(2):
        for j in range(2):
            ax.semilogx(ode_iso.t[1:], ode_iso.params.m[1:, k, j], label=f"m_{k + 1}{j + 1}")
    ax.semilogx(ode_iso.t[1:], np.abs(corr_iso[1:]), "k--", label="|corr(mu_1, mu_2)|")
    ax.set(xlabel="t", title="(c) T = I: decorrelated, basis not identified")
    ax.legend(fontsize=8)
    _save(fig, ctx.path("fig6_entangled_disentangled.png"))
    cols = {"t": ode.t, "eps_g": ode.eps_g, "corr_latent_means": corr, "off_assignment_fraction": off}
    cols.update(ode.params.columns())
    _write_csv(ctx.path("fig6_entangled_disentangled.csv"), cols)
    # statistics over a few sampled initialisations and two betas
    stats: dict[str, object] = {}
    seeds = range(1) if cfg.quick else range(5)
    for b in (0.5 * eta, eta):
        sb = s.with_(beta=b)
        res = [
            _entanglement_times(
                solve_ode(sb, random_initial_params(sb, cfg.N, seed=100 + i), t_ode, t_eval=t_eval),
                cfg.rho,
                eta,
            )
            for i in seeds
        ]
        stats[f"beta={b:g}"] = {k: [r[k] for r in res] for k in res[0]}
        stats[f"beta={b:g}"]["median_ratio"] = float(np.median([r["ratio"] for r in res]))  # type: ignore[index]
    main = _entanglement_times(ode, cfg.rho, eta)
    off_iso = _off_assignment_fraction(ode_iso.params.m)
    return {
        "beta": beta,
        "T": T,
        "figure_run": main,
        "over_inits": stats,
        "iso_final_abs_corr": float(abs(corr_iso[-1])),
        "iso_final_off_assignment_fraction": float(off_iso[-1]),
    }


FIGURES: dict[str, Callable[[_Context], dict[str, object]]] = {
    "1": figure_1,
    "2": figure_2,
    "3": figure_3,
    "4": figure_4,
    "5": figure_5,
    "6": figure_6,
}


def make_figures(
    which: Sequence[str] | str, cfg: FigureConfig, out: str | Path
) -> tuple[dict[str, object], list[Path]]:
    """Produce the selected figures (``"all"`` or e.g. ``["1", "3"]``) into ``out``.

    Returns the numbers (also written to ``out/summary.json`` and ``out/figK.json``) and the written paths.
    """
    keys = list(FIGURES) if which == "all" or which == ["all"] else [str(w) for w in which]
    bad = [k for k in keys if k not in FIGURES]
    if bad:
        raise ValueError(f"unknown figure(s) {bad}; valid choices: {', '.join(FIGURES)}, all")
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    ctx = _Context(cfg, out_dir)
    summary: dict[str, object] = {"config": asdict(cfg), "reference": "Ichikawa & Hukushima, AISTATS 2024"}
    for k in keys:
        t0 = time.perf_counter()
        numbers = FIGURES[k](ctx)
        numbers["seconds"] = time.perf_counter() - t0
        _write_json(ctx.path(f"fig{k}.json"), numbers)
        summary[f"figure_{k}"] = numbers
    _write_json(ctx.path("summary.json"), summary)
    return summary, ctx.files
