"""Bad inputs over every command (issue 16): each is refused with exit status 2 and exactly one line on stderr that
names the key, file or path at fault, without a traceback, and changes no run folder that existed before.

The CLI runs in-process (``vaelab.cli.main(argv)``), against a few tiny run folders trained once per module, so
the whole table takes seconds; a few cases also run as ``python -m vaelab`` subprocesses. A case's ``{new}`` is a
folder that must still not exist afterwards (no run folder written). ``test_every_ranged_key_...`` adds one case
per ranged key of :data:`vaelab.checks.RULES`.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from conftest import TINY, TINY_TEXT_RUN, write_corpus
from vaelab.checks import RULES, Either, Items, Num, Rule, Text, leaf_keys
from vaelab.cli import main
from vaelab.config import load_config
from vaelab.study.collapse import StudyRequest, run_study
from vaelab.sweep import load_sweep, run_sweep, write_results
from vaelab.sweep.runner import max_workers
from vaelab.training.trainer import Trainer

CUDA = torch.cuda.is_available()
MPS = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def _yaml(path: Path, data: object) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    """Tiny trained runs (image and text), their configs, a corpus, a sweep file and some bad files."""
    root = tmp_path_factory.mktemp("world")
    w: dict[str, Path] = {"root": root}
    tiny = {**TINY, "train": {**TINY["train"], "epochs": 1}}
    w["cfg"] = _yaml(root / "tiny.yaml", tiny)
    # the tiny config without model.hidden (read only by model.type=mlp), for cases that choose another type
    w["bare_cfg"] = _yaml(root / "bare.yaml", {**tiny, "model": {"type": "mlp", "latent_dim": 4}})
    # the tiny config with the plain objective (beta = 1), the base a study accepts
    w["plain_cfg"] = _yaml(root / "plain.yaml", {**tiny, "objective": {}})
    w["run"] = root / "run"
    Trainer(load_config(w["cfg"]), w["run"]).fit()
    w["corpus"] = write_corpus(root / "corpus", n_train=60, n_eval=16)
    text = {
        **TINY_TEXT_RUN,
        "data": {"name": "text", "path": str(w["corpus"])},
        "train": {**TINY_TEXT_RUN["train"], "epochs": 1},
    }
    w["text_cfg"] = _yaml(root / "text.yaml", text)
    w["text_run"] = root / "text_run"
    Trainer(load_config(w["text_cfg"]), w["text_run"]).fit()

    labelled = root / "labelled"
    labelled.mkdir()
    for name in ("train.txt", "valid.txt", "test.txt"):
        lines = (w["corpus"] / name).read_text().splitlines()
        (labelled / name).write_text("".join(f"{i % 3}\t{s}\n" for i, s in enumerate(lines)))
    w["labelled_cfg"] = _yaml(root / "labelled.yaml", {**text, "data": {"name": "text", "path": str(labelled)}})
    w["sweep"] = _yaml(root / "sweep.yaml", {"name": "s", "base": str(w["cfg"]), "grid": {"train.batch_size": [32, 0]}})
    w["sweep_ok"] = _yaml(root / "sweep_ok.yaml", {"name": "s", "base": str(w["cfg"])})
    w["file"] = root / "a_file.txt"
    w["file"].write_text("not a folder\n")
    w["latin1"] = root / "latin1.txt"
    w["latin1"].write_bytes("caf\xe9 au lait\n".encode("latin-1"))
    w["latin1_corpus"] = root / "latin1_corpus"
    shutil.copytree(w["corpus"], w["latin1_corpus"])
    (w["latin1_corpus"] / "train.txt").write_bytes("the caf\xe9 sees it\n".encode("latin-1") * 20)
    w["latin1_yaml"] = root / "latin1.yaml"
    w["latin1_yaml"].write_bytes("name: caf\xe9\n".encode("latin-1"))
    w["bad_yaml"] = root / "bad.yaml"
    w["bad_yaml"].write_text("train: {batch_size: 32\n")
    w["list_yaml"] = _yaml(root / "list.yaml", [1, 2])
    w["plain_dir"] = root / "plain_dir"
    w["plain_dir"].mkdir()
    w["empty_test_npz"] = root / "empty_test.npz"
    rng = np.random.default_rng(0)
    np.savez(w["empty_test_npz"], train=(rng.random((64, 36)) > 0.5).astype("float32"), test=np.zeros((0, 36)))
    return w


def _hashes(*roots: Path) -> dict[str, str]:
    """sha256 of every file under ``roots`` (and the list of files), to show that nothing changed."""
    out = {}
    for root in roots:
        for p in sorted(root.rglob("*")):
            if p.is_file():
                out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


# --------------------------------------------------------------------------------------------------------------
# run-folder copies that a case damages (the world's own folders are never touched)


def _copy(w: dict[str, Path], tmp: Path, which: str = "run") -> Path:
    dst = tmp / f"copy_{which}"
    shutil.copytree(w[which], dst)
    return dst


def truncated(name: str, which: str = "run") -> Callable[[dict, Path], dict[str, str]]:
    def setup(w: dict, tmp: Path) -> dict[str, str]:
        d = _copy(w, tmp, which)
        p = d / "checkpoints" / name
        p.write_bytes(p.read_bytes()[:1000])
        return {"copy": str(d)}

    return setup


def foreign(name: str) -> Callable[[dict, Path], dict[str, str]]:
    def setup(w: dict, tmp: Path) -> dict[str, str]:
        d = _copy(w, tmp)
        (d / "checkpoints" / name).write_bytes(b"PK\x03\x04 this is not a checkpoint" * 20)
        return {"copy": str(d)}

    return setup


def of_another_run(name: str, which: str = "run") -> Callable[[dict, Path], dict[str, str]]:
    """A copy whose checkpoint is that of another run of the same config (``cp other/checkpoints/best.pt``): the
    same weights' shapes, another run's id."""

    def setup(w: dict, tmp: Path) -> dict[str, str]:
        d = _copy(w, tmp, which)
        p = d / "checkpoints" / name
        ckpt = torch.load(p, weights_only=True)
        assert isinstance(ckpt["run_id"], str)
        ckpt["run_id"] = "0123456789abcdef0123456789abcdef"
        torch.save(ckpt, p)
        return {"copy": str(d)}

    return setup


def tensor_only(name: str) -> Callable[[dict, Path], dict[str, str]]:
    def setup(w: dict, tmp: Path) -> dict[str, str]:
        d = _copy(w, tmp)
        torch.save(torch.zeros(3), d / "checkpoints" / name)
        return {"copy": str(d)}

    return setup


def removed(name: str) -> Callable[[dict, Path], dict[str, str]]:
    def setup(w: dict, tmp: Path) -> dict[str, str]:
        d = _copy(w, tmp)
        (d / "checkpoints" / name).unlink()
        return {"copy": str(d)}

    return setup


def saved_value(key: str, value: object) -> Callable[[dict, Path], dict[str, str]]:
    """A copy whose config.yaml holds a bad value (as an older vaelab could have written)."""

    def setup(w: dict, tmp: Path) -> dict[str, str]:
        d = _copy(w, tmp)
        data = yaml.safe_load((d / "config.yaml").read_text())
        section, _, leaf = key.partition(".")
        data[section][leaf] = value
        (d / "config.yaml").write_text(yaml.safe_dump(data))
        return {"copy": str(d)}

    return setup


def _write_in_copy(w: dict, tmp: Path, name: str, text: str) -> dict[str, str]:
    """A copy of the run whose file ``name`` holds ``text``."""
    d = _copy(w, tmp)
    (d / name).write_text(text)
    return {"copy": str(d)}


def _empty_sweep_copy(tmp: Path) -> dict[str, str]:
    """A sweep folder whose own sweep.yaml was emptied."""
    d = tmp / "emptied_sweep"
    (d / "points").mkdir(parents=True)
    (d / "sweep.yaml").write_text("")
    return {"dir": str(d)}


def config_text(text: str) -> Callable[[dict, Path], dict[str, str]]:
    def setup(w: dict, tmp: Path) -> dict[str, str]:
        d = _copy(w, tmp)
        (d / "config.yaml").write_text(text)
        return {"copy": str(d)}

    return setup


# --------------------------------------------------------------------------------------------------------------
# the table


@dataclass
class Case:
    id: str
    argv: str
    """Arguments separated by spaces, with {placeholders}: world paths, {new} (must not exist afterwards), and
    what ``setup`` returns. One argument may hold spaces if written between | bars |."""
    expect: str
    """A piece of the one stderr line (the key, file or path at fault)."""
    setup: Callable[[dict, Path], dict[str, str]] | None = None
    skip: bool = False
    env: dict[str, str] | None = None
    """Environment variables set while the case runs."""


def T(key_value: str, expect: str | None = None) -> Case:
    """``train CFG key=value --out NEW``, expected to name the key."""
    return Case(f"train-{key_value}", f"train {{cfg}} {key_value} --out {{new}}", expect or key_value.split("=")[0])


CASES: list[Case] = [
    # ---- train: values (ranges, not only types) ----
    T("train.batch_size=0"),
    T("train.batch_size=-1"),
    T("train.batch_size=1.5"),
    T("train.epochs=0"),
    T("train.epochs=-2"),
    T("train.max_steps=0"),
    T("train.max_steps=-1"),
    T("train.grad_clip=-1"),
    T("train.grad_clip=0"),
    T("train.lr=-1"),
    T("train.lr=0"),
    T("train.lr=.nan"),
    T("train.momentum=1.5"),
    T("train.weight_decay=-0.1"),
    T("train.early_stopping_patience=0"),
    T("train.checkpoint_every_steps=-1"),
    T("train.checkpoint_every_steps=0"),
    T("train.log_every_steps=0"),
    T("train.lr_decay.factor=1.5"),
    T("train.lr_decay.factor=0"),
    T("train.lr_decay.patience=0"),
    T("train.lr_decay.max_decays=-1"),
    T("train.device=tpu"),
    Case("train-device-cuda", "train {cfg} train.device=cuda --out {new}", "train.device=cuda", skip=CUDA),
    Case("train-device-cuda1", "train {cfg} train.device=cuda:7 --out {new}", "train.device=cuda:7"),
    Case("train-device-mps", "train {cfg} train.device=mps --out {new}", "train.device=mps", skip=MPS),
    T("train.strategy=nope"),
    T("train.strategy_options.foo=1", "train.strategy_options"),
    T("train.strategy=aggressive train.strategy_options.window=0", "window"),
    T("train.optimizer=adamw"),
    T("train.progress=maybe"),
    T("train.precision=fp8"),
    # ---- train: model ----
    T("model.latent_dim=0"),
    T("model.hidden=[0]", "model.hidden[0]"),
    T("model.hidden=[64,-3]", "model.hidden[1]"),
    T("model.channels=[0]", "model.channels[0]"),
    T("model.type=nope"),
    T("model.activation=nope"),
    T("model.likelihood=nope"),
    T("model.gaussian_std=0"),
    T("model.bn_gamma=0"),
    T("model.delta_rate=-1"),
    T("model.dropout_in=1"),
    T("model.word_dropout=1.5"),
    T("model.emb_dim=0"),
    T("model.pixelcnn_layers=0"),
    T("model.skip=true", "model.skip"),
    T("model.init_range=-0.1"),
    Case(
        "train-conv-on-1x1", "train {bare_cfg} model.type=conv data.image_shape=[1,1,1] --out {new}", "model.type=conv"
    ),
    Case(
        "train-key-another-type-reads",
        "train {cfg} model.type=conv --out {new}",
        "model.hidden: not read by model.type=conv",
    ),
    Case(
        "train-override-key-another-type-reads",
        "train {bare_cfg} model.type=pixelcnn model.activation=tanh --out {new}",
        "model.activation: not read by model.type=pixelcnn",
    ),
    Case(
        "train-head-key-without-its-head",
        "train {cfg} model.bn_gamma=0.3 --out {new}",
        "model.bn_gamma: not read by model.posterior=gaussian",
    ),
    Case(
        "train-conv-too-deep", "train {bare_cfg} model.type=conv model.channels=[4,4,4,4] --out {new}", "model.channels"
    ),
    # ---- train: objective ----
    T("objective.beta.value=-1"),
    T("objective.beta.start=-0.5"),
    T("objective.beta.warmup_steps=-5"),
    T("objective.beta.type=cyclical objective.beta.cycles=0", "objective.beta.cycles"),
    T("objective.beta.ratio=2"),
    T("objective.beta.type=exponential", "objective.beta.type"),
    T("objective.beta.warmup_epochs=2", "warmup_steps or warmup_epochs"),
    T("objective.free_bits=-1"),
    T("objective.free_bits_groups=3", "objective.free_bits_groups"),
    T("objective.free_bits_groups=0"),
    T("objective.regulariser=nope"),
    T("objective.regulariser_options.foo=1", "objective.regulariser_options"),
    Case("train-terms-type", "train {cfg} |objective.terms=[{{type: nope}}]| --out {new}", "objective.terms[0].type"),
    # ---- train: eval ----
    T("eval.batch_size=0"),
    T("eval.iw_samples=-1"),
    T("eval.iw_chunk=0"),
    T("eval.mi_pool=1"),
    T("eval.mi_pool=some"),
    T("eval.au_threshold=-1"),
    T("eval.extra_metrics=[nope]", "eval.extra_metrics"),
    T("eval.hole_prior_samples=0"),
    T("eval.final_split=dev"),
    # ---- train: data ----
    T("data.valid_size=-1"),
    T("data.train_size=0"),
    T("data.eval_size=0"),
    T("data.num_examples=0"),
    T("data.noise=0.9", "data.noise"),
    T("data.image_shape=[0,6,6]", "data.image_shape[0]"),
    T("data.image_shape=[1,2,3,4]", "data.image_shape"),
    T("data.name=nope"),
    T("data.split_seed=-1"),
    T("data.vocab_size=3"),
    T("data.max_length=0"),
    T("data.min_length=0"),
    Case("train-unk-token-two-words", "train {cfg} |data.unk_token=a b| --out {new}", "data.unk_token"),
    T("data.min_length=5 data.max_length=3", "data.min_length"),
    T("seed=-1"),
    T("name=a/b", "name"),
    # ---- train: overrides, files and folders ----
    Case("train-override-without-equals", "train {cfg} train.batch_size --out {new}", "train.batch_size"),
    Case("train-unknown-section", "train {cfg} nosuch.key=1 --out {new}", "nosuch"),
    Case("train-unknown-key", "train {cfg} train.nosuch=1 --out {new}", "train.nosuch"),
    Case("train-config-missing", "train {root}/missing.yaml --out {new}", "missing.yaml"),
    Case("train-config-is-a-folder", "train {plain_dir} --out {new}", "plain_dir"),
    Case("train-config-bad-yaml", "train {bad_yaml} --out {new}", "bad.yaml"),
    Case("train-config-not-utf8", "train {latin1_yaml} --out {new}", "latin1.yaml"),
    Case("train-config-a-list", "train {list_yaml} --out {new}", "list.yaml"),
    Case("train-out-is-a-file", "train {cfg} --out {file}", "a_file.txt"),
    Case("train-out-under-a-file", "train {cfg} --out {file}/run", "a_file.txt"),
    Case("train-out-is-a-finished-run", "train {cfg} --out {run}", "vaelab resume"),
    Case("train-labelled-file-read-as-plain", "train {labelled_cfg} --out {new}", "data.format=label_tab"),
    Case("train-text-corpus-missing", "train {text_cfg} data.path={root}/nowhere --out {new}", "nowhere"),
    Case("train-text-not-utf8", "train {text_cfg} data.path={latin1_corpus} --out {new}", "latin1_corpus/train.txt:1"),
    Case(
        "train-npz-empty-test",
        "train {cfg} data.name=npz data.path={empty_test_npz} data.image_shape=[1,6,6] data.valid_size=8 "
        "data.eval_size=null --out {new}",
        "test split is empty",
    ),
    Case(
        "set9-d45-npz-path-a-folder",
        "train {cfg} data.name=npz data.path={plain_dir} data.image_shape=[1,6,6] --out {new}",
        "names the folder",
    ),
    Case(
        "train-no-valid-but-early-stopping",
        "train {cfg} data.name=npz data.path={empty_test_npz} data.image_shape=[1,6,6] data.valid_size=0 "
        "eval.final_split=train train.early_stopping_patience=2 --out {new}",
        "train.early_stopping_patience",
    ),
    # ---- resume: only settings that do not change the model, checked the same way ----
    Case("resume-train-lr", "resume {run} train.lr=0.1", "train.lr"),
    Case("resume-model-key", "resume {run} model.latent_dim=8", "model.latent_dim"),
    Case("resume-data-eval-size", "resume {run} data.eval_size=10", "data.eval_size"),
    Case("resume-train-epochs", "resume {run} train.epochs=9", "train.epochs"),
    Case("resume-eval-iw-samples", "resume {run} eval.iw_samples=-1", "eval.iw_samples"),
    Case("resume-eval-mi-pool", "resume {run} eval.mi_pool=0", "eval.mi_pool"),
    Case("resume-device", "resume {run} train.device=tpu", "train.device"),
    Case("resume-log-every", "resume {run} train.log_every_steps=0", "train.log_every_steps"),
    Case("resume-precision", "resume {run} train.precision=bf16", "train.precision"),
    Case("resume-unknown-key", "resume {run} nosuch.key=1", "nosuch.key"),
    Case("resume-no-equals", "resume {run} eval.iw_samples", "eval.iw_samples"),
    Case("resume-missing-folder", "resume {root}/nowhere", "nowhere"),
    Case("resume-not-a-run-folder", "resume {plain_dir}", "plain_dir"),
    Case(
        "resume-no-last-checkpoint",
        "resume {copy}",
        "last.pt does not exist but the run logged evaluations",
        removed("last.pt"),
    ),
    Case("resume-truncated-last", "resume {copy}", "last.pt", truncated("last.pt")),
    Case("resume-foreign-last", "resume {copy}", "last.pt", foreign("last.pt")),
    Case("resume-last-of-another-run", "resume {copy}", "last.pt belongs to another run", of_another_run("last.pt")),
    Case("resume-config-not-yaml", "resume {copy}", "config.yaml", config_text("train: [\n")),
    Case("resume-saved-bad-value", "resume {copy}", "train.batch_size", saved_value("train.batch_size", 0)),
    # ---- evaluate ----
    Case("evaluate-iw-negative", "evaluate {run} --iw-samples -1", "--iw-samples"),
    Case("evaluate-iw-text", "evaluate {run} --iw-samples many", "--iw-samples"),
    Case("evaluate-split", "evaluate {run} --split dev", "--split"),
    Case("evaluate-checkpoint", "evaluate {run} --checkpoint middle", "--checkpoint"),
    Case("evaluate-eval-size-0", "evaluate {run} data.eval_size=0", "data.eval_size"),
    Case("evaluate-eval-size-neg", "evaluate {run} data.eval_size=-5", "data.eval_size"),
    Case("evaluate-iw-chunk", "evaluate {run} eval.iw_chunk=0", "eval.iw_chunk"),
    Case(
        "set9-evaluate-extras-every-epoch",
        "evaluate {run} eval.extras_every_epoch=true",
        "vaelab evaluate does not read eval.extras_every_epoch",
    ),
    Case(
        "set9-evaluate-eval-size-of-train",
        "evaluate {run} --split train data.eval_size=5",
        "data.eval_size subsets the valid and test splits, not --split train",
    ),
    Case("evaluate-precision-unknown", "evaluate {run} train.precision=fp64", "train.precision"),
    Case("evaluate-model-key", "evaluate {run} model.hidden=[8]", "model.hidden"),
    Case("evaluate-train-key", "evaluate {run} train.lr=1", "train.lr"),
    Case("evaluate-missing-folder", "evaluate {root}/nowhere", "nowhere"),
    Case("evaluate-a-file", "evaluate {file}", "a_file.txt"),
    Case("evaluate-no-best", "evaluate {copy}", "best.pt", removed("best.pt")),
    Case("evaluate-truncated-best", "evaluate {copy}", "best.pt", truncated("best.pt")),
    Case("evaluate-foreign-best", "evaluate {copy}", "best.pt", foreign("best.pt")),
    Case("evaluate-best-of-another-run", "evaluate {copy}", "best.pt belongs to another", of_another_run("best.pt")),
    Case("evaluate-tensor-not-checkpoint", "evaluate {copy}", "best.pt", tensor_only("best.pt")),
    Case("evaluate-truncated-last", "evaluate {copy} --checkpoint last", "last.pt", truncated("last.pt")),
    Case("evaluate-saved-bad-value", "evaluate {copy}", "config.yaml", saved_value("eval.iw_chunk", 0)),
    Case("evaluate-device", "evaluate {run} train.device=cuda", "train.device=cuda", skip=CUDA),
    # ---- sample / reconstruct / interpolate ----
    Case("sample-n-zero", "sample {text_run} -n 0", "-n"),
    Case("sample-n-negative", "sample {text_run} -n -1", "-n"),
    Case("sample-temperature-zero", "sample {text_run} --temperature 0", "--temperature"),
    Case("sample-temperature-negative", "sample {text_run} --temperature -1", "--temperature"),
    Case("sample-max-length-zero", "sample {text_run} --max-length 0", "--max-length"),
    Case("sample-seed-negative", "sample {text_run} --seed -1", "--seed"),
    Case("sample-device-cuda", "sample {text_run} --device cuda", "--device", skip=CUDA),
    Case("sample-device-name", "sample {text_run} --device tpu", "--device"),
    Case("sample-checkpoint", "sample {text_run} --checkpoint x", "--checkpoint"),
    Case("sample-image-run", "sample {run}", "not a text run"),
    Case("sample-missing-folder", "sample {root}/nowhere", "nowhere"),
    Case("sample-truncated-best", "sample {copy}", "best.pt", truncated("best.pt", "text_run")),
    Case("sample-best-of-another-run", "sample {copy}", "best.pt belongs to", of_another_run("best.pt", "text_run")),
    Case("reconstruct-samples-zero", "reconstruct {text_run} |the cat| --samples 0", "--samples"),
    Case("reconstruct-file-missing", "reconstruct {text_run} --file {root}/none.txt", "none.txt"),
    Case("reconstruct-file-folder", "reconstruct {text_run} --file {plain_dir}", "plain_dir"),
    Case("reconstruct-file-not-utf8", "reconstruct {text_run} --file {latin1}", "latin1.txt"),
    Case("reconstruct-nothing", "reconstruct {text_run}", "no sentences"),
    Case("reconstruct-both", "reconstruct {text_run} |the cat| --file {latin1}", "not both"),
    Case("interpolate-steps-one", "interpolate {text_run} |the cat| |a dog| --steps 1", "--steps"),
    Case("interpolate-steps-zero", "interpolate {text_run} |the cat| |a dog| --steps 0", "--steps"),
    # ---- issue 16, seventh set: an option that the chosen decoding mode does not read ----
    Case("set7-sample-greedy-temperature", "sample {text_run} --greedy --temperature 0.5", "--temperature 0.5 has no"),
    Case("set7-reconstruct-temperature-greedy", "reconstruct {text_run} |a dog| --temperature 50", "add --sample"),
    Case(
        "set7-reconstruct-posterior-temperature",
        "reconstruct {text_run} |a dog| --posterior-sample --temperature 2",
        "--temperature 2 has no effect here: words are decoded greedily unless --sample",
    ),
    Case(
        "set7-reconstruct-samples-greedy-mean",
        "reconstruct {text_run} |a dog| --samples 3",
        "--samples 3 has no effect here: without --sample or --posterior-sample every decoding is the same",
    ),
    Case("set7-reconstruct-seed-greedy-mean", "reconstruct {text_run} |a dog| --seed 4", "--seed 4 has no effect"),
    Case(
        "set7-interpolate-temperature-greedy",
        "interpolate {text_run} |a| |b| --temperature 3",
        "--temperature 3 has no",
    ),
    Case("set7-reconstruct-file-then-sentence", "reconstruct {text_run} --file {latin1} |a dog|", "not both"),
    Case(
        "set7-reconstruct-label-on-plain-run",
        "reconstruct {text_run} |1\tthe cat|",
        "looks like LABEL<TAB>sentence, but the run was trained on data.format=plain",
    ),
    # ---- sweep ----
    Case("sweep-workers-negative", "sweep {sweep_ok} --workers -3 --out {new}", "--workers"),
    Case("set9-k27-train-a-sweep-file", "train {sweep_ok} --out {new}", "is a sweep file (base"),
    Case("set9-k28-sweep-a-run-config", "sweep {cfg} --out {new}", "is a run config ("),
    Case(
        "set9-l28-study-data-a-sweep-file",
        "study collapse --data {sweep_ok} --out {new}",
        "sweep_ok.yaml is a sweep file (base",
    ),
    Case("sweep-workers-zero", "sweep {sweep_ok} --workers 0 --out {new}", "--workers"),
    # a Ray address where no cluster can be: refused in seconds (Ray's own attempts took > 90 s), nothing written
    Case(
        "sweep-ray-address-no-host",
        "sweep {sweep_ok} --workers 1 --backend ray --address nowhere:1 --out {new}",
        "--address 'nowhere:1': host 'nowhere' does not resolve",
    ),
    Case(
        "sweep-ray-address-no-listener",
        "sweep {sweep_ok} --backend ray --address 127.0.0.1:1 --out {new}",
        "nothing accepts a connection at 127.0.0.1:1",
    ),
    Case(
        "sweep-ray-address-no-port",
        "sweep {sweep_ok} --backend ray --address headnode --out {new}",
        "--address 'headnode': not HOST:PORT",
    ),
    Case(
        "report-out-a-device",
        "report {run} --out /dev/null",
        "--out /dev/null is not a regular file",
        skip=not Path("/dev/null").exists(),
    ),
    Case(
        "sweep-address-without-ray",
        "sweep {sweep_ok} --address 127.0.0.1:1 --out {new}",
        "is read only with --backend ray",
    ),
    Case(
        "study-ray-address-no-host",
        "study collapse --data {plain_cfg} --backend ray --address nowhere:1 --out {new}",
        "--address 'nowhere:1'",
    ),
    Case("sweep-index-text", "sweep {sweep_ok} --index x --out {new}", "--index"),
    Case("sweep-index-reversed", "sweep {sweep_ok} --index 5-2 --out {new}", "--index"),
    Case("sweep-file-missing", "sweep {root}/none.yaml --out {new}", "none.yaml"),
    Case("sweep-bad-point", "sweep {sweep} --out {new}", "train.batch_size"),
    Case("sweep-run-config-as-sweep", "sweep {cfg} --out {new}", "tiny.yaml"),
    Case("sweep-out-a-file", "sweep {sweep_ok} --out {file}", "a_file.txt"),
    Case("sweep-aggregate-missing", "sweep-aggregate {root}/nowhere", "nowhere"),
    Case("plot-sweep-missing", "plot-sweep {root}/nowhere", "nowhere"),
    # ---- study ----
    Case("study-iw-negative", "study collapse --data {plain_cfg} --iw-samples -1 --out {new}", "--iw-samples"),
    Case("study-workers-zero", "study collapse --data {plain_cfg} --workers 0 --out {new}", "--workers"),
    Case("study-seeds", "study collapse --data {plain_cfg} --seeds x --out {new}", "--seeds"),
    Case("study-methods", "study collapse --data {plain_cfg} --methods nope --out {new}", "nope"),
    Case("study-budget", "study collapse --data {plain_cfg} --budget soon --out {new}", "soon"),
    Case("study-data-missing", "study collapse --data {root}/none.yaml --out {new}", "none.yaml"),
    Case("study-no-data", "study collapse --out {new}", "--data"),
    Case("study-set-bad-value", "study collapse --data {plain_cfg} --set train.lr=-1 --out {new}", "train.lr"),
    Case("study-out-a-file", "study collapse --data {plain_cfg} --out {file}", "a_file.txt"),
    # ---- diagnose / report / latent-plot / lag-plot / theory ----
    Case("diagnose-missing", "diagnose {root}/nowhere", "nowhere"),
    Case("diagnose-split", "diagnose {run} --split dev", "--split"),
    Case("diagnose-truncated-best", "diagnose {copy} --evaluate", "best.pt", truncated("best.pt")),
    Case(
        "diagnose-best-of-another-run",
        "diagnose {copy} --evaluate",
        "best.pt belongs to another run",
        of_another_run("best.pt"),
    ),
    Case("report-missing", "report {root}/nowhere", "nowhere"),
    Case("report-out-a-folder", "report {run} --out {plain_dir}", "plain_dir"),
    Case("report-out-under-a-file", "report {run} --out {file}/r.html", "a_file.txt"),
    Case("latent-plot-max-examples", "latent-plot {run} --max-examples 0", "--max-examples"),
    Case("latent-plot-prior-samples", "latent-plot {run} --prior-samples -1", "--prior-samples"),
    Case("latent-plot-missing", "latent-plot {root}/nowhere", "nowhere"),
    Case("latent-plot-out-a-folder", "latent-plot {run} --out {plain_dir}", "plain_dir"),
    Case("lag-plot-steps", "lag-plot --quick --steps 0 --out {new}/lag.png", "--steps"),
    Case("lag-plot-scale", "lag-plot --quick --teacher-z-scale -1 --out {new}/lag.png", "--teacher-z-scale"),
    Case("lag-plot-out-under-a-file", "lag-plot --quick --out {file}/lag.png", "a_file.txt"),
    Case("theory-N", "theory linear-vae --N 0 --out {new}", "--N"),
    Case("theory-out-a-file", "theory linear-vae --quick --out {file}", "a_file.txt"),
    Case("set10-th08-theory-into-a-run", "theory linear-vae --quick --figure 1 --out {run}", "is a vaelab run"),
    Case("set10-g05-lag-plot-beside-a-summary", "lag-plot --quick --out {run}/summary.png", "(its numbers, summary"),
    Case("set10-p17-root-on-generated-data", "train {cfg} data.root={root} --out {new}", "override data.root="),
    Case(
        "set10-u01-checksum-on-generated-data",
        "train {cfg} data.verify_checksum=false --out {new}",
        "data.verify_checksum: not read by data.name=synthetic_blobs",
    ),
    Case("set10-u13-path-on-generated-data", "train {cfg} data.path=x.npz --out {new}", "data.path: not read by"),
    Case(
        "set10-u12b-files-on-generated-data",
        "train {cfg} |data.files={{train: a.npz}}| --out {new}",
        "data.files: not read by data.name=synthetic_blobs",
    ),
    Case("set10-path-on-tetrominoes", "train {bare_cfg} data.name=tetrominoes data.path=x --out {new}", "data.path:"),
    Case(
        "set10-st15-study-base-of-another-beta",
        "study collapse --data {plain_cfg} --set objective.beta.value=0.2 --out {new}",
        "objective.beta.value=0.2: a study's base is the plain VAE",
    ),
    Case("set10-st15-study-base-annealed", "study collapse --data {cfg} --out {new}", "objective.beta.type=linear"),
    Case(
        "set10-c10-best-pt-a-json-file",
        "evaluate {copy}",
        "best.pt is not a PyTorch checkpoint (it begins with the text",
        lambda w, tmp: _write_in_copy(w, tmp, "checkpoints/best.pt", '{"a": 1}'),
    ),
    Case(
        "set10-a08-sweep-copy-empty",
        "sweep-aggregate {dir}",
        "the copy of the sweep that `vaelab sweep` wrote into the sweep folder, cannot be read: the file is empty",
        lambda w, tmp: _empty_sweep_copy(tmp),
    ),
    Case("set10-u23-binarize-seed-on-text", "train {text_cfg} eval.binarize_seed=7 --out {new}", "(a text corpus"),
    Case("set10-binarize-seed-on-text-evaluate", "evaluate {text_run} eval.binarize_seed=7", "eval.binarize_seed=7"),
    Case("unknown-command", "fly {run}", "fly"),
]


# --------------------------------------------------------------------------------------------------------------
# a second, fresh set (issue 16: "0 tracebacks, 0 silently wrong, 0 late errors on bad inputs nobody has seen"):
# files written by a case's setup into its own tmp folder


def _set(data: dict, key: str, value: object) -> None:
    *sections, leaf = key.split(".")
    for section in sections:
        if not isinstance(data.get(section), dict):
            data[section] = {}
        data = data[section]
    data[leaf] = value


def bad_config(values: dict[str, object], *, text: bool = False) -> Callable[[dict, Path], dict[str, str]]:
    """{bad}: the tiny image (or text) config with dotted ``values`` set, as a YAML file."""

    def setup(w: dict, tmp: Path) -> dict[str, str]:
        data = yaml.safe_load(w["text_cfg" if text else "cfg"].read_text())
        for key, value in values.items():
            _set(data, key, value)
        return {"bad": str(_yaml(tmp / "bad.yaml", data))}

    return setup


def bad_yaml_text(edit: Callable[[str], str], name: str = "bad.yaml") -> Callable[[dict, Path], dict[str, str]]:
    """{bad}: the tiny config's YAML text, edited."""

    def setup(w: dict, tmp: Path) -> dict[str, str]:
        (tmp / name).write_text(edit(yaml.safe_dump(yaml.safe_load(w["cfg"].read_text()))))
        return {"bad": str(tmp / name)}

    return setup


