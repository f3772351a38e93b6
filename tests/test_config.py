import pytest

from vaelab.config import (
    ConfigError,
    RunConfig,
    apply_overrides,
    from_dict,
    load_config,
    load_saved_config,
    save_config,
)


def test_defaults_load():
    cfg = load_config(None)
    assert isinstance(cfg, RunConfig)
    assert cfg.eval.au_threshold == 0.01


def test_yaml_and_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text(
        "name: x\nmodel:\n  latent_dim: 8\n  hidden: [32, 16]\nobjective:\n  beta: {type: linear, warmup_steps: 10}\n"
    )
    cfg = load_config(p, ["model.latent_dim=4", "train.lr=1e-4", "eval.mi_pool=32", "data.train_size=null"])
    assert cfg.model.latent_dim == 4
    assert cfg.model.hidden == [32, 16]
    assert cfg.train.lr == pytest.approx(1e-4)
    assert cfg.eval.mi_pool == 32
    assert cfg.objective.beta.type == "linear" and cfg.objective.beta.warmup_steps == 10


def test_unknown_key_names_key_and_valid_keys(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("model:\n  latent_dims: 8\n")
    with pytest.raises(ConfigError, match=r"model.latent_dims.*valid keys here:.*latent_dim") as e:
        load_config(p)
    assert str(p) in str(e.value)
    with pytest.raises(ConfigError, match="unknown config key 'trian'"):
        load_config(None, ["trian.lr=1"])


def test_bad_values_name_key_and_choices():
    with pytest.raises(ConfigError, match=r"train.optimizer: 'adamw' is not a valid choice; valid choices: adam, sgd"):
        load_config(None, ["train.optimizer=adamw"])
    with pytest.raises(ConfigError, match=r"model.latent_dim: expected an integer"):
        load_config(None, ["model.latent_dim=big"])
    with pytest.raises(ConfigError, match=r"objective.beta.type"):
        load_config(None, ["objective.beta.type=exponential"])
    with pytest.raises(ConfigError, match=r"model.hidden\[1\]"):
        load_config(None, ["model.hidden=[1, x]"])
    with pytest.raises(ConfigError, match=r"data.binarize: 'bern' is not a valid choice; valid choices: dynamic"):
        load_config(None, ["data.binarize=bern"])
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides({}, ["model.latent_dim"])


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("model:\n  latent_dim: [8\n")
    with pytest.raises(ConfigError, match=r"bad.yaml.*line"):
        load_config(p)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")


def test_saved_config_round_trips(tmp_path):
    cfg = load_config(None, ["model.hidden=[7]", "objective.beta.value=0.3", "seed=5"])
    save_config(cfg, tmp_path / "config.yaml", extra={"torch": "x"})
    assert load_saved_config(tmp_path / "config.yaml") == cfg


def test_int_float_coercion_rules():
    from vaelab.config import TrainConfig

    t = from_dict(TrainConfig, {"lr": 1, "epochs": 3.0})
    assert isinstance(t.lr, float) and t.epochs == 3
    with pytest.raises(ConfigError):
        from_dict(TrainConfig, {"epochs": 2.5})
    with pytest.raises(ConfigError, match="true or false"):
        from_dict(TrainConfig, {"progress": "yes"})
