"""Messages the previous release left in LK_EVENTS (no partition token) are routed as
that release did: host from the event or the room's memory, a host-less event nak'd
until its third delivery, one copy per endpoint; and what every routing shows operators
(ack/nak decision, route record, log line, metrics). Handed to the router's handler
directly, as its LK_EVENTS consumer does."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import msgspec
import pytest
from nats.js import JetStreamContext
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from sayna_sip.common import contracts, records, topology
from sayna_sip.common.contracts import Header
from sayna_sip.common.hook import Endpoint, Hook
from sayna_sip.common.hosts import host_token
from sayna_sip.router.app import RouterService
from sayna_sip.router.rooms import RoomRecord, room_key
from sayna_sip.router.routing import Action
from tests.fixtures.livekit import sip_event
from tests.router.helpers import (
    headers_of,
    ingress_headers,
    put_hook,
    stored_deliveries,
    take_deliveries,
)
from tests.router.test_call_seq import route_record

HOST = "example.com"
TO = f"sip:+1555@{HOST}"
ROUTER_LOG = "sayna_sip.router"


def body_of(event: dict[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode()


async def handle(
    router: RouterService,
    event: dict[str, Any],
    delivered: int = 1,
    seq: int = 7,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> Action:
    """One unpartitioned message, as the previous release's durable hands it in."""
    headers = ingress_headers(event) if headers is None else headers
    body = body_of(event) if body is None else body
    return await router._require_router().handle(body, headers, delivered, seq, ordered=False)


def sample(router: RouterService, name: str, labels: dict[str, str] | None = None) -> float:
    return router.registry.get_sample_value(name, labels or {}) or 0.0


def counted(router: RouterService, outcome: str) -> float:
    return sample(router, "sayna_sip_router_events_total", {"outcome": outcome})


async def records_of(js: JetStreamContext, router: RouterService, event_id: str) -> list[str]:
    """The subjects of every route record written for `event_id`."""
    assert router.recorder is not None
    await router.recorder.flush()
    subject = records.filter_subject(kind="route", event_id=event_id)
    state = (await js.stream_info(topology.SIP_ATTEMPTS, subjects_filter=subject)).state
    return sorted(state.subjects or {})


async def put_endpoints(js: JetStreamContext, host: str = HOST) -> None:
    """`default` takes every event, `joins` only participant_joined."""
    hook = Hook.new(host, f"https://hooks.test/{host}", "runtime")
    joins = Endpoint(id="joins", url="https://hooks.test/joins", events=("participant_joined",))
    kv = await js.key_value(topology.HOOKS_BUCKET)
    await kv.put(host_token(host), hook.with_endpoint(joins).encode())


async def room_of(js: JetStreamContext, room: str) -> tuple[RoomRecord, int]:
    kv = await js.key_value(topology.ROOMS_BUCKET)
    entry = await kv.get(room_key(room))
    return msgspec.json.decode(entry.value or b"", type=RoomRecord), entry.revision or 0


