"""Optional TensorBoard logging of a run (``train.tensorboard: true``): the numbers of metrics.jsonl and pictures.

The event files go to ``DIR/tensorboard/``; view them with ``tensorboard --logdir DIR/tensorboard`` (or point
``--logdir`` at a folder of run folders to compare runs). Needs ``pip install 'vaelab[tensorboard]'``.

What is written, at the global step of each metrics.jsonl record (the step reached at the end of the epoch):

- ``<split>/<key>`` for every finite numeric scalar of the record: ``train/*`` are the running means of the
  training steps, ``valid/*`` the validation evaluation (elbo, rate, distortion, mi, au, beta, loss, lr_*, ...);
- numeric lists (``kl_per_dim``, ...) as histograms ``<split>/<key>``, and ``kl_per_dim`` also per latent unit as
  ``<split>/kl_unit/<i>`` (collapsed units are the flat lines at 0);
- image models: ``images/reconstructions`` (a fixed handful of validation examples, top row, above the decoder's
  mean given their posterior means) and ``images/prior_samples`` (the decoder's mean for z ~ p(z) from a fixed
  seed: the same z every epoch); an autoregressive decoder (PixelCNN) draws these pixel by pixel;
- text models: ``text/prior_samples`` (greedy decodings of fixed z ~ p(z)) and ``text/reconstructions`` (fixed
  validation sentences, each followed by the greedy decoding of its posterior mean), via
  :mod:`vaelab.generation`.

Only the main process writes. Pictures are drawn in eval mode under a forked RNG, so they change neither the
model nor the training randomness (a run with TensorBoard gives the numbers of a run without). A resumed run
appends a new event file that hides the events logged after the checkpoint it resumes from (TensorBoard's
``purge_step``), as metrics.jsonl drops those lines. TensorBoard never stops a run: when writing fails (a full
disk, ...) the logger prints one warning and turns itself (or just the pictures) off.
"""

from __future__ import annotations

import math
import numbers
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from vaelab.data import Dataset, ImageDataset
from vaelab.data.text import TextDataset
from vaelab.errors import ConfigError
from vaelab.models.image import ImageDecoder
from vaelab.models.text import LSTMDecoder

TENSORBOARD_DIR = "tensorboard"
"""Sub-folder of the run folder that holds the event files."""

_NOT_LOGGED = frozenset({"step", "split", "source"})


