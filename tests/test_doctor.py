"""``hsibench doctor``: the verdict table, and every check can fail when the path it exercises is broken."""

from __future__ import annotations

import time

import pytest
import torch
from click.testing import CliRunner

from hsisr_bench import doctor, doctor_runs, doctor_timing, registry
from hsisr_bench.cli import main
from hsisr_bench.doctor import Check, check_training, verdict_markdown


@pytest.fixture
def only_edsr(monkeypatch):
    monkeypatch.setattr(registry, "list_methods", lambda: ["edsr"])


def test_doctor_on_cpu_writes_the_verdict_and_says_what_was_skipped(tmp_path, only_edsr):
    result = CliRunner().invoke(main, ["doctor", "--device", "cpu", "--out", str(tmp_path),
                                       "--checks", "environment,contract,ddp"])
    assert result.exit_code == 0, result.output
    written = (tmp_path / "doctor.md").read_text()
    assert "| environment" in written and "measured" in written
    assert "the device is the CPU" in written and "needs 2 GPUs" in written
    assert "gloo, world 1: DDP step vs plain step" in written  # the world-1 group ran on the CPU
    assert "Verdicts: pass 1, fail 0; measured 1; skipped 2" in written
    assert (tmp_path / "doctor.json").is_file()


def test_unknown_checks_are_refused():
    result = CliRunner().invoke(main, ["doctor", "--device", "cpu", "--checks", "environment,gpu"])
    assert result.exit_code == 2 and "unknown check(s) gpu" in result.output


def test_a_failed_check_fails_the_command(monkeypatch, tmp_path):
    monkeypatch.setattr(doctor, "check_environment", lambda device: iter([Check("environment", "fail", "broken")]))
    result = CliRunner().invoke(main, ["doctor", "--device", "cpu", "--checks", "environment"])
    assert result.exit_code == 1 and "broken" in result.output


def test_every_check_has_a_step():
    """Every name --checks accepts runs something (a missing entry was a KeyError at the end of a long run)."""
    import inspect

    source = inspect.getsource(doctor.run_doctor)
    assert all(f'"{name}": lambda' in source for name in doctor.CHECKS)


# ---------------------------------------------------------------- each check can fail


def test_environment_fails_when_the_machine_line_breaks(monkeypatch):
    import hsisr_bench.benchmarks as benchmarks

    (ok,) = doctor.check_environment("cpu")
    assert ok.status == "measured"
    monkeypatch.setattr(benchmarks, "machine_description", lambda device: 1 / 0)
    (broken,) = doctor.check_environment("cpu")
    assert broken.status == "fail"


def test_contract_fails_when_the_device_output_differs(monkeypatch, only_edsr):
    from hsisr_bench.engine import infer

    real = infer.super_resolve

    def shifted(model, lr, **kwargs):  # a "GPU" whose forward is off by 1e-3
        out = real(model, lr, **{**kwargs, "device": "cpu"})
        return out if kwargs["device"] == "cpu" else out + 1e-3

    monkeypatch.setattr(infer, "super_resolve", shifted)
    (check,) = doctor.check_contract("cuda:0")
    assert check.status == "fail" and "1.00e-03" in check.detail


def test_tiled_passes_on_partial_tiles_and_fails_when_tiling_breaks(monkeypatch, only_edsr):
    from hsisr_bench.engine import infer

    (ok,) = doctor.check_tiled("cpu")
    assert ok.status == "pass", ok.detail
    partial = int(ok.detail.split(" partial")[0].rsplit(" ", 1)[1])
    assert partial >= 2  # EDSR's 36-pixel field: the probe grew beyond the old 22x19
    real = infer.super_resolve
    monkeypatch.setattr(infer, "super_resolve", lambda model, lr, **kw: real(model, lr, **kw) + (1e-3 if kw.get("tile")
                                                                                               else 0.0))
    (broken,) = doctor.check_tiled("cpu")
    assert broken.status == "fail", broken.detail


def test_tiled_fails_on_a_probe_every_tile_reads_whole(monkeypatch, only_edsr):
    """The old 22x19 probe: EDSR's receptive field covers it from every tile, so nothing is tested."""
    monkeypatch.setattr(doctor, "tiled_probe_shape", lambda model, info, **kw: (22, 19))
    (check,) = doctor.check_tiled("cpu")
    assert check.status == "fail" and "fewer than 2 tiles" in check.detail


