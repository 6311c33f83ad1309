"""`up`'s process supervision on stand-in children: restart with backoff, graceful stop,
SIGKILL for a child that ignores SIGTERM, prefixed output."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sayna_sip.cli.procs import Console
from sayna_sip.cli.supervisor import ChildSpec, Supervisor, backoff

SLEEPER = "import time; print('started', flush=True); time.sleep(60)"
POLITE = (
    "import signal, sys, time\n"
    "def bye(*_):\n    print('bye', flush=True); sys.exit(0)\n"
    "signal.signal(signal.SIGTERM, bye)\nprint('started', flush=True)\ntime.sleep(60)\n"
)
STUBBORN = (
    "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('started', flush=True)\ntime.sleep(60)\n"
)


class Lines:
    """A console sink whose lines can be awaited."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.changed = asyncio.Event()

    def write(self, text: str) -> None:
        self.lines += [line for line in text.splitlines() if line]
        self.changed.set()

    def flush(self) -> None:
        pass

    async def wait_for(self, pattern: str, count: int = 1, timeout: float = 10.0) -> list[str]:
        async with asyncio.timeout(timeout):
            while True:
                found = [line for line in self.lines if re.search(pattern, line)]
                if len(found) >= count:
                    return found
                self.changed.clear()
                await self.changed.wait()


@pytest.fixture
async def supervised() -> AsyncIterator[tuple[Supervisor, Lines]]:
    """A Supervisor writing to awaitable lines, stopped at the end."""
    out = Lines()
    sup = Supervisor(Console(["up", "child"], out), stop_timeout=0.5)  # type: ignore[arg-type]
    yield sup, out
    await sup.stop()


def spec(code: str) -> ChildSpec:
    return ChildSpec("child", [sys.executable, "-c", code], dict(os.environ))


def pids(lines: list[str]) -> list[int]:
    return [int(m.group(1)) for line in lines if (m := re.search(r"pid=(\d+)", line))]


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize(
    ("failures", "delay"), [(1, 0.5), (2, 1.0), (3, 2.0), (6, 16.0), (7, 30.0), (50, 30.0)]
)
def test_backoff_doubles_up_to_a_cap(failures: int, delay: float) -> None:
    assert backoff(failures) == delay


async def test_a_killed_child_is_restarted_and_logged(
    supervised: tuple[Supervisor, Lines],
) -> None:
    sup, out = supervised
    sup.keep_running(spec(SLEEPER))
    first = pids(await out.wait_for(r"event=child_started service=child"))[0]
    await out.wait_for(r"^child +\| started$")
    os.kill(first, signal.SIGKILL)

    exited = await out.wait_for(r"event=child_exited service=child")
    assert f"pid={first} code=-9 restart_in=0.5s restarts=1" in exited[0]
    second = pids(await out.wait_for(r"event=child_started service=child", count=2))[1]
    assert second != first and alive(second)


async def test_stop_asks_politely_then_leaves_nothing(
    supervised: tuple[Supervisor, Lines],
) -> None:
    sup, out = supervised
    sup.keep_running(spec(POLITE))
    await out.wait_for(r"^child +\| started$")
    pid = pids(out.lines)[0]

    await sup.stop()

    assert "child | bye" in out.lines
    assert not alive(pid)
    assert not any("child_exited" in line or "child_killed" in line for line in out.lines)


async def test_a_child_ignoring_sigterm_is_killed_after_the_timeout(
    supervised: tuple[Supervisor, Lines],
) -> None:
    sup, out = supervised
    sup.keep_running(spec(STUBBORN))
    await out.wait_for(r"^child +\| started$")
    pid = pids(out.lines)[0]

    await asyncio.wait_for(sup.stop(), 5)

    assert any(f"event=child_killed service=child pid={pid}" in line for line in out.lines)
    assert not alive(pid)


async def test_run_once_returns_the_exit_code(supervised: tuple[Supervisor, Lines]) -> None:
    sup, out = supervised
    code = await sup.run_once(spec("import sys; print('boom', flush=True); sys.exit(3)"))
    assert code == 3
    assert "child | boom" in out.lines


ORPHANING_PARENT = f"""
import asyncio, os, sys
from sayna_sip.cli.procs import Console
from sayna_sip.cli.supervisor import ChildSpec, Supervisor

async def main():
    sup = Supervisor(Console(["up", "child"]))
    sup.keep_running(ChildSpec("child", [sys.executable, "-c", {SLEEPER!r}], dict(os.environ)))
    await asyncio.Event().wait()

asyncio.run(main())
"""


async def wait_exit(pid: int, timeout: float = 10.0) -> None:
    """Wait for a process that is not our child to exit (pidfd turns readable)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    gone = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_reader(fd, gone.set)
    try:
        await asyncio.wait_for(gone.wait(), timeout)
    finally:
        loop.remove_reader(fd)
        os.close(fd)


async def test_children_die_with_a_killed_supervisor() -> None:
    parent = await asyncio.create_subprocess_exec(
        sys.executable, "-c", ORPHANING_PARENT, stdout=asyncio.subprocess.PIPE
    )
    assert parent.stdout is not None
    child = 0
    async with asyncio.timeout(10):
        while b"| started" not in (line := await parent.stdout.readline()):
            if m := re.search(rb"pid=(\d+)", line):
                child = int(m.group(1))
    assert alive(child)

    parent.kill()  # SIGKILL: no chance to stop its children itself
    await parent.wait()

    await wait_exit(child)
    assert not alive(child)


@pytest.mark.parametrize(
    ("env", "sip_lines"),
    [({}, False), ({"SIP_ROOM_PREFIX": "sip-", "SIP_ALLOWED_ADDRESSES": "10.0.0.1"}, True)],
    ids=["sip-off", "sip-on"],
)
def test_ready_banner_mentions_sip_only_when_sip_is_on(
    tmp_path: Path, env: dict[str, str], sip_lines: bool
) -> None:
    from sayna_sip.cli.up import Stack, _parser
    from sayna_sip.common.config import ServerConfig

    args = _parser().parse_args(["--data-dir", str(tmp_path)])
    banner = "\n".join(Stack(args, ServerConfig.from_env(env), env)._banner())
    assert "stack_ready" in banner
    assert ("/sip/hooks" in banner) is sip_lines
    assert ("send-test-event" in banner) is sip_lines
