"""Tables and figures from the results store. The report layer only reads finished runs; it never retrains.

Usage::

    from hsisr_bench.report import load_records
    from hsisr_bench.report.tables import build_report, summary_table
    records = load_records("results")
    print(summary_table(records))

A *record* is the content of one run's ``metrics.json`` (see ``docs/architecture.md``), plus the key
``"_run_dir"``: the run folder it was read from (a :class:`pathlib.Path`).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional

from hsisr_bench.errors import ResultsError
from hsisr_bench.results import scan_results

#: The paper's method order in its tables; other methods follow, sorted by name.
PAPER_METHOD_ORDER = ("bicubic", "gdrrn", "fcnn3d", "edsr", "ssrnet")

#: Table titles of the built-in methods, used when a record carries no ``title``.
_DEFAULT_TITLES = {"bicubic": "Bicubic", "gdrrn": "GDRRN", "fcnn3d": "3D-FCNN", "edsr": "EDSR", "ssrnet": "SSRNet"}

_HOW_TO_PRODUCE = (
    "Produce results first, e.g. `hsibench run --methods bicubic,ssrnet --dataset cave --scale 4 "
    "--profile quick --out {out}`, then point --results at that folder."
)


def load_records(results_dir: str | Path) -> list[dict]:
    """Read every finished run of a results store, each as its ``metrics.json`` dict plus ``_run_dir``.

    Reads ``<out>/<dataset>/x<scale>/<method>[+<variant>]/seed<k>/metrics.json`` through
    :func:`hsisr_bench.results.scan_results` (unreadable files are left out, shown as not run). Runs without
    ``"finished": true`` are skipped (an interrupted run is not a result).

    Args:
        results_dir: the folder ``hsibench run --out`` wrote.

    Returns:
        The records, sorted by dataset, scale, method (paper order), variant and seed.

    Raises:
        ResultsError: the folder does not exist or holds no finished run; the message says where it
            looked and how to produce results.
    """
    root = Path(results_dir)
    if not root.is_dir():
        raise ResultsError(
            f"Results folder {root} does not exist (looked for "
            f"{root}/<dataset>/x<scale>/<method>/seed<k>/metrics.json). " + _HOW_TO_PRODUCE.format(out=root)
        )
    records = [_complete(record, root) for record in scan_results(root) if record.get("finished", False) is True]
    if not records:
        raise ResultsError(
            f"No finished run in {root} (looked for {root}/<dataset>/x<scale>/<method>/seed<k>/metrics.json "
            f"with \"finished\": true). " + _HOW_TO_PRODUCE.format(out=root)
        )
    return sorted(records, key=record_sort_key)


def unreadable_runs(results_dir: str | Path) -> list[tuple[Path, str]]:
    """The run folders whose ``metrics.json`` cannot be read (not JSON, not an object): ``(file, why)``.

    :func:`load_records` leaves them out (they look like runs that did not finish); ``hsibench report``
    warns about each, so a damaged result is never dropped from a table silently.
    """
    found = []
    for path in sorted(Path(results_dir).glob("*/x*/*/seed*/metrics.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            found.append((path, f"{type(error).__name__}: {error}"))
            continue
        if not isinstance(record, dict):
            found.append((path, f"holds a JSON {type(record).__name__}, not an object"))
    return found


def holds_results_store(folder: str | Path) -> bool:
    """Whether ``folder`` is a results store: it holds ``<dataset>/x<scale>/<method>/seed<k>/`` run folders.

    A run folder counts once ``hsibench run`` has written its ``config.json`` or ``metrics.json``
    (finished or not), or a cell holds stored ``targets``.
    """
    root = Path(folder)
    if not root.is_dir():
        return False
    patterns = ("*/x*/*/seed*/metrics.json", "*/x*/*/seed*/config.json", "*/x*/targets")
    return any(next(root.glob(pattern), None) is not None for pattern in patterns)


def _complete(record: dict, root: Path) -> dict:
    """Fill ``_run_dir`` and the fields the layout implies (dataset, scale, method, variant, seed)."""
    record = dict(record)
    run_dir = record.get("_run_dir") or record.get("run_dir") or record.get("path")
    if run_dir is None:
        folder = record["method"] + (f"+{record['variant']}" if record.get("variant") else "")
        run_dir = root / str(record["dataset"]) / f"x{int(record['scale'])}" / folder / f"seed{int(record.get('seed', 0))}"
    run_dir = Path(run_dir)
    record["_run_dir"] = run_dir
    parts = run_dir.parts
    if len(parts) >= 4:
        # <dataset>/x<scale>/<method>[+<variant>][+loss-<loss>]/seed<k>
        method, *extras = parts[-2].split("+")
        variants = [part for part in extras if not part.startswith("loss-")]
        losses = [part[len("loss-"):] for part in extras if part.startswith("loss-")]
        record.setdefault("dataset", parts[-4])
        if parts[-3].startswith("x") and parts[-3][1:].isdigit():
            record.setdefault("scale", int(parts[-3][1:]))
        record.setdefault("method", method)
        record.setdefault("variant", "+".join(variants) or None)
        if losses:
            record.setdefault("loss", losses[0])
        if "seed" not in record and parts[-1].startswith("seed") and parts[-1][4:].isdigit():
            record["seed"] = int(parts[-1][len("seed"):])
        if parts[-2].split("+")[0] == record["method"]:
            record["_label"] = parts[-2]
    record["scale"] = int(record["scale"])
    _fill_from_config(record, run_dir)
    return record


def _fill_from_config(record: dict, run_dir: Path) -> None:
    """Take ``experiment``, ``options`` and ``loss`` from ``config.json`` when ``metrics.json`` lacks them."""
    if all(key in record for key in ("experiment", "options", "loss")):
        return
    config_path = run_dir / "config.json"
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return
    if not isinstance(config, dict):
        return
    for key in ("experiment", "options", "loss"):
        if key not in record:
            value = _find_key(config, key)
            if value is not None:
                record[key] = value


def _find_key(config: Mapping[str, Any], key: str) -> Any:
    """``config[key]``, else the first ``config[section][key]`` one level down (e.g. ``train.loss``)."""
    if key in config:
        return config[key]
    for value in config.values():
        if isinstance(value, Mapping) and key in value:
            return value[key]
    return None


def method_key(record: Mapping[str, Any]) -> str:
    """The results-store name of a record's method: its run folder ``ssrnet[+<variant>][+loss-<loss>]``."""
    for field in ("_label", "label"):
        if record.get(field):
            return str(record[field])
    variant = record.get("variant")
    return f"{record['method']}+{variant}" if variant else str(record["method"])


