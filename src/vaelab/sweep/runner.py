"""Running sweep points: one point = train (or resume) its run folder, then measure it; backends run many.

Layout of a sweep folder ``DIR``::

    DIR/sweep.yaml                     the sweep, self-contained (base config inline); fixes what index i means
    DIR/points/NNNN-<slug>/            point NNNN's run folder (config.yaml, metrics.jsonl, summary.json,
                                       checkpoints/) plus:
        point.json                     index, overrides, parameters and the hash of the resolved config
        log.txt                        the point's training log (stdout and stderr)
        eval_train.json, eval_test.json   measurements per split (vaelab.sweep.measure)
        measurements.json              flat record + generalisation gaps; written last = the point is complete
        error.json                     why the point failed (type, message, traceback, phase)
        .running                       lock while a process works on the point (host, pid)
    DIR/results.csv                    the aggregated table (vaelab.sweep.aggregate)

States of a point (:func:`point_state`): ``completed`` (measurements.json), ``failed`` (error.json), ``trained``
(summary.json completed, not yet measured), ``partial`` (checkpoints/last.pt, no summary: resumed), ``missing``.
Running a sweep again runs only points that are not completed (failed ones only with ``retry_failed``), resumes
partial ones from their last checkpoint and measures trained ones, so a killed sweep continues where it stopped.
A point's failure is recorded in its error.json and never stops the other points.

While points run, the lines they write to their log.txt (start, epoch lines, evaluation progress) are shown on the
sweep's own output, once each, prefixed by the point's folder name (:class:`LogFollower`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import shutil
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vaelab.checkpoint import atomic_write_text
from vaelab.config import ConfigError, load_saved_config, read_yaml, run_config, to_dict
from vaelab.errors import builtin_type_name
from vaelab.rules import Int, Num, check, option
from vaelab.runfolder import enclosing_run
from vaelab.runlock import acquire_lock, pid_alive, release_lock
from vaelab.sweep.measure import MEASUREMENTS_FILE, measure_run
from vaelab.sweep.spec import (
    SweepError,
    SweepPoint,
    SweepSpec,
    config_hash,
    dump_spec,
    identity,
    measure_identity,
    spec_from_dict,
)

POINT_FILE = "point.json"
ERROR_FILE = "error.json"
LOCK_FILE = ".running"
LOG_FILE = "log.txt"
SWEEP_FILE = "sweep.yaml"

STATES = ("completed", "failed", "trained", "partial", "missing")


@dataclass
class PointResult:
    """What happened to one point in this invocation.

    ``status``: ``completed``, ``failed``, ``skipped`` (already completed, or failed without ``retry_failed``),
    ``locked`` (another process holds the point) or ``not_run`` (the backend lost it, e.g. a worker died; the
    point stays as it was and runs on the next invocation). ``action``: what was done: ``train``, ``resume``,
    ``measure`` or ``none``.
    """

    index: int
    status: str
    action: str = "none"
    seconds: float = 0.0
    error: str | None = None
    folder: str = ""


@dataclass
class RunOptions:
    """Options of a sweep invocation that every point sees."""

    retry_failed: bool = False
    ignore_locks: bool = False
    capture_output: bool = True
    final_evaluation: bool = True
    """False: the trainer skips its own final evaluation (``eval.iw_samples`` on ``eval.final_split``) and the
    point's measurement, the only one, completes summary.json (a study: it decides what it measures)."""
    probe_where_labelled: bool = False
    """True: ``probe`` in ``measure.extra_metrics`` is measured where the data have labels and reported as
    ``probe_skipped`` elsewhere (a study adds it itself); False: a point without labels is refused before any
    training (:func:`check_measured_data`)."""


def points_dir(out: str | Path) -> Path:
    return Path(out) / "points"


def point_dir(out: str | Path, point: SweepPoint) -> Path:
    """``DIR/points/NNNN-<slug>``, or the folder an earlier version named for the point
    (:attr:`~vaelab.sweep.spec.SweepPoint.legacy_folder_names`: ``0000-point`` for a sweep's only point, a named
    variant) when that one exists and the current name does not: a sweep folder written then still resumes,
    aggregates and lists its finished point instead of training it again beside the old folder."""
    folder = points_dir(out) / point.folder_name
    if not folder.exists():
        for name in point.legacy_folder_names:
            old = points_dir(out) / name
            if old.is_dir():
                return old
    return folder


def point_state(folder: Path) -> str:
    """The state of a point folder, one of :data:`STATES` (see the module docstring)."""
    if (folder / MEASUREMENTS_FILE).is_file():
        return "completed"
    if (folder / ERROR_FILE).is_file():
        return "failed"
    summary = folder / "summary.json"
    if summary.is_file():
        with contextlib.suppress(ValueError, OSError):
            if json.loads(summary.read_text()).get("status") == "completed":
                return "trained"
    if (folder / "checkpoints" / "last.pt").is_file():
        return "partial"
    return "missing"


def display_state(folder: Path) -> str:
    """:func:`point_state`, or ``running`` while a process holds the point's lock and it is not completed."""
    state = point_state(folder)
    if state != "completed" and (folder / LOCK_FILE).is_file():
        return "running"
    return state


# --------------------------------------------------------------------------------------------------------------
# the sweep folder


