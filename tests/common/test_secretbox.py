"""Hook secrets at rest: sealed under SIP_SECRETS_KEY, opened by any listed key, bound to a host."""

from __future__ import annotations

import base64
import hashlib

import pytest

from sayna_sip.common.errors import ConfigError
from sayna_sip.common.secretbox import (
    SecretBox,
    SecretBoxError,
    fingerprint,
    generate_key,
    generate_secret,
)

SECRET = "a-tenant-secret-of-some-length"


def test_sealed_value_hides_the_secret_and_opens_back() -> None:
    box = SecretBox.from_setting(generate_key())
    sealed = box.seal(SECRET, "pbx.example.com")
    assert SECRET not in sealed
    assert base64.b64encode(SECRET.encode()).decode() not in sealed
    assert box.open(sealed, "pbx.example.com") == SECRET
    assert box.seal(SECRET, "pbx.example.com") != sealed  # fresh nonce each time


def test_key_rotation_first_seals_all_open() -> None:
    old, new = generate_key(), generate_key()
    sealed_by_old = SecretBox.from_setting(old).seal(SECRET, "h.example.com")
    rotated = SecretBox.from_setting(f"{new}, {old}")
    assert rotated.open(sealed_by_old, "h.example.com") == SECRET
    assert rotated.needs_reseal(sealed_by_old)
    resealed = rotated.seal(SECRET, "h.example.com")
    assert not rotated.needs_reseal(resealed)
    assert SecretBox.from_setting(new).open(resealed, "h.example.com") == SECRET


@pytest.mark.parametrize(
    "case", ["other host", "unknown key", "tampered", "garbage"], ids=lambda c: c
)
def test_what_does_not_open_is_refused(case: str) -> None:
    box = SecretBox.from_setting(generate_key())
    sealed = box.seal(SECRET, "a.example.com")
    host = "a.example.com"
    if case == "other host":
        host = "b.example.com"
    elif case == "unknown key":
        box = SecretBox.from_setting(generate_key())
    elif case == "tampered":
        version, kid, payload = sealed.split(".", 2)
        raw = bytearray(base64.b64decode(payload))
        raw[-1] ^= 1
        sealed = f"{version}.{kid}.{base64.b64encode(bytes(raw)).decode()}"
    else:
        sealed = "not a sealed value"
    with pytest.raises(SecretBoxError):
        box.open(sealed, host)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("not base64!", "SIP_SECRETS_KEY entry 1 is not valid base64"),
        (base64.b64encode(b"short").decode(), "must be the base64 of 32 bytes (got 5 bytes)"),
        (" , ", "SIP_SECRETS_KEY is set but holds no key"),
    ],
)
def test_bad_keys_name_the_variable(value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        SecretBox.from_setting(value)


def test_fingerprint_is_of_the_key_bytes() -> None:
    raw = b"0123456789abcdef0123456789abcdef"
    whsec = "whsec_" + base64.b64encode(raw).decode()
    assert fingerprint(whsec) == hashlib.sha256(raw).hexdigest()[:8]
    assert fingerprint(SECRET) == hashlib.sha256(SECRET.encode()).hexdigest()[:8]


def test_generated_secrets_are_whsec_of_32_random_bytes() -> None:
    a, b = generate_secret(), generate_secret()
    assert a != b
    assert a.startswith("whsec_") and len(base64.b64decode(a[6:])) == 32


# Sealed by this release with KEY: what KV holds must still open after an upgrade.
KEY = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="  # base64 of 32 bytes
STORED = (
    "v1.3eb1bd43./61tXbHSaUOXQvlSklgvlvpz3Q0DDH9Kw2xpXx/rJAhfCGxC8R1bUjecuvX7BLrb58NuFvz/7fnadw=="
)


def test_a_secret_sealed_by_this_release_opens_and_its_format_holds() -> None:
    box = SecretBox.from_setting(KEY)
    assert box.open(STORED, "PBX.example.com") == SECRET  # host names are case-blind
    version, kid, payload = box.seal(SECRET, "pbx.example.com").split(".")
    assert (version, kid) == ("v1", hashlib.sha256(base64.b64decode(KEY)).hexdigest()[:8])
    assert len(base64.b64decode(payload)) == 12 + len(SECRET) + 16  # nonce, text, tag


@pytest.mark.parametrize(
    ("sealed", "message"),
    [
        ("v1.3eb1bd43", "sealed secret is malformed"),
        (STORED[:20] + "!" + STORED[20:], "sealed secret is malformed"),  # not base64
        ("v2" + STORED[2:], "no configured SIP_SECRETS_KEY has id 3eb1bd43"),
        ("v1.00000000" + STORED[11:], "no configured SIP_SECRETS_KEY has id 00000000"),
        (STORED[:-6] + "AAAA==", "sealed secret does not open with its key"),
    ],
)
def test_what_does_not_open_says_why(sealed: str, message: str) -> None:
    with pytest.raises(SecretBoxError) as refused:
        SecretBox.from_setting(KEY).open(sealed, "pbx.example.com")
    assert str(refused.value) == message


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (KEY[:10] + "!" + KEY[10:], "SIP_SECRETS_KEY entry 1 is not valid base64"),  # a typo
        (
            f"{KEY}, c2hvcnQ=",
            "SIP_SECRETS_KEY entry 2 must be the base64 of 32 bytes (got 5 bytes)",
        ),
        (" , ", "SIP_SECRETS_KEY is set but holds no key"),
    ],
)
def test_bad_keys_are_refused_with_the_exact_message(value: str, message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        SecretBox.from_setting(value)
    assert str(refused.value) == message


def test_an_empty_entry_between_keys_is_skipped() -> None:
    other = generate_key()
    sealed = SecretBox.from_setting(other).seal(SECRET, "h.example.com")
    assert SecretBox.from_setting(f"{KEY}, ,{other}").open(sealed, "h.example.com") == SECRET
    with pytest.raises(ValueError, match=r"^SecretBox needs at least one key$"):
        SecretBox(())


def test_derived_keys_are_hkdf_sha256_per_key_in_order() -> None:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    other = generate_key()
    derived = SecretBox.from_setting(f"{KEY},{other}").derived(b"tenant tokens")
    expected = tuple(
        HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"tenant tokens").derive(
            base64.b64decode(k)
        )
        for k in (KEY, other)
    )
    assert derived == expected and base64.b64decode(KEY) not in derived
    assert SecretBox.from_setting(KEY).derived(b"other use") != derived[:1]