async def test_a_join_stores_one_copy_per_endpoint_and_its_room_follows_its_host(
    jetstream: JetStreamContext, router: RouterService
) -> None:
    await put_endpoints(jetstream)
    joined = sip_event(room="sip-old", to=TO, event_id="EV_join")
    received = f"{time.time() - 3:.6f}"
    headers = {**ingress_headers(joined), Header.RECEIVED_AT: received}

    assert await handle(router, joined, seq=41, headers=headers) is Action.ACK
    copies = await take_deliveries(jetstream, 2)

    assert {m.subject for m in copies} == {contracts.delivery_subject(HOST)}
    assert {headers_of(m).get(Header.ENDPOINT, "default") for m in copies} == {"default", "joins"}
    assert all(m.data == body_of(joined) for m in copies)
    assert all(Header.CALL_SEQ not in headers_of(m) for m in copies)  # unnumbered, as before
    record = await route_record(jetstream, "EV_join")
    assert (record.event, record.room, record.sip_host, record.host) == (
        "participant_joined", "sip-old", HOST, HOST,
    )  # fmt: skip
    assert (record.lk_seq, record.endpoints, record.detail) == (41, ("default", "joins"), "")
    assert record.received_at == float(received)
    remembered, _ = await room_of(jetstream, "sip-old")
    assert (remembered.sip_host, remembered.hook) == (HOST, HOST)
    assert counted(router, "routed") == 1
    assert sample(router, "sayna_sip_router_duplicate_deliveries_total") == 0
    assert sample(router, "sayna_sip_router_routing_seconds_count") == 1
    assert 0 < sample(router, "sayna_sip_router_routing_seconds_sum") < 5
    assert sample(router, "sayna_sip_router_event_age_seconds_count") == 1
    assert sample(router, "sayna_sip_router_event_age_seconds_sum") >= 3

    # A host-less event of that room goes to the remembered hook's endpoints that want it.
    track = sip_event("track_published", room="sip-old", to=None, event_id="EV_track")
    assert await handle(router, track) is Action.ACK
    [copy] = await take_deliveries(jetstream, 1)
    assert headers_of(copy)[Header.EVENT_ID] == "EV_track"
    assert Header.ENDPOINT not in headers_of(copy)  # the default endpoint's copy
    assert headers_of(copy)[Header.SIP_HOST] == HOST
    record = await route_record(jetstream, "EV_track")
    assert (record.sip_host, record.host, record.endpoints) == (HOST, HOST, ("default",))


async def test_a_redelivered_event_is_stored_once_and_counted_duplicate(
    jetstream: JetStreamContext, router: RouterService
) -> None:
    await put_endpoints(jetstream)
    joined = sip_event(room="sip-dup", to=TO, event_id="EV_j")
    for delivered in (1, 2):
        assert await handle(router, joined, delivered) is Action.ACK
    assert sample(router, "sayna_sip_router_duplicate_deliveries_total") == 1

    # The single copy of a host-less event (the host from room memory: no room write).
    track = sip_event("track_published", room="sip-dup", to=None, event_id="EV_t")
    assert await handle(router, track) is Action.ACK
    assert sample(router, "sayna_sip_router_duplicate_deliveries_total") == 1
    assert await handle(router, track, 2) is Action.ACK
    assert sample(router, "sayna_sip_router_duplicate_deliveries_total") == 2
    assert await stored_deliveries(jetstream) == 3
    assert counted(router, "routed") == 4


async def test_a_room_record_is_written_only_when_its_host_changes_and_keeps_the_rest(
    jetstream: JetStreamContext, router: RouterService
) -> None:
    await put_hook(jetstream, HOST)
    await put_hook(jetstream, "other.example")
    kv = await jetstream.key_value(topology.ROOMS_BUCKET)
    old = RoomRecord(sip_host=HOST, hook=HOST, call_seq={f"{HOST}#default": 4})
    await kv.put(room_key("sip-move"), msgspec.json.encode(old))
    _, revision = await room_of(jetstream, "sip-move")

    await handle(router, sip_event(room="sip-move", to=TO, event_id="EV_same"))
    assert await room_of(jetstream, "sip-move") == (old, revision)  # same host: no write

    moved = sip_event(room="sip-move", to="sip:b@other.example", event_id="EV_moved")
    assert await handle(router, moved) is Action.ACK
    record, _ = await room_of(jetstream, "sip-move")
    assert record == RoomRecord(
        sip_host="other.example", hook="other.example", call_seq={f"{HOST}#default": 4}
    )
    got = {headers_of(m)[Header.EVENT_ID]: m.subject for m in await take_deliveries(jetstream, 2)}
    assert got == {
        "EV_same": contracts.delivery_subject(HOST),
        "EV_moved": contracts.delivery_subject("other.example"),
    }


