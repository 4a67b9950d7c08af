"""CSV rendering of a :class:`Table`: its tidy rows, one value per row, for spreadsheets."""

from __future__ import annotations

import csv
import io

from hsisr_bench.report.model import Table


def table_to_csv(table: Table) -> str:
    """The tidy rows as CSV text (header from the union of the rows' keys, in first-seen order; ``None`` empty)."""
    from hsisr_bench.report.captions import TRAIN_OVERLAP_WARNING

    # A CSV has no notes: a run scored on its own training scenes is flagged on every row instead.
    warning = " ".join(n for n in table.notes if n.startswith(TRAIN_OVERLAP_WARNING))
    rows = [dict(row, warning=warning) for row in table.csv_rows] if warning else list(table.csv_rows)
    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: ("" if value is None else value) for key, value in row.items()})
    return buffer.getvalue()
