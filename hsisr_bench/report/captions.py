"""The run description every table carries as its notes: protocol, metric conventions, scenes, seeds, crops."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from hsisr_bench.errors import HsiBenchError
from hsisr_bench.report import band_count, crop_note, dataset_sort_key, dataset_title, is_number, method_title
from hsisr_bench.report.values import TABLE_METRICS, metric_name


def _protocol_name(record: Mapping[str, Any]) -> str:
    protocol = record.get("protocol")
    if isinstance(protocol, Mapping):
        protocol = protocol.get("name") or protocol.get("profile")
    return str(protocol) if protocol else "unrecorded"


def conventions_text(conventions: Any, metrics: Sequence[str] = TABLE_METRICS) -> str:
    """The metric conventions in words (via ``hsisr_bench.metrics.Conventions.describe``), else ``key: value`` pairs."""
    if not conventions:
        return "unrecorded"
    if not isinstance(conventions, Mapping):
        return str(conventions)
    try:
        from hsisr_bench.metrics import Conventions

        described = Conventions.from_value(dict(conventions)).describe()
        return "; ".join(f"{metric_name(m)}: {described[m]}" for m in metrics if m in described)
    except (HsiBenchError, TypeError, ValueError, KeyError):  # conventions of another version
        return "; ".join(f"{k}: {conventions_text(v) if isinstance(v, Mapping) else v}" for k, v in conventions.items())


def _n_scenes(record: Mapping[str, Any]) -> Optional[int]:
    if is_number(record.get("n_test_scenes")):
        return int(record["n_test_scenes"])
    return len(record["per_image"]) if record.get("per_image") else None


#: The start of the note that flags a run scored on its own training scenes (also a CSV column).
TRAIN_OVERLAP_WARNING = "WARNING (train/test overlap):"


def run_notes(records: Sequence[Mapping[str, Any]], results_dir: Optional[str | Path] = None) -> list[str]:
    """The notes every table carries, one sentence each: protocol, metric conventions, test scenes, seeds, crops.

    Args:
        records: the records the table shows.
        results_dir: the results folder (to read band counts from ``wavelengths.json``), optional.
    """
    protocols = sorted({_protocol_name(r) for r in records})
    conventions = []
    for record in records:
        text = conventions_text(record.get("conventions"))
        if text not in conventions:
            conventions.append(text)
    notes = [f"Protocol: {', '.join(protocols)}" + (" (mixed profiles!)" if len(protocols) > 1 else "") + "."]
    if len(conventions) == 1:
        notes.append(f"Metric conventions: {conventions[0]}.")
    else:
        notes.append("Metric conventions differ between runs (not comparable): " + " | ".join(conventions) + ".")
    scenes = []
    for dataset in sorted({str(r["dataset"]) for r in records}, key=dataset_sort_key):
        counts = sorted({n for r in records if str(r["dataset"]) == dataset for n in [_n_scenes(r)] if n is not None})
        scenes.append(f"{'/'.join(str(n) for n in counts) or '?'} ({dataset_title(dataset)})")
    notes.append(f"Test scenes: {', '.join(scenes)}.")
    restricted = sorted({f"{dataset_title(str(r['dataset']))}: {len(info['missing'])} scene(s) of "
                         f"{info['source']} absent ({', '.join(info['missing'])})"
                         for r in records for info in [(r.get("split") or {}).get("restriction")] if info})
    if restricted:
        notes.append("Split restricted to the scenes present: " + "; ".join(restricted) + ".")
    seeds = sorted({int(r.get("seed", 0)) for r in records})
    seed_text = f"Seeds: {', '.join(str(s) for s in seeds)}"
    if len(seeds) > 1:
        seed_text += "; mean ± sample standard deviation over seeds where several ran"
    notes.append(seed_text + ".")
    crops = {}
    for record in records:
        bands = band_count([record], results_dir, record["dataset"], record["scale"])
        note = crop_note(record, bands)
        if note:
            crops.setdefault(method_title(str(record["method"]), record), note)
    notes += [f"{title}: {note}." for title, note in crops.items()]
    notes += train_overlap_notes(records)
    return notes


def train_overlap_notes(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """A warning per run whose released weights were scored on scenes they were trained on
    (``hsibench evaluate --weights ... --allow-train-overlap``): those scores are not a test result."""
    notes = []
    for record in records:
        weights = record.get("weights")
        overlap = weights.get("train_overlap") if isinstance(weights, Mapping) else None
        if overlap:
            title = method_title(str(record["method"]), record)
            notes.append(f"{TRAIN_OVERLAP_WARNING} {title} ({record.get('dataset')} x{record.get('scale')}, seed "
                         f"{record.get('seed', 0)}) was scored with weights trained on {len(overlap)} of its test "
                         f"scenes ({', '.join(map(str, overlap))}): not a test result.")
    return notes


def describe_runs(records: Sequence[Mapping[str, Any]], results_dir: Optional[str | Path] = None) -> str:
    """:func:`run_notes` as one paragraph."""
    return " ".join(run_notes(records, results_dir))
