"""Several endpoints per SIP host, on the whole pipeline (real NATS, real HTTPS sinks): each
endpoint gets its own copy signed with its own secret, its own retries, its own filter and
its own custom headers; header values never leave sealed; the seed API is unchanged."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from sayna_sip.forwarder.breaker import BreakerSettings
from sayna_sip.forwarder.tuning import Tuning
from tests.fixtures.https_sink import HttpsSink, Reply
from tests.fixtures.livekit import LiveKitTwirp
from tests.fixtures.nats import NatsServer
from tests.integration.test_endpoints import (
    GLOBAL,
    HOST,
    OWN,
    Pipeline,
    _store_holds,
    call,
    start_pipeline,
    verifies,
)

CRM_SECRET = "crm-endpoint-secret-0123456789"
API_KEY = "crm-api-key-that-must-stay-sealed-42"
pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def pipeline(
    nats_server: NatsServer, livekit_server: LiveKitTwirp, https_sink: HttpsSink
) -> AsyncIterator[Pipeline]:
    """Provisioned stack with SIP_SECRETS_KEY and quick retries."""
    async for p in start_pipeline(
        nats_server, livekit_server, https_sink, SIP_RETRY_SCHEDULE="0s,200ms,200ms"
    ):
        yield p


async def add(pipeline: Pipeline, **body: object) -> dict[str, object]:
    r = await pipeline.api.post(f"/sip/hooks/{HOST}/endpoints", json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def test_two_endpoints_each_get_their_copy_signed_with_their_own_secret(
    pipeline: Pipeline, https_sink: HttpsSink, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await pipeline.set_hook(https_sink.url("/analytics"), secret=OWN)
    shown = await add(
        pipeline,
        id="crm",
        url=https_sink.url("/crm"),
        secret=CRM_SECRET,
        headers={"Authorization": f"Bearer {API_KEY}", "X-Api-Key": API_KEY},
    )
    assert shown["headers"] == {"Authorization": "<redacted>", "X-Api-Key": "<redacted>"}
    https_sink.program("/crm", Reply(500))  # the CRM fails once: only it is retried

    await pipeline.post_event(call())
    crm = await https_sink.wait_for(2, "/crm")
    (analytics,) = await https_sink.wait_for(1, "/analytics")
    assert verifies(OWN, analytics) and not verifies(CRM_SECRET, analytics)
    assert all(verifies(CRM_SECRET, r) and not verifies(OWN, r) for r in crm)
    assert crm[0].headers["webhook-id"] == analytics.headers["webhook-id"]  # the same event
    for attempt in crm:  # every attempt, the retry too, carries the headers exactly
        assert attempt.headers["authorization"] == f"Bearer {API_KEY}"
        assert attempt.headers["x-api-key"] == API_KEY
    assert "authorization" not in analytics.headers
    assert len(https_sink.received("/analytics")) == 1

    # Each endpoint's attempts are recorded apart, and the values stay sealed everywhere.
    event_id = analytics.headers["webhook-id"]
    record = await _recorded(pipeline, event_id, 3)
    by_endpoint = sorted((a["endpoint"], a["outcome"]) for a in record["attempts"])
    assert by_endpoint == [("crm", "delivered"), ("crm", "failed"), ("default", "delivered")]
    assert sorted(record["route"]["endpoints"]) == ["crm", "default"]
    answers = json.dumps(record) + (await pipeline.api.get("/sip/hooks")).text
    answers += (await pipeline.api.get(f"/sip/hooks/{HOST}/endpoints/crm")).text
    for value in (API_KEY, CRM_SECRET):
        assert value not in answers and value not in caplog.text
        assert not _store_holds(pipeline.nats.store, value)


async def _recorded(pipeline: Pipeline, event_id: str, attempts: int) -> dict[str, Any]:
    """The delivery's record once it holds `attempts` attempts (records land a moment
    after the delivery: they are pipelined)."""
    async with asyncio.timeout(10):
        while True:
            r = await pipeline.api.get(f"/sip/deliveries/{event_id}")
            if r.status_code == 200 and len(r.json()["attempts"]) >= attempts:
                return dict(r.json())
            await asyncio.sleep(0.05)


async def test_filters_are_per_endpoint(pipeline: Pipeline, https_sink: HttpsSink) -> None:
    await pipeline.set_hook(https_sink.url("/all"))
    await add(pipeline, id="joins", url=https_sink.url("/joins"), events=["participant_joined"])
    await pipeline.post_event(call("participant_left"))
    await pipeline.post_event(call("participant_joined"))
    await https_sink.wait_for(2, "/all")
    (joined,) = await https_sink.wait_for(1, "/joins")
    assert json.loads(joined.body)["event"] == "participant_joined"


@pytest.mark.parametrize(
    "name", ["Host", "content-type", "Transfer-Encoding", "webhook-id", "Sayna-Hook",
             "X-Sayna-Signature", "traceparent", "Bad Name", "Connection"],
)  # fmt: skip
async def test_refused_header_names_are_400_naming_the_header(
    pipeline: Pipeline, https_sink: HttpsSink, name: str
) -> None:
    await pipeline.set_hook(https_sink.url("/a"))
    r = await pipeline.api.post(
        f"/sip/hooks/{HOST}/endpoints",
        json={"id": "x", "url": https_sink.url("/x"), "headers": {name: "v"}},
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_headers", r.text
    assert name in r.json()["message"]
    listed = (await pipeline.api.get(f"/sip/hooks/{HOST}/endpoints")).json()["endpoints"]
    assert [e["id"] for e in listed] == ["default"]  # nothing changed


async def test_bad_endpoint_writes_change_nothing(
    pipeline: Pipeline, https_sink: HttpsSink
) -> None:
    await pipeline.set_hook(https_sink.url("/a"))
    await add(pipeline, id="crm", url=https_sink.url("/crm"))
    path = f"/sip/hooks/{HOST}/endpoints"
    dup = await pipeline.api.post(path, json={"id": "crm", "url": https_sink.url("/b")})
    assert (dup.status_code, dup.json()["error"]) == (400, "duplicate_endpoint")
    for i in range(8):
        await add(pipeline, url=https_sink.url(f"/n{i}"))  # ids generated
    eleventh = await pipeline.api.post(path, json={"url": https_sink.url("/11")})
    assert (eleventh.status_code, eleventh.json()["error"]) == (400, "too_many_endpoints")
    missing = await pipeline.api.get(f"{path}/nope")
    assert (missing.status_code, missing.json()["error"]) == (404, "endpoint_not_found")
    bad = await pipeline.api.patch(f"{path}/crm", json={"url": "http://insecure.example/"})
    assert (bad.status_code, bad.json()["error"]) == (400, "insecure_url")
    crm = (await pipeline.api.get(f"{path}/crm")).json()
    assert crm["url"] == https_sink.url("/crm")
    ok = await pipeline.api.patch(f"{path}/crm", json={"events": ["participant_joined"]})
    assert ok.status_code == 200 and ok.json()["url"] == https_sink.url("/crm"), ok.text
    default = await pipeline.api.delete(f"{path}/default")
    assert (default.status_code, default.json()["error"]) == (400, "default_endpoint")
    gone = await pipeline.api.delete(f"{path}/crm")
    assert gone.status_code == 200 and "crm" not in [e["id"] for e in gone.json()["endpoints"]]


async def test_the_seed_api_round_trips_as_before(
    pipeline: Pipeline, https_sink: HttpsSink
) -> None:
    shown = await pipeline.set_hook(https_sink.url("/seed"))
    assert (shown["host"], shown["url"], shown["source"], shown["events"]) == (
        HOST, https_sink.url("/seed"), "runtime", None,
    )  # fmt: skip
    assert [e["id"] for e in shown["endpoints"]] == ["default"]
    await pipeline.post_event(call())
    (got,) = await https_sink.wait_for(1, "/seed")
    assert verifies(GLOBAL, got)
    r = await pipeline.api.request("DELETE", "/sip/hooks", json={"hosts": [HOST]})
    assert r.status_code == 200 and HOST not in [h["host"] for h in r.json()["hooks"]]


async def test_a_failing_endpoint_is_disabled_alone(
    nats_server: NatsServer, livekit_server: LiveKitTwirp, https_sink: HttpsSink
) -> None:
    env = {
        "SIP_HOOK_DISABLE_AFTER": "1s",
        "SIP_RETRY_SCHEDULE": "0s," + ",".join(["300ms"] * 12),  # ~3.6 s of tries per event
        "SIP_OPS_WEBHOOK_URL": https_sink.url("/ops"),
    }
    https_sink.program("/down", then=Reply(500, b"down"))
    no_breaker = Tuning(breaker=BreakerSettings(min_requests=1_000_000))  # as test_endpoints
    async for p in start_pipeline(nats_server, livekit_server, https_sink, no_breaker, **env):
        await p.set_hook(https_sink.url("/up"))
        await add(p, id="crm", url=https_sink.url("/down"))
        for i in range(4):
            await p.post_event(call(room=f"sip-call-{i}"))
        (ops,) = await https_sink.wait_for(1, "/ops", timeout=20)
        notice = json.loads(ops.body)
        assert (notice["event"], notice["host"], notice["endpoint"]) == (
            "hook_disabled", HOST, "crm",
        )  # fmt: skip
        endpoints = (await p.api.get(f"/sip/hooks/{HOST}/endpoints")).json()["endpoints"]
        state = {e["id"]: (e["enabled"], e["failing_since"]) for e in endpoints}
        assert state["default"] == (True, None) and state["crm"][0] is False
        assert len(await https_sink.wait_for(4, "/up")) == 4  # its sibling got every event
