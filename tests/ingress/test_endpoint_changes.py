"""An endpoint's changes through the API (endpoints.py), on a real nats-server without
the router or a forwarder: what each answers, stores and logs, what the operators are
told, and a test send's answers when no forwarder, a slow one or an odd one replies."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from nats.aio.client import Client as Nats
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from sayna_sip.common import contracts, topology
from sayna_sip.common.hook import Hook, parse_stamp
from sayna_sip.common.secretbox import fingerprint
from tests.fixtures.nats import NatsServer
from tests.ingress.conftest import Client, ingress_config, serve, serve_http
from tests.ingress.tenants import SECRETS_KEY

HOST = "pbx.tenant-a.example"
URL = f"https://{HOST}/hook"
ENDPOINTS = f"/sip/hooks/{HOST}/endpoints"
NEW_SECRET = "crm-own-secret-0123456789abcdef"


@pytest.fixture
async def api(nats_server: NatsServer, jetstream: JetStreamContext) -> AsyncIterator[Client]:
    """The ingress with one runtime hook (its `default` endpoint) and room for 2 endpoints."""
    config = ingress_config(nats_server.url, SIP_SECRETS_KEY=SECRETS_KEY, SIP_MAX_ENDPOINTS="2")
    async with serve(config) as client:
        r = await client.post("/sip/hooks", json={"hooks": [{"host": HOST, "url": URL}]})
        assert r.status_code == 200, r.text
        yield client


def _lines(caplog: pytest.LogCaptureFixture, event: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "sayna_sip.ingress" and r.getMessage().startswith(f"event={event} ")
    ]


async def _stored(js: JetStreamContext) -> tuple[Hook, int]:
    kv = await js.key_value(topology.HOOKS_BUCKET)
    entry = await kv.get(Hook.new(HOST, URL, "runtime").key)
    assert entry.value is not None and entry.revision is not None
    return Hook.decode(entry.value), entry.revision


async def test_an_added_endpoint_is_logged_and_a_taken_id_or_one_too_many_is_400(
    api: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sayna_sip.ingress")
    second = {"id": "crm", "url": f"https://{HOST}/crm"}
    assert (await api.post(ENDPOINTS, json=second)).status_code == 201
    assert _lines(caplog, "endpoint_added") == [
        f"event=endpoint_added host={HOST} endpoint=crm url=https://{HOST}/crm"
    ]
    again = await api.post(ENDPOINTS, json=second)
    assert (again.status_code, again.json()) == (400, {
        "error": "duplicate_endpoint",
        "message": f"hook '{HOST}' has an endpoint 'crm' already",
    })  # fmt: skip
    third = await api.post(ENDPOINTS, json={"id": "third", "url": f"https://{HOST}/3"})
    assert (third.status_code, third.json()["error"]) == (400, "too_many_endpoints")
    assert "would have 3 endpoints" in third.json()["message"]


async def test_changes_to_an_endpoint_name_it_in_the_log_and_404_when_it_is_not_there(
    api: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sayna_sip.ingress")
    await api.post(ENDPOINTS, json={"id": "crm", "url": f"https://{HOST}/crm"})
    r = await api.patch(f"{ENDPOINTS}/crm", json={"events": ["room_finished"]})
    assert r.status_code == 200 and r.json()["events"] == ["room_finished"]
    assert r.json()["url"] == f"https://{HOST}/crm"  # the fields not sent stay
    assert _lines(caplog, "endpoint_changed") == [
        f"event=endpoint_changed host={HOST} endpoint=crm"
    ]
    r = await api.patch(f"{ENDPOINTS}/crm", json={"secret": NEW_SECRET})  # it signs from now on
    assert [s["fingerprint"] for s in r.json()["secrets"]] == [fingerprint(NEW_SECRET)]
    r = await api.request("DELETE", f"{ENDPOINTS}/crm", json={})
    assert r.status_code == 200 and [e["id"] for e in r.json()["endpoints"]] == ["default"]
    assert _lines(caplog, "endpoint_removed") == [
        f"event=endpoint_removed host={HOST} endpoint=crm"
    ]
    missing = {"error": "endpoint_not_found", "message": f"hook '{HOST}' has no endpoint 'crm'"}
    for method, path in (("PATCH", ""), ("DELETE", ""), ("GET", ""), ("POST", "/disable")):
        body = {"events": ["room_finished"]} if method == "PATCH" else {}
        r = await api.request(method, f"{ENDPOINTS}/crm{path}", json=body)
        assert (r.status_code, r.json()) == (404, missing), (method, path)


async def test_the_default_endpoint_is_removed_only_with_its_host(api: Client) -> None:
    r = await api.request("DELETE", f"{ENDPOINTS}/default", json={})
    how = f'DELETE /sip/hooks {{"hosts":["{HOST}"]}}'
    assert (r.status_code, r.json()) == (400, {
        "error": "default_endpoint",
        "message": f"the default endpoint goes with its host: {how}",
    })  # fmt: skip


async def test_a_rotation_is_logged_by_fingerprint_with_the_overlap(
    api: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sayna_sip.ingress")
    r = await api.post(f"{ENDPOINTS}/default/rotate-secret", json={})
    assert r.status_code == 200, r.text
    fingerprint = r.json()["endpoint"]["secrets"][0]["fingerprint"]
    assert _lines(caplog, "hook_secret_rotated") == [
        f"event=hook_secret_rotated host={HOST} endpoint=default fingerprint={fingerprint} "
        "overlap_s=86400 expired_early=0"
    ]
    assert r.json()["secret"] not in caplog.text


async def test_an_operator_disable_says_so_is_logged_once_and_writes_once(
    api: Client, jetstream: JetStreamContext, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sayna_sip.ingress")
    r = await api.post(f"{ENDPOINTS}/default/disable", json={})
    shown = r.json()
    assert (shown["enabled"], shown["disabled_reason"]) == (False, "disabled by an operator")
    stored, revision = await _stored(jetstream)
    assert (stored.enabled, stored.disabled_reason) == (False, "disabled by an operator")
    again = await api.post(f"{ENDPOINTS}/default/disable", json={})
    assert again.status_code == 200 and again.json()["enabled"] is False
    assert (await _stored(jetstream))[1] == revision  # already so: nothing written
    assert _lines(caplog, "hook_disabled") == [
        f"event=hook_disabled host={HOST} endpoint=default by=operator"
    ]
    r = await api.post(f"{ENDPOINTS}/default/enable", json={})
    assert (r.json()["enabled"], r.json()["disabled_reason"]) == (True, None)
    assert _lines(caplog, "hook_enabled") == [
        f"event=hook_enabled host={HOST} endpoint=default by=operator"
    ]


async def test_the_enabled_notice_names_the_endpoint_its_url_and_when(
    api: Client, nats_client: Nats
) -> None:
    await api.post(f"{ENDPOINTS}/default/disable", json={})
    notices = await nats_client.subscribe(contracts.OPS_HOOK_ENABLED)
    await nats_client.flush()
    before = time.time()
    assert (await api.post(f"{ENDPOINTS}/default/enable", json={})).status_code == 200
    notice = json.loads((await notices.next_msg(timeout=5)).data)
    at = notice.pop("at")
    assert notice == {"event": "hook_enabled", "host": HOST, "url": URL, "endpoint": "default"}
    assert before - 1 <= parse_stamp(at) <= time.time() + 1


@pytest.fixture
async def http_api(
    nats_server: NatsServer, jetstream: JetStreamContext
) -> AsyncIterator[httpx.AsyncClient]:
    """Under uvicorn: a route's NATS request is flushed only on the app's own loop. A 0.1 s
    FORWARDER_TIMEOUT: a test send waits 2.1 s for a forwarder."""
    config = ingress_config(nats_server.url, FORWARDER_TIMEOUT="0.1")
    async with serve_http(config) as client:
        r = await client.post("/sip/hooks", json={"hooks": [{"host": HOST, "url": URL}]})
        assert r.status_code == 200, r.text
        yield client


async def _forwarder(nc: Nats, answer: bytes | None, asked: list[dict[str, str]]) -> None:
    """A stand-in forwarder on the test-send subject: notes each request, answers `answer`
    (or never)."""

    async def serve_one(msg: Msg) -> None:
        asked.append(json.loads(msg.data))
        if answer is not None:
            await msg.respond(answer)

    await nc.subscribe(contracts.HOOK_TEST_SUBJECT, cb=serve_one)
    await nc.flush()


async def test_a_test_send_asks_a_forwarder_and_answers_what_it_made(
    http_api: httpx.AsyncClient, nats_client: Nats, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sayna_sip.ingress")
    asked: list[dict[str, str]] = []
    made = {"status": 204, "duration_ms": 12.5, "error": None, "response_excerpt": ""}
    await _forwarder(nats_client, json.dumps(made).encode(), asked)
    started = time.monotonic()
    r = await http_api.post(f"/sip/hooks/{HOST}/test", json={})
    took_ms = (time.monotonic() - started) * 1000
    assert (r.status_code, r.json()) == (200, made)
    r = await http_api.post(f"{ENDPOINTS}/default/test", json={})
    assert (r.status_code, r.json()) == (200, made)
    assert asked == [{"host": HOST, "endpoint": "default"}] * 2
    (line, _) = _lines(caplog, "hook_tested")
    head = f"event=hook_tested host={HOST} status=204 duration_ms=12.5 wall_ms="
    assert line.startswith(head), line
    # the ingress's own wait for the forwarder, in ms: inside the whole call's time
    assert 0 < float(line.removeprefix(head)) <= took_ms, (line, took_ms)


async def test_a_test_send_nobody_answers_in_time_or_answered_oddly_is_503(
    http_api: httpx.AsyncClient, nats_client: Nats
) -> None:
    asked: list[dict[str, str]] = []
    await _forwarder(nats_client, None, asked)
    started = time.monotonic()
    r = await http_api.post(f"/sip/hooks/{HOST}/test", json={})
    assert 2.0 <= time.monotonic() - started < 3.0  # FORWARDER_TIMEOUT + 2 s
    assert (r.status_code, r.json()) == (503, {
        "error": "no_forwarder",
        "message": "no forwarder answered the test send within 2.1s",
    })  # fmt: skip
    odd: list[dict[str, str]] = []
    await _forwarder(nats_client, b"not json", odd)
    r = await http_api.post(f"{ENDPOINTS}/default/test", json={})
    assert (r.status_code, r.json()["error"]) == (503, "bad_reply")
    assert r.json()["message"].startswith("a forwarder answered the test send oddly: ")


async def test_a_test_send_without_any_forwarder_says_so(http_api: httpx.AsyncClient) -> None:
    r = await http_api.post(f"/sip/hooks/{HOST}/test", json={})
    assert (r.status_code, r.json()) == (503, {
        "error": "no_forwarder",
        "message": "no forwarder is running to make the test send",
    })  # fmt: skip
