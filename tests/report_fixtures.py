"""A small fake results store for the report tests, following docs/architecture.md's layout exactly.

    <out>/<dataset>/x<scale>/<label>/seed<k>/{config.json, metrics.json, per_image.csv, train_log.csv,
                                             predictions/<scene>.npy}
    <out>/<dataset>/x<scale>/targets/<scene>.npy
    <out>/<dataset>/x<scale>/wavelengths.json

Targets are smooth seeded random cubes; each method's prediction is the target plus seeded noise of
a method-specific level (so methods rank in a known order), clipped to [0, 1] and stored as float16.
Metrics are computed from the stored arrays with the paper's conventions (PSNR over the whole cube,
SSIM per band with an 11×11 Gaussian window, SAM in degrees), so the tables can be checked against
independent numbers.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
from scipy.ndimage import gaussian_filter
from skimage.metrics import structural_similarity

#: Noise level of each fake method: the lower, the better it scores.
NOISE = {"bicubic": 0.05, "gdrrn": 0.04, "fcnn3d": 0.03, "edsr": 0.02, "ssrnet": 0.01}
#: The paper's metric conventions, as ``hsisr_bench.metrics.Conventions`` records them in metrics.json.
CONVENTIONS = {"psnr_reduction": "cube", "data_range": 1.0, "ssim_window": "gaussian", "sam_zero": "paper",
               "sam_unit": "deg"}
TITLES = {"bicubic": "Bicubic", "gdrrn": "GDRRN", "fcnn3d": "3D-FCNN", "edsr": "EDSR", "ssrnet": "SSRNet"}


@dataclass
class FakeRun:
    """One fake run: method, optional variant/loss/options/experiment, noise level and seed."""

    method: str
    seed: int = 0
    variant: Optional[str] = None
    loss: Optional[str] = None
    options: dict = field(default_factory=dict)
    experiment: Optional[str] = None
    noise: Optional[float] = None
    params: Optional[int] = None
    val_psnr: bool = True
    epochs: int = 4

    @property
    def label(self) -> str:
        label = self.method + (f"+{self.variant}" if self.variant else "")
        return label + (f"+loss-{self.loss}" if self.loss else "")


def make_target(bands: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """A smooth random cube ``(bands, size, size)`` in [0.05, 0.95]."""
    cube = gaussian_filter(rng.random((bands, size, size)), sigma=(2.0, 3.0, 3.0))
    cube = (cube - cube.min()) / (cube.max() - cube.min())
    return (0.05 + 0.9 * cube).astype(np.float32)


def scene_metrics(sr: np.ndarray, hr: np.ndarray) -> dict[str, Any]:
    """PSNR (whole cube, peak 1), SSIM (per band, Gaussian 11×11, mean), SAM (degrees, mean over pixels)."""
    sr, hr = sr.astype(np.float64), hr.astype(np.float64)
    mse = float(np.mean((sr - hr) ** 2))
    per_band_mse = np.mean((sr - hr) ** 2, axis=(1, 2))
    ssim_bands = [structural_similarity(h, s, data_range=1.0, gaussian_weights=True, sigma=1.5,
                                        use_sample_covariance=False) for s, h in zip(sr, hr)]
    dot = np.sum(sr * hr, axis=0)
    norms = np.linalg.norm(sr, axis=0) * np.linalg.norm(hr, axis=0)
    sam = float(np.degrees(np.arccos(np.clip(dot / norms, -1, 1))).mean())
    return {
        "psnr": 10 * np.log10(1.0 / mse), "ssim": float(np.mean(ssim_bands)), "sam": sam,
        "rmse": float(np.sqrt(mse)), "mpsnr": float(np.mean(10 * np.log10(1.0 / per_band_mse))),
        "psnr_per_band": [float(v) for v in 10 * np.log10(1.0 / per_band_mse)],
        "ssim_per_band": [float(v) for v in ssim_bands],
    }


def write_fake_results(root: Path, runs: Sequence[FakeRun], *, dataset: str = "cave", scale: int = 2,
                       scenes: Sequence[str] = ("balloons", "beads", "cd"), bands: int = 31, size: int = 32,
                       seed: int = 0, protocol: str = "smoke", wavelengths: bool = True,
                       conventions: Optional[dict] = None) -> Path:
    """Write one (dataset, scale) cell of a fake results store under ``root`` and return ``root``.

    Every run gets config.json, metrics.json (``"finished": true``), per_image.csv, train_log.csv
    (not for Bicubic) and predictions; the cell gets targets and wavelengths.json.
    """
    root = Path(root)
    cell = root / dataset / f"x{scale}"
    rng = np.random.default_rng(seed)
    targets = {name: make_target(bands, size, rng) for name in scenes}
    (cell / "targets").mkdir(parents=True, exist_ok=True)
    for name, cube in targets.items():
        np.save(cell / "targets" / f"{name}.npy", cube.astype(np.float16))
    targets = {name: np.load(cell / "targets" / f"{name}.npy").astype(np.float32) for name in scenes}
    (cell / "wavelengths.json").write_text(
        json.dumps([400.0 + 10.0 * b for b in range(bands)] if wavelengths else None))
    for index, run in enumerate(runs):
        run_dir = cell / run.label / f"seed{run.seed}"
        (run_dir / "predictions").mkdir(parents=True, exist_ok=True)
        crop = {"bands": 4, "pixels": 6} if run.method == "fcnn3d" else {"bands": 0, "pixels": 0}
        run_rng = np.random.default_rng([seed, index, run.seed])
        noise = run.noise if run.noise is not None else NOISE.get(run.method, 0.03)
        per_image = []
        for name, target in targets.items():
            b, p = crop["bands"], crop["pixels"]
            hr = target[b:bands - b, p:size - p, p:size - p]  # the part of the target the method produces
            sr = np.clip(hr + noise * run_rng.standard_normal(hr.shape), 0, 1).astype(np.float16)
            np.save(run_dir / "predictions" / f"{name}.npy", sr)
            per_image.append({"scene": name, **scene_metrics(sr.astype(np.float32), hr)})
        scalar = ("psnr", "ssim", "sam", "rmse", "mpsnr")
        mean = {m: float(np.mean([image[m] for image in per_image])) for m in scalar}
        config = {"method": {"name": run.method, "variant": run.variant, "options": run.options,
                             "loss": run.loss or "l1"},
                  "dataset": {"name": dataset}, "protocol": {"name": protocol}, "scale": scale, "seed": run.seed,
                  "experiment": run.experiment, "run_id": f"fake{index:04d}", "version": "0.1.0"}
        metrics = {
            "run_id": f"fake{index:04d}", "method": run.method, "variant": run.variant,
            "title": TITLES.get(run.method, run.method), "dataset": dataset, "scale": scale, "seed": run.seed,
            "protocol": protocol, "experiment": run.experiment, "options": run.options,
            "loss": run.loss or ("l1" if run.method != "bicubic" else None),
            "conventions": conventions or CONVENTIONS, "output_crop": crop,
            "params": run.params if run.params is not None else (0 if run.method == "bicubic" else 1000 + 17 * index),
            "train_seconds": 1.5 * index, "infer_seconds": 0.25 + 0.01 * index, "n_test_scenes": len(scenes),
            "mean": mean, "per_image": per_image, "finished": True, "version": "0.1.0",
        }
        (run_dir / "config.json").write_text(json.dumps(config, indent=2))
        (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
        with (run_dir / "per_image.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["scene", *scalar])
            for image in per_image:
                writer.writerow([image["scene"], *(image[m] for m in scalar)])
        if run.method != "bicubic":
            with (run_dir / "train_log.csv").open("w", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(["epoch", "loss", "lr", "seconds"] + (["val_psnr"] if run.val_psnr else []))
                for epoch in range(1, run.epochs + 1):
                    row = [epoch, noise / epoch, 1e-4, 0.5]
                    writer.writerow(row + ([30.0 + 2.0 * epoch - 100 * noise] if run.val_psnr else []))
    return root


def paper_methods(seed: int = 0) -> list[FakeRun]:
    """The five methods of Table V, default settings."""
    return [FakeRun(method, seed=seed) for method in ("bicubic", "gdrrn", "fcnn3d", "edsr", "ssrnet")]
