"""Bad inputs of the command line, set 12: a study's --set of a key a method sets, a study whose data cannot be
loaded, a sweep measured on the validation split, `theory linear-vae` with extreme numbers, and --out inside a sweep
or study folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vaelab.cli import main
from vaelab.config import ConfigError
from vaelab.study import METHODS, StudyRequest, study_spec
from vaelab.study.collapse import Budget, base_config
from vaelab.study.methods import method_overrides

TINY_SET = ["data.num_examples=256", "data.image_shape=[1,6,6]", "data.eval_size=64", "model.latent_dim=4"]


def study_args(out: Path, *extra: str, data: str = "synthetic_blobs", methods: str = "plain") -> list[str]:
    return [
        "study",
        "collapse",
        "--data",
        data,
        "--methods",
        methods,
        "--budget",
        "1",
        "--iw-samples",
        "2",
        "--out",
        str(out),
        "--no-report",
        *extra,
    ]


# ------------------------------------------------------------------------------------------------------------
# 1. a --set of a key that a chosen method sets itself


@pytest.mark.parametrize(
    ("data", "item", "key"),
    [
        ("synthetic_text", "data.bucketing=pool", "data.bucketing"),  # Y023: bn_vae's random order on text
        ("synthetic_blobs", "model.posterior=delta", "model.posterior"),  # Y027
        ("synthetic_text", "data={bucketing: pool}", "data.bucketing"),  # a section mapping spread into its keys
    ],
)
def test_a_set_of_a_key_a_method_sets_is_refused_naming_the_method(tmp_path: Path, capsys, data, item, key):
    out = tmp_path / "st"
    assert main(study_args(out, "--set", item, data=data, methods="plain,bn_vae")) == 2
    err = capsys.readouterr().err
    assert f"--set {item}: method bn_vae sets {key} itself" in err
    assert f"--method-set bn_vae:{key}=VALUE" in err
    assert len(err.strip().splitlines()) == 1 and not out.exists()


def test_a_method_set_of_the_key_states_the_methods_own_value(tmp_path: Path):
    req = StudyRequest(
        data="synthetic_text",
        methods=["plain", "bn_vae"],
        budget="1",
        overrides=["data.bucketing=pool"],
        method_overrides=["bn_vae:data.bucketing=pool"],
    )
    spec = study_spec(req)
    assert spec["base_config"]["data"]["bucketing"] == "pool"
    assert [v.get("data.bucketing") for v in spec["variants"]] == [None, "pool"]


@pytest.mark.parametrize("text", [False, True])
def test_every_key_of_every_method_is_covered(text):
    """The refusal comes from each method's own overrides, not from a list kept by hand: a key a method sets
    (or one inside a mapping it sets) is refused in --set whatever the method."""
    from vaelab.config import RunConfig, from_dict
    from vaelab.study.collapse import _check_set_keys

    base, _ = base_config("synthetic_text" if text else "synthetic_blobs")

    cfg = from_dict(RunConfig, base)
    budget = Budget(epochs=2)
    for name in METHODS.names():
        keys = list(method_overrides(name, cfg, budget, text))
        for key in keys:
            for given in (key, f"{key}.sub"):
                req = StudyRequest(data="synthetic_blobs", methods=[name], overrides=[f"{given}=1"])
                with pytest.raises(ConfigError, match=f"method {name} sets {key} itself"):
                    _check_set_keys(req, budget, {name: keys})


def test_sets_of_keys_no_method_sets_still_pass():
    spec = study_spec(
        StudyRequest(data="synthetic_blobs", methods=["plain", "bn_vae", "anneal"], budget="1", overrides=[*TINY_SET])
    )
    assert spec["base_config"]["model"]["latent_dim"] == 4


# ------------------------------------------------------------------------------------------------------------
# 2. a study whose data cannot be loaded, and the preset's train_size on a generated data set


def test_the_image_preset_imposes_no_train_size_on_a_generated_data_set(tmp_path: Path):
    base, _ = base_config("synthetic_blobs")
    assert base["data"]["train_size"] is None  # Y015: 10000 of synthetic_blobs' 1000 examples failed late
    assert base_config("mnist")[0]["data"]["train_size"] == 10000  # a cap on the files' 50000
    out = tmp_path / "st15"
    assert main(study_args(out, "--set", "model.hidden=[8]", "model.latent_dim=2")) == 0
    assert (out / "study.md").is_file()


def test_a_study_whose_data_cannot_be_loaded_is_refused_before_anything_is_written(tmp_path: Path, capsys):
    out = tmp_path / "st"
    assert main(study_args(out, "--set", "data.train_size=5000", methods="plain,anneal")) == 2
    err = capsys.readouterr().err
    assert "data.train_size=5000 must be in [1, 1000]" in err and "point 0 (variant plain)" in err
    assert "preset" not in err  # the user's own value
    assert not out.exists()


def test_the_preset_train_size_beyond_a_small_file_names_the_way_out(tmp_path: Path, capsys):
    path = tmp_path / "small.npz"
    rng = np.random.default_rng(0)
    np.savez(path, x_train=rng.random((300, 1, 4, 4)).astype("float32"), x_test=rng.random((50, 1, 4, 4)))
    out = tmp_path / "st"
    assert main(study_args(out, "--set", f"data.path={path}", "data.valid_size=30", data="npz")) == 2
    err = capsys.readouterr().err
    assert "data.train_size=10000 must be in [1, 270]" in err and "--set data.train_size=null" in err
    assert not out.exists()
    missing = tmp_path / "missing.npz"
    assert main(study_args(out, "--set", f"data.path={missing}", "data.valid_size=30", data="npz")) == 2
    assert "missing.npz" in capsys.readouterr().err and not out.exists()


# ------------------------------------------------------------------------------------------------------------
# 3. a sweep measured on the validation split: results.md tabulates it


TINY_SWEEP = """
name: sv
base_config:
  name: tiny
  seed: 3
  data: {name: synthetic_blobs, num_examples: 256, image_shape: [1, 6, 6], eval_size: 64}
  model: {type: mlp, latent_dim: 4, hidden: [16]}
  train: {batch_size: 64, epochs: 1, lr: 0.003, progress: false}
  eval: {batch_size: 64, iw_samples: 4, iw_chunk: 4}
