"""EDSR (Lim et al., CVPRW 2017) for hyperspectral cubes, PROTOCOL.md section 6.

Reference: B. Lim, S. Son, H. Kim, S. Nah, K. M. Lee, "Enhanced Deep Residual Networks for Single
Image Super-Resolution", CVPR Workshops 2017.

The LR cube is L channels of 2D convolutions (3x3, padding 1, with bias):

    f = Conv(L -> F)(x)
    r = Conv(F -> F)(ResBlock^R(f)) + f          ResBlock: z + res_scale * Conv(ReLU(Conv(z)))
    y = Conv(F -> L)(Upsampler(r))               x2, x3: Conv(F -> s^2 F) + PixelShuffle(s); x4: two x2 stages

The RGB mean-shift layers of EDSR are dropped: the harness subtracts and adds the band mean.
Sizes: ``baseline`` R = 16, F = 64, res_scale 1 (1,402,143 / 1,586,783 / 1,549,855 parameters at
x2 / x3 / x4 for 31 bands); ``paper`` R = 32, F = 256, res_scale 0.1.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn as nn

from hsisr_bench.baselines import check_choice, check_positive_int
from hsisr_bench.errors import MethodError
from hsisr_bench.registry import OutputCrop, register_method

#: (n_resblocks, n_feats, res_scale) of the two sizes of the EDSR paper.
SIZES = {"baseline": (16, 64, 1.0), "paper": (32, 256, 0.1)}


def _conv(in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=True)


class ResBlock(nn.Module):
    """EDSR residual block without batch norm: ``x + res_scale * conv(relu(conv(x)))``."""

    def __init__(self, n_feats: int, res_scale: float) -> None:
        super().__init__()
        self.conv1 = _conv(n_feats, n_feats)
        self.conv2 = _conv(n_feats, n_feats)
        self.relu = nn.ReLU(inplace=True)
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.res_scale * self.conv2(self.relu(self.conv1(x)))


def _upsampler(scale: int, n_feats: int) -> nn.Sequential:
    """Sub-pixel upsampler: log2(s) stages of x2 for powers of two, else one stage of x s."""
    if scale & (scale - 1) == 0:
        factors = [2] * int(math.log2(scale))
    else:
        factors = [scale]
    layers: list[nn.Module] = []
    for factor in factors:
        layers += [_conv(n_feats, factor * factor * n_feats), nn.PixelShuffle(factor)]  # (B, F, f*h, f*w)
    return nn.Sequential(*layers)


class EDSR(nn.Module):
    """EDSR with ``bands`` input and output channels.

    Args:
        bands: number of spectral bands L.
        scale: integer upscaling factor.
        n_resblocks: number of residual blocks R.
        n_feats: feature channels F.
        res_scale: residual scaling inside each block.
    """

    def __init__(self, bands: int, scale: int, *, n_resblocks: int, n_feats: int, res_scale: float) -> None:
        super().__init__()
        self.head = _conv(bands, n_feats)
        self.body = nn.Sequential(*[ResBlock(n_feats, res_scale) for _ in range(n_resblocks)],
                                  _conv(n_feats, n_feats))
        self.upsample = _upsampler(scale, n_feats)
        self.tail = _conv(n_feats, bands)
        self.output_crop = OutputCrop()
        # Receptive-field radius in LR pixels, for tiled inference: one per 3x3 conv at LR size
        # (head, 2 per block, body), and a conservative one for each conv of the upsampler and the
        # tail, which run at higher resolution (where one pixel is half an LR pixel or less).
        n_upsampler_convs = sum(isinstance(m, nn.Conv2d) for m in self.upsample)
        self.receptive_field = 2 * n_resblocks + 2 + n_upsampler_convs + 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map the LR cube ``(B, L, h, w)`` to ``(B, L, s*h, s*w)``."""
        f = self.head(x)  # (B, F, h, w)
        r = self.body(f) + f  # long skip
        return self.tail(self.upsample(r))  # (B, F, s*h, s*w) -> (B, L, s*h, s*w)


def _edsr_counts(bands: int, scale: int, n_resblocks: int, n_feats: int) -> int:
    """Closed-form parameter count (3x3 convs with bias), used to fill ``param_counts``."""

    def conv(cin: int, cout: int) -> int:
        return 9 * cin * cout + cout

    stages = [2] * int(math.log2(scale)) if scale & (scale - 1) == 0 else [scale]
    return (conv(bands, n_feats) + (2 * n_resblocks + 1) * conv(n_feats, n_feats)
            + sum(conv(n_feats, f * f * n_feats) for f in stages) + conv(n_feats, bands))


# Baseline counts are the ones PROTOCOL.md states; the paper size is derived from the architecture.
_PARAM_COUNTS = {(2, "default"): 1_402_143, (3, "default"): 1_586_783, (4, "default"): 1_549_855}
_PARAM_COUNTS.update({(s, "paper"): _edsr_counts(31, s, *SIZES["paper"][:2]) for s in (2, 3, 4)})


@register_method(
    "edsr",
    title="EDSR",
    input="lr",
    output_crop=OutputCrop(),
    trainable=True,
    loss="l1",
    optimizer={"name": "adam", "lr": 1e-4},
    paper="Lim et al., 'Enhanced Deep Residual Networks for Single Image Super-Resolution', CVPRW 2017",
    param_counts=_PARAM_COUNTS,
    variants={"paper": {"size": "paper"}},
)
def build_edsr(
    *,
    bands: int,
    scale: int,
    size: str = "baseline",
    n_resblocks: Optional[int] = None,
    n_feats: Optional[int] = None,
    res_scale: Optional[float] = None,
) -> nn.Module:
    """Build EDSR for ``bands`` bands at ``scale``.

    Args:
        bands: number of spectral bands L.
        scale: integer upscaling factor (powers of two use x2 stages, others one x s stage).
        size: ``"baseline"`` (R=16, F=64, res_scale 1) or ``"paper"`` (R=32, F=256, res_scale 0.1).
        n_resblocks, n_feats, res_scale: explicit overrides of the chosen size.

    Raises:
        MethodError: unknown ``size`` or a non-positive override.
    """
    check_choice("edsr", "size", size, SIZES)
    default_blocks, default_feats, default_scale = SIZES[size]
    n_resblocks = check_positive_int("edsr", "n_resblocks", default_blocks if n_resblocks is None else n_resblocks)
    n_feats = check_positive_int("edsr", "n_feats", default_feats if n_feats is None else n_feats)
    res_scale = default_scale if res_scale is None else res_scale
    if isinstance(res_scale, bool) or not isinstance(res_scale, (int, float)) or not res_scale > 0:
        raise MethodError(f"Method 'edsr': res_scale must be a positive number, got {res_scale!r}.")
    return EDSR(bands, scale, n_resblocks=n_resblocks, n_feats=n_feats, res_scale=float(res_scale))
