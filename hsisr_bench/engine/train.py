"""The one training loop for every trainable method: patches, band mean, loss, Adam, checkpoints, resume.

What it guarantees:

- **Exact resume.** The order of the patches is a function of ``(seed, epoch)`` only, and a checkpoint
  (model, optimiser, scheduler, grad scaler, RNG states, position in the epoch, the epoch log and the
  resolved config) is written atomically after every epoch. A run killed at any moment (even
  ``kill -9``) and started again continues from its last checkpoint, and on CPU ends with the same
  weights, bit for bit, as an uninterrupted run.
- **Ctrl-C** finishes the current step, saves a checkpoint at that step and says how to resume.
- **NaN/Inf loss** stops the run with a :class:`~hsisr_bench.errors.TrainingError` before the bad
  step is applied; the last good checkpoint is kept.
- **Mixed precision** (bf16 or fp16 with a gradient scaler) on CUDA, and **DistributedDataParallel**
  when the process group is initialised (``torchrun``): each process takes its share of every global
  batch, so the gradient is the same as one process would compute.
"""

from __future__ import annotations

import math
import random
import signal
import threading
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import Dataset

from hsisr_bench.engine import distributed
from hsisr_bench.engine.losses import get_loss
from hsisr_bench.errors import ConfigError, ResultsError, TrainingError
from hsisr_bench.registry import MethodInfo, OutputCrop

#: File name of the per-run checkpoint (model, optimiser, scheduler, RNG states, resolved config).
CHECKPOINT_FILE = "checkpoint.pt"


@dataclass(frozen=True)
class TrainSettings:
    """How to train: the protocol's schedule and the method's loss and optimiser, resolved.

    Attributes:
        epochs: number of epochs.
        batch_size: global batch (split across DDP processes).
        steps_per_epoch: optimiser steps per epoch; 0 means one pass over the patch bank.
        lr: initial learning rate.
        lr_step_epochs, lr_gamma: the learning rate is multiplied by ``lr_gamma`` every ``lr_step_epochs``.
        loss: a name of ``engine.losses.LOSSES``.
        optimizer: ``{"name": "adam", "betas", "weight_decay", "eps"}`` (``lr`` is taken from ``lr``).
        seed: decides the data order (with the epoch number).
        device: ``cpu``, ``cuda`` or ``cuda:<k>``.
        amp: ``none``, ``bf16`` or ``fp16`` (CUDA only).
        progress: show a tqdm bar (rank 0 only).
    """

    epochs: int
    batch_size: int
    lr: float
    loss: str
    seed: int = 0
    steps_per_epoch: int = 0
    lr_step_epochs: int = 35
    lr_gamma: float = 0.5
    optimizer: Mapping[str, Any] = field(default_factory=lambda: {"name": "adam"})
    device: str = "cpu"
    amp: str = "none"
    progress: bool = True


@dataclass
class TrainResult:
    """What training produced: the per-epoch log, the training time, and whether it resumed."""

    log: list[dict]
    seconds: float
    resumed_from: Optional[tuple[int, int]] = None  # (epoch, step) of the checkpoint resumed, if any


# ------------------------------------------------------------------------------------ data order


def epoch_order(n_items: int, n_indices: int, seed: int, epoch: int) -> torch.Tensor:
    """The patch indices of one epoch: a function of ``(seed, epoch)`` only, so that resume is exact.

    Args:
        n_items: size of the patch bank.
        n_indices: how many indices the epoch needs (steps × batch); permutations are chained if more
            than ``n_items``.
        seed, epoch: what the order depends on.
    """
    generator = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(epoch))
    rounds = [torch.randperm(n_items, generator=generator) for _ in range(math.ceil(n_indices / n_items))]
    return torch.cat(rounds)[:n_indices]


