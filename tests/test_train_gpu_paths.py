"""The training loop's GPU-facing paths, checked on the CPU: device-independent resume, AMP that leaves the
inputs in float32, the DataLoader data path (same weights, bit for bit, as the plain loop), NaN checks
without a per-step host sync, cudnn/compile/DDP settings, and per-epoch progress lines for logs."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from hsisr_bench.data.imresize import imresize
from hsisr_bench.data.patches import PatchBank, band_mean
from hsisr_bench.data.synthetic import make_synthetic_scenes
from hsisr_bench.engine import checkpoint as checkpoint_module
from hsisr_bench.engine import losses
from hsisr_bench.engine import train as train_module
from hsisr_bench.engine.batches import StepBatchSampler, make_loader
from hsisr_bench.engine.train import (TrainSettings, epoch_order, forward_with_mean, load_checkpoint,
                                      make_optimizer, output_crop_of, train)
from hsisr_bench.errors import TrainingError
from hsisr_bench.registry import create_method, get_method_info, list_methods

from test_train import _model, _settings, tiny_bank  # noqa: F401 - the same tiny bank, settings and network


def _quiet(message: str) -> None:
    del message


# ------------------------------------------------------------------------------ the data path


def _plain_loop(bank, mean, settings: TrainSettings) -> tuple[nn.Module, list[float]]:
    """The training loop as it was before the DataLoader: numpy items stacked on the main thread, one
    ``float(loss)`` per step. Checked, when the DataLoader replaced it, to give the former ``train``'s
    weights bit for bit (same SHA-256 of the state dict) and the same logged losses."""
    model = _model()
    mean = torch.as_tensor(mean, dtype=torch.float32).reshape(1, -1, 1, 1)  # (1, L, 1, 1)
    optimizer = make_optimizer(model, settings)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=settings.lr_step_epochs,
                                                gamma=settings.lr_gamma)
    loss_fn, steps, batch, epoch_losses = losses.get_loss(settings.loss), settings.steps_per_epoch, \
        settings.batch_size, []
    model.train()
    for epoch in range(settings.epochs):
        order, total = epoch_order(len(bank), steps * batch, settings.seed, epoch), 0.0
        for step in range(steps):
            pairs = [bank[int(i)] for i in order[step * batch : (step + 1) * batch]]
            lr = torch.stack([p[0] for p in pairs])  # (B, L, h, w)
            hr = torch.stack([p[1] for p in pairs])  # (B, L, H, W)
            loss = loss_fn(model(lr - mean).float() + mean, hr)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach())
        scheduler.step()
        epoch_losses.append(total / steps)
    return model, epoch_losses


@pytest.mark.parametrize("workers", [0, 2])
def test_the_dataloader_path_gives_the_plain_loops_weights_bit_for_bit(tiny_bank, workers):
    bank, mean = tiny_bank
    settings = _settings(lr_step_epochs=2, workers=workers, check_every=2)
    expected, expected_losses = _plain_loop(bank, mean, settings)
    model = _model()
    result = train(model, get_method_info("edsr"), bank, mean, scale=2, settings=settings)
    assert [row["loss"] for row in result.log] == expected_losses
    for key, value in expected.state_dict().items():
        assert torch.equal(value, model.state_dict()[key]), key


def test_loader_workers_survive_ctrl_c(tiny_bank, monkeypatch):
    """A terminal's Ctrl-C reaches the workers too: they must survive it, so that the loop still gets the
    batches it waits for and stops at its own step boundary."""
    import multiprocessing
    import os
    import signal
    import time

    bank, mean = tiny_bank
    real_get_loss, calls = losses.get_loss, {"n": 0}

    def get_loss(name):
        loss = real_get_loss(name)

        def wrapped(sr, hr):
            calls["n"] += 1
            if calls["n"] == 2:
                workers = multiprocessing.active_children()
                assert len(workers) == 2
                for _ in range(2):  # twice: forked workers inherit the loop's first-Ctrl-C handler
                    for worker in workers:
                        os.kill(worker.pid, signal.SIGINT)
                    time.sleep(0.2)
            return loss(sr, hr)

        return wrapped

    monkeypatch.setattr(train_module, "get_loss", get_loss)
    settings = _settings(epochs=2, workers=2)
    model = _model()
    train(model, get_method_info("edsr"), bank, mean, scale=2, settings=settings)
    monkeypatch.setattr(train_module, "get_loss", real_get_loss)
    expected, _ = _plain_loop(bank, mean, settings)
    for key, value in expected.state_dict().items():
        assert torch.equal(value, model.state_dict()[key]), key


def test_the_batch_sampler_keeps_the_seeded_order_the_rank_slice_and_the_resume_step():
    order = epoch_order(20, 5 * 4, seed=3, epoch=2)
    sampler = StepBatchSampler(20, steps=5, batch=4, seed=3, rank=1, world=2)
    sampler.set_epoch(2, first_step=2)
    assert len(sampler) == 3
    assert list(sampler) == [order[k * 4 : (k + 1) * 4][1::2].tolist() for k in range(2, 5)]


def test_the_loader_pins_memory_and_keeps_workers_on_cuda(tiny_bank):
    bank, _ = tiny_bank
    sampler = StepBatchSampler(len(bank), steps=2, batch=4, seed=0)
    cuda = make_loader(bank, sampler, workers=2, device=torch.device("cuda"))  # constructing needs no GPU
    assert cuda.pin_memory and cuda.persistent_workers and cuda.num_workers == 2
    cpu = make_loader(bank, sampler, workers=0, device=torch.device("cpu"))
    assert not cpu.pin_memory and not cpu.persistent_workers


# ------------------------------------------------------------------------------ resume


@pytest.mark.filterwarnings("ignore:.*meta parameter")
def test_resume_reads_the_checkpoint_onto_the_cpu_whatever_the_training_device(tiny_bank, tmp_path, monkeypatch):
    """Resume on a non-CPU device (``meta`` stands in for CUDA): the RNG states must stay CPU tensors.

    Loading with ``map_location=<device>`` put them on the device, and ``torch.set_rng_state`` raised.
    """
    bank, mean = tiny_bank
    info = get_method_info("edsr")
    train(_model(), info, bank, mean, scale=2, run_dir=tmp_path, settings=_settings(epochs=1),
          config={"run_id": "x"}, notify=_quiet)
    locations = []
    real_load = torch.load

    def spying_load(*args, **kwargs):
        locations.append(str(kwargs.get("map_location")))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spying_load)
    messages = []
    # The run is complete (epoch 1 of 1): resuming restores every state and runs no step.
    result = train(_model(), info, bank, mean, scale=2, run_dir=tmp_path, config={"run_id": "x"},
                   settings=_settings(epochs=1, device="meta"), notify=messages.append)
    assert result.resumed_from == (1, 0) and len(result.log) == 1
    assert locations == ["cpu"]
    assert load_checkpoint(tmp_path / "checkpoint.pt")["rng"]["torch"].device.type == "cpu"  # default: cpu


class _FakeCuda:
    """``torch.cuda`` RNG functions of a machine with ``count`` GPUs (``set_rng_state_all`` as torch's own)."""

    def __init__(self, count: int):
        self.count, self.restored = count, {}

    def set_rng_state(self, state, device=0):
        index = torch.device(device).index if not isinstance(device, int) else device
        if index is None or index >= self.count:
            raise RuntimeError(f"invalid device ordinal {device}")
        assert state.device.type == "cpu", "CUDA RNG states must be restored from CPU tensors"
        self.restored[index] = state.clone()

    def set_rng_state_all(self, states):
        for index, state in enumerate(states):
            self.set_rng_state(state, index)

    def install(self, monkeypatch):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: self.count > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: self.count)
        monkeypatch.setattr(torch.cuda, "set_rng_state", self.set_rng_state)
        monkeypatch.setattr(torch.cuda, "set_rng_state_all", self.set_rng_state_all)
        monkeypatch.setattr(torch.cuda.random, "set_rng_state", self.set_rng_state)


