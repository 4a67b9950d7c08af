"""``hsibench bench --suite train``: SSRNet training throughput of the harness against a plain loop.

Rows (patches per second, median over ``repeats`` timed runs after ``warmup``):

1. CPU, for ×2 and ×4: the harness's training loop (``engine.train.train``: patch bank, band mean,
   L1 loss, Adam, the default optimised SSRNet) against a plain loop over the plain model
   (``create_method("ssrnet", ..., fast=False)``, fp32, ``model(lr - mean) + mean``, L1, Adam, nothing
   else), on the same patches, as a ratio measured in the same run.
2. CPU, for ×2 and ×4: one training step (forward with the band mean, L1 loss, backward, Adam step,
   as the harness does it) of the default SSRNet and of the plain model (``fast=False``): aten ops
   per phase, counted with a ``TorchDispatchMode`` after one warm-up step (deterministic), and the
   step time, median of a few steps. The op count is the host work per step, what limits training
   on a GPU where the kernels of 16-32 patches take only milliseconds.
3. CUDA (when ``--device cuda`` and a GPU is present): the harness in fp32 and in mixed precision
   (bf16), and the estimated time of one ``paper``-profile epoch on CAVE: 26 training scenes × 3
   rescales × 24 patches × 5 copies = 9,360 patches of 32×32 LR.

The patches come from the embedded synthetic scenes (31 bands); what is timed is the optimisation,
not data loading.
"""

from __future__ import annotations

import collections
import time
from typing import Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from hsisr_bench.benchmarks import BenchOptions, time_call

#: The phases of one training step whose aten ops :func:`step_op_counts` reports.
PHASES = ("forward", "backward", "optimizer")

#: Patches of one ``paper``-profile epoch on CAVE (26 training scenes x 3 rescales x 24 patches x 5 copies).
CAVE_PAPER_EPOCH_PATCHES = 26 * 3 * 24 * 5


