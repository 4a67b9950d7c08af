"""The doctor's checks that start processes: a training interrupted with Ctrl-C and resumed, and DDP.

Both compare two computations that must agree, so the processes they start run with deterministic
kernels: ``python -m hsisr_bench.doctor_runs <hsibench arguments>`` is the ``hsibench`` CLI with TF32
off, cuDNN deterministic and never autotuned (the training loop turns ``cudnn.benchmark`` on, which
picks convolution algorithms by timing, so two runs could round differently), and deterministic
algorithms where PyTorch has them. Every check writes into a fresh folder: a reused ``--out`` would
find the previous run's checkpoint and "resume" a finished run.
"""

from __future__ import annotations

import copy
import datetime
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional, Sequence

import torch

from hsisr_bench.doctor_base import _TINY, Check, _made, _timed, exact_kernels

#: The line ``engine.train`` prints when it resumes from a checkpoint.
RESUMED = re.compile(r"Resuming .* at epoch (\d+), step (\d+)")
#: Overrides of the two-process comparison: 4 epochs of 3 steps over the same 12 patches (batch 4 splits over 2).
_DDP_RUN = ("protocol.epochs=4", "protocol.patches_per_image=4", "protocol.steps_per_epoch=0")
#: Two-process DDP against one process: mean test PSNR within this many dB (only the order of the
#: gradient reduction differs, ~1e-7 relative per step with exact kernels).
DDP_PSNR_LIMIT = 0.01


def _environment() -> dict:
    """The subprocesses' environment: deterministic cuBLAS workspaces (needed by deterministic algorithms)."""
    return {**os.environ, "CUBLAS_WORKSPACE_CONFIG": ":4096:8", "PYTHONUNBUFFERED": "1"}


def _hsibench(*arguments: str, processes: int = 1) -> list[str]:
    """The command line of ``hsibench ARGUMENTS`` with deterministic kernels, under torchrun for several processes."""
    launcher = [sys.executable] if processes == 1 else [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                                        "--nproc_per_node", str(processes)]
    return [*launcher, "-m", "hsisr_bench.doctor_runs", *arguments]


def _run(command: Sequence[str], timeout: float = 600) -> str:
    """Run a command; its output, or a RuntimeError with the end of it when it exits non-zero."""
    done = subprocess.run(list(command), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=timeout, env=_environment())
    if done.returncode != 0:
        raise RuntimeError(f"exit code {done.returncode}: {done.stdout[-400:].strip()}")
    return done.stdout


# ------------------------------------------------------------------------------------------ resume


def resume_verdict(interrupted: bool, rerun_output: str, diff: float, limit: float = 0.0) -> tuple[str, str]:
    """The resume check's verdict: interrupted mid-epoch, resumed at a step > 0, and the same weights.

    Args:
        interrupted: the first run was still training when Ctrl-C was sent.
        rerun_output: what the rerun printed.
        diff: max |resumed - uninterrupted| over the final weights.
        limit: the largest ``diff`` allowed.
    """
    if not interrupted:
        return "fail", "the training finished before it could be interrupted; nothing was resumed"
    match = RESUMED.search(rerun_output)
    if match is None:
        return "fail", ("the rerun did not resume (no 'Resuming ... at epoch E, step S' line); it printed: "
                        f"{rerun_output[-200:].strip()!r}")
    epoch, step = int(match.group(1)), int(match.group(2))
    where = f"resumed at epoch {epoch}, step {step}"
    if step == 0:
        return "fail", f"{where}: an epoch boundary, so no mid-epoch state (sampler, loss sum) was restored"
    verdict = "pass" if diff <= limit else "fail"
    return verdict, f"{where}; max abs(resumed - uninterrupted) weight = {diff:.2e} (limit {limit:g})"


def check_resume(device: str, out: Path, *, epochs: int = 6, steps: Optional[int] = None) -> Iterator[Check]:
    """``hsibench train`` interrupted with Ctrl-C (SIGINT) and rerun ends with the uninterrupted weights.

    The interrupt is sent once the first epoch's checkpoint exists, so it lands mid-epoch; the rerun
    must say it resumed at a step > 0 and end with the same weights, bit for bit (deterministic kernels).
    """
    steps = steps if steps is not None else (200 if device.startswith("cuda") else 20)  # epochs outlast a poll

    def cli(folder: Path) -> list[str]:
        return _hsibench("train", "--method", "edsr", "--dataset", "synthetic", "--scale", "2", "--profile", "smoke",
                         "--device", device, "--tf32", "off", "--no-progress", "--out", str(folder), "--epochs",
                         str(epochs), "--set", f"protocol.steps_per_epoch={steps}", *[f"--set={o}" for o in _TINY])

    def weights(folder: Path) -> dict:
        path = next(folder.rglob("checkpoint.pt"))
        return torch.load(path, map_location="cpu", weights_only=True)["model"]

    def run():
        folder = Path(tempfile.mkdtemp(prefix="resume-", dir=_made(out)))  # never a previous run's checkpoint
        whole, parted = folder / "whole", folder / "parted"
        _run(cli(whole))
        process = subprocess.Popen(cli(parted), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=_environment())
        deadline = time.time() + 300
        while time.time() < deadline and not list(parted.rglob("checkpoint.pt")) and process.poll() is None:
            time.sleep(0.02)
        interrupted = process.poll() is None
        if interrupted:
            process.send_signal(signal.SIGINT)
        process.communicate(timeout=300)
        rerun = _run(cli(parted))
        a, b = weights(whole), weights(parted)
        diff = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
        return resume_verdict(interrupted, rerun, diff)

    yield _timed("resume: Ctrl-C, then the same command", run)


