"""Bad inputs to the Python API, twelfth set (B46, C20, B45, A02, B26, C01, C13): each is one line naming the
argument and what to do, raised before any work (nothing evaluated, nothing written)."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest
import torch

import vaelab
import vaelab.evaluation
from api_modules import FAST, X, build, one_line
from vaelab.config import ConfigError
from vaelab.errors import UserError

pytestmark = pytest.mark.usefixtures("one_thread")


SEQS = [[1, 2, 3], [0, 4], [2, 2, 1, 0]] * 20  # 60 sequences


@pytest.fixture(scope="module")
def a20(tmp_path_factory) -> vaelab.Run:
    """A finished run folder written by vaelab.train."""
    return vaelab.train(build, X, tmp_path_factory.mktemp("a20") / "run", overrides=FAST)


@pytest.fixture
def no_work(monkeypatch):
    """Any evaluation or diagnosis started is a failure: the arguments must be refused first."""

    def refuse(*args, **kwargs):
        raise AssertionError("the arguments were not checked before the work began")

    monkeypatch.setattr(vaelab.evaluation, "evaluate_run", refuse)
    monkeypatch.setattr("vaelab.diagnose.diagnose_run", refuse)


# ------------------------------------------------------------------------------------------------------------
# B46: bool-ish arguments


@pytest.mark.parametrize("value", ["no", "false", 0, 1, np.bool_(True)])
def test_b46_diagnose_evaluate_must_be_true_false_or_none(a20, no_work, value):
    with pytest.raises(ConfigError, match=r"^evaluate must be True, False or None, got ") as e:
        a20.diagnose(evaluate=value)
    assert repr(value) in one_line(e)
    assert not (a20.path / "diagnosis.md").exists()


def test_b46_other_bool_and_choice_arguments_are_checked(a20, no_work):
    with pytest.raises(ConfigError, match=r"^samples must be True or False, got 'no'$"):
        a20.write_report(samples="no")
    with pytest.raises(ConfigError, match=r"^split must be one of train, valid, test, got 'bad'$"):
        a20.diagnose(split="bad")
    with pytest.raises(ConfigError, match=r"^raw must be True or False, got 'no'$"):
        vaelab.tensor_data(X * 255, raw="no")
    with pytest.raises(ConfigError, match=r"^raw must be True or False, got 'no'$"):
        vaelab.kl_per_dim(build(), X, raw="no")


# ------------------------------------------------------------------------------------------------------------
# C20, B45: Run.evaluate refuses what `vaelab evaluate` refuses, before loading anything


@pytest.mark.parametrize(
    ("overrides", "kwargs", "match"),
    [
        (["train.lr=5"], {}, r"^Run.evaluate does not accept train.lr: it accepts only settings that do not change"),
        (["train={lr: 5}"], {}, r"^Run.evaluate does not accept train.lr"),
        (["model.latent_dim=4"], {}, r"^Run.evaluate does not accept model.latent_dim"),
        (["eval.final_split=valid"], {}, r"^Run.evaluate measures the split given by split="),
        (["eval.extras_every_epoch=true"], {}, r"^Run.evaluate does not read eval.extras_every_epoch"),
        (["data.eval_size=10"], {"split": "train"}, r"^data.eval_size subsets the valid and test splits"),
        (["eval.iw_samples=3"], {"iw_samples": 3}, r"^iw_samples= and the override eval.iw_samples both set K"),
        (["eval.iw_samples=-1"], {}, r"^eval.iw_samples must be"),
    ],
)
def test_c20_evaluate_overrides_follow_the_command_lines_rule(a20, no_work, overrides, kwargs, match):
    with pytest.raises(ConfigError, match=match) as e:
        a20.evaluate(overrides=overrides, **kwargs)
    one_line(e)
    assert not (a20.path / "eval.json").exists()


def test_c20_evaluate_still_accepts_evaluation_settings(a20):
    result = a20.evaluate(overrides=["eval.iw_samples=2", "eval.mi_pool=all"])
    assert result["overrides"] == ["eval.iw_samples=2", "eval.mi_pool=all"]
    (a20.path / "eval.json").unlink()


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (-3, r"^iw_samples must be an integer in \[0, \d+\], got -3$"),
        (2.5, r"^iw_samples must be an integer"),
        ("10", r"^iw_samples must be an integer"),
    ],
)
def test_b45_evaluate_iw_samples_follows_the_rule_of_eval_iw_samples(a20, no_work, value, match):
    with pytest.raises(ConfigError, match=match) as e:
        a20.evaluate(iw_samples=value)
    one_line(e)


# ------------------------------------------------------------------------------------------------------------
# A02: data of no accepted kind


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (None, r"got None$"),
        (5, r"got int$"),
        ("x.npz", r"got the string 'x.npz'$"),
        ({1, 2}, r"got set$"),
    ],
)
def test_a02_train_names_the_kinds_of_data_it_accepts(tmp_path, data, match):
    out = tmp_path / "run"
    kinds = r"^data must be a tensor, array, Dataset, token-id sequences or a mapping of splits, "
    with pytest.raises(UserError, match=kinds + match) as e:
        vaelab.train(build, data, out, overrides=FAST)
    one_line(e)
    assert not out.exists()


def test_a02_a_mapping_of_splits_is_checked(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(
        UserError, match=r"^a data mapping needs 'train' and may have 'valid', 'test'; got keys \['valid'\]$"
    ):
        vaelab.train(build, {"valid": X}, out, overrides=FAST)
    with pytest.raises(UserError, match=r"got keys \['train', 1\]$"):  # keys of mixed types: no TypeError of sorted
        vaelab.train(build, {1: X, "train": X}, out, overrides=FAST)
    with pytest.raises(UserError, match=r"^data\['train'\] must be a tensor, array, Dataset, .* got None$"):
        vaelab.train(build, {"train": None, "test": X}, out, overrides=FAST)
    assert not out.exists()
    with pytest.raises(
        UserError, match=r"^data train must be a tensor, array, Dataset or \(x, labels\) pair, got None$"
    ):
        vaelab.tensor_data(None)
    with pytest.raises(UserError, match=r"^data train must be token-id sequences, got None$"):
        vaelab.token_data(None)


# ------------------------------------------------------------------------------------------------------------
# B26: a string where a list is expected


def test_b26_hole_metrics_taus_must_be_a_list(no_work):
    pair = build()
    with pytest.raises(ConfigError, match=r"^taus must be a list of numbers, got the string '0.1'$"):
        vaelab.hole_metrics(pair, X, prior_samples=100, taus="0.1")
    with pytest.raises(ConfigError, match=r"^taus must be a list of numbers, got float$"):
        vaelab.hole_metrics(pair, X, prior_samples=100, taus=0.1)
    with pytest.raises(ConfigError, match=r"^taus must be a list of numbers, got dict$"):
        vaelab.hole_metrics(pair, X, prior_samples=100, taus={0.1: 1})
    assert "cu_0.1" in vaelab.hole_metrics(pair, X, prior_samples=100, taus=np.array([0.1]))


def test_b26_other_list_arguments_refuse_a_string():
    pair = build()
    with pytest.raises(
        UserError, match=r"^vocab must be a list of words \(the word of each id\), got the string 'abc'$"
    ):
        vaelab.token_data(SEQS, vocab="abc")
    with pytest.raises(UserError, match=r"^train_labels must be a list of integer class indices, got the string '01"):
        vaelab.probe(pair, X, X, train_labels="01" * 60, test_labels=[0, 1] * 60)
    with pytest.raises(UserError, match=r"^labels must be a list of integer class indices, got the string '01"):
        vaelab.evaluate(pair, X, labels="01" * 60)
    with pytest.raises(UserError, match=r"^data train must be a list of token-id sequences .*got the string 'abc'$"):
        vaelab.token_data("abc")
    with pytest.raises(UserError, match=r"^data train: labels must be a list of integer class ids >= 0, got the str"):
        vaelab.token_data((SEQS, "0" * 60))


# ------------------------------------------------------------------------------------------------------------
# C01: a run folder missing a file that a property reads


def test_c01_summary_of_a_run_that_never_finished(a20, tmp_path):
    crashed = tmp_path / "crashed"
    crashed.mkdir()
    shutil.copy(a20.path / "config.yaml", crashed / "config.yaml")  # as a training that died in its first epoch
    with pytest.raises(UserError, match=r"has no summary.json: the run never finished .* or is still training") as e:
        _ = vaelab.Run(crashed).summary
    assert "train it again" in one_line(e)
    shutil.copytree(a20.path / "checkpoints", crashed / "checkpoints")  # a checkpoint to resume from
    with pytest.raises(UserError, match=re.escape(f"finish it with `vaelab resume {crashed}`")) as e:
        _ = vaelab.Run(crashed).summary
    one_line(e)


def test_c01_config_yaml_deleted_after_the_run_was_opened(a20, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(a20.path, copy)
    run = vaelab.Run(copy)
    (copy / "config.yaml").unlink()
    for read in (lambda: run.config, run.load, run.evaluate, run.diagnose, run.write_report):
        with pytest.raises(UserError, match=r"has no config.yaml any more .*; restore config.yaml or train") as e:
            read()
        one_line(e)
    assert run.summary["status"] == "completed"  # what is still there is still read


# ------------------------------------------------------------------------------------------------------------
# C13: labels that are not class ids


def test_c13_a_negative_token_label_is_named():
    with pytest.raises(UserError, match=r"^data train: label -1 at index 0 is negative; labels are class ids >= 0"):
        vaelab.token_data((SEQS, [-1] * 60))
    with pytest.raises(UserError, match=r"^data train: label -2 at index 59 is negative"):
        vaelab.token_data((SEQS, [0] * 59 + [-2]))
    with pytest.raises(UserError, match=r"^data train: need one label >= 0 per sequence \(60\), got 59$"):
        vaelab.token_data((SEQS, [0] * 59))
    with pytest.raises(UserError, match=r"^data train: label 0.5 at index 0 is not an integer"):
        vaelab.token_data((SEQS, [0.5] * 60))
    assert vaelab.token_data((SEQS, np.arange(60) % 3)).labelled


def test_c13_a_negative_array_label_is_named():
    y = torch.zeros(120, dtype=torch.long)
    y[7] = -4
    with pytest.raises(UserError, match=r"^data train: label -4 at index 7 is negative; labels are class ids >= 0"):
        vaelab.tensor_data((X, y))
    with pytest.raises(UserError, match=r"^data train: label -4 at index 7 is negative"):
        vaelab.tensor_data(torch.utils.data.TensorDataset(X, y))
    with pytest.raises(UserError, match=r"^data train\[0\]\[1\] must be an integer class id >= 0 \(the label\), got"):
        vaelab.tensor_data(torch.utils.data.TensorDataset(X, y.float() + 0.5))
