"""NATS goes away: the ingress answers 503 (LiveKit retries), then 200 once NATS is back,
and nothing acknowledged before, during or after the outage is lost or duplicated."""

from __future__ import annotations

import asyncio

import httpx
from nats.aio.client import Client
from nats.js import JetStreamContext

from sayna_sip.common import topology
from tests.fixtures.livekit import signed_webhook, sip_event
from tests.fixtures.nats import NatsServer
from tests.ingress.conftest import ingress_config, serve_http, wait_until

URL = "/livekit/webhook"


async def test_nats_stopped_gives_503_then_200_after_restart_and_nothing_is_lost(
    nats_server: NatsServer, nats_client: Client, jetstream: JetStreamContext
) -> None:
    before = signed_webhook(sip_event(event_id="EV_before"))
    during = signed_webhook(sip_event(event_id="EV_during"))
    async with serve_http(
        ingress_config(nats_server.url), publish_timeout=1.0, publish_budget=1.0
    ) as client:
        assert (await client.post(URL, content=before[0], headers=before[1])).status_code == 200

        nats_server.stop()
        await wait_until(lambda: _is(client, "/readyz", 503))
        r = await client.post(URL, content=during[0], headers=during[1])
        assert (r.status_code, r.json()) == (503, {
            "error": "nats_unavailable", "message": "NATS is not connected; retry later"
        })  # fmt: skip
        hooks = await client.get("/sip/hooks")
        assert (hooks.status_code, hooks.json()["error"]) == (503, "nats_unavailable")

        nats_server.restart()
        await wait_until(lambda: _is(client, "/readyz", 200))
        # LiveKit retries the refused event; a duplicate of an earlier one is harmless.
        for body, headers in (during, before):
            assert (await client.post(URL, content=body, headers=headers)).status_code == 200

    await wait_until(lambda: _connected(nats_client))  # the test's own connection, too
    info = await jetstream.stream_info(topology.LK_EVENTS)
    assert info.state.messages == 2
    bodies = [(await jetstream.get_msg(topology.LK_EVENTS, seq=s)).data for s in (1, 2)]
    assert bodies == [before[0], during[0]]


async def _is(client: httpx.AsyncClient, path: str, status: int) -> bool:
    return (await client.get(path)).status_code == status


async def _connected(nc: Client) -> bool:
    return nc.is_connected


async def test_a_webhook_sent_while_nats_is_briefly_away_is_answered_200_once_it_is_back(
    nats_server: NatsServer, nats_client: Client, jetstream: JetStreamContext
) -> None:
    # A stream leader change or a server restart: shorter than the publish budget, so
    # the webhook waits for NATS instead of being refused (it was a 503 at once).
    before = signed_webhook(sip_event(event_id="EV_before"))
    during = signed_webhook(sip_event(event_id="EV_during"))
    async with serve_http(ingress_config(nats_server.url), publish_budget=8.0) as client:
        assert (await client.post(URL, content=before[0], headers=before[1])).status_code == 200
        nats_server.stop()
        # Within the budget the ingress would still store a webhook: it stays ready.
        assert (await client.get("/readyz")).status_code == 200
        answer = asyncio.create_task(client.post(URL, content=during[0], headers=during[1]))
        await asyncio.sleep(1.0)  # the outage itself: the answer must not come in it
        assert not answer.done()
        await asyncio.to_thread(nats_server.restart)
        r = await answer
        assert r.status_code == 200, r.text

    await wait_until(lambda: _connected(nats_client))
    info = await jetstream.stream_info(topology.LK_EVENTS)
    assert info.state.messages == 2
