"""Markdown (GitHub pipes, for files) and plain text (for a terminal) renderings of a :class:`Table`."""

from __future__ import annotations

import textwrap
from typing import Any, Callable, Sequence

from tabulate import tabulate

from hsisr_bench.report.model import Part, Table

#: Marks of the best and second value in plain-text tables, where bold and underline do not exist.
PLAIN_MARKS = {"best": "*", "second": "+"}


def md_escape(text: Any) -> str:
    """Escape the characters that would break a markdown pipe table (``|``)."""
    return str(text).replace("|", "\\|")


def styled_cell(cell: Sequence[Part], escape: Callable[[Any], str], best: str, second: str) -> str:
    """Join a cell's parts with `` / ``, each escaped (with ``± spread``) and wrapped in the ``best``/``second`` format."""
    formats = {"best": best, "second": second}
    out = []
    for part in cell:
        text = part.text if part.spread is None else f"{part.text} ± {part.spread}"
        out.append(formats.get(part.style, "{}").format(escape(text)))
    return " / ".join(out)


def md_cell(cell: Sequence[Part]) -> str:
    """A cell in markdown: best in ``**bold**``, second ``<u>underlined</u>``."""
    return styled_cell(cell, md_escape, "**{}**", "<u>{}</u>")


def plain_cell(cell: Sequence[Part]) -> str:
    """A cell in plain text: best followed by ``*``, second by ``+``."""
    return styled_cell(cell, str, "{}" + PLAIN_MARKS["best"], "{}" + PLAIN_MARKS["second"])


def table_to_markdown(table: Table) -> str:
    """The table as GitHub markdown: ``**Title.** caption``, the pipe table, then the notes paragraph."""
    body = [[md_cell(cell) for cell in row] for row in table.rows]
    header = [md_escape(h) for h in table.header]
    text = tabulate(body, headers=header, tablefmt="github", disable_numparse=True)
    notes = f"\n\n{md_escape(' '.join(table.notes))}" if table.notes else ""
    return f"**{table.title}.** {md_escape(table.caption)}\n\n{text}{notes}\n"


def table_to_terminal(table: Table, *, notes: bool = False, width: int = 100) -> str:
    """The table as plain text (tabulate ``simple``): no ``**`` or ``<u>``; best marked ``*``, second ``+``.

    Args:
        table: the table.
        notes: add the notes (protocol, conventions, ...) under the table, wrapped at ``width`` characters.
        width: line width of the wrapped caption and notes.
    """
    body = [[plain_cell(cell) for cell in row] for row in table.rows]
    text = tabulate(body, headers=list(table.header), tablefmt="simple", disable_numparse=True)
    caption = textwrap.fill(f"{table.title}. {table.caption}", width)
    legend = f"{PLAIN_MARKS['best']} best, {PLAIN_MARKS['second']} second"
    styled = any(part.style for row in table.rows for cell in row for part in cell)
    if styled and legend not in caption:
        caption += f"\n({legend}; bold and underline in the files)"
    below = f"\n\n{textwrap.fill(' '.join(table.notes), width)}" if notes and table.notes else ""
    return f"{caption}\n\n{text}{below}\n"


def render_terminal(tables: Sequence[Table]) -> str:
    """All tables as plain text for a terminal, each with its notes."""
    return "\n".join(table_to_terminal(table, notes=True) for table in tables)


def render_markdown(tables: Sequence[Table]) -> str:
    """All tables as one markdown document."""
    return "\n".join(table.to_markdown() for table in tables)
