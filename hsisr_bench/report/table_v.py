"""The paper's Table V layout (methods × dataset/scale, PSNR / SSIM / SAM) and the end-of-run summary.

Markdown and CSV keep the paper's wide layout (one column per method, cells ``PSNR / SSIM / SAM``).
Five methods × three metrics do not fit a printed page that way, so the LaTeX form has one row per
method, the metrics as sub-columns and the paper's values as a second group of sub-columns.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from hsisr_bench.report import PAPER_METHOD_ORDER, dataset_title, method_sort_key, method_title
from hsisr_bench.report import published as pub
from hsisr_bench.report.aggregation import Aggregate, aggregate, cells_of
from hsisr_bench.report.captions import run_notes
from hsisr_bench.report.model import Part, Table, narrow, value_part
from hsisr_bench.report.values import (
    DASH,
    TABLE_METRICS,
    diff,
    format_diff,
    format_published,
    metric_heading,
    metric_name,
    metric_short_heading,
    metric_units,
    rank_styles,
)

_LEGEND = "best in bold, second underlined, per dataset × scale and metric; — : not run"


def _published_for(dataset: str, scale: int, key: str) -> Optional[pub.Published]:
    """The paper's Table V value for a run-folder name (``ssrnet``; variants such as ``ssrnet+nolff`` have none)."""
    method, _, variant = key.partition("+")
    return pub.table_v(dataset, scale, method, variant or None)


def _csv_row(dataset, scale, key, label, metric, agg: Optional[Aggregate], style, ref) -> dict:
    row = {
        "dataset": dataset, "scale": scale, "method": key, "label": label, "metric": metric,
        "mean": agg.mean.get(metric) if agg else None,
        "std": agg.std.get(metric) if agg else None,
        "n_seeds": len(agg.records) if agg else 0,
        "seeds": " ".join(str(s) for s in agg.seeds) if agg else "",
        "rank": {"best": 1, "second": 2}.get(style or "", None),
    }
    if ref is not None:
        row["published"] = ref.get(metric)
        row["diff"] = diff(row["mean"], ref.get(metric))
        row["published_source"] = f"{ref.source}, {pub.PAPER_SHORT}" if ref.get(metric) is not None else None
    return row


def table_v(records: Sequence[Mapping[str, Any]], results_dir: Optional[str | Path] = None, *,
            published: bool = True, all_paper_methods: bool = True,
            metrics: Sequence[str] = TABLE_METRICS, title: str = "Table V (this run)", name: str = "table5") -> Table:
    """The paper's Table V layout: rows dataset × scale, one column per method, cells PSNR / SSIM / SAM.

    Args:
        records: finished runs (see :func:`hsisr_bench.report.load_records`).
        results_dir: the results folder (band counts for the crop note), optional.
        published: add a "paper" row (Table V of the paper) and a "Δ" row (ours − paper) under each of ours.
        all_paper_methods: show the paper's five methods as columns even when some did not run.
        metrics: the metrics of each cell, in order.
        title, name: the table's title and file stem.

    Returns:
        The :class:`Table` (its :attr:`~Table.latex` holds the one-row-per-method LaTeX layout).
    """
    aggs = aggregate(records)
    cells = cells_of(aggs)
    keys = {k for _, _, k in aggs}
    if all_paper_methods:
        keys |= set(PAPER_METHOD_ORDER)
    keys = sorted(keys, key=method_sort_key)
    labels = {k: next((a.label for a in aggs.values() if a.key == k), method_title(k)) for k in keys}
    header = ["Dataset", "Scale"] + (["Source"] if published else []) + [labels[k] for k in keys]
    rows, csv_rows, group_starts = [], [], set()
    any_published = False
    styles_of = {}
    for dataset, scale in cells:
        group_starts.add(len(rows))
        lead = [[Part(dataset_title(dataset))], [Part(f"×{scale}")]]
        ours_row = lead + ([[Part("ours")]] if published else [])
        styles = {m: rank_styles({k: aggs[(dataset, scale, k)].mean.get(m) if (dataset, scale, k) in aggs else None
                                  for k in keys}, m) for m in metrics}
        styles_of[(dataset, scale)] = styles
        for key in keys:
            agg = aggs.get((dataset, scale, key))
            if agg is None or not any(m in agg.mean for m in metrics):
                ours_row.append([Part(DASH)])
            else:
                ours_row.append([value_part(m, agg.mean.get(m), agg.std.get(m), styles[m][key]) for m in metrics])
        rows.append(ours_row)
        if published and any(_published_for(dataset, scale, key) for key in keys):
            any_published = True
            paper_row = [[Part("")], [Part("")], [Part("paper")]]
            diff_row = [[Part("")], [Part("")], [Part("Δ")]]
            for key in keys:
                ref = _published_for(dataset, scale, key)
                agg = aggs.get((dataset, scale, key))
                if ref is None:
                    paper_row.append([Part(DASH)])
                    diff_row.append([Part(DASH)])
                    continue
                paper_row.append([Part(format_published(m, ref.get(m))) for m in metrics])
                if agg is None:
                    diff_row.append([Part(DASH)])
                else:
                    diff_row.append([Part(format_diff(m, diff(agg.mean.get(m), ref.get(m)))) for m in metrics])
            rows += [paper_row, diff_row]
        for key in keys:
            agg = aggs.get((dataset, scale, key))
            ref = _published_for(dataset, scale, key)
            all_metrics = list(metrics) + sorted(m for m in (agg.mean if agg else {}) if m not in metrics)
            for metric in all_metrics:
                value = agg.mean.get(metric) if agg else None
                if value is None and (ref is None or ref.get(metric) is None):
                    continue
                csv_rows.append(_csv_row(dataset, scale, key, labels[key], metric, agg,
                                         styles.get(metric, {}).get(key), ref if published else None))
    notes = run_notes(records, results_dir)
    if any_published:
        notes.append(f"paper: Table V of {pub.PAPER_REFERENCE}; Δ = ours − paper.")
    cells_text = " / ".join(metric_heading(m) for m in metrics)
    caption = f"Cells: {cells_text}, mean over test scenes (top-left region, modcrop); {_LEGEND}."
    table = Table(name, title, caption, header, rows, csv_rows, group_starts,
                  align="ll" + ("l" if published else "") + "c" * len(keys), notes=notes)
    table.latex = _table_v_latex(table, aggs, cells, keys, labels, styles_of, metrics, any_published,
                                 run_notes(records, results_dir))
    return table


