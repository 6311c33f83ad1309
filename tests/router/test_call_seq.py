"""Ordered routing: each room's copies carry `Sayna-Call-Seq` 1, 2, 3... per endpoint in
LK_EVENTS order, with several routers, host-less events held and redeliveries."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from sayna_sip.common import contracts, records, topology
from sayna_sip.common.config import ServerConfig
from sayna_sip.common.contracts import Header
from sayna_sip.common.hook import Endpoint, Hook
from sayna_sip.common.hosts import host_token
from sayna_sip.common.records import RouteRecord
from sayna_sip.router.app import RouterService
from sayna_sip.router.callseq import MAX_HELD
from sayna_sip.router.rooms import RoomRecord, room_key
from tests.fixtures.livekit import sip_event
from tests.router.helpers import (
    drained,
    headers_of,
    ingress_headers,
    publish_event,
    publish_raw,
    put_hook,
    take_deliveries,
    until,
)

HOST = "example.com"
TO = f"sip:+1555@{HOST}"
JOINS_ONLY = ("participant_joined", "room_finished")  # the `joins` endpoint's filter
HELD = "held until the room's host is known; routed before the event that brings it"


def a_call(room: str) -> list[dict[str, Any]]:
    """A call's webhooks in LiveKit's order; only the joins and left carry the SIP host."""
    return [
        sip_event("room_started", room=room, event_id=f"{room}:started"),
        sip_event(room=room, to=TO, event_id=f"{room}:joined"),
        sip_event("track_published", room=room, to=None, event_id=f"{room}:track"),  # agent
        sip_event("participant_left", room=room, to=TO, event_id=f"{room}:left"),
        sip_event("room_finished", room=room, event_id=f"{room}:finished"),
    ]


async def put_two_endpoints(js: JetStreamContext) -> None:
    """`default` takes every event, `joins` only JOINS_ONLY."""
    hook = Hook.new(HOST, f"https://hooks.test/{HOST}", "runtime")
    joins = Endpoint(id="joins", url="https://hooks.test/joins", events=JOINS_ONLY)
    kv = await js.key_value(topology.HOOKS_BUCKET)
    await kv.put(host_token(HOST), hook.with_endpoint(joins).encode())


def call_seq(msg: Msg) -> int:
    return int(headers_of(msg).get(Header.CALL_SEQ, "0"))


def by_lane(msgs: list[Msg]) -> dict[tuple[str, str], list[Msg]]:
    lanes: dict[tuple[str, str], list[Msg]] = defaultdict(list)
    for msg in msgs:
        h = headers_of(msg)
        lanes[(h[Header.ROOM], h.get(Header.ENDPOINT, "default"))].append(msg)
    return lanes


def routed(service: RouterService, outcome: str = "routed") -> float:
    value = service.registry.get_sample_value("sayna_sip_router_events_total", {"outcome": outcome})
    return value or 0.0


@pytest.fixture
async def second_router(
    router: RouterService, router_config: ServerConfig
) -> AsyncIterator[RouterService]:
    """Another router beside `router`, on the same durables."""
    service = RouterService(router_config)
    await service.start()
    yield service
    await service.stop()


async def test_two_routers_keep_each_rooms_order_per_endpoint_without_gaps(
    jetstream: JetStreamContext, router: RouterService, second_router: RouterService
) -> None:
    await put_two_endpoints(jetstream)
    calls = [a_call(f"sip-order-{i}") for i in range(12)]
    order = {e["id"]: n for call in calls for n, e in enumerate(call)}
    for step in range(5):  # interleaved: every call's first event, then every second...
        await asyncio.gather(*(publish_event(jetstream, call[step]) for call in calls))

    got = await take_deliveries(jetstream, 12 * (5 + 2))

    lanes = by_lane(got)
    assert len(lanes) == 24
    for (room, endpoint), msgs in lanes.items():
        msgs.sort(key=lambda m: order[headers_of(m)[Header.EVENT_ID]])  # LK_EVENTS order
        events = [headers_of(m)[Header.EVENT] for m in msgs]
        expected = JOINS_ONLY if endpoint == "joins" else [e["event"] for e in a_call(room)]
        assert events == list(expected), (room, endpoint)
        assert [call_seq(m) for m in msgs] == list(range(1, len(msgs) + 1)), (room, endpoint)
    assert routed(router) > 0 and routed(second_router) > 0  # both took part


async def test_room_started_before_the_join_is_seq_1_and_stored_without_waiting(
    jetstream: JetStreamContext, router: RouterService
) -> None:
    await put_hook(jetstream, HOST)
    started, joined = a_call("sip-early")[:2]
    t0 = time.monotonic()
    await publish_event(jetstream, started)
    await publish_event(jetstream, joined)

    got = await take_deliveries(jetstream, 2)
    latency = time.monotonic() - t0

    assert {headers_of(m)[Header.EVENT]: call_seq(m) for m in got} == {
        "room_started": 1,
        "participant_joined": 2,
    }
    assert latency < 0.5, latency  # the previous release nak'd it for 1 s, then routed it
    assert routed(router, "held") == 1 and routed(router, "deferred") == 0
    route = await route_record(jetstream, "sip-early:started")
    assert (route.outcome, route.call_seqs, route.endpoints) == (
        "matched",
        {"default": 1},
        ("default",),
    )
    assert route.detail == "held, routed with sip-early:joined"
    [copy] = [m for m in got if headers_of(m)[Header.EVENT] == "room_started"]
    assert route.received_at == float(headers_of(copy)[Header.RECEIVED_AT])  # the ingress's
    held = await route_record(jetstream, "sip-early:started", outcome="no_host", host=None)
    assert held.detail == HELD
    join = await route_record(jetstream, "sip-early:joined")
    assert (join.sip_host, join.host, join.call_seqs) == (HOST, HOST, {"default": 2})


async def test_a_redelivered_event_gets_the_same_numbers_and_is_not_stored_twice(
    jetstream: JetStreamContext, router: RouterService
) -> None:
    """The router killed after storing the copies and the room record, before the ack:
    the redelivered event (here: handed in again) is numbered as before."""
    await put_two_endpoints(jetstream)
    started, joined, track, *_ = a_call("sip-again")
    bodies = [await publish_event(jetstream, e) for e in (started, joined)]
    first = await take_deliveries(jetstream, 3)  # started, joined, joined (joins)
    seq = (await jetstream.get_last_msg(topology.LK_EVENTS, "lk.events.participant_joined.*")).seq
    assert seq is not None

    headers = ingress_headers(joined)
    again = await router._require_router().handle(bodies[1], headers, 2, seq, ordered=True)
    await publish_event(jetstream, track)
    [after] = await take_deliveries(jetstream, 1)

    assert again.value == "ack"
    assert router.registry.get_sample_value("sayna_sip_router_duplicate_deliveries_total") == 1
    numbers = {(headers_of(m)[Header.EVENT], headers_of(m).get(Header.ENDPOINT)): call_seq(m)
               for m in first}  # fmt: skip
    assert numbers == {
        ("room_started", None): 1,
        ("participant_joined", None): 2,
        ("participant_joined", "joins"): 1,
    }
    assert headers_of(after)[Header.EVENT] == "track_published"
    assert call_seq(after) == 3  # no gap, no number taken twice


async def test_previous_release_messages_and_room_records_still_route(
    jetstream: JetStreamContext, router: RouterService
) -> None:
    await put_hook(jetstream, HOST)
    kv = await jetstream.key_value(topology.ROOMS_BUCKET)
    # what the previous release wrote for a call it routed, byte for byte
    await kv.put(room_key("sip-old"), b'{"sip_host":"example.com","hook":"example.com"}')
    old = sip_event(room="sip-old-2", to=TO, event_id="EV_old")
    body = json.dumps(old).encode()
    # the previous release's subject: no partition token
    await publish_raw(jetstream, body, ingress_headers(old), "lk.events.participant_joined")
    await publish_event(jetstream, sip_event("room_finished", room="sip-old", event_id="EV_fin"))

    got = {headers_of(m)[Header.EVENT_ID]: m for m in await take_deliveries(jetstream, 2)}

    assert got["EV_old"].data == body
    assert Header.CALL_SEQ not in headers_of(got["EV_old"])  # routed as before, unnumbered
    assert call_seq(got["EV_fin"]) == 1  # the old record's host, numbering from 1
    record = msgspec.json.decode((await kv.get(room_key("sip-old"))).value or b"", type=RoomRecord)
    assert (record.sip_host, record.call_seq) == (HOST, {f"{HOST}#default": 1})


async def test_a_room_holds_at_most_its_maximum_of_host_less_events(
    jetstream: JetStreamContext, router: RouterService, caplog: pytest.LogCaptureFixture
) -> None:
    await put_hook(jetstream, HOST)
    room = "sip-crowded"
    with caplog.at_level(logging.DEBUG, "sayna_sip.router"):
        for i in range(MAX_HELD + 1):
            await publish_event(jetstream, sip_event("track_published", room=room, to=None,
                                                     event_id=f"EV_t{i:03d}"))  # fmt: skip
        await drained(jetstream)
    assert (
        "sayna_sip.router",
        logging.DEBUG,
        f"event=sip_no_host room={room} event_id=EV_t{MAX_HELD:03d}",
    ) in caplog.record_tuples
    assert (routed(router, "held"), routed(router, "no_host")) == (MAX_HELD, 1)
    over = await route_record(jetstream, f"EV_t{MAX_HELD:03d}", outcome="no_host", host=None)
    assert over.detail == "no host: the room already holds its maximum of events waiting for one"

    await publish_event(jetstream, sip_event(room=room, to=TO, event_id="EV_join"))
    got = await take_deliveries(jetstream, MAX_HELD + 1)

    numbers = {headers_of(m)[Header.EVENT_ID]: call_seq(m) for m in got}
    assert numbers == {
        **{f"EV_t{i:03d}": i + 1 for i in range(MAX_HELD)},
        "EV_join": MAX_HELD + 1,
    }


async def route_record(
    js: JetStreamContext, event_id: str, outcome: str = "matched", host: str | None = HOST
) -> RouteRecord:
    """The route record the router wrote (through its pipelined recorder) for `event_id`."""
    subject = records.filter_subject(
        kind="route", host=host or "", event_id=event_id, outcome=outcome
    )
    found: list[RouteRecord] = []

    async def read() -> bool:
        try:
            raw = await js.get_last_msg(topology.SIP_ATTEMPTS, subject)
        except NotFoundError:
            return False
        record = records.decode(raw.data or b"")
        assert isinstance(record, RouteRecord)
        found.append(record)
        return True

    async with asyncio.timeout(5):  # no event for "record written": poll
        while True:
            if await read():
                return found[0]
            await asyncio.sleep(0.02)


async def test_a_held_event_redelivered_before_its_ack_stays_held_once(
    jetstream: JetStreamContext, router: RouterService, caplog: pytest.LogCaptureFixture
) -> None:
    await put_hook(jetstream, HOST)
    started = a_call("sip-twice")[0]
    with caplog.at_level(logging.DEBUG, "sayna_sip.router"):
        body = await publish_event(jetstream, started)
        await drained(jetstream)
    assert (
        "sayna_sip.router",
        logging.DEBUG,
        "event=sip_no_host_yet room=sip-twice event_id=sip-twice:started",
    ) in caplog.record_tuples
    seq = (await jetstream.get_last_msg(topology.LK_EVENTS, "lk.events.room_started.*")).seq
    assert seq is not None and routed(router, "held") == 1

    again = await router._require_router().handle(body, ingress_headers(started), 2, seq, True)

    assert again.value == "ack" and routed(router, "held") == 2
    records = await route_records(jetstream, "sip-twice:started", "no_host", 2)
    assert [r.detail for r in records] == [HELD, HELD]
    kv = await jetstream.key_value(topology.ROOMS_BUCKET)
    record = msgspec.json.decode(
        (await kv.get(room_key("sip-twice"))).value or b"", type=RoomRecord
    )
    assert [h.event_id for h in record.held] == ["sip-twice:started"]  # not held twice


async def put_hook_for(js: JetStreamContext, host: str, events: tuple[str, ...]) -> None:
    kv = await js.key_value(topology.HOOKS_BUCKET)
    hook = Hook.new(host, f"https://hooks.test/{host}", "runtime", events=events)
    await kv.put(host_token(host), hook.encode())


async def test_a_call_whose_join_its_hook_filters_out_still_gets_its_room_finished(
    jetstream: JetStreamContext, router: RouterService, caplog: pytest.LogCaptureFixture
) -> None:
    await put_hook_for(jetstream, HOST, ("room_finished",))
    room = "sip-quiet"
    with caplog.at_level(logging.DEBUG, "sayna_sip.router"):
        await publish_event(jetstream, sip_event(room=room, to=TO, event_id="EV_join"))
        await publish_event(jetstream, sip_event("room_finished", room=room, event_id="EV_fin"))
        [got] = await take_deliveries(jetstream, 1)

    assert (
        "sayna_sip.router",
        logging.DEBUG,
        f"event=sip_filtered hook={HOST} event=participant_joined",
    ) in caplog.record_tuples

    assert headers_of(got)[Header.EVENT_ID] == "EV_fin" and call_seq(got) == 1
    assert routed(router, "filtered") == 1


async def test_a_room_follows_its_latest_callers_host_even_through_a_filtered_join(
    jetstream: JetStreamContext, router: RouterService
) -> None:
    other = "other.example.net"
    await put_hook(jetstream, HOST)
    await put_hook_for(jetstream, other, ("room_finished",))
    room = "sip-transfer"
    await publish_event(jetstream, sip_event(room=room, to=TO, event_id="EV_a"))
    [first] = await take_deliveries(jetstream, 1)
    await publish_event(jetstream, sip_event(room=room, to=f"sip:+1666@{other}", event_id="EV_b"))
    await publish_event(jetstream, sip_event("room_finished", room=room, event_id="EV_fin"))

    [fin] = await take_deliveries(jetstream, 1)

    assert headers_of(first)[Header.EVENT_ID] == "EV_a"
    assert (headers_of(fin)[Header.EVENT_ID], fin.subject) == (
        "EV_fin",
        contracts.delivery_subject(other),
    )
    assert call_seq(fin) == 1  # the first copy of its lane


async def route_records(
    js: JetStreamContext, event_id: str, outcome: str, n: int
) -> list[RouteRecord]:
    """The first `n` route records with `outcome` of `event_id`, oldest first."""
    subject = records.filter_subject(kind="route", host="", event_id=event_id, outcome=outcome)
    sub = await js.pull_subscribe(subject, stream=topology.SIP_ATTEMPTS)
    got: list[RouteRecord] = []
    try:
        async with asyncio.timeout(5):
            while len(got) < n:
                with contextlib.suppress(TimeoutError):
                    for msg in await sub.fetch(n - len(got), timeout=0.5):
                        record = records.decode(msg.data)
                        assert isinstance(record, RouteRecord)
                        got.append(record)
    finally:
        await sub.unsubscribe()
    return got


async def fail_then_redeliver(
    js: JetStreamContext, router: RouterService, room: str, events: tuple[str, ...] | None
) -> tuple[list[Msg], RouteRecord]:
    """Two host-less events held, then the join, whose copies fail to store after the
    room's record was written (numbers taken): its redelivery stores that routing again.
    The copies stored and the join's route record."""
    await put_hook_for(js, HOST, events) if events else await put_hook(js, HOST)
    started, joined = a_call(room)[:2]
    early = sip_event("track_published", room=room, to=None, event_id=f"{room}:early")
    for event in (started, early):
        await publish_event(js, event)
    await until(lambda: routed(router, "held") == 2)
    await js.delete_stream(topology.SIP_DELIVERIES)  # every publish now fails
    await publish_event(js, joined)
    await until(lambda: routed(router, "retry") >= 1)
    [stream] = [s for s in topology.streams() if s.name == topology.SIP_DELIVERIES]
    await js.add_stream(stream)
    [spec] = [c for c in topology.consumers(ServerConfig()) if c.stream == stream.name]
    await js.add_consumer(spec.stream, spec.config)
    copies = 3 if events is None else 2
    got = await take_deliveries(js, copies, timeout=10)  # after the nak's delay
    outcome = "matched" if events is None else "filtered"
    return got, await route_record(js, f"{room}:joined", outcome=outcome)


