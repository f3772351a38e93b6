"""Every method of the study panel trains and is measured on a text corpus (the LSTM VAE preset)."""

from __future__ import annotations

import csv
from pathlib import Path

from conftest import tiny_sentences
from vaelab.study import METHODS, StudyRequest, run_study


def test_every_study_method_runs_on_text(tmp_path: Path, corpus_dir: Path):
    req = StudyRequest(
        data="text",
        methods=METHODS.names(),
        budget="8steps",  # the least in which cyclical's 4 cycles reach beta = 1 (2 steps each)
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


def test_a_labelled_corpus_gets_the_probe_on_sampled_z(tmp_path: Path):
    """``data.format: label_tab``: the study measures the probe on text batches; the table shows it with the
    majority-class rate of the test split in its caption."""
    corpus = tmp_path / "labelled"
    corpus.mkdir()
    for name, n, seed in (("train.txt", 120, 0), ("valid.txt", 30, 1), ("test.txt", 40, 2)):
        lines = [f"{int(s.startswith('the'))}\t{s}" for s in tiny_sentences(n, seed)]
        (corpus / name).write_text("\n".join(lines) + "\n")
    req = StudyRequest(
        data="text",
        methods=["plain"],
        budget="2steps",
        iw_samples=2,
        overrides=[
            f"data.path={corpus}",
            "data.format=label_tab",
            "data.train_size=null",
            "data.eval_size=null",
            "model.emb_dim=8",
            "model.hidden_dim=16",
            "model.latent_dim=2",
            "train.batch_size=40",
            "eval.batch_size=40",
            "eval.hole_prior_samples=500",
        ],
    )
    (row,), md = run_study(req, tmp_path / "study")
    assert row["seeds_completed"] == 1, row["errors"]
    assert 0.0 <= row["test_probe_accuracy"] <= 1.0 and 0.0 <= row["test_probe_mean_accuracy"] <= 1.0
    test_labels = [line.split("\t")[0] for line in (corpus / "test.txt").read_text().splitlines()]
    majority = max(test_labels.count("0"), test_labels.count("1")) / len(test_labels)
    assert abs(row["test_probe_majority"] - majority) < 1e-9
    text = md.read_text()
    assert "| probe acc. |" in text and f"majority class of the test split: {majority:.3f}" in text
    with open(tmp_path / "study" / "results.csv") as f:
        (point,) = list(csv.DictReader(f))
    # the study measures on a training subset the size of the test split (measure.train_subset: test)
    assert float(point["test_probe_n_train"]) == 40 and point["test_probe_accuracy"] != ""
