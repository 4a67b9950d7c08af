"""``hsibench report`` / ``hsibench figures`` read the store named by --results and refuse an --out that is another store.

``hsibench run --out DIR`` writes runs to DIR; ``hsibench report --out DIR`` used to read ``./results``
and write that folder's tables into DIR without a word.
"""

from __future__ import annotations

import csv
import json
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
    assert sorted(p.name for p in (two_stores / "figs").iterdir()) == ["cave_x2_a_error_band4.png",
                                                                        "cave_x2_b_error_band4.png"]


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
