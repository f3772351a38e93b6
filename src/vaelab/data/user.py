"""The user's own data (tensors, a torch Dataset, token-id sequences) as files that vaelab's data sets read.

A run trained through the Python API (:mod:`vaelab.api`) keeps a copy of its data in the run folder, so that every
command (``evaluate``, ``diagnose``, ``report``, ``resume``) reloads exactly what it was trained on:

- **arrays** (tensors, numpy arrays, a torch Dataset): ``DIR/data/arrays.npz`` (``numpy.savez``, read with
  ``allow_pickle=False``), arrays ``train``, ``valid``, ``test`` and optional ``*_labels``, read by the data set
  ``data.name: arrays`` (registered here). Each example keeps its own shape (1 to 3 dimensions: (D,), (H, W) or
  (C, H, W)); the user's modules receive x of shape (B, *that shape). uint8 arrays are intensities 0..255 (read as
  [0, 1]), bool arrays 0/1; every other numeric array is used as float32 values as given (any range: Gaussian
  decoders). ``data.binarize`` applies as for images (default: ``static`` when all values are 0/1, else ``none``).
- **token-id sequences** (lists of lists of ints in [0, V)): ``DIR/data/{train,valid,test}.txt`` (one sequence a
  line, labels as ``LABEL<TAB>`` when given) and ``DIR/data/vocab.txt``, read by the text data set
  (``data.name: text`` with ``data.vocab_file``). The model sees :class:`~vaelab.data.text.TokenBatch` batches,
  ``<s> ids </s> <pad>..``, in which the user's token id t is **t + 4** (:data:`TOKEN_OFFSET`): ids 0..3 are
  ``<pad>``, ``<s>``, ``</s>``, ``<unk>``; the vocabulary size a decoder must cover is V + 4
  (``data_info["vocab_size"]``).

Splits that are not given are held out of the training examples by a fixed permutation (seeded by
``split_seed``, never by the run seed): ``test_fraction`` then ``valid_fraction`` of them.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from vaelab.data.base import (
    DATASETS,
    SPLITS,
    DataError,
    ImageDataset,
    Split,
    data_error,
    empty_like,
    finalize,
    fixed_permutation,
    holdout_split,
    normalize_image_shape,
    num_classes_of,
    resolve_data_file,
    sha256_file,
)
from vaelab.data.config import BINARIZE_MODES, DataConfig
from vaelab.data.text import SPECIALS
from vaelab.errors import ConfigError, UserError
from vaelab.rules import SEED, Num, check

TOKEN_OFFSET = len(SPECIALS)
"""A user's token id t is t + TOKEN_OFFSET (= 4) inside vaelab's token batches (ids 0..3: <pad> <s> </s> <unk>)."""

FRACTION = Num(lo=0, hi=1, hi_open=True)
"""The rule of ``valid_fraction`` and ``test_fraction``: a share of the training examples, in [0, 1)."""
ARRAYS_FILE = "arrays.npz"
VOCAB_FILE = "vocab.txt"
DATA_KINDS = "a tensor, array, Dataset, token-id sequences or a mapping of splits"
"""What :func:`as_user_data` (``vaelab.train``'s ``data``) accepts, as its errors name it."""
SPLIT_KINDS = "a tensor, array, Dataset, (x, labels) pair or token-id sequences"
"""What one split of the data (``data['train']``) may be."""


class DataTypeError(UserError, TypeError):
    """The user's data (an argument, not a file) of a kind vaelab cannot read: a one-line :class:`UserError` that
    is also a ``TypeError``."""


# --------------------------------------------------------------------------------------------------------------
# the "arrays" data set


@dataclass
class ArrayDataset(ImageDataset):
    """An :class:`ImageDataset` whose examples had the shape ``example_shape`` (1 to 3 dims) in the user's data;
    splits hold them as (N, C, H, W) and a custom model views them back (see :meth:`model_info`)."""

    example_shape: tuple[int, ...] = ()

    def model_info(self) -> dict[str, Any]:
        """What a model builder needs: ``image_shape`` (C, H, W), ``example_shape`` and ``num_classes``."""
        return {
            "image_shape": tuple(self.image_shape),
            "example_shape": tuple(self.example_shape),
            "num_classes": self.num_classes,
        }


def as_intensities(x: np.ndarray) -> np.ndarray:
    """A bool or uint8 array as uint8 intensities 0..255, the way the user's arrays are read: bool and uint8 0/1
    data become 0/255, other uint8 arrays are intensities already. (Split.to_float then reads them in [0, 1].)"""
    if x.dtype == np.bool_:
        return x.astype(np.uint8) * np.uint8(255)
    if x.dtype == np.uint8:
        return x * np.uint8(255) if x.size and int(x.max()) <= 1 else x
    raise TypeError(f"as_intensities: expected a bool or uint8 array, got {x.dtype}")


def _array_split(x: np.ndarray, y: np.ndarray | None, source: str) -> tuple[Split, tuple[int, ...]]:
    """An (N, *shape) array (shape of 1 to 3 dims) as a Split (N, C, H, W), and the example shape."""
    if x.ndim < 2 or x.ndim > 4:
        raise DataError(f"{source}: arrays must be (N, D), (N, H, W) or (N, C, H, W), got shape {x.shape}")
    shape = tuple(int(d) for d in x.shape[1:])
    chw = normalize_image_shape(shape, what=f"{source} example shape")
    if x.dtype in (np.bool_, np.uint8):
        arr = as_intensities(x)
    elif np.issubdtype(x.dtype, np.complexfloating):
        raise DataError(f"{source}: unsupported dtype {x.dtype}: complex values (use real numbers or bool)")
    elif np.issubdtype(x.dtype, np.number):
        arr = x.astype(np.float32)
        if arr.size and not np.isfinite(arr).all():
            raise DataError(f"{source}: the values must be finite (found NaN or inf)")
    else:
        raise DataError(f"{source}: unsupported dtype {x.dtype} (use numbers or bool)")
    yt = None
    if y is not None:
        if y.ndim != 1 or len(y) != len(x) or not np.issubdtype(y.dtype, np.integer):
            raise DataError(f"{source}: labels must be integers of shape ({len(x)},), got {y.dtype} {y.shape}")
        yt = torch.from_numpy(y.astype(np.int64))
    xt = torch.from_numpy(np.ascontiguousarray(arr).reshape(len(x), *chw))
    return Split(xt, yt), shape


def _pickled(z: Any, key: str) -> bool:
    """Whether array ``key`` of the open .npz ``z`` exists and needs pickle (an object array)."""
    if key not in z.files:
        return False
    try:
        z[key]
    except ValueError:
        return True
    return False


@DATASETS.register("arrays", modality="image")
def load_arrays(cfg: DataConfig) -> ArrayDataset:
    """Arrays of any numeric range from one .npz file (``data.path``; written by :func:`write_user_data`):
    keys ``train``, ``test``, optional ``valid`` (else ``data.valid_size`` training examples are held out) and
    ``<split>_labels``. Default binarisation: ``static`` when every value is 0/1, else ``none``."""
    path, where = resolve_data_file(cfg, ".npz file of arrays train, valid, test")
    with np.load(path, allow_pickle=False) as z:
        missing = [k for k in ("train", "test") if k not in z.files]
        if missing:
            raise data_error(path, f"no array {missing[0]!r}; arrays in file: {', '.join(z.files)}", None, where)
        parts: dict[str, Split | None] = {}
        shapes = set()
        for split in SPLITS:
            if split not in z.files:
                parts[split] = None
                continue
            try:
                x = z[split]
                labels = z[f"{split}_labels"] if f"{split}_labels" in z.files else None
            except ValueError as e:  # object arrays need pickle, which is refused
                bad = next((k for k in (split, f"{split}_labels") if _pickled(z, k)), split)
                raise data_error(
                    path, f"array {bad!r} cannot be loaded without pickle ({e})", "numeric arrays", where
                ) from e
            if split == "valid" and x.ndim >= 1 and len(x) == 0:  # (finalize refuses an empty train or test)
                if cfg.valid_size == 0:  # no validation, as data.valid_size=0 says (the API's valid_fraction=0)
                    parts[split] = None
                    continue
                raise data_error(
                    path,
                    "array 'valid' is empty (0 examples)",
                    "at least one example, or no 'valid' array (then data.valid_size training examples are held out)",
                    where,
                )
            parts[split], shape = _array_split(x, labels, f"{path}[{split}]")
            shapes.add(shape)
    if len(shapes) > 1:
        raise data_error(path, f"the splits' examples differ in shape: {sorted(shapes)}", "one shape", where)
    train, valid, test = parts["train"], parts["valid"], parts["test"]
    assert train is not None and test is not None
    info: dict[str, Any] = {"source": str(path), "format": "npz arrays", "sha256": sha256_file(path)}
    if valid is None:
        if cfg.valid_size == 0:
            valid = empty_like(train)
            info["split"] = "no validation split (data.valid_size=0)"
        else:
            train, valid, info["split"] = holdout_split(train, cfg.valid_size, cfg.split_seed, str(path))
    else:
        info["split"] = "validation split from the file"
    binary = all(s.is_binary() for s in (train, valid, test))
    ds = finalize(
        "arrays",
        cfg,
        train,
        valid,
        test,
        default_binarize="static" if binary else "none",
        num_classes=num_classes_of(train, valid, test),
        info=info,
    )
    shape = shapes.pop()
    ds.info["example_shape"] = list(shape)
    return ArrayDataset(**{f.name: getattr(ds, f.name) for f in fields(ImageDataset)}, example_shape=shape)


# --------------------------------------------------------------------------------------------------------------
# in-memory data -> files


@dataclass
class UserData:
    """The user's data, split and ready to be written into a run folder (:meth:`write`).

    ``kind``: ``arrays`` or ``tokens``. ``splits``: split -> (examples, labels or None): numpy arrays (N, ...) for
    arrays, lists of int lists for tokens. ``vocab``: tokens only, the word of each id (default: the ids as
    text). ``binarize``: arrays only, ``data.binarize`` (None: the default). ``rules``: how missing splits were
    made (recorded in config.yaml's data provenance).
    """

    kind: Literal["arrays", "tokens"]
    splits: dict[str, tuple[Any, Any]]
    vocab: list[str] | None = None
    binarize: str | None = None
    rules: dict[str, str] = field(default_factory=dict)

    @property
    def labelled(self) -> bool:
        """Whether the examples carry labels (then probes can be measured)."""
        return any(y is not None for _, y in self.splits.values())

    @property
    def example_shape(self) -> tuple[int, ...] | None:
        """Arrays: the shape of one example, as the user's modules receive it after the batch dimension."""
        return tuple(int(d) for d in self.splits["train"][0].shape[1:]) if self.kind == "arrays" else None

    @property
    def model_vocab_size(self) -> int | None:
        """Tokens: V + :data:`TOKEN_OFFSET`, the number of distinct ids in a batch (what an embedding or softmax
        layer of the user's decoder must cover)."""
        return len(self.vocab) + TOKEN_OFFSET if self.kind == "tokens" and self.vocab is not None else None

    def section(self, folder: str | Path) -> dict[str, Any]:
        """The ``data:`` config section that reads these data once :meth:`write` has put them in ``folder``."""
        folder = Path(folder).resolve()
        if self.kind == "arrays":
            section: dict[str, Any] = {"name": "arrays", "path": str(folder / ARRAYS_FILE)}
            if self.binarize is not None:
                section["binarize"] = self.binarize
            if len(self.splits["valid"][0]) == 0:  # valid_fraction=0: the file's empty valid array means none
                section["valid_size"] = 0
            return section
        return {
            "name": "text",
            "path": str(folder),
            "files": {split: f"{split}.txt" for split in self.splits},
            "vocab_file": VOCAB_FILE,
            "format": "label_tab" if self.labelled else "plain",
        }

    def write(self, folder: str | Path) -> dict[str, Any]:
        """Write the data into ``folder`` (created) and return the ``data:`` config section that reads them."""
        folder = Path(folder).resolve()
        folder.mkdir(parents=True, exist_ok=True)
        if self.kind == "arrays":
            arrays: dict[str, np.ndarray] = {}
            for split, (x, y) in self.splits.items():
                arrays[split] = x
                if y is not None:
                    arrays[f"{split}_labels"] = y
            np.savez(folder / ARRAYS_FILE, **arrays)  # type: ignore[arg-type]
            return self.section(folder)
        vocab = self.vocab or [str(i) for i in range(_vocab_size(self.splits))]
        (folder / VOCAB_FILE).write_text("\n".join(vocab) + "\n", encoding="utf-8")
        for split, (seqs, y) in self.splits.items():
            lines = [" ".join(vocab[t] for t in s) for s in seqs]
            if self.labelled:
                lines = [f"{int(label)}\t{line}" for label, line in zip(y, lines, strict=True)]
            (folder / f"{split}.txt").write_text("".join(ln + "\n" for ln in lines), encoding="utf-8")
        return self.section(folder)


def _vocab_size(splits: Mapping[str, tuple[Any, Any]]) -> int:
    return 1 + max((max(s) for seqs, _ in splits.values() for s in seqs if len(s)), default=0)


def _is_dataset(obj: Any) -> bool:
    return isinstance(obj, torch.utils.data.Dataset) and not isinstance(obj, Tensor)


def _numpy(x: Any, what: str) -> np.ndarray:
    if isinstance(x, Tensor):
        if x.is_meta:
            raise UserError(f"{what}: a tensor on the meta device holds no values; pass real data")
        return x.detach().cpu().numpy()
    if isinstance(x, np.ndarray):
        return x
    raise DataTypeError(f"{what} must be a torch.Tensor or numpy array, got {_kind(x)}")


def _kind(x: Any) -> str:
    """``x``'s kind for an error: ``None``, ``the string 'ab'``, else the type's name."""
    if x is None:
        return "None"
    if isinstance(x, str | bytes):
        return f"the string {x!r:.60}"
    return type(x).__name__


def kind_phrase(obj: Any) -> str:
    """``obj``'s kind for an error, as a phrase: ``None``, ``the string 'ab'``, ``a tuple of 3``, ``a dict (keys
    'x')``, else ``a <type>`` / ``an <type>``."""
    if obj is None:
        return "None"
    if isinstance(obj, str | bytes):
        return f"the string {obj!r:.60}"
    kind = type(obj).__name__
    kind = ("an " if kind[:1].lower() in "aeiou" else "a ") + kind
    if isinstance(obj, Mapping):
        return f"{kind} (keys {', '.join(repr(k) for k in list(obj)[:5])})"
    if isinstance(obj, tuple | list):
        return f"{kind} of {len(obj)}"
    return kind


def _class_label(v: Any) -> int | None:
    """``v`` as an integer class id (a Python or NumPy integer, or a one-element integer tensor / array), else
    None (floats are refused, not truncated: int(0.5) would be class 0)."""
    if isinstance(v, Tensor | np.ndarray):
        if (v.numel() if isinstance(v, Tensor) else v.size) != 1:
            return None
        v = v.reshape(-1)[0].item()
    if isinstance(v, numbers.Integral) and not isinstance(v, bool):
        return int(v)
    return None


def _check_nonnegative(labels: Sequence[int] | np.ndarray, what: str) -> None:
    """Refuse a negative label, naming its value and index (labels are class ids 0, 1, ..., K-1)."""
    for i, v in enumerate(labels):
        if v < 0:
            raise UserError(
                f"{what}: label {int(v)} at index {i} is negative; labels are class ids >= 0 (0, 1, ..., K-1)"
            )


def _materialise(ds: Any, what: str) -> tuple[np.ndarray, np.ndarray | None]:
    """A torch Dataset's items (x, or (x, y) with an integer y) stacked into arrays."""
    n = len(ds)
    if n == 0:
        raise UserError(f"{what} is an empty Dataset")
    xs, ys = [], []
    for i in range(n):
        item = ds[i]
        if isinstance(item, tuple | list) and len(item) == 2:
            xs.append(_item_array(item[0], f"{what}[{i}][0]", "an example x (a tensor or array)"))
            label = _class_label(item[1])
            if label is None:
                raise DataTypeError(
                    f"{what}[{i}][1] must be an integer class id >= 0 (the label), got {_kind(item[1]):.60}"
                )
            ys.append(label)
        elif isinstance(item, tuple | list):
            raise DataTypeError(f"{what}[{i}] must be x or (x, label), got a {type(item).__name__} of {len(item)}")
        else:
            xs.append(_item_array(item, f"{what}[{i}]", "x or (x, label)"))
    if ys and len(ys) != n:
        raise DataTypeError(f"{what}: some items are (x, label) and some are not")
    try:
        x = np.stack(xs)
    except ValueError:
        raise UserError(f"{what}: the examples differ in shape; every example must have the same shape") from None
    return x, (np.asarray(ys, dtype=np.int64) if ys else None)


def _item_array(x: Any, where: str, expected: str) -> np.ndarray:
    """A Dataset item's example ``x`` as an array: a tensor, an array or numbers; a dict, None, a string or
    anything torch cannot read refused in one line naming ``where`` (torch's 'Could not infer dtype of dict')."""
    if isinstance(x, Tensor):
        return _numpy(x, where)
    if x is None or isinstance(x, str | bytes | Mapping):
        raise DataTypeError(
            f"{where} must be {expected}, got {kind_phrase(x):.80}; return x or (x, label) from __getitem__"
        )
    try:
        return _numpy(torch.as_tensor(x), where)
    except (TypeError, ValueError, RuntimeError):
        raise DataTypeError(
            f"{where} must be {expected}, got {_kind(x):.60}; return x or (x, label) from __getitem__"
        ) from None


def _array_part(obj: Any, what: str) -> tuple[np.ndarray, np.ndarray | None]:
    if _is_dataset(obj):
        x, y = _materialise(obj, what)
        if y is not None:
            _check_nonnegative(y, what)
        return x, y
    if isinstance(obj, tuple) and len(obj) == 2:
        x, y = _numpy(obj[0], f"{what}[0]"), _numpy(obj[1], f"{what}[1] (labels)")
        if y.ndim != 1 or len(y) != len(x) or not np.issubdtype(y.dtype, np.integer):
            raise UserError(f"{what}: labels must be integers of shape ({len(x)},), got {y.dtype} {tuple(y.shape)}")
        _check_nonnegative(y, what)
        return x, y.astype(np.int64)
    x = _numpy(obj, what)
    return x, None


def _check_finite(x: np.ndarray, what: str) -> None:
    """Refuse NaN or inf in the user's float array ``x``, naming ``what`` (the argument, not the copy in the run
    folder), before anything is written."""
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.complexfloating)) or not x.size:
        return
    bad = ~np.isfinite(x)
    if bad.any():
        found = " and ".join(k for k, m in (("NaN", np.isnan(x)), ("inf", np.isinf(x))) if m.any())
        rows = int(bad.reshape(len(x), -1).any(axis=1).sum()) if x.ndim else 1
        raise UserError(
            f"{what}: the values must be finite (found {found} in {rows} of {len(x)} examples); replace or drop them"
        )


