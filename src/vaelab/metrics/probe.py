"""Downstream linear probe: how linearly decodable the labels are from the latent code.

The representation measure of Sinha & Dieng (NeurIPS 2021; methods.md section 5): a linear classifier trained on
latent features of the training split, its accuracy reported on the evaluated split. Two feature sets are probed:

- **sampled z** (the headline, ``probe_accuracy``): z ~ q(z|x), drawn from the posterior the model's encoder gives.
  This probe reads only what the latent carries *through its noise*, i.e. what a decoder fed with z could use: a
  collapsed model (q(z|x) = p(z) up to variations far below the posterior's standard deviation) scores the
  majority class (or slightly below it), however its posterior means vary.
- **posterior means** (``probe_mean_accuracy``): mu(x), the protocol before sampled features were added. It reads
  every variation of mu, however small against the noise: the means of a collapsed unit that vary by 1e-5 across
  examples are standardised to unit scale and can still classify well above the majority class, so this number
  says what the encoder computes, not what the latent carries.

The protocol is fixed (no options), so that numbers are comparable across runs and remedies:

1. posteriors: mu(x) and log sigma^2(x) of every training example (evaluation batches: fixed order, the model in
   eval mode) and, for the evaluated split, those of the evaluation collection;
2. features: for the mean probe, mu; for the sampled probe, z = mu + sigma * eps in float64 with eps ~ N(0, I)
   from fixed-seed CPU generators (:data:`PROBE_SEED` for the training split, ``PROBE_SEED + 1`` for the evaluated
   split), so the number is deterministic and does not depend on other metrics' randomness: **one draw per
   training example** (the training set is then a sample of the joint of labels and codes; more draws would add
   near-duplicate rows at proportional cost) and :data:`PROBE_DRAWS` **draws per evaluated example** (the
   accuracy is averaged over them, which lowers its Monte Carlo noise at the cost of predictions only);
3. standardisation with the training mean and standard deviation of each feature dimension (a dimension whose
   training standard deviation is below 1e-6, a dead unit, is only centred). For sampled z this cannot amplify
   noise-free variations: a collapsed unit's sampled values have a standard deviation of about 1 (the posterior
   noise), so standardising leaves it pure noise; it only conditions the optimisation;
4. multinomial logistic regression, weights W (D, K) and biases b (K), K = number of classes, minimising
   mean_i cross-entropy(W^T f_i + b, y_i) + (l2 / 2) ||W||^2 with l2 = 1e-4 (biases not penalised), from zeros,
   in float64, by full-batch L-BFGS (history 20, strong-Wolfe line search) for at most 500 iterations
   (gradient tolerance 1e-7): deterministic, no minibatch noise;
5. accuracy = fraction of the evaluated examples (for sampled z: of all their draws) whose arg-max class is the
   label (ties: lowest class).

Registered as ``probe`` in :data:`vaelab.metrics.extras.EXTRA_METRICS` (``eval.extra_metrics: [probe]``); works on
image tensors and text batches (:class:`vaelab.data.text.TokenBatch` with ``data.format: label_tab``) alike. Result
keys: ``probe_accuracy`` (sampled z, evaluated split, mean over the draws), ``probe_train_accuracy`` (sampled z,
training split), ``probe_iterations``; ``probe_mean_accuracy``, ``probe_mean_train_accuracy``,
``probe_mean_iterations`` (the same on posterior means); ``probe_majority`` (the share of the evaluated split's most
frequent class: the accuracy of always guessing it, where a collapsed model's ``probe_accuracy`` sits);
``probe_draws``, ``probe_n_train``, ``probe_classes``. Data without labels give only ``probe_skipped`` (the reason).
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
PROBE_SEED = 1729
"""Seed of the CPU generator that draws the training split's sampled features (the evaluated split's: + 1)."""
PROBE_DRAWS = 10
"""Draws of z ~ q(z|x) per evaluated example for the sampled probe (one per training example)."""


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


def posterior_draws(mu: Tensor, logvar: Tensor, draws: int, generator: torch.Generator) -> Tensor:
    """``draws`` samples z = mu + exp(logvar / 2) * eps of each row of (mu, logvar) (N, D), in float64 on the CPU
    with eps from ``generator``: (draws * N, D), draw-major (rows d * N .. (d + 1) * N - 1 are draw d)."""
    mu, logvar = mu.detach().double().cpu(), logvar.detach().double().cpu()
    eps = torch.randn((draws, *mu.shape), dtype=torch.float64, generator=generator)
    return (mu + torch.exp(0.5 * logvar) * eps).reshape(-1, mu.shape[-1])


def majority_rate(y: Tensor) -> float:
    """Share of the most frequent label in ``y``: the accuracy of always guessing that class (nan when empty)."""
    y = y.long().reshape(-1)
    return float(torch.bincount(y).max()) / len(y) if len(y) else float("nan")


@torch.no_grad()
def _train_posteriors(ctx: MetricContext) -> tuple[Tensor, Tensor, Tensor] | None:
    """mu(x), log sigma^2(x) and labels of the training split, or None if some batch has no labels."""
    mus: list[Tensor] = []
    logvars: list[Tensor] = []
    ys: list[Tensor] = []
    with eval_mode(ctx.model):
        for batch in ctx.batches("train"):
            y = getattr(batch, "y", None)
            if y is None:
                return None
            q = ctx.model.encode(batch.x)
            mus.append(q.mu.cpu())
            logvars.append(q.logvar.expand_as(q.mu).cpu())
            ys.append(torch.as_tensor(y).cpu())
    if not mus:
        return None
    return torch.cat(mus), torch.cat(logvars), torch.cat(ys)


@EXTRA_METRICS.register("probe")
def probe_metric(ctx: MetricContext) -> dict[str, Any]:
    """``probe``: accuracies of the fixed-protocol linear probe (module docstring) trained on the training split
    and scored on the evaluated split, on sampled z ~ q(z|x) (``probe_accuracy``) and on posterior means
    (``probe_mean_accuracy``), with the majority-class rate (``probe_majority``); ``probe_skipped`` when the data
    set has no labels."""
    col = ctx.collection
    if col.y is None or col.mu is None or col.logvar is None:
        reason = "no labels" if col.y is None else "no posteriors in the evaluation collection"
        return {"probe_skipped": f"{reason} on the {ctx.split} split"}
    train = _train_posteriors(ctx)
    if train is None:
        return {"probe_skipped": "no labels on the train split"}
    mu_tr, logvar_tr, y_tr = train
    y_te = col.y.long().reshape(-1)
    if len(y_te) == 0:
        return {"probe_skipped": f"no examples on the {ctx.split} split"}
    k = int(max(y_tr.max(), y_te.max())) + 1
    num_classes = None if ctx.dataset is None else ctx.dataset.num_classes
    if isinstance(num_classes, int) and num_classes >= k:
        k = num_classes
    z_tr = posterior_draws(mu_tr, logvar_tr, 1, torch.Generator().manual_seed(PROBE_SEED))
    z_te = posterior_draws(col.mu, col.logvar, PROBE_DRAWS, torch.Generator().manual_seed(PROBE_SEED + 1))
    sampled = linear_probe(z_tr, y_tr, z_te, y_te.repeat(PROBE_DRAWS), num_classes=k)
    mean = linear_probe(mu_tr, y_tr, col.mu, y_te, num_classes=k)
    return {
        "probe_accuracy": sampled.test_accuracy,
        "probe_train_accuracy": sampled.train_accuracy,
        "probe_iterations": sampled.iterations,
        "probe_mean_accuracy": mean.test_accuracy,
        "probe_mean_train_accuracy": mean.train_accuracy,
        "probe_mean_iterations": mean.iterations,
        "probe_majority": majority_rate(y_te),
        "probe_draws": PROBE_DRAWS,
        "probe_n_train": len(y_tr),
        "probe_classes": k,
    }
