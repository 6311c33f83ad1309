"""The router's small HTTP surface: `/healthz`, `/readyz` and `/metrics` (Prometheus).

A bare ASGI callable, served by uvicorn next to the consumer: three routes do not need a
web framework, and the router package stays light.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import CollectorRegistry

from sayna_sip.common.metrics import metrics_app

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
# readiness() -> (ready, reason)
Readiness = Callable[[], Awaitable[tuple[bool, str]]]


def health_app(
    registry: CollectorRegistry, readiness: Readiness, alive: Callable[[], bool] = lambda: True
) -> Any:
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
            lost = "the NATS connection was closed for good; restart"
            await _json(send, 503, {"error": "nats_closed", "message": lost})
        elif path == "/readyz":
            ready, reason = await readiness()
            body = {"status": "ready"} if ready else {"status": "not ready", "reason": reason}
            await _json(send, 200 if ready else 503, body)
        else:
            await _json(send, 404, {"error": "not_found", "message": f"no route {path}"})

    return app


async def _json(send: Send, status: int, body: dict[str, str]) -> None:
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(data)),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})
