"""The numeric environment of a run: TF32 policy, cuDNN autotuning, threads, and what is recorded of them.

Every ``metrics.json`` carries :func:`runtime_record`: the device's name, the torch / CUDA / cuDNN
versions, the training and evaluation precision and the TF32 state actually in force, so two tables
that disagree in the last decimal can be traced to the machine that made them.
"""

from __future__ import annotations

import os
import platform
from typing import Optional

import torch

from hsisr_bench.errors import ConfigError


def apply_tf32(policy: str) -> None:
    """Set TF32 for float32 matmuls and cuDNN convolutions: ``on``, ``off`` or ``default`` (leave PyTorch's).

    Raises:
        ConfigError: an unknown policy.
    """
    if policy == "default":
        return
    if policy not in ("on", "off"):
        raise ConfigError(f"tf32 must be default, on or off, got {policy!r} (--tf32).")
    enabled = policy == "on"
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled


def tf32_state() -> dict:
    """The TF32 switches as they are now (``matmul``: float32 matmuls, ``cudnn``: convolutions)."""
    return {"matmul": bool(torch.backends.cuda.matmul.allow_tf32), "cudnn": bool(torch.backends.cudnn.allow_tf32)}


def cpu_supports_bf16() -> bool:
    """True when this CPU has native bf16 support (AVX512-BF16 or AMX), so CPU bf16 autocast is worth it."""
    probe = getattr(torch.backends.mkldnn, "is_available", lambda: False)()
    checker = getattr(torch.cpu, "_is_avx512_bf16_supported", None) or getattr(torch.ops.mkldnn,
                                                                               "_is_mkldnn_bf16_supported", None)
    try:
        return bool(probe and checker is not None and checker())
    except (RuntimeError, TypeError):
        return False


def set_threads(threads: Optional[int]) -> int:
    """Set PyTorch's intra-op threads (``None``: keep the default, from ``OMP_NUM_THREADS`` or the cores).

    Returns:
        The thread count now in force.

    Raises:
        ConfigError: fewer than 1 thread.
    """
    if threads is not None:
        if threads < 1:
            raise ConfigError(f"--threads must be at least 1, got {threads}.")
        torch.set_num_threads(int(threads))
    return torch.get_num_threads()


def describe_threads() -> str:
    """``4 threads (OMP_NUM_THREADS=4; 16 cores)``: what the run uses, for the run header."""
    cores = os.cpu_count() or 1
    omp = os.environ.get("OMP_NUM_THREADS")
    origin = f"OMP_NUM_THREADS={omp}" if omp else "PyTorch default"
    return f"{torch.get_num_threads()} threads ({origin}; {cores} cores)"


def device_name(device: str) -> str:
    """The GPU's name for a CUDA device, else the CPU's (``platform.processor()`` or the machine type)."""
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return platform.processor() or platform.machine() or "cpu"


def runtime_record(device: str, *, train_precision: str, eval_precision: str,
                   compiled: bool = False, cudnn_benchmark: Optional[bool] = None) -> dict:
    """What ``metrics.json`` records of the numeric environment of a run.

    Args:
        device: the resolved device (``cpu``, ``cuda:0``...).
        train_precision: ``fp32``, ``bf16`` or ``fp16`` (the autocast dtype of training; ``none`` for
            untrained methods).
        eval_precision: the precision of the scored forward passes (``fp32`` unless ``eval_amp``).
        compiled: whether training used ``torch.compile``.
        cudnn_benchmark: cuDNN autotuning during training (``None``: not applicable).
    """
    cuda = device.startswith("cuda")
    return {
        "device": device, "device_name": device_name(device),
        "torch": torch.__version__, "cuda": torch.version.cuda if cuda else None,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "train_precision": train_precision, "eval_precision": eval_precision,
        "tf32": tf32_state() if cuda else None, "cudnn_benchmark": cudnn_benchmark if cuda else None,
        "compile": bool(compiled), "threads": torch.get_num_threads(),
    }
