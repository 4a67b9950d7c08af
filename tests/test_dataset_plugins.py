"""Tests of ``register_dataset``: a lab's own dataset, found by open_dataset, ``hsibench list`` and ``data check``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from hsisr_bench.cli import main
from hsisr_bench.data.datasets import DATASETS, open_dataset, register_dataset, unregister_dataset
from hsisr_bench.data.scene import Scene
from hsisr_bench.errors import ConfigError, DataError


def read_lab_cube(path: Path) -> Scene:
    """The lab's format: a 12-bit (H, W, L) uint16 .npy, bands last."""
    raw = np.load(path)
    cube = np.ascontiguousarray(raw.transpose(2, 0, 1), dtype=np.float32) / 4095  # (H, W, L) -> (L, H, W)
    return Scene(name="ignored", cube=cube, dataset="labcam")


@pytest.fixture
def labcam(tmp_path, monkeypatch):
    """A registered ``labcam`` dataset (removed afterwards) and a data root with its folder of 2 scenes."""
    monkeypatch.delenv("HSIBENCH_DATA", raising=False)
    spec = register_dataset("LabCam", reader=read_lab_cube, suffixes=(".npy",), bands=6,
                            wavelengths=np.linspace(450, 700, 6), title="Our lab camera",
                            normalisation="÷ 4095 (12-bit)")
    rng = np.random.default_rng(0)
    folder = tmp_path / "labcam"
    folder.mkdir()
    for name in ("desk", "window"):
        np.save(folder / f"{name}.npy", rng.integers(0, 4096, size=(16, 17, 6), dtype=np.uint16))
    yield spec, tmp_path
    unregister_dataset("labcam")


def test_registered_dataset_is_opened_and_loaded_like_a_built_in(labcam):
    spec, root = labcam
    assert spec.name == "labcam" and DATASETS["labcam"] is spec and spec.origin == __name__
    dataset = open_dataset("LABCAM", root)  # any case, as every dataset name
    assert dataset.root == root / "labcam" and dataset.scene_names == ["desk", "window"]
    scene = dataset.load("window")
    expected = np.load(root / "labcam" / "window.npy").transpose(2, 0, 1).astype(np.float32) / 4095
    np.testing.assert_array_equal(scene.cube, expected)
    assert scene.name == "window" and scene.source == root / "labcam" / "window.npy"
    with pytest.raises(ConfigError, match=r"do not apply to dataset 'labcam'.*read_lab_cube"):
        open_dataset("labcam", root, band_axis=2)


def test_duplicate_names_and_bad_registrations_are_clear_errors(labcam):
    with pytest.raises(ConfigError, match=r"'labcam' is already registered by test_dataset_plugins.*Our lab camera"
                                          r".*dataset of another.module"):
        register_dataset("labcam", reader="generic", origin="another.module")
    with pytest.raises(ConfigError, match=r"'cave' is already registered by built-in"):
        register_dataset("CAVE", reader="cave")
    with pytest.raises(ConfigError, match=r"unknown reader 'caev'.*Did you mean 'cave'"):
        register_dataset("mine", reader="caev")
    with pytest.raises(ConfigError, match=r"say how to find the scenes"):
        register_dataset("mine", reader=read_lab_cube)
    with pytest.raises(ConfigError, match=r"the name must be letters"):
        register_dataset("my/data", reader="generic")
    with pytest.raises(ConfigError, match=r"3 wavelengths for 6 bands"):
        register_dataset("mine", reader="generic", bands=6, wavelengths=[1, 2, 3])
    with pytest.raises(ConfigError, match=r"built in"):
        unregister_dataset("cave")
    assert "mine" not in DATASETS


def test_existing_reader_name_and_custom_discovery(tmp_path):
    (tmp_path / "shots" / "a").mkdir(parents=True)
    np.save(tmp_path / "shots" / "a" / "cube.npy", np.full((3, 4, 5), 0.5, np.float32))
    register_dataset("shots", reader="generic", discover=lambda folder: {
        sub.name: sub / "cube.npy" for sub in folder.iterdir() if (sub / "cube.npy").is_file()})
    try:
        dataset = open_dataset("shots", tmp_path)
        assert dataset.scene_names == ["a"] and dataset.load("a").cube.shape == (3, 4, 5)
    finally:
        unregister_dataset("shots")
    register_dataset("broken_plugin", reader=lambda path: "not a scene", suffixes=(".npy",))
    try:
        with pytest.raises(DataError, match=r"'broken_plugin' \(registered by .*returned str.*must return"):
            open_dataset("broken_plugin", tmp_path / "shots" / "a").load("cube")
    finally:
        unregister_dataset("broken_plugin")


def test_registered_dataset_in_list_and_data_check(labcam):
    _, root = labcam
    runner = CliRunner()
    check = runner.invoke(main, ["data", "check", "--dataset", "labcam", "--data-root", str(root), "--profile",
                                 "smoke", "--scale", "2"],
                          catch_exceptions=False)
    assert check.exit_code == 0, check.output
    assert "Dataset labcam (Our lab camera)" in check.stdout and "2 of 2 scenes usable." in check.stdout
    assert "6x16x17" in check.stdout
    listing = runner.invoke(main, ["list"], catch_exceptions=False)
    assert listing.exit_code == 0, listing.output
    assert any(line.startswith("labcam") and "Our lab camera" in line for line in listing.stdout.splitlines())
