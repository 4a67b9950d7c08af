"""Ablation tables in the layout of the paper's Tables I–IV: one row per setting, what varies, then the metrics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from hsisr_bench.report import dataset_sort_key, dataset_title, method_title
from hsisr_bench.report import published as pub
from hsisr_bench.report.aggregation import Aggregate, aggregate
from hsisr_bench.report.captions import run_notes
from hsisr_bench.report.model import Part, Table, narrow, value_part
from hsisr_bench.report.selection import effective_options, experiment_records, paper_table_of, record_loss
from hsisr_bench.report.values import (
    DASH,
    TABLE_METRICS,
    diff,
    format_count,
    format_count_short,
    format_diff,
    format_published,
    metric_heading,
    metric_name,
    metric_short_heading,
    metric_units,
    rank_styles,
)


def _factors(aggs: Sequence[Aggregate]) -> tuple[list[str], list[dict[str, str]]]:
    """Columns for what varies between the rows of an ablation (loss, then options), and each row's values."""
    values = []
    for agg in aggs:
        record = agg.records[0]
        row = {"loss": str(record_loss(record) or "default")}
        row.update({str(k): _factor_text(v) for k, v in effective_options(record).items()})
        values.append(row)
    keys: list[str] = []
    for row in values:
        keys += [k for k in row if k not in keys]
    varying = [k for k in keys if len({row.get(k, "default") for row in values}) > 1]
    if not varying and len(aggs) > 1:
        varying = ["variant"]
        for agg, row in zip(aggs, values):
            row["variant"] = agg.key.partition("+")[2] or "default"
    return varying, [{k: row.get(k, "default") for k in varying} for row in values]


def _factor_text(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value)
    return str(value)


