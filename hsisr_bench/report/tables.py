"""Result tables in the layouts of the SSRNet paper: Table V, the ablations (Tables I–IV), significance, efficiency.

Every table is built once as a :class:`~hsisr_bench.report.model.Table` (header, rows of styled cells,
a short caption, notes, tidy CSV rows) and rendered three ways: markdown (tabulate, GitHub pipes),
LaTeX (booktabs, a ``table*`` float that fits an article page or a two-column ``table*``; needs
``\\usepackage{booktabs}``) and CSV (one row per value, for spreadsheets).

In each (dataset, scale) row the best value of each metric is in bold and the second underlined,
ranked on the displayed (rounded) values, higher-is-better or lower-is-better as the metric says.
Cells of methods or cells that did not run are shown as "—", never filled in.

This module assembles the whole report and re-exports the public names of the modules that do
each job: ``values`` (metric metadata, formatting, ranking), ``aggregation`` (averaging over seeds),
``captions`` (the run notes), ``selection`` (which runs go in which table), ``table_v``,
``statistics`` (significance), ``efficiency``, ``ablation`` (layouts), ``render_markdown`` /
``render_latex`` / ``render_csv`` and ``writing`` (files).

Usage::

    from hsisr_bench.report import load_records
    from hsisr_bench.report.tables import build_report, write_report
    tables = build_report(load_records("results"), "results")
    write_report(tables, "results/reports", formats=("md", "tex", "csv"))
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from hsisr_bench.errors import ResultsError
from hsisr_bench.report.ablation import ablation_table
from hsisr_bench.report.aggregation import Aggregate, aggregate
from hsisr_bench.report.captions import describe_runs, run_notes
from hsisr_bench.report.efficiency import efficiency_table
from hsisr_bench.report.model import Part, Table, value_part
from hsisr_bench.report.render_latex import latex_escape, latex_text
from hsisr_bench.report.render_markdown import render_markdown
from hsisr_bench.report.selection import (
    effective_options,
    experiment_records,
    is_table_v_experiment,
    paper_table_of,
    report_experiments,
    table_v_records,
)
from hsisr_bench.report.statistics import DEFAULT_ALPHA, PairedTest, min_scenes_for, paired_test, significance_table
from hsisr_bench.report.table_v import summary_table, table_v
from hsisr_bench.report.values import (
    DASH,
    TABLE_METRICS,
    decimals,
    format_diff,
    format_published,
    format_value,
    higher_is_better,
    metric_heading,
    metric_name,
    rank_styles,
)
from hsisr_bench.report.writing import FORMATS, write_report

__all__ = [
    "Aggregate", "DASH", "DEFAULT_ALPHA", "FORMATS", "PairedTest", "Part", "TABLE_METRICS", "Table",
    "ablation_table", "aggregate", "build_report", "decimals", "describe_runs", "effective_options",
    "efficiency_table", "experiment_records", "format_diff", "format_published", "format_value",
    "higher_is_better", "is_table_v_experiment", "latex_escape", "latex_text", "metric_heading", "metric_name",
    "min_scenes_for", "paired_test", "paper_table_of", "rank_styles", "render_markdown", "report_experiments",
    "run_notes", "significance_table", "summary_table", "table_v", "table_v_records", "value_part",
    "write_report",
]


def build_report(records: Sequence[Mapping[str, Any]], results_dir: Optional[str | Path] = None, *,
                 published: bool = True, experiment: Optional[str] = None,
                 alpha: float = DEFAULT_ALPHA) -> list[Table]:
    """Every table of a report: Table V, significance, efficiency, and one table per ablation experiment.

    Args:
        records: finished runs.
        results_dir: the results folder (band counts for crop notes), optional.
        published: show the paper's numbers beside ours.
        experiment: only this experiment (a Table V experiment such as ``table5`` gives Table V,
            significance and efficiency of its runs; any other gives its ablation table).
        alpha: significance level of the paired test.

    Returns:
        The tables, in report order.

    Raises:
        ResultsError: ``experiment`` is given but no finished run belongs to it.
    """
    if experiment is not None and not is_table_v_experiment(experiment):
        table = ablation_table(records, experiment, results_dir, published=published)
        if table is None:
            known = report_experiments(records)
            raise ResultsError(
                f"No finished run of experiment '{experiment}' in the results "
                f"(experiments found: {', '.join(known) or 'none'}). "
                f"Run it with `hsibench run --experiment {experiment}`, or pick one of those with --experiment.")
        return [table]
    main_records = table_v_records(records) if experiment is None else experiment_records(records, experiment)
    if not main_records:
        raise ResultsError(f"No finished run of experiment '{experiment}' in the results. "
                           f"Run it with `hsibench run --experiment {experiment}`.")
    tables: list[Optional[Table]] = [
        table_v(main_records, results_dir, published=published),
        significance_table(main_records, results_dir, alpha=alpha),
        efficiency_table(main_records, results_dir),
    ]
    if experiment is None:
        tables += [ablation_table(records, name, results_dir, published=published)
                   for name in report_experiments(records)]
    return [t for t in tables if t is not None]