@pytest.mark.parametrize("devices", [0, 1, 2, 3])
def test_rng_states_of_two_gpus_restore_on_any_device_count(monkeypatch, devices):
    cpu_state = checkpoint_module.rng_state()
    gpu_states = [torch.full((16,), 7, dtype=torch.uint8), torch.full((16,), 9, dtype=torch.uint8)]
    fake = _FakeCuda(devices)
    fake.install(monkeypatch)
    checkpoint_module.set_rng_state({**cpu_state, "cuda": gpu_states})
    assert sorted(fake.restored) == list(range(min(devices, 2)))
    for index, state in fake.restored.items():
        assert torch.equal(state, gpu_states[index])
    # A checkpoint written on the CPU (no CUDA states) resumes on a GPU machine, leaving its generators be.
    fake.restored.clear()
    checkpoint_module.set_rng_state(cpu_state)
    assert fake.restored == {}


def test_the_checkpoint_stores_cuda_rng_states_as_cpu_tensors(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: [torch.zeros(16, dtype=torch.uint8)] * 2)
    state = checkpoint_module.rng_state()
    assert [s.device.type for s in state["cuda"]] == ["cpu", "cpu"]


# ------------------------------------------------------------------------------ precision


class _InputSpy(nn.Module):
    """A 3×3 convolution that records its input and whether autocast was on for it."""

    def __init__(self, bands: int):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(bands, bands, 3, padding=1)
        self.inputs, self.autocast = [], []

    def forward(self, x):
        self.inputs.append(x.detach().clone())
        self.autocast.append(torch.is_autocast_enabled("cpu"))
        return self.conv(x)


