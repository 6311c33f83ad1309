"""Forwarder test helpers: configs that trust the test CA and allow loopback, hooks in
KV, deliveries published the way the router publishes them, dead letters read back."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import RawStreamMsg
from nats.js.errors import NotFoundError

from sayna_sip.common import contracts, records, topology
from sayna_sip.common.config import ServerConfig
from sayna_sip.common.contracts import Header
from sayna_sip.common.hook import Hook
from sayna_sip.common.hosts import host_token
from sayna_sip.common.records import AttemptRecord
from sayna_sip.forwarder.app import Forwarder
from sayna_sip.forwarder.breaker import BreakerSettings
from sayna_sip.forwarder.tuning import Tuning
from tests.fixtures.https_sink import HttpsSink
from tests.fixtures.nats import NatsServer

FAST = Tuning(
    shutdown_grace=1.0,
    breaker=BreakerSettings(window=5.0, bucket=1.0, min_requests=10, open_for=0.5),
    seed=7,
)
SECRET = "a-plain-secret-of-32-characters!"


def forwarder_env(nats_url: str, sink: HttpsSink, **extra: str) -> dict[str, str]:
    env = {
        "NATS_URL": nats_url,
        "HOST": "127.0.0.1",
        "FORWARDER_PORT": "0",
        "SIP_ROOM_PREFIX": "sip-",
        "SIP_ALLOWED_ADDRESSES": "203.0.113.0/24",
        "SIP_HOOK_ALLOW_NETWORKS": "127.0.0.0/8",
        "SIP_HOOK_CA_BUNDLE": str(sink.ca_path),
        "SIP_RETRY_SCHEDULE": "0s,200ms,400ms",
        "FORWARDER_TIMEOUT": "2",
        "FORWARDER_CONNECT_TIMEOUT": "0.5",
    }
    env.update(extra)
    return env


def event_body(event_id: str, room: str = "sip-room-1") -> bytes:
    """A LiveKit-like protojson body with odd spacing, to prove bytes are not re-encoded."""
    head = '{"event":  "participant_joined", "room": {"name": "' + room + '"},'
    return (head + ' "id": "' + event_id + '", "note": "caf\\u00e9 \u2713"}').encode()


async def put_hook(js: JetStreamContext, host: str, url: str) -> None:
    kv = await js.key_value(topology.HOOKS_BUCKET)
    await kv.put(host_token(host), Hook.new(host, url, "runtime").encode())


async def delete_hook(js: JetStreamContext, host: str) -> None:
    kv = await js.key_value(topology.HOOKS_BUCKET)
    await kv.delete(host_token(host))


async def publish(
    js: JetStreamContext,
    hook: str,
    event_id: str | None = None,
    body: bytes | None = None,
    received_at: float | None = None,
    headers_extra: dict[str, str] | None = None,
) -> tuple[str, bytes]:
    """One delivery message exactly as the router of the release before endpoints wrote
    it (`headers_extra`: what a later router adds, e.g. Sayna-Endpoint)."""
    event_id = event_id or f"EV_{uuid.uuid4().hex[:12]}"
    body = body if body is not None else event_body(event_id)
    headers = {
        Header.MSG_ID: event_id,
        Header.EVENT_ID: event_id,
        Header.EVENT: "participant_joined",
        Header.ROOM: "sip-room-1",
        Header.RECEIVED_AT: f"{received_at or time.time():.6f}",
        Header.HOOK: hook,
        Header.SIP_HOST: hook.removeprefix("*."),
        **(headers_extra or {}),
    }
    ack = await js.publish(
        contracts.delivery_subject(hook), body, stream=topology.SIP_DELIVERIES, headers=headers
    )
    assert not ack.duplicate
    return event_id, body


async def dead_letters(js: JetStreamContext) -> list[RawStreamMsg]:
    out: list[RawStreamMsg] = []
    seq = 1
    while True:
        try:
            msg = await js.get_msg(
                topology.SIP_DEAD, seq=seq, subject=contracts.DEAD_SUBJECTS, next=True
            )
        except NotFoundError:
            return out
        out.append(msg)
        seq = (msg.seq or seq) + 1


async def wait_dead(js: JetStreamContext, count: int, timeout: float = 10.0) -> list[RawStreamMsg]:
    deadline = time.monotonic() + timeout
    while True:
        found = await dead_letters(js)
        if len(found) >= count or time.monotonic() > deadline:
            return found
        await _poll()


async def _poll() -> None:
    import asyncio

    await asyncio.sleep(0.05)  # SIP_DEAD has no change event to await; poll briefly


async def pending_deliveries(js: JetStreamContext) -> int:
    info = await js.stream_info(topology.SIP_DELIVERIES)
    return int(info.state.messages)


async def drained(js: JetStreamContext, timeout: float = 5.0) -> None:
    """Wait until every delivery message was acked (the work-queue stream is empty)."""
    deadline = time.monotonic() + timeout
    while await pending_deliveries(js):
        if time.monotonic() > deadline:
            raise AssertionError(f"SIP_DELIVERIES still holds {await pending_deliveries(js)}")
        await _poll()


StartForwarder = Callable[..., Awaitable[Forwarder]]


@pytest.fixture
async def start_forwarder(
    nats_server: NatsServer, https_sink: HttpsSink, jetstream: JetStreamContext
) -> AsyncIterator[StartForwarder]:
    """Start in-process forwarders on the test NATS (env overrides as kwargs); all stop
    at teardown."""
    started: list[Forwarder] = []

    async def start(tuning: Tuning = FAST, **env: str) -> Forwarder:
        config = ServerConfig.from_env(forwarder_env(nats_server.url, https_sink, **env))
        fwd = await Forwarder.start(config, tuning)
        started.append(fwd)
        return fwd

    yield start
    for fwd in started:
        if not fwd.running.done() or fwd.nc.is_connected:
            await fwd.stop()


class Attempts(list[AttemptRecord]):
    """Every attempt record the forwarders publish, in order, and a wait for the n-th."""

    def __init__(self) -> None:
        super().__init__()
        self.grew = asyncio.Event()

    async def wait(self, count: int) -> list[AttemptRecord]:
        async with asyncio.timeout(10):
            while len(self) < count:
                self.grew.clear()
                await self.grew.wait()
        return list(self)


@pytest.fixture
async def attempts(nats_client: Client) -> AsyncIterator[Attempts]:
    got = Attempts()

    async def on_record(msg: Msg) -> None:
        record = records.decode(msg.data)
        if isinstance(record, AttemptRecord):
            got.append(record)
            got.grew.set()

    sub = await nats_client.subscribe("sip.attempt.>", cb=on_record)
    yield got
    await sub.unsubscribe()
