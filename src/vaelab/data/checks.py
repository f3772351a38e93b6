"""The rule of every ``data.*`` key (:data:`DATA_RULES`) and the rules relating them to each other and to the
data set (:func:`check_data`): what :func:`vaelab.data.load_dataset` checks first, and what
:func:`vaelab.checks.validate_config` applies to a loaded config.
"""

from __future__ import annotations

import math
from typing import Any

from vaelab.data.config import DataConfig
from vaelab.data.dataset import DATASETS
from vaelab.errors import ConfigError
from vaelab.rules import (
    COUNT,
    MAX_EXAMPLES,
    MAX_UNITS,
    MIN_EVAL_EXAMPLES,
    SEED,
    WIDTH,
    Choice,
    Int,
    Items,
    Num,
    Rule,
    Text,
    Typed,
    check_section,
)


def is_text_data(name: str) -> bool:
    """Whether ``data.name`` holds sentences: the modality its loader registered with (:mod:`vaelab.data.dataset`;
    the others hold images or arrays)."""
    return name in DATASETS and DATASETS.modality(name) == "text"


MAX_TOPICS = 1000
"""The most topics of ``synthetic_text`` (each has its own content words; 10**18 ran for ever)."""

DATA_RULES: dict[str, Rule] = {
    "data.name": Choice(registry=lambda: DATASETS),
    "data.root": Typed(why="a folder"),
    "data.binarize": Typed(why="a binarisation mode"),
    "data.valid_size": Int(0),
    "data.train_size": Int(1, optional=True),
    "data.eval_size": Int(MIN_EVAL_EXAMPLES, MAX_EXAMPLES, optional=True),  # MI and active units need two
    "data.split_seed": SEED,
    "data.path": Typed(why="a path"),
    "data.files": Typed(why="a mapping of roles to file names (roles checked by the data set)"),
    "data.image_shape": Items(optional=True, item=Int(1, MAX_UNITS), min_len=1, max_len=3),
    "data.num_examples": Int(1, MAX_EXAMPLES),
    "data.latent_dim": WIDTH,
    "data.noise": Num(lo=0, hi=1000),  # a flip probability, or the sd of data that are O(1)
    "data.num_templates": Int(1, MAX_TOPICS),
    "data.verify_checksum": Typed(),
    "data.split_kind": Typed(),
    "data.cache_dir": Typed(why="a folder"),
    "data.format": Typed(),
    "data.vocab_size": Int(5, optional=True),
    "data.vocab_file": Typed(why="a file"),
    "data.max_length": Int(1, optional=True),
    "data.min_length": COUNT,
    "data.length_policy": Typed(),
    "data.lowercase": Typed(),
    "data.skip_malformed": Typed(),
    "data.labels_as_words": Typed(),
    "data.bucketing": Typed(),
    "data.unk_token": Text(optional=True, one_token=True),
}
"""The rule of every ``data.*`` key."""


MAX_IMAGE_VALUES = 10**8
"""The most values (C * H * W) one image of ``data.image_shape`` may hold (a 10**10 one is a typo, not a memory
error at the first batch)."""


FIXED_VALID_SPLIT = {
    "synthetic_blobs": "data.eval_size examples (default num_examples // 4)",
    "synthetic_gaussian": "data.eval_size examples (default num_examples // 4)",
    "synthetic_text": "data.eval_size examples (default num_examples // 4)",
    "binarized_mnist": "the official one (10,000 images)",
}
"""Data sets whose validation split does not come from ``data.valid_size``, and what it is."""
FIXED_VALID_SPLIT_DEFAULT = 10000
"""``DataConfig.valid_size``'s default: the value those data sets accept (a saved config always holds it)."""


