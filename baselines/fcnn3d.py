"""3D-FCNN (Mei et al., Remote Sensing 2017), PROTOCOL.md section 6.

Reference: S. Mei, X. Yuan, J. Ji, Y. Zhang, S. Wan, Q. Du, "Hyperspectral Image Spatial
Super-Resolution via 3D Full Convolutional Neural Network", Remote Sensing 9(11):1139, 2017.

The upsampled cube is one channel, ``(B, 1, L, H, W)``, through four Conv3d layers (kernels are
band x H x W) with bias and **no padding**:

    7x9x9 1->64 + ReLU;  1x1x1 64->32 + ReLU;  1x1x1 32->9 + ReLU;  3x5x5 9->1

39,405 parameters. The valid convolutions lose (7-1)/2 + (3-1)/2 = 4 bands and (9-1)/2 + (5-1)/2 = 6
pixels on each side: output band j lies on input band j+4 and output pixel (i, j) on (i+6, j+6).

``padding="reflect"`` (registered variant ``full``) reflect-pads the input by 4 bands and 6 pixels
first, so the output is the full cube; the model's ``output_crop`` attribute says which case it is.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from hsisr_bench.baselines import check_choice
from hsisr_bench.errors import MethodError
from hsisr_bench.registry import OutputCrop, register_method

#: What the valid convolutions lose on each side.
VALID_CROP = OutputCrop(bands=4, pixels=6)
PADDINGS = ("valid", "reflect")


class FCNN3D(nn.Module):
    """The 3D-FCNN network on the upsampled cube.

    Args:
        padding: ``"valid"`` (the paper: the output loses 4 bands and 6 pixels per side) or
            ``"reflect"`` (reflect-pad the input so that the output has the input's size).
    """

    def __init__(self, *, padding: str = "valid") -> None:
        super().__init__()
        self.padding = padding
        self.conv1 = nn.Conv3d(1, 64, (7, 9, 9))
        self.conv2 = nn.Conv3d(64, 32, 1)
        self.conv3 = nn.Conv3d(32, 9, 1)
        self.conv4 = nn.Conv3d(9, 1, (3, 5, 5))
        self.relu = nn.ReLU(inplace=True)
        self.output_crop = VALID_CROP if padding == "valid" else OutputCrop()
        #: Receptive-field radius in input pixels around an output pixel's aligned input pixel,
        #: for tiled inference: (9 - 1) / 2 + (5 - 1) / 2, with or without the reflect padding.
        self.receptive_field = VALID_CROP.pixels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(B, L, H, W)`` to ``(B, L-8, H-12, W-12)`` (valid) or ``(B, L, H, W)`` (reflect)."""
        b, p = VALID_CROP.bands, VALID_CROP.pixels
        y = x.unsqueeze(1)  # (B, 1, L, H, W): the cube is one 3D channel
        if self.padding == "reflect":
            if x.shape[-3] <= b or min(x.shape[-2:]) <= p:
                raise MethodError(f"Method 'fcnn3d' with padding='reflect' needs more than {b} bands and "
                                  f"more than {p} pixels per side, got input {tuple(x.shape)}.")
            y = F.pad(y, (p, p, p, p, b, b), mode="reflect")  # (B, 1, L+8, H+12, W+12)
        y = self.relu(self.conv1(y))
        y = self.relu(self.conv2(y))
        y = self.relu(self.conv3(y))
        return self.conv4(y).squeeze(1)  # (B, 1, L', H', W') -> (B, L', H', W')

    def extra_repr(self) -> str:
        return f"padding={self.padding!r}"


@register_method(
    "fcnn3d",
    title="3D-FCNN",
    input="upsampled",
    # Static metadata describes the default (paper) model; the harness reads ``model.output_crop``,
    # which is OutputCrop() for the ``full`` variant.
    output_crop=VALID_CROP,
    trainable=True,
    loss="mse",
    optimizer={"name": "adam", "lr": 1e-4},
    paper="Mei et al., 'Hyperspectral Image Spatial Super-Resolution via 3D Full Convolutional Neural "
          "Network', Remote Sensing 9(11):1139, 2017",
    param_counts={(scale, variant): 39_405 for scale in (2, 3, 4) for variant in ("default", "full")},
    variants={"full": {"padding": "reflect"}},
)
def build_fcnn3d(*, bands: int, scale: int, padding: str = "valid") -> nn.Module:
    """Build 3D-FCNN (``bands`` and ``scale`` do not change the network: it is fully convolutional in 3D).

    Args:
        bands: number of spectral bands L; the valid model needs at least 9.
        scale: upscaling factor (unused: the input is already upsampled).
        padding: ``"valid"`` (paper, output cropped by 4 bands and 6 pixels) or ``"reflect"`` (full cube).

    Raises:
        MethodError: unknown ``padding``, or too few bands for the valid convolutions.
    """
    check_choice("fcnn3d", "padding", padding, PADDINGS)
    if padding == "valid" and bands < 2 * VALID_CROP.bands + 1:
        raise MethodError(f"Method 'fcnn3d' with padding='valid' needs at least {2 * VALID_CROP.bands + 1} bands "
                          f"(it loses {VALID_CROP.bands} on each side), got bands={bands}; use padding='reflect'.")
    if padding == "reflect" and bands <= VALID_CROP.bands:
        raise MethodError(f"Method 'fcnn3d' with padding='reflect' needs more than {VALID_CROP.bands} bands "
                          f"(reflection by {VALID_CROP.bands} bands), got bands={bands}.")
    return FCNN3D(padding=padding)
