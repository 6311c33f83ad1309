"""POST /livekit/webhook: LiveKit's webhooks, verified, stored, then acknowledged.

Litestar routes the request and documents it in /schema; the answer comes from the
route's raw ASGI middleware (`webhook_fast_path`), the ingress's hot path. Litestar's
per-request machinery (Request object, handler call, response building) cost about a
quarter of the ingress's CPU per webhook under load; the middleware reads the
Authorization header and the body straight from the ASGI scope and messages and writes
the 200 answer itself. Errors are raised as before, so Litestar's exception handlers
still write every error answer (same status codes, same bodies).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar import Request, post
from litestar.enums import ParamType
from litestar.exceptions import ClientException, InternalServerException
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import (
    OpenAPIMediaType,
    OpenAPIType,
    Operation,
    RequestBody,
    Schema,
)
from litestar.openapi.spec import Parameter as OpenAPIParameter
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from sayna_sip.ingress import writeguard
from sayna_sip.ingress.errors import PayloadTooLarge
from sayna_sip.ingress.schemas import ErrorBody, Received
from sayna_sip.ingress.state import Ingress

# Exactly what Litestar sent for `Received()`: same body, same headers.
_OK_BODY = b'{"status":"received"}'
_OK_START: Message = {
    "type": "http.response.start",
    "status": 200,
    "headers": [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(_OK_BODY)).encode()),
    ],
}
_OK_END: Message = {"type": "http.response.body", "body": _OK_BODY, "more_body": False}


def _headers(scope: Scope) -> tuple[str | None, bytes | None]:
    """The first Authorization and Content-Length values, as Litestar's `Headers.get`."""
    authorization: bytes | None = None
    length: bytes | None = None
    for name, value in scope["headers"]:
        if name == b"authorization" and authorization is None:
            authorization = value
        elif name == b"content-length" and length is None:
            length = value
    return (authorization.decode("latin-1") if authorization is not None else None), length


async def _read_body(receive: Receive, length: bytes | None, configured: int) -> bytes:
    """The whole body, refused (413) once it is known to exceed the configured limit.

    Same checks, in the same order, as Litestar's `Request.body()` did here.
    """
    limit = configured
    announced: int | None = None
    if length is not None:
        try:
            announced = int(length)
        except ValueError:
            raise ClientException(f"Invalid content-length: {length.decode('latin-1')!r}") from None
    if announced is not None and announced > limit:
        raise PayloadTooLarge(f"webhook body exceeds {configured} bytes")
    chunks: list[bytes] = []
    total = 0
    while True:
        message = await receive()
        if message["type"] == "http.request":
            chunk = message.get("body", b"")
            if chunk:
                total += len(chunk)
                if total > limit:  # the limit applies to bytes streamed, too
                    raise PayloadTooLarge(f"webhook body exceeds {configured} bytes")
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        elif message["type"] == "http.disconnect":
            raise InternalServerException("client disconnected prematurely")
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def webhook_fast_path(app: ASGIApp) -> ASGIApp:  # Litestar calls middleware(app=...)
    """Route middleware that answers POST /livekit/webhook without calling the handler."""

    async def answer(scope: Scope, receive: Receive, send: Send) -> None:
        ingress: Ingress = scope["app"].state.ingress
        authorization, length = _headers(scope)

        async def read_body() -> bytes:
            return await _read_body(receive, length, ingress.body_limit())

        await ingress.intake.receive(authorization, read_body)
        await send(_OK_START)
        await send(_OK_END)

    return answer


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
    middleware=[webhook_fast_path],
    opt={writeguard.EXEMPT: True},  # LiveKit signs every call; browsers cannot forge that
)
async def receive_webhook(request: Request[Any, Any, Any]) -> Received:
    """Documents the route; `webhook_fast_path` (its middleware) answers every request."""
    raise RuntimeError("POST /livekit/webhook is answered by webhook_fast_path")