async def test_a_join_whose_copies_failed_to_store_stores_its_held_events_again_numbered(
    jetstream: JetStreamContext, router: RouterService
) -> None:
    got, join = await fail_then_redeliver(jetstream, router, "sip-retry", None)

    assert {headers_of(m)[Header.EVENT_ID]: call_seq(m) for m in got} == {
        "sip-retry:started": 1,
        "sip-retry:early": 2,
        "sip-retry:joined": 3,
    }
    assert (join.call_seqs, join.endpoints) == ({"default": 3}, ("default",))


async def test_a_filtered_join_whose_held_events_failed_to_store_is_filtered_again(
    jetstream: JetStreamContext, router: RouterService
) -> None:
    got, join = await fail_then_redeliver(
        jetstream, router, "sip-refilter", ("room_started", "track_published")
    )

    assert {headers_of(m)[Header.EVENT_ID]: call_seq(m) for m in got} == {
        "sip-refilter:started": 1,
        "sip-refilter:early": 2,
    }
    assert (join.outcome, join.call_seqs) == ("filtered", {})


async def test_held_events_gone_or_without_a_readable_receipt_time_are_skipped_or_kept(
    jetstream: JetStreamContext, router: RouterService, caplog: pytest.LogCaptureFixture
) -> None:
    """A held event whose body left LK_EVENTS is skipped (logged); the others are routed,
    numbered without it, their records read a missing or bad Received-At as 0."""
    await put_hook(jetstream, HOST)
    room = "sip-gaps"
    gone = sip_event("room_started", room=room, event_id="EV_gone")
    await publish_event(jetstream, gone)
    for event_id, received in (("EV_bare", None), ("EV_bad", "soon")):
        event = sip_event("track_published", room=room, to=None, event_id=event_id)
        headers = ingress_headers(event)
        del headers[Header.RECEIVED_AT]
        if received is not None:
            headers[Header.RECEIVED_AT] = received
        body = json.dumps(event, separators=(",", ":")).encode()
        await publish_raw(
            jetstream, body, headers, contracts.lk_event_subject("track_published", room)
        )
    await until(lambda: routed(router, "held") == 3)
    seq = (await jetstream.get_last_msg(topology.LK_EVENTS, "lk.events.room_started.*")).seq
    assert seq is not None
    await jetstream.delete_msg(topology.LK_EVENTS, seq)  # past LK_EVENTS_MAX_AGE

    with caplog.at_level(logging.INFO, "sayna_sip.router"):
        await publish_event(jetstream, sip_event(room=room, to=TO, event_id="EV_join"))
        got = await take_deliveries(jetstream, 3)

    numbers = {headers_of(m)[Header.EVENT_ID]: call_seq(m) for m in got}
    assert numbers == {"EV_bare": 1, "EV_bad": 2, "EV_join": 3}
    assert (
        "sayna_sip.router",
        logging.INFO,
        f"event=sip_held_gone event_id=EV_gone seq={seq}",
    ) in caplog.record_tuples
    for event_id in ("EV_bare", "EV_bad"):
        record = await route_record(jetstream, event_id)
        assert (record.received_at, record.detail) == (0.0, "held, routed with EV_join")


async def test_a_malformed_events_route_record_names_only_what_is_known(
    jetstream: JetStreamContext, router: RouterService
) -> None:
    event = sip_event(event_id="EV_broken")
    headers = ingress_headers(event)
    subject = contracts.lk_event_subject("participant_joined", "sip-call-1")
    await publish_raw(jetstream, b"{not json", headers, subject)
    await until(lambda: routed(router, "malformed") == 1)

    record = await route_record(jetstream, "EV_broken", outcome="malformed", host=None)

    assert (record.event, record.room, record.sip_host, record.host) == ("", "", "", "")
    assert record.detail != "" and record.endpoints == ()
