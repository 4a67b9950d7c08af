"""Result tables in the layouts of the SSRNet paper: Table V, the ablations (Tables I–IV), significance, efficiency.

Every table is built once as a :class:`Table` (header, rows of styled cells, caption, tidy CSV rows)
and rendered three ways: markdown (tabulate, GitHub pipes), LaTeX (booktabs, a ``table`` float ready
to paste; needs ``\\usepackage{booktabs}``) and CSV (one row per value, for spreadsheets).

In each (dataset, scale) row the best value of each metric is in bold and the second underlined,
ranked on the displayed (rounded) values, higher-is-better or lower-is-better as the metric says.
Cells of methods or cells that did not run are shown as "—", never filled in.

Usage::

    from hsisr_bench.report import load_records
    from hsisr_bench.report.tables import build_report, write_report
    tables = build_report(load_records("results"), "results")
    write_report(tables, "results/reports", formats=("md", "tex", "csv"))
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

import numpy as np
from tabulate import tabulate

from hsisr_bench.errors import ConfigError, HsiBenchError, ResultsError
from hsisr_bench.metrics import METRICS
from hsisr_bench.report import (
    PAPER_METHOD_ORDER,
    band_count,
    crop_note,
    dataset_sort_key,
    dataset_title,
    is_number,
    method_key,
    method_label,
    method_sort_key,
    method_title,
)
from hsisr_bench.report import published as pub

#: The metrics of the paper's tables, in its column order.
TABLE_METRICS = ("psnr", "ssim", "sam")

#: Significance level of the paired Wilcoxon test.
DEFAULT_ALPHA = 0.05

DASH = "—"


# ------------------------------------------------------------------------------------ metric metadata


def _info(metric: str) -> tuple[str, str, bool, int]:
    """``(display name, unit, higher is better, decimals)`` of a metric, from ``hsisr_bench.metrics.METRICS``.

    Raises:
        ConfigError: an unknown metric.
    """
    if metric in METRICS:
        info = METRICS[metric]
        return info.title, "°" if info.unit == "deg" else info.unit, bool(info.higher_is_better), int(info.decimals)
    raise ConfigError(f"Unknown metric '{metric}'; known: {', '.join(sorted(METRICS))}.")


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of ``metric`` is better (``hsisr_bench.metrics.METRICS[metric].higher_is_better``)."""
    return _info(metric)[2]


def metric_name(metric: str) -> str:
    """Display name of a metric (``PSNR``)."""
    return _info(metric)[0] if _known(metric) else metric.upper()


def metric_heading(metric: str) -> str:
    """Column heading with unit and direction: ``PSNR (dB) ↑``, ``SAM (°) ↓``."""
    name, unit, higher, _ = _info(metric)
    return f"{name}{f' ({unit})' if unit else ''} {'↑' if higher else '↓'}"


def decimals(metric: str) -> int:
    """Decimals a metric is shown with (the paper's: PSNR 2, SSIM 3, SAM 2, ...)."""
    return _info(metric)[3] if _known(metric) else 4


def _known(metric: str) -> bool:
    return metric in METRICS


# ------------------------------------------------------------------------------------------ aggregation


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


# ------------------------------------------------------------------------------------------ table model


@dataclass(frozen=True)
class Part:
    """One formatted value inside a cell; ``style`` is ``None``, ``"best"`` (bold) or ``"second"`` (underlined)."""

    text: str
    style: Optional[str] = None