async def test_a_room_another_router_wrote_meanwhile_is_read_again(
    jetstream: JetStreamContext, router: RouterService
) -> None:
    for host in (HOST, "other.example", "third.example"):
        await put_hook(jetstream, host)
    kv = await jetstream.key_value(topology.ROOMS_BUCKET)
    await handle(router, sip_event(room="sip-shared", to=TO, event_id="EV_1"))
    # another router: the call moved to other.example, one copy numbered there
    theirs = RoomRecord(sip_host="other.example", hook="other.example", call_seq={"x#a": 2})
    await kv.put(room_key("sip-shared"), msgspec.json.encode(theirs))

    track = sip_event("track_published", room="sip-shared", to=None, event_id="EV_2")
    assert await handle(router, track) is Action.ACK  # the host as stored, not as we wrote
    third = sip_event(room="sip-shared", to="sip:c@third.example", event_id="EV_3")
    assert await handle(router, third) is Action.ACK  # our stale revision: read, write again

    record, _ = await room_of(jetstream, "sip-shared")
    assert record == RoomRecord(sip_host="third.example", hook="third.example", call_seq={"x#a": 2})
    got = {headers_of(m)[Header.EVENT_ID]: m.subject for m in await take_deliveries(jetstream, 3)}
    assert got == {
        "EV_1": contracts.delivery_subject(HOST),
        "EV_2": contracts.delivery_subject("other.example"),
        "EV_3": contracts.delivery_subject("third.example"),
    }


async def test_an_unreadable_body_without_an_event_id_is_terminated_and_logged_so(
    jetstream: JetStreamContext, router: RouterService, caplog: pytest.LogCaptureFixture
) -> None:
    headers = {Header.EVENT: "participant_joined", Header.ROOM: "sip-x"}
    with caplog.at_level(logging.WARNING, ROUTER_LOG):
        action = await handle(router, {}, headers=headers, body=b"{not json")
    assert action is Action.TERM and counted(router, "malformed") == 1
    [line] = [m for name, _, m in caplog.record_tuples if name == ROUTER_LOG]
    assert line.startswith('event=router_malformed event_id="" error=')


async def test_a_filtered_join_stores_nothing_but_its_room_remembers_the_host(
    jetstream: JetStreamContext, router: RouterService, caplog: pytest.LogCaptureFixture
) -> None:
    kv = await jetstream.key_value(topology.HOOKS_BUCKET)
    hook = Hook.new(HOST, "https://hooks.test/h", "runtime", events=("room_finished",))
    await kv.put(host_token(HOST), hook.encode())
    joined = sip_event(room="sip-quiet", to=TO, event_id="EV_f")

    with caplog.at_level(logging.DEBUG, ROUTER_LOG):
        assert await handle(router, joined) is Action.ACK

    assert await stored_deliveries(jetstream) == 0 and counted(router, "filtered") == 1
    assert (
        ROUTER_LOG,
        logging.DEBUG,
        f"event=sip_filtered hook={HOST} event=participant_joined",
    ) in caplog.record_tuples
    record = await route_record(jetstream, "EV_f", outcome="filtered")
    assert (record.sip_host, record.host, record.endpoints) == (HOST, HOST, ())
    remembered, _ = await room_of(jetstream, "sip-quiet")
    assert (remembered.sip_host, remembered.hook) == (HOST, HOST)


async def test_a_host_less_event_waits_for_its_third_delivery_then_counts_no_host(
    jetstream: JetStreamContext, router: RouterService, caplog: pytest.LogCaptureFixture
) -> None:
    await put_hook(jetstream, HOST)
    kv = await jetstream.key_value(topology.ROOMS_BUCKET)
    await kv.put(room_key("sip-blank"), b'{"call_seq":{"x#default":1}}')  # a room, no host
    for room in ("sip-unknown", "sip-blank"):
        track = sip_event("track_published", room=room, to=None, event_id=f"EV_{room}")
        with caplog.at_level(logging.DEBUG, ROUTER_LOG):
            caplog.clear()
            assert [await handle(router, track, n) for n in (1, 2, 3)] == [
                Action.WAIT, Action.WAIT, Action.ACK,
            ]  # fmt: skip
        lines = [m for name, _, m in caplog.record_tuples if name == ROUTER_LOG]
        assert lines == [
            f"event={kind} room={room} event_id=EV_{room} type=track_published delivered={n}"
            for kind, n in (("sip_no_host_yet", 1), ("sip_no_host_yet", 2), ("sip_no_host", 3))
        ]
        record = await route_record(jetstream, f"EV_{room}", outcome="no_host", host=None)
        assert (record.room, record.sip_host, record.host) == (room, "", "")
        # one record, of the final outcome: a nak'd delivery comes back, it records nothing
        assert await records_of(jetstream, router, f"EV_{room}") == [
            f"sip.route.-.EV_{room}.no_host"
        ]
    assert counted(router, "deferred") == 4 and counted(router, "no_host") == 2
    assert await stored_deliveries(jetstream) == 0


