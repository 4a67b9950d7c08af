"""``hsibench bench --suite metrics``: the cost of scoring one SR cube against its reference.

Input: one seeded pair of ``(L, size, size)`` float32 cubes (HR uniform in [0, 1], SR = HR plus
Gaussian noise of sigma 0.02, clipped), on the requested device. Timings are medians of
``repeats`` calls after ``warmup`` calls. Rows:

1. ``psnr() + ssim() + sam()`` (three public calls, paper conventions): the figure the speed target
   is about (at most 0.3 s for 31x512x512 on the 2-core CPU), and each of the three alone;
2. the full ``evaluate()`` (all seven metrics, per-band arrays, conventions);
3. scikit-image's ``structural_similarity`` in a loop over bands (float64, the paper settings),
   always on CPU: the usual way to compute the paper's SSIM, and the ratio to rows 1 and the SSIM alone;
4. the SSIM filtering precision: float32 (the toolkit's choice) against float64 on a few bands,
   with the largest per-band difference (float64 depthwise convolution has no fast CPU kernel).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from hsisr_bench import metrics
from hsisr_bench.benchmarks import BenchOptions, time_call

#: HR side used by ``--quick`` (the point is to check the suite runs, not to measure).
QUICK_SIZE = 64
#: The speed target of the metrics issue, for L = 31 and 512x512 on CPU.
TARGET_SECONDS = 0.3
#: Bands used for the float32 vs float64 SSIM comparison (float64 is slow: keep it short).
PRECISION_BANDS = 4


def run(options: BenchOptions) -> str:
    """Run the suite and return its markdown section.

    Args:
        options: what ``hsibench bench`` was asked for; uses ``size``, ``bands``, ``device``,
            ``repeats``, ``warmup`` and ``quick``.

    Returns:
        A markdown section: a heading, what was measured, a table, and conclusions.
    """
    size = QUICK_SIZE if options.quick else options.size
    repeats = 1 if options.quick else options.repeats
    # Always warm up once: the first call on a new shape builds oneDNN kernels (a one-off cost).
    warmup = max(1, options.warmup)
    sr, hr = _make_pair(options.bands, size, options.device)
    shape = f"{options.bands}x{size}x{size}"

    def timed(fn: Callable[[], object], device: str = options.device) -> float:
        return time_call(fn, repeats=repeats, warmup=warmup, device=device)

    t_three = timed(lambda: (metrics.psnr(sr, hr), metrics.ssim(sr, hr), metrics.sam(sr, hr)))
    t_psnr = timed(lambda: metrics.psnr(sr, hr))
    t_ssim = timed(lambda: metrics.ssim(sr, hr))
    t_sam = timed(lambda: metrics.sam(sr, hr))
    t_evaluate = timed(lambda: metrics.evaluate(sr, hr, scale=4))

    sr_np, hr_np = sr.cpu().double().numpy(), hr.cpu().double().numpy()  # what a user would pass skimage
    t_skimage = time_call(lambda: _skimage_ssim(sr_np, hr_np), repeats=repeats, warmup=0)
    parity = abs(metrics.ssim(sr, hr) - _skimage_ssim(sr_np, hr_np))

    precision_lines = _precision_rows(sr, hr, size, options.device)
    lines = [
        "### metrics: PSNR, SSIM, SAM and evaluate()",
        "",
        f"One seeded pair of float32 cubes {shape} on `{options.device}` (HR uniform in [0, 1], SR = HR + "
        f"N(0, 0.02) clipped), paper conventions; median of {repeats} call(s) after {warmup} warm-up.",
        "",
        "| what | time (s) | note |",
        "|---|---|---|",
        f"| `psnr + ssim + sam` (three calls) | {t_three:.4f} | target <= {TARGET_SECONDS} s at 31x512x512 on CPU |",
        f"| `psnr` alone | {t_psnr:.4f} | one MSE over the cube (float64) |",
        f"| `ssim` alone | {t_ssim:.4f} | 11x11 Gaussian, all bands through depthwise convolutions |",
        f"| `sam` alone | {t_sam:.4f} | the authors' float32 convention |",
        f"| `evaluate` (all metrics) | {t_evaluate:.4f} | psnr, ssim, sam, ergas, rmse, cc, mpsnr + per-band arrays |",
        f"| scikit-image SSIM, loop over bands | {t_skimage:.4f} | `structural_similarity(..., gaussian_weights=True, "
        f"sigma=1.5, use_sample_covariance=False)`, float64, CPU |",
        *precision_lines,
        "",
        f"- `psnr + ssim + sam`: {t_three:.3f} s"
        + (_target_verdict(t_three) if (size, options.bands) == (512, 31) and options.device == "cpu" else
           " (the 0.3 s target applies to 31x512x512 on CPU only)") + ".",
        f"- Against the scikit-image SSIM loop alone: `psnr + ssim + sam` is {_speedup(t_skimage, t_three)} "
        f"(target: at least 2x faster), `ssim` alone {_speedup(t_skimage, t_ssim)}.",
        f"- SSIM agrees with scikit-image to {parity:.1e} on this pair.",
        f"- `evaluate` costs {t_evaluate / t_three:.2f}x the three calls (it adds ERGAS, RMSE, CC and the "
        f"per-band arrays, and checks the inputs once).",
        "",
    ]
    if options.quick:
        lines.append(f"Quick mode: {shape} inputs and one repeat, to check that the suite runs; these timings "
                     f"are not meaningful.")
        lines.append("")
    return "\n".join(lines)


def _make_pair(bands: int, size: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    hr = torch.rand(bands, size, size, generator=generator)  # (L, H, W) float32
    sr = (hr + 0.02 * torch.randn(bands, size, size, generator=generator)).clamp_(0, 1)
    return sr.to(device), hr.to(device)


def _skimage_ssim(sr: np.ndarray, hr: np.ndarray) -> float:
    """The paper's SSIM the usual way: scikit-image on each band, then the mean."""
    from skimage.metrics import structural_similarity

    return float(np.mean([
        structural_similarity(hr[band], sr[band], data_range=1, gaussian_weights=True, sigma=1.5,
                              use_sample_covariance=False)
        for band in range(hr.shape[0])
    ]))


