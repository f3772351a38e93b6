"""Sweep files: deterministic expansion, the documented index order, override values and errors."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest
import yaml

from vaelab.config import apply_overrides, load_config
from vaelab.sweep.runner import prepare_out
from vaelab.sweep.spec import SweepError, load_sweep, spec_from_dict, yaml_value

from .helpers import BASE, sweep_dict


def test_expansion_order_matches_the_documented_formula() -> None:
    spec = spec_from_dict(
        sweep_dict(
            zip={"model.latent_dim": [2, 3]},
            grid={"objective.beta.value": [0.1, 1.0, 10.0], "train.lr": [1e-3, 1e-2]},
            seeds=[5, 6],
        )
    )
    assert spec.shape == (2, 2, 2, 3, 2) and len(spec) == 48
    seen = set()
    for s, v, z, b, lr in itertools.product(range(2), range(2), range(2), range(3), range(2)):
        index = (((s * 2 + v) * 2 + z) * 3 + b) * 2 + lr
        p = spec.point(index)
        cfg = spec.config(p)
        assert cfg.seed == [5, 6][s]
        assert cfg.model.hidden == [[8], [32]][v]
        assert cfg.model.latent_dim == [2, 3][z]
        assert cfg.objective.beta.value == [0.1, 1.0, 10.0][b]
        assert cfg.train.lr == [1e-3, 1e-2][lr]
        assert p.params == {
            "variant": ["narrow", "wide"][v],
            "model.hidden": [[8], [32]][v],
            "model.latent_dim": [2, 3][z],
            "objective.beta.value": [0.1, 1.0, 10.0][b],
            "train.lr": [1e-3, 1e-2][lr],
            "seed": [5, 6][s],
        }
        seen.add(p.folder_name)
    assert len(seen) == 48  # every point has its own folder


def test_expansion_is_deterministic_across_loads(write_sweep) -> None:
    path = write_sweep()
    a, b = load_sweep(path), load_sweep(path)
    assert [p for p in a.points()] == [p for p in b.points()]
    assert [a.point(i) for i in range(len(a))] == list(a.points())
    assert a.point(5).folder_name == "0005-narrow-beta1-seed1"
    assert a.point(5).overrides == ("train.epochs=2", "model.hidden=[8]", "objective.beta.value=1.0", "seed=1")
    # the overrides reproduce the point's config through the ordinary `vaelab train` path
    base = path.parent / "base.yaml"
    base.write_text(yaml.safe_dump(BASE))
    assert load_config(base, list(a.point(5).overrides)) == a.config(a.point(5))


@pytest.mark.parametrize(
    "value", [0.1, 1e-5, 2.5e12, -3.0, 7, True, None, "gaussian", "1e-3", [512, 256], {"type": "linear", "value": 2.0}]
)
def test_override_values_round_trip(value) -> None:
    assert apply_overrides({}, [f"k={yaml_value(value)}"])["k"] == value
    assert type(apply_overrides({}, [f"k={yaml_value(value)}"])["k"]) is type(value)


def test_inf_and_nan_values() -> None:
    assert apply_overrides({}, [f"k={yaml_value(math.inf)}"])["k"] == math.inf
    assert math.isnan(apply_overrides({}, [f"k={yaml_value(math.nan)}"])["k"])


def test_base_file_relative_to_the_sweep_file(tmp_path) -> None:
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "base.yaml").write_text(yaml.safe_dump(BASE))
    data = sweep_dict(base="configs/base.yaml")
    del data["base_config"]
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(data))
    spec = load_sweep(tmp_path / "s.yaml")
    assert spec.base_config == BASE and spec.base == str((tmp_path / "configs" / "base.yaml").resolve())


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"gird": {"a": [1]}}, "unknown sweep key 'gird'"),
        ({"zip": {"model.latent_dim": [2, 3], "train.lr": [0.1]}}, "equal lengths"),
        ({"grid": {"objective.beta.value": []}}, "non-empty list"),
        ({"seeds": [0, 0]}, "distinct"),
        ({"measure": {"iw_sample": 3}}, "unknown config key 'measure.iw_sample'"),
        ({"measure": {"train_subset": "half"}}, "measure.train_subset"),
        ({"base_config": None}, "set base"),
    ],
)
def test_bad_sweep_files_name_the_key(changes, message) -> None:
    with pytest.raises(SweepError, match=message):
        spec_from_dict(sweep_dict(**changes))


def test_a_bad_config_key_names_the_point(write_sweep) -> None:
    path = write_sweep(grid={"objective.beta.value": [0.1], "model.latnt_dim": [2, 4]})
    with pytest.raises(SweepError, match=r"point 0 .*unknown config key 'model.latnt_dim'"):
        load_sweep(path)


def test_index_out_of_range() -> None:
    spec = spec_from_dict(sweep_dict())
    with pytest.raises(SweepError, match="out of range: sweep 'tiny' has 8 points"):
        spec.point(8)


def test_a_sweep_of_one_named_variant_names_its_point_by_the_variant() -> None:
    one = spec_from_dict(sweep_dict(variants=[{"name": "wide", "model.hidden": [32]}], grid={}, seeds=None))
    assert one.point(0).folder_name == "0000-wide"
    assert one.point(0).legacy_folder_names == ("0000-point",)  # the name before issue 16, still found
    unnamed = spec_from_dict(sweep_dict(variants=[{"model.hidden": [32]}], grid={}, seeds=None))
    assert unnamed.point(0).folder_name == "0000-point" and unnamed.point(0).legacy_folder_names == ()
    # every other name is as before: the variant's name only where something else varies with it
    assert spec_from_dict(sweep_dict(variants=[{"name": "wide", "model.hidden": [32]}])).point(0).folder_name == (
        "0000-beta0.1-seed0"
    )
    assert spec_from_dict(sweep_dict()).point(1).folder_name == "0001-narrow-beta1-seed0"
    assert all(not p.legacy_folder_names for p in spec_from_dict(sweep_dict()).points())


def test_sweep_folder_accepts_appended_seeds_and_rejects_other_changes(tmp_path) -> None:
    out = tmp_path / "out"
    prepare_out(spec_from_dict(sweep_dict()), out)
    longer = spec_from_dict(sweep_dict(seeds=[0, 1, 2]))
    prepare_out(longer, out)  # indices 0..7 keep their meaning
    assert len(spec_from_dict(yaml.safe_load((out / "sweep.yaml").read_text()))) == 12
    with pytest.raises(SweepError, match="holds a different sweep: its point 1"):
        prepare_out(spec_from_dict(sweep_dict(grid={"objective.beta.value": [0.1, 2.0]})), out)
    with pytest.raises(SweepError, match="measured with"):
        prepare_out(spec_from_dict(sweep_dict(measure={"iw_samples": 3})), out)


@pytest.mark.parametrize(
    "path", sorted((Path(__file__).resolve().parents[2] / "sweeps").glob("*.yaml")), ids=lambda p: p.name
)
def test_repo_sweep_files_validate(path: Path) -> None:
    if path.name.endswith("_base.yaml"):
        load_config(path)  # a base run config
        return
    spec = load_sweep(path)  # builds every point's config
    assert len(spec) >= 2 and len({p.folder_name for p in spec.points()}) == len(spec)


@pytest.mark.parametrize("name", ["", "  ", 3, None])
def test_a_sweep_name_must_be_a_non_empty_string(name):
    with pytest.raises(SweepError, match="name must be a non-empty string"):
        spec_from_dict({"name": name, "base_config": {"name": "r"}, "seeds": [0]}, "s.yaml")
