"""Tests of hsisr_bench.data.readers: CAVE, Harvard, Foster (v5 and v7.3), generic files, bad input."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
from PIL import Image

from hsisr_bench.data import load_scene
from hsisr_bench.data.readers import CAVE_WAVELENGTHS, FOSTER_WAVELENGTHS, HARVARD_WAVELENGTHS
from hsisr_bench.data.synthetic import make_synthetic_scenes, write_synthetic_dataset
from hsisr_bench.errors import ConfigError, DataError

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CAVE_ROOT = SHARED_DATA / "CAVE"
HYPERION = SHARED_DATA / "Hyperion_Paris" / "paris_data_hs_ms.mat"

needs_cave = pytest.mark.skipif(not (CAVE_ROOT / "balloons_ms").is_dir(),
                                reason=f"real CAVE data not found at {CAVE_ROOT}")
needs_hyperion = pytest.mark.skipif(not HYPERION.is_file(), reason=f"Hyperion cube not found at {HYPERION}")


# --------------------------------------------------------------------------------------------------
# Helpers: files with the exact structure of the real datasets
# --------------------------------------------------------------------------------------------------


def check_cube(scene, shape):
    """The contract every reader output meets."""
    cube = scene.cube
    assert cube.shape == shape
    assert cube.dtype == np.float32
    assert cube.flags["C_CONTIGUOUS"]
    assert np.isfinite(cube).all()
    assert cube.min() >= 0.0 and cube.max() <= 1.0


def write_cave_folder(folder: Path, name: str, bands: np.ndarray, numbers=None, digits: int = 2) -> Path:
    """Write ``bands`` (L, H, W) uint16 as ``<name>_NN.png`` files in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    numbers = range(1, len(bands) + 1) if numbers is None else numbers
    for band, number in zip(bands, numbers):
        Image.fromarray(band).save(folder / f"{name}_{number:0{digits}d}.png")
    return folder


def tiny_cave_bands(seed=0, height=6, width=5, bands=31):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 65536, size=(bands, height, width), dtype=np.uint16)


