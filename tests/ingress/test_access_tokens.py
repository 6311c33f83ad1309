"""Tenant tokens as a tenant holds them: a portal link minted by this release keeps
working after an upgrade (same claims, key derivation and key id), its expiry has a few
seconds of leeway only, its ttl is bounded, and a token not made exactly so is refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import time

import jwt
import pytest

from sayna_sip.common.secretbox import SecretBox
from sayna_sip.ingress.access_tokens import TenantClaims, TokenRefused, TokenSigner, parse_ttl

SECRETS_KEY = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="  # as tests/ingress/tenants.py
OTHER_KEY = "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="
A = "pbx.tenant-a.example"
# Minted by this release with SECRETS_KEY (token id tok_0123456789abcdef, generation 3,
# expiring in 2100): a tenant's portal link, which an upgrade must not end.
STORED = (
    "eyJhbGciOiJIUzI1NiIsImtpZCI6ImM3ZDY3MTBlIiwidHlwIjoiSldUIn0.eyJpc3MiOiJzYXluYS1zaXAiLCJhdWQiOiJz"
    "YXluYS1zaXAtdGVuYW50Iiwic3ViIjoicGJ4LnRlbmFudC1hLmV4YW1wbGUiLCJqdGkiOiJ0b2tfMDEyMzQ1Njc4OWFiY2Rl"
    "ZiIsImdlbiI6MywiaWF0IjoxNzY3MjI1NjAwLCJleHAiOjQxMDI0NDQ4MDB9.3pbjuECUkf85RDOU8SXrmPr2hVhUQ2rd1Q8q"
    "NOxKoE4"
)
STORED_CLAIMS = TenantClaims("tok_0123456789abcdef", A, 3, 4102444800.0)


def _signer(setting: str = SECRETS_KEY) -> TokenSigner:
    return TokenSigner(SecretBox.from_setting(setting))


def test_a_token_minted_by_this_release_still_verifies() -> None:
    assert _signer().verify(STORED) == STORED_CLAIMS
    # after a key rotation (a new key first) too, while a new token is signed with the new key
    rotated = _signer(f"{OTHER_KEY},{SECRETS_KEY}")
    assert rotated.verify(STORED) == STORED_CLAIMS
    fresh, _ = rotated.mint(A, 0, 3600)
    with pytest.raises(TokenRefused):
        _signer().verify(fresh)
    assert _signer(OTHER_KEY).verify(fresh).host == A


def test_a_new_token_carries_the_claims_an_older_release_reads() -> None:
    token, claims = _signer().mint(A, 7, 600, now=1767225600.0)
    assert jwt.get_unverified_header(token) == jwt.get_unverified_header(STORED)
    assert jwt.decode(token, options={"verify_signature": False}) == {
        "iss": "sayna-sip", "aud": "sayna-sip-tenant", "sub": A, "jti": claims.token_id,
        "gen": 7, "iat": 1767225600, "exp": 1767226200,
    }  # fmt: skip
    assert claims.token_id.startswith("tok_") and len(claims.token_id) == 20
    assert claims.expires_at == 1767226200


def test_an_expired_token_has_five_seconds_of_grace_and_not_more() -> None:
    signer = _signer()
    whole = math.floor(time.time())
    # exp = now minus [5, 6) s: past the grace
    late, _ = signer.mint(A, 0, 60, now=whole - 65.0)
    with pytest.raises(TokenRefused) as refused:
        signer.verify(late)
    assert refused.value.reason == "expired"
    assert refused.value.message == "tenant token expired: ask for a new link"
    # exp = now minus [3, 4) s: within it
    grace, _ = signer.mint(A, 0, 60, now=whole - 63.0)
    assert signer.verify(grace).host == A


def _forged(payload: dict[str, object], kid: object = "c7d6710e") -> str:
    """A token signed with the right key, with other claims or header."""
    key = SecretBox.from_setting(SECRETS_KEY).derived(b"sayna-sip tenant access token v1")[0]
    return jwt.encode(payload, key, algorithm="HS256", headers={"kid": kid})


def _without(claim: str) -> str:
    return _forged({k: v for k, v in GOOD.items() if k != claim})


def _numeric_kid() -> str:
    """A valid token of ours whose header's kid is a number (PyJWT will not write one)."""
    _, body, _ = _forged(GOOD).split(".")
    header = base64.urlsafe_b64encode(b'{"alg":"HS256","kid":7}').rstrip(b"=").decode()
    key = SecretBox.from_setting(SECRETS_KEY).derived(b"sayna-sip tenant access token v1")[0]
    mac = hmac.new(key, f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


GOOD = {"iss": "sayna-sip", "aud": "sayna-sip-tenant", "sub": A, "jti": "tok_x", "gen": 0,
        "iat": 1767225600, "exp": 4102444800}  # fmt: skip


@pytest.mark.parametrize(
    "token",
    [
        _forged({**GOOD, "iss": "someone"}),
        _forged({**GOOD, "aud": "sayna-sip-admin"}),
        *(_without(claim) for claim in ("exp", "sub", "jti", "gen", "iat")),
        _forged({**GOOD, "sub": 7}),
        _forged({**GOOD, "jti": 7}),
        _forged({**GOOD, "gen": "0"}),
        _forged({**GOOD, "gen": True}),
        _forged(GOOD, kid="0badc0de"),
        _numeric_kid(),
        jwt.encode(GOOD, "x" * 32, algorithm="HS256"),  # no kid, another key
        "ey.ey.ey",
    ],
    ids=lambda t: t[-12:],
)
def test_a_token_not_made_as_ours_is_refused_as_invalid(token: str) -> None:
    with pytest.raises(TokenRefused) as refused:
        _signer().verify(token)
    assert (refused.value.reason, refused.value.message) == ("invalid", "invalid API token")


def test_the_claims_of_a_good_forgery_pass_so_the_cases_above_test_one_thing() -> None:
    assert _signer().verify(_forged(GOOD)) == TenantClaims("tok_x", A, 0, 4102444800.0)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [(None, 3600.0), ("60s", 60.0), ("1m", 60.0), ("2592000s", 2592000.0), ("30d", 2592000.0)],
)
def test_a_ttl_from_one_minute_to_thirty_days(text: str | None, seconds: float) -> None:
    assert parse_ttl(text) == seconds


@pytest.mark.parametrize("text", ["59s", "2592001s", "0s", "soon"])
def test_a_ttl_outside_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"between 1m and 30d|not a duration"):
        parse_ttl(text)


def test_a_ttl_out_of_bounds_says_the_bounds() -> None:
    with pytest.raises(ValueError) as refused:
        parse_ttl("31d")
    assert str(refused.value) == "ttl must be between 1m and 30d, not '31d'"