@dataclass
class Table:
    """A rendered-format-independent table.

    Attributes:
        name: file stem (``table5``, ``ablation_table2_ablation``).
        title: short title (``Table V (this run)``).
        caption: protocol, metric conventions, test scenes, seeds, crop notes, legend.
        header: column headings.
        rows: each row a list of cells; a cell is a list of :class:`Part` joined by `` / ``.
        group_starts: indices of rows that begin a new group (a rule above them in LaTeX).
        csv_rows: tidy rows (dicts) for the CSV file.
        align: one of ``l``/``c``/``r`` per column (LaTeX).
    """

    name: str
    title: str
    caption: str
    header: list[str]
    rows: list[list[list[Part]]]
    csv_rows: list[dict] = field(default_factory=list)
    group_starts: set[int] = field(default_factory=set)
    align: str = ""

    def to_markdown(self) -> str:
        """The table as GitHub markdown: a bold title line, the caption, then a pipe table."""
        body = [[_md_cell(cell) for cell in row] for row in self.rows]
        header = [_md_escape(h) for h in self.header]
        table = tabulate(body, headers=header, tablefmt="github", disable_numparse=True)
        return f"**{self.title}.** {_md_escape(self.caption)}\n\n{table}\n"

    def to_latex(self) -> str:
        """The table as a LaTeX ``table`` float with booktabs rules (``\\usepackage{booktabs}`` needed)."""
        align = self.align or ("l" * 2 + "c" * (len(self.header) - 2))
        lines = [
            "% Generated by hsibench report. Needs \\usepackage{booktabs} in the preamble.",
            "\\begin{table}[htbp]",
            "\\centering",
            "\\small",
            f"\\caption{{{latex_escape(self.title)}. {latex_escape(self.caption)}}}",
            f"\\label{{tab:{re.sub(r'[^A-Za-z0-9:-]', '-', self.name)}}}",
            f"\\begin{{tabular}}{{{align}}}",
            "\\toprule",
            " & ".join(latex_escape(h) for h in self.header) + " \\\\",
            "\\midrule",
        ]
        for index, row in enumerate(self.rows):
            if index in self.group_starts and index > 0:
                lines.append("\\midrule")
            lines.append(" & ".join(_latex_cell(cell) for cell in row) + " \\\\")
        lines += ["\\bottomrule", "\\end{tabular}", "\\end{table}"]
        return "\n".join(lines) + "\n"

    def to_csv(self) -> str:
        """The tidy rows as CSV text (header from the union of the rows' keys, in first-seen order)."""
        columns: list[str] = []
        for row in self.csv_rows:
            columns += [key for key in row if key not in columns]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in self.csv_rows:
            writer.writerow({key: ("" if value is None else value) for key, value in row.items()})
        return buffer.getvalue()


def _md_escape(text: str) -> str:
    return str(text).replace("|", "\\|")


def _styled_cell(cell: Sequence[Part], escape: Callable[[Any], str], best: str, second: str) -> str:
    """Join a cell's parts with `` / ``, each escaped and wrapped in the ``best``/``second`` format."""
    formats = {"best": best, "second": second}
    return " / ".join(formats.get(part.style, "{}").format(escape(part.text)) for part in cell)


def _md_cell(cell: Sequence[Part]) -> str:
    return _styled_cell(cell, _md_escape, "**{}**", "<u>{}</u>")


_LATEX_SPECIALS = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "<": r"\textless{}", ">": r"\textgreater{}",
}
_LATEX_UNICODE = {
    "×": r"$\times$", "±": r"$\pm$", "↑": r"$\uparrow$", "↓": r"$\downarrow$", "°": r"$^\circ$",
    "–": "--", "—": "---", "−": "$-$", "Δ": r"$\Delta$", "·": r"$\cdot$", "≥": r"$\geq$", "≤": r"$\leq$",
    "σ": r"$\sigma$", "α": r"$\alpha$", "…": r"\ldots{}", "’": "'", "“": "``", "”": "''",
}


def latex_escape(text: Any) -> str:
    """Escape LaTeX specials and turn the Unicode symbols the tables use into math-mode commands.

    Any other non-ASCII character is transliterated (accents dropped) so that pdflatex compiles the
    result without extra packages.
    """
    out = []
    for char in str(text):
        if char in _LATEX_SPECIALS:
            out.append(_LATEX_SPECIALS[char])
        elif char in _LATEX_UNICODE:
            out.append(_LATEX_UNICODE[char])
        elif ord(char) < 128:
            out.append(char)
        else:
            out.append(unicodedata.normalize("NFKD", char).encode("ascii", "ignore").decode("ascii") or "?")
    return "".join(out)


