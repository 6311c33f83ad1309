"""Late copies of an ordered call: a dead letter redriven goes at once, among what of its
call is still pending or after it, and its record says it is late; a head past the
bounded hold (SIP_ORDER_HOLD_MAX) releases the rest and its record says how many waited."""

from __future__ import annotations

from collections.abc import Callable

from nats.aio.client import Client
from nats.js import JetStreamContext

from sayna_sip.common import deadletters, topology
from sayna_sip.common.streamscan import StreamReader
from tests.fixtures.https_sink import HttpsSink, Received, Reply
from tests.forwarder.conftest import Attempts, StartForwarder, drained, wait_dead
from tests.forwarder.test_order_lanes import (
    HOST,
    publish_call_event,
    put_ordered_hook,
    seqs_by_room,
)

ROOM = "sip-room-1"


def refuse_first(**statuses: int) -> Callable[[Received], Reply | None]:
    """statuses[seq] to the first request of copy `_<seq>` of ROOM, 200 to the rest."""
    refused: set[str] = set()

    def decide(r: Received) -> Reply | None:
        seq = r.headers["webhook-id"].rsplit("_", 1)[1]
        if f"s{seq}" in statuses and seq not in refused:
            refused.add(seq)
            return Reply(status=statuses[f"s{seq}"])
        return None

    return decide


async def redrive_the_letter(js: JetStreamContext, nc: Client) -> None:
    reader = StreamReader(nc, topology.SIP_DEAD)
    await reader.start()
    try:
        (letter,) = await deadletters.oldest_first(reader, 10**6, host=HOST)
        assert await deadletters.redrive_one(js, letter)
    finally:
        await reader.close()


async def test_a_redriven_dead_letter_goes_after_its_call_and_says_it_is_late(
    start_forwarder: StartForwarder, https_sink: HttpsSink, jetstream: JetStreamContext,
    nats_client: Client, attempts: Attempts,
) -> None:  # fmt: skip
    # The join is refused for good (410): dead-lettered, its call goes on. Redriven once
    # the call is over, it is delivered at once with its own Sayna-Call-Seq (a tenant's
    # recipe sees a seq below the last one) and its record says late.
    https_sink.decide("/order", refuse_first(s2=410))
    await put_ordered_hook(jetstream, https_sink.url("/order"))
    await start_forwarder()
    for seq in (1, 2, 3, 4):
        await publish_call_event(jetstream, ROOM, seq)
    await https_sink.wait_for(4, "/order", timeout=5)
    await wait_dead(jetstream, 1)

    await redrive_the_letter(jetstream, nats_client)
    got = await https_sink.wait_for(5, "/order", timeout=5)
    await drained(jetstream)

    assert seqs_by_room(got)[ROOM] == [1, 2, 3, 4, 2]
    assert got[4].headers["webhook-id"] == f"EV_{ROOM}_2"  # the same event, for dedupe
    await attempts.wait(5)
    redriven = attempts[-1]
    assert (redriven.call_seq, redriven.redrive, redriven.late) == (2, 1, True)
    assert redriven.outcome == "delivered"
    assert not any(a.late for a in attempts[:-1])


async def test_a_dead_letter_redriven_while_its_call_waits_goes_before_what_is_pending(
    start_forwarder: StartForwarder, https_sink: HttpsSink, jetstream: JetStreamContext,
    nats_client: Client, attempts: Attempts,
) -> None:  # fmt: skip
    # The join dies (410); the next event fails once and holds the last one for its
    # retry (2 s). The join redriven meanwhile does not wait behind the failing head:
    # it goes at once, late, still before every copy of its call that is pending.
    https_sink.decide("/order", refuse_first(s2=410, s3=500))
    await put_ordered_hook(jetstream, https_sink.url("/order"))
    await start_forwarder(SIP_RETRY_SCHEDULE="0s,2s")
    for seq in (1, 2, 3, 4):
        await publish_call_event(jetstream, ROOM, seq)
    await https_sink.wait_for(3, "/order", timeout=5)  # 1, the join's 410, 3's 500
    await wait_dead(jetstream, 1)

    await redrive_the_letter(jetstream, nats_client)
    (fourth,) = (await https_sink.wait_for(4, "/order", timeout=1.5))[3:]
    assert fourth.headers["webhook-id"] == f"EV_{ROOM}_2"  # not after 3's retry 2 s later
    got = await https_sink.wait_for(6, "/order", timeout=5)
    await drained(jetstream)

    assert seqs_by_room(got)[ROOM] == [1, 2, 3, 2, 3, 4]
    await attempts.wait(6)
    late = [(a.call_seq, a.redrive, a.outcome) for a in attempts if a.late]
    assert late == [(2, 1, "delivered")]


async def test_a_head_past_the_hold_releases_the_rest_and_keeps_its_schedule(
    start_forwarder: StartForwarder, https_sink: HttpsSink, jetstream: JetStreamContext,
    attempts: Attempts,
) -> None:  # fmt: skip
    # The join fails once and is due again in 4 s; the hold is 1 s: the two copies
    # behind it go after 1-2 s (the hold starts when they leave the forwarder's 1 s
    # in-process wait), in order, and the join comes back on its own schedule.
    https_sink.decide("/order", refuse_first(s2=500))
    await put_ordered_hook(jetstream, https_sink.url("/order"))
    await start_forwarder(SIP_RETRY_SCHEDULE="0s,4s", SIP_ORDER_HOLD_MAX="1s")
    for seq in (1, 2, 3, 4):
        await publish_call_event(jetstream, ROOM, seq)

    got = await https_sink.wait_for(5, "/order", timeout=10)
    await drained(jetstream)

    assert seqs_by_room(got)[ROOM] == [1, 2, 3, 4, 2]
    failed_at, released_at, late_at = got[1].at, got[2].at, got[4].at
    assert 0.9 < released_at - failed_at < 3.0, released_at - failed_at  # the hold, not the retry
    assert late_at - failed_at >= 3.1  # its own schedule: 4 s, jitter -20 % at most
    await attempts.wait(5)
    (head,) = [a for a in attempts if a.call_seq == 2 and a.outcome == "delivered"]
    # Copies 3 and 4 waited; `released` is tail - head, the highest waiter the lane
    # noted: 4's note may lose the compare-and-set to 3's (order_lanes._later).
    assert head.late and head.released in (1, 2), head
    assert not any(a.late or a.released for a in attempts if a.call_seq != 2)
