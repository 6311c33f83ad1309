"""The forwarder's small HTTP side: `/healthz`, `/readyz` and `/metrics` (Prometheus),
served by uvicorn on `forwarder.port` (0 = any free port, for tests)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from typing import Any

import uvicorn
from prometheus_client import CollectorRegistry

from sayna_sip.common.metrics import metrics_app

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def health_app(
    registry: CollectorRegistry,
    ready: Callable[[], bool],
    alive: Callable[[], bool] = lambda: True,
) -> ASGIApp:
    metrics = metrics_app(registry)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        if path == "/metrics":
            await metrics(scope, receive, send)
            return
        if path == "/healthz":
            status, body = (200, b'{"status":"ok"}') if alive() else (503, _LOST)
        elif path == "/readyz":
            ok = ready()
            status, body = (200, b'{"status":"ready"}') if ok else (503, b'{"status":"not ready"}')
        else:
            status, body = 404, b'{"error":"not_found"}'
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


_LOST = b'{"error":"nats_closed","message":"the NATS connection was closed for good; restart"}'


class _Server(uvicorn.Server):
    """uvicorn without its signal capture: the forwarder's main() owns SIGTERM/SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class HealthServer:
    def __init__(self, app: ASGIApp, host: str, port: int) -> None:
        config = uvicorn.Config(
            app, host=host, port=port, log_config=None, access_log=False, lifespan="off"
        )
        self._server = _Server(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._server.serve(), name="forwarder-health")
        while not self._server.started:
            if self._task.done():
                await self._task  # re-raises why it could not start (port in use)
                raise RuntimeError("health server stopped during start")
            await asyncio.sleep(0.01)

    @property
    def port(self) -> int:
        sockets = self._server.servers[0].sockets
        return int(sockets[0].getsockname()[1])

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task
