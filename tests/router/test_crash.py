"""At-least-once into SIP_DELIVERIES, exactly once out of its dedupe window.

The router acks an event only after the delivery's PubAck; a router killed in between
leaves the event unacked, so it is redelivered, routed again, and JetStream drops the
second delivery (`Nats-Msg-Id` = event id).
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import yaml
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig

from sayna_sip.common import contracts, topology
from sayna_sip.common.config import ServerConfig
from sayna_sip.common.contracts import Header
from sayna_sip.router.app import RouterService
from tests.fixtures.livekit import sip_event
from tests.fixtures.nats import NatsServer
from tests.router.helpers import (
    clean_env,
    drained,
    headers_of,
    publish_event,
    put_hook,
    router_backlog,
    stored_deliveries,
    take_deliveries,
    until,
)

BACKLOG = 800  # kills land after 200, 400 or 600 are stored: some always left
ACK_WAIT = 1.0  # the provisioned 30 s, shortened so redelivery happens within the test


async def test_redelivered_event_is_not_delivered_twice(
    jetstream: JetStreamContext, router_config: ServerConfig
) -> None:
    await put_hook(jetstream, "example.com")
    event = sip_event(event_id="EV_again")
    body = await publish_event(jetstream, event)
    # What a router that died after its publish and before its ack left behind:
    await jetstream.publish(
        contracts.delivery_subject("example.com"),
        body,
        headers={Header.MSG_ID: "EV_again"},
        stream=topology.SIP_DELIVERIES,
    )
    service = RouterService(router_config)
    await service.start()
    try:
        await drained(jetstream)
    finally:
        await service.stop()
    assert await stored_deliveries(jetstream) == 1
    assert service.registry.get_sample_value("sayna_sip_router_duplicate_deliveries_total") == 1
    assert (
        service.registry.get_sample_value("sayna_sip_router_events_total", {"outcome": "routed"})
        == 1
    )


async def _short_ack_wait(js: JetStreamContext) -> None:
    for name in topology.ROUTER_CONSUMERS:
        info = await js.consumer_info(topology.LK_EVENTS, name)
        config: ConsumerConfig = info.config
        config.ack_wait = ACK_WAIT
        await js.delete_consumer(topology.LK_EVENTS, name)
        await js.add_consumer(topology.LK_EVENTS, config)


def _spawn_router(nats_server: NatsServer, tmp_path: Path) -> subprocess.Popen[bytes]:
    config = tmp_path / "router.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "nats": {"url": nats_server.url},
                "sip": {"room_prefix": "sip-", "allowed_addresses": ["10.0.0.1"]},
                "server": {"host": "127.0.0.1"},
                "router": {"port": 0},
                "logging": {"level": "WARNING"},
            }
        )
    )
    cli = Path(sys.executable).parent / "sayna-sip"
    return subprocess.Popen([str(cli), "router", "--config", str(config)], env=clean_env())


async def _wait_stored(js: JetStreamContext, at_least: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while await stored_deliveries(js) < at_least:  # no event for "n stored": poll
        assert time.monotonic() < deadline, f"fewer than {at_least} deliveries stored"
        await asyncio.sleep(0.005)


async def test_router_killed_between_consume_and_ack_loses_and_duplicates_nothing(
    jetstream: JetStreamContext,
    nats_server: NatsServer,
    router_config: ServerConfig,
    tmp_path: Path,
) -> None:
    await _short_ack_wait(jetstream)
    await put_hook(jetstream, "*.example.com")
    ids = [f"EV_{i:05d}" for i in range(BACKLOG)]
    for i, event_id in enumerate(ids):
        to = f"sip:+1555@t{i % 7}.example.com"
        await publish_event(jetstream, sip_event(room=f"sip-r{i}", to=to, event_id=event_id))

    in_flight_at_kill = 0
    for attempt in range(3):  # kill until the SIGKILL lands with events consumed, unacked
        proc = _spawn_router(nats_server, tmp_path)
        await _wait_stored(jetstream, (attempt + 1) * 200)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        in_flight_at_kill, pending, _ = await router_backlog(jetstream)
        if in_flight_at_kill and pending:
            break
    assert in_flight_at_kill > 0, "no kill landed between consume and ack"
    assert await stored_deliveries(jetstream) < BACKLOG

    service = RouterService(router_config)  # a fresh router picks up what the dead one held
    await service.start()
    try:
        await drained(jetstream, timeout=30)
    finally:
        await service.stop()
    assert await stored_deliveries(jetstream) == BACKLOG  # each event stored exactly once

    got = await take_deliveries(jetstream, BACKLOG)
    seen = Counter(headers_of(m)[Header.EVENT_ID] for m in got)
    assert sorted(seen) == ids  # nothing lost
    assert max(seen.values()) == 1  # nothing twice


async def test_publish_failure_naks_and_the_event_is_routed_later(
    jetstream: JetStreamContext, router: RouterService
) -> None:
    await put_hook(jetstream, "example.com")
    await jetstream.delete_stream(topology.SIP_DELIVERIES)  # every publish now fails
    body = await publish_event(jetstream, sip_event(event_id="EV_later"))

    await until(
        lambda: bool(
            router.registry.get_sample_value("sayna_sip_router_events_total", {"outcome": "retry"})
        )
    )
    ack_pending, pending, _ = await router_backlog(jetstream)
    assert ack_pending + pending == 1  # held for redelivery, not acked
    [stream] = [s for s in topology.streams() if s.name == topology.SIP_DELIVERIES]
    await jetstream.add_stream(stream)
    [spec] = [c for c in topology.consumers(ServerConfig()) if c.stream == stream.name]
    await jetstream.add_consumer(spec.stream, spec.config)

    [msg] = await take_deliveries(jetstream, 1, timeout=10)  # after the nak delay
    assert msg.data == body


CALLS = 200
CALL = ("room_started", "participant_joined", "track_published", "participant_left",
        "room_finished")  # fmt: skip


async def test_router_killed_mid_call_loses_nothing_and_keeps_every_call_numbered(
    jetstream: JetStreamContext,
    nats_server: NatsServer,
    router_config: ServerConfig,
    tmp_path: Path,
) -> None:
    """SIGKILL of a router while calls are routed (design: "Ordered delivery per call"):
    the head of a partition is redelivered as the head, so each call's copies are stored
    once each, in LiveKit's order, numbered 1..5 with no gap or repeat."""
    await _short_ack_wait(jetstream)
    await put_hook(jetstream, "example.com")
    rooms = [f"sip-kill-{i}" for i in range(CALLS)]
    for n, kind in enumerate(CALL, 1):  # interleaved: every call's event 1, then 2...
        for room in rooms:
            to = None if kind.startswith("room_") else "sip:+1555@example.com"
            await publish_event(
                jetstream, sip_event(kind, room=room, to=to, event_id=f"{room}:{n}")
            )

    in_flight_at_kill = 0
    for attempt in range(3):  # kill until the SIGKILL lands with events consumed, unacked
        proc = _spawn_router(nats_server, tmp_path)
        await _wait_stored(jetstream, (attempt + 1) * 150)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        in_flight_at_kill, pending, _ = await router_backlog(jetstream)
        if in_flight_at_kill and pending:
            break
    assert in_flight_at_kill > 0, "no kill landed between consume and ack"

    service = RouterService(router_config)  # a fresh router picks up what the dead one held
    await service.start()
    try:
        await drained(jetstream, timeout=30)
    finally:
        await service.stop()
    total = CALLS * len(CALL)
    assert await stored_deliveries(jetstream) == total  # each copy stored exactly once

    stored: dict[str, list[tuple[int, str]]] = {room: [] for room in rooms}
    for msg in await take_deliveries(jetstream, total):
        h = headers_of(msg)
        stored[h[Header.ROOM]].append((int(h[Header.CALL_SEQ]), h[Header.EVENT_ID]))
    for room in rooms:  # in stream order: 1..5, each the event LiveKit sent at that place
        assert stored[room] == [(n, f"{room}:{n}") for n in range(1, 6)], room
