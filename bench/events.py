"""Benchmark webhooks: realistic LiveKit SIP events, signed the way LiveKit signs them.

The token is LiveKit's HS256 JWT (issuer = API key, `sha256` = base64 SHA-256 of the
body), built by hand rather than with PyJWT so that pre-signing 100k events takes well
under a second and the load generator spends its CPU on sending.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

API_KEY = "APIbenchkey"
API_SECRET = "bench-secret-0123456789abcdef0123456789abcdef"
ROOM_PREFIX = "sip-"
TENANT_HOST = "tenant.bench.test"
HOOK_SECRET = "bench-hook-secret-0123456789abcdef"  # global SIP_HOOK_SECRET

_JWT_HEADER = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=")


def event_id(run: str, i: int) -> str:
    return f"EV_{run}_{i}"


def event_body(run: str, i: int, host: str = TENANT_HOST) -> bytes:
    """A participant_joined event of a SIP call to `host` (about 700 bytes)."""
    now = str(int(time.time()))
    event = {
        "event": "participant_joined",
        "room": {"sid": f"RM_{run}_{i}", "name": f"{ROOM_PREFIX}{run}-{i}", "creationTime": now},
        "participant": {
            "sid": f"PA_{run}_{i}",
            "identity": "sip_+15557654321",
            "state": "ACTIVE",
            "kind": "SIP",
            "attributes": {
                "sip.callID": f"SCL_{run}_{i}",
                "sip.trunkID": "ST_benchtrunk",
                "sip.phoneNumber": "+15557654321",
                "sip.trunkPhoneNumber": "+15551234567",
                "sip.callStatus": "active",
                "sip.h.to": f'"Support" <sip:+15551234567@{host};user=phone>',
            },
        },
        "id": event_id(run, i),
        "createdAt": now,
    }
    return json.dumps(event, separators=(",", ":")).encode()


def sign(body: bytes, *, key: str = API_KEY, secret: str = API_SECRET, ttl: int = 3600) -> str:
    """The raw JWT LiveKit sends in `Authorization` for `body`."""
    now = int(time.time())
    claims = {
        "iss": key,
        "sub": "",
        "nbf": now - 5,
        "exp": now + ttl,
        "sha256": base64.b64encode(hashlib.sha256(body).digest()).decode(),
        "video": {},
    }
    payload = base64.urlsafe_b64encode(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = _JWT_HEADER + b"." + payload.rstrip(b"=")
    mac = hmac.new(secret.encode(), signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + base64.urlsafe_b64encode(mac).rstrip(b"=")).decode()


def http_request(host: str, path: str, body: bytes, token: str) -> bytes:
    """One complete HTTP/1.1 keep-alive request, ready to write to a socket."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: {token}\r\n"
        f"Content-Type: application/webhook+json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def signed_requests(run: str, count: int, host: str, path: str) -> list[bytes]:
    return [
        http_request(host, path, body, sign(body))
        for body in (event_body(run, i) for i in range(count))
    ]
