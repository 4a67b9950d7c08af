"""Seeded train/test split by scene, saved to and read from a JSON file (PROTOCOL.md section 2).

A split assigns whole scenes to training or testing: 80% of the scenes for training by default,
drawn by a seeded permutation of the sorted scene names, so the split depends only on the set of
names and the seed, never on the order a folder listing returns them in. Every method of a
benchmark uses the same split file; ``configs/splits/cave.json`` is the canonical CAVE split and
``configs/splits/cave31.json`` that of the paper's 31-scene CAVE set (``cave.json`` less ``watercolors_ms``).
A split file is a contract: :func:`split_for_dataset` never redraws it, and restricting it to the
scenes present is recorded in :attr:`Split.restriction`.

Split file format (JSON object)::

    {"dataset": "cave", "seed": 0, "train_fraction": 0.8,
     "train": ["balloons_ms", ...], "test": ["beads_ms", ...], "note": "..."}

``train``, ``test``, ``seed``, ``train_fraction`` and ``dataset`` are required (``seed``,
``train_fraction`` and ``dataset`` may be ``null`` for a hand-written list); ``note`` is optional.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Optional, Sequence, Union

import numpy as np

import hsisr_bench
from hsisr_bench.atomic import atomic_write
from hsisr_bench.errors import ConfigError, DataError

#: Keys a split file must hold, and the one it may hold.
REQUIRED_KEYS = ("dataset", "seed", "train_fraction", "train", "test")
OPTIONAL_KEYS = ("note",)


@dataclass(frozen=True)
class Split:
    """A train/test assignment of scene names.

    Attributes:
        train: training scene names, sorted.
        test: test scene names, sorted; disjoint from ``train``.
        seed: the seed of the permutation that drew the split (``None`` for a hand-written list).
        train_fraction: the fraction of scenes asked for training (``None`` for a hand-written list).
        dataset: the dataset the names belong to, if known.
        note: how this split was obtained when it is not the plain result of ``make_split``
            (restricted to the scenes present, computed, present scenes not used, ...); empty otherwise.
        restriction: ``None`` for a split used as its file states it; else a dict describing how it
            was restricted to the scenes present: ``source`` (the split file, or
            ``canonical split configs/splits/<name>.json``), ``missing`` (sorted absent scene names),
            ``train`` and ``test`` (the scenes kept, sorted), ``file_train`` and ``file_test`` (how
            many scenes the file has on each side) and, from :func:`split_for_dataset`, ``canonical``
            (whether the split is the dataset's canonical one). Not part of the file format (``to_dict``).
    """

    train: tuple[str, ...]
    test: tuple[str, ...]
    seed: Optional[int] = 0
    train_fraction: Optional[float] = 0.8
    dataset: Optional[str] = None
    note: str = ""
    # A dict is unhashable: leave it out of the hash (equal splits still compare it).
    restriction: Optional[dict] = field(default=None, hash=False)

    def __post_init__(self) -> None:
        # Normalise to sorted tuples so equal splits compare equal whatever the input order.
        object.__setattr__(self, "train", tuple(sorted(self.train)))
        object.__setattr__(self, "test", tuple(sorted(self.test)))
        overlap = set(self.train) & set(self.test)
        if overlap:
            raise DataError(f"A split cannot hold a scene on both sides; found in train and test: "
                            f"{', '.join(sorted(overlap))}. Remove each from one of the two lists.")

    @property
    def scenes(self) -> tuple[str, ...]:
        """All scene names of the split, sorted."""
        return tuple(sorted(self.train + self.test))

    def to_dict(self) -> dict:
        """Return the split as a JSON-ready dictionary (the file format)."""
        return {"dataset": self.dataset, "seed": self.seed, "train_fraction": self.train_fraction,
                "train": list(self.train), "test": list(self.test), "note": self.note}

    def to_json(self) -> str:
        """Return the split file text (indented JSON, one name per line, trailing newline)."""
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def save(self, path: Union[str, Path]) -> Path:
        """Write the split to ``path`` as JSON, atomically (temporary file, then rename).

        Args:
            path: the file to write; its folder is created if needed.

        Returns:
            The path written.
        """
        return atomic_write(path, lambda handle: handle.write(self.to_json().encode("utf-8")))

    def restrict(self, available_names: Iterable[str], *, source: Optional[str] = None) -> "Split":
        """Return this split limited to the scenes that are present, with the restriction recorded.

        Present scenes keep their assignment; nothing is ever redrawn, so no test scene can move to
        training. Present scenes this split does not name are not used (``note`` lists them). When
        scenes of the split are absent, the result's :attr:`restriction` describes what was dropped
        and ``note`` says so in one line.

        Args:
            available_names: the scene names present on disk.
            source: where the split came from (a file path), recorded in :attr:`restriction`.

        Returns:
            The restricted split (``self`` when every scene is present and none is unknown).

        Raises:
            DataError: when the restriction leaves no training scene or no test scene.
        """
        present = set(available_names)
        known = set(self.train) | set(self.test)
        unknown = sorted(present - known)
        notes = []
        if unknown:
            notes.append(f"{len(unknown)} present scene(s) not in the split are not used: {', '.join(unknown)}")
        missing = sorted(known - present)
        if not missing:
            if not unknown:
                return self
            return replace(self, note=_join_notes(self.note, *notes))
        train = tuple(name for name in self.train if name in present)
        test = tuple(name for name in self.test if name in present)
        where = source or "the split"
        if not train or not test:
            side = "training" if not train else "test"
            raise DataError(
                f"{where} names {len(known)} scenes; only {len(train) + len(test)} are present "
                f"({', '.join(sorted(train + test)) or 'none'}), and they leave no {side} scene. A split is "
                f"never redrawn behind your back (that would move scenes between training and test). Add "
                f"the missing scene folders ({_short_list(missing)}) to the data root, or write a split "
                f"file for the scenes you have (`hsibench data split --dataset {self.dataset or 'NAME'} "
                f"--data-root DIR --out FILE`) and pass it with --split-file FILE.")
        restriction = {"source": where, "missing": missing, "train": list(train), "test": list(test),
                       "file_train": len(self.train), "file_test": len(self.test)}
        restricted = replace(self, train=train, test=test, restriction=restriction)
        notes.insert(0, restricted.restriction_text())
        return replace(restricted, note=_join_notes(self.note, *notes))

    def restriction_text(self) -> str:
        """One line describing :attr:`restriction` for the run output (empty when not restricted)."""
        info = self.restriction
        if not info:
            return ""
        total = info["file_train"] + info["file_test"]
        return (f"split restricted to {len(info['train']) + len(info['test'])} of {total} scenes present "
                f"({len(info['train'])} train, {len(info['test'])} test; the split file has "
                f"{info['file_train']} train, {info['file_test']} test): {info['source']} names "
                f"{len(info['missing'])} absent scene(s): {', '.join(info['missing'])}")


def make_split(scene_names: Iterable[str], *, train_fraction: float = 0.8, seed: int = 0,
               dataset: Optional[str] = None) -> Split:
    """Draw a seeded train/test split of whole scenes.

    The names are sorted, then permuted by ``numpy.random.default_rng(seed)``; the first
    ``round(train_fraction * n)`` (rounding halves up; at least 1, at most n - 1) go to training.
    The result depends only on the set of names, the fraction and the seed.

    Args:
        scene_names: the scene names (any order, no duplicates).
        train_fraction: fraction of scenes used for training, strictly between 0 and 1.
        seed: seed of the permutation.
        dataset: the dataset name recorded in the split, if known.

    Returns:
        The ``Split``.

    Raises:
        DataError: on fewer than 2 scenes or duplicate names.
        ConfigError: on a fraction outside (0, 1) or a negative seed.
    """
    names = sorted(scene_names)
    if len(names) < 2:
        raise DataError(f"A split needs at least 2 scenes (1 to train, 1 to test); got {len(names)}"
                        f"{': ' + names[0] if names else ''}. Add scenes to the dataset folder.")
    duplicates = sorted(name for name, count in Counter(names).items() if count > 1)
    if duplicates:
        raise DataError(f"Scene names must be unique to split them; duplicated: {', '.join(duplicates)}.")
    if not isinstance(train_fraction, (int, float)) or not 0.0 < float(train_fraction) < 1.0:
        raise ConfigError(f"train_fraction must be strictly between 0 and 1, got {train_fraction!r}.")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ConfigError(f"The split seed must be an integer >= 0, got {seed!r}.")
    n = len(names)
    # Round half up (Python's round() rounds halves to even); keep at least one scene on each side.
    n_train = min(max(int(math.floor(train_fraction * n + 0.5)), 1), n - 1)
    order = np.random.default_rng(int(seed)).permutation(n)
    train = [names[i] for i in order[:n_train]]
    test = [names[i] for i in order[n_train:]]
    return Split(train=tuple(train), test=tuple(test), seed=int(seed), train_fraction=float(train_fraction),
                 dataset=dataset)


def load_split(path: Union[str, Path]) -> Split:
    """Read and validate a split file.

    Args:
        path: a JSON file written by ``Split.save`` (or by hand in the same format).

    Returns:
        The ``Split``.

    Raises:
        DataError: when the file is missing, is not JSON, lacks a key, has an unknown key, a value of
            the wrong type, or a scene on both sides; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"Split file {path} does not exist. Pass an existing split file, or none to use "
                        f"the canonical split of the dataset (or a computed one).")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"Split file {path} is not valid JSON ({exc}). Fix it or regenerate it "
                        f"with hsisr_bench.data.splits.make_split(...).save(path).") from exc
    fmt = ('expected a JSON object {"dataset": str|null, "seed": int|null, "train_fraction": float|null, '
           '"train": [names], "test": [names], "note": str (optional)}')
    if not isinstance(data, dict):
        raise DataError(f"Split file {path}: {fmt}; found a JSON {type(data).__name__}.")
    missing = [key for key in REQUIRED_KEYS if key not in data]
    if missing:
        raise DataError(f"Split file {path} lacks key(s) {', '.join(missing)}; {fmt}.")
    unknown = sorted(set(data) - set(REQUIRED_KEYS) - set(OPTIONAL_KEYS))
    if unknown:
        raise DataError(f"Split file {path} has unknown key(s) {', '.join(unknown)}; {fmt}.")
    for key in ("train", "test"):
        value = data[key]
        if not isinstance(value, list) or not all(isinstance(name, str) and name for name in value):
            raise DataError(f"Split file {path}: '{key}' must be a list of scene names; found {value!r:.80}.")
        if len(set(value)) != len(value):
            raise DataError(f"Split file {path}: '{key}' lists a scene more than once.")
    if not data["train"] or not data["test"]:
        raise DataError(f"Split file {path}: both 'train' and 'test' must name at least one scene.")
    seed, fraction, dataset = data["seed"], data["train_fraction"], data["dataset"]
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
        raise DataError(f"Split file {path}: 'seed' must be an integer >= 0 or null; found {seed!r}.")
    if fraction is not None and (not isinstance(fraction, (int, float)) or isinstance(fraction, bool)
                                 or not 0.0 < fraction < 1.0):
        raise DataError(f"Split file {path}: 'train_fraction' must be a number in (0, 1) or null; "
                        f"found {fraction!r}.")
    if dataset is not None and not isinstance(dataset, str):
        raise DataError(f"Split file {path}: 'dataset' must be a string or null; found {dataset!r}.")
    note = data.get("note", "")
    if not isinstance(note, str):
        raise DataError(f"Split file {path}: 'note' must be a string; found {note!r}.")
    try:
        return Split(train=tuple(data["train"]), test=tuple(data["test"]), seed=seed,
                     train_fraction=None if fraction is None else float(fraction), dataset=dataset, note=note)
    except DataError as exc:
        raise DataError(f"Split file {path}: {exc}") from exc


