"""Tests of the procedural synthetic dataset (hsisr_bench.data.synthetic)."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from hsisr_bench.data.imresize import imresize
from hsisr_bench.data.synthetic import (
    MANIFEST_NAME, MIN_DISTANCE, REFLECTANCE_RANGE, make_material_library, make_synthetic_scene, make_synthetic_scenes,
    synthetic_library, synthetic_wavelengths, write_synthetic_dataset)
from hsisr_bench.errors import ConfigError


@pytest.fixture(scope="module")
def default_scenes():
    return make_synthetic_scenes()


def _psnr(sr: np.ndarray, hr: np.ndarray) -> float:
    mse = np.mean((sr.astype(np.float64) - hr.astype(np.float64)) ** 2)
    return float(10.0 * np.log10(1.0 / mse))


def test_default_set_shape_names_and_metadata(default_scenes):
    assert [s.name for s in default_scenes] == [f"synth_{i:02d}" for i in range(12)]
    for scene in default_scenes:
        assert scene.dataset == "synthetic"
        assert scene.cube.shape == (31, 128, 128)
        assert scene.cube.dtype == np.float32
        np.testing.assert_array_equal(scene.wavelengths, np.arange(400, 701, 10))


def test_values_in_unit_range_and_not_flat(default_scenes):
    for scene in default_scenes:
        cube = scene.cube
        assert np.all(np.isfinite(cube))
        assert cube.min() >= 0.0 and cube.max() <= 1.0
        assert cube.max() > 0.3          # not all zero, not dark
        assert cube.std() > 0.05         # spatial and spectral structure


def test_same_bytes_every_call_whatever_the_global_rng():
    first = make_synthetic_scenes(n_scenes=3, size=64)
    # Disturb every global generator: the synthetic set must not read any of them.
    np.random.seed(123)
    np.random.rand(10)
    random.seed(7)
    torch.manual_seed(99)
    second = make_synthetic_scenes(n_scenes=3, size=64)
    for a, b in zip(first, second):
        assert a.cube.tobytes() == b.cube.tobytes()


def test_seed_changes_the_scenes_and_scenes_differ():
    a = make_synthetic_scenes(n_scenes=2, size=64, seed=0)
    b = make_synthetic_scenes(n_scenes=2, size=64, seed=1)
    assert not np.array_equal(a[0].cube, b[0].cube)
    assert not np.array_equal(a[0].cube, a[1].cube)


def test_scene_i_does_not_depend_on_the_number_of_scenes():
    few = make_synthetic_scenes(n_scenes=2, size=64)
    more = make_synthetic_scenes(n_scenes=4, size=64)
    for a, b in zip(few, more):
        np.testing.assert_array_equal(a.cube, b.cube)
    np.testing.assert_array_equal(make_synthetic_scene(3, size=64).cube, more[3].cube)


def test_other_band_counts_use_a_linspace():
    scene = make_synthetic_scenes(n_scenes=1, size=32, bands=16)[0]
    assert scene.cube.shape == (16, 32, 32)
    np.testing.assert_allclose(scene.wavelengths, np.linspace(400, 700, 16))
    np.testing.assert_allclose(synthetic_wavelengths(31), np.linspace(400, 700, 31), atol=1e-9)


def test_library_spectra_are_smooth_bounded_and_distinct():
    lam = synthetic_wavelengths(31)
    library = make_material_library(lam, np.random.default_rng(0))
    lo, hi = REFLECTANCE_RANGE
    assert library.shape == (16, 31)
    assert library.min() >= lo and library.max() <= hi
    # Smooth: no jump between neighbouring 10 nm bands larger than 0.3 (no step edges).
    assert np.abs(np.diff(library, axis=1)).max() < 0.3
    # Distinct: every pair differs by more than MIN_DISTANCE RMS.
    diff = library[:, None, :] - library[None, :, :]
    rms = np.sqrt((diff ** 2).mean(axis=2)) + np.eye(len(library))
    assert rms.min() > MIN_DISTANCE


def test_regions_carry_distinct_material_spectra(default_scenes):
    scene = default_scenes[0]
    labels = scene.extras["labels"]
    library = synthetic_library(seed=0, bands=31)
    materials = np.unique(labels)
    assert len(materials) >= 8
    # Shading and texture scale a pixel's spectrum: its shape (spectrum / its sum) is its material's.
    shape = scene.cube / scene.cube.sum(axis=0, keepdims=True)  # (L, H, W)
    unclipped = scene.cube.max(axis=0) < 1.0
    for m in materials:
        pixels = shape[:, (labels == m) & unclipped]  # (L, n)
        expected = library[m] / library[m].sum()
        assert np.abs(pixels - expected[:, None]).max() < 1e-5
    # And the materials present are distinct spectra (library spacing checked above).
    present = library[materials]
    rms = np.sqrt(((present[:, None] - present[None]) ** 2).mean(axis=2)) + np.eye(len(present))
    assert rms.min() > MIN_DISTANCE


def test_bicubic_round_trip_leaves_detail_to_recover(default_scenes):
    cube = default_scenes[0].cube
    psnrs = {}
    for scale in (2, 4):
        sr = np.clip(imresize(imresize(cube, 1.0 / scale), scale), 0.0, 1.0)
        psnrs[scale] = _psnr(sr, cube)
    assert 20.0 < psnrs[2] < 45.0, psnrs
    assert psnrs[4] < psnrs[2]


def test_write_synthetic_dataset(tmp_path):
    paths = write_synthetic_dataset(tmp_path / "synth", n_scenes=2, size=32, bands=8, seed=3)
    scenes = make_synthetic_scenes(n_scenes=2, size=32, bands=8, seed=3)
    assert [p.name for p in paths] == ["synth_00.npy", "synth_01.npy"]
    for path, scene in zip(paths, scenes):
        loaded = np.load(path)
        assert loaded.dtype == np.float32
        np.testing.assert_array_equal(loaded, scene.cube)
    manifest = json.loads((tmp_path / "synth" / MANIFEST_NAME).read_text())
    assert manifest["scenes"] == ["synth_00", "synth_01"]
    assert manifest["arguments"] == {"n_scenes": 2, "size": 32, "bands": 8, "seed": 3}
    np.testing.assert_allclose(manifest["wavelengths_nm"], np.linspace(400, 700, 8))
    assert not [p for p in (tmp_path / "synth").iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("kwargs", [{"n_scenes": 0}, {"size": 4}, {"bands": 0}, {"seed": -1}, {"size": 12.5}])
def test_invalid_arguments_raise_config_error(kwargs):
    with pytest.raises(ConfigError, match=next(iter(kwargs))):
        make_synthetic_scenes(**kwargs)
