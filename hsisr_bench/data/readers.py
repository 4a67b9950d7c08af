"""Readers for every hyperspectral format the toolkit knows; each returns a band-first :class:`Scene`.

Formats (``dataset=`` of :func:`load_scene`):

* ``cave``: a CAVE scene folder, official nested layout ``balloons_ms/balloons_ms/balloons_ms_01.png``
  or flat ``balloons_ms/balloons_ms_01.png``; 31 PNG bands (400-700 nm, 10 nm) taken in the order of
  their number, other files (``*_RGB.bmp``, ``Thumbs.db``) ignored. 16-bit gray PNGs are divided by
  65535; 8-bit PNGs (``watercolors_ms`` is 8-bit RGBA with R = G = B) by 255, one channel taken after
  checking R = G = B.
* ``harvard``: a MATLAB ``.mat`` with ``ref`` (H x W x 31, 420-720 nm) divided by its maximum over the
  whole image; the ``lbl`` mask is kept in ``scene.extras["lbl"]``.
* ``foster``: a MATLAB ``.mat`` (v5 or v7.3/HDF5) with ``hsi`` (H x W x 33, 400-720 nm) divided by its
  maximum.
* ``generic`` (and ``synthetic``, the files written by ``hsibench data synth``): ``.mat``, ``.h5``/``.hdf5``
  or ``.npy`` holding one cube; see :func:`load_scene` for how the variable and the band axis are found
  and how values are normalised.

Every cube leaves as a C-contiguous ``(L, H, W)`` float32 array with values in [0, 1].
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from hsisr_bench.data.scene import Scene
from hsisr_bench.errors import ConfigError, DataError, did_you_mean

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

#: Readers by name; ``synthetic`` files are read by the generic reader and labelled ``synthetic``.
READERS = ("cave", "harvard", "foster", "generic", "synthetic")

_COMMON_OPTIONS = {"min_bands", "name"}
_MAT_OPTIONS = _COMMON_OPTIONS | {"negative"}
_OPTIONS = {
    "cave": _COMMON_OPTIONS,
    "harvard": _MAT_OPTIONS | {"key"},
    "foster": _MAT_OPTIONS | {"key"},
    "generic": _MAT_OPTIONS | {"key", "band_axis", "normalise"},
    "synthetic": _MAT_OPTIONS | {"key", "band_axis", "normalise"},
}

# A CAVE band file: "<prefix>_<number>.png", e.g. "balloons_ms_01.png" (prefix "balloons_ms", number 1).
_BAND_FILE = re.compile(r"^(?P<prefix>.+?)_(?P<number>\d+)\.png$", re.IGNORECASE)

# HDF5 groups MATLAB v7.3 uses for its own bookkeeping, never user variables.
_MATLAB_INTERNAL = ("#refs#", "#subsystem#")



# --------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------


def load_scene(path: PathLike, dataset: Optional[str] = None, **options: Any) -> Scene:
    """Read one hyperspectral scene from disk as a band-first ``(L, H, W)`` float32 cube in [0, 1].

    Args:
        path: a CAVE scene folder, or a ``.mat`` / ``.h5`` / ``.hdf5`` / ``.npy`` file.
        dataset: ``cave``, ``harvard``, ``foster``, ``generic`` or ``synthetic``. ``None`` detects it: a
            folder is CAVE; a ``.mat`` holding a 3-D ``ref`` with 31 bands is Harvard, one holding a
            3-D ``hsi`` with 33 bands is Foster; any other file is generic.
        **options: reader options.

            * ``min_bands`` (all, default 3): fewer bands than this is an error.
            * ``name`` (all): the scene name; default the CAVE folder name or the file stem.
            * ``negative`` (``.mat``/``.h5``/``.npy``, default ``"error"``): ``"error"`` rejects negative
              values, ``"clip"`` sets them to 0 first.
            * ``key`` (harvard, foster, generic; ``--set dataset.key=NAME`` on the command line): the
              variable (``.mat``) or dataset path (``.h5``) holding the cube. Harvard reads ``ref`` and
              Foster ``hsi`` without it; generic takes the only 3-D array; when there are several, the one with the most
              bands (band axis found as below) is taken, and a tie is an error.
            * ``band_axis`` (generic): which axis of the stored array holds the bands. Axes count in
              MATLAB order (H x W x L) for ``.mat`` files of any version and for HDF5 datasets that carry
              a ``MATLAB_class`` attribute, and in stored (C) order otherwise. Default rule: band-first
              (axis 0) for a ``.npy`` written by ``hsibench data synth`` (listed in the
              ``synthetic.json`` manifest of its folder, whose wavelengths are then used too); else the
              last axis for MATLAB arrays; else (other ``.npy``, plain HDF5) the smallest axis, an
              error when that is not unique.
            * ``normalise`` (generic, default ``"auto"``): ``"auto"`` divides by the cube's maximum when
              it exceeds 1 and keeps the values otherwise (already in [0, 1]); ``"max"`` always divides
              by the maximum; ``"none"`` keeps the values (an error if any exceeds 1); a positive number
              divides by that number (e.g. 4095 for 12-bit data).

    Returns:
        The :class:`Scene`; ``extras`` holds ``disk_format`` (what was on disk), ``normalisation``
        (what was done) and, per format, ``variable`` (the ``.mat``/``.h5`` variable read) and ``lbl``
        (Harvard's mask).

    Raises:
        DataError: the path is missing, a file is unreadable, truncated or corrupt, a band file or a
            variable is missing or duplicated, or the cube has NaN/Inf, negative values, only zeros,
            too few bands or the wrong number of dimensions. The message names the file and the fix.
        ConfigError: an unknown ``dataset`` or option.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path} does not exist. Check the path (and --data-root / HSIBENCH_DATA).")
    reader = _detect_reader(path) if dataset is None else _check_reader_name(dataset)
    check_reader_options(reader, options)
    if reader == "cave":
        return _read_cave(path, **options)
    if reader == "harvard":
        return _read_harvard(path, **options)
    if reader == "foster":
        return _read_foster(path, **options)
    return _read_generic(path, label=reader, **options)


