"""The refusals of the guards, stated on each route of the OpenAPI document.

The auth guard, the tenant rule (access.py) and the write guard (writeguard.py) answer
before any handler, so a route's own `responses` cannot know which of their 401s and
403s apply to it; hand-written, they drifted (a 403 "not its host's" on routes that
answer 404 there, the write routes silent on what a tenant token is refused). Each
guarded operation's 401 and 403 are written here from the same route facts the guards
read: its methods, its `{host}`, its `host` filter and its `opt`.
"""

from __future__ import annotations

from litestar import Litestar
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.spec import OpenAPI, OpenAPIMediaType, OpenAPIResponse, Operation, Reference
from litestar.routes import HTTPRoute

from sayna_sip.common.labels import ErrorCode
from sayna_sip.ingress import access, writeguard

UNAUTHORIZED = (
    "AUTH_REQUIRED is on and the Bearer token is missing or unknown, or a tenant token "
    f"expired ({ErrorCode.TOKEN_EXPIRED}) or revoked ({ErrorCode.TOKEN_REVOKED})"
)
CROSS_SITE = f"a cross-site browser request (Sec-Fetch-Site, Origin): code {ErrorCode.CROSS_SITE}"
TENANT = "{why} (code {code})"


def apply(openapi: OpenAPI, app: Litestar) -> None:
    paths = openapi.paths or {}
    routes = [r for r in app.routes if isinstance(r, HTTPRoute) and r.path_format in paths]
    for route in routes:  # the /schema pages are not in the document: not guarded
        item = paths[route.path_format]
        for handler in route.route_handlers:
            for method in handler.http_methods:
                operation = getattr(item, method.lower(), None)  # OPTIONS, HEAD: none
                if operation is not None and operation.security:  # an open one: no guard
                    _state(operation, _forbidden(handler, method, route.path_format))


def _forbidden(handler: HTTPRouteHandler, method: str, path: str) -> list[str]:
    """What the guards answer 403 for on this route, beside its own checks."""
    reasons = []
    if method in writeguard.STATE_CHANGING and not handler.opt.get(writeguard.EXEMPT):
        reasons.append(CROSS_SITE)
    refusal = access.refusal(handler, on_host="{host}" in path)
    if refusal is not None:
        reasons.append(TENANT.format(code=ErrorCode.FORBIDDEN, why=refusal))
    return reasons


def _state(operation: Operation, reasons: list[str]) -> None:
    """The guards' 401 and 403 (no 403 when none applies) on `operation`, in the
    ErrorBody of every error; no route writes its own (access_answers is their one place)."""
    responses = dict(operation.responses or {})
    responses["401"] = _error(UNAUTHORIZED)
    if reasons:
        text = "; or ".join(reasons)
        responses["403"] = _error(text[0].upper() + text[1:])
    # In status order, as Litestar lists them: the one added last would come out last.
    operation.responses = dict(sorted(responses.items()))


def _error(description: str) -> OpenAPIResponse:
    body = OpenAPIMediaType(schema=Reference(ref="#/components/schemas/ErrorBody"))
    return OpenAPIResponse(description=description, content={"application/json": body})
