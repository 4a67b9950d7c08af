"""``hsibench bench --suite models``: size, FLOPs, latency and peak memory of every method, and SSRNet's paths.

Three tables, all measured in one run on one machine:

1. Per method and scale: trainable parameters, FLOPs of one forward pass
   (``torch.utils.flop_counter.FlopCounterMode``: convolutions and matrix products only, one
   multiply-add = 2 FLOPs, on the path the model actually runs: SSRNet's fast path), inference latency
   (median of ``repeats`` runs after ``warmup``, ``torch.inference_mode``) and peak memory of one
   forward pass. Input: one random cube of ``bands`` bands, HR side ``size`` (LR side ``size // s``;
   methods that take the upsampled LR get ``imresize(lr, s)``).
2. SSRNet, plain reference path (``fast=False``) against the default fast path on the same input and
   weights: latency ratio and the largest absolute output difference.
3. SSRNet ×2 on a full ``bands × size × size`` cube (31×512×512 by default): untiled, and through the
   tiled inference engine (``engine.infer.super_resolve``) under a per-tile memory budget, against
   the goal of a 3 GB peak on CPU.

Peak memory. CPU: each measurement runs in a fresh Python process (this module's ``_measure`` entry
point) that builds the model and the input, notes its resident set size (RSS), runs one forward
pass and reports its peak RSS (``ru_maxrss``): the table shows the increase, the process total is
in table 3. The allocator of the parent process would otherwise hide or inflate it. CUDA:
``torch.cuda.max_memory_allocated`` minus the memory allocated before the pass (same process).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from hsisr_bench.benchmarks import BenchOptions, time_call

#: The goal of table 3: SSRNet ×2 on a full 31×512×512 cube within this peak RSS on CPU.
MEMORY_GOAL_BYTES = 3 * 1024**3
#: Per-tile working-memory budget given to the tiled engine for table 3 (the process, the whole
#: input and output cubes and the weights come on top of it).
TILE_BUDGET_BYTES = 1.5 * 1024**3
_SEED = 0


# --------------------------------------------------------------------------- inputs and models


def _lr_input(bands: int, lr_side: int) -> torch.Tensor:
    """The benchmark's LR cube ``(1, L, h, w)``, uniform in [0, 1), the same in every process."""
    generator = torch.Generator().manual_seed(_SEED)
    return torch.rand(1, bands, lr_side, lr_side, generator=generator)


def _model_input(info, lr: torch.Tensor, scale: int) -> tuple[torch.Tensor, ...]:
    """The arguments of the method's forward: ``(lr,)``, ``(upsampled,)`` or ``(lr, upsampled)``.

    ``upsampled`` is the MATLAB-bicubic upsampling of the LR (the ``input`` kind of the registration).
    """
    if info.input in ("upsampled", "lr+upsampled"):
        from hsisr_bench.data import imresize

        up = imresize(lr, scale)
        return (up,) if info.input == "upsampled" else (lr, up)
    return (lr,)


def _build(method: str, bands: int, scale: int, options: dict, device: str) -> torch.nn.Module:
    from hsisr_bench.registry import create_method

    torch.manual_seed(_SEED)
    return create_method(method, bands=bands, scale=scale, **options).to(device).eval()


def _count_flops(model: torch.nn.Module, x: tuple[torch.Tensor, ...]) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    # FlopCounterMode does not know oneDNN's private in-place convolution; SSRNet's public-API
    # convolutions do the same arithmetic, so they are counted instead.
    fused = getattr(model, "fused_convolutions", None)
    if fused is not None:
        model.fused_convolutions = False
    try:
        # no_grad, not inference_mode: FlopCounterMode's module tracker needs autograd views of the
        # parameters. A first call outside the counter keeps one-off weight preparation out of the count.
        with torch.no_grad():
            model(*x)
            with counter:
                model(*x)
    finally:
        if fused is not None:
            model.fused_convolutions = fused
    return counter.get_total_flops()


# --------------------------------------------------------------------------- memory


