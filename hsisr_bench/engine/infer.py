"""Tiled inference: super-resolve a whole cube under a memory bound, equal to the untiled output.

A test cube (31 x 512 x 512) does not fit through SSRNet in one pass on a small machine: its
features are 64 channels x L bands x H x W floats, and after the transposed convolution they are at
HR size. :func:`super_resolve` cuts the model's input into tiles along H and W (never along the
spectral axis), runs each tile with a margin at least the model's receptive-field radius, and
pastes only each tile's core into the output. Because every output pixel then sees exactly the
inputs it sees in the untiled pass (and a tile that touches the image border is padded exactly as
the whole image), the stitched result equals the untiled one up to float rounding (~1e-6).

Geometry, per spatial axis. ``f`` is the number of output pixels per input pixel (the scale for
``input == "lr"`` methods, 1 for ``"upsampled"`` ones, whose input is already at HR size) and ``c``
the output crop in pixels (3D-FCNN's valid convolutions: 6). A tile whose input starts at input
pixel ``A`` produces output pixels that, in the whole output, start at ``f * A``: its local output
pixel ``k`` is global output pixel ``f * A + k``. The output is split into cores of ``f * t`` pixels;
the core ``[o0, o1)`` needs input ``[(o0 + c) // f - R, ceil((o1 + c) / f) + R)`` clipped to the image,
where ``R`` is the receptive-field radius in input pixels.

Receptive field (``R``, in input pixels: LR pixels for ``"lr"`` methods, HR pixels for
``"upsampled"`` ones): a model declares it as an integer attribute ``receptive_field`` (the
baselines compute it from their architecture: Bicubic 3, GDRRN 20, 3D-FCNN 6, EDSR 36 at x2/x3
and 37 at x4). A model without the attribute is measured once by a forward-mode autodiff probe
(:func:`measure_receptive_field`): the derivative of the output along one input row is computed
in float64, and the farthest output row where it is non-zero (mapped back to its source input row)
gives ``R`` (both axes; the probe grows until the dependent rows stop short of its edge). The
probe sees every operation, functional convolutions that bypass modules (SSRNet's fast path)
included; it measures SSRNet (D = 3) at 23 LR pixels but costs seconds on a CPU, hence the
attribute. The tests check tiled == untiled for every registered method and declared >= probed.

Memory (``max_memory``, in bytes): a probe pass runs the model with ``meta`` weights substituted
(shapes only, no arithmetic; never a deep copy, which legacy ``weight_norm`` modules refuse) under a dispatch mode that tracks every tensor the forward creates and frees; its
peak of live bytes divided by the probe's input pixels is the method's *bytes per input pixel*
(per batch item). Operators' internal scratch buffers are not visible to it, so the estimate is
multiplied by :data:`MEMORY_SAFETY` (2.0: the peak resident memory measured on CPU was 1.3 to 1.8
times the tracked bytes for GDRRN, EDSR and 3D-FCNN, input and output cubes included, and about 1.0
for SSRNet). The tile side is the largest whose input (core plus margins) fits the budget.
``max_memory`` bounds this per-tile working memory; the whole input (and, for ``"upsampled"``
methods, its upsampled copy), the output cube, the model's weights and the Python process itself
(about 0.35 GB with torch loaded) come on top. With neither ``tile`` nor ``max_memory`` the whole
cube is one tile.
"""

from __future__ import annotations

import math
import warnings
import weakref
from dataclasses import dataclass
from typing import Iterator, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn as nn
from torch.autograd import forward_ad
from tqdm.auto import tqdm
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from hsisr_bench.errors import ConfigError, DataError, HsiBenchError, MethodError, did_you_mean
from hsisr_bench.engine.model_calls import (eval_mode, forward_padded, input_factor, model_tensors, pad_to_multiple,
                                            round_up, size_multiple_of, substituted, unwrap_model,
                                            with_nearest_upsampled)
from hsisr_bench.registry import MethodInfo, OutputCrop, get_method_info, list_methods

__all__ = ["super_resolve", "probe_model", "measure_receptive_field", "plan_axis", "ModelProbe", "MEMORY_SAFETY",
           "unwrap_model", "pad_to_multiple", "size_multiple_of", "forward_padded"]

