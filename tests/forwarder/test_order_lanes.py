"""Ordered delivery per call on real forwarders: a call's copies (numbered by
`Sayna-Call-Seq`, as the router numbers them) reach an endpoint that orders by call in
their order, across retries and forwarders; `ordering: none` and copies of the release
before ordering go as they come."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections import defaultdict
from collections.abc import AsyncIterator

import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext
from standardwebhooks.webhooks import Webhook

from sayna_sip.common import contracts, records, topology
from sayna_sip.common.delivery import Delivery
from sayna_sip.common.hook import Hook
from sayna_sip.common.hosts import host_token
from sayna_sip.common.records import AttemptRecord
from sayna_sip.forwarder.order import LaneState
from tests.fixtures.https_sink import HttpsSink, Received, Reply
from tests.fixtures.nats import NatsServer
from tests.forwarder.conftest import SECRET, StartForwarder, drained, event_body, publish

HOST = "order.example.com"
CALL = ("room_started", "participant_joined", "track_published", "participant_left",
        "room_finished")  # fmt: skip


async def put_ordered_hook(js: JetStreamContext, url: str, ordering: str | None = None) -> None:
    kv = await js.key_value(topology.HOOKS_BUCKET)
    hook = Hook(host=HOST, url=url, source="runtime", ordering=ordering)
    await kv.put(host_token(HOST), hook.encode())


async def publish_call_event(js: JetStreamContext, room: str, seq: int) -> str:
    """Copy `seq` of `room`'s call, as the router writes it."""
    event_id = f"EV_{room}_{seq}"
    d = Delivery.first(
        event_id=event_id, event=CALL[(seq - 1) % len(CALL)], room=room, hook=HOST,
        sip_host=HOST, received_at=f"{time.time():.6f}", call_seq=seq,
    )  # fmt: skip
    ack = await js.publish(
        contracts.delivery_subject(HOST), event_body(event_id, room),
        stream=topology.SIP_DELIVERIES, headers=d.to_headers(),
    )  # fmt: skip
    assert not ack.duplicate
    return event_id


async def interleaved_calls(js: JetStreamContext, rooms: list[str], gap: float = 0.01) -> None:
    """Every call's event 1, then every call's event 2, ...: one webhook every `gap` s."""
    for seq in range(1, len(CALL) + 1):
        for room in rooms:
            await publish_call_event(js, room, seq)
            await asyncio.sleep(gap)


def seqs_by_room(got: list[Received]) -> dict[str, list[int]]:
    """Call-Seq of every request, in arrival order, per room (from the event id)."""
    out: dict[str, list[int]] = defaultdict(list)
    for r in got:
        room, seq = r.headers["webhook-id"].removeprefix("EV_").rsplit("_", 1)
        assert r.headers["sayna-call-seq"] == seq
        out[room].append(int(seq))
    return out


def fail_first_join(failing: set[str]) -> object:
    """500 once, to the first attempt of participant_joined of each room in `failing`."""
    failed: set[str] = set()

    def decide(r: Received) -> Reply | None:
        event_id = r.headers["webhook-id"]
        room = event_id.removeprefix("EV_").rsplit("_", 1)[0]
        if event_id.endswith("_2") and room in failing and room not in failed:
            failed.add(room)
            return Reply(status=500)
        return None

    return decide


class Attempts(list[AttemptRecord]):
    """The attempt records heard so far; `reach(n)` awaits the n-th."""

    def __init__(self) -> None:
        super().__init__()
        self._grew = asyncio.Event()

    def add(self, record: AttemptRecord) -> None:
        self.append(record)
        self._grew.set()

    async def reach(self, n: int, timeout: float = 10.0) -> None:
        # A forwarder's recorder publishes in the background: a record may trail its ack.
        async with asyncio.timeout(timeout):
            while len(self) < n:
                self._grew.clear()
                await self._grew.wait()


@pytest.fixture
async def attempts(nats_client: Client) -> AsyncIterator[Attempts]:
    """Every attempt record the forwarders publish from now on."""
    got = Attempts()

    async def on_record(msg: object) -> None:
        record = records.decode(msg.data)  # type: ignore[attr-defined]
        if isinstance(record, AttemptRecord):
            got.add(record)

    sub = await nats_client.subscribe("sip.attempt.>", cb=on_record)
    yield got
    await sub.unsubscribe()


