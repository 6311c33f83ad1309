"""The audit middleware on a write route that records nothing itself (as a route added
later may): the record takes its host and endpoint from the path and its field names from
the JSON body, safe values only; refused and read-only requests leave none."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import nats
import pytest
from litestar import Litestar, Request, delete, get, patch, post, put
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.testing import AsyncTestClient
from nats.aio.client import Client as Nats
from nats.js import JetStreamContext
from prometheus_client import CollectorRegistry

from sayna_sip.common import topology
from sayna_sip.common.audit import AuditLog
from sayna_sip.ingress import access, audit_trail
from sayna_sip.ingress.metrics import IngressMetrics
from tests.fixtures.nats import NatsServer

LIMIT = audit_trail.BODY_KEYS_BYTES


def _admin(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    access.remember(connection, access.ADMIN)  # as the API's token guard does


async def _read(request: Request[Any, Any, Any]) -> dict[str, str]:
    await request.body()  # the body goes through the middleware as a route's data does
    return {}


@post("/sip/t/{host:str}/endpoints/{id:str}", guards=[_admin], status_code=200)
async def set_endpoint(request: Request[Any, Any, Any]) -> dict[str, str]:
    return await _read(request)


@put("/sip/t/{host:str}/by-id/{endpoint_id:str}", guards=[_admin], status_code=200)
async def put_endpoint(request: Request[Any, Any, Any]) -> dict[str, str]:
    return await _read(request)


@patch("/sip/t/{host:str}/by-name/{endpoint:str}", guards=[_admin], status_code=200)
async def patch_endpoint(request: Request[Any, Any, Any]) -> dict[str, str]:
    return await _read(request)


@delete("/sip/t/{host:str}", guards=[_admin], status_code=200)
async def drop(request: Request[Any, Any, Any]) -> dict[str, str]:
    return await _read(request)


@post("/sip/t/refused", guards=[_admin], status_code=409)
async def refused(request: Request[Any, Any, Any]) -> dict[str, str]:
    return await _read(request)


@post("/sip/t/unguarded", status_code=200)
async def unguarded(request: Request[Any, Any, Any]) -> dict[str, str]:
    return await _read(request)


@get("/sip/t/read", guards=[_admin])
async def read() -> dict[str, str]:
    return {}


@pytest.fixture
async def api(nats_server: NatsServer, jetstream: JetStreamContext) -> AsyncIterator[Any]:
    nc: list[Nats] = []

    async def connect(app: Litestar) -> None:  # on the app's own loop, as the ingress does
        nc.append(await nats.connect(nats_server.url))
        app.state.ingress = SimpleNamespace(
            audit=AuditLog(nc[0], nc[0].jetstream()),
            metrics=IngressMetrics.create(CollectorRegistry()),
        )

    async def close(_: Litestar) -> None:
        await nc[0].close()

    app = Litestar(
        [set_endpoint, put_endpoint, patch_endpoint, drop, refused, unguarded, read],
        middleware=[audit_trail.middleware], on_startup=[connect], on_shutdown=[close],
    )  # fmt: skip
    async with AsyncTestClient(app) as client:
        yield client


async def _last(js: JetStreamContext) -> dict[str, Any] | None:
    info = await js.stream_info(topology.SIP_AUDIT)
    if not info.state.messages:
        return None
    msg = await js.get_msg(topology.SIP_AUDIT, info.state.last_seq)
    found: dict[str, Any] = json.loads(msg.data or b"")
    return found


async def test_a_route_that_notes_nothing_is_recorded_from_its_path_and_body(
    api: Any, jetstream: JetStreamContext
) -> None:
    body = {"url": "https://h.example/p?key=s", "secret": "s3cr3t", "enabled": False}
    r = await api.post("/sip/t/PBX.Tenant-A.example./endpoints/second", json=body)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    rec = await _last(jetstream)
    assert rec is not None
    assert (rec["actor"], rec["action"], rec["host"]) == (
        "admin",
        "set_endpoint",
        "pbx.tenant-a.example",
    )
    assert rec["endpoint"] == "second" and rec["request_id"] == r.headers["x-request-id"]
    assert rec["fields"] == ["enabled", "secret", "url"]
    assert rec["values"] == {"url": "https://h.example/p", "enabled": False}  # no secret


@pytest.mark.parametrize(
    ("method", "path", "endpoint"),
    [
        ("PUT", "/sip/t/h.example/by-id/e1", "e1"),
        ("PATCH", "/sip/t/h.example/by-name/e2", "e2"),
        ("DELETE", "/sip/t/h.example", None),
    ],
)
async def test_every_write_method_is_recorded_with_its_endpoint(
    api: Any, jetstream: JetStreamContext, method: str, path: str, endpoint: str | None
) -> None:
    r = await api.request(method, path, json={"events": ["room_started"]})
    assert r.status_code == 200
    rec = await _last(jetstream)
    assert rec is not None and (rec["host"], rec["endpoint"]) == ("h.example", endpoint)
    assert rec["values"] == {"events": ["room_started"]}


async def test_a_host_that_is_not_one_is_recorded_as_given(
    api: Any, jetstream: JetStreamContext
) -> None:
    assert (await api.delete("/sip/t/not_a host!")).status_code == 200
    rec = await _last(jetstream)
    assert rec is not None and rec["host"] == "not_a host!" and rec["fields"] == []
    assert (await api.delete("/sip/t/" + "x_" * 150)).status_code == 200
    rec = await _last(jetstream)
    assert rec is not None and rec["host"] == ("x_" * 150)[:255]  # bounded


def _padded(size: int) -> bytes:
    """A JSON object of exactly `size` bytes."""
    skeleton = json.dumps({"url": "https://h.example/p", "pad": ""}).encode()
    return json.dumps({"url": "https://h.example/p", "pad": "x" * (size - len(skeleton))}).encode()


@pytest.mark.parametrize(("size", "kept"), [(LIMIT, True), (LIMIT + 14, False)])
async def test_a_body_over_64_kib_is_recorded_without_its_field_names(
    api: Any, jetstream: JetStreamContext, size: int, kept: bool
) -> None:
    assert LIMIT == 64 * 1024
    body = _padded(size)
    assert len(body) == size
    r = await api.post("/sip/t/h.example/endpoints/e", content=body,
                       headers={"Content-Type": "application/json"})  # fmt: skip
    assert r.status_code == 200
    rec = await _last(jetstream)
    assert rec is not None
    assert rec["fields"] == (["pad", "url"] if kept else [])
    assert rec["values"] == ({"url": "https://h.example/p"} if kept else {})


@pytest.mark.parametrize("body", [b"not json", b'["url", "events"]', b""])
async def test_a_body_not_a_json_object_gives_no_field_names(
    api: Any, jetstream: JetStreamContext, body: bytes
) -> None:
    r = await api.post("/sip/t/h.example/endpoints/e", content=body)
    assert r.status_code == 200
    rec = await _last(jetstream)
    assert rec is not None and (rec["fields"], rec["values"]) == ([], {})


async def test_refused_unguarded_and_read_requests_leave_no_record(
    api: Any, jetstream: JetStreamContext
) -> None:
    for r in (
        await api.post("/sip/t/refused", json={"url": "x"}),
        await api.post("/sip/t/unguarded", json={"url": "x"}),
        await api.get("/sip/t/read"),
    ):
        assert r.status_code in (200, 409) and r.headers["x-request-id"].startswith("req_")
    assert await _last(jetstream) is None
