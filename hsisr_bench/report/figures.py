"""Figures in the style of the SSRNet paper, from the results store only (never retrains).

- :func:`error_map_figure` (Fig. 8): absolute error ``|SR − HR|`` of one band for every method of a
  cell, the ground-truth band beside them at the same size, each panel titled with its mean absolute
  error, one shared colour scale up to the 99th percentile of all methods' errors (values above it
  are clipped, and the colour bar's arrow says so).
- :func:`spectral_figure` (Fig. 9): the spectrum of the ground truth and of every method at one pixel,
  against wavelength in nm.
- :func:`convergence_figure` (Fig. 7): validation PSNR per epoch from each run's ``train_log.csv``
  (training loss when no validation PSNR was logged; the axis label says so).
- :func:`rgb_figure`: a false-colour composite of a test scene (bands nearest 640 / 550 / 460 nm).

Methods with an output crop (3D-FCNN loses 4 bands and 6 pixels on each side) are aligned on the
target with the ``output_crop`` of their ``metrics.json``: output band ``j`` is target band ``j + 4``
and output pixel ``(i, k)`` is target pixel ``(i + 6, k + 6)``. Pixels a method does not produce are
drawn grey in the error maps.

Drawing uses matplotlib's object API with the Agg canvas (no pyplot, no global backend change),
so it runs headless and leaves a user's interactive backend alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from hsisr_bench.atomic import atomic_write
from hsisr_bench.errors import ConfigError, ResultsError
from hsisr_bench.report import (
    cell_dir,
    dataset_sort_key,
    dataset_title,
    load_records,
    method_key,
    method_label,
    method_sort_key,
    read_wavelengths,
    slug,
)
from hsisr_bench.report.figure_data import (  # re-exported: the figures' public reading API
    MethodRun,
    cell_runs,
    check_aligned,
    load_prediction,
    load_target,
    read_train_log,
    stored_scenes,
)

#: Output formats ``hsibench figures --format`` accepts.
FIGURE_FORMATS = ("png", "pdf", "svg")

#: The band of the paper's Fig. 8 (1-based).
DEFAULT_BAND = 27

#: Target wavelengths (nm) of the false-colour composite's red, green and blue.
RGB_WAVELENGTHS = (640.0, 550.0, 460.0)

#: Colour map of the error maps (perceptually uniform; grey marks pixels a method does not produce).
ERROR_CMAP = "viridis"


# ------------------------------------------------------------------------------------------ saving


def save_figure(figure: Figure, path: str | Path, *, dpi: int = 150) -> Path:
    """Save ``figure`` atomically; the format follows the suffix (``.png``, ``.pdf``, ``.svg``).

    Raises:
        ConfigError: an unknown suffix.
        ResultsError: the file cannot be written.
    """
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower()
    if fmt not in FIGURE_FORMATS:
        raise ConfigError(f"Unknown figure format '{fmt}' ({path}); choose one of {', '.join(FIGURE_FORMATS)} (--format).")
    FigureCanvasAgg(figure)  # attach the Agg canvas; PDF and SVG switch canvas inside savefig
    # Fixed metadata keeps PDF/SVG files reproducible (no creation date).
    metadata = {"png": {"Software": "hsisr-bench"}, "pdf": {"CreationDate": None}, "svg": {"Date": None}}[fmt]
    try:
        atomic_write(path, lambda handle: figure.savefig(handle, format=fmt, dpi=dpi, metadata=metadata,
                                                          bbox_inches="tight"))
    except OSError as error:
        raise ResultsError(f"Cannot write {path}: {error}. Pick a writable folder with --out.") from None
    return path


# ------------------------------------------------------------------------------------------ Fig. 8


def error_map_figure(results_dir: str | Path, runs: Sequence[MethodRun], dataset: str, scale: int, scene: str, *,
                     band: int = DEFAULT_BAND) -> Figure:
    """Fig. 8 style: the ground-truth band, then ``|SR − HR|`` of that band for each method, one colour scale.

    The scale runs from 0 to the 99th percentile of every method's errors pooled (:func:`robust_limit`);
    each panel's title gives the method's mean absolute error on the band (over the pixels it produces).

    Args:
        results_dir: the results folder.
        runs: the methods to draw (see :func:`cell_runs`); methods without a prediction of ``scene``
            are listed in the title as not run.
        dataset, scale, scene: what to draw.
        band: 1-based band index of the target (the paper uses band 27).

    Returns:
        The matplotlib figure.

    Raises:
        ConfigError: ``band`` outside the target's bands.
        ResultsError: a prediction misaligned with the target.
    """
    target = load_target(results_dir, dataset, scale, scene)
    L, H, W = target.shape
    if not 1 <= band <= L:
        raise ConfigError(f"--band {band} is outside the {L} bands of {dataset} ×{scale} (use 1 to {L}).")
    reference = target[band - 1]  # (H, W)
    errors, missing, not_produced = [], [], []
    for run in runs:
        prediction = load_prediction(run, scene)
        if prediction is None:
            missing.append(run.label)
            continue
        check_aligned(run, prediction, target.shape, scene)
        index = band - 1 - run.crop_bands  # the method's own band index of target band `band`
        if not 0 <= index < prediction.shape[0]:
            not_produced.append(run.label)
            continue
        p = run.crop_pixels
        error = np.full((H, W), np.nan, dtype=np.float32)  # grey where the method produces nothing
        error[p:H - p, p:W - p] = np.abs(prediction[index] - reference[p:H - p, p:W - p])
        errors.append((run, error))
    vmax, clipped = robust_limit([e for _, e in errors])
    n_panels = 1 + max(len(errors), 1)
    # one extra narrow column holds the colour bar, so every image panel (ground truth included) is one size
    figure = Figure(figsize=(2.4 * n_panels + 0.8, 3.3))
    axes = list(figure.subplots(1, n_panels + 1, squeeze=False,
                                gridspec_kw={"width_ratios": [1.0] * n_panels + [0.06]})[0])
    bar_axes, axes = axes[-1], axes[:-1]
    axes[0].imshow(reference, cmap="gray", vmin=0.0, vmax=max(float(reference.max()), 1e-6))
    axes[0].set_title("Ground truth", fontsize=9)
    cmap = _cmap_with_grey()
    image = None
    for ax, (run, error) in zip(axes[1:], errors):
        image = ax.imshow(error, cmap=cmap, vmin=0.0, vmax=vmax)
        ax.set_title(f"{run.label}\nMAE {np.nanmean(error):.4f}", fontsize=9)
    if not errors:
        axes[1].text(0.5, 0.5, "no method produced this band", ha="center", va="center", fontsize=8)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    if image is not None:
        colorbar = figure.colorbar(image, cax=bar_axes, extend="max" if clipped else "neither")
        colorbar.set_label(f"|SR − HR|{' (clipped at the 99th percentile)' if clipped else ''}", fontsize=8)
    else:
        bar_axes.set_axis_off()
    wavelengths = read_wavelengths(results_dir, dataset, scale)
    at = f" ({wavelengths[band - 1]:.0f} nm)" if wavelengths and len(wavelengths) == L else ""
    title = f"{dataset_title(dataset)} ×{scale}, {scene}: absolute error of band {band}{at}"
    notes = []
    if missing:
        notes.append("not run: " + ", ".join(missing))
    if not_produced:
        notes.append(f"band {band} not produced: " + ", ".join(not_produced))
    figure.suptitle(title + ("\n" + "; ".join(notes) if notes else ""), fontsize=10)
    return figure


#: Percentile of the pooled errors of all methods that sets the shared upper limit of the error maps.
ERROR_PERCENTILE = 99.0


def robust_limit(errors: Sequence[np.ndarray], percentile: float = ERROR_PERCENTILE) -> tuple[float, bool]:
    """The shared upper limit of error maps: the ``percentile`` of all methods' errors pooled (NaN ignored).

    A limit at the global maximum lets a few outlier pixels darken every panel; the 99th percentile
    keeps the differences between methods visible and the colour bar marks the clipped values.

    Returns:
        ``(limit, clipped)``: the limit (at least 1e-6) and whether any error lies above it.
    """
    values = np.concatenate([e[np.isfinite(e)].ravel() for e in errors]) if errors else np.zeros(0)
    if values.size == 0:
        return 1e-6, False
    limit = max(float(np.percentile(values, percentile)), 1e-6)
    return limit, bool((values > limit).any())


def _cmap_with_grey():
    from matplotlib import colormaps

    return colormaps[ERROR_CMAP].with_extremes(bad="lightgrey")


# ------------------------------------------------------------------------------------------ Fig. 9


def choose_pixel(shape: tuple[int, int], margin: int, seed: int = 0) -> tuple[int, int]:
    """A seeded random pixel ``(y, x)`` at least ``margin`` pixels from the border (so cropped methods cover it).

    Raises:
        ConfigError: the region is too small for the margin.
    """
    H, W = shape
    if H <= 2 * margin or W <= 2 * margin:
        raise ConfigError(f"The {H}×{W} region has no pixel {margin} pixels away from its border; give --pixel Y,X.")
    rng = np.random.default_rng(seed)
    return int(rng.integers(margin, H - margin)), int(rng.integers(margin, W - margin))


def spectral_figure(results_dir: str | Path, runs: Sequence[MethodRun], dataset: str, scale: int, scene: str, *,
                    pixel: Optional[tuple[int, int]] = None, seed: int = 0) -> tuple[Figure, tuple[int, int]]:
    """Fig. 9 style: the spectrum of the ground truth and of each method at one pixel.

    Args:
        results_dir, runs, dataset, scale, scene: what to draw (see :func:`error_map_figure`).
        pixel: ``(y, x)`` in the target region (0-based); ``None`` picks a seeded random pixel that
            every method covers.
        seed: seed of the random pixel.

    Returns:
        ``(figure, (y, x))``.

    Raises:
        ConfigError: ``pixel`` outside the region.
    """
    target = load_target(results_dir, dataset, scale, scene)
    L, H, W = target.shape
    if pixel is None:
        pixel = choose_pixel((H, W), max([r.crop_pixels for r in runs] + [0]), seed)
    y, x = pixel
    if not (0 <= y < H and 0 <= x < W):
        raise ConfigError(f"--pixel {y},{x} is outside the {H}×{W} test region of {scene} (0-based Y,X).")
    wavelengths = read_wavelengths(results_dir, dataset, scale)
    if wavelengths is None or len(wavelengths) != L:
        axis, xlabel = np.arange(1, L + 1, dtype=float), "band (no wavelengths.json)"
    else:
        axis, xlabel = np.asarray(wavelengths), "wavelength (nm)"
    figure = Figure(figsize=(6.0, 4.0))
    ax = figure.subplots()
    ax.plot(axis, target[:, y, x], color="black", linewidth=2.0, label="Ground truth")
    notes = []
    for run in runs:
        prediction = load_prediction(run, scene)
        if prediction is None:
            notes.append(f"{run.label}: not run")
            continue
        check_aligned(run, prediction, target.shape, scene)
        b, p = run.crop_bands, run.crop_pixels
        if not (p <= y < H - p and p <= x < W - p):
            notes.append(f"{run.label}: pixel outside its output")
            continue
        ax.plot(axis[b:L - b], prediction[:, y - p, x - p], linewidth=1.2, label=run.label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("reflectance (normalised)")
    ax.set_title(f"{dataset_title(dataset)} ×{scale}, {scene}: spectrum at (y, x) = ({y}, {x})"
                 + ("\n" + "; ".join(notes) if notes else ""), fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return figure, (y, x)


# ------------------------------------------------------------------------------------------ Fig. 7


def convergence_figure(records: Sequence[Mapping[str, Any]], dataset: str, scale: int, *,
                       experiment: Optional[str] = None) -> Optional[Figure]:
    """Fig. 7 style: validation PSNR per epoch of every trained method of a cell (mean over seeds).

    Uses the ``val_psnr`` column of ``train_log.csv`` when every plotted run logged it; otherwise the
    training loss, and the axis label says that validation PSNR was not logged.

    Args:
        records: finished runs.
        dataset, scale: the cell.
        experiment: keep only the runs of this experiment: those that name it and those of a cell of its
            ``configs/experiments`` grid (the paper's Fig. 7 shows Table II's variants).

    Returns:
        The figure, or ``None`` when no run of the cell has a training log (Bicubic has none).
    """
    if experiment is not None:
        from hsisr_bench.report.tables import experiment_records

        records = experiment_records(records, experiment)  # named runs and cells of the experiment's grid
    curves: dict[str, list[dict[str, np.ndarray]]] = {}
    labels: dict[str, str] = {}
    for record in records:
        if str(record["dataset"]) != str(dataset) or int(record["scale"]) != int(scale):
            continue
        log = read_train_log(record["_run_dir"])
        if log is None or "epoch" not in log:
            continue
        key = method_key(record)
        curves.setdefault(key, []).append(log)
        labels[key] = method_label(record)
    if not curves:
        return None
    logs = [log for group in curves.values() for log in group]
    use_psnr = all("val_psnr" in log and np.isfinite(log["val_psnr"]).any() for log in logs)
    column = "val_psnr" if use_psnr else "loss"
    ylabel = "validation PSNR (dB)" if use_psnr else "training loss (val_psnr not logged)"
    figure = Figure(figsize=(6.0, 4.0))
    ax = figure.subplots()
    for key in sorted(curves, key=method_sort_key):
        epochs, values = _mean_curve(curves[key], column)
        if epochs.size:
            seeds = len(curves[key])
            ax.plot(epochs, values, marker="o" if epochs.size < 15 else None, markersize=3,
                    label=labels[key] + (f" (mean of {seeds} seeds)" if seeds > 1 else ""))
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(ylabel)
    ax.set_title(f"{dataset_title(dataset)} ×{scale}: convergence" + (f" ({experiment})" if experiment else ""),
                 fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return figure


def _mean_curve(logs: Sequence[Mapping[str, np.ndarray]], column: str) -> tuple[np.ndarray, np.ndarray]:
    """Mean of ``column`` over logs at each epoch all of them reached (finite values only)."""
    per_epoch: dict[float, list[float]] = {}
    for log in logs:
        if column not in log:
            continue
        for epoch, value in zip(log["epoch"], log[column]):
            if np.isfinite(epoch) and np.isfinite(value):
                per_epoch.setdefault(float(epoch), []).append(float(value))
    epochs = sorted(e for e, v in per_epoch.items() if len(v) == len(logs))
    return np.asarray(epochs), np.asarray([np.mean(per_epoch[e]) for e in epochs])


# ------------------------------------------------------------------------------------------ RGB


def rgb_bands(wavelengths: Optional[Sequence[float]], n_bands: int) -> tuple[list[int], bool]:
    """0-based bands nearest 640 / 550 / 460 nm, and whether wavelengths were known.

    Without wavelengths, the bands at 80 %, 50 % and 20 % of the band range stand in (visible-range
    data runs blue to red with increasing index).
    """
    if wavelengths is not None and len(wavelengths) == n_bands:
        nm = np.asarray(wavelengths, dtype=float)
        return [int(np.argmin(np.abs(nm - w))) for w in RGB_WAVELENGTHS], True
    return [int(round(f * (n_bands - 1))) for f in (0.8, 0.5, 0.2)], False


def rgb_figure(results_dir: str | Path, dataset: str, scale: int, scene: str) -> Figure:
    """A false-colour composite of a test scene's HR target (bands nearest 640 / 550 / 460 nm).

    The three bands share one linear stretch (divided by their joint 99.5th percentile, clipped to 1),
    which keeps the scene's colour balance.
    """
    target = load_target(results_dir, dataset, scale, scene)
    wavelengths = read_wavelengths(results_dir, dataset, scale)
    bands, known = rgb_bands(wavelengths, target.shape[0])
    rgb = np.moveaxis(target[bands], 0, -1)  # (3, H, W) -> (H, W, 3)
    high = float(np.percentile(rgb, 99.5))
    rgb = np.clip(rgb / high, 0.0, 1.0) if high > 0 else rgb
    figure = Figure(figsize=(4.0, 4.3))
    ax = figure.subplots()
    ax.imshow(rgb)
    ax.set_xticks([])
    ax.set_yticks([])
    names = [f"{wavelengths[b]:.0f} nm" for b in bands] if known else [f"band {b + 1}" for b in bands]
    ax.set_title(f"{dataset_title(dataset)}, {scene}\nR/G/B = {' / '.join(names)}", fontsize=9)
    return figure


# ------------------------------------------------------------------------------------------ all figures


FIGURE_KINDS = ("errors", "spectra", "convergence", "rgb")


def make_figures(results_dir: str | Path, out_dir: Optional[str | Path] = None, *, dataset: Optional[str] = None,
                 scale: Optional[int] = None, scene: Optional[str] = None, band: int = DEFAULT_BAND,
                 pixel: Optional[tuple[int, int]] = None, fmt: str = "png", dpi: int = 150,
                 pixel_seed: int = 0, run_seed: Optional[int] = None, experiment: Optional[str] = None,
                 kinds: Sequence[str] = FIGURE_KINDS) -> list[Path]:
    """Draw the figures of every selected cell and scene into ``out_dir`` and return their paths.

    Files: ``<dataset>_x<scale>_<scene>_error_band<b>.<fmt>``, ``..._spectrum_y<y>_x<x>.<fmt>``,
    ``<dataset>_x<scale>_convergence.<fmt>``, ``<dataset>_<scene>_rgb.<fmt>`` (one per scene, from
    the smallest scale that stored it).

    Args:
        results_dir: the results folder.
        out_dir: destination (default ``<results_dir>/figures``).
        dataset, scale, scene: restrict to one dataset / scale / scene (default: all).
        band: 1-based band of the error maps.
        pixel: ``(y, x)`` of the spectra (default: seeded random, see ``pixel_seed``).
        fmt: ``png``, ``pdf`` or ``svg``.
        dpi: resolution of raster output.
        pixel_seed: seed of the random pixel.
        run_seed: which seed's predictions to draw when several ran (default: the lowest).
        experiment: draw only this experiment's runs (e.g. ``table2_ablation`` for the paper's Fig. 7).
        kinds: any of ``errors``, ``spectra``, ``convergence``, ``rgb``.

    Returns:
        The paths written.

    Raises:
        ResultsError: no results, or nothing matches the selection (says what is there).
        ConfigError: bad format, kind, band or pixel.
    """
    if fmt not in FIGURE_FORMATS:
        raise ConfigError(f"Unknown figure format '{fmt}' (--format); choose one of {', '.join(FIGURE_FORMATS)}.")
    unknown = [k for k in kinds if k not in FIGURE_KINDS]
    if unknown:
        raise ConfigError(f"Unknown figure kind(s) {', '.join(unknown)} (--kinds); choose from {', '.join(FIGURE_KINDS)}.")
    if dpi < 10:
        raise ConfigError(f"--dpi must be at least 10, got {dpi}.")
    records = load_records(results_dir)
    out = Path(out_dir) if out_dir is not None else Path(results_dir) / "figures"
    cells = sorted({(str(r["dataset"]), int(r["scale"])) for r in records}, key=lambda c: (dataset_sort_key(c[0]), c[1]))
    selected = [(d, s) for d, s in cells if (dataset is None or d == dataset) and (scale is None or s == int(scale))]
    if not selected:
        there = ", ".join(f"{d} ×{s}" for d, s in cells)
        raise ResultsError(f"No finished run of {dataset or 'any dataset'} ×{scale or 'any scale'} in {results_dir}; "
                           f"it holds: {there}. Choose with --dataset and --scale.")
    written: list[Path] = []
    rgb_done: set[tuple[str, str]] = set()
    for d, s in selected:
        runs = cell_runs(records, d, s, run_seed, experiment)
        scenes = stored_scenes(results_dir, d, s)
        if scene is not None:
            if scene not in scenes:
                raise ResultsError(f"Scene '{scene}' has no stored target in {cell_dir(results_dir, d, s)}/targets; "
                                   f"stored: {', '.join(scenes) or 'none'}. Choose with --scene.")
            scenes = [scene]
        for name in scenes:
            stem = f"{slug(d)}_x{s}_{slug(name)}"
            if "errors" in kinds:
                figure = error_map_figure(results_dir, runs, d, s, name, band=band)
                written.append(save_figure(figure, out / f"{stem}_error_band{band}.{fmt}", dpi=dpi))
            if "spectra" in kinds:
                figure, (y, x) = spectral_figure(results_dir, runs, d, s, name, pixel=pixel, seed=pixel_seed)
                written.append(save_figure(figure, out / f"{stem}_spectrum_y{y}_x{x}.{fmt}", dpi=dpi))
            if "rgb" in kinds and (d, name) not in rgb_done:
                rgb_done.add((d, name))
                written.append(save_figure(rgb_figure(results_dir, d, s, name), out / f"{slug(d)}_{slug(name)}_rgb.{fmt}",
                                           dpi=dpi))
        if "convergence" in kinds:
            figure = convergence_figure(records, d, s, experiment=experiment)
            if figure is not None:
                written.append(save_figure(figure, out / f"{slug(d)}_x{s}_convergence.{fmt}", dpi=dpi))
    return written
