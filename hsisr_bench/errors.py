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


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return a hint such as ``Did you mean 'ssrnet'? Valid: a, b, c.`` for an unknown ``name``."""
    choices = sorted(choices)
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.5)
    hint = f"Did you mean '{close[0]}'? " if close else ""
    return f"{hint}Valid choices: {', '.join(choices)}."
