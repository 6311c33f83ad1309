"""Hook signing secrets at rest: AES-GCM under `SIP_SECRETS_KEY`, and their public fingerprints.

`SIP_SECRETS_KEY` holds one or more comma-separated base64 keys of 32 bytes: the first
encrypts, every one decrypts, so the key itself can be rotated by prepending a new one,
re-saving the hooks, then dropping the old key. A sealed value names the key that sealed it
(first 8 hex digits of its SHA-256) and is bound to the hook's host, so a ciphertext copied
into another hook's entry does not open.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets as _random

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from sayna_sip.common.errors import ConfigError

SEAL_VERSION = "v1"
_NONCE_BYTES = 12


class SecretBoxError(Exception):
    """A sealed secret that no configured key opens (wrong key, tampered, or another hook's)."""


def key_bytes(secret: str) -> bytes:
    """The HMAC key a signing secret stands for: base64 after `whsec_`, else its UTF-8 bytes."""
    if secret.startswith("whsec_"):
        return base64.b64decode(secret[len("whsec_") :])
    return secret.encode()


def fingerprint(secret: str) -> str:
    """First 8 hex digits of the SHA-256 of the key bytes: safe to show, enough to compare."""
    return hashlib.sha256(key_bytes(secret)).hexdigest()[:8]


def generate_secret() -> str:
    """A fresh `whsec_` secret of 32 random bytes, as Svix and Standard Webhooks make them."""
    return "whsec_" + base64.b64encode(_random.token_bytes(32)).decode()


def generate_key() -> str:
    """A fresh value for `SIP_SECRETS_KEY`."""
    return base64.b64encode(os.urandom(32)).decode()


def _key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:8]


class SecretBox:
    """Seals and opens hook secrets with the configured keys (first seals, all open)."""

    def __init__(self, keys: tuple[bytes, ...]) -> None:
        if not keys:
            raise ValueError("SecretBox needs at least one key")
        self._keys = {_key_id(k): AESGCM(k) for k in keys}
        self._sealing_id = _key_id(keys[0])
        self._raw = keys

    def derived(self, purpose: bytes) -> tuple[bytes, ...]:
        """One HKDF-SHA256 key per configured key (same order: the first is current) for
        `purpose`, so another use of SIP_SECRETS_KEY never holds the key that seals secrets,
        and every replica with the same setting derives the same keys."""
        return tuple(
            HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(k)
            for k in self._raw
        )

    @classmethod
    def from_setting(cls, value: str) -> SecretBox:
        """Parse `SIP_SECRETS_KEY`; raises ConfigError naming the variable on a bad key."""
        keys: list[bytes] = []
        for i, part in enumerate(p.strip() for p in value.split(",")):
            if not part:
                continue
            try:
                raw = base64.b64decode(part, validate=True)
            except (binascii.Error, ValueError):
                raise ConfigError(f"SIP_SECRETS_KEY entry {i + 1} is not valid base64") from None
            if len(raw) != 32:
                raise ConfigError(
                    f"SIP_SECRETS_KEY entry {i + 1} must be the base64 of 32 bytes "
                    f"(got {len(raw)} bytes)"
                )
            keys.append(raw)
        if not keys:
            raise ConfigError("SIP_SECRETS_KEY is set but holds no key")
        return cls(tuple(keys))

    def seal(self, secret: str, host: str) -> str:
        """`v1.<key id>.<base64 nonce+ciphertext>`, bound to `host`."""
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._keys[self._sealing_id].encrypt(nonce, secret.encode(), _aad(host))
        payload = base64.b64encode(nonce + sealed).decode()
        return f"{SEAL_VERSION}.{self._sealing_id}.{payload}"

    def open(self, sealed: str, host: str) -> str:
        try:
            version, kid, payload = sealed.split(".", 2)
            raw = base64.b64decode(payload, validate=True)
        except (ValueError, binascii.Error):
            raise SecretBoxError("sealed secret is malformed") from None
        aead = self._keys.get(kid)
        if version != SEAL_VERSION or aead is None:
            raise SecretBoxError(f"no configured SIP_SECRETS_KEY has id {kid}")
        try:
            return aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], _aad(host)).decode()
        except InvalidTag:
            raise SecretBoxError("sealed secret does not open with its key") from None

    def has_key_for(self, sealed: str) -> bool:
        """True when a configured key has the id `sealed` names (it then opens, unless
        tampered with or bound to another host)."""
        version, _, rest = sealed.partition(".")
        return version == SEAL_VERSION and rest.partition(".")[0] in self._keys

    def needs_reseal(self, sealed: str) -> bool:
        """True when `sealed` was made by a key other than the current sealing key."""
        return not sealed.startswith(f"{SEAL_VERSION}.{self._sealing_id}.")


def _aad(host: str) -> bytes:
    return b"sayna-sip hook secret\x00" + host.lower().encode()
