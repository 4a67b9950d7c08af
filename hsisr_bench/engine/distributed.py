"""Processes and devices: which device this process uses, and the ``torch.distributed`` process group.

``torchrun --nproc_per_node N -m hsisr_bench.cli run ...`` sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``. :func:`resolve_device` is the one place that turns
``--device auto|cpu|cuda`` into a concrete device: under torchrun, CUDA means ``cuda:<LOCAL_RANK>``
(one GPU per local process); :func:`init_from_env` resolves the device *before* joining the process
group, so the backend follows it (NCCL on CUDA, gloo on CPU).

Only rank 0 decides what a cell does (skip, lock, clear) and writes files; it tells the other ranks its
decision with :func:`broadcast_object` before anyone returns, so the ranks never fall out of step.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping, Optional

import torch
import torch.distributed as dist

from hsisr_bench.errors import ConfigError


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


def _env_ints(env: Mapping[str, str]) -> tuple[int, int, int]:
    """``(RANK, WORLD_SIZE, LOCAL_RANK)`` from a torchrun-style environment (a single process by default)."""
    try:
        return int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0))
    except ValueError:
        raise ConfigError("RANK, WORLD_SIZE and LOCAL_RANK must be integers (set by torchrun); got "
                          f"{env.get('RANK')!r}, {env.get('WORLD_SIZE')!r}, {env.get('LOCAL_RANK')!r}.") from None


def current() -> DistInfo:
    """The rank and world size of an initialised process group, else a single process."""
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), _env_ints(os.environ)[2])
    return DistInfo()


def resolve_device(requested: str, env: Optional[Mapping[str, str]] = None) -> str:
    """The concrete device of this process for ``--device requested``.

    ``auto`` is CUDA when available, else CPU. CUDA is ``cuda:<LOCAL_RANK>`` under torchrun (several
    processes) and ``cuda:0`` otherwise; ``cuda:<k>`` is kept as given.

    Args:
        requested: ``auto``, ``cpu``, ``cuda`` or ``cuda:<k>``.
        env: the environment to read ``WORLD_SIZE``/``LOCAL_RANK`` from (default ``os.environ``).

    Raises:
        ConfigError: CUDA asked for but not available, or fewer GPUs than local processes.
    """
    env = os.environ if env is None else env
    _, world, local_rank = _env_ints(env)
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cpu":
        return "cpu"
    if not requested.startswith("cuda"):
        raise ConfigError(f"--device {requested}: expected auto, cpu, cuda or cuda:<index>.")
    if not torch.cuda.is_available():
        raise ConfigError(f"--device {requested}: CUDA is not available on this machine; use --device cpu or auto.")
    if requested != "cuda":
        return requested
    index = local_rank if world > 1 else 0
    count = torch.cuda.device_count()
    if index >= count:
        raise ConfigError(f"LOCAL_RANK {index} needs GPU {index}, but this machine has {count}. Start at most "
                          f"{count} processes per node (torchrun --nproc_per_node {count}).")
    return f"cuda:{index}"


def backend_for(device: str) -> str:
    """The process-group backend for a device: NCCL for CUDA, gloo for CPU."""
    return "nccl" if device.startswith("cuda") else "gloo"


def init_from_env(requested_device: str = "auto") -> DistInfo:
    """Join torchrun's process group, if there is one, with the backend of this process's device.

    The device is resolved first (:func:`resolve_device`), so ``--device auto`` on a GPU node joins
    over NCCL with ``cuda:<LOCAL_RANK>`` as the current device, and over gloo on CPU.

    Args:
        requested_device: ``--device`` as given (``auto``, ``cpu``, ``cuda``, ``cuda:<k>``).

    Returns:
        The process's :class:`DistInfo`; a single process when ``WORLD_SIZE`` is unset or 1.
    """
    device = resolve_device(requested_device)
    _, world, _ = _env_ints(os.environ)
    if world <= 1 or not dist.is_available():
        return DistInfo()
    if device.startswith("cuda"):
        torch.cuda.set_device(torch.device(device))
    if not dist.is_initialized():
        dist.init_process_group(backend=backend_for(device))
    return current()


def barrier() -> None:
    """Wait for every process (a no-op when not distributed)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def broadcast_object(value: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``value`` on every process (``value`` itself when not distributed)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        box = [value if dist.get_rank() == src else None]
        dist.broadcast_object_list(box, src=src)
        return box[0]
    return value


def all_reduce_mean(value: torch.Tensor) -> torch.Tensor:
    """The mean of ``value`` over all processes (``value`` itself when not distributed)."""
    if dist.is_available() and dist.is_initialized():
        value = value.clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        value /= dist.get_world_size()
    return value
