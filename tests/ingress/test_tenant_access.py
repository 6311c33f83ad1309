"""Tenant tokens against every route of the API, the route list read from the OpenAPI
schema so a route added later is in the matrix without a line here: a token of host A
reaches A's routes only; B's are 404, global and admin routes 403, lists are A's alone,
and no answer holds anything of B's."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from sayna_sip.common import topology
from sayna_sip.common.hosts import host_token
from sayna_sip.common.secretbox import SecretBox
from sayna_sip.ingress.access_tokens import TokenSigner
from tests.fixtures.nats import NatsServer
from tests.ingress.conftest import STATIC_HOST, ingress_config, serve
from tests.ingress.tenants import (
    ADMIN,
    EV,
    SECRETS_KEY,
    A,
    B,
    Tenants,
    bearer,
    tenant_config,
)

WRITES = ("post", "put", "patch", "delete")
# Routes whose handler limits a tenant itself (opt tenant=self) and what B's resource
# answers there. Any other route follows the generic rule (access.py).
SELF_ROUTES = {
    ("get", "/sip/deliveries/{event_id}"): 404,
    ("post", "/sip/deliveries/{event_id}/resend"): 404,
    ("post", "/sip/dead-letters/redrive"): 200,
}
# What a tenant is told on a route that is not its host's, and on an admin route of its host.
GLOBAL_ROUTE = "a tenant token reaches only its own host's routes"
ADMIN_ROUTE = "this route is for admins; a tenant token cannot use it"
ADMIN_ROUTES = {"/sip/hooks/{host}/access-tokens", "/sip/hooks/{host}/access-tokens/revoke"}


def _b_marks() -> list[str]:
    return [B, EV[B], "tenant-b"]


async def _routes(t: Tenants) -> list[tuple[str, str, dict[str, Any]]]:
    spec = (await t.client.get("/schema/openapi.json")).json()
    out = []
    for path, item in spec["paths"].items():
        if not path.startswith("/sip/"):
            continue
        for method, op in item.items():
            if method in ("get", *WRITES):
                out.append((method, path, op))
    assert len(out) >= 15, "the schema lost routes"
    return out


def _fill(path: str, host: str) -> str:
    def value(m: re.Match[str]) -> str:
        name = m.group(1)
        return {"host": host, "event_id": EV[host]}.get(name, "default")

    return re.sub(r"\{(\w+)(?::\w+)?\}", value, path)


def _has_host_query(op: dict[str, Any]) -> bool:
    return any(p["in"] == "query" and p["name"] == "host" for p in op.get("parameters", []))


def _expected(method: str, path: str, op: dict[str, Any]) -> int:
    if (method, path) in SELF_ROUTES:
        return SELF_ROUTES[(method, path)]
    if "{host}" in path:
        return 404
    if _has_host_query(op):
        return 200
    return 403


async def test_a_token_of_a_reaches_nothing_of_b_on_any_route(tenants: Tenants) -> None:
    t = tenants
    before = (await t.as_admin("GET", f"/sip/hooks/{B}")).json()
    for method, path, op in await _routes(t):
        url = _fill(path, B)
        query = {"host": B} if _has_host_query(op) else None
        body = {"host": B, "event_ids": [EV[B]]} if path.endswith("/redrive") else {}
        kw: dict[str, Any] = {"params": query}
        if method in WRITES:
            kw["json"] = body
        r = await t.as_tenant(A, method.upper(), url, **kw)
        want = _expected(method, path, op)
        assert r.status_code == want, (method, path, r.status_code, r.text)
        if want == 404 and "{host}" in path:
            assert r.json() == {"error": "hook_not_found", "message": "no hook for this host"}
        if want == 403:
            assert r.json() == {"error": "forbidden", "message": GLOBAL_ROUTE}, (method, path)
        # The id asked for is echoed by "no delivery record of event <id>", as for any id.
        text = r.text.replace(f"event {EV[B]}", "")
        for mark in _b_marks():
            assert mark not in text, (method, path, mark, r.text)
    # Nothing of B changed: its hook, its dead letter, its tokens.
    assert (await t.as_admin("GET", f"/sip/hooks/{B}")).json() == before
    letters = (await t.as_admin("GET", "/sip/dead-letters", params={"host": B})).json()
    assert [x["event_id"] for x in letters["dead_letters"]] == [EV[B]]
    assert (await t.as_tenant(B, "GET", f"/sip/hooks/{B}")).status_code == 200


async def test_a_token_of_a_reaches_every_route_of_its_own_host(tenants: Tenants) -> None:
    t = tenants
    for method, path, _ in await _routes(t):
        if "{host}" not in path:
            continue
        kw: dict[str, Any] = {"json": {}} if method in WRITES else {}
        r = await t.as_tenant(A, method.upper(), _fill(path, A), **kw)
        if path in ADMIN_ROUTES:
            assert r.status_code == 403, (path, r.text)
            assert r.json() == {"error": "forbidden", "message": ADMIN_ROUTE}, path
        else:  # admitted: what the route itself answers (a 400 for an empty replay body…)
            assert r.status_code not in (401, 403, 404), (method, path, r.status_code, r.text)
        for mark in _b_marks():
            assert mark not in r.text, (method, path, mark)


@pytest.mark.parametrize(
    "path", ["/sip/deliveries", "/sip/dead-letters", "/sip/audit"], ids=lambda p: p
)
async def test_lists_hold_only_the_tenants_host_whatever_the_query_says(
    tenants: Tenants, path: str
) -> None:
    t = tenants
    for query in ({}, {"host": B}, {"host": "*.example"}, {"host": [A, B]}):
        r = await t.as_tenant(A, "GET", path, params=query)
        assert r.status_code == 200, (query, r.text)
        assert B not in r.text and EV[B] not in r.text, query
        assert A in r.text, (path, query)  # A's own data is there
    admin = await t.as_admin("GET", path, params={"host": B})
    assert B in admin.text  # the admin's filter is kept


async def test_an_event_of_b_is_not_found_and_an_event_of_a_shows_only_a(
    tenants: Tenants,
) -> None:
    t = tenants
    theirs = await t.as_tenant(A, "GET", f"/sip/deliveries/{EV[B]}")
    assert theirs.status_code == 404
    assert theirs.json()["message"] == (await t.as_tenant(A, "GET", "/sip/deliveries/nope")).json()[
        "message"
    ].replace("nope", EV[B])
    mine = await t.as_tenant(A, "GET", f"/sip/deliveries/{EV[A]}")
    assert mine.status_code == 200 and [a["host"] for a in mine.json()["attempts"]] == [A, A]


async def test_a_redrive_by_a_tenant_touches_only_its_own_dead_letters(tenants: Tenants) -> None:
    t = tenants
    r = await t.as_tenant(A, "POST", "/sip/dead-letters/redrive", json={"since": "1h"})
    assert r.status_code == 200 and r.json()["redriven"] == 1, r.text
    left = (await t.as_admin("GET", "/sip/dead-letters")).json()["dead_letters"]
    assert [x["event_id"] for x in left] == [EV[B]]


async def test_an_admin_sees_any_hosts_event_and_redrives_only_the_host_asked(
    tenants: Tenants,
) -> None:
    t = tenants
    theirs = await t.as_admin("GET", f"/sip/deliveries/{EV[B]}")
    assert theirs.status_code == 200 and [a["host"] for a in theirs.json()["attempts"]] == [B, B]
    r = await t.as_admin("POST", "/sip/dead-letters/redrive", json={"host": B})
    assert r.status_code == 200 and r.json()["redriven"] == 1, r.text
    left = (await t.as_admin("GET", "/sip/dead-letters")).json()["dead_letters"]
    assert [x["event_id"] for x in left] == [EV[A]]


async def test_static_hooks_stay_read_only_for_their_tenant(tenants: Tenants) -> None:
    t = tenants
    assert (await t.as_tenant(STATIC_HOST, "GET", f"/sip/hooks/{STATIC_HOST}")).status_code == 200
    for action in ("rotate-secret", "disable", "enable"):
        path = f"/sip/hooks/{STATIC_HOST}/{action}"
        r = await t.as_tenant(STATIC_HOST, "POST", path, json={})
        assert r.status_code == 409 and r.json()["error"] == "config_hook", (action, r.text)


async def test_no_token_a_wrong_one_an_expired_one_and_a_revoked_one_are_refused(
    tenants: Tenants,
) -> None:
    t = tenants
    path = f"/sip/hooks/{A}"
    assert (await t.client.get(path)).json()["error"] == "unauthorized"
    forged = TokenSigner(SecretBox.from_setting("QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="))
    for token in (forged.mint(A, 0, 3600)[0], t.tokens[A][:-4] + "AAAA", "ey.ey.ey"):
        r = await t.client.get(path, headers=bearer(token))
        assert r.status_code == 401 and r.json()["error"] == "unauthorized", r.text

    ours = TokenSigner(SecretBox.from_setting(SECRETS_KEY))
    expired, _ = ours.mint(A, 0, 60, now=time.time() - 3600)
    r = await t.client.get(path, headers=bearer(expired))
    assert r.status_code == 401 and r.json()["error"] == "token_expired", r.text

    assert (await t.as_tenant(A, "GET", path)).status_code == 200
    r = await t.as_admin("POST", f"/sip/hooks/{A}/access-tokens/revoke", json={})
    assert r.status_code == 200 and r.json() == {"host": A, "generation": 1}
    r = await t.as_tenant(A, "GET", path)
    assert r.status_code == 401 and r.json()["error"] == "token_revoked", r.text
    assert (await t.as_tenant(B, "GET", f"/sip/hooks/{B}")).status_code == 200  # B's live on
    fresh = (await t.mint(A)).json()["token"]  # a token minted after the revoke works
    assert (await t.client.get(path, headers=bearer(fresh))).status_code == 200


@pytest.mark.parametrize("removal", ["delete", "purge"])
async def test_a_generation_an_operator_removed_keeps_revoked_tokens_revoked(
    tenants: Tenants, jetstream: Any, removal: str
) -> None:
    t = tenants
    path = f"/sip/hooks/{A}"
    r = await t.as_admin("POST", f"/sip/hooks/{A}/access-tokens/revoke", json={})
    assert r.status_code == 200, r.text
    kv = await jetstream.key_value(topology.ACCESS_BUCKET)
    await getattr(kv, removal)(host_token(A))  # an operator's `nats kv del|purge`
    r = await t.as_tenant(A, "GET", path)
    assert r.status_code == 401 and r.json()["error"] == "token_revoked", r.text
    fresh = (await t.mint(A)).json()["token"]
    assert (await t.client.get(path, headers=bearer(fresh))).status_code == 200
    r = await t.as_admin("POST", f"/sip/hooks/{A}/access-tokens/revoke", json={})
    assert r.status_code == 200, r.text  # a revoke after the removal is stored
    r = await t.client.get(path, headers=bearer(fresh))
    assert r.status_code == 401 and r.json()["error"] == "token_revoked", r.text


async def test_deleting_a_host_ends_its_tokens(tenants: Tenants) -> None:
    t = tenants
    r = await t.as_admin("DELETE", "/sip/hooks", json={"hosts": [A]})
    assert r.status_code == 200
    await t.as_admin("POST", "/sip/hooks", json={"hooks": [{"host": A, "url": f"https://{A}/2"}]})
    r = await t.as_tenant(A, "GET", f"/sip/hooks/{A}")
    assert r.status_code == 401 and r.json()["error"] == "token_revoked"


@pytest.mark.parametrize(
    ("ttl", "status"),
    [("30m", 200), ("30d", 200), ("31d", 400), ("10s", 400), ("soon", 400), ("-1h", 400)],
)
async def test_a_ttl_is_bounded(tenants: Tenants, ttl: str, status: int) -> None:
    r = await tenants.mint(A, ttl)
    assert r.status_code == status, r.text
    if status == 400:
        assert r.json()["error"] == "invalid_ttl"
    else:
        body = r.json()
        assert body["host"] == A and body["token_id"].startswith("tok_")
        assert body["portal_path"] == f"/console#token={body['token']}"


async def test_the_default_ttl_is_one_hour(tenants: Tenants) -> None:
    from datetime import datetime

    r = await tenants.mint(A)
    left = datetime.fromisoformat(r.json()["expires_at"]).timestamp() - time.time()
    assert 3590 < left <= 3600


NEEDS_AUTH = "tenant tokens need AUTH_REQUIRED=true (with auth off the whole API is open)"
NEEDS_KEY = "tenant tokens need SIP_SECRETS_KEY (their signing key is derived from it)"
NO_SIP = "SIP is not configured: there are no hooks"


async def test_minting_needs_auth_on_and_a_secrets_key(
    nats_server: NatsServer, jetstream: Any
) -> None:
    mint, revoke = f"/sip/hooks/{STATIC_HOST}/access-tokens", f"/sip/hooks/{A}/access-tokens/revoke"
    async with serve(ingress_config(nats_server.url, SIP_SECRETS_KEY=SECRETS_KEY)) as open_api:
        for path in (mint, revoke):
            r = await open_api.post(path, json={})
            assert r.status_code == 409, r.text
            assert r.json() == {"error": "auth_disabled", "message": NEEDS_AUTH}
    async with serve(tenant_config(nats_server.url, SIP_SECRETS_KEY=None)) as keyless:
        r = await keyless.post(mint, json={}, headers=bearer(ADMIN))
        assert r.status_code == 400, r.text
        assert r.json() == {"error": "secrets_key_missing", "message": NEEDS_KEY}
    no_sip = tenant_config(nats_server.url, SIP_ROOM_PREFIX=None, SIP_ALLOWED_ADDRESSES=None,
                           SIP_HOOKS_JSON=None, SIP_SECRETS_KEY=None)  # fmt: skip
    async with serve(no_sip) as sipless:
        for path in (mint, revoke):
            r = await sipless.post(path, json={}, headers=bearer(ADMIN))
            assert r.status_code == 409, r.text
            assert r.json() == {"error": "sip_disabled", "message": NO_SIP}


async def test_an_unreadable_token_generation_is_503_not_a_fresh_start(
    tenants: Tenants, jetstream: Any
) -> None:
    """Reading it as 0 would bring revoked tokens back: minting and revoking stop instead."""
    kv = await jetstream.key_value(topology.ACCESS_BUCKET)
    await kv.put(host_token(A), b"not json")
    for path in (f"/sip/hooks/{A}/access-tokens", f"/sip/hooks/{A}/access-tokens/revoke"):
        r = await tenants.as_admin("POST", path, json={})
        assert r.status_code == 503 and r.json()["error"] == "nats_unavailable", r.text
        assert r.json()["message"].startswith("NATS KV is unavailable: ValueError("), r.text


async def test_replicas_with_the_same_key_accept_each_others_tokens(
    nats_server: NatsServer, tenants: Tenants
) -> None:
    async with serve(tenant_config(nats_server.url)) as other:
        r = await other.get(f"/sip/hooks/{A}", headers=bearer(tenants.tokens[A]))
        assert r.status_code == 200 and r.json()["host"] == A
    # A key rotation (a new key first) keeps the tokens signed with the old one valid.
    rotated = "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=," + SECRETS_KEY
    async with serve(tenant_config(nats_server.url, SIP_SECRETS_KEY=rotated)) as other:
        r = await other.get(f"/sip/hooks/{A}", headers=bearer(tenants.tokens[A]))
        assert r.status_code == 200


def test_the_signing_key_is_derived_not_the_raw_one() -> None:
    import base64

    import jwt

    signer = TokenSigner(SecretBox.from_setting(SECRETS_KEY))
    token, _ = signer.mint(A, 0, 3600)
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, base64.b64decode(SECRETS_KEY), algorithms=["HS256"],
                   audience="sayna-sip-tenant")  # fmt: skip
