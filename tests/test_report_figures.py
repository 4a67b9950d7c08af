"""Tests of the report figures (error maps, spectra, convergence, RGB) and ``hsibench figures``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from matplotlib.backends.backend_agg import FigureCanvasAgg
from PIL import Image

from hsisr_bench.cli import main
from hsisr_bench.errors import ConfigError
from hsisr_bench.report import load_records
from hsisr_bench.report.figures import (
    cell_runs,
    convergence_figure,
    error_map_figure,
    make_figures,
    rgb_bands,
    spectral_figure,
)

from report_fixtures import FakeRun, paper_methods, write_fake_results

SIZE = 28


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("figs")
    return write_fake_results(root, paper_methods(), size=SIZE, scenes=("balloons", "beads"))


def _png(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.format == "PNG"
        return np.asarray(image.convert("RGB"))


def _suptitle(figure) -> str:
    """The figure's title text (``Figure.suptitle`` adds a text artist to ``figure.texts``)."""
    return " ".join(text.get_text() for text in figure.texts)


def _target(store: Path, scene: str) -> np.ndarray:
    return np.load(store / "cave" / "x2" / "targets" / f"{scene}.npy").astype(np.float32)


def _prediction(store: Path, label: str, scene: str) -> np.ndarray:
    return np.load(store / "cave" / "x2" / label / "seed0" / "predictions" / f"{scene}.npy").astype(np.float32)


def test_error_map_aligns_the_cropped_method_and_shares_one_scale(store):
    runs = cell_runs(load_records(store), "cave", 2)
    figure = error_map_figure(store, runs, "cave", 2, "beads", band=27)
    axes = [ax for ax in figure.axes if ax.images and ax.get_title()]
    titles = [ax.get_title().split("\n")[0] for ax in axes]
    assert titles == ["Ground truth", "Bicubic", "GDRRN", "3D-FCNN", "EDSR", "SSRNet"]
    target = _target(store, "beads")
    np.testing.assert_array_equal(axes[0].images[0].get_array(), target[26])
    # 3D-FCNN: target band 27 is its band 27 - 4 (0-based 22); pixels shifted by 6; border left empty (NaN)
    fcnn = np.ma.filled(axes[3].images[0].get_array().astype(np.float64), np.nan)
    expected = np.abs(_prediction(store, "fcnn3d", "beads")[22] - target[26, 6:-6, 6:-6])
    np.testing.assert_allclose(fcnn[6:-6, 6:-6], expected, rtol=0, atol=1e-7)
    assert np.isnan(fcnn[:6]).all() and np.isnan(fcnn[:, -6:]).all()
    ssrnet = axes[5].images[0].get_array()
    np.testing.assert_allclose(ssrnet, np.abs(_prediction(store, "ssrnet", "beads")[26] - target[26]), atol=1e-7)
    limits = {ax.images[0].get_clim() for ax in axes[1:]}
    assert len(limits) == 1  # one shared colour scale
    vmax = limits.pop()[1]
    errors = [np.ma.filled(ax.images[0].get_array().astype(np.float64), np.nan) for ax in axes[1:]]
    pooled = np.concatenate([e[np.isfinite(e)] for e in errors])
    # a robust shared limit: the 99th percentile of every method's errors, not the single worst pixel
    assert vmax == pytest.approx(np.percentile(pooled, 99), rel=1e-5) and vmax < pooled.max()


