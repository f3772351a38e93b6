"""The seeded evaluator of a run (:class:`Evaluator`), and ``vaelab evaluate DIR`` (:func:`evaluate_run`).

The evaluator measures a :class:`~vaelab.run.Run`'s model on a split: ELBO, rate, distortion, MI with its pool,
AU, KL per unit, IW-NLL with K samples, and the extra metrics of ``eval.extra_metrics``. The trainer uses it for
each epoch's validation and the final evaluation; every command that reads a run folder uses it on a loaded run
(:func:`vaelab.run.load_run`), so a number means the same wherever it is computed.

Determinism: each batch is scored under the global RNG seeded by (seed, 29, offset, batch), the MI pool and the
extra metrics by their own streams (:mod:`vaelab.seeds`), all inside a forked RNG. The numbers depend only on the
model, the split and the seed offset: not on the number of processes, nor on what ran before, and evaluation
never disturbs a training run's RNG. Each caller has its own offset, so two evaluations never share draws.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from vaelab.checks import EVALUATE_KEYS, check_metrics_have_labels, check_override_keys
from vaelab.data import DataError
from vaelab.distributed import all_gather_objects
from vaelab.errors import ConfigError
from vaelab.metrics import collect, summarise
from vaelab.metrics.collect import EvalCollection, eval_mode, pooled_mutual_information
from vaelab.metrics.extras import MetricContext, run_extra_metrics
from vaelab.metrics.units import active_units
from vaelab.models import batch_size
from vaelab.models.posterior_heads import BatchNormHead, refresh_batch_norm
from vaelab.run import Checkpoint, Run, load_run
from vaelab.runconfig import expand_overrides
from vaelab.runfolder import DEFERRED, checkpoint_record
from vaelab.seeds import mix_seed

BN_REFRESH_BATCHES = 100
"""Training batches over which BN-VAE's evaluation statistics are recomputed before each evaluation."""

FINAL_OFFSET = 10**6
"""Seed offset of the trainer's final evaluation (summary.json); each epoch's validation uses offset epoch + 1."""
EVALUATE_OFFSET = 2 * 10**6
"""Seed offset of ``vaelab evaluate`` (eval.json); the sweep's measurement uses 3 * 10**6
(:data:`vaelab.sweep.measure.SEED_OFFSET`)."""
DIAGNOSE_OFFSET = 4 * 10**6
"""Seed offset of ``vaelab diagnose``'s evaluation (diagnosis_eval.json)."""


