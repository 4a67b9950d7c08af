"""LaTeX rendering of a :class:`Table`: a booktabs ``table*`` float that fits a printed page as it is.

Made to paste: ``\\small``, narrow column separation, no outer padding (``@{}``), cells split into
sub-columns (PSNR | SSIM | SAM under one heading, like the paper), the standard deviation over seeds
on its own line under the mean (so several seeds do not widen the table), a short caption, and the
run description once as a note under the table. ``table*`` is the same as ``table`` in a one-column
document and spans both columns of a two-column one (IEEEtran). Needs ``\\usepackage{booktabs}``.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any, Sequence

from hsisr_bench.report.model import Part, Table

#: Column separation of the generated tables (LaTeX's default is 6pt).
TABCOLSEP = "3pt"

_LATEX_SPECIALS = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "<": r"\textless{}", ">": r"\textgreater{}", "`": r"\textasciigrave{}",
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


def latex_text(text: Any) -> str:
    """Escape running text (captions, notes): markdown code spans (`` `hsibench bench` ``) become ``\\texttt``."""
    text = re.sub(r'"([^"]*)"', "\u201c\\1\u201d", str(text))  # straight quotes as opening/closing quotes
    pieces = re.split(r"`([^`]+)`", text)
    # re.split with one group: even indices are plain text, odd ones the insides of code spans
    return "".join(latex_escape(piece) if i % 2 == 0 else f"\\texttt{{{latex_escape(piece)}}}"
                   for i, piece in enumerate(pieces))


def _styled(part: Part) -> str:
    text = latex_escape(part.text)
    return {"best": f"\\textbf{{{text}}}", "second": f"\\underline{{{text}}}"}.get(part.style or "", text)


def _spread(part: Part) -> str:
    return "" if part.spread is None else f"{{\\scriptsize $\\pm${latex_escape(part.spread)}}}"


def _widths(table: Table) -> list[int]:
    """The number of LaTeX sub-columns of each column."""
    subs = table.subheaders or [()] * len(table.header)
    return [max(1, len(s)) for s in subs]


def _row_cells(row: Sequence[Sequence[Part]], widths: Sequence[int], render) -> list[str]:
    """The LaTeX cells of one row: a cell's parts in its sub-columns, a single part spanning them all.

    Raises:
        ValueError: a cell with neither one part nor one part per sub-column (a layout bug).
    """
    cells = []
    for cell, width in zip(row, widths):
        if width == 1:
            cells.append(" / ".join(render(p) for p in cell))
        elif len(cell) == width:
            cells += [render(p) for p in cell]
        elif len(cell) == 1:
            cells.append(f"\\multicolumn{{{width}}}{{c}}{{{render(cell[0])}}}")
        else:
            raise ValueError(f"a cell of {len(cell)} parts in a column of {width} sub-columns")
    return cells


def _header_lines(table: Table, widths: Sequence[int]) -> list[str]:
    if not table.subheaders or all(w == 1 for w in widths):
        return [" & ".join(latex_escape(h) for h in table.header) + " \\\\"]
    top, rules, bottom, column = [], [], [], 1
    for heading, subs, width in zip(table.header, table.subheaders, widths):
        if width > 1:
            top.append(f"\\multicolumn{{{width}}}{{c}}{{{latex_escape(heading)}}}")
            rules.append(f"\\cmidrule(lr){{{column}-{column + width - 1}}}")
            bottom += [latex_escape(s) for s in subs]
        else:
            top.append("")
            bottom.append(latex_escape(heading))  # single headings sit on the lower line, next to the sub-headings
        column += width
    return [" & ".join(top) + " \\\\", " ".join(rules), " & ".join(bottom) + " \\\\"]


def table_to_latex(table: Table) -> str:
    """The table as a LaTeX ``table*`` float (booktabs) that fits the text width of an article page.

    Args:
        table: the table; its :attr:`~Table.subheaders` split cells into sub-columns.

    Returns:
        The LaTeX source, ending with a newline.
    """
    widths = _widths(table)
    align = table.align or ("l" * 2 + "c" * (len(table.header) - 2))
    spec = "".join(letter * width for letter, width in zip(align, widths))
    label = re.sub(r"[^A-Za-z0-9:-]", "-", table.name)
    lines = [
        "% Generated by hsibench report. Needs \\usepackage{booktabs} in the preamble.",
        "% table* spans both columns of a two-column paper; in a one-column document it is a plain table.",
        "\\begin{table*}[htbp]",
        "\\centering",
        "\\small",
        f"\\setlength{{\\tabcolsep}}{{{TABCOLSEP}}}",
        f"\\caption{{{latex_text(table.title)}: {latex_text(table.caption)}}}",
        f"\\label{{tab:{label}}}",
        f"\\begin{{tabular}}{{@{{}}{spec}@{{}}}}",
        "\\toprule",
        *_header_lines(table, widths),
        "\\midrule",
    ]
    for index, row in enumerate(table.rows):
        if index in table.group_starts and index > 0:
            lines.append("\\midrule")
        if len(row) == 1 and len(row[0]) == 1 and row[0][0].style == "heading":
            lines.append(f"\\multicolumn{{{sum(widths)}}}{{@{{}}l}}{{\\textit{{{latex_escape(row[0][0].text)}}}}} \\\\")
            continue
        lines.append(" & ".join(_row_cells(row, widths, _styled)) + " \\\\")
        if any(part.spread is not None for cell in row for part in cell):
            # the std over seeds on a line of its own keeps the columns as narrow as with one seed
            blank = [[Part("")] if all(p.spread is None for p in cell) else list(cell) for cell in row]
            lines.append(" & ".join(_row_cells(blank, widths, _spread)) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    if table.notes:
        lines += ["", "\\smallskip",
                  "\\begin{minipage}{\\linewidth}\\footnotesize\\raggedright",
                  latex_text(" ".join(table.notes)),
                  "\\end{minipage}"]
    lines.append("\\end{table*}")
    return "\n".join(lines) + "\n"