def test_error_map_titles_give_the_mean_error_and_the_colour_bar_marks_clipping(store):
    runs = cell_runs(load_records(store), "cave", 2)
    figure = error_map_figure(store, runs, "cave", 2, "beads", band=27)
    axes = [ax for ax in figure.axes if ax.images and ax.get_title()]
    target = _target(store, "beads")
    edsr = next(ax for ax in axes if ax.get_title().startswith("EDSR"))
    mae = np.abs(_prediction(store, "edsr", "beads")[26] - target[26]).mean()
    assert edsr.get_title() == f"EDSR\nMAE {mae:.4f}"
    fcnn = next(ax for ax in axes if ax.get_title().startswith("3D-FCNN"))
    fcnn_mae = np.abs(_prediction(store, "fcnn3d", "beads")[22] - target[26, 6:-6, 6:-6]).mean()
    assert fcnn.get_title() == f"3D-FCNN\nMAE {fcnn_mae:.4f}"  # over the pixels it produces
    bars = [ax for ax in figure.axes if not ax.images and ax.get_ylabel().startswith("|SR")]
    assert len(bars) == 1 and "clipped at the 99th percentile" in bars[0].get_ylabel()
    assert axes[-1].images[0].colorbar.extend == "max"  # the arrow marks values above the limit
    FigureCanvasAgg(figure).draw()
    sizes = {(round(ax.get_window_extent().width), round(ax.get_window_extent().height)) for ax in axes}
    assert len(sizes) == 1, sizes  # the ground truth is drawn at the size of the error maps


def test_band_the_cropped_method_lacks_is_reported(store):
    runs = cell_runs(load_records(store), "cave", 2)
    figure = error_map_figure(store, runs, "cave", 2, "beads", band=2)
    titles = [ax.get_title() for ax in figure.axes if ax.images and ax.get_title()]
    assert "3D-FCNN" not in titles and "band 2 not produced: 3D-FCNN" in _suptitle(figure)
    with pytest.raises(ConfigError, match="--band 40"):
        error_map_figure(store, runs, "cave", 2, "beads", band=40)


def test_spectral_curves_on_wavelengths_with_crop(store):
    runs = cell_runs(load_records(store), "cave", 2)
    figure, (y, x) = spectral_figure(store, runs, "cave", 2, "balloons", pixel=(10, 12))
    lines = {line.get_label(): line for line in figure.axes[0].get_lines()}
    nm = 400.0 + 10.0 * np.arange(31)
    np.testing.assert_array_equal(lines["Ground truth"].get_xdata(), nm)
    np.testing.assert_array_equal(lines["Ground truth"].get_ydata(), _target(store, "balloons")[:, 10, 12])
    np.testing.assert_array_equal(lines["3D-FCNN"].get_xdata(), nm[4:27])
    np.testing.assert_array_equal(lines["3D-FCNN"].get_ydata(), _prediction(store, "fcnn3d", "balloons")[:, 4, 6])
    assert figure.axes[0].get_xlabel() == "wavelength (nm)"
    # a seeded random pixel is reproducible and covered by every method (>= 6 pixels from the border)
    _, first = spectral_figure(store, runs, "cave", 2, "balloons", seed=5)
    _, again = spectral_figure(store, runs, "cave", 2, "balloons", seed=5)
    assert first == again and all(6 <= v < SIZE - 6 for v in first)
    with pytest.raises(ConfigError, match="outside"):
        spectral_figure(store, runs, "cave", 2, "balloons", pixel=(SIZE, 0))


def test_convergence_uses_val_psnr_or_says_loss(store, tmp_path):
    figure = convergence_figure(load_records(store), "cave", 2)
    assert figure.axes[0].get_ylabel() == "validation PSNR (dB)"
    ssrnet = next(line for line in figure.axes[0].get_lines() if line.get_label() == "SSRNet")
    np.testing.assert_allclose(ssrnet.get_ydata(), [30 + 2 * e - 1.0 for e in range(1, 5)])
    write_fake_results(tmp_path, [FakeRun("edsr", val_psnr=False), FakeRun("bicubic")], size=16)
    figure = convergence_figure(load_records(tmp_path), "cave", 2)
    assert "training loss" in figure.axes[0].get_ylabel() and "val_psnr not logged" in figure.axes[0].get_ylabel()
    assert [line.get_label() for line in figure.axes[0].get_lines()] == ["EDSR"]  # Bicubic has no training log


