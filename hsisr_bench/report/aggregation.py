"""Group finished runs by (dataset, scale, method) and average them over seeds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Optional, Sequence

import numpy as np

from hsisr_bench.report import dataset_sort_key, is_number, method_key, method_label, method_sort_key


@dataclass
class Aggregate:
    """The runs of one method in one (dataset, scale) cell, averaged over seeds.

    Attributes:
        dataset, scale, key: the cell and the method's run-folder name (``ssrnet+nolff``).
        label: the table heading (``SSRNet (nolff)``).
        records: one record per seed.
        mean: metric -> mean over seeds of each run's mean over test scenes.
        std: metric -> sample standard deviation over seeds (``None`` with one seed).
        per_scene: metric -> {scene: value averaged over seeds}.
    """

    dataset: str
    scale: int
    key: str
    label: str
    records: list[dict]
    mean: dict[str, float] = field(default_factory=dict)
    std: dict[str, Optional[float]] = field(default_factory=dict)
    per_scene: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def method(self) -> str:
        """The registry name of the method."""
        return str(self.records[0]["method"])

    @property
    def variant(self) -> Optional[str]:
        """The method's variant, ``None`` for the default network."""
        return self.records[0].get("variant") or None

    @property
    def seeds(self) -> list[int]:
        """The seeds that ran."""
        return sorted(int(r.get("seed", 0)) for r in self.records)

    def field_mean(self, name: str) -> Optional[float]:
        """Mean over seeds of a numeric top-level ``metrics.json`` field (``params``, ``infer_seconds``), if any."""
        values = [r[name] for r in self.records if is_number(r.get(name))]
        return float(np.mean(values)) if values else None


def aggregate(records: Iterable[Mapping[str, Any]]) -> dict[tuple[str, int, str], Aggregate]:
    """Group records by (dataset, scale, method key) and average over seeds.

    Returns:
        ``{(dataset, scale, key): Aggregate}`` in dataset, scale, paper method order.
    """
    groups: dict[tuple[str, int, str], list[dict]] = {}
    for record in records:
        groups.setdefault((str(record["dataset"]), int(record["scale"]), method_key(record)), []).append(dict(record))
    result = {}
    for (dataset, scale, key) in sorted(groups, key=lambda k: (dataset_sort_key(k[0]), k[1], method_sort_key(k[2]))):
        runs = sorted(groups[(dataset, scale, key)], key=lambda r: int(r.get("seed", 0)))
        agg = Aggregate(dataset, scale, key, method_label(runs[0]), runs)
        metrics = sorted({m for r in runs for m, v in (r.get("mean") or {}).items() if is_number(v)})
        for metric in metrics:
            values = [float(r["mean"][metric]) for r in runs if is_number((r.get("mean") or {}).get(metric))]
            if len(values) != len(runs):
                continue  # a metric some seeds lack is not averaged over a subset
            agg.mean[metric] = float(np.mean(values))
            agg.std[metric] = float(np.std(values, ddof=1)) if len(values) > 1 else None
            agg.per_scene[metric] = _per_scene(runs, metric)
        result[(dataset, scale, key)] = agg
    return result


def _per_scene(runs: Sequence[Mapping[str, Any]], metric: str) -> dict[str, float]:
    """Scene -> value of ``metric`` averaged over the seeds that scored that scene."""
    values: dict[str, list[float]] = {}
    for run in runs:
        for image in run.get("per_image") or []:
            if is_number(image.get(metric)) and "scene" in image:
                values.setdefault(str(image["scene"]), []).append(float(image[metric]))
    return {scene: float(np.mean(v)) for scene, v in values.items()}


def cells_of(aggs: Iterable[tuple[str, int, str]] | Iterable[Aggregate]) -> list[tuple[str, int]]:
    """The distinct (dataset, scale) cells of aggregate keys or aggregates, in the paper's order."""
    cells = set()
    for item in aggs:
        cells.add((item.dataset, item.scale) if isinstance(item, Aggregate) else (item[0], item[1]))
    return sorted(cells, key=lambda c: (dataset_sort_key(c[0]), c[1]))
