"""The run layer (vaelab.run) and the seeded evaluator (vaelab.evaluation.Evaluator).

- load_run on a folder written by `vaelab train` holds the checkpoint's parameters (best and last), and build_run
  gives the model a training run starts from;
- the evaluator gives bit for bit the numbers of the evaluator that lived inside the Trainer before the run layer
  existed (:func:`_reference_evaluate` and :func:`_reference_valid_mi` below are that code, kept verbatim apart
  from reading the pieces off a Run), and the trainer's own final evaluation (summary.json) is reproduced exactly
  from the loaded folder.
"""

from __future__ import annotations

import itertools
import json
import math

import pytest
import torch
import yaml

from conftest import TINY
from vaelab.cli import main
from vaelab.config import load_config
from vaelab.evaluation import BN_REFRESH_BATCHES, FINAL_OFFSET, Evaluator
from vaelab.metrics import collect, summarise
from vaelab.metrics.collect import EvalCollection, eval_mode, pooled_mutual_information
from vaelab.metrics.extras import MetricContext, run_extra_metrics
from vaelab.metrics.units import active_units
from vaelab.models.posterior_heads import BatchNormHead, refresh_batch_norm
from vaelab.run import Run, build_run, load_run
from vaelab.runfolder import _clean
from vaelab.seeds import mix_seed
from vaelab.training.trainer import Trainer

# ------------------------------------------------------------------------------------------------------------
# the evaluator as it was inside the Trainer (vaelab.training.trainer before the run layer), on one process


def _reference_refresh_batch_norm(run: Run) -> None:
    if not any(isinstance(m, BatchNormHead) for m in run.model.modules()):
        return
    loader = run.dataset.loader("train", run.config.train.batch_size, seed=mix_seed(run.config.seed, 59), shuffle=True)
    batches = (b.x.to(run.device) for b in itertools.islice(loader.epoch(0), BN_REFRESH_BATCHES))
    refresh_batch_norm(run.model, batches)


def _reference_eval_loader(run: Run, split: str):
    ev = run.config.eval
    return run.dataset.loader(
        split, ev.batch_size, seed=run.config.seed, shuffle=False, eval_binarize_seed=ev.binarize_seed
    )


def _reference_evaluate(run: Run, split: str, *, iw_samples: int = 0, seed_offset: int = 0, extras: bool = False):
    ev = run.config.eval
    _reference_refresh_batch_norm(run)
    loader = _reference_eval_loader(run, split)
    local = []
    with torch.random.fork_rng(devices=[]):
        for b, batch in enumerate(loader.epoch(0)):
            torch.manual_seed(mix_seed(run.config.seed, 29, seed_offset, b))
            batch.x = batch.x.to(run.device)
            with run.precision.autocast():
                local.append((b, collect(run.model, [batch], iw_samples=iw_samples, iw_chunk=ev.iw_chunk)))
    col = EvalCollection.cat([c for _, c in sorted(local, key=lambda p: p[0])])
    gen = torch.Generator().manual_seed(mix_seed(run.config.seed, 31, seed_offset))
    result = summarise(col, mi_pool=ev.mi_pool, au_threshold=ev.au_threshold, generator=gen)
    if extras and ev.extra_metrics:

        def batches(name):
            for batch in _reference_eval_loader(run, name).epoch(0):
                batch.x = batch.x.to(run.device)
                yield batch

        ctx = MetricContext(
            model=run.model,
            dataset=run.dataset,
            split=split,
            collection=col,
            config=run.config,
            device=run.device,
            generator=torch.Generator().manual_seed(mix_seed(run.config.seed, 37, seed_offset)),
            batches=batches,
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(mix_seed(run.config.seed, 41, seed_offset))
            with eval_mode(run.model):
                result.update(run_extra_metrics(ev.extra_metrics, ctx, result))
    return result


def _reference_valid_mi(run: Run, step: int) -> dict[str, float]:
    ev = run.config.eval
    _reference_refresh_batch_norm(run)
    loader = _reference_eval_loader(run, "valid")
    mus, logvars = [], []
    with torch.random.fork_rng(devices=[]), torch.no_grad(), eval_mode(run.model), run.precision.autocast():
        torch.manual_seed(mix_seed(run.config.seed, 43, step))
        for batch in loader.epoch(0):
            q = run.model.encode(batch.x.to(run.device))
            mus.append(q.mu.cpu())
            logvars.append(q.logvar.cpu())
    mu, logvar = torch.cat(mus), torch.cat(logvars)
    gen = torch.Generator().manual_seed(mix_seed(run.config.seed, 47, step))
    mi = pooled_mutual_information(mu, logvar, ev.mi_pool, generator=gen)
    au = active_units(mu, ev.au_threshold)[0] if len(mu) >= 2 else 0
    return {"mi": mi.value, "mi_pool": float(mi.pool), "au": float(au)}


# ------------------------------------------------------------------------------------------------------------


def _same(a, b) -> bool:
    """Equal values, bit for bit (NaN equals NaN; lists and dicts element-wise)."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return isinstance(b, list | tuple) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return type(a) is type(b) and a == b


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny BN-VAE run with the hole metrics, trained by `vaelab train` (the BN head makes the evaluation
    recompute statistics from training batches; the hole metrics exercise the extra metrics' RNG streams)."""
    root = tmp_path_factory.mktemp("run")
    data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in TINY.items()}
    data["model"] = {**data["model"], "posterior": "bn"}
    data["eval"] = {**data["eval"], "extra_metrics": ["holes"], "hole_prior_samples": 2000}
    path = root / "tiny.yaml"
    path.write_text(yaml.safe_dump(data))
    out = root / "run"
    assert main(["train", str(path), "--out", str(out)]) == 0
    return path, out