# --------------------------------------------------------------------------------------------------
# Dispatch and options
# --------------------------------------------------------------------------------------------------


def _check_reader_name(dataset: str) -> str:
    name = str(dataset).lower()
    if name not in READERS:
        raise ConfigError(f"unknown dataset reader {dataset!r}. {did_you_mean(str(dataset), READERS)}")
    return name


def reader_options(reader: str) -> frozenset[str]:
    """The options the named reader takes (``min_bands``, ``key``, ...).

    Raises:
        ConfigError: an unknown reader name.
    """
    return frozenset(_OPTIONS[_check_reader_name(reader)])


def check_reader_options(reader: str, options: dict[str, Any]) -> None:
    """Raise ConfigError (with a did-you-mean hint) for an option the named reader does not take."""
    allowed = _OPTIONS[_check_reader_name(reader)]
    for option in options:
        if option not in allowed:
            raise ConfigError(
                f"option {option!r} does not apply to the {reader} reader. "
                f"{did_you_mean(option, allowed)}"
            )


def _detect_reader(path: Path) -> str:
    """Pick the reader for ``path`` when the caller did not name the dataset."""
    if path.is_dir():
        return "cave"
    suffix = path.suffix.lower()
    if suffix not in GENERIC_SUFFIXES:
        raise DataError(
            f"{path}: unsupported file type {suffix or '(no suffix)'!r}. Expected a CAVE scene folder "
            f"or a {', '.join(GENERIC_SUFFIXES)} file."
        )
    if suffix == ".mat":
        shapes = {name: shape for name, shape, _ in _list_mat_variables(path)}
        ref, hsi = shapes.get(HARVARD_VARIABLE, ()), shapes.get(FOSTER_VARIABLE, ())
        if len(ref) == 3 and ref[2] == len(HARVARD_WAVELENGTHS):
            return "harvard"
        if len(hsi) == 3 and hsi[2] == len(FOSTER_WAVELENGTHS):
            return "foster"
    return "generic"


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


