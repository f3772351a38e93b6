"""Core data types, the data folder, errors, seeds and the split conventions shared by every image data set.

Split conventions
-----------------
- A held-out validation split (MNIST, Fashion-MNIST, idx/npz files without one) is the *last* ``valid_size``
  positions of a fixed permutation of the training set; the training split is the rest.
- ``train_size = n`` keeps the first n positions of a second fixed permutation of the training split, so the
  subsets of a data-size sweep are nested (n < m => subset(n) is inside subset(m)).
- ``eval_size = n`` keeps the first n positions of a fixed permutation of the validation (resp. test) split.
- Every subset is returned in the source order (its indices sorted), the permutations come from
  ``numpy.random.RandomState`` (whose streams numpy keeps stable across versions) seeded from
  ``(split_seed, purpose)``: the run seed never changes which examples a run sees.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from vaelab.data.config import BINARIZE_MODES, DataConfig
from vaelab.data.dataset import DATASETS as _DATASETS
from vaelab.data.dataset import Dataset, Modality
from vaelab.data.loader import BatchLoader
from vaelab.data.split import Split as Split
from vaelab.data.split import derive_seed as derive_seed
from vaelab.data.split import fixed_permutation as fixed_permutation
from vaelab.data.split import is_binary as is_binary
from vaelab.data.split import to_float as to_float
from vaelab.data.split import torch_generator as torch_generator
from vaelab.errors import ConfigError, UserError
from vaelab.registry import UnknownChoiceError

SPLITS: tuple[str, str, str] = ("train", "valid", "test")

DEFAULT_EVAL_BINARIZE_SEED = 20160201
"""Seed with which :meth:`ImageDataset.loader` binarises validation/test splits once under dynamic
binarisation (fixed, independent of the run seed, so evaluation numbers are comparable across epochs and
runs)."""


DATASETS = _DATASETS
"""Data set name (config key ``data.name``) -> loader ``f(cfg: DataConfig) -> Dataset``, registered with its
modality (:class:`vaelab.data.dataset.DatasetRegistry`)."""


class DataError(Exception):
    """A data file is missing, corrupt or not what was expected; the message names the file, the setting that
    chose the data folder and what was expected."""


# --------------------------------------------------------------------------------------------------------
# data folder


def resolve_data_root(cfg: DataConfig | None = None) -> tuple[Path, str]:
    """The data folder and the setting that chose it, in this order of precedence:

    1. ``cfg.root`` (config key ``data.root``);
    2. the environment variable ``VAELAB_DATA``;
    3. ``../shared/data`` relative to the current working directory, if that folder exists;
    4. ``~/.vaelab/data``.

    The folder is not required to exist; loaders report missing files with the setting named here.
    """
    if cfg is not None and cfg.root:
        setting = "config key data.root"
        return _folder(Path(cfg.root).expanduser(), setting), setting
    env = os.environ.get("VAELAB_DATA")
    if env:
        setting = "environment variable VAELAB_DATA"
        return _folder(Path(env).expanduser(), setting), setting
    shared = Path.cwd().parent / "shared" / "data"
    if shared.is_dir():
        return shared.resolve(), "default ../shared/data (relative to the working directory)"
    return Path("~/.vaelab/data").expanduser(), "default ~/.vaelab/data (data.root and VAELAB_DATA unset)"


def _folder(path: Path, setting: str) -> Path:
    """``path``, unless it exists and is not a folder (a one-line :class:`DataError` naming ``setting``)."""
    if path.exists() and not path.is_dir():
        raise DataError(f"{setting}: {path} is a file, not a folder; set it to the data folder (or unset it)")
    return path


def data_error(path: Path | str, problem: str, expected: str | None = None, where: str | None = None) -> DataError:
    """A :class:`DataError` reading "file PATH: PROBLEM (expected EXPECTED) [data folder chosen by WHERE]"."""
    msg = f"file {path}: {problem}"
    if expected:
        msg += f" (expected {expected})"
    if where:
        msg += f"; {where}"
    return DataError(msg)


def root_note(root: Path, setting: str) -> str:
    """Human-readable note on where a data folder came from, for error messages."""
    return f"data folder {root} chosen by {setting}"


def resolve_data_file(cfg: Any, expected: str) -> tuple[Path, str]:
    """The file named by ``data.path`` (absolute, or relative to the data folder) and a note on where it came from
    for error messages; a missing ``data.path`` or file is a one-line error (``expected`` says what it should be)."""
    if not cfg.path:
        raise ConfigError(
            f"data.name={cfg.name!r} needs data.path, the {expected} (absolute or relative to the data folder)"
        )
    root, setting = resolve_data_root(cfg)
    path = Path(cfg.path).expanduser()
    where = "file chosen by config key data.path"
    if not path.is_absolute():
        path = root / path
        where += f" relative to the {root_note(root, setting)}"
    if path.is_dir():
        raise ConfigError(f"data.path={cfg.path!r} names the folder {path}; name the {expected} in it")
    if not path.is_file():
        raise data_error(path, "not found", f"an {expected}", where)
    return path, where


# --------------------------------------------------------------------------------------------------------
# checksums (the seeded generators: vaelab.data.split)


_SHA256_CACHE: dict[tuple[str, int, int], str] = {}


def sha256_file(path: Path | str) -> str:
    """Hex sha256 of a file, computed once per process per (path, size, mtime)."""
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA256_CACHE:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _SHA256_CACHE[key] = h.hexdigest()
    return _SHA256_CACHE[key]


# --------------------------------------------------------------------------------------------------------
# splits and data sets


@dataclass
class ImageDataset(Dataset):
    """An image data set with train / valid / test splits in memory (``modality`` "image" of the contract
    :class:`~vaelab.data.dataset.Dataset`).

    ``image_shape`` is (C, H, W); ``binarize`` is the resolved binarisation mode (one of
    :data:`vaelab.data.config.BINARIZE_MODES`); ``num_classes`` is None without labels; ``info`` is a
    JSON-serialisable record (source files, checksums, counts, split rule) for the run folder; ``truth`` holds
    ground-truth parameters of synthetic sets (e.g. W, b, s of ``synthetic_gaussian``), else empty.
    """

    name: str
    train: Split
    valid: Split
    test: Split
    image_shape: tuple[int, int, int]
    binarize: str
    num_classes: int | None
    info: dict[str, Any] = field(default_factory=dict)
    truth: dict[str, Any] = field(default_factory=dict)
    modality: ClassVar[Modality] = "image"

    def split(self, name: str) -> Split:
        """The split called ``name``: "train", "valid" or "test"."""
        if name not in SPLITS:
            raise UnknownChoiceError(
                f"unknown split {name!r} of data set {self.name!r}; valid choices: {', '.join(SPLITS)}"
            )
        return getattr(self, name)

    def model_info(self) -> dict[str, Any]:
        """What a model builder needs: ``image_shape`` (C, H, W) and ``num_classes``."""
        return {"image_shape": tuple(self.image_shape), "num_classes": self.num_classes}

    def loader(
        self,
        split: str,
        batch_size: int,
        *,
        seed: int,
        shuffle: bool | None = None,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = False,
        eval_binarize_seed: int | None = DEFAULT_EVAL_BINARIZE_SEED,
    ) -> BatchLoader:
        """A :class:`~vaelab.data.loader.BatchLoader` over a split with this data set's binarisation.

        ``shuffle`` defaults to True for train and False otherwise. For valid/test under dynamic binarisation
        the split is binarised once with ``eval_binarize_seed`` (the standard practice, so that evaluation
        numbers are comparable across epochs); the training split is always resampled per batch.
        """
        is_train = split == "train"
        return BatchLoader(
            self.split(split),
            batch_size,
            shuffle=is_train if shuffle is None else shuffle,
            binarize=self.binarize,
            seed=seed,
            rank=rank,
            world_size=world_size,
            drop_last=drop_last,
            eval_binarize_seed=None if is_train else eval_binarize_seed,
        )


# --------------------------------------------------------------------------------------------------------
# shared construction helpers


def normalize_image_shape(shape: Sequence[int], what: str = "data.image_shape") -> tuple[int, int, int]:
    """[C, H, W] -> (C, H, W); [H, W] -> (1, H, W); [D] -> (1, 1, D)."""
    dims = tuple(int(s) for s in shape)
    if not 1 <= len(dims) <= 3 or any(d <= 0 for d in dims):
        raise ConfigError(f"{what} must be [C, H, W], [H, W] or [D] with positive sizes, got {list(shape)}")
    return (1,) * (3 - len(dims)) + dims  # type: ignore[return-value]


def holdout_split(train: Split, valid_size: int, seed: int, source: str) -> tuple[Split, Split, str]:
    """Split ``train`` into (train, valid): valid = the last ``valid_size`` positions of a fixed permutation.

    Returns the two splits and a one-line description for ``info``.
    """
    n = len(train)
    if n == 0:
        raise DataError(f"{source}: the training split has no examples")
    if valid_size < 0 or valid_size >= n:
        raise ConfigError(f"data.valid_size={valid_size} must be in [0, {n - 1}] for {source} ({n} training examples)")
    perm = fixed_permutation(n, seed, "valid")
    tr = np.sort(perm[: n - valid_size])
    va = np.sort(perm[n - valid_size :])
    rule = (
        f"valid = last {valid_size} of a fixed permutation of the {n} training examples "
        f"(numpy RandomState, split_seed={seed}); train = the other {n - valid_size}"
    )
    return train.subset(tr), train.subset(va), rule


def eval_subset(split: Any, name: str, size: int, split_seed: int) -> Any:
    """``data.eval_size``'s subset of an evaluation split (``name``: valid or test): the first ``size`` of a fixed
    permutation, in the split's order; the split itself when it holds ``size`` or fewer examples."""
    if len(split) <= size:
        return split
    return split.subset(np.sort(fixed_permutation(len(split), split_seed, f"eval_size/{name}")[:size]))


