"""Replay of route records against a real JetStream: which events of a window go out
again, to which endpoints, and what each fresh copy carries (the original body and
webhook-id, a generation of its own); what cannot be read back is "expired", never an
error (a record without a sequence comes from before replay)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext

from sayna_sip.common import contracts, records, topology
from sayna_sip.common.contracts import Header
from sayna_sip.common.records import RouteOutcome, RouteRecord
from sayna_sip.common.replay import (
    REPLAY_LIMIT,
    BodyGone,
    NotItsEndpoint,
    NotRouted,
    Replayed,
    Replayer,
)
from sayna_sip.common.streamscan import StreamReader

HOST = "pbx.a.example.com"


def _route(lk_seq: int, event_id: str = "EV_1", at: float = 1.0, **kw: object) -> RouteRecord:
    fields: dict[str, object] = {
        "event_id": event_id, "event": "participant_joined", "room": "sip-1",
        "outcome": RouteOutcome.MATCHED, "at": at, "sip_host": "a.example.com", "host": HOST,
        "lk_seq": lk_seq, **kw,
    }  # fmt: skip
    return RouteRecord(**fields)  # type: ignore[arg-type]


@pytest.fixture
async def reader(nats_client: Client, jetstream: JetStreamContext) -> AsyncIterator[StreamReader]:
    """A started reader of SIP_ATTEMPTS (what the Replayer scans for route records)."""
    scan = StreamReader(nats_client, topology.SIP_ATTEMPTS)
    await scan.start()
    yield scan
    await scan.close()


async def _event(js: JetStreamContext, event_id: str, body: bytes, **headers: str) -> int:
    """Store one event in LK_EVENTS as the ingress does; its sequence."""
    stored = {Header.EVENT_ID: event_id, Header.EVENT: "participant_joined",
              Header.ROOM: "sip-1", **headers}  # fmt: skip
    ack = await js.publish(
        contracts.lk_event_subject("participant_joined", "sip-1"), body, headers=stored
    )
    return ack.seq


async def _routed(js: JetStreamContext, *recs: RouteRecord) -> None:
    for rec in recs:
        await js.publish(records.subject(rec), records.encode(rec))


async def _sent(js: JetStreamContext) -> list[tuple[bytes, dict[str, str]]]:
    """Every copy stored in SIP_DELIVERIES, in order: (body, headers)."""
    last = (await js.stream_info(topology.SIP_DELIVERIES)).state.last_seq
    out = []
    for seq in range(1, last + 1):
        msg = await js.get_msg(topology.SIP_DELIVERIES, seq=seq)
        assert msg.subject == contracts.delivery_subject(HOST)
        headers = dict(msg.headers or {})
        headers.pop("Nats-Expected-Stream")  # nats-py's publish(stream=...) guard
        out.append((msg.data or b"", headers))
    return out


async def test_a_record_without_its_lk_events_sequence_counts_as_expired(
    jetstream: JetStreamContext, reader: StreamReader
) -> None:
    replayer = Replayer(jetstream, reader)
    for seq in (0, 10**6):  # 0 was a 500 (get_msg seq=0); 10**6: past the stream's end
        with pytest.raises(BodyGone) as gone:
            await replayer.resend("EV_1", _route(seq))
        # What the API's 410 and the CLI's error say, whole.
        assert str(gone.value) == "event EV_1 is past LK_EVENTS_MAX_AGE: its body is gone"
    info = await jetstream.stream_info(topology.SIP_DELIVERIES)
    assert info.state.messages == 0  # nothing sent for either


async def test_a_replayed_copy_is_the_original_event_with_a_generation_of_its_own(
    jetstream: JetStreamContext, reader: StreamReader
) -> None:
    seq = await _event(jetstream, "EV_1", b'{"event":"participant_joined"}')
    assert seq == 1  # the stream's first event can be replayed too
    since = time.time() - 60
    await _routed(jetstream, _route(seq, at=since + 1))
    before = int(time.time() * 1000)
    done = await Replayer(jetstream, reader).replay(HOST, since, None)
    after = int(time.time() * 1000)
    assert done == Replayed(replayed=1, expired=0, truncated=False, next_since=None)
    [(body, headers)] = await _sent(jetstream)
    assert body == b'{"event":"participant_joined"}'
    generation = int(headers.pop(Header.REDRIVE))
    assert before <= generation <= after  # the replay's time in ms: ids of their own
    assert headers == {
        Header.EVENT_ID: "EV_1",  # the same webhook-id at the hook
        Header.EVENT: "participant_joined",
        Header.ROOM: "sip-1",
        Header.HOOK: HOST,
        Header.SIP_HOST: "a.example.com",
        Header.MSG_ID: f"EV_1:pbx_a_example_com:g{generation}:replay",
    }  # no receipt time: an old event would skew the latency metric


async def test_a_replay_sends_one_copy_per_endpoint_routed_to_or_only_the_one_asked(
    jetstream: JetStreamContext, reader: StreamReader
) -> None:
    since = time.time() - 60
    first = await _event(jetstream, "EV_1", b"one")
    second = await _event(jetstream, "EV_2", b"two")
    await _routed(
        jetstream,
        _route(first, "EV_1", since + 1, endpoints=("default", "crm")),
        _route(second, "EV_2", since + 2),  # a record of the previous release: `default`
    )
    replayer = Replayer(jetstream, reader)
    assert await replayer.replay(HOST, since, None) == Replayed(replayed=2)
    copies = await _sent(jetstream)
    assert [(body, h.get(Header.ENDPOINT)) for body, h in copies] == [
        (b"one", None), (b"one", "crm"), (b"two", None),
    ]  # fmt: skip
    crm_id = copies[1][1][Header.MSG_ID]
    assert crm_id == f"EV_1:pbx_a_example_com:crm:g{copies[1][1][Header.REDRIVE]}:replay"

    # Only the CRM's: an event not routed there is skipped, and the next still goes.
    third = await _event(jetstream, "EV_3", b"three")
    await _routed(jetstream, _route(third, "EV_3", since + 3, endpoints=("crm",)))
    assert await replayer.replay(HOST, since, None, endpoint="crm") == Replayed(replayed=2)
    again = (await _sent(jetstream))[len(copies) :]
    assert [(body, h.get(Header.ENDPOINT)) for body, h in again] == [
        (b"one", "crm"), (b"three", "crm"),
    ]  # fmt: skip


async def test_a_replay_takes_the_window_since_inclusive_until_exclusive(
    jetstream: JetStreamContext, reader: StreamReader
) -> None:
    since = time.time() - 60
    seqs = [await _event(jetstream, f"EV_{n}", f"body {n}".encode()) for n in range(4)]
    await _routed(
        jetstream,
        _route(seqs[0], "EV_0", since - 1),  # before the window
        _route(seqs[1], "EV_1", since),  # at its start: in
        _route(seqs[2], "EV_2", since + 5),  # at its end: out
        _route(seqs[3], "EV_3", since + 3),
    )
    found = await Replayer(jetstream, reader).routes(HOST, since, since + 5)
    assert [r.event_id for r in found] == ["EV_1", "EV_3"]
    done = await Replayer(jetstream, reader).replay(HOST, since, since + 5)
    assert done == Replayed(replayed=2)
    assert [body for body, _ in await _sent(jetstream)] == [b"body 1", b"body 3"]
    # A window after every record stored finds nothing, and sends nothing.
    assert await Replayer(jetstream, reader).replay(HOST, time.time() + 60, None) == Replayed()


async def test_a_replay_sends_each_event_once_from_its_first_matched_route(
    jetstream: JetStreamContext, reader: StreamReader
) -> None:
    since = time.time() - 60
    seq = await _event(jetstream, "EV_1", b"one")
    # Read past, not stopped at: what is not a record, and a record whose host only
    # shares the subject token.
    await jetstream.publish("sip.route.pbx_a_example_com.EV_6.matched", b"not a record")
    await _routed(
        jetstream,
        _route(seq, "EV_8", since + 1, host=HOST.upper()),
        _route(seq, "EV_1", since + 1, endpoints=("crm",)),
        _route(seq, "EV_1", since + 2, endpoints=("default", "crm")),  # a redelivery's
        _route(seq, "EV_9", since + 1, host="other.example.com"),
        _route(seq, "EV_7", since + 1, outcome=RouteOutcome.FILTERED),
    )
    assert await Replayer(jetstream, reader).replay(HOST, since, None) == Replayed(replayed=1)
    [(_, headers)] = await _sent(jetstream)
    assert headers[Header.ENDPOINT] == "crm"


async def test_gone_or_overwritten_bodies_count_expired_and_the_rest_still_go(
    jetstream: JetStreamContext, reader: StreamReader
) -> None:
    since = time.time() - 60
    kept = await _event(jetstream, "EV_2", b"two")
    await _routed(
        jetstream,
        _route(0, "EV_0", since + 1),  # from before replay
        _route(kept, "EV_1", since + 2),  # that sequence holds another event now
        _route(kept, "EV_2", since + 3),
    )
    done = await Replayer(jetstream, reader).replay(HOST, since, None)
    assert done == Replayed(replayed=1, expired=2)
    assert [body for body, _ in await _sent(jetstream)] == [b"two"]


async def test_a_replay_past_its_limit_says_where_to_go_on(
    jetstream: JetStreamContext, reader: StreamReader
) -> None:
    assert REPLAY_LIMIT == 500  # the design's figure for one call
    since = time.time() - 60
    seqs = [await _event(jetstream, f"EV_{n}", f"body {n}".encode()) for n in range(3)]
    await _routed(jetstream, *(_route(s, f"EV_{n}", since + n) for n, s in enumerate(seqs)))
    replayer = Replayer(jetstream, reader, limit=2)
    done = await replayer.replay(HOST, since, None)
    assert done == Replayed(replayed=2, truncated=True, next_since=since + 2)
    rest = await replayer.replay(HOST, since + 2, None)  # where it said to go on
    assert rest == Replayed(replayed=1)
    assert [body for body, _ in await _sent(jetstream)] == [b"body 0", b"body 1", b"body 2"]


async def test_resend_sends_one_event_to_its_endpoints_or_to_the_one_asked(
    jetstream: JetStreamContext, reader: StreamReader
) -> None:
    seq = await _event(jetstream, "EV_1", b"one", **{Header.EVENT: "room_finished"})
    route = _route(seq, endpoints=("default", "crm"))
    replayer = Replayer(jetstream, reader)
    assert await replayer.resend("EV_1", route) == ("default", "crm")
    assert await replayer.resend("EV_1", route, "crm") == ("crm",)
    with pytest.raises(NotItsEndpoint) as other:
        await replayer.resend("EV_1", route, "billing")
    assert str(other.value) == "event EV_1 went to default, crm, not to endpoint billing"
    # Why an event cannot be resent, whole, as the API's answer and the CLI say it.
    filtered = _route(seq, outcome=RouteOutcome.FILTERED)
    for unrouted, why in ((None, "no routing record"), (filtered, "route filtered")):
        with pytest.raises(NotRouted) as refused:
            await replayer.resend("EV_1", unrouted)
        assert str(refused.value) == f"event EV_1 went to no hook ({why})"
    copies = await _sent(jetstream)
    assert [h.get(Header.ENDPOINT) for _, h in copies] == [None, "crm", "crm"]
    # The stored headers win over the record's (they are what the hook saw first).
    assert {h[Header.EVENT] for _, h in copies} == {"room_finished"}
    generation = int(copies[0][1][Header.REDRIVE])
    assert abs(generation - time.time() * 1000) < 60_000
    # Stored without its own event header (an older ingress): the record's.
    bare = await jetstream.publish(
        contracts.lk_event_subject("x", "sip-1"), b"", headers={Header.EVENT_ID: "EV_5"}
    )
    assert await replayer.resend("EV_5", _route(bare.seq, "EV_5", room="sip-5")) == ("default",)
    body, headers = (await _sent(jetstream))[-1]
    assert (body, headers[Header.EVENT], headers[Header.ROOM]) == (
        b"", "participant_joined", "sip-5",
    )  # fmt: skip