# --------------------------------------------------------------------------------------------------
# CAVE
# --------------------------------------------------------------------------------------------------


def _cave_band_files(folder: Path) -> list[tuple[Path, re.Match]]:
    """Files of ``folder`` named like a band, ``<prefix>_<number>.png``."""
    matches = []
    for entry in folder.iterdir():
        if entry.name.startswith("."):  # hidden files, and the macOS "._<name>" metadata twins
            continue
        match = _BAND_FILE.match(entry.name)
        if match and entry.is_file():
            matches.append((entry, match))
    return matches


def _cave_band_folder(scene_dir: Path) -> Path:
    """The folder holding the band PNGs: the scene folder itself (flat) or its one nested folder."""
    if not scene_dir.is_dir():
        raise DataError(
            f"{scene_dir} is not a folder. A CAVE scene is a folder such as balloons_ms/ holding "
            "balloons_ms_01.png ... balloons_ms_31.png (directly or in balloons_ms/balloons_ms/)."
        )
    if _cave_band_files(scene_dir):
        return scene_dir
    nested = [d for d in sorted(scene_dir.iterdir())
              if not d.name.startswith(".") and d.is_dir() and _cave_band_files(d)]
    same_name = [d for d in nested if d.name == scene_dir.name]
    if same_name:
        return same_name[0]
    if len(nested) == 1:
        return nested[0]
    if len(nested) > 1:
        raise DataError(
            f"CAVE scene folder {scene_dir} has band PNGs in several sub-folders "
            f"({', '.join(d.name for d in nested)}); keep one, named {scene_dir.name}."
        )
    name = scene_dir.name
    raise DataError(
        f"CAVE scene folder {scene_dir} holds no band files: expected {name}_01.png to "
        f"{name}_{CAVE_BANDS:02d}.png in {scene_dir} or in {scene_dir / name}."
    )


def _cave_ordered_bands(folder: Path, scene_name: str) -> list[Path]:
    """The 31 band files of ``folder`` in band order, or a DataError listing what is wrong."""
    matches = _cave_band_files(folder)
    prefixes = sorted({match["prefix"] for _, match in matches})
    prefix = prefixes[0] if len(prefixes) == 1 else scene_name
    expected = f"{prefix}_01.png to {prefix}_{CAVE_BANDS:02d}.png"
    if len(prefixes) > 1:
        raise DataError(
            f"CAVE scene folder {folder} mixes band files of several scenes (prefixes "
            f"{', '.join(prefixes)}); expected one set, {expected}. Move the others out."
        )
    by_number: dict[int, list[Path]] = {}
    for file, match in matches:
        by_number.setdefault(int(match["number"]), []).append(file)
    wanted = set(range(1, CAVE_BANDS + 1))
    problems = []
    missing = sorted(wanted - set(by_number))
    if missing:
        problems.append("missing band(s) " + ", ".join(f"{n:02d}" for n in missing))
    for number, files in sorted(by_number.items()):
        if len(files) > 1:
            names = ", ".join(sorted(f.name for f in files))
            problems.append(f"band {number:02d} appears {len(files)} times ({names})")
    extra = sorted(set(by_number) - wanted)
    if extra:
        names = ", ".join(f.name for n in extra for f in sorted(by_number[n]))
        problems.append(f"unexpected band number(s) ({names})")
    if problems:
        raise DataError(
            f"CAVE scene folder {folder} has {len(matches)} band files, expected {CAVE_BANDS} "
            f"({expected}): {'; '.join(problems)}. Restore the scene from the CAVE archive or remove "
            "the stray files."
        )
    return [by_number[number][0] for number in range(1, CAVE_BANDS + 1)]


