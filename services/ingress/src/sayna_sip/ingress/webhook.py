"""LiveKit webhook verification and the little of the event the ingress needs.

LiveKit signs each webhook with an HS256 JWT (issuer = API key) whose `sha256` claim
is the base64 SHA-256 of the raw body. The token is checked before the body is read,
the hash after; only `id`, `event` and `room.name` are decoded, the body is kept as is.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

import jwt
import msgspec
from jwt.algorithms import HMACAlgorithm

from sayna_sip.common import contracts
from sayna_sip.common.labels import ErrorCode
from sayna_sip.ingress import hs256
from sayna_sip.ingress.errors import BadRequest, Unauthorized

LEEWAY_S = 10.0
_BEARER = "bearer"


class _Room(msgspec.Struct):
    name: str = ""


class _Envelope(msgspec.Struct):
    id: str | None = None
    event: str = ""
    room: _Room | None = None


_decoder = msgspec.json.Decoder(_Envelope)


@dataclass(frozen=True, slots=True)
class Event:
    """What routing needs to know about a verified webhook."""

    id: str  # LiveKit's id, or `sha256:<hex>` of the body when it has none
    event: str
    room: str


class _CheckedHS256(HMACAlgorithm):
    """HS256 for one secret that was checked once, at start.

    PyJWT's `prepare_key` re-checks the key on every decode (PEM and SSH patterns, two
    DER parses, a JSON parse): ~10 µs per webhook for a secret that never changes.
    """

    def __init__(self, secret: bytes) -> None:
        super().__init__(HMACAlgorithm.SHA256)
        self._secret = super().prepare_key(secret)

    def prepare_key(self, key: str | bytes) -> bytes:
        return self._secret if key == self._secret else super().prepare_key(key)


def _verification_key(secret: str) -> jwt.PyJWK | str:
    """The API secret as an HS256 PyJWK whose key is prepared once.

    A secret PyJWT refuses as an HMAC key stays a plain string, so that every
    webhook is refused with PyJWT's own error, as before.
    """
    raw = secret.encode()
    try:
        checked = _CheckedHS256(raw)
    except jwt.InvalidKeyError:
        return secret
    k = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    key = jwt.PyJWK({"kty": "oct", "k": k}, algorithm="HS256")
    key.Algorithm = checked  # PyJWT verifies a PyJWK with its own Algorithm
    return key


class WebhookVerifier:
    """Checks LiveKit's Authorization token and the body hash it carries."""

    def __init__(self, api_key: str, api_secret: str, leeway: float = LEEWAY_S) -> None:
        self._key = api_key
        self._secret = _verification_key(api_secret)
        # The fast check only for a secret PyJWT takes as an HMAC key (it refuses others).
        self._fast_secret = api_secret.encode() if isinstance(self._secret, jwt.PyJWK) else None
        self._leeway = leeway
        self._jwt = jwt.PyJWT(options={"require": ["exp", "iss"]})

    def token_digest(self, authorization: str | None) -> bytes:
        """The body digest the token vouches for; Unauthorized unless the token is valid."""
        token = (authorization or "").strip()
        if token[:6].lower() == _BEARER and (len(token) == 6 or token[6].isspace()):
            token = token[6:].strip()  # `Bearer <jwt>`; LiveKit itself sends the raw JWT
        if not token:
            raise Unauthorized("missing Authorization token", ErrorCode.MISSING_TOKEN)
        claims = None
        if self._fast_secret is not None:
            claims = hs256.accepted_claims(token, self._fast_secret, self._key, self._leeway)
        return self._body_digest(claims if claims is not None else self._pyjwt_claims(token))

    def _pyjwt_claims(self, token: str) -> dict[str, Any]:
        """PyJWT's verdict: every refusal, with its message, and any unusual token."""
        try:
            return self._jwt.decode(
                token,
                self._secret,
                algorithms=["HS256"],
                issuer=self._key,
                leeway=self._leeway,
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("webhook token has expired", ErrorCode.INVALID_TOKEN) from None
        except jwt.InvalidIssuerError:
            raise Unauthorized(
                "webhook token issuer is not our API key", ErrorCode.INVALID_TOKEN
            ) from None
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"invalid webhook token: {exc}", ErrorCode.INVALID_TOKEN) from None

    @staticmethod
    def _body_digest(claims: dict[str, Any]) -> bytes:
        claim = claims.get("sha256")
        if not isinstance(claim, str) or not claim:
            raise Unauthorized("webhook token has no sha256 claim", ErrorCode.INVALID_TOKEN)
        try:
            return base64.b64decode(claim, validate=True)
        except (binascii.Error, ValueError):
            raise Unauthorized(
                "webhook token sha256 claim is not base64", ErrorCode.INVALID_TOKEN
            ) from None

    @staticmethod
    def check_body(digest: bytes, body: bytes) -> None:
        if not hmac.compare_digest(digest, hashlib.sha256(body).digest()):
            raise Unauthorized(
                "body does not match the token's sha256 claim", ErrorCode.HASH_MISMATCH
            )


def parse_event(body: bytes) -> Event:
    """Decode id, event and room name; BadRequest unless the body is a JSON object."""
    try:
        env = _decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise BadRequest(
            f"webhook body is not a LiveKit event object: {exc}", ErrorCode.INVALID_JSON
        ) from None
    except msgspec.DecodeError as exc:
        raise BadRequest(f"webhook body is not valid JSON: {exc}", ErrorCode.INVALID_JSON) from None
    except RecursionError:  # nesting deeper than the decoder's stack
        raise BadRequest("webhook body is nested too deeply", ErrorCode.INVALID_JSON) from None
    event_id = env.id or "sha256:" + hashlib.sha256(body).hexdigest()
    event = Event(id=event_id, event=env.event, room=env.room.name if env.room else "")
    _check_bounds(event)
    return event


def _check_bounds(event: Event) -> None:
    """Refuse values too long for the subject, headers and KV keys they end up in."""
    if len(event.event) > contracts.MAX_EVENT_NAME:
        raise BadRequest(
            f"webhook event name exceeds {contracts.MAX_EVENT_NAME} characters",
            ErrorCode.INVALID_EVENT,
        )
    if len(event.id) > contracts.MAX_EVENT_ID:
        raise BadRequest(
            f"webhook event id exceeds {contracts.MAX_EVENT_ID} characters", ErrorCode.INVALID_EVENT
        )
    if len(event.room.encode("utf-8", "surrogatepass")) > contracts.MAX_ROOM_BYTES:
        raise BadRequest(
            f"webhook room name exceeds {contracts.MAX_ROOM_BYTES} bytes", ErrorCode.INVALID_EVENT
        )