async def test_a_host_without_a_hook_is_unmatched_and_logged(
    jetstream: JetStreamContext, router: RouterService, caplog: pytest.LogCaptureFixture
) -> None:
    joined = sip_event(room="sip-nohook", to="sip:a@nowhere.example", event_id="EV_u")
    with caplog.at_level(logging.INFO, ROUTER_LOG):
        assert await handle(router, joined) is Action.ACK
    assert (
        ROUTER_LOG,
        logging.INFO,
        "event=sip_no_hook host=nowhere.example event_id=EV_u",
    ) in caplog.record_tuples
    record = await route_record(jetstream, "EV_u", "unknown_host", "nowhere.example")
    assert (record.sip_host, record.host) == ("nowhere.example", "")
    assert counted(router, "unmatched") == 1


async def test_rooms_not_sip_too_long_or_events_without_an_id(
    jetstream: JetStreamContext, router: RouterService, caplog: pytest.LogCaptureFixture
) -> None:
    await put_hook(jetstream, HOST)
    other = sip_event(room="lobby", to=TO, event_id="EV_lobby")
    assert await handle(router, other) is Action.ACK
    record = await route_record(jetstream, "EV_lobby", outcome="not_sip", host=None)
    assert (record.room, record.sip_host) == ("lobby", "")

    longest = "sip-" + "r" * 252  # 256 bytes: the most a room key takes
    assert await handle(router, sip_event(room=longest, to=TO, event_id="EV_256")) is Action.ACK
    too_long = sip_event(room=longest + "é", to=TO, event_id="EV_258")
    with caplog.at_level(logging.WARNING, ROUTER_LOG):
        assert await handle(router, too_long) is Action.TERM
        nameless = sip_event(room="sip-anon", to=TO)
        del nameless["id"]
        headers = {k: v for k, v in ingress_headers({**nameless, "id": ""}).items() if v}
        assert await handle(router, nameless, headers=headers) is Action.TERM
        long_nameless = {**nameless, "room": {"name": longest + "é"}}
        assert await handle(router, long_nameless, headers=headers) is Action.TERM
    assert [m for name, _, m in caplog.record_tuples if name == ROUTER_LOG] == [
        'event=router_malformed event_id=EV_258 error="room name too long"',
        'event=router_malformed event_id="" error="no event id"',
        'event=router_malformed event_id="" error="room name too long"',
    ]
    record = await route_record(jetstream, "EV_258", outcome="malformed", host=None)
    assert (record.room, record.detail) == (longest + "é", "room name too long")
    assert counted(router, "malformed") == 3 and counted(router, "non_sip") == 1

    # No id in the body: the ingress' Sayna-Event-Id names it.
    headers = {**ingress_headers({**nameless, "id": "EV_hdr"})}
    assert await handle(router, nameless, headers=headers) is Action.ACK
    copies = await take_deliveries(jetstream, 2)
    assert {headers_of(m)[Header.EVENT_ID] for m in copies} == {"EV_256", "EV_hdr"}


async def test_a_copy_over_max_payload_is_terminated_and_its_record_says_why(
    jetstream: JetStreamContext, router: RouterService, caplog: pytest.LogCaptureFixture
) -> None:
    await put_hook(jetstream, HOST)
    event = {**sip_event(room="sip-big", to=TO, event_id="EV_big"), "pad": "x" * (1 << 20)}
    with caplog.at_level(logging.WARNING, ROUTER_LOG):
        assert await handle(router, event) is Action.TERM
    why = "delivery larger than NATS max_payload (1048576 bytes)"
    assert (
        ROUTER_LOG,
        logging.WARNING,
        f'event=router_malformed event_id=EV_big error="{why}"',
    ) in caplog.record_tuples
    record = await route_record(jetstream, "EV_big", outcome="malformed")
    assert (record.sip_host, record.detail) == (HOST, why)
    assert await stored_deliveries(jetstream) == 0