def test_upsampling_and_band_mean_run_in_float32_under_autocast():
    info = get_method_info("gdrrn")  # an ``upsampled``-input method
    lr = torch.rand(2, 8, 6, 6)
    mean = torch.rand(1, 8, 1, 1)
    expected = imresize(lr, 2) - mean  # float32, no autocast: what the model sees at test time
    spy = _InputSpy(8)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # the caller's autocast block
        out = forward_with_mean(spy, info, lr, mean, 2, output_crop_of(spy, info))
    assert spy.inputs[-1].dtype == torch.float32 and torch.equal(spy.inputs[-1], expected)
    assert spy.autocast[-1] and out.dtype == torch.float32
    # The same with the autocast handed to forward_with_mean, as the training loop does.
    forward_with_mean(spy, info, lr, mean, 2, output_crop_of(spy, info),
                      autocast=torch.autocast("cpu", dtype=torch.bfloat16))
    assert torch.equal(spy.inputs[-1], expected) and spy.autocast[-1]


@pytest.mark.skipif(not train_module.cpu_supports_bf16(), reason="this CPU has no bf16 instructions")
def test_bf16_training_on_cpu_autocasts_only_the_model(tiny_bank):
    bank, mean = tiny_bank
    info = get_method_info("gdrrn")
    spy = _InputSpy(8)
    result = train(spy, info, bank, mean, scale=2, settings=_settings(epochs=1, steps_per_epoch=2, amp="bf16",
                                                                      loss="gdrrn"))
    assert math.isfinite(result.log[0]["loss"]) and all(spy.autocast)
    order = epoch_order(len(bank), 2 * 4, 0, 0)
    lr = torch.stack([bank[int(i)][0] for i in order[:4]])  # (B, L, h, w): the first step's batch
    mean_t = torch.as_tensor(mean).reshape(1, -1, 1, 1)
    assert torch.equal(spy.inputs[0], imresize(lr, 2) - mean_t)


# ------------------------------------------------------------------------------ NaN without per-step syncs


def _nan_at(call: int):
    real_get_loss = losses.get_loss
    calls = {"n": 0}

    def get_loss(name):
        loss = real_get_loss(name)

        def wrapped(sr, hr):
            calls["n"] += 1
            value = loss(sr, hr)
            return value * float("nan") if calls["n"] >= call else value

        return wrapped

    return get_loss


def test_a_nan_loss_is_caught_at_the_next_check_and_no_nan_checkpoint_is_written(tiny_bank, tmp_path,
                                                                                 monkeypatch):
    bank, mean = tiny_bank
    monkeypatch.setattr(train_module, "get_loss", _nan_at(5 + 3))  # epoch 2 (of 5 steps), step 3
    with pytest.raises(TrainingError, match=r"epoch 2, step 4.*every 2 steps.*end of epoch 1") as caught:
        train(_model(), get_method_info("edsr"), bank, mean, scale=2, run_dir=tmp_path, config={"run_id": "x"},
              settings=_settings(steps_per_epoch=5, check_every=2), notify=_quiet)
    assert "loss became nan" in str(caught.value)
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert (state["epoch"], state["step"]) == (1, 0)
    assert all(torch.isfinite(t).all() for t in state["model"].values())


#: Small networks of every trainable method, for the sync count (16 bands, LR patches of 8).
_SMALL = {"edsr": {"n_resblocks": 1, "n_feats": 8}, "ssrnet": {"n_modules": 1, "n_feats": 8},
          "gdrrn": {"features": 8, "recursions": 2}, "fcnn3d": {}}
_PACKAGE = str(Path(train_module.__file__).resolve().parents[1])


