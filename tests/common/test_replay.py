"""Replay of one route record against a real JetStream: what cannot be read back is
"expired" (BodyGone for a resend), never a crash (a record without a sequence comes
from before replay)."""

from __future__ import annotations

import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext

from sayna_sip.common import topology
from sayna_sip.common.records import RouteOutcome, RouteRecord
from sayna_sip.common.replay import BodyGone, Replayer
from sayna_sip.common.streamscan import StreamReader


def _route(lk_seq: int) -> RouteRecord:
    return RouteRecord(
        event_id="EV_1", event="participant_joined", room="sip-1", outcome=RouteOutcome.MATCHED,
        at=1.0, sip_host="a.example.com", host="a.example.com", lk_seq=lk_seq,
    )  # fmt: skip


async def test_a_record_without_its_lk_events_sequence_counts_as_expired(
    nats_client: Client, jetstream: JetStreamContext
) -> None:
    reader = StreamReader(nats_client, topology.SIP_ATTEMPTS)
    await reader.start()
    try:
        replayer = Replayer(jetstream, reader)
        for seq in (0, 10**6):  # 0 was a 500 (get_msg seq=0); 10**6: past the stream's end
            with pytest.raises(BodyGone, match="past LK_EVENTS_MAX_AGE"):
                await replayer.resend("EV_1", _route(seq))
    finally:
        await reader.close()
    info = await jetstream.stream_info(topology.SIP_DELIVERIES)
    assert info.state.messages == 0  # nothing sent for either
