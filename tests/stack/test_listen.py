"""`sayna-sip listen --forward-to` as a tenant runs it: a real forwarder delivers to it
over HTTPS (the dev CA of its data dir trusted, as `up` does), it shows the delivery
with its signature verified and relays it to a plain-HTTP dev server, whose answer it
shows and hands back; a dev server that is down gets the forwarder a 502 and a retry."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from nats.js import JetStreamContext
from standardwebhooks.webhooks import Webhook

from sayna_sip.cli import listen
from sayna_sip.common.errors import ConfigError
from tests.forwarder.conftest import StartForwarder, drained, publish, put_hook
from tests.stack.test_up import Proc, free_port

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
HOST = "a.example.com"
pytestmark = pytest.mark.timeout(60)


@dataclass
class DevServer:
    """A tenant's plain-HTTP app: records what it gets, answers 200."""

    port: int
    got: list[tuple[bytes, dict[str, str], str]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/app/hook"

    async def start(self) -> None:
        async def hook(request: web.Request) -> web.Response:
            self.got.append((await request.read(), dict(request.headers), request.path))
            self.arrived.set()
            return web.Response(status=202, text="queued by the dev app", headers={"X-No": "1"})

        app = web.Application()
        app.router.add_post("/app/hook", hook)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


@pytest.fixture
async def dev_server() -> AsyncIterator[DevServer]:
    server = DevServer(free_port())
    yield server
    await server.stop()


async def start_listen(tmp_path: Path, dev: DevServer) -> tuple[Proc, int]:
    port = free_port()
    args = ["listen", "--port", str(port), "--data-dir", str(tmp_path / "data")]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIP_", "NATS_"))}
    env["PYTHONUNBUFFERED"] = "1"
    proc = await Proc.start([*args, "--secret", SECRET, "--forward-to", dev.url], env)
    await proc.wait_for(r"^listening on https://localhost:\d+")
    return proc, port


async def forwarder_to_listen(
    tmp_path: Path, start_forwarder: StartForwarder, jetstream: JetStreamContext, port: int,
    schedule: str = "0s",
) -> None:  # fmt: skip
    await put_hook(jetstream, HOST, f"https://localhost:{port}/webhooks")
    await start_forwarder(
        SIP_HOOK_SECRET=SECRET,
        SIP_HOOK_CA_BUNDLE=str(tmp_path / "data" / "dev-ca" / "ca.pem"),
        SIP_HOOK_ALLOW_NETWORKS="127.0.0.0/8,::1/128",
        SIP_RETRY_SCHEDULE=schedule,
    )


async def test_listen_shows_a_real_delivery_verified_and_relays_it_to_a_plain_http_app(
    tmp_path: Path, start_forwarder: StartForwarder, jetstream: JetStreamContext,
    dev_server: DevServer,
) -> None:  # fmt: skip
    await dev_server.start()
    proc, port = await start_listen(tmp_path, dev_server)
    try:
        await forwarder_to_listen(tmp_path, start_forwarder, jetstream, port)
        event_id, body = await publish(jetstream, HOST)

        await asyncio.wait_for(dev_server.arrived.wait(), 10)
        await proc.wait_for(r"^  answer 202 from ")
        await drained(jetstream)  # the forwarder took the dev app's 202 as delivered
    finally:
        await proc.stop()

    (got, headers, path) = dev_server.got[0]
    assert got == body and path == "/app/hook"
    assert headers["webhook-id"] == event_id
    Webhook(SECRET).verify(got, headers, json_parse=False)  # the relayed copy verifies too
    assert headers["User-Agent"].startswith("sayna-sip/")
    out = "\n".join(proc.lines)
    assert f"webhook-id={event_id} room=sip-room-1 bytes={len(body)} signature=verified " \
        "path=/webhooks" in out  # fmt: skip
    assert f"  webhook-signature: {headers['webhook-signature']}" in out
    assert f"  body: {body.decode()}" in out
    assert proc.matching(rf"^  answer 202 from {dev_server.url} in \d+ ms: queued by the dev app$")


async def test_a_dev_server_that_is_down_gets_the_forwarder_a_502_and_the_retry_arrives(
    tmp_path: Path, start_forwarder: StartForwarder, jetstream: JetStreamContext,
    dev_server: DevServer,
) -> None:  # fmt: skip
    proc, port = await start_listen(tmp_path, dev_server)
    try:
        assert proc.matching(rf"^note: nothing answers at {dev_server.url} yet")
        await forwarder_to_listen(tmp_path, start_forwarder, jetstream, port, "0s,300ms,1s,2s")
        event_id, _ = await publish(jetstream, HOST)
        await proc.wait_for(
            rf"^  forward failed: the dev server at {dev_server.url} is not answering "
            r"\(connection refused\): answered 502, the forwarder will retry$"
        )
        await dev_server.start()  # the tenant starts the app: the next retry gets through

        await asyncio.wait_for(dev_server.arrived.wait(), 10)
        await proc.wait_for(r"^  answer 202 from ")
        await drained(jetstream)
    finally:
        await proc.stop()
    assert dev_server.got[0][1]["webhook-id"] == event_id


@pytest.mark.parametrize("url", ["localhost:3000", "ftp://x/y", "http:///path"])
def test_forward_to_must_be_an_http_url(url: str) -> None:
    with pytest.raises(ConfigError, match="--forward-to must be an http:// or https:// URL"):
        listen.check_target(url)
