"""Tenant access tokens: HS256 JWTs (PyJWT) scoped to one hook host.

The signing keys are derived from `SIP_SECRETS_KEY` with HKDF (`SecretBox.derived`), never
the raw key, so every ingress replica with the same setting signs and verifies alike, and
a key rotation of `SIP_SECRETS_KEY` (prepend a new key) keeps older tokens valid until
they expire. A token carries its host (`sub`), an id (`jti`), its expiry and the host's
generation when it was minted: a revoke bumps the generation (KV `sip_access`), which ends
every earlier token of that host at once without a list of tokens.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import dataclass

import jwt
import nats.errors
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from sayna_sip.common import kvwrite
from sayna_sip.common.durations import parse_duration
from sayna_sip.common.hosts import host_token
from sayna_sip.common.secretbox import SecretBox

ISSUER = "sayna-sip"
AUDIENCE = "sayna-sip-tenant"
PURPOSE = b"sayna-sip tenant access token v1"
DEFAULT_TTL = 3600.0
MIN_TTL = 60.0
MAX_TTL = 30 * 86400.0
LEEWAY_S = 5.0
CAS_ATTEMPTS = 20


class TokenRefused(Exception):
    """A presented tenant token that does not admit its bearer; `reason` says why."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason  # expired | revoked | invalid
        self.message = message


@dataclass(frozen=True)
class TenantClaims:
    token_id: str
    host: str
    generation: int
    expires_at: float


def _kid(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:8]


class TokenSigner:
    """Mints and verifies tenant tokens with keys derived from SIP_SECRETS_KEY."""

    def __init__(self, box: SecretBox) -> None:
        keys = box.derived(PURPOSE)
        self._keys = {_kid(k): k for k in keys}
        self._current = _kid(keys[0])

    def mint(self, host: str, generation: int, ttl: float, now: float | None = None) -> tuple[
            str, TenantClaims]:  # fmt: skip
        now = time.time() if now is None else now
        claims = TenantClaims("tok_" + secrets.token_hex(8), host, generation, int(now + ttl))
        payload = {
            "iss": ISSUER, "aud": AUDIENCE, "sub": host, "jti": claims.token_id,
            "gen": generation, "iat": int(now), "exp": int(claims.expires_at),
        }  # fmt: skip
        token = jwt.encode(
            payload, self._keys[self._current], algorithm="HS256", headers={"kid": self._current}
        )
        return token, claims

    def verify(self, token: str) -> TenantClaims:
        """The token's claims; TokenRefused when it is expired, malformed or not ours."""
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            key = self._keys.get(kid) if isinstance(kid, str) else None
            if key is None:
                raise TokenRefused("invalid", "invalid API token")
            claims = jwt.decode(
                token, key, algorithms=["HS256"], audience=AUDIENCE, issuer=ISSUER,
                leeway=LEEWAY_S, options={"require": ["exp", "sub", "jti", "gen", "iat"]},
            )  # fmt: skip
        except jwt.ExpiredSignatureError:
            raise TokenRefused("expired", "tenant token expired: ask for a new link") from None
        except jwt.PyJWTError:
            raise TokenRefused("invalid", "invalid API token") from None
        host, token_id, gen = claims["sub"], claims["jti"], claims["gen"]
        if not (isinstance(host, str) and isinstance(token_id, str) and type(gen) is int):
            raise TokenRefused("invalid", "invalid API token")
        return TenantClaims(token_id, host, gen, float(claims["exp"]))


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and token.startswith("ey")


def parse_ttl(text: str | None) -> float:
    """`30m`, `1h`, `7d`… between 1 minute and 30 days; None = 1 hour. ValueError else."""
    if text is None:
        return DEFAULT_TTL
    seconds = parse_duration(text)
    if not MIN_TTL <= seconds <= MAX_TTL:
        raise ValueError(f"ttl must be between 1m and 30d, not {text!r}")
    return seconds


class Generations:
    """The token generation of each host in KV `sip_access` (never written = 0)."""

    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv

    async def current(self, host: str) -> int:
        return (await self._read(host))[0]

    async def _read(self, host: str) -> tuple[int, int]:
        """(generation, revision to write after). Where an operator deleted or purged the
        key, or wrote it empty, the generation is that write's revision: a stream sequence
        above every generation stored before it (each was one write), so the tokens revoked
        then stay revoked instead of reading as generation 0 again."""
        try:
            entry = await self._kv.get(host_token(host))
        except KeyNotFoundError as gone:
            marker = gone.entry
            if marker is None or marker.revision is None:
                return 0, 0  # never written
            return marker.revision, 0  # create names the marker's revision itself
        revision = entry.revision or 0  # an entry read has one
        return (_generation(entry.value) if entry.value else revision), revision

    async def bump(self, host: str) -> int:
        """The next generation, written with compare-and-set (two revokes both count)."""
        key = host_token(host)
        for _ in range(CAS_ATTEMPTS):
            current, revision = await self._read(host)
            value = json.dumps({"v": 1, "generation": current + 1, "at": time.time()}).encode()
            try:
                if revision:
                    await kvwrite.update(self._kv, key, value, revision)
                else:
                    await kvwrite.create(self._kv, key, value)
                return current + 1
            except KeyWrongLastSequenceError:
                continue
        raise nats.errors.Error(f"the token generation of {host} kept changing")


def _generation(value: bytes) -> int:
    """An unreadable value raises (ValueError) rather than read as 0, which would bring
    revoked tokens back."""
    try:
        gen = json.loads(value)["generation"]
    except (ValueError, KeyError, TypeError):
        raise ValueError("unreadable token generation in KV sip_access") from None
    if type(gen) is not int:
        raise ValueError("unreadable token generation in KV sip_access")
    return gen
