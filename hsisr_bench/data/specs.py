"""Dataset specs: what each dataset is, the built-in ones, and :func:`register_dataset` for a lab's own.

A :class:`DatasetSpec` says how many bands a dataset has, how its raw values are normalised, where its
folder lives under the data root, how its scenes are found in that folder (one folder per scene, one
file per scene, or a custom ``discover`` callable) and which reader loads a scene (a reader name of
:func:`hsisr_bench.data.readers.load_scene`, or any callable ``reader(path) -> Scene``).

Built-in datasets: ``cave`` (all 32 CAVE scenes), ``cave31`` (the paper's 31: CAVE without
``watercolors_ms``), ``harvard``, ``foster``, ``synthetic`` and ``generic``. A plugin module adds its own
with :func:`register_dataset` at import time; ``open_dataset``, ``hsibench list`` and ``hsibench data
check`` then know it by name, like the built-in ones.
"""

from __future__ import annotations

import dataclasses
import re
import sys
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence, Union

import numpy as np

from hsisr_bench.data import readers
from hsisr_bench.data.scene import Scene
from hsisr_bench.errors import ConfigError, did_you_mean

#: A reader: a :func:`~hsisr_bench.data.readers.load_scene` reader name, or a callable ``reader(path) -> Scene``.
Reader = Union[str, Callable[..., Scene]]

#: Generator defaults of the in-memory synthetic dataset (``make_synthetic_scenes``).
SYNTHETIC_DEFAULTS = {"n_scenes": 12, "size": 128, "bands": 31, "seed": 0}

#: Harvard's two archives unpack to these sub-folders (50 daylight + 27 indoor scenes).
HARVARD_SUBFOLDERS = ("cz_hsdb", "cz_hsdbi")

#: The CAVE scene whose bands are 8-bit RGBA (R = G = B) images; the paper's 31-scene CAVE omits it.
CAVE_RGBA_SCENE = "watercolors_ms"

# A dataset name becomes a folder name of every run (results/<dataset>/...): keep it path-safe.
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


@dataclasses.dataclass(frozen=True, eq=False)
class DatasetSpec:
    """What a dataset is: its bands, wavelengths, normalisation and the files it expects.

    Attributes:
        name: the key in :data:`DATASETS` (``cave``, ``harvard``, ...), lower case.
        title: a human-readable title with its reference.
        bands: number of bands, or ``None`` when it varies (generic).
        wavelengths: ``(bands,)`` band centres in nm, or ``None`` when unknown.
        normalisation: how raw values are mapped to [0, 1] (text, for reports).
        layout: the expected files under the data root (text, used in error messages).
        folder_names: names of the dataset's folder under the data root (matched in any case).
        reader: the :func:`~hsisr_bench.data.readers.load_scene` reader name for its scenes, or a
            callable ``reader(path, **options) -> Scene``.
        suffixes: scenes are files with one of these suffixes (the stem is the scene name).
        scene_folders: scenes are sub-folders of the dataset folder (the folder name is the scene name);
            with the ``cave`` reader only folders that look like CAVE scenes count.
        subfolders: sub-folders (any case) of the dataset folder also searched for scene files.
        exclude: scene names left out of the dataset even when present (``cave31``: ``watercolors_ms``).
        discover: a callable ``discover(folder) -> {scene name: path}`` used instead of the rules above.
        check: a cheap pre-flight check ``check(path)`` of one scene (raise ``DataError`` when broken);
            ``None`` uses the reader's own header checks (built-in readers) or an existence check.
        origin: where the spec was registered: ``built-in`` or the registering module.
    """

    name: str
    title: str
    bands: Optional[int]
    wavelengths: Optional[np.ndarray]
    normalisation: str
    layout: str
    folder_names: tuple[str, ...] = ()
    reader: Reader = "generic"
    suffixes: tuple[str, ...] = ()
    scene_folders: bool = False
    subfolders: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    discover: Optional[Callable[[Path], Mapping[str, Path]]] = None
    check: Optional[Callable[[Path], None]] = None
    origin: str = "built-in"

    @property
    def reader_name(self) -> str:
        """The reader's name for messages: the built-in reader's name, or the callable's qualified name."""
        if isinstance(self.reader, str):
            return self.reader
        return f"{getattr(self.reader, '__module__', '?')}.{getattr(self.reader, '__qualname__', repr(self.reader))}"


def _synthetic_spec() -> DatasetSpec:
    from hsisr_bench.data.synthetic import MANIFEST_NAME, synthetic_wavelengths

    return DatasetSpec(
        name="synthetic",
        title="Synthetic procedural scenes (hsisr_bench.data.synthetic)",
        bands=SYNTHETIC_DEFAULTS["bands"],
        wavelengths=synthetic_wavelengths(SYNTHETIC_DEFAULTS["bands"]),
        normalisation="none (generated in [0, 1])",
        layout=(f"none needed (generated in memory); or a folder written by `hsibench data synth`: "
                f"<data-root>/synthetic/{MANIFEST_NAME} plus one <scene>.npy (L, H, W) float32 per scene"),
        folder_names=("synthetic",),
        reader="synthetic",
        suffixes=(".npy",),
    )


