"""The results store: one folder per run, atomic writes, run ids, locks, scanning.

Layout (docs/architecture.md)::

    <out>/<dataset>/x<scale>/<method>[+<variant>]/seed<k>/
        config.json  metrics.json  per_image.csv  train_log.csv  checkpoint.pt  predictions/<scene>.npy
    <out>/<dataset>/x<scale>/targets/<scene>.npy
    <out>/<dataset>/x<scale>/wavelengths.json

Every file is written to a temporary file in the same folder and then moved into place with
``os.replace``, so a reader (or a run killed at any moment) never sees half a file. ``metrics.json``
is written last: its presence with ``"finished": true`` is what marks a run as done.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence, Union

import numpy as np

from hsisr_bench import __version__
from hsisr_bench import atomic
from hsisr_bench.errors import ResultsError
from hsisr_bench.locks import LOCK_FILE, RunLock  # noqa: F401 - part of the results API

PathLike = Union[str, Path]

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
PER_IMAGE_FILE = "per_image.csv"
TRAIN_LOG_FILE = "train_log.csv"
CHECKPOINT_FILE = "checkpoint.pt"
PREDICTIONS_DIR = "predictions"
TARGETS_DIR = "targets"
WAVELENGTHS_FILE = "wavelengths.json"
#: Columns of ``per_image.csv``.
PER_IMAGE_COLUMNS = ("scene", "psnr", "ssim", "sam", "ergas", "rmse", "cc", "mpsnr")
#: Keys of the resolved config that do not change what a run computes, so they stay out of its run id.
NON_IDENTITY_KEYS = ("run_id", "version", "device", "experiment", "data_root", "label", "title", "runtime")


# -------------------------------------------------------------------------------- atomic writes


def atomic_write(path: PathLike, write: Callable[[io.BufferedWriter], None]) -> Path:
    """Write ``path`` atomically (see :mod:`hsisr_bench.atomic`).

    Raises:
        ResultsError: the folder cannot be written.
    """
    try:
        return atomic.atomic_write(path, write)
    except OSError as error:
        raise ResultsError(f"Cannot write {path}: {error}. Choose a writable --out folder.") from None


def write_text(path: PathLike, text: str) -> Path:
    """Write a UTF-8 text file atomically."""
    return atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))


def write_json(path: PathLike, data: Any) -> Path:
    """Write ``data`` as indented JSON atomically (an infinite PSNR is written as ``Infinity``, which Python reads back)."""
    return write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_npy(path: PathLike, array: np.ndarray) -> Path:
    """Write a ``.npy`` array atomically."""
    return atomic_write(path, lambda handle: np.save(handle, array, allow_pickle=False))


def write_csv(path: PathLike, columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> Path:
    """Write a CSV file with a header atomically; missing values are left empty."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
    return write_text(path, buffer.getvalue())


def read_json(path: PathLike) -> Any:
    """Read a JSON file.

    Raises:
        ResultsError: the file is unreadable or not JSON.
    """
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ResultsError(f"Cannot read {path}: {error}. Delete the run folder or rerun with --force.") from None


def ensure_writable(out_dir: PathLike) -> Path:
    """Create ``out_dir`` if needed and check that a file can be written in it.

    Raises:
        ResultsError: the folder cannot be created or written (names the folder and what to do).
    """
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=out, prefix=".write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as error:
        raise ResultsError(f"Output folder {out} is not writable ({error.strerror or error}). "
                           f"Choose another --out folder.") from None
    return out


# ------------------------------------------------------------------------------------- layout


def cell_dir(out_dir: PathLike, dataset: str, scale: int) -> Path:
    """``<out>/<dataset>/x<scale>``: the folder shared by every method of one cell."""
    return Path(out_dir) / dataset / f"x{scale}"


