"""AUTH_REQUIRED on: every route answers 401 without the API token and with a wrong one,
except the open routes docs/ingress.md lists. The routes come from the app itself (its
OpenAPI schema, plus any route left out of it), so a new route is checked by itself."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest
from litestar import Litestar
from nats.js import JetStreamContext

from sayna_sip.ingress.app import create_app
from tests.docs import markdown
from tests.fixtures.nats import NatsServer
from tests.ingress.conftest import Client, ingress_config, serve

TOKEN = "ops-token-0123456789abcdef"
WRONG = {"Authorization": "Bearer not-the-token-0123456789"}
RIGHT = {"Authorization": f"Bearer {TOKEN}"}
# A value for each path parameter (any other gets "x"); the guard answers before it is used.
SAMPLES = {"host": "pbx.tenant-a.example", "event_id": "EV_auth", "name": "console.js"}
# State-changing calls declare a JSON body, so a media-type check cannot answer first.
JSON = {"Content-Type": "application/json"}
VIEWER = "/schema"  # OpenAPI's own pages: one entry, `GET /schema`, covers them


def open_routes() -> set[tuple[str, str]]:
    """(METHOD, /path) of each open route, read from the table in docs/ingress.md."""
    table = markdown.table_with(markdown.text("docs/ingress.md"), "open route")
    found = set()
    for cell in table.column("open route"):
        (span,) = markdown.spans(cell)
        method, path = span.split(" ")
        found.add((method, path))
    return found


def _schema_routes(app: Litestar) -> set[tuple[str, str]]:
    methods = {"get", "post", "put", "patch", "delete"}
    paths = app.openapi_schema.to_schema()["paths"]
    return {(m.upper(), path) for path, item in paths.items() for m in item if m in methods}


def _app_routes(app: Litestar) -> set[tuple[str, str]]:
    """Every route the app serves, parameters written `{name}` as in the schema."""
    out = set()
    for route in app.routes:
        path = re.sub(r"\{(\w+):[^}]*\}", r"{\1}", route.path)
        if path.startswith(VIEWER):
            path = VIEWER
        for method in getattr(route, "methods", ()):
            if method not in ("HEAD", "OPTIONS"):
                out.add((method, path))
    return out


def _url(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: SAMPLES.get(m.group(1), "x"), path)


@pytest.fixture
async def guarded_ingress(
    nats_server: NatsServer, jetstream: JetStreamContext
) -> AsyncIterator[Client]:
    config = ingress_config(nats_server.url, AUTH_REQUIRED="true", AUTH_API_SECRET=TOKEN)
    async with serve(config) as client:
        yield client


async def _send(client: Client, method: str, path: str, headers: dict[str, str]) -> httpx.Response:
    if method in ("GET", "HEAD"):
        return await client.request(method, _url(path), headers=headers)
    return await client.request(method, _url(path), content=b"{}", headers={**JSON, **headers})


def test_the_open_routes_are_served_and_hidden_routes_are_open() -> None:
    app = create_app(ingress_config("nats://127.0.0.1:1"))
    served = _schema_routes(app) | _app_routes(app)
    listed = open_routes()
    assert listed <= served, f"docs/ingress.md lists routes not served: {listed - served}"
    hidden = _app_routes(app) - _schema_routes(app)
    assert hidden <= listed, f"routes left out of the schema but not documented open: {hidden}"


def test_the_console_is_served_but_is_no_route_of_the_api_schema() -> None:
    # Pages, not API: a client generated from the schema (or schemathesis) gets none.
    app = create_app(ingress_config("nats://127.0.0.1:1"))
    schema = app.openapi_schema.to_schema()["paths"]
    assert {("GET", "/console"), ("GET", "/console/{name}")} <= _app_routes(app)
    assert [p for p in schema if p.startswith("/console")] == []


async def test_every_route_but_the_open_ones_needs_the_api_token(
    guarded_ingress: Client,
) -> None:
    app = guarded_ingress.app
    listed = open_routes()
    guarded = sorted((_schema_routes(app) | _app_routes(app)) - listed)
    assert len(guarded) >= 12  # the hooks and deliveries APIs at least
    wrong = []
    for method, path in guarded:
        for name, headers in (("no token", {}), ("a wrong token", WRONG)):
            r = await _send(guarded_ingress, method, path, headers)
            if r.status_code != 401 or r.json().get("error") != "unauthorized":
                wrong.append(f"{method} {path} with {name}: {r.status_code} {r.text[:80]}")
        r = await _send(guarded_ingress, method, path, RIGHT)  # the token is what decides
        if r.status_code == 401:
            wrong.append(f"{method} {path} with the right token: 401")
    assert not wrong, "\n".join(wrong)


async def test_the_open_routes_answer_the_same_with_or_without_the_token(
    guarded_ingress: Client,
) -> None:
    for method, path in sorted(open_routes()):
        anonymous = await _send(guarded_ingress, method, path, {})
        with_token = await _send(guarded_ingress, method, path, RIGHT)
        assert anonymous.status_code == with_token.status_code, (method, path)
        if anonymous.status_code == 401:  # the webhook's own check, not the API token's
            assert anonymous.json()["error"] != "unauthorized", (method, path)
