"""Significance of the lead: a paired Wilcoxon test of the best method against the second, across test scenes."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from hsisr_bench.report import dataset_title
from hsisr_bench.report.aggregation import Aggregate, aggregate, cells_of
from hsisr_bench.report.captions import run_notes
from hsisr_bench.report.model import Part, Table, narrow
from hsisr_bench.report.values import DASH, TABLE_METRICS, format_diff, higher_is_better, metric_name

#: Significance level of the paired Wilcoxon test.
DEFAULT_ALPHA = 0.05


def min_scenes_for(alpha: float = DEFAULT_ALPHA) -> int:
    """Smallest number of paired scenes for which a two-sided Wilcoxon test can reach ``p < alpha``.

    With n pairs the most extreme outcome (all differences of one sign) has exact two-sided
    p = 2 / 2**n, so n must satisfy 2**(1 - n) < alpha (n = 6 for alpha = 0.05).
    """
    n = 1
    while 2.0 ** (1 - n) >= alpha:
        n += 1
    return n


@dataclass(frozen=True)
class PairedTest:
    """The paired test of the best method against the second on one (dataset, scale, metric)."""

    dataset: str
    scale: int
    metric: str
    best: str
    second: str
    n: int
    lead: float
    wins: int
    p_value: Optional[float]
    verdict: str

    @property
    def short_verdict(self) -> str:
        """The verdict without its explanation (``n too small``), for narrow tables."""
        return self.verdict.split(" (", 1)[0]


def paired_test(best: Aggregate, second: Aggregate, metric: str, alpha: float = DEFAULT_ALPHA) -> PairedTest:
    """Wilcoxon signed-rank test (two-sided) of ``best`` vs ``second`` on the scenes both scored.

    Args:
        best, second: the two methods' aggregates (per-scene values averaged over seeds).
        metric: the metric compared.
        alpha: significance level.

    Returns:
        A :class:`PairedTest`; ``verdict`` says ``n too small`` when no outcome could be significant.
    """
    from scipy.stats import wilcoxon

    scenes = sorted(set(best.per_scene.get(metric, {})) & set(second.per_scene.get(metric, {})))
    a = np.array([best.per_scene[metric][s] for s in scenes])
    b = np.array([second.per_scene[metric][s] for s in scenes])
    sign = 1.0 if higher_is_better(metric) else -1.0
    lead_per_scene = sign * (a - b)  # > 0 where the best method is better on that scene
    n = len(scenes)
    lead = float(lead_per_scene.mean()) if n else float("nan")
    wins = int((lead_per_scene > 0).sum())
    p_value = None
    needed = min_scenes_for(alpha)
    if n < needed:
        verdict = f"n too small (n = {n}; p < {alpha:g} needs n ≥ {needed})"
    elif not np.any(lead_per_scene != 0):
        verdict = "no difference"
    else:
        p_value = float(wilcoxon(a, b, alternative="two-sided").pvalue)
        verdict = "significant" if p_value < alpha else "not significant"
    return PairedTest(best.dataset, best.scale, metric, best.label, second.label, n, lead, wins, p_value, verdict)


def significance_table(records: Sequence[Mapping[str, Any]], results_dir: Optional[str | Path] = None, *,
                       metrics: Sequence[str] = TABLE_METRICS, alpha: float = DEFAULT_ALPHA) -> Optional[Table]:
    """For each (dataset, scale, metric): is the best method's lead over the second significant across scenes?

    Returns:
        The :class:`Table`, or ``None`` when no cell has two methods with per-scene values.
    """
    aggs = aggregate(records)
    tests = []
    for dataset, scale in cells_of(aggs):
        for metric in metrics:
            ranked = [a for (d, s, _), a in aggs.items() if (d, s) == (dataset, scale) and a.per_scene.get(metric)]
            if len(ranked) < 2:
                continue
            ranked.sort(key=lambda a: a.mean[metric], reverse=higher_is_better(metric))
            tests.append(paired_test(ranked[0], ranked[1], metric, alpha))
    if not tests:
        return None
    header = ["Dataset", "Scale", "Metric", "Best", "Second", "Scenes", "Mean lead", "Wins", "p", "Verdict"]
    rows, short_rows, csv_rows, group_starts = [], [], [], set()
    previous = None
    for test in tests:
        first = (test.dataset, test.scale) != previous
        if first:
            group_starts.add(len(rows))
            previous = (test.dataset, test.scale)
        p_text = DASH if test.p_value is None else f"{test.p_value:.3g}"
        lead = format_diff(test.metric, test.lead) if math.isfinite(test.lead) else DASH
        cells = [[Part(metric_name(test.metric))], [Part(test.best)], [Part(test.second)]]
        rows.append([[Part(dataset_title(test.dataset))], [Part(f"×{test.scale}")], *cells, [Part(str(test.n))],
                     [Part(lead)], [Part(f"{test.wins}/{test.n}")], [Part(p_text)], [Part(test.verdict)]])
        short_rows.append([[Part(dataset_title(test.dataset) if first else "")], [Part(f"×{test.scale}" if first else "")],
                           *cells, [Part(lead)], [Part(f"{test.wins}/{test.n}")], [Part(p_text)],
                           [Part(test.short_verdict)]])
        csv_rows.append({"dataset": test.dataset, "scale": test.scale, "metric": test.metric, "best": test.best,
                         "second": test.second, "n_scenes": test.n, "mean_lead": test.lead, "wins": test.wins,
                         "p_value": test.p_value, "alpha": alpha, "verdict": test.verdict})
    caption = (f"Two-sided Wilcoxon signed-rank test of the best method against the second, paired over "
               f"the test scenes both scored, α = {alpha:g}.")
    notes = [f"Test: scipy.stats.wilcoxon on per-scene values averaged over seeds. Mean lead: best − second, "
             f"in the better direction; wins: scenes where the best is better. With n scenes the smallest "
             f"possible p is 2/2^n, so fewer than {min_scenes_for(alpha)} scenes cannot show significance "
             f"(n too small)."] + run_notes(records, results_dir)
    table = Table("significance", "Significance of the lead", caption, header, rows, csv_rows, group_starts,
                  align="lllllrrrrl", notes=notes)
    latex = replace(table, header=["Dataset", "Scale", "Metric", "Best", "Second", "Lead", "Wins", "p", "Verdict"],
                    rows=short_rows, csv_rows=[], align="llllllrrl", latex=None)
    table.latex = narrow(latex, ("dataset", "scale"))
    return table
