"""Evaluation in two steps: :func:`collect` per-example quantities, then :func:`summarise` them.

The split exists for data-parallel evaluation: each process collects over its shard, the trainer gathers the
:class:`EvalCollection` objects (``EvalCollection.cat``), and only then are the set-level metrics computed.
Mutual information (pooled over the whole set), active units (a variance over the set) and the per-dimension
rate are *not* averages of per-process values, so they must never be computed per shard and then averaged.

All values are nats per example (summed over data and latent dimensions) unless a key says otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from vaelab.metrics.information import MIEstimate, mutual_information, mutual_information_minibatches
from vaelab.metrics.likelihood import (
    DEFAULT_IW_CHUNK,
    bits_per_dim,
    elbo_terms_from_posterior,
    iw_log_likelihood_from_posterior,
    perplexity,
)
from vaelab.metrics.units import active_units, kl_per_dim
from vaelab.models.base import VAE
from vaelab.rules import Either, Int, check

MI_POOL = Either(words=("all",), rule=Int(2))
"""The rule of ``eval.mi_pool``: ``all`` or a pool of B >= 2 rows (a pool of 1 has MI 0 by construction)."""


@dataclass
class EvalCollection:
    """Per-example evaluation results on the CPU, N examples, in the order the batches came.

    - ``elbo``, ``rate``, ``distortion``: (N,) nats; ``distortion`` is a mean over ``elbo_samples`` draws.
    - ``nll_iw``: (N,) IW negative log-likelihood with ``iw_samples`` samples (Burda et al., ICLR 2016), or
      None.
    - ``mu``, ``logvar``: (N, D) posterior parameters (None with ``keep_posteriors=False``).
    - ``y``: (N, ...) labels when every batch carried a non-None ``.y``, else None.
    - ``num_dims``: data dimensions per example (product of the non-batch dims of an image tensor ``x``), or
      None for structured batches.
    - ``num_tokens``: total predicted tokens when every structured ``x`` exposes ``num_tokens`` (text), or
      None.
    """

    elbo: Tensor
    rate: Tensor
    distortion: Tensor
    nll_iw: Tensor | None = None
    mu: Tensor | None = None
    logvar: Tensor | None = None
    y: Tensor | None = None
    num_dims: int | None = None
    num_tokens: int | None = None
    iw_samples: int = 0
    elbo_samples: int = 1

    def __len__(self) -> int:
        return int(self.elbo.shape[0])

    @classmethod
    def cat(cls, collections: Sequence[EvalCollection]) -> EvalCollection:
        """Concatenate collections (e.g. gathered from data-parallel processes, in rank order) into one.

        Optional fields survive only if every part has them; ``num_tokens`` is summed. Collections made with
        different ``iw_samples``, ``elbo_samples`` or ``num_dims`` cannot be merged (ValueError).
        """
        parts = list(collections)
        if not parts:
            raise ValueError("EvalCollection.cat needs at least one collection")
        first = parts[0]
        for name in ("iw_samples", "elbo_samples", "num_dims"):
            values = {getattr(c, name) for c in parts}
            if len(values) > 1:
                raise ValueError(f"cannot merge evaluation collections with different {name}: {sorted(values)}")

        def cat_field(name: str) -> Tensor | None:
            values = [getattr(c, name) for c in parts]
            return None if any(v is None for v in values) else torch.cat(values)

        tokens = [c.num_tokens for c in parts]
        return cls(
            elbo=torch.cat([c.elbo for c in parts]),
            rate=torch.cat([c.rate for c in parts]),
            distortion=torch.cat([c.distortion for c in parts]),
            nll_iw=cat_field("nll_iw"),
            mu=cat_field("mu"),
            logvar=cat_field("logvar"),
            y=cat_field("y"),
            num_dims=first.num_dims,
            num_tokens=None if any(t is None for t in tokens) else sum(tokens),  # type: ignore[arg-type]
            iw_samples=first.iw_samples,
            elbo_samples=first.elbo_samples,
        )

    merge = cat


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode (dropout off, batch-norm statistics frozen) and restore every submodule's
    previous ``training`` flag afterwards, even if some were already in a different mode."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, flag in flags:
            m.training = flag


def _split_batch(batch: Any) -> tuple[Any, Any]:
    """(x, y) from a tensor x or an object with ``.x`` (and maybe ``.y``), such as vaelab.data's Batch."""
    if isinstance(batch, Tensor) or not hasattr(batch, "x"):
        return batch, None
    return batch.x, getattr(batch, "y", None)


