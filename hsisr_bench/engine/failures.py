"""A failing cell costs nothing else: which phase of a cell failed, how to report it, how to go on.

:func:`run_cell <hsisr_bench.engine.runner.run_cell>` runs its phases inside :func:`phase`, which tags any
exception with the phase it came from (``build``, ``decide``, ``train``, ``evaluate``);
:func:`execute <hsisr_bench.engine.runner.execute>` reports the failure on one line with the command that
continues the cell, and goes on with the next cell. Ctrl-C is never caught: it stops the whole plan.
"""

from __future__ import annotations

import shlex
import traceback
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Optional, Sequence

from hsisr_bench import errors
from hsisr_bench.errors import CellsFailed, HsiBenchError

#: Options of ``hsibench run``/``train`` that choose cells; the continue command names one cell instead.
_SELECTORS = {"--methods", "--method", "--dataset", "--scale", "--seed", "--experiment", "--shard"}
_FLAGS_DROPPED = {"--dry-run"}


@contextmanager
def phase(name: str) -> Iterator[None]:
    """Tag an exception raised inside with the cell phase ``name`` (the first tag wins)."""
    try:
        yield
    except Exception as error:  # not KeyboardInterrupt/SystemExit: those stop the whole plan
        if not hasattr(error, "cell_phase"):
            error.cell_phase = name  # type: ignore[attr-defined]
        raise


@dataclass
class CellFailureRecord:
    """One failed cell: its description, the phase, the message and whether the user can fix it as data."""

    cell: str
    phase: str
    message: str
    expected: bool  # an HsiBenchError or OSError: bad input, a held lock; else a method's or our bug


def record_failure(cell_description: str, error: BaseException) -> CellFailureRecord:
    """Describe ``error`` raised by a cell (the message only; the type too when it is not one of ours)."""
    expected = isinstance(error, (HsiBenchError, OSError))
    message = str(error) if isinstance(error, HsiBenchError) else f"{type(error).__name__}: {error}"
    return CellFailureRecord(cell_description, getattr(error, "cell_phase", "build"), message.strip(), expected)


def traceback_text(error: BaseException) -> Optional[str]:
    """The traceback under ``hsibench --debug``, else ``None``."""
    return "".join(traceback.format_exception(error)) if errors.DEBUG else None


def continue_command(run, phase_name: str, argv: Optional[Sequence[str]]) -> str:
    """The command that continues a failed cell once its cause is fixed.

    After a failure at evaluation the training is complete (its checkpoint is kept), so only
    ``hsibench evaluate`` for that one cell is needed; otherwise the same command again, which skips
    finished cells and resumes this one from its checkpoint. Under ``--force`` a failed cell's earlier
    result was put back and the new training discarded, so it is the same command, ``--force`` included.
    """
    if argv is None:
        return "the same command again"
    if "--force" in argv:  # the earlier result was put back (engine/runner.py): replacing it needs --force again
        return " ".join(["hsibench", *(shlex.quote(a) for a in argv if a != "--dry-run")])
    args = [a for a in argv if a not in _FLAGS_DROPPED]
    if phase_name != "evaluate" or not args or args[0] not in ("run", "train"):
        return " ".join(["hsibench", *(shlex.quote(a) for a in args)])
    kept, skip_value = [], False
    for arg in args[1:]:
        if skip_value:
            skip_value = False
            continue
        key = arg.split("=", 1)[0]
        if key in _SELECTORS:
            skip_value = "=" not in arg
            continue
        kept.append(arg)
    if not any(a.split("=", 1)[0] == "--profile" for a in kept):
        kept += ["--profile", run.protocol.name]
    method = run.method.name + (f"+{run.method.variant}" if run.method.variant else "")
    cell = ["evaluate", "--method", method, "--dataset", run.dataset.name, "--scale", str(run.scale),
            "--seed", str(run.seed)]
    return " ".join(["hsibench", *(shlex.quote(a) for a in cell + kept)])


def raise_if_failed(failures: Sequence[CellFailureRecord], total: int, records: Sequence[dict] = ()) -> None:
    """End the plan with :class:`~hsisr_bench.errors.CellsFailed` listing the failed cells, if any."""
    if not failures:
        return
    listed = "; ".join(f"{f.cell} ({f.phase})" for f in failures)
    code = 2 if all(f.expected for f in failures) else 1
    raise CellsFailed(f"{len(failures)} of {total} cell(s) failed: {listed}. The other cells ran; their "
                      f"results are stored.", code, list(records))
