"""``vaelab study collapse``: which collapse remedy works on a data set, at what cost.

A study trains a panel of methods (:mod:`vaelab.study.methods`) from one base config under the same budget and
seeds, measures each on the test split (IW-NLL with K samples, rate, MI pooled over the split, AU, the hole
metrics' CU(0.03), a linear probe's accuracy on z ~ q(z|x) where labels exist: labelled images, ``label_tab``
text, the generated ``synthetic_text``) and writes the comparison table in the layout of He et al. (ICLR 2019),
Table 1, with the training wall time and its ratio to the plain VAE.

Underneath it is a sweep (:mod:`vaelab.sweep`): one variant per method, one replica per seed, so a study is
resumable (the same command continues a killed study), parallel (``--workers``) and Ray-capable
(``--backend ray``). Folder layout::

    DIR/study.json      what was asked: data, methods, budget, seeds, K, the command
    DIR/sweep.yaml      the underlying sweep (base config inline)
    DIR/points/...      one run folder per (seed, method)
    DIR/results.csv     every point's measurements (the sweep's table)
    DIR/study.csv       the comparison table, one row per method (mean and standard deviation over seeds)
    DIR/study.md        the same as Markdown
    DIR/report.html     the report (``vaelab report DIR``)

What a point computes: its training (with the per-epoch validation of the base config), then the study's
measurement of the test split, the only final evaluation (IW-NLL with K = ``--iw-samples``; the base config's
``eval.iw_samples`` is not run), which also completes the point's summary.json. While it runs, the study prints
each point's start, epoch lines, evaluation progress and result, prefixed by the point's folder name.

Timing: wall times are training times (evaluation excluded). Runs that share the CPU slow each other down, so
the time ratios are comparable only within a study run with one worker (the default), which is recorded.
"""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vaelab.checkpoint import atomic_write_text
from vaelab.checks import RULES, check
from vaelab.config import (
    ConfigError,
    RunConfig,
    apply_overrides,
    attribute_error,
    check_not_a_sweep_file,
    check_written_keys,
    from_dict,
    parse_scalar,
    read_yaml,
    run_config,
    to_dict,
    written_part,
)
from vaelab.data import dataset_modality
from vaelab.data.checks import GENERATED_DATASETS
from vaelab.runconfig import expand_sections
from vaelab.runfolder import read_json_object
from vaelab.study.methods import DEFAULT_PANEL, METHODS, Budget, method_overrides

STUDY_FILE = "study.json"
TABLE_CSV = "study.csv"
TABLE_MD = "study.md"


# ------------------------------------------------------------------------------------------------------------
# base configs


REAL_VALUED_DATA = ("synthetic_gaussian",)
"""Image-like data sets whose values are real numbers, not in [0, 1]: the preset's decoder is Gaussian there."""


PRESET_TRAIN_SIZE = 10000
"""The training examples of a preset's data set read from files (the first of a fixed permutation, so that an epoch
takes seconds on a CPU); a generated data set keeps the size it is drawn at (``data.num_examples``)."""


def _preset_sizes(data: str, eval_size: int) -> dict[str, Any]:
    """The preset's ``data.train_size`` and ``data.eval_size``: caps of a data set read from files; none for a
    generated one (:data:`~vaelab.data.checks.GENERATED_DATASETS`), whose ``data.num_examples`` and
    ``data.eval_size`` say how many examples are drawn (10,000 training examples would exceed the 1,000 that
    synthetic_blobs draws by default, 2,000 test examples would be drawn for nothing)."""
    if data in GENERATED_DATASETS:
        return {}
    return {"train_size": PRESET_TRAIN_SIZE, "eval_size": eval_size}


