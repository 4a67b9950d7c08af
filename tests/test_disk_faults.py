"""Full disks and damaged checkpoints: clean ``Error:`` lines, no temporaries left, the old file intact.

A full disk is simulated with ``RLIMIT_FSIZE`` in a subprocess (``SIGXFSZ`` ignored, so a write past the
limit fails with ``EFBIG`` as it would with ``ENOSPC``): it works without root or a mountable tmpfs.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch

from hsisr_bench.engine.checkpoint import load_checkpoint, save_checkpoint
from hsisr_bench.errors import ResultsError

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_FSIZE fault injection")

_LIMITED = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG
if {limit} > 0:
    resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
"""


def _run_limited(code: str, limit: int) -> subprocess.CompletedProcess:
    script = _LIMITED.format(limit=limit) + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env={"OMP_NUM_THREADS": "1", **__import__("os").environ})


def _state(n: int) -> dict:
    return {"model": {"w": torch.arange(n, dtype=torch.float32)}, "optimizer": {}, "scheduler": {}, "rng": {},
            "epoch": 1, "step": 0, "loss_sum": 0.0, "epoch_seconds": 0.0, "log": []}


def test_a_full_disk_while_saving_a_checkpoint_is_an_error_and_keeps_the_previous_one(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, _state(100))
    before = path.read_bytes()
    result = _run_limited(f"""
        import torch
        from pathlib import Path
        from hsisr_bench.engine.checkpoint import save_checkpoint
        from hsisr_bench.errors import ResultsError
        try:
            save_checkpoint(Path({str(path)!r}), {{"model": {{"w": torch.zeros(1_000_000)}}}})
        except ResultsError as error:
            print("CLEAN", error)
    """, limit=200_000)
    assert result.returncode == 0, result.stderr
    assert "CLEAN Cannot write" in result.stdout and "Traceback" not in result.stderr
    assert path.read_bytes() == before  # the previous checkpoint is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]  # no temporary left
    assert int(load_checkpoint(path)["epoch"]) == 1


def test_a_truncated_checkpoint_says_so_names_the_file_and_the_way_out(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, _state(10_000))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ResultsError, match=r"checkpoint .*checkpoint\.pt is truncated or corrupt.*Delete it to "
                                           r"restart .*--force"):
        load_checkpoint(path)


def test_a_checkpoint_without_optimizer_state_is_refused_by_name(tmp_path):
    path = tmp_path / "checkpoint.pt"
    state = _state(10)
    del state["optimizer"]
    torch.save(state, path)
    with pytest.raises(ResultsError, match=r"checkpoint\.pt is not a complete training checkpoint \(missing: "
                                           r"optimizer\).*--force"):
        load_checkpoint(path)


_BANK = """
import torch
torch.set_num_threads(1)
from pathlib import Path
from hsisr_bench.data.patches import PatchBank
from hsisr_bench.data.synthetic import make_synthetic_scenes
from hsisr_bench.errors import DataError
scenes = make_synthetic_scenes(n_scenes=2, size=64, bands=8, seed=0)
try:
    PatchBank(scenes, scale=2, lr_patch=8, patches_per_image=4, cache_dir=Path({cache!r}))
except DataError as error:
    print("CLEAN", error)
"""


def _no_temporaries(folder):
    return [p.name for p in folder.rglob("*.tmp")]


def test_a_full_disk_while_building_the_patch_cache_is_an_error_line(tmp_path):
    # EFBIG from RLIMIT_FSIZE: the cache files (~130 KB each) exceed the 60 KB limit.
    cache = tmp_path / "cache"
    result = _run_limited(_BANK.format(cache=str(cache)), limit=60_000)
    assert result.returncode == 0, (result.returncode, result.stderr[-2000:])
    assert "CLEAN Cannot write the patch cache file" in result.stdout and "full" in result.stdout
    assert _no_temporaries(cache) == []


def test_a_full_tmpfs_while_building_the_patch_cache_is_an_error_not_a_bus_error(tmp_path):
    # The real failure: a sparse memory-mapped file on a full file system dies with SIGBUS (exit 135).
    mount = tmp_path / "small"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(mount)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root); the RLIMIT_FSIZE test covers EFBIG")
    try:
        result = _run_limited(_BANK.format(cache=str(mount / "cache")), limit=-1)
        assert result.returncode == 0, (result.returncode, result.stderr[-2000:])
        assert "CLEAN Cannot write the patch cache file" in result.stdout
        assert _no_temporaries(mount) == []
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_stale_cache_temporaries_are_removed_and_live_ones_kept(tmp_path):
    import os
    import time

    from hsisr_bench.data.patches import PatchBank
    from hsisr_bench.data.synthetic import make_synthetic_scenes

    folder = tmp_path / "synthetic"
    folder.mkdir()
    stale, live = folder / ".lr__abc.npy.x1.npy.tmp", folder / ".lr__abc.npy.x2.npy.tmp"
    stale.write_bytes(b"x")
    live.write_bytes(b"x")
    old = time.time() - 2 * 3600
    os.utime(stale, (old, old))
    PatchBank(make_synthetic_scenes(n_scenes=2, size=32, bands=4, seed=0), scale=2, lr_patch=8,
              patches_per_image=2, cache_dir=tmp_path)
    assert not stale.exists() and live.exists()


def test_a_checkpoint_for_another_network_is_an_error_naming_it(tmp_path):
    from hsisr_bench.engine.checkpoint import restore_model

    model = torch.nn.Conv2d(3, 4, 3)
    wrong = torch.nn.Conv2d(3, 5, 3).state_dict()
    with pytest.raises(ResultsError, match=r"checkpoint .*ck\.pt does not fit this run's network \(.*size "
                                           r"mismatch.*delete it to restart .*--force"):
        restore_model(model, wrong, tmp_path / "ck.pt")
    optimizer = torch.optim.Adam(model.parameters())
    with pytest.raises(ResultsError, match="does not fit"):
        restore_model(optimizer, {"state": {}, "param_groups": [{"params": [0]}]}, tmp_path / "ck.pt")


@pytest.mark.parametrize("epoch", [0, 1])  # 0: resume training (train.py); 1: finished, evaluate only (runner)
def test_resuming_from_a_misshapen_checkpoint_is_an_error_line(tmp_path, epoch):
    # A checkpoint whose model does not fit the run's network (crafted, or written for other options):
    # `run` used to end in load_state_dict's RuntimeError traceback.
    from click.testing import CliRunner

    from hsisr_bench.cli import main

    args = ["run", "--methods", "edsr", "--dataset", "synthetic", "--scale", "2", "--profile", "smoke",
            "--device", "cpu", "--out", str(tmp_path / "out"), "--set", "protocol.epochs=1",
            "--set", "protocol.steps_per_epoch=1", "--set", "dataset.n_scenes=4", "--set", "dataset.size=32",
            "--set", "protocol.test_region=16", "--set", "protocol.lr_patch=8"]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    [path] = list((tmp_path / "out").rglob("checkpoint.pt"))
    state = torch.load(path, weights_only=True)
    state["model"] = {key: value[..., :1] if value.ndim == 4 else value for key, value in state["model"].items()}
    state["epoch"] = epoch
    torch.save(state, path)
    (path.parent / "metrics.json").unlink()
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 2, again.output
    assert "does not fit this run's network" in again.output and "checkpoint.pt" in again.output
