"""A test plugin with its band count hard-coded to 31, as many papers' ``model.py`` files have it.

It ignores the factory's ``bands``: it builds for any ``bands`` but only runs on 31-band inputs
(CAVE, Harvard and the synthetic dataset all have 31).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from hsisr_bench.registry import register_method


class Fixed31(nn.Module):
    """LR ``(B, 31, h, w)`` -> ``(B, 31, s*h, s*w)``."""

    def __init__(self, scale: int) -> None:
        super().__init__()
        self.scale = scale
        self.head = nn.Conv2d(31, 8, 3, padding=1)
        self.tail = nn.Conv2d(8, 31 * scale * scale, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 31, h, w)`` -> ``(B, 31, s*h, s*w)``."""
        residual = F.pixel_shuffle(self.tail(F.relu(self.head(x))), self.scale)
        return F.interpolate(x, scale_factor=self.scale, mode="nearest") + residual


@register_method("fixed31", title="Fixed31", optimizer={"name": "adam", "lr": 1e-3})
def build(*, bands: int, scale: int) -> nn.Module:
    """The fixed-31-bands test method (``bands`` ignored, as in the papers' code)."""
    return Fixed31(scale)
