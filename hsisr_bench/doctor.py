"""``hsibench doctor``: everything a person needs to trust a new machine, in a few minutes, as one table.

Each check calls the toolkit's own code (the registry, ``engine.infer.super_resolve``, the training
loop through ``engine.runner.run_cell``, the CLI for an interrupted run) and yields one :class:`Check`:
``pass``, ``fail`` or ``skipped`` with the reason. On a CPU the same steps run on the CPU and the ones
that need a GPU (CUDA equals CPU, fp16, two-GPU DDP) say so.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional

import numpy as np
import torch

#: The checks in the order they run; ``--checks`` selects a subset by these names.
CHECKS = ("environment", "contract", "tiled", "training", "resume", "throughput", "compile", "inference", "ddp",
          "projection")
#: Tiny synthetic data and networks for the smoke trainings: minutes on a CPU, seconds on a GPU.
_TINY = ("dataset.n_scenes=4", "dataset.size=48", "method.edsr.options.n_resblocks=1", "method.edsr.options.n_feats=8")


@dataclass
class Check:
    """One line of the verdict: what was checked, the outcome and what was measured."""

    name: str
    status: str  # "pass", "fail" or "skipped"
    detail: str
    seconds: float = 0.0


def _timed(name: str, fn: Callable[[], tuple[str, str]]) -> Check:
    began = time.perf_counter()
    try:
        status, detail = fn()
    except Exception as error:  # a check that crashes is a failed check, with its reason
        status, detail = "fail", f"{type(error).__name__}: {error}"
    return Check(name, status, detail, time.perf_counter() - began)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


# ------------------------------------------------------------------------------------------ checks


def check_environment(device: str) -> Iterator[Check]:
    """The machine line and the precisions this device supports."""
    from hsisr_bench.benchmarks import machine_description
    from hsisr_bench.engine.environment import cpu_supports_bf16

    def run():
        bf16 = torch.cuda.is_bf16_supported() if device.startswith("cuda") else cpu_supports_bf16()
        return "pass", f"{machine_description(device)}; device {device}; bf16 {'yes' if bf16 else 'no'}"

    yield _timed("environment", run)


def _models(bands: int = 31, scale: int = 2):
    from hsisr_bench.registry import create_method, get_method_info, list_methods

    for name in list_methods():
        torch.manual_seed(0)
        yield name, get_method_info(name), create_method(name, bands=bands, scale=scale).eval()


def check_contract(device: str) -> Iterator[Check]:
    """Every method's forward on ``device`` equals its CPU forward (fp32, TF32 off) within 1e-4."""
    from hsisr_bench.engine.infer import super_resolve

    if device == "cpu":
        yield Check("contract: device equals CPU", "skipped", "the device is the CPU")
        return
    lr = np.random.default_rng(0).random((31, 12, 12), dtype=np.float32)
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        for name, info, model in _models():
            def run(model=model, info=info):
                on_cpu = super_resolve(model, lr, scale=2, info=info, device="cpu", progress=False)
                on_device = super_resolve(model, lr, scale=2, info=info, device=device, progress=False)
                diff = float((on_cpu - on_device.cpu()).abs().max())
                return ("pass" if diff <= 1e-4 else "fail"), f"max abs(CPU - {device}) = {diff:.2e} (limit 1e-4)"

            yield _timed(f"contract: {name} on {device} equals CPU", run)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def check_tiled(device: str) -> Iterator[Check]:
    """Tiled inference (partial tiles) equals untiled on ``device`` for every method, within 1e-5."""
    from hsisr_bench.engine.infer import super_resolve

    lr = np.random.default_rng(1).random((31, 22, 19), dtype=np.float32)  # 8-pixel tiles leave partial ones
    for name, info, model in _models():
        def run(model=model, info=info):
            whole = super_resolve(model, lr, scale=2, info=info, device=device, progress=False)
            tiled = super_resolve(model, lr, scale=2, info=info, device=device, tile=8, progress=False)
            diff = float((whole - tiled).abs().max())
            return ("pass" if diff <= 1e-5 else "fail"), f"max abs(tiled - untiled) = {diff:.2e} (8-pixel LR tiles)"

        yield _timed(f"tiled: {name}", run)