def _image_preset(data: str) -> dict[str, Any]:
    """An MLP VAE (Bernoulli decoder, Gaussian on real-valued data; 32 latents) that trains in seconds per epoch
    on a CPU."""
    likelihood = "gaussian" if data in REAL_VALUED_DATA else "bernoulli"
    return {
        "name": f"study_{data}",
        "seed": 0,
        "data": {"name": data, **_preset_sizes(data, 2000)},
        "model": {
            "type": "mlp",
            "latent_dim": 32,
            "hidden": [256, 256],
            "activation": "relu",
            "likelihood": likelihood,
        },
        "objective": {"regulariser": "kl", "beta": {"type": "constant", "value": 1.0}},
        "train": {"optimizer": "adam", "lr": 1.0e-3, "batch_size": 64, "epochs": 2, "progress": False},
        "eval": {"batch_size": 500, "iw_samples": 0, "iw_chunk": 100, "mi_pool": "all", "hole_prior_samples": 32000},
    }


def _text_preset(data: str) -> dict[str, Any]:
    """The LSTM VAE of He et al. (2019) at CPU size (emb 128, LSTM 256, 32 latents), trained with Adam (lr 3e-3)
    from weights U(-0.3, 0.3) (embeddings U(-0.1, 0.1)) rather than their SGD (lr 1) from U(-0.01, 0.01).

    Why (docs/text.md, "Why the text remedies collapsed"): at U(-0.01, 0.01) the encoder's posterior means differ
    across sentences by about 1e-4.5 posterior standard deviations (activity 2.7e-9 per unit, measured by
    ``benchmarks/text_init_activity.py``), a saddle that SGD leaves only after far more steps than a CPU study
    affords; every remedy that lowers the price of information rather than forcing it (free bits, beta < 1, the
    density gap, pretraining) then collapses with the plain VAE, and the study could not tell them apart. From
    U(-0.3, 0.3) the means differ from the start (activity 0.07, every unit active); the plain VAE still collapses,
    and what each remedy does with an informative encoder is the remedy's own doing. The authors' setting stays
    one ``--set`` away (``train.optimizer=sgd``, ``train.lr=1``, ``model.init_range=0.01``) and is what
    configs/ptb_vae_small.yaml trains."""
    return {
        "name": f"study_{data}",
        "seed": 0,
        "data": {"name": data, **_preset_sizes(data, 300)},
        "model": {
            "type": "lstm_vae",
            "latent_dim": 32,
            "emb_dim": 128,
            "hidden_dim": 256,
            "dropout_in": 0.5,
            "dropout_out": 0.5,
            "init_range": 0.3,
        },
        "objective": {"regulariser": "kl", "beta": {"type": "constant", "value": 1.0}},
        "train": {
            "optimizer": "adam",
            "lr": 3.0e-3,
            "grad_clip": 5.0,
            "batch_size": 32,
            "epochs": 2,
            "progress": False,
        },
        "eval": {"batch_size": 100, "iw_samples": 0, "iw_chunk": 100, "mi_pool": "all", "hole_prior_samples": 32000},
    }


def _synthetic_text_preset(data: str) -> dict[str, Any]:
    """The generated topic corpus (:mod:`vaelab.data.synthetic_text`: 4,000 training sentences of 10 words, 8 topics)
    with a small LSTM VAE (emb 32, LSTM 64, D = 8): seconds per epoch on a CPU; the plain VAE collapses on it and
    the remedies can rescue it within minutes (the demo, ``make demo``).

    Optimiser and initialisation are the text preset's (Adam, lr 3e-3, weights U(-0.3, 0.3)); at He et al.'s
    U(-0.01, 0.01) even an autoencoder (beta = 0) of this small model carried no information after 8 epochs
    (docs/study.md, "The demo")."""
    raw = _text_preset(data)
    raw["data"] = {"name": data, "num_examples": 4000, "eval_size": 400, "num_templates": 8, "noise": 0.3}
    raw["model"].update({"latent_dim": 8, "emb_dim": 32, "hidden_dim": 64})
    return raw


PRESETS = {"synthetic_text": _synthetic_text_preset}
"""Data sets with a preset of their own (else: the image or the text preset)."""

LABELLED_TEXT_DATA = ("synthetic_text",)
"""Text data sets that always carry labels (files carry them with ``data.format: label_tab``)."""


