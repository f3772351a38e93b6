"""Representation metrics: the linear probe (known separable / random-label answers) and held-out consistency."""

from __future__ import annotations

import math

import pytest
import torch

from vaelab.config import load_config
from vaelab.distributions import DiagonalGaussian
from vaelab.metrics.collect import EvalCollection
from vaelab.metrics.consistency import heldout_consistency
from vaelab.metrics.extras import EXTRA_METRICS, MetricContext
from vaelab.metrics.probe import PROBE_DRAWS, linear_probe
from vaelab.training.trainer import Trainer
from vaelab.transforms import build_transform


def _clusters(n: int, k: int, d: int, sep: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(k, d, generator=torch.Generator().manual_seed(100)) * sep
    y = torch.randint(k, (n,), generator=g)
    return centres[y] + torch.randn(n, d, generator=g), y


def test_probe_separates_separable_classes():
    xtr, ytr = _clusters(1000, 5, 6, sep=8.0, seed=0)
    xte, yte = _clusters(500, 5, 6, sep=8.0, seed=1)
    xtr, xte = xtr * 50 + 300, xte * 50 + 300  # badly scaled features: the protocol standardises them
    res = linear_probe(xtr, ytr, xte, yte)
    assert res.test_accuracy >= 0.99 and res.train_accuracy >= 0.99
    assert 0 < res.iterations <= 500


def test_probe_on_random_labels_is_at_chance():
    g = torch.Generator().manual_seed(3)
    xtr, xte = torch.randn(3000, 8, generator=g), torch.randn(3000, 8, generator=g)
    ytr, yte = torch.randint(4, (3000,), generator=g), torch.randint(4, (3000,), generator=g)
    res = linear_probe(xtr, ytr, xte, yte)
    assert abs(res.test_accuracy - 0.25) < 0.04  # chance 1/4; standard error 0.008
    assert res.train_accuracy < 0.33  # a linear model cannot memorise 3000 random labels with 8 features


def test_probe_ignores_collapsed_dimensions_and_is_deterministic():
    xtr, ytr = _clusters(300, 3, 2, sep=6.0, seed=4)
    xte, yte = _clusters(300, 3, 2, sep=6.0, seed=5)

    def pad(x: torch.Tensor) -> torch.Tensor:  # three dead units (zero variance)
        return torch.cat([x, torch.full((len(x), 3), 0.7)], 1)

    a = linear_probe(pad(xtr), ytr, pad(xte), yte)
    b = linear_probe(pad(xtr), ytr, pad(xte), yte)
    assert a.test_accuracy == b.test_accuracy and torch.equal(a.weight, b.weight)
    assert a.test_accuracy >= 0.95 and torch.isfinite(a.weight).all()


class _Encoder(torch.nn.Module):
    """A 'model' whose posterior is N(W x, diag exp(logvar)) with fixed W: known consistency KLs."""

    def __init__(self, w: torch.Tensor, logvar: float = 0.0):
        super().__init__()
        self.w = torch.nn.Parameter(w)
        self.logvar = logvar

    def encode(self, x):
        mu = x.flatten(1) @ self.w
        return DiagonalGaussian(mu, torch.full_like(mu, self.logvar))


def test_heldout_consistency_known_answers():
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(10, 1, 5, 5, generator=g) < 0.5).float()
    batches = [x[:6], x[6:]]
    model = _Encoder(torch.randn(25, 3, generator=g), logvar=0.0)
    ident = heldout_consistency(model, batches, build_transform("identity"), torch.Generator())
    assert torch.equal(ident, torch.zeros(10))
    blind = _Encoder(torch.zeros(25, 3))  # ignores its input: perfectly consistent
    assert torch.equal(
        heldout_consistency(blind, batches, build_transform("large"), torch.Generator()), torch.zeros(10)
    )
    # one whole-pixel shift policy, unit variances: KL = |W^T (t(x) - x)|^2 / 2, averaged over draws
    policy = build_transform({"name": "crop_shift", "max_shift": 1})
    kl = heldout_consistency(model, batches, policy, torch.Generator().manual_seed(7), draws=3)
    gen = torch.Generator().manual_seed(7)
    expected = []
    for b in batches:
        total = torch.zeros(len(b), dtype=torch.float64)
        for _ in range(3):
            d = (policy(b, gen) - b).flatten(1) @ model.w.detach()
            total += 0.5 * (d.double() ** 2).sum(1)
        expected.append(total / 3)
    torch.testing.assert_close(kl, torch.cat(expected), rtol=1e-5, atol=1e-6)
    assert kl.mean() > 0


