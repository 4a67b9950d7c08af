"""SSRNet's ``tail ∘ upsample`` for training: built and applied in ~100 differentiable aten ops.

The inference fast path (:class:`._ssrnet_fast._Reconstruction`) folds the two layers into phase
kernels with loops of small einsums and one-hot gathers: cheap once cached, but with autograd on it
was rebuilt on every forward, ~14,000 aten ops per training step (a whole step of the plain model,
Adam included, takes ~1,950), host time that on a GPU dwarfs the step's kernels.

Here the same composite is built and applied with few ops:

- All 27 composite kernels (the whole-grid one and the 26 border corrections of
  :class:`._ssrnet_fast._Reconstruction`, sign included) come from **one matmul** of the outer
  product ``W_up[c, o, k] · W_tail[o, j]`` (itself one matmul) with a constant 0/±1 selection matrix
  that puts each ``(k, j)`` pair at its composite tap ``m = k - j + 2`` (or drops it); the matrix
  depends only on the kernel size and is cached per device. Sums of the same products: equal to the
  einsum construction to float rounding (matmul, not a convolution of the kernels, which cuDNN
  could run in TF32).
- The whole grid is one ``conv_transpose3d`` with its composite kernel, which never forms the
  64-channel HR tensor: with autograd it ran ~4× faster than ``ConvTranspose3d`` 64->64 +
  ``Conv3d`` 64->1 (forward + backward, 4 patches 16×16×31, 2 CPU threads: ×2 0.10 s against
  0.36 s, ×4 0.49 s against 2.0 s). The corrections that fix the same dimensions (faces, edges or
  corners of one orientation) are one grouped ``conv_transpose3d`` of the one-voxel slabs, added
  to the border with one ``index_put``: 7 of them instead of 26 slice updates, whose backward
  recorded ~30 ops each.
- The biases' contribution is a constant map built from cached border masks.
"""
from __future__ import annotations

import functools
import itertools

import numpy as np
import torch
import torch.nn.functional as F

#: The border corrections, grouped by the dimensions they fix; within a group the ``lo``/``hi``
#: choices (in ``itertools.product`` order) share one kernel size and run as one grouped convolution.
_FIXED_SETS = tuple(f for k in (1, 2, 3) for f in itertools.combinations(range(3), k))


@functools.lru_cache(maxsize=16)
def _selection(kernel: tuple, device: str, dtype: torch.dtype) -> tuple:
    """The constant matrix mapping the outer product to all 27 composite kernels, and their layout.

    Args:
        kernel: the upsampling kernel size ``(K0, K1, K2)``.

    Returns:
        ``(matrix, layout)``: ``matrix`` is ``(K0·K1·K2·27, total)`` with entries 0 and ±1 (the sign of
        inclusion–exclusion: ``-1`` for an odd number of fixed dimensions); ``layout`` lists
        ``(fixed, offset, size)``, the whole grid (``fixed = ()``) first, then one entry per
        :data:`_FIXED_SETS` whose ``2^len(fixed)`` kernels of shape ``size`` lie side by side in
        columns ``offset :``.
    """
    K = [int(v) for v in kernel]
    # Row index of the outer product (C, K0, K1, K2, 3, 3, 3) without C: k0, k1, k2, j0, j1, j2.
    idx = np.indices((*K, 3, 3, 3)).reshape(6, -1)
    k, j = idx[:3], idx[3:]
    rows_all, cols_all, vals_all, layout, offset = [], [], [], [], 0
    for fixed in ((), *_FIXED_SETS):
        size = tuple(1 if d in fixed else K[d] + 2 for d in range(3))
        layout.append((fixed, offset, size))
        for choice in itertools.product(("lo", "hi"), repeat=len(fixed)):
            keep = np.ones(k.shape[1], dtype=bool)
            taps = []
            for d in range(3):
                if d in fixed:
                    # Only the pair that reaches the cropped first (lo) or last (hi) upsampled position.
                    pair = (0, 0) if choice[fixed.index(d)] == "lo" else (K[d] - 1, 2)
                    keep &= (k[d] == pair[0]) & (j[d] == pair[1])
                    taps.append(np.zeros_like(k[d]))
                else:
                    taps.append(k[d] - j[d] + 2)  # composite tap m = k - j + 2
            rows = np.nonzero(keep)[0]
            rows_all.append(rows)
            cols_all.append(np.ravel_multi_index([t[rows] for t in taps], size) + offset)
            vals_all.append(np.full(rows.shape, -1.0 if len(fixed) % 2 else 1.0))
            offset += int(np.prod(size))
    matrix = torch.zeros(k.shape[1], offset, dtype=dtype)
    matrix[np.concatenate(rows_all), np.concatenate(cols_all)] = torch.as_tensor(np.concatenate(vals_all), dtype=dtype)
    return matrix.to(device), tuple(layout)


