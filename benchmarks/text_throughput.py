"""Text VAE throughput on Penn Treebank: training tokens/s, and IW-NLL (K = 500) seconds per sentence, batched
over sentences (vaelab's path) vs a one-sentence-at-a-time loop, both drawing samples in chunks of 100.

Printed, not asserted. Model: the small CPU size of configs/ptb_vae_small.yaml (emb 128, LSTM 256, z 32,
vocabulary 10,002), untrained (speed does not depend on the weights). PTB sentences: training batches of 32
from the length-bucketed loader; IW on a fixed random subset of the test set (``data.eval_size``).

    python benchmarks/text_throughput.py [--threads 1] [--train-steps 40] [--iw-sentences 20] [--k 500]

The IW cost is dominated by the softmax layer: per sample and predicted token, 2 * (H * V + 4H(E + D + H)) flops
(about 6 MFLOP here); the script prints the achieved GFLOP/s next to a plain float32 matmul's on the same threads,
so you can see how close to the machine's peak the evaluation runs. On a CPU both paths are bound by that matrix
product (a single sentence with 100 samples already makes ~2,400-row products), so batching over sentences gains
little there; it matters where per-call overheads dominate (GPUs, small ``--chunk``).
"""

from __future__ import annotations

import argparse
import time

import torch

from vaelab.config import load_config
from vaelab.data import load_dataset
from vaelab.distributed import DistInfo
from vaelab.metrics import iw_log_likelihood
from vaelab.models import build_model
from vaelab.objectives import build_objective
from vaelab.training.optimizers import make_optimizer
from vaelab.training.strategies import STRATEGIES, StepContext


def matmul_gflops(seconds: float = 2.0) -> float:
    """Float32 GEMM throughput of this process (the shape of the softmax layer: 2000 x 256 times 256 x 10000)."""
    a, w = torch.randn(2000, 256), torch.randn(256, 10000)
    a @ w
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ w
        n += 1
    return 2 * 2000 * 256 * 10000 * n / (time.perf_counter() - t0) / 1e9


def train_throughput(cfg, ds, steps: int) -> tuple[float, float, float]:
    """(tokens/s, sentences/s, ms/step) of the joint SGD step on training batches of 32, after 5 warm-up steps."""
    torch.manual_seed(0)
    model = build_model(cfg.model, ds.model_info())
    strategy = STRATEGIES.get("joint")()
    opts = {k: make_optimizer(cfg.train, p) for k, p in strategy.param_groups(model).items()}
    loader = ds.loader("train", cfg.train.batch_size, seed=0)
    obj = build_objective(cfg.objective, len(loader), steps)
    no_noise, unit_scale = (lambda s, x, sub=0: None), (lambda x, sub=0: 1.0)
    ctx = StepContext(model, obj, opts, DistInfo(), cfg.train.grad_clip, no_noise, unit_scale, None)
    model.train()
    it = iter(loader.epoch(0))
    tokens = sents = 0
    t0 = 0.0
    for i in range(steps + 5):
        if i == 5:
            t0, tokens, sents = time.perf_counter(), 0, 0
        batch = next(it)
        strategy.train_step(ctx, batch.x, i)
        tokens += batch.x.num_tokens
        sents += len(batch)
    dt = time.perf_counter() - t0
    return tokens / dt, sents / dt, dt / steps * 1000


def iw_throughput(cfg, ds, k: int, chunk: int) -> dict[str, float]:
    torch.manual_seed(0)
    model = build_model(cfg.model, ds.model_info()).eval()
    test = ds.split("test")
    batch = next(iter(ds.loader("test", len(test), seed=0).epoch(0)))  # all sentences, sorted by length
    x = batch.x
    # warm-up of both paths on 3 sentences (allocator, oneDNN LSTM primitives), not timed
    iw_log_likelihood(model, x.select(slice(0, 3)), chunk, chunk_size=chunk)
    for i in range(3):
        iw_log_likelihood(model, x.select(slice(i, i + 1)), chunk, chunk_size=chunk)
    g = torch.Generator().manual_seed(1)
    t0 = time.perf_counter()
    batched = iw_log_likelihood(model, x, k, chunk_size=chunk, eps_generator=g)
    t_batched = time.perf_counter() - t0
    g = torch.Generator().manual_seed(2)
    t0 = time.perf_counter()
    loop = torch.cat(
        [
            iw_log_likelihood(model, x.select(slice(i, i + 1)), k, chunk_size=chunk, eps_generator=g)
            for i in range(len(test))
        ]
    )
    t_loop = time.perf_counter() - t0
    n = len(test)
    e, h, d, v = cfg.model.emb_dim, cfg.model.hidden_dim, cfg.model.latent_dim, len(ds.vocab)
    flops = 2 * (h * v + 4 * h * (e + d + h)) * x.num_tokens * k
    return {
        "n": n,
        "tokens_per_sentence": x.num_tokens / n,
        "batched_s_per_sentence": t_batched / n,
        "loop_s_per_sentence": t_loop / n,
        "nll_batched": float(-batched.mean()),
        "nll_loop": float(-loop.mean()),
        "gflops_batched": flops / t_batched / 1e9,
        "gflop_per_sentence": flops / n / 1e9,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="configs/ptb_vae_small.yaml")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1; see docs/text.md)")
    p.add_argument("--train-steps", type=int, default=40)
    p.add_argument("--iw-sentences", type=int, default=20)
    p.add_argument("--k", type=int, default=500)
    p.add_argument("--chunk", type=int, default=100)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_config(args.config, [f"data.eval_size={args.iw_sentences}"])
    ds = load_dataset(cfg.data)
    m = cfg.model
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); model {m.type} emb {m.emb_dim} LSTM "
        f"{m.hidden_dim} z {m.latent_dim}, vocabulary {len(ds.vocab)}; float32 matmul {matmul_gflops():.1f} GFLOP/s"
    )
    tok_s, sent_s, ms = train_throughput(cfg, ds, args.train_steps)
    print(
        f"training (SGD, batch {cfg.train.batch_size}, {args.train_steps} steps): {tok_s:,.0f} tokens/s, "
        f"{sent_s:.1f} sentences/s, {ms:.0f} ms/step"
    )
    r = iw_throughput(cfg, ds, args.k, args.chunk)
    print(
        f"IW-NLL K={args.k} (chunks of {args.chunk} samples) on {r['n']} PTB test sentences "
        f"({r['tokens_per_sentence']:.1f} predicted tokens each, {r['gflop_per_sentence']:.0f} GFLOP per sentence):"
    )
    print(
        f"  batched over sentences: {r['batched_s_per_sentence']:.3f} s/sentence "
        f"({r['gflops_batched']:.1f} GFLOP/s), estimate {r['nll_batched']:.3f} nats/sentence"
    )
    print(f"  one sentence at a time: {r['loop_s_per_sentence']:.3f} s/sentence, estimate {r['nll_loop']:.3f} nats")
    print(f"  speed-up of batching: {r['loop_s_per_sentence'] / r['batched_s_per_sentence']:.2f}x")


if __name__ == "__main__":
    main()