_CAVE_LAYOUT = ("<data-root>/CAVE/<scene>_ms/<scene>_ms/<scene>_ms_01.png ... _31.png (official nested "
                "layout) or <data-root>/CAVE/<scene>_ms/<scene>_ms_01.png ... _31.png (flat)")

#: Every dataset the toolkit knows, by name (built-in ones, then those added by :func:`register_dataset`).
DATASETS: dict[str, DatasetSpec] = {
    "cave": DatasetSpec(
        name="cave",
        title="CAVE multispectral, all 32 scenes (Yasuma et al. 2010)",
        bands=readers.CAVE_BANDS,
        wavelengths=readers.CAVE_WAVELENGTHS,
        normalisation="÷ 65535 (16-bit PNG); ÷ 255 for 8-bit bands (watercolors_ms)",
        layout=_CAVE_LAYOUT,
        folder_names=("CAVE", "complete_ms_data"),
        reader="cave",
        scene_folders=True,
    ),
    "cave31": DatasetSpec(
        name="cave31",
        title=f"CAVE multispectral, the paper's 31 scenes (all but {CAVE_RGBA_SCENE}; Yasuma et al. 2010)",
        bands=readers.CAVE_BANDS,
        wavelengths=readers.CAVE_WAVELENGTHS,
        normalisation="÷ 65535 (16-bit PNG)",
        layout=_CAVE_LAYOUT + f"; the same folder as cave, {CAVE_RGBA_SCENE} is left out",
        folder_names=("CAVE", "complete_ms_data"),
        reader="cave",
        scene_folders=True,
        exclude=(CAVE_RGBA_SCENE,),
    ),
    "harvard": DatasetSpec(
        name="harvard",
        title="Harvard real-world HSIs (Chakrabarti & Zickler 2011)",
        bands=len(readers.HARVARD_WAVELENGTHS),
        wavelengths=readers.HARVARD_WAVELENGTHS,
        normalisation="÷ max of the whole image",
        layout=("<data-root>/Harvard/<scene>.mat (MATLAB, variable ref H x W x 31 and mask lbl), directly "
                "or in the archives' sub-folders CZ_hsdb/ and CZ_hsdbi/"),
        folder_names=("Harvard",),
        reader="harvard",
        suffixes=(".mat",),
        subfolders=HARVARD_SUBFOLDERS,
    ),
    "foster": DatasetSpec(
        name="foster",
        title="Foster 2015 local-illumination HSIs (Nascimento, Amano & Foster 2016)",
        bands=len(readers.FOSTER_WAVELENGTHS),
        wavelengths=readers.FOSTER_WAVELENGTHS,
        normalisation="÷ max of the whole image",
        layout="<data-root>/Foster/<scene>.mat (MATLAB v5 or v7.3, variable hsi H x W x 33)",
        folder_names=("Foster", "Foster2015"),
        reader="foster",
        suffixes=(".mat",),
    ),
    "synthetic": _synthetic_spec(),
    "generic": DatasetSpec(
        name="generic",
        title="Any folder of cubes (.mat, .h5/.hdf5, .npy)",
        bands=None,
        wavelengths=None,
        normalisation="÷ max when values exceed 1, else kept (reader option normalise=)",
        layout="<data-root>/<scene>.mat | .h5 | .hdf5 | .npy, one cube per file (the data root itself)",
        folder_names=(),
        reader="generic",
        suffixes=readers.GENERIC_SUFFIXES,
    ),
}

_BUILT_IN = frozenset(DATASETS)


def get_dataset_spec(name: str) -> DatasetSpec:
    """Return the spec of a dataset by name (any case).

    Raises:
        ConfigError: unknown name, with a did-you-mean hint.
    """
    key = str(name).lower()
    if key not in DATASETS:
        close = did_you_mean(key, DATASETS)
        raise ConfigError(f"unknown dataset {name!r} (--dataset). {close}")
    return DATASETS[key]