def _precisions(device: str) -> list[tuple[str, Optional[str]]]:
    """``(amp, reason skipped)`` for fp32, bf16 and fp16 on this device."""
    from hsisr_bench.engine.environment import cpu_supports_bf16

    cuda = device.startswith("cuda")
    bf16 = torch.cuda.is_bf16_supported() if cuda else cpu_supports_bf16()
    return [("none", None), ("bf16", None if bf16 else "this device has no bf16 support"),
            ("fp16", None if cuda else "fp16 training needs CUDA")]


def _smoke_cell(method: str, amp: str, device: str, out: Path, extra: tuple[str, ...] = ()):
    from hsisr_bench import config
    from hsisr_bench.engine.plan import Cell

    run = config.plan_runs(methods=method, datasets=["synthetic"], scales=[2], profile="smoke", device="cpu",
                           amp=amp, overrides=[*_TINY, *extra])[0]
    return Cell(run, out, device=device)


def check_training(device: str, out: Path) -> Iterator[Check]:
    """A smoke training of every trainable method in fp32, bf16 and fp16: a finite, scored result."""
    from hsisr_bench.engine.runner import run_cell
    from hsisr_bench.registry import get_method_info, list_methods

    for name in [m for m in list_methods() if get_method_info(m).trainable]:
        for amp, skipped in _precisions(device):
            label = f"training: {name} {'fp32' if amp == 'none' else amp}"
            if skipped:
                yield Check(label, "skipped", skipped)
                continue

            def run(name=name, amp=amp):
                cell = _smoke_cell(name, amp, device, out / f"train-{amp}")
                outcome = run_cell(cell, force=True, progress=False, notify=lambda message: None)
                psnr = outcome.metrics["mean"]["psnr"]
                ok = np.isfinite(psnr)
                return ("pass" if ok else "fail"), f"PSNR {psnr:.2f} dB after the smoke profile"

            yield _timed(label, run)


