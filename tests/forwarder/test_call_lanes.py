"""A call's lane in KV `sip_lanes` (order_lanes.py) on a real nats-server, two
forwarders' CallLanes sharing it: whose turn it is, how long a copy that is not its turn
waits (here, or back in JetStream), the hold that releases a lane past a head that never
ends, and the lane's KV key and value, which every forwarder of a cluster reads."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import nats
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue
from prometheus_client import CollectorRegistry

from sayna_sip.common import topology
from sayna_sip.common.delivery import Delivery
from sayna_sip.forwarder import order_lanes
from sayna_sip.forwarder.metrics import ForwarderMetrics
from sayna_sip.forwarder.order import LaneState, Order
from sayna_sip.forwarder.order_lanes import CallLanes, Later, lane_key
from tests.fixtures.nats import NatsServer
from tests.router.helpers import until

HOST = "Lanes.Example.com"
HOOK = HOST.lower()  # as the copy names it (and its metrics)
ROOM = "sip-call-1"
HOLD_MAX = 60.0

Lanes = Callable[..., Awaitable[CallLanes]]


def copy(seq: int, room: str = ROOM, endpoint: str = "default") -> Delivery:
    return Delivery.first(
        event_id=f"EV_{seq}", event="participant_joined", room=room, hook=HOST,
        sip_host="lanes.example.com", received_at=None, endpoint=endpoint, call_seq=seq,
    )  # fmt: skip


@pytest.fixture
async def lanes_kv(jetstream: JetStreamContext) -> KeyValue:
    """The `sip_lanes` bucket, as provisioned."""
    return await jetstream.key_value(topology.LANES_BUCKET)


@pytest.fixture
async def lanes(nats_server: NatsServer, lanes_kv: KeyValue) -> AsyncIterator[Lanes]:
    """Start a forwarder's CallLanes (each on a connection of its own)."""
    started: list[tuple[CallLanes, Client]] = []

    async def start(
        hold_max: float = HOLD_MAX,
        max_waiting: int = 100,
        registry: CollectorRegistry | None = None,
    ) -> CallLanes:
        nc = await nats.connect(nats_server.url)
        kv = await nc.jetstream().key_value(topology.LANES_BUCKET)
        metrics = ForwarderMetrics(registry or CollectorRegistry())
        one = CallLanes(nc, kv, hold_max, max_waiting, metrics)
        await one.start()
        started.append((one, nc))
        return one

    yield start
    for one, nc in started:
        await one.stop()
        await nc.close()


@pytest.fixture
async def kv_reads(nats_client: Client) -> list[str]:
    """Every read of a lane from KV `sip_lanes` from now on (the two JetStream APIs)."""
    reads: list[str] = []

    async def on_read(msg: Msg) -> None:
        reads.append(msg.subject)

    await nats_client.subscribe(f"$JS.API.STREAM.MSG.GET.KV_{topology.LANES_BUCKET}", cb=on_read)
    await nats_client.subscribe(f"$JS.API.DIRECT.GET.KV_{topology.LANES_BUCKET}.>", cb=on_read)
    await nats_client.flush()
    return reads


def waits(registry: CollectorRegistry) -> float | None:
    return registry.get_sample_value("sayna_sip_forwarder_order_waits_total", {"host": HOOK})


async def stored(kv: KeyValue, d: Delivery) -> LaneState:
    return LaneState.decode((await kv.get(lane_key(d))).value)


def test_the_lane_key_is_the_hook_token_the_endpoint_and_the_rooms_hash() -> None:
    digest = hashlib.sha256(ROOM.encode()).hexdigest()[:32]
    assert lane_key(copy(1)) == f"lanes_example_com.default.{digest}"
    assert lane_key(copy(1, endpoint="crm")) == f"lanes_example_com.crm.{digest}"
    # Any bytes of a room name make a valid key of bounded length.
    odd = lane_key(copy(1, room="a.b *>\udcff" * 50))
    assert odd.count(".") == 2 and len(odd.rsplit(".", 1)[1]) == 32


