"""CSV rendering of a :class:`Table`: its tidy rows, one value per row, for spreadsheets."""

from __future__ import annotations

import csv
import io

from hsisr_bench.report.model import Table


def table_to_csv(table: Table) -> str:
    """The tidy rows as CSV text (header from the union of the rows' keys, in first-seen order; ``None`` empty)."""
    columns: list[str] = []
    for row in table.csv_rows:
        columns += [key for key in row if key not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in table.csv_rows:
        writer.writerow({key: ("" if value is None else value) for key, value in row.items()})
    return buffer.getvalue()
