"""Bearer-token guard for the hooks API (`AUTH_REQUIRED=true`).

Every configured token is compared in constant time, so the answer's timing says
nothing about which token (or how much of one) matched. The webhook route never
uses this guard: LiveKit signs its requests instead.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from sayna_sip.common.config import AuthConfig
from sayna_sip.ingress.errors import Unauthorized

Guard = Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], None]


def token_matches(presented: str, tokens: tuple[tuple[str, str], ...]) -> bool:
    given = presented.encode()
    matched = False
    for _, secret in tokens:  # no early exit: check them all
        matched |= hmac.compare_digest(given, secret.encode())
    return matched


def bearer_guard(auth: AuthConfig) -> Guard:
    """A Litestar guard that admits `Authorization: Bearer <token>` with a known token."""
    tokens = auth.tokens

    def guard(connection: ASGIConnection[Any, Any, Any, Any], __: BaseRouteHandler) -> None:
        if not auth.required:
            return
        header = connection.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("missing or malformed Authorization: Bearer <token> header")
        if not token_matches(token.strip(), tokens):
            raise Unauthorized("invalid API token")

    return guard
