"""Methods and datasets from outside the package: plugin files, modules and entry points.

A plugin is ordinary Python that registers a method with the same decorator as the built-ins
(:func:`hsisr_bench.registry.register_method`) or a dataset with the data layer's registration
function. The harness finds plugins in three places, in this order:

1. the ``HSIBENCH_PLUGINS`` environment variable: file paths or module names separated by
   ``os.pathsep`` (``:`` on Linux and macOS, ``;`` on Windows) or commas;
2. installed packages' entry points in the groups ``hsisr_bench.methods`` and
   ``hsisr_bench.datasets`` (``[options.entry_points]`` in ``setup.cfg``, or
   ``[project.entry-points."hsisr_bench.methods"]`` in ``pyproject.toml``); loading the entry point,
   which imports its module, is all the harness does, so the module registers at import time;
3. ``--plugin MODULE_OR_FILE.py`` on the commands that build or list methods (repeatable),
   through :func:`plugin_option`.

The first two are loaded on the registry's first use, in every process (data-parallel workers
included); the third when the command line is parsed. Every plugin is loaded at most once per
process, however many of these name it. A plugin that cannot be found or imported, or whose
registration fails (a name registered twice, a built-in name, a broken contract), raises a
:class:`~hsisr_bench.errors.MethodError` naming the plugin (and the line, for a syntax error);
what it registered before failing is removed again, so the registry is as it was.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import os
import re
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

import click

from hsisr_bench import registry
from hsisr_bench.errors import HsiBenchError, MethodError

__all__ = ["ENV_VAR", "METHOD_GROUP", "DATASET_GROUP", "LoadedPlugin", "load_plugin", "load_plugins",
           "load_entry_points", "load_environment_plugins", "env_plugins", "loaded_plugins", "plugin_option"]

#: The environment variable naming plugins to load in every command.
ENV_VAR = "HSIBENCH_PLUGINS"
#: Entry-point group of installed packages that register methods.
METHOD_GROUP = "hsisr_bench.methods"
#: Entry-point group of installed packages that register datasets.
DATASET_GROUP = "hsisr_bench.datasets"


@dataclass(frozen=True)
class LoadedPlugin:
    """A plugin loaded in this process.

    Attributes:
        key: what identifies it (the resolved file path, the module name, or ``group:name``).
        source: the text recorded as ``MethodInfo.source`` for its methods.
        module: the imported module's name.
        methods: the method names it registered.
    """

    key: str
    source: str
    module: str
    methods: tuple[str, ...]


_LOADED: dict[str, LoadedPlugin] = {}


def loaded_plugins() -> list[LoadedPlugin]:
    """The plugins loaded so far in this process, in load order."""
    return list(_LOADED.values())


def _looks_like_path(spec: str) -> bool:
    return spec.endswith(".py") or "/" in spec or os.sep in spec or (os.altsep or "/") in spec


def _frame_line(error: BaseException, filename: Optional[str]) -> str:
    """``" (mine.py line 7)"``: the deepest traceback frame in the plugin's own file, if any."""
    frames = traceback.extract_tb(error.__traceback__)
    if filename:
        own = [f for f in frames if Path(f.filename).resolve() == Path(filename).resolve()]
        if own:
            return f" ({Path(own[-1].filename).name} line {own[-1].lineno})"
    return ""


def _describe_failure(error: BaseException, what: str, filename: Optional[str]) -> MethodError:
    """The MethodError for a plugin ``what`` whose import raised ``error``."""
    if isinstance(error, SyntaxError):
        text = (error.text or "").strip()
        shown = f": {text}" if text else ""
        return MethodError(f"{what} has a syntax error in {error.filename} line {error.lineno}: {error.msg}{shown}. "
                           "Fix the file and run again.")
    if isinstance(error, HsiBenchError):
        return MethodError(f"{what} failed to register{_frame_line(error, filename)}: {error}")
    if isinstance(error, SystemExit):
        return MethodError(f"{what} called sys.exit({error.code!r}) while loading{_frame_line(error, filename)}; "
                           "a plugin must raise an exception instead. Fix the plugin or leave it out.")
    if isinstance(error, ImportError):
        return MethodError(f"{what} failed to import{_frame_line(error, filename)}: {type(error).__name__}: "
                           f"{error}. Install what it imports, or fix the import.")
    return MethodError(f"{what} raised {type(error).__name__} while loading{_frame_line(error, filename)}: {error}")


