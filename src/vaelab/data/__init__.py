"""Image data sets as in-memory tensors with train / valid / test splits, and deterministic batch loaders.

    from vaelab.data import DataConfig, load_dataset
    ds = load_dataset(DataConfig(name="mnist"))          # 50k / 10k / 10k, dynamic binarisation
    train = ds.loader("train", 128, seed=0)               # BatchLoader; for b in train.epoch(e): b.x
    (B,1,28,28) valid = ds.loader("valid", 1000, seed=0)              # binarised once with a fixed seed

Registered data sets (``data.name``): mnist, fashion_mnist, binarized_mnist, omniglot, idx, npz,
synthetic_blobs, synthetic_gaussian, arrays (the user's arrays, :mod:`vaelab.data.user`), the text corpora
text and ptb (:mod:`vaelab.data.text`) and the generated
labelled corpus synthetic_text (:mod:`vaelab.data.synthetic_text`). Files are read from the data folder
(:func:`resolve_data_root`); nothing is downloaded. Split conventions:
:mod:`vaelab.data.base`; batching, resuming and DDP sharding: :mod:`vaelab.data.loader` (images) and
:mod:`vaelab.data.text` (length-bucketed token batches).
"""

from __future__ import annotations

from vaelab.data import (  # noqa: F401  (register the data sets)
    generic,
    images,
    synthetic,
    synthetic_text,
    tetrominoes,
    text,
    user,
)
from vaelab.data.base import (
    DATASETS,
    DEFAULT_EVAL_BINARIZE_SEED,
    SPLITS,
    DataError,
    ImageDataset,
    Split,
    resolve_data_root,
)
from vaelab.data.checks import DATA_RULES, check_data
from vaelab.data.config import BINARIZE_MODES, BinarizeMode, DataConfig
from vaelab.data.dataset import MODALITIES, DataBatch, Dataset, DataSplit, Loader, Modality
from vaelab.data.idx import read_idx, write_idx
from vaelab.data.loader import Batch, BatchLoader
from vaelab.data.synthetic import linear_gaussian_log_likelihood


def load_dataset(cfg: DataConfig) -> Dataset:
    """The data set named by ``cfg.name`` (config key ``data.name``), loaded and split: an implementation of the
    contract :class:`~vaelab.data.dataset.Dataset` (an :class:`ImageDataset` or a
    :class:`~vaelab.data.text.TextDataset`; ``modality`` says which).

    An unknown name raises an error listing the registered ones; missing or corrupt files raise
    :class:`DataError` naming the file, the setting that chose the data folder and what was expected. Every
    ``data.*`` value is checked first, by the rules of :mod:`vaelab.data.checks` (a config that was loaded has
    passed them already; this is the guard of a :class:`DataConfig` built in Python).
    """
    loader = DATASETS.get(cfg.name, key="data.name")
    check_data(cfg)
    return loader(cfg)


def dataset_modality(name: str, key: str | None = "data.name") -> Modality:
    """The modality ("image" or "text") of the registered data set ``name``, known without loading it (each
    loader registers with its modality); an unknown name raises the registry's error naming ``key``."""
    return DATASETS.modality(name, key=key)


__all__ = [
    "BINARIZE_MODES",
    "DATASETS",
    "DATA_RULES",
    "DEFAULT_EVAL_BINARIZE_SEED",
    "MODALITIES",
    "SPLITS",
    "Batch",
    "BatchLoader",
    "BinarizeMode",
    "DataBatch",
    "DataConfig",
    "DataError",
    "DataSplit",
    "Dataset",
    "ImageDataset",
    "Loader",
    "Modality",
    "Split",
    "check_data",
    "dataset_modality",
    "linear_gaussian_log_likelihood",
    "load_dataset",
    "read_idx",
    "resolve_data_root",
    "write_idx",
]
