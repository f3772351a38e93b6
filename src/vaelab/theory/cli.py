"""Command line for the theory module: ``vaelab theory linear-vae ...``.

The main ``vaelab`` CLI calls :func:`add_theory_parser`; ``python -m vaelab.theory.cli theory linear-vae --quick``
works standalone. The ``linear-vae`` command produces the six figures of the linear-VAE learning-dynamics study
(Ichikawa & Hukushima, AISTATS 2024) as PNG plus the underlying numbers as CSV/JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence

import numpy as np

from vaelab.rules import SEED, Int, Num, option

__all__ = ["add_theory_parser", "main", "run_linear_vae"]

FIGURE_CHOICES = ("1", "2", "3", "4", "5", "6", "all")
FIGURE_HELP = (
    "1: eps_g(t) for several beta (ODE vs SGD), threshold, authors' curve; 2: all order parameters, ODE vs SGD, "
    "finite-size scaling; 3: eps_g* and plateau length vs beta; 4: superfluous latent; 5: KL annealing; "
    "6: entangled -> disentangled. Repeat the option for several figures (default: all)."
)


MAX_N = 10**6
"""The largest input dimension ``--N``: the SGD runs hold seeds x M x N weights and take N steps per unit of time
(10**12, a typo, asked for 7 TiB)."""


MAX_SIGNAL = 100.0
"""The largest ``--rho`` and ``--eta``: the time scales grow with them (rho = 30 already takes 40 s with --quick;
1e18 never ends)."""
MIN_TAU = 1e-4
"""The smallest ``--tau``: the figures' times are set for tau = 0.01 and rescaled by 0.01 / tau, so their SGD runs take
N x 0.01 / tau steps per unit of time; at 1e-4 the --quick smoke run already takes about an hour and the full set
about a day, and at 1e-300 the step count overflowed (a traceback)."""
TAU = Num(lo=MIN_TAU, hi=1, hi_open=True)
"""The rule of ``--tau``, the online SGD learning rate in [1e-4, 1): below, the runs never end (:data:`MIN_TAU`);
from 1 the simulated SGD diverges (and before, with a large beta, rho or eta: refused when it happens, naming
``--tau``)."""


def add_theory_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add ``theory`` with the sub-command ``linear-vae`` (which sets ``func``) to a CLI's sub-parsers."""
    theory = subparsers.add_parser(
        "theory",
        help="exactly solvable models of VAE learning dynamics (linear VAE)",
        description="Theory of VAE training dynamics and posterior collapse.",
    )
    models = theory.add_subparsers(dest="theory_model", metavar="MODEL", required=True)
    lv = models.add_parser(
        "linear-vae",
        help="learning dynamics of the linear VAE (Ichikawa & Hukushima, AISTATS 2024): figures + numbers",
        description=(
            "Simulate online SGD of the linear VAE, integrate its ODE limit and produce the six figures "
            "(PNG) with their numbers (CSV/JSON). Ichikawa & Hukushima, AISTATS 2024."
        ),
    )
    lv.add_argument("--figure", action="append", choices=FIGURE_CHOICES, metavar="{1..6|all}", help=FIGURE_HELP)
    lv.add_argument("--out", default="runs/theory/linear_vae", help="output folder (default: %(default)s)")
    lv.add_argument("--quick", action="store_true", help="small N, few seeds, short runs: a smoke run (< 30 s)")
    lv.add_argument(
        "--N", type=option(Int(1, MAX_N), "--N"), default=None, help="input dimension of the SGD runs (default 1000)"
    )
    lv.add_argument(
        "--seeds", type=option(Int(1, 1000), "--seeds"), default=None, help="SGD runs per setting (default 5)"
    )
    lv.add_argument("--seed", type=option(SEED, "--seed"), default=0, help="base random seed (default: %(default)s)")
    lv.add_argument(
        "--rho",
        type=option(Num(lo=0, hi=MAX_SIGNAL, lo_open=True), "--rho"),
        default=1.0,
        help="signal strength (default: %(default)s)",
    )
    lv.add_argument(
        "--eta",
        type=option(Num(lo=0, hi=MAX_SIGNAL, lo_open=True), "--eta"),
        default=1.0,
        help="noise variance (default: %(default)s)",
    )
    lv.add_argument(
        "--tau",
        type=option(TAU, "--tau"),
        default=0.01,
        help="SGD learning rate in [1e-4, 1); the runs last 0.01 / tau times the paper's (default: %(default)s)",
    )
    lv.add_argument(
        "--backend",
        choices=("reduced", "weights"),
        default="reduced",
        help="SGD simulator: exact reduced coordinates (fast, default) or explicit N-dimensional weights",
    )
    lv.set_defaults(func=run_linear_vae)


def run_linear_vae(args: argparse.Namespace) -> int:
    """Run the ``theory linear-vae`` command; returns the exit status."""
    from vaelab.theory.linear_vae.figures import FigureConfig, make_figures

    figures = args.figure or ["all"]
    which: list[str] | str = "all" if "all" in figures else sorted(set(figures), key=figures.index)
    if args.N is not None and args.N < 20:
        print(f"error: --N must be at least 20, got {args.N}", file=sys.stderr)
        return 2
    common = {"seed": args.seed, "rho": args.rho, "eta": args.eta, "tau": args.tau, "backend": args.backend}
    if args.quick:
        cfg = FigureConfig.quick_defaults(N=args.N, n_seeds=args.seeds, **common)
    else:
        cfg = FigureConfig(N=args.N or 1000, n_seeds=args.seeds or 5, **common)
    from vaelab.oserrors import check_not_a_vaelab_folder, check_output_folder

    check_output_folder(args.out, inside_sweep=True)  # its figures mix with no point
    check_not_a_vaelab_folder(args.out)  # its summary.json would replace a run's
    from vaelab.errors import UserError
    from vaelab.theory.linear_vae.ode import DivergenceError

    t0 = time.perf_counter()
    try:
        with np.errstate(over="ignore", invalid="ignore"):  # a diverging SGD is reported below, not as warnings
            summary, files = make_figures(which, cfg, args.out)
    except DivergenceError as e:
        raise UserError(
            f"--tau {args.tau:g} (with --rho {args.rho:g}, --eta {args.eta:g}): {e}; --tau must be smaller here "
            f"(it is in [{MIN_TAU:g}, 1))"
        ) from None
    for path in files:
        print(path)
    headline = _headline(summary)
    if headline:
        print(json.dumps(headline, indent=1))
    print(f"done in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return 0


def _headline(summary: dict[str, object]) -> dict[str, object]:
    """A few key numbers for the terminal (the full set is in summary.json)."""
    out: dict[str, object] = {}
    f1 = summary.get("figure_1")
    if isinstance(f1, dict):
        out["authors_run_max_abs_diff"] = round(f1["authors_run"]["max_abs_diff_ode_vs_published"], 4)
        out["threshold_final_eps_g"] = {k: round(v, 4) for k, v in f1["threshold_final_eps_g"].items()}
    f5 = summary.get("figure_5")
    if isinstance(f5, dict):
        out["annealing_speedup_at_gamma_2e-3"] = {
            k: round(v["speedup_at_gamma_2e-3"], 2) for k, v in f5.items() if k.startswith("beta_f=")
        }
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Standalone entry point: ``python -m vaelab.theory.cli theory linear-vae [options]``."""
    parser = argparse.ArgumentParser(prog="vaelab", description="vaelab theory commands")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add_theory_parser(sub)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
