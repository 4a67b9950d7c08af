"""Evaluation of a cell: test regions, LR, output crops, metrics, the run folder, skip/force, train->evaluate."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from hsisr_bench import config, results
from hsisr_bench.data.imresize import imresize
from hsisr_bench.engine.evaluate import modcrop, open_cell_data, eval_image
from hsisr_bench.engine.plan import Cell
from hsisr_bench.engine.runner import run_cell as run_planned_cell
from hsisr_bench.errors import ResultsError
from hsisr_bench.metrics import psnr, ssim

from conftest import TINY_SYNTHETIC

TINY_EDSR = ("method.edsr.options.n_resblocks=1", "method.edsr.options.n_feats=8")


def _run(methods: str, *overrides: str, scale: int = 2):
    return config.plan_runs(methods=methods, datasets=["synthetic"], scales=[scale], profile="smoke", device="cpu",
                            overrides=[*TINY_SYNTHETIC, *TINY_EDSR, *overrides])


def run_cell(run, out_dir, **options):
    """One cell on CPU, as planning would hand it to the engine."""
    return run_planned_cell(Cell(run, out_dir), **options)


def test_region_is_top_left_modcropped_and_degraded_with_imresize():
    cube = np.random.default_rng(0).random((4, 40, 50), dtype=np.float32)
    image = eval_image(cube, "a", region=32, scale=3)
    assert image.hr.shape == (4, 30, 30) and np.array_equal(image.hr, cube[:, :30, :30])
    # degraded in float64 (as MATLAB on double images), then stored as float32
    np.testing.assert_array_equal(image.lr, imresize(image.hr.astype(np.float64), 1 / 3).astype(np.float32))
    assert modcrop(cube, 4).shape == (4, 40, 48)


def test_bicubic_cell_writes_the_documented_run_folder(tmp_path):
    run = _run("bicubic")[0]
    outcome = run_cell(run, tmp_path, progress=False, notify=lambda m: None)
    folder = tmp_path / "synthetic" / "x2" / "bicubic" / "seed0"
    assert outcome.status == "finished" and outcome.directory == folder
    metrics = json.loads((folder / "metrics.json").read_text())
    for key in ("run_id", "method", "variant", "title", "dataset", "scale", "seed", "protocol", "conventions",
                "output_crop", "params", "train_seconds", "infer_seconds", "n_test_scenes", "mean", "per_image",
                "finished", "version", "experiment", "options", "loss", "profile"):
        assert key in metrics, key
    saved = json.loads((folder / "config.json").read_text())
    for key in ("method", "variant", "options", "dataset", "scale", "seed", "protocol", "split", "run_id", "version",
                "experiment", "loss", "profile"):
        assert key in saved, key
    assert saved["run_id"] == metrics["run_id"] == results.compute_run_id(saved)
    # the score is the independent computation: top-left region -> LR -> bicubic -> clip -> metrics
    data = open_cell_data(run)
    assert metrics["n_test_scenes"] == len(data.test) == 1
    scene = data.dataset.load(data.test[0])
    hr = scene.cube[:, :32, :32]
    sr = np.clip(imresize(imresize(hr.astype(np.float64), 0.5).astype(np.float32), 2), 0, 1)  # LR in float64, stored float32
    row = metrics["per_image"][0]
    assert row["scene"] == scene.name
    assert row["psnr"] == pytest.approx(psnr(sr, hr), abs=1e-6)
    assert row["ssim"] == pytest.approx(ssim(sr, hr), abs=1e-6)
    assert len(row["psnr_per_band"]) == 31
    prediction = np.load(folder / "predictions" / f"{scene.name}.npy")
    assert prediction.dtype == np.float16 and prediction.shape == (31, 32, 32)
    np.testing.assert_array_equal(prediction, sr.astype(np.float16))
    np.testing.assert_array_equal(np.load(tmp_path / "synthetic" / "x2" / "targets" / f"{scene.name}.npy"),
                                  hr.astype(np.float16))
    with open(folder / "per_image.csv") as handle:
        assert next(csv.reader(handle)) == ["scene", "psnr", "ssim", "sam", "ergas", "rmse", "cc", "mpsnr"]
    assert [r["method"] for r in results.scan_results(tmp_path)] == ["bicubic"]


def test_finished_runs_are_skipped_unless_forced(tmp_path):
    run = _run("bicubic")[0]
    first = run_cell(run, tmp_path, progress=False, notify=lambda m: None)
    stamp = (first.directory / "metrics.json").stat().st_mtime_ns
    assert run_cell(run, tmp_path, progress=False, notify=lambda m: None).status == "skipped"
    assert (first.directory / "metrics.json").stat().st_mtime_ns == stamp
    assert run_cell(run, tmp_path, force=True, progress=False, notify=lambda m: None).status == "finished"


def test_fcnn3d_is_scored_on_its_cropped_output_and_full_on_the_full_variant(tmp_path):
    valid, full = _run("fcnn3d,fcnn3d+full")
    scored = run_cell(valid, tmp_path, progress=False, notify=lambda m: None).metrics
    assert scored["output_crop"] == {"bands": 4, "pixels": 6}
    scene = scored["per_image"][0]["scene"]
    assert np.load(tmp_path / "synthetic/x2/fcnn3d/seed0/predictions" / f"{scene}.npy").shape == (23, 20, 20)
    assert len(scored["per_image"][0]["psnr_per_band"]) == 23
    padded = run_cell(full, tmp_path, progress=False, notify=lambda m: None).metrics
    assert padded["output_crop"] == {"bands": 0, "pixels": 0}
    assert np.load(tmp_path / "synthetic/x2/fcnn3d+full/seed0/predictions" / f"{scene}.npy").shape == (31, 32, 32)


def test_train_then_evaluate_equals_run(tmp_path):
    run = _run("edsr")[0]
    with pytest.raises(ResultsError, match="no completed training"):
        run_cell(run, tmp_path / "split", mode="evaluate", progress=False, notify=lambda m: None)
    assert run_cell(run, tmp_path / "split", mode="train", progress=False, notify=lambda m: None).status == "trained"
    assert not (tmp_path / "split/synthetic/x2/edsr/seed0/metrics.json").exists()
    two_steps = run_cell(run, tmp_path / "split", mode="evaluate", progress=False, notify=lambda m: None).metrics
    one_go = run_cell(run, tmp_path / "whole", progress=False, notify=lambda m: None).metrics
    assert two_steps["per_image"] == one_go["per_image"]
    assert two_steps["params"] == one_go["params"] > 0 and two_steps["epochs"] == 1


def test_validation_scenes_come_from_the_training_scenes(tmp_path):
    run = _run("edsr", "protocol.val_scenes=1", "protocol.epochs=2")[0]
    data = open_cell_data(run)
    assert len(data.val) == 1 and not set(data.val) & set(data.test) and not set(data.val) & set(data.train)
    outcome = run_cell(run, tmp_path, progress=False, notify=lambda m: None)
    log = (outcome.directory / "train_log.csv").read_text().splitlines()
    assert log[0] == "epoch,loss,lr,seconds,val_psnr" and len(log) == 3
    assert all(np.isfinite(float(line.split(",")[-1])) for line in log[1:])
    saved = json.loads((outcome.directory / "config.json").read_text())
    assert saved["split"]["val"] == data.val


def test_device_auto_falls_back_to_cpu_and_missing_cuda_is_an_error(monkeypatch):
    import torch

    from hsisr_bench.engine.distributed import resolve_device
    from hsisr_bench.errors import ConfigError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto", env={}) == "cpu"
    with pytest.raises(ConfigError, match="CUDA is not available"):
        resolve_device("cuda", env={})


def test_metrics_record_the_numeric_environment_and_fp32_scoring(tmp_path):
    run = _run("bicubic")[0]
    metrics = run_cell(run, tmp_path, progress=False, notify=lambda m: None).metrics
    runtime = metrics["runtime"]
    assert runtime["device"] == "cpu" and runtime["eval_precision"] == "fp32" and runtime["torch"]
    assert runtime["threads"] >= 1 and runtime["device_name"]


def test_a_bf16_training_is_scored_in_fp32_unless_eval_amp_is_asked_for(tmp_path):
    from hsisr_bench.engine.environment import cpu_supports_bf16

    if not cpu_supports_bf16():
        pytest.skip("this CPU has no bf16 support (CPU bf16 autocast is refused there)")
    trained = run_cell(_run("edsr", "amp=\"bf16\"")[0], tmp_path / "fp32", progress=False, notify=lambda m: None)
    runtime = trained.metrics["runtime"]
    assert runtime["train_precision"] == "bf16" and runtime["eval_precision"] == "fp32"
    amp_scored = run_cell(_run("edsr", "amp=\"bf16\"", "eval_amp=true")[0], tmp_path / "amp", progress=False,
                          notify=lambda m: None)
    assert amp_scored.metrics["runtime"]["eval_precision"] == "bf16"
    assert amp_scored.metrics["run_id"] != trained.metrics["run_id"]  # an AMP-scored run is another run
    # the same weights (same seed, same bf16 training): only the scoring precision differs
    assert amp_scored.metrics["mean"]["psnr"] != trained.metrics["mean"]["psnr"]
