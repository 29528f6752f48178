"""One writer per session folder.

A lock on a file inside the folder, taken with the operating system's file locks, so a
writer that dies (killed, crashed, power cut) holds nothing: the next writer takes the
lock over at once. The file also says who holds the lock, for the sentence a second
writer gets. Re-entrant within a process, so a save inside a ``track`` run that holds
the lock goes ahead.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError, os_reason

LOCK_FILE = ".lock"
SAVE_WAIT_S = 2.0  # how long a save waits for another writer to finish
_POLL_S = 0.05
_WINDOWS_LOCK_OFFSET = 2**30  # Windows locks a byte range; past the holder's details


class SessionLockedError(UserError):
    """Another writer holds the session folder; the message names it."""


class NoFileLocksError(UserError):
    """The folder's file system cannot lock files, so one writer cannot be ensured."""


@dataclass(frozen=True)
class LockHolder:
    """Who holds a session folder's lock."""

    pid: int
    host: str
    program: str
    since: float

    def describe(self) -> str:
        when = time.strftime("%H:%M:%S", time.localtime(self.since))
        here = "this machine" if self.host == socket.gethostname() else self.host
        return f"{self.program} (process {self.pid} on {here}, since {when})"


class _Held:
    def __init__(self) -> None:
        self.thread_lock = threading.RLock()
        self.fd: int | None = None
        self.depth = 0


_held: dict[str, _Held] = {}
_held_lock = threading.Lock()


@contextlib.contextmanager
def session_lock(
    folder: str | Path, program: str | None = None, wait: float = SAVE_WAIT_S
) -> Iterator[None]:
    """Hold ``folder``'s writer lock for the ``with`` block (the folder is made if new).

    Waits up to ``wait`` seconds for another writer, then raises
    :class:`SessionLockedError` naming it.
    """
    folder = Path(folder)
    key = os.path.realpath(folder)
    with _held_lock:
        held = _held.setdefault(key, _Held())
    if not held.thread_lock.acquire(timeout=max(wait, 0.0)):
        raise SessionLockedError(f"{folder} is being saved by another task of this program.")
    try:
        if held.depth == 0:
            held.fd = _acquire(folder, program or _program_name(), wait)
        held.depth += 1
        try:
            yield
        finally:
            held.depth -= 1
            if held.depth == 0 and held.fd is not None:
                _release(held.fd)
                held.fd = None
    finally:
        held.thread_lock.release()


def lock_holder(folder: str | Path) -> LockHolder | None:
    """The details the lock's holder wrote (the last holder's, if none holds it now)."""
    try:
        data = json.loads((Path(folder) / LOCK_FILE).read_text(encoding="utf-8"))
        return LockHolder(int(data["pid"]), str(data["host"]), str(data["program"]), data["since"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _program_name() -> str:
    return Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"


def _acquire(folder: Path, program: str, wait: float) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + wait
    try:
        while not _try_lock_or_say(fd, folder):
            if time.monotonic() >= deadline:
                holder = lock_holder(folder)
                who = holder.describe() if holder else "another program"
                raise SessionLockedError(
                    f"{folder} is being written by {who}; wait for it to finish, or "
                    "write to another folder."
                )
            time.sleep(_POLL_S)
        details = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "program": program,
            "since": time.time(),
        }
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps(details).encode())
        return fd
    except BaseException:
        os.close(fd)
        raise


def _try_lock_or_say(fd: int, folder: Path) -> bool:
    try:
        return _try_lock(fd)
    except OSError as exc:  # NFS without a lock daemon, Lustre without its flock option
        if exc.errno not in _NO_LOCKS:
            raise
        raise NoFileLocksError(
            f"the file system of {folder} cannot lock files ({os_reason(exc)}), so two writers "
            "could overwrite each other's work there; write the session to another disk, "
            "or mount this one with file locks."
        ) from None


_NO_LOCKS = {errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL}


if os.name == "nt":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _try_lock(fd: int) -> bool:
        os.lseek(fd, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _release(fd: int) -> None:
        os.lseek(fd, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
        with contextlib.suppress(OSError):
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        os.close(fd)

else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _release(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
