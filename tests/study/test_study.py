"""`vaelab study collapse`: the method panel, the budget, the underlying sweep, the table and the CLI."""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

import pytest
import yaml

from vaelab.cli import main
from vaelab.config import ConfigError
from vaelab.study import METHODS, Budget, StudyRequest, run_study, study_spec
from vaelab.study.methods import DEFAULT_PANEL
from vaelab.sweep import spec_from_dict

TINY_SET = ["data.num_examples=256", "data.image_shape=[1,6,6]", "data.eval_size=64", "data.train_size=null"]


def tiny_request(**changes) -> StudyRequest:
    kw = {
        "data": "synthetic_blobs",
        "methods": ["plain", "free_bits"],
        "budget": "2",
        "seeds": [0],
        "iw_samples": 4,
        "overrides": [*TINY_SET, "model.latent_dim=4", "model.hidden=[16]", "train.batch_size=64"],
    }
    kw.update(changes)
    return StudyRequest(**kw)


@pytest.mark.parametrize(
    ("text", "budget"),
    [
        ("3", Budget(epochs=3)),
        ("3ep", Budget(epochs=3)),
        ("3 epochs", Budget(epochs=3)),
        ("500steps", Budget(steps=500)),
    ],
)
def test_budget_parse(text, budget):
    assert Budget.parse(text) == budget


@pytest.mark.parametrize("text", ["", "abc", "0", "-2ep", "2.5"])
def test_bad_budget_is_an_error(text):
    with pytest.raises(ValueError):
        Budget.parse(text)


def test_budget_overrides_and_half_schedules():
    assert Budget(epochs=4).overrides() == {"train.epochs": 4, "train.max_steps": None}
    assert Budget(steps=300).overrides()["train.max_steps"] == 300
    assert Budget(epochs=4).half_schedule() == {"warmup_epochs": 2.0}
    assert Budget(steps=300).half_schedule() == {"warmup_steps": 150}


def test_every_method_builds_a_valid_config_for_images_and_text(tmp_path: Path):
    """Each registered method's overrides give a config that validates (text: the LSTM VAE preset)."""
    for data in ("synthetic_blobs", "text"):
        req = tiny_request(data=data, methods=METHODS.names(), overrides=[])
        spec = spec_from_dict(study_spec(req), "test")
        assert len(spec) == len(METHODS.names())
        for p in spec.points():
            cfg = spec.config(p)
            assert cfg.train.epochs == 2
        agg = spec.config(spec.point(METHODS.names().index("aggressive")))
        assert agg.train.strategy == "aggressive"
        assert agg.train.strategy_options["rule"] == ("first_decrease" if data == "text" else "patience")


def test_the_study_measures_the_probe_where_labels_exist_and_keeps_the_users_extra_metrics():
    """Images: holes + probe; text: the probe only for labelled corpora (``data.format: label_tab``); a
    ``--set eval.extra_metrics=[...]`` is added to the study's own, not replaced by them."""

    def extras(data: str, *overrides: str) -> list[str]:
        return study_spec(tiny_request(data=data, overrides=list(overrides)))["measure"]["extra_metrics"]

    assert extras("synthetic_blobs") == ["holes", "probe"]
    assert extras("synthetic_blobs", "eval.extra_metrics=[consistency, probe]") == ["holes", "probe", "consistency"]
    assert extras("text") == ["holes"]
    assert extras("text", "data.format=label_tab") == ["holes", "probe"]
    assert extras("text", "eval.extra_metrics=[probe]") == ["holes", "probe"]


def test_methods_differ_from_plain_only_in_their_remedy():
    spec = spec_from_dict(study_spec(tiny_request(methods=list(DEFAULT_PANEL))), "test")
    plain = spec.config(spec.point(0))
    anneal = spec.config(spec.point(1))
    assert plain.objective.beta.type == "constant" and plain.objective.beta.value == 1.0
    assert anneal.objective.beta.type == "linear" and anneal.objective.beta.warmup_epochs == 1.0
    assert anneal.model == plain.model and anneal.data == plain.data and anneal.train == plain.train
    fb = spec.config(spec.point(3))
    assert fb.objective.regulariser == "free_bits_batch" and fb.objective.free_bits == 0.25


