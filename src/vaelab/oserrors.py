"""Errors of the operating system as one line with the path and what to do.

:func:`check_output_folder` checks, before any work, that a folder a command will write into can be made and
written (not a file, not under a file, not read-only, not denied); :func:`describe_os_error` turns the
``OSError`` of a write that fails later (disk full, permissions changed meanwhile) into the line that ``vaelab``
prints. Only the errors listed in :data:`USER_ERRNOS` are described; any other ``OSError`` stays a traceback (a
bug to report, not a setting to change).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from vaelab.errors import ConfigError

USER_ERRNOS: dict[int, str] = {
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "read-only file system",
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "a folder where a file is expected",
    errno.EEXIST: "a file where a folder is expected",
    errno.ENAMETOOLONG: "file name too long",
}
"""The errors a user can act on, and how they are named."""

_ADVICE: dict[int, str] = {
    errno.EACCES: "choose a place you may write to (e.g. another --out) or fix the permissions",
    errno.EPERM: "choose a place you may write to (e.g. another --out) or fix the permissions",
    errno.EROFS: "choose a folder on a writable disk (e.g. another --out)",
    errno.ENOSPC: "free some space and run the same command again (files written before are intact; an interrupted "
    "run continues with `vaelab resume DIR`)",
    errno.EDQUOT: "free some space and run the same command again (files written before are intact; an interrupted "
    "run continues with `vaelab resume DIR`)",
    errno.ENOTDIR: "choose a path that is not under a file",
    errno.EISDIR: "name a file, not a folder",
    errno.EEXIST: "remove or rename the file, or choose another path",
    errno.ENAMETOOLONG: "choose a shorter path",
}


def find_os_error(e: BaseException) -> OSError | None:
    """The ``OSError`` with a user errno that ``e`` is or was raised from (torch wraps a full disk in a
    ``RuntimeError`` whose context is the ``OSError``); None when there is none."""
    seen: set[int] = set()
    cur: BaseException | None = e
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, OSError) and cur.errno in USER_ERRNOS:
            return cur
        cur = cur.__cause__ or cur.__context__
    return None


def describe_os_error(e: OSError) -> str | None:
    """One line for an ``OSError`` a user can act on (path, what happened, what to do); None for any other."""
    if e.errno not in USER_ERRNOS:
        return None
    what = USER_ERRNOS[e.errno]
    path = e.filename if e.filename is not None else "(path unknown)"
    return f"{path}: {what}; {_ADVICE[e.errno]}"


def with_path(e: BaseException, path: str | Path) -> BaseException:
    """``e``, or its user ``OSError`` with ``path`` as its file name when it has none (a failed ``write``)."""
    found = find_os_error(e)
    if found is None:
        return e
    if found.filename is None:
        return OSError(found.errno, found.strerror, str(path))
    if found.filename2 is not None:  # os.replace(tmp, path): the target is what the user named (eval.json a folder)
        return OSError(found.errno, found.strerror, found.filename2)
    return found


def _read_only(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


SWEEP_MARKERS = ("sweep.yaml", "study.json")
"""A folder holding one of these and a ``points/`` folder is a sweep or study folder, whose ``points/`` only the sweep
writes (a sweep.yaml alone may be the user's sweep file, in a project folder)."""
OWN_FOLDER_FLAG = "--out"
"""The flag of a folder a command makes its own (a new run, sweep or study): never inside a sweep or study folder.
Commands that act on an existing run folder name it otherwise (``run folder``: resume, evaluate)."""


def enclosing_sweep(path: str | Path) -> tuple[Path, str] | None:
    """The sweep or study folder (and its marker, :data:`SWEEP_MARKERS`) that ``path`` lies strictly inside, if
    any: the nearest one among its parents."""
    for parent in Path(os.path.abspath(path)).parents:
        if not (parent / "points").is_dir():
            continue
        marker = next((m for m in reversed(SWEEP_MARKERS) if (parent / m).is_file()), None)
        if marker is not None:
            return parent, marker
    return None


def _is_own_point(path: Path, sweep: Path) -> bool:
    """Whether ``path`` is one of the sweep's own point runs (``SWEEP/points/NAME`` with its point.json)."""
    here = Path(os.path.abspath(path))
    return here.parent == sweep / "points" and (here / "point.json").is_file()


def check_not_inside_sweep(path: str | Path, flag: str = OWN_FOLDER_FLAG, *, new_run: bool | None = None) -> None:
    """Refuse a folder that lies inside a sweep or study folder (:func:`enclosing_sweep`: under ``SWEEP/``,
    ``SWEEP/points/`` included): a run, sweep or study written there would mix with the sweep's points, which only
    the sweep writes, and be listed, aggregated or overwritten as one of them. A sweep or study given its own
    folder again (``--out SWEEP``, to continue it) is not inside it. A command acting on an existing run folder
    (``flag`` other than :data:`OWN_FOLDER_FLAG`: resume, evaluate) may act on the sweep's own point runs;
    ``new_run``: whether ``path`` is where a new run is written, when ``flag`` does not say (``out=`` of
    :func:`vaelab.train`)."""
    found = enclosing_sweep(path)
    if found is None:
        return
    sweep, marker = found
    writes = flag == OWN_FOLDER_FLAG if new_run is None else new_run
    if not writes and _is_own_point(Path(path), sweep):
        return
    kind = "study" if marker == "study.json" else "sweep"
    raise ConfigError(
        f"{flag} {path} lies inside the {kind} folder {sweep} ({marker}): what is written there would mix with the "
        f"{kind}'s points, which only the {kind} writes (it trains and continues them itself); choose a folder "
        "outside it"
    )


def check_output_folder(path: str | Path, flag: str = "--out", *, inside_sweep: bool = False) -> None:
    """Refuse, in one line, a folder that cannot be made or written: ``path`` is a file, lies under a file, or
    its nearest existing folder is read-only or not writable, or it lies inside a sweep or study folder
    (:func:`check_not_inside_sweep`; ``inside_sweep=True`` allows it: a figure or report written into one). Changes
    nothing on disk."""
    path = Path(path)
    if not inside_sweep:
        check_not_inside_sweep(path, flag)
    if path.is_symlink() and not path.exists():
        raise ConfigError(
            f"{flag} {path} is a symbolic link that leads nowhere (its target is missing, or it is a loop); remove "
            f"it or choose another {flag}"
        )
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{flag} {path} is a file, not a folder; choose another {flag}")
    existing = path
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if existing != path and not existing.is_dir():
        raise ConfigError(
            f"{flag} {path}: {existing} is a file, so no folder can be made under it; choose another {flag}"
        )
    if _read_only(existing):
        raise ConfigError(f"{flag} {path}: {existing} is on a read-only file system; choose another {flag}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(
            f"{flag} {path}: permission denied (cannot write in {existing}); choose another {flag} or fix the "
            "permissions"
        )
    try:
        name_max = os.pathconf(existing, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        name_max = 255
    for part in path.relative_to(existing).parts if existing != path else ():
        if len(os.fsencode(part)) > name_max:  # found now, not after folders above it were made
            raise ConfigError(
                f"{flag} {path}: the name {part[:24]}... is {len(os.fsencode(part))} bytes, longer than this file "
                f"system allows ({name_max}); choose a shorter {flag}"
            )


IMAGE_SUFFIXES = (".png", ".pdf", ".svg", ".jpg", ".jpeg")
"""The file types a figure may be written as (``--out`` of latent-plot and lag-plot; none means .png)."""


RECORD_SUFFIXES = frozenset((".yaml", ".yml", ".json", ".jsonl", ".pt", ".csv", ".txt", ".md", ".lock"))
"""The suffixes of what a run, sweep or study folder records (config, metrics, summaries, checkpoints, logs,
results): an output of another kind (HTML, a figure) must never replace one of them."""

FOLDER_MARKERS = ("config.yaml", "sweep.yaml", "study.json")
"""A folder holding one of these is a vaelab run, sweep or study folder (a study records its request in study.json,
:data:`vaelab.study.collapse.STUDY_FILE`)."""


def _record_owner(path: Path) -> Path | None:
    """The vaelab folder whose existing record file ``path`` is (``DIR/config.yaml``, ``DIR/checkpoints/best.pt``),
    or None: a new file, another kind of file, or a folder vaelab did not write."""
    if not path.is_file() or path.suffix.lower() not in RECORD_SUFFIXES:
        return None
    parent = path.parent
    candidates = [parent.parent] if parent.name == "checkpoints" else []
    for folder in [parent, *candidates]:
        if any((folder / m).is_file() for m in FOLDER_MARKERS):
            return folder
    return None


def check_not_a_vaelab_folder(path: str | Path, flag: str = "--out") -> None:
    """Refuse a folder for another command's outputs (figures, a summary.json) that is a vaelab run, sweep or study
    folder (:data:`FOLDER_MARKERS`): its records would be replaced or mixed with them."""
    path = Path(path)
    marker = next((m for m in FOLDER_MARKERS if (path / m).is_file()), None)
    if marker is not None:
        raise ConfigError(
            f"{flag} {path} is a vaelab run, sweep or study folder ({marker}): this command's files (summary.json, "
            "figures) would replace its records; choose another folder"
        )


def check_output_file(path: str | Path, flag: str = "--out", suffixes: tuple[str, ...] | None = None) -> None:
    """Refuse, in one line, a file that cannot be written: ``path`` is a folder or not a regular file (a device such
    as /dev/null, a FIFO: the atomic write would replace it), or its folder cannot be made or
    written (:func:`check_output_folder`), or its suffix is not one of ``suffixes`` (when given; none is fine)."""
    text = str(path)
    if text.endswith(("/", os.sep)) or Path(text).name in ("", ".", ".."):  # Path("x/") would drop the slash
        raise ConfigError(f"{flag} {text} names a folder; name a file in it")
    path = Path(path)
    if suffixes is not None and path.suffix and path.suffix.lower() not in suffixes:
        raise ConfigError(
            f"{flag} {path}: a figure cannot be written as {path.suffix}; use one of {', '.join(suffixes)}"
        )
    if path.is_dir():
        raise ConfigError(f"{flag} {path} is a folder; name a file")
    if path.exists() and not path.is_file():  # the atomic write would replace /dev/null (as root) or a pipe
        raise ConfigError(f"{flag} {path} is not a regular file (a device, a pipe or a socket); name a file")
    owner = _record_owner(path)
    if owner is not None:
        raise ConfigError(
            f"{flag} {path} would overwrite a record of the vaelab folder {owner} (its {path.suffix} files, "
            f"checkpoints/); name another file, e.g. {owner / 'report.html'}"
        )
    check_output_folder(path.parent, flag=flag, inside_sweep=True)  # a report or figure of a sweep, in it