def check_sweep_folder(spec: SweepSpec, out: str | Path) -> SweepSpec | None:
    """Refuse, changing nothing, a folder ``out`` that ``spec`` cannot run in: one that holds a run (a run folder
    is not a sweep folder) or a different sweep (:func:`prepare_out`). Returns the stored sweep, if any."""
    out = Path(out)
    if (parent := enclosing_run(out)) is not None:
        raise SweepError(f"{out} lies inside the run folder {parent}, which it would mix with; choose another --out")
    stored_path = out / SWEEP_FILE
    if not stored_path.is_file():
        held = [name for name in ("config.yaml", "checkpoints", "summary.json") if (out / name).exists()]
        if held:
            raise SweepError(
                f"{out} holds a run ({held[0]}); a sweep or study needs a folder of its own: choose another --out"
            )
        return None
    stored = read_stored_spec(out)
    was, now = measure_identity(stored.measure), measure_identity(spec.measure)
    if was != now:
        diff = ", ".join(f"measure.{k}: {was[k]!r} -> {now[k]!r}" for k in was if was[k] != now.get(k))
        raise SweepError(
            f"{out} holds a sweep measured with other settings ({diff}); use another --out (or delete the folder)"
        )
    return stored


def check_measured_data(
    spec: SweepSpec, indices: Iterable[int], options: RunOptions | None = None, *, require_data: bool = False
) -> None:
    """Before any point trains, what a point's data must hold for its training and measurement: its model can be
    built on its data (:func:`_check_model_builds`: conv layers on images too small for them, ...), every split that
    ``measure.splits`` names has examples (only the validation split can be left empty, by ``data.valid_size: 0``),
    an integer ``measure.train_subset`` does not exceed the training split, and a metric that needs labels
    (``probe``, in ``measure.extra_metrics`` or a point's ``eval.extra_metrics``) has them. The data set of each
    distinct data config is loaded once, so the error comes now rather than after other points trained (data that
    cannot be read at all, when only the model needs them, is left to the point: it fails alone, in its error.json).
    ``options.probe_where_labelled`` (the study's own probe): points without labels report ``probe_skipped``
    instead.

    ``require_data`` (a study): every distinct data config is loaded, and data that cannot be loaded (a
    ``data.train_size`` beyond the data set's training split, a missing file) refuse the whole sweep, naming the
    point, instead of failing its points one by one: a study's points share their data, so none of them could
    run."""
    from vaelab.checks import LABEL_METRICS, check_metrics_have_labels
    from vaelab.data import DataError, load_dataset

    m = spec.measure
    seen: set[str] = set()
    built: set[str] = set()
    datasets: dict[str, Any] = {}
    for i in indices:
        cfg = spec.config(spec.point(i))
        data = cfg.data
        asked = {"eval.extra_metrics": cfg.eval.extra_metrics}
        if m.extra_metrics is not None and not (options is not None and options.probe_where_labelled):
            asked["measure.extra_metrics"] = m.extra_metrics
        needs_labels = any(name in LABEL_METRICS for names in asked.values() for name in names)
        needs_valid = "valid" in m.splits and data.valid_size == 0
        data_key = json.dumps(to_dict(data), sort_keys=True, default=str)
        key = json.dumps([data_key, needs_labels])
        model_key = json.dumps([data_key, to_dict(cfg.model)], sort_keys=True, default=str)
        check_data = (needs_valid or needs_labels or isinstance(m.train_subset, int)) and key not in seen
        check_model = cfg.model.type != "custom" and model_key not in built
        must_load = require_data and data_key not in datasets
        if not (check_data or check_model or must_load):
            continue
        if data_key not in datasets:
            try:
                datasets[data_key] = load_dataset(data)
            except (ValueError, OSError, DataError) as e:
                if require_data:
                    variant = spec.point(i).params.get("variant")
                    named = f" (variant {variant})" if isinstance(variant, str) else ""
                    raise SweepError(f"point {i}{named}: {e}") from None
                if check_data:
                    raise
                datasets[data_key] = None  # data that cannot be read: the point fails on its own (error.json)
            except Exception:
                if check_data:
                    raise
                datasets[data_key] = None
        dataset = datasets[data_key]
        if dataset is None:
            continue
        if check_model:
            built.add(model_key)
            _check_model_builds(i, cfg, dataset)
        if not check_data:
            continue
        seen.add(key)
        if needs_valid and len(dataset.split("valid")) == 0:
            raise SweepError(
                f"point {i}: measure.splits names valid, but data.valid_size=0 leaves data set {data.name} without a "
                "validation split; remove valid from measure.splits or set data.valid_size > 0"
            )
        n_train = len(dataset.split("train"))
        if isinstance(m.train_subset, int) and m.train_subset > n_train:
            raise SweepError(
                f"point {i}: measure.train_subset={m.train_subset} exceeds the {n_train} training examples of data "
                f"set {data.name}; use an integer <= {n_train} or all"
            )
        for where, names in asked.items():
            try:
                check_metrics_have_labels(names, dataset.num_classes, where, data.name)
            except ConfigError as e:
                raise SweepError(f"point {i}: {e}") from None


def _check_model_builds(index: int, cfg: Any, dataset: Any) -> None:
    """Point ``index``'s model is built once on the meta device (no memory, no parameters initialised): the
    model's own checks against its data (``model.type=conv`` on images too small for ``model.channels``, ...)
    refuse the sweep now, naming the point, not when its turn comes after other points trained."""
    import torch

    from vaelab.models import build_model

    try:
        with torch.device("meta"):
            build_model(cfg.model, dataset.model_info())
    except ValueError as e:  # the user's error (a ConfigError is one), as the point would have failed
        raise SweepError(f"point {index}: {e}") from None
    except Exception:  # a model that cannot be built on the meta device: its point checks it when it starts
        return


def prepare_out(spec: SweepSpec, out: str | Path) -> Path:
    """Create ``DIR`` and write ``DIR/sweep.yaml``; refuse a folder that holds a run or a different sweep
    (:func:`check_sweep_folder`).

    A stored sweep is compatible when every index both sweeps have maps to the same run config and the
    measurements agree: appending seeds (the outermost factor) extends a sweep without changing any index.
    """
    out = Path(out)
    stored_path = out / SWEEP_FILE
    stored = check_same_sweep(spec, out)
    if stored is not None:
        if len(stored) > len(spec):
            return out  # a shorter sweep over the same folder: keep the larger definition
        _rename_points(out, stored, spec)
    out.mkdir(parents=True, exist_ok=True)
    points_dir(out).mkdir(exist_ok=True)
    dump_spec(spec, stored_path)
    return out


