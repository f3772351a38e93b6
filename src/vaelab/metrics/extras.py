"""Set-level metrics beyond the core summary, selected by name in ``eval.extra_metrics``.

Each is a function ``f(ctx: MetricContext) -> dict[str, JSON value]`` registered in :data:`EXTRA_METRICS`. They run
on the final evaluation of a run, in ``vaelab evaluate``, and (with ``eval.extras_every_epoch``) on every
validation. Examples: a linear probe on sampled latents, held-out consistency KL, hole metrics. The context gives
the split's per-example collection (posterior means and log-variances, labels) and a way to draw batches of any
split, so a metric can also look at training data (a probe trains on the training split).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from vaelab.metrics.collect import EvalCollection
from vaelab.registry import Registry

if TYPE_CHECKING:
    from vaelab.data.dataset import Dataset


@dataclass
class MetricContext:
    """What an extra metric may use. ``collection``: per-example results on ``split`` (gathered over processes);
    ``batches(split)``: that split's evaluation batches (fixed binarisation), each with ``.x`` on ``device`` and
    ``.y``; ``generator``: a seeded CPU generator for the metric's own randomness; ``config``: the RunConfig;
    ``dataset``: the run's data set (:class:`~vaelab.data.dataset.Dataset`; None for batches without one)."""

    model: torch.nn.Module
    dataset: Dataset | None
    split: str
    collection: EvalCollection
    config: Any
    device: torch.device
    generator: torch.Generator
    batches: Callable[[str], Iterator[Any]]


ExtraMetric = Callable[[MetricContext], dict[str, Any]]
EXTRA_METRICS: Registry[ExtraMetric] = Registry("extra metric")


def run_extra_metrics(names: list[str], ctx: MetricContext, base: dict[str, Any]) -> dict[str, Any]:
    """Run the named metrics and return their results; a key that clashes with ``base`` or another metric is an
    error (a metric must not silently overwrite a number)."""
    out: dict[str, Any] = {}
    for i, name in enumerate(names):
        fn = EXTRA_METRICS.get(name, key=f"eval.extra_metrics[{i}]")
        result = fn(ctx)
        clash = (set(result) & set(base)) | (set(result) & set(out))
        if clash:
            raise RuntimeError(f"extra metric {name!r} returned keys already reported: {sorted(clash)}")
        out.update(result)
    return out
