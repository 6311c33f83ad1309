"""Child-process supervision for `sayna-sip up`: start each service with its output
prefixed, restart one that dies (exponential backoff, logged), and stop them all
gracefully (SIGTERM, bounded wait, SIGKILL) so nothing is left behind."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from dataclasses import dataclass

from sayna_sip.cli.procs import READ_LIMIT, Console, die_with_parent

BACKOFF_FIRST = 0.5
BACKOFF_MAX = 30.0
STABLE_AFTER = 30.0  # a child that ran this long is healthy again: reset its backoff


@dataclass
class ChildSpec:
    name: str
    argv: list[str]
    env: dict[str, str]


@dataclass
class _Running:
    spec: ChildSpec
    proc: asyncio.subprocess.Process
    pump: asyncio.Task[None]


def backoff(failures: int) -> float:
    """Delay before restart number `failures` (1-based): 0.5 s, 1 s, 2 s ... 30 s."""
    return float(min(BACKOFF_FIRST * 2 ** max(failures - 1, 0), BACKOFF_MAX))


class Supervisor:
    def __init__(self, console: Console, stop_timeout: float = 10.0) -> None:
        self.console = console
        self.stop_timeout = stop_timeout
        self.stopping = asyncio.Event()
        self._running: dict[str, _Running] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def log(self, text: str) -> None:
        self.console.line("up", text)

    async def _spawn(self, spec: ChildSpec) -> _Running:
        proc = await asyncio.create_subprocess_exec(
            *spec.argv,
            env=spec.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            limit=READ_LIMIT,
            # Own session: a terminal's Ctrl-C reaches `up` alone, which then stops the
            # children in order instead of racing their own shutdown against restarts.
            start_new_session=True,
            preexec_fn=die_with_parent(),
        )
        assert proc.stdout is not None
        pump = asyncio.create_task(self.console.pump(spec.name, proc.stdout))
        running = _Running(spec, proc, pump)
        self._running[spec.name] = running
        self.log(f"event=child_started service={spec.name} pid={proc.pid}")
        return running

    async def _reap(self, running: _Running) -> int:
        code = await running.proc.wait()
        await running.pump
        self._running.pop(running.spec.name, None)
        return code

    async def run_once(self, spec: ChildSpec) -> int | None:
        """Run a one-shot child to completion; None when `up` is stopping first."""
        running = await self._spawn(spec)
        waiter = asyncio.create_task(self._reap(running))
        stop = asyncio.create_task(self.stopping.wait())
        await asyncio.wait({waiter, stop}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if waiter.done():
            return waiter.result()
        await self._terminate([running])
        await waiter
        return None

    def keep_running(self, spec: ChildSpec) -> None:
        """Start a long-running child and restart it whenever it exits, until stop()."""
        self._tasks.append(asyncio.create_task(self._keep_running(spec)))

    async def _keep_running(self, spec: ChildSpec) -> None:
        loop = asyncio.get_running_loop()
        failures = 0
        while not self.stopping.is_set():
            started = loop.time()
            running = await self._spawn(spec)
            if self.stopping.is_set():  # stop() began while this child was starting
                await self._terminate([running])
            code = await self._reap(running)
            if self.stopping.is_set():
                return
            failures = 1 if loop.time() - started >= STABLE_AFTER else failures + 1
            delay = backoff(failures)
            self.log(
                f"event=child_exited service={spec.name} pid={running.proc.pid} "
                f"code={code} restart_in={delay:g}s restarts={failures}"
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), delay)

    async def stop(self) -> None:
        """Stop every child: SIGTERM, then SIGKILL after `stop_timeout`."""
        self.stopping.set()
        await self._terminate(list(self._running.values()))
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _terminate(self, children: list[_Running]) -> None:
        for child in children:
            _signal(child.proc, signal.SIGTERM)
        waits = [asyncio.create_task(c.proc.wait()) for c in children]
        if not waits:
            return
        await asyncio.wait(waits, timeout=self.stop_timeout)
        for child in children:
            if child.proc.returncode is None:
                self.log(f"event=child_killed service={child.spec.name} pid={child.proc.pid}")
                _signal(child.proc, signal.SIGKILL)
        await asyncio.gather(*waits)
        await asyncio.gather(*(c.pump for c in children), return_exceptions=True)

    def kill_all(self) -> None:
        """A second Ctrl-C: do not wait for graceful shutdown."""
        for child in list(self._running.values()):
            _signal(child.proc, signal.SIGKILL)


def _signal(proc: asyncio.subprocess.Process, sig: signal.Signals) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
