"""What `sayna-sip provision` leaves in NATS, checked against the design's numbers (not
the code's own constants): LiveKit's retries of one event are stored once for at least
five minutes, and `sip_rooms` entries expire instead of piling up forever."""

from __future__ import annotations

from collections.abc import AsyncIterator

import nats
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext

from tests.fixtures.nats import NatsServer
from tests.provisioner.helpers import sip_env
from tests.provisioner.test_cli import provision_cli

FIVE_MINUTES = 300.0  # design.md: LK_EVENTS duplicate window >= 5 min
ONE_HOUR = 3600.0  # a SIP call's room must outlive the call, or room_finished is lost


@pytest.fixture
async def provisioned(nats_server: NatsServer) -> AsyncIterator[JetStreamContext]:
    """JetStream on a server that `sayna-sip provision` has just set up (SIP on)."""
    run = await provision_cli({"NATS_URL": nats_server.url, **sip_env()})
    assert run.code == 0, run.stderr
    nc: Client = await nats.connect(nats_server.url)
    yield nc.jetstream()
    await nc.close()


async def test_lk_events_drops_livekit_retries_for_at_least_five_minutes(
    provisioned: JetStreamContext,
) -> None:
    info = await provisioned.stream_info("LK_EVENTS")
    assert info.config.duplicate_window is not None
    assert info.config.duplicate_window >= FIVE_MINUTES
    headers = {"Nats-Msg-Id": "EV_retried"}
    first = await provisioned.publish("lk.events.room_started", b"{}", headers=headers)
    again = await provisioned.publish("lk.events.room_started", b"{}", headers=headers)
    assert (first.duplicate, again.duplicate) == (None, True)


async def test_sip_rooms_entries_expire(provisioned: JetStreamContext) -> None:
    rooms = await provisioned.key_value("sip_rooms")
    ttl = (await rooms.status()).ttl
    assert ttl is not None and ONE_HOUR <= ttl < float("inf")  # 0/None = kept forever
    await rooms.put("sip-room-1", b"example.com")
    info = await provisioned.stream_info("KV_sip_rooms")
    assert info.config.max_age == ttl  # what NATS enforces on every entry
