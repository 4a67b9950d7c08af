"""``hsibench bench --suite train``: SSRNet training throughput of the harness against a plain loop.

Rows (patches per second, median over ``repeats`` timed runs after ``warmup``):

1. CPU, for ×2 and ×4: the harness's training loop (``engine.train.train``: patch bank, band mean,
   L1 loss, Adam, the default optimised SSRNet) against a plain loop over the plain model
   (``create_method("ssrnet", ..., fast=False)``, fp32, ``model(lr - mean) + mean``, L1, Adam, nothing
   else), on the same patches, as a ratio measured in the same run.
2. CUDA (when ``--device cuda`` and a GPU is present): the harness in fp32 and in mixed precision
   (bf16), and the estimated time of one ``paper``-profile epoch on CAVE: 26 training scenes × 3
   rescales × 24 patches × 5 copies = 9,360 patches of 32×32 LR.

The patches come from the embedded synthetic scenes (31 bands); what is timed is the optimisation,
not data loading.
"""

from __future__ import annotations

from typing import Callable

import torch

from hsisr_bench.benchmarks import BenchOptions, time_call

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

