"""``hsibench report`` / ``hsibench figures`` read the store named by --results and refuse an --out that is another store.

``hsibench run --out DIR`` writes runs to DIR; ``hsibench report --out DIR`` used to read ``./results``
and write that folder's tables into DIR without a word.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from hsisr_bench.cli import main
from hsisr_bench.report import holds_results_store

from report_fixtures import FakeRun, write_fake_results


@pytest.fixture()
def two_stores(tmp_path, monkeypatch):
    """``./results`` holds Bicubic only (an earlier run), ``custom/`` holds EDSR (the run just made)."""
    monkeypatch.chdir(tmp_path)
    write_fake_results(tmp_path / "results", [FakeRun("bicubic")], size=16, bands=8, scenes=("a", "b"))
    write_fake_results(tmp_path / "custom", [FakeRun("edsr")], size=16, bands=8, scenes=("a", "b"))
    return tmp_path


def test_a_store_is_recognised(two_stores):
    assert holds_results_store(two_stores / "custom") and holds_results_store("results")
    assert not holds_results_store(two_stores / "custom" / "cave") and not holds_results_store(two_stores / "none")


@pytest.mark.parametrize("command, what", [("report", "tables"), ("figures", "figures")])
def test_out_holding_another_store_is_refused_with_the_fix(two_stores, command, what):
    before = sorted(p.relative_to(two_stores) for p in (two_stores / "custom").rglob("*"))
    result = CliRunner().invoke(main, [command, "--out", "custom"])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("Error: --out custom holds a results store")
    assert f"`hsibench {command} --results custom`" in result.output and f"only where the {what} go" in result.output
    assert sorted(p.relative_to(two_stores) for p in (two_stores / "custom").rglob("*")) == before  # nothing written


def test_results_names_the_store_and_tables_go_into_it(two_stores):
    result = CliRunner().invoke(main, ["report", "--results", "custom", "--format", "csv", "--no-published"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader((two_stores / "custom" / "reports" / "table5.csv").open(encoding="utf-8")))
    assert {r["method"] for r in rows if r["mean"]} == {"edsr"}  # the runs of custom/, not of ./results
    assert not (two_stores / "results" / "reports").exists()


def test_out_may_be_the_store_it_reads_or_a_fresh_folder(two_stores):
    same = CliRunner().invoke(main, ["report", "--results", "custom", "--out", "custom", "--format", "csv"])
    assert same.exit_code == 0, same.output
    assert (two_stores / "custom" / "table5.csv").is_file()
    fresh = CliRunner().invoke(main, ["figures", "--results", "custom", "--out", "figs", "--kinds", "errors",
                                      "--band", "4"])
    assert fresh.exit_code == 0, fresh.output
    assert sorted(p.name for p in (two_stores / "figs").iterdir() if p.name != ".hsibench-output") == [
        "cave_x2_a_error_band4.png", "cave_x2_b_error_band4.png"]


SMOKE = ["--profile", "smoke", "--device", "cpu", "--no-progress", "--set", "dataset.n_scenes=4 dataset.size=48"]


def test_documented_run_report_figures_sequence_with_a_custom_folder(tmp_path, monkeypatch):
    """docs/cli.md: `run --out DIR`, `report --results DIR`, `figures --results DIR` (Bicubic: no training)."""
    monkeypatch.chdir(tmp_path)
    out = "my_results"
    run = CliRunner().invoke(main, ["run", "--methods", "bicubic", "--dataset", "synthetic", "--scale", "2",
                                    "--out", out, *SMOKE])
    assert run.exit_code == 0, run.output
    assert "**" not in run.output and "<u>" not in run.output  # the terminal summary is plain text
    report = CliRunner().invoke(main, ["report", "--results", out])
    assert report.exit_code == 0, report.output
    assert {"report.md", "table5.tex", "table5.csv"} <= {p.name for p in (tmp_path / out / "reports").iterdir()}
    figures = CliRunner().invoke(main, ["figures", "--results", out, "--kinds", "errors,rgb"])
    assert figures.exit_code == 0, figures.output
    assert any(p.name.endswith(".png") for p in (tmp_path / out / "figures").iterdir())
    metrics = next((tmp_path / out).glob("synthetic/x2/bicubic/seed0/metrics.json"))
    assert json.loads(metrics.read_text())["finished"] is True
    wrong = CliRunner().invoke(main, ["report", "--out", out])  # the mistake the docs warn about
    assert wrong.exit_code == 2 and f"--results {out}" in wrong.output


# ------------------------------------------------- issue 16: a user's files (item 5), damaged runs (item 9)


def test_figures_never_overwrite_a_folder_they_did_not_write_without_force(two_stores):
    mine = two_stores / "paper"
    mine.mkdir()
    (mine / "cave_x2_a_error_band4.png").write_bytes(b"my own figure")
    args = ["figures", "--results", "custom", "--out", "paper", "--kinds", "errors", "--band", "4"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and "--force" in result.output, result.output
    assert (mine / "cave_x2_a_error_band4.png").read_bytes() == b"my own figure"
    assert CliRunner().invoke(main, [*args, "--force"]).exit_code == 0
    assert CliRunner().invoke(main, args).exit_code == 0  # now marked as written by figures


def test_report_never_overwrites_a_folder_it_did_not_write_without_force(two_stores):
    mine = two_stores / "paper"
    mine.mkdir()
    (mine / "report.md").write_text("my own notes")
    (mine / "table5.tex").write_text("my own table")
    args = ["report", "--results", "custom", "--out", "paper", "--no-published"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and result.output.startswith("Error: --out paper holds files"), result.output
    assert "--force" in result.output and "report.md" in result.output
    assert (mine / "report.md").read_text() == "my own notes" and (mine / "table5.tex").read_text() == "my own table"
    forced = CliRunner().invoke(main, [*args, "--force"])
    assert forced.exit_code == 0, forced.output
    assert (mine / "report.md").read_text() != "my own notes"
    # A folder written by report (empty or new at first) is rewritten without --force.
    for out in ("fresh", "fresh"):
        again = CliRunner().invoke(main, ["report", "--results", "custom", "--out", out, "--no-published"])
        assert again.exit_code == 0, again.output
    assert CliRunner().invoke(main, ["report", "--results", "custom", "--no-published"]).exit_code == 0
    assert CliRunner().invoke(main, ["report", "--results", "custom", "--no-published"]).exit_code == 0


def test_report_warns_about_each_unreadable_run_and_strict_exits_1(two_stores):
    write_fake_results(two_stores / "custom", [FakeRun("bicubic"), FakeRun("edsr")], size=16, bands=8, scenes=("a", "b"))
    broken = Path("custom") / "cave" / "x2" / "bicubic" / "seed0" / "metrics.json"
    broken.write_text('{"finished": true, "mean": ')  # truncated
    listed = Path("custom") / "cave" / "x2" / "edsr" / "seed0" / "metrics.json"
    runner = CliRunner()
    result = runner.invoke(main, ["report", "--results", "custom", "--no-published", "--out", "r1"])
    assert result.exit_code == 0, result.output
    assert f"WARNING: left out of the tables: {broken}" in result.output and str(listed) not in result.output
    strict = runner.invoke(main, ["report", "--results", "custom", "--no-published", "--out", "r2", "--strict"])
    assert strict.exit_code == 1 and str(broken) in strict.output, strict.output
    clean = runner.invoke(main, ["report", "--results", "results", "--no-published", "--out", "r3", "--strict"])
    assert clean.exit_code == 0 and "WARNING" not in clean.output, clean.output


def test_default_folders_inside_the_store_written_before_the_marker_are_still_rewritten(two_stores):
    # A store made by an earlier version has reports/ and figures/ without the marker: they are the
    # toolkit's own folders, so a newer report or figures rewrites them without --force.
    for name in ("reports", "figures"):
        (two_stores / "custom" / name).mkdir()
        (two_stores / "custom" / name / "report.md").write_text("an older report")
    for command in ("report", "figures"):
        result = CliRunner().invoke(main, [command, "--results", "custom"] + (["--no-published"] if command == "report" else ["--band", "2"]))
        assert result.exit_code == 0, result.output
    assert (two_stores / "custom" / "reports" / "report.md").read_text() != "an older report"