def run_dir(out_dir: PathLike, dataset: str, scale: int, label: str, seed: int) -> Path:
    """``<out>/<dataset>/x<scale>/<label>/seed<k>``: one run's folder (``label`` is ``method[+variant]``)."""
    return cell_dir(out_dir, dataset, scale) / label / f"seed{seed}"


def compute_run_id(resolved: Mapping[str, Any]) -> str:
    """A 12-hex-digit hash of the parts of a resolved config that decide what the run computes.

    Device, experiment, data root and version are left out: the same run read from another folder or
    computed on another device is the same run (the version is checked on its own).
    """
    identity = {k: v for k, v in resolved.items() if k not in NON_IDENTITY_KEYS}
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, Mapping):
        flat: dict[str, Any] = {}
        for key, value in data.items():
            flat.update(_flatten(value, f"{prefix}{key}."))
        return flat
    return {prefix[:-1]: data}


def config_differences(old: Mapping[str, Any], new: Mapping[str, Any], limit: int = 8) -> list[str]:
    """Human-readable ``key: old -> new`` lines for the identity keys that differ between two configs."""
    a = _flatten({k: v for k, v in old.items() if k not in NON_IDENTITY_KEYS})
    b = _flatten({k: v for k, v in new.items() if k not in NON_IDENTITY_KEYS})
    lines = []
    for key in sorted(set(a) | set(b)):
        if a.get(key, "<missing>") != b.get(key, "<missing>"):
            show = [str(v) if len(str(v)) <= 60 else str(v)[:57] + "..." for v in (a.get(key, "<missing>"),
                                                                                  b.get(key, "<missing>"))]
            lines.append(f"{key}: {show[0]} -> {show[1]}")
    if len(lines) > limit:
        lines = lines[:limit] + [f"... and {len(lines) - limit} more"]
    return lines


# -------------------------------------------------------------------------------------- states


def run_state(directory: PathLike, resolved: Mapping[str, Any]) -> str:
    """Say what a run folder holds for this config: ``"new"``, ``"resume"`` or ``"finished"``.

    Raises:
        ResultsError: the folder holds a run of another version or another config (names what
            differs and says to use ``--force`` or another ``--out``); nothing is changed.
    """
    directory = Path(directory)
    config_path, metrics_path = directory / CONFIG_FILE, directory / METRICS_FILE
    old = read_json(config_path) if config_path.is_file() else None
    if old is None and metrics_path.is_file():
        old = read_json(metrics_path)
    if old is not None:
        if old.get("version") != resolved["version"]:
            raise ResultsError(
                f"{directory} holds a run written by hsisr-bench {old.get('version', 'unknown')}, this is "
                f"{resolved['version']}; results of different versions are not mixed. Rerun with --force to "
                f"replace it, or write to another folder with --out.")
        if old.get("run_id") != resolved["run_id"]:
            differences = config_differences(old, resolved) or ["(the run ids differ)"]
            raise ResultsError(
                f"{directory} holds a run of a different config (run id {old.get('run_id')}, this one is "
                f"{resolved['run_id']}). What differs (old -> new):\n  " + "\n  ".join(differences)
                + "\nRerun with --force to replace it, or write to another folder with --out.")
    if metrics_path.is_file() and read_json(metrics_path).get("finished"):
        return "finished"
    if (directory / CHECKPOINT_FILE).is_file():
        return "resume"
    return "new"


def _result_entries(directory: Path) -> list[Path]:
    """The entries of a run folder that make up its result: all but the lock (and its temporaries) and
    the kept previous result of a replacement."""
    if not directory.is_dir():
        return []
    return [child for child in sorted(directory.iterdir())
            if not child.name.startswith(LOCK_FILE) and child.name not in (PREVIOUS_DIR, _DISCARD_DIR)]


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def clear_run(directory: PathLike) -> None:
    """Remove a run folder's results; the lock file and a kept previous result (:data:`PREVIOUS_DIR`) stay."""
    for child in _result_entries(Path(directory)):
        _remove(child)