def finalize(
    name: str,
    cfg: DataConfig,
    train: Split,
    valid: Split,
    test: Split,
    *,
    default_binarize: str,
    num_classes: int | None,
    info: dict[str, Any],
    truth: dict[str, Any] | None = None,
) -> ImageDataset:
    """Apply ``train_size`` / ``eval_size``, resolve and check the binarisation mode, and record counts."""
    info = dict(info)
    n_train = len(train)
    if cfg.train_size is not None:
        if not 0 < cfg.train_size <= n_train:
            raise ConfigError(
                f"data.train_size={cfg.train_size} must be in [1, {n_train}]: {name} has {n_train} training "
                f"examples (after holding out the validation split)"
            )
        if cfg.train_size < n_train:
            keep = np.sort(fixed_permutation(n_train, cfg.split_seed, "train_size")[: cfg.train_size])
            train = train.subset(keep)
        info["train_size_rule"] = (
            f"first {cfg.train_size} of a fixed permutation of the {n_train} training examples "
            f"(split_seed={cfg.split_seed}); nested across sizes"
        )
    if cfg.eval_size is not None:
        if cfg.eval_size <= 0:
            raise ConfigError(f"data.eval_size={cfg.eval_size} must be positive (or null for no cap)")
        valid = eval_subset(valid, "valid", cfg.eval_size, cfg.split_seed)
        test = eval_subset(test, "test", cfg.eval_size, cfg.split_seed)

    mode = cfg.binarize if cfg.binarize is not None else default_binarize
    if mode not in BINARIZE_MODES:
        raise ConfigError(f"unknown data.binarize {mode!r}; valid choices: {', '.join(BINARIZE_MODES)}")
    if mode == "static":
        for split_name, s in (("train", train), ("valid", valid), ("test", test)):
            if not s.is_binary():
                raise ConfigError(
                    f"data.binarize='static' needs data that are already 0/1, but the {split_name} split "
                    f"of {name} has grey levels; use 'dynamic' (Bernoulli resampling), 'threshold' or "
                    f"'none', or a statically binarised set such as binarized_mnist"
                )
    if mode in ("dynamic", "threshold") and any(s.x.dtype == torch.float32 for s in (train, valid, test)):
        for split_name, s in (("train", train), ("valid", valid), ("test", test)):
            if s.x.numel() and (float(s.x.min()) < 0.0 or float(s.x.max()) > 1.0):
                raise ConfigError(
                    f"data.binarize={mode!r} needs intensities in [0, 1], but the {split_name} split of "
                    f"{name} has values outside; use binarize='none'"
                )

    c, h, w = (int(d) for d in train.x.shape[1:])
    for split_name, s in (("valid", valid), ("test", test)):
        if len(s) and tuple(s.x.shape[1:]) != (c, h, w):
            raise UserError(
                f"data set {name}: the {split_name} images are {tuple(s.x.shape[1:])} (C, H, W), the train images "
                f"{(c, h, w)}; every split must hold images of one shape: resize or re-export them"
            )
    info.update(
        name=name,
        counts={"train": len(train), "valid": len(valid), "test": len(test)},
        image_shape=[c, h, w],
        binarize=mode,
        split_seed=cfg.split_seed,
    )
    if mode == "dynamic":
        info["eval_binarization"] = (
            "validation/test binarised once with a fixed seed (BatchLoader eval_binarize_seed), training "
            "batches resampled from Bernoulli(intensity) with a seed of (run seed, epoch, batch index)"
        )
    return ImageDataset(
        name=name,
        train=train,
        valid=valid,
        test=test,
        image_shape=(c, h, w),
        binarize=mode,
        num_classes=num_classes,
        info=info,
        truth=truth or {},
    )


