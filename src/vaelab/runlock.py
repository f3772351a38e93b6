"""One writer per folder: lock files that name their holder and are taken over once the holder has died.

A lock is a small JSON file (``{"host", "pid", "since", "started"}``) created with ``O_CREAT | O_EXCL``, so of two
processes that try at once exactly one gets it. A lock whose holder is a dead process on this host is stale and
is taken over; a lock held by a live process, or by a process on another host (whose liveness cannot be checked
from here), is respected. An empty lock is one being written by its owner right now, unless it is older than
:data:`EMPTY_LOCK_STALE_S` seconds. Releasing removes the file only if this process still holds it.

Used for the run folder (:data:`RUN_LOCK`, taken by ``vaelab train`` and ``resume`` for the whole run: see
:class:`RunLock`) and for sweep points (``.running``, :mod:`vaelab.sweep.runner`).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path
from types import TracebackType
from typing import Any

RUN_LOCK = "run.lock"
"""The run folder's lock file, held by the process that trains into the folder."""

EMPTY_LOCK_STALE_S = 60.0


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this host (one we may not signal counts as alive)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read(path: Path) -> tuple[dict[str, Any], float] | None:
    """The lock's contents (``{}`` while its owner is still writing it) and age in seconds; None when absent."""
    try:
        text = path.read_text()
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        return {UNREADABLE: "a folder, not a lock file"}, 0.0  # never taken over: it cannot be replaced
    except OSError as e:
        return {UNREADABLE: e.strerror or str(e)}, 0.0
    try:
        held = json.loads(text) if text.strip() else {}
    except ValueError:
        held = None
    if not isinstance(held, dict):  # not written by vaelab (its own record is written in one piece)
        return {UNREADABLE: "not a lock that vaelab wrote"}, age
    return held, age


UNREADABLE = "unreadable"
"""The key of a lock's contents when the file could not be read as a lock (why, in words)."""


def _stale(held: dict[str, Any], age: float) -> bool:
    if not held or UNREADABLE in held:
        return age > EMPTY_LOCK_STALE_S
    try:
        pid = int(held.get("pid", -1))
    except (TypeError, ValueError):
        return age > EMPTY_LOCK_STALE_S
    return held.get("host") == socket.gethostname() and not pid_alive(pid)


def lock_holder(path: str | Path) -> dict[str, Any] | None:
    """Who holds the lock at ``path`` (its JSON, ``{}`` while being written), or None when it is free or stale."""
    found = _read(Path(path))
    if found is None or _stale(*found):
        return None
    return found[0]


def acquire_lock(path: str | Path, *, ignore: bool = False) -> bool:
    """Create the lock file at ``path`` for this process; False when another live process holds it. A stale lock
    (see the module docstring) is taken over; ``ignore`` takes over any lock.

    Taking a lock over happens under an exclusive ``flock`` of a guard file beside it (``.NAME.takeover``, left in
    place), so two processes that find the same stale lock cannot both end up believing they hold it."""
    path = Path(path)
    if _create(path):
        return True
    found = _read(path)
    if found is not None and not (ignore or _stale(*found)):
        return False  # held: no take-over to guard
    with open(path.parent / f".{path.name}.takeover", "a") as guard:
        fcntl.flock(guard.fileno(), fcntl.LOCK_EX)
        try:
            found = _read(path)
            if found is not None and not (ignore or _stale(*found)):
                return False
            path.unlink(missing_ok=True)
            return _create(path)
        finally:
            fcntl.flock(guard.fileno(), fcntl.LOCK_UN)


def _create(path: Path) -> bool:
    """Create ``path`` exclusively and write this process's record into it; False if it exists."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    me = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "since": time.time(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    with os.fdopen(fd, "w") as f:
        json.dump(me, f)
        f.flush()
    return True


def release_lock(path: str | Path) -> None:
    """Remove the lock at ``path`` if this process still holds it. A lock that another process has taken over
    since (it was ignored, or this process was taken for dead) is left alone."""
    found = _read(Path(path))
    if not found:
        return
    held = found[0]
    if held.get("host") == socket.gethostname() and held.get("pid") == os.getpid():
        Path(path).unlink(missing_ok=True)


def describe_holder(held: dict[str, Any]) -> str:
    """``pid 123 on host h (since 2024-05-01T10:00:00)``, or a note that the holder is still writing the lock."""
    if UNREADABLE in held:
        return f"an unknown holder (the lock file is {held[UNREADABLE]})"
    if not held:
        return "a process that is just starting (its lock is still empty)"
    since = f" (since {held['started']})" if held.get("started") else ""
    return f"pid {held.get('pid')} on host {held.get('host')}{since}"


class RunFolderLocked(FileExistsError):
    """Another live process writes into the run folder (one line naming the holder and the lock file)."""


def _locked(root: Path, held: dict[str, Any]) -> RunFolderLocked:
    path = root / RUN_LOCK
    return RunFolderLocked(
        f"run folder {root} is in use by {describe_holder(held)}; wait for it to finish, or, if that process is "
        f"gone, delete {path}"
    )


def check_unlocked(root: str | Path) -> None:
    """Raise :class:`RunFolderLocked` (naming the holder) when a live process holds the run folder's lock: lets a
    command refuse at once, before it loads data. Taking the lock (:class:`RunLock`) is what counts."""
    held = lock_holder(Path(root) / RUN_LOCK)
    if held is not None:
        raise _locked(Path(root), held)


class RunLock:
    """The run folder's lock (``DIR/run.lock``), held while a process trains into the folder.

    ``with RunLock(dir):`` takes it or raises :class:`RunFolderLocked` naming the holder, and releases it on the
    way out, also on an exception or KeyboardInterrupt. A process killed outright (SIGKILL, a crash of the machine)
    leaves the file behind; the next writer on the same host takes it over once the holder's pid is gone.
    """

    def __init__(self, root: str | Path, *, ignore: bool = False) -> None:
        self.root = Path(root)
        self.path = self.root / RUN_LOCK
        self.ignore = ignore
        self.held = False

    def acquire(self) -> RunLock:
        self.root.mkdir(parents=True, exist_ok=True)
        if not acquire_lock(self.path, ignore=self.ignore):
            raise _locked(self.root, (_read(self.path) or ({}, 0.0))[0])
        self.held = True
        return self

    def release(self) -> None:
        if self.held:
            release_lock(self.path)
            self.held = False

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
