"""What a trained model generates, for the reports: reconstructions, prior samples, latent traversals and
interpolations (images), or decoded sentences (text). Seeded, so a report is reproducible."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from vaelab.run import Run

SEED = 0


@dataclass
class ImageSamples:
    """Arrays (N, C, H, W) in [0, 1]: test inputs and their reconstructions (decoder mean at the posterior mean),
    prior samples (decoder means of z ~ p(z)), traversals (one row per unit: z_d from -3 to 3, the other units at
    the first test example's posterior mean) and an interpolation between two test examples' posterior means."""

    inputs: np.ndarray
    reconstructions: np.ndarray
    prior: np.ndarray
    traversals: list[tuple[int, np.ndarray]] = field(default_factory=list)
    interpolation: np.ndarray | None = None


@dataclass
class TextSamples:
    """Decoded sentences: from z ~ p(z) (greedy), test sentences with the greedy decoding of their posterior
    mean, and an interpolation between two test sentences (Bowman et al. 2016)."""

    prior: list[str]
    reconstructions: list[tuple[str, str]]
    interpolation: list[tuple[float, str]]


def _to_numpy(x: Any) -> np.ndarray:
    arr = x.detach().float().cpu().clamp(0, 1).numpy()
    return arr


@torch.no_grad()
def image_samples(run: Run, *, n: int = 8, units: int = 5, steps: int = 9) -> ImageSamples:
    """Image samples of a loaded run (:func:`vaelab.run.load_run`; see :class:`ImageSamples`)."""
    model = run.model.eval()
    batch = next(iter(run.eval_loader("test", n).epoch(0)))
    device = run.device
    x = batch.x[:n].to(device)
    q = model.encode(x)
    recon = model.decoder.sample(q.mu, mean=True)
    g = torch.Generator().manual_seed(SEED)
    z = torch.randn(2 * n, model.latent_dim, generator=g).to(device)
    prior = model.decoder.sample(z, mean=True)
    kl = (0.5 * (q.mu**2 + q.logvar.exp() - q.logvar - 1)).mean(0)
    order = torch.argsort(kl, descending=True)[: min(units, model.latent_dim)].tolist()
    values = torch.linspace(-3, 3, steps, device=device)
    traversals = []
    for d in order:
        zt = q.mu[0].expand(steps, -1).clone()
        zt[:, d] = values
        traversals.append((int(d), _to_numpy(model.decoder.sample(zt, mean=True))))
    interp = None
    if x.shape[0] >= 2:
        t = torch.linspace(0, 1, steps, device=device).unsqueeze(1)
        zi = (1 - t) * q.mu[0] + t * q.mu[1]
        interp = _to_numpy(model.decoder.sample(zi, mean=True))
    return ImageSamples(_to_numpy(x), _to_numpy(recon), _to_numpy(prior), traversals, interp)


@torch.no_grad()
def text_samples(run: Run, *, n: int = 5, steps: int = 5) -> TextSamples:
    """Sentences of a loaded text run (:func:`vaelab.run.load_run`; see :class:`TextSamples`)."""
    from vaelab.generation import TextRun, interpolate, reconstruct, sample_prior

    text = TextRun.from_run(run)
    loader = run.dataset.loader("test", n, seed=run.config.seed, shuffle=False)
    batch = next(iter(loader.epoch(0)))
    sentences = [text.text(ids) for ids in batch.x.sentences()[:n]]
    prior = sample_prior(text, n, greedy=True, seed=SEED)
    recon = [(seen, outs[0]) for seen, outs in reconstruct(text, sentences, greedy=True, seed=SEED)]
    interp = interpolate(text, sentences[0], sentences[1], steps=steps, seed=SEED) if len(sentences) >= 2 else []
    return TextSamples(prior, recon, interp)


def is_image_run(run_dir: str | Path) -> bool:
    """Whether the run's data are images (the modality its data set registered with), so its samples are
    pictures rather than sentences."""
    from vaelab.config import load_saved_config
    from vaelab.data import dataset_modality

    cfg = load_saved_config(Path(run_dir) / "config.yaml")
    return dataset_modality(cfg.data.name) == "image"