def test_bad_requests_name_what_to_change(tmp_path: Path):
    with pytest.raises(Exception, match="--methods"):
        study_spec(tiny_request(methods=["plain", "nonsense"]))
    with pytest.raises(ConfigError, match="twice"):
        tiny_request(methods=["plain", "plain"]).validate()
    with pytest.raises(ConfigError, match="model"):
        study_spec(tiny_request(overrides=["model.no_such_key=1"]))
    with pytest.raises(FileNotFoundError, match="no such config"):
        study_spec(tiny_request(data=str(tmp_path / "missing.yaml")))


def test_method_set_changes_only_the_named_methods():
    req = tiny_request(
        methods=["plain", "aggressive", "aggressive_anneal"],
        method_overrides=[
            "aggressive,aggressive_anneal:train.strategy_options.check_every_steps=25",
            "aggressive:train.strategy_options.max_aggressive_steps=40",
        ],
    )
    spec = spec_from_dict(study_spec(req), "test")
    plain, agg, agg_anneal = (spec.config(spec.point(i)) for i in range(3))
    assert plain.train.strategy == "joint" and plain.train.strategy_options == {}
    assert agg.train.strategy_options == {
        "window": 10,
        "max_inner_steps": 100,
        "rule": "patience",
        "patience": 5,
        "check_every_steps": 25,
        "max_aggressive_steps": 40,
    }
    assert agg_anneal.train.strategy_options["check_every_steps"] == 25
    assert "max_aggressive_steps" not in agg_anneal.train.strategy_options
    assert agg_anneal.objective.beta.type == "linear"


@pytest.mark.parametrize(
    ("item", "match"),
    [
        ("train.lr=1", "METHOD:key=value"),
        ("aggressive:lr", "METHOD:key=value"),
        ("density_gap:objective.beta.value=2", "not one of --methods"),
    ],
)
def test_bad_method_set_names_the_item(item, match):
    with pytest.raises(ConfigError, match=match):
        study_spec(tiny_request(methods=["plain", "aggressive"], method_overrides=[item]))


def test_a_run_config_is_the_plain_vae_of_the_study(tmp_path: Path):
    cfg = {
        "name": "mine",
        "data": {"name": "synthetic_blobs", "num_examples": 128, "image_shape": [1, 4, 4]},
        "model": {"type": "mlp", "latent_dim": 3, "hidden": [8]},
    }
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(cfg))
    spec = study_spec(tiny_request(data=str(path), overrides=[]))
    assert spec["name"] == "collapse_mine"
    assert spec["base_config"]["model"]["latent_dim"] == 3


def test_run_study_table_is_the_mean_and_sd_of_the_points(tmp_path: Path):
    out = tmp_path / "study"
    table, md = run_study(tiny_request(seeds=[0, 1]), out)
    with open(out / "results.csv") as f:
        points = list(csv.DictReader(f))
    assert [p["status"] for p in points] == ["completed"] * 4
    for row in table:
        mine = [p for p in points if p["variant"] == row["method"]]
        nll = [float(p["test_nll_iw"]) for p in mine]
        assert row["test_nll_iw"] == pytest.approx(statistics.fmean(nll))
        assert row["test_nll_iw_sd"] == pytest.approx(statistics.stdev(nll))
        au = [float(p["test_au"]) for p in mine]
        assert row["test_au"] == pytest.approx(statistics.fmean(au))
        assert "test_cu_0.03" in row and "test_probe_accuracy" in row  # extra metrics measured
        assert row["seeds_completed"] == 2 and row["verdict"] in ("collapsed", "partial", "healthy")
    plain = table[0]
    assert plain["time_ratio"] == pytest.approx(1.0)
    assert table[1]["time_ratio"] == pytest.approx(table[1]["train_time"] / plain["train_time"])
    text = md.read_text()
    assert "| VAE |" in text and "| free bits |" in text and "K = 4" in text and "2 epochs" in text
    assert all(0.0 < row["test_probe_majority"] <= 1.0 and "test_probe_mean_accuracy" in row for row in table)
    assert f"majority class of the test split: {plain['test_probe_majority']:.3f}" in text
    with open(out / "study.csv") as f:
        assert [r["method"] for r in csv.DictReader(f)] == ["plain", "free_bits"]


