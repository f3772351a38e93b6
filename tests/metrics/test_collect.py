"""Tests of per-example collection, gathering (EvalCollection.cat) and the set-level summary."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from vaelab.metrics import EvalCollection, active_units, collect, kl_per_dim, mutual_information, summarise
from vaelab.models import VAE, Decoder, Encoder

from .helpers import NUM_DIMS, PPCA


@dataclass
class LabelledBatch:
    """Shaped like vaelab.data's Batch: x, y, index."""

    x: Tensor
    y: Tensor | None
    index: Tensor


def _data(ppca: PPCA, n: int = 40, seed: int = 0) -> Tensor:
    return ppca.sample_x(n, torch.Generator().manual_seed(seed))


def _batches(x: Tensor, size: int, labels: bool = True) -> list[LabelledBatch]:
    idx = torch.arange(x.shape[0])
    return [
        LabelledBatch(x[s : s + size], (idx[s : s + size] % 3) if labels else None, idx[s : s + size])
        for s in range(0, x.shape[0], size)
    ]


def test_collect_tensors_exact_posterior(ppca: PPCA) -> None:
    ppca.set_exact_encoder()
    x = _data(ppca)
    col = collect(ppca.model, [x[:16], x[16:32], x[32:]], iw_samples=20, iw_chunk=7)
    assert len(col) == 40 and col.num_dims == NUM_DIMS and col.iw_samples == 20 and col.y is None
    exact = ppca.model.decoder.exact_log_marginal(x)
    torch.testing.assert_close(col.nll_iw, -exact, rtol=0, atol=1e-10)  # q = p(z|x): IW is exact
    q = ppca.model.encode(x)
    torch.testing.assert_close(col.mu, q.mu.detach(), rtol=0, atol=1e-12)
    torch.testing.assert_close(col.logvar, q.logvar.detach(), rtol=0, atol=1e-12)
    torch.testing.assert_close(col.rate, q.kl_to_standard_normal().detach(), rtol=0, atol=1e-12)
    torch.testing.assert_close(col.elbo, -(col.rate + col.distortion), rtol=0, atol=1e-12)
    assert col.elbo.device.type == "cpu" and col.elbo.shape == (40,)


def test_collect_batch_objects_labels_and_options(ppca: PPCA) -> None:
    x = _data(ppca, 30)
    col = collect(ppca.model, _batches(x, 8), keep_posteriors=False)
    torch.testing.assert_close(col.y, torch.arange(30) % 3)
    assert col.mu is None and col.logvar is None and col.nll_iw is None
    # Labels survive only if every batch has them.
    mixed = _batches(x, 8)
    mixed[1].y = None
    assert collect(ppca.model, mixed).y is None
    with pytest.raises(ValueError, match="no batches"):
        collect(ppca.model, [])


def test_collect_uses_eval_mode_and_restores_modes(ppca: PPCA) -> None:
    model = ppca.model
    model.train()
    model.decoder.eval()  # a mixed state must come back exactly
    seen: list[bool] = []
    handle = model.encoder.register_forward_pre_hook(lambda mod, args: seen.append(mod.training))
    try:
        collect(model, [_data(ppca, 4)], iw_samples=2)
    finally:
        handle.remove()
    assert seen == [False]
    assert model.training and model.encoder.training and not model.decoder.training


def test_collect_is_reproducible_with_a_generator(ppca: PPCA) -> None:
    ppca.perturb_encoder(torch.Generator().manual_seed(1))
    x = _data(ppca, 12)
    a = collect(ppca.model, [x], iw_samples=5, generator=torch.Generator().manual_seed(3))
    b = collect(ppca.model, [x], iw_samples=5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a.elbo, b.elbo) and torch.equal(a.nll_iw, b.nll_iw)


def test_cat_equals_single_pass(ppca: PPCA) -> None:
    """Gathering per-process collections (here: two halves) gives the collection of the whole set."""
    ppca.set_exact_encoder()
    x = _data(ppca, 24)
    whole = collect(ppca.model, _batches(x, 6), iw_samples=3)
    parts = [
        collect(ppca.model, _batches(x[:12], 6), iw_samples=3),
        collect(ppca.model, _batches(x[12:], 6), iw_samples=3),
    ]
    merged = EvalCollection.cat(parts)
    assert len(merged) == 24 and merged.num_dims == NUM_DIMS and merged.iw_samples == 3
    for name in ("rate", "mu", "logvar", "y", "nll_iw"):  # deterministic fields (IW is exact here)
        torch.testing.assert_close(getattr(merged, name), getattr(whole, name), rtol=0, atol=1e-10)
    with pytest.raises(ValueError, match="iw_samples"):
        EvalCollection.cat([parts[0], collect(ppca.model, [x[:3]], iw_samples=0)])
    with pytest.raises(ValueError):
        EvalCollection.cat([])