def _already_imported(path: Path) -> Optional[str]:
    """The name of a module in ``sys.modules`` loaded from ``path`` (the same file by another route)."""
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        # Compare base names first: resolving every loaded module's path costs a syscall each.
        if isinstance(file, str) and os.path.basename(file) == path.name and Path(file).resolve() == path:
            return name
    return None


def _module_name_for(path: Path) -> str:
    """A module name for a plugin file that cannot clash with an importable module."""
    stem = re.sub(r"\W", "_", path.stem) or "plugin"
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:8]
    return f"hsibench_plugin_{stem}_{digest}"


def _run_import(what: str, source: str, importer: Callable[[], object], filename: Optional[str]) -> tuple:
    """Run ``importer`` recording ``source``; on failure roll back its registrations and raise."""
    before = set(registry._REGISTRY)
    try:
        with registry.registering_from(source):
            module = importer()
    except BaseException as error:  # noqa: BLE001 - every failure becomes a message naming the plugin
        for name in set(registry._REGISTRY) - before:
            registry.unregister_method(name)
        if isinstance(error, KeyboardInterrupt):
            raise
        # SystemExit too: a plugin's sys.exit() must not end hsibench with its code and no message.
        raise _describe_failure(error, what, filename) from error
    added = tuple(name for name in registry._REGISTRY if name not in before)
    return module, added


def load_plugin(spec: str, *, origin: str = "--plugin") -> LoadedPlugin:
    """Load one plugin: a Python file (``mine.py``, ``path/to/mine.py``) or an importable module name.

    Loading the same plugin again (by the same path, module name, or a path and a module that are
    the same file) does nothing and returns the first record.

    Args:
        spec: the file path or module name.
        origin: where the name came from, for messages (``--plugin``, ``HSIBENCH_PLUGINS``).

    Returns:
        The :class:`LoadedPlugin`.

    Raises:
        MethodError: the file does not exist, the module cannot be found, its import fails (syntax
            error with its line, ImportError, any exception), or a registration fails (a name
            registered twice or already built in, a registration that breaks the contract).
    """
    registry._load_builtin_methods_only()
    spec = spec.strip()
    if not spec:
        raise MethodError(f"An empty plugin name in {origin}; give a .py file or a module name.")
    if _looks_like_path(spec):
        path = Path(spec).expanduser().resolve()
        key = str(path)
        if key in _LOADED:
            return _LOADED[key]
        if not path.is_file():
            raise MethodError(f"Plugin '{spec}' (from {origin}) not found: no file {path}. Give the path of a "
                              "Python file that registers a method with hsisr_bench.registry.register_method, "
                              "or an importable module name.")
        if path.suffix != ".py":
            raise MethodError(f"Plugin '{spec}' (from {origin}) is not a .py file; give a Python file or a module "
                              "name.")
        existing = _already_imported(path)
        if existing is not None:
            # Imported already by another route (a module name, or the user's own import).
            record = LoadedPlugin(key, f"plugin {path}", existing, ())
            _LOADED[key] = record
            return record
        source = f"plugin {path}"
        module_name = _module_name_for(path)

        def importer():
            module_spec = importlib.util.spec_from_file_location(module_name, path)
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[module_name] = module  # dataclasses and pickling look the module up here
            try:
                module_spec.loader.exec_module(module)
            except BaseException:
                sys.modules.pop(module_name, None)
                raise
            return module

        _, added = _run_import(f"Plugin {path} (from {origin})", source, importer, str(path))
        record = LoadedPlugin(key, source, module_name, added)
    else:
        key = spec
        if key in _LOADED:
            return _LOADED[key]
        what = f"Plugin module '{spec}' (from {origin})"
        try:
            found = importlib.util.find_spec(spec)  # imports the parent packages of a dotted name
        except (ImportError, ValueError):
            found = None
        except Exception as error:  # noqa: BLE001 - a parent package that fails to import
            raise _describe_failure(error, what, None) from error
        if found is None:
            raise MethodError(f"{what} not found on the Python path. Give a file path ending in .py (e.g. "
                              f"./{spec.replace('.', '/')}.py), or install the package that provides it.")
        same_file = str(Path(found.origin).resolve()) if found.origin else None
        if same_file in _LOADED:
            _LOADED[key] = _LOADED[same_file]  # the same file, loaded by path before
            return _LOADED[key]
        source = f"plugin {spec}"
        _, added = _run_import(what, source, lambda: importlib.import_module(spec), found.origin)
        record = LoadedPlugin(key, source, spec, added)
    _LOADED[key] = record
    return record