async def test_a_call_goes_copy_by_copy_and_its_lane_is_stored_for_every_forwarder(
    lanes: Lanes, lanes_kv: KeyValue
) -> None:
    registry = CollectorRegistry()
    one = await lanes(registry=registry)
    assert await one.turn(copy(1)) == Order(1)  # a new lane: its first copy goes
    assert await one.ended(copy(1)) == 0
    assert (await stored(lanes_kv, copy(1))).done == 1
    # Another forwarder, which never saw the lane, gives copy 2 its turn.
    other = await lanes()
    assert await other.turn(copy(2)) == Order(2)
    assert await other.ended(copy(2)) == 0
    # The first, whose cache still says done=1, reads the lane again for copy 3.
    assert await one.turn(copy(3)) == Order(3)
    assert waits(registry) is None
    # A copy whose turn passed (a duplicate, a redrive) goes at once as a late one, and
    # its end changes nothing.
    assert await one.turn(copy(1)) == Order(1, late=True)
    assert await one.ended(copy(1)) == 0
    assert (await stored(lanes_kv, copy(1))).done == 2


async def test_a_waiting_copy_goes_the_moment_its_head_ends_in_another_forwarder(
    lanes: Lanes, lanes_kv: KeyValue
) -> None:
    registry = CollectorRegistry()
    one, other = await lanes(), await lanes(registry=registry)
    assert await one.turn(copy(1)) == Order(1)
    waiting = asyncio.create_task(other.turn(copy(2)))
    await asyncio.sleep(0.2)  # it waits in process, within its slice
    assert not waiting.done()
    ended = time.monotonic()
    assert await one.ended(copy(1)) == 0
    assert await asyncio.wait_for(waiting, 0.5) == Order(2)  # woken by the lane notice
    assert time.monotonic() - ended < 0.5
    assert waits(registry) == 1
    # Nothing waited past the slice: the hold clock never started.
    assert (await stored(lanes_kv, copy(1))).since == 0.0


async def test_waiters_in_the_heads_own_forwarder_wake_without_a_round_trip(
    lanes: Lanes, kv_reads: list[str]
) -> None:
    registry = CollectorRegistry()
    one = await lanes(max_waiting=2, registry=registry)
    assert await one.turn(copy(1)) == Order(1)
    second = asyncio.create_task(one.turn(copy(2)))
    third = asyncio.create_task(one.turn(copy(3)))
    await until(lambda: waits(registry) == 2)
    reads = len(kv_reads)
    await one.ended(copy(1))
    assert await asyncio.wait_for(second, 0.5) == Order(2)
    await until(lambda: len(kv_reads) > reads)  # copy 3, woken, reads the lane: not its turn
    await one.ended(copy(2))
    assert await asyncio.wait_for(third, 0.5) == Order(3)
    assert waits(registry) == 2  # copies that waited, once each (copy 3 woke twice)
    # Another call of the same endpoint is a lane of its own: never held by this one.
    assert await one.turn(copy(1, room="sip-call-2")) == Order(1)


async def test_a_copy_whose_head_does_not_end_goes_back_to_jetstream_after_its_slice(
    lanes: Lanes, lanes_kv: KeyValue
) -> None:
    one = await lanes()
    assert await one.turn(copy(1)) == Order(1)
    started = time.monotonic()
    later = await one.turn(copy(3))
    waited = time.monotonic() - started
    assert isinstance(later, Later) and 0.9 < waited < 1.8  # WAIT_SLICE, 1 s
    assert later.delay == pytest.approx(0.25, abs=0.05)  # the first backoff
    # Waiting in JetStream starts the hold clock, and says how far the waiters reach.
    state = await stored(lanes_kv, copy(1))
    assert state.done == 0 and time.time() - 5 < state.since <= time.time()
    assert state.tail == 3


@pytest.mark.parametrize(("redelivered", "delay"), [(1, 0.25), (2, 0.5), (3, 1.0), (9, 5.0)])
async def test_the_wait_in_jetstream_doubles_per_redelivery_up_to_five_seconds(
    lanes: Lanes, redelivered: int, delay: float
) -> None:
    one = await lanes(max_waiting=0)  # no room to wait here: straight back to JetStream
    assert await one.turn(copy(1)) == Order(1)
    started = time.monotonic()
    later = await one.turn(copy(2), redelivered)
    assert time.monotonic() - started < 0.5
    assert later == Later(pytest.approx(delay, abs=0.05))  # type: ignore[arg-type]