def _model_device(model: nn.Module) -> torch.device:
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return torch.device("cpu")


@torch.no_grad()
def collect(
    model: VAE,
    batches: Iterable[Any],
    *,
    iw_samples: int = 0,
    iw_chunk: int | str = DEFAULT_IW_CHUNK,
    elbo_samples: int = 1,
    keep_posteriors: bool = True,
    generator: torch.Generator | None = None,
) -> EvalCollection:
    """Score every example of ``batches`` and return the per-example results (an :class:`EvalCollection`).

    ``batches`` yields image tensors ``x`` or objects with ``.x`` (and optionally ``.y``), e.g. the ``Batch``
    of :mod:`vaelab.data`. ``x`` is moved to the model's device when it has a ``.to`` method. Each batch is
    encoded once; the ELBO terms use ``elbo_samples`` draws per example (:func:`elbo_terms`), and with
    ``iw_samples`` > 0 the IW-NLL uses that many importance samples drawn ``iw_chunk`` at a time
    (:func:`iw_log_likelihood`; ``"auto"``: as many as a memory budget allows,
    :func:`~vaelab.metrics.likelihood.resolve_iw_chunk`). ``generator`` (on the model's device) makes the draws
    reproducible.

    The model is in eval mode during collection and every submodule's mode is restored afterwards.
    """
    if iw_samples < 0:
        raise ValueError(f"iw_samples must be >= 0, got {iw_samples}")
    device = _model_device(model)
    fields: dict[str, list[Tensor]] = {k: [] for k in ("elbo", "rate", "distortion", "nll_iw", "mu", "logvar")}
    ys: list[Tensor] = []
    all_y = True
    num_dims: int | None = None
    tokens: int | None = 0
    with eval_mode(model):
        for batch in batches:
            x, y = _split_batch(batch)
            if hasattr(x, "to"):
                x = x.to(device)
            if isinstance(x, Tensor):
                dims = math.prod(x.shape[1:])
                if num_dims is not None and dims != num_dims:
                    raise ValueError(f"examples have {dims} data dims in one batch and {num_dims} in another")
                num_dims = dims
            n_tok = getattr(x, "num_tokens", None)
            tokens = None if tokens is None or n_tok is None else tokens + int(n_tok)
            q = model.encode(x)
            terms = elbo_terms_from_posterior(model, x, q, elbo_samples, generator)
            for k, v in terms.items():
                fields[k].append(v.cpu())
            if iw_samples > 0:
                nll = -iw_log_likelihood_from_posterior(model, x, q, iw_samples, iw_chunk, generator)
                fields["nll_iw"].append(nll.cpu())
            if keep_posteriors:
                fields["mu"].append(q.mu.cpu())
                fields["logvar"].append(q.logvar.cpu())
            if y is None:
                all_y = False
            elif all_y:
                ys.append(torch.as_tensor(y).cpu())
    if not fields["elbo"]:
        raise ValueError("collect got no batches")

    def cat(name: str) -> Tensor | None:
        return torch.cat(fields[name]) if fields[name] else None

    return EvalCollection(
        elbo=torch.cat(fields["elbo"]),
        rate=torch.cat(fields["rate"]),
        distortion=torch.cat(fields["distortion"]),
        nll_iw=cat("nll_iw"),
        mu=cat("mu"),
        logvar=cat("logvar"),
        y=torch.cat(ys) if all_y and ys else None,
        num_dims=num_dims,
        num_tokens=tokens,
        iw_samples=iw_samples,
        elbo_samples=elbo_samples,
    )


def _mean_and_se(t: Tensor) -> tuple[float, float]:
    t = t.double()
    se = float(t.std() / math.sqrt(t.numel())) if t.numel() > 1 else float("nan")
    return float(t.mean()), se


