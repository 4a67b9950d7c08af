"""Tests of hsisr_bench.data.datasets: specs, the data root, scene discovery, synthetic datasets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io

from hsisr_bench.data import datasets
from hsisr_bench.data.datasets import DATASETS, DatasetSpec, open_dataset, resolve_data_root
from hsisr_bench.data.synthetic import make_synthetic_scenes, write_synthetic_dataset
from hsisr_bench.errors import ConfigError, DataError

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CAVE_ROOT = SHARED_DATA / "CAVE"
REAL_CAVE_SCENES = [
    "balloons_ms", "chart_and_stuffed_toy_ms", "egyptian_statue_ms", "face_ms", "fake_and_real_lemons_ms",
    "fake_and_real_peppers_ms", "flowers_ms", "photo_and_face_ms", "real_and_fake_apples_ms", "watercolors_ms",
]
needs_cave = pytest.mark.skipif(not (CAVE_ROOT / "balloons_ms").is_dir(),
                                reason=f"real CAVE data not found at {CAVE_ROOT}")


@pytest.fixture(autouse=True)
def _no_data_env(monkeypatch):
    """Each test starts without $HSIBENCH_DATA, whatever the shell running the suite has set."""
    monkeypatch.delenv("HSIBENCH_DATA", raising=False)


def link_cave_scenes(cave_dir: Path, names) -> Path:
    """A CAVE folder with the given real scenes, symlinked (fast, no copy)."""
    cave_dir.mkdir(parents=True)
    for name in names:
        (cave_dir / name).symlink_to(CAVE_ROOT / name, target_is_directory=True)
    return cave_dir


def write_mat_scenes(folder: Path, variable: str, bands: int, names) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for index, name in enumerate(names):
        cube = np.random.default_rng(index).uniform(0.1, 2.0, size=(5, 6, bands))
        scipy.io.savemat(folder / f"{name}.mat", {variable: cube})


# --------------------------------------------------------------------------------------------------
# Specs and the data root
# --------------------------------------------------------------------------------------------------


def test_specs():
    assert set(DATASETS) >= {"cave", "cave31", "harvard", "foster", "synthetic", "generic"}
    for name, spec in DATASETS.items():
        assert isinstance(spec, DatasetSpec) and spec.name == name and spec.layout and spec.title
        if spec.wavelengths is not None:
            assert len(spec.wavelengths) == spec.bands
    np.testing.assert_array_equal(DATASETS["cave"].wavelengths, np.arange(400, 701, 10))
    np.testing.assert_array_equal(DATASETS["harvard"].wavelengths, np.arange(420, 721, 10))
    np.testing.assert_array_equal(DATASETS["foster"].wavelengths, np.arange(400, 721, 10))
    assert DATASETS["generic"].bands is None


def test_resolve_data_root_argument_then_env_then_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_data_root() == tmp_path / "data"
    monkeypatch.setenv("HSIBENCH_DATA", "/from/env")
    assert resolve_data_root() == Path("/from/env")
    assert resolve_data_root("/from/arg") == Path("/from/arg")
    assert resolve_data_root(tmp_path / "x") == tmp_path / "x"
    monkeypatch.setenv("HSIBENCH_DATA", "")
    assert resolve_data_root(None) == tmp_path / "data"


def test_unknown_dataset_has_did_you_mean():
    with pytest.raises(ConfigError, match=r"unknown dataset 'cvae'.*Did you mean 'cave'"):
        open_dataset("cvae")
    with pytest.raises(ConfigError, match=r"option 'normalise' does not apply to the cave reader"):
        open_dataset("cave", normalise="max")


# --------------------------------------------------------------------------------------------------
# Discovery
# --------------------------------------------------------------------------------------------------


@needs_cave
def test_real_cave_root():
    dataset = open_dataset("cave", SHARED_DATA)
    assert dataset.name == "cave" and dataset.root == CAVE_ROOT
    assert dataset.scene_names == REAL_CAVE_SCENES and len(dataset) == 10
    assert dataset.source("face_ms") == CAVE_ROOT / "face_ms"


@needs_cave
def test_cave_folder_any_case_or_root_itself(tmp_path):
    cave = link_cave_scenes(tmp_path / "root" / "cave", ["watercolors_ms", "balloons_ms"])
    (cave / "README.txt").write_text("not a scene")
    (cave / "notes").mkdir()  # a folder without PNGs that is not named *_ms: not a scene
    dataset = open_dataset("CAVE", tmp_path / "root")
    assert dataset.root == cave and dataset.scene_names == ["balloons_ms", "watercolors_ms"]
    scene = dataset.load("watercolors_ms")
    assert scene.cube.shape == (31, 512, 512) and scene.name == "watercolors_ms"
    # The data root may be the dataset folder itself.
    assert open_dataset("cave", cave).scene_names == ["balloons_ms", "watercolors_ms"]


def test_cave_broken_scenes_are_listed_not_skipped(tmp_path):
    (tmp_path / "CAVE" / "broken_ms" / "broken_ms").mkdir(parents=True)
    dataset = open_dataset("cave", tmp_path)
    assert dataset.scene_names == ["broken_ms"]
    with pytest.raises(DataError, match="holds no band files"):
        dataset.load("broken_ms")
    with pytest.raises(DataError, match=r"no scene 'brokn_ms'.*Did you mean 'broken_ms'"):
        dataset.load("brokn_ms")


def test_harvard_sub_folders_and_foster_lower_case(tmp_path):
    write_mat_scenes(tmp_path / "Harvard" / "CZ_hsdb", "ref", 31, ["img1", "imgb5"])
    write_mat_scenes(tmp_path / "Harvard" / "CZ_hsdbi", "ref", 31, ["imga1"])
    write_mat_scenes(tmp_path / "foster", "hsi", 33, ["Sete_Fontes", "Bom_Jesus_Bush"])
    harvard = open_dataset("harvard", tmp_path)
    assert harvard.scene_names == ["img1", "imga1", "imgb5"]
    scene = harvard.load("imga1")
    assert scene.dataset == "harvard" and scene.cube.shape == (31, 5, 6) and scene.cube.max() == 1.0
    foster = open_dataset("foster", tmp_path)
    assert foster.root == tmp_path / "foster"
    assert foster.scene_names == ["Bom_Jesus_Bush", "Sete_Fontes"]
    assert foster.load("Sete_Fontes").cube.shape == (33, 5, 6)


def test_duplicate_scene_names_are_an_error(tmp_path):
    write_mat_scenes(tmp_path / "Harvard" / "CZ_hsdb", "ref", 31, ["img1"])
    write_mat_scenes(tmp_path / "Harvard" / "CZ_hsdbi", "ref", 31, ["img1"])
    with pytest.raises(DataError, match=r"two files for scene 'img1'"):
        open_dataset("harvard", tmp_path)


def test_generic_folder_with_reader_options(tmp_path):
    np.save(tmp_path / "a.npy", np.full((8, 8, 4), 3.0))
    np.save(tmp_path / "b.npy", np.full((8, 8, 4), 0.5))
    (tmp_path / "notes.txt").write_text("ignored")
    dataset = open_dataset("generic", tmp_path, band_axis=2)
    assert dataset.scene_names == ["a", "b"]
    assert dataset.load("a").cube.shape == (4, 8, 8) and dataset.load("a").cube.max() == 1.0
    assert dataset.load("b").cube.max() == np.float32(0.5)


def test_missing_root_says_where_it_looked_and_how_to_set_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError) as info:
        open_dataset("cave")
    message = str(info.value)
    assert f"data root {tmp_path / 'data'}" in message and "default ./data" in message
    assert "does not exist" in message and "--data-root" in message and "HSIBENCH_DATA" in message
    assert "_ms_01.png" in message  # the expected layout


def test_missing_dataset_folder_lists_every_candidate(tmp_path, monkeypatch):
    (tmp_path / "Harvard").mkdir()  # present but empty
    monkeypatch.setenv("HSIBENCH_DATA", str(tmp_path))
    with pytest.raises(DataError) as info:
        open_dataset("foster")
    message = str(info.value)
    assert "from $HSIBENCH_DATA" in message
    for candidate in (tmp_path / "Foster", tmp_path / "Foster2015", tmp_path):
        assert str(candidate) in message
    assert "variable hsi H x W x 33" in message
    with pytest.raises(DataError, match=r"Looked in: .*Harvard \(no scenes\)"):
        open_dataset("harvard", tmp_path)


# --------------------------------------------------------------------------------------------------
# Synthetic
# --------------------------------------------------------------------------------------------------


def test_synthetic_in_memory_is_cached_and_loads_copies(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # ./data does not exist: scenes are generated
    dataset = open_dataset("synthetic", n_scenes=3, size=16, seed=4)
    assert dataset.root is None and dataset.scene_names == ["synth_00", "synth_01", "synth_02"]
    expected = make_synthetic_scenes(n_scenes=3, size=16, seed=4)
    scene = dataset.load("synth_01")
    np.testing.assert_array_equal(scene.cube, expected[1].cube)
    scene.cube[:] = 0  # a caller modifying its scene must not change the cached one
    np.testing.assert_array_equal(dataset.load("synth_01").cube, expected[1].cube)
    again = open_dataset("synthetic", n_scenes=3, size=16, seed=4)
    assert again._scenes["synth_00"] is dataset._scenes["synth_00"]  # generated once per arguments
    assert datasets._generated_scenes.cache_info().hits >= 1
    with pytest.raises(ConfigError, match="min_bands"):
        open_dataset("synthetic", min_bands=3)


def test_synthetic_from_disk_bit_exact(tmp_path):
    write_synthetic_dataset(tmp_path / "synthetic", n_scenes=2, size=16, bands=31, seed=9)
    expected = make_synthetic_scenes(n_scenes=2, size=16, bands=31, seed=9)
    for root in (tmp_path, tmp_path / "synthetic"):
        dataset = open_dataset("synthetic", root)
        assert dataset.root == tmp_path / "synthetic"
        assert dataset.scene_names == ["synth_00", "synth_01"]
        for original in expected:
            scene = dataset.load(original.name)
            assert scene.cube.tobytes() == original.cube.tobytes()
            np.testing.assert_array_equal(scene.wavelengths, original.wavelengths)
    with pytest.raises(DataError, match=r"generated with other arguments: seed=1 \(on disk 9\)"):
        open_dataset("synthetic", tmp_path, seed=1)
    (tmp_path / "synthetic" / "synth_01.npy").unlink()
    with pytest.raises(DataError, match=r"lacks 1 scene file\(s\).*synth_01\.npy"):
        open_dataset("synthetic", tmp_path)


def test_synthetic_explicit_root_without_dataset_is_an_error(tmp_path):
    with pytest.raises(DataError, match=r"no synthetic dataset under .*hsibench data synth.*omit --data-root"):
        open_dataset("synthetic", tmp_path)


def test_synthetic_env_root_is_used_when_it_holds_a_dataset(tmp_path, monkeypatch):
    write_synthetic_dataset(tmp_path / "Synthetic", n_scenes=1, size=16, seed=2)
    monkeypatch.setenv("HSIBENCH_DATA", str(tmp_path))
    assert open_dataset("synthetic").root == tmp_path / "Synthetic"
    monkeypatch.setenv("HSIBENCH_DATA", str(tmp_path / "elsewhere"))
    assert open_dataset("synthetic", n_scenes=1, size=16).root is None  # not there: generated


# --------------------------------------------------------------------------------------------------
# cave31: the paper's 31-scene CAVE set
# --------------------------------------------------------------------------------------------------


def test_cave31_is_cave_without_watercolors(tmp_path):
    from hsisr_bench.data.splits import canonical_split_path, load_split

    for name in ("balloons_ms", "watercolors_ms"):
        (tmp_path / "CAVE" / name / name).mkdir(parents=True)
    assert open_dataset("cave", tmp_path).scene_names == ["balloons_ms", "watercolors_ms"]
    cave31 = open_dataset("cave31", tmp_path)
    assert cave31.name == "cave31" and cave31.scene_names == ["balloons_ms"]
    assert cave31.root == tmp_path / "CAVE" and cave31.spec.reader == "cave"
    # Its canonical split is cave.json without watercolors_ms, every other scene on the same side.
    cave, paper = load_split(canonical_split_path("cave")), load_split(canonical_split_path("cave31"))
    assert paper.dataset == "cave31" and len(paper.scenes) == 31 and "watercolors_ms" not in paper.scenes
    assert paper.train == cave.train and paper.test == tuple(n for n in cave.test if n != "watercolors_ms")
    assert "watercolors_ms" in paper.note


@needs_cave
def test_cave31_on_the_real_subset_loads_16_bit_scenes_only():
    dataset = open_dataset("cave31", SHARED_DATA)
    assert dataset.scene_names == [n for n in REAL_CAVE_SCENES if n != "watercolors_ms"]
    assert dataset.load("face_ms").extras["disk_format"] == "uint16 gray PNG"
