"""Atomic checkpoints: a killed process never leaves a half-written file behind.

Each checkpoint is written to a temporary file in the same folder, flushed to disk, then renamed over the old one
(``os.replace`` is atomic on POSIX). Checkpoints hold state dicts, never pickled user code.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


UMASK = _umask()


def atomic_write_bytes(path: Path, write: Any) -> None:
    """Call ``write(fileobj)`` on a temporary file beside ``path``, fsync it, and rename it to ``path``.

    The file gets the permissions of an ordinary new file (0666 minus the umask), not mkstemp's private 0600, so
    reports and results can be shared."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~UMASK)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, lambda f: f.write(text.encode()))


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Save ``state`` (tensors, state dicts, plain Python values) atomically to ``path``."""
    atomic_write_bytes(Path(path), lambda f: torch.save(state, f))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`; a missing or unreadable file names the path."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        # weights_only=False: the state holds RNG states (numpy arrays, python tuples) alongside tensors.
        return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as e:
        raise RuntimeError(f"checkpoint {path} could not be read ({type(e).__name__}: {e})") from e
