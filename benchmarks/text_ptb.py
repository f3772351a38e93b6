"""Penn Treebank on a CPU in ~10 minutes per run: LSTM LM, plain LSTM VAE and KL-annealed LSTM VAE.

    python benchmarks/text_ptb.py lm|vae|annealed [--epochs 3] [--train-size 10000] [--iw-sentences 100]

Each run trains the small CPU size of configs/ptb_vae_small.yaml (emb 128, LSTM 256, D = 32, dropout 0.5; SGD lr
1.0, clip 5, batch 32, LR decay on plateau; He et al., ICLR 2019) on ``--train-size`` training sentences (the fixed
subset of ``data.train_size``; full 10k vocabulary) for ``--epochs`` epochs, with the full validation set
(3,370 sentences) for model selection. ``annealed`` raises beta linearly from 0.1 to 1 over the first
``epochs - 1`` epochs (He et al. use 10 epochs; compressed here so the last epoch is at beta = 1).

Evaluation of the best checkpoint:
- the whole test set (3,761 sentences, 82,430 predicted tokens): ELBO-based NLL, KL, MI pooled over all 3,761
  posteriors, active units, ELBO-based perplexity;
- the IW-NLL with K = 500 on a fixed random subset of ``--iw-sentences`` test sentences (``data.eval_size``), with
  the ELBO on the same subset (K = 500 costs ~1 s per sentence on one CPU thread; the full test set would take an
  hour). For the LM both are exact and equal.

Prints one Markdown table row and writes RUN/bench.json. Mikolov et al. (2010) for PTB; Bowman et al. (2016);
Kim et al. (2018); He et al. (2019).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

from vaelab.config import load_config
from vaelab.data import load_dataset
from vaelab.training.trainer import Trainer

CONFIGS = {
    "lm": "configs/ptb_lm.yaml",
    "vae": "configs/ptb_vae_small.yaml",
    "annealed": "configs/ptb_vae_annealed.yaml",
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", choices=sorted(CONFIGS))
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--train-size", type=int, default=10000)
    p.add_argument("--iw-sentences", type=int, default=100)
    p.add_argument("--k", type=int, default=500)
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1; see docs/text.md)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/bench_text")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    overrides = [
        "model.emb_dim=128",
        "model.hidden_dim=256",
        f"data.train_size={args.train_size}",
        "data.eval_size=null",
        f"train.epochs={args.epochs}",
        "train.progress=false",
        "eval.iw_samples=0",
        "eval.batch_size=100",
        f"seed={args.seed}",
    ]
    if args.model == "annealed":
        overrides.append(f"objective.beta.warmup_epochs={max(1, args.epochs - 1)}")
    cfg = load_config(CONFIGS[args.model], overrides)
    out = Path(args.out) / f"{args.model}-e{args.epochs}-n{args.train_size}-s{args.seed}"
    t0 = time.perf_counter()
    trainer = Trainer(cfg, out)
    full = trainer.fit()  # best checkpoint evaluated on the whole test set, no IW
    t_train = time.perf_counter() - t0

    # IW-NLL on a fixed subset of the test set, same model (the best checkpoint is loaded by fit())
    cfg.data.eval_size = args.iw_sentences
    trainer.run.dataset = load_dataset(cfg.data)
    t1 = time.perf_counter()
    sub = trainer.evaluator.evaluate("test", iw_samples=args.k, seed_offset=3 * 10**6)
    t_iw = time.perf_counter() - t1

    record = {
        "model": args.model,
        "epochs": full["epochs"],
        "train_size": args.train_size,
        "threads": args.threads,
        "test_full": {k: full[k] for k in ("n", "nll_elbo", "rate", "distortion", "mi", "mi_pool", "au", "ppl_elbo")},
        "test_subset": {k: sub[k] for k in ("n", "nll_elbo", "nll_iw", "iw_samples", "ppl_elbo", "ppl_iw")},
        "train_and_full_eval_s": t_train,
        "train_time_s": full["train_time"],
        "iw_eval_s": t_iw,
        "best_epoch": full["best_epoch"],
        "stop_reason": full["stop_reason"],
    }
    (out / "bench.json").write_text(json.dumps(record, indent=2))
    f, s = record["test_full"], record["test_subset"]
    print(json.dumps(record, indent=2))
    print(
        "| model | epochs | test NLL (ELBO) | KL | MI (pool) | AU | PPL (ELBO) | IW-NLL K=500 (subset) "
        "| ELBO NLL (subset) | PPL (IW, subset) | train time |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    print(
        f"| {args.model} | {record['epochs']} | {f['nll_elbo']:.2f} | {f['rate']:.2f} | {f['mi']:.2f} ({f['mi_pool']}) "
        f"| {f['au']} | {f['ppl_elbo']:.1f} | {s['nll_iw']:.2f} (n={s['n']}) | {s['nll_elbo']:.2f} | {s['ppl_iw']:.1f} "
        f"| {record['train_time_s'] / 60:.1f} min |"
    )
    assert math.isfinite(f["nll_elbo"])


if __name__ == "__main__":
    main()
