"""POST /livekit/webhook: LiveKit's webhooks, verified, stored, then acknowledged.

Litestar routes the request and documents it in /schema; the answer comes from the
route's raw ASGI middleware (`fast_path`), which skips Litestar's per-request
Request, handler and Response machinery on the service's hot path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar import Request, post
from litestar.enums import ParamType
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import (
    OpenAPIMediaType,
    OpenAPIType,
    Operation,
    RequestBody,
    Schema,
)
from litestar.openapi.spec import Parameter as OpenAPIParameter

from sayna_sip.ingress import fast_path
from sayna_sip.ingress.schemas import ErrorBody, Received


@dataclass
class _WebhookOperation(Operation):
    """The route reads the raw body itself (for the hash), so describe it here."""

    def __post_init__(self) -> None:
        self.parameters = [
            OpenAPIParameter(
                name="Authorization",
                param_in=ParamType.HEADER,
                required=True,
                description="LiveKit's signed HS256 JWT, raw or as `Bearer <jwt>`",
                schema=Schema(type=OpenAPIType.STRING),
            )
        ]
        obj = OpenAPIMediaType(schema=Schema(type=OpenAPIType.OBJECT))
        self.request_body = RequestBody(
            description="The LiveKit WebhookEvent (protojson), signed by the Authorization JWT",
            required=True,
            content={
                "application/webhook+json": obj,
                "application/json": obj,
            },
        )


def _err(description: str) -> ResponseSpec:
    return ResponseSpec(data_container=ErrorBody, description=description, generate_examples=False)


@post(
    "/livekit/webhook",
    status_code=200,
    operation_class=_WebhookOperation,
    summary="Receive a LiveKit webhook",
    description=(
        "Verifies LiveKit's HS256 token (raw JWT or `Bearer <jwt>`, issuer LIVEKIT_API_KEY) "
        "and the body's SHA-256, stores the exact body in JetStream LK_EVENTS "
        "(deduplicated on the event id), and answers only after JetStream acknowledged it."
    ),
    responses={
        400: _err("Body is not a JSON object"),
        401: _err("Missing, invalid or expired token, wrong issuer, or body hash mismatch"),
        413: _err("Body larger than the configured limit (default 1 MiB)"),
        503: _err("LiveKit credentials not configured, or NATS unavailable (LiveKit retries)"),
    },
    tags=["webhooks"],
    middleware=[fast_path.webhook_fast_path],
)
async def receive_webhook(request: Request[Any, Any, Any]) -> Received:
    """Documents the route; `webhook_fast_path` (its middleware) answers every request."""
    raise RuntimeError("POST /livekit/webhook is answered by webhook_fast_path")
