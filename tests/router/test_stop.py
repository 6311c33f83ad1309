"""Stopping the router finishes the events in flight with everything still in place."""

from __future__ import annotations

import asyncio

import pytest
from nats.js import JetStreamContext

from sayna_sip.common.config import ServerConfig
from sayna_sip.common.contracts import Header
from sayna_sip.router.app import RouterService
from sayna_sip.router.rooms import RoomMemory, RoomState
from tests.fixtures.livekit import sip_event
from tests.router.helpers import (
    drained,
    headers_of,
    publish_event,
    put_hook,
    take_deliveries,
    until,
)


async def test_stop_routes_the_event_in_flight_instead_of_dropping_it(
    jetstream: JetStreamContext, router_config: ServerConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    await put_hook(jetstream, "example.com")
    service = RouterService(router_config)
    await service.start()
    stopping = False
    entered = asyncio.Event()
    load = RoomMemory.load

    async def load_held_until_stop(rooms: RoomMemory, room: str, fresh: bool = False) -> RoomState:
        entered.set()
        # Held until stop() is under way: the subscriber stopped reading, or (the old
        # order) the hook cache already gone. Either is what a real shutdown meets.
        await until(
            lambda: (
                stopping and (not all(s.running for s in service.subscribers) or not service.hooks)
            )
        )
        return await load(rooms, room, fresh)

    try:
        await publish_event(jetstream, sip_event(room="sip-stop", event_id="EV_join"))
        await take_deliveries(jetstream, 1)
        monkeypatch.setattr(RoomMemory, "load", load_held_until_stop)
        await publish_event(jetstream, sip_event("room_finished", room="sip-stop", event_id="EV_f"))
        await entered.wait()
    finally:
        stopping = True
        await service.stop()

    [msg] = await take_deliveries(jetstream, 1)
    assert headers_of(msg)[Header.EVENT_ID] == "EV_f"
    await drained(jetstream)
    counted = service.registry.get_sample_value
    assert counted("sayna_sip_router_events_total", {"outcome": "unmatched"}) == 0
