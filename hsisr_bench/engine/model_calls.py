"""How the harness calls a user's model: without copying it, through its wrappers, padded to its size multiple.

- :func:`unwrap_model` finds the module inside ``torch.compile`` and DDP wrappers;
  :func:`substituted` calls a model with replaced parameters and buffers (float64 or ``meta``)
  through :func:`torch.func.functional_call`, which is how the probes of :mod:`engine.infer`
  avoid ``copy.deepcopy`` (legacy ``torch.nn.utils.weight_norm`` models refuse it).
- :func:`pad_to_multiple`, :func:`size_multiple_of` and :func:`forward_padded` implement the
  contract field ``size_multiple`` (window models): reflect-pad the input, crop the output back.
"""

from __future__ import annotations

import contextlib
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call

from hsisr_bench.errors import MethodError
from hsisr_bench.registry import MethodInfo

__all__ = ["unwrap_model", "substituted", "model_tensors", "eval_mode", "round_up", "pad_to_multiple",
           "size_multiple_of", "forward_padded", "input_factor", "with_nearest_upsampled"]


def unwrap_model(model: nn.Module) -> nn.Module:
    """The user's module inside ``torch.compile`` (``_orig_mod``) and DDP / DataParallel (``.module``) wrappers.

    Probes run the plain module: a compiled wrapper would recompile for float64 and forward-mode
    autodiff, and a DDP wrapper's forward takes part in collectives that only one rank runs here.
    """
    while True:
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        elif isinstance(getattr(model, "_orig_mod", None), nn.Module):
            model = model._orig_mod
        else:
            return model


def model_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter and buffer of ``model`` by name (what :func:`torch.func.functional_call` replaces)."""
    return {**dict(model.named_parameters()), **dict(model.named_buffers())}


def substituted(model: nn.Module, convert) -> "callable":
    """``model`` called with every parameter and buffer replaced by ``convert(tensor)``, the model untouched.

    This is how the probes get a float64 or ``meta`` version of a model without ``copy.deepcopy``,
    which raises for legacy ``torch.nn.utils.weight_norm`` modules (their ``weight`` is a non-leaf
    tensor attribute) and for other modules holding autograd state. Parametrizations and weight
    norm recompute their weights from the substituted tensors inside the call.
    """
    replacements = {name: convert(tensor.detach()) for name, tensor in model_tensors(model).items()}
    return lambda *inputs: functional_call(model, replacements, inputs)


@contextlib.contextmanager
def eval_mode(model: nn.Module):
    """Every submodule in eval mode inside, each one's own train/eval flag restored afterwards."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


def round_up(n: int, multiple: int) -> int:
    """The smallest multiple of ``multiple`` that is ``>= n``."""
    return multiple * -(-n // multiple)


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """``x`` ``(..., H, W)`` reflect-padded at the bottom and right to sides that are multiples of ``multiple``.

    Reflection needs a pad shorter than the side, so a side much smaller than ``multiple`` is
    padded in several reflections (and a one-pixel side by repetition).
    """
    while True:
        h, w = x.shape[-2:]
        pad_h, pad_w = -h % multiple, -w % multiple
        if not pad_h and not pad_w:
            return x
        if min(h, w) < 2:
            return F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        x = F.pad(x, (0, min(pad_w, w - 1), 0, min(pad_h, h - 1)), mode="reflect")


def size_multiple_of(model: nn.Module, info: MethodInfo) -> int:
    """The model's ``size_multiple`` attribute, else the registration's (1: any size).

    Raises:
        MethodError: the attribute is not an integer >= 1.
    """
    multiple = getattr(unwrap_model(model), "size_multiple", info.size_multiple)
    if isinstance(multiple, bool) or not isinstance(multiple, int) or multiple < 1:
        raise MethodError(f"Method '{info.name}' ({info.source}): size_multiple must be an integer >= 1, "
                          f"got {multiple!r}.")
    return multiple


def forward_padded(model, x: torch.Tensor, *, multiple: int, factor: int, crop: int,
                   upsampled: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``model(x)`` for any input size: ``x`` reflect-padded to a multiple of ``multiple``, the output cropped back.

    The output keeps ``factor * h - 2 * crop`` rows and the same for columns (``h, w``: the unpadded
    input's sides); with ``multiple == 1`` this is ``model(x)``. ``upsampled`` (``"lr+upsampled"``
    methods: ``x`` is the LR, ``factor`` the scale) is the second input, ``model(x, upsampled)``; it is
    padded to ``multiple * factor`` so that its sides stay ``factor`` times the padded LR's.
    """
    inputs = (x,) if upsampled is None else (x, upsampled)
    if multiple == 1:
        return model(*inputs)
    h, w = x.shape[-2:]
    padded = [pad_to_multiple(x, multiple)]
    if upsampled is not None:
        padded.append(pad_to_multiple(upsampled, multiple * factor))
    out = model(*padded)
    return out[..., : factor * h - 2 * crop, : factor * w - 2 * crop]


def input_factor(input_kind: str, scale: int) -> int:
    """Output pixels per pixel of the model's (first) input: 1 for ``"upsampled"``, else the scale."""
    return 1 if input_kind == "upsampled" else scale


def with_nearest_upsampled(call, scale: int):
    """A one-input callable of the LR for a two-input (``"lr+upsampled"``) ``call(lr, upsampled)``.

    The probes (receptive field, memory) feed the second input the nearest-neighbour upsampling of
    the first: it has the right shape, runs on ``meta`` tensors and under forward-mode autodiff, and
    LR row ``m`` reaches exactly upsampled rows ``[s*m, s*m + s)``, so the measured LR radius ``R``
    covers a field of ``s*R`` pixels in the upsampled input (what tiling cuts from it).
    """
    return lambda lr: call(lr, lr.repeat_interleave(scale, dim=-2).repeat_interleave(scale, dim=-1))