def pooled_mutual_information(
    mu: Tensor, logvar: Tensor, mi_pool: str | int = "all", *, generator: torch.Generator | None = None
) -> MIEstimate:
    """I_q(x; z) in nats of the posteriors (P, D) under a pool setting: ``"all"`` pools over all P rows (cap
    ln P); an int B pools within consecutive minibatches of B rows (He et al., ICLR 2019; cap ln B)."""
    check("mi_pool", mi_pool, MI_POOL)  # 'all' or >= 2: a pool of 1 has MI 0 by construction
    if mi_pool == "all":
        return mutual_information(mu, logvar, generator=generator)
    return mutual_information_minibatches(mu, logvar, int(mi_pool), generator=generator)


def summarise(
    col: EvalCollection,
    *,
    mi_pool: str | int = "all",
    au_threshold: float = 0.01,
    generator: torch.Generator | None = None,
) -> dict[str, Any]:
    """Set-level metrics from a (gathered) :class:`EvalCollection`, as a flat JSON-ready dict.

    Keys (nats per example unless stated; ``*_se`` are standard errors over examples):

    - ``n``; ``elbo``, ``elbo_se``, ``rate``, ``distortion``, ``elbo_samples``, ``nll_elbo`` (= -elbo);
    - with IW: ``nll_iw``, ``nll_iw_se``, ``iw_samples`` (Burda et al., ICLR 2016);
    - image data: ``bpd`` (bits per data dimension of the best NLL available) and ``bpd_source`` ("iw" if the
      IW-NLL is present, else "elbo");
    - text data (``num_tokens`` known): ``ppl_elbo`` and, with IW, ``ppl_iw`` (per-token perplexities);
    - with posteriors: ``mi`` and ``mi_se`` (nats; Hoffman & Johnson 2016, estimator of He et al. 2019) with
      ``mi_pool``, the pool size actually used; ``marginal_kl`` = rate - mi = KL(q(z) || p(z)) (Bozkurt et
      al., AISTATS 2021; it inherits MI's pool); ``au`` active units at ``au_threshold`` (Burda et al. 2016);
      ``activity_per_dim`` (list of D: Var_x E_q[z_d|x], the statistic AU thresholds); ``kl_per_dim`` (list of D
      floats, nats).

    ``mi_pool``: "all" pools over the whole collection (cap ln N); an int B pools within consecutive
    minibatches of B examples (He et al.'s convention, cap ln B). ``generator`` draws MI's z_i ~ q(z|x_i).
    """
    n = len(col)
    elbo, elbo_se = _mean_and_se(col.elbo)
    out: dict[str, Any] = {
        "n": n,
        "elbo": elbo,
        "elbo_se": elbo_se,
        "rate": float(col.rate.double().mean()),
        "distortion": float(col.distortion.double().mean()),
        "elbo_samples": col.elbo_samples,
        "nll_elbo": -elbo,
    }
    if col.nll_iw is not None:
        out["nll_iw"], out["nll_iw_se"] = _mean_and_se(col.nll_iw)
        out["iw_samples"] = col.iw_samples
    best_nll, source = (out["nll_iw"], "iw") if col.nll_iw is not None else (-elbo, "elbo")
    if col.num_dims is not None:
        out["bpd"] = float(bits_per_dim(best_nll, col.num_dims))
        out["bpd_source"] = source
    if col.num_tokens:  # known and > 0 (an all-empty shard has no perplexity)
        out["ppl_elbo"] = perplexity(-col.elbo.double().sum(), col.num_tokens)
        if col.nll_iw is not None:
            out["ppl_iw"] = perplexity(col.nll_iw.double().sum(), col.num_tokens)
    if col.mu is not None and col.logvar is not None:
        mi = pooled_mutual_information(col.mu, col.logvar, mi_pool, generator=generator)
        out["mi"], out["mi_se"], out["mi_pool"] = mi.value, mi.stderr, mi.pool
        out["marginal_kl"] = out["rate"] - mi.value
        if n >= 2:
            out["au"], activity = active_units(col.mu, au_threshold)
            out["au_threshold"] = au_threshold
            out["activity_per_dim"] = [float(v) for v in activity]
        out["kl_per_dim"] = [float(v) for v in kl_per_dim(col.mu.double(), col.logvar.double())]
    return out
