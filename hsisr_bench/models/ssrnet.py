"""SSRNet: the paper's Spatial-Spectral Residual Network (Wang, Li & Li, arXiv 2001.04609).

Structure (PROTOCOL.md section 6; 3D kernels are ``(band, H, W)``; every convolution carries weight
normalisation and a bias):

    x (B, L, h, w) -> (B, 1, L, h, w)
    F0 = head(x)                          Conv3d 3×3×3, 1 -> 64                  (IFE)
    y = F0; for d in 1..D: y = SSRM_d(y) + F0                                    (GRL, eq. 2)
    SSRM(x): x1 = U1(x), x2 = U2(x1), x3 = U3(x2)       residual units, U(x) = x + block(block(x))
             fused = ReLU(Conv3d 1×1×1 (concat(γ1·x1, γ2·x2, γ3·x3)))            (LFF, eq. 7)
             return block(fused + x)                                             (eq. 4)
    block: separable = Conv3d (1,3,3) + ReLU, Conv3d (3,1,1) + ReLU; standard = Conv3d 3×3×3 + ReLU
    up = ConvTranspose3d 64 -> 64, kernel (3, s+2, s+2), stride (1, s, s), padding 1: (L, s·h, s·w)
    out = tail(up) Conv3d 3×3×3, 64 -> 1, squeezed to (B, L, s·h, s·w)

Two forward paths share one set of parameters (and state_dict keys):

- ``fast=False``: the plain reference, module by module in NCDHW, exactly as written above.
- ``fast=True`` (default): the same arithmetic re-laid out for speed; see :mod:`._ssrnet_fast`, whose
  module docstring records what was measured and kept. Equal to the plain path to ~1e-6 in float32.
  With autograd on (training) it prepares its weights in a few ops per layer, not the ~6,000 the
  cached inference weights take (``_ssrnet_fast.prepare_weights``); gradients equal the plain path's.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from hsisr_bench.errors import MethodError
from hsisr_bench.models import _ssrnet_fast
from hsisr_bench.models.layers import wn_conv3d, wn_conv_transpose3d
from hsisr_bench.registry import register_method

BLOCKS = ("separable", "standard")


class SeparableBlock(nn.Module):
    """Conv3d (1,3,3) + ReLU, then Conv3d (3,1,1) + ReLU: spatial then spectral filtering."""

    def __init__(self, n_feats: int) -> None:
        super().__init__()
        self.spatial = wn_conv3d(n_feats, n_feats, (1, 3, 3), padding=(0, 1, 1))
        self.spectral = wn_conv3d(n_feats, n_feats, (3, 1, 1), padding=(1, 0, 0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, L, h, w) -> (B, C, L, h, w)``."""
        return F.relu(self.spectral(F.relu(self.spatial(x))))


class StandardBlock(nn.Module):
    """One Conv3d 3×3×3 + ReLU (the paper's Table III comparison)."""

    def __init__(self, n_feats: int) -> None:
        super().__init__()
        self.conv = wn_conv3d(n_feats, n_feats, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, L, h, w) -> (B, C, L, h, w)``."""
        return F.relu(self.conv(x))


def make_block(block: str, n_feats: int) -> nn.Module:
    """A separable or standard block of ``n_feats`` features."""
    return SeparableBlock(n_feats) if block == "separable" else StandardBlock(n_feats)


class ResidualUnit(nn.Module):
    """Two blocks in series plus the unit's input (eq. 6)."""

    def __init__(self, block: str, n_feats: int) -> None:
        super().__init__()
        self.first = make_block(block, n_feats)
        self.second = make_block(block, n_feats)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, L, h, w) -> (B, C, L, h, w)``."""
        return x + self.second(self.first(x))


class SSRM(nn.Module):
    """Spatial-spectral residual module: three residual units, local feature fusion, closing block.

    Attributes:
        gamma: the three learned fusion scalars γ1, γ2, γ3 (initialised to 1); absent without LFF.
        fusion: the 1×1×1 convolution 3·C -> C of the local feature fusion; absent without LFF.
    """

    def __init__(self, block: str, n_feats: int, lff: bool) -> None:
        super().__init__()
        self.lff = lff
        self.units = nn.ModuleList(ResidualUnit(block, n_feats) for _ in range(3))
        if lff:
            self.gamma = nn.Parameter(torch.ones(3))
            self.fusion = wn_conv3d(3 * n_feats, n_feats, 1)
        self.close = make_block(block, n_feats)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, L, h, w) -> (B, C, L, h, w)``."""
        outputs = []
        y = x
        for unit in self.units:
            y = unit(y)
            outputs.append(y)
        if self.lff:
            stacked = torch.cat([g * o for g, o in zip(self.gamma, outputs)], dim=1)  # (B, 3C, L, h, w)
            fused = F.relu(self.fusion(stacked))
        else:
            fused = outputs[-1]
        return self.close(fused + x)


