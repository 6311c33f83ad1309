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


def scope(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler, who: Access
) -> None:
    """Admit a tenant to this route, narrow it, or refuse (404 / 403), as the module says."""
    assert who.host is not None
    mode = handler.opt.get("tenant")
    path_host = connection.path_params.get("host")
    if path_host is not None:
        if _normal(str(path_host)) != who.host:
            raise hidden()
        if mode == "admin":
            raise Forbidden("this route is for admins; a tenant token cannot use it")
        return
    if mode == "self":
        return
    if mode != "admin" and "host" in handler.parsed_fn_signature.parameters:
        _filter_query(connection, who.host)
        return
    raise Forbidden("a tenant token reaches only its own host's routes")


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