# ------------------------------------------------------------------- replacing a finished run (--force)
#
# ``--force`` over a finished run must not lose it before the new one is complete. The old result is
# moved (renamed, never copied) into ``<run>/.previous/`` while the lock is held; the lock file stays in the
# run folder, so locking and resuming work on the folder as before, and the hidden name keeps the old
# result out of every ``seed*`` scan. ``.previous/.complete`` marks a finished move; without it the move (or a
# restore) was cut short and the old files are split between the two folders, disjointly, so moving every
# entry of ``.previous`` back makes the old result whole again. A discarded backup is first renamed to
# ``.previous.discard`` (atomic), so a crash while deleting it can never be mistaken for a result to restore.

#: The folder, inside a run folder, that holds the finished result being replaced by ``--force``.
PREVIOUS_DIR = ".previous"
_PREVIOUS_COMPLETE = ".complete"
_DISCARD_DIR = ".previous.discard"


def is_finished(directory: PathLike) -> bool:
    """True when ``directory`` holds a finished run (a readable ``metrics.json`` with ``"finished": true``)."""
    path = Path(directory) / METRICS_FILE
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and bool(record.get("finished"))


def previous_state(directory: PathLike) -> Optional[str]:
    """What ``<run>/.previous`` holds: ``None`` (nothing), ``"complete"`` (the whole old result, the run
    folder holds the replacement or its beginning) or ``"partial"`` (a move cut short; restore it)."""
    previous = Path(directory) / PREVIOUS_DIR
    if not previous.is_dir():
        return None
    return "complete" if (previous / _PREVIOUS_COMPLETE).is_file() else "partial"


def set_aside_run(directory: PathLike) -> None:
    """Move the run folder's result into ``<run>/.previous`` (call holding the run's lock).

    When ``.previous`` already holds a complete old result (an earlier replacement did not finish), that
    result is kept and the run folder's unfinished content is deleted instead.

    Raises:
        ResultsError: a file cannot be moved (the old result is moved back first).
    """
    directory = Path(directory)
    previous = directory / PREVIOUS_DIR
    state = previous_state(directory)
    if state == "complete":
        clear_run(directory)
        return
    if state == "partial":
        restore_previous(directory)
    try:
        previous.mkdir()
        for child in _result_entries(directory):
            os.rename(child, previous / child.name)
        atomic.atomic_write(previous / _PREVIOUS_COMPLETE, lambda handle: handle.write(b"ok\n"))
    except OSError as error:
        restore_previous(directory)
        raise ResultsError(f"Cannot move the finished result of {directory} aside before replacing it ({error}); "
                           f"it was left in place. Check that the folder is writable.") from None


def restore_previous(directory: PathLike) -> None:
    """Put the result kept in ``<run>/.previous`` back in place of the run folder's current content
    (an unfinished replacement), then remove ``.previous``. Nothing happens when there is none."""
    directory = Path(directory)
    previous = directory / PREVIOUS_DIR
    if not previous.is_dir():
        return
    if (previous / _PREVIOUS_COMPLETE).is_file():
        clear_run(directory)  # the replacement's files; until the marker goes, a crash here repeats this step
        (previous / _PREVIOUS_COMPLETE).unlink()
    for child in sorted(previous.iterdir()):  # now disjoint from the run folder's result entries
        target = directory / child.name
        if target.exists() or target.is_symlink():
            _remove(target)
        os.rename(child, target)
    previous.rmdir()


def discard_previous(directory: PathLike) -> None:
    """Delete the result kept in ``<run>/.previous`` (its replacement is complete) and any half-deleted
    earlier one."""
    directory = Path(directory)
    discard = directory / _DISCARD_DIR
    if discard.exists():
        shutil.rmtree(discard)
    if (directory / PREVIOUS_DIR).is_dir():
        os.rename(directory / PREVIOUS_DIR, discard)
        shutil.rmtree(discard)