# ------------------------------------------------------------------------------------------ DDP


def check_ddp(device: str, out: Path) -> Iterator[Check]:
    """A world-1 process group (NCCL on CUDA, gloo on CPU) with one DDP step; with 2+ GPUs, 2 processes vs 1."""
    yield _timed("ddp: world-1 process group, one DDP step", lambda: _one_process_step(device, out))
    if not device.startswith("cuda") or torch.cuda.device_count() < 2:
        yield Check("ddp: 2 processes equal 1", "skipped", "needs 2 GPUs (the gloo path is covered by the test suite)")
        return
    yield _timed("ddp: 2 processes equal 1", lambda: _two_processes(device, out))


def _one_process_step(device: str, out: Path) -> tuple[str, str]:
    """One Adam step through DistributedDataParallel in a world-1 group equals the same step without it."""
    import torch.distributed as dist

    from hsisr_bench.engine import distributed
    from hsisr_bench.engine.train import ddp_device_ids
    from hsisr_bench.registry import create_method

    if dist.is_initialized():
        return "fail", "a process group already exists in this process; run the doctor outside torchrun"
    backend = distributed.backend_for(device)
    store = Path(tempfile.mkdtemp(prefix="ddp-", dir=_made(out))) / "store"
    if device.startswith("cuda"):
        torch.cuda.set_device(torch.device(device))
    dist.init_process_group(backend, init_method=f"file://{store}", rank=0, world_size=1,
                            timeout=datetime.timedelta(seconds=120))
    try:
        with exact_kernels():
            torch.manual_seed(0)
            plain = create_method("edsr", bands=31, scale=2, n_resblocks=1, n_feats=8).to(device).train()
            wrapped_model = copy.deepcopy(plain)
            wrapped = torch.nn.parallel.DistributedDataParallel(wrapped_model,
                                                                device_ids=ddp_device_ids(torch.device(device)))
            generator = torch.Generator().manual_seed(1)
            lr = torch.rand((4, 31, 8, 8), generator=generator).to(device)  # (B, L, h, w)
            hr = torch.rand((4, 31, 16, 16), generator=generator).to(device)  # (B, L, 2h, 2w)
            for net, params in ((plain, plain.parameters()), (wrapped, wrapped_model.parameters())):
                optimizer = torch.optim.Adam(params, lr=1e-3)
                loss = torch.nn.functional.l1_loss(net(lr), hr)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            a, b = plain.state_dict(), wrapped_model.state_dict()
            diff = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
            reduced = float(distributed.all_reduce_mean(torch.tensor([1.5], device=device)))
    finally:
        dist.destroy_process_group()
    detail = (f"{backend}, world 1: DDP step vs plain step, max weight diff {diff:.2e} (limit 1e-6); "
              f"all_reduce_mean(1.5) = {reduced:g}")
    return ("pass" if diff <= 1e-6 and reduced == 1.5 else "fail"), detail


def _two_processes(device: str, out: Path) -> tuple[str, str]:
    """The same smoke run (train and evaluate) with 2 DDP processes and with one: equal test PSNR."""
    folder = Path(tempfile.mkdtemp(prefix="ddp2-", dir=_made(out)))

    def arguments(results: Path) -> list[str]:
        return ["run", "--methods", "edsr", "--dataset", "synthetic", "--scale", "2", "--profile", "smoke",
                "--device", "cuda", "--tf32", "off", "--no-progress", "--out", str(results),
                *[f"--set={o}" for o in (*_TINY, *_DDP_RUN)]]

    _run(_hsibench(*arguments(folder / "one")))
    _run(_hsibench(*arguments(folder / "two"), processes=2))
    psnr = [json.loads(next((folder / side).rglob("metrics.json")).read_text())["mean"]["psnr"] for side in ("one", "two")]
    diff = abs(psnr[0] - psnr[1])
    return (("pass" if diff <= DDP_PSNR_LIMIT else "fail"),
            f"NCCL, 2 processes: PSNR {psnr[1]:.4f} dB vs 1 process {psnr[0]:.4f} dB (|diff| {diff:.1e}, "
            f"limit {DDP_PSNR_LIMIT:g})")


# ------------------------------------------------------------------------------------------ the launcher


@contextmanager
def _untuned_backends(device: torch.device) -> Iterator[None]:
    """``engine.train.training_backends`` without autotuning: cuDNN picks its algorithm by rule, not by timing."""
    previous = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = previous


def exact_main(argv: Optional[Sequence[str]] = None) -> None:
    """The ``hsibench`` CLI with deterministic kernels (what the resume and DDP checks run)."""
    from hsisr_bench.engine import train

    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = False, True
    train.training_backends = _untuned_backends  # the loop looks it up at call time

    from hsisr_bench.cli import main

    main(args=list(argv) if argv is not None else None, prog_name="hsibench")


if __name__ == "__main__":  # pragma: no cover - the doctor's subprocesses
    exact_main()
