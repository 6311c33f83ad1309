"""Ingress test helpers: configs built from an env mapping, apps served in-process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import httpx
import pytest
import uvicorn
from litestar import Litestar
from litestar.testing import AsyncTestClient
from nats.js import JetStreamContext

from sayna_sip.common.config import ServerConfig
from sayna_sip.ingress.app import create_app
from tests.fixtures.livekit import API_KEY, API_SECRET
from tests.fixtures.nats import NatsServer

if TYPE_CHECKING:
    from nats.aio.client import Client as Nats

    from tests.ingress.tenants import Tenants

STATIC_HOST = "static.example.com"
Client = AsyncTestClient[Litestar]


def ingress_config(nats_url: str, **env: str | None) -> ServerConfig:
    """SIP on, LiveKit credentials set, one static hook; `env` overrides (None removes)."""
    base: dict[str, str | None] = {
        "NATS_URL": nats_url,
        "LIVEKIT_API_KEY": API_KEY,
        "LIVEKIT_API_SECRET": API_SECRET,
        "SIP_ROOM_PREFIX": "sip-",
        "SIP_ALLOWED_ADDRESSES": "10.0.0.1",
        "SIP_HOOKS_JSON": f'[{{"host":"{STATIC_HOST}","url":"https://{STATIC_HOST}/hook"}}]',
    }
    base.update(env)
    return ServerConfig.from_env({k: v for k, v in base.items() if v is not None})


@asynccontextmanager
async def serve(config: ServerConfig, **kwargs: float) -> AsyncIterator[Client]:
    """The ingress app with its lifespan running, behind an in-process HTTP client."""
    async with AsyncTestClient(create_app(config, **kwargs), timeout=10) as client:
        yield client


@asynccontextmanager
async def serve_http(config: ServerConfig, **kwargs: float) -> AsyncIterator[httpx.AsyncClient]:
    """The ingress under a real uvicorn server on a random port, and a client for it."""
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(config, **kwargs),
            host="127.0.0.1",
            port=0,
            lifespan="on",
            log_config=None,
            access_log=False,
            # a request still waiting at the end (a test that failed on it) must not
            # hold the teardown for ever
            timeout_graceful_shutdown=5,
        )
    )
    task = asyncio.create_task(server.serve())
    try:
        await wait_until(lambda: _started(server, task))
        port = server.servers[0].sockets[0].getsockname()[1]
        # JSON by default, as every API client must send it (bodyless changes too).
        json_client = {"Content-Type": "application/json"}
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base, timeout=10, headers=json_client) as client:
            yield client
    finally:
        server.should_exit = True
        await task


async def _started(server: uvicorn.Server, task: asyncio.Task[None]) -> bool:
    if task.done():
        task.result()  # surface a failed start
        raise RuntimeError("uvicorn exited during start")
    return server.started


@pytest.fixture
async def ingress(nats_server: NatsServer, jetstream: JetStreamContext) -> AsyncIterator[Client]:
    """An ingress (SIP on, credentials set) on a NATS server with the full topology."""
    async with serve(ingress_config(nats_server.url)) as client:
        yield client


async def wait_until(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    """Poll `check` until it holds; fail the test after `timeout` seconds."""
    async with asyncio.timeout(timeout):
        # Polling on purpose: the condition lives in another process (NATS, a server).
        while not await check():  # noqa: ASYNC110
            await asyncio.sleep(0.05)


@pytest.fixture
async def tenants(
    nats_server: NatsServer, jetstream: JetStreamContext, nats_client: Nats
) -> AsyncIterator[Tenants]:
    """Two tenants (auth on) with hooks, records, dead letters and tokens (tenants.py)."""
    from tests.ingress.tenants import open_tenants  # it builds on the helpers above

    async with open_tenants(nats_server, jetstream, nats_client) as t:
        yield t
