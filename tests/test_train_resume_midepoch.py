"""Exact resume after a Ctrl-C in the middle of an epoch: the scenario of ``hsibench doctor``'s resume check.

The doctor trains EDSR tiny (its ``_TINY`` options) on the smoke profile for 6 epochs of 20 steps, sends
SIGINT as soon as the first checkpoint appears (it lands at epoch 2, step 9) and runs the same command
again. Here the same cell runs in-process and the SIGINT is sent from inside step 9 of epoch 2, so the
interrupt always lands at that step. The resumed run must end with the uninterrupted run's weights, loss
log and RNG states: a resumed epoch starts one more DataLoader iterator than the uninterrupted run, and
each iterator used to draw its workers' base seed from torch's global RNG, which then drifted by one draw
(any random draw after the resume point, e.g. dropout, changed the weights).
"""

from __future__ import annotations

import os
import signal

import pytest
import torch
import torch.nn as nn

from hsisr_bench import config
from hsisr_bench.data.patches import PatchBank, band_mean
from hsisr_bench.data.synthetic import make_synthetic_scenes
from hsisr_bench.doctor import _TINY
from hsisr_bench.engine import losses
from hsisr_bench.engine import train as train_module
from hsisr_bench.engine.plan import Cell
from hsisr_bench.engine.runner import run_cell
from hsisr_bench.engine.train import TrainSettings, load_checkpoint, train
from hsisr_bench.registry import create_method, get_method_info

STEPS = 20
INTERRUPT_AT = STEPS + 9  # the 29th step overall: epoch 2, step 9


def _interrupt_at(monkeypatch, at: int) -> None:
    """Make the training loop's loss send this process a real SIGINT during its ``at``-th step."""
    real_get_loss = losses.get_loss
    calls = {"n": 0}

    def get_loss(name):
        loss = real_get_loss(name)

        def wrapped(sr, hr):
            calls["n"] += 1
            if calls["n"] == at:
                os.kill(os.getpid(), signal.SIGINT)
            return loss(sr, hr)

        return wrapped

    monkeypatch.setattr(train_module, "get_loss", get_loss)


def _doctor_cell(out) -> Cell:
    run = config.plan_runs(methods="edsr", datasets=["synthetic"], scales=[2], profile="smoke", device="cpu",
                           overrides=[*_TINY, "protocol.epochs=6", f"protocol.steps_per_epoch={STEPS}"])[0]
    return Cell(run, out, device="cpu")


def _final_checkpoint(out) -> dict:
    return load_checkpoint(next(out.rglob("checkpoint.pt")))


def test_doctor_scenario_ctrl_c_at_epoch_2_step_9_resumes_exactly(tmp_path, monkeypatch):
    quiet = dict(mode="train", progress=False, notify=lambda message: None)
    run_cell(_doctor_cell(tmp_path / "whole"), **quiet)

    messages: list[str] = []
    with monkeypatch.context() as patch:
        _interrupt_at(patch, INTERRUPT_AT)
        with pytest.raises(KeyboardInterrupt):
            run_cell(_doctor_cell(tmp_path / "parted"), mode="train", progress=False, notify=messages.append)
    assert any("saved a checkpoint at epoch 2, step 9" in m for m in messages), messages
    run_cell(_doctor_cell(tmp_path / "parted"), mode="train", progress=False, notify=messages.append)
    assert any("at epoch 2, step 9" in m for m in messages if m.startswith("Resuming")), messages

    whole, parted = _final_checkpoint(tmp_path / "whole"), _final_checkpoint(tmp_path / "parted")
    assert whole["epoch"] == parted["epoch"] == 6
    for key, value in whole["model"].items():
        assert torch.equal(value, parted["model"][key]), key
    assert [r["loss"] for r in whole["log"]] == [r["loss"] for r in parted["log"]]
    assert torch.equal(whole["rng"]["torch"], parted["rng"]["torch"])  # drifted by one draw before the fix


class _DropoutEDSR(nn.Module):
    """A tiny EDSR behind dropout: every training step draws from torch's global RNG."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.drop = nn.Dropout(0.2)
        self.net = create_method("edsr", bands=8, scale=2, n_resblocks=1, n_feats=8)

    def forward(self, x):
        return self.net(self.drop(x))


def test_mid_epoch_resume_is_exact_for_a_model_that_draws_random_numbers(tmp_path, monkeypatch):
    scenes = make_synthetic_scenes(n_scenes=2, size=32, bands=8)
    bank = PatchBank(scenes, scale=2, lr_patch=6, patches_per_image=3, rescales=(1.0,), augment=True, seed=0)
    mean, info = band_mean(scenes), get_method_info("edsr")
    settings = TrainSettings(epochs=3, batch_size=4, lr=1e-3, loss="l1", steps_per_epoch=3, progress=False)

    def run(model, run_dir=None):
        torch.manual_seed(1)  # the runner seeds the global RNG before training
        return train(model, info, bank, mean, scale=2, settings=settings, run_dir=run_dir, config={"run_id": "x"},
                     notify=lambda message: None)

    reference = _DropoutEDSR()
    run(reference)
    with monkeypatch.context() as patch:
        _interrupt_at(patch, 5)  # epoch 2, step 2
        with pytest.raises(KeyboardInterrupt):
            run(_DropoutEDSR(), tmp_path)
    resumed = _DropoutEDSR()
    assert run(resumed, tmp_path).resumed_from == (1, 2)
    for key, value in reference.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key
