"""The one training loop for every trainable method: patches, band mean, loss, Adam, checkpoints, resume.

What it guarantees:

- **Exact resume.** The order of the patches is a function of ``(seed, epoch)`` only, and a checkpoint
  (model, optimiser, scheduler, grad scaler, RNG states, position in the epoch, the epoch log and the
  resolved config) is written atomically after every epoch. A run killed at any moment (even
  ``kill -9``) and started again continues from its last checkpoint, and on CPU ends with the same
  weights, bit for bit, as an uninterrupted run. Checkpoints are read onto the CPU, so one written on
  any number of GPUs resumes on any other (see ``engine/checkpoint.py``).
- **Ctrl-C** finishes the current step, saves a checkpoint at that step and says how to resume.
- **NaN/Inf loss** stops the run with a :class:`~hsisr_bench.errors.TrainingError`, and no checkpoint
  with non-finite weights is ever written: the last good checkpoint is kept. The loss is summed on the
  device and checked every ``check_every`` steps and at the end of each epoch (not at every step,
  which would make the host wait for the GPU every step).
- **A data path that overlaps with compute**: a ``DataLoader`` (``engine/batches.py``) with optional
  worker processes, pinned memory and asynchronous copies on CUDA, reading the seeded order.
- **Mixed precision** (bf16, or fp16 with a gradient scaler) on CUDA, bf16 on CPUs that support it.
  Only the model's forward runs under autocast; the data side (bicubic upsampling, band mean, crops)
  and the loss stay in float32. **DistributedDataParallel** when the process group is initialised
  (``torchrun``): each process takes its share of every global batch, so the gradient is the same as
  one process would compute.
"""

from __future__ import annotations

import math
import signal
import sys
import threading
import time
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence

import torch
import torch.nn as nn
from torch.utils.data import Dataset

from hsisr_bench.engine import distributed
from hsisr_bench.engine.batches import StepBatchSampler, epoch_order, make_loader
from hsisr_bench.engine.checkpoint import (CHECKPOINT_FILE, load_checkpoint, restore_model, rng_state,
                                           save_checkpoint, set_rng_state)
from hsisr_bench.engine.losses import get_loss
from hsisr_bench.errors import ConfigError, ResultsError, TrainingError
from hsisr_bench.registry import MethodInfo, OutputCrop

__all__ = ["CHECKPOINT_FILE", "TrainResult", "TrainSettings", "autocast_for", "cpu_supports_bf16", "crop_band_mean",
           "ddp_device_ids", "epoch_order", "forward_with_mean", "load_checkpoint", "make_optimizer", "output_crop_of",
           "save_checkpoint", "steps_and_batch", "train", "training_backends"]


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
        amp: ``none``, ``bf16`` (CUDA, or a CPU with bf16 instructions) or ``fp16`` (CUDA only).
        progress: ``True``: a tqdm bar (rank 0); ``False``: no progress output; ``None``: a bar when
            stderr is a terminal, else one line per epoch through ``notify`` (for logs and batch jobs).
        workers: DataLoader worker processes building the batches (0: in this process).
        check_every: the loss is checked for NaN/Inf every this many steps and at each epoch's end.
        compile: wrap the model with ``torch.compile`` for training.
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
    progress: Optional[bool] = True
    workers: int = 0
    check_every: int = 50
    compile: bool = False


@dataclass
class TrainResult:
    """What training produced: the per-epoch log, the training time, and whether it resumed."""

    log: list[dict]
    seconds: float
    resumed_from: Optional[tuple[int, int]] = None  # (epoch, step) of the checkpoint resumed, if any