def _latex_cell(cell: Sequence[Part]) -> str:
    return _styled_cell(cell, latex_escape, "\\textbf{{{}}}", "\\underline{{{}}}")


# ------------------------------------------------------------------------------------------ formatting


def format_value(metric: str, mean: Optional[float], std: Optional[float] = None) -> str:
    """``44.12`` or ``44.12 ± 0.05`` with the metric's decimals; ``—`` when ``mean`` is ``None``."""
    if mean is None:
        return DASH
    d = decimals(metric)
    return f"{mean:.{d}f}" if std is None else f"{mean:.{d}f} ± {std:.{d}f}"


def format_published(metric: str, value: Optional[float]) -> str:
    """A published value with the paper's own decimals (PSNR 2, SSIM 3, SAM 2); ``—`` for ``None``."""
    if value is None:
        return DASH
    return f"{value:.{pub.PUBLISHED_DECIMALS.get(metric, decimals(metric))}f}"


def format_diff(metric: str, diff: Optional[float]) -> str:
    """A signed difference (``+0.23``, ``−0.0010``) with the metric's decimals; ``—`` for ``None``."""
    if diff is None:
        return DASH
    text = f"{abs(diff):.{decimals(metric)}f}"
    return ("−" if diff < 0 and float(text) != 0 else "+") + text


def rank_styles(values: Mapping[str, Optional[float]], metric: str) -> dict[str, Optional[str]]:
    """Bold the best and underline the second of ``values`` (key -> value), ranked on rounded values.

    Ties share a rank (dense ranking); with fewer than two values nothing is marked.

    Returns:
        key -> ``"best"``, ``"second"`` or ``None``.
    """
    present = {k: round(v, decimals(metric)) for k, v in values.items() if v is not None}
    styles: dict[str, Optional[str]] = {k: None for k in values}
    if len(present) < 2:
        return styles
    distinct = sorted(set(present.values()), reverse=higher_is_better(metric))
    for key, value in present.items():
        rank = distinct.index(value)
        styles[key] = "best" if rank == 0 else "second" if rank == 1 else None
    return styles


# ------------------------------------------------------------------------------------------ captions


def _protocol_name(record: Mapping[str, Any]) -> str:
    protocol = record.get("protocol")
    if isinstance(protocol, Mapping):
        protocol = protocol.get("name") or protocol.get("profile")
    return str(protocol) if protocol else "unrecorded"


def _conventions_text(conventions: Any, metrics: Sequence[str] = TABLE_METRICS) -> str:
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
        return "; ".join(f"{k}: {_conventions_text(v) if isinstance(v, Mapping) else v}" for k, v in conventions.items())


def _n_scenes(record: Mapping[str, Any]) -> Optional[int]:
    if is_number(record.get("n_test_scenes")):
        return int(record["n_test_scenes"])
    return len(record["per_image"]) if record.get("per_image") else None


