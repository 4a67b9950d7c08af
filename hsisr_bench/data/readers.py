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

This module dispatches and checks options; each format lives in its own module: ``cave_reader``,
``mat_reader`` (MATLAB v5/v7.3 access, Harvard, Foster), ``generic_reader``; ``formats`` holds the
constants and the value checks they share.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from hsisr_bench.data.cave_reader import _read_cave
from hsisr_bench.data.formats import (
    CAVE_BANDS, CAVE_WAVELENGTHS, FOSTER_VARIABLE, FOSTER_WAVELENGTHS, GENERIC_SUFFIXES, HARVARD_MASK,
    HARVARD_VARIABLE, HARVARD_WAVELENGTHS, PathLike)
from hsisr_bench.data.generic_reader import _read_generic, read_synthetic_manifest
from hsisr_bench.data.mat_reader import _list_mat_variables, _read_foster, _read_harvard
from hsisr_bench.data.scene import Scene
from hsisr_bench.errors import ConfigError, DataError, did_you_mean


#: The public names: what the readers have always exported from here.
__all__ = ["CAVE_BANDS", "CAVE_WAVELENGTHS", "FOSTER_VARIABLE", "FOSTER_WAVELENGTHS", "GENERIC_SUFFIXES", "HARVARD_MASK",
           "HARVARD_VARIABLE", "HARVARD_WAVELENGTHS", "READERS", "check_reader_options", "load_scene",
           "read_synthetic_manifest", "reader_options"]

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


