"""`Allow` on OPTIONS answers lists every method of the path.

Litestar merges handlers of one path declared in different routers into one route but
keeps the OPTIONS handler of the first, which lists that router's methods only
(`/sip/hooks` answered `Allow: DELETE, OPTIONS`, not GET or POST). The route the request
matched knows them all, so the answer is rewritten from it."""

from __future__ import annotations

from typing import Any

from litestar.routes import HTTPRoute
from litestar.types import Message, Scope


async def fix_allow(message: Message, scope: Scope) -> None:
    """Litestar's `before_send` hook: OPTIONS answers only."""
    if message["type"] != "http.response.start" or scope.get("method") != "OPTIONS":
        return
    methods = _methods(scope)
    if methods is None:
        return
    headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != b"allow"]
    headers.append((b"allow", ", ".join(sorted(methods)).encode()))
    message["headers"] = headers


def _methods(scope: Scope) -> set[str] | None:
    template = scope.get("path_template")
    app: Any = scope.get("app")
    if template is None or app is None:
        return None
    for route in app.routes:
        if isinstance(route, HTTPRoute) and template in (route.path, route.path_format):
            return set(route.methods)
    return None
