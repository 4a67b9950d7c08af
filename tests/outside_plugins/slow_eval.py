"""A method whose evaluation is slow (a stand-in for rank 0 scoring large test images alone)."""

import os
import time

import torch.nn as nn
import torch.nn.functional as F

from hsisr_bench.registry import register_method


class SlowEval(nn.Module):
    def __init__(self, bands: int, scale: int):
        super().__init__()
        self.scale = scale
        self.conv = nn.Conv2d(bands, bands, 3, padding=1)

    def forward(self, x):
        if not self.training and min(x.shape[-2:]) > 12:  # the test regions, not the engine's tiny checks
            time.sleep(float(os.environ.get("SLOW_EVAL_SECONDS", "0")))
        return F.interpolate(self.conv(x), scale_factor=self.scale, mode="nearest")


@register_method("slow-eval", title="SlowEval", input="lr")
def build(*, bands: int, scale: int) -> nn.Module:
    return SlowEval(bands, scale)
