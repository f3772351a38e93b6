"""IW-NLL throughput: vaelab's batched estimator vs a one-example-at-a-time reference loop.

Model: the MNIST-shaped MLP VAE (784-512-256-32, Bernoulli decoder) of ``build_model(ModelConfig(type="mlp",
latent_dim=32, hidden=[512, 256]), {"image_shape": (1, 28, 28)})``, trained for ``--train-steps`` Adam steps
(lr 1e-3, batch 100, single-sample ELBO) on statically binarised MNIST (Larochelle & Murray 2011) read through
``vaelab.data``; if those files are missing, on random binary images (said in the output).

For each K in ``--ks`` both estimators compute L_K(x) = log (1/K) sum_k p(x, z_k) / q(z_k|x) (Burda et al.,
ICLR 2016) for the same ``--examples`` test images:

- batched: :func:`vaelab.metrics.iw_log_likelihood` on ``--batch-size`` examples at a time, drawing
  ``--chunk`` samples for all of them per step (a (chunk, B, D) tensor);
- reference: the structure of the published reference implementations: for each example, for each chunk of
  100 samples: encode the example, sample, decode, accumulate a log-sum-exp.

Printed per K: examples/s of each, the speed ratio, the two mean IW-NLLs (nats per example) and their paired
difference with its standard error (the estimates use independent draws, so the difference must be within a
few standard errors of 0).

Threads: one by default, so that timings are reproducible on a shared machine; ``--threads 2`` uses both cores
of a 2-core box. Both estimators are dominated by the decoder's FLOPs (~0.54 MMAC per sample), so on one CPU
thread batching over examples gains little; it pays off with several threads (fewer, larger kernels, fewer
synchronisations: the one-example loop degrades badly when the cores are shared), and should matter most on
accelerators, where a 100-sample decoder call is launch-bound (CPU only here; not measured on a GPU).
``--repeats`` times each estimator several times, interleaved, and keeps the fastest.

    python benchmarks/iw_nll_throughput.py                      # defaults: 200 examples, K = 500 and 5000
    python benchmarks/iw_nll_throughput.py --examples 50 --ks 500
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time
from typing import Any

import torch
from torch import Tensor

from vaelab.metrics import DEFAULT_IW_CHUNK, iw_log_likelihood
from vaelab.models import VAE, ModelConfig, build_model

REFERENCE_CHUNK = 100


def load_images(args: argparse.Namespace) -> tuple[Tensor, Tensor, str]:
    """(train, test) float 0/1 images (N, 1, 28, 28) and a description of where they came from."""
    try:
        from vaelab.data import DataConfig, load_dataset

        ds = load_dataset(DataConfig(name="binarized_mnist", root=args.data_root))
        # Through the loaders, which return float 0/1 images (the splits store uint8).
        test = next(iter(ds.loader("test", args.examples, seed=0).epoch(0))).x
        train_batches = []
        for batch in ds.loader("train", 1000, seed=0, shuffle=False).epoch(0):
            train_batches.append(batch.x)
            if 1000 * len(train_batches) >= args.train_images:
                break
        train = torch.cat(train_batches)[: args.train_images]
        return train, test, f"binarized MNIST ({ds.info.get('source', 'vaelab.data')})"
    except Exception as err:  # no data files, or vaelab.data missing: still benchmark, on stand-in data
        g = torch.Generator().manual_seed(args.seed)
        train = (torch.rand(args.train_images, 1, 28, 28, generator=g) < 0.13).float()
        test = (torch.rand(args.examples, 1, 28, 28, generator=g) < 0.13).float()
        return train, test, f"random binary images (p = 0.13; MNIST unavailable: {type(err).__name__}: {err})"


def train_briefly(model: VAE, train: Tensor, steps: int, seed: int) -> float:
    """``steps`` Adam steps on the single-sample negative ELBO; returns the last minibatch's -ELBO (nats)."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(seed)
    loss = torch.tensor(float("nan"))
    model.train()
    for _ in range(steps):
        x = train[torch.randint(len(train), (100,), generator=g)]
        q = model.encode(x)
        loss = -(model.log_likelihood(x, q.rsample()) - q.kl_to_standard_normal()).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return float(loss.detach())


