"""A test plugin written the way 2019-2023 HSI-SR repositories write models: legacy ``weight_norm``.

``torch.nn.utils.weight_norm`` (the pre-parametrization API, used by the MCNet/SFCSR/ERCSR family
and WDSR-style models) keeps each layer's ``weight`` as a non-leaf tensor attribute recomputed in a
forward pre-hook; ``copy.deepcopy`` of such a model raises once it has run a training step. No
``receptive_field`` attribute: the engine must probe the model itself.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F

from hsisr_bench.registry import register_method

wn = nn.utils.weight_norm  # as the papers' code writes it


class LegacyWN(nn.Module):
    """LR ``(B, L, h, w)`` -> ``(B, L, s*h, s*w)``: two weight-normed 3x3 convs and a pixel shuffle."""

    def __init__(self, bands: int, scale: int, n_feats: int) -> None:
        super().__init__()
        self.scale = scale
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch deprecates the legacy API; the papers' code still uses it
            self.head = wn(nn.Conv2d(bands, n_feats, 3, padding=1))
            self.tail = wn(nn.Conv2d(n_feats, bands * scale * scale, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, L, h, w)`` -> ``(B, L, s*h, s*w)``: a residual over the nearest upsampling."""
        residual = F.pixel_shuffle(self.tail(F.relu(self.head(x))), self.scale)
        return F.interpolate(x, scale_factor=self.scale, mode="nearest") + residual


@register_method("legacy-wn", title="LegacyWN", optimizer={"name": "adam", "lr": 1e-3})
def build(*, bands: int, scale: int, n_feats: int = 8) -> nn.Module:
    """The legacy-weight-norm test method."""
    return LegacyWN(bands, scale, n_feats)
