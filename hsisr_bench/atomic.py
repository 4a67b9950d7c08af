"""Atomic file writes: a temporary file in the target's folder, renamed into place when complete.

A reader (or a run killed half-way, even by ``kill -9``) therefore sees either the old file or the new
one, never a truncated one. Every module that writes results, caches, splits or figures goes through
:func:`atomic_path`.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from pathlib import Path
from typing import Callable, Iterator, Union

PathLike = Union[str, Path]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: Permissions of a finished file: what ``open()`` would give (``mkstemp`` makes files private, 0600).
_FILE_MODE = 0o666 & ~_umask()


@contextlib.contextmanager
def atomic_path(path: PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``, on error it is removed.

    The folder of ``path`` is created if needed. ``OSError`` from creating the temporary file propagates.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write(path: PathLike, write: Callable[[io.BufferedWriter], None]) -> Path:
    """Write ``path`` atomically: ``write(handle)`` fills a binary temporary file that then replaces ``path``.

    The data is flushed to disk (``fsync``) before the rename makes it visible.
    """
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
    return Path(path)
