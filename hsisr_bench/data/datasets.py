"""Dataset specs and scene discovery: where each dataset's scenes live and how to load them by name.

A *data root* holds one folder per dataset (``CAVE/``, ``Harvard/``, ``Foster/``; the case of the name
does not matter), or is itself the folder of one dataset. It is ``--data-root`` (the ``data_root``
argument), else ``$HSIBENCH_DATA``, else ``./data``. ``synthetic`` needs no root: its scenes are
generated in memory, unless a folder written by ``hsibench data synth`` is found there.

The specs (``DATASETS``, :func:`get_dataset_spec`, :func:`register_dataset` for a lab's own dataset) live
in :mod:`hsisr_bench.data.specs` and the header-only checks (:func:`preflight`) in
:mod:`hsisr_bench.data.preflight`; both are importable from here.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import os
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np

from hsisr_bench.data import readers
from hsisr_bench.data.preflight import preflight  # noqa: F401  (re-exported)
from hsisr_bench.data.scene import Scene
from hsisr_bench.data.specs import (  # noqa: F401  (re-exported: the public names of this module)
    DATASETS, SYNTHETIC_DEFAULTS, DatasetSpec, get_dataset_spec, register_dataset, unregister_dataset,
)
from hsisr_bench.errors import ConfigError, DataError, did_you_mean

PathLike = Union[str, os.PathLike]

#: The environment variable that names the data root when ``--data-root`` is not given.
DATA_ROOT_ENV = "HSIBENCH_DATA"
#: The data root used when neither ``--data-root`` nor ``$HSIBENCH_DATA`` is given (relative to the cwd).
DEFAULT_DATA_ROOT = "data"

#: Arguments of ``make_synthetic_scenes`` that ``open_dataset("synthetic", ...)`` accepts as options.
SYNTHETIC_ARGUMENTS = ("n_scenes", "size", "bands", "seed")
_SYNTHETIC_DEFAULTS = SYNTHETIC_DEFAULTS


class Dataset:
    """The scenes of one dataset: their sorted names, and loading one by name.

    Attributes:
        spec: the :class:`DatasetSpec`.
        root: the folder the scenes were found in, or ``None`` for scenes generated in memory.
        scene_names: sorted scene names.
    """

    def __init__(self, spec: DatasetSpec, root: Optional[Path], *,
                 sources: Optional[dict[str, Path]] = None, scenes: Optional[Sequence[Scene]] = None,
                 reader_options: Optional[dict[str, Any]] = None) -> None:
        self.spec = spec
        self.root = root
        self._sources = dict(sources or {})
        self._scenes = {scene.name: scene for scene in scenes or ()}
        self._reader_options = dict(reader_options or {})
        # Scene names become file names (predictions/<scene>.npy, an export's <scene>.mat): check them
        # once here, whatever found them (a folder listing, a manifest, a plugin's discover).
        for name, path in self._sources.items():
            check_scene_name(name, f"dataset {spec.name!r}: the scene file {path}")
        for name in self._scenes:
            check_scene_name(name, f"dataset {spec.name!r}: a generated scene")
        self.scene_names: list[str] = sorted(set(self._sources) | set(self._scenes))

    @property
    def name(self) -> str:
        """The dataset name (``cave``, ``harvard``, ...)."""
        return self.spec.name

    def __len__(self) -> int:
        return len(self.scene_names)

    def __repr__(self) -> str:
        where = self.root if self.root is not None else "in memory"
        return f"Dataset({self.name!r}, {len(self)} scenes, {where})"

    def source(self, scene_name: str) -> Optional[Path]:
        """The file or folder a scene is read from (``None`` for a generated scene)."""
        self._check_name(scene_name)
        return self._sources.get(scene_name)

    def load(self, scene_name: str) -> Scene:
        """Load one scene by name.

        Args:
            scene_name: one of :attr:`scene_names`.

        Returns:
            The :class:`Scene` (a fresh copy for generated scenes, so callers may modify it).

        Raises:
            DataError: unknown scene name, or the scene's files are unusable (see ``load_scene``).
        """
        self._check_name(scene_name)
        if scene_name in self._scenes:
            scene = self._scenes[scene_name]
            extras = {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in scene.extras.items()}
            wavelengths = None if scene.wavelengths is None else scene.wavelengths.copy()
            return dataclasses.replace(scene, cube=scene.cube.copy(), wavelengths=wavelengths,
                                       extras=extras)
        source = self._sources[scene_name]
        if isinstance(self.spec.reader, str):
            return readers.load_scene(source, self.spec.reader, **self._reader_options)
        return _call_reader(self.spec, source, scene_name, self._reader_options)

    def load_all(self) -> list[Scene]:
        """Load every scene, in :attr:`scene_names` order."""
        return [self.load(name) for name in self.scene_names]

    def preflight(self, names: Optional[Sequence[str]] = None) -> None:
        """Check the named scenes (default: all) from file lists and headers, without decoding them.

        See :func:`hsisr_bench.data.preflight.preflight`.

        Raises:
            DataError: one error listing every broken scene and what is wrong with it.
        """
        preflight(self, names)

    def _check_name(self, scene_name: str) -> None:
        if scene_name not in self._sources and scene_name not in self._scenes:
            where = self.root if self.root is not None else "memory"
            raise DataError(f"dataset {self.name!r} ({where}) has no scene {scene_name!r}. "
                            f"{did_you_mean(scene_name, self.scene_names)}")


def is_safe_scene_name(name: object) -> bool:
    """True when ``name`` can name a file in any folder: a non-empty string of letters, digits, ``-``,
    ``_``, ``+``, ``.`` and inner spaces, not starting with ``.`` (so never ``..``, a hidden file or a path)."""
    return (isinstance(name, str) and bool(name) and not name.startswith(".") and name == name.strip()
            and all(ch.isalnum() or ch in "-_+. " for ch in name))


def check_scene_name(name: object, where: str) -> str:
    """Return ``name`` when it is a safe scene name (:func:`is_safe_scene_name`), else raise.

    Scene names are joined into paths of the results store and of exports, so a name such as
    ``../../x`` would write outside them.

    Args:
        name: the scene name.
        where: what gave the name (a manifest, a file), for the message.

    Raises:
        DataError: naming ``where``, the name and the allowed characters.
    """
    if not is_safe_scene_name(name):
        raise DataError(f"{where}: scene name {name!r} is not a plain file name (allowed: letters, digits, "
                        f"'-', '_', '+', '.', inner spaces; not starting with '.'), and scene names become file names of the "
                        f"results. Rename the scene (its file, or its entry in the manifest).")
    return name  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------------
# Data root
# --------------------------------------------------------------------------------------------------


def resolve_data_root(data_root: Optional[PathLike] = None) -> Path:
    """Return the data root: ``data_root`` if given, else ``$HSIBENCH_DATA``, else ``./data``.

    Args:
        data_root: the ``--data-root`` value, or ``None``.

    Returns:
        The path (``~`` expanded; the default is absolute, under the current directory). It is not
        checked for existence here; :func:`open_dataset` does that and says where it looked.
    """
    if data_root is not None and str(data_root) != "":
        return Path(data_root).expanduser()
    env = os.environ.get(DATA_ROOT_ENV, "")
    if env:
        return Path(env).expanduser()
    return Path.cwd() / DEFAULT_DATA_ROOT


def _root_origin(data_root: Optional[PathLike]) -> str:
    """Where the data root came from, for error messages."""
    if data_root is not None and str(data_root) != "":
        return "from --data-root"
    if os.environ.get(DATA_ROOT_ENV, ""):
        return f"from ${DATA_ROOT_ENV}"
    return f"the default ./{DEFAULT_DATA_ROOT}, as neither --data-root nor ${DATA_ROOT_ENV} is set"


def _how_to_set_root() -> str:
    return (f"Point the toolkit at the folder holding the data with --data-root PATH or the "
            f"{DATA_ROOT_ENV} environment variable.")


# --------------------------------------------------------------------------------------------------
# Scene discovery
# --------------------------------------------------------------------------------------------------


def _visible_children(folder: Path) -> list[Path]:
    """Entries of ``folder`` in name order, hidden ones (``.x``, macOS ``._x``) left out."""
    try:
        return sorted(entry for entry in folder.iterdir() if not entry.name.startswith("."))
    except OSError as error:
        raise DataError(f"cannot list the folder {folder}: {error}. Check its permissions.") from error


def _children_named(folder: Path, names: Sequence[str]) -> list[Path]:
    """Sub-folders of ``folder`` whose name equals one of ``names`` in any case (exact case first)."""
    wanted = {name.lower() for name in names}
    matches = [c for c in _visible_children(folder) if c.is_dir() and c.name.lower() in wanted]
    return sorted(matches, key=lambda c: (c.name not in names, c.name))


def _has_png(folder: Path) -> bool:
    return any(c.is_file() and c.suffix.lower() == ".png" for c in _visible_children(folder))


def _is_cave_scene_folder(folder: Path) -> bool:
    """A CAVE scene folder holds PNGs directly or in a sub-folder, or is named like one (``*_ms``)."""
    if folder.name.lower().endswith("_ms") or _has_png(folder):
        return True
    return any(c.is_dir() and _has_png(c) for c in _visible_children(folder))


def _files_with_suffix(folder: Path, suffixes: Sequence[str]) -> list[Path]:
    return [c for c in _visible_children(folder) if c.is_file() and c.suffix.lower() in suffixes]


def _by_stem(files: list[Path], folder: Path) -> dict[str, Path]:
    """Map each file's stem (the scene name) to it; two files with one stem is an error."""
    found: dict[str, Path] = {}
    for file in files:
        if file.stem in found:
            raise DataError(f"{folder}: two files for scene {file.stem!r} ({found[file.stem]} and {file}). "
                            "Keep one of them.")
        found[file.stem] = file
    return found