def bad_corpus(files: dict[str, str | None], **data: object) -> Callable[[dict, Path], dict[str, str]]:
    """{bad}: the text config on a copy of the corpus whose ``files`` are replaced (None: removed), with ``data``
    keys set."""

    def setup(w: dict, tmp: Path) -> dict[str, str]:
        corpus = tmp / "corp"
        shutil.copytree(w["corpus"], corpus)
        for name, text in files.items():
            if text is None:
                (corpus / name).unlink()
            else:
                (corpus / name).write_text(text)
        cfg = yaml.safe_load(w["text_cfg"].read_text())
        cfg["data"] = {"name": "text", "path": str(corpus), **data}
        return {"bad": str(_yaml(tmp / "bad.yaml", cfg))}

    return setup


def _lines(w: dict, name: str = "train.txt") -> list[str]:
    return (w["corpus"] / name).read_text().splitlines()


def corpus_edit(edit: Callable[[dict], dict[str, str | None]], **data: object) -> Callable[[dict, Path], dict]:
    """:func:`bad_corpus` with files computed from the world's corpus."""
    return lambda w, tmp: bad_corpus(edit(w), **data)(w, tmp)


def bad_npz(arrays: Callable[[np.random.Generator], dict] | None, raw: bytes | None = None, **data: object):
    """{bad}: the tiny config on an .npz file of ``arrays`` (or ``raw`` bytes)."""

    def setup(w: dict, tmp: Path) -> dict[str, str]:
        path = tmp / "d.npz"
        if raw is not None:
            path.write_bytes(raw)
        else:
            np.savez(path, **arrays(np.random.default_rng(0)))
        cfg = yaml.safe_load(w["cfg"].read_text())
        cfg["data"] = {"name": "npz", "path": str(path), "image_shape": [1, 6, 6], "valid_size": 16, **data}
        return {"bad": str(_yaml(tmp / "bad.yaml", cfg))}

    return setup


def _bits(rng: np.random.Generator, n: int) -> np.ndarray:
    return (rng.random((n, 36)) > 0.5).astype("float32")


def _with_nan(rng: np.random.Generator) -> dict:
    x = _bits(rng, 64)
    x[3, 4] = np.nan
    return {"train": x, "test": _bits(rng, 16)}


def npz_sweep_without_valid(w: dict, tmp: Path) -> dict[str, str]:
    """{bad}: a sweep over an .npz data set with data.valid_size=0 that measures the validation split."""
    rng = np.random.default_rng(1)
    np.savez(tmp / "nv.npz", train=_bits(rng, 64), test=_bits(rng, 16))
    data = {"name": "npz", "path": str(tmp / "nv.npz"), "image_shape": [1, 6, 6], "valid_size": 0}
    body = {
        "name": "nv",
        "base": str(w["cfg"]),
        "fixed": {"data": data},
        "measure": {"iw_samples": 2, "splits": ["valid"]},
    }
    return {"bad": str(_yaml(tmp / "nv.yaml", body))}


def run_without_valid(w: dict, tmp: Path) -> dict[str, str]:
    """{copy}: a run trained on an .npz data set with data.valid_size=0 (no validation split)."""
    rng = np.random.default_rng(1)
    np.savez(tmp / "nv.npz", train=_bits(rng, 64), test=_bits(rng, 16))
    data = f"data={{name: npz, path: {tmp / 'nv.npz'}, image_shape: [1, 6, 6], valid_size: 0}}"
    Trainer(load_config(w["cfg"], [data, "train.max_steps=2", "eval.iw_samples=2"]), tmp / "nv").fit()
    return {"copy": str(tmp / "nv")}


def bad_sweep(body: dict | str, base: str = "cfg") -> Callable[[dict, Path], dict[str, str]]:
    """{bad}: a sweep file over the tiny config (``body`` updates it; a string is the whole file, with {cfg}).

    ``base`` names the world's config the file builds on (``bare_cfg``: no model.hidden, for points of other types).
    """

    def setup(w: dict, tmp: Path) -> dict[str, str]:
        path = tmp / "s.yaml"
        if isinstance(body, str):
            path.write_text(body.format(cfg=w["cfg"]))
        else:
            _yaml(path, {"name": "s", "base": str(w[base]), "measure": {"iw_samples": 2}, **body})
        return {"bad": str(path)}

    return setup


def edited_copy(edit: Callable[[Path, dict], None], which: str = "run") -> Callable[[dict, Path], dict[str, str]]:
    """{copy}: a copy of a run folder, edited (``edit(folder, world)``)."""

    def setup(w: dict, tmp: Path) -> dict[str, str]:
        d = _copy(w, tmp, which)
        edit(d, w)
        return {"copy": str(d)}

    return setup


def _edit_config(key: str, value: object) -> Callable[[Path, dict], None]:
    def edit(d: Path, w: dict) -> None:
        data = yaml.safe_load((d / "config.yaml").read_text())
        _set(data, key, value)
        (d / "config.yaml").write_text(yaml.safe_dump(data))

    return edit


def folder_with(files: dict[str, str]) -> Callable[[dict, Path], dict[str, str]]:
    """{dir}: a folder holding ``files`` (name -> text; a name ending in / is a folder), e.g. a sweep folder."""

    def setup(w: dict, tmp: Path) -> dict[str, str]:
        d = tmp / "dir"
        d.mkdir()
        for name, text in files.items():
            if name.endswith("/"):
                (d / name).mkdir()
            else:
                (d / name).write_text(text.format(cfg=w["cfg"]))
        return {"dir": str(d)}

    return setup


def B(id: str, values: dict[str, object], expect: str, *, text: bool = False) -> Case:
    """``train BAD --out NEW`` with a config file holding ``values``."""
    return Case(id, "train {bad} --out {new}", expect, bad_config(values, text=text))


def _cr(transform: object) -> dict[str, object]:
    """``objective.terms``: the three consistency terms with the policy ``transform``."""
    return {
        "objective.terms": [
            {"type": "aug_distortion", "weight": 1.0, "transform": transform},
            {"type": "aug_rate", "weight": 1.0},
            {"type": "consistency_kl", "weight": 0.001},
        ]
    }


_LONG = "a b c d e f g h i j k l\n" * 5


def _labelled(label: Callable[[int], object]) -> Callable[[dict], dict[str, str]]:
    """The corpus's three files with ``label(i)<TAB>`` in front of line i."""
    return lambda w: {
        n: "".join(f"{label(i)}\t{s}\n" for i, s in enumerate(_lines(w, n)))
        for n in ("train.txt", "valid.txt", "test.txt")
    }


_SWEEP_FOLDER = {"sweep.yaml": "name: s\nbase: {cfg}\n", "points/": ""}

