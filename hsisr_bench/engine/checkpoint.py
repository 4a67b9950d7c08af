"""Training checkpoints: atomic writing, device-independent reading, and the RNG states they carry.

A checkpoint is always read onto the CPU (``map_location="cpu"``): the RNG states must be CPU
``ByteTensor`` objects for ``torch.set_rng_state`` / ``torch.cuda.set_rng_state``, and
``load_state_dict`` copies the model and optimiser tensors to wherever the parameters live. So a
checkpoint written on one GPU, on two GPUs or on the CPU resumes on any of them.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from hsisr_bench.errors import ResultsError

#: File name of the per-run checkpoint (model, optimiser, scheduler, RNG states, resolved config).
CHECKPOINT_FILE = "checkpoint.pt"
#: What resuming reads from a checkpoint (``scaler`` and ``band_mean`` are optional).
CHECKPOINT_KEYS = ("model", "optimizer", "scheduler", "rng", "epoch", "step", "loss_sum", "epoch_seconds", "log")


def rng_state() -> dict:
    """The Python, NumPy, torch CPU and (when CUDA is there) per-GPU RNG states, as picklable CPU objects."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached]}
    if torch.cuda.is_available():
        state["cuda"] = [s.cpu() for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore the RNG states saved by :func:`rng_state`, on whatever devices this machine has.

    CUDA generators are restored for the devices present only: a checkpoint written with two GPUs
    restores device 0 on a one-GPU machine and nothing on a CPU one; a CPU checkpoint (no ``cuda``
    entry) leaves the GPUs' generators alone. Tensors are moved to the CPU first, so a state read
    with another ``map_location`` works too.
    """
    torch.set_rng_state(state["torch"].cpu())
    random.setstate(_tuples(state["python"]))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.cpu().numpy().astype(np.uint32), pos, has_gauss, cached))
    saved = state.get("cuda") or []
    if saved and torch.cuda.is_available():
        for index in range(min(len(saved), torch.cuda.device_count())):
            torch.cuda.set_rng_state(saved[index].cpu(), index)


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


def save_checkpoint(path: Path, state: Mapping[str, Any]) -> None:
    """Write a checkpoint atomically (temporary file in the same folder, then rename)."""
    from hsisr_bench.results import atomic_write

    def write(handle) -> None:
        try:
            torch.save(dict(state), handle)
        except RuntimeError as error:  # torch's zip writer reports ENOSPC/EFBIG as a RuntimeError
            raise OSError(f"{error} (is the disk full?)") from None

    # atomic_write turns OSError into a ResultsError and removes the temporary: the previous
    # checkpoint stays in place, intact, for the next attempt to resume from.
    atomic_write(path, write)


def load_checkpoint(path: Path, device: str = "cpu") -> dict:
    """Read a checkpoint written by :func:`save_checkpoint` (tensors only: ``weights_only`` loading).

    Args:
        path: the checkpoint file.
        device: where its tensors go. Keep the default ``cpu`` to resume training: the RNG states
            must be CPU tensors, and ``load_state_dict`` moves weights and optimiser state itself.

    Raises:
        ResultsError: the file is unreadable, truncated, or lacks an entry that resuming needs.
    """
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as error:  # torch raises many types for a damaged file
        # A truncated zip fails with a bare "[Errno 22] Invalid argument" (a seek past its end): say what it means.
        raise ResultsError(f"The checkpoint {path} is truncated or corrupt (reading it failed: {error}). Delete "
                           f"it to restart this run's training from scratch, or rerun with --force.") from None
    missing = [key for key in CHECKPOINT_KEYS if not isinstance(state, dict) or key not in state]
    if missing:
        raise ResultsError(f"The checkpoint {path} is not a complete training checkpoint (missing: "
                           f"{', '.join(missing)}). Delete it to restart this run's training from scratch, or "
                           f"rerun with --force.")
    return state


def restore_model(model: Any, state_dict: Mapping[str, Any], path: Path) -> None:
    """``model.load_state_dict(state_dict)`` (a network or an optimiser), with a :class:`ResultsError`
    naming ``path`` when it does not fit.

    A checkpoint written for another network (other options, a crafted file) makes ``load_state_dict``
    raise a ``RuntimeError`` listing every key; this says which checkpoint, what differs, and the way out.
    """
    try:
        model.load_state_dict(state_dict)
    except (RuntimeError, ValueError, KeyError, TypeError, AttributeError) as error:
        first = str(error).strip().splitlines()
        detail = "; ".join(line.strip() for line in first[:4])
        raise ResultsError(f"The checkpoint {path} does not fit this run's network ({detail[:400]}). It was "
                           f"written for another network or is damaged: delete it to restart this run's training "
                           f"from scratch, or rerun with --force.") from None
