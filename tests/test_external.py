"""``hsibench export-testset`` and ``hsibench score``: the exported inputs are the harness's, outside
predictions are checked before anything is written, and a scored run sits in the report beside trained ones.

Tiny synthetic data (8 scenes of 40 x 40, 2 test scenes) under the smoke profile (32 x 32 test regions).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from click.testing import CliRunner

from hsisr_bench.cli import main
from hsisr_bench.data.imresize import imresize
from hsisr_bench.external import array_sha256, open_testset, to_lhw

CELL = ["--dataset", "synthetic", "--scale", "2", "--profile", "smoke",
        "--set", "dataset.n_scenes=8", "--set", "dataset.size=40"]
TINY = ("dataset.n_scenes=8", "dataset.size=40")


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def snapshot(folder: Path) -> dict:
    """Every file under ``folder`` with the sha256 of its bytes."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def testset():
    return open_testset("synthetic", 2, profile="smoke", overrides=TINY)


@pytest.fixture(scope="module")
def exported(tmp_path_factory, testset) -> Path:
    folder = tmp_path_factory.mktemp("export") / "testset"
    result = invoke("export-testset", *CELL, "--to", str(folder))
    assert result.exit_code == 0, result.output
    return folder


def bicubic_from_export(exported: Path, name: str) -> np.ndarray:
    """What an outside program would do: read the exported LR (H x W x L) and upsample it, H x W x L."""
    lr = scipy.io.loadmat(str(exported / f"{name}.mat"))["LR"]
    return np.asarray(imresize(lr.transpose(2, 0, 1).astype(np.float64), 2.0), dtype=np.float32).transpose(1, 2, 0)


@pytest.fixture(scope="module")
def scored(tmp_path_factory, exported, testset) -> dict:
    """A results folder with a bicubic run and the same method scored from outside predictions (.mat, H x W x L)."""
    root = tmp_path_factory.mktemp("scored")
    out, pred = root / "results", root / "pred"
    pred.mkdir()
    for name in testset.names:
        scipy.io.savemat(str(pred / f"{name}.mat"), {"SR": bicubic_from_export(exported, name)})
    ran = invoke("run", "--methods", "bicubic", *CELL, "--out", str(out), "--no-progress")
    assert ran.exit_code == 0, ran.output
    result = invoke("score", "--pred", str(pred), *CELL, "--name", "bicubic-outside", "--out", str(out))
    assert result.exit_code == 0, result.output
    return {"out": out, "pred": pred, "output": result.output}


def test_export_writes_exactly_what_the_harness_scores(exported, testset):
    manifest = json.loads((exported / "manifest.json").read_text())
    assert [s["name"] for s in manifest["scenes"]] == testset.names and len(testset.names) == 2
    assert manifest["split"]["test"] == testset.names and manifest["test_region"] == 32
    assert manifest["conventions"]["psnr_reduction"] == "cube" and manifest["toolkit_version"]
    for scene, image in zip(manifest["scenes"], testset.images):
        mat = scipy.io.loadmat(str(exported / scene["files"]["mat"]))
        # MATLAB layout H x W x L, as the authors' test files.
        np.testing.assert_array_equal(mat["HR"], image.hr.transpose(1, 2, 0))
        np.testing.assert_array_equal(mat["LR"], image.lr.transpose(1, 2, 0))
        hr, lr = np.load(exported / scene["files"]["hr_npy"]), np.load(exported / scene["files"]["lr_npy"])
        np.testing.assert_array_equal(hr, image.hr)
        assert hr.shape == (31, 32, 32) and lr.shape == (31, 16, 16)
        assert scene["sha256"]["HR"] == hashlib.sha256(hr.tobytes()).hexdigest() == array_sha256(image.hr)
        assert scene["sha256"]["LR"] == hashlib.sha256(lr.tobytes()).hexdigest()
    assert "dataset.n_scenes=8" in manifest["score_with"]


def test_export_refuses_a_folder_with_files(exported):
    result = invoke("export-testset", *CELL, "--to", str(exported))
    assert result.exit_code == 2 and "not empty" in result.output and "--force" in result.output


def test_outside_bicubic_scores_as_the_harness_bicubic(scored):
    out = scored["out"]
    ours = json.loads((out / "synthetic/x2/bicubic/seed0/metrics.json").read_text())
    theirs = json.loads((out / "synthetic/x2/bicubic-outside/seed0/metrics.json").read_text())
    for metric in ("psnr", "ssim", "sam", "ergas"):
        assert theirs["mean"][metric] == pytest.approx(ours["mean"][metric], abs=1e-4)
    assert theirs["external"] is True and theirs["method"] == "bicubic-outside" and theirs["params"] is None
    assert theirs["conventions"] == ours["conventions"] and theirs["finished"] is True
    assert set(theirs) >= set(ours)  # the schema of a trained run's metrics.json (engine/evaluate.py)
    assert [r["scene"] for r in theirs["per_image"]] == [r["scene"] for r in ours["per_image"]]
    preds = theirs["predictions"]
    assert all(len(p["sha256"]) == 64 and p["layout"] == "hwl" for p in preds.values())


