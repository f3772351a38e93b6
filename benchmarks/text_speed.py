"""Text VAE speed against the machine's own matrix-product limit (a roofline), printed, not asserted (issue 18).

For the LSTM VAE of configs/ptb_vae_small.yaml (emb 128, LSTM 256, z 32, vocabulary 10,002) it measures, at each
precision asked for (``fp32``, ``bf16``):

- training: one joint SGD step (forward, backward, clipping, update) on batches of 32 PTB training sentences from
  vaelab's loader (length-bucketed, seeded dropout masks), in predicted tokens/s; the same step without the
  per-sentence dropout seeds (plain ``nn.Dropout``; what the seeds cost); the same step with the fused output
  layer off (``F.cross_entropy`` in blocks; what the fusion gains); and the encoder-only step of aggressive
  training (He et al. 2019; decoder frozen) as a fraction of a joint step;
- IW-NLL with K importance samples (``vaelab.metrics.iw_log_likelihood``, eval mode) on test sentences, in
  token-samples/s (predicted tokens x samples);

and, in the same run and the same way (the best of ``--repeats`` rounds that interleave everything), the peak of
``torch.matmul`` at the output layer's shapes (forward (M x 256) @ (256 x V) and its two gradient products, float32
and bfloat16; the best of the three is the peak). Each workload's FLOPs are counted from the matrix products
it runs: the LSTM gates (4H x (input + H) per position, over the padded positions nn.LSTM computes), the output
layer (H x V per predicted token) and, for training, their backward (twice the forward: input and weight
gradients; an encoder-only step skips the output layer's weight gradient, and its lower bound skips every
decoder weight gradient and the embedding's input gradient: ``train_flops``). Achieved FLOP/s over the peak of the same
precision is the fraction of the machine's limit. Without PTB (``../shared/data/ptb``) it runs on synthetic token
ids with PTB's sentence lengths.

    OMP_NUM_THREADS=1 python benchmarks/text_speed.py [--precisions fp32 bf16] [--steps 8] [--k 100]
        [--sentences 4] [--repeats 3] [--threads 1] [--accuracy-steps 120 [--accuracy-sentences 30]]
        [--only joint unseeded unfused encoder iw] [--elbo-steps 300 [--elbo-seeds 0 1 2] [--elbo-every 50]
        [--elbo-valid 300]]

``--accuracy-steps N`` adds the check behind ``train.precision: bf16``'s accuracy: the model trained N fp32 steps,
then its IW-NLL in fp32 and bf16 with the same draws (mean and largest per-sentence difference, both times).

``--elbo-steps N`` adds the check behind "the same validation ELBO per step": for each seed the model trained N SGD
steps in fp32 and in bf16 from the same initialisation, batches and draws, and every ``--elbo-every`` steps its ELBO
on a fixed validation subset (evaluated in fp32, one fixed draw per sentence); it prints bf16 - fp32 per seed beside
the seed-to-seed spread of fp32 (about 10 minutes of one core at 3 seeds x 300 steps; with ``--only``, only this).

About 1-2 minutes with the defaults on one thread; raise --steps/--sentences/--repeats for steadier numbers on a
quiet machine. The 1-minute load average is printed before and after: on a shared machine every figure moves.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable
from typing import Any

import torch

from vaelab.config import load_config
from vaelab.data import load_dataset
from vaelab.data.base import DataError
from vaelab.data.text import TokenBatch
from vaelab.metrics import elbo_terms, iw_log_likelihood
from vaelab.models import build_model
from vaelab.objectives import build_objective
from vaelab.precision import Precision
from vaelab.training.optimizers import make_optimizer
from vaelab.training.strategies import StepContext, gradient_step

PTB_LENGTHS = (21.1, 10.2)
"""Mean and standard deviation of PTB training sentence lengths in words (the synthetic fallback's)."""


def load() -> str:
    return f"{os.getloadavg()[0]:.2f}"


def matmul_rate(a: torch.Tensor, b: torch.Tensor, seconds: float) -> float:
    """FLOP/s of torch.matmul(a, b) over about ``seconds`` (after one warm-up product)."""
    a @ b
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        n += 1
    return 2.0 * a.shape[0] * a.shape[1] * b.shape[1] * n / (time.perf_counter() - t0)


def matmul_peak(m: int, h: int, v: int, dtype: torch.dtype, seconds: float) -> dict[str, float]:
    """FLOP/s of torch.matmul at the output layer's three shapes in ``dtype``: the forward (m x h) @ (h x v), the
    input gradient (m x v) @ (v x h) and the weight gradient (v x m) @ (m x h); ``peak`` is the best of them."""
    g = torch.Generator().manual_seed(0)
    r = {
        "forward": matmul_rate(
            torch.randn(m, h, generator=g).to(dtype), torch.randn(h, v, generator=g).to(dtype), seconds
        ),
        "grad_input": matmul_rate(
            torch.randn(m, v, generator=g).to(dtype), torch.randn(v, h, generator=g).to(dtype), seconds
        ),
        "grad_weight": matmul_rate(
            torch.randn(v, m, generator=g).to(dtype), torch.randn(m, h, generator=g).to(dtype), seconds
        ),
    }
    r["peak"] = max(r.values())
    return r


def softmax_rate(m: int, v: int, seconds: float) -> float:
    """Elements/s of the float32 log-softmax over rows of ``v`` (in place, blocks of ``m`` rows: what IW-NLL runs
    after each output-layer product, in both precisions)."""
    x = torch.randn(m, v, generator=torch.Generator().manual_seed(0))
    torch.log_softmax(x, 1, out=x)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        torch.log_softmax(x, 1, out=x)
        n += 1
    return m * v * n / (time.perf_counter() - t0)


# --------------------------------------------------------------------------------------------------------------
# data: PTB if present, else synthetic ids of PTB lengths


def batches(cfg: Any, n_train: int, n_test: int) -> tuple[list[TokenBatch], TokenBatch, int, str]:
    """(training batches of ``cfg.train.batch_size``, one test batch of ``n_test`` sentences, vocabulary size,
    source). Training batches come from vaelab's loader (with the word-dropout noise and dropout seeds)."""
    try:
        ds = load_dataset(cfg.data)
        loader = ds.loader("train", cfg.train.batch_size, seed=0)
        it = iter(loader.epoch(0))
        train = [next(it).x for _ in range(n_train)]
        split = ds.split("test")
        pick = torch.randperm(len(split), generator=torch.Generator().manual_seed(0))[:n_test]
        test = split.batch(pick[torch.sort(split.lengths[pick], stable=True).indices])  # a random sample, by length
        return train, test, len(ds.vocab), f"PTB ({ds.info.get('root', 'data folder')})"
    except (DataError, FileNotFoundError, OSError):
        pass
    g = torch.Generator().manual_seed(0)
    v = 10_002

    def make(b: int, pad_equal: bool = False) -> TokenBatch:
        lengths = (torch.randn(b, generator=g) * PTB_LENGTHS[1] + PTB_LENGTHS[0]).round().clamp(1, 80).long()
        if pad_equal:
            lengths = lengths.sort().values
        sents = [torch.randint(4, v, (int(n),), generator=g).tolist() for n in lengths]
        x = TokenBatch.from_sentences(sents)
        x.noise = torch.rand(x.batch_size, x.max_len - 1, generator=g)
        x.seeds = torch.arange(b, dtype=torch.long) + 12345
        return x

    train = [make(cfg.train.batch_size) for _ in range(n_train)]
    test = make(n_test, pad_equal=True)
    test.noise = test.seeds = None
    return train, test, v, "synthetic token ids with PTB's sentence lengths (PTB not found)"


# --------------------------------------------------------------------------------------------------------------
# FLOP counts


def lstm_flops(positions: int, inp: int, h: int) -> float:
    """Forward FLOPs of the LSTM's gate products over ``positions`` (rows x steps): 2 * 4H * (input + H) each."""
    return 2.0 * positions * 4 * h * (inp + h)


def train_flops(x: TokenBatch, e: int, h: int, d: int, v: int, kind: str = "joint") -> dict[str, float]:
    """Matrix-product FLOPs of one training step on ``x`` by kind: the output layer's ``forward``, ``grad_input``
    and ``grad_weight`` products (real predicted tokens only) and the LSTMs' products forward and backward
    (``other``; nn.LSTM runs over the padded width; its backward is 2x its forward, input and weight gradients).

    ``kind``: ``joint``; ``encoder``, the encoder-only step as run (decoder frozen: no output-layer weight gradient;
    oneDNN's fused LSTM backward still computes the decoder LSTM's weight and input gradients, it has no switch
    for them); ``encoder_min``, the least any implementation needs for the encoder's gradient: the output layer's
    forward and input gradient, the decoder LSTM's forward and its recurrent gradient dh_{t-1} = W_hh^T dgates_t
    (2 * 4H * H per position; z's gradient W_z^T sum_t dgates_t once per sentence, no embedding or weight
    gradients), the encoder's forward and backward."""
    b, length = x.tokens.shape
    out = 2.0 * x.num_tokens * h * v
    enc, dec = lstm_flops(b * length, e, h), lstm_flops(b * (length - 1), e + d, h)
    if kind == "encoder_min":
        dec_backward = 2.0 * b * (length - 1) * 4 * h * h + b * 2.0 * 4 * h * d
        other = 3 * enc + dec + dec_backward
    else:
        other = 3 * enc + 3 * dec
    return {"forward": out, "grad_input": out, "grad_weight": out if kind == "joint" else 0.0, "other": other}


def iw_flops(x: TokenBatch, k: int, e: int, h: int, d: int, v: int) -> dict[str, float]:
    """Matrix-product FLOPs of IW-NLL with K samples on ``x`` as the shared-work decoder runs it: the output layer
    per token and sample (``forward``); the recurrence per token and sample, z's input block and the initial state
    per sample, the embedding block per sentence and position, the encoder once per sentence (``other``)."""
    b, length = x.tokens.shape
    other = (
        k * x.num_tokens * 2.0 * 4 * h * h
        + k * b * (2.0 * 4 * h * d + 2.0 * d * h)
        + lstm_flops(b * (length - 1), e, 0)
        + lstm_flops(b * length, e, h)
    )
    return {"forward": k * x.num_tokens * 2.0 * h * v, "grad_input": 0.0, "grad_weight": 0.0, "other": other}


def roofline_seconds(flops: dict[str, float], rates: dict[str, float]) -> float:
    """The least time of ``flops`` if each output-layer product ran at the matmul rate measured for its shape and
    the rest at the best rate: the machine's limit for this workload."""
    return sum(f / rates[k if k != "other" else "peak"] for k, f in flops.items())


# --------------------------------------------------------------------------------------------------------------
# workloads


def train_pass(cfg: Any, model: torch.nn.Module, xs: list[TokenBatch], precision: Precision, names: list[str]):
    """A callable running one step per batch of ``xs`` (optimisers of ``names`` stepped; encoder-only: the decoder
    frozen, clipping over the stepped parameters) at ``precision``."""
    groups = {"encoder": model.encoder_parameters(), "decoder": model.decoder_parameters()}
    opts = {k: make_optimizer(cfg.train, p) for k, p in groups.items()}
    obj = build_objective(cfg.objective, 100, 100)
    ctx = StepContext.single_process(model, obj, opts, grad_clip=cfg.train.grad_clip, precision=precision)

    def run() -> None:
        model.train()
        for i, x in enumerate(xs):
            gradient_step(ctx, x, i, names)

    return run


def unfused_model(cfg: Any, v: int) -> torch.nn.Module:
    """The model as :func:`main` builds it (same seed, same weights), with the decoder's fused training output layer
    off: ``F.cross_entropy(linear(h))`` in blocks of tokens (autocast's path under bf16)."""
    torch.manual_seed(0)
    model = build_model(cfg.model, {"vocab_size": v})
    model.decoder.fused_training_softmax = False
    return model


def iw_pass(model: torch.nn.Module, x: TokenBatch, k: int, precision: Precision):
    """A callable computing the IW-NLL of ``x`` with ``k`` samples (one chunk) at ``precision``, in eval mode."""

    def run() -> None:
        model.eval()
        with precision.autocast():
            iw_log_likelihood(model, x, k, chunk_size=k, eps_generator=torch.Generator().manual_seed(0))

    return run


def merge(parts: Any) -> dict[str, float]:
    """Sum FLOP dicts key by key."""
    out: dict[str, float] = {}
    for part in parts:
        for k, f in part.items():
            out[k] = out.get(k, 0.0) + f
    return out


def timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="configs/ptb_vae_small.yaml")
    p.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    p.add_argument("--steps", type=int, default=8, help="training batches per timed pass (default 8)")
    p.add_argument("--k", type=int, default=100, help="importance samples K (default 100)")
    p.add_argument("--sentences", type=int, default=4, help="random test sentences for IW-NLL (default 4)")
    p.add_argument("--repeats", type=int, default=3, help="rounds; each figure is its best round (default 3)")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    p.add_argument("--peak-seconds", type=float, default=0.7, help="one peak-matmul run, s (default 0.7)")
    p.add_argument(
        "--accuracy-steps",
        type=int,
        default=0,
        help="also train the model this many fp32 SGD steps and compare its bf16 and fp32 IW-NLL (default 0: skip)",
    )
    p.add_argument("--accuracy-sentences", type=int, default=30, help="test sentences of that comparison (30)")
    p.add_argument(
        "--only",
        nargs="+",
        choices=["joint", "unseeded", "unfused", "encoder", "iw", "elbo"],
        help="time only these workloads (default all; e.g. --only iw --repeats 10: short rounds, steadier ratios); "
        "--only elbo: no timing, only the ELBO-per-step check (300 steps unless --elbo-steps)",
    )
    p.add_argument(
        "--elbo-steps",
        type=int,
        default=0,
        help="also train fp32 and bf16 this many steps per seed and print the validation ELBO per step (default 0)",
    )
    p.add_argument("--elbo-seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds of that check (0 1 2)")
    p.add_argument("--elbo-every", type=int, default=50, help="steps between its validation ELBOs (50)")
    p.add_argument("--elbo-valid", type=int, default=300, help="validation sentences it evaluates (300)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_config(args.config)
    if args.only and "elbo" in args.only:
        args.only.remove("elbo")
        args.elbo_steps = args.elbo_steps or 300
        if not args.only:
            elbo_per_step(cfg, args.elbo_steps, args.elbo_seeds, args.elbo_every, args.elbo_valid)
            return
    m = cfg.model
    e, h, d = m.emb_dim, m.hidden_dim, m.latent_dim
    train_xs, test_x, v, source = batches(cfg, args.steps, args.sentences)
    print(
        f"torch {torch.__version__}, {platform.machine()}, {os.cpu_count()} CPUs, torch.get_num_threads() = "
        f"{torch.get_num_threads()}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}; 1-min load "
        f"{load()} at the start"
    )
    print(f"model emb {e}, LSTM {h}, z {d}, vocabulary {v}; data: {source}")
    tok_train = sum(x.num_tokens for x in train_xs)
    padded = sum(x.batch_size * (x.max_len - 1) for x in train_xs)
    print(
        f"training: {args.steps} batches of {cfg.train.batch_size}, {tok_train / args.steps:.0f} predicted tokens "
        f"per batch ({100 * (1 - tok_train / padded):.0f}% of the decoder's LSTM positions are padding); IW-NLL: "
        f"K = {args.k} on {args.sentences} random test sentences ({test_x.num_tokens} predicted tokens)"
    )
    flops = {
        "joint": merge(train_flops(x, e, h, d, v) for x in train_xs),
        "encoder": merge(train_flops(x, e, h, d, v, "encoder") for x in train_xs),
        "encoder_min": merge(train_flops(x, e, h, d, v, "encoder_min") for x in train_xs),
        "iw": iw_flops(test_x, args.k, e, h, d, v),
    }
    flops["unseeded"] = flops["unfused"] = flops["joint"]
    total = {k: sum(f.values()) for k, f in flops.items()}
    out_share = 1 - flops["joint"]["other"] / total["joint"]
    print(
        f"FLOPs counted: {total['joint'] / args.steps / 1e9:.1f} GFLOP per joint step (output layer {out_share:.0%}), "
        f"{total['iw'] / (test_x.num_tokens * args.k) / 1e6:.2f} MFLOP per IW token-sample (output layer "
        f"{flops['iw']['forward'] / total['iw']:.0%})"
    )
    unseeded = [TokenBatch(x.tokens, x.lengths, x.noise, None) for x in train_xs]
    work: dict[str, dict[str, Callable[[], Any]]] = {}
    for name in args.precisions:
        precision = Precision(name, "cpu")
        dtype = torch.bfloat16 if name == "bf16" else torch.float32
        torch.manual_seed(0)
        model = build_model(cfg.model, {"vocab_size": v})
        work[name] = {
            "peak": lambda dtype=dtype: matmul_peak(1024, h, v, dtype, args.peak_seconds),
            "softmax": lambda: {"softmax": softmax_rate(256, v, args.peak_seconds / 2)},
            "joint": train_pass(cfg, model, train_xs, precision, ["encoder", "decoder"]),
            "unseeded": train_pass(cfg, model, unseeded, precision, ["encoder", "decoder"]),
            "unfused": train_pass(cfg, unfused_model(cfg, v), train_xs, precision, ["encoder", "decoder"]),
            "encoder": train_pass(cfg, model, train_xs, precision, ["encoder"]),
            "iw": iw_pass(model, test_x, args.k, precision),
        }
        if args.only:
            work[name] = {k: f for k, f in work[name].items() if k in ("peak", "softmax", *args.only)}
        for key, fn in work[name].items():  # warm-up (allocator, oneDNN primitives)
            if key not in ("peak", "softmax"):
                fn()
    best: dict[str, dict[str, float]] = {name: {} for name in work}
    for _ in range(args.repeats):  # rounds interleave the precisions and workloads: load hits them alike
        for name, fns in work.items():
            for key, fn in fns.items():
                if key in ("peak", "softmax"):
                    for shape, rate in fn().items():
                        best[name][shape] = max(best[name].get(shape, 0.0), rate)
                else:
                    t = timed(fn)
                    best[name][key] = min(best[name].get(key, t), t)
    for name, b in best.items():
        peak = b["peak"]
        print(
            f"\n[{name}] torch.matmul at the output layer's shapes (M = 1024): forward (M x {h}) @ ({h} x {v}) "
            f"{b['forward'] / 1e9:.1f}, input gradient (M x {v}) @ ({v} x {h}) {b['grad_input'] / 1e9:.1f}, weight "
            f"gradient ({v} x M) @ (M x {h}) {b['grad_weight'] / 1e9:.1f} GFLOP/s; peak {peak / 1e9:.1f} GFLOP/s"
        )
        for key, label in (
            ("joint", "training, joint step"),
            ("unseeded", "training, joint step without dropout seeds (plain nn.Dropout)"),
            ("unfused", "training, joint step with the fused output layer off (F.cross_entropy in blocks)"),
            ("encoder", "training, encoder-only step (aggressive inner step)"),
            ("iw", f"IW-NLL K={args.k}"),
        ):
            if key not in b:
                continue
            t, f = b[key], total[key]
            speed = (
                f"{t / args.steps * 1000:.1f} ms/step, {tok_train / t:,.0f} tokens/s"
                if key != "iw"
                else f"{t / args.sentences:.3f} s/sentence, {test_x.num_tokens * args.k / t:,.0f} token-samples/s"
            )
            print(
                f"  {label}: {speed}, {f / t / 1e9:.1f} GFLOP/s = {roofline_seconds(flops[key], b) / t:.0%} of the "
                f"roofline at its shapes ({f / t / peak:.0%} of the best matmul rate)"
            )
        if {"joint", "unfused"} <= b.keys():
            print(f"  fused output layer: a joint step takes {b['joint'] / b['unfused']:.2f} of the unfused one's time")
        if not {"joint", "unseeded", "encoder"} <= b.keys():
            continue
        seeds = b["joint"] / b["unseeded"] - 1
        bound = roofline_seconds(flops["encoder_min"], b) / roofline_seconds(flops["joint"], b)
        print(
            f"  encoder-only / joint step: time {b['encoder'] / b['joint']:.2f}; FLOPs as run "
            f"{total['encoder'] / total['joint']:.2f}; lower bound (only what the encoder's gradient needs) "
            f"{total['encoder_min'] / total['joint']:.2f} by FLOPs, {bound:.2f} at the roofline (each product at "
            f"its shape's rate); dropout seeds cost {seeds:+.1%} of a joint step"
        )
    if len(best) == 2:
        b32, b16 = best["fp32"], best["bf16"]
        speed = {label: f"{b32[k] / b16[k]:.2f}x" for k, label in (("joint", "training"), ("iw", "IW-NLL")) if k in b32}
        print(f"\nbf16 / fp32 speed: {', '.join(f'{k} {v}' for k, v in speed.items())}")
    if len(best) == 2 and "iw" in best["fp32"]:
        b32, b16 = best["fp32"], best["bf16"]
        # what bf16 IW-NLL could at best be: its products at the bf16 roofline, plus the float32 log-softmax over the
        # vocabulary per token-sample at its measured rate (the same work in both precisions), nothing else
        lsm = test_x.num_tokens * args.k * v / max(b32["softmax"], b16["softmax"])
        lsm32 = test_x.num_tokens * args.k * v / b32["softmax"]
        bound16 = roofline_seconds(flops["iw"], b16) + lsm
        print(
            f"IW-NLL bound: the float32 log-softmax runs at {max(b32['softmax'], b16['softmax']) / 1e9:.2f} G "
            f"elements/s ({lsm / b16['iw']:.0%} of the bf16 IW time, {lsm32 / b32['iw']:.0%} of the fp32 one); bf16 "
            f"at its roofline plus that softmax would take {bound16 / b16['iw']:.0%} of its measured time, so bf16 / "
            f"fp32 <= {b32['iw'] / bound16:.2f}x at this fp32 time"
        )
    print(f"1-min load {load()} at the end; every figure is the best of {args.repeats} interleaved rounds")
    if args.accuracy_steps > 0:
        accuracy(cfg, v, args.accuracy_steps, args.accuracy_sentences, args.k)
    if args.elbo_steps > 0:
        elbo_per_step(cfg, args.elbo_steps, args.elbo_seeds, args.elbo_every, args.elbo_valid)


def accuracy(cfg: Any, v: int, steps: int, sentences: int, k: int) -> None:
    """Train the model ``steps`` fp32 SGD steps (the config's optimiser, batch and clipping), then the IW-NLL with
    ``k`` samples of ``sentences`` random test sentences in fp32 and bf16 with the same draws: per-sentence
    difference and times."""
    train_xs, test_x, _, _ = batches(cfg, steps, sentences)
    torch.manual_seed(0)
    model = build_model(cfg.model, {"vocab_size": v})
    t0 = time.perf_counter()
    train_pass(cfg, model, train_xs, Precision("fp32"), ["encoder", "decoder"])()
    t_train = time.perf_counter() - t0
    model.eval()
    values, times = {}, {}
    for name in ("fp32", "bf16"):
        g = torch.Generator().manual_seed(1)
        t0 = time.perf_counter()
        with Precision(name).autocast():
            values[name] = iw_log_likelihood(model, test_x, k, chunk_size=k, eps_generator=g)
        times[name] = time.perf_counter() - t0
    nll = {name: -float(val.mean()) for name, val in values.items()}
    d = values["fp32"] - values["bf16"]  # NLL of bf16 minus NLL of fp32, per sentence
    print(
        f"\naccuracy: after {steps} fp32 training steps ({t_train:.0f} s), IW-NLL K={k} on {sentences} random test "
        f"sentences ({test_x.num_tokens / sentences:.1f} predicted tokens each): fp32 {nll['fp32']:.4f} nats/sentence"
        f" in {times['fp32']:.1f} s, bf16 {nll['bf16']:.4f} in {times['bf16']:.1f} s; bf16 - fp32 per sentence: mean "
        f"{float(d.mean()):+.4f}, max abs {float(d.abs().max()):.4f} nats (load {load()})"
    )


def elbo_per_step(cfg: Any, steps: int, seeds: list[int], every: int, n_valid: int) -> None:
    """For each seed, train the model ``steps`` SGD steps (the config's optimiser, batch and clipping; vaelab's
    loader, its word-dropout noise and dropout seeds) in fp32 and in bf16 from the same initialisation, batches and
    reparameterisation draws, and evaluate every ``every`` steps the ELBO (nats per sentence) on ``n_valid`` fixed
    random validation sentences: in eval mode, in fp32 for both, one fixed draw per sentence. Prints the ELBOs, bf16
    - fp32 per seed, and the seed-to-seed spread (standard deviation) of fp32 at the same step."""
    try:
        ds = load_dataset(cfg.data)
    except (DataError, FileNotFoundError, OSError) as e:
        print(f"\nELBO per step: skipped, PTB not found ({e})")
        return
    split = ds.split("valid")
    pick = torch.randperm(len(split), generator=torch.Generator().manual_seed(0))[:n_valid]
    pick = pick[torch.sort(split.lengths[pick], stable=True).indices]
    valid = [split.batch(pick[i : i + 100]) for i in range(0, len(pick), 100)]
    v = len(ds.vocab)

    def evaluate(model: torch.nn.Module) -> float:
        model.eval()
        g = torch.Generator().manual_seed(1)
        total = sum(float(elbo_terms(model, x, 1, eps_generator=g)["elbo"].sum()) for x in valid)
        model.train()
        return total / len(pick)

    marks = sorted({*range(0, steps + 1, every), steps})
    curves: dict[str, dict[int, list[float]]] = {"fp32": {}, "bf16": {}}
    seconds = {"fp32": 0.0, "bf16": 0.0}
    print(
        f"\nELBO per step: {len(seeds)} seeds x {steps} steps x fp32/bf16 (batch {cfg.train.batch_size}, "
        f"{cfg.train.optimizer} lr {cfg.train.lr}), validation ELBO on {len(pick)} random validation sentences every "
        f"{every} steps (fp32 evaluation, one fixed draw per sentence); 1-min load {load()} at the start"
    )
    for seed in seeds:
        for name in ("fp32", "bf16"):
            torch.manual_seed(seed)
            model = build_model(cfg.model, {"vocab_size": v})
            loader = ds.loader("train", cfg.train.batch_size, seed=seed)
            groups = {"encoder": model.encoder_parameters(), "decoder": model.decoder_parameters()}
            opts = {k: make_optimizer(cfg.train, p) for k, p in groups.items()}
            obj = build_objective(cfg.objective, 100, 100)
            precision = Precision(name, "cpu")
            ctx = StepContext.single_process(model, obj, opts, grad_clip=cfg.train.grad_clip, precision=precision)
            curve = curves[name]
            curve.setdefault(0, []).append(evaluate(model))
            step, epoch = 0, 0
            while step < steps:
                for batch in loader.epoch(epoch):
                    t0 = time.perf_counter()
                    gradient_step(ctx, batch.x, step, ["encoder", "decoder"])
                    seconds[name] += time.perf_counter() - t0
                    step += 1
                    if step in marks:
                        curve.setdefault(step, []).append(evaluate(model))
                    if step >= steps:
                        break
                epoch += 1
            elbos = ", ".join(f"{m}: {curve[m][-1]:.2f}" for m in marks)
            print(f"  seed {seed} {name}: ELBO at step {elbos} (load {load()})")
    print("  step | fp32 mean (sd over seeds) | bf16 mean (sd) | bf16 - fp32 per seed | mean difference / fp32 sd")
    sds = []
    for m in marks:
        a = torch.tensor(curves["fp32"][m], dtype=torch.float64)
        b = torch.tensor(curves["bf16"][m], dtype=torch.float64)
        sd, sd16 = (float(a.std()), float(b.std())) if len(a) > 1 else (float("nan"), float("nan"))
        if m > 0:
            sds.append(sd)
        d = b - a
        print(
            f"  {m:4d} | {float(a.mean()):.3f} ({sd:.3f}) | {float(b.mean()):.3f} ({sd16:.3f}) | "
            f"{', '.join(f'{x:+.3f}' for x in d.tolist())} | {float(d.mean()) / sd:+.2f}"
        )
    diffs = [b - a for m in marks[1:] for a, b in zip(curves["fp32"][m], curves["bf16"][m], strict=True)]
    print(
        f"  over the {len(diffs)} (seed, step > 0) pairs: mean bf16 - fp32 {sum(diffs) / len(diffs):+.3f}, mean "
        f"|bf16 - fp32| {sum(abs(d) for d in diffs) / len(diffs):.3f} nats, mean fp32 sd over seeds "
        f"{sum(sds) / len(sds):.3f}; training time fp32 {seconds['fp32']:.0f} s, bf16 {seconds['bf16']:.0f} s (runs "
        f"in turn, not interleaved; load {load()})"
    )


if __name__ == "__main__":
    main()
