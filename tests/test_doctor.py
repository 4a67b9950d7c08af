"""``hsibench doctor`` on the CPU: the verdict table, the markdown file, the skipped GPU checks."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from hsisr_bench.cli import main
from hsisr_bench.doctor import Check, check_training, verdict_markdown


def test_doctor_on_cpu_writes_the_verdict_and_says_what_was_skipped(tmp_path):
    result = CliRunner().invoke(main, ["doctor", "--device", "cpu", "--out", str(tmp_path),
                                       "--checks", "environment,contract,ddp"])
    assert result.exit_code == 0, result.output
    written = (tmp_path / "doctor.md").read_text()
    assert "| environment" in written and "pass" in written
    assert "the device is the CPU" in written and "needs 2 GPUs" in written
    assert "Verdicts: pass 1, fail 0, skipped 2" in written


def test_unknown_checks_are_refused():
    result = CliRunner().invoke(main, ["doctor", "--device", "cpu", "--checks", "environment,gpu"])
    assert result.exit_code == 2 and "unknown check(s) gpu" in result.output


def test_a_failed_check_fails_the_command(monkeypatch, tmp_path):
    from hsisr_bench import doctor

    monkeypatch.setattr(doctor, "check_environment", lambda device: iter([Check("environment", "fail", "broken")]))
    result = CliRunner().invoke(main, ["doctor", "--device", "cpu", "--checks", "environment"])
    assert result.exit_code == 1 and "broken" in result.output


def test_fp16_training_is_skipped_on_cpu(tmp_path, monkeypatch):
    from hsisr_bench import registry

    monkeypatch.setattr(registry, "list_methods", lambda: ["edsr"])
    found = {c.name: c for c in check_training("cpu", tmp_path)}
    assert found["training: edsr fp32"].status == "pass", found["training: edsr fp32"].detail
    assert found["training: edsr fp16"].status == "skipped"
    assert "Verdicts:" in verdict_markdown(list(found.values()), "cpu")


@pytest.mark.slow
def test_doctor_resume_check_passes_on_cpu(tmp_path):
    from hsisr_bench.doctor import check_resume

    (check,) = check_resume("cpu", tmp_path)
    assert check.status == "pass", check.detail


def test_every_check_has_a_step():
    """Every name --checks accepts runs something (a missing entry was a KeyError at the end of a long run)."""
    import inspect

    from hsisr_bench import doctor

    source = inspect.getsource(doctor.run_doctor)
    assert all(f'"{name}": lambda' in source for name in doctor.CHECKS)