def test_the_table_reports_how_long_aggressive_runs_were_aggressive(tmp_path: Path):
    """4 batches per epoch x 2 epochs; aggressive capped at 3 outer steps, inner loop exactly 4 steps (window 2
    on a loss that keeps falling would run to the cap of 4): 3 / 8 steps aggressive, 4.0 encoder steps each."""
    req = tiny_request(
        methods=["plain", "aggressive"],
        method_overrides=["aggressive:train.strategy_options={window: 4, max_inner_steps: 4, max_aggressive_steps: 3}"],
    )
    out = tmp_path / "study"
    table, md = run_study(req, out)
    assert "aggressive_phase" not in table[0]
    (phase,) = table[1]["aggressive_phase"]
    assert phase == {"stopped_step": 3, "aggressive_steps": 3, "steps": 8, "inner_per_step": pytest.approx(4.0)}
    assert "- aggressive: 3 / 8, 4.0" in md.read_text()
    with open(out / "study.csv") as f:
        row = list(csv.DictReader(f))[1]
    assert json.loads(row["aggressive_phase"])[0]["aggressive_steps"] == 3


def test_a_study_continues_and_refuses_another_request(tmp_path: Path):
    out = tmp_path / "study"
    run_study(tiny_request(), out)
    point = next((out / "points").iterdir())
    stamp = (point / "measurements.json").stat().st_mtime_ns
    run_study(tiny_request(), out)  # nothing to do: every point is completed
    assert (point / "measurements.json").stat().st_mtime_ns == stamp
    with pytest.raises(ConfigError, match="budget"):
        run_study(tiny_request(budget="3"), out)
    with pytest.raises(ConfigError, match="seeds"):
        run_study(tiny_request(seeds=[1]), out)  # not an extension of [0]


def test_a_study_accepts_appended_seeds_and_keeps_the_finished_points(tmp_path: Path):
    out = tmp_path / "study"
    run_study(tiny_request(), out)
    before = {p.name: (p / "measurements.json").read_text() for p in (out / "points").iterdir()}
    assert sorted(before) == ["0000-plain", "0001-free_bits"]
    table, _ = run_study(tiny_request(seeds=[0, 1]), out)
    after = sorted(p.name for p in (out / "points").iterdir())
    assert after == ["0000-plain-seed0", "0001-free_bits-seed0", "0002-plain-seed1", "0003-free_bits-seed1"]
    for old_name, text in before.items():
        assert (out / "points" / f"{old_name}-seed0" / "measurements.json").read_text() == text  # kept, not retrained
    assert all(row["seeds_completed"] == 2 for row in table)
    assert json.loads((out / "study.json").read_text())["seeds"] == [0, 1]


