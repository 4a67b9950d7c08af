"""An outside method with two inputs, the convention of SSPSR and most recent HSI-SR models (docs/adding-a-method.md).

``input="lr+upsampled"``: the harness calls ``forward(lr, lms)`` with the LR cube ``(B, L, h, w)``
and its MATLAB-bicubic upsampling ``(B, L, s*h, s*w)`` (computed by the harness in float32 outside
autocast, the training band mean subtracted from both). The output is ``(B, L, s*h, s*w)``, like an
``"lr"`` method's; the harness adds the band mean back. Use it without editing the package::

    hsibench check-method two-input-example --plugin two_input.py
    hsibench run --plugin two_input.py --methods two-input-example --dataset synthetic --scale 2 --profile quick
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from hsisr_bench.registry import register_method


class TwoInputExample(nn.Module):
    """LR features upsampled by pixel shuffle, plus a residual over the bicubic upsampling ``lms``.

    Args:
        bands: spectral bands L.
        scale: integer upscaling factor.
        n_feats: feature maps of the hidden layers.
    """

    def __init__(self, bands: int, scale: int, n_feats: int) -> None:
        super().__init__()
        self.head = nn.Conv2d(bands, n_feats, 3, padding=1)
        self.upsample = nn.Sequential(nn.Conv2d(n_feats, n_feats * scale * scale, 3, padding=1),
                                      nn.PixelShuffle(scale))
        self.lms_head = nn.Conv2d(bands, n_feats, 3, padding=1)
        self.tail = nn.Conv2d(n_feats, bands, 3, padding=1)

    def forward(self, lr: torch.Tensor, lms: torch.Tensor) -> torch.Tensor:
        """``(B, L, h, w)`` and ``(B, L, s*h, s*w)`` -> ``(B, L, s*h, s*w)``."""
        features = self.upsample(F.relu(self.head(lr))) + self.lms_head(lms)  # (B, n_feats, s*h, s*w)
        return lms + self.tail(F.relu(features))


@register_method("two-input-example", title="Two-input example", input="lr+upsampled",
                 optimizer={"name": "adam", "lr": 1e-3})
def build(*, bands: int, scale: int, n_feats: int = 16) -> nn.Module:
    """The two-input example method."""
    return TwoInputExample(bands, scale, n_feats)