def test_probe_without_labels_is_refused_when_asked_and_skipped_when_a_study_adds_it(tiny_config, tmp_path):
    from vaelab.errors import ConfigError
    from vaelab.evaluation import Evaluator
    from vaelab.run import load_run

    gaussian = [
        "data={name: synthetic_gaussian, num_examples: 128, image_shape: [1, 4, 4], eval_size: 32}",
        "model.likelihood=gaussian",
        "train.epochs=1",
    ]
    asked = load_config(tiny_config(), [*gaussian, "eval.extra_metrics=[probe, consistency]"])
    with pytest.raises(ConfigError, match=r"eval.extra_metrics\[0\]=probe needs labels"):
        Trainer(asked, tmp_path / "refused").fit()  # before any training (issue 16)
    summary = Trainer(load_config(tiny_config(), [*gaussian, "eval.extra_metrics=[consistency]"]), tmp_path / "g").fit()
    assert summary["consistency_policy"] == "simple" and summary["consistency_kl"] > 0  # the default policy
    run = load_run(tmp_path / "g")
    run.config.eval.extra_metrics = ["probe"]  # as a study's measurement adds it to every image data set
    result = Evaluator(run).evaluate("test", iw_samples=0, seed_offset=0, extras=True)
    assert "probe_accuracy" not in result and "no labels" in result["probe_skipped"]


def test_metric_context_probe_uses_the_training_split():
    """The registered metric trains on ``ctx.batches('train')`` and scores the evaluated split's collection."""
    g = torch.Generator().manual_seed(1)
    w = torch.randn(4, 2, generator=g)
    model = _Encoder(w, logvar=-6.0)  # sigma = 0.05: the means' label signal survives the posterior noise

    class B:
        def __init__(self, x, y):
            self.x, self.y = x, y

    def split(seed, n):
        gg = torch.Generator().manual_seed(seed)
        y = torch.randint(2, (n,), generator=gg)
        x = torch.randn(n, 1, 2, 2, generator=gg) * 0.3 + (2 * y.float() - 1).view(n, 1, 1, 1)
        return [B(x[i : i + 50], y[i : i + 50]) for i in range(0, n, 50)]

    data = {"train": split(2, 400), "test": split(3, 200)}
    col = collect_like(model, data["test"])
    seen = []

    def batches(name):
        seen.append(name)
        return iter(data[name])

    ctx = MetricContext(model, None, "test", col, None, torch.device("cpu"), torch.Generator(), batches)
    out = EXTRA_METRICS.get("probe")(ctx)
    assert seen == ["train"] and out["probe_n_train"] == 400 and out["probe_classes"] == 2
    assert out["probe_accuracy"] >= 0.95 and out["probe_mean_accuracy"] >= 0.95
    ys = torch.cat([b.y for b in data["test"]])
    assert out["probe_majority"] == max(float((ys == c).double().mean()) for c in (0, 1))
    assert out["probe_draws"] == PROBE_DRAWS


