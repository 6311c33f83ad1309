"""The small HTTP side of the router and the forwarder: `/healthz`, `/readyz` and
`/metrics` (Prometheus), a bare ASGI callable served by uvicorn next to the consumer.

Three routes do not need a web framework. uvicorn runs without its signal capture: the
service's `main` owns SIGTERM/SIGINT (`startup.until_signal`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any

import uvicorn
from prometheus_client import CollectorRegistry

from sayna_sip.common.labels import ErrorCode
from sayna_sip.common.metrics import metrics_app

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass(frozen=True)
class NotReady:
    """Why /readyz answers 503: the body is `{"error": code, "message": message}`, as the
    ingress answers it (nats_unavailable, topology_missing, not_ready)."""

    code: ErrorCode
    message: str


# readiness() -> None when ready
Readiness = Callable[[], Awaitable[NotReady | None]]

LOST = "the NATS connection was closed for good; restart"


def health_app(
    registry: CollectorRegistry, readiness: Readiness, alive: Callable[[], bool] = lambda: True
) -> ASGIApp:
    metrics = metrics_app(registry)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # lifespan: nothing to start, the service owns its resources
        path = scope["path"]
        if path == "/metrics":
            await metrics(scope, receive, send)
        elif path == "/healthz" and alive():
            await _json(send, 200, {"status": "ok"})
        elif path == "/healthz":
            await _json(send, 503, {"error": ErrorCode.NATS_CLOSED, "message": LOST})
        elif path == "/readyz":
            why = await readiness()
            if why is None:
                await _json(send, 200, {"status": "ready"})
            else:
                await _json(send, 503, {"error": why.code, "message": why.message})
        else:
            await _json(send, 404, {"error": ErrorCode.NOT_FOUND, "message": f"no route {path}"})

    return app


async def _json(send: Send, status: int, body: dict[str, str]) -> None:
    data = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(data))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


class _Server(uvicorn.Server):
    """uvicorn without its signal capture: the service's main() owns SIGTERM/SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class HealthServer:
    """Serves `app` on `host:port` (0 = any free port, for tests) until `stop()`."""

    def __init__(self, app: ASGIApp, host: str, port: int, name: str) -> None:
        config = uvicorn.Config(
            app, host=host, port=port, log_config=None, access_log=False, lifespan="off"
        )
        self._server = _Server(config)
        self._name = name
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._server.serve(), name=self._name)
        while not self._server.started:  # uvicorn offers no startup event to await
            if self._task.done():
                await self._task  # re-raises why it could not start (port in use)
                raise RuntimeError(f"{self._name} server stopped during start")
            await asyncio.sleep(0.01)

    @property
    def port(self) -> int:
        """The bound port (after start)."""
        sockets = self._server.servers[0].sockets
        return int(sockets[0].getsockname()[1])

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task
