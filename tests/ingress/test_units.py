"""Pure pieces of the ingress, as tables: token forms, event decoding, hook rules, auth."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import pytest

from sayna_sip.common import contracts
from sayna_sip.common.config import AuthConfig, SipConfig
from sayna_sip.common.hook import HookEntry
from sayna_sip.common.netpolicy import parse_networks
from sayna_sip.ingress import hookrules, hs256
from sayna_sip.ingress.auth import token_matches
from sayna_sip.ingress.errors import BadRequest, Conflict, Unauthorized
from sayna_sip.ingress.intake import event_headers
from sayna_sip.ingress.webhook import Event, WebhookVerifier, parse_event
from tests.fixtures.livekit import API_KEY, API_SECRET, sign_webhook

SIP = SipConfig(
    room_prefix="sip-",
    allowed_addresses=("10.0.0.1",),
    hooks=(HookEntry(host="static.example.com", url="https://s.example.com/"),),
    hook_allow_networks=parse_networks(["192.168.50.0/24"]),
)


@pytest.mark.parametrize("form", ["{t}", "Bearer {t}", "bearer {t}", "  Bearer   {t}  "])
def test_verifier_accepts_raw_and_bearer_tokens(form: str) -> None:
    body = b'{"event":"room_started"}'
    verifier = WebhookVerifier(API_KEY, API_SECRET)
    digest = verifier.token_digest(form.format(t=sign_webhook(body)))
    verifier.check_body(digest, body)
    with pytest.raises(Unauthorized):
        verifier.check_body(digest, body + b" ")


def _token(claims: dict[str, Any], secret: str = API_SECRET, alg: str = "HS256") -> str:
    now = int(time.time())
    return jwt.encode({"iss": API_KEY, "exp": now + 60, "sha256": "AAAA", **claims}, secret, alg)


def _claims() -> dict[str, Any]:
    return {"iss": API_KEY, "exp": int(time.time()) + 60, "sha256": "AAAA"}


def _claims_json() -> bytes:
    return json.dumps(_claims()).encode()


def _resigned(claims: bytes, header: bytes) -> str:
    """A token with exactly these header and claims bytes, correctly signed."""

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    signing_input = f"{b64(header)}.{b64(claims)}"
    mac = hmac.new(API_SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def _unused_bits_set(token: str) -> str:
    """The token with the signature's last character's two unused bits flipped."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    return token[:-1] + alphabet[alphabet.index(token[-1]) ^ 3]


def test_livekit_tokens_take_the_stdlib_check_not_pyjwt() -> None:
    # The speed of the intake rests on this (docs/performance.md, ingress): a token as
    # LiveKit's own SDK signs it is accepted without PyJWT.
    verifier = WebhookVerifier(API_KEY, API_SECRET)
    verifier._jwt = None  # type: ignore[assignment]  # any PyJWT call would fail
    body = b'{"event":"room_started"}'
    verifier.check_body(verifier.token_digest(sign_webhook(body)), body)


_PEM = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----"


