"""Planning and processes: cells, duplicates, shards, device resolution under torchrun, the resume command."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hsisr_bench import config
from hsisr_bench.engine import distributed
from hsisr_bench.engine.plan import Cell, parse_shard, plan_cells
from hsisr_bench.errors import ConfigError

from conftest import TINY_SYNTHETIC

REPO = Path(__file__).resolve().parent.parent
TINY = [*TINY_SYNTHETIC, "method.edsr.options.n_resblocks=1", "method.edsr.options.n_feats=8"]


def _runs(methods="bicubic,edsr", scales=(2, 3)):
    return config.plan_runs(methods=methods, datasets=["synthetic"], scales=list(scales), profile="smoke",
                            device="cpu", overrides=TINY)


# ------------------------------------------------------------------------------------------ cells


def test_cells_carry_their_folder_device_rank_and_position(tmp_path):
    plan = plan_cells(_runs(), tmp_path, device="cpu", rank=1, world=2)
    assert [c.index for c in plan.cells] == [1, 2, 3, 4] and {c.total for c in plan.cells} == {4}
    cell = plan.cells[1]
    assert isinstance(cell, Cell) and cell.device == "cpu" and cell.rank == 1 and not cell.is_main
    assert cell.directory == tmp_path / "synthetic" / "x2" / "edsr" / "seed0"
    assert cell.describe() == "synthetic x2 edsr seed 0 (profile smoke)"


def test_duplicate_cells_are_merged_with_a_note(tmp_path):
    runs = config.plan_runs(methods="bicubic,bicubic", datasets=["synthetic"], scales=[2, 2], profile="smoke",
                            device="cpu", overrides=TINY)
    assert len(runs) == 4
    plan = plan_cells(runs, tmp_path)
    assert len(plan.cells) == 1 and plan.notes and "Merged 3 duplicate" in plan.notes[0]


def test_two_configs_for_one_folder_are_refused(tmp_path):
    a = _runs("edsr", (2,))[0]
    b = config.apply_overrides(a, ["protocol.epochs=2"])
    with pytest.raises(ConfigError, match="same folder"):
        plan_cells([a, b], tmp_path)


@pytest.mark.parametrize("text, expected", [("1/4", (1, 4)), (" 4 / 4 ", (4, 4)), (None, None)])
def test_shard_parsing(text, expected):
    assert parse_shard(text) == expected


@pytest.mark.parametrize("text", ["0/4", "5/4", "1-4", "a/b", "1/0"])
def test_bad_shards_are_refused_with_the_form(text):
    with pytest.raises(ConfigError, match="--shard"):
        parse_shard(text)


def test_shards_partition_the_plan(tmp_path):
    runs = _runs(scales=(2, 3, 4))
    whole = [c.run for c in plan_cells(runs, tmp_path).cells]
    shards = [plan_cells(runs, tmp_path, shard=(k, 4)).cells for k in range(1, 5)]
    union = sorted((c.index for cells in shards for c in cells))
    assert union == list(range(1, len(whole) + 1))  # every cell exactly once
    assert [c.run for c in shards[1]] == whole[1::4]


# ------------------------------------------------------------------------------------------ devices


def _fake_gpus(monkeypatch, count):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)


def test_auto_under_torchrun_takes_the_local_rank_gpu_and_nccl(monkeypatch):
    _fake_gpus(monkeypatch, 2)
    env = {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"}
    device = distributed.resolve_device("auto", env)
    assert device == "cuda:1" and distributed.backend_for(device) == "nccl"
    assert distributed.resolve_device("cuda", env) == "cuda:1"
    assert distributed.resolve_device("auto", {}) == "cuda:0"  # one process: the first GPU
    assert distributed.resolve_device("cuda:1", {}) == "cuda:1"  # explicit index kept


def test_cpu_everywhere_uses_gloo_and_too_few_gpus_is_an_error(monkeypatch):
    _fake_gpus(monkeypatch, 0)
    env = {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"}
    assert distributed.resolve_device("auto", env) == "cpu" and distributed.backend_for("cpu") == "gloo"
    _fake_gpus(monkeypatch, 1)
    with pytest.raises(ConfigError, match="LOCAL_RANK 1 needs GPU 1"):
        distributed.resolve_device("auto", env)
    with pytest.raises(ConfigError, match="expected auto, cpu"):
        distributed.resolve_device("tpu", {})


def test_init_joins_with_the_backend_of_the_resolved_device(monkeypatch):
    """The bug: ``--device auto`` joined over gloo and left every rank on cuda:0."""
    _fake_gpus(monkeypatch, 2)
    calls = {}
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: calls.setdefault("device", str(d)))
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: False)
    monkeypatch.setattr(torch.distributed, "init_process_group",
                        lambda backend, timeout: calls.setdefault("backend", backend))
    monkeypatch.setattr(distributed.atexit, "register", lambda function: None)
    monkeypatch.setattr(distributed, "current", lambda: distributed.DistInfo(1, 2, 1))
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert distributed.init_from_env("auto").rank == 1
    assert calls == {"device": "cuda:1", "backend": "nccl"}


# ------------------------------------------------------------------------------ the command line


def test_resume_command_drops_force():
    from hsisr_bench.commands.run import _resume_command

    assert _resume_command(["run", "--methods", "edsr", "--force", "--out", "my dir"]) == \
        "hsibench run --methods edsr --out 'my dir'"


def _cli(*args, env_extra=None):
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env_extra or {})}
    return subprocess.Popen([sys.executable, "-m", "hsisr_bench.cli", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _per_image(out: Path) -> dict:
    return {str(p.relative_to(out)): json.loads(p.read_text())["per_image"] for p in out.rglob("metrics.json")}


def test_shards_in_parallel_processes_equal_one_unsharded_run(tmp_path):
    args = ["run", "--methods", "bicubic,edsr", "--dataset", "synthetic", "--scale", "2,3", "--profile", "smoke",
            "--device", "cpu", "--no-progress", *[f"--set={o}" for o in TINY]]
    shards = [_cli(*args, "--out", str(tmp_path / "shared"), "--shard", f"{k}/2") for k in (1, 2)]
    outputs = [p.communicate(timeout=300)[0] for p in shards]
    assert all(p.returncode == 0 for p in shards), outputs
    whole = _cli(*args, "--out", str(tmp_path / "whole"))
    assert whole.communicate(timeout=300)[0] and whole.returncode == 0
    assert _per_image(tmp_path / "shared") == _per_image(tmp_path / "whole")
    assert len(_per_image(tmp_path / "whole")) == 4
    assert "Shard 1/2: 2 of the 4 cell(s)" in outputs[0]


def test_torchrun_two_processes_rerun_of_finished_cells_exits_cleanly(tmp_path):
    """The bug: rank 0 returned 'skipped' while rank 1 waited at a barrier (hang, or a failure on rank 1)."""
    out = tmp_path / "results"
    with socket.socket() as probe:  # a free port for the rendezvous
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    args = ["-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port",
            str(port), "-m", "hsisr_bench.cli",
            "run", "--methods", "bicubic,edsr", "--dataset", "synthetic", "--scale", "2", "--profile", "smoke",
            "--device", "cpu", "--no-progress", "--out", str(out), *[f"--set={o}" for o in TINY]]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stdout + first.stderr
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    again = subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
    assert (again.stdout + again.stderr).count("already finished") == 2
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == stamps  # nothing rewritten


def test_an_explicit_gpu_index_is_a_valid_device_and_a_typo_is_not():
    run = _runs("bicubic", (2,))[0]
    assert config.apply_overrides(run, ['device="cuda:1"']).device == "cuda:1"
    with pytest.raises(ConfigError, match="cuda:<index>"):
        config.apply_overrides(run, ['device="gpu"'])
