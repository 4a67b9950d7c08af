"""GDRRN: group deep recursive residual network (Li et al., BigMM 2018), PROTOCOL.md section 6.

Reference: Y. Li, L. Zhang, C. Ding, W. Wei, Y. Zhang, "Single Hyperspectral Image Super-Resolution
with Grouped Deep Recursive Residual Network", IEEE BigMM 2018 (official code: Liyong8490/HSI-SR-GDRRN).

Structure, on the bicubic-upsampled cube ``(B, L, H, W)`` (2D convolutions 3x3, padding 1, no biases):

    u = Conv(L -> F)(ReLU(x))
    h = u;  repeat `recursions` times with ONE shared block:  h = GConv(ReLU(GConv(ReLU(h)))) + u
    y = Conv(F -> L)(ReLU(h)) + x

With F = 128, groups 2 and 31 bands this has 218,880 parameters, whatever the scale.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from hsisr_bench.baselines import check_positive_int
from hsisr_bench.errors import MethodError
from hsisr_bench.registry import OutputCrop, register_method


class GDRRN(nn.Module):
    """The GDRRN network: recursive grouped residual block between an input and an output conv.

    Args:
        bands: number of spectral bands L (input and output channels).
        features: feature channels F of the recursive block.
        groups: groups of the two convolutions inside the recursive block (must divide ``features``).
        recursions: how many times the shared block is applied.
    """

    def __init__(self, bands: int, *, features: int = 128, groups: int = 2, recursions: int = 9) -> None:
        super().__init__()
        self.recursions = recursions
        self.conv_in = nn.Conv2d(bands, features, 3, padding=1, bias=False)
        # The one residual block whose weights are shared by every recursion.
        self.block_conv1 = nn.Conv2d(features, features, 3, padding=1, groups=groups, bias=False)
        self.block_conv2 = nn.Conv2d(features, features, 3, padding=1, groups=groups, bias=False)
        self.conv_out = nn.Conv2d(features, bands, 3, padding=1, bias=False)
        self.relu = nn.ReLU(inplace=False)
        self.output_crop = OutputCrop()
        # Receptive-field radius in (upsampled) input pixels, for tiled inference: one pixel per 3x3
        # conv application, the shared block's two convs counted at every recursion.
        self.receptive_field = 2 + 2 * recursions
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He-style init of the reference code: weights ~ normal(0, sqrt(2 / (k*k*out_channels)))."""
        for conv in (self.conv_in, self.block_conv1, self.block_conv2, self.conv_out):
            kh, kw = conv.kernel_size
            nn.init.normal_(conv.weight, mean=0.0, std=math.sqrt(2.0 / (kh * kw * conv.out_channels)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map the upsampled cube ``(B, L, H, W)`` to the SR cube ``(B, L, H, W)``."""
        u = self.conv_in(self.relu(x))  # (B, F, H, W), kept for every recursion's skip
        h = u
        for _ in range(self.recursions):
            h = self.block_conv2(self.relu(self.block_conv1(self.relu(h)))) + u
        return self.conv_out(self.relu(h)) + x  # global residual


@register_method(
    "gdrrn",
    title="GDRRN",
    input="upsampled",
    output_crop=OutputCrop(),
    trainable=True,
    loss="gdrrn",  # sum of squared errors / (2N) + 0.1 * SAM (radians); implemented by engine/train.py
    optimizer={"name": "adam", "lr": 1e-4, "weight_decay": 1e-4},
    paper="Li et al., 'Single Hyperspectral Image Super-Resolution with Grouped Deep Recursive Residual "
          "Network', IEEE BigMM 2018",
    param_counts={(scale, "default"): 218_880 for scale in (2, 3, 4)},
    variants={},
)
def build_gdrrn(*, bands: int, scale: int, groups: int = 2, recursions: int = 9, features: int = 128) -> nn.Module:
    """Build GDRRN for ``bands`` bands (``scale`` is accepted but unused: the input is already upsampled).

    Args:
        bands: number of spectral bands L.
        scale: upscaling factor (the network itself does not depend on it).
        groups: groups of the recursive block's convolutions; must divide ``features``.
        recursions: number of applications of the shared residual block.
        features: feature channels of the recursive block.

    Raises:
        MethodError: a non-positive option, or ``groups`` not dividing ``features``.
    """
    for option, value in (("groups", groups), ("recursions", recursions), ("features", features)):
        check_positive_int("gdrrn", option, value)
    if features % groups:
        divisors = [d for d in range(1, features + 1) if features % d == 0]
        raise MethodError(f"Method 'gdrrn': groups={groups} must divide features={features}; "
                          f"valid groups for {features} features: {', '.join(map(str, divisors))}.")
    return GDRRN(bands, features=features, groups=groups, recursions=recursions)