async def test_an_event_stored_in_the_future_is_age_zero_and_an_unreadable_time_no_age(
    jetstream: JetStreamContext, router: RouterService
) -> None:
    await put_hook(jetstream, HOST)
    ahead = sip_event(room="sip-clock", to=TO, event_id="EV_ahead")
    headers = {**ingress_headers(ahead), Header.RECEIVED_AT: f"{time.time() + 60:.6f}"}
    assert await handle(router, ahead, headers=headers) is Action.ACK
    assert sample(router, "sayna_sip_router_event_age_seconds_sum") == 0
    assert sample(router, "sayna_sip_router_event_age_seconds_count") == 1

    bad = sip_event(room="sip-clock", to=TO, event_id="EV_bad")
    headers = {**ingress_headers(bad), Header.RECEIVED_AT: "soon"}
    assert await handle(router, bad, headers=headers) is Action.ACK
    assert sample(router, "sayna_sip_router_event_age_seconds_count") == 1  # not observed
    assert sample(router, "sayna_sip_router_routing_seconds_count") == 2
    record = await route_record(jetstream, "EV_bad")
    assert record.received_at == 0.0

    bare = sip_event(room="sip-clock", to=TO, event_id="EV_bare")
    headers = ingress_headers(bare)
    del headers[Header.RECEIVED_AT]
    assert await handle(router, bare, headers=headers) is Action.ACK
    assert (await route_record(jetstream, "EV_bare")).received_at == 0.0
    assert sample(router, "sayna_sip_router_event_age_seconds_count") == 1


async def test_nats_failing_while_storing_the_copies_is_a_retry_and_logged(
    jetstream: JetStreamContext, router: RouterService, caplog: pytest.LogCaptureFixture
) -> None:
    await put_endpoints(jetstream)
    await jetstream.delete_stream(topology.SIP_DELIVERIES)  # every copy's publish fails
    joined = sip_event(room="sip-down", to=TO, event_id="EV_down")
    track = sip_event("track_published", room="sip-down", to=None, event_id="EV_down2")
    with caplog.at_level(logging.WARNING, ROUTER_LOG):
        assert await handle(router, joined) is Action.RETRY  # two copies and the room
        assert await handle(router, track) is Action.RETRY  # one copy
    lines = [m for name, _, m in caplog.record_tuples if name == ROUTER_LOG]
    assert [m.split(" error=")[0] for m in lines] == [
        "event=router_retry event_id=EV_down",
        "event=router_retry event_id=EV_down2",
    ]
    assert all(" error=" in m for m in lines) and counted(router, "retry") == 2
    assert sample(router, "sayna_sip_router_routing_seconds_count") == 0


async def test_the_route_span_names_the_event_and_its_outcome_and_its_record_the_trace(
    spans: InMemorySpanExporter, jetstream: JetStreamContext, router: RouterService
) -> None:
    await put_hook(jetstream, HOST)
    await handle(router, sip_event(room="sip-traced", to=TO, event_id="EV_sp"))
    await handle(router, sip_event(room="lobby", to=TO, event_id="EV_ns"))

    routes = [s for s in spans.get_finished_spans() if s.name == "sip.route"]
    assert {s.instrumentation_scope and s.instrumentation_scope.name for s in routes} == {
        "sayna_sip.router"
    }
    assert [(s.kind, s.attributes and dict(s.attributes)) for s in routes] == [
        (SpanKind.CONSUMER, {"sayna.event_id": "EV_sp", "sayna.route": "routed"}),
        (SpanKind.CONSUMER, {"sayna.event_id": "EV_ns", "sayna.route": "non_sip"}),
    ]
    record = await route_record(jetstream, "EV_sp")
    assert routes[0].context is not None
    assert record.trace_id == format(routes[0].context.trace_id, "032x")
