"""``hsibench bench --suite data``: reading a real scene, and the cost of the MATLAB bicubic resize.

Rows:
1. wall time of ``hsisr_bench.data.load_scene`` on one real CAVE scene (skipped, with the reason,
   when the data or the reader is not available);
2. ``imresize`` of an ``(L, size, size)`` float32 cube by ``1/s`` (the LR degradation) and of that LR
   by ``s`` (the Bicubic baseline), for each scale, on the requested device: cold (weights built)
   and warm (weights cached);
3. the pure-Python loop oracle ``imresize_reference`` at 1/4, timed on one band (a crop in quick
   mode) and extrapolated to the whole cube, with the largest difference from the vectorised result.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from hsisr_bench import PROJECT_ROOT
from hsisr_bench.benchmarks import BenchOptions, time_call
from hsisr_bench.data.imresize import clear_weight_cache, imresize, imresize_reference
from hsisr_bench.errors import HsiBenchError

#: HR side used by ``--quick`` (the point is to check the suite runs, not to measure).
QUICK_SIZE = 64


def run(options: BenchOptions) -> str:
    """Run the suite and return its markdown section.

    Args:
        options: what ``hsibench bench`` was asked for; uses ``size``, ``bands``, ``scales``,
            ``device``, ``repeats``, ``warmup`` and ``quick``.

    Returns:
        A markdown section: a heading, what was measured, one table per part, and conclusions.
    """
    size = QUICK_SIZE if options.quick else options.size
    repeats = 1 if options.quick else options.repeats
    warmup = 0 if options.quick else options.warmup
    lines = ["### data: scene loading and MATLAB bicubic resize", ""]
    lines += _loading_section(repeats)
    lines += _resize_section(options, size, repeats, warmup)
    lines += _reference_section(options, size)
    if options.quick:
        lines.append(f"Quick mode: {size}x{size} inputs and one repeat, to check that the suite runs; "
                     f"these timings are not meaningful.")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------
# 1. Loading one real CAVE scene


def _find_cave_scene() -> tuple[Optional[Path], str]:
    """Return the first CAVE scene folder (sorted by name) and where it was looked for."""
    roots = []
    if os.environ.get("HSIBENCH_DATA"):
        roots.append(Path(os.environ["HSIBENCH_DATA"]))
    roots += [PROJECT_ROOT / "data", PROJECT_ROOT.parent / "shared" / "data"]
    for root in roots:
        for name in ("CAVE", "cave", "Cave"):
            folder = root / name
            if folder.is_dir():
                scenes = sorted(p for p in folder.iterdir() if p.is_dir() and p.name.endswith("_ms"))
                if scenes:
                    return scenes[0], str(folder)
    return None, ", ".join(str(r / "CAVE") for r in roots)


def _loading_section(repeats: int) -> list[str]:
    lines = ["**Loading one real CAVE scene** (`hsisr_bench.data.load_scene(folder, dataset=\"cave\")`: "
             "31 PNG bands -> `(L, H, W)` float32 in [0, 1])", ""]
    from hsisr_bench.data import load_scene

    scene_dir, looked = _find_cave_scene()
    if scene_dir is None:
        return lines + [f"Skipped: no CAVE scene folder found (looked in {looked}).", ""]
    try:
        start = time.perf_counter()
        scene = load_scene(scene_dir, dataset="cave")
        first = time.perf_counter() - start
    except HsiBenchError as exc:
        return lines + [f"Skipped: {scene_dir} could not be read ({exc}).", ""]
    again = time_call(lambda: load_scene(scene_dir, dataset="cave"), repeats=repeats, warmup=0)
    return lines + [
        "| scene | cube | dtype | first read (s) | later reads, median (s) | MB/s of float32 cube (later) |",
        "|---|---|---|---|---|---|",
        f"| {scene.name} | {'x'.join(map(str, scene.cube.shape))} | {scene.cube.dtype} | {first:.3f} "
        f"| {again:.3f} | {scene.cube.nbytes / 1e6 / again:.0f} |",
        "",
        f"The first read may hit the disk (unless the OS already cached the files); the later ones "
        f"({repeats} timed) read from the page cache, so they measure PNG decoding and conversion.",
        "",
    ]


# ----------------------------------------------------------------------------------------------
# 2. The vectorised resize


def _resize_section(options: BenchOptions, size: int, repeats: int, warmup: int) -> list[str]:
    device = torch.device(options.device)
    generator = torch.Generator().manual_seed(0)
    hr = torch.rand(options.bands, size, size, generator=generator).to(device)  # (L, H, W) float32
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    lines = [f"**`imresize` (vectorised torch, one matmul per axis)** on `{options.device}`, float32, "
             f"cube {options.bands}x{size}x{size}; cold = first call with the weight caches cleared, "
             f"warm = median of {repeats} call(s) with cached weights.", "",
             "| operation | input | output | cold (ms) | warm (ms) |", "|---|---|---|---|---|"]
    for scale in options.scales:
        lr = imresize(hr, 1 / scale)
        for name, x, factor in ((f"downscale 1/{scale} (LR degradation)", hr, 1 / scale),
                                (f"upscale x{scale} (Bicubic baseline)", lr, scale)):
            clear_weight_cache()
            sync()
            start = time.perf_counter()
            out = imresize(x, factor)
            sync()
            cold = time.perf_counter() - start
            warm = time_call(lambda: imresize(x, factor), repeats=repeats, warmup=warmup,
                             device=options.device)
            shape_in = "x".join(map(str, x.shape))
            lines.append(f"| {name} | {shape_in} | {'x'.join(map(str, out.shape))} | {cold * 1e3:.1f} "
                         f"| {warm * 1e3:.1f} |")
    return lines + [""]


# ----------------------------------------------------------------------------------------------
# 3. The loop oracle, for scale


def _reference_section(options: BenchOptions, size: int) -> list[str]:
    scale = 1 / 4
    crop = 64 if options.quick else size
    rng = np.random.default_rng(0)
    cube = rng.random((options.bands, size, size)).astype(np.float32)  # (L, H, W)
    band = cube[0, :crop, :crop]  # (crop, crop): the oracle is timed on this one plane only

    start = time.perf_counter()
    expected = imresize_reference(band, scale)
    reference_band = time.perf_counter() - start
    # Every band costs the same (the loops do not depend on values): scale by the band count and by
    # the area ratio when a crop was timed. The work is linear in the area for a fixed scale.
    area_factor = (size * size) / (crop * crop)
    reference_cube = reference_band * options.bands * area_factor

    vectorised_cube = time_call(lambda: imresize(cube, scale), repeats=1 if options.quick else options.repeats,
                                warmup=1)
    difference = float(np.abs(imresize(band, scale).astype(np.float64) - expected).max())
    how = (f"one {crop}x{crop} band measured ({reference_band * 1e3:.0f} ms), x {options.bands} bands"
           + (f" x {area_factor:.0f} (area of {size}x{size} / crop)" if area_factor != 1 else ""))
    return [
        f"**Vectorised vs loop reference** (`imresize_reference`, pure Python loops over MATLAB's "
        f"contributions, float64) at scale 1/4 on a {options.bands}x{size}x{size} float32 cube, CPU.",
        "",
        "| implementation | cube time (s) | how obtained |",
        "|---|---|---|",
        f"| loop reference | {reference_cube:.1f} | extrapolated: {how} |",
        f"| `imresize` | {vectorised_cube:.4f} | measured on the whole cube (warm weights) |",
        "",
        f"- The vectorised resize is about {reference_cube / vectorised_cube:,.0f}x faster than the loop "
        f"oracle (extrapolated figure, see above).",
        f"- Largest difference from the oracle on the timed band (float32 vs float64): {difference:.1e}.",
        "",
    ]
