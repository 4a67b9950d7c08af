"""The training loop: losses, data order, exact resume after kill -9 and Ctrl-C, NaN stop, DDP (gloo)."""

from __future__ import annotations

import math
import os
import signal
import socket
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn as nn

from hsisr_bench.data.patches import PatchBank, band_mean
from hsisr_bench.data.synthetic import make_synthetic_scenes
from hsisr_bench.engine import losses
from hsisr_bench.engine import train as train_module
from hsisr_bench.engine.train import TrainSettings, epoch_order, load_checkpoint, train
from hsisr_bench.errors import ConfigError, TrainingError
from hsisr_bench.registry import create_method, get_method_info

TINY_EDSR = {"n_resblocks": 1, "n_feats": 8}
# The CLI call shared by the kill -9 test: 3 epochs of 2 steps of a small EDSR on tiny synthetic data.
CLI_TRAIN = ["train", "--method", "edsr", "--dataset", "synthetic", "--scale", "2", "--profile", "smoke",
             "--device", "cpu", "--no-progress", "--set", "dataset.n_scenes=4", "--set", "dataset.size=48",
             "--set", "protocol.epochs=3", "--set", "method.options.n_resblocks=1",
             "--set", "method.options.n_feats=8"]


@pytest.fixture(scope="module")
def tiny_bank():
    scenes = make_synthetic_scenes(n_scenes=2, size=32, bands=8)
    return PatchBank(scenes, scale=2, lr_patch=6, patches_per_image=3, rescales=(1.0,), augment=True, seed=0), \
        band_mean(scenes)


def _settings(**changes) -> TrainSettings:
    base = dict(epochs=3, batch_size=4, lr=1e-3, loss="l1", seed=0, steps_per_epoch=3, progress=False)
    base.update(changes)
    return TrainSettings(**base)


def _model() -> nn.Module:
    torch.manual_seed(0)
    return create_method("edsr", bands=8, scale=2, **TINY_EDSR)


# ------------------------------------------------------------------------------------------ losses


def test_losses_on_hand_computed_cases():
    hr = torch.tensor([1.0, 0.0]).reshape(1, 2, 1, 1)
    sr = torch.tensor([0.0, 1.0]).reshape(1, 2, 1, 1)  # orthogonal spectra: SAM = pi/2, MSE = 1, L1 = 1
    assert losses.get_loss("l1")(sr, hr).item() == pytest.approx(1.0)
    assert losses.get_loss("mse")(sr, hr).item() == pytest.approx(1.0)
    assert losses.sam_radians(sr, hr).item() == pytest.approx(math.pi / 2, abs=1e-6)
    assert losses.get_loss("gdrrn")(sr, hr).item() == pytest.approx(0.5 + 0.1 * math.pi / 2, abs=1e-6)
    assert losses.get_loss("mse_sam")(sr, hr).item() == pytest.approx(0.5 + 0.5 * math.pi / 2, abs=1e-6)
    same = torch.rand(2, 5, 3, 3)
    assert losses.sam_radians(same, same).item() < 1e-3
    x = torch.rand(2, 5, 3, 3, requires_grad=True)
    losses.get_loss("mse_sam")(x, x.detach()).backward()  # an exact match must not give NaN gradients
    assert torch.isfinite(x.grad).all()
    with pytest.raises(ConfigError, match="Did you mean 'mse'"):
        losses.get_loss("mes")


def test_epoch_order_depends_only_on_seed_and_epoch():
    a = epoch_order(10, 25, seed=3, epoch=2)
    assert torch.equal(a, epoch_order(10, 25, seed=3, epoch=2))
    assert not torch.equal(a, epoch_order(10, 25, seed=3, epoch=1))
    assert sorted(a[:10].tolist()) == list(range(10))  # each chained round is a permutation


# ------------------------------------------------------------------------------------------ the loop


def test_training_lowers_the_loss_and_halves_the_lr(tiny_bank, tmp_path):
    bank, mean = tiny_bank
    model = _model()
    result = train(model, get_method_info("edsr"), bank, mean, scale=2, run_dir=tmp_path,
                   settings=_settings(epochs=4, lr_step_epochs=2), config={"run_id": "x"}, notify=lambda m: None)
    assert [row["lr"] for row in result.log] == [1e-3, 1e-3, 5e-4, 5e-4]
    assert result.log[-1]["loss"] < result.log[0]["loss"]
    assert (tmp_path / "train_log.csv").read_text().splitlines()[0] == "epoch,loss,lr,seconds"
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["epoch"] == 4 and state["step"] == 0 and state["config"] == {"run_id": "x"}


def test_fp16_needs_cuda_and_cpu_bf16_needs_bf16_instructions(tiny_bank, monkeypatch):
    bank, mean = tiny_bank
    with pytest.raises(ConfigError, match="needs a CUDA device"):
        train(_model(), get_method_info("edsr"), bank, mean, scale=2, settings=_settings(amp="fp16"))
    monkeypatch.setattr(train_module, "cpu_supports_bf16", lambda: False)
    with pytest.raises(ConfigError, match="bf16 instructions"):
        train(_model(), get_method_info("edsr"), bank, mean, scale=2, settings=_settings(amp="bf16"))


def test_nan_loss_stops_with_training_error_and_keeps_the_last_checkpoint(tiny_bank, tmp_path):
    bank, mean = tiny_bank
    # Adam moves every weight by ~lr per step: lr = 1e30 makes the outputs overflow after epoch 1.
    with pytest.raises(TrainingError, match=r"epoch 2, step 1.*end of epoch 1"):
        train(_model(), get_method_info("edsr"), bank, mean, scale=2, run_dir=tmp_path,
              settings=_settings(lr=1e30, steps_per_epoch=1), config={"run_id": "x"}, notify=lambda m: None)
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["epoch"] == 1
    assert all(torch.isfinite(t).all() for t in state["model"].values())