CASES += [
    # ---- YAML: wrong types, keys written twice ----
    Case(
        "yaml-section-twice",
        "train {bad} --out {new}",
        "key 'train' appears twice",
        bad_yaml_text(lambda t: t + "train:\n  lr: 0.5\n"),
    ),
    Case(
        "yaml-key-twice",
        "train {bad} --out {new}",
        "key 'lr' appears twice",
        bad_yaml_text(lambda t: t.replace("  lr: 0.003\n", "  lr: 0.003\n  lr: 0.5\n")),
    ),
    Case(
        "yaml-tab-indent",
        "train {bad} --out {new}",
        "tab.yaml",
        bad_yaml_text(lambda t: "train:\n\tlr: 0.1\n", "tab.yaml"),
    ),
    B("yaml-lr-a-word", {"train.lr": "fast"}, "train.lr"),
    B("yaml-progress-quoted-yes", {"train.progress": "yes"}, "train.progress"),
    B("yaml-hidden-a-scalar", {"model.hidden": 64}, "model.hidden"),
    B("yaml-latent-dim-a-list", {"model.latent_dim": [4]}, "model.latent_dim"),
    B("yaml-epochs-fraction", {"train.epochs": 1.5}, "train.epochs"),
    B("yaml-mi-pool-fraction", {"eval.mi_pool": 2.5}, "eval.mi_pool"),
    B("yaml-image-shape-a-string", {"data.image_shape": "1,6,6"}, "data.image_shape"),
    B("yaml-seed-a-boolean", {"seed": True}, "seed"),
    B("yaml-beta-a-list", {"objective.beta": [0.5]}, "objective.beta"),
    B("yaml-lr-decay-a-boolean", {"train.lr_decay": True}, "train.lr_decay"),
    B("yaml-extra-metrics-a-string", {"eval.extra_metrics": "probe"}, "eval.extra_metrics"),
    B("yaml-lr-infinite", {"train.lr": float("inf")}, "train.lr"),
    B("yaml-device-upper-case", {"train.device": "CPU"}, "train.device"),
    B("yaml-seed-beyond-int64", {"seed": 2**64}, "seed"),
    # ---- overrides on the command line ----
    Case("override-list-without-brackets", "train {cfg} model.hidden=64,32 --out {new}", "model.hidden"),
    Case("override-empty-leaf", "train {cfg} train.=1 --out {new}", "train."),
    Case("override-section-a-scalar", "train {cfg} data=1 --out {new}", "data"),
    Case("override-subsection-a-scalar", "train {cfg} train.lr_decay=0.5 --out {new}", "train.lr_decay"),
    Case("override-wrong-type-named-as-given", "evaluate {run} data.eval_size=abc", "data.eval_size must be"),
    Case("override-after-a-flag-still-checked", "evaluate {run} --iw-samples 2 eval.iw_chunk=0", "eval.iw_chunk"),
    # ---- options of strategies, regularisers and terms ----
    B("options-aggressive-typo", {"train.strategy": "aggressive", "train.strategy_options": {"windw": 5}}, "windw"),
    B(
        "options-aggressive-window-string",
        {"train.strategy": "aggressive", "train.strategy_options": {"window": "5"}},
        "train.strategy_options.window",
    ),
    B("options-strategy-options-a-list", {"train.strategy_options": [1, 2]}, "train.strategy_options"),
    B(
        "options-pretrain-unknown",
        {"train.strategy": "pretrain_reset", "train.strategy_options": {"epochs": 1}},
        "'epochs'",
    ),
    B(
        "options-density-gap-typo",
        {"objective.regulariser": "density_gap", "objective.regulariser_options": {"chunk": 4}},
        "'chunk'",
    ),
    B(
        "options-density-gap-estimator",
        {"objective.regulariser": "density_gap", "objective.regulariser_options": {"estimator": "nope"}},
        "objective.regulariser_options.estimator",
    ),
    B(
        "options-density-gap-samples-string",
        {"objective.regulariser": "density_gap", "objective.regulariser_options": {"samples": "32"}},
        "objective.regulariser_options.samples",
    ),
    B("options-regulariser-options-a-list", {"objective.regulariser_options": ["a"]}, "objective.regulariser_options"),
    B("options-term-a-string", {"objective.terms": ["aug_rate"]}, "objective.terms[0]"),
    B("options-term-unknown-option", {"objective.terms": [{"type": "aug_rate", "foo": 1}]}, "objective.terms[0]"),
    B(
        "options-term-weight-negative",
        {"objective.terms": [{"type": "aug_rate", "weight": -1}]},
        "objective.terms[0].weight",
    ),
    B(
        "options-term-weight-unknown-key",
        {"objective.terms": [{"type": "aug_rate", "weight": {"type": "linear", "nope": 1, "warmup_steps": 3}}]},
        "objective.terms[0].weight.nope",
    ),
    B("options-terms-a-mapping", {"objective.terms": {"type": "aug_rate"}}, "objective.terms"),
    B("options-term-without-type", {"objective.terms": [{"weight": 1}]}, "objective.terms[0]"),
    # ---- consistency transforms: options, modality, image size; duplicate terms (issue 16, set 5) ----
    B("transform-simple-with-rotation", _cr({"name": "simple", "rotation": 30}), "transform.rotation"),
    B("transform-rotation-a-string", _cr({"name": "affine", "rotation": "abc"}), "transform.rotation"),
    B("transform-scale-a-scalar", _cr({"name": "affine", "scale": 1.0}), "transform.scale"),
    B("transform-compose-transforms-key", _cr({"name": "compose", "transforms": []}), "transform.transforms"),
    B("transform-compose-policies-string", _cr({"name": "compose", "policies": "crop_shift"}), "transform.policies"),
    B("transform-crop-shift-beyond-image", _cr({"name": "crop_shift", "max_shift": 1000}), "max_shift=1000"),
    B("transform-word-dropout-on-images", _cr("word_dropout"), "policy word_dropout transforms text data"),
    B("transform-text-on-images", _cr("text"), "policy text transforms text data"),
    B("transform-simple-on-text", _cr("simple"), "policy simple transforms image data", text=True),
    B(
        "transform-compose-nested-text-on-images",
        _cr({"name": "compose", "policies": ["crop_shift", {"name": "compose", "policies": ["word_swap"]}]}),
        "transforms text data",
    ),
    B(
        "terms-type-twice",
        {"objective.terms": [{"type": "aug_distortion", "transform": "simple"}, {"type": "aug_distortion"}]},
        "'aug_distortion' is listed twice",
    ),
    B("options-free-bits-with-kl", {"objective.free_bits": 0.5}, "objective.free_bits=0.5 is read only by"),
    B(
        "options-groups-with-fine-fb",
        {"objective.regulariser": "free_bits_fine", "objective.free_bits": 1.0, "objective.free_bits_groups": 2},
        "objective.free_bits_groups=2 is read only by",
    ),
    B("options-pretraining-fills-the-epochs", {"train.strategy": "pretrain_reset"}, "pretrain_epochs=1"),
    B(
        "options-pretraining-fills-max-steps",
        {"train.strategy": "pretrain_reset", "train.strategy_options": {"pretrain_steps": 5}, "train.max_steps": 2},
        "pretrain_steps=5",
    ),
    B(
        "options-pretraining-epoch-fills-max-steps",
        {"train.strategy": "pretrain_reset", "train.epochs": 3, "train.max_steps": 2},
        "pretrain_epochs=1",
    ),
    # ---- relations between keys, and between keys and the data ----
    B("relation-bn-batch-of-1", {"model.posterior": "bn", "train.batch_size": 1}, "model.posterior=bn"),
    B("relation-bn-last-batch-of-1", {"model.posterior": "bn", "train.batch_size": 85}, "train.batch_size=85"),
    B("relation-text-model-on-images", {"model.type": "lstm_vae"}, "model.type=lstm_vae"),
    B("relation-image-model-on-text", {"model.type": "mlp"}, "model.type=mlp", text=True),
    B(
        "relation-bernoulli-on-real-data",
        {"data.name": "synthetic_gaussian", "data.image_shape": [1, 4, 4]},
        "model.likelihood=bernoulli",
    ),
    B(
        "relation-pixelcnn-on-real-data",
        {"model.type": "pixelcnn", "data.name": "synthetic_gaussian", "data.image_shape": [1, 4, 4]},
        "model.type=pixelcnn",
    ),
    B("relation-likelihood-on-text-model", {"model.likelihood": "gaussian"}, "model.likelihood=gaussian", text=True),
    B("relation-key-another-type-reads", {"model.pixelcnn_layers": 3}, "model.pixelcnn_layers: not read by"),
    B("relation-conv-without-channels", {"model.type": "conv", "model.channels": []}, "model.channels"),
    B("relation-extra-metric-twice", {"eval.extra_metrics": ["probe", "probe"]}, "eval.extra_metrics"),
    B("relation-eval-size-1", {"data.eval_size": 1}, "data.eval_size"),
    B("relation-valid-size-on-a-synthetic-set", {"data.valid_size": 0}, "data.valid_size=0 is not read by"),
    B("relation-text-key-on-images", {"data.max_length": 5}, "data.max_length=5 is not read by"),
    B("relation-unk-token-on-images", {"data.unk_token": "_UNK"}, "data.unk_token='_UNK' is not read by"),
    B("relation-binarize-on-text", {"data.binarize": "dynamic"}, "data.binarize='dynamic' is not read by", text=True),
    B(
        "relation-labels-as-words-with-label-tab",
        {"data.labels_as_words": True, "data.format": "label_tab"},
        "data.labels_as_words",
        text=True,
    ),
    # ---- sweep files ----
    Case(
        "sweep-grid-empty-list",
        "sweep {bad} --workers 1 --out {new}",
        "grid.train.lr",
        bad_sweep({"grid": {"train.lr": []}}),
    ),
    Case(
        "sweep-key-in-grid-and-zip",
        "sweep {bad} --workers 1 --out {new}",
        "train.lr is varied by both zip and grid",
        bad_sweep({"grid": {"train.lr": [0.1, 0.2]}, "zip": {"train.lr": [0.3, 0.4]}}),
    ),
    Case(
        "sweep-seed-in-grid-and-seeds",
        "sweep {bad} --workers 1 --out {new}",
        "seed is varied by both",
        bad_sweep({"grid": {"seed": [1, 2]}, "seeds": [0, 1]}),
    ),
    Case(
        "sweep-grid-key-twice",
        "sweep {bad} --workers 1 --out {new}",
        "key 'train.lr' appears twice",
        bad_sweep("name: d\nbase: {cfg}\ngrid:\n  train.lr: [0.1]\n  train.lr: [0.2, 0.3]\n"),
    ),
    Case(
        "sweep-grid-duplicate-values",
        "sweep {bad} --workers 1 --out {new}",
        "grid.train.lr: values must be distinct",
        bad_sweep({"grid": {"train.lr": [0.1, 0.1]}}),
    ),
    Case(
        "sweep-slurm-task-id-a-word",
        "sweep {bad} --workers 1 --out {new}",
        "SLURM_ARRAY_TASK_ID='abc'",
        bad_sweep({}),
        env={"SLURM_ARRAY_TASK_ID": "abc"},
    ),
    Case(
        "sweep-slurm-task-id-out-of-range",
        "sweep {bad} --workers 1 --out {new}",
        "SLURM_ARRAY_TASK_ID='7': point index 7 is out of range",
        bad_sweep({}),
        env={"SLURM_ARRAY_TASK_ID": "7"},
    ),
    Case("sweep-seeds-strings", "sweep {bad} --workers 1 --out {new}", "seeds", bad_sweep({"seeds": ["0", "1"]})),
    Case("sweep-seeds-a-scalar", "sweep {bad} --workers 1 --out {new}", "seeds", bad_sweep({"seeds": 3})),
    Case(
        "sweep-measure-iw-chunk-0",
        "sweep {bad} --workers 1 --out {new}",
        "measure.iw_chunk",
        bad_sweep({"measure": {"iw_samples": 2, "iw_chunk": 0}}),
    ),
    Case(
        "sweep-measure-mi-pool-1",
        "sweep {bad} --workers 1 --out {new}",
        "measure.mi_pool",
        bad_sweep({"measure": {"iw_samples": 2, "mi_pool": 1}}),
    ),
    Case(
        "sweep-measure-no-splits",
        "sweep {bad} --workers 1 --out {new}",
        "measure.splits",
        bad_sweep({"measure": {"iw_samples": 2, "splits": []}}),
    ),
    Case(
        "sweep-measure-metric-twice",
        "sweep {bad} --workers 1 --out {new}",
        "measure.extra_metrics",
        bad_sweep({"measure": {"iw_samples": 2, "extra_metrics": ["probe", "probe"]}}),
    ),
    Case(
        "sweep-measures-an-empty-split",
        "sweep {bad} --workers 1 --out {new}",
        "measure.splits names valid",
        npz_sweep_without_valid,
    ),
    Case("sweep-index-out-of-range", "sweep {bad} --workers 1 --index 99 --out {new}", "point index 99", bad_sweep({})),
    Case("sweep-index-empty-item", "sweep {bad} --workers 1 --index 0,,0 --out {new}", "--index", bad_sweep({})),
    Case(
        "sweep-out-a-run",
        "sweep {bad} --workers 1 --out {copy}",
        "holds a run",
        lambda w, tmp: {**bad_sweep({})(w, tmp), "copy": str(_copy(w, tmp))},
    ),
    Case("sweep-file-empty", "sweep {bad} --out {new}", "s.yaml", bad_sweep("")),
    Case(
        "sweep-variants-a-mapping",
        "sweep {bad} --out {new}",
        "variants",
        bad_sweep({"variants": {"a": {"train.lr": 1}}}),
    ),
    # ---- study options ----
    Case("study-seeds-empty-item", "study collapse --data {plain_cfg} --seeds 0,,1 --out {new}", "--seeds"),
    Case("study-methods-empty", "study collapse --data {plain_cfg} |--methods=| --out {new}", "--methods"),
    Case("study-methods-trailing-comma", "study collapse --data {plain_cfg} --methods plain, --out {new}", "--methods"),
    Case(
        "study-out-a-run",
        "study collapse --data {plain_cfg} --out {copy}",
        "holds a run",
        lambda w, tmp: {"copy": str(_copy(w, tmp))},
    ),
    Case(
        "study-method-set-without-colon",
        "study collapse --data {plain_cfg} --methods plain --method-set train.lr=1 --out {new}",
        "--method-set",
    ),
    Case("study-budget-in-minutes", "study collapse --data {plain_cfg} --budget 10min --out {new}", "--budget"),
    Case("set9-study-empty-name", "study collapse --data {plain_cfg} --name || --out {new}", "--name is empty"),
    # ---- text corpora ----
    Case(
        "set7-unk-token-not-in-corpus",
        "train {bad} --out {new}",
        "data.unk_token='_UNK' occurs 0 times in the training file",
        bad_corpus({}, unk_token="_UNK"),
    ),
    Case(
        "set9-valid-size-with-a-valid-file",
        "train {bad} --out {new}",
        "data.valid_size=20 is not read: text's validation split is the file",
        bad_corpus({}, valid_size=20),
    ),
    Case(
        "set7-unk-token-case-slip",
        "train {bad} --out {new}",
        "train.txt; the file writes '_unk' 60 times; did you mean data.unk_token=_unk?",
        corpus_edit(lambda w: {"train.txt": "".join(f"{s} _unk\n" for s in _lines(w))}, unk_token="_UNK"),
    ),
    Case(
        "set7-data-file-a-folder",
        "train {bad} |data.files={{train: ., valid: valid.txt, test: test.txt}}| --out {new}",
        "corp is a folder, expected a text file",
        bad_corpus({}),
    ),
    Case("corpus-empty-train-file", "train {bad} --out {new}", "train.txt", bad_corpus({"train.txt": ""})),
    Case("corpus-blank-lines-only", "train {bad} --out {new}", "train.txt:1", bad_corpus({"train.txt": "\n\n  \n\n"})),
    Case(
        "corpus-blank-lines-skipped",
        "train {bad} --out {new}",
        "all 4 lines were skipped",
        bad_corpus({"train.txt": "\n\n  \n\n"}, skip_malformed=True),
    ),
    Case(
        "corpus-every-sentence-too-long",
        "train {bad} --out {new}",
        "data.max_length=2",
        bad_corpus({}, max_length=2, length_policy="drop"),
    ),
    Case(
        "corpus-test-sentences-too-long",
        "train {bad} --out {new}",
        "test.txt",
        bad_corpus({"test.txt": _LONG}, max_length=9),
    ),
    Case(
        "corpus-valid-sentences-too-long",
        "train {bad} --out {new}",
        "valid.txt",
        bad_corpus({"valid.txt": _LONG}, max_length=9),
    ),
    Case(
        "corpus-one-valid-sentence",
        "train {bad} --out {new}",
        "valid split holds 1 example",
        bad_corpus({"valid.txt": "the cat sees it\n"}),
    ),
    Case(
        "corpus-vocab-repeats",
        "train {bad} --out {new}",
        "vocab.txt:3",
        bad_corpus({"vocab.txt": "the\ncat\nthe\n"}, vocab_file="vocab.txt"),
    ),
    Case(
        "corpus-vocab-with-counts",
        "train {bad} --out {new}",
        "vocab.txt:1",
        bad_corpus({"vocab.txt": "the\t10\ncat\t5\n"}, vocab_file="vocab.txt"),
    ),
    Case(
        "corpus-vocab-empty",
        "train {bad} --out {new}",
        "vocab.txt",
        bad_corpus({"vocab.txt": ""}, vocab_file="vocab.txt"),
    ),
    Case(
        "corpus-vocab-only-specials",
        "train {bad} --out {new}",
        "vocab.txt",
        bad_corpus({"vocab.txt": "<pad>\n<s>\n</s>\n<unk>\n"}, vocab_file="vocab.txt"),
    ),
    Case(
        "corpus-label-tab-empty-label",
        "train {bad} --out {new}",
        "train.txt:1",
        bad_corpus({"train.txt": "\tthe cat sees it\n1\ta dog\n"}, format="label_tab"),
    ),
    Case(
        "corpus-label-tab-empty-sentence",
        "train {bad} --out {new}",
        "train.txt:1",
        bad_corpus({"train.txt": "3\t\n1\ta dog\n"}, format="label_tab"),
    ),
    Case(
        "corpus-label-an-id",
        "train {bad} --out {new}",
        "999999999",
        corpus_edit(_labelled(lambda i: 999999999 if i == 0 else i % 2), format="label_tab"),
    ),
    Case(
        "corpus-plain-lines-start-with-number-tab",
        "train {bad} --out {new}",
        "data.labels_as_words=true",
        corpus_edit(_labelled(lambda i: 100 + i)),
    ),
    Case(
        "corpus-holds-vaelab-tokens",
        "train {bad} --out {new}",
        "train.txt:1",
        corpus_edit(lambda w: {"train.txt": "the <pad> sees </s> it\n" + "\n".join(_lines(w)) + "\n"}),
    ),
    Case(
        "corpus-path-a-file",
        "train {bad} --out {new}",
        "data.path",
        lambda w, tmp: bad_corpus({}, path=str(w["corpus"] / "train.txt"))(w, tmp),
    ),
    # ---- npz files ----
    Case("npz-nan", "train {bad} --out {new}", "d.npz[train]", bad_npz(_with_nan)),
    Case(
        "npz-floats-0-255",
        "train {bad} --out {new}",
        "d.npz[train]",
        bad_npz(lambda r: {"train": r.random((64, 36)).astype("float32") * 255, "test": _bits(r, 16)}),
    ),
    Case(
        "npz-negative-labels",
        "train {bad} --out {new}",
        "d.npz",
        bad_npz(
            lambda r: {
                "train": _bits(r, 64),
                "test": _bits(r, 16),
                "train_labels": -np.ones(64, int),
                "test_labels": np.zeros(16, int),
            }
        ),
    ),
    Case(
        "npz-no-train-array",
        "train {bad} --out {new}",
        "d.npz",
        bad_npz(lambda r: {"images": _bits(r, 64), "test": _bits(r, 16)}),
    ),
    Case("npz-not-a-zip", "train {bad} --out {new}", "not a zip archive", bad_npz(None, raw=b"hello, not a zip\n")),
    Case(
        "npz-no-training-examples",
        "train {bad} --out {new}",
        "d.npz",
        bad_npz(lambda r: {"train": np.zeros((0, 36), "float32"), "test": _bits(r, 16)}),
    ),
    Case(
        "npz-static-binarisation-of-grey",
        "train {bad} --out {new}",
        "data.binarize",
        bad_npz(lambda r: {"train": r.random((64, 36)).astype("float32"), "test": _bits(r, 16)}, binarize="static"),
    ),
    # ---- command-line values ----
    Case(
        "resume-finished-with-overrides",
        "resume {copy} eval.iw_samples=7",
        "already finished",
        lambda w, tmp: {"copy": str(_copy(w, tmp))},
    ),
    Case("train-out-empty", "train {cfg} |--out=|", "--out is empty"),
    Case("report-out-empty", "report {run} |--out=|", "--out is empty"),
    Case("evaluate-dir-empty", "evaluate ||", "DIR is empty"),
    Case("sample-max-length-negative", "sample {text_run} --max-length -1", "--max-length"),
    Case(
        "reconstruct-file-without-sentences",
        "reconstruct {text_run} --file {dir}/e.txt",
        "e.txt",
        folder_with({"e.txt": "\n\n"}),
    ),
    Case("interpolate-empty-sentence", "interpolate {text_run} || |a dog|", "empty sentence"),
    Case("evaluate-mi-pool-1", "evaluate {run} eval.mi_pool=1", "eval.mi_pool"),
    Case(
        "latent-plot-empty-split",
        "latent-plot {copy} --split valid --out {new}/l.png",
        "valid split is empty",
        run_without_valid,
    ),
    # ---- folders that are not what the command needs ----
    Case(
        "train-out-a-users-folder",
        "train {dir}/config.yaml --out {dir}",
        "not a config.yaml that vaelab wrote",
        lambda w, tmp: folder_with({"config.yaml": w["cfg"].read_text(), "notes.txt": "mine"})(w, tmp),
    ),
    Case("train-out-a-sweep-folder", "train {cfg} --out {dir}", "is a sweep folder", folder_with(_SWEEP_FOLDER)),
    Case("evaluate-a-sweep-folder", "evaluate {dir}", "sweep or study folder", folder_with(_SWEEP_FOLDER)),
    Case(
        "evaluate-config-edited-after-training",
        "evaluate {copy}",
        "model.latent_dim is 8, but the run was trained with model.latent_dim=4",
        edited_copy(_edit_config("model.latent_dim", 8)),
    ),
    Case(
        "evaluate-checkpoint-of-another-run",
        "evaluate {copy}",
        "best.pt belongs to another run",
        edited_copy(lambda d, w: shutil.copy(w["text_run"] / "checkpoints" / "best.pt", d / "checkpoints" / "best.pt")),
    ),
    Case(
        "evaluate-best-a-folder",
        "evaluate {copy}",
        "best.pt is not a file",
        edited_copy(lambda d, w: ((d / "checkpoints" / "best.pt").unlink(), (d / "checkpoints" / "best.pt").mkdir())),
    ),
    Case(
        "evaluate-eval-json-a-folder",
        "evaluate {copy} --iw-samples 2",
        "eval.json: a folder",
        edited_copy(lambda d, w: (d / "eval.json").mkdir()),
    ),
]