#: Factor applied to the tracked activation bytes to cover operators' scratch buffers (oneDNN
#: layout copies, matmul workspaces) that the tensor tracker does not see.
MEMORY_SAFETY = 2.0

#: Show a progress bar by default only when there are at least this many tiles.
PROGRESS_MIN_TILES = 16

_AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}

ArrayLike = Union[np.ndarray, torch.Tensor]


@dataclass(frozen=True)
class ModelProbe:
    """What a probe pass learnt about a model: receptive-field radius and memory per input pixel.

    Attributes:
        radius: receptive-field radius in input pixels (see the module docstring).
        bytes_per_pixel: estimated peak working bytes per input pixel for one batch item,
            including :data:`MEMORY_SAFETY`.
    """

    radius: int
    bytes_per_pixel: float


@dataclass(frozen=True)
class AxisTile:
    """One tile along one axis: the output core it fills and the input span it reads.

    Attributes:
        out_start, out_stop: the core, in global output pixels.
        in_start, in_stop: the input span the model is run on, in input pixels.
        local_start: where the core starts in the tile's own output.
    """

    out_start: int
    out_stop: int
    in_start: int
    in_stop: int
    local_start: int


# --------------------------------------------------------------------------------------------
# Probing a model: receptive field (forward-mode probe) and bytes per pixel (meta pass)


class _LiveTensorBytes(TorchDispatchMode):
    """Dispatch mode tracking the bytes of every tensor storage an operation creates, and their peak.

    A storage is counted once however many views share it (in-place ops and views add nothing) and
    is released when the Python tensor it was first seen on is collected.
    """

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, int] = {}
        self.current = 0
        self.peak = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for leaf in tree_leaves(out):
            if isinstance(leaf, torch.Tensor):
                self._track(leaf)
        return out

    def _track(self, tensor: torch.Tensor) -> None:
        storage = tensor.untyped_storage()
        key = storage._cdata  # the C++ StorageImpl: shared by views, unique while alive
        if key in self.live:
            return
        self.live[key] = storage.nbytes()
        self.current += self.live[key]
        self.peak = max(self.peak, self.current)
        weakref.finalize(tensor, self._release, key)

    def _release(self, key: int) -> None:
        self.current -= self.live.pop(key, 0)


def _peak_bytes(model, x: torch.Tensor) -> int:
    """Peak bytes of live tensors during ``model(x)`` under inference mode, the input included."""
    tracker = _LiveTensorBytes()
    with torch.inference_mode(), tracker:
        output = model(x)
        del output
    # The input is part of a tile's working set too (it is a fresh slice of the cube).
    return tracker.peak + x.numel() * x.element_size()