@pytest.mark.parametrize("secret", [API_SECRET, _PEM], ids=["secret", "pem-secret"])
@pytest.mark.parametrize(
    "token",
    [
        _token({}),
        _token({}, secret="another-secret-0123456789abcdef01234"),
        _token({}, secret=API_SECRET * 2, alg="HS384"),  # refused for its alg, first
        _token({"iss": "APIother"}),
        _token({"exp": int(time.time()) - 60}),
        _token({"nbf": int(time.time()) + 60}),
        jwt.encode({"iss": API_KEY, "sha256": "AAAA"}, API_SECRET, "HS256"),  # no exp
        jwt.encode({"iss": API_KEY, "exp": 2e9}, "", "none"),
        "not.a.jwt",
        _token({"aud": "someone"}),
        _token({"iat": int(time.time()) + 60}),
        _token({"iat": "yesterday"}),
        _token({"nbf": "soon"}),
        _token({"exp": int(time.time()) + 60.5}),
        _token({"exp": str(int(time.time()) + 60)}),  # PyJWT takes digits in a string
        _token({"exp": True}),
        _resigned(b'{"exp":9999999999,"iss":null,"sha256":"AAAA"}', b'{"alg":"HS256"}'),
        _token({"sub": 7}),
        _token({"jti": ["x"]}),
        _token({"sub": "", "video": {}, "name": "x"}),  # LiveKit's extra grants
        _token({}) + "=",  # padded signature (PyJWT accepts)
        _unused_bits_set(_token({})),  # same signature bytes, not canonical
        _token({}).replace(".", ".=", 1),
        _token({})[:10] + "!" + _token({})[10:],
        _token({}) + ".",
        "é" + _token({}),
        _resigned(_claims_json(), b'{"alg":"HS256","kid":5}'),
        jwt.encode(_claims(), API_SECRET, "HS256", headers={"kid": "k1", "typ": "x"}),
        jwt.encode(_claims(), API_SECRET, "HS256", headers={"crit": ["exp"]}),
        jwt.encode(_claims(), API_SECRET, "HS256", headers={"b64": False}),
        jwt.encode(_claims(), API_SECRET, "HS256", headers={"x5u": "https://evil/"}),
        _resigned(b"[1]", b'{"alg":"HS256"}'),  # claims that are not an object
        _resigned(b'{"exp":1e999,"iss":"' + API_KEY.encode() + b'"}', b'{"alg":"HS256"}'),
        _resigned(b'{"exp":NaN,"iss":"' + API_KEY.encode() + b'"}', b'{"alg":"HS256"}'),
        _resigned(_claims_json(), b'["HS256"]'),
        _resigned(_claims_json(), b'{"alg":"HS256","alg":"none"}'),  # duplicate key
        _resigned(_claims_json(), b'{"alg":"none","alg":"HS256"}'),
    ],
    ids=[
        "valid", "bad-sig", "hs384", "issuer", "expired", "nbf", "no-exp", "alg-none", "junk",
        "aud", "iat-future", "iat-text", "nbf-text", "exp-float", "exp-digits", "exp-bool",
        "iss-null", "sub-int", "jti-list", "livekit-grants", "padded", "unused-bits",
        "padded-header", "bang", "four-segments", "non-ascii", "kid-int", "kid-typ", "crit",
        "b64", "x5u", "claims-array", "exp-inf", "exp-nan", "header-array", "dup-alg-last",
        "dup-alg-first",
    ],
)  # fmt: skip
def test_verifier_agrees_with_plain_pyjwt(secret: str, token: str) -> None:
    # The once-prepared key and the stdlib check of plain tokens (hs256.py) accept and
    # refuse exactly as PyJWT with the raw secret (the messages are the 401 bodies' text).
    def plain() -> str:
        try:
            jwt.PyJWT(options={"require": ["exp", "iss"]}).decode(
                token, secret, algorithms=["HS256"], issuer=API_KEY, leeway=10.0
            )
        except jwt.ExpiredSignatureError:
            return "webhook token has expired"
        except jwt.InvalidIssuerError:
            return "webhook token issuer is not our API key"
        except jwt.PyJWTError as exc:
            return f"invalid webhook token: {exc}"
        return "ok"

    def ours() -> str:
        try:
            WebhookVerifier(API_KEY, secret).token_digest(token)
        except Unauthorized as exc:
            return exc.message
        return "ok"

    assert ours() == plain()


def test_verifier_allows_the_documented_10_s_of_clock_skew_only() -> None:
    # docs/ingress.md: `exp` required, 10 s leeway. `exp` is whole seconds, so 8 s ago
    # stays within the leeway and 10 s ago is past it however the clock ticks meanwhile.
    verifier = WebhookVerifier(API_KEY, API_SECRET)
    verifier.token_digest(sign_webhook(b"{}", ttl_s=-5))
    verifier.token_digest(_token({"exp": int(time.time()) - 8}))
    with pytest.raises(Unauthorized, match=r"^webhook token has expired$"):
        verifier.token_digest(_token({"exp": int(time.time()) - 10}))


