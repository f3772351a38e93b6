"""Bad inputs to the Python API, eleventh set (A03, A10, A12, A47, A53, A71, A72, A76): each is one line naming the
argument, raised before anything is written into the run folder."""

from __future__ import annotations

import warnings

import pytest
import torch

import vaelab
from api_modules import FAST, Dec, Enc, X, build, one_line
from vaelab.config import ConfigError
from vaelab.data.base import DataError
from vaelab.errors import UserError

pytestmark = pytest.mark.usefixtures("one_thread")


class BernoulliDec(Dec):
    """log p(x|z) of a Bernoulli written out: -inf for targets outside [0, 1]."""

    def log_prob(self, x, z):
        p = torch.sigmoid(self.net(z))
        x = x.flatten(1)
        return torch.where((x >= 0) & (x <= 1), x * p.log() + (1 - x) * (1 - p).log(), -torch.inf).sum(1)


# ------------------------------------------------------------------------------------------------------------
# train


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"model_kwargs": [2]}, r"^model_kwargs must be a mapping of keyword arguments, got list$"),
        ({"model_kwargs": "latent=2"}, r"^model_kwargs must be a mapping of keyword arguments, got str$"),
        ({"model_kwargs": {1: 2}}, r"^model_kwargs: keys must be argument names \(strings\), got 1$"),
        ({"config": [2]}, r"^config must be a mapping, a RunConfig or a YAML file path, got list$"),
    ],
)
def test_a03_mapping_arguments_of_train_are_checked(tmp_path, kwargs, match):
    out = tmp_path / "run"
    with pytest.raises(UserError, match=match) as e:
        vaelab.train(build, X, out, overrides=FAST, **kwargs)
    one_line(e)
    assert not out.exists()


def test_a71_an_override_key_given_twice_is_refused(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match=r"override key train.epochs is given twice \('train.epochs=1' and 'tr") as e:
        vaelab.train(build, X, out, overrides=[*FAST, "train.epochs=2"])
    one_line(e)
    with pytest.raises(ConfigError, match=r"override key train.lr is given twice"):
        vaelab.train(build, X, out, overrides=[*FAST, "train.lr=0.1", "train={lr: 0.2}"])
    assert not out.exists()
    with pytest.raises(ConfigError, match=r"override key eval.iw_samples is given twice"):
        vaelab.load_run(tmp_path, overrides=["eval.iw_samples=2", "eval.iw_samples=3"])


@pytest.mark.parametrize("bad", [float("inf"), float("nan")])
def test_a10_non_finite_data_are_named_as_the_users_argument(tmp_path, bad):
    x = X.clone()
    x[3, 4] = bad
    out = tmp_path / "run"
    with pytest.raises(UserError, match=r"^data train: the values must be finite \(found (inf|NaN) in 1 of 120 ") as e:
        vaelab.train(build, x, out, overrides=FAST)
    assert "arrays.npz" not in one_line(e)
    assert not out.exists()
    with pytest.raises(UserError, match=r"^data valid: the values must be finite"):
        vaelab.tensor_data(X, x.double())


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"valid_fraction": 0.6, "test_fraction": 0.6}, r"^valid_fraction \+ test_fraction must be below 1, got 1.2"),
        ({"valid_fraction": 1.0}, r"^valid_fraction"),
        ({"test_fraction": -0.1}, r"^test_fraction"),
        ({"test_fraction": "0.1"}, r"^test_fraction"),
        ({"valid_fraction": float("nan")}, r"^valid_fraction"),
    ],
)
def test_a12_tensor_data_checks_its_fractions_at_once(tmp_path, kwargs, match):
    with pytest.raises(UserError, match=match) as e:
        vaelab.tensor_data(X, **kwargs)
    one_line(e)
    with pytest.raises(UserError, match=match):
        vaelab.token_data([[0, 1]] * 20, **kwargs)


def test_a12_fractions_of_given_splits_are_not_summed():
    data = vaelab.tensor_data(X, X[:10], valid_fraction=0.6, test_fraction=0.6)
    assert {k: len(v[0]) for k, v in data.splits.items()} == {"train": 48, "valid": 10, "test": 72}


# ------------------------------------------------------------------------------------------------------------
# token_batch