def _token_part(obj: Any, what: str) -> tuple[list[list[int]], list[int] | None]:
    given = None
    seqs = obj
    if isinstance(obj, tuple) and len(obj) == 2:
        seqs, given = obj
        if isinstance(given, str | bytes) or not isinstance(given, Sequence | Tensor | np.ndarray):
            raise DataTypeError(f"{what}: labels must be a list of integer class ids >= 0, got {_kind(given):.60}")
    if isinstance(seqs, Tensor | np.ndarray) or not isinstance(seqs, Sequence) or isinstance(seqs, str | bytes):
        raise DataTypeError(f"{what} must be a list of token-id sequences (lists of ints), got {_kind(seqs):.60}")
    out: list[list[int]] = []
    for i, s in enumerate(seqs):
        ids = s.tolist() if isinstance(s, Tensor | np.ndarray) else s
        if isinstance(ids, str) or not isinstance(ids, Sequence) or not all(isinstance(t, int) for t in ids):
            raise DataTypeError(f"{what}[{i}] must be a sequence of int token ids, got {s!r:.60}")
        if not ids:
            raise UserError(f"{what}[{i}] is empty; every sequence needs at least one token")
        if min(ids) < 0:
            raise UserError(f"{what}[{i}] has a negative token id {min(ids)}")
        out.append(list(ids))
    labels = None if given is None else _token_labels(given, len(out), what)
    return out, labels


