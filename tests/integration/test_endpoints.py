"""Hooks as managed endpoints, on the whole pipeline (real NATS, real HTTPS sinks): per-hook
secrets verified by the standardwebhooks library, rotation with an overlap, event filters,
disable / dead letters / enable / redrive, automatic disabling with the operator's notice,
and test sends — each asserted on what a tenant or an operator sees."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from sayna_sip.common import contracts
from sayna_sip.common.config import ServerConfig
from sayna_sip.common.secretbox import generate_key
from sayna_sip.forwarder.app import Forwarder
from sayna_sip.forwarder.breaker import BreakerSettings
from sayna_sip.forwarder.tuning import Tuning
from sayna_sip.provisioner.provision import provision
from sayna_sip.router.app import RouterService
from tests.fixtures.https_sink import HttpsSink, Reply
from tests.fixtures.livekit import API_KEY, API_SECRET, LiveKitTwirp, signed_webhook, sip_event
from tests.fixtures.nats import NatsServer
from tests.ingress.conftest import serve_http

GLOBAL = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OWN = "tenant-a-own-secret-0123456789"
HOST = "pbx.tenant-a.example"
STATIC = "static.tenant-s.example"
pytestmark = pytest.mark.timeout(60)


@dataclass
class Pipeline:
    api: httpx.AsyncClient
    config: ServerConfig
    nats: NatsServer
    forwarder: Forwarder
    router: RouterService

    async def post_event(self, event: dict[str, Any]) -> bytes:
        body, headers = signed_webhook(event)
        r = await self.api.post("/livekit/webhook", content=body, headers=headers)
        assert r.status_code == 200, r.text
        return body

    async def set_hook(self, url: str, **fields: Any) -> dict[str, Any]:
        r = await self.api.post(
            "/sip/hooks", json={"hooks": [{"host": HOST, "url": url, **fields}]}
        )
        assert r.status_code == 200, r.text
        return next(h for h in r.json()["hooks"] if h["host"] == HOST)

    async def hook(self, host: str = HOST) -> dict[str, Any]:
        hooks = (await self.api.get("/sip/hooks")).json()["hooks"]
        return next(h for h in hooks if h["host"] == host)


def call(event: str = "participant_joined", room: str = "sip-call-1") -> dict[str, Any]:
    return sip_event(event, room=room, to=f"sip:+1555@{HOST}")


async def start_pipeline(
    nats_server: NatsServer,
    livekit: LiveKitTwirp,
    sink: HttpsSink,
    tuning: Tuning | None = None,
    **env: str,
) -> AsyncIterator[Pipeline]:
    static = [{"host": STATIC, "url": "https://10.9.9.9/static"}]  # blocked: for test sends
    config = ServerConfig.from_env(
        {
            "NATS_URL": nats_server.url,
            "LIVEKIT_URL": livekit.url,
            "LIVEKIT_API_KEY": API_KEY,
            "LIVEKIT_API_SECRET": API_SECRET,
            "SIP_ROOM_PREFIX": "sip-",
            "SIP_ALLOWED_ADDRESSES": "203.0.113.0/24",
            "SIP_HOOKS_JSON": json.dumps(static),
            "SIP_HOOK_SECRET": GLOBAL,
            "SIP_HOOK_ALLOW_NETWORKS": "127.0.0.0/8",
            "SIP_HOOK_CA_BUNDLE": str(sink.ca_path),
            "SIP_SECRETS_KEY": generate_key(),
            "ROUTER_PORT": "0",
            "FORWARDER_PORT": "0",
            **env,
        }
    )
    await provision(config)
    async with AsyncExitStack() as stack:
        router = RouterService(config)
        await router.start()
        stack.push_async_callback(router.stop)
        forwarder = await Forwarder.start(config, tuning)
        stack.push_async_callback(forwarder.stop)
        # A real uvicorn server: the in-process test client runs handlers on another loop,
        # where a NATS request made by the route would never be flushed.
        api = await stack.enter_async_context(serve_http(config))
        yield Pipeline(api, config, nats_server, forwarder, router)


@pytest.fixture
async def pipeline(
    nats_server: NatsServer, livekit_server: LiveKitTwirp, https_sink: HttpsSink
) -> AsyncIterator[Pipeline]:
    """Provisioned stack with SIP_SECRETS_KEY, a 2 s secret overlap and quick retries."""
    async for p in start_pipeline(
        nats_server,
        livekit_server,
        https_sink,
        SIP_SECRET_OVERLAP="2s",
        SIP_RETRY_SCHEDULE="0s,200ms,200ms",
    ):
        yield p


def verifies(secret: str, request: Any) -> bool:
    """The standardwebhooks library's verdict; a plain secret is used as its UTF-8 bytes."""
    if not secret.startswith("whsec_"):
        secret = "whsec_" + base64.b64encode(secret.encode()).decode()
    try:
        Webhook(secret).verify(request.body, request.headers)
        return True
    except WebhookVerificationError:
        return False


