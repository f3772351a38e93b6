"""Any image data set stored as IDX files or one .npz file, described by the ``data:`` config.

``idx``: ``data.path`` is the folder (default: the data folder), ``data.files`` maps roles to file names:

    data: {name: idx, path: /data/kmnist, files: {train_images: train-images-idx3-ubyte.gz, ...}}

Roles: ``train_images, test_images`` (required), ``valid_images`` and the ``*_labels`` (optional). Without
``files`` the MNIST names (train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-...) are used.
Images are IDX (N, H, W), (N, C, H, W) or (N, D) (then ``image_shape``); labels IDX (N,) integers.

``npz``: ``data.path`` is the .npz file (relative to the data folder unless absolute), ``data.files`` maps
roles ``train, valid, test, train_labels, valid_labels, test_labels`` to array keys (default keys:
train/x_train/train_images, valid/x_valid/validation/valid_images, test/x_test/test_images, and
train_labels/y_train, ...).

Values may be uint8 0..255, 0/1 (any integer type or bool) or floats in [0, 1]; with ``data.binarize: none``
(for a decoder of real values, ``model.likelihood: gaussian``) floats of any finite range are used as given.
Without a validation file the validation split is held out of train as for MNIST (``valid_size``). The default
binarisation is static when every split is 0/1 and dynamic otherwise. ``data.image_shape`` may add unit dimensions
to the stored shape or flatten it (``[64]`` for (N, 8, 8) arrays).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

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
    num_classes_of,
    resolve_data_file,
    resolve_data_root,
    root_note,
    sha256_file,
)
from vaelab.data.config import DataConfig
from vaelab.data.idx import find_idx_file, read_idx
from vaelab.errors import ConfigError

IDX_ROLES = ("train_images", "train_labels", "valid_images", "valid_labels", "test_images", "test_labels")
IDX_DEFAULT_STEMS = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
NPZ_ROLES = ("train", "valid", "test", "train_labels", "valid_labels", "test_labels")
NPZ_DEFAULT_KEYS: dict[str, tuple[str, ...]] = {
    "train": ("train", "x_train", "train_images"),
    "valid": ("valid", "x_valid", "validation", "valid_images", "x_val", "val"),
    "test": ("test", "x_test", "test_images"),
    "train_labels": ("train_labels", "y_train"),
    "valid_labels": ("valid_labels", "y_valid", "validation_labels", "y_val", "val_labels"),
    "test_labels": ("test_labels", "y_test"),
}


def _check_roles(files: dict[str, str], roles: tuple[str, ...], name: str) -> None:
    unknown = sorted(set(files) - set(roles))
    if unknown:
        raise ConfigError(
            f"unknown role(s) {unknown} in data.files for data set {name!r}; valid roles: {', '.join(roles)}"
        )


def _assemble(
    name: str,
    cfg: DataConfig,
    parts: dict[str, Split | None],
    info: dict[str, Any],
    source: str,
) -> ImageDataset:
    train, valid, test = parts["train"], parts.get("valid"), parts["test"]
    assert train is not None and test is not None
    shape = tuple(train.x.shape[1:])
    for split, s in (("valid", valid), ("test", test)):
        if s is not None and len(s) and tuple(s.x.shape[1:]) != shape:
            raise DataError(
                f"{source}: the {split} images are {tuple(s.x.shape[1:])} (C, H, W), the train images {shape}; every "
                "split must hold images of one shape: resize or re-export them"
            )
    if valid is None:
        if cfg.valid_size == 0:
            valid = empty_like(train)
            info["split"] = "no validation split (data.valid_size=0)"
        else:
            train, valid, info["split"] = holdout_split(train, cfg.valid_size, cfg.split_seed, source)
    else:
        if cfg.valid_size != DataConfig.valid_size:  # the file's own split is used: the key would be ignored
            raise ConfigError(
                f"data.valid_size={cfg.valid_size} is not read: {source} holds its own validation split; remove "
                "data.valid_size (or the validation array from the file)"
            )
        info["split"] = "validation split from its own file/key"
    labelled = [s.y is not None for s in (train, valid, test) if len(s)]
    if any(labelled) and not all(labelled):
        raise DataError(f"{source}: labels are given for some splits but not all; give labels for all or none")
    binary = all(s.is_binary() for s in (train, valid, test))
    return finalize(
        name,
        cfg,
        train,
        valid,
        test,
        default_binarize="static" if binary else "dynamic",
        num_classes=num_classes_of(train, valid, test, source=source),
        info=info,
    )


@DATASETS.register("idx", modality="image")
def load_idx_dataset(cfg: DataConfig) -> ImageDataset:
    """An image data set from IDX files (see the module docstring for the ``data.files`` roles)."""
    root, setting = resolve_data_root(cfg)
    if cfg.path:
        folder, where = Path(cfg.path).expanduser(), "folder chosen by config key data.path"
        if not folder.is_absolute():
            folder = root / folder
    else:
        folder, where = root, root_note(root, setting)
    paths: dict[str, Path] = {}
    if cfg.files is not None:
        _check_roles(cfg.files, IDX_ROLES, "idx")
        for role, fname in cfg.files.items():
            p = Path(fname).expanduser()
            paths[role] = p if p.is_absolute() else folder / p
    else:
        for role, stem in IDX_DEFAULT_STEMS.items():
            found = find_idx_file(folder, stem)
            if found is not None:
                paths[role] = found
    for role in ("train_images", "test_images"):
        if role not in paths:
            default = IDX_DEFAULT_STEMS[role]
            raise data_error(
                folder / default,
                f"no {role} file (data.files.{role} unset and no {default}[.gz] in {folder})",
                "data.files to name the IDX files",
                where,
            )
    parts: dict[str, Split | None] = {}
    for split in ("train", "valid", "test"):
        img_path = paths.get(f"{split}_images")
        if img_path is None:
            if f"{split}_labels" in paths:
                raise ConfigError(f"data.files gives {split}_labels but no {split}_images")
            parts[split] = None
            continue
        x = read_idx(img_path, where=where)
        y = None
        lab_path = paths.get(f"{split}_labels")
        if lab_path is not None:
            y = read_idx(lab_path, where=where)
            if y.ndim != 1:
                raise data_error(
                    lab_path, f"labels have shape {y.shape}", "a 1-d IDX label file (magic 0x00000801)", where
                )
            if len(y) != len(x):
                raise data_error(
                    lab_path,
                    f"{len(y)} labels for the {len(x)} images of {img_path}",
                    f"{len(x)} labels",
                    where,
                )
        parts[split] = images_to_split(
            x,
            y,
            source=str(img_path),
            image_shape=cfg.image_shape,
            where=where,
            label_source=str(lab_path),
            real=cfg.binarize == "none",
        )
    info = {
        "source": str(folder),
        "format": "IDX",
        "files": {k: str(v) for k, v in paths.items()},
        "sha256": {k: sha256_file(v) for k, v in paths.items()},
    }
    return _assemble("idx", cfg, parts, info, str(folder))


@DATASETS.register("npz", modality="image")
def load_npz_dataset(cfg: DataConfig) -> ImageDataset:
    """An image data set from one .npz file (see the module docstring for the ``data.files`` roles)."""
    path, where = resolve_data_file(cfg, ".npz file")
    if cfg.files is not None:
        _check_roles(cfg.files, NPZ_ROLES, "npz")
    with open(path, "rb") as f:
        magic = f.read(4)
    not_npz = "cannot be read as .npz: not a zip archive of arrays (as numpy.savez writes)"
    if magic not in (b"PK\x03\x04", b"PK\x05\x06"):  # a zip archive (or an empty one); np.load would unpickle others
        raise data_error(path, not_npz, None, where)
    try:
        z = np.load(path, allow_pickle=False)
    except Exception as e:
        raise data_error(path, f"cannot be read as .npz ({type(e).__name__}: {e})", None, where) from e
    if not hasattr(z, "files"):  # a zip that np.load returned as something else
        raise data_error(path, not_npz, None, where)
    with z:
        present = sorted(z.files)
        keys: dict[str, str] = {}
        for role in NPZ_ROLES:
            if cfg.files is not None and role in cfg.files:
                key = cfg.files[role]
                if key not in present:
                    raise data_error(
                        path,
                        f"no array {key!r} (config data.files.{role}); arrays in file: {', '.join(present)}",
                        None,
                        where,
                    )
                keys[role] = key
            else:
                found = [k for k in NPZ_DEFAULT_KEYS[role] if k in present]
                if len(found) > 1:  # which one is meant cannot be guessed
                    raise data_error(
                        path,
                        f"arrays {', '.join(repr(k) for k in found)} are each a default key of the {role} split",
                        f"the one to use named in data.files.{role}",
                        where,
                    )
                if found:
                    keys[role] = found[0]
        for role in ("train", "test"):
            if role not in keys:
                raise data_error(
                    path,
                    f"no {role} images: set data.files.{role}; arrays in file: {', '.join(present)}",
                    f"one of the keys {', '.join(NPZ_DEFAULT_KEYS[role])}",
                    where,
                )
        unread = [k for k in present if k not in keys.values()]
        if unread:  # a misspelt split (x_vlaid) would be left out without a word, its split taken from train
            read = ", ".join(f"{k} ({r})" for r, k in keys.items())
            raise data_error(
                path,
                f"array{'s' if len(unread) > 1 else ''} {', '.join(repr(k) for k in unread)} of no split (read: "
                f"{read})",
                "every array a split or its labels: name its role in data.files (e.g. data.files.valid=KEY) or "
                "remove it from the file",
                where,
            )
        parts: dict[str, Split | None] = {}
        for split in ("train", "valid", "test"):
            if split not in keys:
                if f"{split}_labels" in keys and cfg.files and f"{split}_labels" in cfg.files:
                    raise ConfigError(f"data.files gives {split}_labels but no {split} images")
                parts[split] = None
                continue
            try:
                x = z[keys[split]]
                y = z[keys[f"{split}_labels"]] if f"{split}_labels" in keys else None
            except ValueError as e:  # object arrays need pickle, which is refused
                raise data_error(path, f"array cannot be loaded without pickle ({e})", "numeric arrays", where) from e
            if split == "valid" and getattr(x, "ndim", 0) >= 1 and len(x) == 0:  # (finalize refuses empty train, test)
                raise data_error(
                    path,
                    f"array {keys[split]!r} ({split} split) is empty (0 examples)",
                    f"at least one example, or no {split} array at all",
                    where,
                )
            parts[split] = images_to_split(
                x,
                y,
                source=f"{path}[{keys[split]}]",
                image_shape=cfg.image_shape,
                where=where,
                label_source=f"{path}[{keys[f'{split}_labels']}]" if y is not None else None,
                real=cfg.binarize == "none",
            )
    info = {"source": str(path), "format": "npz", "keys": keys, "sha256": sha256_file(path)}
    return _assemble("npz", cfg, parts, info, str(path))