def describe_runs(records: Sequence[Mapping[str, Any]], results_dir: Optional[str | Path] = None) -> str:
    """The caption text every table carries: protocol, metric conventions, test scenes, seeds, crop notes.

    Args:
        records: the records the table shows.
        results_dir: the results folder (to read band counts from ``wavelengths.json``), optional.
    """
    protocols = sorted({_protocol_name(r) for r in records})
    conventions = []
    for record in records:
        text = _conventions_text(record.get("conventions"))
        if text not in conventions:
            conventions.append(text)
    parts = [f"Protocol: {', '.join(protocols)}" + (" (mixed profiles!)" if len(protocols) > 1 else "") + "."]
    if len(conventions) == 1:
        parts.append(f"Metric conventions: {conventions[0]}.")
    else:
        parts.append("Metric conventions differ between runs (not comparable): " + " | ".join(conventions) + ".")
    scenes = []
    for dataset in sorted({str(r["dataset"]) for r in records}, key=dataset_sort_key):
        counts = sorted({n for r in records if str(r["dataset"]) == dataset for n in [_n_scenes(r)] if n is not None})
        scenes.append(f"{'/'.join(str(n) for n in counts) or '?'} ({dataset_title(dataset)})")
    parts.append(f"Test scenes: {', '.join(scenes)}.")
    seeds = sorted({int(r.get("seed", 0)) for r in records})
    seed_text = f"Seeds: {', '.join(str(s) for s in seeds)}"
    if len(seeds) > 1:
        seed_text += "; mean ± sample standard deviation over seeds where several ran"
    parts.append(seed_text + ".")
    notes = {}
    for record in records:
        bands = band_count([record], results_dir, record["dataset"], record["scale"])
        note = crop_note(record, bands)
        if note:
            notes.setdefault(method_title(str(record["method"]), record), note)
    for title, note in notes.items():
        parts.append(f"{title}: {note}.")
    return " ".join(parts)


# ------------------------------------------------------------------------------------------ Table V


def _is_table_v_experiment(name: Any) -> bool:
    return name is None or bool(re.fullmatch(r"table_?(5|v)([_-].*)?", str(name).lower()))


def _experiment_names(record: Mapping[str, Any]) -> list[str]:
    value = record.get("experiment")
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]


def table_v_records(records: Iterable[Mapping[str, Any]]) -> list[dict]:
    """The records that belong in Table V: default networks with default losses, and runs of no ablation.

    A run made by an ablation experiment (a variant or a non-default loss) goes to its ablation table.
    """
    chosen = []
    for record in records:
        plain = method_key(record) == str(record["method"])
        experiments = _experiment_names(record)
        if plain or not experiments or any(_is_table_v_experiment(e) for e in experiments):
            chosen.append(dict(record))
    return chosen


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
        The :class:`Table`.
    """
    aggs = aggregate(records)
    cells = sorted({(d, s) for d, s, _ in aggs}, key=lambda c: (dataset_sort_key(c[0]), c[1]))
    keys = {k for _, _, k in aggs}
    if all_paper_methods:
        keys |= set(PAPER_METHOD_ORDER)
    keys = sorted(keys, key=method_sort_key)
    labels = {k: next((a.label for a in aggs.values() if a.key == k), method_title(k)) for k in keys}
    header = ["Dataset", "Scale"] + (["Source"] if published else []) + [labels[k] for k in keys]
    rows, csv_rows, group_starts = [], [], set()
    any_published = False
    for dataset, scale in cells:
        group_starts.add(len(rows))
        lead = [[Part(dataset_title(dataset))], [Part(f"×{scale}")]]
        ours_row = lead + ([[Part("ours")]] if published else [])
        styles = {m: rank_styles({k: aggs[(dataset, scale, k)].mean.get(m) if (dataset, scale, k) in aggs else None
                                  for k in keys}, m) for m in metrics}
        for key in keys:
            agg = aggs.get((dataset, scale, key))
            if agg is None or not any(m in agg.mean for m in metrics):
                ours_row.append([Part(DASH)])
            else:
                ours_row.append([Part(format_value(m, agg.mean.get(m), agg.std.get(m)), styles[m][key]) for m in metrics])
        rows.append(ours_row)
        has_published = any(_published_for(dataset, scale, key) for key in keys)
        if published and has_published:
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
                    diff_row.append([Part(format_diff(m, _diff(agg.mean.get(m), ref.get(m)))) for m in metrics])
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
    caption = _table_v_caption(records, results_dir, metrics, any_published)
    return Table(name, title, caption, header, rows, csv_rows, group_starts,
                 align="ll" + ("l" if published else "") + "c" * len(keys))


def _published_for(dataset: str, scale: int, key: str) -> Optional[pub.Published]:
    """The paper's Table V value for a run-folder name (``ssrnet``; variants such as ``ssrnet+nolff`` have none)."""
    method, _, variant = key.partition("+")
    return pub.table_v(dataset, scale, method, variant or None)


