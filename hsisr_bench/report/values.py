"""Metric metadata, value formatting and best/second ranking shared by every report table.

The display facts of a metric (name, unit, direction, decimals) come from ``hsisr_bench.metrics.METRICS``;
this module only turns them into headings and formatted numbers.
"""

from __future__ import annotations

from typing import Mapping, Optional

from hsisr_bench.errors import ConfigError
from hsisr_bench.metrics import METRICS
from hsisr_bench.report import published as pub

#: The metrics of the paper's tables, in its column order.
TABLE_METRICS = ("psnr", "ssim", "sam")

#: Shown for a value that does not exist (a method or cell that did not run).
DASH = "—"


def _info(metric: str) -> tuple[str, str, bool, int]:
    """``(display name, unit, higher is better, decimals)`` of a metric, from ``hsisr_bench.metrics.METRICS``.

    Raises:
        ConfigError: an unknown metric.
    """
    if metric in METRICS:
        info = METRICS[metric]
        return info.title, "°" if info.unit == "deg" else info.unit, bool(info.higher_is_better), int(info.decimals)
    raise ConfigError(f"Unknown metric '{metric}'; known: {', '.join(sorted(METRICS))}.")


def _known(metric: str) -> bool:
    return metric in METRICS


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


def metric_short_heading(metric: str) -> str:
    """Compact heading for narrow (LaTeX) columns: ``PSNR↑``, ``SAM↓`` (units go to the table note)."""
    name, _, higher, _ = _info(metric)
    return f"{name}{'↑' if higher else '↓'}"


def metric_units(metrics) -> str:
    """``PSNR in dB, SAM in °``: the units of ``metrics`` that have one, for a table note."""
    parts = [f"{_info(m)[0]} in {_info(m)[1]}" for m in metrics if _known(m) and _info(m)[1]]
    return ", ".join(parts)


def decimals(metric: str) -> int:
    """Decimals a metric is shown with (the paper's: PSNR 2, SSIM 3, SAM 2, ...)."""
    return _info(metric)[3] if _known(metric) else 4


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


def format_count(value: Optional[float]) -> str:
    """A parameter count with thousands separators (``1,275,000``); ``—`` for ``None``."""
    return DASH if value is None else f"{int(round(value)):,}"


def format_count_short(value: Optional[float]) -> str:
    """A parameter count in the paper's compact form: ``0``, ``950``, ``1.0K``, ``1275K``, ``12.3M``; ``—`` for ``None``."""
    if value is None:
        return DASH
    n = int(round(value))
    if abs(n) < 1000:
        return str(n)
    if abs(n) < 10_000:
        return f"{n / 1e3:.1f}K"
    if abs(n) < 10_000_000:
        return f"{n / 1e3:.0f}K"
    return f"{n / 1e6:.1f}M"


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


def diff(ours: Optional[float], theirs: Optional[float]) -> Optional[float]:
    """``ours − theirs``, or ``None`` when either is missing."""
    return None if ours is None or theirs is None else ours - theirs
