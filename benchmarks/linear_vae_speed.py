"""Throughput of the linear-VAE SGD simulator and cost of the ODE solve (vaelab.theory.linear_vae).

Prints SGD steps per second (steps of the whole batch of seeds, and seed-steps) for both backends at a stated
N, t and number of seeds, and the wall time of one ODE solve. Example::

    python benchmarks/linear_vae_speed.py --N 1000 --t 100 --seeds 5
    python benchmarks/linear_vae_speed.py --N 5000 --t 20 --seeds 5 --M 2 --M-star 2

Model: Ichikawa & Hukushima (AISTATS 2024); t = SGD steps / N.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

from vaelab.theory.linear_vae import (
    AUTHORS_INIT,
    LinearVAESetting,
    random_initial_params,
    simulate_sgd,
    solve_ode,
)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--N", type=int, default=1000, help="input dimension")
    p.add_argument("--t", type=float, default=100.0, help="simulated time (steps / N) per SGD run")
    p.add_argument("--seeds", type=int, default=5, help="seeds batched in one run")
    p.add_argument("--M", type=int, default=1, help="latents")
    p.add_argument("--M-star", type=int, default=1, help="factors")
    p.add_argument("--backends", nargs="+", default=["reduced", "weights"], choices=["reduced", "weights"])
    p.add_argument("--ode-t", type=float, default=1490.0, help="ODE integration time")
    args = p.parse_args()

    s = LinearVAESetting(M=args.M, M_star=args.M_star, beta=1.0)
    steps = round(args.t * args.N)
    print(
        f"# linear VAE SGD: N={args.N}, t={args.t:g} ({steps} steps), seeds={args.seeds}, M={args.M}, "
        f"M*={args.M_star}; numpy {np.__version__}, {platform.processor() or platform.machine()}"
    )
    for backend in args.backends:
        simulate_sgd(s, args.N, 2.0, n_seeds=args.seeds, backend=backend, n_record=2)  # warm-up
        t0 = time.perf_counter()
        simulate_sgd(s, args.N, args.t, n_seeds=args.seeds, backend=backend, n_record=11)
        dt = time.perf_counter() - t0
        print(
            f"sgd[{backend:8s}] {dt:7.2f} s  {steps / dt:10.0f} steps/s  {steps * args.seeds / dt:11.0f} seed-steps/s"
            f"  -> t=1000 at N={args.N}: {1000 * args.N / (steps / dt):7.1f} s"
        )

    init = AUTHORS_INIT if (args.M, args.M_star) == (1, 1) else random_initial_params(s, args.N, seed=0)
    for noise in (True, False):
        t0 = time.perf_counter()
        solve_ode(s, init, args.ode_t, n_eval=301, noise_terms=noise)
        dt = time.perf_counter() - t0
        label = "with tau^2 terms" if noise else "drift only"
        print(f"ode ({label:16s}) t={args.ode_t:g}: {dt:6.3f} s")


if __name__ == "__main__":
    main()
