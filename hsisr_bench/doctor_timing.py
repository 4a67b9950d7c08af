"""The doctor's measurements: training-step throughput, ``torch.compile``, inference latency, and the
projected time of a ``paper``-profile training. Their rows are ``measured`` (a failure is an exception
of the measured path), and their step times go to ``doctor.json`` for ``hsibench run --dry-run``.

A step time is a steady-state median: warm-up steps (lazy CUDA and oneDNN initialisation, the first
Adam step that allocates its state, autotuning) run until two consecutive steps agree within
:data:`SETTLE`, and only the steps after them are timed. A fixed single warm-up step was not enough:
the first configuration of a run read 5,679 ms/step at batch 4 against 956 ms at batch 16.
"""

from __future__ import annotations

import time
from typing import Callable, Iterator, Optional

import numpy as np
import torch

from hsisr_bench.doctor_base import Check, _precisions, _timed

#: Two consecutive warm-up steps within this ratio of each other end the warm-up.
SETTLE = 1.2


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def steady_step_time(step: Callable[[], float], *, steps: int = 3, min_warmup: int = 2, max_warmup: int = 8) -> dict:
    """Time ``step()`` once it is warm: the median of ``steps`` timed calls after the warm-up.

    Args:
        step: one training step, synchronised before it returns; returns the seconds it waited for data.
        steps: timed calls after the warm-up.
        min_warmup, max_warmup: warm-up calls: at least ``min_warmup``, then until two consecutive
            ones agree within :data:`SETTLE`, at most ``max_warmup``.

    Returns:
        ``{"seconds": median, "first": the first call, "warmup": calls excluded, "data_share": ...}``.
    """
    def timed() -> tuple[float, float]:
        began = time.perf_counter()
        waited = step()
        return time.perf_counter() - began, waited

    warm = [timed()]
    while len(warm) < max_warmup:
        if len(warm) >= min_warmup and (min_warmup < 2 or max(warm[-1][0], warm[-2][0])
                                        <= SETTLE * min(warm[-1][0], warm[-2][0])):
            break
        warm.append(timed())
    measured = [timed() for _ in range(steps)]
    times = sorted(t for t, _ in measured)
    return {"seconds": times[len(times) // 2], "first": warm[0][0], "warmup": len(warm),
            "data_share": float(sum(w for _, w in measured) / max(sum(t for t, _ in measured), 1e-12))}


def _step_time(method: str, device: str, *, batch: int, lr_patch: int, amp: str, steps: int = 3,
               compile_model: bool = False, options: Optional[dict] = None, min_warmup: int = 2) -> dict:
    """Steady median seconds of one training step (harness forward, loss, backward, Adam) and the data share.

    With ``compile_model`` the network runs through ``torch.compile``; ``first`` is the first step's
    time, which includes the compilation.
    """
    from hsisr_bench.engine.losses import get_loss
    from hsisr_bench.engine.train import TrainSettings, forward_with_mean, make_optimizer, output_crop_of
    from hsisr_bench.registry import create_method, get_method_info

    info = get_method_info(method)
    torch.manual_seed(0)
    model = create_method(method, bands=31, scale=2, **(options or {})).to(device).train()
    network = torch.compile(model) if compile_model else model
    settings = TrainSettings(epochs=1, batch_size=batch, lr=1e-4, loss=info.loss, device=device)
    optimizer, loss_fn, crop = make_optimizer(model, settings), get_loss(info.loss), output_crop_of(model, info)
    mean = torch.full((1, 31, 1, 1), 0.3, device=device)
    generator = torch.Generator().manual_seed(0)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
    kind = torch.device(device).type

    def step() -> float:
        began = time.perf_counter()
        lr = torch.rand((batch, 31, lr_patch, lr_patch), generator=generator)  # (B, L, h, w) as a bank batch
        hr = torch.rand((batch, 31, 2 * lr_patch, 2 * lr_patch), generator=generator)
        lr, hr = lr.to(device, non_blocking=True), hr.to(device, non_blocking=True)
        _sync(device)
        waited = time.perf_counter() - began
        context = torch.autocast(kind, dtype=dtype) if dtype else torch.autocast(kind, enabled=False)
        with context:
            sr = forward_with_mean(network, info, lr, mean, 2, crop)
        loss = loss_fn(sr.float(), crop.apply(hr))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        _sync(device)
        return waited

    return steady_step_time(step, steps=steps, min_warmup=min_warmup)


def _figure(method: str, amp: str, batch: int, lr_patch: int, seconds: float) -> dict:
    return {"method": method, "amp": amp, "batch": batch, "lr_patch": lr_patch, "scale": 2, "seconds": seconds}


def _throughput_plan(device: str) -> tuple[int, list[int]]:
    """LR patch side and batches: the paper's 32 and 16/64 on a GPU; smaller on a CPU, to stay in minutes."""
    return (32, [16, 64]) if device.startswith("cuda") else (8, [4, 16])


def check_throughput(device: str) -> Iterator[Check]:
    """Training step time of SSRNet and EDSR: fp32 vs bf16, small vs large batch (host vs device bound)."""
    lr_patch, batches = _throughput_plan(device)
    for method in ("ssrnet", "edsr"):
        for amp, skipped in _precisions(device)[:2]:
            precision = "fp32" if amp == "none" else amp
            if skipped:
                yield Check(f"throughput: {method} {precision}", "skipped", skipped)
                continue

            def run(method=method, amp=amp):
                parts, per_patch, figures = [], [], []
                for batch in batches:
                    measured = _step_time(method, device, batch=batch, lr_patch=lr_patch, amp=amp)
                    per_patch.append(measured["seconds"] / batch)
                    figures.append(_figure(method, amp, batch, lr_patch, measured["seconds"]))
                    parts.append(f"batch {batch}: {measured['seconds'] * 1000:.0f} ms/step, "
                                 f"{batch / measured['seconds']:.1f} patches/s, data {measured['data_share']:.0%} "
                                 f"({measured['warmup']} warm-up steps excluded)")
                bound = "device-bound" if per_patch[1] > 0.6 * per_patch[0] else "host-bound at the small batch"
                if method == "ssrnet" and amp == "none":  # the fast formulation against the plain model
                    plain = _step_time(method, device, batch=batches[0], lr_patch=lr_patch, amp=amp,
                                       options={"fast": False})
                    parts.append(f"plain model (fast=False) batch {batches[0]}: {plain['seconds'] * 1000:.0f} ms/step")
                return ("measured", f"LR {lr_patch}x{lr_patch} x2: " + "; ".join(parts) + f" ({bound})",
                        {"step_seconds": figures})

            yield _timed(f"throughput: {method} {precision}", run)


def check_compile(device: str) -> Iterator[Check]:
    """EDSR training step through ``torch.compile`` against eager (``--compile``; off by default)."""
    lr_patch, batches = _throughput_plan(device)

    def run():
        eager = _step_time("edsr", device, batch=batches[0], lr_patch=lr_patch, amp="none")
        compiled = _step_time("edsr", device, batch=batches[0], lr_patch=lr_patch, amp="none", compile_model=True)
        return "measured", (f"batch {batches[0]}, LR {lr_patch}x{lr_patch} x2: eager {eager['seconds'] * 1000:.0f} "
                            f"ms/step, compiled {compiled['seconds'] * 1000:.0f} ms/step "
                            f"({eager['seconds'] / compiled['seconds']:.2f}x; first compiled step "
                            f"{compiled['first']:.0f} s)")

    yield _timed("compile: edsr eager vs torch.compile", run)


def check_inference(device: str) -> Iterator[Check]:
    """Inference latency (and peak GPU memory) of SSRNet and EDSR on a 31-band LR 64x64 at x2."""
    from hsisr_bench.benchmarks import time_call
    from hsisr_bench.engine.infer import super_resolve
    from hsisr_bench.registry import create_method, get_method_info

    lr = np.random.default_rng(2).random((31, 64, 64), dtype=np.float32)
    for method in ("ssrnet", "edsr"):
        def run(method=method):
            model = create_method(method, bands=31, scale=2).eval()
            info = get_method_info(method)
            if device.startswith("cuda"):
                torch.cuda.reset_peak_memory_stats()
            seconds = time_call(lambda: super_resolve(model, lr, scale=2, info=info, device=device, progress=False),
                                repeats=3, warmup=1, device=device)
            memory = (f", peak GPU memory {torch.cuda.max_memory_allocated() / 2 ** 20:.0f} MB"
                      if device.startswith("cuda") else "")
            return "measured", f"{seconds * 1000:.0f} ms for 31x64x64 -> 31x128x128{memory}"

        yield _timed(f"inference: {method}", run)


def check_projection(device: str) -> Iterator[Check]:
    """The wall time of one ``paper``-profile CAVE x2 training per method, from a measured step at the paper's size.

    On a GPU every trainable method is measured; on a CPU only SSRNet (one step at the paper's size
    takes about half a minute there), after a single warm-up step.
    """
    from hsisr_bench.registry import get_method_info, list_methods

    trainable = [m for m in list_methods() if get_method_info(m).trainable]
    cuda = device.startswith("cuda")
    for method in trainable:
        if not cuda and method != "ssrnet":
            yield Check(f"projection: paper CAVE x2 {method}", "skipped",
                        "on a CPU only SSRNet is measured (a paper-size step takes minutes); run on a GPU")
            continue
        yield _timed(f"projection: paper CAVE x2 {method}", lambda method=method: _project(method, device, cuda))


def _project(method: str, device: str, cuda: bool) -> tuple:
    from hsisr_bench import config
    from hsisr_bench.data.splits import canonical_split_path, load_split
    from hsisr_bench.engine.plan import training_steps, training_summary

    run = config.plan_runs(methods=method, datasets=["cave"], scales=[2], profile="paper", device="cpu")[0]
    paper = run.protocol
    n_train = len(load_split(canonical_split_path("cave")).train)  # the canonical CAVE split: 26 of 32
    steps = training_steps(run, n_train)
    step = _step_time(method, device, batch=paper.batch_size, lr_patch=paper.lr_patch, amp="none",
                      steps=3 if cuda else 1, min_warmup=2 if cuda else 1, options=run.effective_options())
    hours = steps * step["seconds"] / 3600
    return ("measured", f"{training_summary(run, n_train)}: {steps:,} steps x {step['seconds']:.3g} s "
                        f"= {hours:.1f} h (fp32, this device; {step['warmup']} warm-up step(s) excluded)",
            {"step_seconds": [_figure(method, "none", paper.batch_size, paper.lr_patch, step["seconds"])]})