def is_text_data(name: str) -> bool:
    """Whether ``data.name`` is a text corpus: its loader registered with modality "text"
    (:func:`vaelab.data.dataset_modality`); an unknown name is the registry's error naming ``--data``."""
    return dataset_modality(name, key="--data") == "text"


def check_plain_objective(cfg: RunConfig) -> None:
    """A study's base config is the plain VAE, the ELBO (``objective.regulariser=kl``, a constant beta = 1, no
    ``objective.terms``): the ``plain`` arm trains it as it is and each remedy sets its own objective on it, so a
    base with another objective would make every arm something the table does not say."""
    o, why = cfg.objective, ""
    if o.regulariser != "kl":
        why = f"objective.regulariser={o.regulariser}"
    elif o.beta.type != "constant":
        why = f"objective.beta.type={o.beta.type}"
    elif o.beta.value != 1.0:
        why = f"objective.beta.value={o.beta.value:g}"
    elif o.terms:
        why = f"objective.terms has {len(o.terms)} term(s)"
    if why:
        raise ConfigError(
            f"{why}: a study's base is the plain VAE (the ELBO: objective.regulariser=kl, a constant beta = 1, no "
            "objective.terms), which the plain arm trains as it is and each method changes in its own way; remove "
            "the objective section from the base config (a method's own setting: --method-set METHOD:key=value)"
        )


def base_config(data: str, overrides: list[str] | None = None) -> tuple[dict[str, Any], bool]:
    """The base run config (a mapping) of a study and whether it is text.

    ``data``: a registered data set name (a built-in preset: an MLP VAE for images, the LSTM VAE for text) or a
    run config YAML file (its model and objective are the plain VAE of the study: :func:`check_plain_objective`).
    ``overrides``: ``key=value`` applied on top (``data.path=...``, ``model.latent_dim=16``). The result is
    validated.
    """
    path = Path(data)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise FileNotFoundError(f"--data {data}: no such config file")
        raw = read_yaml(path)
        check_not_a_sweep_file(path, raw, flag="--data ")
        written = written_part(raw, saved=isinstance(raw.get("_meta"), dict))
    else:
        preset = PRESETS.get(data) or (_text_preset if is_text_data(data) else _image_preset)
        raw = preset(data)
        written = {}  # the preset's keys are not the user's: only the overrides are
    raw = apply_overrides(raw, list(overrides or []))
    raw.pop("_meta", None)
    try:
        cfg = run_config(raw)
        check_written_keys(cfg, written, list(overrides or []))  # each arm's own keys: SweepSpec.validate
        check_plain_objective(cfg)
    except ConfigError as e:
        raise attribute_error(e, f"--data {data}", list(overrides or []), flag="--set") from None
    text = is_text_data(cfg.data.name)  # a text model on images is refused when the config is read
    out = to_dict(cfg)
    out["train"]["progress"] = False
    return out, text


# ------------------------------------------------------------------------------------------------------------
# the study