def discover_scenes(spec: DatasetSpec, folder: Path) -> dict[str, Path]:
    """Find the scenes of a dataset in its folder.

    Hidden entries (``.x``, and the macOS ``._x`` metadata files) are never scenes. The spec says
    what a scene is: ``discover`` (a callable), else one sub-folder per scene (``scene_folders``; with
    the ``cave`` reader only folders that look like CAVE scenes), else one file per scene (``suffixes``,
    also searched in ``subfolders``). Names in ``spec.exclude`` are left out.

    Args:
        spec: the dataset.
        folder: the dataset's folder (e.g. ``<data-root>/CAVE``).

    Returns:
        Scene name -> the folder (CAVE) or file it is read from. Unusable scenes are included (a CAVE
        folder with missing bands, a corrupt file): loading them raises, so they are reported, not
        silently skipped.

    Raises:
        DataError: two files claim the same scene name, a folder cannot be listed, or a ``discover``
            callable fails or returns something other than ``{name: path}``.
        ConfigError: the spec gives no way to find scenes.
    """
    if spec.discover is not None:
        found = _call_discover(spec, folder)
    elif spec.scene_folders:
        is_scene = _is_cave_scene_folder if spec.reader == "cave" else (lambda _folder: True)
        found = {c.name: c for c in _visible_children(folder) if c.is_dir() and is_scene(c)}
    elif spec.suffixes:
        files = _files_with_suffix(folder, spec.suffixes)
        for sub in _children_named(folder, spec.subfolders):
            files += _files_with_suffix(sub, spec.suffixes)
        found = _by_stem(files, folder)
    else:
        raise ConfigError(f"dataset {spec.name!r} has no folder to discover scenes in.")
    return {name: path for name, path in found.items() if name not in spec.exclude}


