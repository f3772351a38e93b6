"""The run folder: everything a run produces, in files a person or a script can read.

DIR/config.yaml      the fully resolved config + provenance (_meta: seed, versions, hardware, command)
DIR/metrics.jsonl    one JSON object per evaluation (epoch, step, split, elbo, rate, distortion, mi, ...)
DIR/summary.json     final metrics on the test split (incl. nll_iw and its K), status, wall time
DIR/checkpoints/     last.pt (resume) and best.pt (lowest validation loss)
DIR/eval.json        written by ``vaelab evaluate``
DIR/steps.jsonl      training scalars every ``train.log_every_steps`` steps (running means over the window)
DIR/tensorboard/     TensorBoard event files (with ``train.tensorboard=true``)
DIR/diagnosis.md     written by ``vaelab diagnose`` (with diagnosis.json)
DIR/report.html      written by ``vaelab report``

After a resume, metrics.jsonl, steps.jsonl and summary.json equal an uninterrupted run's except the wall-clock
fields: ``wall_time`` (metrics.jsonl, steps.jsonl, a failed summary.json), ``train_time`` and ``eval_time``
(summary.json).
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
from pathlib import Path
from typing import Any

import torch

from vaelab.checkpoint import atomic_write_text
from vaelab.errors import UserError

DEFERRED = "deferred"
"""summary.json's ``final_evaluation`` when the trainer left the evaluation to the sweep's measurement
(:func:`vaelab.sweep.measure.complete_deferred_summary` fills it in)."""


def _clean(v: Any) -> Any:
    """JSON-safe values: tensors to numbers, NaN/inf to strings (JSON has no NaN)."""
    if isinstance(v, torch.Tensor):
        v = v.tolist()
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_clean(x) for x in v]
    return v


def provenance() -> dict[str, Any]:
    """Library versions and hardware, recorded in every run's config.yaml."""
    import numpy

    import vaelab

    info: dict[str, Any] = {
        "vaelab": vaelab.__version__,
        "python": sys.version.split()[0],
        "torch": str(torch.__version__),
        "numpy": str(numpy.__version__),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "command": " ".join(sys.argv),
    }
    return info