class SSRNet(nn.Module):
    """The Spatial-Spectral Residual Network for single hyperspectral image super-resolution.

    Args:
        bands: number of spectral bands L (only recorded: the network is fully convolutional in bands).
        scale: integer upscaling factor s (2, 3, 4, ...).
        block: ``"separable"`` (the paper's) or ``"standard"`` (one 3×3×3 convolution per block).
        lff: local feature fusion inside each SSRM.
        grl: global residual learning (``+ F0`` after every SSRM).
        n_modules: number D of SSRMs.
        n_feats: number of feature maps.
        fast: use the optimised forward path (same parameters, same results to ~1e-6).

    Mixed precision: run the forward under ``torch.autocast`` (the harness's ``amp`` option); the
    fast path prepares its weights in float32 and lets autocast cast them.

    Attributes:
        fused_convolutions: on CPU without autograd, let the fast path write activations into reused
            buffers with oneDNN's in-place convolution (default ``True``; it falls back to the public
            convolutions by itself where that operator is missing). ``False`` is for comparisons.
    """

    def __init__(self, *, bands: int, scale: int, block: str = "separable", lff: bool = True, grl: bool = True,
                 n_modules: int = 3, n_feats: int = 64, fast: bool = True) -> None:
        super().__init__()
        self.bands, self.scale, self.block = bands, scale, block
        self.lff, self.grl, self.n_modules, self.n_feats = lff, grl, n_modules, n_feats
        self.fast = fast
        self.fused_convolutions = True  # see ``_ssrnet_fast.Workspace``
        self.head = wn_conv3d(1, n_feats, 3, padding=1)
        self.body = nn.ModuleList(SSRM(block, n_feats, lff) for _ in range(n_modules))
        self.upsample = wn_conv_transpose3d(n_feats, n_feats, (3, scale + 2, scale + 2), stride=(1, scale, scale),
                                            padding=(1, 1, 1))
        self.tail = wn_conv3d(n_feats, 1, 3, padding=1)
        self._fast_cache = _ssrnet_fast.WeightCache()

    @property
    def receptive_field(self) -> int:
        """Receptive-field radius in LR pixels (H and W), read by the tiled inference engine.

        Head 1, each SSRM 7 blocks of radius 1 (separable and standard alike; the fusion is 1×1×1),
        upsampling + reconstruction 1 LR pixel: ``7·D + 2`` (23 for D = 3).
        """
        return 7 * self.n_modules + 2

    def extra_repr(self) -> str:
        return (f"bands={self.bands}, scale={self.scale}, block={self.block!r}, lff={self.lff}, grl={self.grl}, "
                f"n_modules={self.n_modules}, n_feats={self.n_feats}, fast={self.fast}")

    def train(self, mode: bool = True) -> "SSRNet":
        """Set the training mode; also drops the folded inference weights (they are rebuilt when needed)."""
        self._fast_cache.clear()
        return super().train(mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Super-resolve ``(B, L, h, w)`` (band mean already subtracted) to ``(B, L, s·h, s·w)``.

        Raises:
            MethodError: if ``x`` is not 4-dimensional.
        """
        if x.dim() != 4:
            raise MethodError(f"SSRNet expects a (B, L, h, w) tensor, got shape {tuple(x.shape)}; "
                              "add a batch dimension with x[None].")
        if self.fast:
            return _ssrnet_fast.forward(self, x)
        return self.forward_plain(x)

    def forward_plain(self, x: torch.Tensor) -> torch.Tensor:
        """The plain reference path: NCDHW, module by module. ``(B, L, h, w) -> (B, L, s·h, s·w)``."""
        f0 = self.head(x.unsqueeze(1))  # (B, 1, L, h, w) -> (B, C, L, h, w)
        y = f0
        for module in self.body:
            y = module(y)
            if self.grl:
                y = y + f0
        y = self.upsample(y)  # (B, C, L, s·h, s·w)
        return self.tail(y).squeeze(1)  # (B, 1, L, s·h, s·w) -> (B, L, s·h, s·w)


def _check_options(scale, block, n_modules, n_feats) -> None:
    if not isinstance(scale, int) or isinstance(scale, bool) or scale < 2:
        raise MethodError(f"SSRNet option scale must be an integer of at least 2 (2, 3, 4), got {scale!r}.")
    if block not in BLOCKS:
        raise MethodError(f"SSRNet option block={block!r} is not valid; choose one of: {', '.join(BLOCKS)}.")
    for name, value in (("n_modules", n_modules), ("n_feats", n_feats)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise MethodError(f"SSRNet option {name} must be an integer of at least 1, got {value!r}.")


# Expected trainable parameters for 31 bands (weight-norm g and v, biases and γ counted), keyed by
# (scale, variant). Derivation at ×2: head 1,856; one separable block 49,408 (36,992 + 12,416);
# one SSRM = 7 blocks + fusion 12,416 + 3 γ = 358,275; transposed conv 64·64·3·4·4 + 64 + 64 = 196,736;
# tail 1,730. Total 1,856 + 3·358,275 + 196,736 + 1,730 = 1,275,147.
PARAM_COUNTS = {
    (2, "default"): 1_275_147,
    (3, "default"): 1_385_739,
    (4, "default"): 1_520_907,
    (2, "standard"): 2_562_699,
}

VARIANTS = {
    "nolff": {"lff": False},
    "nogrl": {"grl": False},
    "nolff_nogrl": {"lff": False, "grl": False},
    "standard": {"block": "standard"},
    "d2": {"n_modules": 2},
    "d4": {"n_modules": 4},
    "d5": {"n_modules": 5},
}


@register_method(
    "ssrnet",
    title="SSRNet",
    input="lr",
    trainable=True,
    loss="l1",
    optimizer={"name": "adam", "lr": 1e-4, "betas": (0.9, 0.999)},
    paper="Wang, Li & Li, Spatial-Spectral Residual Network for Hyperspectral Image Super-Resolution, "
          "arXiv 2001.04609",
    param_counts=PARAM_COUNTS,
    variants=VARIANTS,
)
def build_ssrnet(*, bands: int, scale: int, block: str = "separable", lff: bool = True, grl: bool = True,
                 n_modules: int = 3, n_feats: int = 64, fast: bool = True) -> SSRNet:
    """Build SSRNet for ``bands`` bands at integer ``scale``.

    Args:
        bands: number of spectral bands L.
        scale: integer upscaling factor, at least 2.
        block: ``"separable"`` (paper) or ``"standard"`` (Table III).
        lff: local feature fusion (Table II).
        grl: global residual learning (Table II).
        n_modules: number of SSRMs D (Table IV: 2 to 5).
        n_feats: feature maps (64 in the paper).
        fast: optimised forward path (default) or the plain reference path; same parameters.

    Returns:
        The network; ``forward`` maps ``(B, L, h, w)`` to ``(B, L, scale·h, scale·w)``.

    Raises:
        MethodError: an invalid option value, naming the valid choices.
    """
    _check_options(scale, block, n_modules, n_feats)
    return SSRNet(bands=bands, scale=scale, block=block, lff=lff, grl=grl, n_modules=n_modules,
                  n_feats=n_feats, fast=bool(fast))