def test_load_run_holds_the_checkpoints_parameters(trained):
    _, out = trained
    for which in ("best", "last"):
        run = load_run(out, which)
        saved = torch.load(out / "checkpoints" / f"{which}.pt", weights_only=True)["model"]
        params = run.model.state_dict()
        assert params.keys() == saved.keys()
        assert all(torch.equal(params[k], saved[k]) for k in saved)
        assert run.checkpoint == out / "checkpoints" / f"{which}.pt" and run.path == out
        assert not any(m.training for m in run.model.modules())  # loaded for use: eval mode
    assert run.config.model.posterior == "bn" and run.config.eval.extra_metrics == ["holes"]
    assert run.steps_per_epoch == 8 and run.total_steps == 24  # 256 examples minus held-out, batch 32, 3 epochs


def test_build_run_gives_the_model_training_starts_from(trained, tmp_path):
    path, _ = trained
    cfg = load_config(path)
    fresh = build_run(cfg)
    trainer = Trainer(load_config(path), tmp_path / "t")
    assert fresh.folder is None and fresh.checkpoint is None
    a, b = fresh.model.state_dict(), trainer.run.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert fresh.steps_per_epoch == trainer.run.steps_per_epoch and fresh.total_steps == trainer.run.total_steps
    assert type(fresh.objective) is type(trainer.run.objective)
    assert not (tmp_path / "t").exists()  # neither building nor the trainer's constructor writes anything


def test_the_evaluator_gives_the_numbers_of_the_trainers_old_evaluator(trained):
    _, out = trained
    run = load_run(out)
    evaluator = Evaluator(run)
    cases = [
        ("valid", {"seed_offset": 2}),
        ("test", {"iw_samples": 5, "seed_offset": FINAL_OFFSET, "extras": True}),
        ("train", {"iw_samples": 3, "seed_offset": 7, "extras": True}),
    ]
    for split, kw in cases:
        new = evaluator.evaluate(split, **kw)
        old = _reference_evaluate(run, split, **kw)
        assert _same(new, old), (split, kw)
        assert "hole_kl" in new or not kw.get("extras")
    for step in (0, 13):
        assert _same(evaluator.encoder_statistics("valid", step), _reference_valid_mi(run, step))


def test_the_final_evaluation_is_reproduced_from_the_run_folder(trained):
    """summary.json was computed inside the training process; the loaded folder gives the same numbers."""
    _, out = trained
    summary = json.loads((out / "summary.json").read_text())
    run = load_run(out)
    final = Evaluator(run).evaluate(
        summary["split"], iw_samples=run.config.eval.iw_samples, seed_offset=FINAL_OFFSET, extras=True
    )
    assert _same({k: summary[k] for k in final}, json.loads(json.dumps(_clean(final))))
