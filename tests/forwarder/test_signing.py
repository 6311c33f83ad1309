"""Signatures verify with the Standard Webhooks reference library and recompute the way
the original's receivers check them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from sayna_sip.forwarder.signing import key_bytes, signature_headers

BODY = b'{"event": "participant_joined", "id": "EV_1", "x": "caf\xc3\xa9"}'
WHSEC = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
PLAIN = "a-plain-secret-of-32-characters!"


def verifier(secret: str) -> Webhook:
    # The library base64-decodes str secrets; a plain secret is raw key bytes.
    return Webhook(secret) if secret.startswith("whsec_") else Webhook(secret.encode())


@pytest.mark.parametrize("secret", [WHSEC, PLAIN])
def test_standard_webhooks_library_verifies(secret: str) -> None:
    headers = signature_headers("EV_1", BODY, [secret], int(time.time()))
    assert verifier(secret).verify(BODY, headers) is not None
    assert headers["webhook-id"] == "EV_1"


def test_tampered_body_fails_verification() -> None:
    headers = signature_headers("EV_1", BODY, [PLAIN], int(time.time()))
    with pytest.raises(WebhookVerificationError):
        verifier(PLAIN).verify(BODY + b" ", headers)


def test_rotation_sends_one_signature_per_secret_and_each_verifies() -> None:
    headers = signature_headers("EV_2", BODY, [PLAIN, WHSEC], int(time.time()))
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (PLAIN, WHSEC):
        verifier(secret).verify(BODY, headers)


def test_sayna_signature_recomputes_like_the_original() -> None:
    ts = 1_700_000_000
    headers = signature_headers("EV_3", BODY, [PLAIN], ts)
    signed = f"v1:{ts}:EV_3:".encode() + BODY
    expected = hmac.new(PLAIN.encode(), signed, hashlib.sha256).hexdigest()
    assert headers["X-Sayna-Signature"] == f"v1={expected}"
    assert headers["X-Sayna-Timestamp"] == headers["webhook-timestamp"] == str(ts)
    assert headers["X-Sayna-Event-Id"] == "EV_3"
    assert headers["X-Sayna-Signature-Version"] == "v1"


def test_no_secret_sends_ids_but_no_signature() -> None:
    headers = signature_headers("EV_4", BODY, [], 1)
    assert headers["webhook-id"] == "EV_4"
    assert not {"webhook-signature", "X-Sayna-Signature"} & set(headers)


def test_whsec_prefix_means_base64_key() -> None:
    assert key_bytes(WHSEC) == b"0123456789abcdef0123456789abcdef"
    assert key_bytes(PLAIN) == PLAIN.encode()