@dataclass
class StudyRequest:
    """What ``vaelab study collapse`` was asked (stored as ``DIR/study.json``)."""

    data: str
    methods: list[str] = field(default_factory=lambda: list(DEFAULT_PANEL))
    budget: str = "2ep"
    seeds: list[int] = field(default_factory=lambda: [0])
    iw_samples: int = 100
    overrides: list[str] = field(default_factory=list)
    method_overrides: list[str] = field(default_factory=list)
    name: str | None = None

    def method_sets(self) -> dict[str, dict[str, Any]]:
        """``--method-set`` items ``METHOD[,METHOD...]:key=value`` -> {method: {dotted key: YAML-parsed value}}
        (checked), applied after each method's own overrides."""
        out: dict[str, dict[str, Any]] = {}
        for item in self.method_overrides:
            names, sep, assignment = item.partition(":")
            if not sep or "=" not in assignment or not names.strip():
                raise ConfigError(
                    f"--method-set {item!r} must look like METHOD:key=value "
                    "(e.g. aggressive:train.strategy_options.check_every_steps=50)"
                )
            for name in (n.strip() for n in names.split(",")):
                if name not in self.methods:
                    raise ConfigError(f"--method-set {item!r}: {name!r} is not one of --methods {self.methods}")
                key, _, raw = assignment.partition("=")
                out.setdefault(name, {})[key.strip()] = parse_scalar(raw)
        return out

    def validate(self) -> Budget:
        if not self.methods:
            raise ConfigError("--methods: at least one method is needed")
        for i, m in enumerate(self.methods):
            METHODS.get(m, key=f"--methods[{i}]")
        if len(set(self.methods)) != len(self.methods):
            raise ConfigError(f"--methods lists a method twice: {self.methods}")
        if not self.seeds:
            raise ConfigError("--seeds: at least one seed is needed")
        for item in self.overrides:  # named as the option, not as an override of a config file
            if "=" not in item or not item.partition("=")[0].strip():
                raise ConfigError(f"--set {item!r} must look like key=value (e.g. train.lr=0.0005)")

        check("--iw-samples", self.iw_samples, RULES["eval.iw_samples"])  # it is each run's eval.iw_samples
        try:
            return Budget.parse(self.budget)
        except ValueError as e:
            raise ConfigError(str(e)) from None


def study_extra_metrics(base: dict[str, Any], text: bool) -> list[str]:
    """The extra metrics a study measures: the hole metrics; the linear probe for image data (it reports
    ``probe_skipped`` where there are no labels) and for labelled text (``data.format: label_tab``, the generated
    ``synthetic_text``); then whatever the base config asks for in ``eval.extra_metrics``
    (``--set eval.extra_metrics=[...]``), in order, no repeats."""
    data = base.get("data", {})
    labelled = not text or data.get("format") == "label_tab" or data.get("name") in LABELLED_TEXT_DATA
    wanted = ["holes", *(["probe"] if labelled else []), *base.get("eval", {}).get("extra_metrics", [])]
    return list(dict.fromkeys(wanted))


BUDGET_KEYS = ("train.epochs", "train.max_steps")
"""The keys ``--budget`` sets for every method (:meth:`Budget.overrides`)."""


def _overlaps(a: str, b: str) -> bool:
    """Whether dotted keys ``a`` and ``b`` set the same value: equal, or one a mapping that holds the other
    (``objective.beta`` and ``objective.beta.value``)."""
    return a == b or a.startswith(b + ".") or b.startswith(a + ".")