def _token_labels(given: Any, n: int, what: str) -> list[int]:
    """The labels of ``n`` token sequences as integer class ids >= 0: one per sequence (the count said first),
    integers (a float is not truncated), none negative (its value and index named)."""
    values = given.reshape(-1).tolist() if isinstance(given, Tensor | np.ndarray) and given.ndim else given
    if isinstance(given, Tensor | np.ndarray) and given.ndim != 1:
        raise UserError(f"{what}: labels must be one-dimensional, one per sequence ({n}), got shape {given.shape}")
    if len(values) != n:
        raise UserError(f"{what}: need one label >= 0 per sequence ({n}), got {len(values)}")
    labels = []
    for i, v in enumerate(values):
        label = _class_label(v)
        if label is None:
            raise DataTypeError(f"{what}: label {v!r:.30} at index {i} is not an integer; labels are class ids >= 0")
        labels.append(label)
    _check_nonnegative(labels, what)
    return labels


def _take(part: tuple[Any, Any], idx: np.ndarray, kind: str) -> tuple[Any, Any]:
    x, y = part
    if kind == "arrays":
        return x[idx], None if y is None else y[idx]
    return [x[i] for i in idx], None if y is None else [y[i] for i in idx]


def _prepare(
    kind: Literal["arrays", "tokens"],
    train: Any,
    valid: Any,
    test: Any,
    *,
    valid_fraction: float,
    test_fraction: float,
    split_seed: int,
) -> tuple[dict[str, tuple[Any, Any]], dict[str, str]]:
    check("split_seed", split_seed, SEED)
    part = _array_part if kind == "arrays" else _token_part
    if train is None:  # the one split that is never held out of another
        accepted = "a tensor, array, Dataset or (x, labels) pair" if kind == "arrays" else "token-id sequences"
        raise DataTypeError(f"data train must be {accepted}, got None")
    given = {"train": train, "valid": valid, "test": test}
    for name in ("valid_fraction", "test_fraction"):
        check(name, valid_fraction if name == "valid_fraction" else test_fraction, FRACTION)
    parts = {k: part(v, f"data {k}") for k, v in given.items() if v is not None}
    if kind == "arrays":
        for k, (x, _) in parts.items():
            _check_finite(x, f"data {k}")
    for k in ("valid", "test"):  # an empty split given on purpose is a slicing slip: none is said with a fraction
        if k in parts and len(parts[k][0]) == 0:
            none = "valid_fraction=0 for no validation split" if k == "valid" else "it out to hold one out of train"
            raise UserError(f"data {k}: the given {k} split holds 0 examples; give examples, or leave {none}")
    rules: dict[str, str] = {}
    missing = [k for k in ("test", "valid") if k not in parts]
    if missing:
        x, _ = parts["train"]
        n = len(x)
        fractions = {"test": test_fraction, "valid": valid_fraction}
        if len(missing) == 2 and valid_fraction + test_fraction >= 1:  # nothing would be left to train on
            raise ConfigError(
                f"valid_fraction + test_fraction must be below 1, got {valid_fraction + test_fraction:g} "
                f"({valid_fraction:g} + {test_fraction:g}): they are the shares of train held out"
            )
        sizes = {k: round(fractions[k] * n) for k in missing}
        if "test" in sizes:
            sizes["test"] = max(sizes["test"], 1)
        if n - sum(sizes.values()) < 1:
            raise UserError(f"{n} training examples are too few to hold out {sizes} and keep a training split")
        perm = fixed_permutation(n, split_seed, "user-holdout")
        end = n
        for k in missing:  # test takes the last positions of the permutation, valid the ones before
            idx = np.sort(perm[end - sizes[k] : end])
            parts[k] = _take(parts["train"], idx, kind)
            rules[k] = f"{sizes[k]} of the {n} given training examples (fixed permutation, split_seed={split_seed})"
            end -= sizes[k]
        parts["train"] = _take(parts["train"], np.sort(perm[:end]), kind)
    labelled = {k: v[1] is not None for k, v in parts.items()}
    if any(labelled.values()) and not all(labelled.values()):
        raise UserError(f"labels are given for some splits but not all ({labelled}); give labels for all or none")
    if kind == "arrays":
        shapes = {k: tuple(v[0].shape[1:]) for k, v in parts.items()}
        if len(set(shapes.values())) > 1:
            raise UserError(f"the splits' examples differ in shape: {shapes}")
        if not 1 <= len(shapes["train"]) <= 3:
            raise UserError(
                f"each example must have 1 to 3 dimensions ((D,), (H, W), (C, H, W)), got {shapes['train']}"
            )
    return {k: parts[k] for k in SPLITS}, rules