# --------------------------------------------------------------------------------------------------------------
# leftovers of the second fresh set: explicit requests the data cannot honour, refused before any training


def _text_sweep(measure: dict) -> Callable[[dict, Path], dict[str, str]]:
    """{bad}: a sweep file over the tiny text config (an unlabelled corpus)."""

    def setup(w: dict, tmp: Path) -> dict[str, str]:
        body = {"name": "t", "base": str(w["text_cfg"]), "measure": {"iw_samples": 2, **measure}}
        return {"bad": str(_yaml(tmp / "t.yaml", body))}

    return setup


def _float_255(r: np.random.Generator) -> dict:
    return {"train": np.round(r.random((64, 36)) * 255).astype("float32"), "test": _bits(r, 16).astype("float32")}


CASES += [
    Case(
        "probe-on-unlabelled-corpus", "train {text_cfg} eval.extra_metrics=[probe] --out {new}", "=probe needs labels"
    ),
    Case(
        "evaluate-probe-on-unlabelled-corpus", "evaluate {text_run} eval.extra_metrics=[probe]", "=probe needs labels"
    ),
    Case(
        "sweep-probe-on-unlabelled-corpus",
        "sweep {bad} --workers 1 --out {new}",
        "measure.extra_metrics[0]=probe needs labels",
        _text_sweep({"extra_metrics": ["probe"]}),
    ),
    Case(
        "sweep-point-probe-on-unlabelled-corpus",
        "sweep {bad} --workers 1 --out {new}",
        "eval.extra_metrics[0]=probe needs labels",
        lambda w, tmp: {
            "bad": str(
                _yaml(
                    tmp / "t.yaml",
                    {"name": "t", "base": str(w["text_cfg"]), "fixed": {"eval.extra_metrics": ["probe"]}},
                )
            )
        },
    ),
    Case(
        "sweep-train-subset-beyond-the-split",
        "sweep {bad} --workers 1 --out {new}",
        "measure.train_subset=100000 exceeds",
        bad_sweep({"measure": {"iw_samples": 2, "train_subset": 100000}}),
    ),
    Case(
        "arrays-floats-0-255-under-bernoulli",
        "train {bad} --out {new}",
        "model.likelihood=bernoulli",
        bad_npz(_float_255, name="arrays", image_shape=None),
    ),
    Case(
        "vaelab-data-env-a-file",
        "train {cfg} data.name=binarized_mnist --out {new}",
        "VAELAB_DATA: ",
        env={"VAELAB_DATA": __file__},
    ),
    Case("data-root-a-file", "train {cfg} data.name=binarized_mnist data.root={file} --out {new}", "data.root: "),
]


# --------------------------------------------------------------------------------------------------------------
# a third fresh set (issue 16): odd YAML, out-of-range command-line values, damaged data files and run folders,
# resume overrides that would change the model, sweep files; 30 of its 130 inputs failed before the fixes


def _bytes_corpus(files: dict[str, bytes | str | None], **data: object) -> Callable[[dict, Path], dict[str, str]]:
    """{bad}: :func:`bad_corpus` whose files may be bytes, None (removed) or "DIR" (a folder in its place)."""

    def setup(w: dict, tmp: Path) -> dict[str, str]:
        out = bad_corpus({}, **data)(w, tmp)
        corpus = tmp / "corp"
        for name, content in files.items():
            path = corpus / name
            if path.exists():
                path.unlink()
            if content == "DIR":
                path.mkdir()
            elif isinstance(content, bytes):
                path.write_bytes(content)
        return out

    return setup


def partial_run(edit: Callable[[Path, dict], None] | None = None) -> Callable[[dict, Path], dict[str, str]]:
    """{copy}: a run of 5 epochs that crashed at step 12 (last.pt at step 8), optionally edited."""

    def setup(w: dict, tmp: Path) -> dict[str, str]:
        cfg = load_config(w["cfg"], ["train.epochs=5"])
        trainer = Trainer(cfg, tmp / "partial")
        real = trainer.strategy.train_step

        def step(ctx, x, i):
            if i == 12:
                raise RuntimeError("crash")
            return real(ctx, x, i)

        trainer.strategy.train_step = step
        with pytest.raises(RuntimeError, match="crash"):
            trainer.fit()
        if edit is not None:
            edit(tmp / "partial", w)
        return {"copy": str(tmp / "partial")}

    return setup


def _npz_bytes(cut: int) -> bytes:
    buf = io.BytesIO()
    rng = np.random.default_rng(0)
    np.savez(buf, train=_bits(rng, 64), test=_bits(rng, 16))
    return buf.getvalue()[:cut]


_ALIAS_BOMB = (
    "".join(
        f"{a}: &{a} [{', '.join([f'*{p}'] * 10) if p else ', '.join(['x'] * 10)}]\n"
        for p, a in zip(["", "a", "b", "c", "d", "e", "f"], "abcdefg", strict=True)
    )
    + f"name: [{', '.join(['*g'] * 10)}]\n"
)

_TEXT_ROLES = ("train.txt", "valid.txt", "test.txt")
T_BAD = "train {bad} --out {new}"
S_BAD = "sweep {bad} --workers 1 --out {new}"

CASES += [
    # ---- YAML ----
    Case("yaml3-top-level-anchor", T_BAD, "'b'", bad_yaml_text(lambda t: "b: &b {lr: 0.1}\n" + t)),
    Case(
        "yaml3-merge-key-in-an-unknown-section",
        T_BAD,
        "x_defaults",
        bad_yaml_text(lambda t: t.replace("train:\n", "x_defaults: &d\n  lr: 0.01\ntrain:\n  <<: *d\n", 1)),
    ),
    Case("yaml3-empty-file", T_BAD, "the file is empty", bad_yaml_text(lambda t: "")),
    Case("yaml3-only-comments", T_BAD, "the file is empty", bad_yaml_text(lambda t: "# to do\n")),
    Case("yaml3-a-number", T_BAD, "top level must be a mapping", bad_yaml_text(lambda t: "42\n")),
    Case(
        "yaml3-python-tag", T_BAD, "bad.yaml", bad_yaml_text(lambda t: "name: !!python/object/apply:os.system [ls]\n")
    ),
    Case("yaml3-alias-bomb", T_BAD, "expand to more than", bad_yaml_text(lambda t: _ALIAS_BOMB)),
    Case("yaml3-cyrillic-section", T_BAD, "'trаin'", bad_yaml_text(lambda t: t.replace("train:", "trаin:"))),
    Case("yaml3-dotted-key-in-a-file", T_BAD, "'train.lr'", bad_yaml_text(lambda t: t + "train.lr: 0.5\n")),
    Case(
        "yaml3-section-null",
        T_BAD,
        "train: expected a mapping",
        bad_yaml_text(lambda t: t.replace("train:\n", "train:\ntrain_old:\n", 1)),
    ),
    B("yaml3-section-a-list", {"train": [1, 2]}, "train: expected a mapping"),
    B("yaml3-model-null", {"model": None}, "model: expected a mapping"),
    B("yaml3-name-with-a-tab", {"name": "a\tb"}, "name must be"),
    B("yaml3-name-with-nul", {"name": "a\x00b"}, "name must be"),
    B("yaml3-lr-string-nan", {"train.lr": "NaN"}, "train.lr"),
    B("yaml3-lr-string-inf", {"train.lr": "inf"}, "train.lr"),
    B("yaml3-grad-clip-1e400", {"train.grad_clip": "1e400"}, "train.grad_clip"),
    B("yaml3-hidden-a-mapping", {"model.hidden": {"a": 1}}, "model.hidden"),
    B("yaml3-hidden-huge", {"model.hidden": [10**12]}, "model.hidden[0] must be an integer in [1, 100000]"),
    B("yaml3-latent-dim-huge", {"model.latent_dim": 10**12}, "model.latent_dim must be an integer in [1, 100000]"),
    B("yaml3-progress-1", {"train.progress": 1}, "train.progress"),
    B("yaml3-eval-size-1e30", {"data.eval_size": 1e30}, "data.eval_size"),
    B("yaml3-train-size-beyond-the-data", {"data.train_size": 10**8}, "data.train_size"),
    B("yaml3-iw-samples-huge", {"eval.iw_samples": 10**15}, "eval.iw_samples"),
    # ---- command lines ----
    Case("cli3-override-empty-value", "train {cfg} train.lr= --out {new}", "train.lr"),
    Case("cli3-override-double-equals", "train {cfg} train.lr==0.1 --out {new}", "train.lr"),
    Case("cli3-override-unclosed-list", "train {cfg} model.hidden=[32 --out {new}", "model.hidden"),
    Case("cli3-override-twice", "train {cfg} train.lr=0.1 train.lr=0.2 --out {new}", "train.lr is given twice"),
    Case("cli3-out-dev-null", "train {cfg} --out /dev/null", "/dev/null", skip=not Path("/dev/null").exists()),
    Case("cli3-out-name-too-long", "train {cfg} --out {new}/" + "x" * 300, "x" * 40),
    Case("cli3-out-in-proc", "train {cfg} --out /proc/self/vaelab_run", "/proc/self", skip=not Path("/proc").is_dir()),
    Case("cli3-evaluate-iw-huge", "evaluate {run} --iw-samples 99999999999999999999", "--iw-samples"),
    Case("cli3-evaluate-split-upper-case", "evaluate {run} --split TEST", "--split"),
    Case("cli3-sample-n-huge", "sample {text_run} -n 100000000000", "-n"),
    Case("cli3-sample-max-length-huge", "sample {text_run} --max-length 100000000000", "--max-length"),
    Case("cli3-sample-temperature-inf", "sample {text_run} --temperature inf", "--temperature"),
    Case("cli3-sample-temperature-1e300", "sample {text_run} --temperature 1e300", "--temperature"),
    Case("cli3-sample-temperature-1e-300", "sample {text_run} --temperature 1e-300", "--temperature"),
    Case("cli3-reconstruct-empty-sentence", "reconstruct {text_run} ||", "empty sentence"),
    Case("cli3-reconstruct-blank-sentence", "reconstruct {text_run} |   |", "empty sentence"),
    Case("cli3-reconstruct-a-checkpoint", "reconstruct {text_run} --file {run}/checkpoints/best.pt", "best.pt"),
    Case("cli3-reconstruct-samples-huge", "reconstruct {text_run} |the cat| --samples 100000000", "--samples"),
    Case("cli3-interpolate-steps-huge", "interpolate {text_run} |the cat| |a dog| --steps 100000000000", "--steps"),
    Case("cli3-sweep-aggregate-a-run", "sweep-aggregate {run}", "not a sweep folder"),
    Case("cli3-sweep-aggregate-a-plain-folder", "sweep-aggregate {plain_dir}", "not a sweep folder"),
    Case("cli3-plot-sweep-a-run", "plot-sweep {run}", "not a sweep folder"),
    Case("cli3-report-a-plain-folder", "report {plain_dir}", "not a run folder"),
    Case("cli3-diagnose-a-file", "diagnose {file}", "not a run folder"),
    Case("cli3-latent-plot-out-a-folder-name", "latent-plot {run} --out {new}/", "names a folder"),
    Case("cli3-study-seed-negative", "study collapse --data {plain_cfg} --seeds -1 --out {new}", "--seeds"),
    Case("cli3-study-seed-twice", "study collapse --data {plain_cfg} --seeds 1,1 --out {new}", "seed 1 is given twice"),
    Case("cli3-study-unknown-kind", "study nope --data {cfg} --out {new}", "nope"),
    Case(
        "cli3-study-iw-huge",
        "study collapse --data {plain_cfg} --iw-samples 10000000000000 --out {new}",
        "--iw-samples",
    ),
    Case("cli3-lag-plot-steps-huge", "lag-plot --quick --steps 100000000000 --out {new}/lag.png", "--steps"),
    Case("cli3-theory-N-fraction", "theory linear-vae --N 1.5 --out {new}", "--N"),
    # ---- data files ----
    Case(
        "data3-npz-object-array",
        T_BAD,
        "d.npz",
        bad_npz(lambda r: {"train": np.array([None] * 64), "test": _bits(r, 16)}),
    ),
    Case(
        "data3-npz-complex",
        T_BAD,
        "complex",
        bad_npz(lambda r: {"train": _bits(r, 64).astype(complex), "test": _bits(r, 16)}),
    ),
    Case(
        "data3-npz-strings",
        T_BAD,
        "d.npz[train]",
        bad_npz(lambda r: {"train": np.array(["a"] * 64), "test": _bits(r, 16)}),
    ),
    Case(
        "data3-npz-inf",
        T_BAD,
        "d.npz[train]",
        bad_npz(lambda r: {"train": np.where(_bits(r, 64) > 0, np.inf, 0).astype("float32"), "test": _bits(r, 16)}),
    ),
    Case(
        "data3-npz-1d", T_BAD, "d.npz[train]", bad_npz(lambda r: {"train": _bits(r, 64).ravel(), "test": _bits(r, 16)})
    ),
    Case(
        "data3-npz-5d",
        T_BAD,
        "d.npz[train]",
        bad_npz(lambda r: {"train": _bits(r, 64).reshape(64, 1, 1, 6, 6), "test": _bits(r, 16)}),
    ),
    Case(
        "data3-npz-width-vs-image-shape",
        T_BAD,
        "data.image_shape",
        bad_npz(lambda r: {"train": (r.random((64, 25)) > 0.5).astype("float32"), "test": _bits(r, 16)}),
    ),
    Case(
        "data3-npz-zero-values-per-example",
        T_BAD,
        "no values per example",
        bad_npz(
            lambda r: {"train": np.zeros((64, 0), "float32"), "test": np.zeros((16, 0), "float32")}, image_shape=None
        ),
    ),
    Case(
        "data3-npz-float-labels",
        T_BAD,
        "labels",
        bad_npz(
            lambda r: {
                "train": _bits(r, 64),
                "test": _bits(r, 16),
                "train_labels": np.arange(64) / 2,
                "test_labels": np.zeros(16),
            }
        ),
    ),
    Case(
        "data3-npz-too-few-labels",
        T_BAD,
        "10 labels for 64",
        bad_npz(
            lambda r: {
                "train": _bits(r, 64),
                "test": _bits(r, 16),
                "train_labels": np.zeros(10, int),
                "test_labels": np.zeros(16, int),
            }
        ),
    ),
    Case("data3-npz-empty-file", T_BAD, "d.npz", bad_npz(None, raw=b"")),
    Case("data3-npz-truncated", T_BAD, "d.npz", bad_npz(None, raw=_npz_bytes(300))),
    Case(
        "data3-npz-negative-floats",
        T_BAD,
        "d.npz[train]",
        bad_npz(lambda r: {"train": _bits(r, 64) - 0.5, "test": _bits(r, 16)}),
    ),
    Case("data3-corpus-binary", T_BAD, "train.txt:", _bytes_corpus({"train.txt": bytes(range(256)) * 4})),
    Case(
        "data3-corpus-utf16", T_BAD, "train.txt:1", _bytes_corpus({"train.txt": "the cat sees it\n".encode("utf-16")})
    ),
    Case(
        "data3-corpus-utf16-without-bom",
        T_BAD,
        "NUL character",
        _bytes_corpus({"train.txt": "the cat sees it\n".encode("utf-16-le") * 20}),
    ),
    Case(
        "data3-corpus-nul-bytes", T_BAD, "train.txt:1: a NUL", _bytes_corpus({"train.txt": b"the cat\0 sees it\n" * 20})
    ),
    Case("data3-corpus-no-valid-file", T_BAD, "no validation file", _bytes_corpus({"valid.txt": None})),
    Case("data3-corpus-train-a-folder", T_BAD, "train.txt", _bytes_corpus({"train.txt": "DIR"})),
    Case("data3-corpus-crlf-blank-lines", T_BAD, "train.txt:1", _bytes_corpus({"train.txt": b"\r\n\r\n\r\n"})),
    Case(
        "data3-corpus-word-labels",
        T_BAD,
        "bad label 'neg'",
        corpus_edit(
            lambda w: {
                n: "".join(f"{'pos' if i % 2 else 'neg'}\t{s}\n" for i, s in enumerate(_lines(w, n)))
                for n in _TEXT_ROLES
            },
            format="label_tab",
        ),
    ),
    Case("data3-corpus-vocab-file-missing", T_BAD, "vocab.txt", _bytes_corpus({}, vocab_file="vocab.txt")),
    # ---- run folders ----
    Case(
        "folder3-report-metrics-garbage",
        "report {copy} --out {new}.html",
        "metrics.jsonl",
        edited_copy(lambda d, w: (d / "metrics.jsonl").write_text((d / "metrics.jsonl").read_text() + "{not json\n")),
    ),
    Case(
        "folder3-report-summary-empty",
        "report {copy} --out {new}.html",
        "summary.json",
        edited_copy(lambda d, w: (d / "summary.json").write_text("")),
    ),
    Case(
        "folder3-evaluate-config-unknown-key",
        "evaluate {copy}",
        "'nosuch'",
        edited_copy(lambda d, w: (d / "config.yaml").write_text((d / "config.yaml").read_text() + "nosuch: 1\n")),
    ),
    Case(
        "folder3-evaluate-config-empty",
        "evaluate {copy}",
        "config.yaml: the file is empty",
        edited_copy(lambda d, w: (d / "config.yaml").write_text("")),
    ),
    Case(
        "folder3-evaluate-corpus-moved",
        "evaluate {copy}",
        "corpus_gone",
        edited_copy(
            lambda d, w: (d / "config.yaml").write_text(
                (d / "config.yaml").read_text().replace(str(w["corpus"]), str(w["corpus"]) + "_gone")
            ),
            "text_run",
        ),
    ),
    Case("folder3-resume-a-sweep-folder", "resume {dir}", "not a run folder", folder_with(_SWEEP_FOLDER)),
    Case(
        "folder3-resume-checkpoint-of-another-run",
        "resume {copy}",
        "last.pt belongs to another run",
        partial_run(lambda d, w: shutil.copy(w["text_run"] / "checkpoints" / "last.pt", d / "checkpoints" / "last.pt")),
    ),
    Case(
        "folder3-resume-metrics-garbage",
        "resume {copy}",
        "metrics.jsonl:1",
        partial_run(lambda d, w: (d / "metrics.jsonl").write_text("garbage\n")),
    ),
    Case("folder3-resume-binarize-seed", "resume {copy} eval.binarize_seed=7", "eval.binarize_seed", partial_run()),
    Case("folder3-resume-mi-pool", "resume {copy} eval.mi_pool=all", "eval.mi_pool", partial_run()),
    # ---- sweep files ----
    Case("sweep3-grid-a-scalar", S_BAD, "grid.train.lr", bad_sweep({"grid": {"train.lr": 0.1}})),
    Case("sweep3-grid-unknown-key", S_BAD, "'nosuch'", bad_sweep({"grid": {"nosuch.key": [1, 2]}})),
    Case("sweep3-seeds-empty", S_BAD, "seeds", bad_sweep({"seeds": []})),
    Case(
        "sweep3-variant-names-twice",
        S_BAD,
        "variant names must be unique",
        bad_sweep({"variants": [{"name": "a", "train.lr": 0.1}, {"name": "a", "train.lr": 0.2}]}),
    ),
    Case(
        "sweep3-zip-lengths-differ",
        S_BAD,
        "zip lists must have equal lengths",
        bad_sweep({"zip": {"train.lr": [0.1, 0.2], "train.batch_size": [16]}}),
    ),
    Case("sweep3-top-level-typo", S_BAD, "'grdi'", bad_sweep({"grdi": {"train.lr": [0.1, 0.2]}})),
    Case(
        "sweep3-variant-wrong-type", S_BAD, "model.hidden", bad_sweep({"variants": [{"name": "a", "model.hidden": 64}]})
    ),
    Case(
        "sweep3-a-later-point-cannot-build-its-model",
        S_BAD,
        "point 1: model.type=conv",
        bad_sweep(
            {
                "fixed": {"model.type": "conv", "model.channels": [4]},
                "grid": {"data.image_shape": [[1, 6, 6], [1, 1, 1]]},
            },
            base="bare_cfg",
        ),
    ),
    Case(
        "sweep3-measure-typo", S_BAD, "measure.iw_smaples", bad_sweep({"measure": {"iw_samples": 2, "iw_smaples": 3}})
    ),
    Case(
        "sweep3-measure-checkpoint",
        S_BAD,
        "measure.checkpoint",
        bad_sweep({"measure": {"iw_samples": 2, "checkpoint": "middle"}}),
    ),
    Case("sweep3-base-missing", S_BAD, "nowhere.yaml", bad_sweep("name: s\nbase: /nowhere/nowhere.yaml\n")),
    Case(
        "sweep3-base-and-another-base-config",
        S_BAD,
        "sets both base",
        bad_sweep("name: s\nbase: {cfg}\nbase_config: {{name: x}}\n"),
    ),
]


