"""Write a report's tables to files: ``report.md`` with every table, one ``.tex`` and one ``.csv`` per table.

Every file goes through :func:`hsisr_bench.atomic.atomic_write` (temporary file in the same folder,
flushed to disk, renamed into place), so a report interrupted half-way never leaves a truncated file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from hsisr_bench.atomic import atomic_write
from hsisr_bench.errors import ConfigError, ResultsError
from hsisr_bench.report.model import Table
from hsisr_bench.report.render_markdown import render_markdown

#: File formats ``hsibench report --format`` accepts.
FORMATS = ("md", "tex", "csv")


def write_text(path: Path, text: str) -> Path:
    """Write a UTF-8 text file atomically.

    Raises:
        ResultsError: the file cannot be written (says which and what to do).
    """
    try:
        return atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))
    except OSError as error:
        raise ResultsError(f"Cannot write {path}: {error}. Check the folder's permissions or pick another --out.") from None


#: The file ``hsibench report`` / ``figures`` leave in a folder they write, so they know they may replace
#: what is there; a folder with other files and no marker is a user's and is refused without ``--force``.
MARKER_FILE = ".hsibench-output"


def claim_output_folder(out_dir: str | Path, command: str, force: bool = False) -> Path:
    """Make ``out_dir`` ours to write: create it, or accept it when empty, marked, or under ``force``.

    Args:
        out_dir: the ``--out`` folder.
        command: ``report`` or ``figures`` (for the message and the marker).
        force: write into a folder that holds other files (they may be overwritten).

    Raises:
        ResultsError: the folder holds files no ``hsibench report``/``figures`` wrote (without ``force``),
            or it cannot be created.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ResultsError(f"--out {out} is a file; give a folder for the {command} output.")
    marker = out / MARKER_FILE
    if out.is_dir() and not marker.is_file() and not force:
        held = sorted(p.name for p in out.iterdir())
        if held:
            raise ResultsError(f"--out {out} holds files that 'hsibench {command}' did not write "
                               f"({', '.join(held[:5])}{', ...' if len(held) > 5 else ''}); they could be "
                               f"overwritten. Give an empty or new folder, or pass --force to write there anyway.")
    try:
        out.mkdir(parents=True, exist_ok=True)
        if not marker.is_file():
            atomic_write(marker, lambda handle: handle.write(
                f"written by hsibench {command}; its files here may be replaced by the next run.\n".encode()))
    except OSError as error:
        raise ResultsError(f"Cannot create the {command} folder {out}: {error}. Pick another with --out.") from None
    return out


def write_report(tables: Sequence[Table], out_dir: str | Path, formats: Sequence[str] = FORMATS) -> list[Path]:
    """Write each table as ``<name>.tex`` / ``<name>.csv`` and all tables as ``report.md`` under ``out_dir``.

    Files are written atomically (temporary file, fsync, then rename).

    Args:
        tables: the tables of :func:`hsisr_bench.report.tables.build_report`.
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
        written.append(write_text(out / "report.md", render_markdown(tables)))
    for table in tables:
        if "tex" in formats:
            written.append(write_text(out / f"{table.name}.tex", table.to_latex()))
        if "csv" in formats:
            written.append(write_text(out / f"{table.name}.csv", table.to_csv()))
    return written
