"""The router never sends what nats-server would answer by closing the connection, and
a connection closed anyway fails /healthz."""

from __future__ import annotations

import json

import httpx
from nats.js import JetStreamContext

from sayna_sip.common import contracts
from sayna_sip.router.app import RouterService
from tests.fixtures.livekit import sip_event
from tests.router.helpers import (
    drained,
    events_counted,
    ingress_headers,
    publish_event,
    publish_raw,
    put_hook,
    take_deliveries,
    until,
)

ONE_MIB = 1 << 20


async def test_a_delivery_over_max_payload_is_terminated_not_sent(
    jetstream: JetStreamContext, router: RouterService
) -> None:
    await put_hook(jetstream, "example.com")
    event = sip_event(event_id="EV_big")
    event["pad"] = ""
    headers = ingress_headers(event)
    size = ONE_MIB - contracts.message_size(b"", headers) - 64  # fits LK_EVENTS, barely
    event["pad"] = "x" * (size - len(json.dumps(event, separators=(",", ":"))))
    body = json.dumps(event, separators=(",", ":")).encode()
    await publish_raw(
        jetstream, body, headers, contracts.lk_event_subject("participant_joined", "sip-1")
    )

    await until(lambda: events_counted(router, "malformed") == 1)

    await publish_event(jetstream, sip_event(event_id="EV_next"))
    [msg] = await take_deliveries(jetstream, 1)
    assert msg.headers is not None and msg.headers["Sayna-Event-Id"] == "EV_next"
    # Refused before its numbers were taken: the call's next copy is 1, no gap.
    assert msg.headers["Sayna-Call-Seq"] == "1"
    await drained(jetstream)


async def test_a_connection_closed_by_the_server_fails_liveness(router: RouterService) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{router.port}") as client:
        assert (await client.get("/healthz")).status_code == 200
        nc = router.broker.config.connection_state.connection
        await nc.publish("x", b"", headers={"pad": "x" * (ONE_MIB + 1)})
        await until(lambda: nc.is_closed)
        r = await client.get("/healthz")
        assert (r.status_code, r.json()["error"]) == (503, "nats_closed")
