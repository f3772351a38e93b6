"""Mixed precision (``train.precision``): where the matrix products run in bfloat16 or float16, and what stays float32.

- ``fp32``: everything float32 (the default; bit-exact resume and 1-vs-2-process equality on a CPU).
- ``bf16``: the model's forward (training and evaluation) under ``torch.autocast`` with bfloat16, on a CPU or a CUDA
  device: linear layers, LSTMs and convolutions compute in bfloat16 (3x float32's matrix-product throughput on a CPU
  with AVX-512 BF16). Same exponent range as float32, so no loss scaling.
- ``fp16``: float16 autocast with dynamic loss scaling (``torch.amp.GradScaler``), CUDA only (CPUs have no fast
  float16 products, and float16's range needs the scaler).

What stays float32 whatever the setting: the posterior's mu and logvar (so the rate KL(q||p) and z), the decoders'
log-likelihoods (log-softmax over the vocabulary, the pixel likelihoods), the IW-NLL's log-sum-exp over samples
(float64), the optimiser state and the reported metrics. The weights stay float32 (autocast casts copies).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any

import torch

from vaelab.errors import ConfigError

PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class Precision:
    """The autocast context and (fp16) the gradient scaler of one run on one device."""

    def __init__(self, name: str = "fp32", device: torch.device | str = "cpu") -> None:
        if name not in PRECISIONS:
            raise ConfigError(f"train.precision: {name!r} is not a valid choice; valid choices: fp32, bf16, fp16")
        device = torch.device(device)
        if name == "fp16" and device.type != "cuda":
            raise ConfigError(
                f"train.precision: fp16 needs a CUDA device (it runs with loss scaling), but this run is on "
                f"{device.type}; use train.precision=bf16 on a CPU"
            )
        self.name = name
        self.device_type = device.type
        self.dtype = PRECISIONS[name]
        self.scaler = torch.amp.GradScaler(device.type) if name == "fp16" else None

    @property
    def enabled(self) -> bool:
        return self.dtype is not None

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """The forward's context: ``torch.autocast`` at this precision, or nothing for fp32."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        """``loss.backward()``, of the scaled loss under fp16."""
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def unscale(self, optimizers: Iterable[torch.optim.Optimizer], scaled: bool = True) -> None:
        """fp16: divide the gradients of these optimisers' parameters by the loss scale (before clipping)."""
        if self.scaler is not None and scaled:
            for o in optimizers:
                self.scaler.unscale_(o)

    def step(self, optimizers: Iterable[torch.optim.Optimizer], finite: bool = True, scaled: bool = True) -> None:
        """Step the optimisers; under fp16 skip them all when ``finite`` is False or the scaler found an inf or NaN
        in their gradients, then update the loss scale. ``scaled``: whether :meth:`backward` ran this step (else
        there is nothing to unscale and the scale stays)."""
        opts = list(optimizers)
        if self.scaler is None or not scaled:
            for o in opts:
                o.step()
            return
        if finite:
            for o in opts:
                self.scaler.step(o)
        self.scaler.update()  # a non-finite clipping norm means an unscaled gradient had an inf: the scale backs off

    def state_dict(self) -> dict[str, Any]:
        return {} if self.scaler is None else {"scaler": self.scaler.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])


__all__ = ["PRECISIONS", "Precision"]
