"""Each model type declares the ``model.*`` keys it reads (issue 17): a fresh config that sets another one is refused
by :func:`vaelab.config.load_config`; a run folder's saved config (which holds every key) still loads."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from vaelab.config import ConfigError, load_config, load_saved_config, save_config, to_dict
from vaelab.models import MODEL_KEYS, MODELS, ModelConfig
from vaelab.sweep import load_sweep, spec_from_dict

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted(
    [p for p in (ROOT / "configs").glob("*.yaml")] + [p for p in (ROOT / "sweeps").glob("*_base.yaml")],
    key=str,
)
SWEEPS = sorted(p for p in (ROOT / "sweeps").glob("*.yaml") if not p.name.endswith("_base.yaml"))


def _write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def test_every_type_declares_its_keys_and_every_key_is_read_by_some_type():
    assert set(MODELS.names()) == set(MODEL_KEYS)
    read = set().union(*MODEL_KEYS.values()) | {"type", "latent_dim", "posterior", "bn_gamma", "delta_rate"}
    assert read == set(ModelConfig.__dataclass_fields__)


def test_a_key_another_type_reads_is_refused_in_one_line(tmp_path: Path):
    cfg = _write(tmp_path / "c.yaml", {"model": {"type": "conv", "hidden": [512]}})
    with pytest.raises(ConfigError) as e:
        load_config(cfg)
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith(f"{cfg}: model.hidden: not read by model.type=conv (it reads: activation, channels,")
    assert msg.endswith("remove it or choose a model.type that uses it")


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        (["model.type=conv", "model.hidden=[64]"], "model.hidden: not read by model.type=conv"),
        (["model.type=linear", "model.activation=tanh"], "model.activation: not read by model.type=linear"),
        (["model.type=linear", "model.likelihood=bernoulli"], "model.likelihood: not read by model.type=linear"),
        (["model.bn_gamma=0.3"], "model.bn_gamma: not read by model.posterior=gaussian"),
        (["model.posterior=bn", "model.delta_rate=0.2"], "model.delta_rate: not read by model.posterior=bn"),
    ],
)
def test_an_override_another_type_reads_is_refused(overrides: list[str], named: str):
    with pytest.raises(ConfigError, match=named):
        load_config(None, overrides)


def test_text_keys_follow_the_type(tmp_path: Path):
    text = {"data": {"name": "text", "path": str(tmp_path)}}
    lm = _write(tmp_path / "lm.yaml", {**text, "model": {"type": "lstm_lm", "skip": False}})
    with pytest.raises(ConfigError, match=r"model.skip: not read by model.type=lstm_lm"):
        load_config(lm)
    lm = _write(tmp_path / "lm2.yaml", {**text, "model": {"type": "lstm_lm", "posterior": "gaussian"}})
    with pytest.raises(ConfigError, match=r"model.posterior: not read by model.type=lstm_lm"):
        load_config(lm)


def test_what_a_type_reads_or_always_has_is_accepted():
    assert load_config(None, ["model.type=conv", "model.channels=[8]", "model.activation=tanh"]).model.channels == [8]
    assert load_config(None, ["model.type=linear", "model.likelihood=gaussian"]).model.likelihood == "gaussian"
    assert load_config(None, ["model.posterior=delta", "model.delta_rate=0.2"]).model.delta_rate == 0.2
    # defaults of keys a type does not read are not the user's: not refused
    assert load_config(None, ["model.type=pixelcnn"]).model.hidden == [512, 256]


def test_a_saved_config_with_an_unread_key_still_loads(tmp_path: Path):
    cfg = load_config(None, ["model.type=conv"])
    cfg.model.hidden = [7]  # as an old run folder may hold
    path = tmp_path / "config.yaml"
    save_config(cfg, path, extra={"vaelab": "old"})
    assert load_saved_config(path).model.hidden == [7]
    # a run folder's config.yaml (``_meta``), or any complete model section, given to load_config is not the
    # user's choice of keys either; an override on it is
    assert load_config(path).model.type == "conv"
    save_config(cfg, tmp_path / "plain.yaml")
    assert load_config(tmp_path / "plain.yaml").model.type == "conv"
    with pytest.raises(ConfigError, match=r"model.pixelcnn_layers: not read by model.type=conv"):
        load_config(path, ["model.pixelcnn_layers=3"])


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_shipped_config_loads(path: Path):
    load_config(path)


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.name)
def test_every_shipped_sweep_point_sets_only_keys_its_type_reads(path: Path):
    from vaelab.models import check_model_keys

    spec = load_sweep(path)
    for point in spec.points():
        model = spec.config_dict(point).get("model") or {}
        check_model_keys(spec.config(point).model, list(model))


# ---- sweep points and study arms: checked as a fresh `vaelab train` config, when the sweep is read ----

SWEEP_BASE = {
    "name": "tiny",
    "data": {"name": "synthetic_blobs", "num_examples": 64, "image_shape": [1, 6, 6], "eval_size": 16},
    "model": {"type": "mlp", "latent_dim": 2, "hidden": [8]},
    "train": {"batch_size": 16, "epochs": 1, "progress": False},
}


def _sweep(tmp_path: Path, **changes) -> Path:
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(SWEEP_BASE))
    return _write(tmp_path / "s.yaml", {"name": "s", "base": "base.yaml", "seeds": [0, 1], **changes})


@pytest.mark.parametrize(
    ("changes", "point", "named"),
    [
        # a variant that changes the type: the base file's model.hidden is not read by conv
        (
            {"variants": [{"name": "mlp"}, {"name": "cnn", "model.type": "conv"}]},
            "point 1 (variant cnn: model.type=conv seed=0)",
            "model.hidden: not read by model.type=conv",
        ),
        ({"grid": {"model.channels": [[4], [8]]}}, "point 0 (model.channels=[4] seed=0)", "model.channels: not read"),
        ({"fixed": {"model.pixelcnn_layers": 2}}, "point 0 (model.pixelcnn_layers=2 seed=0)", "model.pixelcnn"),
        (
            {"zip": {"model.posterior": ["bn", "delta"], "model.bn_gamma": [0.5, 0.7]}},
            "point 1 (model.bn_gamma=0.7 model.posterior=delta seed=0)",
            "model.bn_gamma: not read by model.posterior=delta",
        ),
    ],
)
def test_a_sweep_point_that_sets_a_key_its_model_does_not_read_is_refused_when_read(
    tmp_path: Path, changes: dict, point: str, named: str
):
    path = _sweep(tmp_path, **changes)
    with pytest.raises(ConfigError) as e:
        load_sweep(path)
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith(f"sweep 's', {point}: "), msg
    assert named in msg


def test_a_sweep_whose_points_set_only_keys_their_types_read_loads(tmp_path: Path):
    base = {**SWEEP_BASE, "model": {"latent_dim": 2}}
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    variants = [{"name": "mlp", "model.hidden": [8]}, {"name": "cnn", "model.type": "conv", "model.channels": [4]}]
    path = _write(tmp_path / "s.yaml", {"base": "base.yaml", "variants": variants})
    spec = load_sweep(path)
    assert [spec.config(p).model.type for p in spec.points()] == ["mlp", "conv"]
    # a complete (resolved) base config, as a study stores it, is not the user's choice of keys
    cfg = to_dict(load_config(None, ["model.hidden=[8]"]))
    spec = spec_from_dict({"base_config": cfg, "variants": [{"model.type": "conv"}, {"model.type": "linear"}]})
    spec.validate()


def test_run_sweep_refuses_an_unread_key_before_anything_is_written(tmp_path: Path):
    from vaelab.sweep import run_sweep

    spec = spec_from_dict({"base_config": SWEEP_BASE, "grid": {"model.type": ["mlp", "conv"]}})  # not validated
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match=r"point 1 \(model.type=conv\): model.hidden: not read by model.type=conv"):
        run_sweep(spec, out)
    assert not out.exists()


def test_a_stored_sweep_with_an_unread_key_is_still_read(tmp_path: Path):
    """A sweep folder's sweep.yaml written before the check (aggregate, report and plots read it) loads as a spec;
    running it again is refused as its sweep file would be."""
    from vaelab.sweep.runner import load_stored_spec

    data = {"name": "old", "base_config": SWEEP_BASE, "variants": [{"model.type": "conv"}]}
    _write(tmp_path / "sweep.yaml", data)
    spec = load_stored_spec(tmp_path)
    assert spec.config(spec.point(0)).model.hidden == [8]
    with pytest.raises(ConfigError, match=r"model.hidden: not read by model.type=conv"):
        spec.validate()


def test_study_arms_and_the_study_base_are_checked(tmp_path: Path):
    from vaelab.study.collapse import StudyRequest, study_spec

    def spec(**kw):
        return spec_from_dict(study_spec(StudyRequest(data="synthetic_blobs", **kw)), "study")

    # the preset's own keys (model.hidden) are not the user's: another type is accepted
    spec(methods=["plain", "bn_vae"], overrides=["model.type=conv"]).validate()
    with pytest.raises(ConfigError, match=r"^--set model.channels=\[8\]: model.channels: not read by model.type=mlp"):
        spec(overrides=["model.channels=[8]"])
    # an arm's own setting that its posterior does not read, named by the arm
    with pytest.raises(ConfigError) as e:
        spec(methods=["plain", "bn_vae"], method_overrides=["bn_vae:model.delta_rate=0.3"]).validate()
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("sweep 'collapse_synthetic_blobs', point 1 (variant bn_vae: ")
    assert msg.endswith(
        "model.delta_rate: not read by model.posterior=bn (only by model.posterior=delta); remove it "
        "or set model.posterior=delta"
    )
    # a study base given as a config file: the keys it writes count, as for `vaelab train FILE`
    base = _write(tmp_path / "b.yaml", {**SWEEP_BASE, "model": {"type": "conv", "hidden": [8]}})
    with pytest.raises(ConfigError, match=r"^--data .*b.yaml: model.hidden: not read by model.type=conv"):
        study_spec(StudyRequest(data=str(base)))


# ---- likelihood-specific keys: read only under the likelihood that has them ----


@pytest.mark.parametrize("model_type", ["mlp", "conv"])
@pytest.mark.parametrize("key", ["gaussian_std=0.1", "learn_std=true"])
def test_a_gaussian_key_under_a_bernoulli_likelihood_is_refused_in_one_line(tmp_path: Path, model_type: str, key: str):
    name = key.split("=")[0]
    with pytest.raises(ConfigError) as e:
        load_config(None, [f"model.type={model_type}", f"model.{key}"])
    msg = str(e.value)
    assert "\n" not in msg
    assert msg == (
        f"model.{name}: not read by model.likelihood=bernoulli (only by model.likelihood=gaussian); remove it or set "
        "model.likelihood=gaussian"
    )
    value = yaml.safe_load(key.split("=")[1])
    cfg = _write(tmp_path / "c.yaml", {"model": {"type": model_type, "likelihood": "bernoulli", name: value}})
    with pytest.raises(ConfigError, match=rf"^{cfg}: model.{name}: not read by model.likelihood=bernoulli"):
        load_config(cfg)


def test_gaussian_keys_are_accepted_where_the_likelihood_is_gaussian(tmp_path: Path):
    g = load_config(None, ["model.likelihood=gaussian", "model.gaussian_std=0.1", "model.learn_std=true"]).model
    assert (g.gaussian_std, g.learn_std) == (0.1, True)
    assert load_config(None, ["model.type=conv", "model.likelihood=gaussian", "model.gaussian_std=0.2"]).model
    # linear is always Gaussian: its keys are read whatever model.likelihood says (bernoulli is the default)
    assert load_config(None, ["model.type=linear", "model.gaussian_std=0.3"]).model.gaussian_std == 0.3
    # a likelihood switched away from gaussian by an override: the file's gaussian_std is then unread
    cfg = _write(tmp_path / "g.yaml", {"model": {"likelihood": "gaussian", "gaussian_std": 0.1}})
    assert load_config(cfg).model.gaussian_std == 0.1
    with pytest.raises(ConfigError, match=r"model.gaussian_std: not read by model.likelihood=bernoulli"):
        load_config(cfg, ["model.likelihood=bernoulli"])


def test_a_saved_config_with_a_gaussian_key_under_bernoulli_still_loads(tmp_path: Path):
    cfg = load_config(None, ["model.type=conv"])
    cfg.model.gaussian_std, cfg.model.learn_std = 0.3, True  # as an old run folder may hold
    path = tmp_path / "config.yaml"
    save_config(cfg, path, extra={"vaelab": "old"})
    loaded = load_saved_config(path).model
    assert (loaded.likelihood, loaded.gaussian_std, loaded.learn_std) == ("bernoulli", 0.3, True)
    assert load_config(path).model.gaussian_std == 0.3


def test_a_sweep_point_that_switches_the_likelihood_is_checked(tmp_path: Path):
    model = {"type": "mlp", "latent_dim": 2, "hidden": [8], "likelihood": "gaussian", "gaussian_std": 0.1}
    (tmp_path / "base.yaml").write_text(yaml.safe_dump({**SWEEP_BASE, "model": model}))
    variants = [{"name": "g"}, {"name": "b", "model.likelihood": "bernoulli"}]
    path = _write(tmp_path / "s.yaml", {"name": "s", "base": "base.yaml", "variants": variants})
    with pytest.raises(
        ConfigError,
        match=r"^sweep 's', point 1 \(variant b: model.likelihood=bernoulli\): "
        r"model.gaussian_std: not read by model.likelihood=bernoulli",
    ):
        load_sweep(path)
