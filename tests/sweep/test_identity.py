"""What is a run's identity for sweeps and studies: eval.iw_chunk (and logging) is not, eval.batch_size is.

A run folder written with another eval.iw_chunk (e.g. the fixed default 500 of earlier versions, before "auto") is
the same point: its hash, the sweep-folder comparison and the measurement settings ignore it (issue 18, item 6)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from vaelab.config import load_config
from vaelab.sweep import run_sweep, spec_from_dict
from vaelab.sweep.runner import point_dir, prepare_out
from vaelab.sweep.spec import NOT_IDENTITY_KEYS, SweepError, config_hash

from .helpers import sweep_dict


def quiet(_: str) -> None:
    """Drops the progress lines."""


def test_the_hash_ignores_iw_chunk_and_logging_but_not_the_batch_size() -> None:
    assert NOT_IDENTITY_KEYS == ("train.progress", "train.tensorboard", "eval.iw_chunk")
    base = config_hash(load_config(None))
    for same in ("eval.iw_chunk=500", "eval.iw_chunk=7", "eval.iw_chunk=auto", "train.progress=false"):
        assert config_hash(load_config(None, [same])) == base, same
    for other in ("eval.batch_size=100", "eval.iw_samples=5000", "eval.mi_pool=100", "seed=1"):
        assert config_hash(load_config(None, [other])) != base, other


def _one_point(**base_eval: object) -> dict:
    data = sweep_dict(seeds=[0], variants=[{"name": "ok", "model.hidden": [8]}], grid={"objective.beta.value": [0.5]})
    data["base_config"] = copy.deepcopy(data["base_config"])
    data["base_config"]["eval"] = {"batch_size": 64, "iw_samples": 4, **base_eval}
    return data


def test_a_folder_run_with_another_iw_chunk_keeps_its_points(tmp_path: Path) -> None:
    """Trained and measured with eval.iw_chunk=500 and measure.iw_chunk=3 (by an earlier version, whose point.json
    hash included the chunk); asked again with the new default ("auto") and another measure.iw_chunk: the folder is
    the same sweep, the finished point is kept, and an unfinished one is measured, not refused."""
    out = tmp_path / "out"
    old = _one_point(iw_chunk=500)
    old["measure"] = {"iw_samples": 8, "iw_chunk": 3}
    spec = spec_from_dict(old)
    assert [r.action for r in run_sweep(spec, out, workers=1, log=quiet)] == ["train"]
    folder = point_dir(out, spec.point(0))
    assert yaml.safe_load((folder / "config.yaml").read_text())["eval"]["iw_chunk"] == 500
    record = json.loads((folder / "point.json").read_text())
    (folder / "point.json").write_text(json.dumps({**record, "config_hash": "0123456789abcdef"}))  # old hash
    first = (folder / "measurements.json").read_text()

    new = spec_from_dict(_one_point())  # eval.iw_chunk: the default, auto; measure.iw_chunk: the run's
    assert new.config(new.point(0)).eval.iw_chunk == "auto"
    prepare_out(new, out)  # not "a different sweep", not "measured with other settings"
    assert [(r.status, r.action) for r in run_sweep(new, out, workers=1, log=quiet)] == [("skipped", "none")]
    assert (folder / "measurements.json").read_text() == first

    (folder / "measurements.json").unlink()  # trained, not yet measured: checked against its config first
    assert [(r.status, r.action) for r in run_sweep(new, out, workers=1, log=quiet)] == [("completed", "measure")]
    assert json.loads((folder / "point.json").read_text())["config_hash"] == config_hash(new.config(new.point(0)))
    again = json.loads((folder / "measurements.json").read_text())
    assert again["test_nll_iw"] == pytest.approx(json.loads(first)["test_nll_iw"], rel=1e-6)


def test_another_eval_batch_size_is_another_sweep(tmp_path: Path) -> None:
    """eval.batch_size stays part of the identity: each evaluation batch has its own seed, so it changes the
    validation draws, hence checkpoint selection and early stopping."""
    out = tmp_path / "out"
    prepare_out(spec_from_dict(_one_point()), out)
    with pytest.raises(SweepError, match=r"differs in eval.batch_size: 64 -> 32"):
        prepare_out(spec_from_dict(_one_point(batch_size=32)), out)
