"""End-to-end tests of ``hsibench data check`` and ``hsibench data synth`` with click's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from hsisr_bench.cli import main
from hsisr_bench.data import load_scene
from hsisr_bench.data.datasets import open_dataset
from hsisr_bench.data.synthetic import MANIFEST_NAME, make_synthetic_scenes

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CAVE_ROOT = SHARED_DATA / "CAVE"
needs_cave = pytest.mark.skipif(not (CAVE_ROOT / "watercolors_ms").is_dir(),
                                reason=f"real CAVE data not found at {CAVE_ROOT}")


@pytest.fixture(autouse=True)
def _no_data_env(monkeypatch):
    monkeypatch.delenv("HSIBENCH_DATA", raising=False)


#: ``data check`` options for tiny test scenes: the smoke profile's 16x16 HR patches at x2, no rescaling.
SMALL = ("--profile", "smoke", "--scale", "2")


def invoke(*args, env=None):
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def two_scene_cave(root: Path) -> Path:
    """``root/CAVE`` with balloons and watercolors symlinked from the real data."""
    cave = root / "CAVE"
    cave.mkdir(parents=True)
    for name in ("balloons_ms", "watercolors_ms"):
        (cave / name).symlink_to(CAVE_ROOT / name, target_is_directory=True)
    return cave


# --------------------------------------------------------------------------------------------------
# data check
# --------------------------------------------------------------------------------------------------


@needs_cave
def test_check_real_cave_subset_passes(tmp_path):
    two_scene_cave(tmp_path)
    result = invoke("data", "check", "--dataset", "cave", "--data-root", str(tmp_path))
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "2 of 2 scenes usable." in out
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith(("balloons", "watercolors"))}
    assert "31x512x512" in rows["balloons_ms"] and "uint16" in rows["balloons_ms"]
    assert "uint8 RGBA" in rows["watercolors_ms"] and rows["watercolors_ms"].rstrip().endswith("usable")
    assert "watercolors_ms: usable (31 bands 400-700 nm, uint8 RGBA (R=G=B) PNG, normalised ÷ 255)" in out
    assert "checking cave" in result.stderr  # the progress bar


@needs_cave
def test_check_broken_scene_exits_2_with_reason(tmp_path):
    cave = two_scene_cave(tmp_path)
    broken = cave / "face_ms" / "face_ms"
    broken.mkdir(parents=True)
    for number in range(1, 31):  # band 31 missing
        name = f"face_ms_{number:02d}.png"
        (broken / name).symlink_to(CAVE_ROOT / "face_ms" / "face_ms" / name)
    result = invoke("data", "check", "--dataset", "cave", "--data-root", str(tmp_path))
    assert result.exit_code == 2
    assert "face_ms: UNUSABLE: CAVE scene folder" in result.stdout
    assert "missing band(s) 31" in result.stdout
    assert "2 of 3 scenes usable." in result.stdout
    assert "Error: 1 of 3 cave scenes are unusable (face_ms)" in result.stderr


def test_check_data_root_from_option_env_and_default(tmp_path, monkeypatch):
    for where in ("opt", "env", "cwd/data"):
        np.save(_mkdir(tmp_path / where) / "cube.npy", np.full((4, 16, 17), 0.5, np.float32))
    monkeypatch.chdir(tmp_path / "cwd")
    default = invoke("data", "check", "--dataset", "generic", *SMALL)
    assert default.exit_code == 0 and str(tmp_path / "cwd" / "data") in default.stdout
    env = invoke("data", "check", "--dataset", "generic", *SMALL, env={"HSIBENCH_DATA": str(tmp_path / "env")})
    assert env.exit_code == 0 and str(tmp_path / "env") in env.stdout
    both = invoke("data", "check", "--dataset", "generic", "--data-root", str(tmp_path / "opt"), *SMALL,
                  env={"HSIBENCH_DATA": str(tmp_path / "env")})
    assert both.exit_code == 0 and str(tmp_path / "opt") in both.stdout  # --data-root wins
    assert "1 of 1 scenes usable." in both.stdout


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def test_check_errors_exit_2(tmp_path):
    unknown = invoke("data", "check", "--dataset", "harvrd", "--data-root", str(tmp_path))
    assert unknown.exit_code == 2 and "Did you mean 'harvard'" in unknown.stderr
    missing = invoke("data", "check", "--dataset", "harvard", "--data-root", str(tmp_path))
    assert missing.exit_code == 2 and "Error: no harvard scenes found" in missing.stderr
    assert "Traceback" not in missing.output
    np.save(_mkdir(tmp_path / "g") / "nan.npy", np.full((4, 6, 5), np.nan))
    bad = invoke("data", "check", "--dataset", "generic", "--data-root", str(tmp_path / "g"))
    assert bad.exit_code == 2 and "nan: UNUSABLE:" in bad.stdout and "NaN" in bad.stdout


def test_check_calls_a_scene_too_small_to_train_not_usable_with_advice_that_works(tmp_path):
    folder = _mkdir(tmp_path / "g")
    np.save(folder / "small.npy", np.full((4, 20, 24), 0.5, np.float32))  # 20 px < the 32 px HR patch at x4
    np.save(folder / "large.npy", np.full((4, 64, 64), 0.5, np.float32))
    result = invoke("data", "check", "--dataset", "generic", "--data-root", str(folder), "--scale", "2,4")
    assert result.exit_code == 2
    verdict = next(line for line in result.stdout.splitlines() if line.strip().startswith("small:"))
    assert "too small to train with profile 'quick'" in verdict and "x4: Scene small is 20x24" in verdict
    # Factor 1 already fails: dropping rescaling factors cannot help, a smaller patch does (LR 5 at x4).
    assert "dropping rescaling factors cannot help" in verdict and "--set protocol.lr_patch=2" in verdict
    assert "x2:" in verdict  # at x2 only the factors 0.75 and 0.5 fail: dropping them is offered
    assert "drop the rescaling factor(s) 0.75, 0.5" in verdict and "protocol.rescales=[1]" in verdict
    assert "large: usable" in result.stdout and "1 of 2 scenes usable." in result.stdout
    assert "Error: 1 of 2 generic scenes are unusable (small)" in result.stderr
    # Training stops with the same advice (it used to suggest dropping the factor 1, which cannot help) ...
    from hsisr_bench.data.patches import PatchBank
    from hsisr_bench.data.scene import Scene
    from hsisr_bench.errors import DataError

    with pytest.raises(DataError, match=r"rescaling by 1 .*cannot help. Use a smaller lr_patch \(at most 2") as error:
        PatchBank([Scene("small", np.full((4, 20, 24), 0.5, np.float32))], scale=4, lr_patch=8)
    assert "drop the rescaling factor" not in str(error.value)
    # ... and the advice works: with rescales [1] the scene fits at x2, with lr_patch 2 at x4.

    PatchBank([Scene("small", np.full((4, 20, 24), 0.5, np.float32))], scale=2, lr_patch=8, rescales=(1.0,),
              patches_per_image=1)
    PatchBank([Scene("small", np.full((4, 20, 24), 0.5, np.float32))], scale=4, lr_patch=2,
              patches_per_image=1)


def test_check_accepts_any_case_and_the_key_option(tmp_path):
    import scipy.io

    harvard = _mkdir(tmp_path / "Harvard")
    scipy.io.savemat(harvard / "img1.mat", {"cube": np.random.default_rng(0).uniform(0.1, 1, (16, 16, 31))})
    plain = invoke("data", "check", "--dataset", "HARVARD", "--data-root", str(tmp_path), *SMALL)
    assert plain.exit_code == 2 and "--set dataset.key=NAME" in plain.stdout
    keyed = invoke("data", "check", "--dataset", "Harvard", "--data-root", str(tmp_path), "--key", "cube", *SMALL)
    assert keyed.exit_code == 0, keyed.output
    assert "1 of 1 scenes usable." in keyed.stdout


def test_split_writes_a_split_of_the_present_scenes(tmp_path):
    folder = _mkdir(tmp_path / "g")
    for name in "abcde":
        np.save(folder / f"{name}.npy", np.full((4, 8, 8), 0.5, np.float32))
    out = tmp_path / "mine.json"
    result = invoke("data", "split", "--dataset", "generic", "--data-root", str(folder), "--out", str(out))
    assert result.exit_code == 0, result.output
    from hsisr_bench.data.splits import load_split, make_split, split_for_dataset

    assert load_split(out) == make_split(list("abcde"), seed=0, dataset="generic")
    assert f"--split-file {out}" in result.stdout
    assert split_for_dataset("generic", list("abcde"), split_file=out) == load_split(out)
    again = invoke("data", "split", "--dataset", "generic", "--data-root", str(folder), "--out", str(out))
    assert again.exit_code == 2 and "--force" in again.stderr


# --------------------------------------------------------------------------------------------------
# data synth
# --------------------------------------------------------------------------------------------------


def test_synth_round_trip_and_overwrite_rules(tmp_path):
    out = tmp_path / "synth"
    args = ["data", "synth", "--out", str(out), "--n-scenes", "3", "--size", "16", "--seed", "5"]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert manifest["arguments"] == {"n_scenes": 3, "size": 16, "bands": 31, "seed": 5}
    expected = make_synthetic_scenes(n_scenes=3, size=16, seed=5)
    dataset = open_dataset("synthetic", out)
    assert dataset.scene_names == [s.name for s in expected]
    for original in expected:
        for scene in (dataset.load(original.name), load_scene(out / f"{original.name}.npy")):
            assert scene.cube.dtype == np.float32 and scene.cube.tobytes() == original.cube.tobytes()
            np.testing.assert_array_equal(scene.wavelengths, original.wavelengths)
    check = invoke("data", "check", "--dataset", "synthetic", "--data-root", str(out), *SMALL)
    assert check.exit_code == 0 and "3 of 3 scenes usable." in check.stdout

    assert invoke(*args).exit_code == 0  # the same dataset again: allowed
    other = invoke("data", "synth", "--out", str(out), "--n-scenes", "2", "--size", "16")
    assert other.exit_code == 2 and "is not empty" in other.stderr and "--force" in other.stderr
    assert (out / "synth_02.npy").is_file()  # nothing touched
    forced = invoke("data", "synth", "--out", str(out), "--n-scenes", "2", "--size", "16", "--force")
    assert forced.exit_code == 0
    assert sorted(p.name for p in out.iterdir()) == sorted([MANIFEST_NAME, "synth_00.npy", "synth_01.npy"])
    assert open_dataset("synthetic", out).load("synth_00").cube.tobytes() == \
        make_synthetic_scenes(n_scenes=1, size=16, seed=0)[0].cube.tobytes()


def test_synth_refuses_a_foreign_folder_and_bad_arguments(tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    refused = invoke("data", "synth", "--out", str(tmp_path), "--n-scenes", "1", "--size", "16")
    assert refused.exit_code == 2 and "holds other files" in refused.stderr
    forced = invoke("data", "synth", "--out", str(tmp_path), "--n-scenes", "1", "--size", "16", "--force")
    assert forced.exit_code == 0 and (tmp_path / "mine.txt").read_text() == "keep me"
    bad = invoke("data", "synth", "--out", str(tmp_path / "new"), "--size", "0")
    assert bad.exit_code == 2 and "size must be an integer >= 8" in bad.stderr
