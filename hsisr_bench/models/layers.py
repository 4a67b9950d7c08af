"""Weight-normalised convolution factories shared by the networks of the toolkit.

Weight normalisation (Salimans & Kingma 2016) reparametrises a weight ``w`` as ``g · v / ||v||`` with
the norm taken over every axis but the first; the SSRNet paper uses it on every convolution, as WDSR
does. We use the current parametrization API, so the state_dict holds
``<name>.parametrizations.weight.original0`` (``g``) and ``...original1`` (``v``) plus ``<name>.bias``.
"""

from __future__ import annotations

from typing import Union

import torch.nn as nn
from torch.nn.utils.parametrizations import weight_norm

Size3 = Union[int, tuple[int, int, int]]


def wn_conv3d(in_channels: int, out_channels: int, kernel_size: Size3, padding: Size3 = 0) -> nn.Conv3d:
    """A ``Conv3d`` with bias and weight normalisation (stride 1).

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: kernel size, ``(band, H, W)`` or one int.
        padding: zero padding, ``(band, H, W)`` or one int.

    Returns:
        The convolution; ``conv.weight`` is recomputed from ``g`` and ``v`` on every access.
    """
    return weight_norm(nn.Conv3d(in_channels, out_channels, kernel_size, padding=padding, bias=True))


def wn_conv_transpose3d(in_channels: int, out_channels: int, kernel_size: Size3, stride: Size3,
                        padding: Size3) -> nn.ConvTranspose3d:
    """A ``ConvTranspose3d`` with bias and weight normalisation (``g`` per input channel, PyTorch's dim 0).

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: kernel size ``(band, H, W)``.
        stride: stride ``(band, H, W)``.
        padding: padding ``(band, H, W)`` (cropped from the full transposed-convolution output).

    Returns:
        The transposed convolution.
    """
    return weight_norm(nn.ConvTranspose3d(in_channels, out_channels, kernel_size, stride=stride,
                                          padding=padding, bias=True))

