"""The tenant rule of access.py on routes the API may add later, as the guard reads them
from the route: its `{host}` path parameter, its `host` query filter and its `opt` mark."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from sayna_sip.ingress import access
from sayna_sip.ingress.errors import Forbidden, NotFound

A = "pbx.tenant-a.example"
TENANT = access.Access("tok_a", A)


def _route(mode: str | None, *params: str) -> Any:
    opt = {"tenant": mode} if mode else {}
    return SimpleNamespace(opt=opt, parsed_fn_signature=SimpleNamespace(parameters=set(params)))


def _call(path_host: str | None = None, query: bytes = b"") -> Any:
    params = {"host": path_host} if path_host is not None else {}
    return SimpleNamespace(path_params=params, scope={"query_string": query})


@pytest.mark.parametrize("mode", [None, "self"])
def test_its_host_in_the_path_admits_a_tenant_in_any_spelling(mode: str | None) -> None:
    for spelling in (A, "PBX.Tenant-A.example", f"{A}."):
        access.scope(_call(spelling), _route(mode, "host"), TENANT)


@pytest.mark.parametrize("other", ["pbx.tenant-b.example", "not a host", ""])
def test_another_host_in_the_path_is_not_found(other: str) -> None:
    with pytest.raises(NotFound) as refused:
        access.scope(_call(other), _route(None, "host"), TENANT)
    assert refused.value.code == "hook_not_found"
    assert refused.value.message == "no hook for this host"


def test_an_admin_route_of_its_own_host_is_forbidden() -> None:
    with pytest.raises(Forbidden):
        access.scope(_call(A), _route("admin", "host"), TENANT)


def test_a_host_filter_is_set_to_the_tenants_host_and_the_rest_of_the_query_kept() -> None:
    call = _call(query=b"host=pbx.tenant-b.example&limit=5&host=x&since=")
    access.scope(call, _route(None, "host", "limit"), TENANT)
    assert call.scope["query_string"] == b"limit=5&since=&host=pbx.tenant-a.example"


def test_an_admin_route_with_a_host_filter_stays_closed_to_tenants() -> None:
    call = _call(query=b"host=pbx.tenant-b.example")
    with pytest.raises(Forbidden):
        access.scope(call, _route("admin", "host"), TENANT)
    assert call.scope["query_string"] == b"host=pbx.tenant-b.example"


def test_a_route_marked_self_checks_the_tenant_itself_and_keeps_its_query() -> None:
    call = _call(query=b"host=pbx.tenant-b.example")
    access.scope(call, _route("self", "host"), TENANT)
    assert call.scope["query_string"] == b"host=pbx.tenant-b.example"


def test_a_route_without_host_or_mark_is_forbidden() -> None:
    with pytest.raises(Forbidden):
        access.scope(_call(), _route(None, "limit"), TENANT)


def test_the_caller_is_read_back_from_the_request_and_is_anonymous_else() -> None:
    conn = SimpleNamespace(scope={})
    assert access.of(conn.scope) is None
    access.remember(conn, TENANT)  # type: ignore[arg-type]
    assert access.of(conn.scope) == TENANT
    assert access.of({"state": {access.STATE_KEY: "tok_a"}}) is None  # not an Access


def test_who_sees_what() -> None:
    assert access.ADMIN.sees("pbx.tenant-b.example") and access.ANONYMOUS.sees(None)
    assert TENANT.sees(A) and not TENANT.sees("pbx.tenant-b.example") and not TENANT.sees(None)
    assert access.ADMIN.host_filter("x") == "x" and access.ADMIN.host_filter(None) is None
    assert TENANT.host_filter("x") == A and TENANT.host_filter(None) == A
