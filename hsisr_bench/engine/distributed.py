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

import atexit
import datetime
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
    count = torch.cuda.device_count()
    if requested != "cuda":
        if world > 1:  # every process would take the same GPU: NCCL refuses duplicate GPUs, or they share one
            raise ConfigError(f"--device {requested} under torchrun ({world} processes) would put every process on "
                              f"the same GPU. Use --device cuda (each process takes cuda:<LOCAL_RANK>); to choose "
                              f"the GPUs, set CUDA_VISIBLE_DEVICES.")
        index = int(requested.split(":", 1)[1])
        if index >= count:
            raise ConfigError(f"--device {requested}: this machine has {count} GPU(s) (cuda:0 to cuda:{count - 1}).")
        return requested
    index = local_rank if world > 1 else 0
    if index >= count:
        raise ConfigError(f"LOCAL_RANK {index} needs GPU {index}, but this machine has {count}. Start at most "
                          f"{count} processes per node (torchrun --nproc_per_node {count}).")
    return f"cuda:{index}"


def backend_for(device: str) -> str:
    """The process-group backend for a device: NCCL for CUDA, gloo for CPU."""
    return "nccl" if device.startswith("cuda") else "gloo"


#: Default seconds a process waits at a collective (``--dist-timeout``, ``$HSIBENCH_DIST_TIMEOUT``). The other
#: ranks wait through rank 0's lone work (evaluation, the patch cache, a checkpoint), which takes hours on
#: the paper's profile; PyTorch's default of 10 minutes killed such runs.
DEFAULT_TIMEOUT_S = 6 * 3600
TIMEOUT_ENV = "HSIBENCH_DIST_TIMEOUT"


def timeout_seconds(value: Optional[float] = None, env: Optional[Mapping[str, str]] = None) -> float:
    """The collective timeout: ``value`` (``--dist-timeout``), else ``$HSIBENCH_DIST_TIMEOUT``, else 6 hours.

    Raises:
        ConfigError: not a positive number of seconds.
    """
    env = os.environ if env is None else env
    origin = "--dist-timeout" if value is not None else TIMEOUT_ENV
    text = value if value is not None else env.get(TIMEOUT_ENV)
    if text is None or text == "":
        return float(DEFAULT_TIMEOUT_S)
    try:
        seconds = float(text)
    except (TypeError, ValueError):
        seconds = float("nan")
    if not seconds > 0 or seconds == float("inf"):
        raise ConfigError(f"{origin} {text!r}: expected a positive number of seconds (default {DEFAULT_TIMEOUT_S}).")
    return seconds


def threads_per_local_rank(env: Optional[Mapping[str, str]] = None, cores: Optional[int] = None) -> Optional[int]:
    """CPU threads for each process under torchrun: the cores divided by the local processes.

    torchrun sets ``OMP_NUM_THREADS=1`` for every process, which left rank 0's CPU work (bicubic, the
    patch cache, metrics) on one thread. ``None`` outside torchrun, or when ``OMP_NUM_THREADS`` was set to
    something other than torchrun's 1 (the user's choice is kept; ``--threads`` always wins).
    """
    env = os.environ if env is None else env
    _, world, _ = _env_ints(env)
    if world <= 1 or env.get("OMP_NUM_THREADS", "1") != "1":
        return None
    try:
        local = max(1, int(env.get("LOCAL_WORLD_SIZE", world)))
    except ValueError:
        local = world
    return max(1, (cores or os.cpu_count() or 1) // local)


def shutdown() -> None:
    """Leave the process group (registered at exit by :func:`init_from_env`).

    Without it, gloo's threads were destroyed with the interpreter and a rank sometimes died with
    ``terminate called without an active exception`` (SIGABRT) after a clean run.
    """
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def init_from_env(requested_device: str = "auto", timeout: Optional[float] = None) -> DistInfo:
    """Join torchrun's process group, if there is one, with the backend of this process's device.

    The device is resolved first (:func:`resolve_device`), so ``--device auto`` on a GPU node joins
    over NCCL with ``cuda:<LOCAL_RANK>`` as the current device, and over gloo on CPU.

    Args:
        requested_device: ``--device`` as given (``auto``, ``cpu``, ``cuda``, ``cuda:<k>``).
        timeout: seconds a collective may wait (:func:`timeout_seconds`: default 6 hours).

    Returns:
        The process's :class:`DistInfo`; a single process when ``WORLD_SIZE`` is unset or 1.
    """
    device = resolve_device(requested_device)
    _, world, _ = _env_ints(os.environ)
    seconds = timeout_seconds(timeout)
    if device.startswith("cuda"):  # also in one process: pinned memory, the context and syncs follow it
        torch.cuda.set_device(torch.device(device))
    if world <= 1 or not dist.is_available():
        return DistInfo()
    if not dist.is_initialized():
        global _IDLE_GROUP
        dist.init_process_group(backend=backend_for(device), timeout=datetime.timedelta(seconds=seconds))
        # The other ranks wait here while rank 0 works alone (evaluation, the patch cache, validation),
        # which can take longer than any collective of training should: those waits go over a gloo side
        # group whose timeout is at least IDLE_WAIT_SECONDS, so --dist-timeout bounds only the collectives.
        if dist.is_initialized():
            _IDLE_GROUP = dist.new_group(backend="gloo",
                                         timeout=datetime.timedelta(seconds=max(seconds, IDLE_WAIT_SECONDS)))
        atexit.register(shutdown)
    return current()


#: How long a rank may wait for rank 0's lone work (a week: torchrun ends the job if rank 0 dies).
IDLE_WAIT_SECONDS = 7 * 24 * 3600
_IDLE_GROUP = None


def _idle_group():
    """The side group of idle waits (``None``, the default group, when :func:`init_from_env` did not make one)."""
    return _IDLE_GROUP if dist.is_initialized() else None


def barrier() -> None:
    """Wait for every process while rank 0 works alone (a no-op when not distributed)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier(group=_idle_group())


def broadcast_object(value: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``value`` on every process (``value`` itself when not distributed); the others
    wait on the idle group, so rank 0 may work alone for longer than ``--dist-timeout`` first."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        box = [value if dist.get_rank() == src else None]
        dist.broadcast_object_list(box, src=src, group=_idle_group())
        return box[0]
    return value


def all_reduce_mean(value: torch.Tensor) -> torch.Tensor:
    """The mean of ``value`` over all processes (``value`` itself when not distributed)."""
    if dist.is_available() and dist.is_initialized():
        value = value.clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        value /= dist.get_world_size()
    return value
