"""The format-independent table: cells of styled parts, a short caption, notes, and tidy CSV rows.

A :class:`Table` is built once by a layout module (``table_v``, ``statistics``, ``efficiency``,
``ablation``) and rendered by ``render_markdown``, ``render_latex`` and ``render_csv``. A table may
carry a second, narrower layout of the same numbers in :attr:`Table.latex` (the paper's wide Table V
does not fit a printed page; its LaTeX form has one row per method instead).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Optional, Sequence

from hsisr_bench.report.values import format_value


@dataclass(frozen=True)
class Part:
    """One formatted value inside a cell.

    Attributes:
        text: the value as shown (``44.12``).
        style: ``None``, ``"best"`` (bold) or ``"second"`` (underlined).
        spread: the standard deviation over seeds as text (``0.05``), shown as ``± 0.05``; ``None`` with one seed.
    """

    text: str
    style: Optional[str] = None
    spread: Optional[str] = None


def value_part(metric: str, mean: Optional[float], std: Optional[float] = None, style: Optional[str] = None) -> Part:
    """A metric value as a :class:`Part`: mean with the metric's decimals, the std over seeds as its spread."""
    spread = None if (mean is None or std is None) else format_value(metric, std)
    return Part(format_value(metric, mean), style if mean is not None else None, spread)


@dataclass
class Table:
    """A rendered-format-independent table.

    Attributes:
        name: file stem (``table5``, ``ablation_table2_ablation``).
        title: short title (``Table V (this run)``).
        caption: one or two sentences: what the cells are and how best/second are marked.
        header: column headings.
        rows: each row a list of cells; a cell is a list of :class:`Part` (joined by `` / `` in markdown,
            one LaTeX sub-column each where :attr:`subheaders` names sub-columns).
        csv_rows: tidy rows (dicts) for the CSV file.
        group_starts: indices of rows that begin a new group (a rule above them in LaTeX).
        align: one of ``l``/``c``/``r`` per column (LaTeX).
        notes: the run description (protocol, metric conventions, test scenes, seeds, crop notes, sources),
            one sentence each; printed once below the table.
        subheaders: per column, the headings of its LaTeX sub-columns (empty: one column).
        latex: a narrower layout for LaTeX, used by :meth:`to_latex` when set.
    """

    name: str
    title: str
    caption: str
    header: list[str]
    rows: list[list[list[Part]]]
    csv_rows: list[dict] = field(default_factory=list)
    group_starts: set[int] = field(default_factory=set)
    align: str = ""
    notes: list[str] = field(default_factory=list)
    subheaders: list[tuple[str, ...]] = field(default_factory=list)
    latex: Optional["Table"] = None

    @property
    def full_caption(self) -> str:
        """The caption followed by every note, as one paragraph."""
        return " ".join([self.caption] + list(self.notes))

    def to_markdown(self) -> str:
        """The table as GitHub markdown: a bold title line with the caption, the pipe table, then the notes."""
        from hsisr_bench.report.render_markdown import table_to_markdown

        return table_to_markdown(self)

    def to_terminal(self) -> str:
        """The table as plain text for a terminal: no markup; best marked ``*``, second ``+``."""
        from hsisr_bench.report.render_markdown import table_to_terminal

        return table_to_terminal(self)

    def to_latex(self) -> str:
        """The table as a LaTeX ``table*`` float with booktabs rules (``\\usepackage{booktabs}`` needed)."""
        from hsisr_bench.report.render_latex import table_to_latex

        return table_to_latex(self.latex or self)

    def to_csv(self) -> str:
        """The tidy rows as CSV text (header from the union of the rows' keys, in first-seen order)."""
        from hsisr_bench.report.render_csv import table_to_csv

        return table_to_csv(self)


def fold_constant_columns(table: Table, candidates: Sequence[int], names: Sequence[str]) -> Table:
    """A copy of ``table`` without those ``candidates`` columns whose value is the same in every row.

    The folded values become one note (``All rows: CAVE, ×2, SSRNet.``), so a narrow LaTeX table does
    not spend width repeating them. Blank cells (a dataset written only on its group's first row)
    do not count as different values.

    Args:
        table: the table (not changed).
        candidates: column indices that may be folded.
        names: a name for each candidate (``dataset``), used in the note.
    """
    folded, values = [], []
    for index, name in zip(candidates, names):
        texts = {" / ".join(p.text for p in row[index]) for row in table.rows} - {""}
        if len(texts) == 1 and table.rows:
            folded.append(index)
            values.append(f"{name} {texts.pop()}")
    if not folded:
        return table
    keep = [i for i in range(len(table.header)) if i not in folded]
    align = table.align or ("l" * 2 + "c" * (len(table.header) - 2))
    return replace(
        table,
        header=[table.header[i] for i in keep],
        rows=[[row[i] for i in keep] for row in table.rows],
        align="".join(align[i] for i in keep),
        subheaders=[table.subheaders[i] for i in keep] if table.subheaders else [],
        notes=[f"All rows: {', '.join(values)}."] + list(table.notes),
        latex=None,
    )


def column_as_headings(table: Table, index: int = 0) -> Table:
    """A copy of ``table`` whose column ``index`` becomes heading rows (``Harvard`` above its rows).

    A value in that column opens a heading row spanning the whole table (rendered in italics by LaTeX);
    the blank cells under it belong to the same heading. This saves the width of a column, such as
    the dataset, that only changes between groups of rows.
    """
    if not table.rows or len(table.header) < 2:
        return table
    rows, starts = [], set()
    for position, row in enumerate(table.rows):
        text = " / ".join(p.text for p in row[index])
        if text:
            starts.add(len(rows))
            rows.append([[Part(text, "heading")]])
        elif position in table.group_starts:
            starts.add(len(rows))
        rows.append(row[:index] + row[index + 1:])
    align = table.align or ("l" * 2 + "c" * (len(table.header) - 2))
    return replace(
        table,
        header=table.header[:index] + table.header[index + 1:],
        rows=rows,
        group_starts=starts,
        align=align[:index] + align[index + 1:],
        subheaders=(table.subheaders[:index] + table.subheaders[index + 1:]) if table.subheaders else [],
        latex=None,
    )


def narrow(table: Table, names: Sequence[str]) -> Table:
    """The LaTeX form of a table whose first columns are ``names`` (``dataset``, ``scale``, ...).

    Columns constant over all rows go to a note (:func:`fold_constant_columns`); a dataset column
    that varies becomes heading rows (:func:`column_as_headings`).
    """
    folded = fold_constant_columns(table, range(len(names)), names)
    if names and names[0] == "dataset" and folded.header and folded.header[0] == table.header[0]:
        folded = column_as_headings(folded, 0)
    return folded