def register_dataset(name: str, *, reader: Reader, title: Optional[str] = None, bands: Optional[int] = None,
                     wavelengths: Optional[Sequence[float]] = None, normalisation: str = "",
                     layout: str = "", folder_names: Optional[Sequence[str]] = None,
                     suffixes: Sequence[str] = (), scene_folders: bool = False,
                     subfolders: Sequence[str] = (), exclude: Sequence[str] = (),
                     discover: Optional[Callable[[Path], Mapping[str, Path]]] = None,
                     check: Optional[Callable[[Path], None]] = None,
                     origin: Optional[str] = None) -> DatasetSpec:
    """Add a dataset (a lab's own sensor, say) so every command knows it by name.

    A plugin module calls this at import time; ``open_dataset(name)``, ``--dataset name``, ``hsibench
    list`` and ``hsibench data check`` then treat it like a built-in dataset. Example::

        def read_mine(path):                      # one scene file -> Scene, cube (L, H, W) in [0, 1]
            cube = np.load(path).astype(np.float32) / 4095
            return Scene(name=path.stem, cube=cube, dataset="mine")

        register_dataset("mine", reader=read_mine, suffixes=(".npy",), bands=64)

    Args:
        name: the dataset name (stored lower case; letters, digits, ``_``, ``-``, ``.``); must be new.
        reader: a built-in reader name (``cave``, ``harvard``, ``foster``, ``generic``) or a callable
            ``reader(path, **options) -> Scene`` (``options`` are the dataset's reader options, usually
            none); the scene's name is set to the discovered one.
        title: a human-readable title (default: the name).
        bands: number of bands, if fixed (``hsibench data check`` then checks it).
        wavelengths: band centres in nm, one per band.
        normalisation: how raw values are mapped to [0, 1] (text, for listings and reports).
        layout: the expected files (text for error messages; default: described from the rules below).
        folder_names: the dataset's folder under the data root, any case (default: ``(name,)``); the data
            root itself is searched too.
        suffixes: scenes are files with these suffixes (e.g. ``(".mat",)``).
        scene_folders: scenes are sub-folders instead.
        subfolders: sub-folders of the dataset folder also searched for scene files.
        exclude: scene names to leave out.
        discover: ``discover(folder) -> {scene name: path}`` instead of ``suffixes``/``scene_folders``.
        check: cheap pre-flight check of one scene path (raise ``DataError`` when broken).
        origin: where it comes from, for listings and errors (default: the calling module's name).

    Returns:
        The registered :class:`DatasetSpec`.

    Raises:
        ConfigError: a name that is taken (the message names both registrations) or not path-safe,
            an unknown reader name, no way to find scenes, or wavelengths that do not match ``bands``.
    """
    if origin is None:
        origin = sys._getframe(1).f_globals.get("__name__", "?")  # the plugin module that registers it
    key = str(name).lower()
    where = f"register_dataset({name!r}) from {origin}"
    if not _NAME.match(key):
        raise ConfigError(f"{where}: the name must be letters, digits, '_', '-' or '.' (it names the "
                          "results folder); choose another.")
    if key in DATASETS:
        taken = DATASETS[key]
        raise ConfigError(f"{where}: dataset {key!r} is already registered by {taken.origin} "
                          f"({taken.title}); choose another name for the dataset of {origin}.")
    if isinstance(reader, str):
        reader = reader.lower()
        if reader not in readers.READERS or reader == "synthetic":
            choices = [r for r in readers.READERS if r != "synthetic"]
            raise ConfigError(f"{where}: unknown reader {reader!r}. {did_you_mean(reader, choices)} "
                              "Or pass a callable reader(path) -> Scene.")
        if not (suffixes or scene_folders or discover):
            # A built-in reader says what a scene is: a CAVE folder, or a file of that format.
            scene_folders = reader == "cave"
            suffixes = () if scene_folders else ((".mat",) if reader in ("harvard", "foster")
                                                 else readers.GENERIC_SUFFIXES)
    elif not callable(reader):
        raise ConfigError(f"{where}: reader must be a reader name or a callable reader(path) -> Scene; "
                          f"got {reader!r}.")
    if not (suffixes or scene_folders or discover):
        raise ConfigError(f"{where}: say how to find the scenes: suffixes=('.mat',) (one file per scene), "
                          "scene_folders=True (one folder per scene) or discover=callable.")
    suffixes = tuple(s.lower() if s.startswith(".") else f".{s.lower()}" for s in suffixes)
    array = None
    if wavelengths is not None:
        array = np.asarray(wavelengths, dtype=np.float64).ravel()
        array.setflags(write=False)
        if bands is not None and len(array) != bands:
            raise ConfigError(f"{where}: {len(array)} wavelengths for {bands} bands.")
        bands = len(array) if bands is None else bands
    folders = tuple(folder_names) if folder_names is not None else (key,)
    if not layout:
        what = (", ".join(f"<scene>{s}" for s in suffixes) + " (one file per scene)" if suffixes
                else "<scene>/ (one folder per scene)" if scene_folders else "as its discover() finds them")
        layout = f"<data-root>/{folders[0] if folders else ''}/{what}".replace("//", "/")
    spec = DatasetSpec(name=key, title=title or key, bands=bands, wavelengths=array,
                       normalisation=normalisation or "(the reader's own)", layout=layout,
                       folder_names=folders, reader=reader, suffixes=suffixes, scene_folders=scene_folders,
                       subfolders=tuple(subfolders), exclude=tuple(exclude), discover=discover, check=check,
                       origin=origin)
    DATASETS[key] = spec
    return spec


def unregister_dataset(name: str) -> None:
    """Remove a dataset added by :func:`register_dataset` (built-in ones stay).

    Raises:
        ConfigError: a built-in or unknown name.
    """
    key = str(name).lower()
    if key in _BUILT_IN:
        raise ConfigError(f"dataset {key!r} is built in; it cannot be unregistered.")
    if key not in DATASETS:
        raise ConfigError(f"dataset {name!r} is not registered. {did_you_mean(key, DATASETS)}")
    del DATASETS[key]