def test_report_lists_the_outside_method_beside_the_trained_one(scored, tmp_path):
    result = invoke("report", "--results", str(scored["out"]), "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    table = (tmp_path / "report.md").read_text()
    row = next(line for line in table.splitlines() if line.startswith("| Synthetic"))
    assert "bicubic-outside" in table and "Bicubic" in table
    assert row.count("/") >= 4  # both cells filled: PSNR / SSIM / SAM twice


def test_scoring_the_same_predictions_again_is_a_no_op(scored):
    before = snapshot(scored["out"])
    result = invoke("score", "--pred", str(scored["pred"]), *CELL, "--name", "bicubic-outside",
                    "--out", str(scored["out"]))
    assert result.exit_code == 0 and "Already scored" in result.output
    assert snapshot(scored["out"]) == before


@pytest.mark.parametrize("suffix", [".npy", ".h5", ".mat73"])
def test_reads_npy_h5_and_matlab_v73(tmp_path, exported, testset, scored, suffix):
    import h5py

    pred = tmp_path / "pred"
    pred.mkdir()
    for name in testset.names:
        hwl = bicubic_from_export(exported, name)
        if suffix == ".npy":
            np.save(pred / f"{name}.npy", hwl.transpose(2, 0, 1))  # (L, H, W)
        elif suffix == ".h5":
            with h5py.File(pred / f"{name}.h5", "w") as f:
                f["LR"] = np.zeros((31, 16, 16), np.float32)  # another 3-D array: the one named SR is taken
                f["SR"] = hwl.transpose(2, 0, 1)
        else:  # MATLAB -v7.3: HDF5 after a 512-byte header, arrays stored column-major (axes reversed)
            with h5py.File(pred / f"{name}.mat", "w", userblock_size=512) as f:
                f["cube"] = hwl.T
    result = invoke("score", "--pred", str(pred), *CELL, "--name", "fmt", "--out", str(tmp_path / "res"))
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "res/synthetic/x2/fmt/seed0/metrics.json").read_text())
    ours = json.loads((scored["out"] / "synthetic/x2/bicubic/seed0/metrics.json").read_text())
    assert record["mean"]["psnr"] == pytest.approx(ours["mean"]["psnr"], abs=1e-4)  # read in the right order
    assert {p["layout"] for p in record["predictions"].values()} == {"hwl" if suffix == ".mat73" else "lhw"}


def _write(pred: Path, testset, exported, change=None) -> None:
    pred.mkdir()
    for name in testset.names:
        cube = bicubic_from_export(exported, name)
        if change is not None:
            cube = change(name, cube)
        if cube is not None:
            np.save(pred / f"{name}.npy", cube)


