"""The webhook route's answer as a raw ASGI app: the ingress's hot path.

Litestar's per-request machinery (Request object, handler call, response building)
cost about a quarter of the ingress's CPU per webhook under load. This middleware,
installed on the documented POST /livekit/webhook route only, reads the
Authorization header and the body straight from the ASGI scope and messages and
writes the 200 answer itself. Errors are raised as before, so Litestar's exception
handlers still write every error answer (same status codes, same bodies).
"""

from __future__ import annotations

from litestar.exceptions import ClientException, InternalServerException
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from sayna_sip.ingress.errors import PayloadTooLarge
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