def tensor_data(
    train: Any,
    valid: Any = None,
    test: Any = None,
    *,
    binarize: str | None = None,
    valid_fraction: float = 0.1,
    test_fraction: float = 0.1,
    split_seed: int = 0,
    raw: bool = False,
) -> UserData:
    """Arrays as a vaelab data set. Each split is a tensor or numpy array (N, ...) (1 to 3 dims per example), a
    pair ``(x, labels)`` or a torch ``Dataset`` whose items are ``x`` or ``(x, label)``; missing ``valid`` /
    ``test`` splits are held out of ``train`` (fractions of it, fixed permutation seeded by ``split_seed``).
    ``binarize``: ``data.binarize`` (``dynamic`` for grey images under a Bernoulli decoder; default: as given).

    Float arrays are used as given. Float arrays of whole numbers 0..255 with a maximum above 15 (8-bit images
    stored as floats) are refused unless ``raw=True``: a Bernoulli decoder would train on targets > 1 without a
    word; divide them by 255 (or pass uint8, read as intensities), or pass ``raw=True`` for a decoder of real
    values."""
    if not isinstance(raw, bool):  # 'no' would count as true
        raise ConfigError(f"raw must be True or False, got {raw!r:.60}")
    if binarize is not None and binarize not in BINARIZE_MODES:
        raise UserError(
            f"binarize: {binarize!r} is not a valid choice; valid choices: {', '.join(BINARIZE_MODES)}, or None (the "
            "data set's default)"
        )
    splits, rules = _prepare(
        "arrays", train, valid, test, valid_fraction=valid_fraction, test_fraction=test_fraction, split_seed=split_seed
    )
    if not raw:
        refuse_float_intensities(splits)
    return UserData("arrays", splits, binarize=binarize, rules=rules)


