"""Benchmark suites behind ``hsibench bench``.

Each suite is a module ``hsisr_bench.benchmarks.<suite>`` exposing ``run(options: BenchOptions) -> str``
that measures something and returns a markdown section (a heading, the numbers, one line per
conclusion). Speed claims are measured here as ratios within one run, never in timed unit tests.
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

#: Suite names, in the order ``hsibench bench`` runs them by default.
SUITES = ("data", "metrics", "models", "train")


@dataclass
class BenchOptions:
    """What ``hsibench bench`` was asked to measure."""

    methods: list[str] = field(default_factory=list)  # empty: every registered method
    scales: list[int] = field(default_factory=lambda: [2, 3, 4])
    device: str = "cpu"
    bands: int = 31
    size: int = 512  # HR side of the test input (LR side is size // scale)
    repeats: int = 3
    warmup: int = 1
    quick: bool = False  # smaller inputs and fewer repeats, for a smoke test of the suite itself


#: Environment variables that change what the benchmarks measure: the C allocator (glibc's
#: ``MALLOC_*`` tunables, a preloaded jemalloc/tcmalloc, PyTorch's huge-page switch) and threading.
#: The plain SSRNet path, for one, ran 2.4× faster at HR 256 with glibc keeping freed memory mapped.
RELEVANT_ENVIRONMENT = ("LD_PRELOAD", "THP_MEM_ALLOC_ENABLE", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def machine_description(device: str = "cpu") -> str:
    """One line naming the machine: CPU, cores, torch version, GPU, and allocator/thread settings.

    The settings are the environment variables of :data:`RELEVANT_ENVIRONMENT` and ``MALLOC_*`` that
    are set; the GPU is named only when ``device`` is CUDA.
    """
    import os

    cpu = platform.processor() or platform.machine()
    line = (f"{platform.system()} {platform.machine()} ({cpu}), {os.cpu_count()} logical cores, "
            f"torch {torch.__version__}, {torch.get_num_threads()} threads, Python {platform.python_version()}")
    if device.startswith("cuda") and torch.cuda.is_available():
        line += f", GPU {torch.cuda.get_device_name(0)}"
    settings = sorted(f"{name}={value}" for name, value in os.environ.items()
                      if name in RELEVANT_ENVIRONMENT or name.startswith("MALLOC_"))
    if settings:
        line += ", environment: " + " ".join(settings)
    return line


def time_call(fn: Callable[[], object], *, repeats: int = 3, warmup: int = 1, device: str = "cpu") -> float:
    """Median wall time of ``fn()`` in seconds over ``repeats`` runs after ``warmup`` runs."""
    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2]