def check_same_sweep(spec: SweepSpec, out: str | Path) -> SweepSpec | None:
    """The sweep stored in ``DIR`` (None when there is none), refused when it is another sweep: an index both have
    that maps to another run config (:func:`check_sweep_folder` for a folder of another kind). Read-only, so
    ``vaelab sweep S.yaml --list`` refuses the same folders as a run does instead of listing their states."""
    out = Path(out)
    stored = check_sweep_folder(spec, out)
    if stored is not None:
        for i in range(min(len(stored), len(spec))):
            a, b = stored.point(i), spec.point(i)
            was, now = _resolved(stored, a), _resolved(spec, b)
            if was != now:
                diff = ", ".join(
                    f"{k}: {was.get(k, '(absent)')!r} -> {now.get(k, '(absent)')!r}"
                    for k in sorted(set(was) | set(now))
                    if was.get(k, _MISSING) != now.get(k, _MISSING)
                )
                raise SweepError(
                    f"{out} holds a different sweep: its point {i} ({' '.join(a.overrides) or 'base'}) differs in "
                    f"{diff}; use another --out (indices must keep their meaning: append seeds or start a new folder)"
                )
    return stored


_MISSING = object()


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and v and k not in ("strategy_options", "regulariser_options", "factory_kwargs"):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _resolved(spec: SweepSpec, point: SweepPoint) -> dict[str, Any]:
    """A point's run config with every default filled in, flattened to dotted keys, without the keys that are no
    part of a run's identity (:data:`vaelab.sweep.spec.NOT_IDENTITY_KEYS`): a sweep stored by an earlier version
    (without keys added since, at their defaults, or with another default eval.iw_chunk) compares equal to the
    same sweep asked again."""
    raw = spec.config_dict(point)
    with contextlib.suppress(ConfigError):  # else compared as written; the point's validation reports the error
        raw = to_dict(run_config(raw))
    return _flatten(identity(raw))


def _rename_points(out: Path, stored: SweepSpec, spec: SweepSpec) -> None:
    """Move the stored points' folders to the names the extended sweep gives them.

    A point's folder name carries the factors that vary: with one seed it is ``0000-plain``, and once a second
    seed is appended it becomes ``0000-plain-seed0``. Same index, same config: the folder is renamed (and its
    point.json updated) so that the finished point is found and not trained again.
    """
    for i, (old, new) in _moved_points(out, stored, spec).items():
        old.rename(new)
        record = new / POINT_FILE
        if record.is_file():
            with contextlib.suppress(ValueError, OSError):
                _write_point_record(record, {**json.loads(record.read_text()), "folder": spec.point(i).folder_name})


def _moved_points(out: Path, stored: SweepSpec, spec: SweepSpec) -> dict[int, tuple[Path, Path]]:
    """The stored points whose folders the extended sweep ``spec`` names otherwise: index -> (the folder on disk,
    the folder :func:`_rename_points` moves it to). Read-only."""
    moved: dict[int, tuple[Path, Path]] = {}
    for i in range(min(len(stored), len(spec))):
        old, new = point_dir(out, stored.point(i)), point_dir(out, spec.point(i))
        if old != new and old.is_dir() and not new.exists():
            moved[i] = (old, new)
    return moved


def listed_point_dirs(spec: SweepSpec, out: str | Path, stored: SweepSpec | None) -> dict[int, Path]:
    """Each point's folder as ``vaelab sweep --list`` shows it: :func:`point_dir`, or, for a point of the stored
    sweep ``stored`` that a run of the extended ``spec`` would rename (appended seeds: ``0000-plain`` becomes
    ``0000-plain-seed0``, :func:`prepare_out`), the folder that holds it now. Renames nothing: ``--list`` writes
    nothing."""
    out = Path(out)
    folders = {p.index: point_dir(out, p) for p in spec.points()}
    if stored is not None and len(stored) <= len(spec):  # a shorter sweep keeps the stored definition: no renames
        folders.update({i: old for i, (old, _) in _moved_points(out, stored, spec).items()})
    return folders


def load_stored_spec(out: str | Path) -> SweepSpec:
    """The sweep a sweep folder was run with (``DIR/sweep.yaml``)."""
    path = Path(out) / SWEEP_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{out} is not a sweep folder (no {SWEEP_FILE}); run `vaelab sweep SWEEP.yaml` first")
    return read_stored_spec(out)


def read_stored_spec(out: str | Path) -> SweepSpec:
    """``DIR/sweep.yaml``, the copy of its sweep that ``vaelab sweep`` wrote into the folder; one that cannot be
    read (emptied, cut short, edited) is a one-line error saying it is that copy and how to write it again."""
    path = Path(out) / SWEEP_FILE
    try:
        return spec_from_dict(read_yaml(path), str(path))
    except ConfigError as e:  # SweepError is a ConfigError
        problem = str(e).removeprefix(f"{path}: ").split("; ")[0]  # the advice is for a sweep file one writes
        raise SweepError(
            f"{path}, the copy of the sweep that `vaelab sweep` wrote into the sweep folder, cannot be read: "
            f"{problem}; restore it, or write it again with `vaelab sweep SWEEP.yaml --out {out}` and the sweep file "
            "it was run with"
        ) from None


def _point_record(point: SweepPoint, digest: str) -> dict[str, Any]:
    """What a point's point.json holds: its index, folder name, overrides, parameters and config hash."""
    return {
        "index": point.index,
        "folder": point.folder_name,
        "overrides": list(point.overrides),
        "params": point.params,
        "config_hash": digest,
    }