grid: {objective.beta.value: [0.5, 1.0]}
seeds: [0, 1]
measure: {splits: [valid], iw_samples: 3}
"""


def test_results_md_tabulates_every_measured_split(tmp_path: Path):
    """S_meas_valid_run: results.md held no measured number of a sweep measured on the validation split, and its
    header read "MI pooled over N = - examples"."""
    sweep = tmp_path / "sv.yaml"
    sweep.write_text(TINY_SWEEP)
    out = tmp_path / "out"
    assert main(["sweep", str(sweep), "--out", str(out), "--workers", "1"]) == 0
    assert len(list(out.glob("points/*/eval_valid.json"))) == 4
    assert main(["sweep-aggregate", str(out)]) == 0
    md = (out / "results.md").read_text()
    assert "## Validation split" in md and "## Test split" not in md
    assert "MI pooled over N = 64 examples (cap ln N = 4.16)" in md  # data.eval_size: 64 validation examples
    table = md.split("## Validation split", 1)[1].split("\n## ", 1)[0].strip().splitlines()
    assert table[0].startswith("| beta | seeds | IW-NLL | ELBO | R | D | MI |")
    rows = [line.split(" | ") for line in table[2:]]
    assert [r[0] for r in rows] == ["| 0.5", "| 1.0"]
    assert all(cell.strip() != "-" for r in rows for cell in r[2:-1])  # every measured number is there


# ------------------------------------------------------------------------------------------------------------
# 4. theory linear-vae: extreme numbers that passed the range checks


@pytest.mark.parametrize("tau", ["1e-300", "5e-5", "1", "0"])
def test_a_tau_the_integrator_cannot_run_is_refused_before_anything_is_written(tmp_path: Path, capsys, tau):
    """G027: --tau 1e-300 passed (0, 1), then the step count overflowed (rc 1, a traceback)."""
    out = tmp_path / "th"
    with pytest.raises(SystemExit) as exit_info:
        main(["theory", "linear-vae", "--quick", "--tau", tau, "--figure", "1", "--out", str(out)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument --tau: must be a number in [0.0001, 1), got '{tau}'" in err
    assert not out.exists()


@pytest.mark.parametrize("option", [["--tau", "0.99"], ["--eta", "100"]])
def test_a_diverging_sgd_is_one_line_naming_tau(tmp_path: Path, capsys, option):
    """In range, but SGD diverges (tau * beta * eta too large): it hung in the ODE, or overflowed, before."""
    out = tmp_path / "th"
    assert main(["theory", "linear-vae", "--quick", *option, "--figure", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "error: --tau " in err and "diverged" in err and "smaller" in err
    assert len(err.strip().splitlines()) == 1  # no RuntimeWarning of the overflow
    assert not list(out.glob("*.png"))


def test_the_ode_stops_when_it_diverges():
    from vaelab.theory.linear_vae import AUTHORS_INIT, LinearVAESetting, solve_ode
    from vaelab.theory.linear_vae.ode import DivergenceError

    with pytest.raises(DivergenceError, match="the ODE diverged at t = "):
        solve_ode(LinearVAESetting(rho=1.0, eta=1.0, tau=0.99, beta=2.5), AUTHORS_INIT, 600.0)
    ok = solve_ode(LinearVAESetting(rho=1.0, eta=1.0, tau=0.01, beta=2.5), AUTHORS_INIT, 600.0)
    assert np.isfinite(ok.eps_g).all()


def test_simulate_sgd_refuses_a_step_count_that_overflows():
    from vaelab.theory.linear_vae import LinearVAESetting, simulate_sgd

    with pytest.raises(ValueError, match="SGD steps exceeds"):
        simulate_sgd(LinearVAESetting(tau=0.01), 100, 1e300, n_seeds=1)


# ------------------------------------------------------------------------------------------------------------
# 5. --out inside a sweep or study folder


@pytest.fixture(scope="module")
def sweep_folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("p006")
    sweep = root / "sv.yaml"
    sweep.write_text(TINY_SWEEP.replace("seeds: [0, 1]", "seeds: [0]"))
    assert main(["sweep", str(sweep), "--out", str(root / "SWEEP"), "--workers", "1"]) == 0
    (root / "base.yaml").write_text(
        "name: tiny\ndata: {name: synthetic_blobs, num_examples: 256, image_shape: [1, 6, 6], eval_size: 64}\n"
        "model: {type: mlp, latent_dim: 4, hidden: [16]}\ntrain: {batch_size: 64, epochs: 1, progress: false}\n"
    )
    return root


@pytest.mark.parametrize("inside", ["points", "points/new", "other/deeper"])
@pytest.mark.parametrize("command", ["train", "sweep", "study"])
def test_an_out_inside_a_sweep_folder_is_refused(sweep_folder: Path, capsys, command, inside):
    """P006: `vaelab train base.yaml --out SWEEP/points` wrote a run next to the sweep's points."""
    out = sweep_folder / "SWEEP" / inside
    argv = {
        "train": ["train", str(sweep_folder / "base.yaml"), "--out", str(out)],
        "sweep": ["sweep", str(sweep_folder / "sv.yaml"), "--out", str(out)],
        "study": study_args(out),
    }[command]
    before = sorted(p.name for p in (sweep_folder / "SWEEP" / "points").iterdir())
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"--out {out} lies inside the sweep folder {sweep_folder / 'SWEEP'} (sweep.yaml)" in err
    assert sorted(p.name for p in (sweep_folder / "SWEEP" / "points").iterdir()) == before
    assert not (sweep_folder / "SWEEP" / "other").exists()


