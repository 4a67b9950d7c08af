"""A test plugin written as SSPSR-style models are: ``forward(self, lr, lms)`` with ``lms`` the bicubic upsampling.

Features of the LR cube are upsampled by a sub-pixel convolution (``PixelShuffle``); a convolution
on ``lms`` (the harness's MATLAB-bicubic upsampling, band mean subtracted like ``lr``) is added, and
the result is a residual over ``lms``, as in the papers' code. ``size_multiple=4`` (with the option
default) makes the harness pad ``lr`` to a multiple of 4 and ``lms`` to a multiple of ``4 * scale``.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from hsisr_bench.registry import register_method


class TwoInput(nn.Module):
    """``(lr (B, L, h, w), lms (B, L, s*h, s*w))`` -> ``(B, L, s*h, s*w)``."""

    def __init__(self, n_bands: int, n_scale: int, n_feats: int = 16) -> None:
        super().__init__()
        self.head = nn.Conv2d(n_bands, n_feats, 3, padding=1)
        self.body = nn.Sequential(nn.ReLU(), nn.Conv2d(n_feats, n_feats, 3, padding=1), nn.ReLU())
        self.up = nn.Sequential(nn.Conv2d(n_feats, n_feats * n_scale ** 2, 3, padding=1), nn.PixelShuffle(n_scale))
        self.skip = nn.Conv2d(n_bands, n_feats, 3, padding=1)  # features of the upsampled cube
        self.tail = nn.Conv2d(n_feats, n_bands, 3, padding=1)

    def forward(self, lr: torch.Tensor, lms: torch.Tensor) -> torch.Tensor:
        x = self.up(self.body(self.head(lr))) + self.skip(lms)
        return self.tail(x) + lms


@register_method("two-input", title="TwoInput", input="lr+upsampled", size_multiple=4,
                 optimizer={"name": "adam", "lr": 1e-3})
def build(*, bands: int, scale: int, n_feats: int = 16) -> nn.Module:
    """The two-input test method."""
    return TwoInput(bands, scale, n_feats)
