"""Delivery records end to end: the pipeline in one process on real servers, asked
through the ingress API what happened to each event; replay and redrive; one trace."""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from sayna_sip.common import natsconn
from sayna_sip.common.config import ServerConfig
from sayna_sip.forwarder.app import Forwarder
from sayna_sip.forwarder.tuning import Tuning
from sayna_sip.ingress.app import create_app
from sayna_sip.provisioner.provision import provision_nats
from sayna_sip.router.app import RouterService
from tests.fixtures.https_sink import HttpsSink, Reply
from tests.fixtures.livekit import API_KEY, API_SECRET, signed_webhook, sip_event
from tests.fixtures.nats import NatsServer

Client = AsyncTestClient[Litestar]


def _config(nats_server: NatsServer, https_sink: HttpsSink) -> ServerConfig:
    hooks = [{"host": "pbx.tenant-a.example", "url": https_sink.url("/a")}]
    return ServerConfig.from_env(
        {
            "NATS_URL": nats_server.url,
            "LIVEKIT_API_KEY": API_KEY,
            "LIVEKIT_API_SECRET": API_SECRET,
            "SIP_ROOM_PREFIX": "sip-",
            "SIP_ALLOWED_ADDRESSES": "203.0.113.0/24",
            "SIP_HOOKS_JSON": json.dumps(hooks),
            "SIP_HOOK_ALLOW_NETWORKS": "127.0.0.0/8",
            "SIP_HOOK_CA_BUNDLE": str(https_sink.ca_path),
            "SIP_RETRY_SCHEDULE": "0s,50ms,50ms",
            "ROUTER_PORT": "0",
            "FORWARDER_PORT": "0",
        }
    )


@pytest.fixture
async def pipeline(nats_server: NatsServer, https_sink: HttpsSink) -> AsyncIterator[Client]:
    """Provisioned NATS, then router, one forwarder and the ingress API, all running."""
    config = _config(nats_server, https_sink)
    await _provision(config)
    async with AsyncExitStack() as stack:
        router = RouterService(config)
        await router.start()
        stack.push_async_callback(router.stop)
        forwarder = await Forwarder.start(config, Tuning(seed=1))
        stack.push_async_callback(forwarder.stop)
        client = await stack.enter_async_context(AsyncTestClient(create_app(config), timeout=10))
        yield client


async def _provision(config: ServerConfig) -> None:
    nc = await natsconn.connect(config.nats, name="test")
    try:
        await provision_nats(nc, config)
    finally:
        await nc.close()


async def post(client: Client, event: dict[str, Any]) -> None:
    body, headers = signed_webhook(event)
    response = await client.post("/livekit/webhook", content=body, headers=headers)
    assert response.status_code == 200, response.text


