"""The harness itself: each fixture does what later tests rely on."""

from __future__ import annotations

import ssl

import httpx
import nats
import pytest
from livekit import api
from livekit.protocol import sip as sip_pb
from nats.aio.client import Client
from nats.js import JetStreamContext

from sayna_sip.common import topology
from tests.fixtures.https_sink import HttpsSink, Reply
from tests.fixtures.livekit import API_KEY, API_SECRET, LiveKitTwirp, signed_webhook, sip_event
from tests.fixtures.nats import NatsServer


async def test_nats_server_keeps_jetstream_data_across_restart(nats_server: NatsServer) -> None:
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    await js.add_stream(name="T", subjects=["t.>"])
    await js.publish("t.a", b"kept")
    await nc.close()
    port = nats_server.port

    nats_server.restart()

    assert nats_server.port == port
    nc = await nats.connect(nats_server.url)
    msg = await nc.jetstream().get_msg("T", seq=1)
    assert msg.data == b"kept"
    await nc.close()


async def test_jetstream_fixture_has_the_whole_topology(jetstream: JetStreamContext) -> None:
    await topology.check_topology(jetstream)
    info = await jetstream.stream_info(topology.SIP_DELIVERIES)
    assert info.config.retention == "workqueue"


async def test_check_topology_names_what_is_missing(nats_client: Client) -> None:
    with pytest.raises(topology.TopologyError, match=r"stream LK_EVENTS.*KV bucket sip_rooms"):
        await topology.check_topology(nats_client.jetstream())


async def test_https_sink_records_bytes_and_follows_its_program(https_sink: HttpsSink) -> None:
    https_sink.program("/h", Reply(500), Reply(429, headers={"Retry-After": "7"}))
    ctx = ssl.create_default_context(cafile=str(https_sink.ca_path))
    async with httpx.AsyncClient(verify=ctx) as client:
        statuses = []
        for _ in range(3):
            r = await client.post(https_sink.url("/h"), content=b'{"a": 1}', headers={"X-T": "v"})
            statuses.append((r.status_code, r.headers.get("retry-after")))
    assert statuses == [(500, None), (429, "7"), (200, None)]
    got = await https_sink.wait_for(3, "/h")
    assert got[0].body == b'{"a": 1}' and got[0].headers["x-t"] == "v"


async def test_https_sink_hangs_until_released(https_sink: HttpsSink) -> None:
    https_sink.program("/hole", Reply(hang=True))
    ctx = ssl.create_default_context(cafile=str(https_sink.ca_path))
    async with httpx.AsyncClient(verify=ctx, timeout=0.3) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.post(https_sink.url("/hole"), content=b"x")
    assert len(https_sink.received("/hole")) == 1


async def test_livekit_server_speaks_twirp_and_checks_auth(livekit_server: LiveKitTwirp) -> None:
    lk = api.LiveKitAPI(livekit_server.url, API_KEY, API_SECRET)
    try:
        trunk = await lk.sip.create_inbound_trunk(
            sip_pb.CreateSIPInboundTrunkRequest(
                trunk=sip_pb.SIPInboundTrunkInfo(name="t", allowed_addresses=["10.0.0.1"])
            )
        )
        listed = await lk.sip.list_inbound_trunk(sip_pb.ListSIPInboundTrunkRequest())
    finally:
        await lk.aclose()
    assert [t.sip_trunk_id for t in listed.items] == [trunk.sip_trunk_id]
    assert livekit_server.methods() == ["CreateSIPInboundTrunk", "ListSIPInboundTrunk"]

    wrong = api.LiveKitAPI(livekit_server.url, API_KEY, "another-secret-0123456789abcdef0123456")
    try:
        with pytest.raises(api.TwirpError) as err:
            await wrong.sip.list_inbound_trunk(sip_pb.ListSIPInboundTrunkRequest())
    finally:
        await wrong.aclose()
    assert err.value.status == 401


def test_signed_webhook_verifies_with_livekits_receiver() -> None:
    body, headers = signed_webhook(sip_event(event_id="EV_1"))
    receiver = api.WebhookReceiver(api.TokenVerifier(API_KEY, API_SECRET))
    event = receiver.receive(body.decode(), headers["Authorization"])
    assert event.id == "EV_1"
    assert event.participant.attributes["sip.h.to"] == "sip:+15551234567@example.com"
    with pytest.raises(Exception, match="hash mismatch"):
        receiver.receive(body.decode() + " ", headers["Authorization"])