def batched_iw_nll(model: VAE, x: Tensor, k: int, batch_size: int, chunk: int, seed: int) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    parts = [
        -iw_log_likelihood(model, x[s : s + batch_size], k, chunk_size=chunk, eps_generator=g)
        for s in range(0, len(x), batch_size)
    ]
    return torch.cat(parts)


@torch.no_grad()
def reference_iw_nll(model: VAE, x: Tensor, k: int, seed: int) -> Tensor:
    """One example at a time; for each chunk of 100 samples: encode, sample, decode, log-sum-exp."""
    g = torch.Generator().manual_seed(seed)
    out = torch.empty(len(x))
    for i in range(len(x)):
        xi = x[i : i + 1]
        chunks = []
        for start in range(0, k, REFERENCE_CHUNK):
            s = min(REFERENCE_CHUNK, k - start)
            q = model.encode(xi)
            z = q.mu + q.std * torch.randn(s, 1, q.mu.shape[-1], generator=g)
            log_w = model.log_likelihood(xi, z) + model.prior.log_prob(z) - q.log_prob(z)  # (s, 1)
            chunks.append(torch.logsumexp(log_w, dim=0))
        out[i] = -(torch.logsumexp(torch.cat(chunks), dim=0) - math.log(k))
    return out


def timed(fn, *args) -> tuple[Any, float]:
    t0 = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--examples", type=int, default=200, help="test images scored (default 200)")
    p.add_argument("--ks", type=int, nargs="+", default=[500, 5000], help="importance samples K (default 500 5000)")
    p.add_argument("--batch-size", type=int, default=100, help="examples per batched call (default 100)")
    p.add_argument("--chunk", type=int, default=DEFAULT_IW_CHUNK, help="samples per batched step")
    p.add_argument("--train-steps", type=int, default=200, help="Adam steps before scoring (0 = at init)")
    p.add_argument("--train-images", type=int, default=10000, help="training images sampled from")
    p.add_argument("--data-root", default=None, help="vaelab data folder (default: vaelab.data's resolution)")
    p.add_argument(
        "--threads", type=int, default=1, help="torch intra-op threads (default 1: see the module docstring)"
    )
    p.add_argument(
        "--repeats", type=int, default=1, help="time each estimator this many times, interleaved; report the fastest"
    )
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    train, test, source = load_images(args)
    model = build_model(ModelConfig(type="mlp", latent_dim=32, hidden=[512, 256]), {"image_shape": (1, 28, 28)})
    (last_loss, t_train) = timed(train_briefly, model, train, args.train_steps, args.seed)
    load = f", load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs"
        f"{load}, {platform.machine()}"
    )
    print(f"data: {source}; {len(test)} test examples")
    print(
        f"model: MLP VAE 784-512-256-32 Bernoulli, {args.train_steps} Adam steps (lr 1e-3, batch 100) "
        f"in {t_train:.1f} s, last minibatch -ELBO {last_loss:.2f} nats"
    )
    print(f"batched: {args.batch_size} examples x {args.chunk} samples per step; reference: 1 x {REFERENCE_CHUNK}")
    header = (
        f"{'K':>6} {'batched ex/s':>13} {'reference ex/s':>15} {'speed-up':>9} "
        f"{'IW-NLL batched':>15} {'IW-NLL ref':>11} {'diff':>8} {'se(diff)':>9}"
    )
    print(header)
    for k in args.ks:
        t_b = t_r = math.inf
        for _ in range(args.repeats):  # interleaved, so that both see the same machine load
            nll_b, t = timed(batched_iw_nll, model, test, k, args.batch_size, args.chunk, args.seed + 1)
            t_b = min(t_b, t)
            nll_r, t = timed(reference_iw_nll, model, test, k, args.seed + 2)
            t_r = min(t_r, t)
        diff = nll_b.double() - nll_r.double()
        se = float(diff.std() / math.sqrt(len(diff))) if len(diff) > 1 else float("nan")
        n = len(test)
        print(
            f"{k:>6} {n / t_b:>13.1f} {n / t_r:>15.1f} {t_r / t_b:>8.1f}x "
            f"{float(nll_b.mean()):>15.3f} {float(nll_r.mean()):>11.3f} {float(diff.mean()):>8.4f} {se:>9.4f}"
        )


if __name__ == "__main__":
    main()