async def test_interleaved_calls_arrive_in_order_across_a_failed_join(
    start_forwarder: StartForwarder, https_sink: HttpsSink, jetstream: JetStreamContext,
    attempts: Attempts,
) -> None:  # fmt: skip
    # The issue's run, shortened: 10 calls x 5 events interleaved; half of the calls'
    # joins fail once. Two forwarders pull the same durable.
    rooms = [f"sip-call-{i}" for i in range(10)]
    https_sink.decide("/order", fail_first_join(set(rooms[::2])))  # type: ignore[arg-type]
    await put_ordered_hook(jetstream, https_sink.url("/order"))
    for _ in range(2):
        await start_forwarder(SIP_HOOK_SECRET=SECRET)

    await interleaved_calls(jetstream, rooms)
    got = await https_sink.wait_for(55, "/order", timeout=15)
    await drained(jetstream)

    by_room = seqs_by_room(got)
    for room in rooms[::2]:  # the failed join is retried before anything after it
        assert by_room[room] == [1, 2, 2, 3, 4, 5], room
    for room in rooms[1::2]:
        assert by_room[room] == [1, 2, 3, 4, 5], room
    for r in got:  # signed as always; the seq is not part of the signature
        Webhook(SECRET.encode()).verify(r.body, r.headers)
    await attempts.reach(55)
    seqs = sorted((a.room, a.call_seq, a.outcome) for a in attempts)
    assert ("sip-call-0", 2, "failed") in seqs and len(seqs) == 55
    assert not any(a.late or a.released for a in attempts)


async def test_ordering_none_delivers_a_call_as_it_comes(
    start_forwarder: StartForwarder, https_sink: HttpsSink, jetstream: JetStreamContext
) -> None:
    # The same failed join with `ordering: none`: what came after it does not wait.
    https_sink.decide("/order", fail_first_join({"sip-call-0"}))  # type: ignore[arg-type]
    await put_ordered_hook(jetstream, https_sink.url("/order"), ordering="none")
    await start_forwarder()

    await interleaved_calls(jetstream, ["sip-call-0"], gap=0.02)
    got = await https_sink.wait_for(6, "/order", timeout=10)

    arrived = seqs_by_room(got)["sip-call-0"]
    assert arrived[:2] == [1, 2] and arrived.index(3) < arrived.index(2, 2), arrived


async def test_sip_ordering_none_is_the_default_of_endpoints_that_set_none(
    start_forwarder: StartForwarder, https_sink: HttpsSink, jetstream: JetStreamContext
) -> None:
    https_sink.decide("/order", fail_first_join({"sip-call-0"}))  # type: ignore[arg-type]
    await put_ordered_hook(jetstream, https_sink.url("/order"))  # no ordering of its own
    await start_forwarder(SIP_ORDERING="none")

    await interleaved_calls(jetstream, ["sip-call-0"], gap=0.02)
    got = await https_sink.wait_for(6, "/order", timeout=10)

    arrived = seqs_by_room(got)["sip-call-0"]
    assert arrived.index(3) < arrived.index(2, 2), arrived


async def test_copies_of_the_previous_release_deliver_beside_a_held_call(
    start_forwarder: StartForwarder, https_sink: HttpsSink, jetstream: JetStreamContext
) -> None:
    # A call whose join keeps failing holds its own later events; copies without a
    # Call-Seq (written before ordering) of the same room and endpoint are not held.
    https_sink.decide(
        "/order",
        lambda r: Reply(status=500) if r.headers["webhook-id"] == "EV_sip-room-1_2" else None,
    )
    await put_ordered_hook(jetstream, https_sink.url("/order"))
    await start_forwarder(SIP_RETRY_SCHEDULE="0s,5s")
    for seq in (1, 2, 3):
        await publish_call_event(jetstream, "sip-room-1", seq)
    await https_sink.wait_for(2, "/order", timeout=10)

    old_id, _ = await publish(jetstream, HOST)  # the previous release's copy: room sip-room-1
    got = await https_sink.wait_for(3, "/order", timeout=5)

    assert [r.headers["webhook-id"] for r in got] == ["EV_sip-room-1_1", "EV_sip-room-1_2", old_id]
    assert "sayna-call-seq" not in got[2].headers


