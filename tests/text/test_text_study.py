"""Every method of the study panel trains and is measured on a text corpus (the LSTM VAE preset)."""

from __future__ import annotations

from pathlib import Path

from vaelab.study import METHODS, StudyRequest, run_study


def test_every_study_method_runs_on_text(tmp_path: Path, corpus_dir: Path):
    req = StudyRequest(
        data="text",
        methods=METHODS.names(),
        budget="3steps",
        iw_samples=2,
        overrides=[
            f"data.path={corpus_dir}",
            "data.train_size=null",
            "data.eval_size=null",
            "model.emb_dim=16",
            "model.hidden_dim=32",
            "model.latent_dim=4",
            "train.batch_size=16",
            "eval.batch_size=20",
            "eval.hole_prior_samples=1000",
        ],
    )
    table, md = run_study(req, tmp_path / "study")
    failed = {r["method"]: r["errors"] for r in table if r["seeds_completed"] != 1}
    assert not failed
    assert all(r.get("test_nll_iw") is not None and r.get("test_cu_0.03") is not None for r in table)
    assert all(r.get("test_probe_accuracy") is None for r in table)  # no labels: no probe column values
    assert "aggressive + annealing" in md.read_text()