def _current_rss() -> int:
    """Resident set size of this process now, in bytes (Linux ``/proc``; else the peak so far)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return _peak_rss()


def _peak_rss() -> int:
    """Peak resident set size of this process, in bytes.

    Linux: ``VmHWM`` of ``/proc/self/status``, the high-water mark of this process's own memory.
    Not ``ru_maxrss``: a child started with ``vfork`` + ``exec`` (as ``subprocess`` does) inherits
    the parent's peak there, so a measuring process spawned by a large parent reported the parent's
    7.5 GB. Elsewhere ``ru_maxrss`` (KiB on Linux, bytes on macOS).
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # "VmHWM:  123456 kB"
    except (OSError, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def _measure(spec: dict) -> dict:
    """Run one forward pass as described by ``spec`` in this (fresh) process; report RSS and time.

    ``spec``: method, scale, bands, lr_side, options, mode (``"forward"`` or ``"tiled"``), budget
    (bytes) or tile (LR pixels) for the tiled mode, save (a ``.npy`` path for the output, or ``None``).
    """
    from hsisr_bench.registry import get_method_info

    info = get_method_info(spec["method"])
    model = _build(spec["method"], spec["bands"], spec["scale"], spec["options"], "cpu")
    lr = _lr_input(spec["bands"], spec["lr_side"])
    x = _model_input(info, lr, spec["scale"])
    # A small pass first: kernels, thread pools and the model's prepared weights are not per-pass memory.
    with torch.inference_mode():
        model(*_model_input(info, _lr_input(spec["bands"], 8), spec["scale"]))
    before = _current_rss()
    start = time.perf_counter()
    if spec["mode"] == "tiled":
        from hsisr_bench.engine.infer import super_resolve

        out = super_resolve(model, lr, scale=spec["scale"], info=info, tile=spec.get("tile"),
                            max_memory=spec.get("budget"), progress=False)
    else:
        with torch.inference_mode():
            out = model(*x)
    seconds = time.perf_counter() - start
    peak = _peak_rss()
    if spec.get("save"):
        np.save(spec["save"], out.float().cpu().numpy())
    return {"rss_before": before, "peak_rss": peak, "increase": peak - before, "seconds": seconds}


def _measure_in_subprocess(spec: dict) -> dict:
    """:func:`_measure` in a fresh interpreter, so that its peak RSS is this pass's alone."""
    result = subprocess.run([sys.executable, "-m", "hsisr_bench.benchmarks.models", json.dumps(spec)],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["(no output)"]
        return {"error": tail[0][:200]}
    return json.loads(result.stdout.strip().splitlines()[-1])


def _cuda_peak(model: torch.nn.Module, x: tuple[torch.Tensor, ...]) -> int:
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    with torch.inference_mode():
        model(*x)
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - before


# --------------------------------------------------------------------------- the three tables


def _mb(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value / 1024**2:,.0f}"


def _gb(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value / 1024**3:.2f}"


def _methods_table(options: BenchOptions, size: int, repeats: int, warmup: int) -> list[str]:
    from hsisr_bench.registry import count_parameters, get_method_info, list_methods

    device = options.device
    lines = ["| method | scale | input (L×h×w) | parameters | GFLOPs | latency (s) | peak memory (MB) |",
             "|---|---|---|---:|---:|---:|---:|"]
    for method in options.methods or list_methods():
        info = get_method_info(method)
        for scale in options.scales:
            lr_side = size // scale
            model = _build(method, options.bands, scale, {}, device)
            x = tuple(t.to(device) for t in _model_input(info, _lr_input(options.bands, lr_side), scale))
            flops = _count_flops(model, x)

            def forward(model=model, x=x):
                with torch.inference_mode():
                    model(*x)

            latency = time_call(forward, repeats=repeats, warmup=warmup, device=device)
            if device.startswith("cuda"):
                peak = _cuda_peak(model, x)
            else:
                measured = _measure_in_subprocess({"method": method, "scale": scale, "bands": options.bands,
                                                   "lr_side": lr_side, "options": {}, "mode": "forward"})
                peak = measured.get("increase")
            shape = " + ".join("×".join(str(v) for v in t.shape[1:]) for t in x)  # two for lr+upsampled
            lines.append(f"| {info.title} | ×{scale} | {shape} | {count_parameters(model):,} | {flops / 1e9:,.2f} "
                         f"| {latency:.3f} | {_mb(peak)} |")
            del model, x
    return lines


def _ssrnet_paths_table(options: BenchOptions, size: int, repeats: int, warmup: int) -> tuple[list[str], list[str]]:
    device = options.device
    lines = ["| scale | LR input | plain (s) | fast (s) | speed-up | fast, public convs (s) | its speed-up "
             "| max abs diff | plain GFLOPs | fast GFLOPs | plain peak (MB) | fast peak (MB) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    conclusions = []
    for scale in options.scales:
        lr_side = size // scale
        fast = _build("ssrnet", options.bands, scale, {}, device)
        plain = _build("ssrnet", options.bands, scale, {"fast": False}, device)
        plain.load_state_dict(fast.state_dict())
        x = _lr_input(options.bands, lr_side).to(device)
        with torch.inference_mode():
            difference = (fast(x) - plain(x)).abs().max().item()

        def forward_of(model, fused=True, x=x):
            def call():
                model.fused_convolutions = fused  # only the fast path reads it
                with torch.inference_mode():
                    model(x)
            return call

        t_plain = time_call(forward_of(plain), repeats=repeats, warmup=warmup, device=device)
        t_fast = time_call(forward_of(fast), repeats=repeats, warmup=warmup, device=device)
        # The same fast path with PyTorch's public convolutions (fresh outputs, no reused buffers).
        t_public = time_call(forward_of(fast, fused=False), repeats=repeats, warmup=warmup, device=device)
        fast.fused_convolutions = True
        flops = [_count_flops(m, (x,)) for m in (plain, fast)]
        if device.startswith("cuda"):
            peaks = [_cuda_peak(m, (x,)) for m in (plain, fast)]
        else:
            peaks = [_measure_in_subprocess({"method": "ssrnet", "scale": scale, "bands": options.bands,
                                             "lr_side": lr_side, "options": {"fast": flag},
                                             "mode": "forward"}).get("increase") for flag in (False, True)]
        lines.append(f"| ×{scale} | {options.bands}×{lr_side}×{lr_side} | {t_plain:.3f} | {t_fast:.3f} "
                     f"| {t_plain / t_fast:.2f}× | {t_public:.3f} | {t_plain / t_public:.2f}× | {difference:.1e} "
                     f"| {flops[0] / 1e9:,.2f} | {flops[1] / 1e9:,.2f} "
                     f"| {_mb(peaks[0])} | {_mb(peaks[1])} |")
        conclusions.append(f"- SSRNet ×{scale}: the fast path is {t_plain / t_fast:.2f}× faster than the plain "
                           f"path here, max abs output difference {difference:.1e} (goal: ≥ 3×, ≤ 1e-5).")
        del fast, plain, x
    return lines, conclusions


def _tiled_table(options: BenchOptions, size: int) -> tuple[list[str], list[str]]:
    scale = 2
    lr_side = size // scale
    # Full runs: the memory budget decides the tiles. Small (quick) inputs: a fixed 16-pixel tile, so
    # that the tiled path is still exercised (no budget is small enough to split them).
    budget, tile = (TILE_BUDGET_BYTES, None) if size >= 256 else (None, 16)
    if options.device.startswith("cuda"):
        return ["(CPU only: run without --device cuda.)"], []
    lines = ["| SSRNet ×2, LR input | mode | tile budget | peak RSS, process (GB) | increase in the pass (GB) "
             "| time (s) | max abs diff vs untiled |",
             "|---|---|---:|---:|---:|---:|---:|"]
    tiling = f"{_gb(budget)} GB" if budget else f"{tile}-pixel tiles"
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for mode in ("forward", "tiled"):
            save = str(Path(folder) / f"{mode}.npy")
            results[mode] = _measure_in_subprocess({
                "method": "ssrnet", "scale": scale, "bands": options.bands, "lr_side": lr_side, "options": {},
                "mode": mode, "budget": budget, "tile": tile, "save": save})
            results[mode]["output"] = np.load(save) if "error" not in results[mode] else None
    ok = all("error" not in r for r in results.values())
    difference = float(np.abs(results["forward"]["output"] - results["tiled"]["output"]).max()) if ok else None
    for mode, label in (("forward", "untiled"), ("tiled", "tiled")):
        r = results[mode]
        if "error" in r:
            lines.append(f"| {options.bands}×{lr_side}×{lr_side} | {label} | | failed: {r['error']} | | | |")
            continue
        lines.append(f"| {options.bands}×{lr_side}×{lr_side} | {label} | {tiling if mode == 'tiled' else '–'} "
                     f"| {_gb(r['peak_rss'])} | {_gb(r['increase'])} | {r['seconds']:.1f} "
                     f"| {'–' if mode == 'forward' else f'{difference:.1e}'} |")
    conclusions = []
    if ok:
        peak = results["tiled"]["peak_rss"]
        if (options.bands, size) == (31, 512):
            verdict = "within" if peak <= MEMORY_GOAL_BYTES else "over"
            goal = f"{verdict} the {_gb(MEMORY_GOAL_BYTES)} GB goal"
        else:
            goal = "(the 3 GB goal is for the full 31×512×512 cube)"
        conclusions.append(f"- Tiled SSRNet ×2 on {options.bands}×{size}×{size}: peak RSS {_gb(peak)} GB {goal}; "
                           f"untiled {_gb(results['forward']['peak_rss'])} GB; tiled equals untiled to "
                           f"{difference:.1e}.")
    return lines, conclusions


def run(options: BenchOptions) -> str:
    """Measure the models suite and return its markdown section.

    Args:
        options: what to measure (``methods``, ``scales``, ``device``, ``bands``, ``size``, ``repeats``,
            ``warmup``; ``quick``: HR side 64, one repeat, no warm-up beyond one call).

    Returns:
        Markdown: a heading, what was measured, three tables and one line per conclusion.
    """
    size = 64 if options.quick else options.size
    repeats = 1 if options.quick else options.repeats
    warmup = 1 if options.quick else options.warmup
    methods_lines = _methods_table(options, size, repeats, warmup)
    paths_lines, conclusions = _ssrnet_paths_table(options, size, repeats, warmup)
    # The memory goal is stated for the full 31x512x512 cube, whatever size the latency tables use.
    tiled_size = size if options.quick else max(size, 512)
    tiled_lines, tiled_conclusions = _tiled_table(options, tiled_size)
    text = [
        "### Models: parameters, FLOPs, latency, peak memory",
        "",
        f"Input: one random cube, {options.bands} bands, HR side {size} (LR side {size} // s), device "
        f"{options.device}, {torch.get_num_threads()} torch threads. Latency: median of {repeats} run(s) after "
        f"{warmup} warm-up, `torch.inference_mode`. FLOPs: `torch.utils.flop_counter` (convolutions and matrix "
        "products; a multiply-add is 2 FLOPs) on the path the model runs. Peak memory: "
        + ("`torch.cuda.max_memory_allocated` minus the memory allocated before the pass."
           if options.device.startswith("cuda") else
           "peak RSS of a fresh process during one forward pass minus its RSS just before it "
           "(model and input already built)."),
        "",
        *methods_lines,
        "",
        "#### SSRNet: plain reference path (`fast=False`) vs the default fast path, same weights",
        "",
        "The fast path folds weight norm once, keeps activations channels-last, runs the separable "
        "convolutions as 2D convolutions on views and the upsampling + reconstruction as one "
        "one-channel sub-pixel convolution (see `hsisr_bench/models/_ssrnet_fast.py`), hence fewer FLOPs. "
        "On CPU it also writes activations into reused buffers with oneDNN's in-place convolution; "
        "*fast, public convs* is the same path with PyTorch's public convolutions instead.",
        "",
        *paths_lines,
        "",
        f"#### SSRNet ×2 on a full {options.bands}×{tiled_size}×{tiled_size} cube: untiled vs tiled (`engine.infer.super_resolve`)",
        "",
        *tiled_lines,
        "",
        *conclusions,
        *tiled_conclusions,
        "",
    ]
    return "\n".join(text)


if __name__ == "__main__":  # the fresh process behind each CPU memory measurement
    print(json.dumps(_measure(json.loads(sys.argv[1]))))