@pytest.mark.serial  # timed against the wall clock: alone, after the parallel pass
async def test_a_failing_call_does_not_slow_another_call_of_its_endpoint(
    start_forwarder: StartForwarder, https_sink: HttpsSink, jetstream: JetStreamContext
) -> None:
    # Call A's join fails on every attempt, holding A's later events; call B's events
    # go on: their p99 stays near what it is with nothing failing.
    https_sink.decide(
        "/order", lambda r: Reply(status=500) if r.headers["webhook-id"].startswith(
            "EV_sip-a_2") else None,
    )  # fmt: skip
    await put_ordered_hook(jetstream, https_sink.url("/order"))
    await start_forwarder(SIP_RETRY_SCHEDULE="0s,100ms,100ms,100ms,100ms,100ms,100ms,100ms")

    async def p99(room: str, with_a: bool) -> float:
        sent: dict[str, float] = {}
        for seq in range(1, 21):
            if with_a and seq <= len(CALL):
                await publish_call_event(jetstream, "sip-a", seq)
            sent[await publish_call_event(jetstream, room, seq)] = time.time()
            await asyncio.sleep(0.02)
        got = [r for r in await https_sink.wait_for(20, None, timeout=15) if r.headers[
            "webhook-id"].startswith(f"EV_{room}_")]  # fmt: skip
        while len(got) < 20:
            await asyncio.sleep(0.02)
            got = [r for r in https_sink.received() if r.headers["webhook-id"].startswith(
                f"EV_{room}_")]  # fmt: skip
        latencies = sorted(r.at - sent[r.headers["webhook-id"]] for r in got)
        assert seqs_by_room(got)[room] == list(range(1, 21))
        return latencies[int(0.99 * (len(latencies) - 1))]

    alone = await p99("sip-b0", with_a=False)
    beside = await p99("sip-b1", with_a=True)
    held = [r for r in https_sink.received() if r.headers["webhook-id"].startswith("EV_sip-a_")]
    assert seqs_by_room(held)["sip-a"][0] == 1 and 3 not in seqs_by_room(held)["sip-a"]
    assert beside <= 2 * alone + 0.05, (alone, beside)


async def test_a_dead_lettered_head_ends_its_turn_and_the_call_goes_on(
    start_forwarder: StartForwarder, https_sink: HttpsSink, jetstream: JetStreamContext
) -> None:
    https_sink.decide(
        "/order",
        lambda r: Reply(status=410) if r.headers["webhook-id"] == "EV_sip-room-1_2" else None,
    )
    await put_ordered_hook(jetstream, https_sink.url("/order"))
    await start_forwarder()
    for seq in (1, 2, 3, 4):
        await publish_call_event(jetstream, "sip-room-1", seq)

    got = await https_sink.wait_for(4, "/order", timeout=5)
    assert seqs_by_room(got)["sip-room-1"] == [1, 2, 3, 4]


@pytest.mark.parametrize("forwarders", [1, 2])
async def test_a_waiting_copy_goes_the_moment_its_head_ends(
    start_forwarder: StartForwarder, https_sink: HttpsSink, jetstream: JetStreamContext,
    forwarders: int,
) -> None:  # fmt: skip
    # The head takes 300 ms; the copy behind it (here or on the other forwarder) is
    # woken when it ends, not after its wait slice (order_lanes.WAIT_SLICE, 1 s).
    https_sink.decide(
        "/order",
        lambda r: Reply(delay=0.3) if r.headers["webhook-id"].endswith("_1") else None,
    )
    await put_ordered_hook(jetstream, https_sink.url("/order"))
    for _ in range(forwarders):
        await start_forwarder()
    for seq in (1, 2):
        await publish_call_event(jetstream, "sip-room-1", seq)

    first, second = await https_sink.wait_for(2, "/order", timeout=5)
    assert second.headers["sayna-call-seq"] == "2"
    assert 0.29 < second.at - first.at < 0.5, second.at - first.at


async def test_the_copy_behind_its_head_goes_when_the_heads_request_ends_not_its_lane_write(
    start_forwarder: StartForwarder, https_sink: HttpsSink, jetstream: JetStreamContext,
    nats_server: NatsServer,
) -> None:  # fmt: skip
    # Copy 1 is answered after 0.3 s; 0.2 s in, NATS stops answering (SIGSTOP), so copy
    # 1's lane write cannot land. Copy 2, waiting in the same forwarder, goes all the
    # same when copy 1's request ends; the lane is written once NATS answers again.
    assert nats_server.proc is not None
    pid = nats_server.proc.pid

    def decide(r: Received) -> Reply | None:
        if r.headers["webhook-id"].endswith("_1"):
            threading.Timer(0.2, os.kill, (pid, signal.SIGSTOP)).start()
            return Reply(delay=0.3)
        return None

    https_sink.decide("/order", decide)
    await put_ordered_hook(jetstream, https_sink.url("/order"))
    for seq in (1, 2):
        await publish_call_event(jetstream, "sip-room-1", seq)
    await start_forwarder()
    try:
        got = await https_sink.wait_for(2, "/order", timeout=3)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert [r.headers["sayna-call-seq"] for r in got] == ["1", "2"]
    await drained(jetstream)
    lanes = await jetstream.key_value(topology.LANES_BUCKET)
    (key,) = await lanes.keys()
    assert LaneState.decode((await lanes.get(key)).value).done == 2