def write_matlab_v73(path: Path, variables: dict[str, np.ndarray]) -> None:
    """Write ``variables`` the way MATLAB's ``save -v7.3`` does: HDF5 with a 512-byte userblock holding
    the MAT header, every array stored with its axes reversed and a ``MATLAB_class`` attribute."""
    with h5py.File(path, "w", userblock_size=512) as file:
        for name, array in variables.items():
            dataset = file.create_dataset(name, data=np.ascontiguousarray(array.T))  # (H,W,L) -> (L,W,H)
            matlab_class = {"float64": "double", "uint8": "uint8", "float32": "single"}[str(array.dtype)]
            dataset.attrs["MATLAB_class"] = np.bytes_(matlab_class)
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."
    with open(path, "r+b") as handle:
        handle.write(header.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02IM")


def harvard_arrays(seed=1, height=9, width=7):
    rng = np.random.default_rng(seed)
    ref = rng.uniform(0.0, 0.37, size=(height, width, 31))  # float64 H x W x 31, as in the real files
    ref[3, 2, 5] = 0.4321  # the maximum
    lbl = (rng.uniform(size=(height, width)) > 0.3).astype(np.uint8)  # uint8 H x W mask
    return ref, lbl


def foster_array(seed=2, height=8, width=11):
    rng = np.random.default_rng(seed)
    hsi = rng.uniform(0.0, 2.5e-3, size=(height, width, 33))  # float64 H x W x 33 radiance-like
    hsi[0, 0, 0] = 0.0
    return hsi


def expected_divided_by_max(matlab_cube):
    """MATLAB H x W x L -> (L, H, W) float32 divided by the maximum of the whole cube."""
    return (matlab_cube / matlab_cube.max()).transpose(2, 0, 1).astype(np.float32)


# --------------------------------------------------------------------------------------------------
# CAVE: real scenes
# --------------------------------------------------------------------------------------------------


@needs_cave
def test_real_balloons_band_order_and_scale():
    scene = load_scene(CAVE_ROOT / "balloons_ms", dataset="cave")
    check_cube(scene, (31, 512, 512))
    assert scene.name == "balloons_ms" and scene.dataset == "cave"
    np.testing.assert_array_equal(scene.wavelengths, np.arange(400, 701, 10))
    folder = CAVE_ROOT / "balloons_ms" / "balloons_ms"
    for number in (1, 16, 31):
        raw = np.asarray(Image.open(folder / f"balloons_ms_{number:02d}.png"))
        assert raw.dtype == np.uint16
        np.testing.assert_array_equal(scene.cube[number - 1], raw.astype(np.float32) / np.float32(65535))
    assert 0.9 < scene.cube.max() <= 1.0 and 0.05 < scene.cube.mean() < 0.3


@needs_cave
def test_real_watercolors_rgba_quirk_is_read_as_one_channel_over_255():
    scene = load_scene(CAVE_ROOT / "watercolors_ms")  # detected as CAVE: a folder
    check_cube(scene, (31, 512, 512))
    raw = np.asarray(Image.open(CAVE_ROOT / "watercolors_ms" / "watercolors_ms" / "watercolors_ms_31.png"))
    assert raw.shape == (512, 512, 4) and raw.dtype == np.uint8
    np.testing.assert_array_equal(scene.cube[30], raw[..., 0].astype(np.float32) / np.float32(255))
    # Divided by 65535 the scene would peak near 0.003; divided by 255 it is a normal image.
    assert scene.cube.max() > 0.5 and scene.cube.mean() > 0.1
    assert "RGBA" in scene.extras["disk_format"]


@needs_cave
def test_flat_layout_with_unpadded_numbers_is_ordered_numerically(tmp_path):
    """Band files _1 ... _31 sort lexically as 1, 10, 11, ...; the reader must use the number."""
    source = CAVE_ROOT / "balloons_ms" / "balloons_ms"
    flat = tmp_path / "balloons_ms"
    flat.mkdir()
    for number in range(1, 32):
        (flat / f"balloons_ms_{number}.png").symlink_to(source / f"balloons_ms_{number:02d}.png")
    (flat / "Thumbs.db").write_bytes(b"\x00" * 64)
    (flat / "balloons_RGB.bmp").symlink_to(source / "balloons_RGB.bmp")
    flat_scene = load_scene(flat, dataset="cave")
    nested_scene = load_scene(CAVE_ROOT / "balloons_ms", dataset="cave")
    np.testing.assert_array_equal(flat_scene.cube, nested_scene.cube)
    assert flat_scene.name == "balloons_ms"


# --------------------------------------------------------------------------------------------------
# CAVE: layouts and errors on tiny folders written by the test
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("nested", [True, False])
def test_cave_tiny_layouts_ignore_other_files(tmp_path, nested):
    bands = tiny_cave_bands()
    scene_dir = tmp_path / "toy_ms"
    band_dir = scene_dir / "toy_ms" if nested else scene_dir
    write_cave_folder(band_dir, "toy_ms", bands)
    (band_dir / "Thumbs.db").write_bytes(b"junk")
    Image.fromarray(np.zeros((6, 5, 3), np.uint8)).save(band_dir / "toy_RGB.bmp")
    scene = load_scene(scene_dir)
    check_cube(scene, (31, 6, 5))
    np.testing.assert_array_equal(scene.cube, bands.astype(np.float32) / np.float32(65535))
    np.testing.assert_array_equal(scene.wavelengths, CAVE_WAVELENGTHS)


def test_macos_metadata_files_are_ignored_everywhere(tmp_path):
    """A scene copied from a Mac carries ``._<name>`` AppleDouble twins; they are neither bands nor scenes."""
    from hsisr_bench.data.datasets import open_dataset

    bands = tiny_cave_bands(seed=4)
    scene_dir = tmp_path / "CAVE" / "toy_ms"
    band_folder = write_cave_folder(scene_dir / "toy_ms", "toy_ms", bands)
    for number in (1, 2, 31):  # AppleDouble files: a 4 KB header, not a PNG
        (band_folder / f"._toy_ms_{number:02d}.png").write_bytes(b"\x00\x05\x16\x07" + b"\x00" * 60)
    (scene_dir / "._toy_ms").write_bytes(b"\x00\x05\x16\x07")
    (tmp_path / "CAVE" / "._toy_ms").write_bytes(b"\x00\x05\x16\x07")
    scene = load_scene(scene_dir)
    check_cube(scene, (31, 6, 5))
    np.testing.assert_array_equal(scene.cube, bands.astype(np.float32) / 65535)
    dataset = open_dataset("cave", tmp_path)
    assert dataset.scene_names == ["toy_ms"]
    (tmp_path / "Harvard").mkdir()
    scipy.io.savemat(tmp_path / "Harvard" / "img1.mat", {"ref": harvard_arrays()[0]})
    (tmp_path / "Harvard" / "._img1.mat").write_bytes(b"\x00\x05\x16\x07")
    assert open_dataset("harvard", tmp_path).scene_names == ["img1"]


def test_cave_8bit_rgba_with_colour_is_rejected(tmp_path):
    folder = tmp_path / "paint_ms"
    gray = np.random.default_rng(0).integers(0, 256, size=(31, 4, 4), dtype=np.uint8)
    folder.mkdir()
    for number, band in enumerate(gray, start=1):
        rgba = np.stack([band, band, band, np.full_like(band, 255)], axis=-1)
        if number == 7:
            rgba[1, 1, 1] ^= 1  # G differs from R at one pixel
        Image.fromarray(rgba, mode="RGBA").save(folder / f"paint_ms_{number:02d}.png")
    with pytest.raises(DataError, match=r"paint_ms_07\.png.*colour RGBA.*1 pixels"):
        load_scene(folder, dataset="cave")


@pytest.mark.parametrize("case, numbers, digits, pattern", [
    ("missing", [n for n in range(1, 32) if n != 7], 2, r"has 30 band files, expected 31.*missing band\(s\) 07"),
    ("duplicate", list(range(1, 32)), 2, r"band 03 appears 2 times \(toy_ms_03\.png, toy_ms_3\.png\)"),
    ("extra", list(range(1, 33)), 2, r"has 32 band files.*unexpected band number\(s\) \(toy_ms_32\.png\)"),
])
def test_cave_band_file_errors_name_folder_and_expected_range(tmp_path, case, numbers, digits, pattern):
    folder = tmp_path / "toy_ms"
    write_cave_folder(folder, "toy_ms", tiny_cave_bands(bands=len(numbers)), numbers=numbers, digits=digits)
    if case == "duplicate":
        Image.fromarray(tiny_cave_bands(seed=5, bands=1)[0]).save(folder / "toy_ms_3.png")
    with pytest.raises(DataError, match=pattern) as info:
        load_scene(folder, dataset="cave")
    assert str(folder) in str(info.value)
    assert "toy_ms_01.png to toy_ms_31.png" in str(info.value)


def test_cave_folder_without_bands(tmp_path):
    (tmp_path / "empty_ms" / "empty_ms").mkdir(parents=True)
    with pytest.raises(DataError, match=r"holds no band files: expected empty_ms_01\.png to empty_ms_31\.png"):
        load_scene(tmp_path / "empty_ms", dataset="cave")


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_cave_corrupt_png_names_the_file(tmp_path, damage):
    folder = write_cave_folder(tmp_path / "toy_ms", "toy_ms", tiny_cave_bands(height=40, width=40))
    bad = folder / "toy_ms_12.png"
    content = bad.read_bytes()
    bad.write_bytes(content[: len(content) // 2] if damage == "truncated" else b"not a png at all" * 8)
    with pytest.raises(DataError, match=r"toy_ms_12\.png.*truncated or corrupt"):
        load_scene(folder, dataset="cave")


def test_cave_all_zero_scene_and_mismatched_band_size(tmp_path):
    zero = write_cave_folder(tmp_path / "zero_ms", "zero_ms", np.zeros((31, 4, 4), np.uint16))
    with pytest.raises(DataError, match="all zeros"):
        load_scene(zero, dataset="cave")
    odd = write_cave_folder(tmp_path / "odd_ms", "odd_ms", tiny_cave_bands())
    Image.fromarray(np.ones((3, 3), np.uint16)).save(odd / "odd_ms_09.png")
    with pytest.raises(DataError, match=r"odd_ms_09\.png is 3x3 pixels but odd_ms_01\.png is 5x6"):
        load_scene(odd, dataset="cave")


# --------------------------------------------------------------------------------------------------
# Harvard and Foster
# --------------------------------------------------------------------------------------------------


def test_harvard_v5_ref_and_lbl(tmp_path):
    ref, lbl = harvard_arrays()
    path = tmp_path / "imgb5.mat"
    scipy.io.savemat(path, {"ref": ref, "lbl": lbl})
    scene = load_scene(path)  # detected from the variables
    check_cube(scene, (31, 9, 7))
    assert scene.dataset == "harvard" and scene.name == "imgb5"
    np.testing.assert_array_equal(scene.cube, expected_divided_by_max(ref))
    assert scene.cube.max() == 1.0
    np.testing.assert_array_equal(scene.extras["lbl"], lbl)
    np.testing.assert_array_equal(scene.wavelengths, np.arange(420, 721, 10))
    assert len(HARVARD_WAVELENGTHS) == 31


def test_harvard_v73_gives_the_same_scene(tmp_path):
    ref, lbl = harvard_arrays(seed=3)
    scipy.io.savemat(tmp_path / "a.mat", {"ref": ref, "lbl": lbl})
    write_matlab_v73(tmp_path / "b.mat", {"ref": ref, "lbl": lbl})
    v5, v73 = load_scene(tmp_path / "a.mat", "harvard"), load_scene(tmp_path / "b.mat", "harvard")
    np.testing.assert_array_equal(v5.cube, v73.cube)
    np.testing.assert_array_equal(v73.extras["lbl"], lbl)


@pytest.mark.parametrize("version", ["v5", "v7.3"])
def test_foster_v5_and_v73(tmp_path, version):
    hsi = foster_array()
    path = tmp_path / "Sete_Fontes.mat"
    if version == "v5":
        scipy.io.savemat(path, {"hsi": hsi})
    else:
        write_matlab_v73(path, {"hsi": hsi})
        with h5py.File(path, "r") as file:
            assert file["hsi"].shape == (33, 11, 8)  # reversed on disk: L x W x H
    assert scipy.io.matlab.matfile_version(str(path))[0] == (1 if version == "v5" else 2)
    scene = load_scene(path)
    check_cube(scene, (33, 8, 11))
    assert scene.dataset == "foster" and scene.name == "Sete_Fontes"
    np.testing.assert_array_equal(scene.cube, expected_divided_by_max(hsi))
    np.testing.assert_array_equal(scene.wavelengths, FOSTER_WAVELENGTHS)
    assert FOSTER_WAVELENGTHS[0] == 400 and FOSTER_WAVELENGTHS[-1] == 720


def test_mat_without_the_expected_variable_lists_what_is_there(tmp_path):
    path = tmp_path / "scene.mat"
    scipy.io.savemat(path, {"cube": np.ones((4, 4, 31)), "mask": np.ones((4, 4), np.uint8)})
    with pytest.raises(DataError, match=r"scene\.mat: no variable 'ref'.*found: cube \(4x4x31 double\), mask"):
        load_scene(path, "harvard")
    write_matlab_v73(tmp_path / "v73.mat", {"data": np.ones((4, 5, 33))})
    with pytest.raises(DataError, match=r"v73\.mat: no variable 'hsi'.*found: data \(4x5x33 double\)"):
        load_scene(tmp_path / "v73.mat", "foster")


def test_missing_ref_advice_is_an_option_that_works(tmp_path):
    """The Harvard "no variable 'ref'" message names --set dataset.key=NAME, and that key is accepted."""
    from hsisr_bench.data.datasets import open_dataset

    cube = np.random.default_rng(0).uniform(0.1, 2.0, size=(4, 5, 31))
    (tmp_path / "Harvard").mkdir()
    scipy.io.savemat(tmp_path / "Harvard" / "img1.mat", {"cube": cube, "lbl": np.ones((4, 5), np.uint8)})
    dataset = open_dataset("harvard", tmp_path)
    with pytest.raises(DataError, match=r"no variable 'ref'.*--set dataset\.key=NAME") as error:
        dataset.load("img1")
    assert "dataset='generic'" not in str(error.value)
    scene = open_dataset("harvard", tmp_path, key="cube").load("img1")
    np.testing.assert_array_equal(scene.cube, expected_divided_by_max(cube))
    assert scene.extras["variable"] == "cube" and scene.extras["lbl"].shape == (4, 5)
    with pytest.raises(DataError, match=r"no variable 'nope' \(--set dataset\.key=nope\).*cube \(4x5x31"):
        open_dataset("harvard", tmp_path, key="nope").load("img1")
    with pytest.raises(ConfigError, match=r"dataset\.key=x does not apply to dataset 'cave'"):
        open_dataset("cave", tmp_path, key="x")
    assert "key" not in open_dataset("harvard", tmp_path, key=None)._reader_options


def test_wrong_band_count_for_a_named_dataset(tmp_path):
    path = tmp_path / "short.mat"
    scipy.io.savemat(path, {"hsi": np.ones((4, 4, 31))})
    with pytest.raises(DataError, match=r"short\.mat: variable 'hsi' is 4x4x31; expected H x W x 33"):
        load_scene(path, "foster")
    assert load_scene(path).dataset == "generic"  # not detected as Foster: 31 bands


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_corrupt_mat_names_the_file(tmp_path, damage):
    ref, lbl = harvard_arrays()
    path = tmp_path / "img1.mat"
    scipy.io.savemat(path, {"ref": ref, "lbl": lbl})
    content = path.read_bytes()
    path.write_bytes({"truncated": content[: len(content) // 2], "garbage": b"garbage" * 50,
                      "empty": b""}[damage])
    with pytest.raises(DataError, match=r"img1\.mat"):
        load_scene(path, "harvard")


def test_corrupt_v73_names_the_file(tmp_path):
    path = tmp_path / "cut.mat"
    write_matlab_v73(path, {"hsi": foster_array(height=40, width=40)})
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 2])
    with pytest.raises(DataError, match=r"cut\.mat"):
        load_scene(path, "foster")


# --------------------------------------------------------------------------------------------------
# Generic files and the real Hyperion cube
# --------------------------------------------------------------------------------------------------


@needs_hyperion
def test_real_hyperion_cube():
    scene = load_scene(HYPERION)
    check_cube(scene, (128, 72, 72))
    hsim = scipy.io.loadmat(str(HYPERION))["HSim"]  # MATLAB H x W x L
    np.testing.assert_array_equal(scene.cube, expected_divided_by_max(hsim))
    assert scene.extras["variable"] == "HSim"  # the 128-band cube, not the 9-band MSim
    assert scene.name == "paris_data_hs_ms" and scene.wavelengths is None
    msim = load_scene(HYPERION, "generic", key="MSim")
    assert msim.cube.shape == (9, 72, 72)


def test_generic_npy_band_axis_rule_and_override(tmp_path):
    rng = np.random.default_rng(4)
    lhw = rng.uniform(0, 1, size=(6, 10, 12)).astype(np.float32)
    np.save(tmp_path / "first.npy", lhw)
    np.save(tmp_path / "last.npy", lhw.transpose(1, 2, 0))  # (H, W, L): bands are the smallest axis
    for name in ("first", "last"):
        scene = load_scene(tmp_path / f"{name}.npy")
        check_cube(scene, (6, 10, 12))
        np.testing.assert_array_equal(scene.cube, lhw)  # within [0, 1]: kept bit-exact
    # Band axis given explicitly: 12 bands of a (10 x 6) image.
    scene = load_scene(tmp_path / "last.npy", band_axis=1)
    np.testing.assert_array_equal(scene.cube, lhw.transpose(2, 1, 0))
    np.save(tmp_path / "square.npy", np.ones((8, 8, 20), np.float32))
    with pytest.raises(DataError, match=r"square\.npy is 8x8x20: the band axis is ambiguous.*band_axis"):
        load_scene(tmp_path / "square.npy")
    assert load_scene(tmp_path / "square.npy", band_axis=-1).cube.shape == (20, 8, 8)


def test_generic_normalisation_options(tmp_path):
    raw = np.arange(1, 5 * 4 * 3 + 1, dtype=np.uint16).reshape(3, 5, 4) * 50  # max 3000
    np.save(tmp_path / "counts.npy", raw)
    auto = load_scene(tmp_path / "counts.npy")
    np.testing.assert_array_equal(auto.cube, (raw / 3000.0).astype(np.float32))
    fixed = load_scene(tmp_path / "counts.npy", normalise=4095)
    np.testing.assert_array_equal(fixed.cube, (raw / 4095.0).astype(np.float32))
    with pytest.raises(DataError, match=r"normalise='none' needs them in \[0, 1\]"):
        load_scene(tmp_path / "counts.npy", normalise="none")
    with pytest.raises(DataError, match="above the divisor"):
        load_scene(tmp_path / "counts.npy", normalise=255)
    low = np.full((3, 4, 5), 0.25)
    np.save(tmp_path / "low.npy", low)
    assert load_scene(tmp_path / "low.npy").cube.max() == np.float32(0.25)  # auto keeps [0, 1] data
    assert load_scene(tmp_path / "low.npy", normalise="max").cube.max() == 1.0
    with pytest.raises(ConfigError, match="normalise='sqrt'"):
        load_scene(tmp_path / "low.npy", normalise="sqrt")


def test_generic_h5_and_mat_variables(tmp_path):
    rng = np.random.default_rng(5)
    cube = rng.uniform(0, 2, size=(7, 9, 5))  # (H, W, L) stored C order, L smallest
    with h5py.File(tmp_path / "plain.h5", "w") as file:
        file["group/cube"] = cube
        file["wavelengths"] = np.linspace(500, 900, 5)
        file["other"] = np.ones((3, 3))
    scene = load_scene(tmp_path / "plain.h5")
    np.testing.assert_array_equal(scene.cube, (cube / cube.max()).transpose(2, 0, 1).astype(np.float32))
    np.testing.assert_array_equal(scene.wavelengths, np.linspace(500, 900, 5))
    assert scene.extras["variable"] == "group/cube"
    assert load_scene(tmp_path / "plain.h5", key="/group/cube").cube.shape == (5, 7, 9)
    with pytest.raises(DataError, match=r"no variable 'nope' \(--set dataset.key / key=\). Variables found: "
                                        r"group/cube \(7x9x5\)"):
        load_scene(tmp_path / "plain.h5", key="nope")
    # A .mat with two equal-band cubes needs key=; the MATLAB rule puts bands last.
    scipy.io.savemat(tmp_path / "two.mat", {"a": cube, "b": cube * 0.5})
    with pytest.raises(DataError, match=r"several 3-D arrays could be the cube.*--set dataset.key=NAME"):
        load_scene(tmp_path / "two.mat")
    b = load_scene(tmp_path / "two.mat", key="b")  # values below 1: kept as they are (auto)
    np.testing.assert_array_equal(b.cube, (cube * 0.5).transpose(2, 0, 1).astype(np.float32))


def test_synthetic_files_read_back_bit_exactly(tmp_path):
    paths = write_synthetic_dataset(tmp_path, n_scenes=2, size=16, bands=40, seed=7)
    scenes = make_synthetic_scenes(n_scenes=2, size=16, bands=40, seed=7)
    for path, original in zip(paths, scenes):
        scene = load_scene(path)  # 40 bands > 16 pixels: band-first comes from the manifest
        assert scene.name == original.name and scene.dataset == "synthetic"
        assert scene.cube.dtype == np.float32 and scene.cube.tobytes() == original.cube.tobytes()
        np.testing.assert_array_equal(scene.wavelengths, original.wavelengths)


# --------------------------------------------------------------------------------------------------
# Bad values, shapes and arguments
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fill, pattern", [
    (np.nan, r"1 NaN and 0 Inf values"),
    (np.inf, r"0 NaN and 1 Inf values"),
    (-0.5, r"1 negative values \(min -0\.5\).*negative='clip'"),
])
def test_non_finite_and_negative_values(tmp_path, fill, pattern):
    ref, lbl = harvard_arrays()
    ref[1, 1, 1] = fill
    path = tmp_path / "bad.mat"
    scipy.io.savemat(path, {"ref": ref, "lbl": lbl})
    with pytest.raises(DataError, match=r"bad\.mat: the cube holds " + pattern):
        load_scene(path)
    np.save(tmp_path / "bad.npy", ref)
    with pytest.raises(DataError, match=r"bad\.npy: the cube holds " + pattern):
        load_scene(tmp_path / "bad.npy")