@pytest.fixture(scope="module")
def bank16():
    """16-band LR patches of 8 pixels: large enough for every method's output crop (3D-FCNN: 4 bands, 6 px)."""
    scenes = make_synthetic_scenes(n_scenes=2, size=32, bands=16)
    return PatchBank(scenes, scale=2, lr_patch=8, patches_per_image=2, rescales=(1.0,), augment=False,
                     seed=0), band_mean(scenes)


def test_every_trainable_method_has_a_small_network_here():
    assert sorted(_SMALL) == sorted(m for m in list_methods() if get_method_info(m).trainable)


@pytest.mark.parametrize("method", sorted(_SMALL))
def test_the_loop_syncs_with_the_host_only_at_the_checks(bank16, monkeypatch, method):
    """Host reads of tensor values by any of the toolkit's modules during training, for every method.

    Upsampled methods (GDRRN, 3D-FCNN) once read one per step: ``imresize``'s finiteness check.
    Adam's step counter (``torch.optim``) is CPU-only by design and is not counted.
    """
    bank, mean = bank16
    syncs: list[str] = []
    for name in ("__float__", "__bool__", "__int__", "item", "tolist"):
        real = getattr(torch.Tensor, name)

        def counted(self, *args, _real=real, **kwargs):
            caller = sys._getframe(1).f_code.co_filename
            if caller.startswith(_PACKAGE) and not caller.endswith("batches.py"):  # the sampler's CPU order
                syncs.append(f"{Path(caller).name}:{sys._getframe(1).f_lineno}")
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    info = get_method_info(method)
    torch.manual_seed(0)
    model = create_method(method, bands=16, scale=2, **_SMALL[method])
    train(model, info, bank, mean, scale=2, settings=_settings(epochs=2, steps_per_epoch=4, check_every=2,
                                                               loss=info.loss, batch_size=2))
    # 2 epochs x 2 checks of the loss, and one check of the weights at each epoch's end
    assert len(syncs) == 2 * 2 + 2, syncs


# ------------------------------------------------------------------------------ settings


def test_cudnn_benchmark_is_on_while_training_on_cuda_and_restored_after(monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    with train_module.training_backends(torch.device("cuda:1")):
        assert torch.backends.cudnn.benchmark
    assert not torch.backends.cudnn.benchmark
    with train_module.training_backends(torch.device("cpu")):
        assert not torch.backends.cudnn.benchmark


def test_ddp_gets_explicit_device_ids(monkeypatch):
    assert train_module.ddp_device_ids(torch.device("cuda:1")) == [1]
    assert train_module.ddp_device_ids(torch.device("cpu")) is None
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 3)
    assert train_module.ddp_device_ids(torch.device("cuda")) == [3]


def test_the_compile_flag_routes_the_model_through_torch_compile(tiny_bank, monkeypatch):
    bank, mean = tiny_bank
    compiled = []

    def fake_compile(module, *args, **kwargs):
        compiled.append(module)
        return module

    monkeypatch.setattr(torch, "compile", fake_compile)
    model = _model()
    train(model, get_method_info("edsr"), bank, mean, scale=2, settings=_settings(epochs=1, steps_per_epoch=1))
    assert compiled == []
    train(model, get_method_info("edsr"), bank, mean, scale=2,
          settings=_settings(epochs=1, steps_per_epoch=1, compile=True))
    assert compiled == [model]


# ------------------------------------------------------------------------------ progress off a terminal


def test_one_line_per_epoch_through_notify_when_stderr_is_not_a_terminal(tiny_bank, monkeypatch):
    bank, mean = tiny_bank
    messages = []
    monkeypatch.setattr(train_module, "_on_terminal", lambda: False)
    train(_model(), get_method_info("edsr"), bank, mean, scale=2, validate=lambda model: 31.5,
          settings=_settings(epochs=2, steps_per_epoch=1, progress=None), notify=messages.append, label="cell")
    assert len(messages) == 2
    for k, line in enumerate(messages, start=1):
        assert line.startswith(f"cell: epoch {k}/2") and "loss " in line and "lr 1.00e-03" in line
        assert "val PSNR 31.50 dB" in line and "elapsed 0:00:" in line and "ETA 0:00:" in line
    assert messages[-1].endswith("ETA 0:00:00")
    # On a terminal the bar shows progress instead; with progress=False nothing is printed.
    for progress, terminal in ((None, True), (False, False)):
        messages.clear()
        monkeypatch.setattr(train_module, "_on_terminal", lambda t=terminal: t)
        train(_model(), get_method_info("edsr"), bank, mean, scale=2,
              settings=_settings(epochs=1, steps_per_epoch=1, progress=progress), notify=messages.append)
        assert messages == []