# --------------------------------------------------------------------------------------------------------------
# leftovers: a file where the checkpoints folder is expected, a folder where a checkpoint is, a sweep's --workers
# far above the cores (a typo that would start thousands of processes)


def _checkpoints_a_file(d: Path, w: dict) -> None:
    shutil.rmtree(d / "checkpoints")
    (d / "checkpoints").write_text("x\n")


def _a_folder(name: str) -> Callable[[Path, dict], None]:
    def edit(d: Path, w: dict) -> None:
        (d / "checkpoints" / name).unlink()
        (d / "checkpoints" / name).mkdir()

    return edit


CHECKPOINTS_A_FILE = "checkpoints is a file where a folder is expected"
TOO_MANY_WORKERS = max_workers() + 1

CASES += [
    Case("resume-checkpoints-a-file", "resume {copy}", CHECKPOINTS_A_FILE, edited_copy(_checkpoints_a_file)),
    Case("evaluate-checkpoints-a-file", "evaluate {copy}", CHECKPOINTS_A_FILE, edited_copy(_checkpoints_a_file)),
    Case(
        "evaluate-last-checkpoints-a-file",
        "evaluate {copy} --checkpoint last",
        CHECKPOINTS_A_FILE,
        edited_copy(_checkpoints_a_file),
    ),
    Case("diagnose-checkpoints-a-file", "diagnose {copy}", CHECKPOINTS_A_FILE, edited_copy(_checkpoints_a_file)),
    Case(
        "sample-checkpoints-a-file", "sample {copy}", CHECKPOINTS_A_FILE, edited_copy(_checkpoints_a_file, "text_run")
    ),
    Case("resume-last-a-folder", "resume {copy}", "last.pt is not a file", edited_copy(_a_folder("last.pt"))),
    Case(
        "evaluate-last-a-folder",
        "evaluate {copy} --checkpoint last",
        "last.pt is not a file",
        edited_copy(_a_folder("last.pt")),
    ),
    Case("diagnose-best-a-folder", "diagnose {copy}", "best.pt is not a file", edited_copy(_a_folder("best.pt"))),
    Case(
        "evaluate-last-removed-from-a-finished-run",
        "evaluate {copy} --checkpoint last",
        "last.pt does not exist but the run logged evaluations",
        removed("last.pt"),
    ),
    Case("sweep-workers-a-typo", "sweep {sweep_ok} --workers 2000 --out {new}", "--workers"),
    Case(
        "sweep-workers-above-4-per-core",
        f"sweep {{sweep_ok}} --workers {TOO_MANY_WORKERS} --out {{new}}",
        f"--workers: must be an integer in [1, {TOO_MANY_WORKERS - 1}]",
    ),
    Case(
        "study-workers-above-4-per-core",
        f"study collapse --data {{cfg}} --workers {TOO_MANY_WORKERS} --out {{new}}",
        f"--workers: must be an integer in [1, {TOO_MANY_WORKERS - 1}]",
    ),
]


# --------------------------------------------------------------------------------------------------------------
# a fourth fresh set (issue 16): 271 inputs, 58 of them failed before the fixes (tallied in README's Bad input)


def _mkfifo(w: dict, tmp: Path) -> dict[str, str]:
    os.mkfifo(tmp / "fifo.yaml")  # reading it would block until a writer comes
    return {"fifo": str(tmp / "fifo.yaml")}


def _symlink_loop(w: dict, tmp: Path) -> dict[str, str]:
    os.symlink(tmp / "loop", tmp / "loop")
    return {"loop": str(tmp / "loop")}


def _nan_parameter(d: Path, w: dict) -> None:
    path = d / "checkpoints" / "best.pt"
    ckpt = torch.load(path, weights_only=True)
    next(t for t in ckpt["model"].values() if t.is_floating_point()).fill_(float("nan"))
    torch.save(ckpt, path)


def _text_file(name: str, data: bytes) -> Callable[[dict, Path], dict[str, str]]:
    def setup(w: dict, tmp: Path) -> dict[str, str]:
        (tmp / name).write_bytes(data)
        return {"f": str(tmp / name)}

    return setup


def _small_sweep_folder(w: dict, tmp: Path) -> dict[str, str]:
    """{dir}: a finished sweep of one point (2 steps)."""
    spec = _yaml(tmp / "s.yaml", {"name": "s", "base": str(w["cfg"]), "fixed": {"train.max_steps": 2}})
    run_sweep(load_sweep(spec), tmp / "sw", workers=1)
    write_results(tmp / "sw")
    return {"dir": str(tmp / "sw")}


def _channels_last(r: np.random.Generator) -> dict:
    return {"train": _bits(r, 64 * 3).reshape(64, 6, 6, 3), "test": _bits(r, 48).reshape(16, 6, 6, 3)}


NOT_A_REGULAR_FILE = "is not a regular file (a pipe or a device)"
NO_BEST = "best.pt does not exist but the run logged evaluations"

CASES += [
    # ---- values that ran for hours or took all memory ----
    B("set4-hole-prior-samples-huge", {"eval.hole_prior_samples": 10**12}, "eval.hole_prior_samples"),
    Case(
        "set4-resume-hole-prior-samples-huge",
        "resume {copy} eval.hole_prior_samples=10000000000",
        "eval.hole_prior_samples",
        partial_run(),
    ),
    Case("set4-sweep-index-huge-range", "sweep {sweep_ok} --index 0-99999999999 --out {new}", "more than 1000000"),
    Case("set4-study-seeds-huge-range", "study collapse --data {plain_cfg} --seeds 0-100000000 --out {new}", "--seeds"),
    Case("set4-study-budget-huge", "study collapse --data {plain_cfg} --budget 1000000000000 --out {new}", "--budget"),
    Case("set4-latent-plot-prior-samples-huge", "latent-plot {run} --prior-samples 1000000000000", "--prior-samples"),
    Case("set4-theory-N-huge", "theory linear-vae --quick --N 1000000000000 --out {new}", "--N"),
    # ---- overrides, paths that are not what they seem ----
    Case("set4-override-leading-dot", "train {cfg} .lr=0.1 --out {new}", "'.lr' has an empty part"),
    Case("set4-override-double-dot", "train {cfg} train..lr=0.1 --out {new}", "'train..lr' has an empty part"),
    Case("set4-override-empty-key", "train {cfg} =0.1 --out {new}", "has an empty part"),
    Case("set4-out-a-symlink-loop", "train {cfg} --out {loop}", "leads nowhere", _symlink_loop),
    Case("set4-config-a-fifo", "train {fifo} --out {new}", NOT_A_REGULAR_FILE, _mkfifo),
    Case(
        "set4-config-dev-null", "train /dev/null --out {new}", NOT_A_REGULAR_FILE, skip=not Path("/dev/null").exists()
    ),
    Case("set4-reconstruct-file-a-fifo", "reconstruct {text_run} --file {fifo}", NOT_A_REGULAR_FILE, _mkfifo),
    Case("set4-latent-plot-out-txt", "latent-plot {run} --out {new}.txt", "cannot be written as .txt"),
    Case("set4-lag-plot-out-txt", "lag-plot --quick --out {new}.txt", "cannot be written as .txt"),
    # ---- run folders ----
    Case("set4-evaluate-no-best-finished", "evaluate {copy}", NO_BEST, removed("best.pt")),
    Case("set4-diagnose-no-best-finished", "diagnose {copy} --evaluate", NO_BEST, removed("best.pt")),
    Case("set4-latent-plot-no-best-finished", "latent-plot {copy}", NO_BEST, removed("best.pt")),
    Case(
        "set4-sample-no-best-finished",
        "sample {copy}",
        NO_BEST,
        edited_copy(lambda d, w: (d / "checkpoints" / "best.pt").unlink(), "text_run"),
    ),
    Case("set4-evaluate-nan-parameter", "evaluate {copy}", "holds NaN or infinite values", edited_copy(_nan_parameter)),
    Case(
        "set4-diagnose-eval-json-garbage",
        "diagnose {copy} --no-evaluate",
        "eval.json: not valid JSON",
        edited_copy(lambda d, w: (d / "eval.json").write_text("{garbage")),
    ),
    Case(
        "set4-diagnose-eval-json-a-list",
        "diagnose {copy} --no-evaluate",
        "eval.json: expected a JSON object",
        edited_copy(lambda d, w: (d / "eval.json").write_text("[1]")),
    ),
    Case(
        "set4-resume-lock-garbage",
        "resume {copy}",
        "not a lock that vaelab wrote",
        partial_run(lambda d, w: (d / "run.lock").write_text("garbage")),
    ),
    Case(
        "set4-resume-lock-a-folder",
        "resume {copy}",
        "a folder, not a lock file",
        partial_run(lambda d, w: (d / "run.lock").mkdir()),
    ),
    # ---- evaluate: an override that the command would ignore ----
    Case("set4-evaluate-final-split-override", "evaluate {run} eval.final_split=valid", "use --split"),
    Case("set4-evaluate-iw-samples-twice", "evaluate {run} --iw-samples 5 eval.iw_samples=3", "give one of them"),
    # ---- sentences ----
    Case(
        "set4-reconstruct-nul", "reconstruct {text_run} --file {f}", "NUL character", _text_file("n.txt", b"the\0cat\n")
    ),
    Case(
        "set4-reconstruct-own-token", "reconstruct {text_run} |the <pad> cat|", "'<pad>' is one of vaelab's own tokens"
    ),
    # ---- sweeps and studies ----
    Case(
        "set4-sweep-base-a-sweep-file", S_BAD, "is a sweep file, not a run config", bad_sweep("name: s\nbase: s.yaml\n")
    ),
    Case(
        "set4-plot-sweep-beta-key-unknown",
        "plot-sweep {dir} --beta-key nosuch",
        "--beta-key 'nosuch'",
        _small_sweep_folder,
    ),
    Case("set4-study-reuse-a-file", "study collapse --data {plain_cfg} --reuse {file} --out {new}", "--reuse"),
    # ---- data files ----
    Case("set4-npz-channels-last", T_BAD, "channels last?", bad_npz(_channels_last, image_shape=[3, 6, 6])),
    Case(
        "set4-npz-own-valid-and-valid-size",
        T_BAD,
        "data.valid_size=8 is not read",
        bad_npz(lambda r: {"train": _bits(r, 64), "valid": _bits(r, 16), "test": _bits(r, 16)}, valid_size=8),
    ),
    Case(
        "set4-vocab-file-without-training-words",
        T_BAD,
        "none of the training split's words",
        bad_corpus({"vocab.txt": "zebra\nyak\n"}, vocab_file="vocab.txt"),
    ),
]


def _argv(template: str, values: dict[str, str]) -> list[str]:
    parts = template.split("|")
    argv: list[str] = []
    for i, part in enumerate(parts):
        if i % 2:
            argv.append(part.format(**values))
        else:
            argv.extend(a.format(**values) for a in part.split())
    return argv


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """``vaelab ARGV`` in this process: (exit status, stderr)."""
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    return code, capsys.readouterr().err


def check_refused(case_argv: list[str], expect: str, w: dict, tmp: Path, new: Path, capsys) -> None:
    before = _hashes(w["root"], tmp)
    code, err = run_cli(case_argv, capsys)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, f"exit {code}: {err}"
    assert "Traceback" not in err, err
    assert len(lines) == 1, err
    assert expect in lines[0], lines[0]
    assert not new.exists(), f"{new} was written"
    assert _hashes(w["root"], tmp) == before, "a run folder changed"


# ---- the fifth fresh set (data files, huge image shape) ----
CASES += [
    Case(
        "set5-arrays-object-array",
        T_BAD,
        "array 'train' cannot be loaded without pickle",
        bad_npz(lambda r: {"train": np.array([None] * 64), "test": _bits(r, 16)}, name="arrays", image_shape=None),
    ),
    Case(
        "set5-arrays-object-labels",
        T_BAD,
        "array 'train_labels' cannot be loaded without pickle",
        bad_npz(
            lambda r: {"train": _bits(r, 64), "train_labels": np.array([None] * 64), "test": _bits(r, 16)},
            name="arrays",
            image_shape=None,
        ),
    ),
    Case(
        "set5-arrays-complex",
        T_BAD,
        "d.npz[train]: unsupported dtype complex64",
        bad_npz(
            lambda r: {"train": _bits(r, 64).astype("complex64"), "test": _bits(r, 16)}, name="arrays", image_shape=None
        ),
    ),
    Case(
        "set5-arrays-empty-valid",
        T_BAD,
        "array 'valid' is empty",
        bad_npz(
            lambda r: {"train": _bits(r, 64), "valid": np.zeros((0, 36), "float32"), "test": _bits(r, 16)},
            name="arrays",
            image_shape=None,
        ),
    ),
    Case(
        "set5-npz-empty-valid",
        T_BAD,
        "array 'valid' (valid split) is empty",
        bad_npz(lambda r: {"train": _bits(r, 64), "valid": np.zeros((0, 36), "float32"), "test": _bits(r, 16)}),
    ),
    T("data.image_shape=[1,100000,100000]", "data.image_shape=[1, 100000, 100000] has 10,000,000,000 values"),
]


def _old_folder_edit(key: str, value: object) -> Callable[[Path, dict], None]:
    """Edit config.yaml's ``key`` in a folder written before ``_meta.data_config`` was recorded."""

    def edit(d: Path, w: dict) -> None:
        data = yaml.safe_load((d / "config.yaml").read_text())
        data["_meta"].pop("data_config")
        _set(data, key, value)
        (d / "config.yaml").write_text(yaml.safe_dump(data))

    return edit


def _foreign_point(w: dict, tmp: Path) -> dict[str, str]:
    """{dir}: a sweep folder of one point whose point folder holds another run (the text run) copied in."""
    from vaelab.sweep.spec import dump_spec

    spec = load_sweep(w["sweep_ok"])
    out = tmp / "sw"
    (out / "points").mkdir(parents=True)
    dump_spec(spec, out / "sweep.yaml")
    shutil.copytree(w["text_run"], out / "points" / spec.point(0).folder_name)
    return {"dir": str(out)}


# ---- the fifth fresh set, part 2: section mappings, parent/child sweep keys, edited data, foreign points ----
CASES += [
    Case(
        "set5-override-section-mapping-and-its-key",
        "train {cfg} train.lr=0.1 |train={{lr: 0.002}}| --out {new}",
        "override key train.lr is given twice ('train.lr=0.1' and 'train={lr: 0.002}')",
    ),
    Case(
        "set5-override-parent-after-child",
        "train {cfg} objective.beta.value=2 |objective.beta={{type: constant}}| --out {new}",
        "objective.beta.value set before it would be lost",
    ),
    Case(
        "set5-sweep-grid-parent-and-child",
        S_BAD,
        "objective.beta.value (grid) lies inside objective.beta (grid)",
        bad_sweep(
            {"grid": {"objective.beta.value": [0.5, 1.0], "objective.beta": [{"type": "constant", "value": 2.0}]}}
        ),
    ),
    Case(
        "set5-sweep-fixed-child-variant-parent",
        S_BAD,
        "objective.beta.value (fixed) lies inside objective.beta (variant a)",
        bad_sweep(
            {
                "fixed": {"objective.beta.value": 2.0},
                "variants": [{"name": "a", "objective.beta": {"type": "constant"}}],
            }
        ),
    ),
    Case(
        "set5-sweep-zip-child-grid-parent",
        S_BAD,
        "objective.beta.value (zip) lies inside objective.beta (grid)",
        bad_sweep({"zip": {"objective.beta.value": [0.5, 1.0]}, "grid": {"objective.beta": [{"type": "constant"}]}}),
    ),
    Case(
        "set5-sweep-section-grid-and-variant-key",
        S_BAD,
        "train.lr is varied by both variants and grid",
        bad_sweep({"variants": [{"name": "a", "train.lr": 0.1}], "grid": {"train": [{"lr": 0.2}, {"lr": 0.3}]}}),
    ),
    Case(
        "set5-sweep-variant-section-and-its-key",
        S_BAD,
        "train.lr (in train and in train.lr) is given twice",
        bad_sweep({"variants": [{"name": "a", "train.lr": 0.1, "train": {"lr": 0.2}}]}),
    ),
    Case(
        "set5-evaluate-data-noise-edited",
        "evaluate {copy}",
        "data.noise is 0.3, but the run was trained with data.noise=0.1",
        edited_copy(_edit_config("data.noise", 0.3)),
    ),
    Case(
        "set5-evaluate-eval-size-edited-in-config",
        "evaluate {copy}",
        "give data.eval_size=N to vaelab evaluate",
        edited_copy(_edit_config("data.eval_size", 16)),
    ),
    Case(
        "set5-evaluate-old-folder-num-examples-edited",
        "evaluate {copy}",
        "counts.train was 256 (_meta.data.counts.train), the data that config.yaml names now give 512",
        edited_copy(_old_folder_edit("data.num_examples", 512)),
    ),
    Case(
        "set5-evaluate-old-folder-noise-edited",
        "evaluate {copy}",
        "generator was",
        edited_copy(_old_folder_edit("data.noise", 0.3)),
    ),
    Case(
        "set5-diagnose-data-edited",
        "diagnose {copy} --evaluate",
        "data.noise is 0.3",
        edited_copy(_edit_config("data.noise", 0.3)),
    ),
    Case("set5-resume-data-edited", "resume {copy}", "data.noise is 0.3", partial_run(_edit_config("data.noise", 0.3))),
    Case("set5-sweep-aggregate-foreign-point", "sweep-aggregate {dir}", "holds another run", _foreign_point),
]


# ---- sixth fresh set (h16s6) ----
TRAIN_NEW = "train {cfg} %s --out {new}"


def _results_csv(text: str) -> Callable[[dict, Path], dict[str, str]]:
    """{dir}: a finished sweep of one point whose results.csv is replaced by ``text`` (damaged)."""

    def setup(w: dict, tmp: Path) -> dict[str, str]:
        values = _small_sweep_folder(w, tmp)
        (Path(values["dir"]) / "results.csv").write_text(text)
        return values

    return setup


