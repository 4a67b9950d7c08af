"""``hsibench bench``: the cheap suites run in quick mode and report what they measured; --no-append writes nothing."""

from __future__ import annotations

from click.testing import CliRunner

from hsisr_bench.cli import main


def test_quick_suites_print_their_tables_and_append_only_when_asked(tmp_path):
    output = tmp_path / "benchmarks.md"
    args = ["bench", "--suite", "metrics", "--suite", "train", "--quick", "--output", str(output)]
    printed = CliRunner().invoke(main, args + ["--no-append"], catch_exceptions=False)
    assert printed.exit_code == 0, printed.output
    assert "### metrics" in printed.output and "### train" in printed.output
    assert "Machine:" in printed.output and "Command:" in printed.output  # the command and machine are recorded
    assert not output.exists()
    appended = CliRunner().invoke(main, args, catch_exceptions=False)
    assert appended.exit_code == 0, appended.output
    text = output.read_text()
    assert text.count("## Run of") == 1 and "| x2 |" in text  # the training-throughput rows landed


def test_unknown_suite_is_a_usage_error():
    result = CliRunner().invoke(main, ["bench", "--suite", "nope", "--no-append"])
    assert result.exit_code == 2 and "nope" in result.output