CHANNEL_COUNTS = (1, 3, 4)
"""Channel counts of images (grey, RGB, RGBA): a 4-D array whose last axis is one of them and whose second is not
is stored channels-last."""


def images_to_split(
    x: np.ndarray,
    y: np.ndarray | None,
    *,
    source: str,
    image_shape: Sequence[int] | None = None,
    where: str | None = None,
    label_source: str | None = None,
    real: bool = False,
) -> Split:
    """Turn an image array (N, H, W), (N, C, H, W) or (N, D) into a :class:`Split`.

    Values: uint8 0..255 (kept), bool or integer/float 0/1 (stored as uint8 0/255), other integers within
    0..255 (cast to uint8) or floats in [0, 1] (float32). With ``real`` (``data.binarize=none``: a decoder of real
    values) floats of any finite range are kept as float32 too, except whole numbers 0..255 (8-bit intensities
    stored as floats: divide by 255). ``source`` names the images' file/key in errors, ``label_source`` the
    labels' (default ``source``). ``image_shape`` may list the array's own dimensions (unit ones added or left
    out) or flatten them into one (row-major, as stored); flat rows need it unless D is a square number (then
    single-channel sqrt(D) x sqrt(D)).
    """
    if x.ndim not in (2, 3, 4):
        raise data_error(source, f"images have shape {x.shape}", "(N, H, W), (N, C, H, W) or (N, D)", where)
    n = x.shape[0]
    per = int(np.prod(x.shape[1:]))
    if per == 0:
        raise data_error(source, f"images have shape {x.shape}: no values per example", "examples of >= 1 value", where)
    if image_shape is not None:
        shape = normalize_image_shape(image_shape)
        if int(np.prod(shape)) != per:
            raise data_error(
                source, f"each example has {per} values but data.image_shape={list(image_shape)}", None, where
            )
        given = [int(d) for d in x.shape[1:] if d != 1]
        wanted = [d for d in shape if d != 1]
        # the file's dimensions with unit ones added or left out, or all of them flattened (row-major, as stored)
        if x.ndim > 2 and given != wanted and len(wanted) > 1:
            if sorted(given) == sorted(wanted):  # (N, H, W, C) read as (C, H, W): scrambled
                raise data_error(
                    source,
                    f"images of shape {tuple(x.shape[1:])} would be reordered into data.image_shape="
                    f"{list(image_shape)} (channels last? store them as (N, C, H, W) or flat (N, D))",
                    None,
                    where,
                )
            raise data_error(
                source,
                f"data.image_shape={list(image_shape)} does not keep the file's image shape {tuple(x.shape[1:])}: it "
                f"must list the file's dimensions (C first; unit dimensions may be added) or flatten them "
                f"([{per}]); store other shapes reshaped in the file",
                None,
                where,
            )
    elif x.ndim == 4:
        shape = tuple(int(d) for d in x.shape[1:])  # type: ignore[assignment]
        if shape[2] in CHANNEL_COUNTS and shape[0] not in CHANNEL_COUNTS:  # (N, H, W, C) read as (C, H, W)
            raise data_error(
                source,
                f"images of shape {shape} look channels-last (N, H, W, C), which would be read as {shape[0]} "
                f"channels of {shape[1]}x{shape[2]} images",
                f"(N, C, H, W): store np.moveaxis(x, -1, 1), or set data.image_shape={list(shape)} if they "
                "really are channels first",
                where,
            )
    elif x.ndim == 3:
        shape = (1, int(x.shape[1]), int(x.shape[2]))
    else:
        side = math.isqrt(per)
        if side * side != per:
            raise data_error(
                source,
                f"flat rows of {per} values are not square images",
                "data.image_shape to be set",
                where,
            )
        shape = (1, side, side)
    arr = np.ascontiguousarray(x).reshape(n, *shape)

    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * 255
    elif arr.dtype == np.uint8:
        if arr.size and int(arr.max()) <= 1:
            arr = arr * np.uint8(255)
    elif np.issubdtype(arr.dtype, np.integer):
        lo, hi = (int(arr.min()), int(arr.max())) if arr.size else (0, 0)
        if lo < 0 or hi > 255:
            raise data_error(source, f"integer values span {lo}..{hi}", "0..255 or 0/1", where)
        arr = arr.astype(np.uint8) * (255 if hi <= 1 else 1)
    elif np.issubdtype(arr.dtype, np.floating):
        if arr.size and not np.isfinite(arr).all():
            found = " and ".join(k for k, m in (("NaN", np.isnan(arr)), ("inf", np.isinf(arr))) if m.any())
            raise data_error(source, f"float values include {found}", "finite values", where)
        lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
        if not (lo >= 0.0 and hi <= 1.0):
            _check_real_floats(arr, lo, hi, real, source, where)
        arr = arr.astype(np.float32)
    else:
        raise data_error(source, f"unsupported dtype {arr.dtype}", "uint8, bool, integers or floats", where)

    xt = torch.from_numpy(np.ascontiguousarray(arr))
    yt = None
    if y is not None:
        y = np.asarray(y)
        labels = label_source or source
        if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
            raise data_error(
                labels, f"labels have shape {y.shape} and dtype {y.dtype}", "integers of shape (N,)", where
            )
        if len(y) != n:
            raise data_error(labels, f"{len(y)} labels for {n} images ({source})", "one label per image", where)
        yt = torch.from_numpy(y.astype(np.int64))
    return Split(xt, yt)


