"""Training losses by name: ``l1``, ``mse``, ``gdrrn`` (MSE/2 + 0.1·SAM) and ``mse_sam`` (0.5·MSE + 0.5·SAM).

Every loss takes ``(sr, hr)`` shaped ``(B, L, H, W)`` and returns a scalar tensor. SAM here is the
differentiable training version, in radians, averaged over pixels (not the evaluation metric of
``hsisr_bench.metrics``, which follows the paper's degrees convention).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from hsisr_bench.errors import ConfigError, did_you_mean

#: Small constant keeping the spectral norms away from zero (all-zero spectra occur in CAVE).
_EPS = 1e-8


def sam_radians(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """Mean spectral angle in radians between ``(B, L, H, W)`` tensors, over every pixel of the batch.

    The cosine is clamped just inside [-1, 1] because ``acos`` has an infinite derivative at ±1:
    an exact match would otherwise produce a NaN gradient.
    """
    dot = (sr * hr).sum(dim=1)  # (B, H, W)
    norms = sr.norm(dim=1) * hr.norm(dim=1)  # (B, H, W)
    cosine = (dot / (norms + _EPS)).clamp(-1.0 + 1e-7, 1.0 - 1e-7)
    return torch.acos(cosine).mean()


def l1_loss(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """Mean absolute error (SSRNet's and EDSR's loss)."""
    return F.l1_loss(sr, hr)


def mse_loss(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """Mean squared error (3D-FCNN's loss)."""
    return F.mse_loss(sr, hr)


def gdrrn_loss(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """GDRRN's loss: MSE / 2 + 0.1 · SAM in radians (Li et al., BigMM 2018)."""
    return 0.5 * F.mse_loss(sr, hr) + 0.1 * sam_radians(sr, hr)


def mse_sam_loss(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """The SSRNet paper's Table I alternative: 0.5 · MSE + 0.5 · SAM (radians)."""
    return 0.5 * F.mse_loss(sr, hr) + 0.5 * sam_radians(sr, hr)


#: Loss name -> function. ``MethodInfo.loss`` and ``--set method.loss=...`` name one of these.
LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "l1": l1_loss,
    "mse": mse_loss,
    "gdrrn": gdrrn_loss,
    "mse_sam": mse_sam_loss,
}


def check_loss(name: str) -> None:
    """Raise :class:`ConfigError` (with a did-you-mean hint) when ``name`` is not a known loss."""
    if name not in LOSSES:
        raise ConfigError(f"Unknown loss '{name}' (method.loss). {did_you_mean(name, LOSSES)}")


def get_loss(name: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The loss function called ``name``.

    Raises:
        ConfigError: unknown name, with a did-you-mean hint.
    """
    check_loss(name)
    return LOSSES[name]
