"""`sayna-sip up` end to end, as a user runs it: the stack on an embedded NATS, the
`sink` as the tenant's hook, `send-test-event` as LiveKit. Events arrive signed; a
killed service is restarted and the stack keeps delivering; SIGTERM leaves nothing."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import ssl
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from tests.fixtures.livekit import API_KEY, API_SECRET, LiveKitTwirp
from tests.fixtures.nats import NatsServer

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
CLI = [sys.executable, "-m", "sayna_sip.cli.main"]
SIP_ON = {"SIP_ROOM_PREFIX": "test-sip-", "SIP_ALLOWED_ADDRESSES": "127.0.0.1"}
pytestmark = pytest.mark.timeout(90)


class Proc:
    """A CLI subprocess whose output lines can be awaited."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self.changed = asyncio.Event()
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, args: Sequence[str], env: dict[str, str], cwd: Path | None = None) -> Proc:
        proc = await asyncio.create_subprocess_exec(
            *CLI, *args, env=env, cwd=cwd,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        return cls(proc)

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            self.lines.append(line.decode(errors="replace").rstrip())
            self.changed.set()
        self.changed.set()

    def matching(self, pattern: str) -> list[re.Match[str]]:
        return [m for line in self.lines if (m := re.search(pattern, line))]

    async def wait_for(
        self, pattern: str, count: int = 1, timeout: float = 30.0
    ) -> list[re.Match[str]]:
        try:
            async with asyncio.timeout(timeout):
                while len(found := self.matching(pattern)) < count:
                    if self.reader.done():
                        raise AssertionError(f"exited before {pattern!r}")
                    self.changed.clear()
                    await self.changed.wait()
        except (TimeoutError, AssertionError):
            tail = "\n".join(self.lines[-60:])
            raise AssertionError(f"no {count}x {pattern!r} in output:\n{tail}") from None
        return found

    async def stop(self) -> int:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(self.proc.wait(), 30)
        await self.reader
        return code


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_port_pair() -> int:
    """A port p with p+1 free too (the two forwarders' health ports)."""
    while True:
        port = free_port()
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", port + 1))
            return port
        except OSError:
            continue


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(") ", 1)[1][0] != "Z"  # a zombie is gone, only not reaped yet


HOOK_HOST = "localhost"


def local_testing_config(path: Path, sink_port: int) -> Path:
    """The spec's "Local testing" configuration, pointed at the sink's port. Its hook
    host is dotted: the router, like the original, matches no single-label host."""
    path.write_text(
        "sip:\n"
        '  room_prefix: "test-sip-"\n'
        "  allowed_addresses:\n"
        '    - "127.0.0.1"\n'
        '    - "192.168.1.0/24"\n'
        "  hooks:\n"
        f'    - host: "{HOOK_HOST}"\n'
        f'      url: "https://localhost:{sink_port}/webhooks"\n'
    )
    return path


@pytest.fixture
def stack_env(tmp_path: Path) -> dict[str, str]:
    """Environment for `up` and the tools: free ports, LiveKit key, hook secret."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIP_", "NATS_"))}
    env.update(
        HOST="127.0.0.1",
        PORT=str(free_port()),
        ROUTER_PORT=str(free_port()),
        FORWARDER_PORT=str(free_port_pair()),
        LIVEKIT_API_KEY=API_KEY,
        LIVEKIT_API_SECRET=API_SECRET,
        SIP_HOOK_SECRET=SECRET,
        PYTHONUNBUFFERED="1",
    )
    env.pop("LIVEKIT_URL", None)
    return env


@pytest.fixture
async def sink(tmp_path: Path, stack_env: dict[str, str]) -> AsyncIterator[tuple[Proc, Path]]:
    """`sayna-sip sink` on a free port (its certificate from the data dir's dev CA) and
    the local-testing config whose hook points at it."""
    port = free_port()
    config = local_testing_config(tmp_path / "local.yaml", port)
    args = ["sink", "--port", str(port), "--config", str(config)]
    proc = await Proc.start([*args, "--data-dir", str(tmp_path / "data")], stack_env)
    await proc.wait_for(r"sink listening on")
    yield proc, config
    await proc.stop()


async def send_event(env: dict[str, str], config: Path, to: str) -> str:
    """Run `send-test-event`; return the event id it sent."""
    url = f"http://127.0.0.1:{env['PORT']}/livekit/webhook"
    args = ["send-test-event", "--to", to, "--config", str(config), "--url", url]
    proc = await Proc.start(args, env)
    assert await asyncio.wait_for(proc.proc.wait(), 30) == 0, "\n".join(proc.lines)
    await proc.reader
    found = proc.matching(r"sent event=participant_joined id=(\S+) room=test-sip-demo")
    assert found and any(line.startswith("answer 200") for line in proc.lines), proc.lines
    return found[0].group(1)


async def test_up_delivers_signed_restarts_a_killed_service_and_stops_clean(
    tmp_path: Path, stack_env: dict[str, str], sink: tuple[Proc, Path]
) -> None:
    sink_proc, config = sink
    args = ["up", "--config", str(config), "--data-dir", str(tmp_path / "data")]
    up = await Proc.start([*args, "--nats-port", "0"], stack_env)
    try:
        await up.wait_for(r"event=stack_ready ingress=http://127.0.0.1:\d+ forwarders=2")
        assert up.matching(r"^provision +\| .*event=livekit_sip_skipped reason=LIVEKIT_URL_not_set")

        first = await send_event(stack_env, config, f"sip:+15551234567@{HOOK_HOST}")
        await sink_proc.wait_for(
            rf"delivery event=participant_joined webhook-id={first} room=test-sip-demo "
            r"bytes=\d+ signature=verified path=/webhooks"
        )

        router = int(up.matching(r"event=child_started service=router pid=(\d+)")[0].group(1))
        os.kill(router, signal.SIGKILL)
        await up.wait_for(rf"event=child_exited service=router pid={router} code=-9 restart_in=")
        await up.wait_for(r"event=child_started service=router pid=\d+", count=2)

        second = await send_event(stack_env, config, f"sip:+15551234567@{HOOK_HOST}")
        await sink_proc.wait_for(rf"webhook-id={second} .*signature=verified")
    finally:
        code = await up.stop()

    assert code == 0, "\n".join(up.lines[-40:])
    assert up.lines[-1].endswith("event=stack_stopped")
    pids = [int(m.group(1)) for m in up.matching(r"event=(?:child|nats)_started .*pid=(\d+)")]
    assert len(pids) >= 7  # nats, provision, ingress, router twice, 2 forwarders
    assert [pid for pid in pids if alive(pid)] == []
    assert not sink_proc.matching(r"signature=(?!verified)")


async def test_up_stops_with_the_provisioners_error(
    tmp_path: Path, stack_env: dict[str, str], livekit_server: LiveKitTwirp
) -> None:
    # LiveKit refuses the credentials in the YAML file: provisioning must fail.
    config = tmp_path / "bad.yaml"
    config.write_text(
        f"livekit: {{url: '{livekit_server.url}', api_key: {API_KEY}, api_secret: wrong-secret}}\n"
        "sip: {room_prefix: test-sip-, allowed_addresses: [127.0.0.1]}\n"
    )
    env = {k: v for k, v in stack_env.items() if not k.startswith("LIVEKIT_")}
    args = ["up", "--config", str(config), "--data-dir", str(tmp_path / "data")]
    up = await Proc.start([*args, "--nats-port", "0"], env)

    code = await asyncio.wait_for(up.proc.wait(), 30)
    await up.reader

    assert code == 1
    assert up.matching(r"^provision +\| .*trunk=sayna-test-sip--trunk .*unauthenticated")
    assert up.matching(r"event=provision_failed code=1")
    nats = int(up.matching(r"event=nats_started .*pid=(\d+)")[0].group(1))
    assert not alive(nats)
    assert not up.matching(r"service=(ingress|router|forwarder)")


async def test_up_takes_a_cluster_list_for_its_external_nats(
    tmp_path: Path, stack_env: dict[str, str], nats_server: NatsServer
) -> None:
    urls = f"nats://127.0.0.1:{free_port()}  {nats_server.url}"  # one member down
    args = ["up", "--forwarders", "1", "--nats-url", urls, "--data-dir", str(tmp_path / "d")]
    up = await Proc.start(args, {**stack_env, **SIP_ON})

    await up.wait_for(r"event=stack_ready", timeout=60)

    assert await up.stop() == 0
    assert not up.matching(r"event=nats_started")  # no embedded NATS


async def test_up_with_unreachable_nats_exits_naming_every_url(
    tmp_path: Path, stack_env: dict[str, str]
) -> None:
    first, second = f"nats://127.0.0.1:{free_port()}", f"nats://127.0.0.1:{free_port()}"
    env = {**stack_env, **SIP_ON, "NATS_START_TIMEOUT": "2"}
    args = ["up", "--nats-url", f"{first}, {second}", "--data-dir", str(tmp_path / "d")]
    up = await Proc.start(args, env)

    code = await asyncio.wait_for(up.proc.wait(), 20)
    await up.reader

    assert code == 1
    assert up.matching(rf"^provision +\| .*event=nats_connect_failed urls={first},{second} ")
    assert up.matching(rf"cannot connect to NATS at {first},{second} within 2s")


async def test_sink_listens_where_told_with_a_certificate_for_its_service_name(
    tmp_path: Path, stack_env: dict[str, str]
) -> None:
    # Under compose the forwarders reach the sink as https://sink:8443 from other
    # containers: it must listen beyond loopback and its certificate must name `sink`.
    port, data = free_port(), tmp_path / "data"
    args = ["sink", "--port", str(port), "--data-dir", str(data), "--secret", SECRET]
    proc = await Proc.start([*args, "--host", "127.0.0.1", "--cert-name", "sink.test"], stack_env)
    try:
        await proc.wait_for(r"sink listening on https://localhost:\d+ \(127\.0\.0\.1\)$")
        ctx = ssl.create_default_context(cafile=str(data / "dev-ca" / "ca.pem"))
        _, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=ctx, server_hostname="sink.test"
        )
        writer.close()
        await writer.wait_closed()
    finally:
        await proc.stop()