class Evaluator:
    """Measures ``run``'s model (see the module's docstring). It reads ``run.config.eval`` at each call, so a
    caller may change the evaluation settings of a loaded run (e.g. add an extra metric) before evaluating."""

    def __init__(self, run: Run) -> None:
        self.run = run

    def evaluate(
        self, split: str, *, iw_samples: int = 0, seed_offset: int = 0, extras: bool = False
    ) -> dict[str, Any]:
        """Metrics on a split (global across processes): ELBO, rate, distortion, MI (+pool), AU, KL per dim,
        and IW-NLL when ``iw_samples`` > 0; the extra metrics of ``eval.extra_metrics`` with ``extras``.

        Processes share the work by whole batches (batch b on rank b mod world_size), each batch scored under an
        RNG seeded by (seed, offset, b); the results are gathered back into split order. So the numbers do not
        depend on the number of processes, and evaluation never disturbs the training RNG.
        """
        run = self.run
        cfg, dist = run.config, run.dist
        ev = cfg.eval
        if len(run.dataset.split(split)) == 0:
            raise DataError(f"data set {cfg.data.name}: the {split} split is empty; there is nothing to evaluate")
        self.refresh_batch_norm()
        loader = run.eval_loader(split)
        mine = [b for b in range(len(loader)) if b % dist.world_size == dist.rank]
        local: list[tuple[int, EvalCollection]] = []
        progress = self._progress(split, iw_samples) if iw_samples > 0 and dist.is_main else None
        try:
            with torch.random.fork_rng(devices=[]):
                for b, batch in enumerate(loader.epoch(0)):
                    if b not in mine:
                        continue
                    torch.manual_seed(mix_seed(cfg.seed, 29, seed_offset, b))
                    batch.x = batch.x.to(run.device)
                    with run.precision.autocast():  # train.precision; the metrics themselves stay float32
                        local.append((b, collect(run.model, [batch], iw_samples=iw_samples, iw_chunk=ev.iw_chunk)))
                    if progress is not None:  # the other processes score batches of about the same size meanwhile
                        progress.update(batch_size(batch.x) * dist.world_size)
        finally:
            if progress is not None:
                progress.close()
        parts = sorted((p for rank_parts in all_gather_objects(local, dist) for p in rank_parts), key=lambda p: p[0])
        col = EvalCollection.cat([c for _, c in parts])
        gen = torch.Generator().manual_seed(mix_seed(cfg.seed, 31, seed_offset))
        result = summarise(col, mi_pool=ev.mi_pool, au_threshold=ev.au_threshold, generator=gen)
        if extras and ev.extra_metrics:
            result.update(self._extra_metrics(split, col, result, seed_offset))
        return result

    def final_summary(self, stop_reason: str, facts: dict[str, Any], *, evaluate: bool = True) -> dict[str, Any]:
        """summary.json of a finished training run, written by the main process: its status, ``stop_reason`` and
        the training ``facts`` (best epoch, epochs, steps, training time), with (``evaluate``) the best model's
        metrics on ``eval.final_split`` (IW-NLL with ``eval.iw_samples``, the extra metrics, seed offset
        :data:`FINAL_OFFSET`) or, without, ``"final_evaluation": "deferred"`` (a study point, whose measurement
        completes summary.json: :func:`vaelab.sweep.measure.complete_deferred_summary`)."""
        run = self.run
        cfg, dist, folder = run.config, run.dist, run.folder
        if not evaluate:
            summary = {"status": "completed", "stop_reason": stop_reason, "final_evaluation": DEFERRED, **facts}
            summary["world_size"] = dist.world_size
        else:
            if folder is not None and folder.best.exists():
                run.load_weights(folder.best)
            split, t0 = cfg.eval.final_split, time.perf_counter()
            final = self.evaluate(split, iw_samples=cfg.eval.iw_samples, seed_offset=FINAL_OFFSET, extras=True)
            summary = {"status": "completed", "stop_reason": stop_reason, "split": split, **final, **facts}
            summary.update(eval_time=time.perf_counter() - t0, world_size=dist.world_size)
        if dist.is_main and folder is not None:
            folder.write_json("summary.json", summary)
        return summary

    def encoder_statistics(self, split: str, step: int) -> dict[str, float]:
        """Encoder-only measurement of ``split`` (for a strategy between training steps): MI (nats, pool
        ``eval.mi_pool``) and AU (``eval.au_threshold``), under a forked RNG seeded by (seed, step). Computed by
        the calling process alone (the trainer calls it on the main process and broadcasts the numbers)."""
        run = self.run
        ev = run.config.eval
        self.refresh_batch_norm()
        mus: list[Tensor] = []
        logvars: list[Tensor] = []
        with torch.random.fork_rng(devices=[]), torch.no_grad(), eval_mode(run.model), run.precision.autocast():
            torch.manual_seed(mix_seed(run.config.seed, 43, step))
            for batch in run.eval_loader(split).epoch(0):
                q = run.model.encode(batch.x.to(run.device))
                mus.append(q.mu.cpu())
                logvars.append(q.logvar.cpu())
        mu, logvar = torch.cat(mus), torch.cat(logvars)
        gen = torch.Generator().manual_seed(mix_seed(run.config.seed, 47, step))
        mi = pooled_mutual_information(mu, logvar, ev.mi_pool, generator=gen)
        au = active_units(mu, ev.au_threshold)[0] if len(mu) >= 2 else 0
        return {"mi": mi.value, "mi_pool": float(mi.pool), "au": float(au)}

    def refresh_batch_norm(self) -> None:
        """BN-VAE heads: evaluation statistics for the current encoder from the first ``BN_REFRESH_BATCHES``
        training batches of a fixed order (every process the same batches, whole global batches), so evaluation
        sees the posterior the model trains on (see :func:`~vaelab.models.posterior_heads.refresh_batch_norm`)."""
        run = self.run
        if not any(isinstance(m, BatchNormHead) for m in run.model.modules()):
            return
        cfg = run.config
        loader = run.dataset.loader("train", cfg.train.batch_size, seed=mix_seed(cfg.seed, 59), shuffle=True)
        batches = (b.x.to(run.device) for b in itertools.islice(loader.epoch(0), BN_REFRESH_BATCHES))
        refresh_batch_norm(run.model, batches)

    def _progress(self, split: str, iw_samples: int) -> Any:
        """Progress of an IW-NLL evaluation of ``split`` (minutes on a CPU for K = 100 and more): a bar on a
        terminal, else a line with the time left at most every 30 s (in a sweep point: its log.txt, shown by the
        sweep prefixed by the point's name)."""
        from vaelab.progress import EvalProgress

        dataset = self.run.dataset
        return EvalProgress(len(dataset.split(split)), label=f"IW-NLL K={iw_samples} on {split}", unit=dataset.unit)

    def _extra_metrics(self, split: str, col: EvalCollection, base: dict[str, Any], seed_offset: int) -> dict[str, Any]:
        run = self.run
        cfg = run.config

        def batches(name: str) -> Iterator[Any]:
            for batch in run.eval_loader(name).epoch(0):
                batch.x = batch.x.to(run.device)
                yield batch

        ctx = MetricContext(
            model=run.model,
            dataset=run.dataset,
            split=split,
            collection=col,
            config=cfg,
            device=run.device,
            generator=torch.Generator().manual_seed(mix_seed(cfg.seed, 37, seed_offset)),
            batches=batches,
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(mix_seed(cfg.seed, 41, seed_offset))
            with eval_mode(run.model):
                return run_extra_metrics(cfg.eval.extra_metrics, ctx, base)


# ------------------------------------------------------------------------------------------------------------
# vaelab evaluate DIR


def check_evaluate_overrides(overrides: list[str], split: str, iw_samples: int | None, *, api: bool = False) -> None:
    """What ``vaelab evaluate`` (and :meth:`vaelab.Run.evaluate`, ``api=True``: named as its arguments) accepts of
    ``overrides``, before any work: the keys of :data:`~vaelab.checks.EVALUATE_KEYS`, and none that evaluate would
    ignore (``eval.final_split``: the split is its argument; ``eval.extras_every_epoch``: it has no epochs;
    ``data.eval_size`` on the training split) or that contradicts its arguments (``eval.iw_samples`` with K)."""
    command, split_arg, iw_arg = (
        ("Run.evaluate", "split=", "iw_samples=") if api else ("vaelab evaluate", "--split", "--iw-samples")
    )
    check_override_keys(overrides, EVALUATE_KEYS, command)
    given = {o.partition("=")[0].strip() for o in expand_overrides(overrides)}
    if "eval.final_split" in given:
        raise ConfigError(
            f"{command} measures the split given by {split_arg} (default test), not eval.final_split (the split of a "
            f"run's final evaluation); use {split_arg}"
        )
    if "eval.extras_every_epoch" in given:
        raise ConfigError(
            f"{command} does not read eval.extras_every_epoch (extra metrics at every training epoch): it measures "
            "eval.extra_metrics once; remove the override"
        )
    if "data.eval_size" in given and split == "train":
        train, other = ("split='train'", "split='valid' or 'test'") if api else ("--split train", "--split valid/test")
        raise ConfigError(
            f"data.eval_size subsets the valid and test splits, not {train}, which is measured whole; remove the "
            f"override or measure {other}"
        )
    if "eval.iw_samples" in given and iw_samples is not None:
        raise ConfigError(f"{iw_arg} and the override eval.iw_samples both set K of the IW-NLL; give one of them")


def evaluate_run(
    run_dir: str | Path,
    *,
    split: str = "test",
    iw_samples: int | None = None,
    checkpoint: Checkpoint = "best",
    overrides: list[str] | None = None,
) -> dict[str, Any]:
    """Load the run's config and checkpoint, compute the split's metrics (IW-NLL with K samples, ELBO, rate,
    distortion, MI with its pool, AU, KL per dimension), write DIR/eval.json and return the metrics. ``overrides``
    (``key=value``; e.g. ``data.eval_size=1000``, ``eval.mi_pool=all``) change the evaluation, not the model; they
    are recorded in eval.json."""
    run = load_run(run_dir, checkpoint, overrides=overrides or ())
    if any(o.partition("=")[0].strip() == "eval.extra_metrics" for o in overrides or ()):
        cfg = run.config
        check_metrics_have_labels(cfg.eval.extra_metrics, run.dataset.num_classes, "eval.extra_metrics", cfg.data.name)
    return evaluate_loaded(
        run,
        split=split,
        iw_samples=iw_samples,
        checkpoint=checkpoint,
        overrides=overrides,
    )


def evaluate_loaded(
    run: Run,
    *,
    split: str = "test",
    iw_samples: int | None = None,
    checkpoint: Checkpoint = "best",
    overrides: list[str] | None = None,
) -> dict[str, Any]:
    """:func:`evaluate_run` on a loaded run (``checkpoint`` and ``overrides`` name how it was loaded, for
    eval.json): the metrics with seed offset :data:`EVALUATE_OFFSET`, written to the run folder's eval.json."""
    k = run.config.eval.iw_samples if iw_samples is None else iw_samples
    result = {
        "split": split,
        "checkpoint": checkpoint,
        **checkpoint_record(run.checkpoint),  # readers tell a stale eval.json by it (stale_evaluation)
        **({"overrides": list(overrides)} if overrides else {}),
        **Evaluator(run).evaluate(split, iw_samples=k, seed_offset=EVALUATE_OFFSET, extras=True),
    }
    if run.folder is not None:
        run.folder.write_json("eval.json", result)
    return result


__all__ = [
    "BN_REFRESH_BATCHES",
    "DIAGNOSE_OFFSET",
    "EVALUATE_OFFSET",
    "FINAL_OFFSET",
    "Evaluator",
    "evaluate_loaded",
    "evaluate_run",
]