async def test_waiters_of_a_failed_head_wait_in_jetstream_until_it_is_due(
    lanes: Lanes, lanes_kv: KeyValue
) -> None:
    one = await lanes()
    assert await one.turn(copy(1)) == Order(1)
    due = time.time() + 3.0
    assert await one.failed(copy(1), due) == 0
    assert (await stored(lanes_kv, copy(1))).due == due
    started = time.monotonic()
    later = await one.turn(copy(2))
    assert time.monotonic() - started < 0.5  # not its slice: the head cannot end sooner
    assert isinstance(later, Later) and later.delay == pytest.approx(3.0, abs=0.2)
    # A copy that is not the head failing changes nothing.
    revision = (await lanes_kv.get(lane_key(copy(1)))).revision
    assert await one.failed(copy(2), due + 9) == 0
    assert (await lanes_kv.get(lane_key(copy(1)))).revision == revision


async def test_a_head_that_holds_its_call_too_long_is_released_and_later_goes_late(
    lanes: Lanes, lanes_kv: KeyValue, caplog: pytest.LogCaptureFixture
) -> None:
    registry = CollectorRegistry()
    one = await lanes(hold_max=0.3, max_waiting=0, registry=registry)
    assert await one.turn(copy(1)) == Order(1)  # the head, which never ends
    first = await one.turn(copy(2))
    second = await one.turn(copy(3))
    # Never past the hold's end, whatever the backoff.
    assert isinstance(first, Later) and first.delay <= 0.3
    assert isinstance(second, Later) and second.delay <= 0.3
    await asyncio.sleep(0.35)
    with caplog.at_level(logging.WARNING, "sayna_sip.forwarder"):
        assert await one.turn(copy(2)) == Order(2)  # released past copy 1
    assert (
        "sayna_sip.forwarder",
        logging.WARNING,
        f"event=lane_released hook={HOOK} endpoint=default room={ROOM} head=1 waited=2",
    ) in caplog.record_tuples
    assert registry.get_sample_value("sayna_sip_forwarder_order_released_total", {"host": HOOK})
    state = await stored(lanes_kv, copy(1))
    assert (state.done, state.since, state.released) == (1, 0.0, {"1": 2})
    # The released head, whenever it comes, goes at once, late, saying how many waited.
    assert await one.turn(copy(1)) == Order(1, late=True, released=2)
    assert await one.failed(copy(1), time.time() + 5) == 2
    assert await one.ended(copy(1)) == 2
    assert (await stored(lanes_kv, copy(1))).released == {}
    assert await one.ended(copy(2)) == 0
    assert (await stored(lanes_kv, copy(1))).done == 2


async def test_a_copy_waiting_behind_a_head_that_ended_here_goes_before_the_heads_write(
    lanes: Lanes, lanes_kv: KeyValue
) -> None:
    one = await lanes()
    assert await one.turn(copy(1)) == Order(1)
    second = asyncio.create_task(one.turn(copy(2)))
    await asyncio.sleep(0.1)
    assert not second.done()
    await one.ending(copy(1), Order(1))  # its request is over; its lane write not made yet
    assert await asyncio.wait_for(second, 0.1) == Order(2)
    with pytest.raises(KeyNotFoundError):
        await lanes_kv.get(lane_key(copy(1)))
    # Copy 1's write failed (it is redelivered later): copy 2's end moves the lane past
    # both, so copy 3 is not held behind a copy that went.
    assert await one.ended(copy(2)) == 0
    assert (await stored(lanes_kv, copy(1))).done == 2
    assert await (await lanes()).turn(copy(3)) == Order(3)
    # Copy 1 comes again (a duplicate): it goes at once, and changes nothing.
    assert await one.turn(copy(1), redelivered=2) == Order(1, late=True)
    assert await one.ended(copy(1)) == 0
    assert (await stored(lanes_kv, copy(1))).done == 2


