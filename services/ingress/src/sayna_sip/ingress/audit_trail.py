"""Request ids and the API's audit trail: one SIP_AUDIT record per accepted change.

An app-wide middleware, so every route, those added later included, is covered without
code of its own: a POST/PUT/PATCH/DELETE answered 2xx on a guarded route is recorded
before its answer leaves (the answer waits for the PubAck, bounded). A handler may
`note()` what it changed (several hosts, a fingerprint, counts); otherwise the record
takes the host and endpoint from the path and the field names from the JSON body (safe
values only, see `common.audit`). Every answer carries `X-Request-Id` (the caller's, when
it sent a sane one); the webhook, console and health routes are passed through untouched.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from litestar import Request
from litestar.types import ASGIApp, Message, Receive, ReceiveMessage, Scope, Send

from sayna_sip.common import audit
from sayna_sip.common.errors import ConfigError
from sayna_sip.common.hosts import normalize_host
from sayna_sip.ingress import access

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
NOTES_KEY = "sayna_audit"
BODY_KEYS_BYTES = 64 * 1024  # a larger body is recorded without its field names
ENDPOINT_PARAMS = ("endpoint_id", "endpoint", "id")
_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


@dataclass(frozen=True)
class Change:
    """What one accepted request changed, for one host (or none)."""

    host: str | None
    fields: Iterable[str] = ()
    values: dict[str, Any] = field(default_factory=dict)
    endpoint: str | None = None
    action: str | None = None  # default: the route handler's name


def note(request: Request[Any, Any, Any], *changes: Change) -> None:
    """Record these changes for this request (in place of the default one)."""
    state = request.scope.setdefault("state", {})
    state.setdefault(NOTES_KEY, []).extend(changes)


def _incoming_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text = value.decode("latin-1")
            if _SANE_ID.match(text):
                return text
    return "req_" + secrets.token_hex(8)


def middleware(app: ASGIApp) -> ASGIApp:
    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        # Only the API (/sip/…): the webhook, the console and health answers pay nothing.
        if scope["type"] != "http" or not scope.get("path", "").startswith("/sip/"):  # type: ignore[comparison-overlap]
            await app(scope, receive, send)
            return
        rid = _incoming_id(scope)
        writing = scope.get("method") in WRITE_METHODS
        body = bytearray()

        async def teed() -> ReceiveMessage:
            message = await receive()
            if message["type"] == "http.request" and len(body) <= BODY_KEYS_BYTES:
                body.extend(message.get("body", b""))
            return message

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", ()), (b"x-request-id", rid.encode())]
                message = {**message, "headers": headers}
                if writing and 200 <= message["status"] < 300:
                    await _record(scope, rid, bytes(body))
            await send(message)

        await app(scope, teed if writing else receive, sending)

    return wrapped


async def _record(scope: Scope, rid: str, body: bytes) -> None:
    who = access.of(scope)
    if who is None:  # not an API route (the webhook is LiveKit's, not a change)
        return
    ingress = scope["app"].state.ingress
    if ingress.audit is None:
        return
    handler = scope.get("route_handler")
    default_action = str(getattr(handler, "handler_name", "") or scope.get("path", ""))
    path = _default(scope, body)
    notes: list[Change] = (scope.get("state") or {}).get(NOTES_KEY) or [path]
    for change in notes:
        rec = audit.record(
            actor=who.actor, action=change.action or default_action,
            host=change.host or path.host, endpoint=change.endpoint or path.endpoint,
            request_id=rid, fields=change.fields, values=change.values,
        )  # fmt: skip
        stored = await ingress.audit.publish(rec)
        ingress.metrics.audit_records.labels("stored" if stored else "failed").inc()


def _default(scope: Scope, body: bytes) -> Change:
    params = scope.get("path_params") or {}
    host = params.get("host")
    endpoint = next((str(params[p]) for p in ENDPOINT_PARAMS if p in params), None)
    decoded: Any = None
    if body and len(body) <= BODY_KEYS_BYTES:
        try:
            decoded = json.loads(body)
        except ValueError:
            decoded = None
    fields = list(decoded) if isinstance(decoded, dict) else []
    values = {k: v for k, v in decoded.items() if k in audit.SAFE_VALUES} if fields else {}
    return Change(_host(host), fields, values, endpoint)


def _host(value: object) -> str | None:
    if value is None:
        return None
    try:
        return normalize_host(str(value))
    except ConfigError:
        return str(value)[:255]