def test_summarise_known_answers(ppca: PPCA) -> None:
    ppca.set_exact_encoder()
    x = _data(ppca, 64)
    col = collect(ppca.model, [x[:32], x[32:]], iw_samples=4)
    s = summarise(col, generator=torch.Generator().manual_seed(0))
    exact_nll = float(-ppca.model.decoder.exact_log_marginal(x).mean())
    assert s["n"] == 64 and s["iw_samples"] == 4
    assert s["nll_iw"] == pytest.approx(exact_nll, abs=1e-9)
    assert s["bpd_source"] == "iw"
    assert s["bpd"] == pytest.approx(exact_nll / (NUM_DIMS * math.log(2)), abs=1e-9)
    assert s["elbo"] == pytest.approx(float(col.elbo.mean())) and s["nll_elbo"] == -s["elbo"]
    assert s["rate"] == pytest.approx(float(col.rate.mean())) and s["distortion"] == pytest.approx(
        float(col.distortion.mean())
    )
    assert s["elbo_se"] == pytest.approx(float(col.elbo.std() / 8))
    assert s["nll_iw"] <= -s["elbo"] + 4 * s["elbo_se"]
    # MI over the whole set, same draws as a direct call with the same generator.
    mi = mutual_information(col.mu, col.logvar, generator=torch.Generator().manual_seed(0))
    assert s["mi"] == mi.value and s["mi_pool"] == 64 and s["mi_se"] == mi.stderr
    assert 0.0 < s["mi"] <= math.log(64)
    assert s["marginal_kl"] == pytest.approx(s["rate"] - s["mi"])
    assert s["au"] == active_units(col.mu, 0.01)[0] and s["au_threshold"] == 0.01
    assert s["kl_per_dim"] == pytest.approx(kl_per_dim(col.mu, col.logvar).tolist())
    assert sum(s["kl_per_dim"]) == pytest.approx(s["rate"])
    # He et al.'s minibatch pool.
    s8 = summarise(col, mi_pool=8, au_threshold=1e9)
    assert s8["mi_pool"] == 8 and s8["mi"] <= math.log(8) and s8["au"] == 0 and s8["au_threshold"] == 1e9
    with pytest.raises(ValueError, match="mi_pool"):
        summarise(col, mi_pool="batch")


def test_summarise_without_iw_or_posteriors(ppca: PPCA) -> None:
    x = _data(ppca, 10)
    s = summarise(collect(ppca.model, [x], keep_posteriors=False))
    assert s["bpd_source"] == "elbo"
    assert s["bpd"] == pytest.approx(-s["elbo"] / (NUM_DIMS * math.log(2)))
    assert not {"nll_iw", "iw_samples", "mi", "mi_pool", "au", "kl_per_dim", "ppl_elbo"} & set(s)


# A structured (non-tensor) batch: the metrics must only go through the model, never index x.


@dataclass
class TokenLikeBatch:
    data: Tensor
    num_tokens: int

    @property
    def batch_size(self) -> int:
        return self.data.shape[0]

    def to(self, device: Any) -> TokenLikeBatch:
        return TokenLikeBatch(self.data.to(device), self.num_tokens)


class _UnwrapEncoder(Encoder):
    def __init__(self, inner: Encoder) -> None:
        super().__init__()
        self.inner, self.latent_dim = inner, inner.latent_dim

    def forward(self, x: TokenLikeBatch) -> tuple[Tensor, Tensor]:
        return self.inner(x.data)


class _UnwrapDecoder(Decoder):
    def __init__(self, inner: Decoder) -> None:
        super().__init__()
        self.inner, self.latent_dim = inner, inner.latent_dim

    def log_prob(self, x: TokenLikeBatch, z: Tensor) -> Tensor:
        return self.inner.log_prob(x.data, z)

    def sample(self, z: Tensor, mean: bool = False) -> Any:
        return self.inner.sample(z, mean)


def test_structured_batches_and_perplexity(ppca: PPCA) -> None:
    ppca.set_exact_encoder()
    model = VAE(_UnwrapEncoder(ppca.model.encoder), _UnwrapDecoder(ppca.model.decoder))
    assert isinstance(model.encoder, nn.Module)
    x = _data(ppca, 20)
    batches = [LabelledBatch(TokenLikeBatch(x[:12], 50), None, torch.arange(12)), TokenLikeBatch(x[12:], 30)]
    col = collect(model, batches, iw_samples=6)
    assert col.num_dims is None and col.num_tokens == 80 and len(col) == 20
    s = summarise(col)
    total_nll = float(-ppca.model.decoder.exact_log_marginal(x).sum())
    assert s["ppl_iw"] == pytest.approx(math.exp(total_nll / 80), rel=1e-9)
    assert s["ppl_elbo"] == pytest.approx(math.exp(float(-col.elbo.sum()) / 80), rel=1e-9)
    assert "bpd" not in s and "bpd_source" not in s
    # A data-parallel rank can get an empty batch: its collection has 0 examples and 0 tokens, and merges.
    empty = collect(model, [TokenLikeBatch(x[:0], 0)], iw_samples=6)
    assert len(empty) == 0 and empty.num_tokens == 0
    merged = EvalCollection.cat([col, empty])
    assert len(merged) == 20 and merged.num_tokens == 80
    assert summarise(merged)["ppl_iw"] == pytest.approx(s["ppl_iw"], rel=1e-12)
