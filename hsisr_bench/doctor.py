"""``hsibench doctor``: everything a person needs to trust a new machine, in a few minutes, as one table.

Each check calls the toolkit's own code (the registry, ``engine.infer.super_resolve``, the training
loop through ``engine.runner.run_cell``, the CLI for an interrupted run, a process group) and yields
one :class:`Check`. A *verdict* row is ``pass`` or ``fail`` and can fail: it compares what the path
produced with what it must produce (tiled equals untiled on a probe where tiles read only part of
the image, a training whose loss falls, a resumed run that really resumed, a DDP step that equals
the plain one). A *measurement* row (environment, throughput, compile, inference, projection) is
``measured``: it reports numbers and fails only when the measured path raises. ``skipped`` rows say
why (no GPU, one GPU). On a CPU the same steps run on the CPU.

Module layout: this module holds the verdict framework, the report and the in-process correctness
checks; :mod:`hsisr_bench.doctor_timing` the measurements; :mod:`hsisr_bench.doctor_runs` the checks
that start processes (resume, DDP).
"""

from __future__ import annotations

import csv
import json
import math
import os
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Optional

import numpy as np
import torch

from hsisr_bench.doctor_base import _TINY, STATUSES, Check, _made, _precisions, _timed, exact_kernels
from hsisr_bench.doctor_runs import check_ddp, check_resume
from hsisr_bench.doctor_timing import check_compile, check_inference, check_projection, check_throughput

__all__ = ["CHECKS", "STATUSES", "Check", "exact_kernels", "run_doctor", "verdict_markdown", "doctor_figures",
           "check_environment", "check_contract", "check_tiled", "check_training", "check_resume",
           "check_throughput", "check_compile", "check_inference", "check_ddp", "check_projection"]

#: The checks in the order they run; ``--checks`` selects a subset by these names.
CHECKS = ("environment", "contract", "tiled", "training", "resume", "throughput", "compile", "inference", "ddp",
          "projection")
#: The training check: 4 epochs, each one full pass over the same 12 patches (3 training scenes x 4
#: patches, batch 4), at lr 1e-3. A fixed bank makes the epoch losses comparable: with frozen weights
#: they agree to 1e-7 (measured), while every method's fell by 12-57 % on the CPU.
_TRAINING = ("protocol.epochs=4", "protocol.lr=1e-3", "protocol.patches_per_image=4", "protocol.steps_per_epoch=0")
#: The last epoch's loss must be at most this fraction of the first epoch's.
LOSS_DROP = 0.98
#: Tiled inference against untiled, float32 with exact kernels: max difference relative to the output's scale.
TILED_LIMIT = 1e-5


# ------------------------------------------------------------------------------------------ checks


def check_environment(device: str) -> Iterator[Check]:
    """The machine line and the precisions this device supports (a measurement)."""
    from hsisr_bench.benchmarks import machine_description
    from hsisr_bench.engine.environment import cpu_supports_bf16

    def run():
        bf16 = torch.cuda.is_bf16_supported() if device.startswith("cuda") else cpu_supports_bf16()
        return "measured", f"{machine_description(device)}; device {device}; bf16 {'yes' if bf16 else 'no'}"

    yield _timed("environment", run)


def _models(bands: int = 31, scale: int = 2):
    from hsisr_bench.registry import create_method, get_method_info, list_methods

    for name in list_methods():
        torch.manual_seed(0)
        yield name, get_method_info(name), create_method(name, bands=bands, scale=scale).eval()


def check_contract(device: str) -> Iterator[Check]:
    """Every method's forward on ``device`` equals its CPU forward (fp32, exact kernels) within 1e-4."""
    from hsisr_bench.engine import infer

    if device == "cpu":
        yield Check("contract: device equals CPU", "skipped", "the device is the CPU")
        return
    lr = np.random.default_rng(0).random((31, 12, 12), dtype=np.float32)
    with exact_kernels():
        for name, info, model in _models():
            def run(model=model, info=info):
                on_cpu = infer.super_resolve(model, lr, scale=2, info=info, device="cpu", progress=False)
                on_device = infer.super_resolve(model, lr, scale=2, info=info, device=device, progress=False)
                diff = float((on_cpu - on_device.cpu()).abs().max())
                return ("pass" if diff <= 1e-4 else "fail"), f"max abs(CPU - {device}) = {diff:.2e} (limit 1e-4)"

            yield _timed(f"contract: {name} on {device} equals CPU", run)