def steps_and_batch(n_items: int, settings: TrainSettings) -> tuple[int, int]:
    """Optimiser steps per epoch and the (global) batch size actually used.

    A full pass drops the last incomplete batch, so every step has the same batch size (which DDP needs).
    """
    batch = min(settings.batch_size, n_items) if settings.steps_per_epoch == 0 else settings.batch_size
    steps = settings.steps_per_epoch or max(1, n_items // batch)
    return steps, batch


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
                      crop: OutputCrop, autocast: Optional[AbstractContextManager] = None) -> torch.Tensor:
    """The method's prediction for an LR batch, with the harness's band-mean subtraction and restoration.

    The data side (MATLAB-bicubic upsampling, mean subtraction and restoration) always runs in float32
    with autocast disabled, even when the caller is inside an autocast block: under bf16/fp16 the
    upsampling's matrix products would otherwise change the model's input (errors of ~1e-2) relative
    to the float32 input it gets at test time. Only ``model(...)`` runs under ``autocast``.

    Args:
        lr: ``(B, L, h, w)`` LR batch.
        mean: ``(1, L, 1, 1)`` band mean of the training images.
        crop: the output crop of ``model``.
        autocast: a context manager (e.g. ``torch.autocast(...)``) entered around the model's forward
            only; ``None``: the forward runs in the caller's context.

    Returns:
        ``(B, L', H', W')`` float32: the model sees ``x - mean`` (``x`` is the MATLAB-bicubic upsampled LR
        for ``upsampled`` methods; ``"lr+upsampled"`` methods get ``(lr - mean, upsampled - mean)``) and its output
        gets the (band-cropped) mean back.
    """
    fp32 = torch.autocast(lr.device.type, enabled=False)
    upsampled = None  # the second input of "lr+upsampled" methods
    with fp32:
        if info.input in ("upsampled", "lr+upsampled"):
            from hsisr_bench.data.imresize import imresize

            # No finiteness check here (a host sync per step on a GPU): a NaN in the batch makes the loss
            # NaN, which the loop's own checks catch without a sync per step.
            up = imresize(lr.float(), scale, check_finite=False)  # (B, L, s*h, s*w)
            if info.input == "upsampled":
                lr = up
            else:
                upsampled = up - mean
        x = lr.float() - mean
    from hsisr_bench.engine.infer import forward_padded, size_multiple_of

    # size_multiple (window models): reflect-pad to a multiple, crop the output back (engine/infer.py).
    multiple, factor = size_multiple_of(model, info), (1 if info.input == "upsampled" else scale)
    with autocast if autocast is not None else nullcontext():
        out = forward_padded(model, x, multiple=multiple, factor=factor, crop=crop.pixels, upsampled=upsampled)
    with fp32:
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


# ------------------------------------------------------------------------- devices and precision


