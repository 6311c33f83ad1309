"""The router rides out a nats-server restart: consuming resumes, the hook cache follows."""

from __future__ import annotations

from nats.aio.client import Client
from nats.js import JetStreamContext

from sayna_sip.common.contracts import Header
from sayna_sip.router.app import RouterService
from tests.fixtures.livekit import sip_event
from tests.fixtures.nats import NatsServer
from tests.router.helpers import headers_of, publish_event, put_hook, take_deliveries, until


async def test_nats_restart_then_new_hook_routes(
    jetstream: JetStreamContext,
    nats_client: Client,
    nats_server: NatsServer,
    router: RouterService,
) -> None:
    await put_hook(jetstream, "before.example.com")
    await publish_event(jetstream, sip_event(to="sip:a@before.example.com", event_id="EV_b"))
    await take_deliveries(jetstream, 1)

    nats_server.restart()
    await until(
        lambda: (
            router.hooks is not None and router.hooks.generation == 2 and nats_client.is_connected
        )
    )

    await put_hook(jetstream, "after.example.com")
    await publish_event(jetstream, sip_event(to="sip:a@after.example.com", event_id="EV_a"))
    [msg] = await take_deliveries(jetstream, 1, timeout=10)
    assert headers_of(msg)[Header.HOOK] == "after.example.com"