def _speedup(reference: float, ours: float) -> str:
    ratio = reference / ours
    return f"{ratio:.1f}x faster" if ratio >= 1 else f"{1 / ratio:.1f}x slower"


def _target_verdict(seconds: float) -> str:
    verdict = "meets" if seconds <= TARGET_SECONDS else "misses"
    return f" {verdict} the {TARGET_SECONDS} s target on this machine"


def _precision_rows(sr: torch.Tensor, hr: torch.Tensor, size: int, device: str) -> list[str]:
    """Time the SSIM filtering in float32 and float64 on a few bands (one call each: float64 is slow)."""
    bands = min(PRECISION_BANDS, sr.shape[0])
    x, y = metrics._prepare(sr[:bands], hr[:bands])
    metrics._ssim_per_band(x, y)  # warm-up of the float32 kernels for this shape
    t32 = time_call(lambda: metrics._ssim_per_band(x, y), repeats=1, warmup=0, device=device)
    t64 = time_call(lambda: metrics._ssim_per_band(x, y, dtype=torch.float64), repeats=1, warmup=0, device=device)
    difference = float((metrics._ssim_per_band(x, y) - metrics._ssim_per_band(x, y, dtype=torch.float64)).abs().max())
    return [
        f"| SSIM filtering in float32, {bands} bands | {t32:.4f} | the toolkit's choice |",
        f"| SSIM filtering in float64, {bands} bands | {t64:.4f} | {t64 / t32:.1f}x slower; largest per-band "
        f"difference {difference:.1e} |",
    ]
