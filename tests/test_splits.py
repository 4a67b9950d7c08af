"""Tests of the seeded scene splits (hsisr_bench.data.splits) and the canonical CAVE split file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import hsisr_bench
from hsisr_bench.data.splits import Split, canonical_split_path, load_split, make_split, split_for_dataset
from hsisr_bench.errors import ConfigError, DataError

SHARED_CAVE = Path(__file__).resolve().parents[2] / "shared" / "data" / "CAVE"

#: The 32 scenes of the CAVE multispectral database (Yasuma et al. 2010), folder names.
CAVE_SCENES = [f"{name}_ms" for name in (
    "balloons", "beads", "cd", "chart_and_stuffed_toy", "clay", "cloth", "egyptian_statue", "face",
    "fake_and_real_beers", "fake_and_real_food", "fake_and_real_lemon_slices", "fake_and_real_lemons",
    "fake_and_real_peppers", "fake_and_real_strawberries", "fake_and_real_sushi", "fake_and_real_tomatoes",
    "feathers", "flowers", "glass_tiles", "hairs", "jelly_beans", "oil_painting", "paints", "photo_and_face",
    "pompoms", "real_and_fake_apples", "real_and_fake_peppers", "sponges", "stuffed_toys", "superballs",
    "thread_spools", "watercolors")]

NAMES = [f"scene_{i:02d}" for i in range(10)]


def test_make_split_is_deterministic_and_seeded():
    a = make_split(CAVE_SCENES, seed=0)
    assert a == make_split(CAVE_SCENES, seed=0)
    assert a != make_split(CAVE_SCENES, seed=1)


def test_make_split_ignores_the_listing_order():
    shuffled = CAVE_SCENES[::-1][5:] + CAVE_SCENES[::-1][:5]
    assert make_split(shuffled, seed=3) == make_split(CAVE_SCENES, seed=3)


@pytest.mark.parametrize("n, n_train", [(2, 1), (3, 2), (5, 4), (10, 8), (12, 10), (32, 26)])
def test_make_split_counts(n, n_train):
    split = make_split([f"s{i}" for i in range(n)], seed=0)
    assert len(split.train) == n_train and len(split.test) == n - n_train
    assert set(split.train) | set(split.test) == {f"s{i}" for i in range(n)}
    assert not set(split.train) & set(split.test)
    assert list(split.train) == sorted(split.train) and list(split.test) == sorted(split.test)


def test_other_fraction_keeps_a_test_scene():
    split = make_split(NAMES, train_fraction=0.99, seed=0)
    assert (len(split.train), len(split.test)) == (9, 1)
    assert len(make_split(NAMES, train_fraction=0.5, seed=0).train) == 5


@pytest.mark.parametrize("names", [[], ["only_one"]])
def test_fewer_than_two_scenes_is_a_data_error(names):
    with pytest.raises(DataError, match="at least 2 scenes"):
        make_split(names)


def test_duplicates_and_bad_fraction_are_rejected():
    with pytest.raises(DataError, match="dup"):
        make_split(["a", "dup", "dup"])
    with pytest.raises(ConfigError, match="train_fraction"):
        make_split(NAMES, train_fraction=1.0)
    with pytest.raises(ConfigError, match="seed"):
        make_split(NAMES, seed=-2)


def test_json_round_trip(tmp_path):
    split = make_split(NAMES, seed=4, dataset="synthetic")
    path = split.save(tmp_path / "sub" / "split.json")
    assert load_split(path) == split
    assert json.loads(split.to_json()) == json.loads(path.read_text())
    assert json.loads(path.read_text())["train"] == list(split.train)


@pytest.mark.parametrize("text, fragment", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "JSON object"),
    ('{"dataset": null, "seed": 0, "train_fraction": 0.8, "test": ["a"]}', "lacks key"),
    ('{"dataset": null, "seed": 0, "train_fraction": 0.8, "train": ["a"], "test": ["b"], "tets": []}', "unknown key"),
    ('{"dataset": null, "seed": 0, "train_fraction": 0.8, "train": "a", "test": ["b"]}', "list of scene names"),
    ('{"dataset": null, "seed": 0, "train_fraction": 0.8, "train": ["a", "b"], "test": ["b"]}', "both"),
    ('{"dataset": null, "seed": 0, "train_fraction": 0.8, "train": [], "test": ["b"]}', "at least one"),
    ('{"dataset": null, "seed": "0", "train_fraction": 0.8, "train": ["a"], "test": ["b"]}', "seed"),
    ('{"dataset": null, "seed": 0, "train_fraction": 2, "train": ["a"], "test": ["b"]}', "train_fraction"),
])
def test_malformed_split_file_is_a_data_error_naming_the_file(tmp_path, text, fragment):
    path = tmp_path / "bad_split.json"
    path.write_text(text)
    with pytest.raises(DataError, match=fragment) as info:
        load_split(path)
    assert str(path) in str(info.value)


def test_missing_split_file(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_split(tmp_path / "nope.json")


def test_committed_cave_split_equals_regenerating_it():
    path = Path(hsisr_bench.CONFIG_DIR) / "splits" / "cave.json"
    assert canonical_split_path("CAVE") == path
    committed = load_split(path)
    regenerated = make_split(CAVE_SCENES, seed=0, train_fraction=0.8, dataset="cave")
    assert committed == regenerated
    assert path.read_text() == regenerated.to_json()
    assert (len(committed.train), len(committed.test)) == (26, 6)


def test_restrict_keeps_the_canonical_assignment():
    split = make_split(NAMES, seed=0)
    present = list(split.train[:3]) + list(split.test[:1])
    restricted = split.restrict(present, source="split file s.json")
    assert restricted.train == split.train[:3] and restricted.test == split.test[:1]
    assert "restricted to 4 of 10 scenes present" in restricted.note
    missing = sorted(set(NAMES) - set(present))
    assert restricted.restriction == {"source": "split file s.json", "missing": missing,
                                      "train": list(split.train[:3]), "test": list(split.test[:1]),
                                      "file_train": 8, "file_test": 2}
    assert split.restrict(NAMES) is split and split.restriction is None
    # The restriction is not part of the file format, and a restricted split still hashes.
    assert "restriction" not in restricted.to_dict()
    assert hash(restricted) == hash(restricted)


def test_restrict_never_redraws_when_one_side_is_empty():
    split = make_split(NAMES, seed=0)
    present = list(split.train[:5])
    with pytest.raises(DataError, match="leave no test scene") as error:
        split.restrict(present)
    assert "never redrawn" in str(error.value) and "hsibench data split" in str(error.value)
    with pytest.raises(DataError, match="leave no training scene"):
        split.restrict(list(split.test))


def test_restrict_leaves_out_unknown_present_scenes():
    split = make_split(NAMES, seed=0)
    restricted = split.restrict(NAMES + ["stranger"])
    assert "stranger" not in restricted.scenes
    assert restricted.scenes == split.scenes
    assert "not used: stranger" in restricted.note
    assert restricted.restriction is None


def test_explicit_split_file_naming_absent_scenes_is_an_error(tmp_path):
    path = make_split(NAMES, seed=0, dataset="toy").save(tmp_path / "mine.json")
    present = NAMES[:4] + NAMES[8:]
    with pytest.raises(DataError, match="names 4 scene\\(s\\) that are not in the dataset") as error:
        split_for_dataset("toy", present, split_file=path)
    message = str(error.value)
    assert str(path) in message and "--set dataset.restrict_split=true" in message
    assert all(name in message for name in NAMES[4:8])


def test_explicit_split_file_restricted_on_request_is_described(tmp_path):
    full = make_split(NAMES, seed=0, dataset="toy")
    path = full.save(tmp_path / "mine.json")
    present = sorted(full.train[:4] + full.test[:1])
    split = split_for_dataset("toy", present, split_file=path, restrict=True)
    assert split.train == full.train[:4] and split.test == full.test[:1]
    assert split.restriction["canonical"] is False
    assert split.restriction["source"] == f"split file {path}"
    assert split.restriction["missing"] == sorted(set(NAMES) - set(present))
    assert split.note == split.restriction_text() and str(path) in split.note
    # Restricting to training scenes only is an error even on request: no redraw.
    with pytest.raises(DataError, match="no test scene"):
        split_for_dataset("toy", list(full.train), split_file=path, restrict=True)
    # Every scene present: the file as written, no restriction.
    assert split_for_dataset("toy", NAMES, split_file=path).restriction is None


def test_split_for_dataset_prefers_the_given_file_then_the_canonical_then_computes(tmp_path, monkeypatch):
    own = Split(train=("scene_00", "scene_01"), test=("scene_02",), seed=None, train_fraction=None,
                dataset="synthetic")
    own_path = own.save(tmp_path / "own.json")
    assert split_for_dataset("synthetic", ["scene_00", "scene_01", "scene_02"], split_file=own_path) == own
    # No canonical file for "synthetic": a seeded split is computed, and the note says so.
    computed = split_for_dataset("synthetic", NAMES, seed=5)
    assert (computed.train, computed.test) == (make_split(NAMES, seed=5).train, make_split(NAMES, seed=5).test)
    assert "computed" in computed.note
    # A canonical file is looked up under hsisr_bench.CONFIG_DIR / "splits".
    (tmp_path / "configs" / "splits").mkdir(parents=True)
    make_split(NAMES, seed=9, dataset="toy").save(tmp_path / "configs" / "splits" / "toy.json")
    monkeypatch.setattr(hsisr_bench, "CONFIG_DIR", tmp_path / "configs")
    assert split_for_dataset("toy", NAMES) == make_split(NAMES, seed=9, dataset="toy")
    partial = split_for_dataset("toy", NAMES[:6])
    assert partial.restriction["canonical"] is True
    assert partial.restriction["source"] == "canonical split configs/splits/toy.json"
    assert partial.restriction["missing"] == NAMES[6:]


def test_split_file_of_another_dataset_is_rejected(tmp_path):
    path = make_split(NAMES, dataset="harvard").save(tmp_path / "h.json")
    with pytest.raises(DataError, match="for dataset 'harvard'"):
        split_for_dataset("cave", NAMES, split_file=path)


def test_real_cave_scenes_restrict_the_canonical_split():
    if not SHARED_CAVE.is_dir():
        pytest.skip(f"real CAVE scenes not found at {SHARED_CAVE}")
    present = sorted(p.name for p in SHARED_CAVE.iterdir() if p.is_dir())
    assert len(present) == 10 and set(present) <= set(CAVE_SCENES)
    canonical = load_split(canonical_split_path("cave"))
    split = split_for_dataset("cave", present)
    assert set(split.scenes) == set(present)
    assert split.train and split.test
    # The canonical assignment is kept: 9 present scenes are training scenes, watercolors_ms is a test scene.
    assert set(split.train) <= set(canonical.train) and set(split.test) <= set(canonical.test)
    assert split.test == ("watercolors_ms",)
    assert "restricted to 10 of 32 scenes present (9 train, 1 test" in split.note
    assert split.restriction["canonical"] is True and len(split.restriction["missing"]) == 22
    assert split.restriction["source"] == "canonical split configs/splits/cave.json"
