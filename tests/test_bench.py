"""``hsibench bench``: the cheap suites run in quick mode and report what they measured; --no-append writes nothing."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
from click.testing import CliRunner

from hsisr_bench.benchmarks import RELEVANT_ENVIRONMENT, machine_description
from hsisr_bench.cli import main


def test_quick_suites_print_their_tables_and_append_only_when_asked(tmp_path):
    output = tmp_path / "benchmarks.md"
    printed = CliRunner().invoke(main, ["bench", "--suite", "metrics", "--quick", "--output", str(output),
                                        "--no-append"], catch_exceptions=False)
    assert printed.exit_code == 0, printed.output
    assert "### metrics" in printed.output
    assert "Machine:" in printed.output and "Command:" in printed.output  # the command and machine are recorded
    assert not output.exists()
    # The training suite once (the slow one), appended: what it prints is what lands in the file.
    appended = CliRunner().invoke(main, ["bench", "--suite", "train", "--quick", "--output", str(output)],
                                  catch_exceptions=False)
    assert appended.exit_code == 0, appended.output
    text = output.read_text()
    assert "### train" in appended.output and "### train" in text
    assert text.count("## Run of") == 1 and "| x2 |" in text  # the training-throughput rows landed
    # Issue 10.5: aten ops and step times per path, with the ratio against the target.
    assert "ops harness / plain" in text and "plain step (s)" in text
    for scale in (2, 4):
        assert f"- x{scale}: ops " in text and "<= 1.5x" in text


def test_unknown_suite_is_a_usage_error():
    result = CliRunner().invoke(main, ["bench", "--suite", "nope", "--no-append"])
    assert result.exit_code == 2 and "nope" in result.output


def test_a_measuring_process_reports_its_own_peak_not_its_parents():
    """ru_maxrss of a child spawned by a large parent is the parent's peak; the benchmark must not use it."""
    held = np.ones(1024**3 // 8)  # 1 GiB, touched: this process's RSS is now above 1 GiB
    code = "from hsisr_bench.benchmarks.models import _peak_rss; print(_peak_rss())"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    child_peak = int(result.stdout.strip().splitlines()[-1])
    assert held.sum() == held.size
    assert 0 < child_peak < 0.9 * 1024**3  # torch imported: a few hundred MB, not the parent's 1 GiB


def test_the_machine_line_records_allocator_and_thread_settings(monkeypatch):
    for name in [*RELEVANT_ENVIRONMENT, *(n for n in os.environ if n.startswith("MALLOC_"))]:
        monkeypatch.delenv(name, raising=False)
    assert "environment" not in machine_description()
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "4294967296")
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    monkeypatch.setenv("UNRELATED_SETTING", "1")
    line = machine_description()
    assert line.endswith(", environment: MALLOC_MMAP_THRESHOLD_=4294967296 OMP_NUM_THREADS=2")