def require_tensorboard() -> type:
    """``torch.utils.tensorboard.SummaryWriter``, or a :class:`ConfigError` that says how to install it."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as e:
        raise ConfigError(
            f"train.tensorboard=true needs the tensorboard package, which cannot be imported ({e}); "
            "install it with: pip install 'vaelab[tensorboard]' (or set train.tensorboard=false)"
        ) from None
    return SummaryWriter


def _warn(msg: str) -> None:
    print(f"vaelab: warning: {msg}", file=sys.stderr, flush=True)


def _plain(value: Any) -> Any:
    """Tensors and numpy arrays as Python numbers / lists; everything else unchanged."""
    if isinstance(value, Tensor | np.ndarray):
        return value.tolist()
    return value


def _real(value: Any) -> float | None:
    """A finite float for a real number (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    v = float(value)
    return v if math.isfinite(v) else None


def image_grid(rows: Sequence[Tensor], pad: int = 1, pad_value: float = 0.5) -> Tensor:
    """Rows of images, each (N, C, H, W) with values in [0, 1], as one (C, R*(H+pad)+pad, N*(W+pad)+pad) image."""
    n, c, h, w = rows[0].shape
    grid = torch.full((c, len(rows) * (h + pad) + pad, n * (w + pad) + pad), pad_value)
    for r, row in enumerate(rows):
        for i in range(row.shape[0]):
            top, left = pad + r * (h + pad), pad + i * (w + pad)
            grid[:, top : top + h, left : left + w] = row[i].float().cpu()
    return grid


def _cuda_devices(model: torch.nn.Module) -> list[int]:
    """The CUDA device of ``model`` (whose RNG ``fork_rng`` must save too), or none."""
    try:
        device = next(model.parameters()).device
    except StopIteration:
        return []
    if device.type != "cuda":
        return []
    return [device.index if device.index is not None else torch.cuda.current_device()]


class TensorBoardLogger:
    """Writes a run's metrics records and per-epoch pictures to TensorBoard event files in ``log_dir``.

    ``fresh``: a run starting from step 0 removes event files left by an earlier attempt in ``log_dir`` (as the
    trainer removes an old metrics.jsonl). ``purge_step``: on resume, the first step logged again; events at that
    step or later from earlier files are hidden. ``num_examples``: validation examples reconstructed and prior
    samples drawn per picture. ``seed``: the data seed and the seed of the prior samples (``seed`` + 1);
    ``eval_binarize_seed``: the validation split's binarisation, as in the trainer's evaluation.
    """

    def __init__(
        self,
        log_dir: str | Path,
        *,
        fresh: bool = False,
        purge_step: int | None = None,
        num_examples: int = 8,
        seed: int = 0,
        eval_binarize_seed: int | None = None,
    ) -> None:
        summary_writer = require_tensorboard()
        self.log_dir = Path(log_dir)
        if fresh and self.log_dir.is_dir():
            for old in self.log_dir.glob("events.out.tfevents.*"):
                old.unlink()
        self.num_examples = num_examples
        self.seed = seed
        self.eval_binarize_seed = eval_binarize_seed
        self._images = True
        self._examples: Tensor | None = None
        self._sentences: list[str] | None = None
        self._range: tuple[float, float] | None = None
        self.writer: Any = summary_writer(log_dir=str(self.log_dir), purge_step=purge_step)

    @classmethod
    def open(cls, log_dir: str | Path, **kwargs: Any) -> TensorBoardLogger | None:
        """A logger, or None with a warning when the event file cannot be created (the run goes on without it);
        a missing tensorboard package is still a :class:`ConfigError`."""
        try:
            return cls(log_dir, **kwargs)
        except ConfigError:
            raise
        except Exception as e:
            _warn(f"cannot write TensorBoard events to {log_dir} ({type(e).__name__}: {e}); going on without them")
            return None

    @property
    def enabled(self) -> bool:
        """False once the writer is closed or turned off after an error."""
        return self.writer is not None

    @contextmanager
    def _guard(self, what: str, *, images_only: bool = False) -> Iterator[None]:
        """Turn a TensorBoard failure into one warning: the pictures (``images_only``) or the logger go off."""
        try:
            yield
        except Exception as e:
            if images_only:
                self._images = False
                _warn(f"TensorBoard {what} failed ({type(e).__name__}: {e}); no more pictures in this run")
            else:
                _warn(f"TensorBoard {what} failed ({type(e).__name__}: {e}); TensorBoard logging is off for this run")
                self._drop_writer()

    def _drop_writer(self) -> None:
        writer, self.writer = self.writer, None
        if writer is not None:
            with suppress(Exception):
                writer.close()

    # ------------------------------------------------------------------------------------------------------
    # scalars

    def log_record(self, record: dict[str, Any]) -> None:
        """Write one metrics.jsonl record at its ``step``: finite numeric scalars as ``<split>/<key>``, numeric
        lists as histograms (``kl_per_dim`` also per unit, ``<split>/kl_unit/<i>``), nested mappings as
        ``<split>/<key>/<sub>``; strings, booleans and non-finite numbers are skipped."""
        if self.writer is None:
            return
        with self._guard("scalar logging"):
            step = int(record["step"])
            prefix = str(record.get("split", "metrics"))
            for key, value in record.items():
                if key not in _NOT_LOGGED:
                    self._log_value(f"{prefix}/{key}", key, _plain(value), step)

    def _log_value(self, tag: str, key: str, value: Any, step: int) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                self._log_value(f"{tag}/{k}", str(k), _plain(v), step)
            return
        if isinstance(value, list | tuple):
            if not value or any(isinstance(v, bool) or not isinstance(v, numbers.Real) for v in value):
                return  # empty, or not a list of numbers
            nums = [_real(v) for v in value]
            finite = np.asarray([v for v in nums if v is not None], dtype=np.float64)
            if finite.size:
                self.writer.add_histogram(tag, finite, step)
            if key == "kl_per_dim":
                parent = tag.rsplit("/", 1)[0]
                for i, v in enumerate(nums):
                    if v is not None:
                        self.writer.add_scalar(f"{parent}/kl_unit/{i}", v, step)
            return
        v = _real(value)
        if v is not None:
            self.writer.add_scalar(tag, v, step)

    # ------------------------------------------------------------------------------------------------------
    # pictures

    @torch.no_grad()
    def log_images(self, model: Any, dataset: Dataset, step: int) -> None:
        """Reconstructions of fixed validation examples and decodings of fixed prior samples: images for image
        models, sentences for text models (nothing for other models)."""
        if self.writer is None or not self._images:
            return
        from vaelab.metrics.collect import eval_mode

        with (
            self._guard("pictures", images_only=True),
            torch.random.fork_rng(devices=_cuda_devices(model)),
            eval_mode(model),
        ):
            if isinstance(model.decoder, ImageDecoder) and isinstance(dataset, ImageDataset):
                self._log_image_grids(model, dataset, step)
            elif isinstance(model.decoder, LSTMDecoder) and isinstance(dataset, TextDataset):
                self._log_sentences(model, dataset, step)

    def _fixed_examples(self, dataset: ImageDataset, device: torch.device) -> Tensor:
        """The first ``num_examples`` validation examples, binarised as the trainer's evaluation does (cached)."""
        if self._examples is None:
            split = "valid" if len(dataset.split("valid")) else "train"
            n = min(self.num_examples, len(dataset.split(split)))
            loader = dataset.loader(split, n, seed=self.seed, shuffle=False, eval_binarize_seed=self.eval_binarize_seed)
            x = next(iter(loader.epoch(0))).x.float().cpu()
            lo, hi = float(x.min()), float(x.max())
            self._range = (0.0, 1.0) if lo >= 0.0 and hi <= 1.0 else (lo, hi if hi > lo else lo + 1.0)
            self._examples = x
        return self._examples.to(device)

    def _to_unit(self, t: Tensor) -> Tensor:
        """Images in the data's range -> [0, 1] (data in [0, 1] only clamped), at most 3 channels shown."""
        lo, hi = self._range or (0.0, 1.0)
        t = ((t.float().cpu() - lo) / (hi - lo)).clamp(0.0, 1.0)
        return t if t.shape[1] in (1, 3) else t[:, :1]

    def _log_image_grids(self, model: Any, dataset: ImageDataset, step: int) -> None:
        _, h, w = dataset.image_shape
        if h == 1 or w == 1:
            return  # vectors, not pictures
        device = next(model.parameters()).device
        x = self._fixed_examples(dataset, device)
        recon = model.reconstruct(x, mean=True)
        self.writer.add_image("images/reconstructions", image_grid([self._to_unit(x), self._to_unit(recon)]), step)
        g = torch.Generator(device=device).manual_seed(self.seed + 1)
        samples = model.sample(x.shape[0], mean=True, generator=g)
        self.writer.add_image("images/prior_samples", image_grid([self._to_unit(samples)]), step)

    def _log_sentences(self, model: Any, dataset: TextDataset, step: int) -> None:
        from vaelab.generation import TextRun, reconstruct, sample_prior

        run = TextRun.from_data(model, dataset)
        samples = sample_prior(run, self.num_examples, greedy=True, seed=self.seed + 1)
        self.writer.add_text("text/prior_samples", _markdown_lines(samples), step)
        if self._sentences is None:
            valid = dataset.split("valid")
            self._sentences = [dataset.decode(valid.sentence(i)) for i in range(min(self.num_examples, len(valid)))]
            self._sentences = [s for s in self._sentences if s.strip()]
        if self._sentences:
            pairs = reconstruct(run, self._sentences, greedy=True, seed=self.seed + 1)
            lines = [f"{seen}  ->  {outs[0]}" for seen, outs in pairs]
            self.writer.add_text("text/reconstructions", _markdown_lines(lines), step)

    # ------------------------------------------------------------------------------------------------------

    def flush(self) -> None:
        """Write buffered events to disk (the trainer calls this once per epoch)."""
        if self.writer is not None:
            with self._guard("flush"):
                self.writer.flush()

    def close(self) -> None:
        """Flush and close the event file; later calls do nothing."""
        if self.writer is not None:
            with self._guard("close"):
                self.writer.flush()
            self._drop_writer()


def _markdown_lines(lines: Sequence[str]) -> str:
    """Lines shown verbatim by TensorBoard's markdown text plugin (an indented code block), numbered."""
    return "\n".join(f"    {i + 1:2d}. {s}" for i, s in enumerate(lines))


__all__ = ["TENSORBOARD_DIR", "TensorBoardLogger", "image_grid", "require_tensorboard"]