def remove_stale_temporaries(directory: PathLike) -> None:
    """Delete temporary files left by a writer killed mid-write (call only while holding the run's lock)."""
    directory = Path(directory)
    if directory.is_dir():
        for path in directory.rglob(".*.tmp"):
            path.unlink(missing_ok=True)
        if (directory / _DISCARD_DIR).is_dir():  # a replaced result whose deletion was cut short
            shutil.rmtree(directory / _DISCARD_DIR)


# ----------------------------------------------------------------------------------- run files


def write_predictions(directory: PathLike, scene: str, prediction: np.ndarray) -> Path:
    """Store the clipped SR of one scored region as float16 ``(L', H', W')``."""
    return write_npy(Path(directory) / PREDICTIONS_DIR / f"{scene}.npy", np.asarray(prediction, dtype=np.float16))


def check_or_write_target(out_dir: PathLike, dataset: str, scale: int, scene: str, target: np.ndarray) -> Path:
    """Store the HR target region of a test scene (float16), shared by all methods of the cell.

    When the file already exists it must hold the same array: a different one means another
    protocol or split wrote this cell.

    Raises:
        ResultsError: an existing target differs (says what to do).
    """
    path = cell_dir(out_dir, dataset, scale) / TARGETS_DIR / f"{scene}.npy"
    array = np.asarray(target, dtype=np.float16)
    if path.is_file():
        try:
            old = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as error:
            raise ResultsError(f"Cannot read {path}: {error}. Delete it or use another --out.") from None
        if old.shape != array.shape or not np.array_equal(old, array):
            raise ResultsError(
                f"{path} holds a target of shape {old.shape} that differs from this run's {array.shape}: the "
                f"folder {cell_dir(out_dir, dataset, scale)} was written with another test region, split or "
                f"dataset. Write to another folder with --out (or delete that folder).")
        return path
    return write_npy(path, array)


def write_wavelengths(out_dir: PathLike, dataset: str, scale: int, wavelengths: Optional[Sequence[float]]) -> None:
    """Store the band centres (nm) of a cell once."""
    path = cell_dir(out_dir, dataset, scale) / WAVELENGTHS_FILE
    if not path.is_file():
        write_json(path, None if wavelengths is None else [float(w) for w in wavelengths])


def write_train_log(directory: PathLike, rows: Sequence[Mapping[str, Any]]) -> Path:
    """Rewrite ``train_log.csv`` (epoch, loss, lr, seconds[, val_psnr]) with every epoch so far."""
    columns = ["epoch", "loss", "lr", "seconds"]
    if any(row.get("val_psnr") is not None for row in rows):
        columns.append("val_psnr")
    return write_csv(Path(directory) / TRAIN_LOG_FILE, columns, rows)


def write_per_image(directory: PathLike, per_image: Sequence[Mapping[str, Any]]) -> Path:
    """Write ``per_image.csv`` (scene and the scalar metrics)."""
    return write_csv(Path(directory) / PER_IMAGE_FILE, PER_IMAGE_COLUMNS, per_image)


def scan_results(out_dir: PathLike) -> list[dict]:
    """Every finished run's ``metrics.json`` under ``out_dir``, sorted by dataset, scale, method, variant, seed.

    Unfinished or unreadable runs are left out (a run killed before its end has no finished metrics).
    """
    records = []
    for path in sorted(Path(out_dir).glob(f"*/x*/*/seed*/{METRICS_FILE}")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(record, dict) and record.get("finished"):
            record.setdefault("path", str(path.parent))
            records.append(record)
    records.sort(key=lambda r: (str(r.get("dataset")), int(r.get("scale", 0)), str(r.get("method")),
                                str(r.get("variant") or ""), str(r.get("loss") or ""), int(r.get("seed", 0))))
    return records


def version() -> str:
    """The toolkit version recorded in every config.json and metrics.json."""
    return __version__
