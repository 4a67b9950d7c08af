"""The pieces of a cell: its data and split, its network, its resolved config, its scoring.

``engine/runner.py`` puts them together for every planned cell (``run_cell``). Evaluation follows PROTOCOL.md sections 2
and 5: per test scene the top-left ``test_region`` square (after the dataset's normalisation), cropped
to a multiple of the scale, degraded with MATLAB ``imresize``, super-resolved tile by tile,
``clip(0, 1)``, and scored against the target cropped by the method's output crop.
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn

from hsisr_bench import results
from hsisr_bench.config import RunConfig
from hsisr_bench.engine.train import TrainSettings
from hsisr_bench.errors import ConfigError, DataError
from hsisr_bench.registry import MethodInfo, OutputCrop, count_parameters, create_method


@dataclass
class EvalImage:
    """One scored test region: the HR region (top-left square, modcropped) and its MATLAB-bicubic LR."""

    name: str
    hr: np.ndarray  # (L, H, W)
    lr: np.ndarray  # (L, H / s, W / s)


@dataclass
class CellData:
    """What a cell reads from its dataset: the split, the scene roles and the wavelengths."""

    dataset: Any
    split: Any
    train: list[str]
    val: list[str]
    test: list[str]
    wavelengths: Optional[np.ndarray]


@dataclass
class CellOutcome:
    """What :func:`run_cell` did: ``status`` is ``finished``, ``skipped`` (already done) or ``trained``."""

    status: str
    directory: Path
    metrics: Optional[dict] = None


# ------------------------------------------------------------------------------------------ data


def open_cell_data(run: RunConfig) -> CellData:
    """Open the run's dataset and split it into training, validation and test scenes.

    Validation scenes (``protocol.val_scenes``) are carved from the training scenes with the split
    seed, never from the test scenes.

    Raises:
        DataError: missing data root or dataset folder, fewer than 2 scenes, too few training scenes
            for the validation subset.
    """
    from hsisr_bench.data.datasets import open_dataset
    from hsisr_bench.data.splits import split_for_dataset

    options = {}
    if run.dataset.name == "synthetic" and run.dataset.data_root is None:
        options = {k: v for k, v in (("n_scenes", run.dataset.n_scenes), ("size", run.dataset.size)) if v}
    elif run.dataset.n_scenes or run.dataset.size:
        raise ConfigError("dataset.n_scenes and dataset.size only apply to the synthetic dataset generated in memory.")
    dataset = open_dataset(run.dataset.name, run.dataset.data_root, key=run.dataset.key, **options)
    if len(dataset.scene_names) < 2:
        raise DataError(f"Dataset '{run.dataset.name}' at {dataset.root or 'memory'} has "
                        f"{len(dataset.scene_names)} scene(s); a train/test split needs at least 2.")
    split = split_for_dataset(run.dataset.name, dataset.scene_names, run.dataset.split_file,
                              seed=run.protocol.split_seed, restrict=run.dataset.restrict_split)
    train_names, val_names = list(split.train), []
    if run.protocol.val_scenes:
        if run.protocol.val_scenes >= len(train_names):
            raise DataError(f"protocol.val_scenes={run.protocol.val_scenes} leaves no training scene: the split has "
                            f"{len(train_names)} training scenes. Lower it (--set protocol.val_scenes=...).")
        order = np.random.default_rng(run.protocol.split_seed).permutation(len(train_names))
        val_names = sorted(train_names[i] for i in order[: run.protocol.val_scenes])
        train_names = [name for name in train_names if name not in val_names]
    wavelengths = dataset.spec.wavelengths
    return CellData(dataset, split, train_names, val_names, list(split.test),
                    None if wavelengths is None else np.asarray(wavelengths, dtype=float))


def modcrop(cube: np.ndarray, scale: int) -> np.ndarray:
    """Crop ``(L, H, W)`` from the top-left so that H and W are multiples of ``scale``."""
    h, w = cube.shape[-2:]
    return cube[..., : h - h % scale, : w - w % scale]


def eval_image(cube: np.ndarray, name: str, region: int, scale: int) -> EvalImage:
    """The scored region of one scene: top-left ``region`` square, modcrop, LR by MATLAB ``imresize``.

    Raises:
        DataError: the region is smaller than the scale.
    """
    from hsisr_bench.data.imresize import imresize

    hr = modcrop(np.ascontiguousarray(cube[:, :region, :region], dtype=np.float32), scale)
    if min(hr.shape[-2:]) < scale:
        raise DataError(f"Scene {name} is {cube.shape[-2]}x{cube.shape[-1]}, too small for a x{scale} test region.")
    # The degradation is computed in float64, as MATLAB's imresize does on double images.
    return EvalImage(name, hr, np.asarray(imresize(hr.astype(np.float64), 1.0 / scale), dtype=np.float32))


# ------------------------------------------------------------------------------------- inference


def predict(model: nn.Module, info: MethodInfo, lr: np.ndarray, *, scale: int, mean: Optional[np.ndarray],
            device: str, tile: int = 0, amp: str = "none") -> np.ndarray:
    """Super-resolve one LR cube ``(L, h, w)`` (tiled when ``tile``) and clip it: ``(L', H', W')`` in [0, 1]."""
    from hsisr_bench.engine.infer import super_resolve

    sr = super_resolve(model, lr, scale=scale, info=info, band_mean=mean, tile=tile or None, device=device,
                       amp=None if amp == "none" else amp, progress=False)
    return sr[0].clamp_(0.0, 1.0).numpy()  # (1, L', H', W') -> (L', H', W')


def score(sr: np.ndarray, target: np.ndarray, scale: int, conventions: Any = None) -> dict:
    """Every metric of ``hsisr_bench.metrics.evaluate`` for one image (default: the paper's conventions)."""
    from hsisr_bench.metrics import evaluate

    metrics = evaluate(sr, target, scale=scale, conventions=conventions)
    metrics.pop("conventions", None)  # recorded once per run, not per image
    return metrics


def conventions_record(run: RunConfig) -> dict:
    """The metric conventions a run is scored with, as recorded in metrics.json."""
    return run.conventions().to_dict()


# ----------------------------------------------------------------------------------- resolved config


def resolve_config(run: RunConfig, data: CellData, info: MethodInfo, crop: OutputCrop,
                   device: Optional[str] = None, weights_sha256: Optional[str] = None) -> dict:
    """The resolved config of a run (config.json) with its run id.

    For methods without training only the evaluation part of the protocol is part of the identity.
    The training precision (``amp``) and an AMP evaluation (``eval_amp``) are part of it; the device
    and the ``runtime`` switches (TF32, ``torch.compile``) are recorded but are not. A run scored from
    released weights (``hsibench evaluate --weights``) has their sha256 in its identity.
    """
    protocol = {k: v for k, v in run.to_dict()["protocol"].items() if k not in ("name", "description")}
    if not info.trainable:
        protocol = {"test_region": protocol["test_region"], "tile": protocol["tile"]}
    resolved: dict[str, Any] = {
        "method": run.method.name, "variant": run.method.variant, "title": info.title, "label": run.label,
        "options": run.recorded_options(),
        "loss": run.method.loss if info.trainable else None,
        "optimizer": ({**run.to_dict()["method"]["optimizer"], "lr": run.effective_lr()} if info.trainable else None),
        "profile_overrides": dict(run.protocol.method_overrides.get(run.method.name, {})),
        "dataset": run.dataset.name,
        "synthetic": {"n_scenes": run.dataset.n_scenes, "size": run.dataset.size},
        "scale": run.scale, "seed": run.seed,
        "protocol": protocol, "profile": run.protocol.name,
        "split": {"train": data.train, "val": data.val, "test": data.test, "note": data.split.note,
                  "seed": data.split.seed, "restriction": getattr(data.split, "restriction", None)},
        "output_crop": {"bands": crop.bands, "pixels": crop.pixels},
        "amp": run.amp if info.trainable else "none",
        "eval_amp": bool(run.eval_amp and run.amp != "none"),
        "runtime": {"tf32": run.tf32, "compile": bool(run.compile)},
        "experiment": run.experiment, "device": device or run.device, "data_root": run.dataset.data_root,
        "split_file": run.dataset.split_file,
        "version": results.version(),
    }
    if weights_sha256 is not None:
        resolved["weights_sha256"] = weights_sha256
    resolved["run_id"] = results.compute_run_id(resolved)
    return resolved


def make_model(run: RunConfig, bands: int) -> nn.Module:
    """Build the run's network for ``bands`` bands, initialised from the run's seed."""
    torch.manual_seed(run.seed)
    np.random.seed(run.seed)
    random.seed(run.seed)
    return create_method(run.method.name, bands=bands, scale=run.scale, **run.effective_options())


def train_settings(run: RunConfig, device: str, progress: Optional[bool]) -> TrainSettings:
    """The training loop's settings for a run: the protocol's schedule, the method's loss and optimiser.

    On CUDA, batches are cut by DataLoader workers (a few, persistent) while the GPU computes; on a
    CPU the cores are the compute, so batches are cut in-process.
    """
    optimizer = {k: v for k, v in run.method.optimizer.items() if k != "lr"}
    workers = min(4, max(1, (os.cpu_count() or 2) // 2)) if device.startswith("cuda") else 0
    return TrainSettings(
        epochs=run.protocol.epochs, batch_size=run.protocol.batch_size, lr=run.effective_lr(),
        loss=run.method.loss, seed=run.seed, steps_per_epoch=run.protocol.steps_per_epoch,
        lr_step_epochs=run.protocol.lr_step_epochs, lr_gamma=run.protocol.lr_gamma, optimizer=optimizer,
        device=device, amp=run.amp, progress=progress, compile=bool(run.compile), workers=workers,
    )


def make_patch_bank(run: RunConfig, scenes: Sequence[Any], cache_dir: Optional[Path] = None
                    ) -> torch.utils.data.Dataset:
    """The training patch bank of a run (PROTOCOL.md section 4), seeded by the run's seed.

    ``cache_dir`` (``<out>/.cache/patches``) keeps the rescaled scenes and LR patches on disk, so the
    next method of the same cell reuses them instead of recomputing MATLAB bicubic on every scene.
    """
    from hsisr_bench.data.patches import PatchBank

    p = run.protocol
    return PatchBank(scenes, scale=run.scale, lr_patch=p.lr_patch or 32,
                     hr_patch=p.hr_patch or None, patches_per_image=p.patches_per_image,
                     rescales=tuple(p.rescales), augment=p.augment, seed=run.seed, cache_dir=cache_dir)


def validation(model_info: MethodInfo, images: list[EvalImage], crop: OutputCrop, mean: np.ndarray,
                scale: int, device: str, tile: int) -> Callable[[nn.Module], float]:
    from hsisr_bench.metrics import psnr

    def validate(model: nn.Module) -> float:
        values = [psnr(predict(model, model_info, im.lr, scale=scale, mean=mean, device=device, tile=tile),
                       crop.apply(im.hr)) for im in images]
        return float(np.mean(values))

    return validate


def evaluate_run(run: RunConfig, info: MethodInfo, model: nn.Module, crop: OutputCrop, images: list[EvalImage],
                 mean: Optional[np.ndarray], resolved: dict, directory: Path, device: str,
                 train_seconds: float, epochs: int, extra: Optional[dict] = None, *,
                 trained_here: bool = False) -> dict:
    """Score the model on every test region, write predictions, per_image.csv and metrics.json (last).

    The forward passes run in float32 unless the run asks for an AMP evaluation (``eval_amp``), so
    a model trained in bf16 is scored like every other; ``metrics.json`` records both precisions
    (``tf32`` when float32 matmuls or convolutions ran in TF32 on CUDA).

    Args:
        trained_here: the model was trained by this call (the runtime record then states the cuDNN
            autotuning of that training; ``null`` for ``--weights`` and evaluate-only runs, where
            no training ran with it).

    Returns:
        The metrics record written to metrics.json.
    """
    from hsisr_bench.engine.environment import runtime_record

    eval_amp = run.amp if resolved.get("eval_amp") else "none"
    per_image, infer_seconds = [], 0.0
    for image in images:
        began = time.perf_counter()
        sr = predict(model, info, image.lr, scale=run.scale, mean=mean, device=device, tile=run.protocol.tile,
                     amp=eval_amp)
        infer_seconds += time.perf_counter() - began
        target = crop.apply(image.hr)
        if sr.shape != target.shape:
            raise DataError(f"{info.name} produced {sr.shape} for scene {image.name}, the target is {target.shape}.")
        results.write_predictions(directory, image.name, sr)
        per_image.append({"scene": image.name, **_plain(score(sr, target, run.scale, run.conventions()))})
    names = [k for k, v in per_image[0].items() if isinstance(v, float)]
    mean_metrics = {k: float(np.mean([row[k] for row in per_image])) for k in names}
    record = {
        "run_id": resolved["run_id"], "method": run.method.name, "variant": run.method.variant, "label": run.label,
        "title": info.title, "source": getattr(info, "source", "built-in"), "dataset": run.dataset.name, "scale": run.scale, "seed": run.seed,
        "protocol": run.protocol.name, "profile": run.protocol.name, "experiment": run.experiment,
        "options": resolved["options"], "loss": resolved["loss"],
        "profile_overrides": resolved["profile_overrides"],
        "conventions": conventions_record(run), "output_crop": {"bands": crop.bands, "pixels": crop.pixels},
        "params": count_parameters(model), "epochs": epochs, "train_seconds": round(train_seconds, 3),
        "infer_seconds": round(infer_seconds, 3), "n_test_scenes": len(images),
        "test_region": run.protocol.test_region, "device": device,
        "split": resolved["split"],
        "runtime": runtime_record(device, train_precision=_precision(resolved["amp"]) if info.trainable else "none",
                                  eval_precision=eval_precision(eval_amp, device),
                                  compiled=bool(run.compile) and info.trainable,
                                  cudnn_benchmark=_training_benchmark(device) if trained_here else None),
        "mean": mean_metrics, "per_image": per_image, "finished": True, "version": results.version(),
        **(extra or {}),
    }
    results.write_per_image(directory, per_image)
    results.write_json(directory / results.METRICS_FILE, record)
    return record


def _precision(amp: str) -> str:
    """``fp32`` for ``amp="none"``, else the autocast dtype's name."""
    return "fp32" if amp == "none" else amp


def eval_precision(amp: str, device: str) -> str:
    """The precision of the scored forward passes: the autocast dtype, ``tf32`` when float32 runs with
    TF32 matmuls or convolutions on CUDA (PyTorch's default for convolutions), else ``fp32``."""
    from hsisr_bench.engine.environment import tf32_state

    if amp != "none":
        return amp
    return "tf32" if device.startswith("cuda") and any(tf32_state().values()) else "fp32"


def _training_benchmark(device: str) -> bool:
    """cuDNN autotuning as the training loop sets it (``engine.train.training_backends``): on for CUDA."""
    return torch.device(device).type == "cuda"


def _plain(metrics: dict) -> dict:
    """Metrics as JSON-able Python floats and lists."""
    out = {}
    for key, value in metrics.items():
        if isinstance(value, (np.ndarray, torch.Tensor, list, tuple)):
            out[key] = [float(v) for v in np.asarray(value, dtype=float).ravel()]
        else:
            out[key] = float(value)
    return out
