"""MATLAB ``.mat`` (v5 and v7.3/HDF5) access, and the Harvard and Foster readers built on it."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import numpy as np

from hsisr_bench.data.formats import (FOSTER_VARIABLE, FOSTER_WAVELENGTHS, HARVARD_MASK, HARVARD_VARIABLE,
                                      HARVARD_WAVELENGTHS, _MATLAB_INTERNAL, _check_bands, _check_values,
                                      _to_unit_float32)
from hsisr_bench.data.scene import Scene
from hsisr_bench.errors import DataError


# --------------------------------------------------------------------------------------------------
# MATLAB and HDF5 access
# --------------------------------------------------------------------------------------------------


def _is_hdf5(path: Path) -> bool:
    import h5py

    try:
        return bool(h5py.is_hdf5(path))
    except OSError:
        return False


def _hdf5_datasets(file) -> dict[str, Any]:
    """All datasets of an open HDF5 file by path, MATLAB's internal groups left out."""
    import h5py

    found: dict[str, Any] = {}

    def visit(name: str, item) -> None:
        if isinstance(item, h5py.Dataset) and not name.startswith(_MATLAB_INTERNAL):
            found[name] = item

    file.visititems(visit)
    return found


def _is_matlab_dataset(item) -> bool:
    return "MATLAB_class" in item.attrs


def _matlab_class(item) -> str:
    value = item.attrs.get("MATLAB_class", b"")
    return value.decode() if isinstance(value, bytes) else str(value)


def _open_hdf5(path: Path):
    import h5py

    try:
        return h5py.File(path, "r")
    except (OSError, ValueError) as error:
        raise DataError(f"cannot open {path} as HDF5 (MATLAB v7.3): {error}. The file is corrupt "
                        "or truncated; download it again.") from error


def _list_mat_variables(path: Path) -> list[tuple[str, tuple[int, ...], str]]:
    """``(name, shape, class)`` of every variable of a ``.mat`` file, shapes in MATLAB order."""
    if _is_hdf5(path):
        with _open_hdf5(path) as file:
            return [
                (name, tuple(reversed(item.shape)), _matlab_class(item) or str(item.dtype))
                for name, item in _hdf5_datasets(file).items()
            ]
    import scipy.io

    try:
        return [(name, tuple(shape), cls) for name, shape, cls in scipy.io.whosmat(str(path))]
    except Exception as error:  # scipy raises many types (IndexError, ValueError, MatReadError, ...)
        raise DataError(
            f"cannot read {path} as a MATLAB file: {type(error).__name__}: {error}. The file is "
            "corrupt, truncated or not a .mat file; download it again."
        ) from error


def _describe_variables(variables: list[tuple[str, tuple[int, ...], str]]) -> str:
    if not variables:
        return "none"
    return ", ".join(f"{name} ({'x'.join(map(str, shape))} {cls})" for name, shape, cls in variables)


def check_hdf5_declared(path: Path, name: str, item: Any, ndim: Optional[int] = None) -> None:
    """Check an HDF5 dataset from its header (shape, dtype, stored bytes) before any data is read.

    A 1.4 KB file can declare a 2000x2000x31 cube whose chunks were never written: h5py reads those as
    the fill value, so reading first and checking after took 785 MB for nothing.

    Raises:
        DataError: not ``ndim``-dimensional, not real numbers, or declaring data that the file does not store.
    """
    shape = "x".join(map(str, item.shape))
    if ndim is not None and len(item.shape) != ndim:
        raise DataError(f"{path}: variable {name!r} has {len(item.shape)} dimension(s) ({shape}); expected a "
                        f"{ndim}-D cube (bands and two spatial axes).")
    if item.dtype.kind not in "fiu":
        raise DataError(f"{path}: variable {name!r} has dtype {item.dtype}; expected real numbers.")
    if item.size and item.id.get_storage_size() == 0:
        raise DataError(f"{path}: variable {name!r} declares a {shape} {item.dtype} array but the file stores "
                        f"none of its data (an empty, incomplete or crafted file). Write the file again.")


def _read_mat_arrays(path: Path, names: list[str]) -> tuple[dict[str, np.ndarray], str]:
    """Read the named variables of a v5 or v7.3 ``.mat`` file, each in MATLAB axis order.

    Returns the arrays and the file version ("MATLAB v5" or "MATLAB v7.3").
    MATLAB stores column-major; h5py reads a v7.3 array with its axes reversed (an H x W x L variable
    comes back L x W x H), so those are transposed back (a view) to MATLAB order.
    """
    if _is_hdf5(path):
        with _open_hdf5(path) as file:
            datasets = _hdf5_datasets(file)
            for name in names:
                if name in datasets:
                    check_hdf5_declared(path, name, datasets[name])
            try:
                arrays = {name: datasets[name][()].T for name in names if name in datasets}
            except (OSError, ValueError, KeyError) as error:
                raise DataError(f"cannot read {path}: {error}. The file is corrupt or truncated; "
                                "download it again.") from error
        return arrays, "MATLAB v7.3"
    import scipy.io

    try:
        loaded = scipy.io.loadmat(str(path), variable_names=names)
    except Exception as error:  # see _list_mat_variables
        raise DataError(
            f"cannot read {path} as a MATLAB file: {type(error).__name__}: {error}. The file is "
            "corrupt, truncated or not a .mat file; download it again."
        ) from error
    return {name: loaded[name] for name in names if name in loaded}, "MATLAB v5"


