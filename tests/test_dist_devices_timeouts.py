"""Processes and devices, second read (issue 17 items 1, 4, 6; issue 15 item 6): set_device in one process,
no shared explicit GPU under torchrun, the collective timeout, threads per local rank, leaving the group."""

from __future__ import annotations

import datetime

import pytest
import torch

from hsisr_bench.engine import distributed
from hsisr_bench.errors import ConfigError, MethodError

TORCHRUN = {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"}


def _fake_gpus(monkeypatch, count):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)


def _fake_group(monkeypatch, env):
    """Fake torch.cuda.set_device and init_process_group; return what they were called with."""
    calls = {}
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: calls.setdefault("device", str(d)))
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: False)
    monkeypatch.setattr(torch.distributed, "init_process_group",
                        lambda backend, timeout: calls.update(backend=backend, timeout=timeout))
    monkeypatch.setattr(distributed.atexit, "register", lambda function: calls.setdefault("atexit", function))
    monkeypatch.setattr(distributed, "current", lambda: distributed.DistInfo(1, 2, 1))
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", distributed.TIMEOUT_ENV):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return calls


def test_an_explicit_gpu_in_one_process_becomes_the_current_device(monkeypatch):
    """The bug: world 1 returned before set_device, so pinned memory and the context landed on GPU 0."""
    _fake_gpus(monkeypatch, 2)
    calls = _fake_group(monkeypatch, {})
    assert distributed.init_from_env("cuda:1").world == 1
    assert calls == {"device": "cuda:1"}  # no process group in one process


def test_an_explicit_gpu_under_torchrun_is_refused_and_a_missing_gpu_too(monkeypatch):
    _fake_gpus(monkeypatch, 2)
    with pytest.raises(ConfigError, match="every process on the same GPU.*--device cuda"):
        distributed.resolve_device("cuda:0", TORCHRUN)
    assert distributed.resolve_device("cuda", TORCHRUN) == "cuda:1"
    with pytest.raises(ConfigError, match="has 2 GPU"):
        distributed.resolve_device("cuda:2", {})


def test_the_group_gets_the_timeout_of_the_option_the_environment_or_hours(monkeypatch):
    """The bug: PyTorch's 10-minute default killed the ranks waiting through rank 0's evaluation."""
    _fake_gpus(monkeypatch, 0)
    calls = _fake_group(monkeypatch, {**TORCHRUN, "LOCAL_RANK": "0"})
    distributed.init_from_env("cpu")
    assert calls["backend"] == "gloo" and calls["timeout"] == datetime.timedelta(hours=6)
    assert calls["atexit"] is distributed.shutdown  # destroy_process_group at exit
    calls.clear()
    distributed.init_from_env("cpu", timeout=30)
    assert calls["timeout"] == datetime.timedelta(seconds=30)
    monkeypatch.setenv(distributed.TIMEOUT_ENV, "90")
    calls.clear()
    distributed.init_from_env("cpu")
    assert calls["timeout"] == datetime.timedelta(seconds=90)


@pytest.mark.parametrize("value", ["0", "-5", "soon", "inf", "nan"])
def test_a_bad_timeout_is_refused(value):
    with pytest.raises(ConfigError, match="positive number of seconds"):
        distributed.timeout_seconds(None, {distributed.TIMEOUT_ENV: value})


def test_a_bad_timeout_option_is_refused_by_the_cli(tmp_path):
    from click.testing import CliRunner

    from hsisr_bench.cli import main

    result = CliRunner().invoke(main, ["run", "--methods", "bicubic", "--dataset", "synthetic", "--scale", "2",
                                       "--profile", "smoke", "--device", "cpu", "--dist-timeout", "-1",
                                       "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "--dist-timeout" in result.output and "Traceback" not in result.output


def test_threads_under_torchrun_come_from_the_cores_per_local_rank():
    env = {**TORCHRUN, "LOCAL_WORLD_SIZE": "2", "OMP_NUM_THREADS": "1"}
    assert distributed.threads_per_local_rank(env, cores=16) == 8
    assert distributed.threads_per_local_rank({**env, "OMP_NUM_THREADS": "3"}, cores=16) is None  # the user's
    assert distributed.threads_per_local_rank({}, cores=16) is None  # one process: PyTorch's default


def test_shutdown_leaves_an_initialised_group(monkeypatch):
    left = []
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "destroy_process_group", lambda: left.append(True))
    distributed.shutdown()
    assert left == [True]


def test_an_unknown_method_points_at_plugins_and_at_a_file_of_that_name(tmp_path, monkeypatch):
    from hsisr_bench.registry import get_method_info

    monkeypatch.chdir(tmp_path)
    with pytest.raises(MethodError, match=r"--plugin FILE\.py or \$HSIBENCH_PLUGINS"):
        get_method_info("mymethod")
    (tmp_path / "mymethod.py").write_text("# a method of one's own\n")
    with pytest.raises(MethodError, match=r"A file mymethod\.py is in this folder.*--plugin mymethod\.py"):
        get_method_info("mymethod")
