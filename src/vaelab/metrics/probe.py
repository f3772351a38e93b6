"""Downstream linear probe on posterior means: how linearly decodable the labels are from mu(x).

The representation measure of Sinha & Dieng (NeurIPS 2021; methods.md section 5): a linear classifier trained on
the posterior means mu(x) of the training split, its accuracy reported on the evaluated split. The protocol is fixed
(no options), so that numbers are comparable across runs and remedies:

1. features: mu(x) of every training example (evaluation batches: fixed order, the model in eval mode) and, for
   the evaluated split, the posterior means of the evaluation collection;
2. standardisation with the training mean and standard deviation of each latent dimension (a dimension whose
   training standard deviation is below 1e-6, a collapsed unit, is only centred);
3. multinomial logistic regression, weights W (D, K) and biases b (K), K = number of classes, minimising
   mean_i cross-entropy(W^T f_i + b, y_i) + (l2 / 2) ||W||^2 with l2 = 1e-4 (biases not penalised), from zeros,
   in float64, by full-batch L-BFGS (history 20, strong-Wolfe line search) for at most 500 iterations
   (gradient tolerance 1e-7): deterministic, no minibatch noise;
4. accuracy = fraction of the evaluated split's examples whose arg-max class is the label (ties: lowest class).

Registered as ``probe`` in :data:`vaelab.metrics.extras.EXTRA_METRICS` (``eval.extra_metrics: [probe]``). Result
keys: ``probe_accuracy`` (evaluated split), ``probe_train_accuracy``, ``probe_n_train``, ``probe_classes``,
``probe_iterations``; data without labels give only ``probe_skipped`` (the reason).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from vaelab.metrics.collect import eval_mode
from vaelab.metrics.extras import EXTRA_METRICS, MetricContext

PROBE_L2 = 1e-4
"""L2 penalty on the probe's weights (per example: the loss is the mean cross-entropy + l2 / 2 * ||W||^2)."""
PROBE_MAX_ITER = 500
"""L-BFGS iteration budget of the probe."""
PROBE_MIN_STD = 1e-6
"""Training standard deviation below which a latent dimension is only centred, not scaled."""


@dataclass
class ProbeResult:
    """A fitted probe: accuracies in [0, 1], the number of L-BFGS iterations used, weights and standardisation."""

    train_accuracy: float
    test_accuracy: float
    iterations: int
    weight: Tensor
    bias: Tensor
    mean: Tensor
    std: Tensor

    def predict(self, features: Tensor) -> Tensor:
        """Class indices (N,) for raw (unstandardised) features (N, D)."""
        f = (features.double() - self.mean) / self.std
        return (f @ self.weight + self.bias).argmax(-1)


def linear_probe(
    train_x: Tensor,
    train_y: Tensor,
    test_x: Tensor,
    test_y: Tensor,
    *,
    num_classes: int | None = None,
    l2: float = PROBE_L2,
    max_iter: int = PROBE_MAX_ITER,
) -> ProbeResult:
    """Fit the fixed-protocol probe (module docstring) on (train_x (N, D), train_y (N,)) and score it on
    (test_x, test_y). ``num_classes`` defaults to 1 + the largest label seen."""
    if train_x.dim() != 2 or test_x.dim() != 2 or train_x.shape[1] != test_x.shape[1]:
        raise ValueError(f"features must be (N, D) with the same D, got {tuple(train_x.shape)}, {tuple(test_x.shape)}")
    if len(train_x) != len(train_y) or len(test_x) != len(test_y) or len(train_x) == 0:
        raise ValueError("need as many labels as feature rows, and at least one training example")
    ytr, yte = train_y.long().reshape(-1), test_y.long().reshape(-1)
    k = num_classes if num_classes is not None else int(max(ytr.max(), yte.max() if len(yte) else 0)) + 1
    xtr = train_x.detach().double().cpu()
    mean = xtr.mean(0)
    std = xtr.std(0, unbiased=False)
    std = torch.where(std < PROBE_MIN_STD, torch.ones_like(std), std)
    ftr = (xtr - mean) / std
    w = torch.zeros(xtr.shape[1], k, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(k, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS(
        [w, b],
        lr=1.0,
        max_iter=max_iter,
        history_size=20,
        line_search_fn="strong_wolfe",
        tolerance_grad=1e-7,
        tolerance_change=1e-12,
    )

    def closure() -> Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(ftr @ w + b, ytr) + 0.5 * l2 * (w**2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    iterations = int(opt.state[w].get("n_iter", 0))
    result = ProbeResult(0.0, float("nan"), iterations, w.detach(), b.detach(), mean, std)
    result.train_accuracy = float((result.predict(xtr) == ytr).double().mean())
    if len(yte):
        result.test_accuracy = float((result.predict(test_x.detach().cpu()) == yte).double().mean())
    return result


@torch.no_grad()
def _train_means(ctx: MetricContext) -> tuple[Tensor, Tensor] | None:
    """mu(x) and labels of the training split, or None if some batch has no labels."""
    mus: list[Tensor] = []
    ys: list[Tensor] = []
    with eval_mode(ctx.model):
        for batch in ctx.batches("train"):
            y = getattr(batch, "y", None)
            if y is None:
                return None
            mus.append(ctx.model.encode(batch.x).mu.cpu())
            ys.append(torch.as_tensor(y).cpu())
    if not mus:
        return None
    return torch.cat(mus), torch.cat(ys)


@EXTRA_METRICS.register("probe")
def probe_metric(ctx: MetricContext) -> dict[str, Any]:
    """``probe``: accuracy of the fixed-protocol linear probe (module docstring) trained on mu(x) of the training
    split, on the evaluated split; ``probe_skipped`` when the data set has no labels."""
    col = ctx.collection
    if col.y is None or col.mu is None:
        reason = "no labels" if col.y is None else "no posterior means in the evaluation collection"
        return {"probe_skipped": f"{reason} on the {ctx.split} split"}
    train = _train_means(ctx)
    if train is None:
        return {"probe_skipped": "no labels on the train split"}
    mu_tr, y_tr = train
    k = int(max(y_tr.max(), col.y.max())) + 1
    num_classes = getattr(ctx.dataset, "num_classes", None)
    if isinstance(num_classes, int) and num_classes >= k:
        k = num_classes
    res = linear_probe(mu_tr, y_tr, col.mu, col.y, num_classes=k)
    return {
        "probe_accuracy": res.test_accuracy,
        "probe_train_accuracy": res.train_accuracy,
        "probe_n_train": len(y_tr),
        "probe_classes": k,
        "probe_iterations": res.iterations,
    }