def _edited_sweep_of_a_folder(w: dict, tmp: Path) -> dict[str, str]:
    """{dir}: a finished sweep of one point; {bad}: the same sweep file with another step cap."""
    values = _small_sweep_folder(w, tmp)
    values["bad"] = str(_yaml(tmp / "s2.yaml", {"name": "s", "base": str(w["cfg"]), "fixed": {"train.max_steps": 3}}))
    return values


CASES += [
    Case(
        "set6-data-split-kind-not-tetrominoes",
        TRAIN_NEW % "data.split_kind=checkerboard",
        "data.split_kind: not read by data.name=synthetic_blobs (only by data.name=tetrominoes)",
    ),
    Case(
        "set6-data-cache-dir-not-tetrominoes",
        TRAIN_NEW % "data.cache_dir={new}_cache",
        "data.cache_dir: not read by data.name=synthetic_blobs (only by data.name=tetrominoes)",
    ),
    Case(
        "set6-data-key-of-another-generator",
        TRAIN_NEW % "data.latent_dim=3",
        "data.latent_dim: not read by data.name=synthetic_blobs (only by data.name=synthetic_gaussian)",
    ),
    Case(
        "set6-data-name-switched-with-a-generator-key",
        TRAIN_NEW % "data.name=npz data.path=x.npz data.noise=0.2",
        "data.noise: not read by data.name=npz",
    ),
    Case(
        "set6-data-mapping-switches-name-with-a-generator-key",
        TRAIN_NEW % "|data={{name: npz, path: x.npz, num_templates: 3}}|",
        "data.num_templates: not read by data.name=npz",
    ),
    Case(
        "set6-data-file-npz-with-generator-keys",
        T_BAD,
        "data.num_examples: not read by data.name=npz",
        bad_config({"data.name": "npz", "data.path": "x.npz"}),
    ),
    Case(
        "set6-resume-lr-edited-in-config",
        "resume {copy}",
        "train.lr is 0.5, but the run was trained with train.lr=0.003 (_meta.trained_config)",
        partial_run(_edit_config("train.lr", 0.5)),
    ),
    Case(
        "set6-resume-epochs-shortened-in-config",
        "resume {copy}",
        "train.epochs is 2, but the run was trained with train.epochs=5",
        partial_run(_edit_config("train.epochs", 2)),
    ),
    Case(
        "set6-evaluate-beta-edited-in-config",
        "evaluate {copy}",
        "objective.beta.value is 2.0, but the run was trained with objective.beta.value=1.0",
        edited_copy(_edit_config("objective.beta.value", 2.0)),
    ),
    Case(
        "set6-malloc-tuning-neither-on-nor-off",
        TRAIN_NEW % "train.epochs=1",
        "environment variable VAELAB_MALLOC_TUNING='banana' is neither on",
        env={"VAELAB_MALLOC_TUNING": "banana"},
    ),
    Case(
        "set6-plot-sweep-results-csv-unterminated-quote",
        "plot-sweep {dir}",
        "results.csv: not a valid CSV file (unexpected end of data); re-create it with `vaelab sweep-aggregate",
        _results_csv('index,point,status\n0,"0000-point\n'),
    ),
    Case(
        "set6-report-results-csv-row-too-long",
        "report {dir} --no-samples",
        "results.csv:3: the row's cells do not match the header's 3 columns",
        _results_csv("index,point,status\n0,0000-point,completed\n1,0001-point,completed,4\n"),
    ),
    Case(
        "set6-sweep-list-of-a-folder-of-another-sweep",
        "sweep {bad} --out {dir} --list",
        "holds a different sweep: its point 0 (train.max_steps=2) differs in train.max_steps: 2 -> 3",
        _edited_sweep_of_a_folder,
    ),
]


def _meta_removed_and_data_changed(d: Path, w: dict) -> None:
    """S09 (h16s7): config.yaml without its _meta record, and other data (split_seed) than the run's."""
    data = yaml.safe_load((d / "config.yaml").read_text())
    data.pop("_meta")
    data["data"]["split_seed"] = 5
    (d / "config.yaml").write_text(yaml.safe_dump(data))


CASES += [  # the seventh fresh set (h16s7): run folders, config checks, sweeps, data files
    Case(
        "set7-P06-npz-float-test-labels-name-the-labels-array",
        T_BAD,
        "d.npz[y_test]: labels have shape (16,) and dtype float64",
        bad_npz(lambda r: {"x_train": _bits(r, 64), "x_test": _bits(r, 16), "y_test": r.random(16)}),
    ),
    B(
        "set7-C11-consistency-terms-disagree-on-transform-before-the-folder",
        {
            "objective.terms": [
                {"type": "aug_distortion", "weight": 1.0, "transform": "simple"},
                {"type": "aug_rate", "weight": 1.0, "transform": "large"},
            ]
        },
        "bad.yaml: objective.terms[1].transform: consistency terms disagree on 'transform': 'simple'",
    ),
    Case(
        "set7-I06-sweep-train-subset-without-a-train-split",
        "sweep {bad} --out {new} --list",
        "measure.train_subset=10 is not read: measure.splits ['test'] has no train split",
        bad_sweep({"measure": {"splits": ["test"], "iw_samples": 2, "train_subset": 10}}),
    ),
    *[
        Case(
            f"set7-S09-{argv.split()[0]}-config-yaml-without-meta",
            argv,
            "config.yaml: no _meta record, which every config.yaml vaelab writes holds: the file was edited",
            (partial_run if argv.startswith("resume") else edited_copy)(_meta_removed_and_data_changed),
        )
        for argv in (
            "evaluate {copy} --iw-samples 2",
            "diagnose {copy} --no-evaluate",
            "report {copy} --no-samples",
            "resume {copy}",
        )
    ],
    # A09/K07/V03: an error of a command-line override names the override, not the config file
    Case(
        "set7-A09-train-override-error-names-the-override",
        "train {cfg} objective.beta=2 --out {new}",
        "error: override objective.beta=2: objective.beta: expected a mapping",
    ),
    Case(
        "set7-A09-train-file-value-keeps-the-file-prefix",
        "train {bad} train.lr=0.01 --out {new}",
        "bad.yaml: objective.beta: expected a mapping",
        bad_config({"objective.beta": 2}),
    ),
    Case(
        "set7-K07-study-set-error-names-the-set",
        "study collapse --data {plain_cfg} --methods plain --set train.optimiser=sgd --out {new}",
        "error: --set train.optimiser=sgd: unknown config key 'train.optimiser'",
    ),
    Case(
        "set7-V03-resume-override-error-names-the-override",
        "resume {copy} eval.final_split=trian",
        "error: override eval.final_split=trian: eval.final_split: 'trian' is not a valid choice",
        partial_run(),
    ),
]


def _damaged_measurements(w: dict, tmp: Path) -> dict[str, str]:
    """{dir}: a finished one-point sweep whose measurements.json was cut short (a copy that stopped halfway)."""
    values = _small_sweep_folder(w, tmp)
    (path,) = Path(values["dir"]).glob("points/*/measurements.json")
    path.write_text(path.read_text()[:20])
    return values


CASES += [  # the eighth fresh set (h16s8): sweep factors, study budgets, damaged sweep folders
    Case(
        "set8-S16-sweep-fixed-key-also-in-the-grid",
        "sweep {bad} --list --out {new}",
        "train.lr is set in fixed and varied by grid, which replaces the fixed value at every point",
        bad_sweep({"fixed": {"train.lr": 0.01}, "grid": {"train.lr": [0.001, 0.002]}}),
    ),
    Case(
        "set8-S18-sweep-fixed-seed-and-seeds",
        "sweep {bad} --list --out {new}",
        "seed is set in fixed and varied by seeds",
        bad_sweep({"fixed": {"seed": 7}, "seeds": [0, 1]}),
    ),
    Case(
        "set8-S20-sweep-fixed-section-mapping-and-grid",
        "sweep {bad} --list --out {new}",
        "train.lr is set in fixed and varied by grid",
        bad_sweep({"fixed": {"train": {"lr": 0.01}}, "grid": {"train.lr": [0.001, 0.002]}}),
    ),
    Case(
        "set8-S13-sweep-two-variants-with-the-same-values",
        "sweep {bad} --list --out {new}",
        "variants 0 and 1 set the same values (model.latent_dim=2)",
        bad_sweep({"variants": [{"model.latent_dim": 2}, {"model.latent_dim": 2}]}),
    ),
    Case(
        "set8-P11-sweep-aggregate-measurements-cut-short",
        "sweep-aggregate {dir}",
        "measurements.json: not valid JSON",
        _damaged_measurements,
    ),
    Case(
        "set8-M12-world-size-without-torchrun",
        "train {cfg} --out {new}",
        "WORLD_SIZE=2 asks for 2 data-parallel processes, but RANK, LOCAL_RANK, MASTER_ADDR, MASTER_PORT are not set",
        env={"WORLD_SIZE": "2"},
    ),
    Case(
        "set8-M12-world-size-not-a-number",
        "train {cfg} --out {new}",
        "environment variable WORLD_SIZE='two' must be a number of processes",
        env={"WORLD_SIZE": "two"},
    ),
    Case(
        "set8-G05-corpus-line-of-200000-words",
        T_BAD,
        "train.txt:3: a sentence of 200,000 words (at most 10,000",
        corpus_edit(lambda w: {"train.txt": "\n".join([*_lines(w)[:2], " ".join(["w"] * 200_000), *_lines(w)[2:]])}),
    ),
    T("objective.regulariser=free_bits_batch", "objective.regulariser=free_bits_batch without objective.free_bits"),
    Case(
        "set8-E07-aggressive-patience-under-first-decrease",
        "train {cfg} train.strategy=aggressive |train.strategy_options={{rule: first_decrease, patience: 3}}| "
        "--out {new}",
        "train.strategy_options.patience: not read by rule=first_decrease",
    ),
    T("eval.extras_every_epoch=true", "eval.extras_every_epoch=true measures eval.extra_metrics every epoch"),
    Case(
        "set8-F-npz-channels-last-without-image-shape",
        T_BAD,
        "images of shape (6, 6, 3) look channels-last (N, H, W, C)",
        bad_npz(_channels_last, image_shape=None),
    ),
    Case(
        "set8-F-npz-two-default-keys-of-the-train-split",
        T_BAD,
        "arrays 'train', 'x_train' are each a default key of the train split",
        bad_npz(lambda r: {"train": _bits(r, 64), "x_train": _bits(r, 32), "test": _bits(r, 16)}),
    ),
    Case(
        "set8-M10-train-out-inside-a-run-folder",
        "train {cfg} --out {run}/checkpoints",
        "checkpoints lies inside the run folder",
    ),
    Case(
        "set8-O03-sweep-reuse-without-a-folder",
        "sweep {sweep_ok} --reuse --out {new}",
        "argument --reuse: expected at least one argument",
    ),
    Case(
        "set8-O03-study-set-without-an-item",
        "study collapse --data {plain_cfg} --methods plain --set --out {new}",
        "argument --set: expected at least one argument",
    ),
    Case(
        "set8-P01-plot-sweep-without-beta-lists-the-parameters-only",
        "plot-sweep {dir}",
        "the sweep varies no beta (its parameters: none), which the figures plot against; draw them against "
        "another parameter with `vaelab plot-sweep DIR --beta-key KEY`",
        _small_sweep_folder,
    ),
    Case(
        "set8-N14-resume-extras-every-epoch-without-extra-metrics",
        "resume {copy} |eval={{extras_every_epoch: true}}|",
        "eval.extras_every_epoch=true measures eval.extra_metrics every epoch, but eval.extra_metrics is empty",
        partial_run(),
    ),
    Case(
        "set8-M10-sweep-out-inside-a-run-folder",
        "sweep {sweep_ok} --workers 1 --out {run}/sw",
        "sw lies inside the run folder",
    ),
    Case(
        "set8-M10-study-out-inside-a-run-folder",
        "study collapse --data {plain_cfg} --methods plain --out {run}/st",
        "st lies inside the run folder",
    ),
    Case(
        "set8-J13-study-set-train-epochs",
        "study collapse --data {plain_cfg} --methods plain --set train.epochs=5 --out {new}",
        "--set train.epochs=5: train.epochs is set by --budget (2 epochs) for every method",
    ),
    Case(
        "set8-J14-study-set-max-steps-with-a-step-budget",
        "study collapse --data {plain_cfg} --methods plain --budget 5steps --set train.max_steps=2 --out {new}",
        "train.max_steps is set by --budget (5 steps)",
    ),
    Case(
        "set8-J08-study-method-set-train-epochs",
        "study collapse --data {plain_cfg} --methods plain --method-set plain:train.epochs=5 --out {new}",
        "--method-set plain:train.epochs=5: train.epochs is set by --budget",
    ),
    Case(
        "set8-J08-study-set-train-section-with-epochs",
        "study collapse --data {plain_cfg} --methods plain |--set=train={{epochs: 3, lr: 0.01}}| --out {new}",
        "train.epochs is set by --budget",
    ),
]


CASES += [  # the eleventh fresh set (h16s11)
    Case(
        "set11-c01-generated-data-too-small-to-evaluate",
        "train {cfg} data.num_examples=7 data.eval_size=null --out {new}",
        "set data.eval_size >= 2 (its default is data.num_examples // 4, so data.num_examples >= 8",
    ),
    Case("set11-w06-out-ending-with-a-space", "train {cfg} |--out={new} |", "begins or ends with a space"),
    Case("set11-w07-out-holding-a-newline", "train {cfg} |--out={new}\nx|", "holds a control character"),
    Case(
        "set11-o08-override-of-an-upper-case-section",
        "train {cfg} TRAIN.LR=0.01 --out {new}",
        "override TRAIN.LR=0.01: unknown config key 'TRAIN'; did you mean 'train' (keys are case-sensitive)?",
    ),
    Case(
        "set11-n-mism-npz-splits-of-two-shapes",
        "train {bad} --out {new}",
        "d.npz: the test images are (1, 5, 5) (C, H, W), the train images (1, 6, 6); every split must hold",
        bad_npz(
            lambda r: {"train": _bits(r, 64).reshape(64, 1, 6, 6), "test": _bits(r, 16)[:, :25].reshape(16, 1, 5, 5)},
            image_shape=None,
        ),
    ),
    Case(
        "set11-x-onetrain-one-training-sentence",
        "train {bad} --out {new}",
        "its 1 training sentence is too few to hold out a validation split",
        corpus_edit(lambda w: {"train.txt": _lines(w)[0] + "\n", "valid.txt": None}),
    ),
    Case(
        "set11-x-labtab-named-labels-read-as-plain",
        "train {bad} --out {new}",
        "look like LABEL<TAB>sentence with 2 named labels",
        corpus_edit(
            lambda w: {
                name: "".join(f"{('pos', 'neg')[i % 2]}\t{s}\n" for i, s in enumerate(_lines(w, name)))
                for name in ("train.txt", "valid.txt", "test.txt")
            }
        ),
    ),
]


def _edited_summary(**changes: object) -> Callable[[dict, Path], dict[str, str]]:
    """{copy}: a copy of the run whose summary.json has ``changes`` (and no other evaluation file)."""

    def setup(w: dict, tmp: Path) -> dict[str, str]:
        d = _copy(w, tmp)
        for name in ("eval.json", "eval_test.json", "diagnosis_eval.json"):
            (d / name).unlink(missing_ok=True)
        summary = json.loads((d / "summary.json").read_text())
        (d / "summary.json").write_text(json.dumps({**summary, **changes}))
        return {"copy": str(d)}

    return setup


def _self_linked_best(w: dict, tmp: Path) -> dict[str, str]:
    d = _copy(w, tmp)
    best = d / "checkpoints" / "best.pt"
    best.unlink()
    best.symlink_to(best)
    return {"copy": str(d)}


def _config_a_folder(w: dict, tmp: Path) -> dict[str, str]:
    d = _copy(w, tmp)
    (d / "config.yaml").unlink()
    (d / "config.yaml").mkdir()
    return {"copy": str(d)}


def _no_checkpoints(w: dict, tmp: Path) -> dict[str, str]:
    d = _copy(w, tmp)
    shutil.rmtree(d / "checkpoints")
    return {"copy": str(d)}


CASES += [  # the twelfth fresh set (h16s12)
    Case(
        "set12-c052-corpus-file-key-on-the-generated-corpus",
        "train {text_cfg} data.name=synthetic_text data.path=null data.num_examples=40 data.eval_size=12 "
        "data.max_length=3 --out {new}",
        "data.max_length: not read by data.name=synthetic_text (only by data.name=text or ptb)",
    ),
    Case(
        "set12-c063-format-on-the-generated-corpus",
        "train {text_cfg} data.name=synthetic_text data.path=null data.format=plain --out {new}",
        "data.format: not read by data.name=synthetic_text",
    ),
    Case(
        "set12-d013-report-of-a-summary-whose-number-is-text",
        "report {copy} --no-samples --out {new}/r.html",
        "summary.json: nll_iw is 'x', not a number",
        _edited_summary(nll_iw="x"),
    ),
    Case(
        "set12-d014-diagnose-of-more-active-units-than-units",
        "diagnose {copy} --no-evaluate",
        "summary.json: au is 99, more active units than its 4 latent units",
        _edited_summary(au=99),
    ),
    Case(
        "set12-n2-npz-array-of-no-split",
        "train {bad} --out {new}",
        "array 'x_vlaid' of no split",
        bad_npz(lambda r: {"x_train": _bits(r, 64), "x_test": _bits(r, 16), "x_vlaid": _bits(r, 16)}),
    ),
    Case(
        "set12-r024-evaluate-a-larger-generated-split",
        "evaluate {run} data.eval_size=100000",
        "data.eval_size=100000: the run's valid and test splits hold 64 examples each",
    ),
    Case(
        "set12-c076-beta-delayed-past-the-run",
        "train {cfg} |objective.beta={{type: linear, start: 0.0, value: 1.0, warmup_steps: 2, delay_steps: 100000}}| "
        "--out {new}",
        "objective.beta.delay_steps=100000 delays the ramp past the run's",
    ),
    Case(
        "set13-d20-best-pt-a-link-to-itself",
        "evaluate {copy}",
        "best.pt is a symbolic link that leads to no file",
        lambda w, tmp: _self_linked_best(w, tmp),
    ),
    Case("set12-d006-config-a-folder", "evaluate {copy}", "config.yaml is a folder", _config_a_folder),
    Case("set12-d009-no-checkpoints", "diagnose {copy}", "best.pt does not exist, nor last.pt", _no_checkpoints),
]


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(case: Case, world, tmp_path, capsys, monkeypatch):
    if case.skip:
        pytest.skip("this machine has the device")
    monkeypatch.chdir(tmp_path)  # nothing may land in a default folder either
    for name, value in (case.env or {}).items():
        monkeypatch.setenv(name, value)
    new = tmp_path / "new"
    values = {k: str(v) for k, v in world.items()}
    values["new"] = str(new)
    if case.setup is not None:
        values.update(case.setup(world, tmp_path))
    check_refused(_argv(case.argv, values), case.expect, world, tmp_path, new, capsys)
    assert not (tmp_path / "runs").exists()


# --------------------------------------------------------------------------------------------------------------
# one case per ranged key: a value just outside its range


def _outside(rule: Rule) -> object | None:
    """A value that ``rule`` refuses, or None when it has no range to step out of."""
    if isinstance(rule, Num):
        if rule.lo is not None:
            return rule.lo if rule.lo_open else (rule.lo - 1 if rule.integer else rule.lo - 0.5)
        if rule.hi is not None:
            return rule.hi if rule.hi_open else rule.hi + 1
        return None
    if isinstance(rule, Items) and isinstance(rule.item, Num):
        return [_outside(rule.item)]
    if isinstance(rule, Either):
        return _outside(rule.rule)
    if isinstance(rule, Text):
        return "a b" if rule.one_token else "a/b"
    return None


RANGED = [(k, v) for k, r in RULES.items() if (v := _outside(r)) is not None]


@pytest.mark.parametrize(("key", "value"), RANGED, ids=[k for k, _ in RANGED])
def test_every_ranged_key_refuses_a_value_outside_its_range(key, value, world, tmp_path, capsys):
    new = tmp_path / "new"
    item = f"{key}={json.dumps(value) if not isinstance(value, str) else value}"
    check_refused(["train", str(world["cfg"]), item, "--out", str(new)], key, world, tmp_path, new, capsys)


def test_every_config_key_has_one_rule():
    assert set(leaf_keys()) == set(RULES)