async def test_own_secret_rotation_and_overlap(
    pipeline: Pipeline, https_sink: HttpsSink, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    shown = await pipeline.set_hook(https_sink.url("/a"), secret=OWN)
    assert [s["expires_at"] for s in shown["secrets"]] == [None]

    await pipeline.post_event(call())
    (first,) = await https_sink.wait_for(1, "/a")
    assert verifies(OWN, first) and not verifies(GLOBAL, first)

    rotated = await pipeline.api.post(f"/sip/hooks/{HOST}/rotate-secret")
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["secret"]
    assert new.startswith("whsec_")
    fingerprints = rotated.json()["hook"]["secrets"]
    assert len(fingerprints) == 2 and fingerprints[0]["expires_at"] is None
    expires = fingerprints[1]["expires_at"]
    assert expires is not None

    await pipeline.post_event(call("participant_left"))
    second = (await https_sink.wait_for(2, "/a"))[1]
    assert verifies(new, second) and verifies(OWN, second)
    assert len(second.headers["webhook-signature"].split()) == 2

    # After the overlap the old secret is dropped, with no request from anyone.
    ends = time.mktime(time.strptime(expires, "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    await asyncio.sleep(max(0.0, ends - time.time()) + 0.2)
    assert len((await pipeline.hook())["secrets"]) == 1
    await pipeline.post_event(call("participant_left", room="sip-call-2"))
    third = (await https_sink.wait_for(3, "/a"))[2]
    assert verifies(new, third) and not verifies(OWN, third)
    assert len(third.headers["webhook-signature"].split()) == 1

    # The secrets appear nowhere: answers, logs at DEBUG, metrics, the NATS store.
    answers = (await pipeline.api.get("/sip/hooks")).text + json.dumps(shown)
    metrics = (await pipeline.api.get("/metrics")).text
    for secret in (OWN, new):
        raw = secret.removeprefix("whsec_")
        assert raw not in answers and raw not in metrics
        assert raw not in caplog.text
        assert not _store_holds(pipeline.nats.store, secret)


def _store_holds(store: Path, secret: str) -> bool:
    needles = [secret.encode(), base64.b64encode(secret.encode())]
    if secret.startswith("whsec_"):
        needles.append(base64.b64decode(secret.removeprefix("whsec_")))
    for path in store.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            if any(n in data for n in needles):
                return True
    return False


async def test_a_hook_that_had_only_the_global_secret_rotates_too(
    pipeline: Pipeline, https_sink: HttpsSink
) -> None:
    await pipeline.set_hook(https_sink.url("/g"))
    rotated = (await pipeline.api.post(f"/sip/hooks/{HOST}/rotate-secret", json={})).json()
    await pipeline.post_event(call())
    (request,) = await https_sink.wait_for(1, "/g")
    assert verifies(rotated["secret"], request) and verifies(GLOBAL, request)
    # X-Sayna-Signature is made with the newest secret.
    assert request.headers["x-sayna-signature"].startswith("v1=")
    import hashlib
    import hmac

    signed = f"v1:{request.headers['x-sayna-timestamp']}:{request.headers['webhook-id']}:"
    expected = hmac.new(rotated["secret"].encode(), signed.encode() + request.body, hashlib.sha256)
    assert request.headers["x-sayna-signature"] == "v1=" + expected.hexdigest()


async def test_event_filter_delivers_only_listed_events(
    pipeline: Pipeline, https_sink: HttpsSink
) -> None:
    await pipeline.set_hook(https_sink.url("/f"), events=["participant_left", "room_finished"])
    joined = call("participant_joined", room="sip-call-9")
    await pipeline.post_event(joined)  # filtered, but it still tells the router the room's host
    left = await pipeline.post_event(call("participant_left", room="sip-call-9"))
    finished = await pipeline.post_event(sip_event("room_finished", room="sip-call-9"))
    got = await https_sink.wait_for(2, "/f")
    assert [r.body for r in got] == [left, finished]
    metrics = pipeline.router.registry.get_sample_value(
        "sayna_sip_router_events_total", {"outcome": "filtered"}
    )
    assert metrics == 1.0


async def test_a_filtered_join_still_routes_the_rooms_finish_and_is_recorded_filtered(
    pipeline: Pipeline, https_sink: HttpsSink
) -> None:
    # The join is the only event naming the caller's host: filtered out, it must still
    # teach the router the room's host, or room_finished finds no host at all.
    await pipeline.set_hook(https_sink.url("/rf"), events=["room_finished"])
    joined = call("participant_joined", room="sip-call-7")
    await pipeline.post_event(joined)
    finished_event = sip_event("room_finished", room="sip-call-7")
    finished = await pipeline.post_event(finished_event)
    (got,) = await https_sink.wait_for(1, "/rf")
    assert got.body == finished

    async def route_of(event_id: str) -> dict[str, Any] | None:
        async with asyncio.timeout(10):
            while True:
                r = await pipeline.api.get(f"/sip/deliveries/{event_id}")
                if r.status_code == 200 and r.json()["route"] is not None:
                    route: dict[str, Any] = r.json()["route"]
                    return route
                await asyncio.sleep(0.05)

    assert (await route_of(joined["id"]) or {})["outcome"] == "filtered"
    assert (await route_of(finished_event["id"]) or {})["outcome"] == "matched"
    # A replay sends what was delivered, never what the filter kept out.
    r = await pipeline.api.post(f"/sip/hooks/{HOST}/replay", json={"since": "1h"})
    assert r.json()["replayed"] == 1, r.text
    await https_sink.wait_for(2, "/rf")
    assert [x.body for x in https_sink.received("/rf")] == [finished, finished]


@pytest.mark.parametrize(
    ("events", "code"), [(["particpant_joined"], "invalid_events"), ([], "invalid_events")]
)
async def test_unknown_event_names_are_refused(
    pipeline: Pipeline, events: list[str], code: str
) -> None:
    r = await pipeline.api.post(
        "/sip/hooks",
        json={"hooks": [{"host": HOST, "url": "https://x.example/", "events": events}]},
    )
    assert (r.status_code, r.json()["error"]) == (400, code)


async def test_disable_dead_letters_then_enable_and_redrive_delivers(
    pipeline: Pipeline, https_sink: HttpsSink
) -> None:
    await pipeline.set_hook(https_sink.url("/d"))
    r = await pipeline.api.post(f"/sip/hooks/{HOST}/disable")
    assert r.status_code == 200 and r.json()["enabled"] is False
    body = await pipeline.post_event(call())
    letters = await _wait_letters(pipeline, 1)
    assert letters[0]["reason"] == "hook disabled"
    assert https_sink.received("/d") == []

    r = await pipeline.api.post(f"/sip/hooks/{HOST}/enable")
    assert r.status_code == 200 and r.json()["enabled"] is True
    r = await pipeline.api.post("/sip/dead-letters/redrive", json={"host": HOST})
    assert r.json()["redriven"] == len(letters)
    (request,) = await https_sink.wait_for(1, "/d")
    assert request.body == body


async def _wait_letters(pipeline: Pipeline, count: int) -> list[dict[str, Any]]:
    async with asyncio.timeout(10):
        while True:
            r = await pipeline.api.get("/sip/dead-letters", params={"host": HOST})
            found: list[dict[str, Any]] = r.json()["dead_letters"]
            if len(found) >= count:
                return found
            await asyncio.sleep(0.05)


async def test_static_hooks_stay_read_only(pipeline: Pipeline) -> None:
    for action in ("disable", "enable", "rotate-secret"):
        r = await pipeline.api.post(f"/sip/hooks/{STATIC}/{action}")
        assert (r.status_code, r.json()["error"]) == (409, "config_hook")
    r = await pipeline.api.post("/sip/hooks/unknown.example/disable")
    assert r.status_code == 404


async def test_test_send_reports_status_error_and_excerpt(
    pipeline: Pipeline, https_sink: HttpsSink
) -> None:
    await pipeline.set_hook(https_sink.url("/t"), secret=OWN)
    https_sink.program("/t", Reply(200, b"hello from the tenant"), Reply(500, b"boom"))
    reply = await pipeline.api.post(f"/sip/hooks/{HOST}/test")
    ok = reply.json()
    assert reply.status_code == 200, reply.text
    assert ok["status"] == 200 and ok["error"] is None
    assert ok["response_excerpt"] == "hello from the tenant" and ok["duration_ms"] >= 0
    (request,) = https_sink.received("/t")
    assert json.loads(request.body)["event"] == "sip_hook_test" and verifies(OWN, request)

    failed = (await pipeline.api.post(f"/sip/hooks/{HOST}/test")).json()
    assert (failed["status"], failed["error"], failed["response_excerpt"]) == (
        500,
        "HTTP 500",
        "boom",
    )

    blocked = (await pipeline.api.post(f"/sip/hooks/{STATIC}/test")).json()
    assert blocked["status"] is None and "10.9.9.9" in blocked["error"]
    assert (await pipeline.api.post("/sip/hooks/nobody.example/test")).status_code == 404


async def test_test_send_without_a_forwarder_is_503(pipeline: Pipeline) -> None:
    await pipeline.forwarder.stop()
    r = await pipeline.api.post(f"/sip/hooks/{STATIC}/test")
    assert (r.status_code, r.json()["error"]) == (503, "no_forwarder")


async def test_a_secret_needs_the_secrets_key(
    nats_server: NatsServer, livekit_server: LiveKitTwirp, https_sink: HttpsSink
) -> None:
    async for p in start_pipeline(nats_server, livekit_server, https_sink, SIP_SECRETS_KEY=""):
        r = await p.api.post(
            "/sip/hooks",
            json={"hooks": [{"host": HOST, "url": "https://x.example/", "secret": OWN}]},
        )
        assert (r.status_code, r.json()["error"]) == (400, "secrets_key_missing")
        assert "SIP_SECRETS_KEY" in r.json()["message"]
        assert (await p.api.get("/sip/hooks")).json()["hooks"][0]["host"] == STATIC


async def test_a_failing_hook_is_disabled_and_the_operator_told(
    nats_server: NatsServer, livekit_server: LiveKitTwirp, https_sink: HttpsSink
) -> None:
    env = {
        "SIP_HOOK_DISABLE_AFTER": "1s",
        "SIP_RETRY_SCHEDULE": "0s," + ",".join(["300ms"] * 12),  # ~3.6 s of tries per event
        "SIP_OPS_WEBHOOK_URL": https_sink.url("/ops"),
    }
    https_sink.program("/down", then=Reply(500, b"down"))
    # No circuit breaker here: it would pause the attempts this test needs (it opens at
    # 10 requests, which can come within SIP_HOOK_DISABLE_AFTER on a fast machine).
    no_breaker = Tuning(breaker=BreakerSettings(min_requests=1_000_000))
    async for p in start_pipeline(nats_server, livekit_server, https_sink, no_breaker, **env):
        nc = await nats.connect(nats_server.url)
        notices = await nc.subscribe(contracts.OPS_HOOK_DISABLED)
        await p.set_hook(https_sink.url("/down"))
        for i in range(4):
            await p.post_event(call(room=f"sip-call-{i}"))
        (ops,) = await https_sink.wait_for(1, "/ops", timeout=20)
        notice = json.loads(ops.body)
        assert (notice["event"], notice["host"]) == ("hook_disabled", HOST)
        assert verifies(GLOBAL, ops)
        assert json.loads((await notices.next_msg(timeout=5)).data)["host"] == HOST
        hook = await p.hook()
        assert hook["enabled"] is False and "failing since" in hook["disabled_reason"]
        failed_attempts = len(https_sink.received("/down"))
        assert failed_attempts >= 10
        async with httpx.AsyncClient() as http:
            metrics = (await http.get(f"http://127.0.0.1:{p.forwarder.port}/metrics")).text
        assert f'sayna_sip_forwarder_hooks_disabled_total{{host="{HOST}"}} 1.0' in metrics, [
            line for line in metrics.splitlines() if "disabled" in line
        ]
        await nc.close()
