"""How much a text VAE's encoder says about its sentence at initialisation, for several weight ranges.

Prints, for the LSTM VAE of a text config built with ``model.init_range`` = each of ``--ranges`` (nothing
trained), over the first ``--sentences`` training sentences:

- the activity A_d = Var_x(E[z_d|x]) (Burda et al. 2016; the AU statistic, threshold 0.01), mean and max over units;
- the signal-to-noise ratio A_d / E_x[sigma_d^2] averaged over units: how far apart the posteriors of different
  sentences sit compared with their own width (about 0 means that every sentence gets the same posterior);
- the mean rate (KL to the prior, nats per sentence), and the share of it that the mean offset alone explains
  (the same shift for every sentence, which carries no information).

This is the saddle the text study starts from (docs/text.md, "Why the remedies collapsed at He et al.'s
initialisation"). No timing; one thread; a few seconds per range.

    python benchmarks/text_init_activity.py [--config configs/ptb_vae_small.yaml] [--ranges 0.01 0.1 0.3]
"""

from __future__ import annotations

import argparse

import torch

from vaelab.config import load_config
from vaelab.data import load_dataset
from vaelab.metrics.units import active_units
from vaelab.models import build_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/ptb_vae_small.yaml")
    ap.add_argument("--ranges", type=float, nargs="+", default=[0.01, 0.1, 0.3])
    ap.add_argument("--sentences", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", action="append", default=[], help="extra config override key=value (repeatable)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg = load_config(args.config, list(args.set))
    ds = load_dataset(cfg.data)
    loader = ds.loader("train", args.sentences, seed=args.seed, shuffle=False)
    x = next(iter(loader.epoch(0))).x
    print(f"torch {torch.__version__}, 1 thread; {args.config}: {x.batch_size} training sentences")
    print("init_range | activity mean | activity max | AU | SNR (mean over units) | rate (nats) | offset share")
    for r in args.ranges:
        torch.manual_seed(args.seed)
        c = load_config(args.config, [*args.set, f"model.init_range={r}"])
        model = build_model(c.model, ds.info).eval()
        with torch.no_grad():
            mu, logvar = model.encoder(x)
        au, act = active_units(mu)
        snr = (act / logvar.exp().mean(0)).mean().item()
        kl = 0.5 * (mu**2 + logvar.exp() - logvar - 1.0)
        offset = 0.5 * (mu.mean(0) ** 2)  # the part of the rate from the mean shift shared by every sentence
        print(
            f"{r:10g} | {act.mean().item():13.3g} | {act.max().item():12.3g} | {au:2d} | {snr:21.3g} | "
            f"{kl.sum(1).mean().item():11.3g} | {offset.sum().item() / max(kl.sum(1).mean().item(), 1e-30):.2f}"
        )


if __name__ == "__main__":
    main()
