"""torchrun with gloo, 2 processes (issue 17 item 1, issue 15 item 5): rank 1 waits for rank 0's lone
evaluation longer than ``--dist-timeout`` without timing out, and learns of rank 0's failures."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from conftest import REPO_ROOT

PLUGINS = REPO_ROOT / "tests" / "outside_plugins"
CELL = ["--dataset", "synthetic", "--scale", "2", "--profile", "smoke", "--device", "cpu", "--no-progress",
        "--set", "dataset.n_scenes=4", "--set", "dataset.size=48"]


def _torchrun(*args, env=None, timeout=240):
    with socket.socket() as probe:  # a free port for the rendezvous
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr",
               "127.0.0.1", "--master_port", str(port), "-m", "hsisr_bench.cli", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    return done.returncode, done.stdout + done.stderr


def test_rank_1_outwaits_a_rank_0_evaluation_longer_than_the_collective_timeout(tmp_path):
    code, output = _torchrun("run", "--plugin", str(PLUGINS / "slow_eval.py"), "--methods", "slow-eval", *CELL,
                             "--dist-timeout", "3", "--out", str(tmp_path), env={"SLOW_EVAL_SECONDS": "2.5"})
    assert code == 0, output
    assert "Timed out" not in output and "PSNR" in output
    assert (tmp_path / "synthetic" / "x2" / "slow-eval" / "seed0" / "metrics.json").is_file()


def test_every_rank_learns_that_rank_0_failed_at_evaluation(tmp_path):
    code, output = _torchrun("run", "--plugin", str(PLUGINS / "broken_in_eval.py"), "--methods", "broken,bicubic",
                             *CELL, "--out", str(tmp_path))
    assert code != 0, output
    assert "hsisr_bench/" not in output.split("Traceback")[0]  # torchrun's own report may follow; ours has none
    assert not any("site-packages" not in line and "hsisr_bench" in line for line in output.splitlines()
                   if line.strip().startswith("File "))
    assert "evaluate: ValueError: inference branch" in output
    assert (tmp_path / "synthetic" / "x2" / "bicubic" / "seed0" / "metrics.json").is_file()
    # rank 1 (which never evaluates) learned of rank 0's failure: both ranks end with the failed-cells error
    assert output.count("1 of 2 cell(s) failed") == 2, output
