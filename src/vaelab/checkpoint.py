"""Atomic checkpoints that loading never executes.

Each checkpoint is written to a temporary file in the same folder, flushed to disk, then renamed over the old one
(``os.replace`` is atomic on POSIX), so a killed process never leaves a half-written file behind.

Checkpoints hold tensors, state dicts and plain Python data (dict, list, tuple, str, int, float, bool, None)
only: :func:`save_checkpoint` refuses anything else, and :func:`load_checkpoint` reads with
``torch.load(weights_only=True)``, whose unpickler builds only those types and never calls other code. The RNG
states are stored in that form (:func:`rng_state`). A file that needs anything else (a pickled object, whose
loading could run arbitrary code) is refused with a :class:`CheckpointError` naming the file, as is a damaged or
truncated one.

Checkpoints written before this format hold numpy's RNG state as a numpy array. They still load: when the plain
reader refuses a file, it is read again with exactly the numpy globals that rebuild a uint32 array allow-listed
(:data:`LEGACY_NUMPY_GLOBALS`: ``_reconstruct``, ``ndarray``, ``dtype`` and the uint32 dtype class), still with
``weights_only=True``; any other global is refused.
"""

from __future__ import annotations

import os
import pickle
import random
import re
import tempfile
import warnings
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vaelab.errors import UserError
from vaelab.oserrors import with_path


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
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        named = with_path(e, path)  # a full disk inside torch.save: the OSError, naming the file
        if named is not e:
            raise named from None
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, lambda f: f.write(text.encode()))


class CheckpointError(UserError):
    """A checkpoint that cannot be read safely (damaged, truncated, or holding more than plain data); the message
    is one line that names the file."""


PLAIN_TYPES = (str, bytes, int, float, bool, type(None), torch.Size, torch.dtype, torch.device)
"""What a checkpoint may hold besides tensors, dicts, lists and tuples (exactly these types, no subclasses: they
are what ``weights_only=True`` reads)."""


def check_plain(value: Any, where: str = "checkpoint") -> None:
    """Raise ``TypeError`` naming the key path when ``value`` holds anything but tensors and plain data."""
    if type(value) in (dict, OrderedDict):
        for k, v in value.items():
            if type(k) not in (str, int):
                raise TypeError(f"{where}: key {k!r} is a {type(k).__name__}, not a str or int")
            check_plain(v, f"{where}[{k!r}]")
    elif type(value) in (list, tuple):
        for i, v in enumerate(value):
            check_plain(v, f"{where}[{i}]")
    elif not (isinstance(value, torch.Tensor) or type(value) in PLAIN_TYPES):
        raise TypeError(
            f"{where} is a {type(value).__module__}.{type(value).__qualname__}; a checkpoint holds tensors and "
            "plain data only (dict, list, tuple, str, int, float, bool, None)"
        )


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Save ``state`` (tensors, state dicts, plain Python values) atomically to ``path``; anything else is a
    ``TypeError`` before the file is touched."""
    check_plain(state)
    atomic_write_bytes(Path(path), lambda f: torch.save(state, f))


# --------------------------------------------------------------------------------------------------------------
# RNG states as plain data


def rng_state() -> dict[str, Any]:
    """The torch, numpy, python (and CUDA) RNG states, as tensors and plain data."""
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    version, internal, gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": [int(version), [int(x) for x in internal], None if gauss is None else float(gauss)],
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def set_rng_state(rng: dict[str, Any]) -> None:
    """Restore the states of :func:`rng_state`; also those of older checkpoints (numpy's state tuple)."""
    torch.set_rng_state(rng["torch"].cpu())
    state = rng["numpy"]
    if isinstance(state, dict):
        keys = np.asarray(state["keys"].cpu().numpy(), dtype=np.uint32)
        state = (state["kind"], keys, state["pos"], state["has_gauss"], state["cached_gaussian"])
    np.random.set_state(state)
    version, internal, gauss = rng["python"]
    random.setstate((version, tuple(internal), gauss))
    if rng.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in rng["cuda"]])


# --------------------------------------------------------------------------------------------------------------
# reading


def _legacy_numpy_globals() -> list[Any]:
    """The numpy globals that rebuild the uint32 array of an old checkpoint's numpy RNG state, under the names
    numpy 2 (``numpy._core``) and numpy 1 (``numpy.core``) pickle them with; nothing else."""
    core = getattr(np, "_core", None) or np.core
    reconstruct = core.multiarray._reconstruct
    allowed: list[Any] = [np.ndarray, np.dtype, type(np.dtype(np.uint32))]
    if torch.torch_version.TorchVersion(torch.__version__) < (2, 6):
        return [*allowed, reconstruct]  # (global, name) pairs need torch >= 2.6: only numpy's own name then
    for name in ("numpy._core.multiarray._reconstruct", "numpy.core.multiarray._reconstruct"):
        allowed.append((reconstruct, name))
    return allowed


LEGACY_NUMPY_GLOBALS = (
    "numpy._core.multiarray._reconstruct",
    "numpy.core.multiarray._reconstruct",
    "numpy.ndarray",
    "numpy.dtype",
    "numpy.dtypes.UInt32DType",
)
"""The globals an old checkpoint (numpy RNG state as an array) may name; any other is refused."""


