"""The whole pipeline in one process on real servers: provisioner, ingress, router and
forwarder on a real nats-server, LiveKit played by the Twirp stand-in, tenants by an
HTTPS sink. What a tenant sees is what is asserted."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from standardwebhooks import Webhook

from sayna_sip.common.config import ServerConfig
from sayna_sip.forwarder.app import Forwarder
from sayna_sip.ingress.app import create_app
from sayna_sip.provisioner.provision import provision
from sayna_sip.router.app import RouterService
from tests.fixtures.https_sink import HttpsSink
from tests.fixtures.livekit import API_KEY, API_SECRET, LiveKitTwirp, signed_webhook, sip_event
from tests.fixtures.nats import NatsServer

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture
async def pipeline(
    nats_server: NatsServer, https_sink: HttpsSink, livekit_server: LiveKitTwirp
) -> AsyncIterator[AsyncTestClient[Litestar]]:
    """Provisioned NATS + LiveKit, then ingress, router and one forwarder, all running."""
    hooks = [{"host": "*.tenant-a.example", "url": https_sink.url("/a")}]
    config = ServerConfig.from_env(
        {
            "NATS_URL": nats_server.url,
            "LIVEKIT_URL": livekit_server.url,
            "LIVEKIT_API_KEY": API_KEY,
            "LIVEKIT_API_SECRET": API_SECRET,
            "SIP_ROOM_PREFIX": "sip-",
            "SIP_ALLOWED_ADDRESSES": "203.0.113.0/24",
            "SIP_HOOKS_JSON": json.dumps(hooks),
            "SIP_HOOK_SECRET": SECRET,
            "SIP_HOOK_ALLOW_NETWORKS": "127.0.0.0/8",
            "SIP_HOOK_CA_BUNDLE": str(https_sink.ca_path),
            "ROUTER_PORT": "0",
            "FORWARDER_PORT": "0",
        }
    )
    await provision(config)
    assert [t.name for t in livekit_server.trunks.values()] == ["sayna-sip--trunk"]
    async with AsyncExitStack() as stack:
        router = RouterService(config)
        await router.start()
        stack.push_async_callback(router.stop)
        forwarder = await Forwarder.start(config)
        stack.push_async_callback(forwarder.stop)
        client = await stack.enter_async_context(AsyncTestClient(create_app(config), timeout=10))
        yield client


async def post(client: AsyncTestClient[Litestar], event: dict[str, Any]) -> bytes:
    body, headers = signed_webhook(event)
    response = await client.post("/livekit/webhook", content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "received"}
    return body


async def test_a_sip_call_reaches_its_tenant_signed_and_byte_for_byte(
    pipeline: AsyncTestClient[Litestar], https_sink: HttpsSink
) -> None:
    joined = sip_event(
        "participant_joined", room="sip-call-7", to="Bob <sip:+1555@pbx.tenant-a.example>;tag=1"
    )
    other = sip_event("participant_joined", room="conference-1", to="sip:x@pbx.tenant-a.example")
    finished = sip_event("room_finished", room="sip-call-7")
    sent = [await post(pipeline, joined), await post(pipeline, other)]
    await post(pipeline, joined)  # LiveKit's retry of the same event: stored once
    sent.append(await post(pipeline, finished))

    got = await https_sink.wait_for(2, "/a")
    assert [r.body for r in got] == [sent[0], sent[2]]  # the non-SIP room never arrives
    for request, event in zip(got, (joined, finished), strict=True):
        assert request.headers["webhook-id"] == event["id"]
        assert request.headers["content-type"] == "application/json"
        assert request.headers["user-agent"].startswith("sayna-sip/")
        Webhook(SECRET).verify(request.body, request.headers)


async def test_a_hook_added_through_the_api_receives_the_next_call(
    pipeline: AsyncTestClient[Litestar], https_sink: HttpsSink
) -> None:
    added = await pipeline.post(
        "/sip/hooks", json={"hooks": [{"host": "Carrier-B.example", "url": https_sink.url("/b")}]}
    )
    assert added.status_code == 200, added.text
    assert {h["host"]: h["source"] for h in added.json()["hooks"]} == {
        "*.tenant-a.example": "config",
        "carrier-b.example": "runtime",
    }
    body = await post(pipeline, sip_event(room="sip-call-8", to="sip:+1555@carrier-b.example:5060"))
    (request,) = await https_sink.wait_for(1, "/b")
    assert request.body == body