def test_cli_study_writes_table_and_report(tmp_path: Path, capsys):
    out = tmp_path / "s"
    args = [
        "study",
        "collapse",
        "--data",
        "synthetic_blobs",
        "--methods",
        "plain,beta_vae",
        "--budget",
        "1",
        "--iw-samples",
        "4",
        "--out",
        str(out),
        "--set",
        *TINY_SET,
        "model.latent_dim=4",
        "model.hidden=[16]",
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "beta-VAE (0.4)" in printed and f"report: {out / 'report.html'}" in printed
    html = (out / "report.html").read_text()
    assert "beta-VAE (0.4)" in html and html.count('<img class="figure"') >= 4
    assert json.loads((out / "study.json").read_text())["methods"] == ["plain", "beta_vae"]


def test_cli_lists_methods_and_rejects_bad_input(capsys):
    assert main(["study", "collapse", "--list-methods"]) == 0
    listed = capsys.readouterr().out
    assert all(m in listed for m in METHODS.names())
    assert main(["study", "collapse"]) == 2
    assert "--data is required" in capsys.readouterr().err
    assert main(["study", "collapse", "--data", "synthetic_blobs", "--budget", "soon"]) == 2
    assert "--budget" in capsys.readouterr().err


def test_every_method_trains_and_is_measured_on_images(tmp_path: Path):
    # 8 steps: cyclical's 4 cycles of 2 steps each reach beta = 1 (4 steps would be refused: beta 0 throughout)
    table, _ = run_study(tiny_request(methods=METHODS.names(), budget="8steps"), tmp_path / "all")
    assert {r["method"]: r["errors"] for r in table if r["seeds_completed"] != 1} == {}
    assert all(r.get("test_probe_accuracy") is not None for r in table)  # synthetic_blobs has labels


def test_text_settings_of_the_remedies_follow_their_papers():
    """Issue 15: on text the panel runs each remedy as its paper does (methods.md section 4b)."""
    from vaelab.config import RunConfig as Cfg
    from vaelab.config import from_dict
    from vaelab.study.methods import Budget, method_overrides

    base = from_dict(Cfg, {"model": {"type": "lstm_vae", "latent_dim": 32}})
    b = Budget(epochs=8)
    agg = method_overrides("aggressive", base, b, True)["train.strategy_options"]
    assert agg == {"window": 15, "max_inner_steps": 100, "rule": "first_decrease", "clip_scope": "model"}
    assert "check_every_steps" not in agg and "max_aggressive_steps" not in agg  # never silently capped
    img = method_overrides("aggressive", base, b, False)["train.strategy_options"]
    assert img["window"] == 10 and img["rule"] == "patience" and "clip_scope" not in img
    fb = method_overrides("free_bits", base, b, True)
    assert fb["objective.regulariser"] == "free_bits_fine" and fb["objective.free_bits"] == 4.0  # 0.125 x 32
    assert fb["objective.beta"] == {"type": "linear", "start": 0.0, "value": 1.0, "warmup_epochs": 4.0}
    bn = method_overrides("bn_vae", base, b, True)
    assert bn["model.bn_gamma"] == 0.7 and bn["data.bucketing"] == "none"
    assert method_overrides("density_gap", base, b, True)["objective.regulariser_options"]["chunk_size"] == 4
    assert method_overrides("delta_vae", base, b, True)["model.delta_rate"] == 0.15
    li = method_overrides("pretrain_fb", base, b, True)
    assert li["train.strategy"] == "pretrain_reset" and li["train.strategy_options"] == {"pretrain_epochs": 2}
    assert li["objective.beta"] == {
        "type": "linear",
        "start": 0.0,
        "value": 1.0,
        "warmup_epochs": 3.0,
        "delay_epochs": 2,
    }
    steps = method_overrides("pretrain_fb", base, Budget(steps=100), True)
    assert steps["train.strategy_options"] == {"pretrain_steps": 25} and steps["objective.beta"]["delay_steps"] == 25
    assert method_overrides("plain", base, b, True) == {}  # the baseline is never annealed


def test_repeated_set_and_method_set_flags_are_all_kept():
    from vaelab.cli import build_parser

    args = build_parser().parse_args(
        [
            "study",
            "collapse",
            "--data",
            "mnist",
            "--set",
            "train.lr=0.5",
            "--set",
            "train.optimizer=sgd",
            "model.hidden=[8]",
            "--method-set",
            "aggressive:train.strategy_options.window=5",
            "--method-set",
            "bn_vae:model.bn_gamma=0.6",
        ]
    )
    assert args.set == ["train.lr=0.5", "train.optimizer=sgd", "model.hidden=[8]"]
    assert args.method_set == ["aggressive:train.strategy_options.window=5", "bn_vae:model.bn_gamma=0.6"]
