"""Input that once closed the ingress's NATS connection for good (nats-server drops a
client over max_payload or a too-long control line, and nats-py does not reconnect):
each is refused before publishing, the next webhook is stored, and a connection closed
anyway fails /healthz so that it gets restarted."""

from __future__ import annotations

import json

import pytest
from nats.js import JetStreamContext

from sayna_sip.common import topology
from sayna_sip.ingress.state import Ingress
from tests.fixtures.livekit import API_KEY, API_SECRET, sign_webhook, signed_webhook, sip_event
from tests.ingress.conftest import Client, wait_until

URL = "/livekit/webhook"
ONE_MIB = 1 << 20


def signed(event: dict[str, object], size: int | None = None) -> tuple[bytes, dict[str, str]]:
    """`event` signed as LiveKit would, padded to exactly `size` bytes when given."""
    body = json.dumps(event, separators=(",", ":")).encode()
    if size is not None:
        event = {**event, "pad": ""}
        base = len(json.dumps(event, separators=(",", ":")).encode())
        event["pad"] = "x" * (size - base)
        body = json.dumps(event, separators=(",", ":")).encode()
        assert len(body) == size
    token = sign_webhook(body, API_KEY, API_SECRET)
    return body, {"Authorization": token, "Content-Type": "application/webhook+json"}


async def still_stores(ingress: Client, jetstream: JetStreamContext, stored: int) -> None:
    body, headers = signed_webhook(sip_event())
    r = await ingress.post(URL, content=body, headers=headers)
    assert r.status_code == 200, r.text
    assert (await jetstream.stream_info(topology.LK_EVENTS)).state.messages == stored


async def test_body_of_exactly_the_default_limit_is_413_not_a_dead_connection(
    ingress: Client, jetstream: JetStreamContext
) -> None:
    body, headers = signed(sip_event(), size=ONE_MIB)  # WEBHOOK_MAX_BODY_BYTES' default

    r = await ingress.post(URL, content=body, headers=headers)

    assert (r.status_code, r.json()["error"]) == (413, "body_too_large")
    await still_stores(ingress, jetstream, 1)


async def test_the_limit_follows_the_servers_max_payload(
    ingress: Client, jetstream: JetStreamContext
) -> None:
    # 1 MiB max_payload less 16 KiB kept for the router's and forwarder's headers.
    fits, _ = signed(sip_event(), size=ONE_MIB - 16 * 1024)
    over, _ = signed(sip_event(), size=ONE_MIB - 16 * 1024 + 1)
    for body, status in ((over, 413), (fits, 200)):
        headers = {"Authorization": sign_webhook(body, API_KEY, API_SECRET)}
        assert (await ingress.post(URL, content=body, headers=headers)).status_code == status
    await still_stores(ingress, jetstream, 2)


@pytest.mark.parametrize(
    "event",
    [
        sip_event(event="x" * 4100),  # into the subject: a control line over 4 KiB
        sip_event(event_id="E" * 5000),  # into Nats-Msg-Id and a header
        sip_event(room="sip-" + "r" * 300),  # into headers and the router's KV key
    ],
    ids=["event", "id", "room"],
)
async def test_values_too_long_for_subject_header_or_key_are_400(
    ingress: Client, jetstream: JetStreamContext, event: dict[str, object]
) -> None:
    body, headers = signed(event)

    r = await ingress.post(URL, content=body, headers=headers)

    assert (r.status_code, r.json()["error"]) == (400, "invalid_event")
    await still_stores(ingress, jetstream, 1)


async def test_megabyte_hook_url_is_400_and_the_api_keeps_working(ingress: Client) -> None:
    url = "https://a.example.com/" + "p" * 1_000_000

    r = await ingress.post("/sip/hooks", json={"hooks": [{"host": "a.example.com", "url": url}]})

    assert (r.status_code, r.json()["error"]) == (400, "invalid_body")
    ok = {"hooks": [{"host": "a.example.com", "url": "https://a.example.com/h"}]}
    assert (await ingress.post("/sip/hooks", json=ok)).status_code == 200


async def test_a_connection_closed_by_the_server_fails_liveness(
    ingress: Client, jetstream: JetStreamContext
) -> None:
    state: Ingress = ingress.app.state.ingress
    assert state.nc is not None
    assert (await ingress.get("/healthz")).status_code == 200
    # Whatever else might trip it: a header block over max_payload (nats-py checks only
    # the payload) makes nats-server close the connection for good.
    await state.nc.publish("x", b"", headers={"pad": "x" * (ONE_MIB + 1)})

    async def dead() -> bool:
        return (await ingress.get("/healthz")).status_code == 503

    await wait_until(dead)
    r = await ingress.get("/healthz")
    assert r.json()["error"] == "nats_closed"