def _check_point_file(folder: Path, point: SweepPoint, digest: str) -> None:
    path = folder / POINT_FILE
    record = {**_point_record(point, digest), "folder": folder.name}  # an earlier version's name, if kept
    if path.is_file():
        old = json.loads(path.read_text())
        if old.get("config_hash") != digest and _same_config_as_saved(folder, digest):
            # written by an earlier version whose configs lacked keys added since (at their defaults): the
            # run's own config.yaml, read by this version, is this point's config
            _write_point_record(path, {**old, "config_hash": digest})
            return
        if old.get("config_hash") != digest:
            raise SweepError(
                f"{folder} was run with another config (hash {old.get('config_hash')}, overrides "
                f"{' '.join(old.get('overrides', []))}); this sweep's point {point.index} has hash {digest}"
            )
        return
    folder.mkdir(parents=True, exist_ok=True)
    _write_point_record(path, record)


def _saved_config_hash(folder: Path) -> str | None:
    """The hash of the run folder's config.yaml read with today's defaults; None if it has none this version
    can read."""
    saved = folder / "config.yaml"
    if not saved.is_file():
        return None
    try:
        return config_hash(load_saved_config(saved))
    except ConfigError:
        return None


def check_point_folder(spec: SweepSpec, point: SweepPoint, folder: Path) -> None:
    """Refuse a point folder that holds another run than the point (a run folder copied or moved in, a folder of
    another sweep): its config.yaml, read with today's defaults, must be the point's config (but the keys of
    :data:`~vaelab.sweep.spec.NOT_IDENTITY_KEYS`), and its point.json, if any, name the point's index. Else its
    numbers would be counted as the point's. One line naming the point and the first key that differs."""
    saved = folder / "config.yaml"
    if not saved.is_file():
        return
    where = f"point {point.folder_name} (index {point.index})"
    with contextlib.suppress(OSError, ValueError):
        record = json.loads((folder / POINT_FILE).read_text())
        if isinstance(record, dict) and record.get("index") not in (None, point.index):
            raise SweepError(
                f"{where}: {folder / POINT_FILE} names point {record.get('index')}: the folder holds another "
                "point's run; move it out of the sweep folder"
            )
    try:
        theirs = _flatten(identity(to_dict(load_saved_config(saved))))
    except ConfigError as e:
        raise SweepError(f"{where}: its config.yaml cannot be read as this point's run ({e})") from None
    ours = _flatten(identity(to_dict(spec.config(point))))
    missing = "(not set)"
    for key in [*ours, *(k for k in theirs if k not in ours)]:
        if theirs.get(key, missing) != ours.get(key, missing):
            raise SweepError(
                f"{where}: {folder} holds another run: its config.yaml has {key}={theirs.get(key, missing)!r}, the "
                f"sweep's point sets {key}={ours.get(key, missing)!r}; move that folder out of the sweep folder "
                "(then `vaelab sweep` trains the point)"
            )


def _same_config_as_saved(folder: Path, digest: str) -> bool:
    """Whether the run folder's config.yaml, read with today's defaults, hashes to ``digest``."""
    return _saved_config_hash(folder) == digest


def _write_point_record(path: Path, record: dict[str, Any]) -> None:
    """Write a point's point.json (index, folder, overrides, params, config hash)."""
    atomic_write_text(path, json.dumps(record, indent=2, default=str) + "\n")


def check_reuse_folders(folders: Iterable[str | Path], out: str | Path) -> None:
    """Refuse a ``--reuse`` folder that is the sweep's own or not a sweep or study folder: before anything is
    written."""
    for source in map(Path, folders):
        if source.resolve() == Path(out).resolve():
            raise SweepError(f"--reuse {source}: that is the sweep's own folder")
        if not (source / SWEEP_FILE).is_file():
            raise SweepError(f"--reuse {source}: not a sweep or study folder (no {SWEEP_FILE})")


def _donors(folders: Iterable[str | Path], out: Path, spec: SweepSpec) -> dict[str, tuple[Path, bool]]:
    """Finished (or partly trained) points of other sweep folders, by the hash of the config they ran with:
    ``{config hash: (point folder, measured the same way as spec)}``. A point's hash is computed from its own
    config.yaml with today's code, so a folder written by an earlier version still matches. Failed and running
    points are not offered; the first folder listed wins a tie."""
    found: dict[str, tuple[Path, bool]] = {}
    check_reuse_folders(folders, out)
    for source in folders:
        source = Path(source)
        same_measure = measure_identity(load_stored_spec(source).measure) == measure_identity(spec.measure)
        for folder in sorted(points_dir(source).glob("*")):
            if not folder.is_dir() or display_state(folder) in ("failed", "running", "missing"):
                continue
            digest = _saved_config_hash(folder)
            if digest is not None:  # else not readable as a run of this version: not offered
                found.setdefault(digest, (folder, same_measure))
    return found


def reuse_points(
    spec: SweepSpec, out: Path, indices: Iterable[int], folders: Iterable[str | Path], log: Log
) -> list[int]:
    """Copy into ``out`` the points of ``indices`` that are missing there and that another sweep folder in
    ``folders`` ran with the same config (same hash of the resolved run config, seed included), so that a study
    extended by a method, or assembled from earlier studies, trains only what is new.

    A copied point keeps its run folder as it was (config.yaml's provenance names the command that trained it; its
    point.json records ``reused_from``). If the other folder measured with other settings, the copy keeps the
    trained model and is measured again here. Returns the indices copied.
    """
    folders = list(folders)
    if not folders:
        return []
    donors = _donors(folders, out, spec)
    copied: list[int] = []
    for i in indices:
        point = spec.point(i)
        folder = point_dir(out, point)
        if point_state(folder) != "missing" or (folder / "config.yaml").exists():
            continue
        digest = config_hash(spec.config(point))
        if digest not in donors:
            continue
        source, same_measure = donors[digest]
        tmp = folder.with_name(f".{folder.name}.reuse")
        shutil.rmtree(tmp, ignore_errors=True)
        skip = (LOCK_FILE, ERROR_FILE, POINT_FILE, *(() if same_measure else (MEASUREMENTS_FILE,)))
        ignore = shutil.ignore_patterns(*skip)
        shutil.copytree(source, tmp, ignore=ignore)
        _write_point_record(
            tmp / POINT_FILE, {**_point_record(point, digest), "folder": folder.name, "reused_from": str(source)}
        )
        if folder.exists():  # an empty folder left by a point that never started
            shutil.rmtree(folder)
        tmp.rename(folder)
        copied.append(i)
        what = point_state(folder)
        again = "" if same_measure else " (measured there with other settings: measured again here)"
        log(f"point {i} ({folder.name}): reused from {source} ({what}){again}")
    return copied