def composite_kernels(w_up: torch.Tensor, w_tail: torch.Tensor) -> list:
    """The signed composite kernels of ``tail ∘ upsample``, differentiably, in about a dozen ops.

    Args:
        w_up: transposed-convolution weight ``(C, C', K0, K1, K2)``.
        w_tail: tail weight ``(1, C', 3, 3, 3)``.

    Returns:
        ``[(fixed, kernel)]``, the whole grid first (``fixed = ()``, ``kernel`` ``(C, 1, M0, M1, M2)``,
        ``M = K + 2``), then per :data:`_FIXED_SETS` the ``G = 2^len(fixed)`` correction kernels stacked
        as a grouped weight ``(G·C, 1, M0, M1, M2)`` with ``M = 1`` in fixed dimensions. Kernel ``g``
        equals ``-1^len(fixed)`` times :func:`._ssrnet_fast._composite_kernel` of the ``g``-th lo/hi choice.
    """
    C, Co = w_up.shape[:2]
    matrix, layout = _selection(tuple(w_up.shape[2:]), str(w_up.device), w_up.dtype)
    # (C, C', K) -> (C, K, C') @ (C', 27) -> (C, K·27): every product W_up[c, o, k] · W_tail[o, j] summed over o.
    outer = torch.matmul(w_up.reshape(C, Co, -1).transpose(1, 2), w_tail.reshape(Co, 27)).reshape(C, -1)
    kernels = outer @ matrix  # (C, total): all parts side by side
    result = []
    for fixed, offset, size in layout:
        groups, count = 2 ** len(fixed), int(np.prod(size))
        block = kernels[:, offset:offset + groups * count].reshape(C, groups, *size)  # (C, G, M0, M1, M2)
        result.append((fixed, block.transpose(0, 1).reshape(groups * C, 1, *size)))  # (G·C, 1, M0, M1, M2)
    return result


@functools.lru_cache(maxsize=256)
def _positions(n: int, ends: bool, device: str) -> torch.Tensor:
    """Output indices along one dimension: ``[0, n-1]`` (``ends``) or ``0 .. n-1``."""
    return torch.tensor([0, n - 1], device=device) if ends else torch.arange(n, device=device)


@functools.lru_cache(maxsize=64)
def _inside(n: int, device: str, dtype: torch.dtype) -> torch.Tensor:
    """``(n, 3)``: whether tail tap ``j`` of output ``o`` reads inside the grid (``0 <= o + j - 1 < n``)."""
    position = np.arange(n)[:, None] + np.arange(3)[None, :] - 1
    return torch.as_tensor((position >= 0) & (position < n), dtype=dtype, device=device)


class CompositeReconstruction:
    """``tail(upsample(y))`` as 8 one-kernel-per-group transposed convolutions; differentiable.

    Same decomposition as :class:`._ssrnet_fast._Reconstruction` (whole grid plus inclusion–exclusion
    border corrections), but the parts run as ``conv_transpose3d`` with their composite kernels, the
    corrections that fix the same dimensions as one grouped convolution whose result is added to the
    border with one ``index_put``; building the kernels costs a dozen ops. For training, where the
    weights change on every step and every op is host time.
    """

    def __init__(self, w_up, b_up, w_tail, b_tail, scale: int) -> None:
        self.strides = (1, scale, scale)
        self.parts = composite_kernels(w_up, w_tail)
        self.bias_taps = torch.einsum("cxyz,c->xyz", w_tail[0], b_up)  # (3, 3, 3)
        self.b_tail = b_tail

    def __call__(self, y: torch.Tensor) -> torch.Tensor:
        """``(B, C, L, h, w) -> (B, L, s·h, s·w)``."""
        B, C = y.shape[:2]
        n = y.shape[2:]
        (_, main), *corrections = self.parts
        out = F.conv_transpose3d(y, main.to(y.dtype), stride=self.strides, padding=2).squeeze(1)  # (B, L, H, W)
        N = out.shape[1:]
        device = str(out.device)
        for fixed, weight in corrections:
            k = len(fixed)
            slab = y
            for d in fixed:  # the first and last voxel along each fixed dimension
                slab = slab.index_select(2 + d, _positions(n[d], True, str(y.device)))
            # (B, C, a0, a1, a2), a = 2 where fixed -> (B, 2^k·C, 1 or n ...): the lo/hi choices as groups.
            slab = slab.movedim([2 + d for d in fixed], list(range(1, 1 + k)))
            slab = slab.reshape(B, 2 ** k * C, *(1 if d in fixed else n[d] for d in range(3)))
            strides = tuple(1 if d in fixed else self.strides[d] for d in range(3))
            paddings = tuple(0 if d in fixed else 2 for d in range(3))
            part = F.conv_transpose3d(slab, weight.to(y.dtype), stride=strides, padding=paddings, groups=2 ** k)
            free = [d for d in range(3) if d not in fixed]
            part = part.reshape(B, *[2] * k, *(N[d] for d in free))  # (B, 2, .., o_free ...)
            # Back to (B, a0, a1, a2) with the choices where their dimension is (the sign is in the kernel).
            order = [1 + fixed.index(d) if d in fixed else 1 + k + free.index(d) for d in range(3)]
            part = part.permute(0, *order)
            index = [_positions(B, False, device).view(-1, 1, 1, 1)]
            for d in range(3):
                shape = [1, 1, 1]
                shape[d] = -1
                index.append(_positions(N[d], d in fixed, device).view(shape))
            out = out.index_put(tuple(index), part, accumulate=True)
        inside = [_inside(size, device, self.bias_taps.dtype) for size in N]
        bias = torch.einsum("xyz,lx,hy,wz->lhw", self.bias_taps, *inside) + self.b_tail[0]  # (L, H, W)
        return out + bias.to(out.dtype)
