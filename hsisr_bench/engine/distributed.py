"""Multi-process data parallel helpers: set up ``torch.distributed`` from ``torchrun``'s environment.

``torchrun --nproc_per_node N -m hsisr_bench.cli train ...`` sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``; :func:`init_from_env` joins the process group
(NCCL on CUDA, gloo on CPU). Only rank 0 writes files; every rank builds the same patch bank and
reads its own share of each global batch (see ``engine/train.py``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the process group (``world == 1`` when not distributed)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """True on the process that writes files and prints (rank 0)."""
        return self.rank == 0


def current() -> DistInfo:
    """The rank and world size of an initialised process group, else a single process."""
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    return DistInfo()


def init_from_env(device: str = "cpu") -> DistInfo:
    """Join the process group described by ``torchrun``'s environment variables, if any.

    Args:
        device: ``cpu`` (gloo backend) or ``cuda`` (NCCL backend, one GPU per local rank).

    Returns:
        The process's :class:`DistInfo`; a single process when ``WORLD_SIZE`` is unset or 1.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or not dist.is_available():
        return DistInfo()
    if not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group(backend=backend)
    return current()


def barrier() -> None:
    """Wait for every process (a no-op when not distributed)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def all_reduce_mean(value: torch.Tensor) -> torch.Tensor:
    """The mean of ``value`` over all processes (``value`` itself when not distributed)."""
    if dist.is_available() and dist.is_initialized():
        value = value.clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        value /= dist.get_world_size()
    return value