async def test_a_forwarder_killed_before_its_heads_write_leaves_that_head_the_head(
    lanes: Lanes, lanes_kv: KeyValue
) -> None:
    dead = await lanes()
    assert await dead.turn(copy(1)) == Order(1)
    await dead.ending(copy(1), Order(1))  # then killed: nothing was written, nothing acked
    other = await lanes()
    assert await other.turn(copy(1), redelivered=2) == Order(1)  # redelivered: still the head
    waiting = asyncio.create_task(other.turn(copy(2), redelivered=2))
    await asyncio.sleep(0.2)
    assert not waiting.done()  # copy 2 waits for it, as before the kill
    await other.ended(copy(1))
    assert await asyncio.wait_for(waiting, 0.5) == Order(2)


async def test_a_copy_behind_a_head_that_ended_here_unwritten_waits_for_the_copy_between(
    lanes: Lanes, lanes_kv: KeyValue
) -> None:
    one = await lanes(max_waiting=0)
    assert await one.turn(copy(1)) == Order(1)
    await one.ending(copy(1), Order(1))  # its request is over; its lane write not made yet
    later = await one.turn(copy(3))  # copy 2 has not come: copy 3 waits in JetStream
    assert isinstance(later, Later) and later.delay == pytest.approx(0.25, abs=0.05)
    # Stored as KV would hold it after copy 1's write: copy 2 is the head, nothing is due,
    # and the hold clock starts now (not at copy 1's start: nothing is released early).
    state = await stored(lanes_kv, copy(1))
    assert (state.done, state.due, state.tail) == (1, 0.0, 3)
    assert time.time() - 5 < state.since <= time.time()
    assert await one.turn(copy(2)) == Order(2)


async def test_a_copy_waiting_here_does_not_make_the_forwarder_forget_an_unwritten_end(
    lanes: Lanes,
) -> None:
    registry = CollectorRegistry()
    one = await lanes(registry=registry)
    assert await one.turn(copy(1)) == Order(1)
    await one.ending(copy(1), Order(1))  # its lane write not made yet: KV has no lane
    third = asyncio.create_task(one.turn(copy(3)))
    await until(lambda: waits(registry) == 1)  # copy 3 read the lane (none) and waits
    assert await asyncio.wait_for(one.turn(copy(2)), 0.3) == Order(2)  # copy 1 ended here
    await one.ending(copy(2), Order(2))
    assert await asyncio.wait_for(third, 0.3) == Order(3)


async def test_a_head_due_again_at_once_is_waited_for_here(lanes: Lanes) -> None:
    # Its retry is due within 50 ms (DUE_SLACK): the copy behind it waits in process,
    # as for a head in flight, and goes the moment the retry ends.
    registry = CollectorRegistry()
    one = await lanes(registry=registry)
    assert await one.turn(copy(1)) == Order(1)
    await one.failed(copy(1), time.time() + 0.03)
    second = asyncio.create_task(one.turn(copy(2)))
    await until(lambda: waits(registry) == 1)
    await one.ended(copy(1))
    assert await asyncio.wait_for(second, 0.5) == Order(2)


async def test_a_head_due_again_at_once_sends_a_copy_without_room_here_to_its_backoff(
    lanes: Lanes,
) -> None:
    # No room to wait in process: the copy waits in JetStream for the first backoff, not
    # until the head's due time a few ms away (which would make it spin).
    one = await lanes(max_waiting=0)
    assert await one.turn(copy(1)) == Order(1)
    await one.failed(copy(1), time.time() + 0.03)
    assert await one.turn(copy(2)) == Later(pytest.approx(0.25, abs=0.05))  # type: ignore[arg-type]


async def test_beyond_its_room_to_wait_here_a_copy_waits_in_jetstream_at_once(
    lanes: Lanes,
) -> None:
    registry = CollectorRegistry()
    one = await lanes(max_waiting=1, registry=registry)
    assert await one.turn(copy(1, room="sip-a")) == Order(1)
    assert await one.turn(copy(1, room="sip-b")) == Order(1)
    waiting = asyncio.create_task(one.turn(copy(2, room="sip-a")))  # the one place here
    await until(lambda: waits(registry) == 1)
    started = time.monotonic()
    later = await one.turn(copy(2, room="sip-b"))
    assert isinstance(later, Later) and time.monotonic() - started < 0.5
    await one.ended(copy(1, room="sip-a"))
    assert await asyncio.wait_for(waiting, 0.5) == Order(2)


