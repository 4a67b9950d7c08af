"""What every reader shares: the datasets' constants and the checks and normalisation of a cube."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Union

import numpy as np

from hsisr_bench.errors import ConfigError, DataError

PathLike = Union[str, os.PathLike]

#: Band centres (nm) of each dataset (PROTOCOL.md section 1).
CAVE_WAVELENGTHS = np.arange(400.0, 701.0, 10.0)  # 31 bands
HARVARD_WAVELENGTHS = np.arange(420.0, 721.0, 10.0)  # 31 bands
FOSTER_WAVELENGTHS = np.arange(400.0, 721.0, 10.0)  # 33 bands
for _constant in (CAVE_WAVELENGTHS, HARVARD_WAVELENGTHS, FOSTER_WAVELENGTHS):
    _constant.setflags(write=False)  # shared by every scene and DatasetSpec: scenes get copies

CAVE_BANDS = 31
HARVARD_VARIABLE, HARVARD_MASK = "ref", "lbl"
FOSTER_VARIABLE = "hsi"

#: File suffixes the generic reader accepts.
GENERIC_SUFFIXES = (".mat", ".h5", ".hdf5", ".npy")
# A CAVE band file: "<prefix>_<number>.png", e.g. "balloons_ms_01.png" (prefix "balloons_ms", number 1).
_BAND_FILE = re.compile(r"^(?P<prefix>.+?)_(?P<number>\d+)\.png$", re.IGNORECASE)

# HDF5 groups MATLAB v7.3 uses for its own bookkeeping, never user variables.
_MATLAB_INTERNAL = ("#refs#", "#subsystem#")



# --------------------------------------------------------------------------------------------------
# Shared checks and normalisation
# --------------------------------------------------------------------------------------------------


def _check_values(cube: np.ndarray, source: Path, negative: str = "error") -> tuple[float, float]:
    """Reject NaN, Inf, negative values (unless clipped in place) and all-zero cubes; return (min, max)."""
    if negative not in ("error", "clip"):
        raise ConfigError(f"negative={negative!r} is not valid for {source}: use 'error' or 'clip'.")
    if np.issubdtype(cube.dtype, np.floating):
        finite = np.isfinite(cube)
        if not finite.all():
            n_nan = int(np.isnan(cube).sum())
            n_inf = int(cube.size - finite.sum()) - n_nan
            raise DataError(
                f"{source}: the cube holds {n_nan} NaN and {n_inf} Inf values; a scene must be finite. "
                "Repair or drop this file."
            )
    low, high = float(cube.min()), float(cube.max())
    if low < 0:
        if negative == "error":
            n_negative = int((cube < 0).sum())
            raise DataError(
                f"{source}: the cube holds {n_negative} negative values (min {low:.6g}); values must be "
                "non-negative. Repair the file, or pass the reader option negative='clip' to set them to 0."
            )
        np.maximum(cube, 0, out=cube)
        low = 0.0
    if high <= 0:
        raise DataError(f"{source}: the cube is all zeros; it holds no image. Repair or drop this file.")
    return low, high


def _check_bands(n_bands: int, source: Path, min_bands: int, hint: str = "") -> None:
    if n_bands < int(min_bands):
        raise DataError(
            f"{source}: the cube has {n_bands} band(s), expected at least {min_bands} (min_bands). "
            f"{hint or 'Check that this file is a hyperspectral cube.'}"
        )


def _to_unit_float32(cube: np.ndarray, divisor: float) -> np.ndarray:
    """Return ``cube / divisor`` as a C-contiguous float32 array.

    The division is done in float64 and rounded once to float32, so the result is the correctly
    rounded quotient whatever the input dtype. Float64 inputs owned by the reader are divided in place
    to avoid a second full-size temporary (Harvard and Foster cubes are hundreds of MB).
    """
    if cube.dtype == np.float32 and divisor == 1.0:
        return np.ascontiguousarray(cube)
    if cube.dtype != np.float64:
        cube = cube.astype(np.float64)
    cube /= divisor
    return np.ascontiguousarray(cube, dtype=np.float32)