# --------------------------------------------------------------------------------------------------------------
# locks: one process per point


def _acquire(folder: Path, ignore: bool) -> bool:
    """Create the point's lock file; a lock left by a dead process on this host is taken over
    (:func:`vaelab.runlock.acquire_lock`)."""
    return acquire_lock(folder / LOCK_FILE, ignore=ignore)


def _release(folder: Path) -> None:
    """Remove the point's lock if this process still holds it. A lock that another process has taken over
    since (after ``--ignore-locks``, or because this one was taken for dead) is left alone."""
    release_lock(folder / LOCK_FILE)


# --------------------------------------------------------------------------------------------------------------
# one point


def run_point(spec: SweepSpec, index: int, out: str | Path, options: RunOptions | None = None) -> PointResult:
    """Bring point ``index`` of ``spec`` to ``completed``: train, resume or only measure, as its state needs.

    Never raises for a failure of the point itself: the error is written to the point's error.json and the
    result says ``failed``. Raises :class:`SweepError` when the point's folder belongs to another config, and
    lets KeyboardInterrupt through (the trainer checkpoints first; the next invocation resumes).
    """
    options = options or RunOptions()
    point = spec.point(index)
    folder = point_dir(out, point)
    cfg = spec.config(point)
    _check_point_file(folder, point, config_hash(cfg))
    check_point_folder(spec, point, folder)  # a run copied in is not this point's
    state = point_state(folder)
    result = PointResult(index, "skipped", folder=str(folder))
    if state == "completed" or (state == "failed" and not options.retry_failed):
        return result
    if not _acquire(folder, options.ignore_locks):
        result.status = "locked"
        return result
    t0 = time.perf_counter()
    phase = "setup"
    try:
        (folder / ERROR_FILE).unlink(missing_ok=True)
        state = point_state(folder)
        with _output_to(folder / LOG_FILE if options.capture_output else None):
            from vaelab.data import load_dataset
            from vaelab.training.trainer import Trainer

            cfg.train.progress = False
            action = {"partial": "resume", "missing": "train"}.get(state, "measure")
            params = ", ".join(f"{k}={v}" for k, v in point.params.items()) or "base config"
            print(f"vaelab sweep: point {index} ({params}): {action}", file=sys.stderr)
            phase = "data"
            dataset = load_dataset(cfg.data)
            result.action = action
            if state in ("partial", "missing"):
                phase = "train"
                trainer = Trainer(cfg, folder, resume=state == "partial", dataset=dataset)
                trainer.final_evaluation = options.final_evaluation
                trainer.ignore_lock = options.ignore_locks  # the run folder's lock, like the point's
                trainer.fit()
            phase = "measure"
            m = spec.measure
            iw = f"IW-NLL K={m.iw_samples}" if m.iw_samples else "no IW-NLL"
            print(f"vaelab sweep: point {index}: measuring {', '.join(m.splits)} ({iw})", file=sys.stderr)
            measure_run(folder, m, dataset=dataset)
        result.status = "completed"
    except Exception as e:
        result.status = "failed"
        result.error = f"{builtin_type_name(e)}: {e}"
        record = {
            "index": index,
            "status": "failed",
            "phase": phase,
            "error_type": builtin_type_name(e),  # ValueError for a ConfigError, as before the user-error classes
            "error_class": type(e).__name__,
            "message": str(e),
            "traceback": traceback.format_exc(),
            "host": socket.gethostname(),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        atomic_write_text(folder / ERROR_FILE, json.dumps(record, indent=2) + "\n")
    finally:
        result.seconds = time.perf_counter() - t0
        _release(folder)
    return result


@contextlib.contextmanager
def _output_to(path: Path | None):  # type: ignore[no-untyped-def]
    """Send this process's Python-level stdout/stderr to ``path`` (appending), or leave them (None)."""
    if path is None:
        yield
        return
    with open(path, "a", buffering=1) as f, contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
        yield


# --------------------------------------------------------------------------------------------------------------
# backends


def limit_threads() -> None:
    """One intra-op thread per worker process, so N workers on N cores do not oversubscribe them."""
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["MKL_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)
    with contextlib.suppress(RuntimeError):  # only settable before the first parallel work
        torch.set_num_interop_threads(1)


WORKER_PRELOAD = ["vaelab.sweep.runner", "vaelab.training.trainer"]


def _worker_context() -> multiprocessing.context.BaseContext:
    """Workers forked from a fork server that has imported vaelab and torch once (fast start and exit, and
    no fork of a process whose thread pools are running); ``spawn`` where there is no fork server (Windows)."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(WORKER_PRELOAD)
        return ctx
    return multiprocessing.get_context("spawn")


PARENT_CHECK_S = 1.0
"""Seconds between a worker's checks that the sweep process that started it is still alive."""

_watching: list[int] = []  # the sweep pid this worker process already watches (at most one)


def die_with_parent(parent_pid: int, interval: float = PARENT_CHECK_S) -> None:
    """Make this worker process exit when the sweep process ``parent_pid`` dies, even by SIGKILL (which runs no
    clean-up in the parent): on Linux the kernel's parent-death signal (prctl PR_SET_PDEATHSIG, SIGKILL) covers the
    worker's own parent, and a daemon thread that checks ``parent_pid`` every ``interval`` seconds covers start
    methods where the parent is a fork server. The worker's point is left as a killed run leaves it (atomic
    checkpoints, a point lock of a dead process), so a re-run of the sweep takes the point over and resumes it."""
    if parent_pid in _watching:
        return
    _watching.append(parent_pid)
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):  # best effort; the thread below is the guarantee
            import ctypes
            import signal

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG = 1

    def watch() -> None:
        while True:
            time.sleep(interval)
            if not pid_alive(parent_pid):
                os._exit(70)  # like SIGKILL: no clean-up that could write into a point folder half-way

    threading.Thread(target=watch, name="vaelab-parent-watch", daemon=True).start()


def _worker_point(
    spec: SweepSpec, index: int, out: str, options: RunOptions, parent_pid: int | None = None
) -> PointResult:
    """A point in a worker process; with ``parent_pid`` (local workers) the worker dies with that process (Ray
    manages its own workers' lifetime)."""
    limit_threads()
    if parent_pid is not None:
        die_with_parent(parent_pid)
        with contextlib.suppress(OSError, AttributeError):  # a group of its own: the terminal's Ctrl-C reaches only
            os.setpgid(0, 0)  # the sweep process, which stops each worker once (:func:`_stop_workers`)
    try:
        return run_point(spec, index, out, options)
    except KeyboardInterrupt:  # stopped by the sweep (the point's trainer saved its checkpoint first): take no
        with contextlib.suppress(Exception):  # further point from the pool's queue
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(130)


def default_workers() -> int:
    """One worker per core available to this process."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


WORKERS_PER_CORE = 4
"""The most worker processes per core that a sweep or study starts (``--workers``): each trains with one thread, so
more than one per core only share the cores (a few more may pay off when points wait on a GPU or a disk), and a
typo (``--workers 2000``) would start thousands of processes."""


def max_workers() -> int:
    """The most ``workers`` a sweep accepts: :data:`WORKERS_PER_CORE` per core available to this process."""
    return WORKERS_PER_CORE * default_workers()


def workers_rule() -> Num:
    """The rule of ``--workers`` and of ``run_sweep(workers=...)``: an integer in [1, :func:`max_workers`]."""
    return Int(1, max_workers())


def workers_option(flag: str = "--workers") -> Callable[[str], int]:
    """The argparse ``type=`` of ``flag``: :func:`workers_rule`, its error saying where the bound comes from."""
    convert = option(workers_rule(), flag)

    def workers(text: str) -> int:
        try:
            return convert(text)
        except argparse.ArgumentTypeError as e:
            cores = default_workers()
            raise argparse.ArgumentTypeError(
                f"{e} (at most {WORKERS_PER_CORE} per core, {cores} core{'s' if cores != 1 else ''} here)"
            ) from None

    workers.__name__ = flag
    return workers


Log = Callable[[str], None]

FOLLOW_EVERY_S = 1.0
"""Seconds between two looks at the running points' log.txt files."""


class LogFollower:
    """Shows what the points write to their log.txt (the sweep's start line, the trainer's epoch lines, the
    progress of long evaluations) on the sweep's own output while they run, each line once, prefixed by the
    point's folder name: ``0002-anneal-seed1: epoch 3: train elbo ...``.

    The lines are read back from the files, so log.txt stays what it was, and it works alike for points run in
    this process, in worker processes and in Ray tasks (on the shared file system). A thread looks every
    ``interval`` seconds; :meth:`finish` shows what is left of a finished point before the sweep reports it.
    """

    def __init__(self, folders: dict[int, Path], log: Log, interval: float = FOLLOW_EVERY_S) -> None:
        self._log = log
        self._interval = interval
        self._files = {i: Path(f) / LOG_FILE for i, f in folders.items()}
        self._names = {i: Path(f).name for i, f in folders.items()}
        self._offsets = {i: _size(path) for i, path in self._files.items()}  # not again what earlier runs wrote
        self._partial = {i: b"" for i in self._files}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> LogFollower:
        self._thread = threading.Thread(target=self._run, name="vaelab-sweep-log", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread and show every line still unread (complete or not)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        for i in list(self._files):
            self.finish(i)

    def poll(self) -> None:
        with self._lock:
            for i in list(self._files):
                self._read(i)

    def finish(self, index: int) -> None:
        """Show the rest of point ``index``'s log (a last line without newline too) and stop following it."""
        with self._lock:
            if index not in self._files:
                return
            self._read(index)
            rest = self._partial.pop(index)
            if rest.strip():
                self._show(index, rest)
            del self._files[index]

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.poll()

    def _read(self, i: int) -> None:
        path = self._files[i]
        size = _size(path)
        if size < self._offsets[i]:  # replaced by a shorter file: read it from the start
            self._offsets[i], self._partial[i] = 0, b""
        if size == self._offsets[i]:
            return
        try:
            with open(path, "rb") as f:
                f.seek(self._offsets[i])
                data = f.read(size - self._offsets[i])
        except OSError:
            return
        self._offsets[i] += len(data)
        *lines, self._partial[i] = (self._partial[i] + data).split(b"\n")
        for line in lines:
            self._show(i, line)

    def _show(self, i: int, line: bytes) -> None:
        text = line.decode("utf-8", errors="replace").rstrip("\r")
        with contextlib.suppress(OSError, ValueError):  # a closed or broken output must not stop the sweep
            self._log(f"{self._names[i]}: {text}")


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _report(log: Log, done: int, total: int, r: PointResult, follower: LogFollower | None = None) -> None:
    if follower is not None:
        follower.finish(r.index)  # the point's last lines come before its result
    extra = f" ({r.action}, {r.seconds:.1f} s)" if r.action != "none" else ""
    err = f": {r.error}" if r.error else ""
    name = Path(r.folder).name if r.folder else f"{r.index:04d}"
    log(f"[{done}/{total}] point {name} {r.status}{extra}{err}")


def run_local(
    spec: SweepSpec,
    indices: list[int],
    out: Path,
    workers: int,
    options: RunOptions,
    log: Log,
    follower: LogFollower | None = None,
) -> list[PointResult]:
    """Run points in ``workers`` worker processes (one torch thread each); ``workers`` = 1 runs them
    one after the other in this process (with this process's thread settings)."""
    results: list[PointResult] = []
    if workers <= 1 or len(indices) <= 1:
        for i in indices:
            results.append(run_point(spec, i, out, options))
            _report(log, len(results), len(indices), results[-1], follower)
        return results
    ctx = _worker_context()
    pool = ProcessPoolExecutor(max_workers=min(workers, len(indices)), mp_context=ctx)
    stopped = False
    try:
        futures = {pool.submit(_worker_point, spec, i, str(out), options, os.getpid()): i for i in indices}
        with _sigterm_as_interrupt():
            for fut in as_completed(futures):
                i = futures[fut]
                try:
                    res = fut.result()
                except BrokenProcessPool as e:
                    res = PointResult(i, "not_run", error=f"worker process died ({e}); re-run the sweep")
                except SweepError:
                    raise
                except Exception as e:  # a failure outside run_point's own handling (e.g. pickling)
                    res = PointResult(i, "not_run", error=f"{type(e).__name__}: {e}")
                res.folder = res.folder or str(point_dir(out, spec.point(i)))
                results.append(res)
                _report(log, len(results), len(indices), res, follower)
    except BaseException:
        stopped = True
        _stop_workers(pool)
        raise
    finally:
        pool.shutdown(wait=not stopped, cancel_futures=True)
    return results


STOP_GRACE_S = 10.0
"""Seconds that the workers of an interrupted sweep get to save their point's checkpoint before they are killed."""


def _stop_workers(pool: ProcessPoolExecutor, grace: float = STOP_GRACE_S) -> None:
    """Stop an interrupted sweep's workers promptly: queued points are cancelled; each running worker gets one
    SIGTERM (its trainer saves last.pt after the current step and the worker exits: :func:`_worker_point`), and
    what still runs after ``grace`` seconds (or at a second Ctrl-C) is killed. Every point stays resumable (atomic
    checkpoints; a lock of a dead process is taken over), so the same command continues the sweep."""
    import signal

    for f in list(getattr(pool, "_pending_work_items", {}).values()):
        f.future.cancel()
    pids = [p.pid for p in list(getattr(pool, "_processes", {}).values()) if p.pid]
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    try:
        while any(pid_alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
    except KeyboardInterrupt:  # a second Ctrl-C: stop now
        pass
    finally:
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def _sigterm_as_interrupt():  # type: ignore[no-untyped-def]
    """Within (main thread only): SIGTERM stops the sweep as Ctrl-C does (:func:`_stop_workers`)."""
    import signal

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


RAY_ADDRESS_WORDS = ("auto", "local")
"""``--address`` values that are no host: Ray finds the running cluster itself (``auto``) or starts one (``local``)."""
ADDRESS_TIMEOUT = 5.0
"""Seconds to resolve the host of ``--address`` and to open a TCP connection to it: Ray's own attempts on an
address where no cluster listens took more than 90 s before an error."""


def check_ray_address(address: str | None, backend: str, flag: str = "--address") -> None:
    """Refuse in one line, before anything is written or Ray is started, an ``address`` that no Ray cluster can
    be at: given without ``backend`` ``ray`` (it would be ignored), not ``HOST:PORT`` (optionally ``ray://``), a
    host that does not resolve, or a port where nothing accepts a TCP connection within :data:`ADDRESS_TIMEOUT`.
    Independent of Ray (checked whether or not it is installed)."""
    if address is None:
        return
    if backend != "ray":
        raise SweepError(f"{flag} {address!r} is read only with --backend ray (backend here: {backend}); remove it")
    text = address.strip()
    if text == "auto":  # as Ray finds it: $RAY_ADDRESS, else the cluster this machine started last
        current = Path(os.environ.get("RAY_TMPDIR", "/tmp")) / "ray" / "ray_current_cluster"
        found_text = os.environ.get("RAY_ADDRESS") or (current.read_text().strip() if current.is_file() else "")
        if not found_text:
            raise SweepError(
                f"{flag} auto: no running Ray cluster found on this machine (RAY_ADDRESS is not set and there is no "
                f"{current}); start one with `ray start --head`, give its HOST:PORT, or leave {flag} out to start a "
                "local Ray instance"
            )
        if found_text != "auto":
            check_ray_address(found_text, backend, flag=f"{flag} auto (found {found_text})")
        return
    if text in RAY_ADDRESS_WORDS:
        return
    hint = (
        "give the address of a running Ray cluster's head node (HOST:PORT, as `ray start --head` prints it), or "
        f"leave {flag} out to start a local Ray instance"
    )
    host, sep, port_text = text.removeprefix("ray://").rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise SweepError(f"{flag} {address!r}: not HOST:PORT with a port in 1..65535; {hint}")
    port = int(port_text)
    found: list[Any] = []

    def resolve() -> None:  # getaddrinfo has no timeout of its own
        with contextlib.suppress(OSError, UnicodeError):
            found.extend(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        found.append(None)

    thread = threading.Thread(target=resolve, daemon=True)
    thread.start()
    thread.join(ADDRESS_TIMEOUT)
    addresses = [a for a in found if a is not None]
    if not found:
        raise SweepError(f"{flag} {address!r}: host {host!r} did not resolve within {ADDRESS_TIMEOUT:g} s; {hint}")
    if not addresses:
        raise SweepError(f"{flag} {address!r}: host {host!r} does not resolve (no such host); {hint}")
    try:
        with socket.create_connection((host, port), timeout=ADDRESS_TIMEOUT):
            pass
    except OSError as e:
        why = "timed out" if isinstance(e, TimeoutError) else (e.strerror or str(e))
        raise SweepError(f"{flag} {address!r}: nothing accepts a connection at {host}:{port} ({why}); {hint}") from None


def run_ray(
    spec: SweepSpec,
    indices: list[int],
    out: Path,
    workers: int,
    options: RunOptions,
    log: Log,
    address: str | None = None,
    follower: LogFollower | None = None,
) -> list[PointResult]:
    """Run points as Ray tasks of one CPU each, on the cluster at ``address`` or on a local Ray instance with
    ``workers`` CPUs started (and stopped) here. Every node needs this Python environment and ``out`` on a
    shared file system."""
    try:
        import ray
    except ImportError:
        raise SweepError("--backend ray needs Ray: pip install 'vaelab[ray]'") from None
    started = False
    if not ray.is_initialized():
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
        started = True
    try:
        task = ray.remote(num_cpus=1, max_retries=0)(_worker_point)
        out_abs = str(Path(out).resolve())
        refs = {task.remote(spec, i, out_abs, options): i for i in indices}
        pending = list(refs)
        results: list[PointResult] = []
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for ref in ready:
                try:
                    res = ray.get(ref)
                except Exception as e:  # the task or its worker died
                    cause = getattr(e, "cause", None)
                    if isinstance(cause, SweepError):
                        raise cause from None
                    res = PointResult(refs[ref], "not_run", error=f"{type(e).__name__}: {e}")
                res.folder = res.folder or str(point_dir(out, spec.point(refs[ref])))
                results.append(res)
                _report(log, len(results), len(indices), res, follower)
        return results
    finally:
        if started:
            ray.shutdown()


BACKENDS = ("local", "ray")


def run_sweep(
    spec: SweepSpec,
    out: str | Path,
    *,
    indices: Iterable[int] | None = None,
    workers: int | None = None,
    backend: str = "local",
    address: str | None = None,
    options: RunOptions | None = None,
    log: Log | None = None,
    reuse: Iterable[str | Path] = (),
    data_checked: bool = False,
) -> list[PointResult]:
    """Run the points ``indices`` (default: all) of ``spec`` into the sweep folder ``out``.

    Points already completed are skipped without starting a worker; failed ones too unless
    ``options.retry_failed``. Returns one :class:`PointResult` per requested point, in index order.

    ``log`` (default: a line on the stderr of the moment of the call) gets the sweep's progress: a line per
    finished point and, with ``options.capture_output``, the lines the running points write to their log.txt
    (:class:`LogFollower`). It is called from a helper thread too, and while a point runs in this process
    ``sys.stderr`` is that point's log.txt, so it must write to a stream chosen beforehand.

    ``reuse``: other sweep or study folders whose points with the same run config are copied in rather than
    trained again (:func:`reuse_points`). ``workers`` (default: one per core) is at most :func:`max_workers`.
    ``data_checked``: the caller has run :func:`check_measured_data` on these points already (a study, before it
    wrote its study.json), so their data are not loaded a second time.
    """
    options = options or RunOptions()
    log = _serialised(log or _line_writer(sys.stderr))
    if backend not in BACKENDS:
        raise SweepError(f"unknown backend {backend!r}; valid choices: {', '.join(BACKENDS)}")
    check_ray_address(address, backend)  # before Ray tries (for minutes) and before the sweep folder is made
    if workers is not None:
        check("workers", workers, workers_rule())
    wanted = list(range(len(spec))) if indices is None else sorted(set(indices))
    for i in wanted:  # range check, and the keys each point sets, before anything runs or is written
        spec.check_keys_read(spec.point(i))
    if not data_checked:
        check_measured_data(spec, wanted, options)
    check_reuse_folders(reuse := list(reuse), out)
    out = prepare_out(spec, out)
    reuse_points(spec, out, wanted, reuse, log)
    skipped: list[PointResult] = []
    todo: list[int] = []
    counts: dict[str, int] = {s: 0 for s in STATES}
    for i in wanted:
        folder = point_dir(out, spec.point(i))
        state = point_state(folder)
        counts[state] += 1
        if state == "completed" or (state == "failed" and not options.retry_failed):
            skipped.append(PointResult(i, "skipped", folder=str(folder)))
        else:
            todo.append(i)
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    hint = " (skipped; --retry-failed runs them again)" if counts["failed"] and not options.retry_failed else ""
    log(f"sweep {spec.name}: {len(wanted)} of {len(spec)} points requested: {summary}{hint}; running {len(todo)}")
    workers = workers or default_workers()
    follower = None
    if todo and options.capture_output:
        follower = LogFollower({i: point_dir(out, spec.point(i)) for i in todo}, log).start()
    try:
        if not todo:
            ran: list[PointResult] = []
        elif backend == "ray":
            ran = run_ray(spec, todo, out, workers, options, log, address=address, follower=follower)
        else:
            ran = run_local(spec, todo, out, workers, options, log, follower=follower)
    finally:
        if follower is not None:
            follower.stop()
    return sorted(skipped + ran, key=lambda r: r.index)


def _line_writer(stream: Any) -> Log:
    """A log function writing whole lines to ``stream`` (fixed now, whatever ``sys.stderr`` is later)."""

    def write(msg: str) -> None:
        stream.write(msg + "\n")
        stream.flush()

    return write


def _serialised(log: Log) -> Log:
    """``log`` called by one thread at a time (the sweep's own lines and the points' followed lines)."""
    lock = threading.Lock()

    def locked(msg: str) -> None:
        with lock:
            log(msg)

    return locked
