"""Each model type declares the ``model.*`` keys it reads (issue 17): a fresh config that sets another one is refused
by :func:`vaelab.config.load_config`; a run folder's saved config (which holds every key) still loads."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from vaelab.config import ConfigError, load_config, load_saved_config, save_config
from vaelab.models import MODEL_KEYS, MODELS, ModelConfig
from vaelab.sweep import load_sweep

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
