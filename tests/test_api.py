"""The Python API (vaelab.api, docs/api.md): both examples run with tiny budgets and leave run folders that the
commands read; the user-module contract is checked on the first batch with one-line errors; the metrics work as
plain functions on any pair of modules that meets the contract; loading imports only the recorded factory."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import nn

import vaelab
from vaelab.cli import main as cli
from vaelab.config import ConfigError, load_config
from vaelab.errors import UserError

REPO = Path(__file__).resolve().parents[1]


def _example(name: str):
    """Import examples/NAME.py as a module (as a user's script would be: not importable by name elsewhere)."""
    path = REPO / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"example_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


pytestmark = pytest.mark.usefixtures("one_thread")


# ------------------------------------------------------------------------------------------------------------
# the examples


def test_conv_vae_example_trains_aggressively_and_commands_read_its_folder(tmp_path, capsys):
    out = tmp_path / "conv"
    result = _example("custom_conv_vae").main(["--quick", "--out", str(out)])
    s = result["summary"]
    assert s["status"] == "completed" and math.isfinite(s["nll_iw"]) and s["iw_samples"] == 10
    assert 0 < s["rate"] < 100 and s["mi_pool"] == 90 and "probe_accuracy" in s
    assert result["diagnosis"].verdict in ("collapsed", "partial", "healthy")
    assert result["mi"].pool == 90 and 0 <= result["au"] <= 8 and 0 <= result["probe"]["accuracy"] <= 1

    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["model"]["type"] == "custom" and cfg["train"]["strategy"] == "aggressive"
    assert cfg["model"]["factory"] == f"{REPO / 'examples' / 'custom_conv_vae.py'}:build"
    assert cfg["model"]["factory_kwargs"] == {"latent_dim": 8, "channels": 8}
    assert cfg["data"]["name"] == "arrays" and cfg["data"]["binarize"] == "dynamic"
    assert (out / "data" / "arrays.npz").is_file() and (out / "diagnosis.md").is_file()
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert any("aggressive" in r for r in records)

    assert cli(["evaluate", str(out), "--iw-samples", "3"]) == 0
    assert json.loads((out / "eval.json").read_text())["iw_samples"] == 3
    assert cli(["report", str(out)]) == 0
    html = (out / "report.html").read_text()
    assert "Samples could not be drawn" not in html  # the custom decoder's sample() feeds the report's images
    capsys.readouterr()


def test_token_decoder_example_trains_and_a_new_process_reloads_it(tmp_path, cli_env):
    out = tmp_path / "tokens"
    result = _example("custom_token_decoder").main(["--quick", "--out", str(out)])
    s = result["summary"]
    assert math.isfinite(s["nll_iw"]) and math.isfinite(s["ppl_iw"]) and s["probe_majority"] < 1
    assert result["nll"].shape == (40,) and torch.isfinite(result["nll"]).all()
    assert abs(float(result["nll"].mean()) - s["nll_iw"]) < 1.0  # the same test split, other draws and order
    assert len(result["samples"]) == 3

    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["data"]["name"] == "text" and cfg["data"]["format"] == "label_tab"
    assert cfg["objective"]["regulariser"] == "free_bits_batch"
    first = (out / "data" / "train.txt").read_text().splitlines()[0]
    assert first.split("\t")[0].isdigit() and first.split("\t")[1].split()[0][0] in "wt"

    # a fresh process (no example module imported): the recorded file path rebuilds the model
    done = subprocess.run(
        [sys.executable, "-m", "vaelab", "evaluate", str(out), "--iw-samples", "2"],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads((out / "eval.json").read_text())["iw_samples"] == 2


# ------------------------------------------------------------------------------------------------------------
# user modules for the contract tests (module level: factories must be importable)


class Enc(nn.Module):
    def __init__(self, d_in: int = 12, latent: int = 3, mode: str = "ok") -> None:
        super().__init__()
        self.net = nn.Linear(d_in, 2 * latent)
        self.mode = mode

    def forward(self, x):
        mu, logvar = self.net(x.flatten(1)).chunk(2, -1)
        if self.mode == "one":
            return mu
        if self.mode == "3d":
            return mu.unsqueeze(-1), logvar.unsqueeze(-1)
        if self.mode == "detach":
            return mu.detach(), logvar.detach()
        return mu, logvar


class Dec(nn.Module):
    def __init__(self, d_in: int = 12, latent: int = 3, mode: str = "ok") -> None:
        super().__init__()
        self.net = nn.Linear(latent, d_in)
        self.mode = mode

    def log_prob(self, x, z):
        ll = -F.binary_cross_entropy_with_logits(self.net(z), x.flatten(1), reduction="none")
        if self.mode == "per_dim":
            return ll
        if self.mode == "list":
            return ll.sum(1).tolist()
        return ll.sum(1)


class NoLogProb(nn.Module):
    def forward(self, z):
        return z


def good(latent: int = 3):
    return Enc(latent=latent), Dec(latent=latent)


def bad(enc: str = "ok", dec: str = "ok"):
    return Enc(mode=enc), Dec(mode=dec)


def no_log_prob():
    return Enc(), NoLogProb()


def three_things():
    return Enc(), Dec(), None


def _x(n: int = 120) -> torch.Tensor:
    return (torch.rand(n, 12, generator=torch.Generator().manual_seed(0)) < 0.3).float()


FAST = ["train.epochs=1", "train.batch_size=40", "eval.iw_samples=2", "train.progress=false"]


@pytest.mark.parametrize(
    ("factory", "kwargs", "error", "match"),
    [
        (bad, {"enc": "one"}, TypeError, r"encoder\(x\) must return a pair \(mu, logvar\) of tensors, got Tensor"),
        (bad, {"enc": "3d"}, ValueError, r"must return mu and logvar of shape \(B, D\) = \(40, D\) each"),
        (bad, {"enc": "detach"}, ValueError, r"without gradient: remove \.detach\(\)"),
        (bad, {"dec": "per_dim"}, ValueError, r"must return shape \(40,\).*\(40, 12\).*flatten\(1\)\.sum\(1\)"),
        (bad, {"dec": "list"}, TypeError, r"must return a tensor of log p\(x\|z\) per example, got list"),
        (no_log_prob, {}, TypeError, r"needs a method log_prob\(x, z\)"),
        (three_things, {}, TypeError, r"must return \(encoder, decoder\) or a vaelab VAE, got tuple"),
        (good, {"latent": 3, "nope": 1}, TypeError, r"model.factory_kwargs do not fit"),
    ],
)
def test_contract_errors_are_one_line_before_training(tmp_path, factory, kwargs, error, match):
    out = tmp_path / "run"
    with pytest.raises(error, match=match) as e:
        vaelab.train(factory, _x(), out, model_kwargs=kwargs, overrides=FAST)
    assert isinstance(e.value, vaelab.ContractError) and "\n" not in str(e.value)
    assert not (out / "config.yaml").exists() and not (out / "data").exists()


def test_factories_that_cannot_be_recorded_are_refused(tmp_path):
    with pytest.raises(TypeError, match="not a module-level function"):
        vaelab.train(lambda: good(), _x(), tmp_path / "a")

    def nested():
        return good()

    with pytest.raises(TypeError, match="not a module-level function"):
        vaelab.train(nested, _x(), tmp_path / "b")
    with pytest.raises(TypeError, match="model_kwargs must hold plain values"):
        vaelab.train(good, _x(), tmp_path / "c", model_kwargs={"latent": torch.tensor(3)})
    with pytest.raises(ValueError, match=r"sets model\.type, which vaelab\.train sets itself"):
        vaelab.train(good, _x(), tmp_path / "d", config={"model": {"type": "mlp"}})


def test_latent_dim_is_read_from_the_encoder_and_a_mismatch_is_named(tmp_path):
    run = vaelab.train(good, _x(), tmp_path / "ok", model_kwargs={"latent": 2}, overrides=FAST)
    assert run.config.model.latent_dim == 2 and len(run.summary["kl_per_dim"]) == 2
    with pytest.raises(ValueError, match=r"mu of shape \(40, 2\), but model.latent_dim is 5: set model.latent_dim=2"):
        vaelab.train(good, _x(), tmp_path / "bad", model_kwargs={"latent": 2}, overrides=[*FAST, "model.latent_dim=5"])
    with pytest.raises(FileExistsError, match="already holds"):
        vaelab.train(good, _x(), tmp_path / "ok", model_kwargs={"latent": 2}, overrides=FAST)


def test_config_keys_of_custom_models_are_checked():
    with pytest.raises(ConfigError, match=r"model\.type=custom needs model\.factory"):
        load_config(None, ["model.type=custom"])
    with pytest.raises(ConfigError, match=r"model\.factory is only read by model\.type=custom"):
        load_config(None, ["model.factory=a.b:c"])


@pytest.mark.parametrize(
    ("config", "overrides", "named"),
    [
        ({"model": {"hidden": [8]}}, [], r"^model.hidden: not read by model.type=custom"),
        ({"train": {"momentum": 0.9}}, [], r"^train.momentum: not read by train.optimizer=adam"),
        ({}, ["objective.beta.cycles=2"], r"^objective.beta.cycles: not read by objective.beta.type=constant"),
    ],
)
def test_train_refuses_a_key_its_config_does_not_read_before_writing(tmp_path, config, overrides, named):
    """``vaelab.train``'s config is checked as a fresh ``vaelab train`` config is: a key that another model type,
    optimizer or schedule type reads is one line, before the run folder is made."""
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match=named):
        vaelab.train(good, _x(), out, model_kwargs={"latent": 2}, config=config, overrides=[*FAST, *overrides])
    assert not out.exists()


def test_loading_imports_only_the_recorded_factory(tmp_path, capsys):
    src = tmp_path / "mymodel.py"
    src.write_text(Path(__file__).read_text())  # a copy of this module, imported by path
    spec = f"{src}:good"
    run = vaelab.train(spec, _x(), tmp_path / "run", model_kwargs={"latent": 2}, overrides=FAST)
    assert yaml.safe_load((run.path / "config.yaml").read_text())["model"]["factory"] == spec
    loaded = vaelab.load_run(run.path)
    assert loaded.model.latent_dim == 2 and not loaded.model.training
    src.unlink()
    for key in [k for k in sys.modules if k.startswith("_vaelab_factory_mymodel")]:
        del sys.modules[key]
    with pytest.raises(ValueError, match=r"model.factory: file .*mymodel.py does not exist"):
        vaelab.load_run(run.path)
    capsys.readouterr()
    assert cli(["evaluate", str(run.path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "model.factory" in err[0]


# ------------------------------------------------------------------------------------------------------------
# metrics as functions on any model meeting the contract


def test_metrics_on_a_pair_of_modules():
    torch.manual_seed(0)
    pair = good(latent=3)
    x = _x(200)
    y = torch.arange(200) % 2
    m = vaelab.evaluate(pair, x, iw_samples=5, mi_pool=50)
    assert m["n"] == 200 and m["iw_samples"] == 5 and m["mi_pool"] == 50 and len(m["kl_per_dim"]) == 3
    assert m["nll_iw"] <= -m["elbo"] + 0.5 and "bpd" in m
    nll = vaelab.iw_nll(pair, x, num_samples=5)
    assert nll.shape == (200,) and abs(float(nll.mean()) - m["nll_iw"]) < 0.5
    terms = vaelab.elbo(pair, x)
    assert torch.allclose(terms["elbo"], -(terms["rate"] + terms["distortion"]))
    mi = vaelab.mutual_information(pair, x, pool="all")
    assert mi.pool == 200 and mi.value <= math.log(200)
    au, activity = vaelab.active_units(pair, x)
    assert activity.shape == (3,) and au == int((activity >= 0.01).sum())
    assert torch.allclose(vaelab.kl_per_dim(pair, x).sum(), terms["rate"].mean(), atol=1e-4)
    holes = vaelab.hole_metrics(pair, x, prior_samples=2000)
    assert holes["hole_pool"] == 200 and "cu_0.03" in holes
    p = vaelab.probe(pair, [(x[:150], y[:150])], [(x[150:], y[150:])])
    assert 0 <= p["accuracy"] <= 1 and p["majority"] == 0.5 and p["classes"] == 2
    d = vaelab.diagnosis(m)
    assert d.verdict in ("collapsed", "partial", "healthy")
    mu, logvar = vaelab.posteriors(pair, x)
    assert mu.shape == logvar.shape == (200, 3)


def test_token_batches_shift_the_users_ids():
    b = vaelab.token_batch([[0, 5], [2]])
    assert b.tokens.tolist() == [[1, 4, 9, 2], [1, 6, 2, 0]] and b.lengths.tolist() == [4, 3]
    assert vaelab.token_batch([np.array([0, 5]), torch.tensor([2])]).tokens.tolist() == b.tokens.tolist()
    for bad, where in (
        (["the cat", "a dog"], r"sequences\[0\]"),
        ([[0], [1.5]], r"sequences\[1\]"),
        ("ab", "sequences"),
    ):
        with pytest.raises(UserError, match=rf"token_batch: {where} must be a list of"):
            vaelab.token_batch(bad)
    with pytest.raises(UserError, match=r"integer token ids \(in \[0, V\)\)"):
        vaelab.token_batch([[0, -1]])
    data = vaelab.token_data([[0, 1], [2, 3, 4]] * 10)
    assert data.model_vocab_size == 5 + vaelab.TOKEN_OFFSET
    with pytest.raises(ValueError, match="outside vocab_size=3"):
        vaelab.token_data([[0, 5]] * 10, vocab_size=3)
    with pytest.raises(TypeError, match=r"data train\[1\] must be a sequence of int token ids"):
        vaelab.token_data([[0, 1], "ab"])


def test_tensor_data_holds_out_fixed_splits_and_reads_datasets():
    x = torch.randn(50, 2, 3)
    data = vaelab.tensor_data(x)
    sizes = {k: len(v[0]) for k, v in data.splits.items()}
    assert sizes == {"train": 40, "valid": 5, "test": 5} and data.example_shape == (2, 3)
    again = vaelab.tensor_data(x)
    assert (again.splits["test"][0] == data.splits["test"][0]).all()
    ds = torch.utils.data.TensorDataset(x, torch.arange(50) % 3)
    labelled = vaelab.tensor_data(ds, test_fraction=0.2)
    assert labelled.labelled and len(labelled.splits["test"][0]) == 10


def test_the_package_serves_exactly_the_api_module_names() -> None:
    """``vaelab._API`` (lazy names) and ``vaelab.api.__all__`` are two lists of the same names: keep them equal."""
    import vaelab
    import vaelab.api

    assert sorted(vaelab._API) == sorted(vaelab.api.__all__)
    assert all(getattr(vaelab, name) is getattr(vaelab.api, name) for name in vaelab._API)


# ------------------------------------------------------------------------------------------------------------
# docs/api.md and examples/


def _signature_text(obj, skip_self: bool = False) -> str:
    """``(a, b=1, *, c='x')``: a signature as docs/api.md writes it (no annotations; a dataclass field's default
    factory as ``...``)."""
    import inspect

    params = list(inspect.signature(obj).parameters.values())[1 if skip_self else 0 :]
    parts: list[str] = []
    for p in params:
        if p.kind is p.KEYWORD_ONLY and "*" not in parts and not any(x.startswith("*") for x in parts):
            parts.append("*")
        if p.kind is p.VAR_POSITIONAL:
            parts.append(f"*{p.name}")
        elif p.kind is p.VAR_KEYWORD:
            parts.append(f"**{p.name}")
        elif p.default is p.empty:
            parts.append(p.name)
        else:
            parts.append(f"{p.name}={'...' if repr(p.default) == '<factory>' else repr(p.default)}")
    return f"({', '.join(parts)})"


def test_docs_api_lists_every_exported_name_with_its_signature() -> None:
    """docs/api.md's reference block names every entry of ``vaelab.__all__`` with the signature the package has
    (functions and dataclasses), its base class (other classes) or its value (constants), and vaelab.Run's methods;
    and it names nothing that the package does not export."""
    import dataclasses
    import inspect
    import re

    doc = (REPO / "docs" / "api.md").read_text()
    block = doc.split("## Reference: every name of `import vaelab`", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    lines = [line.split("  #", 1)[0].strip() for line in block.splitlines()]
    wrong = []
    for name in vaelab.__all__:
        obj = getattr(vaelab, name)
        if inspect.isfunction(obj) or (inspect.isclass(obj) and dataclasses.is_dataclass(obj)):
            want = f"vaelab.{name}{_signature_text(obj)}"
        elif inspect.isclass(obj):
            want = f"class vaelab.{name}({obj.__mro__[1].__name__})"
        else:
            want = f"vaelab.{name} = {obj!r}"
        if want not in lines:
            wrong.append(want)
    documented = set(re.findall(r"^(?:class )?vaelab\.(\w+)", block, re.M))
    assert documented == set(vaelab.__all__), sorted(documented ^ set(vaelab.__all__))
    for attr, member in vars(vaelab.Run).items():
        if attr.startswith("_"):
            continue
        want = f".{attr}" if isinstance(member, property) else f".{attr}{_signature_text(member, skip_self=True)}"
        if not re.search(rf"{re.escape(want)}(?![\w(])", block):
            wrong.append(f"vaelab.Run{want}")
    assert not wrong, f"docs/api.md's reference does not have: {wrong}"


EXAMPLES = ("custom_conv_vae", "custom_token_decoder")
"""The scripts of examples/, each run above with its ``--quick`` budget."""


def test_every_example_is_run_by_these_tests_and_shown_in_the_docs() -> None:
    assert sorted(p.stem for p in (REPO / "examples").glob("*.py")) == sorted(EXAMPLES)
    source = Path(__file__).read_text()
    doc = (REPO / "docs" / "api.md").read_text()
    for name in EXAMPLES:
        assert f'_example("{name}").main(["--quick"' in source, name
        assert f"(../examples/{name}.py)" in doc, name
