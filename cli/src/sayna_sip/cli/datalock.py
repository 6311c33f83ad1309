"""One `sayna-sip up` per data dir: an exclusive lock on `<data dir>/up.lock`.

Two `up`s on one data dir would run two nats-servers on one JetStream store and fight
over `up.json`. The lock is an `flock` held for the life of the process (the kernel
drops it when `up` dies, however it dies), so a stale lock file never blocks a start.
The file holds the owner's pid, for the refusal message.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

LOCK_FILE = "up.lock"


class AlreadyRunning(Exception):
    """Another process holds the data dir's lock."""

    def __init__(self, pid: int | None) -> None:
        super().__init__(f"already running (pid {pid if pid is not None else '?'})")
        self.pid = pid


def acquire(data_dir: Path) -> int:
    """Lock `data_dir` for this process; the lock's fd (keep it open), or AlreadyRunning."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)  # not inherited by the children
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise AlreadyRunning(_owner(path)) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def _owner(path: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int(path.read_text().strip())
    return None
