"""``hsibench run --dry-run``: the whole plan without the hardware or the data, and what is missing."""

from __future__ import annotations

import json

import torch
from click.testing import CliRunner

from hsisr_bench.cli import main


def test_dry_run_of_table5_on_cuda_without_gpu_or_data_lists_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    report = tmp_path / "doctor.json"
    report.write_text(json.dumps({"device": "cuda:0", "date": "2026-12-07", "step_seconds": [
        {"method": "ssrnet", "amp": "none", "batch": 16, "lr_patch": 32, "scale": 2, "seconds": 0.1}]}))
    result = CliRunner().invoke(main, ["run", "--experiment", "table5", "--profile", "paper", "--device", "cuda",
                                       "--data-root", str(tmp_path / "data"), "--dry-run", "--shard", "1/2",
                                       "--doctor-report", str(report), "--out", str(tmp_path / "results")])
    assert result.exit_code == 0, result.output
    assert "Plan: 45 cell(s)" in result.output and "device cuda (not available here)" in result.output
    assert "26/0/6 (canonical split)" in result.output  # CAVE from its split file
    assert "9360 patches, 200 epochs x 585 steps of 16" in result.output and "117,000" in result.output
    assert "3.2 h" in result.output  # 117,000 steps x 0.1 s at x2 (SSRNet CAVE x2)
    assert ">= 3.2 h" in result.output  # x3/x4 from the x2 step
    assert "Shard 1/2 (marked *): 23 of the 45 cells." in result.output
    assert "Missing (4):" in result.output
    for item in ("device: --device cuda", "dataset cave:", "dataset harvard:", "dataset foster:"):
        assert item in result.output
    assert not (tmp_path / "results").exists()


def test_dry_run_rejects_a_bad_doctor_report(tmp_path):
    result = CliRunner().invoke(main, ["run", "--methods", "edsr", "--dataset", "synthetic", "--scale", "2", "--dry-run",
                                       "--profile", "smoke", "--doctor-report", str(tmp_path / "none.json")])
    assert result.exit_code == 2 and "no doctor report" in result.output