def refuse_float_intensities(
    splits: Mapping[str, tuple[Any, Any]], raw_hint: str = "vaelab.tensor_data(x, raw=True)"
) -> None:
    """Refuse float arrays whose values are all whole numbers in 0..255 with a maximum above 15 (see
    :func:`tensor_data`; small counts are left alone). ``raw_hint``: the call that accepts them as given."""
    for name, (x, _) in splits.items():
        arr = np.asarray(x) if x is not None else None
        if arr is None or arr.dtype.kind not in "fiu" or arr.dtype == np.uint8 or not arr.size:
            continue  # uint8 is read as intensities (0..255 -> [0, 1])
        if not np.isfinite(arr).all():
            continue
        lo, hi = float(arr.min()), float(arr.max())
        kind = "float" if arr.dtype.kind == "f" else str(arr.dtype)
        if 15 < hi <= 255 and lo >= 0 and bool(np.all(arr == np.round(arr))):
            raise DataError(
                f"data {name}: {kind} values are whole numbers {lo:g}..{hi:g}, 8-bit intensities stored as {kind}; "
                "vaelab uses float data as given, so a Bernoulli decoder would see targets > 1: divide by 255 (or "
                f"pass uint8), or pass {raw_hint} for a decoder of real values"
            )


def token_data(
    train: Any,
    valid: Any = None,
    test: Any = None,
    *,
    vocab: Sequence[str] | None = None,
    vocab_size: int | None = None,
    valid_fraction: float = 0.1,
    test_fraction: float = 0.1,
    split_seed: int = 0,
) -> UserData:
    """Token-id sequences as a vaelab text data set. Each split is a list of non-empty int sequences (ids in
    [0, V)) or a pair ``(sequences, labels)``. ``vocab``: the word of each id (one token each, no spaces), shown in
    samples; else ``vocab_size`` V (default: 1 + the largest id) and ids are shown as numbers. Inside batches id t
    is t + :data:`TOKEN_OFFSET` (module docstring)."""
    splits, rules = _prepare(
        "tokens", train, valid, test, valid_fraction=valid_fraction, test_fraction=test_fraction, split_seed=split_seed
    )
    top = _vocab_size(splits)
    if vocab is not None:
        if isinstance(vocab, str | bytes) or not isinstance(vocab, Sequence):  # a string: one word per character
            raise UserError(f"vocab must be a list of words (the word of each id), got {_kind(vocab):.60}")
        vocab = [str(w) for w in vocab]
        bad = [w for w in vocab if len(w.split()) != 1 or w != w.strip() or w in SPECIALS]
        if bad:
            raise UserError(f"vocab words must be single tokens without spaces and not {SPECIALS}; got {bad[0]!r}")
        if len(set(vocab)) != len(vocab):
            raise UserError("vocab has repeated words; each id needs its own word")
        vocab_size = len(vocab) if vocab_size is None else vocab_size
        if vocab_size != len(vocab):
            raise UserError(f"vocab has {len(vocab)} words but vocab_size is {vocab_size}")
    size = top if vocab_size is None else int(vocab_size)
    if size < top:
        raise UserError(f"token id {top - 1} is outside vocab_size={size}; ids must be in [0, vocab_size)")
    return UserData("tokens", splits, vocab=list(vocab) if vocab else [str(i) for i in range(size)], rules=rules)


