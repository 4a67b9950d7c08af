"""Issue 17 item 6, on the CPU: the loss is averaged over processes at the checks only, and metrics.json's
runtime record states what was in force (cuDNN autotuning only for a training run by this call, ``tf32``
as the evaluation precision when TF32 is on), with CUDA faked where the record needs it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hsisr_bench import config
from hsisr_bench.engine import distributed
from hsisr_bench.engine import evaluate as evaluate_module
from hsisr_bench.engine.evaluate import eval_image, evaluate_run, open_cell_data, resolve_config
from hsisr_bench.engine.train import train
from hsisr_bench.registry import create_method, get_method_info

from test_train import _model, _settings, tiny_bank  # noqa: F401 - the same tiny bank, settings and network


def test_the_loss_is_all_reduced_at_the_checks_not_at_every_step(tiny_bank, monkeypatch):
    bank, mean = tiny_bank
    calls = {"n": 0}
    real = distributed.all_reduce_mean

    def counted(value):
        calls["n"] += 1
        return real(value)

    monkeypatch.setattr(distributed, "all_reduce_mean", counted)
    result = train(_model(), get_method_info("edsr"), bank, mean, scale=2,
                   settings=_settings(epochs=2, steps_per_epoch=6, check_every=3))
    assert calls["n"] == 2 * 2  # 2 epochs x 2 checks (was one collective per step: 12)
    assert all(np.isfinite(row["loss"]) for row in result.log)


def _record(tmp_path, monkeypatch, *, trained_here: bool, tf32: dict, extra=None) -> dict:
    run = config.plan_runs(methods="edsr", datasets=["synthetic"], scales=[2], profile="smoke", device="cpu",
                           overrides=["dataset.n_scenes=4", "dataset.size=48"])[0]
    data = open_cell_data(run)
    info = get_method_info("edsr")
    model = create_method("edsr", bands=31, scale=2, n_resblocks=1, n_feats=8)
    crop = info.output_crop
    resolved = resolve_config(run, data, info, crop, device="cuda:0")
    image = eval_image(data.dataset.load(data.test[0]).cube, data.test[0], 16, 2)
    # The scored forward is faked (no GPU here): the record is what is checked.
    monkeypatch.setattr(evaluate_module, "predict", lambda *a, **k: np.clip(image.hr, 0, 1))
    monkeypatch.setattr("hsisr_bench.engine.environment.tf32_state", lambda: dict(tf32))
    record = evaluate_run(run, info, model, crop, [image], np.zeros(31, np.float32), resolved, tmp_path,
                          "cuda:0", 1.0, 1, extra, trained_here=trained_here)
    return record["runtime"]


def test_cudnn_benchmark_is_recorded_only_for_a_training_done_by_this_run(tmp_path, monkeypatch):
    trained = _record(tmp_path / "a", monkeypatch, trained_here=True, tf32={"matmul": False, "cudnn": False})
    assert trained["cudnn_benchmark"] is True and trained["eval_precision"] == "fp32"
    scored = _record(tmp_path / "b", monkeypatch, trained_here=False, tf32={"matmul": False, "cudnn": False},
                     extra={"weights": {"file": "w.pt", "sha256": "0"}})  # --weights / evaluate only
    assert scored["cudnn_benchmark"] is None


@pytest.mark.parametrize("tf32", [{"matmul": False, "cudnn": True}, {"matmul": True, "cudnn": True}])
def test_eval_precision_says_tf32_when_tf32_is_on(tmp_path, monkeypatch, tf32):
    assert _record(tmp_path, monkeypatch, trained_here=True, tf32=tf32)["eval_precision"] == "tf32"