BAD = {
    "missing": (lambda n, c: None if n.endswith("7") else c, [], ["missing 1 of 2", "synth_07"]),
    "extra": (None, ["extra"], ["not in the test set", "synth_99"]),
    "shape": (lambda n, c: c[:-2], [], ["has shape 30x32x31", "31x32x32"]),
    "layout": (None, ["--layout", "lhw"], ["not --layout lhw", "looks like --layout hwl"]),
    "nan": (lambda n, c: np.where(c > 0.5, np.nan, c), [], ["NaN"]),
    "8-bit": (lambda n, c: c * 255, [], ["8-bit", "divide by 255"]),
    "16-bit": (lambda n, c: c * 65535, [], ["16-bit", "divide by 65535"]),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_predictions_are_refused_and_nothing_changes(scored, exported, testset, tmp_path, case):
    change, extra_args, words = BAD[case]
    pred = tmp_path / "pred"
    _write(pred, testset, exported, change)
    if case == "extra":
        np.save(pred / "synth_99.npy", np.zeros((32, 32, 31), np.float32))
        extra_args = []
    before = snapshot(scored["out"])
    result = invoke("score", "--pred", str(pred), *CELL, "--name", f"bad-{case}", "--out", str(scored["out"]),
                    *extra_args)
    assert result.exit_code == 2, result.output
    assert result.output.startswith("Error: ") and "Traceback" not in result.output
    for word in words:
        assert word in result.output, result.output
    assert snapshot(scored["out"]) == before
    assert not (scored["out"] / "synthetic/x2" / f"bad-{case}").exists()


def test_small_excursions_are_clipped_as_the_harness_clips(scored, exported, testset, tmp_path):
    pred = tmp_path / "pred"
    _write(pred, testset, exported, lambda n, c: c + 0.2)  # up to 1.2: inside the slack
    result = invoke("score", "--pred", str(pred), *CELL, "--name", "shifted", "--out", str(tmp_path / "res"))
    assert result.exit_code == 0, result.output
    stored = np.load(tmp_path / "res/synthetic/x2/shifted/seed0/predictions" / f"{testset.names[0]}.npy")
    assert float(stored.max()) <= 1.0


def test_layout_auto_refuses_a_cube_with_as_many_bands_as_pixels():
    with pytest.raises(Exception, match="cannot be detected"):
        to_lhw(np.zeros((8, 8, 8), np.float32), (8, 8, 8), "auto", "x.npy")
    assert to_lhw(np.arange(512, dtype=np.float32).reshape(8, 8, 8), (8, 8, 8), "hwl", "x.npy")[1, 2, 3] == 2 * 64 + 3 * 8 + 1


@pytest.mark.parametrize("name, words", [("bicubic", "registered method"), ("../up", "letters, digits")])
def test_names_that_would_clash_or_escape_are_refused(scored, name, words):
    before = snapshot(scored["out"])
    result = invoke("score", "--pred", str(scored["pred"]), *CELL, "--name", name, "--out", str(scored["out"]))
    assert result.exit_code == 2 and words in result.output, result.output
    assert snapshot(scored["out"]) == before


def test_other_predictions_under_a_used_name_need_force(scored, exported, testset, tmp_path):
    pred = tmp_path / "pred"
    _write(pred, testset, exported, lambda n, c: c * 0.9)
    before = snapshot(scored["out"])
    args = ["score", "--pred", str(pred), *CELL, "--name", "bicubic-outside", "--out", str(scored["out"])]
    result = invoke(*args)
    assert result.exit_code == 2 and "--force" in result.output, result.output
    assert snapshot(scored["out"]) == before


# ------------------------------------------------------------- issue 16: dtypes (items 7, 16) and item 4


@pytest.mark.parametrize("kind", ["complex", "bool", "datetime", "string", "record"])
def test_predictions_that_are_not_real_numbers_are_refused(scored, exported, testset, tmp_path, kind):
    convert = {
        "complex": lambda c: c + 5j,
        "bool": lambda c: c > 0.5,
        "datetime": lambda c: c.astype("int64").astype("datetime64[s]"),
        "string": lambda c: c.astype("U8"),
        "record": lambda c: np.rec.fromarrays([c, c]).view(np.dtype([("a", "<f4"), ("b", "<f4")])),
    }[kind]
    pred = tmp_path / "pred"
    pred.mkdir()
    for name in testset.names:
        cube = bicubic_from_export(exported, name)
        np.save(pred / f"{name}.npy", convert(cube).reshape(cube.shape) if kind != "record" else
                np.rec.fromarrays([cube, cube], names="a,b"))
    before = snapshot(scored["out"])
    result = invoke("score", "--pred", str(pred), *CELL, "--name", f"dtype-{kind}", "--out", str(scored["out"]))
    assert result.exit_code == 2, result.output
    assert result.output.startswith("Error: ") and "real floating-point or integer" in result.output, result.output
    assert snapshot(scored["out"]) == before


def test_score_force_never_replaces_a_run_it_did_not_write(scored, tmp_path):
    out = tmp_path / "res"
    run = out / "synthetic/x2/myplugin/seed0"  # a trained run of a plugin method that is not loaded now
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"method": "myplugin", "run_id": "abc", "version": "x"}))
    (run / "checkpoint.pt").write_bytes(b"weights")
    (run / "train_log.csv").write_text("epoch,loss\n1,0.5\n")
    before = snapshot(out)
    args = ["score", "--pred", str(scored["pred"]), *CELL, "--name", "myplugin", "--out", str(out), "--force"]
    result = invoke(*args)
    assert result.exit_code == 2 and str(run) in result.output and "did not write" in result.output, result.output
    assert snapshot(out) == before
    # An earlier scoring (marked external) is still replaced under --force.
    first = invoke("score", "--pred", str(scored["pred"]), *CELL, "--name", "again", "--out", str(out))
    assert first.exit_code == 0, first.output
    again = invoke("score", "--pred", str(scored["pred"]), *CELL, "--name", "again", "--out", str(out), "--force")
    assert again.exit_code == 0 and "Scored" in again.output, again.output
