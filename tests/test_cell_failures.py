"""A failing cell costs nothing else (issue 15, item 5): the other cells run, the failed one keeps its
checkpoint, one ``Error:`` line names cell, phase and message with the command to continue, exit 1."""

from __future__ import annotations

import json
import sys

import pytest
from click.testing import CliRunner

from hsisr_bench.cli import main
from hsisr_bench.engine import failures
from hsisr_bench.errors import HsiBenchError, ResultsError

from conftest import REPO_ROOT
from plugin_fixtures import clean_registry  # noqa: F401 - a fixture

pytestmark = pytest.mark.usefixtures("clean_registry")

BROKEN = REPO_ROOT / "tests" / "outside_plugins" / "broken_in_eval.py"
CELL = ["--dataset", "synthetic", "--scale", "2", "--profile", "smoke", "--device", "cpu", "--no-progress",
        "--set", "dataset.n_scenes=4", "--set", "dataset.size=48"]


def _run(out, *extra, debug=False):
    args = (["--debug"] if debug else []) + ["run", "--plugin", str(BROKEN), "--methods", "broken,bicubic",
                                            *CELL, "--out", str(out), *extra]
    return CliRunner().invoke(main, args)


def test_the_continue_command_of_a_failure_at_evaluation_scores_that_cell_only():
    from hsisr_bench import config

    run = config.plan_runs(methods="edsr", datasets=["synthetic"], scales=[2], profile="smoke")[0]
    argv = ["run", "--methods", "edsr,ssrnet", "--dataset=synthetic", "--scale", "2,3",
            "--set", "dataset.size=48", "--out", "r"]
    assert failures.continue_command(run, "evaluate", argv) == (
        "hsibench evaluate --method edsr --dataset synthetic --scale 2 --seed 0 --set dataset.size=48 --out r "
        "--profile smoke")


def test_a_method_failing_at_evaluation_costs_the_other_cells_nothing(tmp_path, monkeypatch):
    argv = ["run", "--plugin", str(BROKEN), "--methods", "broken,bicubic", *CELL, "--out", str(tmp_path)]
    monkeypatch.setattr(sys, "argv", ["hsibench", *argv])
    result = CliRunner().invoke(main, argv)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    root = tmp_path / "synthetic" / "x2"
    assert json.loads((root / "bicubic" / "seed0" / "metrics.json").read_text())["finished"]
    assert (root / "broken" / "seed0" / "checkpoint.pt").is_file()  # training is kept
    assert not (root / "broken" / "seed0" / "metrics.json").exists()
    line = next(l for l in result.output.splitlines() if l.startswith("Error: synthetic x2 broken"))
    assert ": evaluate: ValueError: inference branch" in line
    assert "hsibench evaluate --method broken --dataset synthetic --scale 2 --seed 0" in result.output
    assert "--methods" not in result.output.split("To continue this cell once fixed:")[1].splitlines()[0]
    assert "1 of 2 cell(s) failed" in result.output
    assert "Bicubic" in result.output  # the summary of the cells that ran


def test_debug_shows_the_traceback(tmp_path):
    result = _run(tmp_path, debug=True)
    assert result.exit_code == 1
    assert "Traceback" in result.output and "inference branch" in result.output


def test_a_held_lock_stops_its_cell_only(tmp_path, monkeypatch):
    from hsisr_bench import results

    real = results.RunLock.acquire

    def refuse(self):
        if "broken" in str(self.path):
            raise ResultsError(f"{self.path} is locked by another process (a test stand-in).")
        return real(self)

    monkeypatch.setattr(results.RunLock, "acquire", refuse)
    result = _run(tmp_path)
    assert result.exit_code == 2, result.output  # every failure was a user-fixable one
    assert "Error: synthetic x2 broken seed 0 (profile smoke): decide: " in result.output
    assert (tmp_path / "synthetic" / "x2" / "bicubic" / "seed0" / "metrics.json").is_file()


def test_continue_command_after_a_failure_in_training_is_the_same_command():
    class Run:
        pass

    assert failures.continue_command(Run(), "train", ["run", "--methods", "a,b"]) == "hsibench run --methods a,b"
    # under --force the old result was put back: retrying the replacement needs --force again
    assert failures.continue_command(Run(), "evaluate", ["run", "--methods", "a,b", "--force"]) == \
        "hsibench run --methods a,b --force"
    assert failures.continue_command(Run(), "train", None) == "the same command again"


def test_the_phase_is_the_first_one_tagged():
    with pytest.raises(HsiBenchError) as caught:
        with failures.phase("train"):
            with failures.phase("evaluate"):
                raise HsiBenchError("x")
    assert caught.value.cell_phase == "evaluate"
