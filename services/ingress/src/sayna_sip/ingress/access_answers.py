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
from litestar.openapi.spec import OpenAPI, OpenAPIResponse, Operation, Reference
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
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or route.path_format not in paths:
            continue
        item = paths[route.path_format]
        for handler in route.route_handlers:
            for method in handler.http_methods:
                operation = getattr(item, method.lower(), None)
                if not isinstance(operation, Operation) or not operation.security:
                    continue  # an open route: no token, no tenant rule
                reasons = []
                if method in writeguard.STATE_CHANGING and not handler.opt.get(writeguard.EXEMPT):
                    reasons.append(CROSS_SITE)
                refusal = access.refusal(handler, route.path_format)
                if refusal is not None:
                    reasons.append(TENANT.format(code=ErrorCode.FORBIDDEN, why=refusal))
                _state(operation, reasons)


def _state(operation: Operation, reasons: list[str]) -> None:
    responses = operation.responses or {}
    _describe(responses, "401", UNAUTHORIZED)
    if reasons:
        text = "; or ".join(reasons)
        _describe(responses, "403", text[0].upper() + text[1:])
    else:
        responses.pop("403", None)
    # In status order, as Litestar lists them: the one added last would come out last.
    operation.responses = dict(sorted(responses.items()))


def _describe(responses: dict[str, OpenAPIResponse | Reference], status: str, text: str) -> None:
    answer = responses.get(status)
    if isinstance(answer, OpenAPIResponse):
        answer.description = text
    else:  # not declared by the route: the ErrorBody the others use
        template = responses.get("400") or responses.get("404") or responses.get("503")
        content = template.content if isinstance(template, OpenAPIResponse) else None
        responses[status] = OpenAPIResponse(description=text, content=content)
