"""Released weights: ``hsibench export-weights`` and :func:`hsisr_bench.external.load_weights`.

One EDSR run trained for one smoke epoch on tiny synthetic data serves every test.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from hsisr_bench.cli import main
from hsisr_bench.errors import DataError, MethodError
from hsisr_bench.external import load_weights, open_testset, read_weights

TINY = ("dataset.n_scenes=4", "dataset.size=40")
CELL = ["--dataset", "synthetic", "--scale", "2", "--profile", "smoke", "--set", TINY[0], "--set", TINY[1]]


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("weights")
    out = root / "results"
    result = invoke("run", "--methods", "bicubic,edsr", *CELL, "--out", str(out), "--no-progress")
    assert result.exit_code == 0, result.output
    run_dir = out / "synthetic/x2/edsr/seed0"
    exported = invoke("export-weights", str(run_dir), "--to", str(root / "edsr_x2.pt"))
    assert exported.exit_code == 0, exported.output
    return {"root": root, "out": out, "run_dir": run_dir, "file": root / "edsr_x2.pt"}


def test_export_writes_weights_and_a_manifest_entry_with_the_sha256(trained):
    file = trained["file"]
    entry = json.loads(file.with_suffix(".json").read_text())
    assert entry["sha256"] == hashlib.sha256(file.read_bytes()).hexdigest()
    config = json.loads((trained["run_dir"] / "config.json").read_text())
    for key in ("method", "options", "dataset", "scale", "split", "protocol", "run_id"):
        assert entry[key] == config[key], key
    assert entry["bands"] == 31 and entry["metrics"]["mean"]["psnr"] > 0
    # Smaller than the checkpoint: no optimiser state, RNG states or log.
    assert file.stat().st_size < (trained["run_dir"] / "checkpoint.pt").stat().st_size


@pytest.mark.parametrize("source", ["weights", "checkpoint"])
def test_loaded_weights_reproduce_the_runs_predictions(trained, source):
    from hsisr_bench.engine.evaluate import predict
    from hsisr_bench.registry import get_method_info

    path = trained["file"] if source == "weights" else trained["run_dir"] / "checkpoint.pt"
    model, weights = load_weights(path, method="edsr", scale=2, bands=31)
    assert weights.kind == source and weights.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    testset = open_testset("synthetic", 2, profile="smoke", overrides=TINY)
    for image in testset.images:
        sr = predict(model, get_method_info("edsr"), image.lr, scale=2, mean=weights.band_mean, device="cpu")
        stored = np.load(trained["run_dir"] / "predictions" / f"{image.name}.npy").astype(np.float32)
        np.testing.assert_allclose(sr, stored, atol=1e-3)  # predictions are stored as float16


def test_weights_for_another_method_or_scale_are_refused_naming_both(trained):
    with pytest.raises(MethodError, match=r"method 'edsr'.*not 'ssrnet'"):
        load_weights(trained["file"], method="ssrnet", scale=2, bands=31)
    with pytest.raises(MethodError, match=r"trained at x2, not x3"):
        load_weights(trained["file"], method="edsr", scale=3, bands=31)
    with pytest.raises(MethodError, match=r"other options.*n_resblocks"):
        load_weights(trained["file"], method="edsr", scale=2, bands=31, options={"n_resblocks": 4})
    with pytest.raises(MethodError, match="no parameters"):
        load_weights(trained["file"], method="bicubic", scale=2, bands=31)


def test_plain_state_dict_needs_a_band_mean_and_must_fit(trained, tmp_path):
    weights = read_weights(trained["file"])
    plain = tmp_path / "plain.pt"
    torch.save({f"module.{k}": v for k, v in weights.state_dict.items()}, plain)  # as DataParallel saves it
    with pytest.raises(DataError, match="band mean"):
        load_weights(plain, method="edsr", scale=2, bands=31)
    np.save(tmp_path / "mean.npy", weights.band_mean)
    model, loaded = load_weights(plain, method="edsr", scale=2, bands=31, band_mean=tmp_path / "mean.npy")
    assert loaded.kind == "state_dict"
    np.testing.assert_array_equal(loaded.band_mean, weights.band_mean)
    for key, value in model.state_dict().items():
        assert torch.equal(value, weights.state_dict[key])
    with pytest.raises(MethodError, match="does not fit ssrnet at x2.*missing"):
        load_weights(plain, method="ssrnet", scale=2, bands=31, band_mean=weights.band_mean)
    with pytest.raises(DataError, match="has 31 values; the dataset has 33"):
        load_weights(plain, method="edsr", scale=2, bands=33, band_mean=weights.band_mean)


def test_unreadable_or_missing_files_are_clear_errors(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(DataError, match="Cannot read the weights file"):
        read_weights(bad)
    with pytest.raises(DataError, match="does not exist"):
        read_weights(tmp_path / "absent.pt")


def test_export_weights_refuses_untrained_runs_and_overwrites(trained, tmp_path):
    before = trained["file"].read_bytes()
    again = invoke("export-weights", str(trained["run_dir"]), "--to", str(trained["file"]))
    assert again.exit_code == 2 and "exists" in again.output and "--force" in again.output
    assert trained["file"].read_bytes() == before
    bicubic = invoke("export-weights", str(trained["out"] / "synthetic/x2/bicubic/seed0"), "--to",
                     str(tmp_path / "b.pt"))
    assert bicubic.exit_code == 2 and "no checkpoint.pt" in bicubic.output
    assert not (tmp_path / "b.pt").exists()
    nothing = invoke("export-weights", str(tmp_path), "--to", str(tmp_path / "c.pt"))
    assert nothing.exit_code == 2 and "not a run folder" in nothing.output


# ------------------------------------------------------------------- crafted files (issue 16, items 8, 16, 17)


def _crafted(trained, tmp_path, change) -> Path:
    payload = torch.load(trained["file"], map_location="cpu", weights_only=True)
    change(payload)
    path = tmp_path / "crafted.pt"
    torch.save(payload, path)
    return path


def _first_weight(payload) -> str:
    return next(k for k, v in payload["model"].items() if v.is_floating_point() and v.ndim > 1)


@pytest.mark.parametrize("case, words", [
    ("int16", "tensors of another type"), ("complex", "tensors of another type"),
])
def test_weights_of_another_tensor_type_are_refused_not_cast(trained, tmp_path, case, words):
    def change(payload):
        key = _first_weight(payload)
        value = payload["model"][key]
        payload["model"][key] = (value * 100).to(torch.int16) if case == "int16" else value.to(torch.complex64) + 1j
    path = _crafted(trained, tmp_path, change)
    with pytest.raises(MethodError, match=words):
        load_weights(path, method="edsr", scale=2, bands=31)
    half = _crafted(trained, tmp_path, lambda p: p["model"].update({k: v.half() for k, v in p["model"].items()
                                                                      if v.is_floating_point()}))
    load_weights(half, method="edsr", scale=2, bands=31)  # a float16 release still loads


@pytest.mark.parametrize("change, words", [
    (lambda p: p.update(band_mean="abc"), "'band_mean' must be one finite number per band"),
    (lambda p: p.update(band_mean=torch.full((31,), float("nan"))), "31 values, 31 NaN or infinite"),
    (lambda p: p["manifest"].update(scale="two"), "manifest field 'scale' is 'two'"),
    (lambda p: p["manifest"].update(scale=[2]), "manifest field 'scale' is \\[2\\]"),
    (lambda p: p["manifest"].update(options=[1]), "manifest field 'options'"),
    (lambda p: p["manifest"]["split"].update(train="synth_00"), "split.train"),
])
def test_crafted_weights_files_are_clear_errors_naming_the_file(trained, tmp_path, change, words):
    path = _crafted(trained, tmp_path, change)
    with pytest.raises(DataError, match=words):
        read_weights(path)
    result = CliRunner().invoke(main, ["evaluate", "--method", "edsr", *CELL, "--weights", str(path),
                                       "--out", str(tmp_path / "res"), "--no-progress"])
    assert result.exit_code == 2 and "Error: " in result.output and "crafted.pt" in result.output, result.output
    assert "Traceback" not in result.output and "model output" not in result.output


# ------------------------------------------------- issue 16: train/test overlap (item 6), --force advice (item 17)


def _swapped_split(trained, tmp_path) -> tuple[Path, list[str]]:
    """A split file whose test scenes are the weights' training scenes."""
    from hsisr_bench.data.splits import make_split

    split = json.loads((trained["run_dir"] / "config.json").read_text())["split"]
    train, test = list(split["train"]), list(split["test"])
    path = make_split(train + test, train_fraction=0.5, seed=0, dataset="synthetic").save(tmp_path / "split.json")
    data = json.loads(path.read_text())
    data["train"], data["test"] = test, train
    path.write_text(json.dumps(data))
    return path, train