def _diff(ours: Optional[float], theirs: Optional[float]) -> Optional[float]:
    return None if ours is None or theirs is None else ours - theirs


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
        row["diff"] = _diff(row["mean"], ref.get(metric))
        row["published_source"] = f"{ref.source}, {pub.PAPER_SHORT}" if ref.get(metric) is not None else None
    return row


def _table_v_caption(records, results_dir, metrics, published) -> str:
    cells = " / ".join(metric_heading(m) for m in metrics)
    text = f"Cells: {cells}, mean over test scenes (top-left region, modcrop). " + describe_runs(records, results_dir)
    text += " Best in bold, second underlined, per row and metric; — : not run."
    if published:
        text += f" paper: Table V of {pub.PAPER_REFERENCE}; Δ = ours − paper."
    return text


def summary_table(records: Sequence[Mapping[str, Any]]) -> str:
    """A compact markdown Table V of what ran (no published rows, only the methods that ran).

    ``hsibench run`` prints it at its end.

    Args:
        records: finished runs.

    Returns:
        Markdown text (caption and table); ``"No finished run."`` when ``records`` is empty.
    """
    if not records:
        return "No finished run.\n"
    return table_v(list(records), None, published=False, all_paper_methods=False,
                   title="Summary").to_markdown()


# ------------------------------------------------------------------------------------------ significance


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
    cells = sorted({(d, s) for d, s, _ in aggs}, key=lambda c: (dataset_sort_key(c[0]), c[1]))
    tests = []
    for dataset, scale in cells:
        for metric in metrics:
            ranked = [a for (d, s, _), a in aggs.items() if (d, s) == (dataset, scale) and a.per_scene.get(metric)]
            if len(ranked) < 2:
                continue
            ranked.sort(key=lambda a: a.mean[metric], reverse=higher_is_better(metric))
            tests.append(paired_test(ranked[0], ranked[1], metric, alpha))
    if not tests:
        return None
    header = ["Dataset", "Scale", "Metric", "Best", "Second", "Scenes", "Mean lead", "Wins", "p", "Verdict"]
    rows, csv_rows, group_starts = [], [], set()
    previous = None
    for test in tests:
        if (test.dataset, test.scale) != previous:
            group_starts.add(len(rows))
            previous = (test.dataset, test.scale)
        p_text = DASH if test.p_value is None else f"{test.p_value:.3g}"
        lead = format_diff(test.metric, test.lead) if math.isfinite(test.lead) else DASH
        rows.append([[Part(dataset_title(test.dataset))], [Part(f"×{test.scale}")], [Part(metric_name(test.metric))],
                     [Part(test.best)], [Part(test.second)], [Part(str(test.n))], [Part(lead)],
                     [Part(f"{test.wins}/{test.n}")], [Part(p_text)], [Part(test.verdict)]])
        csv_rows.append({"dataset": test.dataset, "scale": test.scale, "metric": test.metric, "best": test.best,
                         "second": test.second, "n_scenes": test.n, "mean_lead": test.lead, "wins": test.wins,
                         "p_value": test.p_value, "alpha": alpha, "verdict": test.verdict})
    caption = (f"Two-sided Wilcoxon signed-rank test (scipy.stats.wilcoxon) of the best method against the second, "
               f"paired over the test scenes both scored (per-scene values averaged over seeds), α = {alpha:g}. "
               f"Mean lead: best − second, in the better direction. With n scenes the smallest possible p is "
               f"2/2^n, so fewer than {min_scenes_for(alpha)} scenes cannot show significance. "
               + describe_runs(records, results_dir))
    return Table("significance", "Significance of the lead", caption, header, rows, csv_rows, group_starts,
                 align="lllllrrrrl")


