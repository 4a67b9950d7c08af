"""The generic reader: one cube from a ``.mat``, ``.h5``/``.hdf5`` or ``.npy`` file, band axis and scale found."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from hsisr_bench.data.formats import GENERIC_SUFFIXES, PathLike, _check_bands, _check_values, _to_unit_float32
from hsisr_bench.data.mat_reader import (check_hdf5_declared, _hdf5_datasets, _is_hdf5, _is_matlab_dataset, _list_mat_variables,
                                         _open_hdf5, _read_mat_arrays)
from hsisr_bench.data.scene import Scene
from hsisr_bench.errors import ConfigError, DataError


# --------------------------------------------------------------------------------------------------
# Generic: .mat, .h5/.hdf5, .npy
# --------------------------------------------------------------------------------------------------


@dataclass
class _RawCube:
    """A cube array as read from a generic file, before reordering and normalisation."""

    array: np.ndarray  # MATLAB order (H x W x L) when ``matlab``, else stored order
    matlab: bool
    variable: Optional[str]
    disk_format: str
    band_axis: Optional[int] = None  # known from the file itself (synthetic manifest)
    wavelengths: Optional[np.ndarray] = None
    dataset: Optional[str] = None


def _default_band_axis(shape: tuple[int, ...], matlab: bool) -> Optional[int]:
    """The band axis of a 3-D array by the documented rule; None when the smallest axis is not unique."""
    if matlab:
        return 2
    smallest = min(shape)
    axes = [axis for axis, size in enumerate(shape) if size == smallest]
    return axes[0] if len(axes) == 1 else None


def _pick_variable(path: Path, shapes: dict[str, tuple[tuple[int, ...], bool]], key: Optional[str],
                   band_axis: Optional[int]) -> str:
    """Choose the variable to read: ``key``, else the only 3-D one, else the one with most bands.

    ``shapes`` maps each variable to its shape (MATLAB order for MATLAB arrays) and whether it is a
    MATLAB array.
    """
    listing = ", ".join(f"{name} ({'x'.join(map(str, shape))})" for name, (shape, _) in shapes.items())
    listing = listing or "none"
    if key is not None:
        key = key.lstrip("/")
        if key not in shapes:
            raise DataError(f"{path}: no variable {key!r} (--set dataset.key / key=). Variables found: "
                            f"{listing}. Name one of those.")
        return key
    three_d = {name: info for name, info in shapes.items() if len(info[0]) == 3}
    if not three_d:
        raise DataError(f"{path}: no 3-D array (a cube) found. Variables found: {listing}. "
                        "Name the cube with --set dataset.key=NAME (reader option key=NAME).")
    if len(three_d) == 1:
        return next(iter(three_d))
    bands = {}
    for name, (shape, matlab) in three_d.items():
        axis = band_axis if band_axis is not None else _default_band_axis(shape, matlab)
        bands[name] = shape[axis] if axis is not None and -3 <= axis < 3 else 0
    most = max(bands.values())
    best = [name for name, count in bands.items() if count == most]
    if len(best) > 1 or most == 0:
        raise DataError(f"{path}: several 3-D arrays could be the cube ({listing}). Name it with "
                        "--set dataset.key=NAME (reader option key=NAME).")
    return best[0]


def read_synthetic_manifest(folder: PathLike) -> Optional[dict[str, Any]]:
    """The manifest of a folder written by ``hsibench data synth``, or ``None`` when there is none.

    Args:
        folder: the folder that may hold ``synthetic.json``.

    Returns:
        The parsed manifest (``scenes``, ``arguments``, ``wavelengths_nm``, ...) or ``None``.

    Raises:
        DataError: the manifest exists but is not valid JSON or lacks the scene list.
    """
    from hsisr_bench.data.synthetic import MANIFEST_NAME

    path = Path(folder) / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise DataError(f"cannot read the synthetic dataset manifest {path}: {error}. Write the folder "
                        "again with `hsibench data synth --out DIR --force`.") from error
    if not isinstance(manifest, dict) or not isinstance(manifest.get("scenes"), list):
        raise DataError(f"{path} is not a synthetic dataset manifest (no 'scenes' list). Write the "
                        "folder again with `hsibench data synth --out DIR --force`.")
    return manifest


def _synthetic_manifest(path: Path) -> Optional[dict[str, Any]]:
    """The manifest next to ``path`` when it lists ``path`` as one of its scenes."""
    manifest = read_synthetic_manifest(path.parent)
    if manifest is None or path.stem not in manifest["scenes"]:
        return None
    return manifest


def _load_npy(path: Path, key: Optional[str]) -> _RawCube:
    if key is not None:
        raise ConfigError(f"{path}: key= does not apply to .npy files (they hold one array).")
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise DataError(f"cannot read {path} as a .npy array: {error}. The file is corrupt, truncated "
                        "or holds Python objects; write it again with numpy.save.") from error
    raw = _RawCube(array=array, matlab=False, variable=None, disk_format=f"{array.dtype} (.npy)")
    manifest = _synthetic_manifest(path)
    if manifest is not None:  # written by `hsibench data synth`: band-first, wavelengths known
        raw.band_axis, raw.dataset = 0, str(manifest.get("dataset", "synthetic"))
        wavelengths = manifest.get("wavelengths_nm")
        raw.wavelengths = None if wavelengths is None else np.asarray(wavelengths, dtype=np.float64)
    return raw


def _load_mat_v5(path: Path, key: Optional[str], band_axis: Optional[int]) -> _RawCube:
    shapes = {name: (shape, True) for name, shape, _ in _list_mat_variables(path)}
    variable = _pick_variable(path, shapes, key, band_axis)
    arrays, version = _read_mat_arrays(path, [variable])
    if variable not in arrays:
        raise DataError(f"{path}: variable {variable!r} is listed but cannot be read; the file is "
                        "truncated or corrupt. Download it again.")
    array = arrays[variable]
    return _RawCube(array=array, matlab=True, variable=variable,
                    disk_format=f"{array.dtype} {variable!r} ({version})")


def _load_hdf5(path: Path, key: Optional[str], band_axis: Optional[int]) -> _RawCube:
    """A cube from an HDF5 file: a MATLAB v7.3 ``.mat`` or a plain ``.h5``/``.hdf5``."""
    if not _is_hdf5(path):
        raise DataError(f"{path} is not an HDF5 file (corrupt, truncated, or a wrong suffix). Write it "
                        "again, or rename it to its real type.")
    with _open_hdf5(path) as file:
        datasets = _hdf5_datasets(file)
        # A dataset with a MATLAB_class attribute is a MATLAB array: its axes are reversed on disk.
        shapes = {}
        for name, item in datasets.items():
            matlab = _is_matlab_dataset(item)
            shapes[name] = (tuple(reversed(item.shape)) if matlab else tuple(item.shape), matlab)
        variable = _pick_variable(path, shapes, key, band_axis)
        item = datasets[variable]
        check_hdf5_declared(path, variable, item, ndim=3)
        try:
            array = item[()]
        except (OSError, ValueError) as error:
            raise DataError(f"cannot read dataset {variable!r} of {path}: {error}. The file is corrupt "
                            "or truncated; write it again.") from error
        matlab = shapes[variable][1]
        if matlab:
            array = array.T  # (L, W, H) on disk -> MATLAB's (H, W, L)
        raw = _RawCube(array=array, matlab=matlab, variable=variable,
                       disk_format=f"{array.dtype} {variable!r} ({'MATLAB v7.3' if matlab else 'HDF5'})")
        wavelengths = datasets.get("wavelengths")
        # A 1-D (or MATLAB 1 x L) dataset named "wavelengths" gives the band centres.
        if wavelengths is not None and wavelengths.ndim in (1, 2) and wavelengths.size == max(wavelengths.shape, default=0):
            raw.wavelengths = np.asarray(wavelengths[()], dtype=np.float64).ravel()
    return raw


def _normalise_generic(path: Path, normalise: Any, peak: float) -> tuple[float, str]:
    """The divisor for the generic ``normalise`` option, and a description of it."""
    if isinstance(normalise, str):
        mode = normalise.lower()
        if mode == "auto":
            return (peak, f"÷ max ({peak:.6g})") if peak > 1 else (1.0, "none (already in [0, 1])")
        if mode == "max":
            return peak, f"÷ max ({peak:.6g})"
        if mode == "none":
            if peak > 1:
                raise DataError(f"{path}: values reach {peak:.6g} but normalise='none' needs them in "
                                "[0, 1]. Use normalise='max' (or 'auto') or a divisor.")
            return 1.0, "none"
    elif isinstance(normalise, (int, float)) and not isinstance(normalise, bool) and normalise > 0:
        divisor = float(normalise)
        if peak > divisor:
            raise DataError(f"{path}: values reach {peak:.6g}, above the divisor normalise={normalise}; "
                            "they would exceed 1. Use a larger divisor or normalise='max'.")
        return divisor, f"÷ {divisor:g}"
    raise ConfigError(f"normalise={normalise!r} is not valid for {path}: use 'auto', 'max', 'none' "
                      "or a positive number.")


def _read_generic(path: Path, label: str = "generic", min_bands: int = 3, name: Optional[str] = None,
                  negative: str = "error", key: Optional[str] = None, band_axis: Optional[int] = None,
                  normalise: Any = "auto") -> Scene:
    if path.is_dir():
        raise DataError(f"{path} is a folder; the {label} reader reads one {', '.join(GENERIC_SUFFIXES)} "
                        "file (a CAVE scene folder needs dataset='cave').")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        raw = _load_npy(path, key)
    elif suffix == ".mat" and not _is_hdf5(path):
        raw = _load_mat_v5(path, key, band_axis)
    elif suffix in (".mat", ".h5", ".hdf5"):
        raw = _load_hdf5(path, key, band_axis)
    else:
        raise DataError(f"{path}: unsupported file type {path.suffix!r}; expected "
                        f"{', '.join(GENERIC_SUFFIXES)}.")
    array = raw.array
    what = f"variable {raw.variable!r} of {path}" if raw.variable else str(path)
    if array.ndim != 3:
        raise DataError(f"{what} has {array.ndim} dimension(s) {array.shape}; expected a 3-D cube "
                        "(bands and two spatial axes).")
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise DataError(f"{what} has dtype {array.dtype}; expected real numbers.")
    if band_axis is not None:
        axis = band_axis
    elif raw.band_axis is not None:
        axis = raw.band_axis
    else:
        axis = _default_band_axis(array.shape, raw.matlab)
    if axis is None:
        raise DataError(f"{what} is {'x'.join(map(str, array.shape))}: the band axis is ambiguous (the "
                        "smallest size occurs more than once). Pass band_axis=<0, 1 or 2>.")
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) or not -3 <= axis < 3:
        raise ConfigError(f"band_axis={axis!r} is not valid for the 3-D array in {path}; use 0, 1 or 2.")
    cube = np.moveaxis(array, int(axis), 0)  # bands first, the other two axes keep their order: (L, H, W)
    order = "MATLAB order H x W x L" if raw.matlab else "stored order"
    _check_bands(cube.shape[0], path, min_bands,
                 hint=f"Band axis {axis} ({order}) was used; pass band_axis= if that is wrong.")
    if not cube.flags.writeable:  # clipping and division below work in place
        cube = cube.copy()
    _, peak = _check_values(cube, path, negative)
    divisor, normalisation = _normalise_generic(path, normalise, peak)
    cube = _to_unit_float32(cube, divisor)
    wavelengths = raw.wavelengths
    if wavelengths is not None and len(wavelengths) != cube.shape[0]:
        wavelengths = None  # they describe another band count: better none than wrong ones
    extras: dict[str, Any] = {"disk_format": raw.disk_format, "normalisation": normalisation}
    if raw.variable:
        extras["variable"] = raw.variable
    return Scene(name=name or path.stem, cube=cube, wavelengths=wavelengths,
                 dataset=raw.dataset or label, source=path, extras=extras)
