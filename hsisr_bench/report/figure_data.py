"""What the figures draw, read from the results store: the runs of a cell, stored targets and predictions, training logs.

Methods with an output crop are checked against the target with the ``output_crop`` of their
``metrics.json`` (:func:`check_aligned`); nothing here draws.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from hsisr_bench.errors import ResultsError
from hsisr_bench.report import cell_dir, method_key, method_label, method_sort_key, output_crop


@dataclass(frozen=True)
class MethodRun:
    """The run of one method chosen to draw: its record, run folder and output crop."""

    key: str
    label: str
    record: Mapping[str, Any]
    run_dir: Path
    crop_bands: int
    crop_pixels: int


def cell_runs(records: Sequence[Mapping[str, Any]], dataset: str, scale: int, seed: Optional[int] = None,
              experiment: Optional[str] = None) -> list[MethodRun]:
    """One run per method of a cell: the given ``seed`` when it ran, else the lowest seed.

    Args:
        records: finished runs.
        dataset, scale: the cell.
        seed: preferred seed.
        experiment: keep only this experiment's runs (see :func:`hsisr_bench.report.tables.experiment_records`).

    Returns:
        The runs in the paper's method order.
    """
    if experiment is not None:
        from hsisr_bench.report.tables import experiment_records

        records = experiment_records(records, experiment)
    chosen: dict[str, Mapping[str, Any]] = {}
    for record in records:
        if str(record["dataset"]) != str(dataset) or int(record["scale"]) != int(scale):
            continue
        key = method_key(record)
        current = chosen.get(key)
        if current is None or _seed_preference(record, seed) < _seed_preference(current, seed):
            chosen[key] = record
    runs = []
    for key in sorted(chosen, key=method_sort_key):
        record = chosen[key]
        bands, pixels = output_crop(record)
        runs.append(MethodRun(key, method_label(record), record, Path(record["_run_dir"]), bands, pixels))
    return runs


def _seed_preference(record: Mapping[str, Any], seed: Optional[int]) -> tuple[int, int]:
    value = int(record.get("seed", 0))
    return (0 if seed is not None and value == seed else 1, value)


def stored_scenes(results_dir: str | Path, dataset: str, scale: int) -> list[str]:
    """Names of the test scenes whose HR target is stored for a cell (``targets/<scene>.npy``), sorted."""
    folder = cell_dir(results_dir, dataset, scale) / "targets"
    return sorted(p.stem for p in folder.glob("*.npy")) if folder.is_dir() else []


def load_target(results_dir: str | Path, dataset: str, scale: int, scene: str) -> np.ndarray:
    """The stored HR target region of a scene as float32 ``(L, H, W)``.

    Raises:
        ResultsError: the target file is missing or unreadable (lists the scenes that are stored).
    """
    path = cell_dir(results_dir, dataset, scale) / "targets" / f"{scene}.npy"
    if not path.is_file():
        stored = stored_scenes(results_dir, dataset, scale)
        raise ResultsError(
            f"No target {path} for scene '{scene}'. Stored scenes of {dataset} ×{scale}: "
            f"{', '.join(stored) or 'none'} (choose one with --scene; targets are written by `hsibench run`).")
    return _load_cube(path)


def load_prediction(run: MethodRun, scene: str) -> Optional[np.ndarray]:
    """A run's stored prediction of a scene as float32 ``(L', H', W')``, or ``None`` when it has none."""
    path = run.run_dir / "predictions" / f"{scene}.npy"
    return _load_cube(path) if path.is_file() else None


def _load_cube(path: Path) -> np.ndarray:
    try:
        cube = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise ResultsError(f"Cannot read {path}: {error}. Delete the run folder and run again to recompute it.") from None
    if cube.ndim != 3:
        raise ResultsError(f"{path} holds an array of shape {cube.shape}; expected a cube (L, H, W). "
                           f"Delete the run folder and run again.")
    return cube.astype(np.float32)


def check_aligned(run: MethodRun, prediction: np.ndarray, target_shape: tuple[int, int, int], scene: str) -> None:
    """Raise when a prediction does not have the target's shape minus the method's output crop."""
    L, H, W = target_shape
    expected = (L - 2 * run.crop_bands, H - 2 * run.crop_pixels, W - 2 * run.crop_pixels)
    if tuple(prediction.shape) != expected:
        raise ResultsError(
            f"{run.run_dir}/predictions/{scene}.npy has shape {tuple(prediction.shape)}, expected {expected} "
            f"(target {target_shape} minus output crop of {run.crop_bands} bands and {run.crop_pixels} pixels "
            f"per side). The run and the stored target disagree; rerun it with --force.")


def read_train_log(run_dir: str | Path) -> Optional[dict[str, np.ndarray]]:
    """A run's ``train_log.csv`` as column -> float array (empty cells become NaN), or ``None`` when absent."""
    path = Path(run_dir) / "train_log.csv"
    if not path.is_file():
        return None
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as error:
        raise ResultsError(f"Cannot read {path}: {error}.") from None
    if not rows:
        return None
    columns = {}
    for name in rows[0]:
        values = []
        for row in rows:
            try:
                values.append(float(row.get(name) or "nan"))
            except ValueError:
                values.append(float("nan"))
        columns[name] = np.asarray(values)
    return columns
