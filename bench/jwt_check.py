"""Micro-benchmark behind docs/performance.md finding 2: `python -m bench.jwt_check`.

The CPU cost of the LiveKit token check: plain PyJWT, and the ingress's own
`WebhookVerifier.token_digest` (stdlib + msgspec for plain HS256 tokens, `ingress/hs256.py`;
PyJWT for everything else), with the verdict of each on the same tokens.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import jwt

from bench import events
from sayna_sip.ingress.errors import Unauthorized
from sayna_sip.ingress.webhook import WebhookVerifier


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


def checks() -> dict[str, Callable[[str], object]]:
    pyjwt = jwt.PyJWT(options={"require": ["exp", "iss"]})

    def plain(token: str) -> object:
        return pyjwt.decode(
            token, events.API_SECRET, algorithms=["HS256"], issuer=events.API_KEY, leeway=10.0
        )

    ingress = WebhookVerifier(events.API_KEY, events.API_SECRET)
    return {"PyJWT": plain, "ingress": ingress.token_digest}


def accepts(check: Callable[[str], object], token: str) -> bool:
    try:
        check(token)
    except (Unauthorized, jwt.PyJWTError):
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
    named = checks()
    print(f"{'token':15} {'PyJWT':8} ingress")
    for name, token in cases().items():
        print(f"{name:15} {accepts(named['PyJWT'], token)!s:8} {accepts(named['ingress'], token)}")
    token = cases()["valid"]
    for name, check in named.items():
        print(f"{name}: {cpu_us(check, token):.1f} us CPU per valid token")


if __name__ == "__main__":
    main()
