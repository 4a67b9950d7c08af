"""The toolkit's exceptions. The CLI prints them as ``Error: ...`` and exits with code 2."""

from __future__ import annotations

import difflib
from typing import Iterable


class HsiBenchError(Exception):
    """Base class for every error the user can fix: bad data, bad config, bad arguments."""


class DataError(HsiBenchError):
    """A dataset, scene or file is missing, malformed or unusable."""


class ConfigError(HsiBenchError):
    """A config file, option or command-line override is invalid."""


class MethodError(HsiBenchError):
    """An unknown method, or an invalid option for a method."""


class ResultsError(HsiBenchError):
    """A results folder cannot be written, is locked, or was written by another config or version."""


class TrainingError(HsiBenchError):
    """Training cannot go on (for example a NaN or Inf loss)."""


class CellsFailed(HsiBenchError):
    """Some cells of a plan failed (each already reported on its own line); the others ran.

    ``exit_code`` is 2 when every failure was a user-fixable :class:`HsiBenchError` (bad data, a held
    lock, a clashing folder), else 1: a method or the toolkit raised something unexpected.
    """

    def __init__(self, message: str, exit_code: int, records: list | None = None):
        super().__init__(message)
        self.exit_code = exit_code
        self.records = list(records or [])  # the metrics of the cells that finished


#: ``hsibench --debug``: print the traceback of every error, not only its message.
DEBUG = False


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return a hint such as ``Did you mean 'ssrnet'? Valid: a, b, c.`` for an unknown ``name``."""
    choices = sorted(choices)
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.5)
    hint = f"Did you mean '{close[0]}'? " if close else ""
    return f"{hint}Valid choices: {', '.join(choices)}."
