"""Tests of the pre-flight checks (hsisr_bench.data.preflight): broken scenes found from headers, all at once."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

from hsisr_bench.data.datasets import open_dataset, preflight
from hsisr_bench.data.preflight import png_header
from hsisr_bench.errors import DataError

SHARED_CAVE = Path(__file__).resolve().parents[2] / "shared" / "data" / "CAVE"


@pytest.fixture(autouse=True)
def _no_data_env(monkeypatch):
    monkeypatch.delenv("HSIBENCH_DATA", raising=False)


def write_scene(folder: Path, name: str, size=(6, 5), seed=0) -> Path:
    """A CAVE scene of 31 16-bit PNG bands in the official nested layout."""
    bands = np.random.default_rng(seed).integers(1, 65536, size=(31,) + size, dtype=np.uint16)
    band_dir = folder / name / name
    band_dir.mkdir(parents=True)
    for number, band in enumerate(bands, start=1):
        Image.fromarray(band).save(band_dir / f"{name}_{number:02d}.png")
    return band_dir


def test_every_broken_scene_is_listed_in_one_error(tmp_path):
    cave = tmp_path / "CAVE"
    write_scene(cave, "good_ms")
    truncated = write_scene(cave, "cut_ms", seed=1, size=(40, 30)) / "cut_ms_07.png"
    truncated.write_bytes(truncated.read_bytes()[:-200])  # the end of the image data and IEND gone
    (write_scene(cave, "gap_ms", seed=2) / "gap_ms_31.png").unlink()
    garbage = write_scene(cave, "junk_ms", seed=3) / "junk_ms_02.png"
    garbage.write_bytes(b"this is not an image")
    Image.fromarray(np.zeros((9, 9), np.uint16)).save(write_scene(cave, "odd_ms", seed=4) / "odd_ms_05.png")
    dataset = open_dataset("cave", tmp_path)
    dataset.preflight(["good_ms"])  # a good scene passes
    with pytest.raises(DataError) as error:
        preflight(dataset)
    message = str(error.value)
    assert "4 of 5 scene(s)" in message and "good_ms:" not in message
    assert "cut_ms: CAVE band file" in message and "cut_ms_07.png is truncated" in message
    assert "gap_ms: CAVE scene folder" in message and "missing band(s) 31" in message
    assert "junk_ms_02.png is not a PNG" in message
    assert "odd_ms_05.png is 9x9" in message and "all bands of a scene must match" in message
    # The truncated file is also what the full read rejects: the check finds it without decoding.
    with pytest.raises(DataError, match="truncated or corrupt"):
        dataset.load("cut_ms")
    with pytest.raises(DataError, match=r"has no scene\(s\) nope_ms"):
        preflight(dataset, ["nope_ms"])


def test_png_header_reads_size_and_mode_only(tmp_path):
    Image.fromarray(np.zeros((4, 7), np.uint16)).save(tmp_path / "a.png")
    Image.fromarray(np.zeros((4, 7, 4), np.uint8), mode="RGBA").save(tmp_path / "b.png")
    assert png_header(tmp_path / "a.png") == (7, 4, "I;16")
    assert png_header(tmp_path / "b.png") == (7, 4, "RGBA")


def test_mat_and_npy_headers(tmp_path):
    harvard = tmp_path / "Harvard"
    harvard.mkdir()
    scipy.io.savemat(harvard / "good.mat", {"ref": np.ones((4, 5, 31))})
    scipy.io.savemat(harvard / "other.mat", {"cube": np.ones((4, 5, 31))})
    scipy.io.savemat(harvard / "short.mat", {"ref": np.ones((4, 5, 30))})
    (harvard / "junk.mat").write_bytes(b"\x00" * 10)
    with pytest.raises(DataError) as error:
        open_dataset("harvard", tmp_path).preflight()
    message = str(error.value)
    assert "3 of 4" in message and "good:" not in message
    assert "other: " in message and "no variable 'ref'" in message and "--set dataset.key=NAME" in message
    assert "short: " in message and "4x5x30; expected H x W x 31" in message
    assert "junk: cannot read" in message
    open_dataset("harvard", tmp_path, key="cube").preflight(["other"])  # the key names the cube
    folder = tmp_path / "cubes"
    folder.mkdir()
    np.save(folder / "fine.npy", np.ones((3, 4, 5), np.float32))
    np.save(folder / "flat.npy", np.ones((3, 4), np.float32))
    np.save(folder / "cut.npy", np.ones((30, 40, 5), np.float32))
    cut = folder / "cut.npy"
    cut.write_bytes(cut.read_bytes()[:-100])
    with pytest.raises(DataError) as error:
        open_dataset("generic", folder).preflight()
    message = str(error.value)
    assert "fine:" not in message and "flat: " in message and "expected a 3-D cube" in message
    assert "cut.npy is truncated" in message


def test_synthetic_in_memory_passes():
    open_dataset("synthetic", n_scenes=2, size=16).preflight()


@pytest.mark.skipif(not (SHARED_CAVE / "balloons_ms").is_dir(), reason=f"real CAVE data not found at {SHARED_CAVE}")
def test_real_cave_scene_with_a_corrupt_band(tmp_path):
    """A copy of a real CAVE scene with one band file damaged in the middle of its data."""
    shutil.copytree(SHARED_CAVE / "balloons_ms", tmp_path / "CAVE" / "balloons_ms")
    (tmp_path / "CAVE" / "watercolors_ms").symlink_to(SHARED_CAVE / "watercolors_ms", target_is_directory=True)
    dataset = open_dataset("cave", tmp_path)
    dataset.preflight()  # the real scenes pass, watercolors_ms (8-bit RGBA) included
    band = tmp_path / "CAVE" / "balloons_ms" / "balloons_ms" / "balloons_ms_12.png"
    band.write_bytes(band.read_bytes()[: band.stat().st_size // 2])
    with pytest.raises(DataError, match=r"(?s)1 of 2 scene.*balloons_ms: CAVE band file .*balloons_ms_12\.png is "
                                         r"truncated"):
        dataset.preflight()


def _non_utf8_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "cubes"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in (b"fine", b"caf\xe9"):  # Latin-1 "café": not valid UTF-8
        with open(bytes(folder) + b"/" + name + b".npy", "wb") as handle:
            np.save(handle, rng.random((31, 40, 40), dtype=np.float32))
    return folder


def test_a_scene_file_name_that_is_not_utf8_is_refused_by_preflight_and_data_check(tmp_path):
    # It used to pass data check and crash `run` after scoring, writing per_image.csv.
    from click.testing import CliRunner

    from hsisr_bench.cli import main

    folder = _non_utf8_folder(tmp_path)
    with pytest.raises(DataError, match=r"caf\\udce9.*[Rr]ename"):
        open_dataset("generic", folder).preflight()
    result = CliRunner().invoke(main, ["data", "check", "--dataset", "generic", "--data-root", str(folder),
                                       "--profile", "smoke", "--scale", "2"])
    assert result.exit_code == 2, result.output
    assert "caf" in result.output and "ename" in result.output and "Traceback" not in result.output


def test_the_preflight_name_rule_names_the_file_and_a_utf8_name_to_rename_it_to():
    from hsisr_bench.data.preflight import scene_name_problem

    bad = "caf" + b"\xe9".decode("utf-8", "surrogateescape")
    assert scene_name_problem("café") == "" and scene_name_problem("fine") == ""
    problem = scene_name_problem(bad, Path("/d/" + bad + ".npy"))
    assert "is not valid UTF-8" in problem and "rename it, e.g. to 'caf_.npy'" in problem
