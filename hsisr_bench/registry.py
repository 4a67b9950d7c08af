"""The method registry: one name per method, a factory that builds its network, metadata as data.

Usage::

    from hsisr_bench.registry import create_method, list_methods
    model = create_method("ssrnet", bands=31, scale=2, lff=False)

A method registers itself in its own module with :func:`register_method`; the modules are imported
once, lazily, by :func:`_load_builtin_methods`, so adding a method touches its file, its config and
one import line there. Methods from outside the package (a user's file or module, the
``HSIBENCH_PLUGINS`` variable, the ``hsisr_bench.methods`` entry-point group) are loaded by
:mod:`hsisr_bench.plugins` with the same decorator; ``MethodInfo.source`` records where each came from.
The method contract (what a registration and a built model must satisfy) is
:mod:`hsisr_bench.contract`.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Optional

import torch.nn as nn

from hsisr_bench.errors import HsiBenchError, MethodError, did_you_mean

#: Modules that register the built-in methods (imported on first use of the registry).
BUILTIN_METHOD_MODULES = (
    "hsisr_bench.baselines.bicubic",
    "hsisr_bench.baselines.gdrrn",
    "hsisr_bench.baselines.fcnn3d",
    "hsisr_bench.baselines.edsr",
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
        input: ``"lr"`` (the LR cube), ``"upsampled"`` (MATLAB-bicubic upsampled LR, same size as HR) or
            ``"lr+upsampled"`` (both: ``forward(lr, upsampled)``).
        output_crop: bands and pixels the output loses on each side (see :class:`OutputCrop`).
        trainable: ``False`` for methods without parameters (Bicubic); the harness skips training.
        loss: the default training loss of the method's paper (a name known to ``engine/train.py``).
        optimizer: default optimiser settings, e.g. ``{"name": "adam", "lr": 1e-4, "weight_decay": 0}``.
        paper: the reference, for reports.
        param_counts: expected trainable parameter counts for 31 bands, keyed by ``(scale, variant)``
            where variant is a short string (``"default"``, ``"block=standard"``...).
        variants: named option sets the paper studies, e.g. ``{"nolff": {"lff": False}}``.
        variant_descriptions: optional one-line text per variant (``hsibench list``); a variant
            without one is described by its options (:func:`describe_variant`).
        options: the factory's keyword options and their defaults (filled from its signature).
        size_multiple: the model's input sides (LR pixels for ``"lr"`` and ``"lr+upsampled"``, whose
            upsampled input is padded to ``size_multiple * scale``; HR pixels for ``"upsampled"``)
            must be multiples of it (window attention); the harness reflect-pads every input to a
            multiple, crops the output back, and aligns inference tiles to it. A model attribute
            ``size_multiple`` overrides it.
        source: where the registration came from: ``"built-in"``, ``"plugin <path or module>"``,
            ``"entry point <name> (<distribution>)"`` or ``"module <name>"`` (filled by the registry).
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
    variant_descriptions: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    source: str = "built-in"
    size_multiple: int = 1


_REGISTRY: dict[str, MethodInfo] = {}
_BUILTINS_LOADED = False
#: "pending", "loading" or "done": the plugins named by the environment and the entry points.
_AUTO_PLUGINS = "pending"
#: Innermost last: the source of the registrations in progress (see :func:`registering_from`).
_SOURCES: list[str] = []
#: MethodInfo fields a registration may give (the rest are filled by the registry).
_METADATA_FIELDS = ("input", "output_crop", "trainable", "loss", "optimizer", "paper", "param_counts",
                    "variants", "variant_descriptions", "size_multiple")


@contextlib.contextmanager
def registering_from(source: str) -> Iterator[None]:
    """Record ``source`` (e.g. ``"plugin /home/me/mine.py"``) as the origin of methods registered inside."""
    _SOURCES.append(source)
    try:
        yield
    finally:
        _SOURCES.pop()


def _source_of(factory: Callable[..., nn.Module]) -> str:
    module = getattr(factory, "__module__", "?")
    if module in BUILTIN_METHOD_MODULES:
        return "built-in"
    return _SOURCES[-1] if _SOURCES else f"module {module}"


def register_method(
    name: str, *, title: str, **metadata: Any
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering ``factory`` under ``name`` with the given :class:`MethodInfo` fields.

    The same decorator serves built-in methods and plugins (see :mod:`hsisr_bench.plugins`). The
    registration is checked against the method contract
    (:func:`hsisr_bench.contract.validate_registration`) before anything is recorded.

    Args:
        name: the registry name (``--methods NAME``); letters, digits, ``_`` and ``-``.
        title: the name shown in tables.
        **metadata: the other :class:`MethodInfo` fields (``input``, ``output_crop``, ``trainable``,
            ``loss``, ``optimizer``, ``paper``, ``param_counts``, ``variants``, ``variant_descriptions``,
            ``size_multiple``).

    Raises:
        MethodError: ``name`` is already registered (a built-in name included), an unknown field, or
            a registration that breaks the contract (e.g. ``input`` not ``lr``/``upsampled``/``lr+upsampled``).
    """

    def decorator(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        source = _source_of(factory)
        if source != "built-in":
            # A plugin imported before the registry's first use must still clash with the built-ins
            # here, where the error names the plugin, not later when a built-in module is imported.
            _load_builtin_methods_only()
        if name in _REGISTRY:
            first = _REGISTRY[name]
            raise MethodError(f"Method '{name}' is registered twice: first by {first.source} "
                              f"({first.factory.__module__}.{first.factory.__qualname__}), again by {source} "
                              f"({factory.__module__}.{getattr(factory, '__qualname__', factory)}); pick another "
                              f"name (registered: {', '.join(sorted(_REGISTRY))}).")
        unknown = [key for key in metadata if key not in _METADATA_FIELDS]
        if unknown:
            raise MethodError(f"Method '{name}' ({source}): unknown registration field(s) {', '.join(unknown)}. "
                              f"{did_you_mean(unknown[0], _METADATA_FIELDS)}")
        from hsisr_bench.contract import validate_registration  # lazy: contract imports this module

        problems = validate_registration(name, factory, title=title, **metadata)
        if problems:
            raise MethodError(f"Method '{name}' ({source}) breaks the method contract: " + "; ".join(problems)
                              + ". See docs/adding-a-method.md.")
        signature = inspect.signature(factory)
        options = {
            p.name: p.default
            for p in signature.parameters.values()
            if p.kind == p.KEYWORD_ONLY and p.name not in ("bands", "scale")
        }
        _REGISTRY[name] = MethodInfo(name=name, factory=factory, title=title, options=options, source=source,
                                     **metadata)
        return factory

    return decorator


def unregister_method(name: str) -> None:
    """Remove ``name`` from the registry (a plugin that failed half-way is rolled back with it; tests)."""
    _REGISTRY.pop(name, None)


def _load_builtin_methods_only() -> None:
    """Import the built-in method modules once (not the plugins)."""
    global _BUILTINS_LOADED
    if not _BUILTINS_LOADED:
        _BUILTINS_LOADED = True
        with registering_from("built-in"):
            for module in BUILTIN_METHOD_MODULES:
                importlib.import_module(module)


def _load_builtin_methods() -> None:
    """Import the built-in method modules once, then the plugins of the environment and entry points.

    Raises:
        MethodError: a plugin named by ``HSIBENCH_PLUGINS`` or an entry point fails to load; it is
            tried again on the next use of the registry (a working plugin is loaded once).
    """
    global _AUTO_PLUGINS
    _load_builtin_methods_only()
    if _AUTO_PLUGINS == "pending":
        _AUTO_PLUGINS = "loading"  # a plugin's own registrations come back here: do not recurse
        from hsisr_bench.plugins import load_environment_plugins

        try:
            load_environment_plugins()
            _AUTO_PLUGINS = "done"
        finally:
            if _AUTO_PLUGINS == "loading":
                _AUTO_PLUGINS = "pending"


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
        raise MethodError(f"Unknown method '{name}'. {did_you_mean(name, _REGISTRY)}{_plugin_hint(name)}") from None


def _plugin_hint(name: str) -> str:
    """How to load an outside method: naming ``<name>.py`` when the working directory holds it."""
    from pathlib import Path

    base = str(name).split("+", 1)[0]
    if base and (Path.cwd() / f"{base}.py").is_file():
        return (f" A file {base}.py is in this folder: if it registers '{base}', load it with --plugin {base}.py "
                f"(or HSIBENCH_PLUGINS={base}.py).")
    return " Methods of your own load with --plugin FILE.py or $HSIBENCH_PLUGINS."


def describe_variant(name: str, variant: str) -> str:
    """A one-line description of a method's variant: its registered text, else its options.

    Derived descriptions list each option with the default it replaces, e.g.
    ``lff=False (default True), grl=False (default True)``.

    Raises:
        MethodError: unknown method or variant.
    """
    info = get_method_info(name)
    if variant not in info.variants:
        raise MethodError(f"Unknown variant '{variant}' of method '{name}'. "
                          f"{did_you_mean(variant, list(info.variants) or ['(none)'])}")
    text = info.variant_descriptions.get(variant)
    if text:
        return text
    parts = []
    for key, value in info.variants[variant].items():
        default = info.options.get(key, inspect.Parameter.empty)
        suffix = "" if default is inspect.Parameter.empty else f" (default {default!r})"
        parts.append(f"{key}={value!r}{suffix}")
    return ", ".join(parts) or "the default options"


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
    try:
        return info.factory(bands=bands, scale=scale, **options)
    except HsiBenchError:
        raise
    except (Exception, SystemExit) as error:  # noqa: BLE001 - plugin code: a message, not a traceback or an exit
        if info.source == "built-in":
            raise  # a bug of the toolkit itself: keep its traceback
        what = f"called sys.exit({error.code!r})" if isinstance(error, SystemExit) else f"{type(error).__name__}: {error}"
        raise MethodError(f"method '{name}' ({info.source}) failed to build its network with bands={bands}, "
                          f"scale={scale}, options {options}: {what}. Fix the plugin's factory, or check the "
                          f"options given with --set method.options.<name>.") from None


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (weight-norm ``g`` and ``v`` both counted)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