def steps_and_batch(n_items: int, settings: TrainSettings) -> tuple[int, int]:
    """Optimiser steps per epoch and the (global) batch size actually used.

    A full pass drops the last incomplete batch, so every step has the same batch size (which DDP needs).
    """
    batch = min(settings.batch_size, n_items) if settings.steps_per_epoch == 0 else settings.batch_size
    steps = settings.steps_per_epoch or max(1, n_items // batch)
    return steps, batch


def _collate(bank: Dataset, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    pairs = [bank[int(i)] for i in indices]
    lr = torch.stack([torch.as_tensor(p[0]) for p in pairs])  # (B, L, h, w)
    hr = torch.stack([torch.as_tensor(p[1]) for p in pairs])  # (B, L, H, W)
    return lr.float(), hr.float()


# ----------------------------------------------------------------------------------- the network


def output_crop_of(model: nn.Module, info: MethodInfo) -> OutputCrop:
    """The crop the model's output has: ``model.output_crop`` if it declares one, else the method's."""
    crop = getattr(model, "output_crop", None)
    return crop if isinstance(crop, OutputCrop) else info.output_crop


def crop_band_mean(mean: torch.Tensor, crop: OutputCrop) -> torch.Tensor:
    """The band mean ``(1, L, 1, 1)`` restricted to the bands the output keeps ``(1, L', 1, 1)``."""
    b = crop.bands
    return mean[:, b : mean.shape[1] - b] if b else mean


def forward_with_mean(model: nn.Module, info: MethodInfo, lr: torch.Tensor, mean: torch.Tensor, scale: int,
                      crop: OutputCrop) -> torch.Tensor:
    """The method's prediction for an LR batch, with the harness's band-mean subtraction and restoration.

    Args:
        lr: ``(B, L, h, w)`` LR batch.
        mean: ``(1, L, 1, 1)`` band mean of the training images.
        crop: the output crop of ``model``.

    Returns:
        ``(B, L', H', W')``: the model sees ``x - mean`` (``x`` is the MATLAB-bicubic upsampled LR for
        ``upsampled`` methods) and its output gets the (band-cropped) mean back.
    """
    if info.input == "upsampled":
        from hsisr_bench.data.imresize import imresize

        lr = imresize(lr, scale)  # (B, L, s*h, s*w)
    out = model(lr - mean)
    return out.float() + crop_band_mean(mean, crop)


def make_optimizer(model: nn.Module, settings: TrainSettings) -> torch.optim.Optimizer:
    """Adam with the method's betas, eps and weight decay.

    Raises:
        ConfigError: an optimiser other than Adam.
    """
    options = dict(settings.optimizer)
    name = str(options.pop("name", "adam")).lower()
    if name != "adam":
        raise ConfigError(f"optimizer '{name}' is not supported (method.optimizer.name); use 'adam'.")
    return torch.optim.Adam(model.parameters(), lr=settings.lr, betas=tuple(options.get("betas", (0.9, 0.999))),
                            eps=float(options.get("eps", 1e-8)), weight_decay=float(options.get("weight_decay", 0.0)))


# ----------------------------------------------------------------------------------- checkpoints


def _rng_state() -> dict:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(_tuples(state["python"]))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


def save_checkpoint(path: Path, state: Mapping[str, Any]) -> None:
    """Write a checkpoint atomically (temporary file in the same folder, then rename)."""
    from hsisr_bench.results import atomic_write

    atomic_write(path, lambda handle: torch.save(dict(state), handle))


def load_checkpoint(path: Path, device: str = "cpu") -> dict:
    """Read a checkpoint written by :func:`save_checkpoint` (tensors only: ``weights_only`` loading).

    Raises:
        ResultsError: the file is unreadable.
    """
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as error:  # torch raises many types for a damaged file
        raise ResultsError(f"Cannot read the checkpoint {path} ({error}). Delete it to train from scratch, "
                           f"or rerun with --force.") from None


@contextmanager
def _deferred_interrupt() -> Iterator[Callable[[], bool]]:
    """Turn the first Ctrl-C into a flag checked between steps (a second Ctrl-C interrupts at once).

    Saving at a step boundary keeps the checkpoint consistent; an interrupt in the middle of
    ``optimizer.step()`` would leave half-updated weights.
    """
    flag = {"set": False}
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum, frame):  # noqa: ARG001 - signal handler signature
        flag["set"] = True
        signal.signal(signal.SIGINT, signal.default_int_handler)

    signal.signal(signal.SIGINT, handler)
    try:
        yield lambda: flag["set"]
    finally:
        signal.signal(signal.SIGINT, previous)


# ---------------------------------------------------------------------------------- the loop


def train(
    model: nn.Module,
    info: MethodInfo,
    bank: Dataset,
    mean: torch.Tensor,
    *,
    scale: int,
    settings: TrainSettings,
    run_dir: Optional[Path] = None,
    config: Optional[Mapping[str, Any]] = None,
    validate: Optional[Callable[[nn.Module], float]] = None,
    notify: Callable[[str], None] = print,
    label: str = "train",
) -> TrainResult:
    """Train ``model`` on the ``(lr, hr)`` pairs of ``bank``, checkpointing into ``run_dir`` every epoch.

    Args:
        model: the network (already built with the run's seed); trained in place.
        info: its method metadata (input kind, default output crop).
        bank: a torch ``Dataset`` of ``(lr (L, h, w), hr (L, H, W))`` pairs.
        mean: band mean of the training images, ``(L,)`` or ``(1, L, 1, 1)``.
        scale: the upscaling factor.
        settings: schedule, loss and optimiser.
        run_dir: where ``checkpoint.pt`` and ``train_log.csv`` go (``None``: nothing is written). If it
            holds a checkpoint of the same run, training resumes from it.
        config: the resolved config, stored in the checkpoint; its ``run_id`` must match on resume.
        validate: called with the model after each epoch (rank 0) to give a validation PSNR.
        notify: prints messages (resume, interrupt).
        label: the progress bar's description.

    Returns:
        A :class:`TrainResult` with one log row per epoch (``epoch, loss, lr, seconds[, val_psnr]``).

    Raises:
        TrainingError: a NaN or Inf loss (the last good checkpoint is kept).
        ResultsError: a checkpoint of another run in ``run_dir``.
        KeyboardInterrupt: after Ctrl-C, once the checkpoint at the current step is saved.
    """
    from tqdm.auto import tqdm

    from hsisr_bench.results import write_train_log

    dist_info = distributed.current()
    device = torch.device(settings.device)
    if settings.amp != "none" and device.type != "cuda":
        raise ConfigError(f"Mixed precision (amp={settings.amp}) needs a CUDA device; use --amp none on {device}.")
    n_items = len(bank)
    if n_items == 0:
        raise TrainingError("The patch bank is empty: no training patch could be cut. Use larger training "
                            "scenes or a smaller protocol.lr_patch.")
    steps, batch = steps_and_batch(n_items, settings)
    if batch % dist_info.world:
        raise ConfigError(f"protocol.batch_size {batch} is not divisible by the {dist_info.world} processes.")
    loss_fn = get_loss(settings.loss)
    crop = output_crop_of(model, info)
    mean = torch.as_tensor(mean, dtype=torch.float32).reshape(1, -1, 1, 1).to(device)  # (1, L, 1, 1)

    model.to(device).train()
    net: nn.Module = model
    if dist_info.world > 1:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = make_optimizer(model, settings)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=settings.lr_step_epochs, gamma=settings.lr_gamma)
    scaler = torch.amp.GradScaler("cuda") if settings.amp == "fp16" else None
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16 if settings.amp == "bf16" else torch.float16)
                if settings.amp != "none" else nullcontext())

    # ---- resume
    start_epoch, start_step, loss_sum, epoch_seconds, log = 0, 0, 0.0, 0.0, []
    resumed_from = None
    checkpoint_path = Path(run_dir) / CHECKPOINT_FILE if run_dir is not None else None
    if checkpoint_path is not None and checkpoint_path.is_file():
        state = load_checkpoint(checkpoint_path, str(device))
        old_id, new_id = state.get("config", {}).get("run_id"), (config or {}).get("run_id")
        if old_id != new_id:
            raise ResultsError(f"{checkpoint_path} belongs to run {old_id}, not {new_id}. Rerun with --force "
                               f"or use another --out.")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        _set_rng_state(state["rng"])
        start_epoch, start_step = int(state["epoch"]), int(state["step"])
        loss_sum, epoch_seconds, log = float(state["loss_sum"]), float(state["epoch_seconds"]), list(state["log"])
        resumed_from = (start_epoch, start_step)
        if start_epoch < settings.epochs and dist_info.is_main:
            notify(f"Resuming {label} from {checkpoint_path} at epoch {start_epoch + 1}, step {start_step}.")

    def checkpoint_state(epoch: int, step: int) -> dict:
        return {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict() if scaler else None,
                "rng": _rng_state(), "epoch": epoch, "step": step, "loss_sum": loss_sum,
                "epoch_seconds": epoch_seconds, "log": log, "config": dict(config or {}),
                "band_mean": mean.detach().reshape(-1).cpu()}

    total = settings.epochs * steps
    bar = tqdm(total=total, initial=min(total, start_epoch * steps + start_step), desc=label, unit="step",
               disable=not (settings.progress and dist_info.is_main), dynamic_ncols=True, leave=False)
    with _deferred_interrupt() as interrupted:
        try:
            for epoch in range(start_epoch, settings.epochs):
                order = epoch_order(n_items, steps * batch, settings.seed, epoch)
                first_step = start_step if epoch == start_epoch else 0
                if first_step == 0:
                    loss_sum, epoch_seconds = 0.0, 0.0
                lr_now = optimizer.param_groups[0]["lr"]
                for step in range(first_step, steps):
                    began = time.perf_counter()
                    indices = order[step * batch : (step + 1) * batch][dist_info.rank :: dist_info.world]
                    lr_batch, hr_batch = (t.to(device) for t in _collate(bank, indices.tolist()))
                    with autocast:
                        sr = forward_with_mean(net, info, lr_batch, mean, scale, crop)
                    loss = loss_fn(sr.float(), crop.apply(hr_batch))
                    reported = distributed.all_reduce_mean(loss.detach())
                    if not torch.isfinite(reported):
                        kept = (f"The last good checkpoint ({_describe(log)}) is kept in {checkpoint_path}."
                                if checkpoint_path is not None and checkpoint_path.is_file()
                                else "No checkpoint was written yet.")
                        raise TrainingError(
                            f"The training loss became {reported.item()} at epoch {epoch + 1}, step {step + 1} "
                            f"({label}). {kept} Lower the learning rate (--set method.optimizer.lr=...) "
                            f"or turn mixed precision off (--amp none), then rerun.")
                    optimizer.zero_grad(set_to_none=True)
                    if scaler is not None:
                        scaler.scale(loss).backward()
                        scaler.step(optimizer)
                        scaler.update()
                    else:
                        loss.backward()
                        optimizer.step()
                    loss_sum += float(reported)
                    epoch_seconds += time.perf_counter() - began
                    bar.update(1)
                    bar.set_postfix(loss=f"{float(reported):.4g}", lr=f"{lr_now:.2e}", epoch=epoch + 1)
                    if interrupted():
                        _save_interrupted(checkpoint_path, checkpoint_state(epoch, step + 1), dist_info, notify)
                        raise KeyboardInterrupt
                scheduler.step()
                row: dict[str, Any] = {"epoch": epoch + 1, "loss": loss_sum / steps, "lr": lr_now,
                                       "seconds": round(epoch_seconds, 3)}
                if validate is not None and dist_info.is_main:
                    model.eval()
                    row["val_psnr"] = float(validate(model))
                    model.train()
                log.append(row)
                if checkpoint_path is not None and dist_info.is_main:
                    save_checkpoint(checkpoint_path, checkpoint_state(epoch + 1, 0))
                    write_train_log(checkpoint_path.parent, log)
                distributed.barrier()
        finally:
            bar.close()
    model.eval()
    return TrainResult(log=log, seconds=sum(float(r["seconds"]) for r in log), resumed_from=resumed_from)


def _describe(log: Sequence[Mapping[str, Any]]) -> str:
    return f"end of epoch {log[-1]['epoch']}" if log else "an earlier step"


def _save_interrupted(path: Optional[Path], state: dict, dist_info: distributed.DistInfo,
                      notify: Callable[[str], None]) -> None:
    if path is None or not dist_info.is_main:
        return
    save_checkpoint(path, state)
    notify(f"\nInterrupted: saved a checkpoint at epoch {state['epoch'] + 1}, step {state['step']} in {path}. "
           f"Run the same command again to resume.")
