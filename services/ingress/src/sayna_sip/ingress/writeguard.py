"""The guard on every state-changing route (POST, PUT, PATCH, DELETE): JSON only, and no
cross-site browser requests.

With `AUTH_REQUIRED=false` nothing else stops a page on another origin from driving the
API through the operator's browser: a form, a `no-cors` fetch or a `Blob` body needs no
preflight as long as its Content-Type is not JSON. Requiring `application/json` (bodyless
routes too) forces a preflight the ingress never grants, and `Sec-Fetch-Site` (or, from
older browsers, `Origin`) refuses what a browser marks cross-site. Applied to the whole
app, so a route added later is covered without asking; a route that is not for browsers
(LiveKit's signed webhook) opts out with `opt={EXEMPT: True}`.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from litestar.datastructures import Headers
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIMediaType, Operation, RequestBody, Schema
from litestar.types import ASGIApp, Receive, Scope, Send

from sayna_sip.common.labels import ErrorCode
from sayna_sip.ingress.errors import Forbidden, UnsupportedMediaType
from sayna_sip.ingress.schemas import ErrorBody

EXEMPT = "not_browser_facing"  # route opt: skip the guard (signed callers, not browsers)
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_SAME = frozenset({"same-origin", "none"})  # "none": typed by the user, not sent by a page

# What every state-changing route answers before its handler runs, for its OpenAPI entry
# (its 403, cross_site, with the other guards' refusals: access_answers.py).
RESPONSES = {
    415: ResponseSpec(ErrorBody, description="Content-Type other than application/json "
                      "(bodyless routes too)", generate_examples=False),
}  # fmt: skip


def write_guard(app: ASGIApp) -> ASGIApp:
    """App-level middleware: every route's state-changing requests pass `check` first."""

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        method = scope.get("method", "")  # absent on a websocket (the ingress has none)
        if method in STATE_CHANGING and not scope["route_handler"].opt.get(EXEMPT):
            check(scope, method)
        await app(scope, receive, send)

    return guarded


def check(scope: Scope, method: str) -> None:
    """403 for a cross-site browser request, 415 for anything but a JSON Content-Type."""
    headers = Headers.from_scope(scope)
    refusal = cross_site(headers)
    if refusal:
        raise Forbidden(refusal, ErrorCode.CROSS_SITE)
    media = (headers.get("content-type") or "").split(";")[0].strip().lower()
    if not (media == "application/json" or media.endswith("+json")):
        raise UnsupportedMediaType(
            f"{method} needs Content-Type: application/json (even without a body), "
            f"not {media[:64] or 'none'}"
        )


def cross_site(headers: Headers) -> str | None:
    """Why the browser that sent `headers` did so for another site's page, or None."""
    fetch_site = headers.get("sec-fetch-site")
    if fetch_site is not None:  # the browser's own verdict, right behind proxies too
        if fetch_site.lower() in _SAME:
            return None
        return f"cross-site request refused (Sec-Fetch-Site: {fetch_site[:32]})"
    origin = headers.get("origin")
    if origin is None:  # not a browser, or a same-origin GET-like request
        return None
    hosts = {h.strip().lower() for h in (headers.get("host"), headers.get("x-forwarded-host")) if h}
    netloc = urlsplit(origin).netloc.lower() if origin != "null" else ""
    if netloc and netloc in hosts:
        return None
    return f"cross-origin request refused (Origin: {origin[:80]})"


@dataclass
class JsonOperation(Operation):
    """The OpenAPI entry of a change without a body (or with an optional one): it still
    takes a JSON request, so the schema says so and clients send the Content-Type."""

    def __post_init__(self) -> None:
        if self.request_body is None:
            any_json = OpenAPIMediaType(schema=Schema(description="ignored; `{}` will do"))
            self.request_body = RequestBody(content={"application/json": any_json})
        if isinstance(self.request_body, RequestBody):
            self.request_body.required = True