def check_data(d: Any) -> None:
    """Every rule of the ``data`` section (:data:`DATA_RULES` and the relations between its keys and the data set)."""
    check_section(d, "data", DATA_RULES)
    if d.image_shape is not None and math.prod(d.image_shape) > MAX_IMAGE_VALUES:
        raise ConfigError(
            f"data.image_shape={list(d.image_shape)} has {math.prod(d.image_shape):,} values per image, more than "
            f"the {MAX_IMAGE_VALUES:,} allowed; give the images' real (C, H, W)"
        )
    if d.max_length is not None and d.min_length > d.max_length:
        raise ConfigError(f"data.min_length={d.min_length} exceeds data.max_length={d.max_length}")
    if d.name == "synthetic_blobs" and d.noise > 0.5:
        raise ConfigError(f"data.noise must be a flip probability in [0, 0.5] for synthetic_blobs, got {d.noise}")
    if d.name == "synthetic_gaussian" and not d.noise > 0:
        raise ConfigError(f"data.noise must be a number > 0 (the noise sd) for synthetic_gaussian, got {d.noise}")
    if d.name == "synthetic_text":
        if not d.noise < 1:
            raise ConfigError(f"data.noise must be a probability in [0, 1) for synthetic_text, got {d.noise}")
        if d.num_templates < 2:
            raise ConfigError(
                f"data.num_templates must be an integer >= 2 (topics) for synthetic_text, got {d.num_templates}"
            )
    if d.name in FIXED_VALID_SPLIT and d.valid_size != FIXED_VALID_SPLIT_DEFAULT:
        raise ConfigError(
            f"data.valid_size={d.valid_size} is not read by data.name={d.name}, whose validation split is "
            f"{FIXED_VALID_SPLIT[d.name]}; remove data.valid_size"
        )
    _check_modality_keys(d)
    if d.labels_as_words and d.format != "plain":
        raise ConfigError(f"data.labels_as_words applies to data.format=plain, not {d.format}")
    if d.name == "ptb" and d.format != "plain":
        raise ConfigError(f"data.format={d.format!r}: the ptb files are plain text (use data.name=text)")


CORPUS_FILE_KEYS = (
    "format",
    "vocab_file",
    "max_length",
    "min_length",
    "length_policy",
    "unk_token",
    "lowercase",
    "skip_malformed",
    "labels_as_words",
)
"""The text keys that say how a corpus *file* is read (the generated corpus, synthetic_text, reads none)."""
TEXT_ONLY_DATA_KEYS = (*CORPUS_FILE_KEYS, "vocab_size", "bucketing")
"""``data`` keys that only a text corpus reads; on image data each must keep its default."""
IMAGE_ONLY_DATA_KEYS = ("binarize", "image_shape")
"""``data`` keys that only image data read; on text each must keep its default (None)."""


GENERATED_DATASETS = ("synthetic_blobs", "synthetic_gaussian", "synthetic_text")
"""The data sets drawn by a seeded generator (``data.num_examples``; validation and test ``data.eval_size`` each)."""
FILE_DATASETS = ("mnist", "fashion_mnist", "binarized_mnist", "omniglot", "idx", "npz", "arrays", "text", "ptb")
"""The data sets read from files (``data.path``, ``data.root``); the generated ones read none."""

DATASET_ONLY_KEYS: dict[str, tuple[str, ...]] = {
    "num_examples": GENERATED_DATASETS,
    "latent_dim": ("synthetic_gaussian",),
    "noise": GENERATED_DATASETS,
    "num_templates": ("synthetic_blobs", "synthetic_text"),
    "split_kind": ("tetrominoes",),
    "cache_dir": ("tetrominoes",),
    "root": (*FILE_DATASETS, "tetrominoes"),  # tetrominoes: its default cache folder
    "path": FILE_DATASETS,
    "files": ("idx", "npz", "text", "ptb"),
    "verify_checksum": ("binarized_mnist", "omniglot", "text", "ptb"),
    # how a corpus file is read: the generated corpus (synthetic_text) writes its sentences itself
    **{key: ("text", "ptb") for key in CORPUS_FILE_KEYS},
}
"""``data`` keys that only the named data sets read (the generators' settings, the rendered sets' split and cache,
the file readers' folder, files and checksums); another data set ignores them."""


def check_data_keys(name: str, given: Any) -> None:
    """Refuse a ``data.*`` key the user wrote (``given``: leaf names) that ``data.name=name`` does not read
    (:data:`DATASET_ONLY_KEYS`): ``data.latent_dim`` on synthetic_blobs, or the file's ``data.num_examples`` after an
    override switched ``data.name`` to npz. Fresh configs only (:func:`vaelab.checks.check_written_keys`)."""
    if name not in DATASETS:
        return
    for key in given:
        readers = DATASET_ONLY_KEYS.get(key)
        if readers is not None and name not in readers:
            raise ConfigError(
                f"data.{key}: not read by data.name={name} (only by data.name={' or '.join(readers)}); remove it "
                "or choose a data set that uses it"
            )


def _check_modality_keys(d: Any) -> None:
    """A key that the data set's modality does not read is refused rather than ignored (``data.max_length`` on
    MNIST, ``data.binarize`` on a corpus). Unknown data set names are left to the registry's own error."""
    if d.name not in DATASETS:
        return
    default = DataConfig()
    text = is_text_data(d.name)
    keys = IMAGE_ONLY_DATA_KEYS if text else TEXT_ONLY_DATA_KEYS
    for key in keys:
        value = getattr(d, key)
        if value != getattr(default, key):
            kind = "a text corpus" if text else "image data"
            raise ConfigError(f"data.{key}={value!r} is not read by data.name={d.name} ({kind}); remove data.{key}")
