"""The method registry: one name per method, a factory that builds its network, metadata as data.

Usage::

    from hsisr_bench.registry import create_method, list_methods
    model = create_method("ssrnet", bands=31, scale=2, lff=False)

A method registers itself in its own module with :func:`register_method`; the modules are imported
once, lazily, by :func:`_load_builtin_methods`, so adding a method touches its file, its config and
one import line there.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional

import torch.nn as nn

from hsisr_bench.errors import MethodError, did_you_mean

#: Modules that register the built-in methods (imported on first use of the registry).
BUILTIN_METHOD_MODULES = (
    "baselines.bicubic",
    "baselines.gdrrn",
    "baselines.fcnn3d",
    "baselines.edsr",
    "hsisr_bench.models.ssrnet",
)


@dataclass(frozen=True)
class OutputCrop:
    """How much the output loses on each side relative to the HR target (3D-FCNN's valid convolutions)."""

    bands: int = 0
    pixels: int = 0

    def apply(self, cube):
        """Crop a ``(..., L, H, W)`` array or tensor the same way the method's output is cropped."""
        b, p = self.bands, self.pixels
        if b == 0 and p == 0:
            return cube
        L, H, W = cube.shape[-3:]
        return cube[..., b : L - b, p : H - p, p : W - p]


@dataclass(frozen=True)
class MethodInfo:
    """Everything the harness and the reports need to know about a method, as data.

    Attributes:
        name: registry name (``ssrnet``, ``edsr``, ...).
        factory: ``factory(*, bands, scale, **options) -> nn.Module``.
        title: human-readable name for tables (``SSRNet``, ``3D-FCNN``).
        input: ``"lr"`` (the LR cube) or ``"upsampled"`` (MATLAB-bicubic upsampled LR, same size as HR).
        output_crop: bands and pixels the output loses on each side (see :class:`OutputCrop`).
        trainable: ``False`` for methods without parameters (Bicubic); the harness skips training.
        loss: the default training loss of the method's paper (a name known to ``engine/train.py``).
        optimizer: default optimiser settings, e.g. ``{"name": "adam", "lr": 1e-4, "weight_decay": 0}``.
        paper: the reference, for reports.
        param_counts: expected trainable parameter counts for 31 bands, keyed by ``(scale, variant)``
            where variant is a short string (``"default"``, ``"block=standard"``...).
        variants: named option sets the paper studies, e.g. ``{"nolff": {"lff": False}}``.
        options: the factory's keyword options and their defaults (filled from its signature).
    """

    name: str
    factory: Callable[..., nn.Module]
    title: str
    input: str = "lr"
    output_crop: OutputCrop = OutputCrop()
    trainable: bool = True
    loss: str = "l1"
    optimizer: Mapping[str, Any] = field(default_factory=lambda: {"name": "adam", "lr": 1e-4})
    paper: str = ""
    param_counts: Mapping[tuple[int, str], int] = field(default_factory=dict)
    variants: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)


_REGISTRY: dict[str, MethodInfo] = {}
_BUILTINS_LOADED = False


def register_method(
    name: str, *, title: str, **metadata: Any
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering ``factory`` under ``name`` with the given :class:`MethodInfo` fields.

    Raises:
        MethodError: if ``name`` is already registered, or ``input`` is not ``lr``/``upsampled``.
    """

    def decorator(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise MethodError(f"Method '{name}' is registered twice ({_REGISTRY[name].factory.__module__} "
                              f"and {factory.__module__}); pick another name.")
        if metadata.get("input", "lr") not in ("lr", "upsampled"):
            raise MethodError(f"Method '{name}': input must be 'lr' or 'upsampled', got {metadata['input']!r}.")
        signature = inspect.signature(factory)
        options = {
            p.name: p.default
            for p in signature.parameters.values()
            if p.kind == p.KEYWORD_ONLY and p.name not in ("bands", "scale")
        }
        _REGISTRY[name] = MethodInfo(name=name, factory=factory, title=title, options=options, **metadata)
        return factory

    return decorator


def _load_builtin_methods() -> None:
    global _BUILTINS_LOADED
    if not _BUILTINS_LOADED:
        _BUILTINS_LOADED = True
        for module in BUILTIN_METHOD_MODULES:
            importlib.import_module(module)


def list_methods() -> list[str]:
    """Names of every registered method, sorted."""
    _load_builtin_methods()
    return sorted(_REGISTRY)


def get_method_info(name: str) -> MethodInfo:
    """The :class:`MethodInfo` of ``name``.

    Raises:
        MethodError: unknown name, with a did-you-mean hint listing the valid names.
    """
    _load_builtin_methods()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise MethodError(f"Unknown method '{name}'. {did_you_mean(name, _REGISTRY)}") from None


def resolve_options(name: str, options: Optional[Mapping[str, Any]] = None, variant: Optional[str] = None) -> dict:
    """Merge a named variant and explicit options, checking every key against the factory's options."""
    info = get_method_info(name)
    merged: dict[str, Any] = {}
    if variant:
        if variant not in info.variants:
            raise MethodError(f"Unknown variant '{variant}' of method '{name}'. {did_you_mean(variant, info.variants)}")
        merged.update(info.variants[variant])
    merged.update(options or {})
    for key in merged:
        if key not in info.options:
            valid = info.options or {"(none)": None}
            raise MethodError(f"Unknown option '{key}' for method '{name}'. {did_you_mean(key, valid)}")
    return merged


def create_method(name: str, *, bands: int, scale: int, **options: Any) -> nn.Module:
    """Build the network of method ``name`` for ``bands`` spectral bands and an integer ``scale``.

    Args:
        name: a registry name (see :func:`list_methods`).
        bands: number of spectral bands L.
        scale: integer upscaling factor (2, 3 or 4).
        **options: the method's own keyword options (see ``MethodInfo.options``).

    Raises:
        MethodError: unknown method or option (with a did-you-mean hint), or an invalid value.
    """
    if not isinstance(scale, int) or isinstance(scale, bool) or scale < 2:
        raise MethodError(f"scale must be an integer of at least 2, got {scale!r}.")
    if not isinstance(bands, int) or bands < 1:
        raise MethodError(f"bands must be a positive integer, got {bands!r}.")
    info = get_method_info(name)
    resolve_options(name, options)
    return info.factory(bands=bands, scale=scale, **options)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (weight-norm ``g`` and ``v`` both counted)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