def test_training_needs_a_falling_loss(monkeypatch, tmp_path, only_edsr):
    from hsisr_bench.engine import train

    found = {c.name: c for c in check_training("cpu", tmp_path)}
    assert found["training: edsr fp32"].status == "pass", found["training: edsr fp32"].detail
    assert found["training: edsr fp16"].status == "skipped"
    assert "Verdicts:" in verdict_markdown(list(found.values()), "cpu")
    # An optimiser that never moves the weights: the run finishes, scores a finite PSNR, and fails.
    monkeypatch.setattr(train, "make_optimizer", lambda model, settings: torch.optim.SGD(model.parameters(), lr=0.0))
    broken = next(check_training("cpu", tmp_path))
    assert broken.status == "fail" and "did not fall" in broken.detail


@pytest.mark.parametrize("output, interrupted, diff, expected", [
    ("Resuming edsr from x at epoch 2, step 7.", True, 0.0, "pass"),
    ("Resuming edsr from x at epoch 2, step 7.", True, 3e-6, "fail"),  # drifted weights
    ("Resuming edsr from x at epoch 2, step 0.", True, 0.0, "fail"),  # an epoch boundary
    ("already finished", True, 0.0, "fail"),  # a reused --out: the rerun found a finished run
    ("Resuming edsr from x at epoch 2, step 7.", False, 0.0, "fail"),
])
def test_resume_verdict_needs_a_mid_epoch_resume_and_equal_weights(output, interrupted, diff, expected):
    assert doctor_runs.resume_verdict(interrupted, output, diff)[0] == expected


def test_resume_uses_a_fresh_folder_each_time(monkeypatch, tmp_path):
    folders = []
    monkeypatch.setattr(doctor_runs, "_run", lambda command: folders.append(command[command.index("--out") + 1]) or
                        (_ for _ in ()).throw(RuntimeError("stop")))
    for _ in range(2):
        (check,) = doctor_runs.check_resume("cpu", tmp_path)
        assert check.status == "fail" and "stop" in check.detail
    assert len(set(folders)) == 2


def test_ddp_one_process_step_fails_when_ddp_changes_the_step(monkeypatch, tmp_path):
    (ok, _) = doctor_runs.check_ddp("cpu", tmp_path)
    assert ok.status == "pass", ok.detail
    real = torch.nn.parallel.DistributedDataParallel

    class Scaled(real):  # a wrapper that changes what the step computes
        def forward(self, *args, **kwargs):
            return 1.5 * super().forward(*args, **kwargs)

    monkeypatch.setattr(torch.nn.parallel, "DistributedDataParallel", Scaled)
    (broken, _) = doctor_runs.check_ddp("cpu", tmp_path)
    assert broken.status == "fail", broken.detail
    assert not torch.distributed.is_initialized()


def test_measurements_fail_when_the_measured_path_raises(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("no step")

    monkeypatch.setattr(doctor_timing, "_step_time", broken)
    rows = [*doctor_timing.check_throughput("cpu"), *doctor_timing.check_compile("cpu"),
            *doctor_timing.check_projection("cpu")]
    assert {r.status for r in rows if r.status != "skipped"} == {"fail"}
    from hsisr_bench.engine import infer

    monkeypatch.setattr(infer, "super_resolve", broken)
    assert {r.status for r in doctor_timing.check_inference("cpu")} == {"fail"}


def test_step_time_excludes_the_warm_up():
    """Slow first steps (lazy initialisation) are not in the median: one fixed warm-up step was not enough."""
    durations = iter([0.2, 0.1, 0.06] + [0.005] * 20)
    measured = doctor_timing.steady_step_time(lambda: time.sleep(next(durations)) or 0.0, steps=3)
    assert measured["seconds"] < 0.03 and measured["warmup"] >= 4


@pytest.mark.slow
def test_doctor_resume_check_passes_on_cpu(tmp_path):
    (check,) = doctor_runs.check_resume("cpu", tmp_path, epochs=3, steps=10)
    assert check.status == "pass", check.detail