def test_the_sweeps_own_points_and_folder_are_still_usable(sweep_folder: Path, capsys):
    sweep = sweep_folder / "SWEEP"
    point = sorted((sweep / "points").iterdir())[0]
    assert main(["evaluate", str(point)]) == 0  # a command on an existing point run
    assert main(["sweep", str(sweep_folder / "sv.yaml"), "--out", str(sweep), "--workers", "1"]) == 0  # continued
    assert main(["report", str(sweep)]) == 0 and (sweep / "report.html").is_file()  # a file written into it
    assert main(["train", str(sweep_folder / "base.yaml"), "--out", str(sweep)]) == 2  # as before
    assert "is a sweep folder" in capsys.readouterr().err


def test_vaelab_train_into_a_sweep_s_points_folder_is_refused(tmp_path: Path):
    """P006 for the Python API: vaelab.train(out=SWEEP/points/...) is refused as `vaelab train --out` is."""
    import torch

    import vaelab
    from vaelab.errors import ConfigError

    sweep = tmp_path / "sw"
    (sweep / "points").mkdir(parents=True)
    (sweep / "sweep.yaml").write_text("name: s\n")
    x = (torch.rand(64, 1, 4, 4) > 0.5).float()
    out = sweep / "points" / "mine"
    with pytest.raises(ConfigError, match=r"out= .*points/mine lies inside the sweep folder"):
        vaelab.train("vaelab.models.custom:does_not_matter", x, out)
    assert not out.exists()