@pytest.mark.parametrize("header", [None, "", "   ", "Bearer", "Bearer   "])
def test_a_missing_token_is_named_as_such(header: str | None) -> None:
    # The 401 body's message: the sender learns the header is missing, not "invalid".
    with pytest.raises(Unauthorized) as refused:
        WebhookVerifier(API_KEY, API_SECRET).token_digest(header)
    assert (str(refused.value), refused.value.code) == (
        "missing Authorization token",
        "missing_token",
    )


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            b'{"id":"EV_1","event":"participant_joined","room":{"name":"sip-1"}}',
            ("EV_1", "participant_joined", "sip-1"),
        ),
        (
            b'{"event":"egress_ended","id":"EV_2","extra":[1,{"a":null}]}',
            ("EV_2", "egress_ended", ""),
        ),
        (b'{"event":"room_finished","room":null,"id":null}', (None, "room_finished", "")),
        (b"{}", (None, "", "")),
        (b'{"event":"room_started","room":{}}', (None, "room_started", "")),  # no name
    ],
)
def test_parse_event_reads_only_what_it_needs(
    body: bytes, expected: tuple[str | None, str, str]
) -> None:
    event = parse_event(body)
    event_id = expected[0] or "sha256:" + hashlib.sha256(body).hexdigest()
    assert event == Event(event_id, expected[1], expected[2])


def test_event_headers_never_carry_line_breaks() -> None:
    headers = event_headers(Event("EV_1", "room_started", "sip-a\r\nX-Evil: 1"), 1.5)
    assert all("\r" not in v and "\n" not in v for v in headers.values())
    assert headers["Sayna-Received-At"] == "1.500000"


@pytest.mark.parametrize(
    ("host", "url", "error"),
    [
        ("A.Example.com", "https://hook.example.com/x", None),
        ("*.example.com", "https://hook.example.com/x", None),
        ("2001:db8::10", "https://hook.example.com/x", None),
        ("a.example.com", "https://192.168.50.7:8443/x", None),  # allowed network
        ("a.example.com", "https://8.8.8.8/x", None),  # public IP literal
        ("a.example.com", "https://192.168.51.7/x", BadRequest),
        ("a.example.com", "https://[fe80::1]/x", BadRequest),
        ("a.example.com", "https://[::ffff:127.0.0.1]/x", BadRequest),
        ("a.example.com", "HTTP://hook.example.com/", BadRequest),
        ("a.example.com", "ftp://hook.example.com/", BadRequest),
        ("a.example.com", " https://hook.example.com/", BadRequest),
        ("", "https://hook.example.com/", BadRequest),
        ("*.", "https://hook.example.com/", BadRequest),
        ("exa mple.com", "https://hook.example.com/", BadRequest),
        ("STATIC.example.com", "https://hook.example.com/", Conflict),
    ],
)
def test_upsert_rules(host: str, url: str, error: type[Exception] | None) -> None:
    if error is None:
        [got] = hookrules.upserts([HookEntry(host=host, url=url)], SIP)
        assert (got.host, got.url) == (host.lower(), url)
    else:
        with pytest.raises(error):
            hookrules.upserts([HookEntry(host=host, url=url)], SIP)


def test_removals_normalise_and_deduplicate() -> None:
    assert hookrules.removals(["A.example.com", "a.example.com", "b.example.com"], SIP) == [
        "a.example.com",
        "b.example.com",
    ]


def test_token_matches_any_configured_token() -> None:
    tokens = AuthConfig(True, (("a", "first-token"), ("b", "second-token"))).tokens
    assert token_matches("second-token", tokens)
    assert not token_matches("second-token ", tokens)
    assert not token_matches("", tokens)


@pytest.mark.parametrize(
    "secret",
    [
        API_SECRET,
        # 32+ bytes each (shorter HMAC keys are weak: PyJWT warns)
        "0123456789ablivekit-api-secret-aW",  # base64 ends in "X": trim only padding
        "0123456789ablivekit-api-secret-a",  # base64 with "=" padding
        "012s3cr3t/with+base64-ish_chars==",
    ],
)
def test_tokens_signed_with_any_api_secret_verify(secret: str) -> None:
    body = b'{"event":"room_started"}'
    verifier = WebhookVerifier(API_KEY, secret)
    token = sign_webhook(body, api_secret=secret)
    verifier.check_body(verifier.token_digest(token), body)
    # The same token padded ("=", as some issuers write it) is PyJWT's to verify, with
    # the key prepared at start: it must be the same key.
    verifier.check_body(verifier.token_digest(token + "="), body)
    with pytest.raises(Unauthorized):
        verifier.token_digest(sign_webhook(body, api_secret=secret + "x"))


