"""The fast forward path of SSRNet: the same parameters and arithmetic as the plain path, re-laid out.

What it does, and why (each choice measured on the 2-core AMD EPYC development machine while other
jobs ran, single thread, CPU time, SSRNet ×2 on a 31×64×64 LR cube; the ``models`` benchmark suite
re-measures the whole-network ratio):

- Activations stay in ``channels_last_3d`` (physically ``(B, L, h, w, C)``) from head to upsampling.
  In that layout the (1,3,3) convolution is a 2D 3×3 convolution over the ``B·L`` band images and
  the (3,1,1) convolution a 2D (3,1) convolution over ``(L, h·w)``, both on *views*, both running
  oneDNN's channels-last kernels: 96 ms instead of 162 ms (spatial, NCDHW) and 45 ms instead of
  152 ms (spectral: NCDHW falls back to PyTorch's im2col ``slow_conv3d``). Conv3d on the same
  channels-last memory was as fast for the spectral conv and slower for the spatial one.
- Upsampling and reconstruction are both linear, so ``tail ∘ upsample`` is one transposed
  convolution with a single output channel, computed as ``s²`` dense sub-pixel convolutions plus a
  pixel shuffle, with exact border corrections (see :class:`_Reconstruction`): ~110 ms instead
  of 490 ms (ConvTranspose3d 64->64, NCDHW; 515 ms channels-last; 1,170 ms as a dense sub-pixel
  64->64·s² conv, whose zero taps cost 2.25× the FLOPs) + 270 ms (tail 64->1 on the HR grid). It
  never forms the 64-channel HR tensor (2 GB for a 31×512×512 output). Its band taps run as output
  channels of a 2D convolution (see :func:`_phase_conv`).
- Without autograd on CPU, every convolution writes ``ReLU(conv(x))`` into a reused, already mapped
  buffer (:class:`Workspace`, oneDNN's in-place convolution): a fresh 130 MB output is page-faulted
  in by the kernel on first write, ~35 ms each. On a 31×128×128 LR cube, 2 threads: spatial 206 ->
  171 ms, spectral 111 -> 71 ms per convolution (zeroing the buffer included); whole network ×2
  7.7 -> 6.2 s.
- Weight normalisation is folded into plain weights once per parameter change (cached; rebuilt when
  a parameter's version or storage changes and dropped by ``train()``), together with the re-laid-out
  weights and the reconstruction kernels; with autograd on they are recomputed differentiably.
- Training (autograd on) prepares its weights in few ops (each is host time; see ``prepare_weights``
  and :mod:`._ssrnet_composite`): ~1.3× the plain model's ops per step, not ~8×.
- Local feature fusion ``Conv1×1×1(concat(γ·x))`` is three accumulated matmuls with γ folded into
  the weight: no 3C concat, and each unit output is free as soon as the next unit has used it.
- The head (one input channel, where PyTorch picks its slow kernel and then needs a layout copy) is
  one matmul over 27-voxel neighbourhoods that writes channels-last directly.
- With autograd on (training), ReLU runs in place on each convolution's fresh output and the
  residual adds out of place. Fusing the ReLU alone into the oneDNN convolution saved ~2.5 % of a
  convolution; what pays is the reused output buffer above. Rejected as slower: NNPACK's Winograd
  3×3 (114 vs 84 ms), the spectral conv as three shifted matmuls, oneDNN's blocked layout, and
  Winograd F(2×2, 3×3) in PyTorch ops: its 16 skinny 64×64 matmuls run at ~110 GFLOP/s where the
  direct 3×3 convolution reaches ~220 GFLOP/s (2 threads), so 2.25× fewer FLOPs do not pay for
  the transforms.
- Whole network (``hsibench bench --suite models``, 2 threads, see ``docs/benchmarks.md``): on a
  full 31×512×512 cube plain ×2 98.0 s, fast 27.9 s (3.51×; 2.82× without the reused buffers),
  ×4 4.40×; at HR 256 ×2 3.2–3.6×. Peak memory ×2 untiled: plain 6.9 GB, fast 3.2 GB. Training
  uses this path too, with the public convolutions and the training weights above.
- On CUDA the same code runs on cuDNN; mixed precision comes from an outer ``torch.autocast`` (the
  harness's ``amp`` option): weights are prepared in float32 and cast by autocast.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
from typing import TYPE_CHECKING, Callable

import torch
import torch.nn.functional as F

from hsisr_bench.models._ssrnet_composite import CompositeReconstruction

if TYPE_CHECKING:  # pragma: no cover
    from hsisr_bench.models.ssrnet import SSRNet

CL3D = torch.channels_last_3d
CL2D = torch.channels_last


class WeightCache:
    """Prepared inference weights (weight norm folded, re-laid out), rebuilt when any parameter changes.

    The key is ``(id, data_ptr, _version)`` of every parameter: an optimiser step or ``load_state_dict``
    bumps ``_version`` (in-place update), ``.to(device)`` or ``p.data = ...`` changes ``data_ptr``.
    Copies and pickles of a model start with an empty cache.
    """

    def __init__(self) -> None:
        self.key: tuple = ()
        self.weights: dict = {}

    def clear(self) -> None:
        """Forget the prepared weights."""
        self.key, self.weights = (), {}

    def get(self, model: torch.nn.Module, build: Callable[[], dict]) -> dict:
        """The cached weights of ``model``, rebuilt with ``build()`` if a parameter changed since."""
        key = tuple((id(p), p.data_ptr(), p._version) for p in model.parameters())
        if key != self.key or not self.weights:
            self.weights, self.key = build(), key
        return self.weights

    def __deepcopy__(self, memo) -> "WeightCache":
        return WeightCache()

    def __getstate__(self) -> dict:
        return {}

    def __setstate__(self, state: dict) -> None:
        self.clear()


# --------------------------------------------------------------------------- weight preparation


def prepare_weights(model: "SSRNet", training: bool = False) -> dict:
    """Every layer's effective weights, re-laid out for the fast kernels (differentiable).

    Args:
        model: the network.
        training: for weights that change every step: ``tail ∘ upsample`` as a
            :class:`CompositeReconstruction` (~60 ops to build) instead of :class:`_Reconstruction`'s
            phase kernels (fastest to apply, ~6,000 ops to build, cached for inference), and the
            separable kernels kept 3D for Conv3d on the channels-last activations: with autograd
            (4 patches 16×16×31, 2 threads) as fast as the 2D views within the noise (spatial 0.20
            against 0.16-0.21 s), without their ~20 view ops per block.

    Returns:
        A dict keyed by module: ``(weight, bias)`` for convolutions, ``(matrices, bias)`` for a fusion
        convolution and the reconstruction callable for the upsampling layer.
    """
    weights: dict = {model.head: (model.head.weight, model.head.bias)}
    for module in model.body:
        for block in _blocks(module):
            if hasattr(block, "spatial"):
                if training:  # 3D kernels as they are: with autograd no slower, and no view ops to record
                    w_s = block.spatial.weight.contiguous(memory_format=CL3D)
                    w_l = block.spectral.weight.contiguous(memory_format=CL3D)
                else:
                    w_s = block.spatial.weight[:, :, 0].contiguous(memory_format=CL2D)  # (C, C, 1, 3, 3) -> (C,C,3,3)
                    w_l = block.spectral.weight[..., 0].contiguous(memory_format=CL2D)  # (C, C, 3, 1, 1) -> (C,C,3,1)
                weights[block.spatial] = (w_s, block.spatial.bias)
                weights[block.spectral] = (w_l, block.spectral.bias)
            else:
                weights[block.conv] = (block.conv.weight.contiguous(memory_format=CL3D), block.conv.bias)
        if module.lff:
            parts = module.fusion.weight.flatten(1).chunk(3, dim=1)  # (C, 3C, 1, 1, 1) -> 3 × (C, C)
            # γ_k·x_k then the 1×1×1 conv equals the conv with γ_k folded into its k-th column block.
            mats = tuple((g * part).t() for g, part in zip(module.gamma, parts))  # (C_in, C_out) each
            weights[module.fusion] = (mats, module.fusion.bias)
    reconstruction = CompositeReconstruction if training else _Reconstruction
    weights[model.upsample] = reconstruction(model.upsample.weight, model.upsample.bias, model.tail.weight,
                                             model.tail.bias, model.scale)
    return weights


def _blocks(module) -> list:
    return [b for unit in module.units for b in (unit.first, unit.second)] + [module.close]


def _detached(weights: dict) -> dict:
    def detach(value):
        if isinstance(value, tuple):
            return tuple(detach(v) for v in value)
        if isinstance(value, _Reconstruction):
            return value.detached()
        return value.detach()

    return {k: detach(v) for k, v in weights.items()}


# --------------------------------------------------------------------------- activation buffers (inference)


@functools.lru_cache(maxsize=None)
def fused_conv_available() -> bool:
    """Whether oneDNN's in-place convolution ``torch.ops.mkldnn._convolution_pointwise_`` works here.

    It is a private operator (PyTorch's inductor uses it), so it is used only after this probe has
    checked, once per process, that it exists and writes ``ReLU(conv(x))`` into the given buffer for
    both convolution shapes the network uses; otherwise the public ``F.conv2d``/``F.conv3d`` run.
    """
    try:
        if not torch.backends.mkldnn.is_available():
            return False
        generator = torch.Generator().manual_seed(0)
        for dims, kernel in ((2, (3, 1)), (3, (3, 3, 3))):
            layout = CL2D if dims == 2 else CL3D
            x = torch.randn(2, 4, *(5,) * dims, generator=generator).contiguous(memory_format=layout)
            weight = torch.randn(4, 4, *kernel, generator=generator).contiguous(memory_format=layout)
            bias = torch.randn(4, generator=generator)
            padding = tuple(k // 2 for k in kernel)
            out = torch.empty_like(x)
            got = _conv_relu(x, weight, bias, padding, out=out)
            expected = F.relu((F.conv2d if dims == 2 else F.conv3d)(x, weight, bias, padding=padding))
            if got.data_ptr() != out.data_ptr() or not torch.allclose(got, expected, rtol=1e-4, atol=1e-4):
                return False
        return True
    except (AttributeError, RuntimeError, TypeError):  # absent, or its signature changed
        return False


class Workspace:
    """Activation-sized buffers that the layers of one forward without autograd write into, reused.

    Why: a fresh activation (31×128×128×64 float32 = 130 MB) is a new ``mmap`` that the kernel
    page-faults in on first write, about 35 ms each here; with ~45 of them, that was 1.8 s of a 7.7 s
    ×2 forward. oneDNN's in-place convolution (see :func:`fused_conv_available`) writes into a buffer
    that is already mapped. Buffers are never shared between live tensors: :meth:`spare` is told which
    tensors the caller still needs and hands out another one (allocating it the first time).
    """

    def __init__(self, like: torch.Tensor) -> None:
        self.like = like
        self.buffers: list[torch.Tensor] = []

    def spare(self, *live: torch.Tensor) -> torch.Tensor:
        """A buffer shaped like the activations that holds none of ``live``."""
        busy = {t.untyped_storage().data_ptr() for t in live}
        for buffer in self.buffers:
            if buffer.untyped_storage().data_ptr() not in busy:
                return buffer
        self.buffers.append(torch.empty_like(self.like, memory_format=CL3D))
        return self.buffers[-1]


def _spare(ws: "Workspace | None", *live: torch.Tensor) -> "torch.Tensor | None":
    return None if ws is None else ws.spare(*live)


def _workspace_for(f0: torch.Tensor) -> "Workspace | None":
    """A workspace when the in-place convolutions can run: CPU, float32, no autograd, no autocast."""
    usable = (not torch.is_grad_enabled() and f0.device.type == "cpu" and f0.dtype == torch.float32
              and not torch.is_autocast_enabled("cpu") and fused_conv_available())
    return Workspace(f0) if usable else None


# --------------------------------------------------------------------------- layers on (B, C, L, h, w) CL3D


def _conv_relu(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, padding: tuple,
               out: "torch.Tensor | None" = None) -> torch.Tensor:
    """``ReLU(conv(x))``, 2D or 3D, channels-last; written into ``out`` (same shape and layout) if given."""
    if out is None:
        return F.relu_((F.conv2d if x.dim() == 4 else F.conv3d)(x, weight, bias, padding=padding))
    ones = [1] * (x.dim() - 2)
    out.zero_()  # the kernel adds the convolution to what ``out`` holds, then applies the ReLU
    return torch.ops.mkldnn._convolution_pointwise_.binary(out, x, weight, bias, list(padding), ones, ones, 1,
                                                            "add", None, "relu", [], "")


def _head(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Conv3d 3×3×3, 1 -> C, padding 1, as one matmul over the 27-voxel neighbourhoods."""
    B, L, h, w = x.shape
    padded = F.pad(x, (1, 1, 1, 1, 1, 1))  # (B, L+2, h+2, w+2)
    cols = padded.unfold(1, 3, 1).unfold(2, 3, 1).unfold(3, 3, 1)  # (B, L, h, w, 3, 3, 3), a view
    out = torch.addmm(bias, cols.reshape(-1, 27), weight.reshape(weight.shape[0], 27).t())  # (B·L·h·w, C)
    return out.reshape(B, L, h, w, -1).permute(0, 4, 1, 2, 3)  # (N, C) -> (B, C, L, h, w), CL3D


def _band_images(t: torch.Tensor) -> torch.Tensor:
    """``(B, C, L, h, w) -> (B·L, C, h, w)``: the band images, a channels-last view of a CL3D tensor."""
    B, C, L, h, w = t.shape
    return t.permute(0, 2, 1, 3, 4).reshape(B * L, C, h, w)


def _spatial_relu(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                  out: "torch.Tensor | None" = None) -> torch.Tensor:
    """ReLU(Conv3d (1,3,3) pad (0,1,1)): as a 2D 3×3 convolution over the ``B·L`` band images, or a
    Conv3d if given the 5D kernel (training)."""
    if weight.dim() == 5:
        return _conv_relu(x, weight, bias, (0, 1, 1), out)
    B, C, L, h, w = x.shape
    y = _conv_relu(_band_images(x), weight, bias, (1, 1), None if out is None else _band_images(out))
    return y.reshape(B, L, -1, h, w).permute(0, 2, 1, 3, 4)  # (B·L, C', h, w) -> (B, C', L, h, w), CL3D


def _spectral_relu(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                   out: "torch.Tensor | None" = None) -> torch.Tensor:
    """ReLU(Conv3d (3,1,1) pad (1,0,0)): as a 2D (3,1) convolution over ``(L, h·w)``, or a Conv3d if
    given the 5D kernel (training)."""
    if weight.dim() == 5:
        return _conv_relu(x, weight, bias, (1, 0, 0), out)
    B, C, L, h, w = x.shape
    rows = (B, -1, L, h * w)  # (B, C, L, h, w) -> (B, C, L, h·w), a view in CL3D
    y = _conv_relu(x.reshape(rows), weight, bias, (1, 0), None if out is None else out.reshape(rows))
    return y.reshape(B, -1, L, h, w)  # (B, C', L, h·w) -> (B, C', L, h, w)


def _block(block, x: torch.Tensor, weights: dict, ws: "Workspace | None", keep: tuple = ()) -> torch.Tensor:
    """One block; with a workspace its outputs go to buffers that hold neither ``x`` nor ``keep``."""
    # ReLU runs in place on each convolution's own output, before any reshape: in place on a fresh
    # base tensor costs autograd nothing (in place on a view would make it copy the base in backward).
    if hasattr(block, "spatial"):
        middle = _spatial_relu(x, *weights[block.spatial], out=_spare(ws, x, *keep))
        # The spectral output may overwrite ``x`` unless the caller keeps it: only ``middle`` is read.
        return _spectral_relu(middle, *weights[block.spectral], out=_spare(ws, middle, *keep))
    return _conv_relu(x, *weights[block.conv], (1, 1, 1), out=_spare(ws, x, *keep))


def _as_matrix(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 2, 3, 4, 1).reshape(-1, x.shape[1])  # (B, C, L, h, w) -> (B·L·h·w, C), a view in CL3D


def _ssrm(module, x: torch.Tensor, weights: dict, ws: "Workspace | None", inplace: bool) -> torch.Tensor:
    # Local feature fusion ReLU(Conv1×1×1(concat(γ1·x1, γ2·x2, γ3·x3))) is accumulated as
    # Σ_k x_k · (γ_k W_k)ᵀ, one matmul per unit output, so the 3C concat is never formed.
    acc = None
    y = x
    for k, unit in enumerate(module.units):
        keep = (x, y) if acc is None else (x, y, acc)
        z = _block(unit.second, _block(unit.first, y, weights, ws, keep), weights, ws, keep)
        y = z.add_(y) if inplace else z + y
        if module.lff:
            mats, bias = weights[module.fusion]
            if acc is None:
                out = _spare(ws, x, y)
                acc = torch.addmm(bias, _as_matrix(y), mats[k], **({} if out is None else {"out": _as_matrix(out)}))
            else:  # in-place ops are not autocast: match the accumulator's dtype by hand
                acc = acc.addmm_(_as_matrix(y), mats[k].to(acc.dtype))  # (N, C)
    if module.lff:
        B, C, L, h, w = x.shape
        fused = F.relu_(acc).reshape(B, L, h, w, -1).permute(0, 4, 1, 2, 3)  # (N, C) -> (B, C, L, h, w), CL3D
    else:
        fused = y
    fused = fused.add_(x) if inplace else fused + x
    return _block(module.close, fused, weights, ws)


# --------------------------------------------------------------------------- upsampling + reconstruction


def _composite_kernel(w_up: torch.Tensor, w_tail: torch.Tensor, fixed: tuple) -> torch.Tensor:
    """The kernel of ``tail ∘ upsample`` as one transposed convolution with a single output channel.

    Per dimension the transposed convolution (tap ``k`` of ``K``) followed by the 3-tap tail (tap
    ``j``) contributes at composite tap ``m = k - j + 2``, ``0 <= m < K + 2``; the composite kernel
    sums ``W[:, c, k] · Wt[c, j]`` over the upsampling's output channels ``c``. A dimension given in
    ``fixed`` as ``(k, j)`` keeps only that pair (kernel size 1 there): the border corrections.

    Args:
        w_up: transposed-convolution weight ``(C, C', K0, K1, K2)``.
        w_tail: tail weight ``(1, C', 3, 3, 3)``.
        fixed: per dimension ``None`` or a ``(k, j)`` pair.

    Returns:
        ``(C, 1, M0, M1, M2)``, ``M = K + 2`` in free dimensions and 1 in fixed ones.
    """
    sub, j_ranges, sizes = w_up, [], []
    for d, pair in enumerate(fixed):
        if pair is None:
            j_ranges.append(range(3))
            sizes.append(w_up.shape[2 + d] + 2)
        else:
            sub = sub.narrow(2 + d, pair[0], 1)
            j_ranges.append(range(pair[1], pair[1] + 1))
            sizes.append(1)
    kernel = w_up.new_zeros(w_up.shape[0], 1, *sizes)
    for j in itertools.product(*j_ranges):
        contribution = torch.einsum("io...,o->i...", sub, w_tail[0, :, j[0], j[1], j[2]])  # (C, k0, k1, k2)
        where = [slice(None), 0]
        for d, pair in enumerate(fixed):
            where.append(slice(0, 1) if pair is not None else slice(2 - j[d], 2 - j[d] + sub.shape[2 + d]))
        kernel[tuple(where)] += contribution
    return kernel


def _phase_taps(size: int, stride: int, padding: int) -> tuple[list, int, int]:
    """Sub-pixel decomposition of a 1D transposed convolution whose output is ``stride ×`` its input.

    Output ``o = stride·q + r`` receives kernel tap ``m = stride·t + r + padding`` from input ``q - t``.

    Returns:
        ``taps[r][a]``: the kernel tap that phase ``r`` uses at tap ``a`` of an ordinary convolution
        (``None`` where there is none), and that convolution's left and right zero padding.
    """
    t_lo = -((stride - 1 + padding) // stride)  # ceil((-(stride-1) - padding) / stride)
    t_hi = (size - 1 - padding) // stride
    taps = [[None] * (t_hi - t_lo + 1) for _ in range(stride)]
    for r in range(stride):
        for a in range(t_hi - t_lo + 1):
            m = stride * (t_hi - a) + r + padding
            if 0 <= m < size:
                taps[r][a] = m
    return taps, t_hi, -t_lo


def _phase_kernel(kernel: torch.Tensor, strides: tuple, paddings: tuple) -> tuple[torch.Tensor, tuple]:
    """Rewrite a one-output-channel transposed convolution as ``s0·s1·s2`` ordinary ones (one per phase).

    Returns:
        The ordinary kernel with its band taps folded into the output channels, ``(P·A0, C, A1, A2)``
        for ``P = s0·s1·s2`` phases (channels-last 2D, like the activations: a weight in another
        layout makes the convolution copy its large input; see :func:`_phase_conv`), and the
        per-dimension ``(left, right)`` padding.
    """
    gathers, pads = [], []
    for d in range(3):
        taps, left, right = _phase_taps(kernel.shape[2 + d], strides[d], paddings[d])
        onehot = kernel.new_zeros(strides[d], len(taps[0]), kernel.shape[2 + d])  # (phase, tap, kernel tap)
        for r, row in enumerate(taps):
            for a, m in enumerate(row):
                if m is not None:
                    onehot[r, a, m] = 1.0
        gathers.append(onehot)
        pads.append((left, right))
    # (C, M0, M1, M2) -> (s0, s1, s2, A0, A1, A2, C): a one-hot gather, exact.
    phase = torch.einsum("cxyz,pax,qby,rez->pqrabec", kernel[:, 0], *gathers)
    folded = phase.reshape(-1, *phase.shape[4:])  # (P·A0, A1, A2, C), physically channels-last
    return folded.permute(0, 3, 1, 2), tuple(pads)


def _phase_conv(y: torch.Tensor, phase: torch.Tensor, strides: tuple, pads: tuple) -> torch.Tensor:
    """Apply a phase kernel and shuffle the phases into place: ``(B, C, n0, n1, n2) -> (B, s0·n0, s1·n1, s2·n2)``.

    The band taps run as extra output channels of a 2D convolution over the band images, then are
    summed band-shifted: oneDNN vectorises over output channels, and a 3D convolution with only
    ``s0·s1·s2`` (4 at ×2) of them ran at a quarter of its speed (236 ms against 100 ms + 5 adds on a
    31×128×128 LR cube).
    """
    B, C, n0, n1, n2 = y.shape
    (lo0, hi0), (lo1, hi1), (lo2, hi2) = pads
    s0, s1, s2 = strides
    taps = phase.shape[0] // (s0 * s1 * s2)
    images = _band_images(y)  # (B·n0, C, n1, n2)
    if lo1 == hi1 and lo2 == hi2:
        t = F.conv2d(images, phase, padding=(lo1, lo2))
    else:
        t = F.conv2d(F.pad(images, (lo2, hi2, lo1, hi1)), phase)
    m0, m1, m2 = n0 + lo0 + hi0 - taps + 1, t.shape[2], t.shape[3]
    t = t.reshape(B, n0, -1, taps, m1, m2)  # (B, n0, P, A0, m1, m2)
    # Output band o takes tap a from input band o + a - lo0 (zero outside the cube).
    z = t.new_zeros(B, m0, t.shape[2], m1, m2)
    for a in range(taps):
        first, last = max(0, lo0 - a), min(m0, n0 + lo0 - a)
        if first < last:
            z[:, first:last] += t[:, first + a - lo0:last + a - lo0, :, a]
    z = z.reshape(B, m0, s0, s1, s2, m1, m2).permute(0, 1, 2, 5, 3, 6, 4)  # (B, m0, s0, m1, s1, m2, s2)
    return z.reshape(B, m0 * s0, m1 * s1, m2 * s2)


class _Reconstruction:
    """``tail ∘ upsample`` prepared as phase kernels: the whole-grid one and the 26 border corrections.

    Per dimension, the transposed convolution (kernel ``K``, stride ``s``, padding 1) then the tail
    (3 taps, padding 1) equal the composite transposed convolution (kernel ``K+2``, padding 2) except
    where the tail's zero padding cut the upsampled grid: the composite would also count the two
    cropped-away upsampling outputs. Those enter only the first output, from the first input, through
    taps ``(k=0, j=0)`` (``'lo'``), and the last output from the last input through ``(k=K-1, j=2)``
    (``'hi'``). Inclusion–exclusion over the three dimensions removes exactly those terms: for every
    choice of ``None``/``'lo'``/``'hi'`` per dimension (not all ``None``), the terms fixed in the chosen
    dimensions form a thin slab computed with its own kernel, added with sign ``(-1)^(#fixed)``.
    """

    def __init__(self, w_up, b_up, w_tail, b_tail, scale: int, parts=None, bias_taps=None) -> None:
        self.w_up, self.b_up, self.w_tail, self.b_tail, self.scale = w_up, b_up, w_tail, b_tail, scale
        self.strides = (1, scale, scale)
        K = w_up.shape[2:]
        if parts is None:
            parts = []
            for combo in itertools.product((None, "lo", "hi"), repeat=3):
                pairs = tuple(None if c is None else (0, 0) if c == "lo" else (K[d] - 1, 2)
                              for d, c in enumerate(combo))
                strides = tuple(self.strides[d] if c is None else 1 for d, c in enumerate(combo))
                paddings = tuple(2 if c is None else 0 for c in combo)
                phase, pads = _phase_kernel(_composite_kernel(w_up, w_tail, pairs), strides, paddings)
                parts.append((combo, phase, strides, pads))
            # What the biases add: b_tail + Σ_j (Σ_c Wt[c, j] b_up[c]) · [o + j - 1 inside the grid].
            bias_taps = torch.einsum("cxyz,c->xyz", w_tail[0], b_up)  # (3, 3, 3)
        self.parts, self.bias_taps = parts, bias_taps

    def detached(self) -> "_Reconstruction":
        """A copy holding detached tensors (for the inference cache)."""
        parts = [(c, phase.detach(), s, p) for c, phase, s, p in self.parts]
        return _Reconstruction(self.w_up.detach(), self.b_up.detach(), self.w_tail.detach(), self.b_tail.detach(),
                               self.scale, parts, self.bias_taps.detach())

    def __call__(self, y: torch.Tensor) -> torch.Tensor:
        """``tail(upsample(y))``: ``(B, C, L, h, w) -> (B, L, s·h, s·w)``, no 64-channel HR tensor."""
        n = y.shape[2:]
        out = None
        for combo, phase, strides, pads in self.parts:  # the all-None (whole-grid) part comes first
            if out is None:
                out = _phase_conv(y, phase, strides, pads)
                continue
            slab, target = y, out
            for d, c in enumerate(combo):
                if c is not None:
                    slab = slab.narrow(2 + d, 0 if c == "lo" else n[d] - 1, 1)
                    target = target.narrow(1 + d, 0 if c == "lo" else self.strides[d] * n[d] - 1, 1)
            fixed = sum(c is not None for c in combo)
            target.add_(_phase_conv(slab, phase, strides, pads), alpha=-1.0 if fixed % 2 else 1.0)
        return out + self._bias_map(out.shape[1:]).to(out.dtype)

    def _bias_map(self, size) -> torch.Tensor:
        inside = []
        for n in size:
            position = (torch.arange(n, device=self.bias_taps.device)[:, None]
                        + torch.arange(3, device=self.bias_taps.device)[None, :] - 1)  # (n, 3): o + j - 1
            inside.append(((position >= 0) & (position < n)).to(self.bias_taps.dtype))
        return torch.einsum("xyz,lx,hy,wz->lhw", self.bias_taps, *inside) + self.b_tail[0]  # (L, H, W)


# --------------------------------------------------------------------------- the network


def forward(model: "SSRNet", x: torch.Tensor) -> torch.Tensor:
    """The fast forward path of ``model``: ``(B, L, h, w) -> (B, L, s·h, s·w)``."""
    # Weights are prepared in float32 even under autocast (autocast casts them where they are used).
    with _float32_weights(x.device.type):
        if torch.is_grad_enabled():  # recomputed, differentiably, with few ops
            weights = prepare_weights(model, training=True)
        else:  # folded once, cached until a parameter changes
            weights = model._fast_cache.get(model, lambda: _detached(prepare_weights(model)))
    # Without autograd the residual adds can write into tensors nobody needs any more.
    inplace = not torch.is_grad_enabled()
    f0 = _head(x, *weights[model.head])  # (B, C, L, h, w)
    ws = _workspace_for(f0) if model.fused_convolutions else None
    y = f0
    for module in model.body:
        y = _ssrm(module, y, weights, ws, inplace)
        if model.grl:  # f0 is not a workspace buffer: no layer ever overwrites it
            y = y.add_(f0) if inplace else y + f0
    return weights[model.upsample](y)  # (B, L, s·h, s·w)


def _float32_weights(device_type: str):
    """A context that turns autocast off while weights are prepared (a no-op when it is not on)."""
    try:
        enabled = torch.is_autocast_enabled(device_type)
    except RuntimeError:  # a device type autocast does not know (e.g. "meta")
        enabled = False
    return torch.autocast(device_type, enabled=False) if enabled else contextlib.nullcontext()