def method_title(method: str, record: Optional[Mapping[str, Any]] = None) -> str:
    """Display name of a method: the record's ``title``, else the built-in title, else the name."""
    if record is not None and record.get("title"):
        return str(record["title"])
    return _DEFAULT_TITLES.get(str(method), str(method))


def method_label(record: Mapping[str, Any]) -> str:
    """A table heading for a record's method: ``SSRNet`` or ``SSRNet (nolff, loss-mse)``."""
    title = method_title(str(record["method"]), record)
    extras = method_key(record).split("+")[1:]
    return f"{title} ({', '.join(extras)})" if extras else title


def method_sort_key(key: str) -> tuple:
    """Sort key of a ``method[+variant]`` name: the paper's order first, then by name; default variant first."""
    method, _, variant = key.partition("+")
    rank = PAPER_METHOD_ORDER.index(method) if method in PAPER_METHOD_ORDER else len(PAPER_METHOD_ORDER)
    return (rank, method, variant != "", variant)


_DATASET_ORDER = ("cave", "harvard", "foster")


def dataset_sort_key(name: str) -> tuple:
    """Sort key of a dataset: the paper's order (CAVE, Harvard, Foster), then the others by name."""
    lowered = str(name).lower()
    return (_DATASET_ORDER.index(lowered) if lowered in _DATASET_ORDER else len(_DATASET_ORDER), lowered)


def record_sort_key(record: Mapping[str, Any]) -> tuple:
    """Sort key of a record: dataset, scale, method (paper order), variant, seed."""
    return (dataset_sort_key(record["dataset"]), int(record["scale"]), method_sort_key(method_key(record)),
            int(record.get("seed", 0)))


def dataset_title(name: str) -> str:
    """Display name of a dataset (``cave`` -> ``CAVE``)."""
    return {"cave": "CAVE", "harvard": "Harvard", "foster": "Foster", "synthetic": "Synthetic"}.get(
        str(name).lower(), str(name))


def cell_dir(results_dir: str | Path, dataset: str, scale: int) -> Path:
    """The folder of one (dataset, scale) cell: ``<out>/<dataset>/x<scale>``."""
    return Path(results_dir) / str(dataset) / f"x{int(scale)}"


def read_wavelengths(results_dir: str | Path, dataset: str, scale: int) -> Optional[list[float]]:
    """Band centres in nm from the cell's ``wavelengths.json``, or ``None`` when absent or unreadable.

    Accepts a plain list, or a dict holding the list under ``"wavelengths"`` / ``"nm"``.
    """
    path = cell_dir(results_dir, dataset, scale) / "wavelengths.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    if isinstance(data, Mapping):
        data = data.get("wavelengths", data.get("nm"))
    if not isinstance(data, list) or not all(isinstance(v, (int, float)) for v in data):
        return None
    return [float(v) for v in data]


def output_crop(record: Mapping[str, Any]) -> tuple[int, int]:
    """``(bands, pixels)`` the method's output loses on each side, from ``metrics.json`` (0, 0 when absent)."""
    crop = record.get("output_crop") or {}
    return int(crop.get("bands", 0) or 0), int(crop.get("pixels", 0) or 0)


def band_count(records: Iterable[Mapping[str, Any]], results_dir: Optional[str | Path], dataset: str,
               scale: int) -> Optional[int]:
    """The number of bands of a cell's HR target: from ``wavelengths.json``, else from per-band metrics."""
    wavelengths = read_wavelengths(results_dir, dataset, scale) if results_dir is not None else None
    if wavelengths:
        return len(wavelengths)
    for record in records:
        for image in record.get("per_image") or []:
            per_band = image.get("psnr_per_band") or image.get("ssim_per_band")
            if per_band:
                return len(per_band) + 2 * output_crop(record)[0]
    return None


def crop_note(record: Mapping[str, Any], bands: Optional[int]) -> Optional[str]:
    """Say which part of the target a cropped method is scored on, e.g. ``scored on bands 5–27 of 31, 6-pixel border removed``.

    Returns ``None`` for methods whose output is not cropped.
    """
    crop_bands, crop_pixels = output_crop(record)
    if crop_bands == 0 and crop_pixels == 0:
        return None
    parts = []
    if crop_bands:
        last = f"{bands - crop_bands}" if bands else f"L−{crop_bands}"
        of = f" of {bands}" if bands else ""
        parts.append(f"scored on bands {crop_bands + 1}–{last}{of}")
    if crop_pixels:
        parts.append(f"{crop_pixels}-pixel border removed")
    return ", ".join(parts)


def is_number(value: Any) -> bool:
    """True for a finite int or float (not bool, not NaN)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def slug(text: str) -> str:
    """A file-name-safe form of ``text`` (letters, digits, ``-``, ``_``, ``+``, ``.``)."""
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", str(text)).strip("_") or "_"
