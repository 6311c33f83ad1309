"""Input that once closed the ingress's NATS connection for good (nats-server drops a
client over max_payload or a too-long control line, and nats-py does not reconnect):
each is refused before publishing, the next webhook is stored, and a connection closed
anyway fails /healthz so that it gets restarted."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator

import pytest
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext

from sayna_sip.common import hook_secrets, topology
from sayna_sip.common.hook import Hook, HookEntry
from sayna_sip.common.secretbox import SecretBox, generate_key
from sayna_sip.ingress.errors import PayloadTooLarge
from sayna_sip.ingress.hooks import HookStore
from sayna_sip.ingress.state import Ingress
from tests.fixtures.livekit import API_KEY, API_SECRET, sign_webhook, signed_webhook, sip_event
from tests.fixtures.nats import NatsServer
from tests.ingress.conftest import Client, ingress_config, serve, wait_until

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


def secret_filling(max_payload: int, box: SecretBox) -> str:
    """A plain secret whose hook record is 20 bytes under `max_payload`: stored by a put,
    over the limit once nats-py's KV write adds its expected-sequence header."""
    url = "https://a.example.com/h"

    def record(secret: str) -> int:
        hook = Hook.new(HOST, url, "runtime")
        (default,) = hook.endpoint_list()
        sealed = hook_secrets.with_secret(default, HOST, box, secret)
        return len(hook.with_endpoint(sealed).encode())

    size = max_payload  # base64 grows by 4/3: step down to the size that fits exactly
    while record("s" * size) > max_payload - 20:
        size -= max(1, (record("s" * size) - (max_payload - 20)) * 3 // 4)
    return "s" * size


HOST = "a.example.com"


@pytest.fixture
async def keyed(nats_server: NatsServer, jetstream: JetStreamContext) -> AsyncIterator[Client]:
    """An ingress with SIP_SECRETS_KEY set, so hooks may carry their own secrets."""
    async with serve(ingress_config(nats_server.url, SIP_SECRETS_KEY=generate_key())) as client:
        yield client


async def test_a_huge_secret_is_400_and_webhooks_are_still_stored(
    keyed: Client, jetstream: JetStreamContext
) -> None:
    state: Ingress = keyed.app.state.ingress
    assert state.nc is not None and state.config.sip is not None
    assert state.config.sip.secret_box is not None
    secret = secret_filling(state.nc.max_payload, state.config.sip.secret_box)
    hooks = {"hooks": [{"host": HOST, "url": "https://a.example.com/h", "secret": secret}]}

    r = await keyed.post("/sip/hooks", json=hooks)

    assert (r.status_code, r.json()["error"]) == (400, "invalid_secret")
    assert "secret" in r.json()["message"] and len(r.text) < 1000
    await still_stores(keyed, jetstream, 1)


@pytest.mark.parametrize(
    ("secret", "status"),
    [
        ("whsec_" + base64.b64encode(b"k" * 23).decode(), 400),
        ("whsec_" + base64.b64encode(b"k" * 24).decode(), 200),
        ("whsec_" + base64.b64encode(b"k" * 64).decode(), 200),
        ("whsec_" + base64.b64encode(b"k" * 65).decode(), 400),
        ("p" * 256, 200),
        ("p" * 257, 400),
        ("é" * 129, 400),  # 258 bytes of UTF-8
    ],
    ids=["whsec23", "whsec24", "whsec64", "whsec65", "plain256", "plain257", "utf8-258"],
)
async def test_secret_sizes(keyed: Client, secret: str, status: int) -> None:
    hooks = {"hooks": [{"host": HOST, "url": "https://a.example.com/h", "secret": secret}]}
    assert (await keyed.post("/sip/hooks", json=hooks)).status_code == status
    if status == 200:
        rotate = await keyed.post(f"/sip/hooks/{HOST}/rotate-secret", json={"secret": secret})
        assert rotate.status_code == 200
    else:
        r = await keyed.post("/sip/hooks", json={"hooks": [{**hooks["hooks"][0], "secret": None}]})
        assert r.status_code == 200
        rotate = await keyed.post(f"/sip/hooks/{HOST}/rotate-secret", json={"secret": secret})
        assert (rotate.status_code, rotate.json()["error"]) == (400, "invalid_secret")


async def test_a_record_over_max_payload_is_413_and_the_connection_stays(
    nats_client: NatsClient, jetstream: JetStreamContext
) -> None:
    # Whatever might grow a record past the caps: HookStore refuses it before NATS does.
    store = HookStore(await jetstream.key_value(topology.HOOKS_BUCKET))
    await store.upsert([HookEntry(host=HOST, url="https://a.example.com/h")])
    # 20 bytes under max_payload: nats-py lets it through, the KV header takes it over.
    base = len((await store.get(HOST)).changed(disabled_reason="").encode())
    reason = "x" * (nats_client.max_payload - 20 - base)

    with pytest.raises(PayloadTooLarge) as raised:
        await store.change(HOST, lambda r: r.changed(disabled_reason=reason))

    assert raised.value.code == "record_too_large"
    assert nats_client.is_connected
    assert (await store.get(HOST)).disabled_reason is None  # nothing written