def _call_discover(spec: DatasetSpec, folder: Path) -> dict[str, Path]:
    """Run a registered dataset's ``discover`` callable and check what it returns."""
    assert spec.discover is not None
    try:
        found = spec.discover(folder)
    except DataError:
        raise
    except Exception as error:  # a plugin's bug: say whose, keep the cause
        raise DataError(f"dataset {spec.name!r} (registered by {spec.origin}): its discover({folder}) "
                        f"failed: {type(error).__name__}: {error}. Fix the plugin.") from error
    if not isinstance(found, Mapping) or not all(isinstance(k, str) and isinstance(v, (str, os.PathLike))
                                                 for k, v in found.items()):
        raise DataError(f"dataset {spec.name!r} (registered by {spec.origin}): discover({folder}) must return "
                        f"a dict of scene name -> path; got {type(found).__name__}. Fix the plugin.")
    return {name: Path(path) for name, path in found.items() if not name.startswith(".")}


def _call_reader(spec: DatasetSpec, source: Path, scene_name: str, options: dict[str, Any]) -> Scene:
    """Load one scene with a registered dataset's reader callable and check the result."""
    owner = f"dataset {spec.name!r} (registered by {spec.origin})"
    scene = spec.reader(source, **options)  # type: ignore[operator]  # a callable: see DatasetSpec.reader
    if not isinstance(scene, Scene):
        raise DataError(f"{owner}: its reader {spec.reader_name} returned {type(scene).__name__} for "
                        f"{source}; it must return a hsisr_bench.data.Scene. Fix the plugin.")
    cube = scene.cube
    if not isinstance(cube, np.ndarray) or cube.ndim != 3:
        raise DataError(f"{owner}: its reader {spec.reader_name} returned a cube of shape "
                        f"{np.shape(cube)} for {source}; expected (L, H, W). Fix the plugin.")
    if cube.dtype != np.float32 or not cube.flags.c_contiguous:
        cube = np.ascontiguousarray(cube, dtype=np.float32)
    # The split works by the discovered names: keep the scene's name and dataset consistent with it.
    return dataclasses.replace(scene, name=scene_name, cube=cube, dataset=scene.dataset or spec.name,
                               source=scene.source or source)