def test_a47_token_batch_of_no_sequences_names_its_argument():
    with pytest.raises(UserError, match=r"^token_batch: sequences is empty") as e:
        vaelab.token_batch([])
    one_line(e)


# ------------------------------------------------------------------------------------------------------------
# metrics


METRICS = {
    "evaluate": lambda m, x, **k: vaelab.evaluate(m, x, **k),
    "iw_nll": lambda m, x, **k: vaelab.iw_nll(m, x, num_samples=2, **k),
    "elbo": lambda m, x, **k: vaelab.elbo(m, x, **k),
    "posteriors": lambda m, x, **k: vaelab.posteriors(m, x, **k),
    "mutual_information": lambda m, x, **k: vaelab.mutual_information(m, x, **k),
    "active_units": lambda m, x, **k: vaelab.active_units(m, x, **k),
    "kl_per_dim": lambda m, x, **k: vaelab.kl_per_dim(m, x, **k),
    "hole_metrics": lambda m, x, **k: vaelab.hole_metrics(m, x, prior_samples=100, **k),
    "probe": lambda m, x, **k: vaelab.probe(m, [(x, torch.arange(len(x)) % 2)], [(x, torch.arange(len(x)) % 2)], **k),
}
"""Every metric function that takes data."""
LIKELIHOODS = ("evaluate", "iw_nll", "elbo")
"""Those that call the decoder's log_prob."""


@pytest.mark.parametrize("name", LIKELIHOODS)
def test_a53_a_decoder_whose_log_prob_is_nan_is_refused(name):
    torch.manual_seed(0)
    with pytest.raises(vaelab.ContractError, match=r"decoder.log_prob\(x, z\) returned NaN") as e:
        METRICS[name]((Enc(), Dec(nan=True)), X)
    one_line(e)


@pytest.mark.parametrize("name", METRICS)
@pytest.mark.parametrize(("role", "value"), [("decoder", float("nan")), ("encoder", float("inf"))])
def test_a53b_parameters_holding_nan_or_inf_are_named(name, role, value):
    torch.manual_seed(0)
    enc, dec = Enc(), Dec()
    with torch.no_grad():
        (dec if role == "decoder" else enc).net.weight.fill_(value)
    with pytest.raises(UserError, match=rf"^the {role}'s parameter net.weight holds NaN or infinite values") as e:
        METRICS[name]((enc, dec), X)
    one_line(e)


@pytest.mark.parametrize("name", METRICS)
def test_a72_float_intensities_0_255_are_refused_by_every_metric(name):
    torch.manual_seed(0)
    with pytest.raises(DataError, match=r"float values are whole numbers 0\.\.255.*divide by 255.*raw=True") as e:
        METRICS[name]((Enc(), BernoulliDec()), X * 255)
    one_line(e)


def test_a72_raw_true_evaluates_real_valued_data_as_given():
    torch.manual_seed(0)
    gauss = (Enc(), Dec())  # scores any real x (a cross-entropy with logits): values as given
    with pytest.raises(DataError, match=r"whole numbers 0\.\.20"):
        vaelab.evaluate(gauss, X * 20)
    m = vaelab.evaluate(gauss, X * 20, raw=True)
    assert m["n"] == 120
    assert vaelab.iw_nll(gauss, X * 20, num_samples=2, raw=True).shape == (120,)
    with pytest.raises(ConfigError, match=r"^raw must be True or False, got 'yes'"):
        vaelab.evaluate(gauss, X * 20, raw="yes")


def test_a76_evaluate_labels_are_checked_and_said_to_have_no_effect():
    torch.manual_seed(0)
    pair = (Enc(), Dec())
    plain = vaelab.evaluate(pair, X)
    with pytest.warns(FutureWarning, match=r"evaluate: labels= has no effect.*vaelab\.probe"):
        labelled = vaelab.evaluate(pair, X, labels=torch.arange(120) % 3)
    assert labelled == plain
    for labels, match in (
        (torch.rand(120), r"^labels must be integer class indices, got dtype torch.float32"),
        (-torch.ones(120, dtype=torch.long), r"^labels must be class indices >= 0, got -1"),
        (torch.zeros(7, dtype=torch.long), r"^labels must be one per example, shape \(120,\), got shape \(7,\)"),
    ):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            with pytest.raises(UserError, match=match) as e:
                vaelab.evaluate(pair, X, labels=labels)
        one_line(e)
