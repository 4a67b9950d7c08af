"""Pre-flight checks: find every broken scene of a dataset before any work starts, without decoding it.

A benchmark of several cells may read a scene hours after it starts; a truncated band file found then
wastes the cells before it. :func:`preflight` reads only file lists and headers, per reader:

* CAVE: the band folder, the 31 band file names, and each PNG's structure (signature, header with
  size, bit depth and colour type, the chunk chain up to ``IEND``, so a truncated file is caught),
  with one size for all bands of a scene. Pixels are not decompressed.
* Harvard, Foster: the ``.mat`` variable list (no array read): the cube variable (``ref``, ``hsi`` or
  ``key``) is there, 3-D, with the dataset's band count.
* generic, synthetic on disk: the ``.npy`` header and the file length it implies; the ``.mat`` or HDF5
  variable list and the cube the reader would pick.
* a dataset added with ``register_dataset``: its ``check`` callable, else that the path exists.

Every scene is checked and one :class:`~hsisr_bench.errors.DataError` lists every broken one.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any, Iterable, Optional

import numpy as np

from hsisr_bench.data import cave_reader, generic_reader, mat_reader, readers
from hsisr_bench.errors import DataError

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# (colour type, bit depth) pairs the CAVE reader accepts: gray 8/16, gray+alpha 8, RGB 8, RGBA 8.
_PNG_MODES = {(0, 8): "L", (0, 16): "I;16", (4, 8): "LA", (2, 8): "RGB", (6, 8): "RGBA"}


def preflight(dataset: Any, names: Optional[Iterable[str]] = None) -> None:
    """Check the named scenes of a dataset cheaply (file lists, headers, shapes); raise once for all.

    Args:
        dataset: a :class:`~hsisr_bench.data.datasets.Dataset` (from ``open_dataset``).
        names: the scenes to check (every scene a planned cell reads); ``None`` checks all.

    Raises:
        DataError: one error listing every broken scene and what is wrong with it, or naming the
            scenes the dataset does not have.
    """
    names = list(dataset.scene_names if names is None else dict.fromkeys(names))
    unknown = [name for name in names if name not in dataset.scene_names]
    if unknown:
        raise DataError(f"dataset {dataset.name!r} ({dataset.root or 'memory'}) has no scene(s) "
                        f"{', '.join(unknown)}; it has {len(dataset.scene_names)}: "
                        f"{', '.join(dataset.scene_names)}. Check the split file and the data root.")
    broken = {}
    for name in names:
        source = dataset.source(name)
        problem = scene_name_problem(name, source)
        if problem:
            broken[name] = problem
            continue
        if source is None:  # generated in memory: nothing on disk to break
            continue
        problem = _check_scene(dataset.spec, source, dict(dataset._reader_options))
        if problem:
            broken[name] = problem
    if broken:
        listing = "\n".join(f"  {name}: {problem}" for name, problem in broken.items())
        raise DataError(
            f"pre-flight check of dataset {dataset.name!r} at {dataset.root}: {len(broken)} of {len(names)} "
            f"scene(s) that the planned cells read are broken; nothing was run.\n{listing}\n"
            f"Repair or replace those files (the messages name them), then run again; "
            f"`hsibench data check --dataset {dataset.name}` decodes every scene fully.")


def scene_name_problem(name: str, source: Optional[Path] = None) -> str:
    """Why a scene's name cannot be recorded in the results files, or ``""``.

    A file name that is not valid UTF-8 reaches Python as a string with surrogate escapes: it loads
    and scores, but ``per_image.csv`` (UTF-8) cannot hold it, so a run would stop after training and
    scoring. Opening a dataset refuses such names already (its scene-name rule); this check keeps the
    pre-flight refusing them for any dataset that lists scenes its own way, naming the file to rename.
    """
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        bad = source if source is not None else name
        safe = "".join("_" if 0xDC80 <= ord(c) <= 0xDCFF else c for c in Path(str(bad)).name)
        return f"the file name {str(bad)!r} is not valid UTF-8 (results files cannot record it); rename it, e.g. to {safe!r}"
    return ""


def _check_scene(spec: Any, source: Path, options: dict[str, Any]) -> str:
    """What is wrong with one scene, from its headers (empty when nothing is)."""
    try:
        if not source.exists():
            return f"{source} does not exist (removed after the dataset was opened?)"
        if not isinstance(spec.reader, str):
            if spec.check is not None:
                spec.check(source)
            return ""
        if spec.reader == "cave":
            return _check_cave(source)
        if spec.reader in ("harvard", "foster"):
            return _check_named_mat(source, spec.reader, options.get("key"))
        return _check_generic(source, options.get("key"), options.get("band_axis"))
    except DataError as error:
        return str(error)
    except OSError as error:
        return f"cannot read {source}: {error}"


# --------------------------------------------------------------------------------------------------
# CAVE: band files and PNG structure
# --------------------------------------------------------------------------------------------------


def _check_cave(scene_dir: Path) -> str:
    folder = cave_reader._cave_band_folder(scene_dir)  # raises on no band files / several band folders
    files = cave_reader._cave_ordered_bands(folder, scene_dir.name)  # raises on missing/duplicate bands
    problems, sizes = [], {}
    for file in files:
        try:
            sizes[file.name] = png_header(file)[:2]
        except DataError as error:
            problems.append(str(error))
    if len(set(sizes.values())) > 1:
        first = next(iter(sizes.items()))
        differ = [f"{name} is {w}x{h}" for name, (w, h) in sizes.items() if (w, h) != first[1]]
        problems.append(f"band files differ in size: {first[0]} is {first[1][0]}x{first[1][1]} but "
                        f"{', '.join(differ)}; all bands of a scene must match")
    return "; ".join(problems)


def png_header(file: Path) -> tuple[int, int, str]:
    """Walk a PNG's chunk chain without decompressing it; return ``(width, height, mode)``.

    Raises:
        DataError: not a PNG, a bad header, a mode the CAVE reader does not take, no image data, or a
            chunk chain that ends before ``IEND`` (a truncated file).
    """
    size = file.stat().st_size
    fix = "replace it with the original from the CAVE archive"
    with file.open("rb") as handle:
        if handle.read(8) != _PNG_SIGNATURE:
            raise DataError(f"CAVE band file {file} is not a PNG (bad signature); {fix}.")
        header = handle.read(25)  # length (4), "IHDR", 13 bytes of data, CRC (4)
        if len(header) < 25 or header[4:8] != b"IHDR" or struct.unpack(">I", header[:4])[0] != 13:
            raise DataError(f"CAVE band file {file} has no valid PNG header (IHDR); {fix}.")
        width, height, depth, colour = struct.unpack(">IIBB", header[8:18])
        if not width or not height:
            raise DataError(f"CAVE band file {file} is {width}x{height} pixels; {fix}.")
        mode = _PNG_MODES.get((colour, depth))
        if mode is None:
            raise DataError(f"CAVE band file {file} has PNG colour type {colour} at {depth} bits; expected "
                            f"16-bit gray, 8-bit gray or 8-bit RGB(A) with R = G = B.")
        position, seen_data = 33, False
        while True:
            chunk = handle.read(8)
            if len(chunk) < 8:
                raise DataError(f"CAVE band file {file} is truncated: it ends at byte {size} before the "
                                f"PNG end marker (IEND); {fix}.")
            length, kind = struct.unpack(">I", chunk[:4])[0], chunk[4:8]
            position += 12 + length
            if position > size:
                raise DataError(f"CAVE band file {file} is truncated: a {kind.decode('latin-1')!r} chunk "
                                f"runs to byte {position}, past the end of the file ({size} bytes); {fix}.")
            if kind == b"IEND":
                break
            seen_data = seen_data or kind == b"IDAT"
            handle.seek(length + 4, 1)  # skip the chunk data and its CRC
        if not seen_data:
            raise DataError(f"CAVE band file {file} holds no image data (no IDAT chunk); {fix}.")
    return width, height, mode


# --------------------------------------------------------------------------------------------------
# MATLAB, HDF5, .npy
# --------------------------------------------------------------------------------------------------


def _check_named_mat(path: Path, reader: str, key: Optional[str]) -> str:
    variable = key or (readers.HARVARD_VARIABLE if reader == "harvard" else readers.FOSTER_VARIABLE)
    bands = len(readers.HARVARD_WAVELENGTHS if reader == "harvard" else readers.FOSTER_WAVELENGTHS)
    variables = mat_reader._list_mat_variables(path)
    shapes = {name: shape for name, shape, _ in variables}
    if variable not in shapes:
        hint = "--set dataset.key=NAME names another variable"
        return (f"{path}: no variable {variable!r}; variables found: {mat_reader._describe_variables(variables)} "
                f"({hint})")
    shape = shapes[variable]
    if len(shape) != 3 or shape[2] != bands:
        return f"{path}: variable {variable!r} is {'x'.join(map(str, shape))}; expected H x W x {bands}"
    return ""


def _check_generic(path: Path, key: Optional[str], band_axis: Optional[int]) -> str:
    suffix = path.suffix.lower()
    if path.is_dir():
        return f"{path} is a folder, not a {', '.join(readers.GENERIC_SUFFIXES)} file"
    if suffix == ".npy":
        return _check_npy(path)
    if suffix == ".mat" and not mat_reader._is_hdf5(path):
        shapes = {name: (shape, True) for name, shape, _ in mat_reader._list_mat_variables(path)}
    elif suffix in (".mat", ".h5", ".hdf5"):
        if not mat_reader._is_hdf5(path):
            return f"{path} is not an HDF5 file (corrupt, truncated, or a wrong suffix)"
        with mat_reader._open_hdf5(path) as file:
            shapes = {}
            for name, item in mat_reader._hdf5_datasets(file).items():
                matlab = mat_reader._is_matlab_dataset(item)
                shapes[name] = (tuple(reversed(item.shape)) if matlab else tuple(item.shape), matlab)
    else:
        return f"{path}: unsupported file type {path.suffix!r}"
    variable = generic_reader._pick_variable(path, shapes, key, band_axis)  # raises when there is no clear cube
    if len(shapes[variable][0]) != 3:
        return f"{path}: variable {variable!r} is {'x'.join(map(str, shapes[variable][0]))}; expected a 3-D cube"
    return ""


def _check_npy(path: Path) -> str:
    """The ``.npy`` header: a 3-D numeric array, and a file long enough to hold it."""
    with path.open("rb") as handle:
        try:
            version = np.lib.format.read_magic(handle)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)  # 2.0 and 3.0 share the layout
            shape, _, dtype = read_header(handle)
        except (ValueError, OSError, EOFError, SyntaxError) as error:
            return f"{path}: not a readable .npy file ({error})"
        offset = handle.tell()
    if dtype.hasobject:
        return f"{path}: the .npy holds Python objects, not numbers"
    if len(shape) != 3:
        return f"{path}: the .npy array is {'x'.join(map(str, shape))}; expected a 3-D cube"
    needed = offset + int(np.prod(shape)) * dtype.itemsize
    size = path.stat().st_size
    if size < needed:
        return f"{path} is truncated: {size} bytes, its header needs {needed} ({'x'.join(map(str, shape))} {dtype})"
    return ""
