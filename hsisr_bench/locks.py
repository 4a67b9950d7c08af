"""Run-folder locks that are safe on a results folder shared by many machines (a Slurm array, NFS).

A lock is a small file ``.lock`` holding ``pid host token boot=<id> pidns=<id>``. It is created atomically *with* its
content: written to a private temporary file, then hard-linked to ``.lock``, which fails if the lock
exists, so no process ever reads a half-written lock. A lock left behind is taken over only when its
owner is provably gone: the same host, the same boot and the same PID namespace, and a PID that no
longer exists. A host name alone does not prove that a PID is comparable: containers with host networking
share the host name but not the PID namespace, so a live writer there looks dead from here. A lock of
another host, boot or PID namespace, or one that cannot be read, is never taken: the error names the
owner and the file to delete. Locks of the older ``pid host [token]`` format (no boot/namespace fields)
keep the older rule (same host name and a dead PID), so that an upgrade does not block stale locks.
"""

from __future__ import annotations

import os
import secrets
import socket
from pathlib import Path
from typing import Callable, Optional, Union

from hsisr_bench.errors import ResultsError

#: File name of a run folder's lock.
LOCK_FILE = ".lock"


def _pid_alive(pid: int) -> bool:
    """True when a process with this PID exists on this host (also one owned by another user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _read_id(path: str, link: bool = False) -> str:
    """The boot id or namespace id at ``path`` (``-`` when this system does not expose it)."""
    try:
        value = os.readlink(path) if link else Path(path).read_text()
    except OSError:
        return "-"
    return "".join(value.split()) or "-"


def _machine_ids() -> tuple[str, str]:
    """``(boot id, PID-namespace id)`` of this process: what makes its PIDs comparable with ours."""
    return _read_id("/proc/sys/kernel/random/boot_id"), _read_id("/proc/self/ns/pid", link=True)


def _parse(text: str) -> Optional[tuple[int, str, str]]:
    """``(pid, host, token)`` of a lock file's text, or ``None`` when it is not a lock written here."""
    parts = text.split()
    if len(parts) < 2 or not parts[0].isdigit():
        return None
    return int(parts[0]), parts[1], parts[2] if len(parts) > 2 and "=" not in parts[2] else ""


def _fields(text: str) -> dict[str, str]:
    """The ``key=value`` fields of a lock file's text (``boot``, ``pidns``); empty for the older format."""
    return dict(part.split("=", 1) for part in text.split()[2:] if "=" in part)


class RunLock:
    """A lock file so that two processes (on any hosts sharing the folder) never write the same run.

    Usage: ``lock = RunLock(folder).acquire()`` ... ``lock.release()``, or ``with RunLock(folder):``.

    Raises (on ``acquire``):
        ResultsError: a live process (or a process of another host) holds the lock, the lock cannot be
            read, or the folder is not writable.
    """

    def __init__(self, directory: Union[str, Path], notify: Callable[[str], None] = print) -> None:
        self.path = Path(directory) / LOCK_FILE
        self.notify = notify
        self.held = False
        self.host = socket.gethostname()
        self.token = secrets.token_hex(8)
        self.boot, self.pidns = _machine_ids()

    def acquire(self) -> "RunLock":
        """Take the lock, taking over a stale one of a dead process of this host."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            for _ in range(5):
                if self._create():
                    self.held = True
                    return self
                self._take_over_if_stale()
        except OSError as error:
            raise ResultsError(f"Cannot create the lock {self.path} ({error.strerror or error}). Check that "
                               f"the results folder is writable, or choose another --out folder.") from None
        raise ResultsError(f"Could not take the lock {self.path}; other processes keep taking it. Retry later.")

    def _create(self) -> bool:
        """Atomically create the lock with its content; ``False`` when a lock exists already."""
        temporary = self.path.with_name(f".lock.{self.host}.{os.getpid()}.{self.token}.new")
        temporary.write_text(f"{os.getpid()} {self.host} {self.token} boot={self.boot} pidns={self.pidns}\n")
        try:
            os.link(temporary, self.path)
            return True
        except FileExistsError:
            return False
        finally:
            temporary.unlink(missing_ok=True)

    def _take_over_if_stale(self) -> None:
        """Remove the existing lock if its owner is provably gone, else raise naming the owner."""
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return  # released meanwhile: retry the create
        owner = _parse(text)
        if owner is None:
            raise ResultsError(f"The lock {self.path} cannot be read as 'pid host' ({text.strip()[:60]!r}). If no "
                               f"process is writing {self.path.parent}, delete the lock file and rerun.")
        pid, host, _ = owner
        if host != self.host:
            raise ResultsError(f"{self.path.parent} is being written by process {pid} on host {host} (lock file "
                               f"{self.path}). Wait for it to finish; if that process is gone, delete the lock file.")
        fields = _fields(text)
        if fields:  # the current format: the PID means something here only in the same boot and namespace
            boot, pidns = fields.get("boot", "-"), fields.get("pidns", "-")
            if (boot, pidns) != (self.boot, self.pidns):  # "-" on both sides: a system without either
                raise ResultsError(
                    f"{self.path.parent} is locked by process {pid} on host {host} in another PID namespace or "
                    f"boot (lock {boot}/{pidns}, this process {self.boot}/{self.pidns}; lock file {self.path}), "
                    f"e.g. another container sharing this host name, so whether it still runs cannot be "
                    f"checked from here. Wait for it to finish; if that process is gone, delete the lock file.")
        if pid == os.getpid():
            raise ResultsError(f"{self.path.parent} is already being written by this process (lock file {self.path}).")
        if _pid_alive(pid):
            raise ResultsError(f"{self.path.parent} is being written by process {pid} on this host ({host}; lock "
                               f"file {self.path}). Wait for it to finish; if that process is gone, delete the "
                               f"lock file.")
        # Move the stale lock aside atomically, then check that what was moved is the lock judged stale:
        # another process may have taken it over and locked anew in between; then give its lock back.
        aside = self.path.with_name(f".lock.stale.{os.getpid()}.{self.token}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return
        moved = aside.read_text()
        if moved != text:
            try:
                os.link(aside, self.path)
            except FileExistsError:
                pass
            aside.unlink(missing_ok=True)
            return
        aside.unlink(missing_ok=True)
        self.notify(f"Taking over the stale lock {self.path} (process {pid} on {host} is gone).")

    def release(self) -> None:
        """Remove the lock if this object holds it (and it is still ours)."""
        if self.held:
            try:
                owner = _parse(self.path.read_text())
                if owner is not None and owner[2] == self.token:
                    self.path.unlink(missing_ok=True)
            except FileNotFoundError:
                pass
            self.held = False

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
