"""A test plugin shaped like window-attention models: input sides must be multiples of the window (8).

Each feature is mixed with the mean of its 8x8 window (``avg_pool2d`` over non-overlapping
windows), which is what makes such models need multiples and makes them shift-equivariant only
by whole windows; ``forward`` raises otherwise, as the papers' code does. ``size_multiple=8`` in
the registration lets the harness pad, crop and align tiles.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from hsisr_bench.registry import register_method

WINDOW = 8


class Window8(nn.Module):
    """LR ``(B, L, h, w)`` with ``h, w`` multiples of 8 -> ``(B, L, s*h, s*w)``."""

    def __init__(self, bands: int, scale: int, n_feats: int) -> None:
        super().__init__()
        self.scale = scale
        self.head = nn.Conv2d(bands, n_feats, 3, padding=1)
        self.mix = nn.Conv2d(n_feats, n_feats, 1)
        self.tail = nn.Conv2d(n_feats, bands * scale * scale, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, L, h, w)`` -> ``(B, L, s*h, s*w)``; sides not multiples of 8 raise."""
        h, w = x.shape[-2:]
        if h % WINDOW or w % WINDOW:
            raise ValueError(f"Window8 needs input sides that are multiples of {WINDOW}, got {h}x{w}")
        features = F.relu(self.head(x))
        windows = F.avg_pool2d(features, WINDOW)  # one value per 8x8 window
        features = features + F.interpolate(self.mix(windows), scale_factor=WINDOW, mode="nearest")
        residual = F.pixel_shuffle(self.tail(features), self.scale)
        return F.interpolate(x, scale_factor=self.scale, mode="nearest") + residual


@register_method("window8", title="Window8", size_multiple=WINDOW, optimizer={"name": "adam", "lr": 1e-3})
def build(*, bands: int, scale: int, n_feats: int = 8) -> nn.Module:
    """The window-8 test method."""
    return Window8(bands, scale, n_feats)
