"""Bad inputs to the Python API, thirteenth set (A11, M26, B05, M33, M19): each is one line naming the argument and
what to do, raised before any work (no raw torch error from inside the user's code, no run folder left behind)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import vaelab
from api_modules import FAST, X, build, one_line
from vaelab.data.user import DataTypeError
from vaelab.errors import UserError
from vaelab.models.custom import ContractError

pytestmark = pytest.mark.usefixtures("one_thread")


Y = torch.arange(120) % 3


# ------------------------------------------------------------------------------------------------------------
# A11: an exception inside the model factory names the factory and model_kwargs


def test_a11_a_failing_factory_names_its_kwargs_and_leaves_no_run_folder(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(ContractError, match=r"^the model factory \S+:build failed with model_kwargs ") as e:
        vaelab.train(build, X, out, model_kwargs={"latent_dim": -2}, overrides=FAST)
    text = one_line(e)
    assert "{'latent_dim': -2}" in text
    assert "RuntimeError: Trying to create tensor with negative dimension" in text
    assert text.endswith("(check model_kwargs)")
    assert isinstance(e.value.__cause__, RuntimeError)  # the user's traceback is kept
    assert not out.exists()


def test_a11_an_existing_empty_out_folder_stays_empty(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    with pytest.raises(ContractError, match=r"failed with model_kwargs"):
        vaelab.train(build, X, out, model_kwargs={"latent_dim": -2}, overrides=FAST)
    assert list(out.iterdir()) == []


# ------------------------------------------------------------------------------------------------------------
# M26: an item of a list of batches that is no batch is refused, naming its index, before the modules see it


@pytest.mark.parametrize(
    ("item", "match"),
    [
        ("garbage", r"^data\[1\] is the string 'garbage', not a batch \(a tensor, an \(x, y\) pair or an object"),
        (None, r"^data\[1\] is None, not a batch"),
        (7, r"^data\[1\] is an int, not a batch"),
        ({"x": X[:10]}, r"^data\[1\] is a dict \(keys 'x'\), not a batch"),
        ((X[:10], None, 1), r"^data\[1\] is a tuple of 3, not a batch"),
        (("garbage", None), r"^data\[1\]\[0\] is the string 'garbage', not a batch's x"),
    ],
)
@pytest.mark.parametrize("metric", ["evaluate", "iw_nll", "elbo", "posteriors", "kl_per_dim", "active_units"])
def test_m26_a_list_of_batches_holds_only_batches(metric, item, match):
    enc, dec = build()
    with pytest.raises(UserError, match=match) as e:
        getattr(vaelab, metric)((enc, dec), [X[:60], item])
    one_line(e)
    assert enc.calls == 0  # refused before any work


def test_m26_probe_names_its_own_argument():
    with pytest.raises(UserError, match=r"^test_data\[0\] is the string 'x', not a batch") as e:
        vaelab.probe(build(), [(X, Y)], ["x"])
    one_line(e)


@pytest.mark.parametrize(
    ("data", "match"),
    [("garbage", r"got the string 'garbage'$"), (None, r"got None$"), ({"x": X}, r"got a dict \(keys 'x'\)$")],
)
def test_m26_data_that_is_no_list_of_batches(data, match):
    with pytest.raises(UserError, match=r"^data must be a tensor or array \(N, \.\.\.\), a list of token-id seq") as e:
        vaelab.elbo(build(), data)
    assert e.match(match)


def test_m26_batches_of_arrays_and_pairs_still_work():
    pair = build()
    whole = vaelab.posteriors(pair, X)[0]
    parts = vaelab.posteriors(pair, [X[:60].numpy(), (X[60:], Y[60:])])[0]
    assert torch.allclose(whole, parts)


# ------------------------------------------------------------------------------------------------------------
# B05: a Dataset item that is neither x nor (x, label)


class _Items(torch.utils.data.Dataset):
    def __init__(self, make) -> None:
        self.make = make

    def __len__(self) -> int:
        return len(X)

    def __getitem__(self, i: int):
        return self.make(i)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda i: {"x": X[i]}, r"^data train\[0\] must be x or \(x, label\), got a dict \(keys 'x'\); return x or"),
        (lambda i: "abc", r"^data train\[0\] must be x or \(x, label\), got the string 'abc'; return x or"),
        (lambda i: None, r"^data train\[0\] must be x or \(x, label\), got None; return x or \(x, label\) from"),
        (lambda i: ({"x": X[i]}, 1), r"^data train\[0\]\[0\] must be an example x \(a tensor or array\), got a dict"),
        (lambda i: object(), r"^data train\[0\] must be x or \(x, label\), got object; return x"),
    ],
)
def test_b05_dataset_items_that_are_no_example(tmp_path, make, match):
    out = tmp_path / "run"
    with pytest.raises(DataTypeError, match=match) as e:
        vaelab.train(build, _Items(make), out, overrides=FAST)
    assert one_line(e).endswith("from __getitem__")
    assert not out.exists()


# ------------------------------------------------------------------------------------------------------------
# M33: as_vae's latent_dim is checked against the encoder on example= at once


def test_m33_as_vae_latent_dim_against_example():
    with pytest.raises(UserError, match=r"^as_vae: latent_dim=5, but the encoder returns D=2 for example=; leave") as e:
        vaelab.as_vae(build(2), latent_dim=5, example=X[:2])
    one_line(e)
    assert vaelab.as_vae(build(2), latent_dim=2, example=X[:2]).latent_dim == 2


# ------------------------------------------------------------------------------------------------------------
# M19: the probe refuses test classes that the training labels never hold


@pytest.mark.parametrize(
    ("test_labels", "missing"),
    [(Y + 10, "10..12"), (Y + 1, "3"), (torch.where(Y == 2, 9, Y * 5), "5, 9")],
)
def test_m19_probe_test_classes_never_seen_in_training(test_labels, missing):
    with pytest.raises(UserError, match=r"a linear probe cannot predict a class it never saw$") as e:
        vaelab.probe(build(), X, X, train_labels=Y, test_labels=test_labels)
    assert one_line(e).startswith(f"test labels {missing} do not occur in the training labels (classes 0..2)")


def test_m19_probe_with_the_same_classes_still_runs():
    out = vaelab.probe(build(), X, X, train_labels=Y, test_labels=np.asarray(Y))
    assert out["classes"] == 3
    assert 0.0 <= out["accuracy"] <= 1.0