def test_evaluate_weights_refuses_scenes_they_were_trained_on_unless_allowed(trained, tmp_path):
    split, overlap = _swapped_split(trained, tmp_path)
    out = tmp_path / "res"
    args = ["evaluate", "--method", "edsr", *CELL, "--weights", str(trained["file"]), "--out", str(out),
            "--no-progress", "--split-file", str(split)]
    refused = CliRunner().invoke(main, args)
    assert refused.exit_code == 2 and "Error: " in refused.output, refused.output
    assert "--allow-train-overlap" in refused.output and all(name in refused.output for name in overlap)
    assert not list(out.rglob("metrics.json"))
    allowed = invoke(*args, "--allow-train-overlap")
    assert allowed.exit_code == 0, allowed.output
    record = json.loads(next(out.rglob("metrics.json")).read_text())
    assert record["weights"]["train_overlap"] == [n for n in record["split"]["test"] if n in overlap] and overlap
    report = invoke("report", "--results", str(out), "--out", str(tmp_path / "rep"), "--no-published")
    assert report.exit_code == 0, report.output
    for file in ("report.md", "table5.tex", "table5.csv"):
        assert "train/test overlap" in (tmp_path / "rep" / file).read_text(), file
    # Weights trained elsewhere (the canonical split: no test scene was a training scene) need no option.
    clean = invoke("evaluate", "--method", "edsr", *CELL, "--weights", str(trained["file"]),
                   "--out", str(tmp_path / "res2"), "--no-progress")
    assert clean.exit_code == 0, clean.output
    assert json.loads(next((tmp_path / "res2").rglob("metrics.json")).read_text())["weights"]["train_overlap"] == []


def test_evaluate_force_over_other_weights_does_not_advise_force(trained, tmp_path):
    out = tmp_path / "res"
    base = ["evaluate", "--method", "edsr", *CELL, "--out", str(out), "--no-progress"]
    assert invoke(*base, "--weights", str(trained["file"])).exit_code == 0
    other = _crafted(trained, tmp_path, lambda p: p["manifest"].update(note="another release"))
    result = CliRunner().invoke(main, [*base, "--weights", str(other), "--force"])
    assert result.exit_code == 2, result.output
    assert "Rerun with --force" not in result.output and "re-scores the same run only" in result.output
    assert "--out" in result.output
