"""The results store: atomic writes, run ids, folder states, version/config clashes, locks, scanning."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from hsisr_bench import results
from hsisr_bench.errors import ResultsError


def _resolved(**changes):
    resolved = {"method": "ssrnet", "variant": None, "options": {"n_feats": 64}, "dataset": "cave", "scale": 2,
                "seed": 0, "protocol": {"epochs": 200}, "device": "cpu", "experiment": None, "data_root": "/a",
                "version": results.version()}
    resolved.update(changes)
    resolved["run_id"] = results.compute_run_id(resolved)
    return resolved


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    path = results.write_json(tmp_path / "metrics.json", {"a": 1})

    def explode(handle):
        handle.write(b"{\"half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        results.atomic_write(path, explode)
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temporary file left


def test_run_id_ignores_device_experiment_and_data_root():
    base = _resolved()
    assert _resolved(device="cuda", experiment="table5", data_root="/b")["run_id"] == base["run_id"]
    assert _resolved(seed=1)["run_id"] != base["run_id"]
    assert _resolved(protocol={"epochs": 3})["run_id"] != base["run_id"]
    assert len(base["run_id"]) == 12


def test_run_states_new_resume_finished(tmp_path):
    resolved = _resolved()
    assert results.run_state(tmp_path, resolved) == "new"
    results.write_json(tmp_path / results.CONFIG_FILE, resolved)
    (tmp_path / results.CHECKPOINT_FILE).write_bytes(b"x")
    assert results.run_state(tmp_path, resolved) == "resume"
    results.write_json(tmp_path / results.METRICS_FILE, {**resolved, "finished": True})
    assert results.run_state(tmp_path, resolved) == "finished"


def test_a_different_config_is_refused_with_what_differs(tmp_path):
    old = _resolved()
    results.write_json(tmp_path / results.CONFIG_FILE, old)
    before = (tmp_path / results.CONFIG_FILE).read_bytes()
    with pytest.raises(ResultsError) as error:
        results.run_state(tmp_path, _resolved(protocol={"epochs": 3}))
    assert "protocol.epochs: 200 -> 3" in str(error.value)
    assert "--force" in str(error.value) and "--out" in str(error.value)
    assert (tmp_path / results.CONFIG_FILE).read_bytes() == before


def test_another_version_is_refused(tmp_path):
    results.write_json(tmp_path / results.METRICS_FILE, {**_resolved(), "version": "0.0.1", "finished": True})
    with pytest.raises(ResultsError, match="0.0.1"):
        results.run_state(tmp_path, _resolved())


def test_clear_run_keeps_the_lock(tmp_path):
    (tmp_path / results.PREDICTIONS_DIR).mkdir()
    (tmp_path / results.PREDICTIONS_DIR / "a.npy").write_bytes(b"x")
    (tmp_path / results.METRICS_FILE).write_text("{}")
    (tmp_path / results.LOCK_FILE).write_text("1 host")
    results.clear_run(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [results.LOCK_FILE]


def test_lock_refuses_a_live_holder_and_takes_over_a_dead_one(tmp_path):
    messages = []
    with results.RunLock(tmp_path, messages.append):
        with pytest.raises(ResultsError, match="already being written by this process"):
            results.RunLock(tmp_path).acquire()
    assert not (tmp_path / results.LOCK_FILE).exists()

    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        import socket

        (tmp_path / results.LOCK_FILE).write_text(f"{sleeper.pid} {socket.gethostname()}\n")
        with pytest.raises(ResultsError, match=f"process {sleeper.pid}"):
            results.RunLock(tmp_path).acquire()
    finally:
        sleeper.kill()
        sleeper.wait()
    # the same pid is now dead (reaped): its lock is stale and taken over, with a message
    lock = results.RunLock(tmp_path, messages.append).acquire()
    assert any("stale lock" in m for m in messages)
    assert (tmp_path / results.LOCK_FILE).read_text().split()[0] == str(__import__("os").getpid())
    lock.release()


def test_targets_must_match_what_is_stored(tmp_path):
    target = np.random.default_rng(0).random((3, 8, 8), dtype=np.float32)
    path = results.check_or_write_target(tmp_path, "cave", 2, "s1", target)
    assert np.load(path).dtype == np.float16
    results.check_or_write_target(tmp_path, "cave", 2, "s1", target)  # the same: fine
    with pytest.raises(ResultsError, match="another test region"):
        results.check_or_write_target(tmp_path, "cave", 2, "s1", target[:, :6, :6])


def test_scan_results_returns_finished_runs_only(tmp_path):
    for method, finished in (("bicubic", True), ("edsr", False), ("ssrnet", True)):
        folder = results.run_dir(tmp_path, "cave", 2, method, 0)
        results.write_json(folder / results.METRICS_FILE, {"method": method, "dataset": "cave", "scale": 2,
                                                           "seed": 0, "finished": finished})
    (results.run_dir(tmp_path, "cave", 3, "edsr", 0)).mkdir(parents=True)
    (results.run_dir(tmp_path, "cave", 3, "edsr", 0) / results.METRICS_FILE).write_text("{not json")
    assert [r["method"] for r in results.scan_results(tmp_path)] == ["bicubic", "ssrnet"]


def test_ensure_writable_names_the_folder(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    with pytest.raises(ResultsError, match="not writable"):
        results.ensure_writable(blocker / "out")
    assert results.ensure_writable(tmp_path / "new" / "out").is_dir()


def test_atomic_writes_leave_ordinary_permissions_and_no_temporaries(tmp_path):
    import os

    from hsisr_bench import atomic

    mask = os.umask(0)
    os.umask(mask)
    path = atomic.atomic_write(tmp_path / "sub" / "file.bin", lambda handle: handle.write(b"data"))
    assert path.read_bytes() == b"data"
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask  # as open() would make it, not mkstemp's 0600
    with pytest.raises(RuntimeError):
        with atomic.atomic_path(tmp_path / "sub" / "file.bin") as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("interrupted")
    assert path.read_bytes() == b"data"  # the old file survives a failed write
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["file.bin"]
