"""A method that trains but raises at evaluation: ``forward`` fails only in eval mode (issue 15, item 5).

Written as such a bug shows up in real code: an inference-only branch for large inputs (EDSR-style
``forward_chop``) that nobody ran before the benchmark. An eval-mode failure at every size is caught
earlier, by the engine's pre-check of the model before any training; this one passes that tiny check.
"""

import torch.nn as nn
import torch.nn.functional as F

from hsisr_bench.registry import register_method


class BrokenInEval(nn.Module):
    def __init__(self, bands: int, scale: int):
        super().__init__()
        self.scale = scale
        self.conv = nn.Conv2d(bands, bands, 3, padding=1)

    def forward(self, x):
        if not self.training and min(x.shape[-2:]) > 12:  # the chopping branch for large test images
            raise ValueError("inference branch: self.chop_size is not defined")
        return F.interpolate(self.conv(x), scale_factor=self.scale, mode="nearest")


@register_method("broken", title="Broken", input="lr")
def build(*, bands: int, scale: int) -> nn.Module:
    return BrokenInEval(bands, scale)
