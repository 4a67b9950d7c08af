"""A complete outside method for hsisr-bench: a tiny CNN with a sub-pixel upsampler (docs/adding-a-method.md).

Use it without editing the package::

    hsibench check-method mine --plugin mine.py
    hsibench run --plugin mine.py --methods mine,ssrnet --dataset synthetic --scale 2 --profile quick
    hsibench report
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from hsisr_bench.registry import OutputCrop, register_method


class Mine(nn.Module):
    """LR cube ``(B, L, h, w)`` -> SR cube ``(B, L, s*h, s*w)``: 3x3 convolutions, then pixel shuffle.

    The network predicts a residual over the nearest-neighbour upsampled input (the harness has
    already subtracted the training band mean from ``x``).

    Args:
        bands: spectral bands L (input and output channels).
        scale: integer upscaling factor.
        n_feats: feature maps of the hidden layers.
        n_layers: hidden 3x3 convolutions between the head and the upsampler.
    """

    def __init__(self, bands: int, scale: int, n_feats: int, n_layers: int) -> None:
        super().__init__()
        self.scale = scale
        self.head = nn.Conv2d(bands, n_feats, 3, padding=1)
        self.body = nn.Sequential(*[nn.Sequential(nn.Conv2d(n_feats, n_feats, 3, padding=1), nn.ReLU())
                                    for _ in range(n_layers)])
        self.tail = nn.Conv2d(n_feats, bands * scale * scale, 3, padding=1)
        # Contract attributes the harness reads from the model (see hsisr_bench.contract):
        # the output keeps every band and pixel, and one output pixel depends on LR pixels at most
        # (head + hidden layers + tail) 3x3 convolutions away: one pixel each.
        self.output_crop = OutputCrop()
        self.receptive_field = n_layers + 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, L, h, w)`` -> ``(B, L, s*h, s*w)``."""
        features = self.body(F.relu(self.head(x)))  # (B, n_feats, h, w)
        residual = F.pixel_shuffle(self.tail(features), self.scale)  # (B, L*s*s, h, w) -> (B, L, s*h, s*w)
        return F.interpolate(x, scale_factor=self.scale, mode="nearest") + residual


@register_method(
    "mine",
    title="Mine",
    input="lr",  # the harness feeds the LR cube; "upsampled" would feed the bicubic-upsampled one
    trainable=True,
    loss="l1",
    optimizer={"name": "adam", "lr": 1e-3},
    paper="Example method of docs/adding-a-method.md",
    # Trainable parameters at 31 bands, checked by `hsibench check-method` (compute them once).
    param_counts={(2, "default"): 72_540, (3, "default"): 117_335, (4, "default"): 180_048},
    variants={"deep": {"n_layers": 6}},
    variant_descriptions={"deep": "six hidden layers instead of three"},
)
def build_mine(*, bands: int, scale: int, n_feats: int = 32, n_layers: int = 3) -> nn.Module:
    """Build the example method for ``bands`` bands at ``scale`` (keyword-only options are its config)."""
    return Mine(bands, scale, n_feats, n_layers)