def _given_keys(items: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    """(option, item as written, assignment) -> (option, item, dotted key) for each key the assignment sets, a
    mapping given for a section spread into its keys (``--set train={epochs: 3}`` sets train.epochs)."""
    out = []
    for option, item, assignment in items:
        key, _, raw = assignment.partition("=")
        out += [(option, item, k) for k in expand_sections({key.strip(): parse_scalar(raw)})]
    return out


def _check_set_keys(req: StudyRequest, budget: Budget, method_keys: dict[str, list[str]]) -> None:
    """Refuse a ``--set`` or ``--method-set`` of a key the budget sets (the budget would drop a ``--set`` without a
    word, and a ``--method-set`` would give one method another budget than the table states), and a ``--set`` of a
    key that a chosen method sets itself (``method_keys``: method -> the dotted keys of its overrides), which the
    method's value would replace in its runs without a word, unless ``--method-set`` gives that method the key
    too (its value for that method, stated)."""
    sets = [("--set", item, item) for item in req.overrides]
    method_sets = [("--method-set", item, item.partition(":")[2]) for item in req.method_overrides]
    for option, item, key in _given_keys(sets + method_sets):
        for budget_key in BUDGET_KEYS:
            if _overlaps(key, budget_key):
                raise ConfigError(
                    f"{option} {item}: {budget_key} is set by --budget ({budget}) for every method, so that they "
                    "compare under one budget; change --budget instead (epochs: 3ep, steps: 500steps)"
                )
    stated_by = req.method_sets()
    for _, item, key in _given_keys(sets):
        for method, keys in method_keys.items():
            stated = expand_sections(stated_by.get(method, {}))
            if any(key == k or key.startswith(k + ".") for k in stated):
                continue  # --method-set states this method's own value of the key
            hit = next((k for k in keys if _overlaps(key, k)), None)
            if hit is not None:
                raise ConfigError(
                    f"--set {item}: method {method} sets {hit} itself (its remedy), which would replace this value "
                    f"in its runs; give {method} a value of its own with --method-set {method}:{key}=VALUE (then "
                    f"--set applies to the other methods), or leave {method} out of --methods"
                )


def study_spec(req: StudyRequest) -> dict[str, Any]:
    """The sweep (as a mapping for :func:`vaelab.sweep.spec_from_dict`) that runs the study."""
    budget = req.validate()
    base, text = base_config(req.data, req.overrides)
    cfg = from_dict(RunConfig, base)
    sets = req.method_sets()
    own = {m: method_overrides(m, cfg, budget, text) for m in req.methods}
    _check_set_keys(req, budget, {m: list(expand_sections(o)) for m, o in own.items()})
    variants = [{"name": m, **own[m], **sets.get(m, {})} for m in req.methods]
    extras = study_extra_metrics(base, text)
    name = req.name or f"collapse_{Path(req.data).stem if req.data.endswith(('.yaml', '.yml')) else req.data}"
    return {
        "name": name,
        "base_config": base,
        "fixed": budget.overrides(),
        "variants": variants,
        "seeds": list(req.seeds),
        "measure": {
            "splits": ["test"],
            "iw_samples": req.iw_samples,
            "train_subset": "test",
            "checkpoint": "best",
            "mi_pool": "all",
            "extra_metrics": extras,
        },
    }


def _preset_hint(req: StudyRequest, message: str) -> str:
    """The end of a data error's message when the preset's ``data.train_size`` (not the user's) is at fault."""
    if "data.train_size" not in message or req.data.endswith((".yaml", ".yml")):
        return ""
    if any(item.partition("=")[0].strip() in ("data.train_size", "data") for item in req.overrides):
        return ""  # the user's own value, which the message names
    return (
        f" (the study's preset caps data.train_size at {PRESET_TRAIN_SIZE}: --set data.train_size=null trains on the "
        "whole training split, or give a smaller number)"
    )


def _same_budget(old: Any, new: str) -> bool:
    """Whether a stored ``--budget`` text means the same budget as ``new`` (``2``, ``2ep``, ``2 epochs``)."""
    try:
        return Budget.parse(old) == Budget.parse(new)
    except ConfigError:
        return False


def run_study(
    req: StudyRequest,
    out: str | Path,
    *,
    workers: int = 1,
    backend: str = "local",
    address: str | None = None,
    retry_failed: bool = False,
    reuse: list[str | Path] | None = None,
) -> tuple[list[dict[str, Any]], Path]:
    """Run (or continue) the study into ``out``; write results.csv, study.csv and study.md.

    ``reuse``: other study (or sweep) folders whose points with the same run config are copied rather than
    trained again (:func:`vaelab.sweep.runner.reuse_points`). Returns the table rows and the path of ``study.md``.
    """
    from vaelab.sweep import RunOptions, run_sweep, spec_from_dict, write_results
    from vaelab.sweep.runner import check_measured_data, check_ray_address, workers_rule

    check("workers", workers, workers_rule())  # before study.json is written
    check_ray_address(address, backend)
    out = Path(out)
    spec = spec_from_dict(study_spec(req), "study")
    # the study decides what it measures: no point runs its base config's own final evaluation (eval.iw_samples)
    options = RunOptions(retry_failed=retry_failed, final_evaluation=False, probe_where_labelled=True)
    # every point's data and model, before study.json is written: a study whose data cannot be loaded (its points
    # share them) is refused as a whole rather than written out as a table of failed points
    try:
        check_measured_data(spec, range(len(spec)), options, require_data=True)
    except ConfigError as e:
        raise ConfigError(f"--data {req.data}: {e}{_preset_hint(req, str(e))}") from None
    stored = out / STUDY_FILE
    record = {
        "kind": "collapse",
        **asdict(req),
        "workers": workers,
        "backend": backend,
        "command": " ".join(sys.argv),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    if stored.is_file():
        old = read_json_object(stored)
        # --set and --method-set are not compared as written: the sweep compares every point's resolved run
        # config (vaelab.sweep.runner.prepare_out), so spelling out a preset's own value is not a different study
        for key in ("data", "methods", "budget", "seeds", "iw_samples"):
            was = old.get(key)
            if key == "seeds" and isinstance(was, list) and record[key][: len(was)] == was:
                continue  # appended seeds: the finished points keep their meaning and are kept
            if key == "budget" and _same_budget(was, record[key]):
                continue  # 2, 2ep and "2 epochs" are one budget
            if was != record[key]:
                raise ConfigError(
                    f"{out} holds a study with {key}={old.get(key)!r}, not {record[key]!r}; "
                    "use another --out (or delete the folder)"
                )
        record["started"] = old.get("started", record["started"])
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(stored, json.dumps(record, indent=2) + "\n")
    run_sweep(
        spec,
        out,
        workers=workers,
        backend=backend,
        address=address,
        options=options,
        reuse=reuse or [],
        data_checked=True,
    )
    write_results(out)
    return write_table(out)


# ------------------------------------------------------------------------------------------------------------
# the comparison table

COLUMNS: list[tuple[str, str, int]] = [
    ("test_nll_iw", "IW-NLL", 2),
    ("test_rate", "KL", 2),
    ("test_mi", "MI", 2),
    ("test_au", "AU", 1),
    ("test_cu_0.03", "CU(0.03)", 1),
    ("test_probe_accuracy", "probe acc.", 3),
    ("test_hole_kl", "hole KL", 2),
    ("train_time", "train time (s)", 1),
]
"""(results.csv column, table header, decimals) of the comparison table; the ratio to the plain VAE's time follows."""

ROW_STATS: list[str] = ["test_probe_mean_accuracy", "test_probe_majority"]
"""results.csv columns averaged into the rows of study.csv like the table's columns, but not shown as columns (the
majority-class rate is stated in the table's caption)."""


def _stats(values: list[float]) -> tuple[float, float | None]:
    if len(values) == 1:
        return values[0], None
    return statistics.fmean(values), statistics.stdev(values)


def study_table(out: str | Path) -> list[dict[str, Any]]:
    """One row per method (in the study's order): mean, standard deviation (over completed seeds) per column,
    the time ratio to ``plain``, the seeds completed and failed, and the collapse verdict of each seed."""
    from vaelab.diagnose import diagnose_metrics
    from vaelab.sweep.aggregate import read_results

    out = Path(out)
    req = read_json_object(out / STUDY_FILE)
    rows = read_results(out)
    table: list[dict[str, Any]] = []
    for method in req["methods"]:
        mine = [r for r in rows if r.get("variant") == method]
        done = [r for r in mine if r["status"] == "completed"]
        row: dict[str, Any] = {
            "method": method,
            "label": METHODS.get(method).label,
            "seeds_completed": len(done),
            "seeds_failed": sum(r["status"] == "failed" for r in mine),
            "errors": "; ".join(str(r.get("error")) for r in mine if r["status"] == "failed"),
        }
        for col in [c for c, _, _ in COLUMNS] + ROW_STATS:
            vals = [float(r[col]) for r in done if isinstance(r.get(col), int | float)]
            if vals:
                row[col], row[f"{col}_sd"] = _stats(vals)
        evals = [ev for ev in (_read_eval(Path(r["run_dir"])) for r in done) if ev]
        verdicts = [diagnose_metrics(ev, model_type=None).verdict for ev in evals]
        row["verdict"] = "/".join(dict.fromkeys(verdicts)) if verdicts else None
        row["mi_pool"] = done[0].get("test_mi_pool") if done else None
        row["iw_samples"] = done[0].get("iw_samples") if done else None
        row["latent_dim"] = next((len(ev["kl_per_dim"]) for ev in evals if ev.get("kl_per_dim")), None)
        row["seeds_reused"] = sum(_reused(Path(r["run_dir"])) for r in done)
        phases = [p for p in (aggressive_phase(Path(r["run_dir"])) for r in done) if p]
        if phases:
            row["aggressive_phase"] = phases
        table.append(row)
    plain = next((r for r in table if r["method"] == "plain" and r.get("train_time")), None)
    for r in table:
        if plain and r.get("train_time") is not None:
            r["time_ratio"] = r["train_time"] / plain["train_time"]
    return table


def _reused(run_dir: Path) -> bool:
    """Whether a point was copied from another study folder (``--reuse``; its point.json names the source)."""
    try:
        return "reused_from" in json.loads((run_dir / "point.json").read_text())
    except (OSError, ValueError):
        return False


def aggressive_phase(run_dir: Path) -> dict[str, Any] | None:
    """How long an aggressive run (He et al. 2019) was aggressive, from its metrics.jsonl: ``stopped_step``
    (None: never switched off), ``aggressive_steps``, ``steps`` (all outer steps) and ``inner_per_step`` (mean
    encoder steps per aggressive outer step). None for runs of another strategy."""
    from vaelab.runfolder import read_jsonl

    path = run_dir / "metrics.jsonl"
    recs = [r for r in read_jsonl(path) if r.get("split") == "valid"] if path.is_file() else []
    agg = [r for r in recs if "aggressive_steps" in r]
    if not agg:
        return None
    last = agg[-1]
    # grad_evals_per_step is cumulative: (outer steps + all inner steps) / outer steps
    inner_total = (last.get("grad_evals_per_step", 1.0) - 1.0) * last["step"]
    inner = inner_total / last["aggressive_steps"] if last["aggressive_steps"] else 0.0
    return {
        "stopped_step": last.get("aggressive_stopped_step"),
        "aggressive_steps": last["aggressive_steps"],
        "steps": last["step"],
        "inner_per_step": inner,
    }


def _read_eval(run_dir: Path) -> dict[str, Any] | None:
    from vaelab.runfolder import read_json_or_none

    return read_json_or_none(run_dir / "eval_test.json")


def _fmt(row: dict[str, Any], col: str, decimals: int) -> str:
    v = row.get(col)
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    sd = row.get(f"{col}_sd")
    if abs(v) < 0.5 * 10**-decimals:
        v = 0.0  # no "-0.00" for estimator noise around zero
    if sd is None and float(v).is_integer() and col in ("test_au", "test_cu_0.03"):
        return str(int(v))
    s = f"{v:.{decimals}f}"
    return s if sd is None else f"{s} ± {sd:.{decimals}f}"


def _probe_legend(table: list[dict[str, Any]]) -> str:
    """The caption's sentence on the probe column, with the test split's majority-class rate when measured."""
    legend = "probe = accuracy of a linear classifier on z drawn from q(z|x) (where labels exist"
    if not any(r.get("test_probe_accuracy") is not None for r in table):
        return legend + "; none here)"
    rates = sorted({round(r["test_probe_majority"], 3) for r in table if r.get("test_probe_majority") is not None})
    if not rates:  # measured before the probe sampled z: its only number was the posterior-mean probe
        return "probe = accuracy of a linear classifier on E[z|x] (where labels exist; an older measurement)"
    shown = f"{rates[0]:.3f}" if len(rates) == 1 else f"{rates[0]:.3f}-{rates[-1]:.3f}"
    return (
        f"{legend}; majority class of the test split: {shown}, where a collapsed model sits; study.csv also has "
        "test_probe_mean_accuracy, the same probe on E[z|x], which reads variations the noise hides)"
    )


def table_markdown(table: list[dict[str, Any]], req: dict[str, Any]) -> str:
    """The comparison table as Markdown, with a caption stating the budget, K, the MI pool and the seeds."""
    k = next((r["iw_samples"] for r in table if r.get("iw_samples") is not None), req.get("iw_samples"))
    pool = next((r["mi_pool"] for r in table if r.get("mi_pool") is not None), None)
    d = next((r["latent_dim"] for r in table if r.get("latent_dim") is not None), None)
    headers = ["method"] + [h for _, h, _ in COLUMNS] + ["time ratio", "verdict", "seeds"]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for r in table:
        cells = [r["label"]] + [_fmt(r, c, dec) for c, _, dec in COLUMNS]
        ratio = r.get("time_ratio")
        cells.append("-" if ratio is None else f"{ratio:.2f}x")
        cells.append(r.get("verdict") or "-")
        seeds = f"{r['seeds_completed']}"
        if r["seeds_failed"]:
            seeds += f" ({r['seeds_failed']} failed)"
        cells.append(seeds)
        lines.append("| " + " | ".join(cells) + " |")
    ln = f" (ceiling ln {pool} = {math.log(pool):.2f})" if isinstance(pool, int) and pool > 1 else ""
    caption = (
        f"Data `{req['data']}`, budget {Budget.parse(req['budget'])} per method, seeds {req['seeds']} "
        f"(mean ± standard deviation over seeds when more than one). Test split: IW-NLL with K = {k} (nats), "
        f"KL = rate (nats), MI pooled over the test split of {pool} examples{ln}, AU = active units of {d} "
        "(Var_x E[z|x] >= 0.01), CU(0.03) = units whose aggregate posterior is within 0.03 nats of the prior, "
        f"{_probe_legend(table)}, hole KL = KL(p(z) || q(z)). Train time: the "
        f"training loop with its per-epoch validation, final test measurement excluded; {req.get('workers', 1)} "
        "run(s) at a time."
    )
    reused = sum(r.get("seeds_reused", 0) for r in table)
    if reused:
        done = sum(r["seeds_completed"] for r in table)
        caption += (
            f" {reused} of the {done} runs were copied from earlier study folders with the same run config "
            "(`--reuse`; each point.json names its source): their train times were measured there."
        )
    errors = [f"- {r['label']}: {r['errors']}" for r in table if r.get("errors")]
    body = "\n".join(lines) + "\n\n" + caption + "\n"
    phases = [(r["label"], r["aggressive_phase"]) for r in table if r.get("aggressive_phase")]
    if phases:
        body += "\nAggressive phase (outer steps aggressive / all; mean encoder steps per decoder step meanwhile):\n"
        for label, runs in phases:
            parts = [
                f"{p['aggressive_steps']} / {p['steps']}"
                + (" (never switched off)" if p["stopped_step"] is None else "")
                + f", {p['inner_per_step']:.1f}"
                for p in runs
            ]
            body += f"- {label}: " + "; ".join(parts) + "\n"
    if errors:
        body += "\nFailed runs:\n" + "\n".join(errors) + "\n"
    return body


def write_table(out: str | Path) -> tuple[list[dict[str, Any]], Path]:
    """Write ``DIR/study.csv`` and ``DIR/study.md`` from the measured points; return the rows and the .md path."""
    out = Path(out)
    table = study_table(out)
    req = read_json_object(out / STUDY_FILE)
    cols: list[str] = []
    for r in table:
        cols += [k for k in r if k not in cols]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    writer.writeheader()
    for r in table:
        writer.writerow({k: json.dumps(v) if isinstance(v, list | dict) else v for k, v in r.items()})
    atomic_write_text(out / TABLE_CSV, buf.getvalue())
    md = f"# Collapse study: {req['data']}\n\n" + table_markdown(table, req)
    atomic_write_text(out / TABLE_MD, md)
    return table, out / TABLE_MD


def load_request(path: str | Path) -> dict[str, Any]:
    return read_json_object(Path(path) / STUDY_FILE)
