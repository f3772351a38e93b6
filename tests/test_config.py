import pytest

from vaelab.config import (
    ConfigError,
    RunConfig,
    apply_overrides,
    from_dict,
    load_config,
    load_saved_config,
    run_config,
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
    with pytest.raises(ConfigError, match=r"^model.latent_dim must be an integer in \[1, 100000\], got 'big'"):
        load_config(None, ["model.latent_dim=big"])  # named as given on the command line
    with pytest.raises(ConfigError, match=r"model.latent_dim: expected an integer, got 'big'"):
        run_config({"model": {"latent_dim": "big"}})  # in a file: the loader's type check
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
    # a run folder's config.yaml trains again as it is (its _meta provenance is not config), with overrides
    assert load_config(tmp_path / "config.yaml") == cfg
    assert load_config(tmp_path / "config.yaml", ["seed=6"]).seed == 6


def test_int_float_coercion_rules():
    from vaelab.config import TrainConfig

    t = from_dict(TrainConfig, {"lr": 1, "epochs": 3.0})
    assert isinstance(t.lr, float) and t.epochs == 3
    with pytest.raises(ConfigError):
        from_dict(TrainConfig, {"epochs": 2.5})
    with pytest.raises(ConfigError, match="true or false"):
        from_dict(TrainConfig, {"progress": "yes"})


# --------------------------------------------------------------------------------------------------------------
# one rule per key: a config and a direct Python call are refused by the same rule, with the same message


def _direct_calls():
    from vaelab.data import DataConfig, load_dataset
    from vaelab.models import ModelConfig, build_model
    from vaelab.objectives.density_gap import DensityGap
    from vaelab.objectives.schedules import ScheduleConfig, build_schedule
    from vaelab.objectives.terms import BatchFreeBits
    from vaelab.training.strategies import STRATEGIES

    image = {"image_shape": (1, 6, 6), "num_classes": 2}
    return [
        (["data.num_examples=0"], lambda: load_dataset(DataConfig(name="synthetic_blobs", num_examples=0))),
        (
            ["data.name=synthetic_text", "data.num_templates=1"],
            lambda: load_dataset(DataConfig(name="synthetic_text", num_templates=1)),
        ),
        (
            ["data.name=synthetic_gaussian", "data.noise=0"],
            lambda: load_dataset(DataConfig(name="synthetic_gaussian", noise=0.0)),
        ),
        (["model.latent_dim=0"], lambda: build_model(ModelConfig(latent_dim=0), image)),
        (["model.hidden=[8,0]"], lambda: build_model(ModelConfig(hidden=[8, 0]), image)),
        (["objective.free_bits=-1"], lambda: BatchFreeBits(free_bits=-1)),
        (
            ["objective.beta.type=cyclical", "objective.beta.cycles=0"],
            lambda: build_schedule(ScheduleConfig(type="cyclical", cycles=0), 1, 10, key="objective.beta"),
        ),
        (
            ["objective.beta.type=constant", "objective.beta.delay_steps=5"],
            lambda: build_schedule(ScheduleConfig(type="constant", delay_steps=5), 1, 10, key="objective.beta"),
        ),
        (
            ["train.strategy=aggressive", "train.strategy_options.window=0"],
            lambda: STRATEGIES.get("aggressive")(window=0),
        ),
        (
            ["objective.regulariser=density_gap", "objective.regulariser_options.samples=0"],
            lambda: DensityGap(samples=0),
        ),
    ]


@pytest.mark.parametrize("index", range(10))
def test_a_direct_call_and_a_config_fail_with_the_same_rule(index):
    overrides, call = _direct_calls()[index]
    with pytest.raises(ConfigError) as from_config:
        load_config(None, overrides)
    with pytest.raises(ConfigError) as direct:
        call()
    message = str(from_config.value)
    assert str(direct.value) == message and message.split()[0].rstrip(":").split("[")[0] in overrides[-1], message


def test_the_direct_call_cases_are_all_run():
    assert len(_direct_calls()) == 10


def test_strategy_and_regulariser_options_are_checked_when_the_config_is_read():
    with pytest.raises(ConfigError, match=r"^train.strategy_options.window must be an integer >= 1, got 0$"):
        load_config(None, ["train.strategy=aggressive", "train.strategy_options.window=0"])
    with pytest.raises(ConfigError, match=r"^train.strategy_options.pretrain_steps must be an integer >= 1, got -2$"):
        load_config(None, ["train.strategy=pretrain_reset", "train.strategy_options.pretrain_steps=-2"])
    with pytest.raises(ConfigError, match=r"^objective.regulariser_options.chunk_size must be null or an integer"):
        load_config(None, ["objective.regulariser=density_gap", "objective.regulariser_options.chunk_size=0"])
