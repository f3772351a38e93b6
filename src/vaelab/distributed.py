"""Data parallelism under ``torchrun``: process-group set-up, gradient averaging, global metrics.

vaelab averages gradients explicitly (one flattened all-reduce per optimiser step) instead of wrapping the model
in :class:`torch.nn.parallel.DistributedDataParallel`. The arithmetic is DDP's (the mean of per-process gradients
of per-process mean losses, each process holding an equal share of the global batch), but it also works for
strategies that step parameter subsets with separate optimisers (aggressive inference-network training) and for
models whose objective calls ``encode``/``log_likelihood`` rather than ``forward``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from vaelab.errors import UserError


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job: ``rank`` of ``world_size``; ``is_main`` writes files and logs."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


TORCHRUN_VARIABLES = ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
"""What ``torchrun`` sets for each process besides ``WORLD_SIZE``."""


def torchrun_world_size() -> int:
    """The number of processes ``torchrun`` started (env ``WORLD_SIZE``, 1 when unset), checked: a value that is not
    a count, or ``WORLD_SIZE`` > 1 without the other variables torchrun sets (left over in a shell or a job script),
    is a one-line :class:`~vaelab.errors.UserError` naming the variable."""
    raw = os.environ.get("WORLD_SIZE", "1").strip()
    how = "start vaelab with torchrun (torchrun --nproc_per_node N -m vaelab ...), or unset WORLD_SIZE"
    if not raw.isdigit() or int(raw) < 1:
        raise UserError(f"environment variable WORLD_SIZE={raw!r} must be a number of processes >= 1; {how}")
    world = int(raw)
    if world > 1:
        missing = [name for name in TORCHRUN_VARIABLES if not os.environ.get(name, "").strip()]
        if missing:
            raise UserError(
                f"environment variable WORLD_SIZE={world} asks for {world} data-parallel processes, but "
                f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set; {how}"
            )
        for name in ("RANK", "LOCAL_RANK"):
            value = os.environ[name].strip()
            if not value.isdigit() or int(value) >= world:
                raise UserError(f"environment variable {name}={value!r} must be an integer in [0, {world - 1}]; {how}")
    return world


def init_distributed(device: torch.device) -> DistInfo:
    """Join the process group ``torchrun`` describes (env WORLD_SIZE > 1), else run as a single process.

    Backend: NCCL on CUDA, gloo on CPU.
    """
    world = torchrun_world_size()
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def shutdown_distributed(wait: bool = True) -> None:
    """Leave the process group, after a barrier when ``wait`` (skip it when this process failed: the others may
    never reach it)."""
    if dist.is_available() and dist.is_initialized():
        if wait:
            dist.barrier()
        dist.destroy_process_group()


def broadcast_parameters(params: Iterable[Tensor], info: DistInfo) -> None:
    """Make every process start from rank 0's parameters."""
    if not info.enabled:
        return
    for p in params:
        dist.broadcast(p.data, src=0)


def average_gradients(params: Iterable[Tensor], info: DistInfo) -> None:
    """Replace each gradient by its mean over processes (one flattened all-reduce)."""
    if not info.enabled:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= info.world_size
    offset = 0
    for g in grads:
        n = g.numel()
        g.copy_(flat[offset : offset + n].view_as(g))
        offset += n


def all_reduce_sum(values: dict[str, float], info: DistInfo) -> dict[str, float]:
    """Sum a dict of floats over processes (same keys on every process, float64)."""
    if not info.enabled or not values:
        return dict(values)
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return dict(zip(keys, t.tolist(), strict=True))


def all_gather_objects(obj: Any, info: DistInfo) -> list[Any]:
    """Every process's ``obj``, in rank order (CPU pickling; use for evaluation results, not hot loops)."""
    if not info.enabled:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, info: DistInfo) -> Any:
    """Rank 0's ``obj`` on every process."""
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()