def collect_like(model, batches):
    """An EvalCollection with posterior parameters and labels (what the trainer passes to extra metrics)."""
    qs = [model.encode(b.x) for b in batches]
    mus = torch.cat([q.mu.detach() for q in qs])
    logvars = torch.cat([q.logvar.detach().expand_as(q.mu) for q in qs])
    ys = torch.cat([b.y for b in batches])
    zeros = torch.zeros(len(ys))
    return EvalCollection(elbo=zeros, rate=zeros, distortion=zeros, mu=mus, logvar=logvars, y=ys)


class _LabelPosterior(torch.nn.Module):
    """q(z|x) = N(scale * (2 y - 1) * c, exp(logvar) I), D = 4, where the 'image' x is the label y itself and
    c = (1, 0.5, -0.3, 0.8): the label is in the means at the given scale, under noise of the given variance."""

    def __init__(self, scale: float, logvar: float):
        super().__init__()
        self.scale, self.logvar = scale, logvar
        self.register_buffer("c", torch.tensor([1.0, 0.5, -0.3, 0.8]))

    def encode(self, x):
        mu = self.scale * (2 * x.float().reshape(-1, 1) - 1) * self.c
        return DiagonalGaussian(mu, torch.full_like(mu, self.logvar))


def _probe_on(model: torch.nn.Module, p_one: float = 0.3) -> dict:
    """The registered probe on 2,000 training and 1,000 test examples with P(y = 1) = p_one."""

    class B:
        def __init__(self, y):
            self.x, self.y = y.clone(), y

    def split(seed: int, n: int) -> list:
        y = (torch.rand(n, generator=torch.Generator().manual_seed(seed)) < p_one).long()
        return [B(y[i : i + 250]) for i in range(0, n, 250)]

    data = {"train": split(11, 2000), "test": split(12, 1000)}
    col = collect_like(model, data["test"])
    ctx = MetricContext(model, None, "test", col, None, torch.device("cpu"), torch.Generator(), lambda s: iter(data[s]))
    return EXTRA_METRICS.get("probe")(ctx)


@pytest.mark.parametrize("scale", [0.0, 1e-5])
def test_probe_on_a_posterior_equal_to_the_prior_sits_at_the_majority_class(scale):
    """Issue 15: q(z|x) = N(0, I) up to means that vary by 1e-5 (a collapsed model): z carries nothing about the
    label, so the sampled-z probe scores the majority class (a classifier on independent noise cannot beat it);
    the posterior-mean probe, which standardises the 1e-5 variations to unit scale, reads them perfectly."""
    out = _probe_on(_LabelPosterior(scale, logvar=0.0))
    assert 0.65 < out["probe_majority"] < 0.75  # P(y = 0) = 0.7
    assert abs(out["probe_accuracy"] - out["probe_majority"]) < 0.02
    assert out["probe_train_accuracy"] < out["probe_majority"] + 0.03
    if scale > 0:
        assert out["probe_mean_accuracy"] == 1.0  # what the encoder computes, not what z carries
    else:
        assert out["probe_mean_accuracy"] == pytest.approx(out["probe_majority"])  # constant features: the bias


def test_probe_on_a_posterior_whose_mean_carries_the_label_is_near_one_and_deterministic():
    model = _LabelPosterior(1.0, logvar=math.log(0.01))  # means +-c, sigma = 0.1
    out = _probe_on(model)
    assert out["probe_accuracy"] >= 0.99 and out["probe_mean_accuracy"] == 1.0
    assert out == _probe_on(model)  # fixed-seed draws: the same number every time
    noisy = _probe_on(_LabelPosterior(0.5, logvar=0.0))  # means +-c / 2 under unit noise: partly readable
    assert out["probe_majority"] + 0.05 < noisy["probe_accuracy"] < 0.95 < noisy["probe_mean_accuracy"]


def test_metrics_are_registered_with_clear_errors():
    assert {"probe", "consistency"} <= set(EXTRA_METRICS.names())
    with pytest.raises(KeyError, match=r"valid choices: .*consistency.*probe"):
        EXTRA_METRICS.get("probes")
