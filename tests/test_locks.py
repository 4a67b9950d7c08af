"""Run-folder locks on a shared results folder: atomic creation, owners, stale locks, OS errors."""

from __future__ import annotations

import multiprocessing
import os
import socket

import pytest
from click.testing import CliRunner

from hsisr_bench import locks
from hsisr_bench.cli import main
from hsisr_bench.errors import ResultsError
from hsisr_bench.locks import LOCK_FILE, RunLock


def test_a_lock_is_created_with_its_content_and_removed_on_release(tmp_path):
    lock = RunLock(tmp_path / "run", notify=lambda m: None).acquire()
    pid, host, token, boot, pidns = (tmp_path / "run" / LOCK_FILE).read_text().split()
    assert int(pid) == os.getpid() and host == socket.gethostname() and token == lock.token
    assert boot == f"boot={lock.boot}" and pidns == f"pidns={lock.pidns}"
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [LOCK_FILE]  # no temporary left
    lock.release()
    assert not (tmp_path / "run" / LOCK_FILE).exists()


def test_a_lock_of_another_host_is_never_taken_and_the_error_names_it(tmp_path):
    (tmp_path / LOCK_FILE).write_text("4242 node17 abc\n")
    with pytest.raises(ResultsError, match=r"process 4242 on host node17 \(lock file .*\.lock\)"):
        RunLock(tmp_path).acquire()
    assert (tmp_path / LOCK_FILE).read_text() == "4242 node17 abc\n"


def test_an_unreadable_lock_is_not_taken_over(tmp_path):
    """The old lock read an empty (half-created) lock as stale and deleted it: two writers then."""
    (tmp_path / LOCK_FILE).write_text("")
    with pytest.raises(ResultsError, match="cannot be read"):
        RunLock(tmp_path).acquire()
    assert (tmp_path / LOCK_FILE).exists()


def test_a_dead_owner_of_this_host_is_taken_over(tmp_path):
    process = multiprocessing.get_context("spawn").Process(target=int)
    process.start()
    process.join()
    (tmp_path / LOCK_FILE).write_text(f"{process.pid} {socket.gethostname()}\n")  # the old two-field format too
    messages = []
    lock = RunLock(tmp_path, messages.append).acquire()
    assert lock.held and any("stale lock" in m and str(process.pid) in m for m in messages)
    lock.release()


def test_release_never_removes_a_lock_that_is_not_ours(tmp_path):
    lock = RunLock(tmp_path, notify=lambda m: None).acquire()
    (tmp_path / LOCK_FILE).write_text(f"{os.getpid()} {socket.gethostname()} someone-else\n")
    lock.release()
    assert (tmp_path / LOCK_FILE).exists()


def _contend(folder, barrier, queue):
    barrier.wait()
    try:
        lock = RunLock(folder, notify=lambda m: None).acquire()
        queue.put("won")
        barrier.wait()  # hold the lock until everyone has tried
        lock.release()
    except ResultsError:
        queue.put("refused")
        barrier.wait()


def test_only_one_of_many_racing_processes_takes_the_lock(tmp_path):
    context = multiprocessing.get_context("fork")
    n = 6
    barrier, queue = context.Barrier(n), context.Queue()
    workers = [context.Process(target=_contend, args=(tmp_path, barrier, queue)) for _ in range(n)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    outcomes = sorted(queue.get(timeout=5) for _ in range(n))
    assert outcomes == ["refused"] * (n - 1) + ["won"]


def test_an_os_error_on_the_results_store_is_an_error_line_not_a_traceback(tmp_path, monkeypatch):
    """The bug: a PermissionError from the lock escaped as a traceback."""
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path / LOCK_FILE))

    monkeypatch.setattr(locks.os, "link", refuse)
    result = CliRunner().invoke(main, ["run", "--methods", "bicubic", "--dataset", "synthetic", "--scale", "2",
                                       "--profile", "smoke", "--device", "cpu", "--no-progress", "--out",
                                       str(tmp_path / "out"), "--set", "dataset.n_scenes=4 dataset.size=48"])
    assert result.exit_code == 2, result.output
    assert ": decide: Cannot create the lock" in result.output and "Permission denied" in result.output
    assert "Traceback" not in result.output


def _dead_pid() -> int:
    process = multiprocessing.Process(target=int)
    process.start()
    process.join()
    return process.pid


def test_a_lock_of_another_pid_namespace_on_the_same_host_is_never_taken(tmp_path):
    # A container with host networking has our host name but its own PIDs: its live writer's PID is
    # invisible here, so a dead-looking PID proves nothing and the lock must stay.
    pid = _dead_pid()
    text = f"{pid} {socket.gethostname()} tok boot={locks._machine_ids()[0]} pidns=pid:[4026531999]\n"
    (tmp_path / LOCK_FILE).write_text(text)
    with pytest.raises(ResultsError, match=r"another PID namespace or boot .*delete the lock file"):
        RunLock(tmp_path, notify=lambda m: None).acquire()
    assert (tmp_path / LOCK_FILE).read_text() == text


def test_a_lock_of_another_boot_is_never_taken(tmp_path):
    pid = _dead_pid()
    (tmp_path / LOCK_FILE).write_text(f"{pid} {socket.gethostname()} tok boot=other pidns={locks._machine_ids()[1]}\n")
    with pytest.raises(ResultsError, match="another PID namespace or boot"):
        RunLock(tmp_path, notify=lambda m: None).acquire()


def test_a_dead_owner_of_the_same_namespace_and_boot_is_taken_over(tmp_path):
    boot, pidns = locks._machine_ids()
    (tmp_path / LOCK_FILE).write_text(f"{_dead_pid()} {socket.gethostname()} tok boot={boot} pidns={pidns}\n")
    messages = []
    lock = RunLock(tmp_path, notify=messages.append).acquire()
    assert lock.held and "stale lock" in messages[0]
    lock.release()