def cpu_supports_bf16() -> bool:
    """Whether this CPU has native bf16 arithmetic (AVX512-BF16 or AMX), which bf16 autocast needs to pay off."""
    cpu = getattr(torch, "cpu", None)
    probes = [getattr(cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return torch.backends.mkldnn.is_available() and any(bool(probe()) for probe in probes if probe is not None)


def autocast_for(amp: str, device: torch.device) -> AbstractContextManager:
    """The autocast context of ``amp`` on ``device`` (a no-op context for ``none``).

    Raises:
        ConfigError: an unknown ``amp``, fp16 off CUDA, bf16 on a CPU without bf16 instructions, or
            mixed precision on another device type.
    """
    if amp == "none":
        return nullcontext()
    if amp not in ("bf16", "fp16"):
        raise ConfigError(f"Unknown mixed precision '{amp}' (--amp); use none, bf16 or fp16.")
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16 if amp == "bf16" else torch.float16)
    if device.type == "cpu" and amp == "bf16":
        if not cpu_supports_bf16():
            raise ConfigError("Mixed precision (amp=bf16) on the CPU needs bf16 instructions (AVX512-BF16 or "
                              "AMX), which this CPU lacks; use --amp none, or a CUDA device.")
        return torch.autocast("cpu", dtype=torch.bfloat16)
    raise ConfigError(f"Mixed precision (amp={amp}) needs a CUDA device (on CPU only bf16 is supported); "
                      f"use --amp none{' or --amp bf16' if device.type == 'cpu' else ''} on {device}.")


def ddp_device_ids(device: torch.device) -> Optional[list[int]]:
    """The ``device_ids`` to give DistributedDataParallel: ``[k]`` for ``cuda:k`` (or the current GPU), else None."""
    if device.type != "cuda":
        return None
    return [device.index if device.index is not None else torch.cuda.current_device()]


@contextmanager
def training_backends(device: torch.device) -> Iterator[None]:
    """Backend flags for training on ``device``, restored afterwards.

    On CUDA, ``cudnn.benchmark`` is turned on: training shapes are fixed (one patch size, one batch
    size), so autotuning the convolution algorithms once pays off. It is restored afterwards because
    tiled inference sees many shapes, each of which would be autotuned again.
    """
    previous = torch.backends.cudnn.benchmark
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = previous


def _training_network(model: nn.Module, device: torch.device, world: int, compile_model: bool) -> nn.Module:
    """The module the loop calls: ``model``, wrapped in DDP when distributed, compiled on request."""
    net: nn.Module = model
    if world > 1:
        net = nn.parallel.DistributedDataParallel(model, device_ids=ddp_device_ids(device))
    if compile_model:
        net = torch.compile(net)
    return net


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
        settings: schedule, loss, optimiser, device, precision and data loading.
        run_dir: where ``checkpoint.pt`` and ``train_log.csv`` go (``None``: nothing is written). If it
            holds a checkpoint of the same run, training resumes from it.
        config: the resolved config, stored in the checkpoint; its ``run_id`` must match on resume.
        validate: called with the model after each epoch (rank 0) to give a validation PSNR.
        notify: prints messages (resume, interrupt, and the epoch lines of ``progress=None`` off a terminal).
        label: the progress bar's description.

    Returns:
        A :class:`TrainResult` with one log row per epoch (``epoch, loss, lr, seconds[, val_psnr]``).

    Raises:
        TrainingError: a NaN or Inf loss or weight (the last good checkpoint is kept).
        ConfigError: a mixed precision the device cannot run, a batch not divisible by the processes,
            or a negative ``workers`` / non-positive ``check_every``.
        ResultsError: a checkpoint of another run in ``run_dir``.
        KeyboardInterrupt: after Ctrl-C, once the checkpoint at the current step is saved.
    """
    from tqdm.auto import tqdm

    from hsisr_bench.results import write_train_log

    dist_info = distributed.current()
    device = torch.device(settings.device)
    autocast = autocast_for(settings.amp, device)
    if settings.workers < 0 or settings.check_every < 1:
        raise ConfigError(f"Training needs workers >= 0 and check_every >= 1; got workers={settings.workers}, "
                          f"check_every={settings.check_every}.")
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
    net = _training_network(model, device, dist_info.world, settings.compile)
    optimizer = make_optimizer(model, settings)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=settings.lr_step_epochs, gamma=settings.lr_gamma)
    scaler = torch.amp.GradScaler("cuda") if settings.amp == "fp16" and device.type == "cuda" else None

    # ---- resume (the checkpoint is read onto the CPU; load_state_dict copies to the parameters' device)
    start_epoch, start_step, loss_sum, epoch_seconds, log = 0, 0, 0.0, 0.0, []
    resumed_from = None
    checkpoint_path = Path(run_dir) / CHECKPOINT_FILE if run_dir is not None else None
    if checkpoint_path is not None and checkpoint_path.is_file():
        state = load_checkpoint(checkpoint_path, "cpu")
        old_id, new_id = state.get("config", {}).get("run_id"), (config or {}).get("run_id")
        if old_id != new_id:
            raise ResultsError(f"{checkpoint_path} belongs to run {old_id}, not {new_id}. Rerun with --force "
                               f"or use another --out.")
        restore_model(model, state["model"], checkpoint_path)  # a misfit: an Error line naming the file
        restore_model(optimizer, state["optimizer"], checkpoint_path)
        scheduler.load_state_dict(state["scheduler"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])
        start_epoch, start_step = int(state["epoch"]), int(state["step"])
        loss_sum, epoch_seconds, log = float(state["loss_sum"]), float(state["epoch_seconds"]), list(state["log"])
        resumed_from = (start_epoch, start_step)
        if start_epoch < settings.epochs and dist_info.is_main:
            notify(f"Resuming {label} from {checkpoint_path} at epoch {start_epoch + 1}, step {start_step}.")

    def checkpoint_state(epoch: int, step: int) -> dict:
        return {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict() if scaler else None,
                "rng": rng_state(), "epoch": epoch, "step": step, "loss_sum": loss_sum,
                "epoch_seconds": epoch_seconds, "log": log, "config": dict(config or {}),
                "band_mean": mean.detach().reshape(-1).cpu()}

    def check(running: torch.Tensor, epoch: int, done: int, *, weights: bool = False) -> float:
        """The epoch's loss sum so far (one host sync); raises when it, or a weight, is not finite.

        Under DDP the processes' sums are averaged here, at the checks, not at every step: every
        process starts the epoch from the same (averaged) sum, so the mean of the sums is the sum of the
        per-step means. All processes reach the same checks, as they reach every step's gradient all-reduce.
        """
        value = float(distributed.all_reduce_mean(running))
        if math.isfinite(value) and not (weights and not _weights_finite(model)):
            return value
        what = f"loss became {value}" if not math.isfinite(value) else "weights became NaN/Inf"
        kept = (f"The last good checkpoint ({_describe(log)}) is kept in {checkpoint_path}."
                if checkpoint_path is not None and checkpoint_path.is_file() else "No checkpoint was written yet.")
        raise TrainingError(
            f"The training {what} at epoch {epoch + 1}, step {done} ({label}); found at the check after that "
            f"step (checks run every {settings.check_every} steps and at each epoch's end, so it may have "
            f"happened up to {settings.check_every - 1} steps earlier). {kept} Lower the learning rate "
            f"(--set method.optimizer.lr=...) or turn mixed precision off (--amp none), then rerun.")

    sampler = StepBatchSampler(n_items, steps, batch, settings.seed, dist_info.rank, dist_info.world)
    loader = make_loader(bank, sampler, workers=settings.workers, device=device)
    copy_async = device.type == "cuda"  # pinned batches: the host does not wait for the copy
    show_bar = dist_info.is_main and (settings.progress is True or (settings.progress is None and _on_terminal()))
    epoch_lines = dist_info.is_main and settings.progress is None and not show_bar
    total = settings.epochs * steps
    bar = tqdm(total=total, initial=min(total, start_epoch * steps + start_step), desc=label, unit="step",
               disable=not show_bar, dynamic_ncols=True, leave=False)
    session_began, session_epochs = time.perf_counter(), 0
    with training_backends(device), _deferred_interrupt() as interrupted:
        try:
            for epoch in range(start_epoch, settings.epochs):
                first_step = start_step if epoch == start_epoch else 0
                if first_step == 0:
                    loss_sum, epoch_seconds = 0.0, 0.0
                lr_now = optimizer.param_groups[0]["lr"]
                # float64 on the device: the same sum as adding Python floats step by step, without a sync.
                running = torch.tensor(loss_sum, dtype=torch.float64, device=device)
                sampler.set_epoch(epoch, first_step)
                began = time.perf_counter()
                for step, (lr_batch, hr_batch) in zip(range(first_step, steps), loader):
                    lr_batch = lr_batch.to(device, non_blocking=copy_async)
                    hr_batch = hr_batch.to(device, non_blocking=copy_async)
                    sr = forward_with_mean(net, info, lr_batch, mean, scale, crop, autocast=autocast)
                    loss = loss_fn(sr.float(), crop.apply(hr_batch))
                    running += loss.detach().double()  # this process's losses; averaged at the checks
                    optimizer.zero_grad(set_to_none=True)
                    if scaler is not None:
                        scaler.scale(loss).backward()
                        scaler.step(optimizer)
                        scaler.update()
                    else:
                        loss.backward()
                        optimizer.step()
                    done = step + 1
                    bar.update(1)
                    stop = interrupted()
                    if stop or done % settings.check_every == 0 or done == steps:
                        loss_sum = check(running, epoch, done, weights=stop or done == steps)
                        bar.set_postfix(loss=f"{loss_sum / done:.4g}", lr=f"{lr_now:.2e}", epoch=epoch + 1)
                    if stop:
                        epoch_seconds += time.perf_counter() - began
                        _save_interrupted(checkpoint_path, checkpoint_state(epoch, done), dist_info, notify)
                        raise KeyboardInterrupt
                epoch_seconds += time.perf_counter() - began
                scheduler.step()
                row: dict[str, Any] = {"epoch": epoch + 1, "loss": loss_sum / steps, "lr": lr_now,
                                       "seconds": round(epoch_seconds, 3)}
                if validate is not None and dist_info.is_main:
                    model.eval()
                    row["val_psnr"] = float(validate(model))
                    model.train()
                log.append(row)
                session_epochs += 1
                if epoch_lines:
                    notify(_epoch_line(label, row, settings.epochs, time.perf_counter() - session_began,
                                       session_epochs))
                if checkpoint_path is not None and dist_info.is_main:
                    save_checkpoint(checkpoint_path, checkpoint_state(epoch + 1, 0))
                    write_train_log(checkpoint_path.parent, log)
                distributed.barrier()
        finally:
            bar.close()
    model.eval()
    return TrainResult(log=log, seconds=sum(float(r["seconds"]) for r in log), resumed_from=resumed_from)


def _weights_finite(model: nn.Module) -> bool:
    """Whether every parameter is finite (one host sync for all of them)."""
    flags = [torch.isfinite(p).all() for p in model.parameters()]
    return bool(torch.stack(flags).all()) if flags else True


def _on_terminal() -> bool:
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty())


def _epoch_line(label: str, row: Mapping[str, Any], epochs: int, elapsed: float, epochs_here: int) -> str:
    """One progress line for logs: ``label: epoch k/K  loss  lr  [val PSNR]  elapsed  ETA``."""
    remaining = (epochs - int(row["epoch"])) * elapsed / max(1, epochs_here)
    parts = [f"{label}: epoch {row['epoch']}/{epochs}", f"loss {row['loss']:.4g}", f"lr {row['lr']:.2e}"]
    if "val_psnr" in row:
        parts.append(f"val PSNR {row['val_psnr']:.2f} dB")
    parts += [f"elapsed {_clock(elapsed)}", f"ETA {_clock(remaining)}"]
    return "  ".join(parts)


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def _describe(log: Sequence[Mapping[str, Any]]) -> str:
    return f"end of epoch {log[-1]['epoch']}" if log else "an earlier step"


def _save_interrupted(path: Optional[Path], state: dict, dist_info: distributed.DistInfo,
                      notify: Callable[[str], None]) -> None:
    if path is None or not dist_info.is_main:
        return
    save_checkpoint(path, state)
    notify(f"\nInterrupted: saved a checkpoint at epoch {state['epoch'] + 1}, step {state['step']} in {path}. "
           f"Run the same command again to resume.")