# ------------------------------------------------------------------------------------------ efficiency


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
    aggs = aggregate(records)
    header = ["Dataset", "Scale", "Method", "Params", "FLOPs (G)", "Inference (s, all scenes)", "Training (s)"] + \
        [metric_heading(m) for m in metrics]
    rows, csv_rows, group_starts = [], [], set()
    previous = None
    for (dataset, scale, key), agg in aggs.items():
        if (dataset, scale) != previous:
            group_starts.add(len(rows))
            previous = (dataset, scale)
        params, flops = agg.field_mean("params"), agg.field_mean("flops")
        infer, train = agg.field_mean("infer_seconds"), agg.field_mean("train_seconds")
        rows.append([[Part(dataset_title(dataset))], [Part(f"×{scale}")], [Part(agg.label)],
                     [Part(DASH if params is None else f"{int(round(params)):,}")],
                     [Part(DASH if flops is None else f"{flops / 1e9:.2f}")],
                     [Part(DASH if infer is None else f"{infer:.3g}")],
                     [Part(DASH if train is None else f"{train:.4g}")]]
                    + [[Part(format_value(m, agg.mean.get(m), agg.std.get(m)))] for m in metrics])
        csv_rows.append({"dataset": dataset, "scale": scale, "method": key, "label": agg.label, "params": params,
                         "flops": flops, "infer_seconds": infer, "train_seconds": train,
                         **{m: agg.mean.get(m) for m in metrics}})
    caption = ("Params: trainable parameters; FLOPs: as recorded by the harness (— when not measured); "
               "Inference: wall-clock seconds to super-resolve all test scenes (infer_seconds); Training: "
               "wall-clock seconds of training (train_seconds); both mean over seeds, on the machine and "
               "device that ran them (see `hsibench bench` for controlled timings). "
               + describe_runs(records, results_dir))
    return Table("efficiency", "Efficiency beside quality", caption, header, rows, csv_rows, group_starts,
                 align="lll" + "r" * 4 + "c" * len(metrics))


# ------------------------------------------------------------------------------------------ ablations


def paper_table_of(experiment: str) -> Optional[str]:
    """Which of the paper's ablation tables (``"I"``..``"IV"``) an experiment reproduces, from its name.

    ``table1_loss`` -> ``"I"``, ``table2_ablation`` -> ``"II"``, ``table3_block`` -> ``"III"``,
    ``table4_depth`` -> ``"IV"``; ``None`` when the name says nothing.
    """
    name = str(experiment).lower()
    match = re.match(r"table_?([1-4]|iv|iii|ii|i)(?![0-9a-z])", name)
    if match:
        token = match.group(1)
        return {"1": "I", "2": "II", "3": "III", "4": "IV"}.get(token, token.upper())
    for pattern, table in (("loss", "I"), ("lff|grl", "II"), ("block", "III"), ("depth", "IV")):
        if re.search(pattern, name):
            return table
    return None


def _experiment_grid(experiment: str) -> Optional[tuple[set, set]]:
    """The grid of ``configs/experiments/<experiment>.toml``, if that file exists.

    Returns:
        ``(settings, places)``: the ``(method, variant, loss)`` settings and the ``(dataset, scale)``
        places it names, or ``None``.
    """
    from hsisr_bench.config import default_method_config, list_experiments, load_experiment

    try:
        if experiment not in list_experiments():
            return None
        exp = load_experiment(experiment)
        settings = set()
        for method in exp.methods:
            default_loss = default_method_config(method).loss
            for variant in exp.variants:
                for loss in exp.losses:
                    settings.add((str(method), None if variant in (None, "", "default") else str(variant),
                                  default_loss if loss == "default" else str(loss)))
        places = {(str(d), int(s)) for d in exp.datasets for s in exp.scales}
        return settings, places
    except HsiBenchError:
        return None


def _record_loss(record: Mapping[str, Any]) -> Optional[str]:
    loss = record.get("loss")
    if isinstance(loss, Mapping):
        loss = loss.get("name")
    if loss is not None:
        return str(loss)
    try:
        from hsisr_bench.config import default_method_config

        return default_method_config(str(record["method"])).loss
    except HsiBenchError:  # a method this version does not know
        return None


