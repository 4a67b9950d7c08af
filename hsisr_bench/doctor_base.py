"""The doctor's verdict framework: a :class:`Check` row, running a check body, exact float32 kernels.

Shared by :mod:`hsisr_bench.doctor` (correctness checks, report), :mod:`hsisr_bench.doctor_timing`
(measurements) and :mod:`hsisr_bench.doctor_runs` (checks that start processes).
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional

import torch

#: What a row can say: verdicts (pass, fail), a measurement (measured) or skipped.
STATUSES = ("pass", "fail", "measured", "skipped")
#: Tiny synthetic data and networks for the smoke trainings: minutes on a CPU, seconds on a GPU.
_TINY = ("dataset.n_scenes=4", "dataset.size=48", "method.edsr.options.n_resblocks=1", "method.edsr.options.n_feats=8")


@dataclass
class Check:
    """One line of the verdict: what was checked, the outcome and what was measured.

    Attributes:
        name: the row's label.
        status: one of :data:`STATUSES`.
        detail: what was compared or measured, in words and numbers.
        seconds: how long the check took.
        figures: machine-readable numbers (step times) for ``doctor.json``.
    """

    name: str
    status: str
    detail: str
    seconds: float = 0.0
    figures: dict = field(default_factory=dict)


def _timed(name: str, fn: Callable[[], tuple]) -> Check:
    """Run one check body returning ``(status, detail[, figures])``; an exception is a failed check."""
    began = time.perf_counter()
    figures: dict = {}
    try:
        status, detail, *rest = fn()
        figures = rest[0] if rest else {}
    except Exception as error:  # a check that crashes is a failed check, with its reason
        status, detail = "fail", f"{type(error).__name__}: {error}"
    return Check(name, status, detail, time.perf_counter() - began, figures)


@contextmanager
def exact_kernels() -> Iterator[None]:
    """float32 without TF32, cuDNN deterministic and not autotuned, restored afterwards.

    For checks that compare two float32 computations of the same thing: with TF32 (PyTorch's default
    for cuDNN convolutions) or autotuned algorithms the two sides round differently, and a 1e-5
    tolerance would then test the kernels, not the code.
    """
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark,
             torch.backends.cudnn.deterministic)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = False, True
    try:
        yield
    finally:
        (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark,
         torch.backends.cudnn.deterministic) = saved


def _precisions(device: str) -> list[tuple[str, Optional[str]]]:
    """``(amp, reason skipped)`` for fp32, bf16 and fp16 on this device."""
    from hsisr_bench.engine.environment import cpu_supports_bf16

    cuda = device.startswith("cuda")
    bf16 = torch.cuda.is_bf16_supported() if cuda else cpu_supports_bf16()
    return [("none", None), ("bf16", None if bf16 else "this device has no bf16 support"),
            ("fp16", None if cuda else "fp16 training needs CUDA")]


def _made(folder: Path) -> Path:
    """``folder``, created if needed."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    return Path(folder)
