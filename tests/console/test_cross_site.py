"""A page on another site, open in the operator's Chromium, tries to drive the ingress
with AUTH_REQUIRED=false (the dev default) the ways a browser allows without a
preflight: a `no-cors` POST without a body, an untyped Blob body, a `text/plain` body,
a form. The ingress refuses each, and nothing changes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiohttp import web
from nats.js import JetStreamContext

from tests.console.conftest import chromium_page
from tests.fixtures.nats import NatsServer
from tests.ingress.conftest import ingress_config, serve_http

pytestmark = pytest.mark.timeout(60)
HOST = "pbx.tenant-a.example"

ATTACKS = """async (base) => {
  const hook = JSON.stringify({hooks: [{host: "%(host)s", url: "https://attacker.example/x"}]});
  const tries = [
    () => fetch(base + "/sip/hooks/%(host)s/disable", {method: "POST", mode: "no-cors"}),
    () => fetch(base + "/sip/hooks", {method: "POST", mode: "no-cors", body: new Blob([hook])}),
    () => fetch(base + "/sip/hooks", {method: "POST", mode: "no-cors", body: hook,
                                      headers: {"Content-Type": "text/plain"}}),
    () => fetch(base + "/sip/hooks/%(host)s/rotate-secret", {method: "POST", mode: "no-cors"}),
    () => fetch(base + "/sip/dead-letters/redrive", {method: "POST", mode: "no-cors",
                                                     body: JSON.stringify({since: "7d"})}),
  ];
  for (const t of tries) { try { await t(); } catch (e) {} }
  const form = document.createElement("form");
  form.method = "POST";
  form.action = base + "/sip/hooks/%(host)s/test";
  form.target = "sink";
  document.body.append(form);
  const frame = document.createElement("iframe");
  frame.name = "sink";
  document.body.append(frame);
  const loaded = new Promise((ok) => frame.addEventListener("load", ok));
  form.submit();
  await loaded;
  return tries.length + 1;
}""".replace("%(host)s", HOST)


@pytest.fixture
async def open_ingress(
    nats_server: NatsServer, jetstream: JetStreamContext
) -> AsyncIterator[httpx.AsyncClient]:
    """The ingress with AUTH_REQUIRED=false and SIP_SECRETS_KEY, one runtime hook set."""
    key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
    config = ingress_config(nats_server.url, AUTH_REQUIRED="false", SIP_SECRETS_KEY=key)
    async with serve_http(config) as api:
        hook = {"host": HOST, "url": "https://hooks.tenant-a.example/sip", "secret": "s" * 32}
        assert (await api.post("/sip/hooks", json={"hooks": [hook]})).status_code == 200
        yield api


@pytest.fixture
async def attacker() -> AsyncIterator[str]:
    """A page at http://localhost:PORT: another site than the ingress's 127.0.0.1, on the
    same machine (Chromium lets local pages reach local addresses)."""

    async def page(_: web.Request) -> web.Response:
        return web.Response(text="<p>cat pictures</p>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/", page)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://localhost:{port}/"
    await runner.cleanup()


async def test_a_cross_site_page_cannot_change_anything(
    open_ingress: httpx.AsyncClient, attacker: str
) -> None:
    before = (await open_ingress.get("/sip/hooks")).json()
    seen: list[tuple[str, str, int]] = []
    async with chromium_page() as page:

        async def answered(response: Any) -> None:
            if "/sip/" in response.url:
                seen.append((response.request.method, response.url, response.status))

        page.on("response", answered)
        await page.goto(attacker)
        tried = await page.evaluate(ATTACKS, str(open_ingress.base_url).rstrip("/"))

    assert (await open_ingress.get("/sip/hooks")).json() == before, json.dumps(seen)
    assert len(seen) == tried and {status for _, _, status in seen} <= {403, 415}, seen
