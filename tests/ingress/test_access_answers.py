"""What the schema tells a caller about refusals is what the API answers: on every route
of the OpenAPI document (read from the app, so a route added later is checked too), the
401 of an expired or revoked tenant token, the 403 of a tenant token on a route it may
not use, and the 403 of a cross-site browser request are each declared with a
description naming them; and no route declares a 403 that no caller can get."""

from __future__ import annotations

from typing import Any

from tests.ingress.tenants import A, B, Tenants, bearer
from tests.ingress.test_tenant_access import WRITES, _fill, _routes

CROSS_SITE = {"Sec-Fetch-Site": "cross-site"}
ERROR_BODY = {"$ref": "#/components/schemas/ErrorBody"}


def _said(op: dict[str, Any], status: int) -> str:
    """The description of `status`, declared with the ErrorBody every error has."""
    answer = op["responses"].get(str(status))
    assert answer is not None, f"{status} is not declared"
    assert answer["content"] == {"application/json": {"schema": ERROR_BODY}}, status
    return str(answer["description"])


async def test_every_refusal_a_caller_can_get_is_declared_and_named(tenants: Tenants) -> None:
    t = tenants
    revoked = t.tokens[B]
    assert (await t.as_admin("POST", f"/sip/hooks/{B}/access-tokens/revoke", json={})).is_success
    forbidden: set[tuple[str, str]] = set()
    for method, path, op in await _routes(t):
        kw: dict[str, Any] = {"json": {}} if method in WRITES else {}
        for host in (A, B):  # a tenant's own host's route, and another host's
            r = await t.as_tenant(A, method.upper(), _fill(path, host), **kw)
            assert str(r.status_code) in op["responses"], (method, path, r.status_code, r.text)
            if r.status_code == 403:
                forbidden.add((method, path))
                assert "tenant token" in _said(op, 403), (method, path)
        r = await t.client.request(method.upper(), _fill(path, B), headers=bearer(revoked), **kw)
        assert (r.status_code, r.json()["error"]) == (401, "token_revoked"), (method, path)
        assert "token_revoked" in _said(op, 401), (method, path)
        if method in WRITES:
            headers = {**bearer(t.tokens[A]), **CROSS_SITE}
            r = await t.client.request(method.upper(), _fill(path, A), headers=headers, **kw)
            assert (r.status_code, r.json()["error"]) == (403, "cross_site"), (method, path)
            assert "cross_site" in _said(op, 403), (method, path)
            forbidden.add((method, path))
    for method, path, op in await _routes(t):
        if "403" in op["responses"]:
            assert (method, path) in forbidden, f"{method} {path} declares a 403 nobody gets"