def _check_callable_options(spec: DatasetSpec, options: dict[str, Any]) -> None:
    """Raise ConfigError when a registered reader callable does not take the given options."""
    if not options:
        return
    try:
        inspect.signature(spec.reader).bind(Path("."), **options)  # type: ignore[arg-type]
    except TypeError as error:
        raise ConfigError(f"option(s) {', '.join(sorted(options))} do not apply to dataset {spec.name!r}: "
                          f"its reader {spec.reader_name} (registered by {spec.origin}) says: {error}.") from None
    except ValueError:  # no signature (a builtin): let the call decide
        pass


def _find_dataset_folder(spec: DatasetSpec, root: Path, origin: str) -> tuple[Path, dict[str, Path]]:
    """The dataset's folder under ``root`` (a named sub-folder, else ``root`` itself) and its scenes."""
    if not root.is_dir():
        state = "is not a folder" if root.exists() else "does not exist"
        raise DataError(f"data root {root.absolute()} ({origin}) {state}. Expected {spec.title} as "
                        f"{spec.layout}. {_how_to_set_root()}")
    looked = []
    for folder in _children_named(root, spec.folder_names):
        scenes = discover_scenes(spec, folder)
        if scenes:
            return folder, scenes
        looked.append(f"{folder.absolute()} (no scenes)")
    present = {folder.name.lower() for folder in _children_named(root, spec.folder_names)}
    looked += [f"{(root / name).absolute()} (not found)" for name in spec.folder_names
               if name.lower() not in present]
    scenes = discover_scenes(spec, root)
    if scenes:
        return root, scenes
    looked.append(f"{root.absolute()} itself (no scenes)")
    raise DataError(f"no {spec.name} scenes found under the data root {root.absolute()} ({origin}). Looked "
                    f"in: {'; '.join(looked)}. Expected layout: {spec.layout}. {_how_to_set_root()}")


# --------------------------------------------------------------------------------------------------
# Synthetic
# --------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=2)
def _generated_scenes(n_scenes: int, size: int, bands: int, seed: int) -> tuple[Scene, ...]:
    """The in-memory synthetic scenes, generated once per argument set and shared by every open."""
    from hsisr_bench.data.synthetic import make_synthetic_scenes

    return tuple(make_synthetic_scenes(n_scenes=n_scenes, size=size, bands=bands, seed=seed))


def _find_synthetic_folder(root: Path) -> Optional[Path]:
    if root.is_dir():
        for folder in [root] + _children_named(root, ("synthetic",)):
            if readers.read_synthetic_manifest(folder) is not None:
                return folder
    return None