def _bank(scale: int, lr_patch: int, n_patches: int):
    from hsisr_bench.data.patches import PatchBank, band_mean
    from hsisr_bench.data.synthetic import make_synthetic_scenes

    scenes = make_synthetic_scenes(n_scenes=2, size=max(64, 2 * lr_patch * scale))
    per_image = max(1, -(-n_patches // (2 * 5)))
    bank = PatchBank(scenes, scale=scale, lr_patch=lr_patch, patches_per_image=per_image, rescales=(1.0,),
                     augment=True, seed=0)
    return bank, band_mean(scenes)


def _harness_step_fn(scale: int, bank, mean, *, steps: int, batch: int, device: str, amp: str) -> Callable[[], None]:
    from hsisr_bench.engine.train import TrainSettings, train
    from hsisr_bench.registry import create_method, get_method_info

    info = get_method_info("ssrnet")
    settings = TrainSettings(epochs=1, batch_size=batch, lr=1e-4, loss="l1", steps_per_epoch=steps,
                             device=device, amp=amp, progress=False)

    def fn() -> None:
        torch.manual_seed(0)
        model = create_method("ssrnet", bands=31, scale=scale)
        train(model, info, bank, mean, scale=scale, settings=settings)

    return fn


def _plain_step_fn(scale: int, bank, mean, *, steps: int, batch: int, device: str) -> Callable[[], None]:
    from hsisr_bench.registry import create_method

    lr = torch.stack([bank[i][0] for i in range(batch)]).to(device)  # (B, L, h, w)
    hr = torch.stack([bank[i][1] for i in range(batch)]).to(device)  # (B, L, H, W)
    mean_t = torch.as_tensor(mean).reshape(1, -1, 1, 1).to(device)  # (1, L, 1, 1)

    def fn() -> None:
        torch.manual_seed(0)
        model = create_method("ssrnet", bands=31, scale=scale, fast=False).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
        for _ in range(steps):
            loss = torch.nn.functional.l1_loss(model(lr - mean_t) + mean_t, hr)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    return fn


class _OpCounter(TorchDispatchMode):
    """Counts every aten op dispatched while active (views and in-place ops included), per op name."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: collections.Counter = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.counts[str(func.overloadpacket)] += 1
        return func(*args, **(kwargs or {}))


def count_aten_ops(fn: Callable[[], object]) -> collections.Counter:
    """Run ``fn()`` and count the aten ops it dispatched (below autograd, so backward ops count too).

    Returns:
        A ``Counter`` from op name (e.g. ``"aten.convolution"``) to calls; ``sum(...values())`` is the total.
    """
    counter = _OpCounter()
    with counter:
        fn()
    return counter.counts


def harness_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, lr: torch.Tensor, hr: torch.Tensor,
                 mean: torch.Tensor, scale: int) -> dict:
    """One training step as ``engine.train.train`` takes it, returning its aten-op counts per phase.

    Forward is ``forward_with_mean`` (band mean off and back on) plus the L1 loss; backward includes
    ``zero_grad(set_to_none=True)``; optimizer is ``optimizer.step()``.

    Args:
        lr, hr: ``(B, L, h, w)`` and ``(B, L, s·h, s·w)`` patches.
        mean: ``(1, L, 1, 1)`` band mean.

    Returns:
        ``{phase: Counter}`` for the phases of :data:`PHASES`.
    """
    from hsisr_bench.engine.train import forward_with_mean, output_crop_of
    from hsisr_bench.registry import get_method_info

    info = get_method_info("ssrnet")
    crop = output_crop_of(model, info)
    out: dict = {}

    def forward() -> None:
        out["loss"] = torch.nn.functional.l1_loss(forward_with_mean(model, info, lr, mean, scale, crop), hr)

    def backward() -> None:
        optimizer.zero_grad(set_to_none=True)
        out["loss"].backward()

    counts = {"forward": count_aten_ops(forward), "backward": count_aten_ops(backward)}
    counts["optimizer"] = count_aten_ops(optimizer.step)
    return counts


def step_op_counts(model: torch.nn.Module, lr: torch.Tensor, hr: torch.Tensor, mean: torch.Tensor,
                   scale: int, warmup: int = 1) -> dict:
    """Aten ops per phase of one steady-state harness training step of ``model`` (Adam as the harness builds it).

    ``warmup`` steps run first: the first step creates Adam's state and fills the model's caches,
    later steps all dispatch the same ops, so the count is deterministic.

    Returns:
        ``{phase: total}`` for the phases of :data:`PHASES`.
    """
    from hsisr_bench.engine.train import TrainSettings, make_optimizer

    model.train()
    optimizer = make_optimizer(model, TrainSettings(epochs=1, batch_size=lr.shape[0], lr=1e-4, loss="l1"))
    for _ in range(warmup):
        harness_step(model, optimizer, lr, hr, mean, scale)
    return {phase: sum(c.values()) for phase, c in harness_step(model, optimizer, lr, hr, mean, scale).items()}


def _step_time(model: torch.nn.Module, lr, hr, mean, scale: int, steps: int) -> float:
    """Median wall time of one harness training step (after one warm-up step) over ``steps`` steps."""
    from hsisr_bench.engine.train import TrainSettings, forward_with_mean, make_optimizer, output_crop_of
    from hsisr_bench.registry import get_method_info

    info = get_method_info("ssrnet")
    crop = output_crop_of(model, info)
    model.train()
    optimizer = make_optimizer(model, TrainSettings(epochs=1, batch_size=lr.shape[0], lr=1e-4, loss="l1"))
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        loss = torch.nn.functional.l1_loss(forward_with_mean(model, info, lr, mean, scale, crop), hr)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    times = sorted(times[1:])
    return times[len(times) // 2]


def _step_section(scales: list, quick: bool) -> list:
    """Rows of op counts and step times, plain model against the default one (what the harness trains)."""
    from hsisr_bench.registry import create_method

    patch, batch, steps = (8, 2, 1) if quick else (16, 4, 5)
    size = {"n_feats": 8} if quick else {}  # quick: a narrow model, same ops per step, a fraction of the time
    lines = [f"One harness training step on CPU, {batch} LR patches {patch}x{patch}x31: aten ops per phase "
             "(`TorchDispatchMode`, every dispatched op including views, after one warm-up step) and the "
             f"step time, median of {steps} step(s) after one warm-up. *plain* is `fast=False`; *harness* "
             "is the default model the harness trains. Target: ops <= 1.5x plain, step time <= plain.", "",
             "| scale | plain ops (fwd / bwd / Adam) | harness ops (fwd / bwd / Adam) | ops harness / plain | "
             "fwd+bwd ops harness / plain | plain step (s) | harness step (s) | speed-up |",
             "|---|---|---|---|---|---|---|---|"]
    verdicts = []
    for scale in scales:
        generator = torch.Generator().manual_seed(scale)
        lr = torch.rand(batch, 31, patch, patch, generator=generator)  # (B, L, h, w)
        hr = torch.rand(batch, 31, patch * scale, patch * scale, generator=generator)  # (B, L, H, W)
        mean = lr.mean(dim=(0, 2, 3)).reshape(1, -1, 1, 1)  # (1, L, 1, 1)
        counts, seconds = {}, {}
        for name, fast in (("plain", False), ("harness", True)):
            torch.manual_seed(0)
            model = create_method("ssrnet", bands=31, scale=scale, fast=fast, **size)
            counts[name] = step_op_counts(model, lr, hr, mean, scale)
            seconds[name] = _step_time(model, lr, hr, mean, scale, steps)
        total = {k: sum(v.values()) for k, v in counts.items()}
        grad = {k: v["forward"] + v["backward"] for k, v in counts.items()}
        ratio, speed = total["harness"] / total["plain"], seconds["plain"] / seconds["harness"]
        per_phase = {k: " / ".join(f"{v[p]:,}" for p in PHASES) for k, v in counts.items()}
        lines.append(f"| x{scale} | {total['plain']:,} ({per_phase['plain']}) | {total['harness']:,} "
                     f"({per_phase['harness']}) | {ratio:.2f} | {grad['harness'] / grad['plain']:.2f} | "
                     f"{seconds['plain']:.3f} | {seconds['harness']:.3f} | {speed:.2f}x |")
        verdicts.append(f"- x{scale}: ops {ratio:.2f}x plain ({'met' if ratio <= 1.5 else 'missed'}: <= 1.5x); "
                        f"step {speed:.2f}x the plain step's speed ({'met' if speed >= 1 else 'missed'}: >= 1x).")
    return lines + [""] + verdicts + [""]


def run(options: BenchOptions) -> str:
    """Run the suite and return its markdown section.

    Args:
        options: uses ``scales`` (2 and 4 by default here), ``device``, ``repeats``, ``warmup`` and ``quick``
            (LR patches 8×8, one step, one repeat: checks that the suite runs).
    """
    quick = options.quick
    repeats, warmup = (1, 0) if quick else (options.repeats, options.warmup)
    scales = [s for s in options.scales if s in (2, 4)] or [2, 4]
    lines = ["### train: SSRNet training throughput", ""]

    cpu_patch, cpu_batch, cpu_steps = (8, 2, 1) if quick else (16, 4, 8)
    lines += [f"CPU: {cpu_steps} optimiser step(s) of {cpu_batch} LR patches {cpu_patch}x{cpu_patch}x31 per "
              f"timed run, median of {repeats} (model construction included in both columns).", "",
              "| scale | harness (patches/s) | plain loop, fast=False fp32 (patches/s) | harness / plain |",
              "|---|---|---|---|"]
    for scale in scales:
        bank, mean = _bank(scale, cpu_patch, cpu_batch * cpu_steps)
        kwargs = dict(steps=cpu_steps, batch=cpu_batch, device="cpu")
        harness = time_call(_harness_step_fn(scale, bank, mean, amp="none", **kwargs), repeats=repeats, warmup=warmup)
        plain = time_call(_plain_step_fn(scale, bank, mean, **kwargs), repeats=repeats, warmup=warmup)
        patches = cpu_steps * cpu_batch
        lines.append(f"| x{scale} | {patches / harness:.3f} | {patches / plain:.3f} | {plain / harness:.2f} |")
    lines.append("")
    lines += _step_section(scales, quick)

    if options.device.startswith("cuda") and torch.cuda.is_available():
        gpu_patch, gpu_batch, gpu_steps = (8, 4, 2) if quick else (32, 16, 10)
        lines += [f"CUDA ({torch.cuda.get_device_name(0)}): {gpu_steps} steps of {gpu_batch} LR patches "
                  f"{gpu_patch}x{gpu_patch}x31; paper epoch on CAVE = {CAVE_PAPER_EPOCH_PATCHES:,} patches.", "",
                  "| scale | fp32 (patches/s) | bf16 (patches/s) | bf16 / fp32 | paper epoch fp32 | paper epoch bf16 |",
                  "|---|---|---|---|---|---|"]
        for scale in scales:
            bank, mean = _bank(scale, gpu_patch, gpu_batch * gpu_steps)
            rates = []
            for amp in ("none", "bf16"):
                fn = _harness_step_fn(scale, bank, mean, steps=gpu_steps, batch=gpu_batch, device=options.device,
                                      amp=amp)
                seconds = time_call(fn, repeats=repeats, warmup=max(1, warmup), device=options.device)
                rates.append(gpu_steps * gpu_batch / seconds)
            epochs = [CAVE_PAPER_EPOCH_PATCHES / r / 60 for r in rates]
            lines.append(f"| x{scale} | {rates[0]:.1f} | {rates[1]:.1f} | {rates[1] / rates[0]:.2f} | "
                         f"{epochs[0]:.1f} min | {epochs[1]:.1f} min |")
        lines.append("")
    elif options.device.startswith("cuda"):
        lines += ["CUDA requested but not available: GPU rows skipped.", ""]

    if quick:
        lines.append("Quick mode: tiny patches and one step, to check that the suite runs; not a measurement.")
    else:
        lines.append("The ratio compares the harness (optimised SSRNet, full training loop) with the plainest "
                     "correct loop over the reference model; above 1 the harness is faster.")
    return "\n".join(lines) + "\n"

