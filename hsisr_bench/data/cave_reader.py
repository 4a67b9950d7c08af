"""The CAVE reader: a scene folder of 31 PNG band images (nested or flat layout), one cube."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

import numpy as np

from hsisr_bench.data.formats import CAVE_BANDS, CAVE_WAVELENGTHS, _BAND_FILE, _check_bands
from hsisr_bench.data.scene import Scene
from hsisr_bench.errors import DataError


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