def _check_real_floats(arr: np.ndarray, lo: float, hi: float, real: bool, source: str, where: str | None) -> None:
    """Floats outside [0, 1]: refused unless ``real`` (``data.binarize=none``), and always when they are whole numbers
    0..255 with a maximum above 15 (8-bit intensities stored as floats; small counts are left alone), each time
    saying why and what to do."""
    span = f"float values span {lo:g}..{hi:g}"
    if 15.0 < hi <= 255.0 and lo >= 0.0 and bool(np.all(arr == np.round(arr))):
        raise data_error(
            source,
            f"{span}, all whole numbers (expected floats in [0, 1]): 8-bit intensities stored as floats, while image "
            "data sets read floats as intensities in [0, 1]; divide them by 255 (or store them as uint8)",
            None,
            where,
        )
    if not real:
        raise data_error(
            source,
            f"{span} (expected floats in [0, 1]): image data sets read floats as intensities, which the binarisations "
            "and a Bernoulli decoder need; for real-valued data set data.binarize=none with a continuous decoder "
            "(model.likelihood=gaussian), or rescale them to [0, 1], e.g. (x - min) / (max - min)",
            None,
            where,
        )


def num_classes_of(*splits: Split, source: str = "the labels") -> int | None:
    """1 + the largest label over the splits, or None when any split lacks labels (:func:`class_count`; errors
    name ``source``)."""
    if any(s.y is None for s in splits):
        return None
    ys = [s.y for s in splits if s.y is not None and len(s.y)]
    return class_count([int(y.min()) for y in ys], [int(y.max()) for y in ys], sum(len(y) for y in ys), source)


