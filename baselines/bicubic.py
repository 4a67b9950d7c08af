"""Bicubic: MATLAB-style bicubic upsampling of the LR cube by the scale (PROTOCOL.md sections 3 and 6).

The baseline every SR paper reports: no parameters, no training. It uses the same MATLAB-compatible
``imresize`` (Keys kernel a = -0.5, symmetric borders) that makes the LR images, in the upscaling
direction.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from hsisr_bench.data.imresize import imresize
from hsisr_bench.registry import OutputCrop, register_method


class Bicubic(nn.Module):
    """Upsample ``(B, L, h, w)`` to ``(B, L, s*h, s*w)`` with MATLAB bicubic interpolation.

    Args:
        scale: integer upscaling factor.
    """

    #: The Keys kernel spans 4 LR samples (2 on each side of the source position); one more pixel
    #: covers the rounding of the source position, so tiles with this margin in LR pixels stitch exactly.
    receptive_field = 3

    def __init__(self, scale: int) -> None:
        super().__init__()
        self.scale = scale
        self.output_crop = OutputCrop()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``imresize(x, scale)``: ``(B, L, h, w)`` -> ``(B, L, s*h, s*w)``."""
        return imresize(x, self.scale)

    def extra_repr(self) -> str:
        return f"scale={self.scale}"


@register_method(
    "bicubic",
    title="Bicubic",
    input="lr",
    output_crop=OutputCrop(),
    trainable=False,
    loss="none",
    optimizer={},
    paper="Keys, 'Cubic convolution interpolation for digital image processing', IEEE TASSP 1981 "
          "(MATLAB imresize, bicubic, a = -0.5)",
    param_counts={(scale, "default"): 0 for scale in (2, 3, 4)},
    variants={},
)
def build_bicubic(*, bands: int, scale: int) -> nn.Module:
    """Build the Bicubic baseline (``bands`` is accepted for the common factory signature, not used)."""
    return Bicubic(scale)
