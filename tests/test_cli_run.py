"""``hsibench run | train | evaluate`` end to end with click's CliRunner, and every bad input (exit code 2)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from hsisr_bench.cli import main

from conftest import SHARED_DATA

SMOKE = ["--profile", "smoke", "--device", "cpu", "--no-progress", "--set", "dataset.n_scenes=4 dataset.size=48",
         "--set", "method.edsr.options.n_resblocks=1", "--set", "method.edsr.options.n_feats=8"]


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def _snapshot(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_run_end_to_end_prints_the_summary_and_skips_finished_runs(tmp_path):
    out = tmp_path / "results"
    result = invoke("run", "--methods", "bicubic,edsr", "--dataset", "synthetic", "--scale", "2", "--out", out, *SMOKE)
    assert result.exit_code == 0, result.output
    assert "Bicubic" in result.output and "EDSR" in result.output and "Synthetic" in result.output
    for method in ("bicubic", "edsr"):
        metrics = json.loads((out / "synthetic/x2" / method / "seed0/metrics.json").read_text())
        assert metrics["finished"] and metrics["profile"] == "smoke"
    again = invoke("run", "--methods", "bicubic,edsr", "--dataset", "synthetic", "--scale", "2", "--out", out, *SMOKE)
    assert again.exit_code == 0 and again.output.count("already finished") == 2


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path):
    out = tmp_path / "results"
    result = invoke("run", "--experiment", "table2_ablation", "--dataset", "synthetic", "--dry-run", "--out", out,
                    "--profile", "paper")
    assert result.exit_code == 0, result.output
    assert "Plan: 4 cell(s)" in result.output and "ssrnet+nolff_nogrl" in result.output
    assert "10/0/2" in result.output  # train/val/test scenes of the 12 synthetic scenes
    # 10 scenes x 3 rescales x 24 patches x 5 copies; 3600 // 16 = 225 steps per epoch
    assert "3600 patches, 200 epochs x 225 steps of 16" in result.output
    assert "Split note" in result.output
    assert not out.exists()


def test_train_then_evaluate_one_cell(tmp_path):
    out = tmp_path / "results"
    cell = ["--method", "edsr", "--dataset", "synthetic", "--scale", "2", "--out", out, *SMOKE]
    trained = invoke("train", *cell)
    assert trained.exit_code == 0, trained.output
    assert (out / "synthetic/x2/edsr/seed0/checkpoint.pt").is_file()
    assert not (out / "synthetic/x2/edsr/seed0/metrics.json").exists()
    evaluated = invoke("evaluate", *cell)
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads((out / "synthetic/x2/edsr/seed0/metrics.json").read_text())["finished"]


CELL = ["--methods", "bicubic", "--dataset", "synthetic", "--scale", "2"]


@pytest.mark.parametrize("args, message", [
    (["--methods", "ssrnett", "--dataset", "synthetic", "--scale", "2"], "Did you mean 'ssrnet'"),
    (["--methods", "bicubic", "--dataset", "synthetc", "--scale", "2"], "Did you mean 'synthetic'"),
    (CELL + ["--profile", "smok"], "Did you mean 'smoke'"),
    (["--experiment", "table5x", "--dataset", "synthetic"], "Did you mean 'table5'"),
    (["--methods", "bicubic", "--dataset", "synthetic", "--scale", "1"], "below 2"),
    (["--methods", "bicubic", "--dataset", "synthetic", "--scale", "2.5"], "not an integer"),
    (CELL + ["--set", "protocol.epoch=2"], "Did you mean 'protocol.epochs'"),
    (CELL + ["--set", "dataset.n_scenes=1"], "at least 2"),
    (["--methods", "bicubic", "--dataset", "cave", "--scale", "2", "--data-root", "/nonexistent/data"],
     "/nonexistent/data"),
])
def test_bad_input_is_an_error_with_exit_code_2(tmp_path, args, message):
    # the common options come first so that a later --profile in args wins
    result = invoke("run", "--profile", "smoke", "--device", "cpu", "--no-progress", *args,
                    "--out", tmp_path / "results")
    assert result.exit_code == 2, result.output
    assert "Error:" in result.output and message in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "results").exists()


def test_unwritable_output_folder_is_an_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    result = invoke("run", "--methods", "bicubic", "--dataset", "synthetic", "--scale", "2", "--out",
                    blocker / "results", *SMOKE)
    assert result.exit_code == 2 and "not writable" in result.output


def test_a_different_config_or_version_in_the_same_folder_is_an_error_and_leaves_it_untouched(tmp_path):
    out = tmp_path / "results"
    args = ["run", "--methods", "edsr", "--dataset", "synthetic", "--scale", "2", "--out", out, *SMOKE]
    assert invoke(*args).exit_code == 0
    before = _snapshot(out)
    clash = invoke(*args, "--set", "protocol.steps_per_epoch=3")
    assert clash.exit_code == 2
    assert "protocol.steps_per_epoch: 2 -> 3" in clash.output and "--force" in clash.output
    assert _snapshot(out) == before
    for name in ("config.json", "metrics.json"):
        path = out / "synthetic/x2/edsr/seed0" / name
        path.write_text(json.dumps({**json.loads(path.read_text()), "version": "0.0.0"}))
    before = _snapshot(out)
    old = invoke(*args)
    assert old.exit_code == 2 and "0.0.0" in old.output and "--out" in old.output
    assert _snapshot(out) == before
    forced = invoke(*args, "--force")
    assert forced.exit_code == 0, forced.output
    assert json.loads((out / "synthetic/x2/edsr/seed0/metrics.json").read_text())["version"] != "0.0.0"


@pytest.mark.skipif(not (SHARED_DATA / "CAVE").is_dir(), reason="real CAVE scenes not in ../shared/data")
def test_real_cave_scenes_with_bicubic_and_a_cheap_learned_method(tmp_path):
    out = tmp_path / "results"
    result = invoke("run", "--methods", "bicubic,fcnn3d", "--dataset", "cave", "--data-root", SHARED_DATA,
                    "--scale", "2", "--profile", "smoke", "--device", "cpu", "--no-progress", "--out", out)
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "cave/x2/bicubic/seed0/metrics.json").read_text())
    saved = json.loads((out / "cave/x2/bicubic/seed0/config.json").read_text())
    # the canonical CAVE split restricted to the 10 scenes present, and said so
    assert metrics["n_test_scenes"] == len(saved["split"]["test"]) >= 1
    assert "restricted" in saved["split"]["note"]
    assert 20 < metrics["mean"]["psnr"] < 60
    assert json.loads((out / "cave/x2/fcnn3d/seed0/metrics.json").read_text())["finished"]


def test_all_methods_and_several_scales_expand_in_the_plan(tmp_path):
    result = invoke("run", "--methods", "all", "--dataset", "synthetic", "--scale", "2,3", "--dry-run",
                    "--profile", "smoke", "--out", tmp_path)
    assert result.exit_code == 0, result.output
    assert "Plan: 10 cell(s)" in result.output and "no training" in result.output


def test_set_accepts_several_pairs_and_values_with_spaces():
    from hsisr_bench.commands.run import _split_overrides

    assert _split_overrides(["protocol.epochs=3 protocol.rescales=[1.0, 0.5]", "seed=2"]) == [
        "protocol.epochs=3", "protocol.rescales=[1.0, 0.5]", "seed=2"]


@pytest.mark.slow
def test_main_job_learned_methods_beat_bicubic_with_the_quick_profile(tmp_path):
    """The main job (minutes on 2 CPU cores): bicubic, EDSR and SSRNet on the synthetic data at x2."""
    out = tmp_path / "results"
    result = invoke("run", "--methods", "bicubic,edsr,ssrnet", "--dataset", "synthetic", "--scale", "2",
                    "--profile", "quick", "--device", "cpu", "--no-progress", "--out", out)
    assert result.exit_code == 0, result.output
    psnr = {m: json.loads((out / "synthetic/x2" / m / "seed0/metrics.json").read_text())["mean"]["psnr"]
            for m in ("bicubic", "edsr", "ssrnet")}
    assert psnr["edsr"] > psnr["bicubic"] and psnr["ssrnet"] > psnr["bicubic"], psnr


def test_metric_conventions_reach_metrics_json(tmp_path):
    out = tmp_path / "results"
    result = invoke("run", "--methods", "bicubic", "--dataset", "synthetic", "--scale", "2", "--out", out, *SMOKE,
                    "--set", "metrics.sam_unit=rad")
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "synthetic/x2/bicubic/seed0/metrics.json").read_text())
    assert metrics["conventions"]["sam_unit"] == "rad"
    degrees = invoke("run", "--methods", "bicubic", "--dataset", "synthetic", "--scale", "2", "--out",
                     tmp_path / "deg", *SMOKE)
    assert degrees.exit_code == 0, degrees.output
    sam_deg = json.loads((tmp_path / "deg/synthetic/x2/bicubic/seed0/metrics.json").read_text())["mean"]["sam"]
    assert metrics["mean"]["sam"] == pytest.approx(sam_deg * 3.141592653589793 / 180, rel=1e-6)


@pytest.mark.skipif(not (SHARED_DATA / "CAVE").is_dir(), reason="real CAVE scenes are not in ../shared/data")
def test_a_restricted_canonical_split_is_announced_recorded_and_captioned(tmp_path):
    out = tmp_path / "results"
    result = invoke("run", "--methods", "bicubic", "--dataset", "CAVE", "--scale", "4", "--data-root", SHARED_DATA,
                    "--out", out, "--device", "cpu", "--no-progress", "--profile", "smoke")
    assert result.exit_code == 0, result.output
    assert "WARNING: Split restricted (cave)" in result.output and "22 absent scene(s)" in result.output
    metrics = json.loads((out / "cave/x4/bicubic/seed0/metrics.json").read_text())
    assert metrics["split"]["restriction"]["missing"] and len(metrics["split"]["test"]) == 1
    report = invoke("report", "--results", out)
    assert report.exit_code == 0, report.output
    assert "Split restricted to the scenes present" in (out / "reports" / "report.md").read_text()


def test_broken_data_fails_before_the_first_cell(tmp_path):
    data = tmp_path / "synth"
    assert invoke("data", "synth", "--out", data, "--n-scenes", "4", "--size", "48").exit_code == 0
    broken = sorted(data.rglob("*.npy"))[-1]
    broken.write_bytes(broken.read_bytes()[:200])  # a truncated cube: only pre-flight can see it before cell 2
    out = tmp_path / "results"
    result = invoke("run", "--methods", "bicubic,edsr", "--dataset", "synthetic", "--data-root", data, "--scale", "2",
                    "--out", out, *SMOKE[:5])
    assert result.exit_code == 2 and broken.stem in result.output, result.output
    assert not out.exists() or not list(out.rglob("metrics.json"))


def test_an_impossible_scale_leaves_no_folder_behind(tmp_path):
    out = tmp_path / "results"
    result = invoke("run", "--methods", "bicubic", "--dataset", "synthetic", "--scale", "1000", "--out", out, *SMOKE)
    assert result.exit_code == 2 and "x1000 needs test regions of at least 1000 pixels" in result.output
    assert not out.exists()


def test_ctrl_c_with_force_prints_the_command_that_resumes(tmp_path, monkeypatch):
    from hsisr_bench.engine import runner

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "run_cell", interrupted)
    monkeypatch.setattr("sys.argv", ["hsibench", "run", "--methods", "edsr", "--force", "--out", str(tmp_path)])
    result = CliRunner().invoke(main, ["run", "--methods", "edsr", "--dataset", "synthetic", "--scale", "2",
                                       "--force", "--out", str(tmp_path), *SMOKE])
    assert "To resume from the last checkpoint, run: hsibench run --methods edsr --out" in result.output
    assert "--force" not in result.output.split("run: ", 1)[1]


def test_evaluate_scores_released_weights_and_records_their_sha256(tmp_path):
    out = tmp_path / "results"
    cell = ["--dataset", "synthetic", "--scale", "2", *SMOKE]
    assert invoke("run", "--methods", "edsr", "--out", out, *cell).exit_code == 0
    exported = invoke("export-weights", out / "synthetic/x2/edsr/seed0", "--to", tmp_path / "edsr_x2.pt")
    assert exported.exit_code == 0, exported.output
    scored = invoke("evaluate", "--method", "edsr", "--weights", tmp_path / "edsr_x2.pt", "--out", tmp_path / "other",
                    *cell)
    assert scored.exit_code == 0, scored.output
    original = json.loads((out / "synthetic/x2/edsr/seed0/metrics.json").read_text())
    released = json.loads((tmp_path / "other/synthetic/x2/edsr/seed0/metrics.json").read_text())
    assert released["per_image"] == original["per_image"]
    assert len(released["weights"]["sha256"]) == 64 and released["run_id"] != original["run_id"]
    wrong = invoke("evaluate", "--method", "edsr", "--weights", tmp_path / "edsr_x2.pt", "--out", tmp_path / "x3",
                   "--dataset", "synthetic", "--scale", "3", *SMOKE)
    assert wrong.exit_code == 2 and "trained at x2, not x3" in wrong.output
    assert not (tmp_path / "x3").exists()