async def until(check: Callable[[], Awaitable[Any]], timeout: float = 10.0) -> Any:
    """Poll the API until `check` returns something truthy (records land asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        found = await check()
        if found or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.05)


async def delivery(client: Client, event_id: str, attempts: int = 0) -> dict[str, Any] | None:
    response = await client.get(f"/sip/deliveries/{event_id}")
    if response.status_code != 200:
        return None
    body: dict[str, Any] = response.json()
    done = body["route"] is not None and len(body["attempts"]) >= attempts
    return body if done else None


async def test_500_503_200_shows_the_route_and_three_attempts(
    pipeline: Client, https_sink: HttpsSink
) -> None:
    https_sink.program("/a", Reply(500, b"boom"), Reply(503, b"busy"), Reply(200, b"thanks"))
    event = sip_event(room="sip-call-1", to="sip:+1555@pbx.tenant-a.example")
    await post(pipeline, event)

    got = await until(lambda: delivery(pipeline, event["id"], attempts=3))

    assert got is not None, "no route and three attempts recorded"
    assert got["event"] == "participant_joined" and got["room"] == "sip-call-1"
    assert got["route"]["outcome"] == "matched"
    assert got["route"]["host"] == "pbx.tenant-a.example"
    attempts = got["attempts"]
    assert [a["status"] for a in attempts] == [500, 503, 200]
    assert [a["attempt"] for a in attempts] == [1, 2, 3]
    assert [a["outcome"] for a in attempts] == ["failed", "failed", "delivered"]
    assert [a["response"] for a in attempts] == ["boom", "busy", "thanks"]
    assert all(a["duration_ms"] > 0 and a["started_at"].endswith("Z") for a in attempts)


async def test_unknown_host_and_non_sip_events_show_why(pipeline: Client) -> None:
    unknown = sip_event(room="sip-call-2", to="sip:+1555@nobody.example")
    other = sip_event(room="conference-9", to="sip:+1555@pbx.tenant-a.example")
    await post(pipeline, unknown)
    await post(pipeline, other)

    got = await until(lambda: delivery(pipeline, unknown["id"]))
    assert got is not None
    assert got["route"]["outcome"] == "unknown_host"
    assert got["route"]["sip_host"] == "nobody.example" and got["attempts"] == []
    got = await until(lambda: delivery(pipeline, other["id"]))
    assert got is not None and got["route"]["outcome"] == "not_sip"
    missing = await pipeline.get("/sip/deliveries/EV_never")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    paths = (await pipeline.get("/schema/openapi.json")).json()["paths"]
    for route in (
        "/sip/deliveries/{event_id}",
        "/sip/deliveries",
        "/sip/hooks/{host}/stats",
        "/sip/dead-letters",
        "/sip/dead-letters/redrive",
        "/sip/hooks/{host}/replay",
    ):
        assert route in paths  # fmt: skip


async def test_list_filters_and_stats(pipeline: Client, https_sink: HttpsSink) -> None:
    https_sink.program("/a", Reply(500), then=Reply(200))
    for n in range(3):
        await post(pipeline, sip_event(room=f"sip-call-{n}", to="sip:1@pbx.tenant-a.example"))

    async def three_delivered() -> Any:
        r = await pipeline.get("/sip/deliveries", params={"outcome": "delivered", "since": "1h"})
        return r.json()["deliveries"] if len(r.json()["deliveries"]) == 3 else None

    listed = await until(three_delivered)
    assert listed and all(d["kind"] == "attempt" for d in listed)
    assert [d["started_at"] for d in listed] == sorted(
        (d["started_at"] for d in listed), reverse=True
    )
    stats = (await pipeline.get("/sip/hooks/pbx.tenant-a.example/stats?window=1h")).json()
    assert (stats["attempts"], stats["delivered"], stats["failed"]) == (4, 3, 1)
    assert stats["success_rate"] == 0.75 and stats["state"] == "enabled"
    # The four attempts were just made: the current rate is over the last 10 s.
    assert stats["rate_limit"] is None and stats["current_rate"] == 0.4
    bad = await pipeline.get("/sip/deliveries", params={"since": "yesterday"})
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_query"
    assert (await pipeline.get("/sip/hooks/x.example/stats?window=2h")).status_code == 400


async def test_replay_redelivers_the_window_with_the_original_webhook_id(
    pipeline: Client, https_sink: HttpsSink
) -> None:
    before = sip_event(room="sip-call-0", to="sip:1@pbx.tenant-a.example")
    await post(pipeline, before)
    await https_sink.wait_for(1, "/a")
    await asyncio.sleep(0.05)
    since = time.time()
    inside = [sip_event(room=f"sip-call-{n}", to="sip:1@pbx.tenant-a.example") for n in (1, 2)]
    for event in inside:
        await post(pipeline, event)
    await https_sink.wait_for(3, "/a")
    await until(lambda: delivery(pipeline, inside[-1]["id"], attempts=1))

    window = {"since": _rfc3339(since), "until": "0s"}
    answer = await pipeline.post("/sip/hooks/pbx.tenant-a.example/replay", json=window)

    assert answer.status_code == 200, answer.text
    assert answer.json()["replayed"] == 2 and answer.json()["truncated"] is False
    got = await https_sink.wait_for(5, "/a")
    assert sorted(r.headers["x-sayna-event-id"] for r in got[3:]) == sorted(e["id"] for e in inside)


async def test_replay_sends_only_the_events_routed_between_since_and_until(
    pipeline: Client, https_sink: HttpsSink
) -> None:
    # A replay of one window must not re-send what came after it.
    events = [sip_event(room=f"sip-call-{n}", to="sip:1@pbx.tenant-a.example") for n in range(3)]
    routed_at = []
    for n, event in enumerate(events):
        await post(pipeline, event)
        await https_sink.wait_for(n + 1, "/a")
        got = await until(functools.partial(delivery, pipeline, event["id"], attempts=1))
        assert got is not None
        routed_at.append(got["route"]["at"])

    window = {"since": routed_at[1], "until": routed_at[2]}  # the second event only
    answer = await pipeline.post("/sip/hooks/pbx.tenant-a.example/replay", json=window)

    assert answer.status_code == 200, answer.text
    assert answer.json()["replayed"] == 1
    got = await https_sink.wait_for(4, "/a")
    assert got[3].headers["x-sayna-event-id"] == events[1]["id"]


async def test_redrive_by_event_id_and_by_host(pipeline: Client, https_sink: HttpsSink) -> None:
    https_sink.program("/a", Reply(410), Reply(410), then=Reply(200))
    first = sip_event(room="sip-call-1", to="sip:1@pbx.tenant-a.example")
    second = sip_event(room="sip-call-2", to="sip:1@pbx.tenant-a.example")
    await post(pipeline, first)
    await post(pipeline, second)

    async def two_dead() -> Any:
        r = await pipeline.get("/sip/dead-letters", params={"host": "pbx.tenant-a.example"})
        return r.json()["dead_letters"] if len(r.json()["dead_letters"]) == 2 else None

    letters = await until(two_dead)
    assert letters and {x["reason"] for x in letters} == {"gone"}
    one = await pipeline.post("/sip/dead-letters/redrive", json={"event_ids": [first["id"]]})
    assert one.json() == {"redriven": 1, "skipped": 0, "truncated": False}
    rest = await pipeline.post("/sip/dead-letters/redrive", json={"host": "pbx.tenant-a.example"})
    assert rest.json()["redriven"] == 1
    got = await https_sink.wait_for(4, "/a")
    assert sorted(r.headers["x-sayna-event-id"] for r in got[2:]) == sorted(
        [first["id"], second["id"]]
    )
    empty = await pipeline.post("/sip/dead-letters/redrive", json={})
    assert empty.status_code == 400


async def test_one_trace_spans_ingress_router_and_forwarder(
    spans: InMemorySpanExporter, nats_server: NatsServer, https_sink: HttpsSink
) -> None:
    config = _config(nats_server, https_sink)
    await _provision(config)
    async with AsyncExitStack() as stack:
        router = RouterService(config)
        await router.start()
        stack.push_async_callback(router.stop)
        forwarder = await Forwarder.start(config, Tuning())
        stack.push_async_callback(forwarder.stop)
        client = await stack.enter_async_context(AsyncTestClient(create_app(config), timeout=10))
        event = sip_event(room="sip-call-5", to="sip:1@pbx.tenant-a.example")
        await post(client, event)
        (request,) = await https_sink.wait_for(1, "/a")

    names = {s.name: s for s in spans.get_finished_spans()}
    intake, route, attempt = names["sip.intake"], names["sip.route"], names["sip.attempt"]
    trace_ids = {s.context.trace_id for s in (intake, route, attempt) if s.context}
    assert len(trace_ids) == 1
    assert route.parent and intake.context and route.parent.span_id == intake.context.span_id
    assert attempt.parent and route.context and attempt.parent.span_id == route.context.span_id
    assert attempt.context is not None
    _, trace_hex, span_hex, _ = request.headers["traceparent"].split("-")
    assert int(trace_hex, 16) == attempt.context.trace_id
    assert int(span_hex, 16) == attempt.context.span_id


def _rfc3339(when: float) -> str:
    from sayna_sip.common.deliveries import rfc3339

    stamp = rfc3339(when)
    assert stamp is not None
    return stamp