def _open_synthetic(spec: DatasetSpec, data_root: Optional[PathLike], options: dict[str, Any]) -> Dataset:
    generator = {k: options.pop(k) for k in SYNTHETIC_ARGUMENTS if k in options}
    root = resolve_data_root(data_root)
    folder = _find_synthetic_folder(root)
    explicit = data_root is not None and str(data_root) != ""
    if folder is None and explicit:
        from hsisr_bench.data.synthetic import MANIFEST_NAME

        raise DataError(
            f"no synthetic dataset under {root.absolute()} (from --data-root): looked for "
            f"{root / MANIFEST_NAME} and {root / 'synthetic' / MANIFEST_NAME}. Write one with "
            "`hsibench data synth --out DIR`, or omit --data-root to generate the scenes in memory."
        )
    if folder is None:
        if options:
            raise ConfigError(f"option(s) {', '.join(sorted(options))} do not apply to the in-memory "
                              f"synthetic dataset. Valid: {', '.join(SYNTHETIC_ARGUMENTS)}.")
        arguments = {**_SYNTHETIC_DEFAULTS, **generator}
        scenes = _generated_scenes(*(arguments[k] for k in SYNTHETIC_ARGUMENTS))
        return Dataset(spec, None, scenes=scenes)

    manifest = readers.read_synthetic_manifest(folder)
    assert manifest is not None
    from hsisr_bench.data.synthetic import MANIFEST_NAME

    where = folder / MANIFEST_NAME
    for name in manifest["scenes"]:
        check_scene_name(name, f"the synthetic dataset manifest {where}")
    stored = manifest.get("arguments", {})
    if not isinstance(stored, dict):
        raise DataError(f"{where}: 'arguments' is a {type(stored).__name__}, expected an object "
                        f"{{n_scenes, size, bands, seed}}. Write the folder again with `hsibench data synth --force`.")
    differ = {k: (v, stored.get(k)) for k, v in generator.items() if stored.get(k) != v}
    if differ:
        detail = ", ".join(f"{k}={v} (on disk {d})" for k, (v, d) in differ.items())
        raise DataError(f"the synthetic dataset in {folder} was generated with other arguments: {detail}. "
                        "Drop those options, or write a new folder with `hsibench data synth`.")
    readers.check_reader_options("synthetic", options)
    sources = {name: folder / f"{name}.npy" for name in manifest["scenes"]}
    missing = [str(path) for path in sources.values() if not path.is_file()]
    if missing:
        raise DataError(f"the synthetic dataset in {folder} lacks {len(missing)} scene file(s): "
                        f"{', '.join(missing)}. Write it again with `hsibench data synth --force`.")
    return Dataset(spec, folder, sources=sources, reader_options=options)


# --------------------------------------------------------------------------------------------------
# Public entry point
# --------------------------------------------------------------------------------------------------


def open_dataset(name: str, data_root: Optional[PathLike] = None, *, key: Optional[str] = None,
                 **options: Any) -> Dataset:
    """Find a dataset's scenes under the data root.

    Args:
        name: ``cave``, ``cave31``, ``harvard``, ``foster``, ``synthetic``, ``generic`` or a dataset added
            with :func:`register_dataset` (any case).
        data_root: the data root (``--data-root``); ``None`` uses ``$HSIBENCH_DATA``, else ``./data``.
            It may hold the dataset's folder (``CAVE/``, ``Harvard/``, ``Foster/``, any case) or be that
            folder itself; for ``generic`` it is the folder of cubes. ``synthetic`` is generated in
            memory unless the root holds a folder written by ``hsibench data synth`` (it must, when
            ``data_root`` is given).
        key: the variable holding the cube in each ``.mat``/``.h5`` file (``--set dataset.key=NAME``),
            for ``harvard`` (default ``ref``), ``foster`` (default ``hsi``) and ``generic``; ``None``
            keeps the dataset's own.
        **options: for ``synthetic`` in memory, the generator arguments ``n_scenes``, ``size``,
            ``bands``, ``seed``; otherwise reader options passed to the reader for every scene
            (e.g. ``min_bands``, and ``band_axis``, ``normalise`` for ``generic``).

    Returns:
        A :class:`Dataset`; scenes are read from disk only when loaded.

    Raises:
        ConfigError: unknown dataset name (with did-you-mean) or option (``key`` for a dataset
            without variables, such as CAVE).
        DataError: the data root or the dataset folder is missing or holds no scenes; the message
            lists every path looked at, the expected layout and how to set the data root.
    """
    spec = get_dataset_spec(name)
    options = dict(options)
    if key is not None:
        options["key"] = key
    if "name" in options:
        raise ConfigError("option 'name' renames one scene; it cannot apply to a whole dataset.")
    if spec.name == "synthetic":
        return _open_synthetic(spec, data_root, options)
    if isinstance(spec.reader, str):
        if "key" in options and "key" not in readers.reader_options(spec.reader):
            raise ConfigError(f"--set dataset.key={options['key']} does not apply to dataset {spec.name!r}: its "
                              f"scenes are not files of named variables. Drop the option.")
        readers.check_reader_options(spec.reader, options)
    else:
        _check_callable_options(spec, options)
    root = resolve_data_root(data_root)
    folder, sources = _find_dataset_folder(spec, root, _root_origin(data_root))
    return Dataset(spec, folder, sources=sources, reader_options=options)
