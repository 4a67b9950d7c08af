"""Hostile and crafted dataset manifests (issue 16, items 1, 2 and 16): nothing is written or deleted
outside the folders a command owns, and every crafted file ends in a clear ``Error:`` with exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from hsisr_bench.cli import main
from hsisr_bench.data.datasets import check_scene_name, open_dataset
from hsisr_bench.data.specs import register_dataset, unregister_dataset
from hsisr_bench.data.synthetic import MANIFEST_NAME, write_synthetic_dataset
from hsisr_bench.errors import ConfigError, DataError


@pytest.fixture(autouse=True)
def _no_data_env(monkeypatch):
    monkeypatch.delenv("HSIBENCH_DATA", raising=False)


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def _hostile_synthetic(tmp_path: Path, name: str = "../../victim/x") -> tuple[Path, Path]:
    """A synthetic folder whose manifest names a scene outside it (the file exists, so only the name is bad)."""
    folder = tmp_path / "a" / "b" / "synth"
    write_synthetic_dataset(folder, n_scenes=4, size=40, seed=0)
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    victim = folder / f"{name}.npy"
    victim.parent.mkdir(parents=True, exist_ok=True)
    (folder / "synth_00.npy").rename(victim)
    manifest["scenes"][0] = name
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest))
    return folder, victim


@pytest.mark.parametrize("name", ["../../victim/x", "..", ".hidden", "a/b", "x\\y", "", "a\x00b",
                                  " lead", "trail ", "bad\udcffutf8"])
def test_unsafe_scene_names_are_refused(name):
    with pytest.raises(DataError, match="not a plain file name"):
        check_scene_name(name, "somewhere")


@pytest.mark.parametrize("name", ["balloons_ms", "img1", "Ribeira-2004", "synth_00", "scene.v2", "a+b", "Ponte_é",
                                  "Bom Jesus bush"])
def test_ordinary_scene_names_pass(name):
    assert check_scene_name(name, "somewhere") == name


def test_a_manifest_naming_a_scene_outside_its_folder_is_refused_when_opened(tmp_path):
    folder, _ = _hostile_synthetic(tmp_path)
    with pytest.raises(DataError, match=r"synthetic\.json.*'\.\./\.\./victim/x'.*not a plain file name"):
        open_dataset("synthetic", folder)


def test_a_manifest_scene_list_of_non_strings_is_a_clear_error(tmp_path):
    folder = tmp_path / "synth"
    write_synthetic_dataset(folder, n_scenes=2, size=16, seed=0)
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    for scenes in ([["synth_00"], "synth_01"], [1, 2]):
        manifest["scenes"] = scenes
        (folder / MANIFEST_NAME).write_text(json.dumps(manifest))
        with pytest.raises(DataError, match=r"synthetic\.json.*not a plain file name"):
            open_dataset("synthetic", folder)
    manifest["scenes"], manifest["arguments"] = ["synth_00", "synth_01"], ["two"]
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(DataError, match=r"synthetic\.json: 'arguments' is a list"):
        open_dataset("synthetic", folder, n_scenes=2)


def test_run_and_export_testset_write_nothing_outside_their_folders(tmp_path):
    folder, victim = _hostile_synthetic(tmp_path)
    before = victim.read_bytes()
    out, to = tmp_path / "a" / "results", tmp_path / "a" / "export"
    cell = ["--dataset", "synthetic", "--data-root", str(folder), "--scale", "2", "--profile", "smoke"]
    everything = _tree(tmp_path)
    for args in (["run", "--methods", "bicubic", *cell, "--out", str(out), "--no-progress"],
                 ["export-testset", *cell, "--to", str(to)]):
        result = invoke(*args)
        assert result.exit_code == 2, result.output
        assert "Error: " in result.output and "not a plain file name" in result.output, result.output
        assert "Traceback" not in result.output
        assert MANIFEST_NAME in result.output
    assert victim.read_bytes() == before and _tree(tmp_path) == everything


def test_a_plugin_discover_returning_a_path_like_name_is_refused(tmp_path):
    (tmp_path / "cube.npy").write_bytes(b"")
    register_dataset("hostile16", reader="generic", discover=lambda folder: {"sub/../../escape": folder / "cube.npy"})
    try:
        with pytest.raises(DataError, match=r"cube\.npy.*'sub/\.\./\.\./escape'"):
            open_dataset("hostile16", tmp_path)
    finally:
        unregister_dataset("hostile16")


def test_synth_deletes_only_the_scene_files_it_wrote(tmp_path):
    out = tmp_path / "synth"
    precious = tmp_path / "precious.npy"
    precious.write_bytes(b"keep me")
    inside = out / "notes.npy"
    assert invoke("data", "synth", "--out", str(out), "--n-scenes", "3", "--size", "16").exit_code == 0
    inside.write_bytes(b"mine")
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    manifest["scenes"] += ["../precious", "notes"]
    (out / MANIFEST_NAME).write_text(json.dumps(manifest))
    result = invoke("data", "synth", "--out", str(out), "--n-scenes", "2", "--size", "16", "--force")
    assert result.exit_code == 0, result.output
    assert precious.read_bytes() == b"keep me" and inside.read_bytes() == b"mine"
    assert not (out / "synth_02.npy").exists()  # the earlier run's own extra scene is still cleaned up
    assert sorted(p.name for p in out.glob("synth_*.npy")) == ["synth_00.npy", "synth_01.npy"]


def test_synth_size_too_large_is_refused_before_allocating(tmp_path):
    result = invoke("data", "synth", "--out", str(tmp_path / "big"), "--n-scenes", "1", "--size", "100000")
    assert result.exit_code == 2, result.output
    assert result.output.startswith("Error: ") and "size 100000" in result.output and "limit" in result.output
    assert "size <=" in result.output
    assert not (tmp_path / "big").exists() or not any((tmp_path / "big").iterdir())
    with pytest.raises(ConfigError, match="GiB"):
        open_dataset("synthetic", n_scenes=1, size=100000)