def test_negative_values_can_be_clipped(tmp_path):
    ref, lbl = harvard_arrays()
    ref[1, 1, 1] = -0.01
    scipy.io.savemat(tmp_path / "neg.mat", {"ref": ref, "lbl": lbl})
    scene = load_scene(tmp_path / "neg.mat", negative="clip")
    assert scene.cube[1, 1, 1] == 0.0
    np.testing.assert_array_equal(scene.cube, expected_divided_by_max(np.maximum(ref, 0)))


def test_all_zero_too_few_bands_and_wrong_ndim(tmp_path):
    np.save(tmp_path / "zero.npy", np.zeros((5, 6, 7)))
    with pytest.raises(DataError, match=r"zero\.npy: the cube is all zeros"):
        load_scene(tmp_path / "zero.npy")
    scipy.io.savemat(tmp_path / "zero.mat", {"hsi": np.zeros((4, 4, 33))})
    with pytest.raises(DataError, match=r"zero\.mat: the cube is all zeros"):
        load_scene(tmp_path / "zero.mat")
    np.save(tmp_path / "two.npy", np.ones((2, 8, 9)))
    with pytest.raises(DataError, match=r"two\.npy: the cube has 2 band\(s\), expected at least 3"):
        load_scene(tmp_path / "two.npy")
    assert load_scene(tmp_path / "two.npy", min_bands=2).cube.shape == (2, 8, 9)
    with pytest.raises(DataError, match=r"has 8 band\(s\), expected at least 10.*Band axis 1"):
        load_scene(tmp_path / "two.npy", min_bands=10, band_axis=1)
    np.save(tmp_path / "flat.npy", np.ones((8, 9)))
    with pytest.raises(DataError, match=r"flat\.npy has 2 dimension\(s\) \(8, 9\); expected a 3-D cube"):
        load_scene(tmp_path / "flat.npy")
    np.save(tmp_path / "four.npy", np.ones((2, 3, 8, 9)))
    with pytest.raises(DataError, match=r"four\.npy has 4 dimension"):
        load_scene(tmp_path / "four.npy")
    scipy.io.savemat(tmp_path / "mask.mat", {"ref": np.ones((4, 4, 31)), "lbl": np.ones((4, 4))})
    with pytest.raises(DataError, match=r"variable 'lbl' of .*mask\.mat has 2 dimension"):
        load_scene(tmp_path / "mask.mat", "generic", key="lbl")