def _read_mat_variables(path: Path, required: str, optional: tuple[str, ...],
                        dataset_title: str, from_key: bool = False) -> tuple[dict[str, np.ndarray], str]:
    """A required variable (and any optional ones present) of a ``.mat`` file, in MATLAB order.

    Raises a DataError listing the variables found when ``required`` is missing.
    """
    variables = _list_mat_variables(path)
    names = {name for name, _, _ in variables}
    if required not in names and from_key:
        raise DataError(f"{path}: no variable {required!r} (--set dataset.key={required}). Variables found: "
                        f"{_describe_variables(variables)}. Name one of those with --set dataset.key=NAME.")
    if required not in names:
        raise DataError(
            f"{path}: no variable {required!r}, which a {dataset_title} file must hold. Variables "
            f"found: {_describe_variables(variables)}. Use the original {dataset_title} file, or name the "
            f"variable holding the cube with --set dataset.key=NAME (reader option key=NAME); a "
            f"truncated file also lacks variables."
        )
    arrays, version = _read_mat_arrays(path, [required] + [n for n in optional if n in names])
    if required not in arrays:
        raise DataError(f"{path}: variable {required!r} is listed but cannot be read; the file is "
                        "truncated or corrupt. Download it again.")
    return arrays, version


def _matlab_cube_to_lhw(array: np.ndarray, path: Path, variable: str, bands: int) -> np.ndarray:
    """Check a MATLAB H x W x L array and return it as an ``(L, H, W)`` view."""
    if array.ndim != 3:
        raise DataError(f"{path}: variable {variable!r} has {array.ndim} dimensions "
                        f"{array.shape}; expected H x W x {bands}.")
    if array.shape[2] != bands:
        raise DataError(f"{path}: variable {variable!r} is {'x'.join(map(str, array.shape))}; expected "
                        f"H x W x {bands} ({bands} bands).")
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise DataError(f"{path}: variable {variable!r} has dtype {array.dtype}; expected real numbers.")
    return array.transpose(2, 0, 1)  # (H, W, L) -> (L, H, W)


def _read_divide_by_max(path: Path, variable: str, title: str, bands: int, negative: str,
                        optional: tuple[str, ...] = (), from_key: bool = False) -> tuple[np.ndarray, dict[str, Any]]:
    """Shared Harvard/Foster path: read, check, divide by the maximum of the whole image.

    ``from_key``: ``variable`` was named by the user (``key``), not the dataset's own. Returns the
    ``(L, H, W)`` float32 cube and the scene extras (the optional variables read included, still in
    MATLAB order).
    """
    arrays, version = _read_mat_variables(path, variable, optional, title, from_key)
    array = arrays.pop(variable)
    disk_dtype = str(array.dtype)
    cube = _matlab_cube_to_lhw(array, path, variable, bands)  # (L, H, W) view
    if not cube.flags.writeable or cube.dtype != np.float64:
        cube = cube.astype(np.float64)
    _, peak = _check_values(cube, path, negative)
    extras: dict[str, Any] = {"disk_format": f"{disk_dtype} {variable!r} ({version})",
                              "variable": variable, "normalisation": f"÷ max ({peak:.6g})"}
    extras.update(arrays)
    return _to_unit_float32(cube, peak), extras


def _read_harvard(path: Path, min_bands: int = 3, name: Optional[str] = None,
                  negative: str = "error", key: Optional[str] = None) -> Scene:
    cube, extras = _read_divide_by_max(path, key or HARVARD_VARIABLE, "Harvard", len(HARVARD_WAVELENGTHS),
                                       negative, optional=(HARVARD_MASK,), from_key=key is not None)
    _check_bands(cube.shape[0], path, min_bands)
    if HARVARD_MASK in extras:
        mask = np.ascontiguousarray(extras[HARVARD_MASK])
        if mask.shape != cube.shape[1:]:
            raise DataError(f"{path}: mask {HARVARD_MASK!r} is {mask.shape} but the cube is "
                            f"{cube.shape[1:]} (H, W); the file is inconsistent. Download it again.")
        extras[HARVARD_MASK] = mask
    return Scene(name=name or path.stem, cube=cube, wavelengths=HARVARD_WAVELENGTHS.copy(),
                 dataset="harvard", source=path, extras=extras)


def _read_foster(path: Path, min_bands: int = 3, name: Optional[str] = None,
                 negative: str = "error", key: Optional[str] = None) -> Scene:
    cube, extras = _read_divide_by_max(path, key or FOSTER_VARIABLE, "Foster 2015", len(FOSTER_WAVELENGTHS),
                                       negative, from_key=key is not None)
    _check_bands(cube.shape[0], path, min_bands)
    return Scene(name=name or path.stem, cube=cube, wavelengths=FOSTER_WAVELENGTHS.copy(),
                 dataset="foster", source=path, extras=extras)


