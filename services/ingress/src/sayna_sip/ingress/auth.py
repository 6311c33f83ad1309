"""Bearer-token guard of the API (`AUTH_REQUIRED=true`): admin tokens and tenant tokens.

Every configured admin token is compared in constant time, so the answer's timing says
nothing about which token (or how much of one) matched. A tenant token (a JWT minted by
POST /sip/hooks/{host}/access-tokens) reaches only its own host, decided here for every
route at once from the route itself (`access.scope`), so a route added under
/sip/hooks/{host}/... is scoped without code of its own. The webhook route never uses
this guard: LiveKit signs its requests instead.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import nats.errors
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from sayna_sip.common.config import AuthConfig
from sayna_sip.common.labels import ErrorCode
from sayna_sip.common.logs import quote
from sayna_sip.ingress import access
from sayna_sip.ingress.access import Access
from sayna_sip.ingress.access_tokens import TokenRefused, looks_like_jwt
from sayna_sip.ingress.errors import Unauthorized, Unavailable
from sayna_sip.ingress.state import Ingress

log = logging.getLogger("sayna_sip.ingress")

Guard = Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], Awaitable[None]]

_REFUSED = {
    "expired": ErrorCode.TOKEN_EXPIRED,
    "revoked": ErrorCode.TOKEN_REVOKED,
    "invalid": ErrorCode.UNAUTHORIZED,
}


def token_matches(presented: str, tokens: tuple[tuple[str, str], ...]) -> bool:
    given = presented.encode()
    matched = False
    for _, secret in tokens:  # no early exit: check them all
        matched |= hmac.compare_digest(given, secret.encode())
    return matched


def bearer_guard(auth: AuthConfig) -> Guard:
    """A Litestar guard that admits an admin token anywhere and a tenant token on its
    own host's routes; with AUTH_REQUIRED off everyone is `anonymous` and admitted."""
    tokens = auth.tokens

    async def guard(
        connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
    ) -> None:
        if not auth.required:
            access.remember(connection, access.ANONYMOUS)
            return
        header = connection.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("missing or malformed Authorization: Bearer <token> header")
        if token_matches(token, tokens):
            access.remember(connection, access.ADMIN)
            return
        ingress: Ingress = connection.app.state.ingress
        if not looks_like_jwt(token) or ingress.signer is None:
            raise Unauthorized("invalid API token")
        tenant = await _tenant(ingress, token)
        access.remember(connection, tenant)
        access.scope(connection, handler, tenant)

    return guard


async def _tenant(ingress: Ingress, token: str) -> Access:
    assert ingress.signer is not None
    try:
        claims = ingress.signer.verify(token)
        if ingress.generations is None:
            raise Unavailable("tenant tokens need NATS; retry later", ErrorCode.NATS_UNAVAILABLE)
        try:
            current = await ingress.generations.current(claims.host)
        except (TimeoutError, nats.errors.Error, OSError, ValueError) as exc:
            log.warning("event=token_check_failed error=%s", quote(repr(exc)))
            raise Unavailable(
                "cannot check the token's revocation now; retry later",
                ErrorCode.NATS_UNAVAILABLE,
            ) from None
        if claims.generation < current:
            raise TokenRefused("revoked", "tenant token revoked: ask for a new link")
    except TokenRefused as exc:
        raise Unauthorized(exc.message, _REFUSED[exc.reason]) from None
    return Access(actor=claims.token_id, host=claims.host)