def test_missing_path_unknown_reader_and_options(tmp_path):
    with pytest.raises(DataError, match=r"nowhere\.mat does not exist.*--data-root"):
        load_scene(tmp_path / "nowhere.mat")
    np.save(tmp_path / "ok.npy", np.ones((3, 4, 5)))
    with pytest.raises(ConfigError, match=r"unknown dataset reader 'cvae'.*Did you mean 'cave'"):
        load_scene(tmp_path / "ok.npy", dataset="cvae")
    with pytest.raises(ConfigError, match=r"option 'band_axes' does not apply.*Did you mean 'band_axis'"):
        load_scene(tmp_path / "ok.npy", band_axes=0)
    with pytest.raises(ConfigError, match=r"option 'normalise' does not apply to the cave reader"):
        load_scene(tmp_path, dataset="cave", normalise="max")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match=r"notes\.txt: unsupported file type '\.txt'"):
        load_scene(tmp_path / "notes.txt")
    (tmp_path / "fake.h5").write_bytes(b"\x00" * 100)
    with pytest.raises(DataError, match=r"fake\.h5 is not an HDF5 file"):
        load_scene(tmp_path / "fake.h5")
    (tmp_path / "cut.npy").write_bytes((tmp_path / "ok.npy").read_bytes()[:100])
    with pytest.raises(DataError, match=r"cannot read .*cut\.npy as a \.npy array"):
        load_scene(tmp_path / "cut.npy")


def test_readers_do_not_depend_on_the_working_directory(tmp_path, monkeypatch):
    np.save(tmp_path / "cube.npy", np.full((3, 4, 5), 0.5, np.float32))
    monkeypatch.chdir(tmp_path)
    scene = load_scene("cube.npy")
    assert scene.source == Path("cube.npy") and scene.name == "cube"
    assert os.fspath(scene.source) == "cube.npy"