def test_the_table_is_large_enough():
    assert len(CASES) + len(RANGED) >= 120
    assert len({c.id for c in CASES}) == len(CASES)


# --------------------------------------------------------------------------------------------------------------
# errors of the operating system (simulated where this process, often root, cannot cause them)


def test_permission_denied_and_read_only_output_folders(world, tmp_path, capsys, monkeypatch):
    import vaelab.oserrors as oserrors

    new = tmp_path / "new"
    monkeypatch.setattr(oserrors.os, "access", lambda *a, **k: False)
    check_refused(["train", str(world["cfg"]), "--out", str(new)], "permission denied", world, tmp_path, new, capsys)
    monkeypatch.undo()
    monkeypatch.setattr(oserrors, "_read_only", lambda p: True)
    check_refused(["train", str(world["cfg"]), "--out", str(new)], "read-only", world, tmp_path, new, capsys)
    check_refused(["resume", str(world["run"])], "read-only", world, tmp_path, new, capsys)


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_is_one_line_with_the_path_and_what_was_written_stays(world, tmp_path, capsys, monkeypatch):
    import vaelab.checkpoint as checkpoint

    run = _copy(world, tmp_path)
    (run / "eval.json").write_text('{"old": true}\n')
    before = _hashes(run)
    monkeypatch.setattr(checkpoint.os, "fsync", _disk_full)
    code, err = run_cli(["evaluate", str(run)], capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert str(run / "eval.json") in lines[0] and "no space left" in lines[0] and "vaelab resume" in lines[0]
    assert _hashes(run) == before and not list(run.glob(".eval.json.*"))  # no temporary file left behind

    # inside torch.save (torch wraps the OSError in a RuntimeError): a new run's first checkpoint
    monkeypatch.undo()
    real = torch.save

    def save(obj, f, *a, **k):
        f.write(b"x" * 10)
        raise RuntimeError("[enforce fail at inline_container.cc] unexpected pos") from OSError(
            errno.ENOSPC, "No space left on device"
        )

    monkeypatch.setattr(checkpoint.torch, "save", save)
    out = tmp_path / "fresh"
    code, err = run_cli(["train", str(world["cfg"]), "--out", str(out)], capsys)
    monkeypatch.setattr(checkpoint.torch, "save", real)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert str(out / "checkpoints" / "last.pt") in lines[0] and "no space left" in lines[0]
    assert not list((out / "checkpoints").glob(".*.tmp"))


def test_a_bug_keeps_its_traceback(world, monkeypatch):
    """Only errors a user can act on become one line; anything else propagates."""
    import vaelab.evaluation as evaluation

    def broken(*a, **k):
        raise RuntimeError("an internal bug")

    monkeypatch.setattr(evaluation, "evaluate_run", broken)
    with pytest.raises(RuntimeError, match="an internal bug"):
        main(["evaluate", str(world["run"])])
    monkeypatch.setattr(evaluation, "evaluate_run", lambda *a, **k: (_ for _ in ()).throw(OSError(errno.EIO, "I/O")))
    with pytest.raises(OSError, match="I/O"):
        main(["evaluate", str(world["run"])])


# --------------------------------------------------------------------------------------------------------------
# a few as real processes (what a user's terminal shows)


@pytest.mark.parametrize(
    ("argv", "expect"),
    [
        (["train", "{cfg}", "train.batch_size=0", "--out", "{new}"], "train.batch_size must be an integer >= 1, got 0"),
        (["sample", "{text_run}", "-n", "0"], "argument -n: must be an integer in [1, 100000], got '0'"),
        (["resume", "{run}", "train.lr=0.1"], "vaelab resume does not accept train.lr"),
    ],
    ids=["train", "sample", "resume"],
)
def test_as_a_process(argv, expect, world, tmp_path, cli_env):
    values = {**{k: str(v) for k, v in world.items()}, "new": str(tmp_path / "new")}
    args = [a.format(**values) for a in argv]
    r = subprocess.run([sys.executable, "-m", "vaelab", *args], env=cli_env, capture_output=True, text=True)
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and expect in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "new").exists()


# --------------------------------------------------------------------------------------------------------------
# the Python API (vaelab.api): one-line exceptions naming the argument, nothing written


class _Enc(torch.nn.Module):
    def __init__(self, latent: int = 3) -> None:
        super().__init__()
        self.net = torch.nn.Linear(12, 2 * latent)

    def forward(self, x):
        return self.net(x.flatten(1)).chunk(2, -1)


class _Dec(torch.nn.Module):
    def __init__(self, latent: int = 3) -> None:
        super().__init__()
        self.net = torch.nn.Linear(latent, 12)

    def log_prob(self, x, z):
        return -torch.nn.functional.binary_cross_entropy_with_logits(self.net(z), x.flatten(1), reduction="none").sum(1)


def tiny_factory(latent: int = 3):
    """A module-level factory (vaelab.train records it) of 12-pixel encoders and decoders."""
    return _Enc(latent), _Dec(latent)


_X = (torch.rand(120, 12, generator=torch.Generator().manual_seed(0)) < 0.3).float()
_X_NAN = _X.clone()
_X_NAN[0, 0] = float("nan")
_API_FAST = ["train.epochs=1", "train.batch_size=40", "eval.iw_samples=2", "train.progress=false"]


def _sweep_folder(out: Path) -> Path:
    out.mkdir()
    (out / "sweep.yaml").write_text("name: s\n")
    return out


API_CASES: list[tuple[str, Callable[[Path, dict], object], str]] = [
    ("train-nan-data", lambda out, w: vaelab_api().train(tiny_factory, _X_NAN, out, overrides=_API_FAST), "finite"),
    (
        "train-into-a-sweep-folder",
        lambda out, w: vaelab_api().train(tiny_factory, _X, _sweep_folder(out.parent / "sw"), overrides=_API_FAST),
        "is a sweep folder",
    ),
    (
        "train-modules-do-not-fit-the-data",
        lambda out, w: vaelab_api().train(tiny_factory, _X[:, :5], out, overrides=_API_FAST),
        "failed on the first training batch, x of shape (40, 5)",
    ),
    (
        "train-latent-dim-0",
        lambda out, w: vaelab_api().train(tiny_factory, _X, out, model_kwargs={"latent": 0}, overrides=_API_FAST),
        "model.latent_dim",
    ),
    (
        "iw-nll-fractional-samples",
        lambda out, w: vaelab_api().iw_nll(tiny_factory(), _X, num_samples=2.5),
        "num_samples",
    ),
    ("mi-pool-of-1", lambda out, w: vaelab_api().mutual_information(tiny_factory(), _X, pool=1), "mi_pool"),
    ("au-threshold-negative", lambda out, w: vaelab_api().active_units(tiny_factory(), _X, threshold=-1), "threshold"),
    ("evaluate-batch-size-0", lambda out, w: vaelab_api().evaluate(tiny_factory(), _X, batch_size=0), "batch_size"),
    ("evaluate-meta-tensor", lambda out, w: vaelab_api().evaluate(tiny_factory(), _X.to("meta")), "meta device"),
    ("evaluate-seed-negative", lambda out, w: vaelab_api().evaluate(tiny_factory(), _X, seed=-1), "seed must be"),
    ("mi-seed-negative", lambda out, w: vaelab_api().mutual_information(tiny_factory(), _X, seed=-1), "seed must be"),
    ("evaluate-one-example-1d", lambda out, w: vaelab_api().evaluate(tiny_factory(), _X[0]), "shape (N, ...)"),
    ("evaluate-nan-data", lambda out, w: vaelab_api().evaluate(tiny_factory(), _X_NAN), "NaN"),
    ("load-run-checkpoint-name", lambda out, w: vaelab_api().load_run(w["run"], checkpoint="middle"), "checkpoint"),
    ("load-run-model-override", lambda out, w: vaelab_api().load_run(w["run"], overrides=["train.lr=1"]), "train.lr"),
    (
        "train-floats-0-255",
        lambda out, w: vaelab_api().train(tiny_factory, _X * 255, out, overrides=_API_FAST),
        "raw=True",
    ),
]


def _a_file(path: Path) -> Path:
    path.write_text("not a folder\n")
    return path


API_CASES += [
    (
        "train3-inf-data",
        lambda out, w: vaelab_api().train(tiny_factory, _X.masked_fill(_X > 0, float("inf")), out, overrides=_API_FAST),
        "finite",
    ),
    (
        "train3-out-a-file",
        lambda out, w: vaelab_api().train(tiny_factory, _X, _a_file(out.parent / "afile"), overrides=_API_FAST),
        "is a file, not a folder",
    ),
    ("evaluate3-no-examples", lambda out, w: vaelab_api().evaluate(tiny_factory(), _X[:0]), "no examples"),
    ("iw-nll3-zero-samples", lambda out, w: vaelab_api().iw_nll(tiny_factory(), _X, num_samples=0), "num_samples"),
    (
        "train3-too-few-labels",
        lambda out, w: vaelab_api().train(
            tiny_factory, (_X, torch.zeros(5, dtype=torch.long)), out, overrides=_API_FAST
        ),
        "labels",
    ),
    (
        "train3-lists-of-floats",
        lambda out, w: vaelab_api().train(tiny_factory, [[0.5] * 12 for _ in range(50)], out, overrides=_API_FAST),
        "token ids",
    ),
    (
        "train3-overrides-a-string",
        lambda out, w: vaelab_api().train(tiny_factory, _X, out, overrides="train.epochs=1"),
        "overrides must be a list",
    ),
    ("train3-config-a-list", lambda out, w: vaelab_api().train(tiny_factory, _X, out, config=[1, 2]), "config must be"),
    ("mi3-pool-a-word", lambda out, w: vaelab_api().mutual_information(tiny_factory(), _X, pool="many"), "pool"),
    (
        "evaluate3-batch-size-fraction",
        lambda out, w: vaelab_api().evaluate(tiny_factory(), _X, batch_size=2.5),
        "batch_size",
    ),
]


API_CASES += [
    (
        "run-sweep-workers-above-4-per-core",
        lambda out, w: run_sweep(load_sweep(w["sweep_ok"]), out, workers=TOO_MANY_WORKERS),
        f"workers must be an integer in [1, {TOO_MANY_WORKERS - 1}]",
    ),
    (
        "run-study-workers-above-4-per-core",
        lambda out, w: run_study(StudyRequest(data=str(w["cfg"])), out, workers=TOO_MANY_WORKERS),
        f"workers must be an integer in [1, {TOO_MANY_WORKERS - 1}]",
    ),
]


API_CASES += [  # the fourth fresh set
    (
        "set4-train-out-none",
        lambda out, w: vaelab_api().train(tiny_factory, _X, None, overrides=_API_FAST),
        "out must be",
    ),
    (
        "set4-train-overrides-none",
        lambda out, w: vaelab_api().train(tiny_factory, _X, out, overrides=None),
        "overrides",
    ),
    (
        "set4-train-overrides-ints",
        lambda out, w: vaelab_api().train(tiny_factory, _X, out, overrides=[1, 2]),
        "overrides",
    ),
    (
        "set4-train-meta-data",
        lambda out, w: vaelab_api().train(tiny_factory, _X.to("meta"), out, overrides=_API_FAST),
        "meta device",
    ),
    (
        "set4-train-int64-0-255",
        lambda out, w: vaelab_api().train(tiny_factory, (_X * 200).long(), out, overrides=_API_FAST),
        "int64 values are whole numbers",
    ),
    ("set4-evaluate-int64-0-255", lambda out, w: vaelab_api().evaluate(tiny_factory(), (_X * 200).long()), "int64"),
    (
        "set4-evaluate-modules-do-not-fit",
        lambda out, w: vaelab_api().evaluate(tiny_factory(), _X[:, :5]),
        "failed on the first batch of the data, x of shape (120, 5)",
    ),
    (
        "set4-evaluate-iw-fraction",
        lambda out, w: vaelab_api().evaluate(tiny_factory(), _X, iw_samples=1.5),
        "iw_samples",
    ),
    ("set4-evaluate-iw-chunk-0", lambda out, w: vaelab_api().evaluate(tiny_factory(), _X, iw_chunk=0), "iw_chunk"),
    (
        "set4-evaluate-labels-wrong-length",
        lambda out, w: vaelab_api().evaluate(tiny_factory(), _X, labels=torch.zeros(7)),
        "labels must be one per example",
    ),
    (
        "set4-holes-prior-samples-0",
        lambda out, w: vaelab_api().hole_metrics(tiny_factory(), _X, prior_samples=0),
        "prior_samples",
    ),
    ("set4-holes-tau-negative", lambda out, w: vaelab_api().hole_metrics(tiny_factory(), _X, taus=[-1.0]), "taus[0]"),
    (
        "set4-probe-float-labels",
        lambda out, w: vaelab_api().probe(
            tiny_factory(), _X, _X, train_labels=torch.rand(120), test_labels=torch.rand(120)
        ),
        "integer class indices",
    ),
    (
        "set4-probe-negative-labels",
        lambda out, w: vaelab_api().probe(
            tiny_factory(),
            _X,
            _X,
            train_labels=-torch.ones(120, dtype=torch.long),
            test_labels=torch.zeros(120, dtype=torch.long),
        ),
        ">= 0",
    ),
    ("set4-mi-one-example", lambda out, w: vaelab_api().mutual_information(tiny_factory(), _X[:1]), "at least 2"),
    ("set4-as-vae-latent-0", lambda out, w: vaelab_api().as_vae(tiny_factory(), latent_dim=0), "latent_dim"),
    ("set4-run-evaluate-split", lambda out, w: vaelab_api().Run(w["run"]).evaluate(split="dev"), "split must be"),
]


API_CASES += [  # the sixth fresh set (h16s6)
    (
        "set6-evaluate-token-ids-to-an-image-model",
        lambda out, w: vaelab_api().evaluate(vaelab_api().load_run(w["run"]), [[1, 2, 3]]),
        "failed on the first batch of the data, x of shape TokenBatch: AttributeError",
    ),
    (
        "set6-evaluate-bernoulli-model-on-values-above-1",
        lambda out, w: vaelab_api().evaluate(vaelab_api().load_run(w["run"]), torch.rand(10, 1, 6, 6) * 5),
        "needs data in [0, 1], but the data hold values",
    ),
    (
        "set6-tensor-data-binarize-not-a-mode",
        lambda out, w: vaelab_api().tensor_data(torch.rand(10, 1, 6, 6), binarize="sometimes"),
        "binarize: 'sometimes' is not a valid choice; valid choices: dynamic, static, threshold, none",
    ),
]

API_CASES += [  # the seventh fresh set (h16s7)
    (
        "set7-N04-evaluate-one-example",
        lambda out, w: vaelab_api().evaluate(tiny_factory(), _X[:1]),
        "data holds 1 example; its evaluation (MI, active units) needs at least 2",
    ),
    (
        "set7-N25-load-run-overrides-a-string",
        lambda out, w: vaelab_api().load_run(w["run"], overrides="eval.iw_samples=5"),
        "overrides must be a list of 'key=value' strings, got the string 'eval.iw_samples=5'",
    ),
    (
        "set7-N25-run-evaluate-overrides-a-string",
        lambda out, w: vaelab_api().Run(w["run"]).evaluate(overrides="eval.iw_samples=5"),
        "overrides must be a list of 'key=value' strings, got the string",
    ),
    ("set7-T15-run-of-a-number", lambda out, w: vaelab_api().Run(5), "path must be a folder's path"),
    (
        "set9-q04-train-into-an-empty-out",
        lambda out, w: vaelab_api().train(tiny_factory, vaelab_api().tensor_data(_X), ""),
        "out is empty: give a folder's path",
    ),
    ("set9-run-of-an-empty-path", lambda out, w: vaelab_api().Run(""), "path is empty"),
    ("set10-api41-run-of-a-missing-folder", lambda out, w: vaelab_api().Run(w["root"] / "nowhere"), "does not exist"),
    ("set10-run-of-a-sweep-folder", lambda out, w: vaelab_api().Run(w["root"]), "not a run folder (no config.yaml)"),
    (
        "set10-api40-report-samples-a-string",
        lambda out, w: vaelab_api().write_report(w["run"], samples="no"),
        "samples must be True or False, got 'no'",
    ),
    (
        "set9-q11-as-vae-other-latent-dim",
        lambda out, w: vaelab_api().as_vae(vaelab_api().load_run(w["run"]).model, latent_dim=99),
        "as_vae: latent_dim=99, but the",
    ),
    (
        "set9-p42-as-vae-negative-latent-dim",
        lambda out, w: vaelab_api().as_vae(vaelab_api().load_run(w["run"]), latent_dim=-1),
        "latent_dim",
    ),
    (
        "set7-T12-train-config-data-valid-size",
        lambda out, w: vaelab_api().train(
            tiny_factory, _X, out, config={"data": {"valid_size": 50}}, overrides=_API_FAST
        ),
        "config sets data.valid_size=50, which vaelab.train does not read",
    ),
    (
        "set7-T12-train-override-data-valid-size",
        lambda out, w: vaelab_api().train(tiny_factory, _X, out, overrides=[*_API_FAST, "data.valid_size=10000"]),
        "override 'data.valid_size=10000', which vaelab.train does not read",
    ),
]


API_CASES += [  # the eighth fresh set (h16s8)
    (
        "set8-M10-api-train-out-inside-a-run-folder",
        lambda out, w: vaelab_api().train(tiny_factory, _X, w["run"] / "sub", overrides=_API_FAST),
        "sub lies inside the run folder",
    ),
    (
        "set8-Y12-diagnosis-unknown-model-type",
        lambda out, w: vaelab_api().diagnosis({"rate": 0.1, "kl_per_dim": [0.1]}, model_type="foo"),
        "model_type must be one of conv, custom",
    ),
    (
        "set8-Y12-diagnosis-model-type-of-a-run-folder",
        lambda out, w: vaelab_api().diagnosis(w["run"], model_type="pixelcnn"),
        "model_type is read from the run folder's config.yaml",
    ),
    (
        "set8-Y15-tensor-data-negative-split-seed",
        lambda out, w: vaelab_api().tensor_data(_X, split_seed=-1),
        "split_seed must be an integer in [0,",
    ),
    (
        "set8-Y24-train-on-an-empty-valid-split",
        lambda out, w: vaelab_api().train(tiny_factory, vaelab_api().tensor_data(_X, _X[:0]), out, overrides=_API_FAST),
        "data valid: the given valid split holds 0 examples",
    ),
    (
        "set8-Y24-token-data-empty-test-split",
        lambda out, w: vaelab_api().token_data([[1, 2, 3]] * 20, test=[]),
        "data test: the given test split holds 0 examples",
    ),
]


def vaelab_api():
    import vaelab.api

    return vaelab.api


@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")  # the encoder of latent_dim 0
@pytest.mark.parametrize(("call", "expect"), [(c, e) for _, c, e in API_CASES], ids=[i for i, _, _ in API_CASES])
def test_python_api_bad_input_is_one_line_and_writes_nothing(call, expect, world, tmp_path):
    from vaelab.data import DataError

    out = tmp_path / "new"
    before = _hashes(world["root"])
    with pytest.raises((ValueError, TypeError, OSError, DataError)) as e:
        call(out, world)
    assert expect in str(e.value) and "\n" not in str(e.value).strip(), str(e.value)
    assert not out.exists() and not (tmp_path / "sw" / "config.yaml").exists()
    assert _hashes(world["root"]) == before


# --------------------------------------------------------------------------------------------------------------
# what the fresh set showed should work: the override for numbered plain text, overrides after options, Ctrl-C


def test_labels_as_words_reads_a_plain_file_whose_lines_start_with_a_number_and_a_tab(world, tmp_path):
    from vaelab.data import load_dataset

    corpus = tmp_path / "numbered"
    corpus.mkdir()
    for name in ("train.txt", "valid.txt", "test.txt"):
        lines = (world["corpus"] / name).read_text().splitlines()
        (corpus / name).write_text("".join(f"{100 + i}\t{s}\n" for i, s in enumerate(lines)))
    cfg = load_config(world["text_cfg"], [f"data.path={corpus}", "data.labels_as_words=true"]).data
    ds = load_dataset(cfg)
    assert "100" in ds.vocab and ds.num_classes is None


