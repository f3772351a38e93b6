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
import json
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
    Case("train-conv-on-1x1", "train {cfg} model.type=conv data.image_shape=[1,1,1] --out {new}", "model.type=conv"),
    Case("train-conv-too-deep", "train {cfg} model.type=conv model.channels=[4,4,4,4] --out {new}", "model.channels"),
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
    Case("resume-no-last-checkpoint", "resume {copy}", "last.pt", removed("last.pt")),
    Case("resume-truncated-last", "resume {copy}", "last.pt", truncated("last.pt")),
    Case("resume-foreign-last", "resume {copy}", "last.pt", foreign("last.pt")),
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
    Case("evaluate-precision-unknown", "evaluate {run} train.precision=fp64", "train.precision"),
    Case("evaluate-model-key", "evaluate {run} model.hidden=[8]", "model.hidden"),
    Case("evaluate-train-key", "evaluate {run} train.lr=1", "train.lr"),
    Case("evaluate-missing-folder", "evaluate {root}/nowhere", "nowhere"),
    Case("evaluate-a-file", "evaluate {file}", "a_file.txt"),
    Case("evaluate-no-best", "evaluate {copy}", "best.pt", removed("best.pt")),
    Case("evaluate-truncated-best", "evaluate {copy}", "best.pt", truncated("best.pt")),
    Case("evaluate-foreign-best", "evaluate {copy}", "best.pt", foreign("best.pt")),
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
    Case("reconstruct-samples-zero", "reconstruct {text_run} |the cat| --samples 0", "--samples"),
    Case("reconstruct-file-missing", "reconstruct {text_run} --file {root}/none.txt", "none.txt"),
    Case("reconstruct-file-folder", "reconstruct {text_run} --file {plain_dir}", "plain_dir"),
    Case("reconstruct-file-not-utf8", "reconstruct {text_run} --file {latin1}", "latin1.txt"),
    Case("reconstruct-nothing", "reconstruct {text_run}", "no sentences"),
    Case("reconstruct-both", "reconstruct {text_run} |the cat| --file {latin1}", "not both"),
    Case("interpolate-steps-one", "interpolate {text_run} |the cat| |a dog| --steps 1", "--steps"),
    Case("interpolate-steps-zero", "interpolate {text_run} |the cat| |a dog| --steps 0", "--steps"),
    # ---- sweep ----
    Case("sweep-workers-negative", "sweep {sweep_ok} --workers -3 --out {new}", "--workers"),
    Case("sweep-workers-zero", "sweep {sweep_ok} --workers 0 --out {new}", "--workers"),
    Case("sweep-index-text", "sweep {sweep_ok} --index x --out {new}", "--index"),
    Case("sweep-index-reversed", "sweep {sweep_ok} --index 5-2 --out {new}", "--index"),
    Case("sweep-file-missing", "sweep {root}/none.yaml --out {new}", "none.yaml"),
    Case("sweep-bad-point", "sweep {sweep} --out {new}", "train.batch_size"),
    Case("sweep-run-config-as-sweep", "sweep {cfg} --out {new}", "tiny.yaml"),
    Case("sweep-out-a-file", "sweep {sweep_ok} --out {file}", "a_file.txt"),
    Case("sweep-aggregate-missing", "sweep-aggregate {root}/nowhere", "nowhere"),
    Case("plot-sweep-missing", "plot-sweep {root}/nowhere", "nowhere"),
    # ---- study ----
    Case("study-iw-negative", "study collapse --data {cfg} --iw-samples -1 --out {new}", "--iw-samples"),
    Case("study-workers-zero", "study collapse --data {cfg} --workers 0 --out {new}", "--workers"),
    Case("study-seeds", "study collapse --data {cfg} --seeds x --out {new}", "--seeds"),
    Case("study-methods", "study collapse --data {cfg} --methods nope --out {new}", "nope"),
    Case("study-budget", "study collapse --data {cfg} --budget soon --out {new}", "soon"),
    Case("study-data-missing", "study collapse --data {root}/none.yaml --out {new}", "none.yaml"),
    Case("study-no-data", "study collapse --out {new}", "--data"),
    Case("study-set-bad-value", "study collapse --data {cfg} --set train.lr=-1 --out {new}", "train.lr"),
    Case("study-out-a-file", "study collapse --data {cfg} --out {file}", "a_file.txt"),
    # ---- diagnose / report / latent-plot / lag-plot / theory ----
    Case("diagnose-missing", "diagnose {root}/nowhere", "nowhere"),
    Case("diagnose-split", "diagnose {run} --split dev", "--split"),
    Case("diagnose-truncated-best", "diagnose {copy} --evaluate", "best.pt", truncated("best.pt")),
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
    Case("unknown-command", "fly {run}", "fly"),
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


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(case: Case, world, tmp_path, capsys, monkeypatch):
    if case.skip:
        pytest.skip("this machine has the device")
    monkeypatch.chdir(tmp_path)  # nothing may land in a default folder either
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
        (["sample", "{text_run}", "-n", "0"], "argument -n: must be an integer >= 1, got '0'"),
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
