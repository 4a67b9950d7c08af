"""Procedural synthetic hyperspectral scenes: the embedded default dataset and the tests' data.

A scene is a label map of material regions (Voronoi cells, stripes, ellipses, convex polygons, thin
lines and small dots, all with sharp edges), turned into a cube by looking up each material's smooth
reflectance spectrum, then multiplied by a smooth low-frequency shading field and a fine
high-frequency texture. Sharp edges, stripes and one-pixel details are what bicubic interpolation
cannot recover, so a learned method has something to learn; the shared material library gives the
spectra a structure that is the same in training and test scenes.

Everything is drawn from ``numpy.random.Generator`` objects seeded from ``seed`` (never the global RNG):
the same arguments give the same bytes. Scene ``i`` does not depend on ``n_scenes``, so
``make_synthetic_scenes(3)`` is the first three scenes of ``make_synthetic_scenes(12)``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Union

import numpy as np
from scipy.ndimage import gaussian_filter

from hsisr_bench.atomic import atomic_write
from hsisr_bench.data.scene import Scene
from hsisr_bench.errors import ConfigError

#: Dataset name carried by every synthetic scene.
DATASET_NAME = "synthetic"
#: Number of materials in the shared spectral library.
N_MATERIALS = 16
#: Reflectance bounds of every library spectrum.
REFLECTANCE_RANGE = (0.02, 0.95)
#: Smallest RMS difference (over bands) between two library spectra.
MIN_DISTANCE = 0.04
#: Name of the manifest ``write_synthetic_dataset`` writes next to the cubes.
MANIFEST_NAME = "synthetic.json"

#: Peak memory one scene may need while it is generated (float64 label distances and cube): a larger
#: ``size`` or ``bands`` is refused before anything is allocated, instead of ending in a MemoryError.
MAX_SCENE_BYTES = 2 << 30

# Spawn keys of the seed sequence: child 0 draws the material library, child i + 1 draws scene i.
_LIBRARY_CHILD = 0


def synthetic_wavelengths(bands: int = 31) -> np.ndarray:
    """Return the band centres of a synthetic cube in nanometres (400 to 700 nm).

    Args:
        bands: number of bands; 31 gives exactly 400, 410, ..., 700 nm, any other count a linspace.

    Returns:
        ``(bands,)`` float64 array.
    """
    if bands == 31:
        return np.arange(400, 701, 10, dtype=np.float64)
    return np.linspace(400.0, 700.0, bands)


def make_material_library(wavelengths: np.ndarray, rng: np.random.Generator,
                          n_materials: int = N_MATERIALS) -> np.ndarray:
    """Draw a library of smooth, plausible reflectance spectra.

    Three families, in the cycle grey, peaks, edge, peaks: near-grey materials (a level plus a
    gentle slope), peaked materials (a base plus two or three Gaussian bumps or dips, like dyes and
    pigments) and edge materials (a sigmoid step, like the red edge of foliage or a yellow or red
    paint, plus one bump). Every spectrum lies in ``REFLECTANCE_RANGE`` and differs from every
    other by more than ``MIN_DISTANCE`` (RMS over bands).

    Args:
        wavelengths: ``(L,)`` band centres in nm.
        rng: the generator to draw from.
        n_materials: number of spectra.

    Returns:
        ``(n_materials, L)`` float64 array.
    """
    lam = np.asarray(wavelengths, dtype=np.float64)
    spectra = np.empty((n_materials, lam.size))
    for m in range(n_materials):
        family = ("grey", "peaks", "edge", "peaks")[m % 4]
        # Redraw until the spectrum differs from every earlier one (RMS over bands > MIN_DISTANCE),
        # so that each material of a scene is a distinct spectrum; the draws stay deterministic.
        for _ in range(1000):
            curve = _draw_spectrum(lam, family, rng)
            if m == 0 or np.sqrt(((spectra[:m] - curve) ** 2).mean(axis=1)).min() > MIN_DISTANCE:
                break
        spectra[m] = curve
    return spectra


def _draw_spectrum(lam: np.ndarray, family: str, rng: np.random.Generator) -> np.ndarray:
    """Draw one reflectance spectrum of a family (``grey``, ``peaks`` or ``edge``), clipped to the range."""
    t = (lam - 550.0) / 150.0  # -1 at 400 nm, +1 at 700 nm: slopes are per half range
    if family == "grey":  # a level plus a gentle slope
        curve = rng.uniform(0.05, 0.85) + rng.uniform(-0.06, 0.06) * t
    elif family == "peaks":  # base + Gaussian bumps and dips, like dyes and pigments
        curve = np.full(lam.size, rng.uniform(0.05, 0.3))
        for _ in range(rng.integers(2, 4)):
            centre = rng.uniform(400.0, 700.0)
            width = rng.uniform(15.0, 60.0)
            curve += rng.uniform(-0.15, 0.6) * np.exp(-0.5 * ((lam - centre) / width) ** 2)
    else:  # sigmoid edge (red edge of foliage, yellow or red paint) + one bump
        edge = rng.uniform(480.0, 680.0)
        width = rng.uniform(12.0, 30.0)
        curve = rng.uniform(0.03, 0.25) + rng.uniform(0.3, 0.65) / (1.0 + np.exp(-(lam - edge) / width))
        curve += rng.uniform(0.0, 0.15) * np.exp(-0.5 * ((lam - rng.uniform(420, 560)) / 25.0) ** 2)
    return np.clip(curve, *REFLECTANCE_RANGE)


def synthetic_library(seed: int = 0, bands: int = 31) -> np.ndarray:
    """Return the material library of the synthetic dataset with this seed and band count.

    Args:
        seed: dataset seed.
        bands: number of bands.

    Returns:
        ``(N_MATERIALS, bands)`` float64 spectra, the table ``make_synthetic_scenes`` indexes.
    """
    return make_material_library(synthetic_wavelengths(bands), _library_rng(seed))


def _voronoi_labels(yy: np.ndarray, xx: np.ndarray, rng: np.random.Generator,
                    n_materials: int) -> np.ndarray:
    """Label every pixel with the material of its nearest Voronoi site (the background)."""
    n_sites = int(rng.integers(5, 10))
    sites = rng.uniform(0.0, 1.0, size=(n_sites, 2))
    materials = rng.integers(0, n_materials, size=n_sites)
    # (n_sites, H, W) squared distances; argmin over sites gives the cell index.
    d2 = (yy[None] - sites[:, 0, None, None]) ** 2 + (xx[None] - sites[:, 1, None, None]) ** 2
    return materials[np.argmin(d2, axis=0)]


def _paint_stripes(labels, yy, xx, rng, n_materials, size):
    """Paint a rotated rectangle of stripes alternating two materials (period 4 to 10 pixels)."""
    cy, cx = rng.uniform(0.2, 0.8, size=2)
    half_h, half_w = rng.uniform(0.1, 0.25, size=2)
    theta = rng.uniform(0.0, np.pi)
    u = (yy - cy) * np.cos(theta) + (xx - cx) * np.sin(theta)   # across the stripes
    v = -(yy - cy) * np.sin(theta) + (xx - cx) * np.cos(theta)  # along the stripes
    inside = (np.abs(u) < half_h) & (np.abs(v) < half_w)
    period = rng.uniform(4.0, 10.0) / size  # in units of the image side
    a, b = rng.choice(n_materials, size=2, replace=False)
    stripe = np.floor(u / period).astype(np.int64) % 2 == 0
    labels[inside & stripe] = a
    labels[inside & ~stripe] = b


def _paint_ellipse(labels, yy, xx, rng, n_materials):
    """Paint one rotated ellipse of a random material."""
    cy, cx = rng.uniform(0.0, 1.0, size=2)
    ay, ax = rng.uniform(0.04, 0.22, size=2)
    theta = rng.uniform(0.0, np.pi)
    u = (yy - cy) * np.cos(theta) + (xx - cx) * np.sin(theta)
    v = -(yy - cy) * np.sin(theta) + (xx - cx) * np.cos(theta)
    labels[(u / ay) ** 2 + (v / ax) ** 2 <= 1.0] = rng.integers(0, n_materials)


def _paint_polygon(labels, yy, xx, rng, n_materials):
    """Paint one convex polygon (3 to 6 vertices on a jittered circle) of a random material."""
    n_vertices = int(rng.integers(3, 7))
    cy, cx = rng.uniform(0.1, 0.9, size=2)
    radius = rng.uniform(0.08, 0.25)
    angles = np.sort(rng.uniform(0.0, 2.0 * np.pi, size=n_vertices))
    vy, vx = cy + radius * np.sin(angles), cx + radius * np.cos(angles)
    inside = np.ones(labels.shape, dtype=bool)
    # Vertices in increasing angle are counter-clockwise in (x, y): a point is inside when it is
    # on the left of (or on) every edge, i.e. every edge cross product is >= 0.
    for k in range(n_vertices):
        y0, x0, y1, x1 = vy[k], vx[k], vy[(k + 1) % n_vertices], vx[(k + 1) % n_vertices]
        inside &= (x1 - x0) * (yy - y0) - (y1 - y0) * (xx - x0) >= 0.0
    labels[inside] = rng.integers(0, n_materials)


def _paint_line(labels, yy, xx, rng, n_materials, size):
    """Paint one thin straight segment (0.5 to 1.2 pixels half-width) of a random material."""
    p0, p1 = rng.uniform(0.0, 1.0, size=2), rng.uniform(0.0, 1.0, size=2)
    half_width = rng.uniform(0.5, 1.2) / size
    d = p1 - p0
    # Distance from each pixel to the segment: project, clamp to [0, 1], measure.
    t = ((yy - p0[0]) * d[0] + (xx - p0[1]) * d[1]) / max(float(d @ d), 1e-12)
    t = np.clip(t, 0.0, 1.0)
    dist2 = (yy - p0[0] - t * d[0]) ** 2 + (xx - p0[1] - t * d[1]) ** 2
    labels[dist2 <= half_width ** 2] = rng.integers(0, n_materials)


def _paint_dots(labels, yy, xx, rng, n_materials, size):
    """Paint 6 to 15 small discs (radius 0.8 to 2 pixels), each of a random material."""
    for _ in range(int(rng.integers(6, 16))):
        cy, cx = rng.uniform(0.0, 1.0, size=2)
        radius = rng.uniform(0.8, 2.0) / size
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius ** 2] = rng.integers(0, n_materials)


def make_label_map(size: int, rng: np.random.Generator, n_materials: int = N_MATERIALS) -> np.ndarray:
    """Draw the material label map of one scene.

    Layers, painted in order over a Voronoi background: one stripe patch, 2 to 4 ellipses, 1 to 3
    convex polygons, 2 to 4 thin lines, 6 to 15 dots.

    Args:
        size: side of the square scene in pixels.
        rng: the generator to draw from.
        n_materials: number of materials in the library.

    Returns:
        ``(size, size)`` int64 array of material indices.
    """
    # Pixel centres in units of the image side, so shapes scale with the scene size.
    coords = (np.arange(size, dtype=np.float64) + 0.5) / size
    yy, xx = np.meshgrid(coords, coords, indexing="ij")  # each (H, W)
    labels = _voronoi_labels(yy, xx, rng, n_materials)
    _paint_stripes(labels, yy, xx, rng, n_materials, size)
    for _ in range(int(rng.integers(2, 5))):
        _paint_ellipse(labels, yy, xx, rng, n_materials)
    for _ in range(int(rng.integers(1, 4))):
        _paint_polygon(labels, yy, xx, rng, n_materials)
    for _ in range(int(rng.integers(2, 5))):
        _paint_line(labels, yy, xx, rng, n_materials, size)
    _paint_dots(labels, yy, xx, rng, n_materials, size)
    return labels


def make_shading(size: int, rng: np.random.Generator) -> np.ndarray:
    """Draw a smooth low-frequency shading field with values in [0.55, 1] (illumination, curvature).

    Args:
        size: side of the square scene in pixels.
        rng: the generator to draw from.

    Returns:
        ``(size, size)`` float64 array.
    """
    coords = (np.arange(size, dtype=np.float64) + 0.5) / size
    yy, xx = np.meshgrid(coords, coords, indexing="ij")  # each (H, W)
    field = np.zeros((size, size))
    for _ in range(3):
        # Spatial frequencies of at most 1.5 cycles per image side: no detail, only slow variation.
        fy, fx = rng.uniform(-1.5, 1.5, size=2)
        field += np.cos(2.0 * np.pi * (fy * yy + fx * xx) + rng.uniform(0.0, 2.0 * np.pi))
    field = (field - field.min()) / max(float(np.ptp(field)), 1e-12)
    return 0.55 + 0.45 * field


def make_texture(labels: np.ndarray, rng: np.random.Generator, n_materials: int = N_MATERIALS) -> np.ndarray:
    """Draw a fine multiplicative texture, ``1 + a[material] * noise``, with values near 1.

    The noise is white noise smoothed over about one pixel and normalised to unit standard deviation;
    each material has its own amplitude in [0, 0.08], so some regions are smooth and others grainy.

    Args:
        labels: ``(H, W)`` material label map.
        rng: the generator to draw from.
        n_materials: number of materials in the library.

    Returns:
        ``(H, W)`` float64 array.
    """
    noise = gaussian_filter(rng.standard_normal(labels.shape), sigma=1.0, mode="reflect")
    noise /= max(float(noise.std()), 1e-12)
    amplitude = rng.uniform(0.0, 0.03, size=n_materials)
    return 1.0 + amplitude[labels] * noise


def make_synthetic_scene(index: int, size: int = 128, bands: int = 31, seed: int = 0,
                         library: np.ndarray | None = None) -> Scene:
    """Generate synthetic scene number ``index`` (named ``synth_<index:02d>``).

    Args:
        index: scene number (0-based); it selects the scene's own random stream.
        size: side of the square scene in pixels.
        bands: number of bands (400 to 700 nm).
        seed: dataset seed.
        library: ``(n_materials, bands)`` spectra; drawn from ``seed`` when ``None``.

    Returns:
        A ``Scene`` with a ``(bands, size, size)`` float32 cube in [0, 1], dataset ``"synthetic"``.

    Raises:
        ConfigError: on a non-positive size or band count, or a negative index or seed.
    """
    _check_arguments(n_scenes=1, size=size, bands=bands, seed=seed)
    if not isinstance(index, (int, np.integer)) or index < 0:
        raise ConfigError(f"synthetic scene index must be an integer >= 0, got {index!r}.")
    wavelengths = synthetic_wavelengths(bands)
    if library is None:
        library = synthetic_library(seed, bands)
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index + 1,)))
    labels = make_label_map(size, rng, library.shape[0])
    gain = make_shading(size, rng) * make_texture(labels, rng, library.shape[0])  # (H, W)
    # Index the (L, M) transposed spectra table with the (H, W) label map: (L, H, W) reflectance.
    cube = np.take(library.T, labels, axis=1) * gain[None]
    cube = np.clip(cube, 0.0, 1.0).astype(np.float32)
    return Scene(name=f"synth_{index:02d}", cube=cube, wavelengths=wavelengths, dataset=DATASET_NAME,
                 source=None, extras={"labels": labels.astype(np.int16), "seed": seed})


def make_synthetic_scenes(n_scenes: int = 12, size: int = 128, bands: int = 31, seed: int = 0) -> list[Scene]:
    """Generate the synthetic dataset: ``n_scenes`` deterministic scenes ``synth_00``, ``synth_01``, ...

    The default set (12 scenes of 31 x 128 x 128) is the embedded default dataset; it needs no
    download and is the same, byte for byte, on every call with the same arguments, whatever the
    state of the global random generators.

    Args:
        n_scenes: number of scenes.
        size: side of each square scene in pixels.
        bands: number of bands, spread over 400 to 700 nm.
        seed: dataset seed; it selects the material library and every scene.

    Returns:
        List of ``Scene`` (cube ``(bands, size, size)`` float32 in [0, 1], dataset ``"synthetic"``).

    Raises:
        ConfigError: on a non-positive count, size or band count, or a negative seed.
    """
    _check_arguments(n_scenes=n_scenes, size=size, bands=bands, seed=seed)
    library = synthetic_library(seed, bands)
    return [make_synthetic_scene(i, size=size, bands=bands, seed=seed, library=library)
            for i in range(n_scenes)]


def write_synthetic_dataset(out_dir: Union[str, Path], n_scenes: int = 12, size: int = 128,
                            bands: int = 31, seed: int = 0) -> list[Path]:
    """Write the synthetic dataset to a folder: one ``<name>.npy`` cube per scene and a manifest.

    Each cube is saved as ``(L, H, W)`` float32. The manifest ``synthetic.json`` records the scene
    names, the wavelengths and the generator arguments, so the folder can be checked against (or
    regenerated from) ``make_synthetic_scenes``. Files are written atomically.

    Args:
        out_dir: folder to write into (created if needed).
        n_scenes, size, bands, seed: as for ``make_synthetic_scenes``.

    Returns:
        The paths of the cube files, in scene order.

    Raises:
        ConfigError: on invalid generator arguments.
    """
    _check_arguments(n_scenes=n_scenes, size=size, bands=bands, seed=seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    library = synthetic_library(seed, bands)
    paths, names = [], []
    for index in range(n_scenes):  # one scene in memory at a time: the folder may be larger than the RAM
        scene = make_synthetic_scene(index, size=size, bands=bands, seed=seed, library=library)
        path = out / f"{scene.name}.npy"
        _atomic_write(path, lambda f, cube=scene.cube: np.save(f, cube))
        paths.append(path)
        names.append(scene.name)
    manifest = {
        "dataset": DATASET_NAME,
        "generator": "hsisr_bench.data.synthetic.make_synthetic_scenes",
        "arguments": {"n_scenes": n_scenes, "size": size, "bands": bands, "seed": seed},
        "layout": "one (L, H, W) float32 .npy cube per scene, values in [0, 1]",
        "scenes": names,
        "wavelengths_nm": synthetic_wavelengths(bands).tolist(),
    }
    text = json.dumps(manifest, indent=2) + "\n"
    _atomic_write(out / MANIFEST_NAME, lambda f: f.write(text.encode("utf-8")))
    return paths


def _library_rng(seed: int) -> np.random.Generator:
    """The generator of the material library (spawn key 0 of the dataset seed)."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_LIBRARY_CHILD,)))