def test_run_folders_are_accepted_as_str_and_path_like(world):
    """T15 (h16s7): vaelab.Run and load_run take a str or any os.PathLike as well as a Path."""

    class Where:  # an os.PathLike that is not a Path
        def __fspath__(self) -> str:
            return str(world["run"])

    api = vaelab_api()
    run = world["run"]
    assert api.Run(str(run)).summary == api.Run(run).summary
    assert api.Run(Where()).path == run
    assert api.load_run(str(run)).path == run


def test_report_says_which_cut_metrics_line_it_leaves_out(world, tmp_path, capsys):
    """F04 (h16s7): a metrics.jsonl whose only line is cut short was reported as 'metrics.jsonl is empty'."""
    d = _copy(world, tmp_path)
    (d / "metrics.jsonl").write_text((d / "metrics.jsonl").read_text()[:100])
    code, err = run_cli(["report", str(d), "--no-samples"], capsys)
    assert code == 0, err
    assert "metrics.jsonl:1: the line is cut short (not JSON) and left out of the curves" in err
    page = (d / "report.html").read_text()
    assert "metrics.jsonl:1: the line is cut short" in page and "metrics.jsonl is empty" not in page


def test_diagnose_and_report_refuse_an_eval_json_of_an_earlier_checkpoint(world, tmp_path, capsys):
    """G12 (h16s7): eval.json records the sha256 of the checkpoint it measured; diagnose --no-evaluate refuses
    one whose checkpoint has changed since (and an old one without the record that is older than best.pt), the
    report leaves it out; a current one is read."""
    d = _copy(world, tmp_path)
    code, err = run_cli(["evaluate", str(d), "--iw-samples", "2"], capsys)
    assert code == 0, err
    fresh = json.loads((d / "eval.json").read_text())
    assert len(fresh["checkpoint_sha256"]) == 64
    code, err = run_cli(["diagnose", str(d), "--no-evaluate"], capsys)
    assert code == 0, err
    assert json.loads((d / "diagnosis.json").read_text())["numbers"]["source"].endswith("eval.json")

    (d / "eval.json").write_text(json.dumps({**fresh, "checkpoint_sha256": "0" * 64}))
    code, err = run_cli(["diagnose", str(d), "--no-evaluate"], capsys)
    assert code == 2 and "eval.json measured another checkpoints/best.pt than the folder now holds" in err, err
    assert f"run `vaelab evaluate {d}` again" in err and len(err.strip().splitlines()) == 1
    code, err = run_cli(["report", str(d), "--no-samples"], capsys)
    assert code == 0 and "eval.json left out: " in (d / "report.html").read_text()

    old = {k: v for k, v in fresh.items() if k != "checkpoint_sha256"}  # written before the record existed
    (d / "eval.json").write_text(json.dumps(old))
    best = (d / "checkpoints" / "best.pt").stat().st_mtime_ns
    os.utime(d / "eval.json", ns=(best - 10**9, best - 10**9))
    code, err = run_cli(["diagnose", str(d), "--no-evaluate"], capsys)
    assert code == 2 and "eval.json is older than checkpoints/best.pt" in err, err
    os.utime(d / "eval.json", ns=(best + 10**9, best + 10**9))
    code, err = run_cli(["diagnose", str(d), "--no-evaluate"], capsys)
    assert code == 0, err


def test_evaluate_converts_float64_data_for_a_float32_model_as_train_does():
    api = vaelab_api()
    torch.manual_seed(0)
    model = tiny_factory()
    assert api.evaluate(model, _X.double())["elbo"] == pytest.approx(api.evaluate(model, _X)["elbo"])


def test_evaluate_reads_uint8_and_bool_data_as_train_does():
    """uint8 tensors are intensities 0..255 and bool tensors 0/1 (vaelab.data.user), as for api.train."""
    api = vaelab_api()
    model = tiny_factory()
    reference = api.evaluate(model, _X)["elbo"]
    assert api.evaluate(model, (_X * 255).to(torch.uint8))["elbo"] == pytest.approx(reference)
    assert api.evaluate(model, _X.bool())["elbo"] == pytest.approx(reference)
    assert api.evaluate(model, _X.to(torch.uint8))["elbo"] == pytest.approx(reference)  # uint8 0/1, as train reads


def test_overrides_may_follow_the_options(world, tmp_path, capsys):
    run = _copy(world, tmp_path)
    code, err = run_cli(["evaluate", str(run), "--iw-samples", "2", "eval.iw_chunk=1"], capsys)
    assert code == 0, err
    assert json.loads((run / "eval.json").read_text())["overrides"] == ["eval.iw_chunk=1"]


def test_ctrl_c_while_evaluate_writes_leaves_the_old_eval_json(world, tmp_path, capsys, monkeypatch):
    import vaelab.checkpoint as checkpoint

    run = _copy(world, tmp_path)
    (run / "eval.json").write_text('{"old": true}\n')
    before = _hashes(run)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint.os, "fsync", interrupted)
    code, err = run_cli(["evaluate", str(run), "--iw-samples", "2"], capsys)
    lines = err.strip().splitlines()
    assert code == 130 and len(lines) == 1 and "Traceback" not in err and "run it again" in lines[0], err
    assert _hashes(run) == before and not list(run.glob(".eval.json.*"))


class _GaussDec(_Dec):
    def log_prob(self, x, z):
        return -0.5 * ((x.flatten(1) - self.net(z)) ** 2).sum(1)


def gauss_factory(latent: int = 3):
    """12-pixel encoders and decoders of real values (a unit-variance Gaussian decoder)."""
    return _Enc(latent), _GaussDec(latent)


def test_float_intensities_train_with_raw_true_as_given(tmp_path):
    """Floats of whole numbers 0..255 are refused by default (above) and used as given with raw=True."""
    api = vaelab_api()
    from vaelab.data import DataError

    with pytest.raises(DataError, match="raw=True"):
        api.train(gauss_factory, _X * 20, tmp_path / "refused", overrides=_API_FAST)
    api.train(gauss_factory, api.tensor_data(_X * 20, raw=True), tmp_path / "raw", overrides=_API_FAST)
    with np.load(tmp_path / "raw" / "data" / "arrays.npz") as z:
        assert float(z["train"].max()) == 20.0
    api.train(gauss_factory, _X * 3, tmp_path / "counts", overrides=_API_FAST)  # small counts: as given


WORKS: list[Case] = [
    Case("merge-key", T_BAD, "", bad_yaml_text(lambda t: t.replace("train:\n", "train:\n  <<: {lr: 0.01}\n", 1))),
    Case("byte-order-mark", T_BAD, "", bad_yaml_text(lambda t: "\ufeff" + t)),
    Case("crlf-yaml", T_BAD, "", bad_yaml_text(lambda t: t.replace("\n", "\r\n"))),
    Case("override-key-with-a-space", "train {cfg} |train.lr =0.01| --out {new}", ""),
    Case("npz-float16", T_BAD, "", bad_npz(lambda r: {"train": _bits(r, 64).astype("float16"), "test": _bits(r, 16)})),
    Case(
        "npz-integers-0-255",
        T_BAD,
        "",
        bad_npz(lambda r: {"train": (r.random((64, 36)) * 255).astype("int64"), "test": _bits(r, 16).astype("int64")}),
    ),
    Case(
        "corpus-crlf",
        T_BAD,
        "",
        corpus_edit(lambda w: {n: "\r\n".join(_lines(w, n)) + "\r\n" for n in _TEXT_ROLES}),
    ),
]


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in WORKS])
def test_fresh_inputs_that_look_odd_but_are_fine_still_work(case: Case, world, tmp_path, capsys, monkeypatch):
    """The third fresh set's inputs that must keep working: YAML merge keys and anchors, a byte-order mark, CRLF
    line ends (YAML and corpora), an override written with a space, float16 and integer 0..255 npz data."""
    monkeypatch.chdir(tmp_path)
    values = {**{k: str(v) for k, v in world.items()}, "new": str(tmp_path / "new")}
    if case.setup is not None:
        values.update(case.setup(world, tmp_path))
    code, err = run_cli(_argv(case.argv, values), capsys)
    assert code == 0, err
    assert (tmp_path / "new" / "summary.json").is_file()


def test_a_byte_order_mark_inside_a_corpus_is_dropped(world, tmp_path, capsys):
    """A U+FEFF in the middle of train.txt (CRLF lines, as files joined by a Windows tool leave it) is an invisible
    zero-width no-break space: the vocabulary and token counts are those of the text without it."""
    lines = _lines(world)
    corpus = tmp_path / "corp"
    shutil.copytree(world["corpus"], corpus)
    marked = [("\ufeff" + s if i == len(lines) // 2 else s) for i, s in enumerate(lines)]
    (corpus / "train.txt").write_bytes(("\r\n".join(marked) + "\r\n").encode("utf-8"))
    cfg = yaml.safe_load(world["text_cfg"].read_text())
    cfg["data"] = {"name": "text", "path": str(corpus)}
    code, err = run_cli(["train", str(_yaml(tmp_path / "bom.yaml", cfg)), "--out", str(tmp_path / "run")], capsys)
    assert code == 0, err
    got = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    want = yaml.safe_load((world["text_run"] / "config.yaml").read_text())
    assert "\ufeff" not in (tmp_path / "run" / "config.yaml").read_text()
    for key in ("vocab_source", "vocab_size", "counts", "words", "tokens"):
        assert got["_meta"]["data"][key] == want["_meta"]["data"][key], key


def test_reconstruct_reads_typed_sentences_as_the_corpus_reader_does(world, tmp_path, capsys):
    """Issue 16, seventh set: sentences may follow the options (H10/H19); an invisible format character between
    words is no word (W10, as in a corpus line); a label_tab run drops a leading LABEL<TAB> of a typed or --file
    sentence as its corpus reader does, and still reads a plain sentence (H16/H20)."""

    def reconstructed(*argv: str) -> list[str]:
        capsys.readouterr()
        code = main(["reconstruct", *argv])
        out, err = capsys.readouterr()
        assert code == 0, err
        return [ln for ln in out.splitlines() if ln.startswith("> ")]

    run = str(world["text_run"])
    assert reconstructed(run, "--max-length", "3", "the cat sees it", "a dog") == ["> the cat sees it", "> a dog"]
    for mark in ("\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"):
        assert reconstructed(run, f"the cat {mark} sees it") == ["> the cat sees it"], repr(mark)

    labelled = tmp_path / "labelled_run"
    code, err = run_cli(["train", str(world["labelled_cfg"]), "data.format=label_tab", "--out", str(labelled)], capsys)
    assert code == 0, err
    assert reconstructed(str(labelled), "1\tthe cat sees it", "the cat sees it") == ["> the cat sees it"] * 2
    test_file = Path(yaml.safe_load(world["labelled_cfg"].read_text())["data"]["path"]) / "test.txt"
    want = [f"> {ln.partition(chr(9))[2]}" for ln in test_file.read_text().splitlines()]
    got = reconstructed(str(labelled), "--file", str(test_file))
    assert [len(g.split()) for g in got] == [len(w.split()) for w in want]  # no label read as a word
    assert not any(ln.startswith("> <unk>") for ln in got)


def test_a_quoted_tilde_in_out_means_home(world, tmp_path, capsys, monkeypatch):
    """``--out '~/x'`` (the shell left the tilde as it was) is the home folder's x, never a folder named ``~`` in
    the working directory."""
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    code, err = run_cli(["train", str(world["cfg"]), "--out", "~/x"], capsys)
    assert code == 0, err
    assert (home / "x" / "summary.json").is_file()
    assert not (work / "~").exists()


def test_a_mapping_for_a_section_is_merged_key_by_key(world, tmp_path, capsys):
    """C01/B13 (set 5): ``train={lr: 0.002}`` on the command line, in a sweep variant, grid or ``fixed`` sets
    train.lr alone (the file's batch_size and epochs stay), and ``--list`` shows ``train.lr=0.002``; a mapping for a
    value that is not a section (a schedule) still replaces it whole."""
    cfg = load_config(world["cfg"], ["train={lr: 0.002}"])
    assert (cfg.train.lr, cfg.train.batch_size, cfg.train.epochs) == (0.002, 32, 1)
    cfg = load_config(world["cfg"], ["train={lr_decay: {enabled: true}}", "train.lr_decay={patience: 4}"])
    assert (cfg.train.lr_decay.enabled, cfg.train.lr_decay.patience, cfg.train.batch_size) == (True, 4, 32)
    cfg = load_config(world["cfg"], ["objective.beta={type: constant, value: 2}"])  # a schedule: replaced whole
    assert (cfg.objective.beta.type, cfg.objective.beta.warmup_steps) == ("constant", None)
    path = _yaml(
        tmp_path / "s.yaml",
        {
            "name": "s",
            "base": str(world["cfg"]),
            "fixed": {"eval": {"iw_samples": 2}, "objective.beta": {"type": "constant", "value": 2.0}},
            "variants": [{"name": "a", "train.lr": 0.001}, {"name": "b", "train": {"lr": 0.002}}],
            "grid": {"objective.beta.value": [0.5, 1.0]},  # inside fixed's schedule: changes its value
        },
    )
    spec = load_sweep(path)
    point = spec.point(2)
    assert "train.lr=0.002" in point.overrides and not any(o.startswith("train=") for o in point.overrides)
    c = spec.config(point)
    assert (c.train.lr, c.train.batch_size, c.train.epochs, c.eval.iw_samples) == (0.002, 32, 1, 2)
    assert (c.objective.beta.type, c.objective.beta.value) == ("constant", 0.5)
    capsys.readouterr()
    code, _ = run_cli(["sweep", str(path), "--list"], capsys)
    assert code == 0


def test_evaluate_accepts_what_does_not_change_the_trained_data(world, tmp_path, capsys):
    """G08 (set 5): the data check lets through ``data.eval_size`` given to evaluate, a corpus moved with the same
    files, and a folder without ``_meta.data_config`` whose data are unchanged."""
    code, err = run_cli(["evaluate", str(_copy(world, tmp_path)), "data.eval_size=16"], capsys)
    assert code == 0, err
    d = _copy(world, tmp_path, "text_run")
    moved = tmp_path / "moved_corpus"
    shutil.copytree(world["corpus"], moved)
    text = (d / "config.yaml").read_text().replace(str(world["corpus"]), str(moved))
    (d / "config.yaml").write_text(text)
    code, err = run_cli(["evaluate", str(d)], capsys)
    assert code == 0, err
    (moved / "train.txt").write_text((moved / "train.txt").read_text() + "the cat sees the dog\n")
    code, err = run_cli(["evaluate", str(d)], capsys)
    assert code == 2 and "files.train.sha256 was" in err, err
    old = tmp_path / "old"
    shutil.copytree(world["run"], old)
    data = yaml.safe_load((old / "config.yaml").read_text())
    data["_meta"].pop("data_config")
    (old / "config.yaml").write_text(yaml.safe_dump(data))
    code, err = run_cli(["evaluate", str(old)], capsys)
    assert code == 0, err


def test_the_closing_lines_name_the_final_split(world, tmp_path, capsys):
    """h16s6 #30: with eval.final_split=valid, the closing lines said summary.json held the final *test* metrics."""
    capsys.readouterr()
    assert main(["train", str(world["cfg"]), "eval.final_split=valid", "--out", str(tmp_path / "r")]) in (0, None)
    out = capsys.readouterr().out
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["split"] == "valid"
    assert "summary.json   final valid metrics" in out and "final test metrics" not in out, out


def test_a_study_continues_under_the_same_budget_written_another_way(world, tmp_path, capsys):
    """J16 (set 8): ``--budget 1ep`` then ``--budget 1`` (the same budget, as --help says) continues the study."""
    base = ["study", "collapse", "--data", str(world["plain_cfg"]), "--methods", "plain", "--iw-samples", "2"]
    out = ["--out", str(tmp_path / "st"), "--no-report"]
    assert run_cli([*base, "--budget", "1ep", *out], capsys)[0] == 0
    code, err = run_cli([*base, "--budget", "1", *out], capsys)
    assert code == 0, err
    code, err = run_cli([*base, "--budget", "2", *out], capsys)
    assert code == 2 and "budget='1', not '2'" in err, err


def test_a_fixed_value_that_some_variants_change_is_a_default_and_still_works(world, tmp_path):
    """S16 (set 8) refuses a key in ``fixed`` that every point replaces; a key that only some variants set keeps its
    fixed value at the others, which is what it says."""
    spec = load_sweep(
        _yaml(
            tmp_path / "fixed_default.yaml",
            {
                "name": "s",
                "base": str(world["cfg"]),
                "fixed": {"model.latent_dim": 2},
                "variants": [{"name": "a", "model.latent_dim": 3}, {"name": "b"}],
            },
        )
    )
    assert [p.overrides for p in spec.points()] == [("model.latent_dim=3",), ("model.latent_dim=2",)]


def test_set11_f14_the_report_of_a_sweep_without_beta_points_to_plot_sweep(world, tmp_path, capsys):
    """h16s11 F14: the report of a sweep that varies no beta advised `--beta-key`, an option report does not have."""
    folder = _small_sweep_folder(world, tmp_path)["dir"]
    capsys.readouterr()
    assert main(["report", folder, "--out", str(tmp_path / "r.html")]) in (0, None)
    err = capsys.readouterr().err
    assert "report: no sweep figures: the sweep varies no beta" in err, err
    assert "`vaelab plot-sweep DIR --beta-key KEY`" in err and "Traceback" not in err
    assert "draw them against another parameter" in (tmp_path / "r.html").read_text()


def test_set11_s24_sample_streams_its_sentences_and_a_closed_pipe_is_not_an_error(world, cli_env):
    """h16s11 S24: `vaelab sample -n 100000` printed nothing until every sentence was decoded; sentences now come
    SAMPLE_CHUNK at a time, and a reader that stops early (`| head`) ends the command quietly with status 0."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "vaelab", "sample", str(world["text_run"]), "-n", "20000", "--max-length", "30"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=cli_env,
    )
    first = proc.stdout.readline()
    proc.stdout.close()  # the reader leaves after one line, as `head -1` does
    _, err = proc.communicate(timeout=300)
    assert first.strip() and proc.returncode == 0, err.decode()
    assert b"Traceback" not in err and b"BrokenPipe" not in err, err.decode()


def test_set11_s24_the_chunks_decode_the_same_z_as_one_batch(world):
    """The prior draws of all n sentences come first, so the i-th sentence's z does not depend on the chunk size;
    a request of at most one chunk is decoded exactly as one batch."""
    from vaelab import generation

    run = generation.load_text_run(world["text_run"])
    one = generation.sample_prior(run, 6, greedy=True, seed=4)
    old = generation.SAMPLE_CHUNK
    try:
        generation.SAMPLE_CHUNK = 2
        chunked = generation.sample_prior(run, 6, greedy=True, seed=4)
    finally:
        generation.SAMPLE_CHUNK = old
    assert chunked == one  # greedy words depend on z only: the same z in chunks gives the same sentences


def test_set11_a51_an_unknown_split_is_refused_at_the_call(world):
    """h16s11 A51: ``load_run(...).batches("nosplit")`` raised only at the first ``next``; now at the call, as the
    registry's one-line error naming the split and the choices."""
    from vaelab.registry import UnknownChoiceError

    run = vaelab_api().load_run(world["run"])
    with pytest.raises(UnknownChoiceError, match=r"unknown split 'nosplit' .*valid choices: train, valid, test"):
        run.batches("nosplit")


def test_set12_r024_a_smaller_eval_size_of_generated_data_is_a_subset_of_the_run_s_split(world):
    """h16s12 R024: data.eval_size on a generated data set drew a new split (none of the run's test examples in
    it); now it is a subset of the split the run was trained and validated with."""
    from vaelab.run import load_run

    whole = load_run(world["run"]).dataset.test.x.reshape(64, -1)
    part = load_run(world["run"], overrides=["data.eval_size=10"]).dataset.test.x.reshape(10, -1)
    assert all(bool((whole == row).all(1).any()) for row in part)


def test_set13_w04_a_point_whose_checkpoints_were_deleted_says_what_to_do(world, tmp_path):
    """h16s13 W04: a trained point without checkpoints failed with "no checkpoint to measure" and no advice
    (--retry-failed fails the same way)."""
    folder = Path(_small_sweep_folder(world, tmp_path)["dir"])
    point = next((folder / "points").iterdir())
    (point / "measurements.json").unlink()
    shutil.rmtree(point / "checkpoints")
    run_sweep(load_sweep(tmp_path / "s.yaml"), folder, workers=1)
    error = json.loads((point / "error.json").read_text())
    assert "no checkpoint to measure" in error["message"] and "delete the point folder" in error["message"], error
