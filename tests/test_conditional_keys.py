"""Keys read only under another key's value (issue 17): a fresh config, sweep point or study arm that writes one
where it is not read is refused in one line, as a model key of another model type is (tests/test_model_keys.py):
schedule keys of another schedule type (objective.beta, a term's weight), train.momentum without SGD,
train.lr_decay.* while LR decay is off. A run folder's saved config, which holds every key, still loads."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from vaelab.config import ConfigError, load_config, load_saved_config, save_config
from vaelab.objectives.schedules import RAMP_SHAPES, SCHEDULE_KEYS, SCHEDULES, ScheduleConfig
from vaelab.sweep import load_sweep, spec_from_dict

CR_TERMS = "objective.terms=[{type: aug_distortion, weight: 1.0}, {type: aug_rate, weight: 1.0}, {type: consistency_kl, weight: {type: linear, value: 0.001, warmup_steps: 100, cycles: 2}}]"  # noqa: E501


def _write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def test_every_schedule_type_declares_its_keys_and_every_key_is_read_by_some_type():
    assert set(SCHEDULE_KEYS) == set(SCHEDULES.names())
    read = set().union(*SCHEDULE_KEYS.values()) | {"type"}
    assert read == set(ScheduleConfig.__dataclass_fields__)
    assert all(set(SCHEDULE_KEYS[s]) >= {"start", "warmup_steps", "delay_steps"} for s in RAMP_SHAPES)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["objective.beta={type: constant, value: 1.0, warmup_epochs: 10}"],
            "objective.beta.warmup_epochs: not read by objective.beta.type=constant (only by linear or sigmoid or "
            "cosine); remove it or set objective.beta.type=linear",
        ),
        (
            ["objective.beta={type: linear, value: 1.0, warmup_epochs: 10, cycles: 3}"],
            "objective.beta.cycles: not read by objective.beta.type=linear (only by cyclical); remove it or set "
            "objective.beta.type=cyclical",
        ),
        (
            ["objective.beta.type=cyclical", "objective.beta.start=0.1"],
            "objective.beta.start: not read by objective.beta.type=cyclical (only by linear or sigmoid or cosine); "
            "remove it or set objective.beta.type=linear",
        ),
        (
            [CR_TERMS],
            "objective.terms[2].weight.cycles: not read by objective.terms[2].weight.type=linear (only by "
            "cyclical); remove it or set objective.terms[2].weight.type=cyclical",
        ),
        (
            ["train.momentum=0.9"],
            "train.momentum: not read by train.optimizer=adam (only by train.optimizer=sgd); remove it or set "
            "train.optimizer=sgd",
        ),
        (
            ["train.lr_decay.factor=0.3"],
            "train.lr_decay.factor: not read while train.lr_decay.enabled is false; remove it or set "
            "train.lr_decay.enabled=true",
        ),
    ],
)
def test_a_key_that_another_setting_leaves_unread_is_refused_in_one_line(overrides: list[str], message: str):
    with pytest.raises(ConfigError) as e:
        load_config(None, overrides)
    assert str(e.value) == message


def test_a_file_s_key_is_read_by_the_file_s_own_choice_or_the_final_one(tmp_path: Path):
    """An override that switches the choice (``objective.beta.type=constant`` on an annealed config) leaves the
    file's settings for the other choice unread, as it says; a file's key that neither choice reads is refused, and
    so is an override's key that the final config does not read."""
    cfg = _write(
        tmp_path / "c.yaml",
        {
            "objective": {"beta": {"type": "linear", "start": 0.1, "value": 1.0, "warmup_epochs": 10}},
            "train": {"optimizer": "sgd", "momentum": 0.9, "lr_decay": {"enabled": True, "factor": 0.3}},
        },
    )
    loaded = load_config(cfg)
    assert (loaded.objective.beta.start, loaded.train.momentum, loaded.train.lr_decay.factor) == (0.1, 0.9, 0.3)
    switched = load_config(
        cfg, ["objective.beta.type=constant", "train.optimizer=adam", "train.lr_decay.enabled=false"]
    )
    assert (switched.objective.beta.type, switched.train.optimizer, switched.train.lr_decay.enabled) == (
        "constant",
        "adam",
        False,
    )
    for override, named in (
        ("objective.beta.cycles=3", "objective.beta.cycles: not read by objective.beta.type=linear"),
        ("objective.beta.ratio=0.3", "objective.beta.ratio: not read by objective.beta.type=linear"),
    ):
        with pytest.raises(ConfigError, match=rf"^override {override}: {named}"):  # the override's key (h16s7 A09)
            load_config(cfg, [override])
    # the file's key read by neither its own choice nor the final one
    off = _write(tmp_path / "off.yaml", {"objective": {"beta": {"type": "constant", "warmup_epochs": 10}}})
    with pytest.raises(ConfigError, match=r"objective.beta.warmup_epochs: not read by objective.beta.type=constant"):
        load_config(off)
    with pytest.raises(ConfigError, match=r"objective.beta.warmup_epochs: not read by objective.beta.type=cyclical"):
        load_config(off, ["objective.beta.type=cyclical"])
    assert load_config(off, ["objective.beta.type=linear"]).objective.beta.warmup_epochs == 10  # now read
    # a file's key that only the final choice reads
    late = _write(tmp_path / "late.yaml", {"train": {"momentum": 0.9, "lr_decay": {"patience": 4}}})
    with pytest.raises(ConfigError, match=r"train.momentum: not read by train.optimizer=adam"):
        load_config(late, ["train.lr_decay.enabled=true"])
    both = load_config(late, ["train.optimizer=sgd", "train.lr_decay.enabled=true"]).train
    assert (both.momentum, both.lr_decay.patience) == (0.9, 4)