def check_resume(device: str, out: Path) -> Iterator[Check]:
    """``hsibench train`` interrupted with Ctrl-C (SIGINT) and rerun ends with the uninterrupted weights."""
    def cli(folder: Path) -> list[str]:
        return [sys.executable, "-m", "hsisr_bench.cli", "train", "--method", "edsr", "--dataset", "synthetic",
                "--scale", "2", "--profile", "smoke", "--device", device, "--no-progress", "--out", str(folder),
                "--epochs", "6", "--set", "protocol.steps_per_epoch=20", *[f"--set={o}" for o in _TINY]]

    def weights(folder: Path) -> dict:
        path = next(folder.rglob("checkpoint.pt"))
        return torch.load(path, map_location="cpu", weights_only=True)["model"]

    def run():
        whole, parted = out / "resume-whole", out / "resume-parted"
        subprocess.run(cli(whole), check=True, capture_output=True, timeout=600)
        process = subprocess.Popen(cli(parted), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.time() + 300
        while time.time() < deadline and not list(parted.rglob("checkpoint.pt")) and process.poll() is None:
            time.sleep(0.05)
        interrupted = process.poll() is None
        if interrupted:
            process.send_signal(signal.SIGINT)
        process.wait(timeout=300)
        subprocess.run(cli(parted), check=True, capture_output=True, timeout=600)
        a, b = weights(whole), weights(parted)
        diff = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
        limit = 0.0 if device == "cpu" else 1e-5  # GPU kernels need not be bit-reproducible
        if not interrupted:
            return "fail", "training finished before it could be interrupted; nothing was resumed"
        return ("pass" if diff <= limit else "fail"), f"max abs(resumed - uninterrupted) weight = {diff:.2e}"

    yield _timed("resume: Ctrl-C, then the same command", run)


def _step_time(method: str, device: str, *, batch: int, lr_patch: int, amp: str, steps: int = 3,
               compile_model: bool = False, options: Optional[dict] = None) -> dict:
    """Median seconds of one training step (harness forward, loss, backward, Adam) and the data share.

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
    times, waits = [], []
    for _ in range(steps + 1):
        began = time.perf_counter()
        lr = torch.rand((batch, 31, lr_patch, lr_patch), generator=generator)  # (B, L, h, w) as a bank batch
        hr = torch.rand((batch, 31, 2 * lr_patch, 2 * lr_patch), generator=generator)
        lr, hr = lr.to(device, non_blocking=True), hr.to(device, non_blocking=True)
        _sync(device)
        fetched = time.perf_counter()
        context = torch.autocast(torch.device(device).type, dtype=dtype) if dtype else torch.autocast(
            torch.device(device).type, enabled=False)
        with context:
            sr = forward_with_mean(network, info, lr, mean, 2, crop)
        loss = loss_fn(sr.float(), crop.apply(hr))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        _sync(device)
        times.append(time.perf_counter() - began)
        waits.append(fetched - began)
    first, times, waits = times[0], times[1:], waits[1:]  # the first step warms up (and compiles)
    order = np.argsort(times)
    median = times[order[len(order) // 2]]
    return {"seconds": median, "first": first, "data_share": float(np.sum(waits) / np.sum(times))}


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
                parts = []
                per_patch = []
                for batch in batches:
                    measured = _step_time(method, device, batch=batch, lr_patch=lr_patch, amp=amp)
                    per_patch.append(measured["seconds"] / batch)
                    parts.append(f"batch {batch}: {measured['seconds'] * 1000:.0f} ms/step, "
                                 f"{batch / measured['seconds']:.1f} patches/s, data {measured['data_share']:.0%}")
                bound = "device-bound" if per_patch[1] > 0.6 * per_patch[0] else "host-bound at the small batch"
                if method == "ssrnet" and amp == "none":  # the fast formulation against the plain model
                    plain = _step_time(method, device, batch=batches[0], lr_patch=lr_patch, amp=amp,
                                       options={"fast": False})
                    parts.append(f"plain model (fast=False) batch {batches[0]}: {plain['seconds'] * 1000:.0f} ms/step")
                return "pass", f"LR {lr_patch}x{lr_patch} x2: " + "; ".join(parts) + f" ({bound})"

            yield _timed(f"throughput: {method} {precision}", run)


def check_compile(device: str) -> Iterator[Check]:
    """EDSR training step through ``torch.compile`` against eager (``--compile``; off by default)."""
    lr_patch, batches = _throughput_plan(device)

    def run():
        eager = _step_time("edsr", device, batch=batches[0], lr_patch=lr_patch, amp="none")
        compiled = _step_time("edsr", device, batch=batches[0], lr_patch=lr_patch, amp="none", compile_model=True)
        return "pass", (f"batch {batches[0]}, LR {lr_patch}x{lr_patch} x2: eager {eager['seconds'] * 1000:.0f} ms/step, "
                        f"compiled {compiled['seconds'] * 1000:.0f} ms/step "
                        f"({eager['seconds'] / compiled['seconds']:.2f}x; first compiled step {compiled['first']:.0f} s)")

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
            return "pass", f"{seconds * 1000:.0f} ms for 31x64x64 -> 31x128x128{memory}"

        yield _timed(f"inference: {method}", run)


def check_ddp(device: str, out: Path) -> Iterator[Check]:
    """Two-process DDP training through torchrun, when two GPUs exist."""
    if not device.startswith("cuda") or torch.cuda.device_count() < 2:
        yield Check("ddp: 2 processes", "skipped", "needs 2 GPUs (the CPU path is covered by the test suite)")
        return

    def run():
        command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "hsisr_bench.cli",
                   "train", "--method", "edsr", "--dataset", "synthetic", "--scale", "2", "--profile", "smoke",
                   "--device", "cuda", "--no-progress", "--out", str(out / "ddp"), *[f"--set={o}" for o in _TINY]]
        done = subprocess.run(command, capture_output=True, text=True, timeout=600)
        ok = done.returncode == 0 and list((out / "ddp").rglob("checkpoint.pt"))
        return ("pass" if ok else "fail"), "trained over NCCL" if ok else (done.stdout + done.stderr)[-300:]

    yield _timed("ddp: 2 processes", run)


def check_projection(device: str) -> Iterator[Check]:
    """The wall time of one ``paper``-profile CAVE x2 SSRNet training, from a measured step at the paper's size."""
    from hsisr_bench.config import load_protocol
    from hsisr_bench.engine.plan import training_summary

    def run():
        from hsisr_bench import config

        paper = load_protocol("paper")
        cell = config.plan_runs(methods="ssrnet", datasets=["cave"], scales=[2], profile="paper", device="cpu")[0]
        n_train = 26  # the canonical CAVE split: 26 training scenes of 32
        patches = n_train * len(paper.rescales) * paper.patches_per_image * (5 if paper.augment else 1)
        steps = paper.epochs * (patches // paper.batch_size)
        step = _step_time("ssrnet", device, batch=paper.batch_size, lr_patch=paper.lr_patch, amp="none", steps=2)
        hours = steps * step["seconds"] / 3600
        return "pass", (f"{training_summary(cell, n_train)}: {steps:,} steps x {step['seconds']:.2f} s "
                        f"= {hours:.1f} h (fp32, this device)")

    yield _timed("projection: paper CAVE x2 SSRNet", run)


# ------------------------------------------------------------------------------------------ report


def run_doctor(device: str, out: Optional[Path] = None, checks: tuple[str, ...] = CHECKS,
               echo: Callable[[str], None] = print) -> list[Check]:
    """Run the selected checks on ``device`` (results of the smoke runs under ``out``) and return them."""
    work = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="hsibench-doctor-"))
    runs = work / "runs"
    steps: dict[str, Callable[[], Iterator[Check]]] = {
        "environment": lambda: check_environment(device), "contract": lambda: check_contract(device),
        "tiled": lambda: check_tiled(device), "training": lambda: check_training(device, runs),
        "resume": lambda: check_resume(device, runs), "throughput": lambda: check_throughput(device),
        "compile": lambda: check_compile(device),
        "inference": lambda: check_inference(device), "ddp": lambda: check_ddp(device, runs),
        "projection": lambda: check_projection(device),
    }
    found = []
    os.environ.setdefault("OMP_NUM_THREADS", str(torch.get_num_threads()))  # for the subprocesses
    for name in checks:
        for check in steps[name]():
            echo(f"{check.status:>7}  {check.name}: {check.detail} ({check.seconds:.1f} s)")
            found.append(check)
    return found


def verdict_markdown(checks: list[Check], device: str) -> str:
    """The verdict as a markdown section for ``docs/benchmarks.md``."""
    from tabulate import tabulate

    from hsisr_bench.benchmarks import machine_description

    counts = {status: sum(c.status == status for c in checks) for status in ("pass", "fail", "skipped")}
    rows = [[c.name, c.status, c.detail.replace("|", "/"), f"{c.seconds:.1f}"] for c in checks]
    total = sum(c.seconds for c in checks)
    return "\n".join([
        f"### hsibench doctor --device {device} ({time.strftime('%Y-%m-%d %H:%M')})", "",
        f"Machine: {machine_description(device)}", "",
        f"Verdicts: pass {counts['pass']}, fail {counts['fail']}, skipped {counts['skipped']}; {total:.0f} s in all.", "",
        tabulate(rows, headers=["check", "verdict", "measured", "s"], tablefmt="github"), "",
    ])
