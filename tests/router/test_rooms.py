"""Room memory: room-level events and non-SIP participants of a SIP call follow its hook."""

from __future__ import annotations

import re

import msgspec
from hypothesis import given
from hypothesis import strategies as st
from nats.js import JetStreamContext

from sayna_sip.common import contracts, topology
from sayna_sip.common.contracts import Header
from sayna_sip.router.app import RouterService
from sayna_sip.router.rooms import RoomRecord, room_key
from tests.fixtures.livekit import sip_event
from tests.router.helpers import (
    delete_hook,
    drained,
    headers_of,
    publish_event,
    put_hook,
    stored_deliveries,
    take_deliveries,
    until,
)

_KV_KEY = re.compile(r"^[-/_=.a-zA-Z0-9]+$")
WAITED = ("held", "no_host", "deferred")  # outcomes of a host-less event in an unknown room


@given(st.text(min_size=1), st.text(min_size=1))
def test_room_key_is_a_valid_kv_key_and_injective(a: str, b: str) -> None:
    assert _KV_KEY.match(room_key(a))
    assert (room_key(a) == room_key(b)) == (a == b)


def test_room_key_keeps_plain_names_readable() -> None:
    assert room_key("sip-_abc123XYZ") == "sip-_abc123XYZ"
    assert room_key("sip-a.b=c") == "sip-a=2Eb=3Dc"


async def test_room_finished_follows_the_calls_hook(
    jetstream: JetStreamContext, router: RouterService
) -> None:
    await put_hook(jetstream, "*.example.com")
    room = "sip-call-room1"
    joined = sip_event(room=room, to="sip:+1555@tenant.example.com", event_id="EV_join")
    agent = sip_event(room=room, to=None, event_id="EV_agent")  # the agent: no SIP headers
    finished = sip_event("room_finished", room=room, event_id="EV_fin")
    await publish_event(jetstream, joined)
    [first] = await take_deliveries(jetstream, 1)
    bodies = {"EV_agent": await publish_event(jetstream, agent)}
    bodies["EV_fin"] = await publish_event(jetstream, finished)

    got = await take_deliveries(jetstream, 2)

    assert headers_of(first)[Header.EVENT_ID] == "EV_join"
    for msg in got:
        headers = headers_of(msg)
        assert msg.data == bodies[headers[Header.EVENT_ID]]
        assert msg.subject == contracts.delivery_subject("*.example.com")
        assert headers[Header.HOOK] == "*.example.com"
        assert headers[Header.SIP_HOST] == "tenant.example.com"
    assert {headers_of(m)[Header.EVENT] for m in got} == {"participant_joined", "room_finished"}
    kv = await jetstream.key_value(topology.ROOMS_BUCKET)
    stored = msgspec.json.decode((await kv.get(room_key(room))).value or b"", type=RoomRecord)
    assert (stored.sip_host, stored.hook) == ("tenant.example.com", "*.example.com")
    assert stored.call_seq == {"*.example.com#default": 3}  # the join, agent, room_finished


async def test_room_events_of_unknown_or_unhooked_rooms_go_nowhere(
    jetstream: JetStreamContext, router: RouterService
) -> None:
    await put_hook(jetstream, "example.com")
    await publish_event(jetstream, sip_event(room="sip-r2", to="sip:a@example.com"))
    await take_deliveries(jetstream, 1)
    await delete_hook(jetstream, "example.com")
    # The router's hook cache follows KV through a watch: wait until it saw the delete
    # (under load the next event could otherwise still match the cached hook).
    await until(lambda: router.hooks is not None and router.hooks.get("example.com") is None)

    await publish_event(jetstream, sip_event("room_finished", room="sip-r2"))  # hook gone
    await publish_event(jetstream, sip_event("room_finished", room="sip-never-seen"))
    await drained(jetstream)

    assert await stored_deliveries(jetstream) == 0
    assert (
        router.registry.get_sample_value("sayna_sip_router_events_total", {"outcome": "unmatched"})
        == 1
    )
    counted = router.registry.get_sample_value
    # the never-seen room's event waits in room memory for a host that may still come
    assert counted("sayna_sip_router_events_total", {"outcome": "held"}) == 1


async def test_room_event_racing_the_calls_join_is_not_lost(
    jetstream: JetStreamContext, router: RouterService
) -> None:
    """The agent's join handled before the caller's join was remembered (same pulled
    batch, or another replica): it must wait for the room memory, not be dropped."""
    await put_hook(jetstream, "example.com")
    room = "sip-call-race"
    agent = await publish_event(jetstream, sip_event(room=room, to=None, event_id="EV_agent"))

    def looked_at() -> bool:
        counted = router.registry.get_sample_value
        return any(counted("sayna_sip_router_events_total", {"outcome": o}) for o in WAITED)

    await until(looked_at)  # the agent's event found no host and no room memory
    await publish_event(jetstream, sip_event(room=room, to="sip:a@example.com", event_id="EV_j"))

    got = await take_deliveries(jetstream, 2)

    assert {headers_of(m)[Header.EVENT_ID] for m in got} == {"EV_agent", "EV_j"}
    [late] = [m for m in got if headers_of(m)[Header.EVENT_ID] == "EV_agent"]
    assert late.data == agent
    assert headers_of(late)[Header.SIP_HOST] == "example.com"
    assert (
        router.registry.get_sample_value("sayna_sip_router_events_total", {"outcome": "no_host"})
        == 0
    )


async def test_a_room_whose_record_an_operator_deleted_routes_and_is_remembered_again(
    jetstream: JetStreamContext, router: RouterService
) -> None:
    """A deleted (or purged) key keeps its marker's sequence: a write expecting none
    conflicted every time, and every event of the room was retried for ever."""
    await put_hook(jetstream, "example.com")
    kv = await jetstream.key_value(topology.ROOMS_BUCKET)
    for room, remove in (("sip-deleted", kv.delete), ("sip-purged", kv.purge)):
        await kv.put(room_key(room), b'{"sip_host":"example.com","hook":"example.com"}')
        await remove(room_key(room))  # `nats kv del sip_rooms ...`
        await publish_event(jetstream, sip_event(room=room, to="sip:a@example.com"))

    got = await take_deliveries(jetstream, 2)

    assert {headers_of(m)[Header.ROOM] for m in got} == {"sip-deleted", "sip-purged"}
    for room in ("sip-deleted", "sip-purged"):
        entry = await kv.get(room_key(room))
        record = msgspec.json.decode(entry.value or b"", type=RoomRecord)
        assert (record.sip_host, record.call_seq) == ("example.com", {"example.com#default": 1})
    retried = router.registry.get_sample_value(
        "sayna_sip_router_events_total", {"outcome": "retry"}
    )
    assert retried == 0