def test_what_is_read_is_accepted():
    assert load_config(None, ["objective.beta={type: cyclical, value: 1.0, cycles: 2, ratio: 0.5}"])
    assert load_config(None, ["objective.beta.value=0.5"]).objective.beta.value == 0.5  # constant reads value
    assert load_config(None, ["train.optimizer=sgd", "train.momentum=0.9"]).train.momentum == 0.9
    assert load_config(None, ["train.lr_decay.enabled=false"]).train.lr_decay.enabled is False
    assert load_config(None, ["train.lr_decay.enabled=true", "train.lr_decay.patience=3"]).train.lr_decay.patience == 3
    assert load_config(None, [CR_TERMS.replace(", cycles: 2", "")]).objective.terms[2]["weight"]["warmup_steps"] == 100


def test_a_saved_or_resolved_config_with_unread_keys_still_loads(tmp_path: Path):
    cfg = load_config(None)
    cfg.train.momentum, cfg.train.lr_decay.factor = 0.9, 0.3  # adam, LR decay off: as an old run folder may hold
    cfg.objective.beta = ScheduleConfig(type="constant", value=1.0, warmup_epochs=10.0)
    path = tmp_path / "config.yaml"
    save_config(cfg, path, extra={"vaelab": "old"})
    assert load_saved_config(path).train.momentum == 0.9
    assert load_config(path).objective.beta.warmup_epochs == 10.0
    save_config(cfg, tmp_path / "plain.yaml")  # every section written out in full: not the user's choice of keys
    assert load_config(tmp_path / "plain.yaml").train.lr_decay.factor == 0.3
    with pytest.raises(ConfigError, match=r"train.lr_decay.patience: not read while"):
        load_config(path, ["train.lr_decay.patience=4"])


def test_sweep_points_and_study_arms_are_checked(tmp_path: Path):
    from vaelab.study.collapse import StudyRequest, study_spec
    from vaelab.study.methods import METHODS

    base = {
        "data": {"name": "synthetic_blobs", "num_examples": 64, "image_shape": [1, 6, 6], "eval_size": 16},
        "model": {"type": "mlp", "latent_dim": 2, "hidden": [8]},
        "train": {"batch_size": 16, "epochs": 1, "progress": False},
    }
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    path = _write(tmp_path / "s.yaml", {"name": "s", "base": "base.yaml", "grid": {"train.momentum": [0.0, 0.9]}})
    with pytest.raises(ConfigError, match=r"^sweep 's', point 0 \(train.momentum=0.0\): train.momentum: not read"):
        load_sweep(path)
    variants = [{"name": "sgd", "train.optimizer": "sgd", "train.momentum": 0.9}, {"name": "adam"}]
    assert len(load_sweep(_write(tmp_path / "ok.yaml", {"base": "base.yaml", "variants": variants}))) == 2

    # every study method's own settings are read by the config they make, on images and on text
    for data in ("synthetic_blobs", "synthetic_text"):
        req = StudyRequest(data=data, methods=list(METHODS.names()))
        spec_from_dict(study_spec(req), "study").validate()
    with pytest.raises(ConfigError, match=r"^--set train.momentum=0.5: train.momentum: not read by train.optimizer"):
        study_spec(StudyRequest(data="synthetic_blobs", overrides=["train.momentum=0.5"]))
    with pytest.raises(ConfigError, match=r"point 1 \(variant anneal: .*objective.beta.cycles: not read by"):
        req = StudyRequest(
            data="synthetic_blobs", methods=["plain", "anneal"], method_overrides=["anneal:objective.beta.cycles=3"]
        )
        spec_from_dict(study_spec(req), "study").validate()


def test_every_data_set_only_key_names_registered_data_sets_that_read_it():
    """:data:`DATASET_ONLY_KEYS` names only registered data sets (a misspelt one would refuse a key its real data
    set reads), each key is a data key, and the generated data sets read no file key."""
    from vaelab.data.checks import DATA_RULES, DATASET_ONLY_KEYS, FILE_DATASETS, GENERATED_DATASETS
    from vaelab.data.dataset import DATASETS

    for key, readers in DATASET_ONLY_KEYS.items():
        assert f"data.{key}" in DATA_RULES, key
        assert readers and set(readers) <= set(DATASETS.names()), (key, set(readers) - set(DATASETS.names()))
    generated = set(GENERATED_DATASETS)
    assert set(FILE_DATASETS) | generated | {"tetrominoes"} == set(DATASETS.names())
    for key in ("root", "path", "files", "verify_checksum"):
        assert not generated & set(DATASET_ONLY_KEYS[key]), key


def test_a_file_key_set_to_null_on_generated_data_asks_for_nothing(tmp_path: Path):
    """``data.path=null`` unsets the key (its default), so a generated data set does not refuse it; a value does."""
    base = _write(tmp_path / "b.yaml", {"data": {"name": "synthetic_blobs", "num_examples": 64}})
    assert load_config(base, ["data.path=null", "data.root=null"]).data.path is None
    with pytest.raises(ConfigError, match=r"data\.path: not read by data\.name=synthetic_blobs"):
        load_config(base, ["data.path=x.npz"])