def _tiled_geometry(model, info, *, scale: int, bands: int) -> tuple[int, int, int, int]:
    """``(radius, crop, per_lr, factor)`` of a model: its receptive field and how LR maps to its input."""
    from hsisr_bench.engine.infer import probe_model

    crop = getattr(model, "output_crop", info.output_crop).pixels
    radius = probe_model(model, bands=bands, scale=scale, input_kind=info.input, crop=crop).radius
    # "lr" and "lr+upsampled" methods are tiled in LR pixels, "upsampled" ones in HR pixels.
    per_lr = scale if info.input == "upsampled" else 1  # input pixels per LR pixel
    factor = 1 if info.input == "upsampled" else scale  # output pixels per input pixel
    return radius, crop, per_lr, factor


def tiled_probe_shape(model, info, *, scale: int = 2, bands: int = 31, tile: int = 8, short: int = 19) -> tuple[int, int]:
    """An LR side ``(long, short)`` on which at least two ``tile``-pixel tiles read only part of the image.

    Sized from the model's receptive field: a probe smaller than a tile plus its margins makes every
    tile read the whole image, and tiled would equal untiled by construction (EDSR's 36 and SSRNet's 23
    LR pixels exceed a 22x19 image). The long side grows until two tiles are partial and the last
    core is a truncated one.
    """
    from hsisr_bench.contract import partial_tiles
    from hsisr_bench.engine.infer import plan_axis

    radius, crop, per_lr, factor = _tiled_geometry(model, info, scale=scale, bands=bands)
    margin_lr = math.ceil(max(radius, math.ceil(crop / factor)) / per_lr)
    long = max(short + 3, tile + margin_lr + 1)
    for _ in range(512):
        plans = [plan_axis(n * per_lr, factor=factor, crop=crop, radius=radius, core=tile * per_lr)
                 for n in (long, short)]
        cores = [t.out_stop - t.out_start for t in plans[0]]
        if partial_tiles(plans)[1] >= 2 and cores[-1] < cores[0]:
            return long, short
        long += 1
    raise RuntimeError(f"no LR size up to {long} gives two partial {tile}-pixel tiles (margin {radius} px)")


@contextmanager
def _recorded_tile_plans(found: list) -> Iterator[None]:
    """Record every per-axis tile plan ``super_resolve`` makes (``engine.infer.plan_axis``) into ``found``."""
    from hsisr_bench.engine import infer

    original = infer.plan_axis

    def recording(*args, **kwargs):
        plan = original(*args, **kwargs)
        found.append(plan)
        return plan

    infer.plan_axis = recording
    try:
        yield
    finally:
        infer.plan_axis = original


def check_tiled(device: str, tile: int = 8) -> Iterator[Check]:
    """Tiled inference equals untiled on ``device`` for every method (fp32, exact kernels), on a probe
    sized from the method's receptive field so that at least two tiles read only part of the image."""
    from hsisr_bench.contract import partial_tiles
    from hsisr_bench.engine import infer

    for name, info, model in _models():
        def run(model=model, info=info):
            long, short = tiled_probe_shape(model, info, tile=tile)
            generator = np.random.default_rng(1)
            worst, counts = 0.0, []
            with exact_kernels():
                for shape in ((long, short), (short, long)):  # both axes cut into partial tiles
                    lr = generator.random((31, *shape), dtype=np.float32)
                    whole = infer.super_resolve(model, lr, scale=2, info=info, device=device, progress=False)
                    plans: list = []
                    with _recorded_tile_plans(plans):
                        tiled = infer.super_resolve(model, lr, scale=2, info=info, device=device, tile=tile,
                                                    progress=False)
                    if len(plans) < 2:
                        return "fail", f"LR {shape[0]}x{shape[1]}: could not see the tile plan of the tiled call"
                    counts.append(partial_tiles(plans[-2:]))
                    scale_of = max(1.0, float(whole.abs().max()))
                    worst = max(worst, float((whole - tiled).abs().max()) / scale_of)
            tiles, partial = min(counts, key=lambda c: c[1])
            where = f"LR {long}x{short} and {short}x{long}, {tile}-pixel tiles: {tiles} tiles, {partial} partial"
            if partial < 2:
                return "fail", f"{where}: fewer than 2 tiles read only part of the image, nothing is tested"
            verdict = "pass" if worst <= TILED_LIMIT else "fail"
            return verdict, f"{where}; max |tiled - untiled| / max(1, |out|) = {worst:.2e} (limit {TILED_LIMIT:g})"

        yield _timed(f"tiled: {name}", run)


