"""The guard on every state-changing route (writeguard): JSON only, bodyless routes too,
and no cross-site browser requests, with AUTH_REQUIRED=false. The routes are read off the
app, so a route added later is held to the same rules without editing this file."""

from __future__ import annotations

import logging
import re

import pytest
from litestar import Litestar
from nats.js import JetStreamContext

from sayna_sip.common.config import ServerConfig
from sayna_sip.ingress.app import create_app, warn_if_open
from sayna_sip.ingress.writeguard import EXEMPT, STATE_CHANGING
from tests.fixtures.nats import NatsServer
from tests.ingress.conftest import Client, ingress_config

HOST = "a.example.com"
JSON = {"Content-Type": "application/json"}
SAMPLES = {"host": HOST, "event_id": "E1", "id": "default"}  # any other parameter: "x"


def state_changing_routes(app: Litestar) -> list[tuple[str, str]]:
    """(method, path) of every route that changes state, the webhook (exempt) aside."""
    out: list[tuple[str, str]] = []
    for route in app.routes:
        for handler in getattr(route, "route_handlers", ()):
            if handler.opt.get(EXEMPT):
                continue
            for method in sorted(handler.http_methods & STATE_CHANGING):
                path = re.sub(r"\{(\w+):[^}]*\}", lambda m: SAMPLES.get(m[1], "x"), route.path)
                out.append((method, path))
    return sorted(out)  # Litestar keeps handlers unordered: one order for every xdist worker


ROUTES = state_changing_routes(create_app(ServerConfig.from_env({})))


def test_the_routes_under_guard_are_found() -> None:
    assert len(ROUTES) >= 18 and ("POST", f"/sip/hooks/{HOST}/disable") in ROUTES
    assert ("POST", f"/sip/hooks/{HOST}/endpoints/default/disable") in ROUTES
    assert ("POST", f"/sip/hooks/{HOST}/access-tokens/revoke") in ROUTES


async def hooks_unchanged(ingress: Client) -> None:
    (hook,) = [h for h in (await ingress.get("/sip/hooks")).json()["hooks"] if h["host"] == HOST]
    assert hook["enabled"] is True and hook["url"] == "https://a.example.com/h"


@pytest.fixture
async def with_hook(ingress: Client) -> Client:
    hook = {"host": HOST, "url": "https://a.example.com/h"}
    assert (await ingress.post("/sip/hooks", json={"hooks": [hook]})).status_code == 200
    return ingress


REFUSED = [
    ({}, 415, "unsupported_media_type"),
    ({"Content-Type": "text/plain"}, 415, "unsupported_media_type"),
    ({"Content-Type": "application/x-www-form-urlencoded"}, 415, "unsupported_media_type"),
    ({"Content-Type": "multipart/form-data; boundary=x"}, 415, "unsupported_media_type"),
    ({"Content-Type": "application/xml"}, 415, "unsupported_media_type"),
    ({**JSON, "Sec-Fetch-Site": "cross-site"}, 403, "cross_site"),
    ({**JSON, "Sec-Fetch-Site": "same-site"}, 403, "cross_site"),
    ({**JSON, "Origin": "http://evil.example"}, 403, "cross_site"),
    ({**JSON, "Origin": "null"}, 403, "cross_site"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_refused_before_the_handler(with_hook: Client, method: str, path: str) -> None:
    body = b'{"hooks":[{"host":"a.example.com","url":"https://a.example.com/other"}]}'
    for headers, status, code in REFUSED:
        r = await with_hook.request(method, path, content=body, headers=headers)
        assert (r.status_code, r.json()["error"]) == (status, code), (headers, r.text)
    await hooks_unchanged(with_hook)


async def test_same_origin_browser_requests_and_plain_clients_pass(with_hook: Client) -> None:
    same = {**JSON, "Sec-Fetch-Site": "same-origin", "Origin": "http://evil.example"}
    older = {**JSON, "Origin": "http://testserver.local"}  # no Sec-Fetch-Site: Origin = Host
    for headers in (same, older, JSON):
        r = await with_hook.post(f"/sip/hooks/{HOST}/disable", headers=headers)
        assert r.status_code == 200, r.text
        r = await with_hook.post(f"/sip/hooks/{HOST}/enable", headers=headers)
        assert r.status_code == 200, r.text
    unknown = await with_hook.post("/sip/hooks/nobody.example.com/disable", headers=JSON)
    assert unknown.json()["error"] == "hook_not_found"  # the guard passed it on


@pytest.mark.parametrize(
    ("env", "warned"),
    [
        ({"HOST": "0.0.0.0"}, True),
        ({"HOST": "::"}, True),
        ({"HOST": "pbx.example.com"}, True),
        ({"HOST": "127.0.0.1"}, False),
        ({"HOST": "::1"}, False),
        ({"HOST": "localhost"}, False),
        ({"HOST": "0.0.0.0", "AUTH_REQUIRED": "true", "AUTH_API_SECRET": "t" * 32}, False),
    ],
)
def test_auth_off_on_an_open_bind_warns_at_start(
    caplog: pytest.LogCaptureFixture, env: dict[str, str], warned: bool
) -> None:
    with caplog.at_level(logging.WARNING, "sayna_sip.ingress"):
        warn_if_open(ServerConfig.from_env(env))
    assert ("event=auth_off_exposed" in caplog.text) is warned


async def test_the_default_bind_warns_when_the_ingress_starts(
    nats_server: NatsServer, jetstream: JetStreamContext, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.ingress.conftest import serve

    with caplog.at_level(logging.WARNING, "sayna_sip.ingress"):
        async with serve(ingress_config(nats_server.url)):
            pass
    assert "event=auth_off_exposed host=0.0.0.0" in caplog.text


def test_the_schema_says_every_change_takes_json_and_may_be_refused_so() -> None:
    # Schema-driven clients (and fuzzers) then send the Content-Type the guard asks for.
    paths = create_app(ServerConfig.from_env({})).openapi_schema.to_schema()["paths"]
    changes = [
        (path, method, op)
        for path, item in paths.items()
        if path != "/livekit/webhook"
        for method, op in item.items()
        if method.upper() in STATE_CHANGING
    ]
    assert len(changes) == len(ROUTES)
    for path, method, op in changes:
        body = op.get("requestBody", {})
        assert body.get("required") and "application/json" in body["content"], (method, path)
        assert {"403", "415"} <= set(op["responses"]), (method, path)