def test_ctrl_c_saves_mid_epoch_and_resume_is_exact(tiny_bank, tmp_path, monkeypatch):
    bank, mean = tiny_bank
    info = get_method_info("edsr")
    reference = _model()
    train(reference, info, bank, mean, scale=2, settings=_settings())

    calls = {"n": 0}
    real_get_loss = losses.get_loss

    def interrupting_get_loss(name):
        loss = real_get_loss(name)

        def wrapped(sr, hr):
            calls["n"] += 1
            if calls["n"] == 5:  # epoch 2, step 2: as if the user pressed Ctrl-C during this step
                os.kill(os.getpid(), signal.SIGINT)
            return loss(sr, hr)

        return wrapped

    monkeypatch.setattr(train_module, "get_loss", interrupting_get_loss)
    messages = []
    with pytest.raises(KeyboardInterrupt):
        train(_model(), info, bank, mean, scale=2, run_dir=tmp_path, settings=_settings(),
              config={"run_id": "x"}, notify=messages.append)
    assert "Run the same command again to resume" in messages[-1]
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert (state["epoch"], state["step"]) == (1, 2)
    monkeypatch.setattr(train_module, "get_loss", real_get_loss)
    resumed = _model()
    result = train(resumed, info, bank, mean, scale=2, run_dir=tmp_path, settings=_settings(),
                   config={"run_id": "x"}, notify=messages.append)
    assert result.resumed_from == (1, 2)
    for key, value in reference.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key


def test_kill_9_then_resume_equals_an_uninterrupted_run(tmp_path, subprocess_env):
    """A child is SIGKILLed while renaming its epoch-2 checkpoint into place; the same command resumes."""
    killer = textwrap.dedent(f"""
        import os, signal, sys
        real_replace = os.replace
        saves = []
        def replace(src, dst):
            if str(dst).endswith("checkpoint.pt"):
                saves.append(dst)
                if len(saves) == 2:  # epoch 2's checkpoint is written to its temporary file, not renamed
                    os.kill(os.getpid(), signal.SIGKILL)
            real_replace(src, dst)
        os.replace = replace
        from hsisr_bench.cli import main
        main({CLI_TRAIN + ["--out", str(tmp_path / "killed")]!r})
    """)
    cli = [sys.executable, "-m", "hsisr_bench.cli"]
    killed = subprocess.run([sys.executable, "-c", killer], env=subprocess_env, capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    run_dir = tmp_path / "killed" / "synthetic" / "x2" / "edsr" / "seed0"
    assert load_checkpoint(run_dir / "checkpoint.pt")["epoch"] == 1
    resumed = subprocess.run(cli + CLI_TRAIN + ["--out", str(tmp_path / "killed")], env=subprocess_env,
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "Resuming" in resumed.stderr and "epoch 2" in resumed.stderr
    whole = subprocess.run(cli + CLI_TRAIN + ["--out", str(tmp_path / "whole")], env=subprocess_env,
                           capture_output=True, text=True)
    assert whole.returncode == 0, whole.stderr
    a = load_checkpoint(run_dir / "checkpoint.pt")
    b = load_checkpoint(tmp_path / "whole" / "synthetic" / "x2" / "edsr" / "seed0" / "checkpoint.pt")
    assert a["epoch"] == b["epoch"] == 3
    assert [r["loss"] for r in a["log"]] == [r["loss"] for r in b["log"]]
    for key in b["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert not list(run_dir.glob(".*.tmp"))  # the killed writer's temporary file was cleaned up


# ------------------------------------------------------------------------------------------ DDP


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _CountingBank(torch.utils.data.Dataset):
    def __init__(self, bank):
        self.bank, self.reads = bank, 0

    def __len__(self):
        return len(self.bank)

    def __getitem__(self, index):
        self.reads += 1
        return self.bank[index]


def _ddp_worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from hsisr_bench.engine import distributed

    info = distributed.init_from_env("cpu")
    assert (info.rank, info.world) == (rank, world)
    scenes = make_synthetic_scenes(n_scenes=2, size=32, bands=8)
    bank = _CountingBank(PatchBank(scenes, scale=2, lr_patch=6, patches_per_image=3, rescales=(1.0,),
                                   augment=True, seed=0))
    model = _model()
    train(model, get_method_info("edsr"), bank, band_mean(scenes), scale=2, settings=_settings(epochs=2),
          run_dir=None)
    assert bank.reads == 2 * 3 * 4 // world  # epochs x steps x batch, shared between the processes
    if rank == 0:
        torch.save(model.state_dict(), out)
    torch.distributed.destroy_process_group()


def test_ddp_with_gloo_and_two_processes_matches_one_process(tiny_bank, tmp_path):
    import torch.multiprocessing as mp

    out = str(tmp_path / "ddp.pt")
    mp.spawn(_ddp_worker, args=(2, _free_port(), out), nprocs=2, join=True)
    bank, mean = tiny_bank
    single, init = _model(), _model()
    train(single, get_method_info("edsr"), bank, mean, scale=2, settings=_settings(epochs=2))
    ddp = torch.load(out, weights_only=True)
    moved = 0
    for key, value in single.state_dict().items():
        # each process takes half of every batch; DDP averages the gradients: the same steps up to rounding
        torch.testing.assert_close(ddp[key], value, atol=1e-5, rtol=1e-4)
        moved += int(not torch.equal(value, init.state_dict()[key]))
    assert moved > 0
