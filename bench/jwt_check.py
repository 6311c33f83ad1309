"""Micro-benchmark behind docs/performance.md finding 2: `python -m bench.jwt_check`.

Compares the CPU cost of the ingress's LiveKit token check (PyJWT) with a reference
HS256 check built on the standard library and msgspec (`verify_hs256` below, a proposal
for `sayna_sip.ingress.webhook`), and shows both accept and reject the same tokens.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Callable

import jwt
import msgspec

from bench import events


class InvalidToken(Exception):
    pass


class _Header(msgspec.Struct):
    alg: str = ""


class Claims(msgspec.Struct):
    iss: str | None = None
    exp: float | None = None
    nbf: float | None = None
    sha256: str | None = None


_header = msgspec.json.Decoder(_Header)
_claims = msgspec.json.Decoder(Claims)


def _b64url(segment: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise InvalidToken("segment is not base64url") from None


def verify_hs256(token: str, key: bytes, issuer: str, leeway: float) -> Claims:
    """HS256 only: exact `alg`, constant-time signature, `exp` required, `nbf`, `iss`."""
    parts = token.split(".")
    if len(parts) != 3 or not token.isascii():
        raise InvalidToken("not a compact JWS")
    head, payload, signature = parts
    try:
        if _header.decode(_b64url(head)).alg != "HS256":
            raise InvalidToken("alg must be HS256")
        mac = hmac.new(key, f"{head}.{payload}".encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(mac, _b64url(signature)):
            raise InvalidToken("bad signature")
        claims = _claims.decode(_b64url(payload))
    except msgspec.DecodeError:
        raise InvalidToken("header or claims are not the expected JSON") from None
    now = time.time()
    if claims.exp is None or now > claims.exp + leeway:
        raise InvalidToken("expired or no exp")
    if claims.nbf is not None and now < claims.nbf - leeway:
        raise InvalidToken("not yet valid")
    if claims.iss != issuer:
        raise InvalidToken("wrong issuer")
    return claims


def _pyjwt(decoder: jwt.PyJWT) -> Callable[[str], object]:
    def check(token: str) -> object:
        return decoder.decode(
            token, events.API_SECRET, algorithms=["HS256"], issuer=events.API_KEY, leeway=10.0
        )

    return check


def cases() -> dict[str, str]:
    now = int(time.time())
    good = events.sign(events.event_body("jwt", 1))

    def hs(claims: dict[str, object]) -> str:
        return jwt.encode(claims, events.API_SECRET, algorithm="HS256")

    return {
        "valid": good,
        "bad signature": good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB"),
        "alg none": jwt.encode({"iss": events.API_KEY, "exp": now + 60}, "", algorithm="none"),
        "expired": hs({"iss": events.API_KEY, "exp": now - 60}),
        "wrong issuer": hs({"iss": "someone-else", "exp": now + 60}),
        "no exp": hs({"iss": events.API_KEY}),
        "not yet valid": hs({"iss": events.API_KEY, "exp": now + 600, "nbf": now + 300}),
        "garbage": "a.b.c",
    }


def _accepts(check: Callable[[str], object], token: str) -> bool:
    try:
        check(token)
    except (InvalidToken, jwt.PyJWTError):
        return False
    return True


def cpu_us(check: Callable[[str], object], token: str, n: int = 20_000) -> float:
    """Best of 7 CPU-time measurements, in microseconds per call."""
    best = float("inf")
    for _ in range(7):
        start = time.process_time()
        for _ in range(n):
            check(token)
        best = min(best, (time.process_time() - start) / n * 1e6)
    return best


def main() -> None:
    pyjwt = _pyjwt(jwt.PyJWT(options={"require": ["exp", "iss"]}))
    key = events.API_SECRET.encode()

    def stdlib(token: str) -> Claims:
        return verify_hs256(token, key, events.API_KEY, 10.0)

    print(f"{'token':15} {'PyJWT':8} stdlib+msgspec")
    for name, token in cases().items():
        print(f"{name:15} {_accepts(pyjwt, token)!s:8} {_accepts(stdlib, token)}")
    token = cases()["valid"]
    print(f"PyJWT: {cpu_us(pyjwt, token):.1f} us CPU per token")
    print(f"stdlib + msgspec: {cpu_us(stdlib, token):.1f} us CPU per token")


if __name__ == "__main__":
    main()