def canonical_split_path(dataset_name: str) -> Path:
    """Return where the committed canonical split of a dataset lives: ``configs/splits/<dataset>.json``."""
    return Path(hsisr_bench.CONFIG_DIR) / "splits" / f"{dataset_name.lower()}.json"


def split_for_dataset(dataset_name: str, scene_names: Iterable[str], split_file: Union[str, Path, None] = None,
                      seed: int = 0, *, restrict: bool = False) -> Split:
    """Return the split to use for a dataset whose scenes ``scene_names`` are present.

    Order of preference: ``split_file`` when given; else the committed canonical split
    ``configs/splits/<dataset>.json`` when it exists; else a split computed by ``make_split`` with
    ``seed``. A split file is a contract: an explicit ``split_file`` that names absent scenes is an
    error listing them, unless ``restrict`` (``--set dataset.restrict_split=true``); the canonical split
    is always restricted to the scenes present (a partial download is common). A restricted split keeps
    every present scene's side and carries :attr:`Split.restriction` (and a line in ``note``); it is
    never redrawn. Present scenes the file does not name are not used (``note`` says so).

    Args:
        dataset_name: the dataset (``cave``, ``cave31``, ``harvard``, ``foster``, ``synthetic``, ...).
        scene_names: the scene names present.
        split_file: a split file to use instead of the canonical one.
        seed: the seed of a computed split (unused when a split file is read).
        restrict: allow an explicit ``split_file`` naming absent scenes, restricted to the present ones.

    Returns:
        The ``Split``.

    Raises:
        DataError: on a missing or malformed split file, a split file written for another dataset,
            an explicit split file naming absent scenes (without ``restrict``), a restriction that
            leaves no training or no test scene, or fewer than 2 scenes for a computed split.
    """
    names = sorted(set(scene_names))
    if split_file is not None:
        path = Path(split_file)
        origin = f"split file {split_file}"
    else:
        path = canonical_split_path(dataset_name)
        if not path.is_file():
            split = make_split(names, seed=seed, dataset=dataset_name)
            return replace(split, note=f"no split file and no canonical split for dataset '{dataset_name}'; "
                                       f"computed a seeded split (seed {seed}, train fraction 0.8)")
        origin = f"canonical split configs/splits/{path.name}"
    split = load_split(path)
    if split.dataset is not None and split.dataset.lower() != dataset_name.lower():
        raise DataError(f"Split file {path} is for dataset '{split.dataset}', not '{dataset_name}'. "
                        f"Pass a split file for '{dataset_name}', or none to use its canonical split.")
    missing = sorted(set(split.scenes) - set(names))
    if missing and split_file is not None and not restrict:
        raise DataError(
            f"Split file {split_file} names {len(missing)} scene(s) that are not in the dataset "
            f"'{dataset_name}' ({len(names)} scenes present): {', '.join(missing)}. A split file is used as "
            f"written: add those scenes to the data root, fix the file, or pass "
            f"--set dataset.restrict_split=true to use only the present scenes of the file (the restriction "
            f"is recorded with the results).")
    restricted = split.restrict(names, source=origin)
    if restricted is split:
        return split
    if restricted.restriction is None:  # only present scenes the file does not name: say which file
        return replace(restricted, note=f"{origin}: {restricted.note}")
    return replace(restricted, restriction={**restricted.restriction, "canonical": split_file is None})


def _short_list(names: Sequence[str], limit: int = 8) -> str:
    """``a, b, c`` or ``a, b, ... (N more)`` for a message."""
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown}, ... ({len(names) - limit} more)"


def _join_notes(*parts: str) -> str:
    """Join the non-empty parts of a note with '; '."""
    return "; ".join(part for part in parts if part)