def _read_png_band(file: Path) -> tuple[np.ndarray, float, str]:
    """Read one CAVE band PNG; return the ``(H, W)`` pixels, the divisor that maps them to [0, 1],
    and a short description of the on-disk format."""
    from PIL import Image

    try:
        with Image.open(file) as image:
            image.load()  # decode now, so a truncated file fails here, with its name
            mode = image.mode
            pixels = np.asarray(image)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise DataError(
            f"cannot read CAVE band file {file}: {error}. The PNG is truncated or corrupt; replace it "
            "with the original from the CAVE archive."
        ) from error
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        return pixels, 65535.0, "uint16 gray"
    if mode == "I":  # some Pillow versions open 16-bit PNGs as 32-bit integers
        if pixels.min() < 0 or pixels.max() > 65535:
            raise DataError(f"CAVE band file {file}: 32-bit values outside 0..65535; not a 16-bit band.")
        return pixels, 65535.0, "uint16 gray"
    if mode == "L":
        return pixels, 255.0, "uint8 gray"
    if mode == "LA":
        return pixels[..., 0], 255.0, "uint8 gray+alpha"
    if mode in ("RGB", "RGBA"):
        # watercolors_ms: 8-bit RGBA with R = G = B. A band must be gray; check before taking R.
        red, green, blue = pixels[..., 0], pixels[..., 1], pixels[..., 2]
        differ = int(np.count_nonzero((red != green) | (red != blue)))
        if differ:
            raise DataError(
                f"CAVE band file {file} is a colour {mode} image: R, G and B differ at {differ} pixels, "
                "so it is not one spectral band. Replace it with the gray band from the CAVE archive."
            )
        return pixels[..., 0], 255.0, f"uint8 {mode} (R=G=B)"
    raise DataError(
        f"CAVE band file {file} has PNG mode {mode!r}; expected 16-bit gray (I;16), 8-bit gray (L) "
        "or 8-bit RGB(A) with R = G = B."
    )


def _read_cave(path: Path, min_bands: int = 3, name: Optional[str] = None) -> Scene:
    folder = _cave_band_folder(path)
    scene_name = name or path.name
    files = _cave_ordered_bands(folder, path.name)
    _check_bands(len(files), folder, min_bands)
    cube: Optional[np.ndarray] = None
    formats: list[str] = []
    divisors: list[float] = []
    for band, file in enumerate(files):
        pixels, divisor, disk_format = _read_png_band(file)
        if cube is None:
            cube = np.empty((len(files),) + pixels.shape, dtype=np.float32)  # (L, H, W)
        elif pixels.shape != cube.shape[1:]:
            raise DataError(
                f"CAVE band file {file} is {pixels.shape[1]}x{pixels.shape[0]} pixels but "
                f"{files[0].name} is {cube.shape[2]}x{cube.shape[1]}; all bands of a scene must match."
            )
        # uint8/uint16 values are exact in float32, so one float32 division is correctly rounded.
        np.divide(pixels, np.float32(divisor), out=cube[band], dtype=np.float32)
        if disk_format not in formats:
            formats.append(disk_format)
        if divisor not in divisors:
            divisors.append(divisor)
    assert cube is not None
    if not cube.any():
        raise DataError(f"CAVE scene folder {folder}: every band is all zeros. Restore the scene.")
    normalisation = " / ".join(f"÷ {d:g}" for d in divisors)
    return Scene(
        name=scene_name, cube=cube, wavelengths=CAVE_WAVELENGTHS.copy(), dataset="cave", source=path,
        extras={"disk_format": ", ".join(formats) + " PNG", "normalisation": normalisation},
    )


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


def _read_mat_arrays(path: Path, names: list[str]) -> tuple[dict[str, np.ndarray], str]:
    """Read the named variables of a v5 or v7.3 ``.mat`` file, each in MATLAB axis order.

    Returns the arrays and the file version ("MATLAB v5" or "MATLAB v7.3").
    MATLAB stores column-major; h5py reads a v7.3 array with its axes reversed (an H x W x L variable
    comes back L x W x H), so those are transposed back (a view) to MATLAB order.
    """
    if _is_hdf5(path):
        with _open_hdf5(path) as file:
            datasets = _hdf5_datasets(file)
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