def load_plugins(specs: Iterable[str], *, origin: str = "--plugin") -> list[LoadedPlugin]:
    """Load several plugins in order (see :func:`load_plugin`); stops at the first that fails."""
    return [load_plugin(spec, origin=origin) for spec in specs]


def env_plugins(value: Optional[str] = None) -> list[str]:
    """The plugin names in ``HSIBENCH_PLUGINS`` (or ``value``), split on ``os.pathsep`` and commas."""
    text = os.environ.get(ENV_VAR, "") if value is None else value
    return [part.strip() for part in re.split(f"[{re.escape(os.pathsep)},]", text) if part.strip()]


def _entry_points(group: str) -> Sequence[importlib.metadata.EntryPoint]:
    return list(importlib.metadata.entry_points(group=group))


def _distribution(entry_point: importlib.metadata.EntryPoint) -> str:
    dist = getattr(entry_point, "dist", None)
    if dist is None:
        return "unknown distribution"
    return f"{dist.name} {dist.version}"


def load_entry_points(groups: Sequence[str] = (METHOD_GROUP, DATASET_GROUP)) -> list[LoadedPlugin]:
    """Load every installed entry point of ``groups`` (importing its module registers what it holds).

    Returns:
        The :class:`LoadedPlugin` of each entry point (already loaded ones included).

    Raises:
        MethodError: an entry point's module fails to import or to register, naming the entry
            point and its distribution.
    """
    registry._load_builtin_methods_only()
    records = []
    for group in groups:
        for entry_point in _entry_points(group):
            key = f"{group}:{entry_point.name}:{entry_point.value}"
            if key in _LOADED:
                records.append(_LOADED[key])
                continue
            source = f"entry point {entry_point.name} ({_distribution(entry_point)})"
            module_name = entry_point.value.split(":")[0].strip()
            try:
                found = importlib.util.find_spec(module_name) if module_name else None
            except Exception:  # noqa: BLE001 - only for the line number; the load below reports the error
                found = None
            _, added = _run_import(f"Entry point '{entry_point.name} = {entry_point.value}' of group {group} "
                                   f"({_distribution(entry_point)})", source, entry_point.load,
                                   getattr(found, "origin", None))
            _LOADED[key] = LoadedPlugin(key, source, module_name, added)
            records.append(_LOADED[key])
    return records


def load_environment_plugins() -> list[LoadedPlugin]:
    """Load the plugins of ``HSIBENCH_PLUGINS``, then the installed entry points (idempotent).

    Raises:
        MethodError: see :func:`load_plugin` and :func:`load_entry_points`.
    """
    records = load_plugins(env_plugins(), origin=ENV_VAR)
    return records + load_entry_points()


def _plugin_callback(ctx: click.Context, param: click.Parameter, value: Sequence[str]) -> tuple[str, ...]:
    load_environment_plugins()
    load_plugins(value, origin="--plugin")
    return tuple(value)


def plugin_option(func: Callable) -> Callable:
    """Click decorator: add ``--plugin MODULE_OR_FILE.py`` (repeatable) and load the plugins first.

    The option is eager and not passed to the command: by the time the command's other options
    are checked (``--methods mine``) and its body runs, the environment's plugins, the entry points
    and every ``--plugin`` are registered. Errors surface as ``Error: ...`` with exit code 2.
    """
    return click.option(
        "--plugin", "plugins", multiple=True, metavar="MODULE_OR_FILE.py", expose_value=False, is_eager=True,
        callback=_plugin_callback,
        help=f"A Python file or module that registers methods (repeatable); also ${ENV_VAR} and the "
             f"'{METHOD_GROUP}' entry points.",
    )(func)