async def test_an_advance_refused_for_another_forwarders_write_is_read_again_and_made(
    lanes: Lanes, lanes_kv: KeyValue
) -> None:
    one = await lanes()
    assert await one.turn(copy(1)) == Order(1)
    assert await one.ended(copy(1)) == 0
    # Another writer moves the lane's revision (its notice not heard here yet).
    await lanes_kv.put(lane_key(copy(1)), (await stored(lanes_kv, copy(1))).encode())
    assert await one.turn(copy(2)) == Order(2)
    assert await one.ended(copy(2)) == 0
    assert (await stored(lanes_kv, copy(1))).done == 2
    assert await (await lanes()).turn(copy(3)) == Order(3)


async def test_a_lane_another_writer_keeps_changing_is_given_up_and_said_so(
    nats_server: NatsServer, lanes_kv: KeyValue, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    nc = await nats.connect(nats_server.url)
    kv = await nc.jetstream().key_value(topology.LANES_BUCKET)
    read = kv.get

    async def contested(key: str, revision: int | None = None) -> object:
        entry = await read(key)
        await lanes_kv.put(key, entry.value or b"")  # another forwarder writes first, always
        return entry

    monkeypatch.setattr(kv, "get", contested)
    one = CallLanes(nc, kv, HOLD_MAX, 10, ForwarderMetrics(CollectorRegistry()))
    try:
        await lanes_kv.put(lane_key(copy(1)), LaneState().encode())
        assert await one.turn(copy(1)) == Order(1)
        with caplog.at_level(logging.WARNING, "sayna_sip.forwarder"):
            assert await one.ended(copy(1)) == 0
        assert (
            "sayna_sip.forwarder",
            logging.WARNING,
            f"event=lane_advance_failed hook={HOOK} room={ROOM}",
        ) in caplog.record_tuples
        assert (await stored(lanes_kv, copy(1))).done == 0  # KV decides: copy 1 comes again
    finally:
        await nc.close()


async def test_copies_ending_together_leave_nothing_of_their_lane_but_its_cache(
    lanes: Lanes, lanes_kv: KeyValue
) -> None:
    # Three deliveries of a call settle at once: their writes go one at a time and move
    # the lane to 3; after them the forwarder keeps no lock and no waiter of the lane
    # (a forwarder up for weeks sees millions of calls).
    one = await lanes()
    assert await one.turn(copy(1)) == Order(1)
    await one.ending(copy(1), Order(1))
    assert await one.turn(copy(2)) == Order(2)
    await one.ending(copy(2), Order(2))
    assert await one.turn(copy(3)) == Order(3)
    ends = [one.ended(copy(seq)) for seq in (1, 2, 3)]
    assert await asyncio.gather(*ends) == [0, 0, 0]
    assert (await stored(lanes_kv, copy(1))).done == 3
    assert one._locks == {} and one._waiters == {} and one._waiting == 0


async def test_the_lanes_used_last_stay_cached_the_oldest_is_read_again(
    lanes: Lanes, kv_reads: list[str], nats_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(order_lanes, "CACHE_SIZE", 2)
    one = await lanes()
    for room in ("sip-a", "sip-b", "sip-c"):
        assert await one.turn(copy(1, room=room)) == Order(1)
        await one.ended(copy(1, room=room))  # cached with its write
    await nats_client.flush()
    kv_reads.clear()
    assert await one.turn(copy(2, room="sip-c")) == Order(2)
    assert await one.turn(copy(2, room="sip-b")) == Order(2)
    await nats_client.flush()
    assert kv_reads == []  # the two used last: their turn from the cache
    assert await one.turn(copy(2, room="sip-a")) == Order(2)
    await until(lambda: len(kv_reads) == 1)  # the oldest was forgotten: read again
