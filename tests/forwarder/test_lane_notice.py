"""Two forwarders' call lanes on one real nats-server: a call's first copy goes without
reading KV (nothing can come before it), and when a call's copy ends on one forwarder,
the notice carries the lane's new state, so the next copy waiting on the other goes
without reading KV again (a NATS round trip fewer per ordered event each)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.errors import NoKeysError
from nats.js.kv import KeyValue
from prometheus_client import CollectorRegistry

from sayna_sip.common import contracts, topology
from sayna_sip.common.delivery import Delivery
from sayna_sip.forwarder.metrics import ForwarderMetrics
from sayna_sip.forwarder.order import LaneState, Order
from sayna_sip.forwarder.order_lanes import CallLanes, lane_key
from tests.fixtures.nats import NatsServer


def copy(seq: int) -> Delivery:
    return Delivery.first(
        event_id=f"EV_{seq}", event="participant_joined", room="sip-room-1",
        hook="order.example.com", sip_host="order.example.com", received_at="1.0",
        call_seq=seq,
    )  # fmt: skip


@contextlib.asynccontextmanager
async def lanes_on(url: str) -> AsyncIterator[tuple[Client, CallLanes]]:
    """A forwarder's call lanes on a connection of their own, stopped on the way out."""
    nc = await nats.connect(url)
    kv = await nc.jetstream().key_value(topology.LANES_BUCKET)
    lanes = CallLanes(nc, kv, 300.0, 10, ForwarderMetrics(CollectorRegistry()))
    await lanes.start()
    await nc.flush()  # its notice subscription is in place on the server
    try:
        yield nc, lanes
    finally:
        await lanes.stop()
        await nc.close()


async def test_a_calls_first_copy_and_a_copy_woken_by_the_notice_go_without_a_kv_read(
    nats_server: NatsServer, nats_client: Client, jetstream: JetStreamContext
) -> None:
    reads: list[str] = []

    async def on_read(msg: Msg) -> None:
        reads.append(msg.subject)

    await nats_client.subscribe(f"$JS.API.STREAM.MSG.GET.KV_{topology.LANES_BUCKET}", cb=on_read)
    await nats_client.subscribe(f"$JS.API.DIRECT.GET.KV_{topology.LANES_BUCKET}.>", cb=on_read)
    async with lanes_on(nats_server.url) as (_, a), lanes_on(nats_server.url) as (_, b):
        assert await a.turn(copy(1)) == Order(1)  # the call's first copy: no read
        second = asyncio.create_task(b.turn(copy(2)))  # waits: copy 1 has not ended
        async with asyncio.timeout(5):
            while not reads:  # b's read before its wait
                await nats_client.flush()
        assert not second.done()
        await a.ended(copy(1))
        async with asyncio.timeout(0.9):  # well inside b's in-process wait (1 s)
            assert await second == Order(2)
        assert await b.ended(copy(2)) == 0  # its write on the revision the notice carried
        await nats_client.flush()
        assert len(reads) == 1, reads  # b took its turn from the notice, not from KV


async def test_a_calls_second_copy_on_another_forwarder_goes_when_the_first_ends_not_its_write(
    nats_server: NatsServer, jetstream: JetStreamContext
) -> None:
    # room_started is stored with the join that names the host: when it ends on one
    # forwarder, the join waiting on the other goes at once, not after its lane write.
    kv = await jetstream.key_value(topology.LANES_BUCKET)
    async with lanes_on(nats_server.url) as (_, a), lanes_on(nats_server.url) as (_, b):
        assert await a.turn(copy(1)) == Order(1)
        second = asyncio.create_task(b.turn(copy(2)))
        await asyncio.sleep(0.1)
        assert not second.done()
        await a.ending(copy(1), Order(1))  # its request is over, no lane write yet
        async with asyncio.timeout(0.5):  # well inside b's in-process wait (1 s)
            assert await second == Order(2)
        assert not [k async for k in _keys(kv)]  # nothing written yet
        # The join ends first: its write moves the lane past both; room_started's own
        # write then changes nothing.
        assert await b.ended(copy(2)) == 0
        assert await a.ended(copy(1)) == 0
        assert LaneState.decode((await kv.get(lane_key(copy(1)))).value).done == 2


async def _keys(kv: KeyValue) -> AsyncIterator[str]:
    with contextlib.suppress(NoKeysError):
        for key in await kv.keys():
            yield key


async def heard(nc: Client, *notices: bytes) -> None:
    """Publish these lane notices for copy 1's lane and wait until `nc` has them: the
    server sends them before the answer to nc's flush, and their callback runs first."""
    for body in notices:
        await nc.publish(f"{contracts.LANE_NOTICE}.{lane_key(copy(1))}", body)
    await nc.flush()


async def test_a_late_notice_of_an_earlier_end_changes_nothing(
    nats_server: NatsServer, jetstream: JetStreamContext
) -> None:
    # A forwarder hears `ended 1` (its own, or another's) after copy 2 ended here: copy 3
    # still goes at once, copy 2 coming again is still late, after the cache is dropped.
    async with lanes_on(nats_server.url) as (nc, a):
        assert await a.turn(copy(1)) == Order(1)
        await a.ending(copy(1), Order(1))
        assert await a.turn(copy(2)) == Order(2)
        await a.ending(copy(2), Order(2))  # neither written yet
        await heard(nc, b"ended 1")
        async with asyncio.timeout(0.5):
            assert await a.turn(copy(3)) == Order(3)
        for seq in (1, 2):  # written: the lane is at 2 (copy 3 still in flight)
            assert await a.ended(copy(seq)) == 0
        await heard(nc, b"ended 1", b"")  # and an empty notice (a release before): read again
        assert await a.turn(copy(2), redelivered=2) == Order(2, late=True)


async def test_a_notice_older_than_what_a_forwarder_knows_is_ignored(
    nats_server: NatsServer, jetstream: JetStreamContext
) -> None:
    # Copy 1's notice reaches this forwarder after copy 2's write (notices of two
    # forwarders may cross): the older revision does not take copy 2's turn back.
    kv = await jetstream.key_value(topology.LANES_BUCKET)
    async with lanes_on(nats_server.url) as (nc, a):
        assert await a.turn(copy(1)) == Order(1)
        assert await a.ended(copy(1)) == 0
        old = await kv.get(lane_key(copy(1)))
        assert await a.turn(copy(2)) == Order(2)
        assert await a.ended(copy(2)) == 0
        assert old.revision is not None and old.value is not None
        await heard(nc, b"%d %s" % (old.revision, old.value))
        assert await a.turn(copy(2), redelivered=2) == Order(2, late=True)
        assert await a.turn(copy(3)) == Order(3)


async def test_a_notice_from_a_forwarder_that_missed_an_end_keeps_that_end(
    nats_server: NatsServer, jetstream: JetStreamContext
) -> None:
    # Copy 1 ended here, its write not made yet. Another forwarder, which has not heard
    # of it, notes copy 3 waiting behind copy 1 and says so: copy 2 still goes here at once.
    kv = await jetstream.key_value(topology.LANES_BUCKET)
    async with lanes_on(nats_server.url) as (nc, a):
        assert await a.turn(copy(1)) == Order(1)
        await a.ending(copy(1), Order(1))
        waiting = LaneState(since=time.time(), tail=3)
        revision = await kv.put(lane_key(copy(1)), waiting.encode())
        await heard(nc, b"%d %s" % (revision, waiting.encode()))
        async with asyncio.timeout(0.5):  # not its in-process wait (1 s) for copy 1's write
            assert await a.turn(copy(2)) == Order(2)
