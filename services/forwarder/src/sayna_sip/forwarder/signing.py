"""Webhook signatures: Standard Webhooks headers plus the original's X-Sayna-* headers.

Pure functions of (event id, timestamp, body, secrets); the delivery code adds the result
to each request. Receivers verify `webhook-signature` with any Standard Webhooks library,
or `X-Sayna-Signature` the way the original's receivers did.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Collection, Mapping, Sequence

from sayna_sip.common.hook import REDACTED

WHSEC_PREFIX = "whsec_"


def key_bytes(secret: str) -> bytes:
    """`whsec_<base64>` is the base64 of the key; any other secret is its UTF-8 bytes."""
    if secret.startswith(WHSEC_PREFIX):
        return base64.b64decode(secret.removeprefix(WHSEC_PREFIX))
    return secret.encode()


def standard_signature(key: bytes, event_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">` (Standard Webhooks)."""
    signed = f"{event_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def sayna_signature(secret: str, event_id: str, timestamp: int, body: bytes) -> str:
    """`v1=<hex HMAC-SHA256 of "v1:{timestamp}:{event_id}:{body}">`, as the original sent.

    Keyed with the secret's UTF-8 bytes even for `whsec_` secrets: that is what a
    receiver written against the original computes with the same configured string.
    """
    signed = f"v1:{timestamp}:{event_id}:".encode() + body
    return "v1=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def signature_headers(
    event_id: str, body: bytes, secrets: Sequence[str], timestamp: int
) -> dict[str, str]:
    """Identity and signature headers for one attempt.

    The ids and timestamps are always sent (receivers deduplicate on `webhook-id`);
    signatures only when a secret exists. Several secrets (rotation) give several
    space-separated Standard Webhooks signatures; the compatibility header carries the
    first (current) secret's only.
    """
    headers = {
        "webhook-id": event_id,
        "webhook-timestamp": str(timestamp),
        "X-Sayna-Event-Id": event_id,
        "X-Sayna-Timestamp": str(timestamp),
    }
    if secrets:
        headers["webhook-signature"] = " ".join(
            standard_signature(key_bytes(s), event_id, timestamp, body) for s in secrets
        )
        headers["X-Sayna-Signature"] = sayna_signature(secrets[0], event_id, timestamp, body)
        headers["X-Sayna-Signature-Version"] = "v1"
    return headers


def shown(headers: Mapping[str, str], custom: Collection[str]) -> tuple[tuple[str, str], ...]:
    """A request's headers as the delivery records keep them: every name, with the
    signatures and the custom headers' values (tokens, API keys) redacted, so no record
    holds what a receiver would take for the real thing. Each signature keeps its
    version, so a rotation's two signatures still show as two."""
    out: list[tuple[str, str]] = []
    for name, value in headers.items():
        if name in custom:
            value = REDACTED
        elif name == "webhook-signature":
            value = " ".join(f"{s.split(',', 1)[0]},{REDACTED}" for s in value.split())
        elif name == "X-Sayna-Signature":
            value = f"{value.split('=', 1)[0]}={REDACTED}"
        out.append((name, value))
    return tuple(out)
