"""Who is calling (admin, a tenant token, or anyone with auth off) and what a tenant reaches.

The rule is read from the route, not written per handler, so new routes join it:
- a route with a `{host}` path parameter: the tenant's own host only; any other host is
  404 exactly as a host without a hook (never 403: a tenant cannot learn which hosts exist);
- a route without one that takes a `host` query filter (a list): the filter is set to the
  tenant's host whatever the query says;
- a route marked `opt={"tenant": "self"}` checks the tenant itself (an event's record, a
  redrive body); `opt={"tenant": "admin"}` is for admins only (403 on the tenant's own host);
- anything else (global lists, admin routes): 403 `forbidden`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from sayna_sip.common.errors import ConfigError
from sayna_sip.common.hosts import normalize_host
from sayna_sip.common.labels import ErrorCode
from sayna_sip.ingress.errors import Forbidden, NotFound

STATE_KEY = "sayna_access"


@dataclass(frozen=True)
class Access:
    actor: str  # admin | anonymous | the tenant token's id (tok_…)
    host: str | None = None  # the tenant's host; None for admin and anonymous

    def host_filter(self, requested: str | None) -> str | None:
        """The host a list or bulk action is limited to: the tenant's, else as asked."""
        return self.host if self.host is not None else requested

    def sees(self, host: str | None) -> bool:
        return self.host is None or host == self.host


ADMIN = Access("admin")
ANONYMOUS = Access("anonymous")


def hidden() -> NotFound:
    """Another host, to a tenant: the same answer whether it exists or not."""
    return NotFound("no hook for this host", ErrorCode.HOOK_NOT_FOUND)


def remember(connection: ASGIConnection[Any, Any, Any, Any], who: Access) -> None:
    connection.scope.setdefault("state", {})[STATE_KEY] = who


def of(scope: Any) -> Access | None:
    """The caller the guard admitted on this request, if a guarded route ran."""
    state = scope.get("state") or {}
    found = state.get(STATE_KEY)
    return found if isinstance(found, Access) else None


def provide_access(request: Request[Any, Any, Any]) -> Access:
    return of(request.scope) or ANONYMOUS


ADMIN_ROUTE = "this route is for admins; a tenant token cannot use it"
GLOBAL_ROUTE = "a tenant token reaches only its own host's routes"


def scope(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler, who: Access
) -> None:
    """Admit a tenant to this route, narrow it, or refuse (404 / 403), as the module says."""
    assert who.host is not None
    path_host = connection.path_params.get("host")
    if path_host is not None and _normal(str(path_host)) != who.host:
        raise hidden()
    refused = refusal(handler, on_host=path_host is not None)
    if refused is not None:
        raise Forbidden(refused)
    if path_host is None and handler.opt.get("tenant") != "self":
        _filter_query(connection, who.host)


def refusal(handler: BaseRouteHandler, *, on_host: bool) -> str | None:
    """Why a tenant token is refused (403) on this route even for its own host, or None
    when it is admitted there (`on_host`: the route's path has a `{host}`)."""
    mode = handler.opt.get("tenant")
    if on_host:
        return ADMIN_ROUTE if mode == "admin" else None
    if mode == "self":
        return None
    if mode != "admin" and "host" in handler.parsed_fn_signature.parameters:
        return None  # a list or bulk action: limited to the tenant's host
    return GLOBAL_ROUTE


def _normal(host: str) -> str | None:
    try:
        return normalize_host(host)
    except ConfigError:
        return None


def _filter_query(connection: ASGIConnection[Any, Any, Any, Any], host: str) -> None:
    """`host=<the tenant's>` in place of whatever the query asked. Runs in the guard,
    before Litestar parses the query for the handler (it caches the parse)."""
    raw = connection.scope.get("query_string", b"").decode("latin-1")
    pairs = [(k, v) for k, v in parse_qsl(raw, keep_blank_values=True) if k != "host"]
    pairs.append(("host", host))
    connection.scope["query_string"] = urlencode(pairs).encode("latin-1")
