"""Security headers on every answer, errors included: nothing the ingress serves is to be
sniffed as another type, framed, or allowed to load anything, unless a route says
otherwise (the console sets its own, looser CSP for its scripts and styles)."""

from __future__ import annotations

from litestar.types import Message, Scope

CSP = "default-src 'none'; frame-ancestors 'none'"
_DEFAULTS = ((b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"))
# The OpenAPI viewer pages load their renderer from a CDN: a CSP of 'none' would blank them.
_VIEWER = "/schema"


async def add_security_headers(message: Message, scope: Scope) -> None:
    """Litestar's `before_send` hook: it sees every response start, error answers too."""
    if message["type"] != "http.response.start":
        return
    path = scope.get("path", "")
    viewer = path.startswith(_VIEWER) and not path.endswith((".json", ".yaml", ".yml"))
    headers = list(message.get("headers", ()))
    present = {name.lower() for name, _ in headers}
    for name, value in _DEFAULTS:
        if name not in present and not (viewer and name == b"content-security-policy"):
            headers.append((name, value))
    message["headers"] = headers