def read_json_object(path: str | Path) -> dict[str, Any]:
    """A JSON object file that must be valid (summary.json, study.json, ...): one that is not valid JSON or not an
    object is a one-line :class:`~vaelab.errors.UserError` naming the file (an OS error keeps its own type)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: not valid JSON ({e.msg}, line {e.lineno} column {e.colno})") from None
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text ({e.reason})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


METRIC_NUMBERS = (
    "n", "elbo", "elbo_se", "rate", "distortion", "nll_elbo", "nll_iw", "nll_iw_se", "bpd", "ppl_elbo", "ppl_iw",
    "mi", "mi_se", "mi_pool", "marginal_kl", "au", "au_threshold", "hole_kl", "iw_samples", "best_epoch", "epochs",
    "steps",
)  # fmt: skip
"""Keys of an evaluation record (summary.json, eval*.json) that hold a number when present."""
METRIC_LISTS = ("kl_per_dim", "activity_per_dim")
"""Keys that hold one number per latent unit."""


def not_a_run_folder(root: str | Path) -> str:
    """Why ``root`` cannot be read as a run folder (its config.yaml is missing or is not a file; a sweep or study
    folder is named as such), one line for a FileNotFoundError."""
    root = Path(root)
    config = root / "config.yaml"
    if config.exists() and not config.is_file():
        return f"{config} is a folder or another non-file, not the run's config file: put the run's config.yaml back"
    if (root / "sweep.yaml").is_file():
        return (
            f"{root} is a sweep or study folder, not a run folder; give one of its points ({root / 'points'}/NNNN-...)"
        )
    return f"{root} is not a run folder (no config.yaml)"


def check_metric_record(record: dict[str, Any], path: Path) -> dict[str, Any]:
    """Refuse an evaluation record whose numbers are not numbers, or impossible (more active units than latent
    units, a negative count): a file edited or damaged after vaelab wrote it would otherwise be reported as
    measured. One line naming the file and the key. Returns ``record``."""

    def number(v: Any) -> bool:
        return isinstance(v, int | float) and not isinstance(v, bool)

    redo = "the file was edited or damaged; measure again with `vaelab evaluate` (or restore the file)"
    for key in METRIC_NUMBERS:
        if record.get(key) is not None and not number(record[key]):
            raise UserError(f"{path}: {key} is {record[key]!r:.40}, not a number: {redo}")
    for key in METRIC_LISTS:
        v = record.get(key)
        if v is not None and not (isinstance(v, list) and all(number(x) for x in v)):
            raise UserError(f"{path}: {key} is {v!r:.40}, not a list of numbers: {redo}")
    units = len(record["kl_per_dim"]) if isinstance(record.get("kl_per_dim"), list) else None
    for key in ("n", "au", "mi_pool", "iw_samples", "epochs", "steps"):
        if number(record.get(key)) and record[key] < 0:
            raise UserError(f"{path}: {key} is {record[key]}, a negative count: {redo}")
    if units is not None and number(record.get("au")) and record["au"] > units:
        raise UserError(f"{path}: au is {record['au']}, more active units than its {units} latent units: {redo}")
    return record


def read_metrics_file(path: str | Path) -> dict[str, Any]:
    """:func:`read_json_object` of an evaluation record, its numbers checked (:func:`check_metric_record`)."""
    return check_metric_record(read_json_object(path), Path(path))


def read_json_or_none(path: Path) -> dict[str, Any] | None:
    """A JSON object file's contents, or None when it is missing, unreadable or not an object (for optional files
    such as eval.json; files that must exist use :meth:`RunFolder.read_json`)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a .jsonl file ([] if it does not exist); a bad line is an error naming file and line.
    A last line cut short by a crash is skipped."""
    if not path.exists():
        return []
    out = []
    text = path.read_text()
    lines = text.splitlines()
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError as e:
            if i == len(lines) and not text.endswith("\n"):
                break  # the line being written when the process died
            raise UserError(f"{path}:{i}: not a JSON object ({e.msg})") from None
    return out


EVALUATION_FILES = ("eval.json", "diagnosis_eval.json")
"""The evaluation files that ``vaelab evaluate`` and ``vaelab diagnose`` write into a run folder, possibly while it
trains or before it is resumed: readers check them with :func:`stale_evaluation`."""
CHECKPOINT_SHA256 = "checkpoint_sha256"
"""The key of eval.json and diagnosis_eval.json that records the sha256 of the checkpoint file they measured."""


def checkpoint_record(checkpoint: Path | None) -> dict[str, str]:
    """What an evaluation file records of the checkpoint it measured (:data:`CHECKPOINT_SHA256`), so that a
    reader can tell whether the folder's checkpoint has changed since (:func:`stale_evaluation`)."""
    if checkpoint is None or not checkpoint.is_file():
        return {}
    from vaelab.data.base import sha256_file

    return {CHECKPOINT_SHA256: sha256_file(checkpoint)}


def stale_evaluation(path: Path, data: dict[str, Any]) -> str | None:
    """Why the evaluation file ``path`` (eval.json, diagnosis_eval.json, holding ``data``) no longer measures the
    checkpoint it names (``data["checkpoint"]``, default best) as the folder now holds it, or None. A file that
    records the checkpoint's sha256 is compared by it; an older file without the record is stale when it is older
    than the checkpoint file (an evaluate before the run was resumed and wrote a new best.pt); a folder without
    the checkpoint cannot tell, and the file is taken as it is."""
    which = data.get("checkpoint") or "best"
    ckpt = path.parent / "checkpoints" / f"{which}.pt"
    if not isinstance(which, str) or not ckpt.is_file():
        return None
    recorded = data.get(CHECKPOINT_SHA256)
    if recorded is not None:
        from vaelab.data.base import sha256_file

        if recorded == sha256_file(ckpt):
            return None
        return f"{path} measured another checkpoints/{which}.pt than the folder now holds (the run went on since)"
    if path.stat().st_mtime_ns < ckpt.stat().st_mtime_ns:
        return f"{path} is older than checkpoints/{which}.pt, so it measured an earlier checkpoint"
    return None