def as_user_data(data: Any) -> UserData:
    """``data`` as :class:`UserData`: itself, a :func:`tensor_data` of a tensor / array / Dataset / ``(x, labels)``,
    a :func:`token_data` of a list of token-id sequences, or a mapping ``{"train": ..., "valid": ..., "test": ...}``
    of either kind."""
    if isinstance(data, UserData):
        return data
    if isinstance(data, Mapping):
        unknown = set(data) - set(SPLITS)
        if unknown or "train" not in data:
            keys = "[" + ", ".join(sorted(map(repr, data))) + "]"  # keys of any type, as a list
            raise UserError(f"a data mapping needs 'train' and may have 'valid', 'test'; got keys {keys}")
        first = data["train"]
        if not _data_kind(first):
            raise DataTypeError(f"data['train'] must be {SPLIT_KINDS}, got {_kind(first):.60}")
        maker = token_data if _looks_like_tokens(first) else tensor_data
        return maker(data["train"], data.get("valid"), data.get("test"))
    if not _data_kind(data):
        raise DataTypeError(f"data must be {DATA_KINDS}, got {_kind(data):.60}")
    return (token_data if _looks_like_tokens(data) else tensor_data)(data)


def _data_kind(obj: Any) -> bool:
    """Whether ``obj`` is of a kind a split can be (its contents are checked by tensor_data / token_data): a
    tensor, a numpy array, a torch Dataset, an ``(x, labels)`` pair or a list of token-id sequences."""
    if isinstance(obj, Tensor | np.ndarray | tuple) or _is_dataset(obj):
        return True
    return isinstance(obj, Sequence) and not isinstance(obj, str | bytes)


def _looks_like_tokens(obj: Any) -> bool:
    seqs = obj[0] if isinstance(obj, tuple) and len(obj) == 2 else obj
    if isinstance(seqs, Tensor | np.ndarray | str) or _is_dataset(seqs) or not isinstance(seqs, Sequence):
        return False
    return len(seqs) > 0 and not isinstance(seqs[0], str) and isinstance(seqs[0], Sequence | Tensor | np.ndarray)


__all__ = [
    "ARRAYS_FILE",
    "DATA_KINDS",
    "TOKEN_OFFSET",
    "VOCAB_FILE",
    "ArrayDataset",
    "DataTypeError",
    "UserData",
    "as_user_data",
    "load_arrays",
    "tensor_data",
    "token_data",
]
