"""Tenant tokens: POST /sip/hooks/{host}/access-tokens mints one, .../revoke ends them all.

Admins only (`opt tenant=admin`). A token needs AUTH_REQUIRED (with auth off the API is
open to anyone, so a scoped token would protect nothing: 409 `auth_disabled`) and
SIP_SECRETS_KEY (its signing key is derived from it: 400 `secrets_key_missing`).
"""

from __future__ import annotations

from typing import Annotated, Any

import nats.errors
from litestar import Controller, Request, Router, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Body, FromPath

from sayna_sip.common.config import AuthConfig
from sayna_sip.common.deliveries import rfc3339
from sayna_sip.common.labels import ErrorCode
from sayna_sip.ingress import hookrules, writeguard
from sayna_sip.ingress.access_tokens import Generations, TokenSigner, parse_ttl
from sayna_sip.ingress.audit_trail import Change, note
from sayna_sip.ingress.auth import bearer_guard
from sayna_sip.ingress.errors import BadRequest, Conflict, Unavailable
from sayna_sip.ingress.schemas import AccessToken, AccessTokenIn, ErrorBody, Revoked
from sayna_sip.ingress.state import Ingress, IngressDep

BEARER_SCHEME = "ApiToken"
ADMIN_ONLY = {"tenant": "admin"}


def _err(description: str) -> ResponseSpec:
    return ResponseSpec(data_container=ErrorBody, description=description, generate_examples=False)


_ANSWERS = {
    400: _err("Invalid host or ttl (1m to 30d), or SIP_SECRETS_KEY not set"),
    404: _err("No hook for this host"),
    409: _err("AUTH_REQUIRED is off, or SIP not configured"),
    503: _err("NATS unavailable"),
    415: writeguard.RESPONSES[415],
}


def _tenancy(ingress: Ingress) -> tuple[TokenSigner, Generations]:
    if not ingress.config.auth.required:
        raise Conflict(
            "tenant tokens need AUTH_REQUIRED=true (with auth off the whole API is open)",
            ErrorCode.AUTH_DISABLED,
        )
    if ingress.config.sip is None or ingress.generations is None:
        raise Conflict("SIP is not configured: there are no hooks", ErrorCode.SIP_DISABLED)
    if ingress.signer is None:
        raise BadRequest(
            "tenant tokens need SIP_SECRETS_KEY (their signing key is derived from it)",
            ErrorCode.SECRETS_KEY_MISSING,
        )
    return ingress.signer, ingress.generations


async def _kv(op: Any) -> Any:
    try:
        return await op
    except (TimeoutError, nats.errors.Error, OSError, ValueError) as exc:
        raise Unavailable(f"NATS KV is unavailable: {exc!r}", ErrorCode.NATS_UNAVAILABLE) from exc


class AccessTokensController(Controller):
    path = "/sip/hooks/{host:str}/access-tokens"
    tags = ["tenant access"]
    security = [{BEARER_SCHEME: []}]

    @post(status_code=200, summary="A tenant token scoped to this host (shown once)",
          responses=_ANSWERS, opt=ADMIN_ONLY)  # fmt: skip
    async def mint_access_token(
        self,
        ingress: IngressDep,
        request: Request[Any, Any, Any],
        host: FromPath[str],
        data: Annotated[AccessTokenIn | None, Body(description="ttl, default 1h")] = None,
    ) -> AccessToken:
        signer, generations = _tenancy(ingress)
        assert ingress.hooks is not None
        hook = await ingress.hooks.get(hookrules.host(host))
        try:
            ttl = parse_ttl(data.ttl if data is not None else None)
        except ValueError as exc:
            raise BadRequest(str(exc), ErrorCode.INVALID_TTL) from None
        token, claims = signer.mint(hook.host, await _kv(generations.current(hook.host)), ttl)
        expires = rfc3339(claims.expires_at) or ""
        note(request, Change(hook.host, ("access_token",), {
            "token_id": claims.token_id, "expires_at": expires, "ttl": ttl}))  # fmt: skip
        return AccessToken(token, claims.token_id, hook.host, expires, f"/console#token={token}")

    @post("/revoke", status_code=200, summary="End every token of this host at once",
          operation_class=writeguard.JsonOperation, responses=_ANSWERS,
          opt=ADMIN_ONLY)  # fmt: skip
    async def revoke_access_tokens(
        self, ingress: IngressDep, request: Request[Any, Any, Any], host: FromPath[str]
    ) -> Revoked:
        _, generations = _tenancy(ingress)
        name = hookrules.host(host)
        generation = await _kv(generations.bump(name))
        note(request, Change(name, ("access_tokens",), {"generation": generation}))
        return Revoked(name, generation)


def access_router(auth: AuthConfig) -> Router:
    return Router(path="/", route_handlers=[AccessTokensController], guards=[bearer_guard(auth)])
