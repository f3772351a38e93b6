"""The data-set contract: what every data set (images, text corpora, the user's arrays or token ids) offers the
rest of vaelab, so that nothing downstream tells text from images by a class's module or by which attributes an
object happens to have.

A :class:`Dataset` has

- ``modality``: ``"image"`` (each example a tensor (C, H, W): :class:`~vaelab.data.base.ImageDataset`, the user's
  arrays :class:`~vaelab.data.user.ArrayDataset`) or ``"text"`` (sentences of word ids:
  :class:`~vaelab.data.text.TextDataset`, the user's token ids);
- ``split(name)``: the ``train``, ``valid`` or ``test`` split (:class:`DataSplit`: its length, its labels ``y`` or
  None, ``subset``);
- ``loader(split, batch_size, seed=..., ...)``: the split's batches, deterministic in (seed, epoch), resumable and
  sharded over processes (:class:`Loader` of :class:`DataBatch`);
- ``model_info()``: what a model builder needs to know about the data (the ``data_info`` of
  :func:`vaelab.models.build_model`): ``image_shape`` for images; ``vocab_size``, the special ids, the vocabulary
  and ``max_length`` for text; ``num_classes`` for both;
- ``name`` (``data.name``), ``num_classes`` (None without labels) and ``info`` (the provenance record written to the
  run's config.yaml).

A loader registers itself with its modality, ``@DATASETS.register("mnist", modality="image")``, so the modality of
a ``data.name`` is known before any file is read (:func:`vaelab.data.dataset_modality`).
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar, Literal, Protocol

import numpy as np
import torch
from torch import Tensor

from vaelab.data.config import DataConfig
from vaelab.registry import Registry

Modality = Literal["image", "text"]
MODALITIES: tuple[Modality, ...] = ("image", "text")


class DataBatch(Protocol):
    """One batch of a :class:`Loader`: ``x`` (a float tensor (b, C, H, W) for images, a
    :class:`~vaelab.data.text.TokenBatch` for text), ``y`` the labels (b,) or None; ``len`` is b."""

    x: Any
    y: Tensor | None

    def __len__(self) -> int: ...

    def to(self, device: torch.device | str, non_blocking: bool = False) -> DataBatch: ...


class Loader(Protocol):
    """A split's batches (:class:`~vaelab.data.loader.BatchLoader`, :class:`~vaelab.data.text.TextLoader`): ``len``
    batches per epoch for this process; ``batch_sizes()`` their sizes; ``epoch(e, start_batch)`` the batches of
    epoch ``e`` from ``start_batch`` on (a resumed epoch continues where it stopped)."""

    def __len__(self) -> int: ...

    def batch_sizes(self) -> list[int]: ...

    def epoch(self, epoch: int, start_batch: int = 0) -> Iterator[Any]: ...


class DataSplit(Protocol):
    """One split held in memory (:class:`~vaelab.data.split.Split`, :class:`~vaelab.data.text.TextSplit`):
    ``len`` examples, labels ``y`` (int64 (N,)) or None, ``subset(index)`` a new split of those examples."""

    y: Tensor | None

    def __len__(self) -> int: ...

    def subset(self, index: Tensor | np.ndarray | Sequence[int]) -> Any: ...


class Dataset(ABC):
    """The data-set contract (see the module's docstring). Implementations: :class:`~vaelab.data.base.ImageDataset`
    (and :class:`~vaelab.data.user.ArrayDataset`), :class:`~vaelab.data.text.TextDataset`."""

    modality: ClassVar[Modality]
    name: str
    num_classes: int | None
    info: dict[str, Any]

    @abstractmethod
    def split(self, name: str) -> DataSplit:
        """The split called ``name``: "train", "valid" or "test" (a KeyError names the valid choices)."""

    @abstractmethod
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
        eval_binarize_seed: int | None = None,
    ) -> Loader:
        """The batches of ``split``: ``batch_size`` per global batch (summed over the ``world_size`` processes, this
        process's shard ``rank``), shuffled from ``seed`` and the epoch (default: the training split only);
        ``eval_binarize_seed``: the fixed binarisation of evaluation splits (images; text ignores it)."""

    @abstractmethod
    def model_info(self) -> dict[str, Any]:
        """What a model builder needs to know about the data (``data_info`` of :func:`vaelab.models.build_model`)."""

    def with_split(self, name: str, split: Any) -> Dataset:
        """A copy of this data set whose split ``name`` is ``split`` (the other splits shared, not copied). The
        implementations are dataclasses with one field per split; others override this."""
        self.split(name)  # an unknown name: the KeyError naming the valid choices
        return dataclasses.replace(self, **{name: split})  # type: ignore[type-var]

    @property
    def unit(self) -> str:
        """What one example is called in messages: ``sentences`` (text) or ``examples``."""
        return "sentences" if self.modality == "text" else "examples"


class DatasetRegistry(Registry[Callable[[DataConfig], Dataset]]):
    """``data.name`` -> the loader (DataConfig -> :class:`Dataset`), each registered with its modality."""

    def __init__(self) -> None:
        super().__init__("data set")
        self._modality: dict[str, Modality] = {}

    def register(self, name: str, *, modality: Modality | None = None) -> Callable[[Any], Any]:  # type: ignore[override]
        """Register a loader as ``data.name`` ``name`` whose data sets are of ``modality`` ("image" or "text")."""
        if modality not in MODALITIES:
            raise ValueError(f"data set {name!r}: register it with its modality, one of {', '.join(MODALITIES)}")
        deco = super().register(name)
        self._modality[name] = modality
        return deco

    def modality(self, name: str, key: str | None = "data.name") -> Modality:
        """The modality of the data sets ``name`` loads; an unknown name is the registry's error (naming ``key``)."""
        self.get(name, key=key)
        return self._modality[name]


DATASETS = DatasetRegistry()
"""The registered data sets (``data.name``): ``DATASETS.get(name)`` is the loader, ``DATASETS.modality(name)``
its modality."""


__all__ = [
    "DATASETS",
    "MODALITIES",
    "DataBatch",
    "DataSplit",
    "Dataset",
    "DatasetRegistry",
    "Loader",
    "Modality",
]