MAX_SPARSE_CLASSES = 1000
"""Labels up to this many classes are accepted whatever the number of examples (small test sets of a large label
set); beyond it there must be at least one labelled example per class index."""


def class_count(lows: list[int], tops: list[int], n: int, source: str = "the labels") -> int | None:
    """The number of classes C of labels that are class indices 0..C-1 (1 + the largest; None without labels).
    A negative label, or a largest label beyond both :data:`MAX_SPARSE_CLASSES` and the ``n`` labelled examples
    (e.g. an id such as 999999999: a probe would need a weight per class) raises a one-line DataError naming
    ``source``."""
    if not tops:
        return None
    if min(lows) < 0:
        raise DataError(f"{source}: labels must be class indices >= 0, found {min(lows)}")
    top = max(tops)
    if top >= MAX_SPARSE_CLASSES and top >= n:
        raise DataError(
            f"{source}: labels must be class indices 0..C-1, but the largest is {top} for {n} labelled examples; "
            "renumber the classes 0, 1, 2, ..."
        )
    return top + 1


def empty_like(split: Split) -> Split:
    """A split with no examples and the same image shape / dtype / label presence."""
    return Split(
        split.x[:0].clone(), None if split.y is None else split.y[:0].clone(), torch.zeros(0, dtype=torch.long)
    )
