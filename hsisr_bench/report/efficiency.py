"""Efficiency beside quality: parameters, FLOPs, inference and training time next to PSNR / SSIM / SAM."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from hsisr_bench.report import dataset_title, is_number
from hsisr_bench.report.aggregation import aggregate
from hsisr_bench.report.captions import run_notes
from hsisr_bench.report.model import Part, Table, narrow, value_part
from hsisr_bench.report.values import (
    DASH,
    TABLE_METRICS,
    format_count,
    format_count_short,
    metric_heading,
    metric_name,
    metric_short_heading,
    metric_units,
)


def efficiency_table(records: Sequence[Mapping[str, Any]], results_dir: Optional[str | Path] = None, *,
                     metrics: Sequence[str] = TABLE_METRICS) -> Optional[Table]:
    """Parameters, FLOPs and time beside quality, per (dataset, scale, method).

    Reads the ``metrics.json`` fields ``params``, ``flops``, ``infer_seconds`` and ``train_seconds``.

    Returns:
        The :class:`Table`, or ``None`` when no record has any of those fields.
    """
    fields = ("params", "flops", "infer_seconds", "train_seconds")
    if not any(is_number(r.get(f)) for r in records for f in fields):
        return None
    header = ["Dataset", "Scale", "Method", "Params", "FLOPs (G)", "Inference (s, all scenes)", "Training (s)"] + \
        [metric_heading(m) for m in metrics]
    rows, short_rows, csv_rows, group_starts = [], [], [], set()
    previous = None
    for (dataset, scale, key), agg in aggregate(records).items():
        first = (dataset, scale) != previous
        if first:
            group_starts.add(len(rows))
            previous = (dataset, scale)
        params, flops = agg.field_mean("params"), agg.field_mean("flops")
        infer, train = agg.field_mean("infer_seconds"), agg.field_mean("train_seconds")
        costs = [[Part(DASH if flops is None else f"{flops / 1e9:.2f}")],
                 [Part(DASH if infer is None else f"{infer:.3g}")],
                 [Part(DASH if train is None else f"{train:.4g}")]]
        quality = [[value_part(m, agg.mean.get(m), agg.std.get(m))] for m in metrics]
        rows.append([[Part(dataset_title(dataset))], [Part(f"×{scale}")], [Part(agg.label)],
                     [Part(format_count(params))], *costs, *quality])
        short_rows.append([[Part(dataset_title(dataset) if first else "")], [Part(f"×{scale}" if first else "")],
                           [Part(agg.label)], [Part(format_count_short(params))], *costs, *quality])
        csv_rows.append({"dataset": dataset, "scale": scale, "method": key, "label": agg.label, "params": params,
                         "flops": flops, "infer_seconds": infer, "train_seconds": train,
                         **{m: agg.mean.get(m) for m in metrics}})
    caption = f"Parameters, FLOPs and wall-clock time next to {' / '.join(metric_name(m) for m in metrics)}, mean over seeds."
    notes = ["Params: trainable parameters; FLOPs: as recorded by the harness (— when not measured); "
             "Inference: wall-clock seconds to super-resolve all test scenes (infer_seconds); Training: "
             "wall-clock seconds of training (train_seconds); both on the machine and device that ran them "
             "(see `hsibench bench` for controlled timings)."] + run_notes(records, results_dir)
    table = Table("efficiency", "Efficiency beside quality", caption, header, rows, csv_rows, group_starts,
                  align="lll" + "r" * 4 + "c" * len(metrics), notes=notes)
    latex = replace(table, header=["Dataset", "Scale", "Method", "Params", "GFLOPs", "Infer.", "Train"]
                    + [metric_short_heading(m) for m in metrics], rows=short_rows, csv_rows=[], latex=None,
                    caption=f"{caption[:-1]}: inference (all test scenes) and training in seconds; {metric_units(metrics)}.")
    table.latex = narrow(latex, ("dataset", "scale"))
    return table