def _support_radius(model: nn.Module, x: torch.Tensor, *, axis: int, factor: int, crop: int,
                    phase: int = 0) -> tuple[int, bool]:
    """Forward-mode probe along one axis: which output rows depend on the centre input row.

    The tangent (directional derivative) of the output in the direction of input row ``m`` is
    computed with forward-mode autodiff. Unlike a finite perturbation it is not rounded away when
    added to large activations, and unlike a gradient it needs no backward pass. Output row ``o``
    has a non-zero tangent only if it depends on row ``m``; the largest
    ``|(o + crop) // factor - m|`` over those rows is the radius. Returns it and whether the
    dependent rows reach the output's edge (then the probe was too small to see the whole field).
    ``m`` is the centre row plus ``phase``.
    """
    m = x.shape[axis] // 2 + phase
    tangent = torch.zeros_like(x)
    tangent.narrow(axis, m, 1).fill_(1.0)
    with warnings.catch_warnings(), torch.no_grad():
        # torch's first use of forward AD scripts its jvp decompositions with the deprecated torch.jit.
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.")
        with forward_ad.dual_level():
            output_tangent = forward_ad.unpack_dual(model(forward_ad.make_dual(x, tangent))).tangent
    if output_tangent is None:  # the output does not depend on the input at all
        return 0, False
    changed = output_tangent != 0  # (1, L', n_out, w_out) or (1, L', w_out, n_out)
    other = [d for d in range(changed.ndim) if d != axis % changed.ndim]
    rows = torch.nonzero(changed.amax(dim=other)).flatten().tolist()  # output rows along `axis`
    if not rows:
        return 0, False
    radius = max(abs((o + crop) // factor - m) for o in rows)
    return radius, rows[0] == 0 or rows[-1] == changed.shape[axis] - 1


def measure_receptive_field(
    model: nn.Module, *, bands: int, factor: int, crop: int, device: Union[str, torch.device] = "cpu",
    max_size: int = 1024, multiple: int = 1, upsampled_scale: int = 0,
) -> int:
    """Measure a model's receptive-field radius in input pixels with a perturbation probe on each axis.

    The probe runs a float64 copy of the model with forward-mode autodiff (see
    :func:`_support_radius`) on an input ``(1, bands, n, w)`` with random values in [0, 1] (positive,
    so that a leading ReLU passes everything), ``n`` doubling from 64 until the dependent rows stop
    short of the output's edge, and ``w`` as narrow as the model accepts (the field along one axis
    does not depend on the other axis' length for convolutional networks, so a narrow probe is
    cheap); then the same with the axes swapped. float64 matters: at the edge of the field an
    output depends on the input through one chain of corner taps whose product of small weights
    underflows float32 in deep networks (EDSR paper size: about 1e-45 at 39 of its 68 pixels). A
    ReLU that stays off can only hide dependencies that are then absent in this model state too;
    with random inputs this does not happen in practice, and the tests check tiled == untiled for
    every registered method.

    Args:
        model: the network; it runs with float64 copies of its parameters and buffers substituted
            (:func:`torch.func.functional_call`: the model itself is neither copied nor changed), on
            ``device``, in its current train/eval mode. A model that cannot run that way (tensors kept
            outside its parameters and buffers) is probed as it is, in its own precision.
        bands: spectral bands of the input.
        factor: output pixels per input pixel (the scale, or 1 for upsampled inputs).
        crop: output pixels the model loses on each side.
        device: where to run the probe.
        max_size: the largest probe length; a field that still reaches the edge there raises.
        multiple: the model's ``size_multiple``: probe sides are multiples of it, and every phase
            of the probed row modulo it is probed.
        upsampled_scale: for an ``"lr+upsampled"`` model, the scale of its second input (fed the
            nearest-neighbour upsampling of the probe, :func:`with_nearest_upsampled`); 0: one input.

    Returns:
        The radius ``R``: output pixel ``o`` depends only on input pixels ``i`` with
        ``|i - (o + crop) // factor| <= R``.

    Raises:
        MethodError: the model accepts no narrow probe input, or its field exceeds ``max_size``.
    """
    model = unwrap_model(model)
    # float64 weights substituted for the call only: the user's model is neither copied nor changed.
    as_float64 = substituted(model, lambda t: t.to(device=device, dtype=torch.float64) if t.is_floating_point()
                              else t.to(device))
    own_call = model
    if upsampled_scale:
        as_float64 = with_nearest_upsampled(as_float64, upsampled_scale)
        own_call = with_nearest_upsampled(model, upsampled_scale)
    try:
        return _measure_radius(as_float64, type(model).__name__, bands=bands, factor=factor, crop=crop,
                               device=device, max_size=max_size, dtype=torch.float64, multiple=multiple)
    except MethodError:
        # A model holding tensors outside its parameters and buffers (plain attributes) cannot run in
        # float64 this way: probe the model itself, in its own precision, on its own device.
        own = next(iter(model_tensors(model).values()), torch.zeros(()))
        dtype = own.dtype if own.is_floating_point() else torch.float32
        return _measure_radius(own_call, type(model).__name__, bands=bands, factor=factor, crop=crop,
                               device=own.device, max_size=max_size, dtype=dtype, multiple=multiple)


def _measure_radius(model, label: str, *, bands: int, factor: int, crop: int, device, max_size: int,
                    dtype: torch.dtype, multiple: int = 1) -> int:
    """:func:`measure_receptive_field` for a callable ``model`` fed ``dtype`` inputs on ``device``.

    With ``multiple > 1`` every probe side is a multiple of it, and the probed row takes each phase
    modulo ``multiple``: a window model is shift-equivariant only by whole windows, so one row does
    not see the field of every output.
    """
    generator = torch.Generator().manual_seed(0)
    radius = 0
    for axis in (-2, -1):
        n = round_up(64, multiple)
        while True:
            result = None
            for width in (2 * math.ceil(crop / factor) + 1, 16, 2 * math.ceil(crop / factor) + 16):
                width = round_up(width, multiple)
                shape = [1, bands, n, n]
                shape[3 if axis == -2 else 2] = width  # (1, L, n, width) or (1, L, width, n)
                x = torch.rand(shape, generator=generator, dtype=torch.float64).to(device=device, dtype=dtype)
                try:
                    with torch.autocast(torch.device(device).type, enabled=False):
                        phases = [_support_radius(model, x, axis=axis, factor=factor, crop=crop,
                                                  phase=p - (n // 2) % multiple) for p in range(multiple)]
                    result = (max(r for r, _ in phases), any(edge for _, edge in phases))
                    break
                except (RuntimeError, ValueError, HsiBenchError):
                    continue  # the model needs a wider input (reflect padding, valid convs): try wider
            if result is None:
                raise MethodError(f"Cannot probe the receptive field of {label}: it rejects "
                                  f"inputs of shape (1, {bands}, {n}, <=16+); give it a 'receptive_field' attribute.")
            axis_radius, reaches_edge = result
            if not reaches_edge:
                break
            if n >= max_size:
                raise MethodError(f"The receptive field of {label} reaches beyond {max_size // 2} "
                                  "input pixels: it cannot be tiled; call super_resolve without tile/max_memory.")
            n *= 2
        radius = max(radius, axis_radius)
    return radius


_PROBES: "weakref.WeakKeyDictionary[nn.Module, dict]" = weakref.WeakKeyDictionary()


def probe_model(
    model: nn.Module, *, bands: int, scale: int, input_kind: str, crop: int = 0,
    device: Union[str, torch.device] = "cpu", size: int = 48, multiple: int = 1,
) -> ModelProbe:
    """Receptive-field radius and working bytes per input pixel of a model (cached per model and shape).

    The radius is the model's ``receptive_field`` attribute when it has one, else
    :func:`measure_receptive_field`. The memory pass runs the model with ``meta`` tensors substituted
    for its weights (shapes only, no arithmetic, no real memory; :func:`torch.func.functional_call`,
    never a copy of the model) on an input of side ``size``; a model whose forward cannot run on
    ``meta`` tensors is measured for real, in eval mode on its own device, with a 16-pixel input
    instead. ``torch.compile`` and DDP wrappers are probed through the module they wrap.

    Args:
        model: the network.
        bands: spectral bands L of its input.
        scale: the upscaling factor.
        input_kind: ``"lr"``, ``"upsampled"`` or ``"lr+upsampled"`` (radius and pixels in LR pixels).
        crop: the output crop in pixels (model.output_crop.pixels).
        device: where the receptive-field probe runs (the model's device).
        size: spatial side of the meta memory probe, in input pixels (rounded up to ``multiple``).
        multiple: the model's ``size_multiple`` (input sides must be multiples of it).

    Returns:
        A :class:`ModelProbe`.
    """
    declared = getattr(unwrap_model(model), "receptive_field", None)
    key = (bands, scale, input_kind, crop, declared, multiple)
    cache = _PROBES.setdefault(model, {})
    if key in cache:
        return cache[key]
    factor = input_factor(input_kind, scale)
    two_inputs = scale if input_kind == "lr+upsampled" else 0
    if declared is not None:
        radius = int(declared)
    else:
        radius = measure_receptive_field(model, bands=bands, factor=factor, crop=crop, device=device,
                                         multiple=multiple, upsampled_scale=two_inputs)
    base = unwrap_model(model)
    size = round_up(size, multiple)
    with eval_mode(base):
        try:  # meta tensors substituted for the weights: shapes only, the model untouched
            meta_model = substituted(base, lambda t: torch.empty_like(t, device="meta"))
            if two_inputs:
                meta_model = with_nearest_upsampled(meta_model, two_inputs)
            peak = _peak_bytes(meta_model, torch.zeros(1, bands, size, size, device="meta"))
        except Exception:  # noqa: BLE001 - an op without a meta kernel: fall back to a small real pass
            size = round_up(max(16, 2 * math.ceil(crop / factor) + 4), multiple)
            where = next(iter(model_tensors(base).values()), torch.zeros(())).device
            peak = _peak_bytes(with_nearest_upsampled(base, two_inputs) if two_inputs else base,
                               torch.zeros(1, bands, size, size, device=where))
    probe = ModelProbe(radius=radius, bytes_per_pixel=MEMORY_SAFETY * peak / (size * size))
    cache[key] = probe
    return probe


# --------------------------------------------------------------------------------------------
# Tile geometry


def plan_axis(n_in: int, *, factor: int, crop: int, radius: int, core: int, multiple: int = 1,
              n_keep: Optional[int] = None) -> list[AxisTile]:
    """Split one spatial axis into tiles whose cores partition the output exactly.

    Args:
        n_in: input length along the axis (input pixels).
        factor: output pixels per input pixel (the scale, or 1 for upsampled inputs).
        crop: output pixels the model loses on each side.
        radius: receptive-field radius in input pixels (the margin around each core).
        core: core length in input pixels (``>= n_in`` gives one tile).
        multiple: the model's ``size_multiple``: cores and every tile's input span start and end on
            multiples of it (``n_in`` must be one: the padded input), so that a window model sees
            each tile's windows where it sees them in the whole image.
        n_keep: the input length whose output is kept (the unpadded length); default ``n_in``.

    Returns:
        The tiles, in order; their ``[out_start, out_stop)`` cover ``[0, factor * n_keep - 2 * crop)``.
    """
    n_out = factor * (n_in if n_keep is None else n_keep) - 2 * crop
    # A valid conv's crop is part of its receptive field; never let the margin fall below it.
    radius = max(radius, math.ceil(crop / factor))
    step = factor * round_up(max(1, core), multiple)
    tiles = []
    for out_start in range(0, n_out, step):
        out_stop = min(out_start + step, n_out)
        in_start = max(0, (out_start + crop) // factor - radius) // multiple * multiple
        in_stop = min(n_in, round_up(-(-(out_stop + crop) // factor) + radius, multiple))
        tiles.append(AxisTile(out_start, out_stop, in_start, in_stop, out_start - factor * in_start))
    return tiles


def _core_from_memory(max_memory: float, *, batch: int, probe: ModelProbe, factor: int, crop: int) -> int:
    """Largest core side (input pixels) whose tile input, margins included, fits ``max_memory`` bytes."""
    radius = max(probe.radius, math.ceil(crop / factor))
    side = math.floor(math.sqrt(max_memory / (batch * probe.bytes_per_pixel)))
    # Worst-case tile span: core + two margins + the rounding of the crop to whole input pixels.
    core = side - 2 * radius - math.ceil(2 * crop / factor) - 1
    if core < 1:
        needed = batch * probe.bytes_per_pixel * (2 * radius + math.ceil(2 * crop / factor) + 2) ** 2
        raise ConfigError(f"max_memory={int(max_memory):,} bytes is too small for this model: one tile with its "
                          f"receptive-field margin of {radius} input pixels needs about {int(needed):,} bytes "
                          f"(estimated {probe.bytes_per_pixel:,.0f} bytes per input pixel). Raise max_memory.")
    return core


# --------------------------------------------------------------------------------------------
# Inputs


def _as_batch(lr: ArrayLike) -> torch.Tensor:
    """The LR cube as a float32 CPU tensor ``(B, L, h, w)``."""
    if isinstance(lr, np.ndarray):
        tensor = torch.from_numpy(np.ascontiguousarray(lr))
    elif isinstance(lr, torch.Tensor):
        tensor = lr.detach()
    else:
        raise DataError(f"super_resolve: lr must be a numpy array or torch tensor, got {type(lr).__name__}.")
    if tensor.ndim == 3:
        tensor = tensor.unsqueeze(0)  # (L, h, w) -> (1, L, h, w)
    if tensor.ndim != 4:
        raise DataError(f"super_resolve: lr must be shaped (L, h, w) or (B, L, h, w), got {tuple(tensor.shape)}.")
    if not tensor.is_floating_point():
        raise DataError(f"super_resolve: lr must be a float cube in [0, 1], got dtype {tensor.dtype}; "
                        "normalise integer data first.")
    return tensor.to(device="cpu", dtype=torch.float32)


def _band_mean(band_mean: Optional[ArrayLike], bands: int) -> torch.Tensor:
    """The band mean as a float32 tensor ``(1, L, 1, 1)`` (zeros when ``None``)."""
    if band_mean is None:
        return torch.zeros(1, bands, 1, 1)
    mean = torch.as_tensor(np.asarray(band_mean.detach().cpu() if isinstance(band_mean, torch.Tensor)
                                      else band_mean), dtype=torch.float32).reshape(-1)
    if mean.numel() != bands:
        raise DataError(f"super_resolve: band_mean has {mean.numel()} values, the LR cube has {bands} bands; "
                        "pass the per-band mean of the training scenes, shape (L,).")
    return mean.reshape(1, bands, 1, 1)  # (L,) -> (1, L, 1, 1) to broadcast over batch and pixels


def _resolve_info(model: nn.Module, info: Union[MethodInfo, str, None]) -> MethodInfo:
    """The method metadata: given, named, or found from the registry by the model's defining module."""
    if isinstance(info, MethodInfo):
        return info
    if isinstance(info, str):
        return get_method_info(info)
    module = type(model).__module__
    matches = [name for name in list_methods() if get_method_info(name).factory.__module__ == module]
    if len(matches) != 1:
        raise MethodError(f"super_resolve: cannot tell which method a {type(model).__name__} is "
                          f"({len(matches)} registered methods are defined in {module}); pass info=<name or "
                          f"MethodInfo>. Valid names: {', '.join(list_methods())}.")
    return get_method_info(matches[0])


def _autocast(device: torch.device, amp: Optional[str]):
    if amp is None:
        return torch.autocast(device.type, enabled=False)
    if amp not in _AMP_DTYPES:
        raise ConfigError(f"super_resolve: amp={amp!r} is not supported. {did_you_mean(str(amp), _AMP_DTYPES)}")
    return torch.autocast(device.type, dtype=_AMP_DTYPES[amp])


def _tiles(plans: Sequence[list[AxisTile]]) -> Iterator[tuple[AxisTile, AxisTile]]:
    for tile_h in plans[0]:
        for tile_w in plans[1]:
            yield tile_h, tile_w


# --------------------------------------------------------------------------------------------
# The entry point


def super_resolve(
    model: nn.Module,
    lr: ArrayLike,
    *,
    scale: int,
    info: Union[MethodInfo, str, None] = None,
    band_mean: Optional[ArrayLike] = None,
    tile: Optional[int] = None,
    max_memory: Optional[float] = None,
    device: Union[str, torch.device] = "cpu",
    amp: Optional[str] = None,
    progress: Optional[bool] = None,
) -> torch.Tensor:
    """Super-resolve an LR cube with ``model``, tile by tile, equal to the untiled output.

    The band mean is subtracted from the model's input and added back to its output; for
    ``"upsampled"`` methods the whole LR is upsampled once with MATLAB-bicubic ``imresize`` and the
    tiles are cut from the upsampled cube (resizing tiles separately would differ at tile borders).
    The model is moved to ``device`` and run in eval mode under ``torch.inference_mode()``; its
    previous training mode is restored afterwards.

    Args:
        model: the network (``forward`` maps ``(B, L, h, w)`` or the upsampled ``(B, L, H, W)`` to
            ``(B, L', H', W')``). Its ``output_crop`` attribute, when present, overrides the registry's.
        lr: the LR cube ``(L, h, w)`` or batch ``(B, L, h, w)``, numpy or torch, floating point.
        scale: the integer upscaling factor.
        info: the method's :class:`MethodInfo` or registry name; by default it is looked up from the
            module that defines ``type(model)``.
        band_mean: per-band mean, shape ``(L,)``, subtracted before and added after the model.
        tile: core tile side in **LR pixels** (the margins come on top). Overrides ``max_memory``.
        max_memory: per-tile working-memory budget in bytes; the tile side is derived from it (see the
            module docstring for the estimate). With neither ``tile`` nor ``max_memory`` the whole
            cube is one tile.
        device: where the model runs (``"cpu"``, ``"cuda"``, ``"cuda:1"``...).
        amp: ``None`` (float32), ``"bf16"`` or ``"fp16"``: autocast dtype for the forward passes.
        progress: show a tqdm bar over tiles; ``None`` shows it when there are at least
            :data:`PROGRESS_MIN_TILES` tiles.

    Returns:
        The SR cube ``(B, L', H', W')``, float32, on CPU, not clipped; ``L' = L - 2 * crop.bands`` and
        ``H' = scale * h - 2 * crop.pixels`` (same for ``W'``) with the model's output crop.

    Raises:
        DataError: ``lr`` or ``band_mean`` has the wrong type or shape.
        ConfigError: bad ``scale``, ``tile``, ``max_memory`` or ``amp``.
        MethodError: the method cannot be identified, or the model's output has an unexpected shape.
    """
    if not isinstance(scale, int) or isinstance(scale, bool) or scale < 1:
        raise ConfigError(f"super_resolve: scale must be a positive integer, got {scale!r}.")
    if tile is not None and (not isinstance(tile, int) or isinstance(tile, bool) or tile < 1):
        raise ConfigError(f"super_resolve: tile must be a positive integer (LR pixels), got {tile!r}.")
    if max_memory is not None and not max_memory > 0:
        raise ConfigError(f"super_resolve: max_memory must be a positive number of bytes, got {max_memory!r}.")
    _autocast(torch.device(device), amp)  # validates amp before any work
    if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
        model = unwrap_model(model)  # a DDP forward joins collectives that the other ranks never run here
    info = _resolve_info(unwrap_model(model), info)
    device = torch.device(device)
    crop: OutputCrop = getattr(model, "output_crop", info.output_crop)
    was_training = model.training
    model.to(device).eval()
    try:
        return _super_resolve(model, lr, scale=scale, info=info, crop=crop, band_mean=band_mean, tile=tile,
                              max_memory=max_memory, device=device, amp=amp, progress=progress)
    finally:
        model.train(was_training)


def _pinned_copies(device: torch.device) -> bool:
    """Whether tiles come back through pinned buffers with asynchronous copies (CUDA), else ``.cpu()``."""
    return device.type == "cuda"


def _pinned_empty(shape: tuple[int, ...]) -> torch.Tensor:
    """A page-locked float32 host buffer (asynchronous device-to-host copies need one)."""
    return torch.empty(shape, dtype=torch.float32, pin_memory=True)


def _write_tile(out: torch.Tensor, pending) -> None:
    """Write a tile whose copy was queued into ``out``, once the copy is complete (``None``: nothing)."""
    if pending is not None:
        host, event, region = pending
        event.synchronize()
        out[region] = host


def _super_resolve(model: nn.Module, lr: ArrayLike, *, scale: int, info: MethodInfo, crop: OutputCrop,
                   band_mean: Optional[ArrayLike], tile: Optional[int], max_memory: Optional[float],
                   device: torch.device, amp: Optional[str], progress: Optional[bool]) -> torch.Tensor:
    """:func:`super_resolve` once the model is on ``device`` in eval mode."""
    x = _as_batch(lr)
    batch, bands = x.shape[:2]
    mean = _band_mean(band_mean, bands)
    upsampled = None  # the second input of "lr+upsampled" methods, (B, L, s*h, s*w)
    if info.input in ("upsampled", "lr+upsampled"):
        from hsisr_bench.data.imresize import imresize

        up = imresize(x, scale) - mean  # (B, L, h, w) -> (B, L, s*h, s*w), once for the whole cube
        if info.input == "upsampled":
            x = up
        else:
            upsampled = up
    factor = input_factor(info.input, scale)
    lr_to_input = 1 if info.input != "upsampled" else scale
    if info.input != "upsampled":
        x = x - mean  # a new tensor: the caller's lr is never modified
    n_h, n_w = x.shape[-2:]
    # A window model needs sides that are multiples: pad the whole cube once (tiles cut from it align
    # to the multiple, see plan_axis) and keep only the output of the real pixels. The upsampled
    # input is padded to multiple * scale: its sides stay scale times the padded LR's.
    multiple = size_multiple_of(model, info)
    x = pad_to_multiple(x, multiple)
    if upsampled is not None:
        upsampled = pad_to_multiple(upsampled, multiple * scale)

    probe = probe_model(model, bands=bands, scale=scale, input_kind=info.input, crop=crop.pixels, device=device,
                        multiple=multiple)
    if tile is not None:
        core = tile * lr_to_input  # tile is in LR pixels, the plan in input pixels
    elif max_memory is not None:
        core = _core_from_memory(max_memory, batch=batch, probe=probe, factor=factor, crop=crop.pixels)
    else:
        core = max(n_h, n_w)
    plans = [plan_axis(padded, factor=factor, crop=crop.pixels, radius=probe.radius, core=core, multiple=multiple,
                       n_keep=n) for padded, n in zip(x.shape[-2:], (n_h, n_w))]
    n_tiles = len(plans[0]) * len(plans[1])
    out_bands = bands - 2 * crop.bands
    out = torch.empty(batch, out_bands, plans[0][-1].out_stop, plans[1][-1].out_stop, dtype=torch.float32)

    show = progress if progress is not None else n_tiles >= PROGRESS_MIN_TILES
    pending = None  # CUDA: (pinned host copy, its event, region of `out`) of the last tile, not yet written
    with torch.inference_mode(), tqdm(total=n_tiles, desc="tiles", unit="tile", disable=not show,
                                       leave=False) as bar:
        for tile_h, tile_w in _tiles(plans):
            piece = x[..., tile_h.in_start:tile_h.in_stop, tile_w.in_start:tile_w.in_stop].to(device)
            pieces = (piece,)
            if upsampled is not None:  # the matching tile of the whole-cube upsampling, at scale * coordinates
                pieces += (upsampled[..., scale * tile_h.in_start:scale * tile_h.in_stop,
                                     scale * tile_w.in_start:scale * tile_w.in_stop].to(device),)
            with _autocast(device, amp):
                y = model(*pieces)  # (B, L', f*h_tile - 2c, f*w_tile - 2c)
            expected = (batch, out_bands, factor * (tile_h.in_stop - tile_h.in_start) - 2 * crop.pixels,
                        factor * (tile_w.in_stop - tile_w.in_start) - 2 * crop.pixels)
            if tuple(y.shape) != expected:
                raise MethodError(f"super_resolve: {info.name} returned {tuple(y.shape)} for an input of "
                                  f"{tuple(piece.shape)}, expected {expected} (scale={scale}, input "
                                  f"{info.input!r}, output crop {crop}); check scale and output_crop.")
            h0, w0 = tile_h.local_start, tile_w.local_start
            core = y[..., h0:h0 + tile_h.out_stop - tile_h.out_start, w0:w0 + tile_w.out_stop - tile_w.out_start]
            region = (Ellipsis, slice(tile_h.out_start, tile_h.out_stop), slice(tile_w.out_start, tile_w.out_stop))
            if _pinned_copies(device):
                # Device -> pinned host copy queued without waiting; the previous tile's copy is written
                # into `out` once this tile's work is queued, so the GPU never waits for the host.
                host = _pinned_empty(tuple(core.shape))
                host.copy_(core.float(), non_blocking=True)
                event = torch.cuda.Event()
                event.record()
                _write_tile(out, pending)
                pending = (host, event, region)
            else:
                out[region] = core.float().cpu()
            bar.update(1)
        _write_tile(out, pending)
    # The model saw x - mean; its bands are the input's minus crop.bands on each side. In place:
    # the output cube is the largest tensor held outside the tiles.
    out += mean[:, crop.bands:bands - crop.bands]
    return out
