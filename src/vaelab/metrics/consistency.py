"""Held-out consistency of the encoder: E_x E_t KL( q(z|t(x)) || q(z|x) ), nats per example.

The quantity consistency regularisation penalises (Sinha & Dieng, NeurIPS 2021; methods.md section 5), measured on
an evaluation split: for every example, ``CONSISTENCY_DRAWS`` random transformations t are drawn from the run's
policy and the closed-form KL between the diagonal-Gaussian posteriors of t(x) and x (summed over latent
dimensions) is averaged over the draws; the metric is the mean over examples, with its standard error over
examples. Lower is more consistent; 0 means the encoder ignores the transformation.

The policy is the run's consistency policy (the ``transform`` of its consistency terms, see
:func:`vaelab.objectives.consistency.configured_transform`), so a CR run is measured under what it was trained
with. A run without consistency terms (the VAE baseline) is measured under the default policy of its data: the
paper's ``simple`` affine policy for images, ``text`` for token batches. To compare runs, use the same policy for
all of them (the result names it in ``consistency_policy``).

Registered as ``consistency`` in :data:`vaelab.metrics.extras.EXTRA_METRICS`. Result keys: ``consistency_kl``,
``consistency_kl_se``, ``consistency_draws``, ``consistency_policy``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from vaelab.metrics.collect import eval_mode
from vaelab.metrics.extras import EXTRA_METRICS, MetricContext
from vaelab.objectives.consistency import configured_transform, consistency_kl
from vaelab.transforms import Transform, build_transform, describe

CONSISTENCY_DRAWS = 4
"""Transformations drawn per held-out example."""


def _default_policy(x: Any) -> str:
    return "simple" if isinstance(x, Tensor) else "text"


@torch.no_grad()
def heldout_consistency(
    model: torch.nn.Module,
    batches: Any,
    transform: Transform,
    generator: torch.Generator,
    draws: int = CONSISTENCY_DRAWS,
) -> Tensor:
    """Per-example E_t KL( q(z|t(x)) || q(z|x) ) (N,), nats, over ``draws`` transformations per example drawn
    with ``generator``. ``batches`` yields objects with ``.x`` (or bare inputs)."""
    if draws < 1:
        raise ValueError(f"draws must be >= 1, got {draws}")
    out: list[Tensor] = []
    with eval_mode(model):
        for batch in batches:
            x = getattr(batch, "x", batch)
            q = model.encode(x)
            total = torch.zeros(q.mu.shape[0], dtype=torch.float64, device=q.mu.device)
            for _ in range(draws):
                total += consistency_kl(model.encode(transform(x, generator)), q).double()
            out.append((total / draws).cpu())
    if not out:
        raise ValueError("heldout_consistency got no batches")
    return torch.cat(out)


@EXTRA_METRICS.register("consistency")
def consistency_metric(ctx: MetricContext) -> dict[str, Any]:
    """``consistency``: held-out E_x E_t KL(q(z|t(x)) || q(z|x)) on the evaluated split (module docstring)."""
    terms = getattr(getattr(ctx.config, "objective", None), "terms", None) or []
    spec: str | Mapping[str, Any] | None = configured_transform(list(terms))
    batches = iter(ctx.batches(ctx.split))
    first = next(batches, None)
    if first is None:
        return {"consistency_skipped": f"the {ctx.split} split is empty"}
    if spec is None:
        spec = _default_policy(first.x)
    transform = build_transform(spec, key="consistency policy")
    kl = heldout_consistency(ctx.model, itertools.chain([first], batches), transform, ctx.generator)
    n = kl.numel()
    return {
        "consistency_kl": float(kl.mean()),
        "consistency_kl_se": float(kl.std() / math.sqrt(n)) if n > 1 else float("nan"),
        "consistency_draws": CONSISTENCY_DRAWS,
        "consistency_policy": describe(spec),
    }