def experiment_records(records: Sequence[Mapping[str, Any]], experiment: str) -> list[dict]:
    """The records of one experiment: those that name it, plus any run of a cell of its grid.

    A cell shared with another experiment (SSRNet's default network serves Tables II–V) is stored
    once and keeps the experiment name of whichever run wrote it; reading the grid from
    ``configs/experiments/<experiment>.toml`` finds it anyway. The grid's places are its datasets
    and scales plus those where runs naming the experiment exist (``hsibench run --experiment
    table2_ablation --dataset synthetic`` moves the grid to another dataset).
    """
    named = [r for r in records if experiment in _experiment_names(r)]
    grid = _experiment_grid(experiment)
    if grid is None:
        return [dict(r) for r in named]
    settings, places = grid
    places = places | {(str(r["dataset"]), int(r["scale"])) for r in named}
    named_ids = {id(r) for r in named}
    chosen = []
    for record in records:
        setting = (str(record["method"]), record.get("variant") or None, _record_loss(record))
        if id(record) in named_ids or ((str(record["dataset"]), int(record["scale"])) in places and setting in settings):
            chosen.append(dict(record))
    return chosen


def effective_options(record: Mapping[str, Any]) -> dict:
    """A run's full factory options: the method's defaults, then its variant's, then the explicit ones.

    Uses the registry (``resolve_options``) when the method is registered; otherwise the record's
    own ``options``.
    """
    explicit = dict(record.get("options") or {})
    try:
        from hsisr_bench.registry import get_method_info, resolve_options

        info = get_method_info(str(record["method"]))
        merged = dict(info.options)
        merged.update(resolve_options(str(record["method"]), explicit, record.get("variant") or None))
        return merged
    except HsiBenchError:  # unregistered method or unknown variant
        return explicit


def _factors(aggs: Sequence[Aggregate]) -> tuple[list[str], list[dict[str, str]]]:
    """Columns for what varies between the rows of an ablation (loss, then options), and each row's values."""
    values = []
    for agg in aggs:
        record = agg.records[0]
        row = {"loss": str(_record_loss(record) or "default")}
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
                                             "loss": _record_loss(a.records[0])})
            if (published and paper_table) else None for a in aggs]
    show_paper = published and any(r is not None for r in refs)
    if show_paper:
        header += ["Paper", "Δ"]
    rows, csv_rows, group_starts = [], [], set()
    cells = sorted({(a.dataset, a.scale) for a in aggs}, key=lambda c: (dataset_sort_key(c[0]), c[1]))
    for dataset, scale in cells:
        group_starts.add(len(rows))
        members = [i for i, a in enumerate(aggs) if (a.dataset, a.scale) == (dataset, scale)]
        styles = {m: rank_styles({i: aggs[i].mean.get(m) for i in members}, m) for m in metrics}
        for i in members:
            agg, ref = aggs[i], refs[i]
            params = agg.field_mean("params")
            row = [[Part(dataset_title(dataset))], [Part(f"×{scale}")], [Part(method_title(agg.method, agg.records[0]))]]
            row += [[Part(factor_values[i][k])] for k in factor_keys]
            if show_params:
                row.append([Part(DASH if params is None else f"{int(round(params)):,}")])
            row += [[Part(format_value(m, agg.mean.get(m), agg.std.get(m)), styles[m][i])] for m in metrics]
            if show_paper:
                if ref is None:
                    row += [[Part(DASH)], [Part(DASH)]]
                else:
                    paper_text = [Part(format_published(m, ref.get(m))) for m in metrics]
                    if ref.params:
                        paper_text.append(Part(f"{ref.params // 1000}K params"))
                    row += [paper_text, [Part(format_diff(m, _diff(agg.mean.get(m), ref.get(m)))) for m in metrics]]
            rows.append(row)
            for metric in metrics:
                csv_row = {"experiment": experiment, "dataset": dataset, "scale": scale, "method": agg.key,
                           **{f"factor_{k}": factor_values[i][k] for k in factor_keys}, "params": params,
                           "metric": metric, "mean": agg.mean.get(metric), "std": agg.std.get(metric),
                           "n_seeds": len(agg.records), "rank": {"best": 1, "second": 2}.get(styles[metric][i] or "")}
                if show_paper:
                    csv_row["published"] = ref.get(metric) if ref else None
                    csv_row["diff"] = _diff(agg.mean.get(metric), ref.get(metric)) if ref else None
                    csv_row["published_source"] = f"{ref.source}, {pub.PAPER_SHORT}" if ref else None
                csv_rows.append(csv_row)
    title = f"Ablation {experiment}" + (f" (layout of the paper's Table {paper_table})" if paper_table else "")
    what = pub.ABLATION_TITLES.get(paper_table or "", "")
    caption = (f"{what + '. ' if what else ''}Each row is one setting; columns before the metrics name what varies. "
               + describe_runs(chosen, results_dir)
               + " Best in bold, second underlined, per dataset × scale and metric.")
    if show_paper:
        caption += f" Paper: Table {paper_table} of {pub.PAPER_REFERENCE}; Δ = ours − paper; — : the paper has no such row."
    align = "lll" + "c" * len(factor_keys) + ("r" if show_params else "") + "c" * len(metrics) + ("cc" if show_paper else "")
    return Table(f"ablation_{experiment}", title, caption, header, rows, csv_rows, group_starts, align=align)