def cut_last_line(path: Path) -> int | None:
    """The number of the last line of a .jsonl file if :func:`read_jsonl` skips it (cut short: no newline after
    it and not JSON, as a process stopped while writing it leaves it), else None; readers that go on without it
    say so (``vaelab report``)."""
    if not path.is_file():
        return None
    text = path.read_text()
    lines = text.splitlines()
    if not lines or text.endswith("\n") or not lines[-1].strip():
        return None
    try:
        json.loads(lines[-1])
    except json.JSONDecodeError:
        return len(lines)
    return None


class RunFolder:
    """Paths and writers for one run folder."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def steps(self) -> Path:
        return self.root / "steps.jsonl"

    @property
    def summary(self) -> Path:
        return self.root / "summary.json"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def last(self) -> Path:
        return self.checkpoints / "last.pt"

    @property
    def best(self) -> Path:
        return self.checkpoints / "best.pt"

    def checkpoint_not_a_file(self, ckpt: Path) -> str | None:
        """Why the checkpoint ``ckpt`` (:attr:`last` or :attr:`best`) cannot be read although something is in its
        place (one line naming the path), or None when it is a file or nothing is there: checkpoints/ is a file
        where a folder is expected, or the checkpoint is a folder. A missing checkpoint is the caller's to word
        (a run that never reached its first checkpoint, or one whose checkpoints were removed)."""
        ckpts = ckpt.parent
        if ckpts.exists() and not ckpts.is_dir():
            return (
                f"{ckpts} is a file where a folder is expected (the run's checkpoints folder, with last.pt and "
                "best.pt); put the run's checkpoints folder back in its place, or train the run again with "
                "another --out"
            )
        if ckpt.exists() and not ckpt.is_file():
            return f"{ckpt} is not a file (a checkpoint is one file); put the checkpoint file back in its place"
        if ckpt.is_symlink() and not ckpt.exists():  # a link to nothing, or to itself
            return (
                f"{ckpt} is a symbolic link that leads to no file ({os.readlink(ckpt)}); put the checkpoint file "
                "itself in its place"
            )
        return None

    def has_records(self) -> bool:
        """Whether the run finished or logged an evaluation (a summary.json that does not say failed, or
        metrics.jsonl records without a failed summary, as :meth:`holds_run` counts them). Such a folder is not one
        a new run may start in, so a missing last.pt there is not "train it again" but moved, removed, or lost
        to a crash between an evaluation and its checkpoint."""
        if self.summary.exists():
            summary = read_json_or_none(self.summary)
            return (summary.get("status") if summary else None) != "failed"
        return self.metrics.is_file() and self.metrics.stat().st_size > 0

    def create(self) -> None:
        self.checkpoints.mkdir(parents=True, exist_ok=True)

    def holds_run(self) -> str | None:
        """Why this folder is another run's (one line, saying how to continue it or to choose another --out),
        which a new run must not overwrite; None when a new run may start here.

        A new run may start in a folder that is missing or empty, or that holds only what a start which crashed
        or failed before its first checkpoint left: config.yaml, steps.jsonl, tensorboard/, an empty checkpoints/,
        a summary.json with ``"status": "failed"`` (and the metrics.jsonl of that failed attempt), a stale
        run.lock, files that are not a run's. The new run replaces those files. Anything else is a run: a
        checkpoint (it can be resumed), a summary.json that does not say failed (a finished run), or metrics.jsonl
        records without a failed summary (a run whose checkpoints are gone). Never a run folder either: a sweep or
        study folder, or a folder whose config.yaml vaelab did not write (the user's own config file).
        """
        root = self.root
        for marker, kind in (("sweep.yaml", "sweep"), ("study.json", "study"), ("points", "sweep")):
            if (root / marker).exists():
                return f"{root} is a {kind} folder ({marker}), not a run folder; choose another --out"
        if (parent := enclosing_run(root)) is not None:  # a run inside another run's folder (its checkpoints/)
            return f"{root} lies inside the run folder {parent}, which it would mix with; choose another --out"
        if self.config.is_file() and not _saved_by_vaelab(self.config):
            return (
                f"{self.config} is not a config.yaml that vaelab wrote (no _meta block): a run here would overwrite "
                "it; choose another --out"
            )
        for ckpt in (self.last, self.best):
            if ckpt.exists():
                return (
                    f"{root} already holds a run ({ckpt.relative_to(root)}); continue it with `vaelab resume {root}` "
                    "or choose another --out"
                )
        if self.summary.exists():
            summary = read_json_or_none(self.summary)
            status = summary.get("status") if summary else None
            if status == "failed":
                return None
            return (
                f"{root} already holds a finished run (summary.json, status {status or 'unreadable'}); choose "
                "another --out"
            )
        if self.metrics.exists() and self.metrics.stat().st_size > 0:
            return (
                f"{root} already holds a run (metrics.jsonl) whose checkpoints are gone, so it cannot be resumed; "
                "choose another --out"
            )
        return None

    def append_metrics(self, record: dict[str, Any]) -> None:
        """Append one JSON line and flush it to disk (a crash loses at most the line being written)."""
        self._append(self.metrics, record, sync=True)

    def append_steps(self, record: dict[str, Any]) -> None:
        """Append one line to steps.jsonl (flushed, not synced: it is cheap and re-logged after a resume)."""
        self._append(self.steps, record, sync=False)

    @staticmethod
    def _append(path: Path, record: dict[str, Any], sync: bool) -> None:
        try:
            with open(path, "a") as f:
                f.write(json.dumps(_clean(record)) + "\n")
                f.flush()
                if sync:
                    os.fsync(f.fileno())
        except OSError as e:
            if e.filename is None:  # a failed write (disk full): name the file
                raise OSError(e.errno, e.strerror, str(path)) from None
            raise

    def truncate_metrics(self, keep_until_step: int) -> None:
        """On resume: drop the records of metrics.jsonl and steps.jsonl logged after the checkpoint's step (they
        will be logged again)."""
        for path in (self.metrics, self.steps):
            if path.exists():
                kept = [ln for ln in read_jsonl(path) if ln.get("step", 0) <= keep_until_step]
                atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in kept))

    def read_metrics(self) -> list[dict[str, Any]]:
        return read_jsonl(self.metrics)

    def read_steps(self) -> list[dict[str, Any]]:
        return read_jsonl(self.steps)

    def write_json(self, name: str, data: dict[str, Any]) -> Path:
        path = self.root / name
        atomic_write_text(path, json.dumps(_clean(data), indent=2) + "\n")
        return path

    def read_json(self, name: str) -> dict[str, Any]:
        path = self.root / name
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist")
        return read_json_object(path)


def enclosing_run(path: str | Path) -> Path | None:
    """The run folder (a folder with a config.yaml that vaelab wrote) that ``path`` lies inside, if any: a run,
    sweep or study written there would mix with that run's files."""
    for parent in Path(os.path.abspath(path)).parents:
        if (parent / "config.yaml").is_file() and _saved_by_vaelab(parent / "config.yaml"):
            return parent
    return None


def _saved_by_vaelab(path: Path) -> bool:
    """Whether ``path`` is a run's config.yaml as vaelab writes it (a mapping with a ``_meta`` provenance block),
    rather than the user's own config file."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False
    return isinstance(data, dict) and isinstance(data.get("_meta"), dict)