def _check_arguments(*, n_scenes: int, size: int, bands: int, seed: int) -> None:
    """Raise ``ConfigError`` on arguments no scene can be generated from."""
    for name, value, minimum in (("n_scenes", n_scenes, 1), ("size", size, 8), ("bands", bands, 1),
                                 ("seed", seed, 0)):
        if not isinstance(value, (int, np.integer)) or value < minimum:
            raise ConfigError(f"synthetic dataset: {name} must be an integer >= {minimum}, got {value!r}.")
    need = scene_bytes(size, bands)
    if need > MAX_SCENE_BYTES:
        largest = int(np.sqrt(MAX_SCENE_BYTES / scene_bytes(1, bands)))
        raise ConfigError(f"synthetic dataset: size {size} with {bands} bands needs about {need / 2**30:.1f} GiB "
                          f"per scene to generate; the limit is {MAX_SCENE_BYTES / 2**30:g} GiB (size <= "
                          f"{largest} at {bands} bands). Use a smaller size or fewer bands.")


def scene_bytes(size: int, bands: int) -> int:
    """Peak bytes generating one ``bands x size x size`` scene takes (float64 distances and cube copies)."""
    return int(size) * int(size) * (20 * int(bands) + 120)


def _atomic_write(path: Path, write) -> None:
    """Write ``path`` through a temporary file in the same folder, then rename it into place."""
    atomic_write(path, write)