# ------------------------------------------------------------------------------------------ whole report


def report_experiments(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """The ablation experiments the records name (Table V experiments excluded), sorted."""
    names = {e for r in records for e in _experiment_names(r) if not _is_table_v_experiment(e)}
    return sorted(names)


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
    tables: list[Optional[Table]] = []
    if experiment is not None and not _is_table_v_experiment(experiment):
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
    tables.append(table_v(main_records, results_dir, published=published))
    tables.append(significance_table(main_records, results_dir, alpha=alpha))
    tables.append(efficiency_table(main_records, results_dir))
    if experiment is None:
        for name in report_experiments(records):
            tables.append(ablation_table(records, name, results_dir, published=published))
    return [t for t in tables if t is not None]


def render_markdown(tables: Sequence[Table]) -> str:
    """All tables as one markdown document."""
    return "\n".join(table.to_markdown() for table in tables)


FORMATS = ("md", "tex", "csv")


def write_report(tables: Sequence[Table], out_dir: str | Path, formats: Sequence[str] = FORMATS) -> list[Path]:
    """Write each table as ``<name>.tex`` / ``<name>.csv`` and all tables as ``report.md`` under ``out_dir``.

    Files are written atomically (temporary file, then rename).

    Args:
        tables: the tables of :func:`build_report`.
        out_dir: destination folder (created).
        formats: any of ``md``, ``tex``, ``csv``.

    Returns:
        The paths written.

    Raises:
        ConfigError: an unknown format.
        ResultsError: the folder cannot be written.
    """
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ConfigError(f"Unknown report format(s) {', '.join(unknown)} (--format); choose from {', '.join(FORMATS)}.")
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ResultsError(f"Cannot create the report folder {out}: {error}. Pick another with --out.") from None
    written = []
    if "md" in formats:
        written.append(_atomic_write(out / "report.md", render_markdown(tables)))
    for table in tables:
        if "tex" in formats:
            written.append(_atomic_write(out / f"{table.name}.tex", table.to_latex()))
        if "csv" in formats:
            written.append(_atomic_write(out / f"{table.name}.csv", table.to_csv()))
    return written


def _atomic_write(path: Path, text: str) -> Path:
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        temporary.write_text(text, encoding="utf-8")
        temporary.replace(path)
    except OSError as error:
        raise ResultsError(f"Cannot write {path}: {error}. Check the folder's permissions or pick another --out.") from None
    return path