@pytest.mark.parametrize(
    ("sha256", "message"),
    [
        (None, "webhook token has no sha256 claim"),
        ("", "webhook token has no sha256 claim"),
        (123, "webhook token has no sha256 claim"),
        ("AAAA!", "webhook token sha256 claim is not base64"),  # not skipped over
        ("AAA", "webhook token sha256 claim is not base64"),
    ],
)
def test_a_token_without_a_usable_body_hash_is_refused(sha256: object, message: str) -> None:
    claims: dict[str, Any] = {"sha256": sha256}
    token = _token(claims) if sha256 is not None else _without_sha256()
    with pytest.raises(Unauthorized) as refused:
        WebhookVerifier(API_KEY, API_SECRET).token_digest(token)
    assert (str(refused.value), refused.value.code) == (message, "invalid_token")


def _without_sha256() -> str:
    return jwt.encode({"iss": API_KEY, "exp": int(time.time()) + 60}, API_SECRET, "HS256")


def test_a_body_other_than_the_signed_one_is_named_a_hash_mismatch() -> None:
    verifier = WebhookVerifier(API_KEY, API_SECRET)
    digest = verifier.token_digest(sign_webhook(b"{}"))
    with pytest.raises(Unauthorized) as refused:
        verifier.check_body(digest, b"{ }")
    assert (str(refused.value), refused.value.code) == (
        "body does not match the token's sha256 claim",
        "hash_mismatch",
    )


_DEEP = b'{"x":' + b"[" * 200_000 + b"]" * 200_000 + b"}"


@pytest.mark.parametrize(
    ("body", "start"),
    [
        (b"[1]", "webhook body is not a LiveKit event object: "),
        (b'{"event":7}', "webhook body is not a LiveKit event object: "),
        (b"nope", "webhook body is not valid JSON: "),
        (_DEEP, "webhook body is nested too deeply"),
    ],
)
def test_bodies_that_are_no_event_say_why(body: bytes, start: str) -> None:
    with pytest.raises(BadRequest) as refused:
        parse_event(body)
    assert str(refused.value).startswith(start) and refused.value.code == "invalid_json"


def _event(event: str = "room_started", id_: str = "EV_1", room: str = "sip-1") -> bytes:
    return json.dumps({"id": id_, "event": event, "room": {"name": room}}).encode()


@pytest.mark.parametrize(
    ("too_long", "message"),
    [
        (
            _event(event="e" * (contracts.MAX_EVENT_NAME + 1)),
            f"webhook event name exceeds {contracts.MAX_EVENT_NAME} characters",
        ),
        (
            _event(id_="i" * (contracts.MAX_EVENT_ID + 1)),
            f"webhook event id exceeds {contracts.MAX_EVENT_ID} characters",
        ),
        (
            _event(room="é" * (contracts.MAX_ROOM_BYTES // 2) + "r"),  # bytes, not characters
            f"webhook room name exceeds {contracts.MAX_ROOM_BYTES} bytes",
        ),
    ],
)
def test_values_at_their_limit_pass_and_one_more_is_refused(too_long: bytes, message: str) -> None:
    # The limits keep the subject, headers and KV keys they end up in valid.
    at_limit = _event(
        event="e" * contracts.MAX_EVENT_NAME,
        id_="i" * contracts.MAX_EVENT_ID,
        room="é" * (contracts.MAX_ROOM_BYTES // 2),
    )
    assert parse_event(at_limit).room == "é" * (contracts.MAX_ROOM_BYTES // 2)
    with pytest.raises(BadRequest) as refused:
        parse_event(too_long)
    assert (str(refused.value), refused.value.code) == (message, "invalid_event")


def test_the_stdlib_check_declines_a_token_expiring_exactly_now(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # PyJWT counts `exp <= now - leeway` as expired; so must the check in front of it,
    # or a token expiring at that very instant would be accepted without PyJWT.
    monkeypatch.setattr(time, "time", lambda: 1_000_000.0)  # hs256 reads time.time()
    token = _resigned(
        json.dumps({"iss": API_KEY, "exp": 1_000_000 - 10, "sha256": "AAAA"}).encode(),
        b'{"alg":"HS256"}',
    )
    assert hs256.accepted_claims(token, API_SECRET.encode(), API_KEY, 10.0) is None
    one_later = _resigned(
        json.dumps({"iss": API_KEY, "exp": 1_000_000 - 9, "sha256": "AAAA"}).encode(),
        b'{"alg":"HS256"}',
    )
    assert hs256.accepted_claims(one_later, API_SECRET.encode(), API_KEY, 10.0) is not None
