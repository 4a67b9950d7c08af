"""Image-quality metrics for hyperspectral cubes: PSNR, MPSNR, SSIM, SAM, ERGAS, RMSE, CC.

Every public function takes two cubes shaped ``(L, H, W)`` (band-first), as numpy arrays or torch
tensors (CPU or CUDA, any real dtype), and returns a Python float. The first argument is the
super-resolved cube, the second the reference (ground truth); the order matters only for ERGAS,
which normalises by the reference's band means. The functions do not clip: the harness scores
``clip(SR, 0, 1)`` (PROTOCOL.md section 5).

The defaults are the conventions of the SSRNet authors' evaluation code (the "paper" conventions);
every convention that differs in the literature is an argument, and :class:`Conventions` bundles
them for :func:`evaluate` and for the results files. ``docs/metrics.md`` gives the formulas and who
uses which convention.

Numerics: sums are accumulated in float64; SSIM's local statistics are filtered in float32 with a
per-band offset removed first (float64 depthwise convolution has no fast CPU kernel; the float32
result agrees with scikit-image's float64 one to about 1e-7); the paper's SAM is computed in float32
because that is what the authors' code does.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping, NamedTuple, Union

import numpy as np
import torch
import torch.nn.functional as F

from hsisr_bench.errors import HsiBenchError, did_you_mean

__all__ = [
    "Conventions", "METRICS", "MetricError", "MetricInfo", "PAPER_CONVENTIONS", "SAM_EPS",
    "cc", "ergas", "evaluate", "mpsnr", "psnr", "rmse", "sam", "ssim",
]

Array = Union[np.ndarray, torch.Tensor]

#: The constant the authors' SAM writes over exact zeros: MATLAB's ``eps`` rounded to 5 digits.
SAM_EPS = 2.2204e-16

_PSNR_REDUCTIONS = ("cube", "band")
_SSIM_WINDOWS = ("gaussian", "uniform")
_SAM_ZEROS = ("paper", "exclude", "as_zero")
_SAM_UNITS = ("deg", "rad")


class MetricError(HsiBenchError, ValueError):
    """Inputs or options a metric cannot use: wrong shape, non-finite values, unknown convention."""


# --------------------------------------------------------------------------------------------------
# Conventions and metadata
# --------------------------------------------------------------------------------------------------


def _check_choice(argument: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise MetricError(f"{argument}={value!r} is not a known convention. {did_you_mean(str(value), choices)}")


def _check_data_range(data_range: Any) -> None:
    ok = isinstance(data_range, (int, float)) and not isinstance(data_range, bool)
    if not ok or not math.isfinite(data_range) or data_range <= 0:
        raise MetricError(f"data_range must be a positive finite number (1.0 for cubes in [0, 1]), got {data_range!r}")


def _check_quantise(bits: Any) -> None:
    if bits is None:
        return
    if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 24:
        raise MetricError(f"psnr quantise must be None or a bit depth from 1 to 24 (8 for GDRRN's 8-bit "
                          f"PSNR), got {bits!r}")


@dataclass(frozen=True)
class Conventions:
    """The metric conventions a score was computed with; the defaults are the paper's.

    Attributes:
        psnr_reduction: ``"cube"`` (one MSE over all bands and pixels, the paper) or ``"band"``
            (mean of per-band PSNRs, "MPSNR").
        psnr_quantise: None (the paper) or a bit depth such as 8: both cubes are rounded to that
            many bits (values clipped to [0, data_range]) before PSNR and MPSNR (GDRRN's 8-bit PSNR).
        data_range: the peak value of the data (1 for cubes in [0, 1]); PSNR's peak and SSIM's L.
        ssim_window: ``"gaussian"`` (11x11, sigma 1.5, population variances: the paper) or
            ``"uniform"`` (7x7, sample covariance: scikit-image's defaults).
        sam_zero: what SAM does with zeros: ``"paper"`` (the authors' code), ``"exclude"`` (pixels
            with a zero spectrum in either cube are skipped) or ``"as_zero"`` (they count as 0).
        sam_unit: ``"deg"`` (the paper) or ``"rad"``.
    """

    psnr_reduction: str = "cube"
    psnr_quantise: int | None = None
    data_range: float = 1.0
    ssim_window: str = "gaussian"
    sam_zero: str = "paper"
    sam_unit: str = "deg"

    def __post_init__(self) -> None:
        _check_choice("psnr_reduction", self.psnr_reduction, _PSNR_REDUCTIONS)
        _check_choice("ssim_window", self.ssim_window, _SSIM_WINDOWS)
        _check_choice("sam_zero", self.sam_zero, _SAM_ZEROS)
        _check_choice("sam_unit", self.sam_unit, _SAM_UNITS)
        _check_data_range(self.data_range)
        _check_quantise(self.psnr_quantise)
        # Store a plain float so that to_dict() round-trips through JSON and equality is by value.
        object.__setattr__(self, "data_range", float(self.data_range))

    def to_dict(self) -> dict[str, Any]:
        """Return the conventions as a plain dict (JSON-ready; the keys are the field names)."""
        return asdict(self)

    @classmethod
    def from_value(cls, value: "Conventions | Mapping[str, Any] | None") -> "Conventions":
        """Build conventions from ``None`` (the paper's), a :class:`Conventions` or a dict of fields.

        Raises:
            MetricError: a key is not a field, or a value is not an allowed choice.
        """
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if not isinstance(value, Mapping):
            raise MetricError(f"conventions must be a Conventions or a dict, got {type(value).__name__}")
        names = [f.name for f in fields(cls)]
        for key in value:
            if key not in names:
                raise MetricError(f"Unknown metric convention {key!r}. {did_you_mean(str(key), names)}")
        return cls(**value)

    def describe(self) -> dict[str, str]:
        """Return one human-readable line per metric saying which convention was used (for reports)."""
        peak = f"peak {self.data_range:g}"
        psnr_text = ("one MSE over the whole cube" if self.psnr_reduction == "cube"
                     else "mean of per-band PSNRs") + f", {peak}"
        if self.psnr_quantise is not None:
            quantised = f", cubes rounded to {self.psnr_quantise} bits first"
            psnr_text += quantised
        else:
            quantised = ""
        ssim_text = ("per band, 11x11 Gaussian window sigma 1.5, valid region, population variances"
                     if self.ssim_window == "gaussian"
                     else "per band, 7x7 uniform window, valid region, sample covariance")
        sam_text = {
            "paper": "zeros replaced by 2.2204e-16 in float32 (authors' code): an all-zero pixel scores 90 deg",
            "exclude": "pixels with a zero spectrum in either cube skipped",
            "as_zero": "pixels with a zero spectrum in either cube count as 0",
        }[self.sam_zero]
        return {
            "psnr": psnr_text,
            "mpsnr": f"mean of per-band PSNRs, {peak}{quantised}",
            "ssim": f"{ssim_text}, L = {self.data_range:g}, mean over bands",
            "sam": f"mean angle over pixels in {'degrees' if self.sam_unit == 'deg' else 'radians'}; {sam_text}",
            "ergas": "100/s * sqrt(mean_b(MSE_b / mean(HR_b)^2)), s = the scale factor",
            "rmse": "sqrt of one MSE over the whole cube",
            "cc": "mean over bands of the Pearson correlation (constant bands skipped)",
        }


#: The paper's conventions (the SSRNet authors' evaluation code), the default everywhere.
PAPER_CONVENTIONS = Conventions()


@dataclass(frozen=True)
class MetricInfo:
    """What a report needs to know about a metric: label, unit, direction, default convention."""

    name: str
    title: str
    unit: str  # unit under the default conventions ("" when unitless)
    higher_is_better: bool
    convention: str  # the default (paper) convention in words
    description: str
    decimals: int  # digits the paper's tables print


METRICS: dict[str, MetricInfo] = {
    "psnr": MetricInfo(
        "psnr", "PSNR", "dB", True, PAPER_CONVENTIONS.describe()["psnr"],
        "Peak signal-to-noise ratio, 10*log10(peak^2 / MSE).", 2),
    "mpsnr": MetricInfo(
        "mpsnr", "MPSNR", "dB", True, PAPER_CONVENTIONS.describe()["mpsnr"],
        "Mean over bands of the per-band PSNR.", 2),
    "ssim": MetricInfo(
        "ssim", "SSIM", "", True, PAPER_CONVENTIONS.describe()["ssim"],
        "Structural similarity (Wang et al. 2004), computed per band and averaged over bands.", 3),
    "sam": MetricInfo(
        "sam", "SAM", "deg", False, PAPER_CONVENTIONS.describe()["sam"],
        "Spectral angle mapper: the angle between the SR and HR spectra of each pixel, averaged over pixels.", 2),
    "ergas": MetricInfo(
        "ergas", "ERGAS", "", False, PAPER_CONVENTIONS.describe()["ergas"],
        "Relative dimensionless global error in synthesis (Wald 2000): band RMSEs relative to band means.", 3),
    "rmse": MetricInfo(
        "rmse", "RMSE", "", False, PAPER_CONVENTIONS.describe()["rmse"],
        "Root mean squared error over all bands and pixels, in data units.", 4),
    "cc": MetricInfo(
        "cc", "CC", "", True, PAPER_CONVENTIONS.describe()["cc"],
        "Cross-correlation: mean over bands of the Pearson correlation between SR and HR.", 4),
}


# --------------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------------


def _to_tensor(x: Array, name: str) -> torch.Tensor:
    """Return ``x`` as a floating torch tensor on its own device, without copying when possible."""
    if isinstance(x, np.ndarray):
        if x.dtype.kind not in "fiu":
            raise MetricError(f"{name} has dtype {x.dtype}; expected a real number dtype (float or integer)")
        if x.dtype.kind in "iu":  # torch lacks most unsigned types: convert integers here
            x = x.astype(np.float64)
        if not x.dtype.isnative:  # big-endian arrays (e.g. from some .mat files) cannot become tensors
            x = x.astype(x.dtype.newbyteorder("="))
        if any(step < 0 for step in x.strides):  # torch does not take negative strides (flipped views)
            x = np.ascontiguousarray(x)
        x = torch.from_numpy(x)
    elif not isinstance(x, torch.Tensor):
        raise MetricError(f"{name} must be a numpy array or a torch tensor shaped (L, H, W), got {type(x).__name__}")
    if x.dtype == torch.bool or x.is_complex():
        raise MetricError(f"{name} has dtype {x.dtype}; expected a real number dtype (float or integer)")
    if not x.is_floating_point():
        x = x.to(torch.float64)
    elif x.dtype in (torch.float16, torch.bfloat16):
        x = x.to(torch.float32)
    return x.detach()


def _prepare(sr: Array, hr: Array) -> tuple[torch.Tensor, torch.Tensor]:
    """Check a (prediction, reference) pair and return them as tensors on one device.

    Raises:
        MetricError: not arrays, not 3-D, shapes differ, empty, different devices, NaN or Inf.
    """
    x, y = _to_tensor(sr, "sr"), _to_tensor(hr, "hr")
    for name, t in (("sr", x), ("hr", y)):
        if t.dim() != 3:
            hint = " (drop the batch axis first, e.g. cube[0])" if t.dim() == 4 else ""
            raise MetricError(f"{name} must be a cube shaped (L, H, W), got {t.dim()} dimensions, shape "
                              f"{tuple(t.shape)}{hint}")
    if x.shape != y.shape:
        raise MetricError(f"sr and hr must have the same shape (L, H, W); got sr {tuple(x.shape)} and hr "
                          f"{tuple(y.shape)} (crop the target like the output, see the method's output_crop)")
    if x.numel() == 0:
        raise MetricError(f"sr and hr are empty (shape {tuple(x.shape)}); expected at least one band and pixel")
    if isinstance(sr, np.ndarray) != isinstance(hr, np.ndarray):
        # One numpy array and one tensor: compute where the tensor lives.
        x, y = (x.to(y.device), y) if isinstance(sr, np.ndarray) else (x, y.to(x.device))
    if x.device != y.device:
        raise MetricError(f"sr is on {x.device} and hr on {y.device}; move both to one device")
    for name, t in (("sr", x), ("hr", y)):
        # A sum is finite iff every value is, barring overflow of huge values: then count exactly.
        # (The sum reads the cube once; isfinite().all() writes a boolean cube and is 20x slower.)
        if not bool(torch.isfinite(t.sum())) and bool((~torch.isfinite(t)).any()):
            bad = int((~torch.isfinite(t)).sum())
            raise MetricError(f"{name} holds {bad} NaN or Inf value(s) out of {t.numel()}; metrics need finite "
                              f"values (check the model output before scoring)")
    return x, y


def _check_scale(scale: Any) -> float:
    if scale is None:
        raise MetricError("ERGAS needs the super-resolution scale factor: pass scale=2, 3 or 4 (it has no default "
                          "because some code silently assumes 4)")
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale) or scale <= 0:
        raise MetricError(f"scale must be a positive number (the super-resolution factor), got {scale!r}")
    return float(scale)


# --------------------------------------------------------------------------------------------------
# Shared building blocks (tensors in, tensors out)
# --------------------------------------------------------------------------------------------------


def _band_chunks(bands: int, band_bytes: int, budget: int) -> list[slice]:
    """Split ``range(bands)`` into consecutive slices of about ``budget`` bytes (at least one band each).

    Why: on CPU, whole-cube temporaries (31x512x512 float64 is 65 MB) do not fit in cache, and a
    chain of elementwise operations over them is memory-bound; cache-sized chunks of bands were
    5 to 15x faster on the development machine. Each chunk is still one batched call per operation.
    """
    step = max(1, min(bands, budget // max(band_bytes, 1)))
    return [slice(start, min(start + step, bands)) for start in range(0, bands, step)]


#: Bytes of float64 data per chunk for the per-band statistics (about one 512x512 band).
_STATS_CHUNK_BYTES = 2 * 1024 * 1024


class _BandStats(NamedTuple):
    """Per-band statistics, float64 tensors shaped (L,)."""

    mse: torch.Tensor  # mean squared error of each band
    hr_mean: torch.Tensor  # mean of each reference band
    cc: torch.Tensor | None  # Pearson correlation of each band (NaN where a band is constant)


def _band_stats(x: torch.Tensor, y: torch.Tensor, *, with_cc: bool = False) -> _BandStats:
    """Per-band MSE, reference mean and (optionally) Pearson correlation, all in float64."""
    bands, height, width = x.shape
    mse = torch.empty(bands, dtype=torch.float64, device=x.device)
    hr_mean = torch.empty_like(mse)
    cc = torch.empty_like(mse) if with_cc else None
    for part in _band_chunks(bands, height * width * 8, _STATS_CHUNK_BYTES):
        a, b = x[part].to(torch.float64), y[part].to(torch.float64)  # (n, H, W)
        mse[part] = (a - b).square_().mean(dim=(1, 2))
        b_mean = b.mean(dim=(1, 2), keepdim=True)
        hr_mean[part] = b_mean.view(-1)
        if cc is not None:
            # Centre first (exact even for flat bands). Not in place: for float64 input, a and b
            # are the caller's own data.
            a = a - a.mean(dim=(1, 2), keepdim=True)
            b = b - b_mean
            norms = (a.square().sum(dim=(1, 2)) * b.square().sum(dim=(1, 2))).sqrt()
            # A constant band has no correlation: NaN, which _cc_value skips.
            cc[part] = (a * b).sum(dim=(1, 2)) / norms.where(norms > 0, torch.full_like(norms, math.nan))
    return _BandStats(mse, hr_mean, cc)


def _psnr_from_mse(mse: torch.Tensor, data_range: float) -> torch.Tensor:
    """10*log10(peak^2 / mse), elementwise; mse 0 gives +inf."""
    return 10.0 * torch.log10(data_range**2 / mse)  # x / 0 = inf for x > 0, log10(inf) = inf


def _psnr_mse(x: torch.Tensor, y: torch.Tensor, data_range: float, quantise: int | None,
              stats: "_BandStats | None" = None) -> tuple[torch.Tensor, float]:
    """Per-band MSE and peak for PSNR: of the cubes themselves, or of their ``quantise``-bit levels.

    Quantising: clip to [0, data_range], scale to integer levels 0 .. 2^bits - 1 and round half up
    (MATLAB's ``uint8`` rounding for these non-negative values); the peak is then 2^bits - 1.
    """
    if quantise is None:
        return (stats if stats is not None else _band_stats(x, y)).mse, data_range
    levels = 2**quantise - 1

    def to_levels(t: torch.Tensor) -> torch.Tensor:
        return torch.floor(t.to(torch.float64).clamp(0, data_range) * (levels / data_range) + 0.5)

    return _band_stats(to_levels(x), to_levels(y)).mse, float(levels)


def _psnr_value(mse_per_band: torch.Tensor, data_range: float, reduction: str) -> float:
    if reduction == "cube":
        # Every band has the same number of pixels, so the cube MSE is the mean of the band MSEs.
        return float(_psnr_from_mse(mse_per_band.mean(), data_range))
    return float(_psnr_from_mse(mse_per_band, data_range).mean())


def _window_1d(window: str, win_size: int | None, sigma: float, device: torch.device) -> torch.Tensor:
    """Return the normalised 1-D window (float64, odd length); the 2-D window is its outer product."""
    if window == "gaussian":
        if not (isinstance(sigma, (int, float)) and sigma > 0):
            raise MetricError(f"sigma must be a positive number, got {sigma!r}")
        # scikit-image's rule (gaussian_filter with truncate=3.5): radius int(3.5*sigma + 0.5) -> 11 taps for 1.5.
        size = win_size if win_size is not None else 2 * int(3.5 * sigma + 0.5) + 1
    else:
        size = win_size if win_size is not None else 7
    if not isinstance(size, int) or isinstance(size, bool) or size < 3 or size % 2 == 0:
        raise MetricError(f"win_size must be an odd integer >= 3, got {size!r}")
    if window == "uniform":
        return torch.full((size,), 1.0 / size, dtype=torch.float64, device=device)
    offsets = torch.arange(size, dtype=torch.float64, device=device) - size // 2
    weights = torch.exp(-(offsets**2) / (2.0 * sigma**2))
    # The 2-D Gaussian exp(-(i^2 + j^2) / 2s^2) normalised over the square window (MATLAB fspecial)
    # equals the outer product of this normalised 1-D window.
    return weights / weights.sum()


#: Bytes of SSIM statistics per chunk on CPU: 4 bands (16 channels) at 512x512. Filtering all 31
#: bands (124 channels) in one call was about 3x slower on the 2-core development machine.
_SSIM_CHUNK_BYTES = 16 * 1024 * 1024


def _separable_filter(maps: torch.Tensor, vertical: torch.Tensor, horizontal: torch.Tensor) -> torch.Tensor:
    """Valid-region separable filtering of every channel of ``maps`` (1, C, H, W).

    ``vertical`` is (C, 1, k, 1) and ``horizontal`` (C, 1, 1, k): one depthwise convolution per axis
    (groups = C). With channels-last input oneDNN's depthwise kernels vectorise over the channels.
    Returns (1, C, H - k + 1, W - k + 1).
    """
    channels = maps.shape[1]
    return F.conv2d(F.conv2d(maps, vertical, groups=channels), horizontal, groups=channels)


def _ssim_per_band(
    x: torch.Tensor, y: torch.Tensor, *, window: str = "gaussian", data_range: float = 1.0,
    k1: float = 0.01, k2: float = 0.03, sigma: float = 1.5, win_size: int | None = None,
    sample_covariance: bool | None = None, dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """SSIM of each band over the valid region, float64 tensor shape (L,). Inputs are checked tensors.

    ``dtype`` is the filtering precision (float32 by default: see the module docstring).
    """
    _check_choice("window", window, _SSIM_WINDOWS)
    _check_data_range(data_range)
    taps = _window_1d(window, win_size, sigma, x.device).to(dtype)
    size = taps.numel()
    bands, height, width = x.shape
    if height < size or width < size:
        raise MetricError(f"SSIM needs bands of at least {size}x{size} pixels (the {window} window); got "
                          f"{height}x{width}. Use a smaller win_size or larger images")
    if sample_covariance is None:
        sample_covariance = window == "uniform"  # scikit-image's default for each window
    cov_norm = size * size / (size * size - 1.0) if sample_covariance else 1.0
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2

    # On CPU, chunks of bands that stay in cache (see _band_chunks); a GPU takes all bands at once.
    budget = _SSIM_CHUNK_BYTES if x.device.type == "cpu" else 1 << 62
    parts = _band_chunks(bands, 4 * height * width * (torch.finfo(dtype).bits // 8), budget)
    chunk = parts[0].stop
    channels = 4 * chunk  # the statistics x, y, x^2 + y^2, x*y of `chunk` bands
    vertical = taps.view(1, 1, size, 1).expand(channels, 1, size, 1).contiguous()  # (4n, 1, k, 1)
    horizontal = taps.view(1, 1, 1, size).expand(channels, 1, 1, size).contiguous()  # (4n, 1, 1, k)
    # NCHW tensor in channels-last format (not a permuted HWC tensor: oneDNN takes its fast path only
    # when the batch stride is the full image too). The first chunk fills every channel; a short
    # last chunk leaves the previous chunk's finite values in its unused channels (filtered, ignored).
    maps = torch.empty((1, channels, height, width), dtype=dtype, device=x.device,
                       memory_format=torch.channels_last)
    hwc = maps[0].permute(1, 2, 0)  # (4n, H, W) -> (H, W, 4n), a contiguous view of the same memory
    result = torch.empty(bands, dtype=torch.float64, device=x.device)
    for part in parts:
        start, stop = part.start, part.stop
        n = stop - start
        xs, ys = hwc[..., :n], hwc[..., chunk:chunk + n]
        squares, products = hwc[..., 2 * chunk:2 * chunk + n], hwc[..., 3 * chunk:3 * chunk + n]
        x_part, y_part = x[part].to(dtype), y[part].to(dtype)  # (n, H, W)
        # Remove one offset per band (the mean of both bands: symmetric in x and y) before squaring,
        # so float32 E[x^2] - E[x]^2 keeps its digits on bright flat bands (error vs float64 on a flat
        # band at 0.9: 3e-6 without, 2e-9 with). Variances and covariance do not change; the
        # luminance term gets the offset back.
        band_offset = (x_part.mean(dim=(1, 2)) + y_part.mean(dim=(1, 2))) / 2  # (n,)
        torch.sub(x_part.permute(1, 2, 0), band_offset, out=xs)  # (n, H, W) -> (H, W, n)
        torch.sub(y_part.permute(1, 2, 0), band_offset, out=ys)
        # SSIM needs only the sum of the two variances, so x^2 and y^2 share one map (4 maps, not 5).
        torch.mul(xs, xs, out=squares).add_(ys * ys)
        torch.mul(xs, ys, out=products)
        filtered = _separable_filter(maps, vertical, horizontal)[0]  # (4n, H', W')
        ssim_map = _ssim_map(
            filtered[:n], filtered[chunk:chunk + n], filtered[2 * chunk:2 * chunk + n],
            filtered[3 * chunk:3 * chunk + n], band_offset.view(n, 1, 1), cov_norm=cov_norm, c1=c1, c2=c2)
        result[start:stop] = ssim_map.sum(dim=(1, 2), dtype=torch.float64) / ssim_map[0].numel()
    return result


def _ssim_map(
    mu_x: torch.Tensor, mu_y: torch.Tensor, mean_sq: torch.Tensor, mean_xy: torch.Tensor,
    offset: torch.Tensor, *, cov_norm: float, c1: float, c2: float,
) -> torch.Tensor:
    """The SSIM map (n, H', W') from the filtered offset-free statistics E[x], E[y], E[x^2 + y^2], E[xy].

    Written with in-place operations (the maps are large) and so that swapping x and y gives the
    same bits: only commutative combinations of the x and y terms.
    """
    # Contrast-structure term: (2 cov + C2) / (var_x + var_y + C2), from offset-free statistics.
    mu_sq_sum = (mu_x * mu_x).add_(mu_y * mu_y)
    var_term = torch.sub(mean_sq, mu_sq_sum).mul_(cov_norm).add_(c2)
    cov_term = torch.sub(mean_xy, mu_x * mu_y).mul_(2 * cov_norm).add_(c2)
    # Luminance term: (2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1) with the offset put back.
    mu_x, mu_y = mu_x + offset, mu_y + offset
    numerator = (mu_x * mu_y).mul_(2).add_(c1).mul_(cov_term)
    denominator = (mu_x * mu_x).add_(mu_y * mu_y).add_(c1).mul_(var_term)
    return numerator.div_(denominator)


def _sam_angles_paper(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-pixel angles (rad, float32, (H, W)) exactly as the authors' ``SAM(pred, gt)``.

    Their code, in float32: exact zeros of each cube become eps = 2.2204e-16; then
    ``arccos(dot / (|a| * |b| + eps))`` per pixel, the sums over bands taken with Python's built-in
    ``sum`` (band after band, in float32); NaN angles count as 0. The loop below adds in the same
    order, so every per-pixel cosine is bit-identical to theirs.

    A pixel that is all zeros in both cubes: eps^2 = 4.93e-32 is a normal float32 (the smallest is
    1.18e-38), so dot = L*eps^2 and |a|*|b| = L*eps^2 (1.53e-30 for L = 31) and their ratio alone
    would be 1 (0 deg). It is the ``+ eps`` in the denominator that decides: 1.53e-30 + 2.2e-16 rounds
    to 2.2e-16, the cosine is about 7e-15 and the angle is 90 deg (pi/2 in float32). Likewise a pixel
    that is zero in one cube only gets cos = sum(b) / (sqrt(L)*|b| + 1), not the true angle.
    """
    eps = torch.tensor(SAM_EPS, dtype=torch.float32, device=x.device)
    dot = norm_a = norm_b = None
    for x_band, y_band in zip(x, y):  # band by band: the summation order, and cache-sized work
        a = torch.where(x_band == 0, eps, x_band.to(torch.float32))  # (H, W)
        b = torch.where(y_band == 0, eps, y_band.to(torch.float32))
        if dot is None:
            dot, norm_a, norm_b = a * b, a * a, b * b
        else:
            dot += a * b  # separate multiply and add (no fused multiply-add), as numpy does
            norm_a += a * a
            norm_b += b * b
    cosine = dot / (norm_a.sqrt_() * norm_b.sqrt_() + eps)
    # numpy's arccos gives NaN outside [-1, 1] (rounding can push the cosine of parallel spectra
    # just above 1) and the authors set NaN to 0: the same as clamping for cos > 1.
    inside = cosine.abs() <= 1
    return torch.where(inside, torch.acos(cosine.clamp(-1.0, 1.0)), torch.zeros_like(cosine))


def _sam_angles_exact(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel angles (rad, float64, (H, W)) and the mask of pixels with non-zero spectra in both."""
    dot = torch.zeros(x.shape[1:], dtype=torch.float64, device=x.device)
    norm_a, norm_b = torch.zeros_like(dot), torch.zeros_like(dot)
    for x_band, y_band in zip(x, y):  # band by band: float64 temporaries of one band stay in cache
        a, b = x_band.to(torch.float64), y_band.to(torch.float64)  # (H, W)
        dot.addcmul_(a, b)
        norm_a.addcmul_(a, a)
        norm_b.addcmul_(b, b)
    norms = norm_a.sqrt_().mul_(norm_b.sqrt_())
    valid = norms > 0
    # Zero-norm pixels get cosine 1 (angle 0); the caller skips or counts them. Clamp: rounding can
    # push the cosine of parallel spectra just past 1, where acos is NaN.
    cosine = torch.where(valid, dot / torch.where(valid, norms, torch.ones_like(norms)), torch.ones_like(norms))
    return torch.acos(cosine.clamp_(-1.0, 1.0)), valid


def _sam_value(x: torch.Tensor, y: torch.Tensor, zero: str, unit: str) -> float:
    _check_choice("zero", zero, _SAM_ZEROS)
    _check_choice("unit", unit, _SAM_UNITS)
    if zero == "paper":
        angles = _sam_angles_paper(x, y)
        value = float(angles.sum(dtype=torch.float64)) / angles.numel()
    else:
        angles, valid = _sam_angles_exact(x, y)
        if zero == "exclude":
            count = int(valid.sum())
            value = float(angles[valid].sum()) / count if count else math.nan
        else:  # "as_zero": zero-norm pixels got cosine 1, i.e. angle 0, and are counted
            value = float(angles.sum()) / angles.numel()
    return math.degrees(value) if unit == "deg" else value


def _ergas_value(stats: _BandStats, scale: float) -> float:
    mse = stats.mse
    # A band whose reference mean is 0 contributes 0 if it is reproduced exactly, else inf.
    relative = torch.where(mse == 0, torch.zeros_like(mse), mse / stats.hr_mean.square())
    return 100.0 / scale * math.sqrt(float(relative.mean()))


def _cc_value(stats: _BandStats) -> float:
    per_band = stats.cc
    valid = ~torch.isnan(per_band)  # Pearson is undefined for a band constant in either cube: skip it
    return float(per_band[valid].mean()) if bool(valid.any()) else math.nan


# --------------------------------------------------------------------------------------------------
# Public metrics
# --------------------------------------------------------------------------------------------------


def psnr(sr: Array, hr: Array, *, data_range: float = 1.0, reduction: str = "cube",
         quantise: int | None = None) -> float:
    """Peak signal-to-noise ratio in dB, ``10 * log10(data_range^2 / MSE)``.

    Args:
        sr: super-resolved cube (L, H, W), numpy array or torch tensor.
        hr: reference cube, same shape.
        data_range: the peak value (1.0 for cubes in [0, 1]).
        reduction: ``"cube"`` (one MSE over all bands and pixels: the paper) or ``"band"`` (mean of
            the per-band PSNRs, MPSNR).
        quantise: None (the paper), or a bit depth: both cubes are clipped to [0, data_range] and
            rounded to ``2**quantise - 1`` levels first, and the peak is the top level (8: GDRRN).

    Returns:
        PSNR in dB; ``inf`` when the cubes are identical (with ``"band"``: when any band is identical).

    Raises:
        MetricError: bad inputs (shape, dimensions, NaN/Inf), an unknown reduction or a bad bit depth.
    """
    _check_choice("reduction", reduction, _PSNR_REDUCTIONS)
    _check_data_range(data_range)
    _check_quantise(quantise)
    x, y = _prepare(sr, hr)
    mse, peak = _psnr_mse(x, y, data_range, quantise)
    return _psnr_value(mse, peak, reduction)


def mpsnr(sr: Array, hr: Array, *, data_range: float = 1.0, quantise: int | None = None) -> float:
    """Mean of the per-band PSNRs in dB (MPSNR): ``psnr(sr, hr, reduction="band")``.

    Args:
        sr: super-resolved cube (L, H, W).
        hr: reference cube, same shape.
        data_range: the peak value.
        quantise: None, or a bit depth to round both cubes to first (see :func:`psnr`).

    Returns:
        MPSNR in dB; ``inf`` if any band is reproduced exactly.

    Raises:
        MetricError: bad inputs.
    """
    return psnr(sr, hr, data_range=data_range, reduction="band", quantise=quantise)


def ssim(
    sr: Array, hr: Array, *, window: str = "gaussian", data_range: float = 1.0, k1: float = 0.01,
    k2: float = 0.03, sigma: float = 1.5, win_size: int | None = None, sample_covariance: bool | None = None,
) -> float:
    """Mean over bands of the per-band structural similarity, computed on the valid region.

    ``window="gaussian"`` is the paper's SSIM (11x11 Gaussian, sigma 1.5, K1 0.01, K2 0.03, population
    variances), equal to scikit-image's ``structural_similarity(..., gaussian_weights=True,
    sigma=1.5, use_sample_covariance=False)``; ``window="uniform"`` is scikit-image's default (7x7
    box, sample covariance). All bands are filtered at once (no loop over bands).

    Args:
        sr: super-resolved cube (L, H, W).
        hr: reference cube, same shape.
        window: ``"gaussian"`` or ``"uniform"``.
        data_range: the dynamic range L in C1 = (K1 L)^2, C2 = (K2 L)^2.
        k1: the constant K1.
        k2: the constant K2.
        sigma: the Gaussian's standard deviation (gaussian window only).
        win_size: window side (odd); default 2*int(3.5*sigma + 0.5) + 1 (11) for gaussian, 7 for uniform.
        sample_covariance: divide by N - 1 instead of N; default False for gaussian, True for uniform.

    Returns:
        SSIM, at most 1.

    Raises:
        MetricError: bad inputs, bands smaller than the window, or bad options.
    """
    x, y = _prepare(sr, hr)
    per_band = _ssim_per_band(x, y, window=window, data_range=data_range, k1=k1, k2=k2, sigma=sigma,
                              win_size=win_size, sample_covariance=sample_covariance)
    return float(per_band.mean())


def sam(sr: Array, hr: Array, *, unit: str = "deg", zero: str = "paper") -> float:
    """Spectral angle mapper: the mean over pixels of the angle between the SR and HR spectra.

    Args:
        sr: super-resolved cube (L, H, W).
        hr: reference cube, same shape.
        unit: ``"deg"`` (the paper) or ``"rad"``.
        zero: ``"paper"``: the authors' code exactly (float32; exact zeros replaced by 2.2204e-16,
            ``acos(dot / (|a||b| + eps))``, so a pixel all-zero in both cubes scores 90 deg and is
            counted; NaN angles count as 0). ``"exclude"``: pixels whose spectrum has zero norm in
            either cube are skipped (NaN if every pixel is skipped). ``"as_zero"``: such pixels count
            as 0. Cosines are clamped to [-1, 1] before ``acos``.

    Returns:
        Mean spectral angle in the requested unit.

    Raises:
        MetricError: bad inputs or an unknown unit or zero policy.
    """
    x, y = _prepare(sr, hr)
    return _sam_value(x, y, zero, unit)


def ergas(sr: Array, hr: Array, *, scale: float | None = None) -> float:
    """ERGAS, ``100 / scale * sqrt(mean_b(MSE_b / mean(hr_b)^2))`` (Wald 2000), lower is better.

    Args:
        sr: super-resolved cube (L, H, W).
        hr: reference cube, same shape (its band means normalise the errors).
        scale: the super-resolution factor s (required; there is deliberately no default).

    Returns:
        ERGAS; a band with zero reference mean contributes 0 if exact, else the result is ``inf``.

    Raises:
        MetricError: bad inputs, or ``scale`` missing or not positive.
    """
    scale_value = _check_scale(scale)
    x, y = _prepare(sr, hr)
    return _ergas_value(_band_stats(x, y), scale_value)


def rmse(sr: Array, hr: Array) -> float:
    """Root mean squared error over all bands and pixels, in data units.

    Args:
        sr: super-resolved cube (L, H, W).
        hr: reference cube, same shape.

    Returns:
        RMSE (0 for identical cubes).

    Raises:
        MetricError: bad inputs.
    """
    x, y = _prepare(sr, hr)
    return math.sqrt(float(_band_stats(x, y).mse.mean()))


def cc(sr: Array, hr: Array) -> float:
    """Cross-correlation: the mean over bands of the Pearson correlation between SR and HR bands.

    Args:
        sr: super-resolved cube (L, H, W).
        hr: reference cube, same shape.

    Returns:
        CC in [-1, 1]. Bands constant in either cube (correlation undefined) are skipped; NaN if all are.

    Raises:
        MetricError: bad inputs.
    """
    x, y = _prepare(sr, hr)
    return _cc_value(_band_stats(x, y, with_cc=True))


def evaluate(
    sr: Array, hr: Array, *, scale: float | None = None,
    conventions: "Conventions | Mapping[str, Any] | None" = None,
) -> dict[str, Any]:
    """Compute every metric at once, sharing the checks and the per-band MSEs.

    Args:
        sr: super-resolved cube (L, H, W), numpy array or torch tensor.
        hr: reference cube, same shape.
        scale: the super-resolution factor (required, for ERGAS).
        conventions: a :class:`Conventions`, a dict of its fields, or None for the paper's.

    Returns:
        ``{"psnr", "ssim", "sam", "ergas", "rmse", "cc", "mpsnr"}`` as floats, ``"psnr_per_band"`` and
        ``"ssim_per_band"`` as lists of L floats, and ``"conventions"``: the conventions as a dict.

    Raises:
        MetricError: bad inputs, ``scale`` missing, or an unknown convention.
    """
    conv = Conventions.from_value(conventions)
    scale_value = _check_scale(scale)
    x, y = _prepare(sr, hr)
    stats = _band_stats(x, y, with_cc=True)
    mse_per_band = stats.mse  # of the cubes themselves: RMSE, ERGAS
    psnr_mse, peak = _psnr_mse(x, y, conv.data_range, conv.psnr_quantise, stats)
    psnr_per_band = _psnr_from_mse(psnr_mse, peak)
    ssim_per_band = _ssim_per_band(x, y, window=conv.ssim_window, data_range=conv.data_range)
    return {
        "psnr": _psnr_value(psnr_mse, peak, conv.psnr_reduction),
        "ssim": float(ssim_per_band.mean()),
        "sam": _sam_value(x, y, conv.sam_zero, conv.sam_unit),
        "ergas": _ergas_value(stats, scale_value),
        "rmse": math.sqrt(float(mse_per_band.mean())),
        "cc": _cc_value(stats),
        "mpsnr": float(psnr_per_band.mean()),
        "psnr_per_band": [float(v) for v in psnr_per_band.cpu()],
        "ssim_per_band": [float(v) for v in ssim_per_band.cpu()],
        "conventions": conv.to_dict(),
    }
