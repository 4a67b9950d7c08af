"""Tiled inference on CUDA returns tiles through pinned buffers with asynchronous copies (issue 17 item 6),
checked on the CPU with the CUDA pieces faked: the same output as the ``.cpu()`` path, no blocking
``.cpu()`` per tile, and each tile written only after its copy's event completed."""

from __future__ import annotations

import sys

import numpy as np
import torch

from hsisr_bench.engine import infer
from hsisr_bench.engine.infer import super_resolve
from hsisr_bench.registry import create_method, get_method_info


class _FakeEvent:
    log: list = []

    def record(self):
        _FakeEvent.log.append("record")

    def synchronize(self):
        _FakeEvent.log.append("synchronize")


def test_tiles_come_back_through_pinned_buffers_with_non_blocking_copies(monkeypatch):
    torch.manual_seed(0)
    model = create_method("edsr", bands=8, scale=2, n_resblocks=1, n_feats=8).eval()
    info = get_method_info("edsr")
    lr = np.random.default_rng(0).random((8, 20, 18), dtype=np.float32)
    expected = super_resolve(model, lr, scale=2, info=info, tile=6, progress=False)

    buffers, copies, cpu_calls = [], [], {"n": 0}

    def pinned_empty(shape):
        buffer = torch.empty(shape, dtype=torch.float32)
        buffers.append(buffer)
        return buffer

    real_copy, real_cpu = torch.Tensor.copy_, torch.Tensor.cpu

    def copy_(self, src, non_blocking=False):
        if any(self is b for b in buffers):
            copies.append(non_blocking)
        return real_copy(self, src, non_blocking=non_blocking)

    def cpu(self, *args, **kwargs):
        cpu_calls["n"] += sys._getframe(1).f_code.co_filename == infer.__file__
        return real_cpu(self, *args, **kwargs)

    monkeypatch.setattr(infer, "_pinned_copies", lambda device: True)
    monkeypatch.setattr(infer, "_pinned_empty", pinned_empty)
    monkeypatch.setattr(torch.cuda, "Event", _FakeEvent)
    monkeypatch.setattr(torch.Tensor, "copy_", copy_)
    monkeypatch.setattr(torch.Tensor, "cpu", cpu)
    _FakeEvent.log = []
    got = super_resolve(model, lr, scale=2, info=info, tile=6, progress=False)
    n_tiles = len(buffers)
    assert n_tiles > 4 and copies == [True] * n_tiles  # one pinned buffer per tile, filled without blocking
    assert _FakeEvent.log.count("record") == _FakeEvent.log.count("synchronize") == n_tiles
    assert _FakeEvent.log[:2] == ["record", "record"]  # tile 1 is written after tile 2's copy is queued
    assert cpu_calls["n"] == 0
    assert torch.equal(torch.as_tensor(got), torch.as_tensor(expected))