def test_experiment_selects_the_runs_drawn(tmp_path):
    write_fake_results(tmp_path, [FakeRun("edsr"), FakeRun("ssrnet", experiment="fig7_check"),
                                  FakeRun("ssrnet", variant="nolff", experiment="fig7_check")], size=24)
    records = load_records(tmp_path)
    figure = convergence_figure(records, "cave", 2, experiment="fig7_check")
    assert [line.get_label() for line in figure.axes[0].get_lines()] == ["SSRNet", "SSRNet (nolff)"]
    assert [run.label for run in cell_runs(records, "cave", 2, experiment="fig7_check")] == ["SSRNet", "SSRNet (nolff)"]
    assert [run.label for run in cell_runs(records, "cave", 2)] == ["EDSR", "SSRNet", "SSRNet (nolff)"]


def test_rgb_bands_nearest_640_550_460():
    assert rgb_bands([400.0 + 10 * b for b in range(31)], 31) == ([24, 15, 6], True)
    assert rgb_bands(None, 31) == ([24, 15, 6], False)


def test_png_files_are_real_images_that_follow_the_data(tmp_path, store):
    other = write_fake_results(tmp_path / "other", paper_methods(), size=SIZE, scenes=("balloons", "beads"), seed=1)
    kinds = ("errors", "spectra", "convergence", "rgb")
    a = make_figures(store, tmp_path / "a", scene="beads", pixel=(9, 9), kinds=kinds, dpi=60)
    b = make_figures(other, tmp_path / "b", scene="beads", pixel=(9, 9), kinds=kinds, dpi=60)
    assert [p.name for p in a] == [p.name for p in b] == [
        "cave_x2_beads_error_band27.png", "cave_x2_beads_spectrum_y9_x9.png", "cave_beads_rgb.png",
        "cave_x2_convergence.png"]
    for path_a, path_b in zip(a, b):
        image_a, image_b = _png(path_a), _png(path_b)
        assert image_a.size > 0 and image_a.std() > 0
        if "convergence" not in path_a.name:  # the fake training logs do not depend on the data seed
            assert image_a.shape != image_b.shape or np.any(image_a != image_b), path_a.name
    small = _png(a[0])
    large = _png(make_figures(store, tmp_path / "c", scene="beads", kinds=("errors",), dpi=120)[0])
    assert large.shape[1] > 1.5 * small.shape[1]  # dpi is honoured


def test_pdf_and_svg_and_partial_results(tmp_path):
    write_fake_results(tmp_path, paper_methods(), size=24, scenes=("beads",))
    for gone in ("edsr", "gdrrn"):
        (tmp_path / "cave" / "x2" / gone / "seed0" / "predictions" / "beads.npy").unlink()
    pdf = make_figures(tmp_path, fmt="pdf", kinds=("errors",))
    assert pdf[0].read_bytes().startswith(b"%PDF")
    svg = make_figures(tmp_path, fmt="svg", kinds=("spectra",))
    assert b"<svg" in svg[0].read_bytes()[:1000]
    runs = cell_runs(load_records(tmp_path), "cave", 2)
    figure = error_map_figure(tmp_path, runs, "cave", 2, "beads")
    assert "not run: GDRRN, EDSR" in _suptitle(figure)


def test_cli_figures(store, tmp_path):
    result = CliRunner().invoke(main, ["figures", "--results", str(store), "--out", str(tmp_path), "--scene", "balloons",
                                       "--kinds", "errors,spectra", "--pixel", "7,8", "--band", "20", "--dpi", "50"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "cave_x2_balloons_error_band20.png").is_file()
    assert (tmp_path / "cave_x2_balloons_spectrum_y7_x8.png").is_file()
    result = CliRunner().invoke(main, ["figures", "--results", str(tmp_path / "none")])
    assert result.exit_code == 2 and "hsibench run" in result.output
    result = CliRunner().invoke(main, ["figures", "--results", str(store), "--scene", "nope"])
    assert result.exit_code == 2 and "balloons, beads" in result.output
    result = CliRunner().invoke(main, ["figures", "--results", str(store), "--pixel", "3"])
    assert result.exit_code == 2 and "Y,X" in result.output
    result = CliRunner().invoke(main, ["figures", "--results", str(store), "--dataset", "harvard"])
    assert result.exit_code == 2 and "cave ×2" in result.output
