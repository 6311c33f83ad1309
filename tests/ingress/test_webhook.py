"""POST /livekit/webhook against a real nats-server: every answer the design lists."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from nats.js import JetStreamContext

from sayna_sip.common import topology
from sayna_sip.common.contracts import Header
from tests.fixtures.livekit import API_KEY, API_SECRET, sign_webhook, signed_webhook, sip_event
from tests.fixtures.nats import NatsServer
from tests.ingress.conftest import Client, ingress_config, serve, serve_http

URL = "/livekit/webhook"


async def stored(js: JetStreamContext) -> list[Any]:
    """Every message in LK_EVENTS, oldest first."""
    info = await js.stream_info(topology.LK_EVENTS)
    return [await js.get_msg(topology.LK_EVENTS, seq=s) for s in range(1, info.state.messages + 1)]


@pytest.mark.parametrize("bearer", [False, True], ids=["raw-jwt", "bearer"])
async def test_signed_webhook_is_stored_byte_for_byte(
    ingress: Client, jetstream: JetStreamContext, bearer: bool
) -> None:
    body, headers = signed_webhook(sip_event(event_id="EV_1", room="sip-room-1"), bearer=bearer)
    r = await ingress.post(URL, content=body, headers=headers)
    assert (r.status_code, r.json()) == (200, {"status": "received"})
    [msg] = await stored(jetstream)
    assert msg.data == body
    # partitioned by room (a literal: the partition of a room is a wire contract)
    assert msg.subject == "lk.events.participant_joined.p11"
    assert msg.headers is not None
    assert msg.headers[Header.MSG_ID] == msg.headers[Header.EVENT_ID] == "EV_1"
    assert msg.headers[Header.EVENT] == "participant_joined"
    assert msg.headers[Header.ROOM] == "sip-room-1"
    assert float(msg.headers[Header.RECEIVED_AT]) > 1.7e9


async def test_same_event_twice_is_stored_once(
    ingress: Client, jetstream: JetStreamContext
) -> None:
    body, headers = signed_webhook(sip_event(event_id="EV_dup"))
    for _ in range(2):
        assert (await ingress.post(URL, content=body, headers=headers)).status_code == 200
    # A retry re-signs the same body: still one message.
    again = {**headers, "Authorization": sign_webhook(body)}
    assert (await ingress.post(URL, content=body, headers=again)).status_code == 200
    assert len(await stored(jetstream)) == 1
    metrics = (await ingress.get("/metrics")).text
    assert 'ingress_webhooks_total{event="participant_joined",outcome="duplicate"} 2.0' in metrics


async def test_event_without_id_gets_a_body_hash_id(
    ingress: Client, jetstream: JetStreamContext
) -> None:
    event = {"event": "room_finished", "room": {"name": "sip-x"}}
    body, headers = signed_webhook(event)
    for _ in range(2):
        assert (await ingress.post(URL, content=body, headers=headers)).status_code == 200
    [msg] = await stored(jetstream)
    assert msg.headers[Header.MSG_ID] == "sha256:" + hashlib.sha256(body).hexdigest()
    assert msg.headers[Header.EVENT_ID] == msg.headers[Header.MSG_ID]


async def test_event_without_room_has_an_empty_room_header(
    ingress: Client, jetstream: JetStreamContext
) -> None:
    body, headers = signed_webhook({"event": "egress_started", "id": "EV_eg"})
    assert (await ingress.post(URL, content=body, headers=headers)).status_code == 200
    [msg] = await stored(jetstream)
    assert msg.subject == "lk.events.egress_started.p00"
    assert msg.headers.get(Header.ROOM, "") == ""


def _tampered() -> tuple[bytes, dict[str, str]]:
    body, headers = signed_webhook(sip_event())
    return body.replace(b"sip-call-1", b"sip-call-2"), headers


def _signed_with(
    api_key: str = API_KEY, api_secret: str = API_SECRET
) -> tuple[bytes, dict[str, str]]:
    return signed_webhook(sip_event(), api_key=api_key, api_secret=api_secret)


def _expired() -> tuple[bytes, dict[str, str]]:
    body = json.dumps(sip_event()).encode()
    return body, {"Authorization": sign_webhook(body, ttl_s=-60)}


def _no_sha256() -> tuple[bytes, dict[str, str]]:
    from livekit import api

    body = json.dumps(sip_event()).encode()
    return body, {"Authorization": api.AccessToken(API_KEY, API_SECRET).to_jwt()}


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (_tampered, "hash_mismatch"),
        (lambda: _signed_with(api_secret="another-secret-0123456789abcdef01234"), "invalid_token"),
        (lambda: _signed_with(api_key="APIsomeoneelse"), "invalid_token"),
        (_expired, "invalid_token"),
        (_no_sha256, "invalid_token"),
        (lambda: (signed_webhook(sip_event())[0], {}), "missing_token"),
        (lambda: (signed_webhook(sip_event())[0], {"Authorization": "Bearer "}), "missing_token"),
        (lambda: (b"{}", {"Authorization": "Bearer not.a.jwt"}), "invalid_token"),
    ],
    ids=[
        "tampered-body",
        "wrong-secret",
        "wrong-issuer",
        "expired",
        "no-sha256-claim",
        "no-header",
        "empty-bearer",
        "garbage-token",
    ],
)
async def test_bad_signatures_are_401_and_store_nothing(
    ingress: Client, jetstream: JetStreamContext, make: Any, code: str
) -> None:
    body, headers = make()
    r = await ingress.post(URL, content=body, headers=headers)
    assert r.status_code == 401
    assert r.json()["error"] == code and r.json()["message"]
    assert await stored(jetstream) == []


@pytest.mark.parametrize(
    "body", [b"not json", b"[1,2]", b'"text"', b'{"event": 5}', b'{"a":1'], ids=repr
)
async def test_signed_body_that_is_not_a_json_object_is_400(
    ingress: Client, jetstream: JetStreamContext, body: bytes
) -> None:
    r = await ingress.post(URL, content=body, headers={"Authorization": sign_webhook(body)})
    assert (r.status_code, r.json()["error"]) == (400, "invalid_json")
    assert await stored(jetstream) == []


async def test_body_over_the_limit_is_413(
    nats_server: NatsServer, jetstream: JetStreamContext
) -> None:
    config = ingress_config(nats_server.url, WEBHOOK_MAX_BODY_BYTES="2048")
    event = sip_event(extra_attributes={"pad": "x" * 4000})
    body, headers = signed_webhook(event)

    async def chunks() -> Any:  # no Content-Length: the limit applies to bytes streamed
        for i in range(0, len(body), 512):
            yield body[i : i + 512]

    async with serve_http(config) as client:
        announced = await client.post(URL, content=body, headers=headers)
        streamed = await client.post(URL, content=chunks(), headers=headers)
        small_body, small_headers = signed_webhook(sip_event())
        small = await client.post(URL, content=small_body, headers=small_headers)
    for r in (announced, streamed):
        assert (r.status_code, r.json()["error"]) == (413, "body_too_large")
    assert small.status_code == 200
    assert [m.data for m in await stored(jetstream)] == [small_body]


async def test_missing_livekit_credentials_is_503(
    nats_server: NatsServer, jetstream: JetStreamContext
) -> None:
    config = ingress_config(nats_server.url, LIVEKIT_API_SECRET=None)
    body, headers = signed_webhook(sip_event())
    async with serve(config) as client:
        r = await client.post(URL, content=body, headers=headers)
    assert (r.status_code, r.json()) == (503, {
        "error": "livekit_not_configured",
        "message": "LiveKit credentials are not configured (LIVEKIT_API_KEY, LIVEKIT_API_SECRET)",
    })  # fmt: skip


async def test_sip_disabled_verifies_answers_and_publishes_nothing(
    nats_server: NatsServer, jetstream: JetStreamContext
) -> None:
    config = ingress_config(
        nats_server.url, SIP_ROOM_PREFIX=None, SIP_ALLOWED_ADDRESSES=None, SIP_HOOKS_JSON=None
    )
    assert config.sip is None
    body, headers = signed_webhook(sip_event())
    async with serve(config) as client:
        ok = await client.post(URL, content=body, headers=headers)
        bad = await client.post(URL, content=body + b" ", headers=headers)
        metrics = (await client.get("/metrics")).text
    assert (ok.status_code, ok.json()) == (200, {"status": "received"})
    assert 'webhooks_total{event="participant_joined",outcome="ignored"} 1.0' in metrics
    assert bad.status_code == 401
    assert await stored(jetstream) == []


async def test_streamed_body_without_content_length_is_stored_whole(
    nats_server: NatsServer, jetstream: JetStreamContext
) -> None:
    body, headers = signed_webhook(sip_event(event_id="EV_chunked"))

    async def chunks() -> Any:  # chunked transfer: the body arrives in several messages
        for i in range(0, len(body), 100):
            yield body[i : i + 100]

    async with serve_http(ingress_config(nats_server.url)) as client:
        r = await client.post(URL, content=chunks(), headers=headers)
    assert (r.status_code, r.headers["content-type"], r.content) == (
        200,
        "application/json",
        b'{"status":"received"}',
    )
    assert [m.data for m in await stored(jetstream)] == [body]


async def test_refused_or_unrouted_publish_is_503(
    nats_server: NatsServer, jetstream: JetStreamContext
) -> None:
    # A 1 s budget: the unrouted case is retried until the budget is spent (10 s by default).
    async with serve(ingress_config(nats_server.url), publish_budget=1.0) as ingress:
        await _refused_then_unrouted(ingress, jetstream)


async def _refused_then_unrouted(ingress: Client, jetstream: JetStreamContext) -> None:
    # JetStream refuses the message (an error PubAck): LiveKit must retry.
    info = await jetstream.stream_info(topology.LK_EVENTS)
    info.config.max_msg_size = 64
    await jetstream.update_stream(info.config)
    body, headers = signed_webhook(sip_event(event_id="EV_refused"))
    r = await ingress.post(URL, content=body, headers=headers)
    assert (r.status_code, r.json()["error"]) == (503, "nats_unavailable")
    assert r.json()["message"].startswith("could not store the event in NATS")
    assert await stored(jetstream) == []  # nothing acknowledged that was not stored
    # No stream takes the subject at all (no responders): 503 too, not a timeout.
    await jetstream.delete_stream(topology.LK_EVENTS)
    r = await ingress.post(URL, content=body, headers=headers)
    assert (r.status_code, r.json()["error"]) == (503, "nats_unavailable")
    assert r.json()["message"].startswith("could not store the event in NATS")