def _smoke_cell(method: str, amp: str, device: str, out: Path, extra: tuple[str, ...] = ()):
    from hsisr_bench import config
    from hsisr_bench.engine.plan import Cell

    run = config.plan_runs(methods=method, datasets=["synthetic"], scales=[2], profile="smoke", device="cpu",
                           amp=amp, overrides=[*_TINY, *extra])[0]
    return Cell(run, out, device=device)


def _epoch_losses(directory: Path) -> list[float]:
    from hsisr_bench.results import TRAIN_LOG_FILE

    with open(Path(directory) / TRAIN_LOG_FILE, newline="") as handle:
        return [float(row["loss"]) for row in csv.DictReader(handle)]


def check_training(device: str, out: Path) -> Iterator[Check]:
    """A short training of every trainable method in fp32, bf16 and fp16: the loss must fall, the score be finite."""
    from hsisr_bench.engine.runner import run_cell
    from hsisr_bench.registry import get_method_info, list_methods

    for name in [m for m in list_methods() if get_method_info(m).trainable]:
        for amp, skipped in _precisions(device):
            label = f"training: {name} {'fp32' if amp == 'none' else amp}"
            if skipped:
                yield Check(label, "skipped", skipped)
                continue

            def run(name=name, amp=amp):
                folder = Path(tempfile.mkdtemp(prefix=f"train-{amp}-", dir=_made(out)))
                cell = _smoke_cell(name, amp, device, folder, extra=_TRAINING)
                outcome = run_cell(cell, force=True, progress=False, notify=lambda message: None)
                losses = _epoch_losses(cell.directory)
                psnr = outcome.metrics["mean"]["psnr"]
                detail = (f"epoch loss {losses[0]:.4g} -> {losses[-1]:.4g} over {len(losses)} epochs "
                          f"({losses[-1] / losses[0]:.0%}); PSNR {psnr:.2f} dB")
                if len(losses) < 2 or not losses[-1] <= LOSS_DROP * losses[0]:
                    return "fail", f"the loss did not fall to {LOSS_DROP:.0%} of the first epoch's: {detail}"
                return ("pass" if np.isfinite(psnr) else "fail"), detail

            yield _timed(label, run)


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
            echo(f"{check.status:>8}  {check.name}: {check.detail} ({check.seconds:.1f} s)")
            found.append(check)
    return found


def summary_line(checks: list[Check]) -> str:
    """``Verdicts: pass 12, fail 0; measured 9; skipped 6; 155 s in all.``"""
    counts = {status: sum(c.status == status for c in checks) for status in STATUSES}
    total = sum(c.seconds for c in checks)
    return (f"Verdicts: pass {counts['pass']}, fail {counts['fail']}; measured {counts['measured']}; "
            f"skipped {counts['skipped']}; {total:.0f} s in all.")


def verdict_markdown(checks: list[Check], device: str) -> str:
    """The verdict as a markdown section for ``docs/benchmarks.md``."""
    from tabulate import tabulate

    from hsisr_bench.benchmarks import machine_description

    rows = [[c.name, c.status, c.detail.replace("|", "/"), f"{c.seconds:.1f}"] for c in checks]
    return "\n".join([
        f"### hsibench doctor --device {device} ({time.strftime('%Y-%m-%d %H:%M')})", "",
        f"Machine: {machine_description(device)}", "",
        summary_line(checks), "",
        tabulate(rows, headers=["check", "verdict", "measured", "s"], tablefmt="github"), "",
    ])


def doctor_figures(checks: list[Check], device: str) -> dict:
    """The measured training-step times as ``doctor.json`` (read by ``hsibench run --dry-run --doctor-report``).

    ``step_seconds`` lists ``{"method", "amp", "batch", "lr_patch", "scale", "seconds"}`` entries, one
    per measured configuration; the projection rows are at the ``paper`` profile's batch and patch.
    """
    from hsisr_bench.benchmarks import machine_description

    steps = [entry for check in checks for entry in check.figures.get("step_seconds", [])]
    return {"format": "hsibench-doctor/1", "device": device, "machine": machine_description(device),
            "date": time.strftime("%Y-%m-%d %H:%M"), "step_seconds": steps,
            "verdicts": {c.name: c.status for c in checks}}


def write_figures(path: Path, checks: list[Check], device: str) -> Path:
    """Write :func:`doctor_figures` as JSON to ``path``."""
    from hsisr_bench.results import write_text

    return write_text(Path(path), json.dumps(doctor_figures(checks, device), indent=2) + "\n")