def _table_v_latex(table: Table, aggs, cells, keys, labels, styles_of, metrics, with_paper: bool,
                   notes: list[str]) -> Table:
    """Table V for LaTeX: one row per method; this run's metrics, then the paper's, as sub-columns."""
    rows, group_starts = [], set()
    for dataset, scale in cells:
        group_starts.add(len(rows))
        for index, key in enumerate(keys):
            agg = aggs.get((dataset, scale, key))
            first = index == 0
            row = [[Part(dataset_title(dataset) if first else "")], [Part(f"×{scale}" if first else "")],
                   [Part(labels[key])]]
            if agg is None or not any(m in agg.mean for m in metrics):
                row.append([Part(DASH)])
            else:
                styles = styles_of[(dataset, scale)]
                row.append([value_part(m, agg.mean.get(m), agg.std.get(m), styles[m][key]) for m in metrics])
            if with_paper:
                ref = _published_for(dataset, scale, key)
                row.append([Part(DASH)] if ref is None else [Part(format_published(m, ref.get(m))) for m in metrics])
            rows.append(row)
    short = tuple(metric_short_heading(m) for m in metrics)
    header = ["Dataset", "Scale", "Method", "This run"] + (["Paper"] if with_paper else [])
    subheaders = [(), (), (), short] + ([tuple(metric_name(m) for m in metrics)] if with_paper else [])
    units = metric_units(metrics)
    caption = (f"{' / '.join(metric_name(m) for m in metrics)} ({units}), mean over test scenes; "
               f"{_LEGEND}" + ("; Paper: the published values" if with_paper else "") + ".")
    if with_paper:
        notes = notes + [f"Paper: Table V of {pub.PAPER_REFERENCE}; differences (Δ) in report.md and "
                         f"{table.name}.csv."]
    latex = Table(table.name, table.title, caption, header, rows, [], group_starts,
                  align="lll" + "c" * (len(header) - 3), notes=notes, subheaders=subheaders)
    return narrow(latex, ("dataset", "scale"))


def summary_table(records: Sequence[Mapping[str, Any]], *, plain: bool = True) -> str:
    """A compact Table V of what ran (no published rows, only the methods that ran): ``hsibench run`` prints it.

    Args:
        records: finished runs.
        plain: plain text for a terminal (no ``**``/``<u>`` markup; best marked ``*``, second ``+``);
            ``False`` gives markdown with the notes, for files.

    Returns:
        The title, caption and table; ``"No finished run."`` when ``records`` is empty.
    """
    if not records:
        return "No finished run.\n"
    table = table_v(list(records), None, published=False, all_paper_methods=False, title="Summary")
    if not plain:
        return table.to_markdown()
    cells_text = " / ".join(metric_heading(m) for m in TABLE_METRICS)
    table.caption = f"{cells_text}, mean over test scenes; * best, + second per row and metric; — : not run."
    return table.to_terminal()