def ablation_table(records: Sequence[Mapping[str, Any]], experiment: str, results_dir: Optional[str | Path] = None,
                   *, published: bool = True, metrics: Sequence[str] = TABLE_METRICS) -> Optional[Table]:
    """An ablation table in the layout of the paper's Tables I–IV: one row per setting, metric columns.

    The columns name what varies between the rows (the loss, or the options such as ``lff``,
    ``grl``, ``block``, the number of modules), then parameters when recorded, then the metrics.
    With ``published``, the paper's value of the matching row and the difference follow.

    Args:
        records: all records; those of ``experiment`` are selected by :func:`experiment_records`.
        experiment: the experiment name (``table2_ablation``).
        results_dir: the results folder (band counts for crop notes), optional.
        published: add the paper's values (Tables I–IV of the paper) and Δ = ours − paper.
        metrics: metric columns.

    Returns:
        The :class:`Table`, or ``None`` when no record belongs to the experiment.
    """
    chosen = experiment_records(records, experiment)
    if not chosen:
        return None
    aggs = list(aggregate(chosen).values())
    paper_table = paper_table_of(experiment)
    factor_keys, factor_values = _factors(aggs)
    show_params = any(a.field_mean("params") is not None for a in aggs)
    header = ["Dataset", "Scale", "Method"] + factor_keys + (["Params"] if show_params else []) + \
        [metric_heading(m) for m in metrics]
    refs = [pub.ablation_match(paper_table, {**a.records[0], "options": effective_options(a.records[0]),
                                             "loss": record_loss(a.records[0])})
            if (published and paper_table) else None for a in aggs]
    show_paper = published and any(r is not None for r in refs)
    paper_params = show_paper and any(r is not None and r.params for r in refs)
    if show_paper:
        header += ["Paper", "Δ"]
    rows, tex_rows, csv_rows, group_starts = [], [], [], set()
    cells = sorted({(a.dataset, a.scale) for a in aggs}, key=lambda c: (dataset_sort_key(c[0]), c[1]))
    for dataset, scale in cells:
        group_starts.add(len(rows))
        members = [i for i, a in enumerate(aggs) if (a.dataset, a.scale) == (dataset, scale)]
        styles = {m: rank_styles({i: aggs[i].mean.get(m) for i in members}, m) for m in metrics}
        for position, i in enumerate(members):
            agg, ref = aggs[i], refs[i]
            params = agg.field_mean("params")
            lead = [[Part(method_title(agg.method, agg.records[0]))]] + [[Part(factor_values[i][k])] for k in factor_keys]
            values = [value_part(m, agg.mean.get(m), agg.std.get(m), styles[m][i]) for m in metrics]
            row = [[Part(dataset_title(dataset))], [Part(f"×{scale}")], *lead]
            tex = [[Part(dataset_title(dataset) if position == 0 else "")], [Part(f"×{scale}" if position == 0 else "")],
                   *lead]
            if show_params:
                row.append([Part(format_count(params))])
                tex.append([Part(format_count_short(params))])
            row += [[v] for v in values]
            tex.append(values)
            if show_paper:
                if ref is None:
                    row += [[Part(DASH)], [Part(DASH)]]
                    tex.append([Part(DASH)])
                else:
                    paper_text = [Part(format_published(m, ref.get(m))) for m in metrics]
                    row += [paper_text + ([Part(f"{ref.params // 1000}K params")] if ref.params else []),
                            [Part(format_diff(m, diff(agg.mean.get(m), ref.get(m)))) for m in metrics]]
                    tex.append(paper_text + ([Part(f"{ref.params // 1000}K" if ref.params else DASH)]
                                             if paper_params else []))
            rows.append(row)
            tex_rows.append(tex)
            for metric in metrics:
                csv_row = {"experiment": experiment, "dataset": dataset, "scale": scale, "method": agg.key,
                           **{f"factor_{k}": factor_values[i][k] for k in factor_keys}, "params": params,
                           "metric": metric, "mean": agg.mean.get(metric), "std": agg.std.get(metric),
                           "n_seeds": len(agg.records), "rank": {"best": 1, "second": 2}.get(styles[metric][i] or "")}
                if show_paper:
                    csv_row["published"] = ref.get(metric) if ref else None
                    csv_row["diff"] = diff(agg.mean.get(metric), ref.get(metric)) if ref else None
                    csv_row["published_source"] = f"{ref.source}, {pub.PAPER_SHORT}" if ref else None
                csv_rows.append(csv_row)
    title = f"Ablation {experiment}" + (f" (layout of the paper's Table {paper_table})" if paper_table else "")
    what = pub.ABLATION_TITLES.get(paper_table or "", "")
    caption = (f"{what + '. ' if what else ''}Each row is one setting; columns before the metrics name what varies. "
               "Best in bold, second underlined, per dataset × scale and metric.")
    notes = run_notes(chosen, results_dir)
    if show_paper:
        notes.append(f"Paper: Table {paper_table} of {pub.PAPER_REFERENCE}; Δ = ours − paper; — : the paper has "
                     f"no such row.")
    align = "lll" + "c" * len(factor_keys) + ("r" if show_params else "") + "c" * len(metrics) + ("cc" if show_paper else "")
    table = Table(f"ablation_{experiment}", title, caption, header, rows, csv_rows, group_starts, align=align,
                  notes=notes)
    lead_headings = header[:3 + len(factor_keys) + (1 if show_params else 0)]
    paper_subs = tuple(metric_name(m) for m in metrics) + (("Params",) if paper_params else ())
    latex = Table(table.name, title, f"{caption} Units: {metric_units(metrics)}.",
                  lead_headings + ["This run"] + (["Paper"] if show_paper else []), tex_rows, [], group_starts,
                  align="lll" + "c" * len(factor_keys) + ("r" if show_params else "") + "c" + ("c" if show_paper else ""),
                  notes=[n.replace("Δ = ours − paper; ", "differences (Δ) in report.md; ") for n in notes],
                  subheaders=[()] * len(lead_headings) + [tuple(metric_short_heading(m) for m in metrics)]
                  + ([paper_subs] if show_paper else []))
    table.latex = narrow(latex, ("dataset", "scale", "method"))
    return table
