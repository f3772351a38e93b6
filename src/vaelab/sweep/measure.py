"""Per-point measurements on train and test (Bozkurt et al. 2021, *Rate-Regularization and Generalization in
Variational Autoencoders*, AISTATS): rate R, distortion D, ELBO, IW-NLL with K samples, MI pooled over the whole
measured split (pool size recorded, cap ln N, and ln N - MI, the distance from that cap), rate - MI =
KL(q(z) || p(z)), active units; the generalisation gaps test - train of the IW-NLL, D, R, ELBO, MI and rate - MI;
and why and when training stopped (:mod:`vaelab.sweep.stopping`). All in nats per example.

Each split is written to ``eval_<split>.json`` in the point's run folder (never ``eval.json``, which
``vaelab evaluate`` owns); ``measurements.json`` holds the flat ``<split>_<metric>`` record plus the gaps and is
written last, so its presence means the point is complete. When the trainer left its final evaluation to the
measurement (a study point), the measured final split also completes summary.json.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from vaelab.config import load_saved_config
from vaelab.data import Dataset, load_dataset
from vaelab.data.base import fixed_permutation
from vaelab.runfolder import DEFERRED, RunFolder, read_json_or_none
from vaelab.sweep.spec import MeasureSpec
from vaelab.sweep.stopping import training_record

MEASUREMENTS_FILE = "measurements.json"
SCALARS = (
    "nll_iw",
    "nll_iw_se",
    "elbo",
    "rate",
    "distortion",
    "mi",
    "mi_se",
    "mi_pool",
    "marginal_kl",
    "au",
    "n",
    "bpd",
)
"""Metrics copied from each split's evaluation into the flat record, with every other numeric scalar of it (those
of the extra metrics too: ``probe_accuracy``, ``cu_0.03``, ``hole_kl``, ...). Lists such as ``kl_per_dim`` stay in
the ``eval_<split>.json`` files."""
GAPS = (
    ("nll_iw", "gap_nll"),
    ("distortion", "gap_distortion"),
    ("rate", "gap_rate"),
    ("elbo", "gap_elbo"),
    ("mi", "gap_mi"),
    ("marginal_kl", "gap_marginal_kl"),
)
"""(metric, column): generalisation gaps = test value - train value. For the ELBO the gap is negative when the
test bound is worse. The MI gaps compare like with like only when both splits have the same pool size (the
default ``train_subset: test``)."""

SEED_OFFSET = 3 * 10**6
"""Evaluation RNG offset of sweep measurements (the trainer uses 10**6 for summary.json, ``vaelab evaluate``
2 * 10**6), so the three never share draws."""


def train_subset_size(measure: MeasureSpec, dataset: Dataset) -> int | None:
    """Number of training examples measured (None = all): ``test`` means the size of the test split."""
    n_train = len(dataset.split("train"))
    if measure.train_subset == "all":
        return None
    n = len(dataset.split("test")) if measure.train_subset == "test" else int(measure.train_subset)
    return None if n >= n_train else n


def with_train_subset(dataset: Dataset, n: int | None, split_seed: int) -> Dataset:
    """``dataset`` whose training split is the first ``n`` of a fixed permutation (sorted), or unchanged."""
    if n is None:
        return dataset
    train = dataset.split("train")
    keep = np.sort(fixed_permutation(len(train), split_seed, "sweep/train_measure")[:n])
    return dataset.with_split("train", train.subset(keep))


def measure_run(run_dir: str | Path, measure: MeasureSpec, *, dataset: Dataset | None = None) -> dict[str, Any]:
    """Measure a trained run folder on ``measure.splits``; write ``eval_<split>.json`` and ``measurements.json``.

    ``dataset``: the run's data set if already loaded (else loaded from the run's config). Returns the flat
    record of ``measurements.json``.
    """
    from vaelab.evaluation import Evaluator
    from vaelab.run import build_run

    folder = RunFolder(run_dir)
    cfg = load_saved_config(folder.config)
    cfg.train.progress = False
    cfg.eval.mi_pool = measure.mi_pool
    if measure.iw_chunk is not None:
        cfg.eval.iw_chunk = measure.iw_chunk
    if measure.extra_metrics is not None:
        cfg.eval.extra_metrics = list(measure.extra_metrics)
    ckpt = folder.best if measure.checkpoint == "best" else folder.last
    if not ckpt.is_file():
        ckpt = folder.last  # a run that never validated better than its start has no best.pt
    if not ckpt.is_file():
        raise FileNotFoundError(
            f"{folder.root}: no checkpoint to measure (expected {ckpt}): the point's checkpoints were moved or "
            "deleted, so it cannot be measured again (--retry-failed would fail the same way); put them back, or "
            "delete the point folder and run the sweep again to train it anew"
        )
    dataset = dataset if dataset is not None else load_dataset(cfg.data)
    n_sub = train_subset_size(measure, dataset)
    eval_ds = with_train_subset(dataset, n_sub, cfg.data.split_seed)
    run = build_run(cfg, folder.root, dataset=eval_ds)
    run.load_weights(ckpt)
    evaluator = Evaluator(run)

    record: dict[str, Any] = {"iw_samples": measure.iw_samples, "checkpoint": ckpt.stem}
    measured: dict[str, dict[str, Any]] = {}
    for j, split in enumerate(measure.splits):
        t0 = time.perf_counter()
        result = evaluator.evaluate(
            split, iw_samples=measure.iw_samples, seed_offset=SEED_OFFSET + j, extras=bool(cfg.eval.extra_metrics)
        )
        rule = "whole split"
        if split == "train" and n_sub is not None:
            rule = (
                f"first {n_sub} of a fixed permutation of the {len(dataset.split('train'))} training examples "
                f"(split_seed={cfg.data.split_seed}); measure.train_subset={measure.train_subset}"
            )
        seconds = time.perf_counter() - t0
        measured[split] = {"split": split, "checkpoint": ckpt.stem, "examples": rule, "seconds": seconds, **result}
        folder.write_json(f"eval_{split}.json", measured[split])
        for key, value in result.items():
            if key in SCALARS or (isinstance(value, int | float) and not isinstance(value, bool)):
                record[f"{split}_{key}"] = value
        record[f"{split}_ln_n"] = math.log(len(eval_ds.split(split))) if len(eval_ds.split(split)) else None
        record[f"{split}_ln_n_minus_mi"] = ln_n_minus_mi(result)
        record[f"{split}_seconds"] = seconds
    record.update(generalisation_gaps(record))
    record.update(training_record(folder.root))  # why and when training stopped, and which model was measured
    complete_deferred_summary(folder, cfg.eval.final_split, measured)
    folder.write_json(MEASUREMENTS_FILE, record)
    return record


def complete_deferred_summary(folder: RunFolder, final_split: str, measured: dict[str, dict[str, Any]]) -> None:
    """Fill in a summary.json whose trainer left the final evaluation to this measurement (a study point:
    ``"final_evaluation": "deferred"``, see :attr:`vaelab.training.trainer.Trainer.final_evaluation`).

    It gets the measured metrics of ``final_split`` (else of the last measured split), with their ``iw_samples``,
    ``eval_time`` and ``"final_evaluation": "eval_<split>.json"``: the run folder then holds one evaluation, and
    summary.json says which. Summaries of runs that evaluated themselves are left alone.
    """
    summary = read_json_or_none(folder.summary)
    if not summary or summary.get("final_evaluation") != DEFERRED or not measured:
        return
    split = final_split if final_split in measured else list(measured)[-1]
    metrics = {k: v for k, v in measured[split].items() if k not in ("split", "examples", "seconds", "checkpoint")}
    training = {k: v for k, v in summary.items() if k not in ("status", "stop_reason", "final_evaluation")}
    folder.write_json(
        "summary.json",
        {
            "status": summary["status"],
            "stop_reason": summary.get("stop_reason"),
            "split": split,
            **metrics,
            **training,
            "eval_time": measured[split]["seconds"],
            "checkpoint": measured[split]["checkpoint"],
            "final_evaluation": f"eval_{split}.json",
        },
    )


def ln_n_minus_mi(result: dict[str, Any]) -> float | None:
    """ln N - MI, with N the MI's pool size (``mi_pool``): how far the pooled MI estimate is below its cap ln N
    (0 = saturated; the estimate cannot exceed ln N). None without an MI or a pool."""
    mi, pool = result.get("mi"), result.get("mi_pool")
    if not isinstance(mi, int | float) or not isinstance(pool, int | float) or pool < 1:
        return None
    return math.log(pool) - float(mi)


def generalisation_gaps(record: dict[str, Any]) -> dict[str, float]:
    """Test minus train of the IW-NLL, distortion, rate and ELBO, for the metrics both splits have."""
    out = {}
    for metric, column in GAPS:
        a, b = record.get(f"test_{metric}"), record.get(f"train_{metric}")
        if isinstance(a, int | float) and isinstance(b, int | float):
            out[column] = float(a) - float(b)
    return out
