"""Process helpers shared by `up` and the embedded NATS: the prefixed console every
child writes through, and the parent-death signal that keeps orphans from surviving."""

from __future__ import annotations

import asyncio
import ctypes
import signal
import sys
from collections.abc import Callable
from typing import TextIO

_PR_SET_PDEATHSIG = 1
READ_LIMIT = 1024 * 1024  # longest log line read whole; longer ones are split


def die_with_parent() -> Callable[[], None] | None:
    """A pre-exec hook (Linux) that makes the child get SIGTERM when `up` dies, even by
    SIGKILL, so an `up` killed outright leaves no service behind. The C library is
    looked up here, in the parent: after fork the child only makes the one call."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # libc, already loaded

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)

    return hook


class Console:
    """Writes `name | line` for every service, names padded to one width."""

    def __init__(self, names: list[str], out: TextIO | None = None) -> None:
        self.width = max(len(n) for n in names)
        self.out = out or sys.stdout

    def line(self, name: str, text: str) -> None:
        self.out.write(f"{name:<{self.width}} | {text}\n")
        self.out.flush()

    def echo(self, name: str) -> Echo:
        return Echo(self, name)

    async def pump(self, name: str, stream: asyncio.StreamReader) -> None:
        """Copy a child's output to the console until it closes."""
        while True:
            try:
                raw = await stream.readuntil(b"\n")
            except asyncio.IncompleteReadError as exc:
                raw = exc.partial
            except asyncio.LimitOverrunError as exc:
                raw = await stream.readexactly(exc.consumed)
            if not raw:
                return
            self.line(name, raw.decode(errors="replace").rstrip("\r\n"))


class Echo:
    """A one-argument writer for one service name (a callback for helpers)."""

    def __init__(self, console: Console, name: str) -> None:
        self.console = console
        self.name = name

    def __call__(self, text: str) -> None:
        self.console.line(self.name, text)