@contextmanager
def _allow_legacy_numpy() -> Iterator[bool]:
    """Allow-list :data:`LEGACY_NUMPY_GLOBALS` for ``weights_only`` loading; yields False when this torch cannot
    (``torch.serialization.safe_globals`` needs torch >= 2.5)."""
    safe_globals = getattr(torch.serialization, "safe_globals", None)
    if safe_globals is None:
        yield False
        return
    with safe_globals(_legacy_numpy_globals()):
        yield True


def _one_line(e: BaseException) -> str:
    """The gist of a loading error on one line: torch's ``Unsupported global: GLOBAL x``, the safe unpickler's
    reason, or the first line of the message."""
    text = str(e)
    m = re.search(r"Unsupported global: GLOBAL [\w.]+", text)
    if m:
        return m.group(0)
    m = re.search(r"WeightsUnpickler error:\s*([^\n]+)", text)
    if m:
        return m.group(1).strip()[:300]
    first = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return f"{type(e).__name__}: {first}"[:300]


def _globals_named(e: BaseException) -> set[str]:
    return set(re.findall(r"GLOBAL ([\w.]+)", str(e)))


def _safe_load(path: Path, map_location: str | torch.device) -> Any:
    """``torch.load(weights_only=True)``, without torch's warning about an unusual pickle protocol (a file that
    needs more than the safe unpickler reads gets the one-line error instead)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Detected pickle protocol")
        return torch.load(path, map_location=map_location, weights_only=True)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` without executing anything (``weights_only=True``).

    A missing file is a ``FileNotFoundError``; a damaged or truncated file, or one that holds anything but
    tensors and plain data, is a :class:`CheckpointError`; both messages are one line naming the path.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    _check_format(path)
    try:
        state = _safe_load(path, map_location)
    except pickle.UnpicklingError as e:
        state = _load_legacy(path, map_location, e)
    except Exception as e:
        raise CheckpointError(f"checkpoint {path} could not be read (damaged or truncated?): {_one_line(e)}") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(state).__name__}, not a checkpoint (a dict)")
    return state


def load_model_state(model: torch.nn.Module, state: dict[str, Any], path: str | Path) -> None:
    """``model.load_state_dict(state)``; weights that do not fit the model (config.yaml edited after training, a
    checkpoint copied from another run) are a one-line :class:`CheckpointError` naming the file and the first
    mismatch, not torch's many-line RuntimeError."""
    params = {name for name, _ in model.named_parameters()}
    for name, t in state.items():  # a trained run stops at a NaN before writing it: this file was damaged
        if name in params and isinstance(t, torch.Tensor) and t.is_floating_point() and not torch.isfinite(t).all():
            raise CheckpointError(
                f"checkpoint {path}: parameter {name} holds NaN or infinite values, so every number computed from it "
                "would be NaN; use the other checkpoint (best or last) or train again"
            )
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        first = lines[1] if len(lines) > 1 else (lines[0] if lines else "")
        raise CheckpointError(
            f"checkpoint {path} does not fit the model that the run's config.yaml describes ({first[:300]}); was "
            "config.yaml edited after training, or the checkpoint copied from another run?"
        ) from None


TORCH_FILE_STARTS = (b"PK\x03\x04", b"\x80")
"""How a file ``torch.save`` wrote begins: a zip archive (torch >= 1.6), or a pickle (protocol 2 and later)."""


def _check_format(path: Path) -> None:
    """Refuse, before unpickling, a file that is not one ``torch.save`` wrote (a text file, an image, a JSON record
    saved as best.pt), naming what it begins with: such a file is not a checkpoint, not a threat."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as e:
        raise CheckpointError(f"checkpoint {path} could not be read: {_one_line(e)}") from None
    if not head:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes): damaged or truncated; train again or restore it")
    if not head.startswith(TORCH_FILE_STARTS):
        text = head.isascii() and all(32 <= b < 127 or b in b"\t\r\n" for b in head)
        kind = "text" if text else "bytes"
        raise CheckpointError(
            f"checkpoint {path} is not a PyTorch checkpoint (it begins with the {kind} {head[:12]!r}, not a zip "
            "archive or a pickle that torch.save writes); put back the file the run wrote, or train again"
        )


def _refused(path: Path, e: BaseException) -> CheckpointError:
    return CheckpointError(
        f"checkpoint {path} refused: it holds more than tensors and plain data, and loading it could run code "
        f"({_one_line(e)}); vaelab never loads such files"
    )


def _load_legacy(path: Path, map_location: str | torch.device, first: pickle.UnpicklingError) -> dict[str, Any]:
    """Read a checkpoint the plain safe reader refused: an old one (numpy RNG state) with the numpy globals it
    needs allow-listed, still ``weights_only=True``; anything else is refused."""
    named = _globals_named(first)
    if not named and "WeightsUnpickler error" not in str(first):
        raise CheckpointError(f"checkpoint {path} could not be read (damaged or truncated?): {_one_line(first)}")
    if not named or not named <= set(LEGACY_NUMPY_GLOBALS):
        raise _refused(path, first)
    with _allow_legacy_numpy() as able:
        if not able:
            raise CheckpointError(
                f"checkpoint {path} was written by an older vaelab (numpy RNG state); reading it safely needs "
                f"torch >= 2.5 (this is {torch.__version__}): upgrade torch to load or resume it"
            )
        try:
            return _safe_load(path, map_location)
        except pickle.UnpicklingError as e:
            raise _refused(path, e) from None
        except Exception as e:
            raise CheckpointError(
                f"checkpoint {path} could not be read (damaged or truncated?): {_one_line(e)}"
            ) from None
