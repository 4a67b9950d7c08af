"""``--force`` over a finished run replaces it only when the new run is complete (issue 16, item 3).

The old result is moved into ``<run>/.previous`` while the new one is built; a failure puts it back,
a success deletes it, Ctrl-C keeps both, and a later command settles what a killed process left.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from hsisr_bench import results
from hsisr_bench.cli import main

SMOKE = ["--profile", "smoke", "--device", "cpu", "--no-progress", "--set", "dataset.n_scenes=4 dataset.size=48",
         "--set", "method.edsr.options.n_resblocks=1", "--set", "method.edsr.options.n_feats=8"]
RUN_DIR = "synthetic/x2/edsr/seed0"


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _snapshot(folder):
    """Every file of the folder (hidden ones too, so a leftover ``.previous`` shows) but the lock."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != results.LOCK_FILE}


@pytest.fixture
def finished(tmp_path):
    """A finished tiny EDSR run: (command arguments, run folder, snapshot of the folder)."""
    out = tmp_path / "results"
    args = ["run", "--methods", "edsr", "--dataset", "synthetic", "--scale", "2", "--out", out, *SMOKE]
    first = invoke(*args)
    assert first.exit_code == 0, first.output
    directory = out / RUN_DIR
    before = _snapshot(directory)
    assert {"metrics.json", "checkpoint.pt", "config.json"} <= set(before)
    assert any(name.startswith("predictions/") for name in before)
    return args, directory, before


def _fail(*args, **kwargs):
    raise RuntimeError("injected failure")


@pytest.mark.parametrize("where", ["train", "evaluate_run"])
def test_a_failed_force_leaves_the_finished_run_byte_identical(finished, monkeypatch, where):
    args, directory, before = finished
    monkeypatch.setattr(f"hsisr_bench.engine.runner.{where}", _fail)
    forced = invoke(*args, "--force", "--set", "protocol.steps_per_epoch=3")
    assert forced.exit_code != 0 and "injected failure" in forced.output
    assert "was put back" in forced.output and "--force again" in forced.output
    assert _snapshot(directory) == before
    monkeypatch.undo()
    again = invoke(*args)  # the old command still finds its finished run
    assert again.exit_code == 0 and "already finished" in again.output, again.output


def test_a_successful_force_replaces_the_run_and_keeps_no_copy(finished):
    args, directory, before = finished
    forced = invoke(*args, "--force", "--set", "protocol.steps_per_epoch=3")
    assert forced.exit_code == 0, forced.output
    metrics = json.loads((directory / "metrics.json").read_text())
    assert metrics["finished"] and metrics["run_id"] != json.loads(before["metrics.json"])["run_id"]
    assert not (directory / results.PREVIOUS_DIR).exists()
    assert not any(name.startswith(".previous") for name in _snapshot(directory))


def test_ctrl_c_keeps_the_old_result_and_the_next_command_settles_it(finished, monkeypatch):
    args, directory, before = finished

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr("hsisr_bench.engine.runner.train", interrupted)
    forced = invoke(*args, "--force", "--set", "protocol.steps_per_epoch=3")
    assert forced.exit_code != 0
    assert results.previous_state(directory) == "complete"  # kept, as after a kill -9 of the replacement
    assert _snapshot(directory / results.PREVIOUS_DIR) == {**before, ".complete": b"ok\n"}
    monkeypatch.undo()
    # The replacement had no checkpoint yet, so nothing of it can resume: the old run comes back.
    again = invoke(*args)
    assert again.exit_code == 0 and "already finished" in again.output, again.output
    assert "put back" in again.output
    assert _snapshot(directory) == before


def test_a_move_aside_cut_short_is_undone(tmp_path):
    directory = tmp_path / "run"
    (directory / "predictions").mkdir(parents=True)
    files = {"metrics.json": b'{"finished": true}', "checkpoint.pt": b"weights", "predictions/a.npy": b"a"}
    for name, data in files.items():
        (directory / name).write_bytes(data)
    # A process killed after moving some entries into .previous, before its .complete marker.
    (directory / results.PREVIOUS_DIR).mkdir()
    (directory / "metrics.json").rename(directory / results.PREVIOUS_DIR / "metrics.json")
    assert results.previous_state(directory) == "partial" and not results.is_finished(directory)
    results.restore_previous(directory)
    assert _snapshot(directory) == files and results.previous_state(directory) is None
    results.set_aside_run(directory)
    assert results.previous_state(directory) == "complete" and not any(p.is_file() for p in directory.glob("*"))
    (directory / "config.json").write_bytes(b"{}")  # the unfinished replacement
    results.restore_previous(directory)
    assert _snapshot(directory) == files


def test_force_over_a_finished_run_keeps_the_lock_in_place(tmp_path):
    directory = tmp_path / "run"
    directory.mkdir()
    (directory / "metrics.json").write_text('{"finished": true}')
    with results.RunLock(directory, notify=lambda _: None):
        results.set_aside_run(directory)
        assert (directory / results.LOCK_FILE).is_file()
        assert not (directory / results.PREVIOUS_DIR / results.LOCK_FILE).exists()
        results.discard_previous(directory)
    assert sorted(p.name for p in directory.iterdir()) == []


def test_the_same_command_without_force_continues_an_interrupted_replacement(finished, monkeypatch):
    args, directory, before = finished
    from hsisr_bench.engine import runner

    real_train = runner.train

    def train_then_interrupt(*a, **k):  # Ctrl-C after the last checkpoint, before the evaluation
        real_train(*a, **k)
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "train", train_then_interrupt)
    assert invoke(*args, "--force").exit_code != 0
    assert results.previous_state(directory) == "complete" and not results.is_finished(directory)
    monkeypatch.undo()
    resumed = invoke(*args)
    assert resumed.exit_code == 0, resumed.output
    assert "continuing the unfinished --force replacement" in resumed.output and "PSNR" in resumed.output
    assert results.is_finished(directory) and not (directory / results.PREVIOUS_DIR).exists()
