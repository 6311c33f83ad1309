"""A hook's own signing secrets (hook_secrets.py): what signs a delivery, and what a
rotation keeps signing for how long. Pure: the record and config as the services hold them."""

from __future__ import annotations

import json
import time

import msgspec.structs
import pytest

from sayna_sip.common import hook_secrets
from sayna_sip.common.config import ServerConfig, SipConfig
from sayna_sip.common.hook import (
    DEFAULT_ENDPOINT,
    GLOBAL_SECRET_ID,
    Endpoint,
    Hook,
    HookSecret,
    parse_stamp,
    utc_stamp,
)
from sayna_sip.common.secretbox import SecretBox, SecretBoxError, fingerprint, generate_key

HOST, STATIC = "pbx.tenant-a.example", "static.tenant-s.example"
GLOBAL = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
GLOBAL_NEXT = "whsec_QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="
OLD, NEW = "tenant-a-old-secret-0123456789", "tenant-a-new-secret-0123456789"
KEY = generate_key()
BACKUP = "backup-endpoint-secret-0123456789"


def _sip(**env: str) -> SipConfig:
    backup = {"id": "backup", "url": "https://10.9.9.8/b", "secret": BACKUP,
              "headers": {"X-Api-Key": "key-of-backup"}}  # fmt: skip
    static = [{"host": STATIC, "url": "https://10.9.9.9/s", "headers": {"X-Tenant": "s"},
               "secret": "static-one-0123456789 static-two-0123456789",
               "endpoints": [backup]}]  # fmt: skip
    base = {
        "SIP_ROOM_PREFIX": "sip-", "SIP_ALLOWED_ADDRESSES": "203.0.113.0/24",
        "SIP_HOOKS_JSON": json.dumps(static), "SIP_HOOK_SECRET": f"{GLOBAL} {GLOBAL_NEXT}",
        "SIP_SECRETS_KEY": KEY,
    }  # fmt: skip
    sip = ServerConfig.from_env({**base, **env}).sip
    assert sip is not None
    return sip


def _box() -> SecretBox:
    return SecretBox.from_setting(KEY)


HOOK = Hook.new(HOST, f"https://{HOST}/hook", "runtime")


def _endpoint(hook: Hook = HOOK) -> Endpoint:
    endpoint = hook.endpoint(DEFAULT_ENDPOINT)
    assert endpoint is not None
    return endpoint


def _own(*secrets: str) -> Endpoint:
    return _endpoint().changed(secrets=tuple(hook_secrets.entry(_box(), HOST, s) for s in secrets))


def test_an_entry_is_sealed_for_its_host_with_a_public_fingerprint() -> None:
    before = time.time()
    entry = hook_secrets.entry(_box(), HOST, NEW)
    assert entry.id.startswith("sec_") and len(entry.id) == 16
    assert entry.fingerprint == fingerprint(NEW) and NEW not in entry.sealed
    assert _box().open(entry.sealed, HOST) == NEW
    with pytest.raises(SecretBoxError):
        _box().open(entry.sealed, STATIC)  # bound to the host
    assert entry.expires_at is None
    assert before - 1 <= parse_stamp(entry.created_at) <= time.time()
    assert hook_secrets.entry(_box(), HOST, NEW).id != entry.id


def test_with_secret_replaces_every_secret() -> None:
    record = hook_secrets.with_secret(_own(OLD, "another-secret-0123456789"), HOST, _box(), NEW)
    assert hook_secrets.signing_secrets(HOOK, record, _sip(), time.time()) == (NEW,)


def test_a_rotation_signs_with_the_new_secret_first_and_the_old_until_the_overlap() -> None:
    sip = _sip()
    now = time.time()
    record = hook_secrets.rotated(_own(OLD), HOST, _box(), NEW, 3600.0, sip.hook_secrets)[0]
    new, old = record.secrets
    assert new.expires_at is None and _box().open(new.sealed, HOST) == NEW
    assert old.fingerprint == fingerprint(OLD)
    assert abs(parse_stamp(old.expires_at or "") - (now + 3600)) <= 2
    assert hook_secrets.signing_secrets(HOOK, record, sip, now) == (NEW, OLD)
    assert hook_secrets.signing_secrets(HOOK, record, sip, now + 3601) == (NEW,)


def test_a_second_rotation_keeps_an_earlier_expiry_and_drops_the_expired() -> None:
    sip = _sip()
    once = hook_secrets.rotated(_own(OLD), HOST, _box(), NEW, 60.0, sip.hook_secrets)[0]
    twice = hook_secrets.rotated(once, HOST, _box(), "third-secret-0123456789abc", 3600.0, ())[0]
    _, new, old = twice.secrets
    assert (new.fingerprint, old.fingerprint) == (fingerprint(NEW), fingerprint(OLD))
    assert old.expires_at == once.secrets[1].expires_at  # not stretched by the new overlap
    assert parse_stamp(new.expires_at or "") > parse_stamp(old.expires_at or "")
    # A record read before its old secret expired: the expired one is not carried on.
    gone = msgspec.structs.replace(once, secrets=(once.secrets[0], _expired(once.secrets[1])))
    again = hook_secrets.rotated(gone, HOST, _box(), OLD, 60.0, ())[0]
    assert [s.fingerprint for s in again.secrets] == [fingerprint(OLD), fingerprint(NEW)]


def _expired(secret: HookSecret) -> HookSecret:
    return HookSecret(secret.id, secret.fingerprint, secret.sealed, secret.created_at,
                      utc_stamp(time.time() - 5))  # fmt: skip


def test_a_hook_on_the_global_secret_keeps_it_beside_its_first_own_secret() -> None:
    sip = _sip()
    plain = _endpoint()
    assert hook_secrets.signing_secrets(HOOK, plain, sip, time.time()) == (GLOBAL, GLOBAL_NEXT)
    record = hook_secrets.rotated(plain, HOST, _box(), NEW, 60.0, sip.hook_secrets)[0]
    _, kept = record.secrets
    assert (kept.id, kept.fingerprint, kept.sealed) == (GLOBAL_SECRET_ID, fingerprint(GLOBAL), "")
    assert hook_secrets.signing_secrets(HOOK, record, sip, time.time()) == (
        NEW,
        GLOBAL,
        GLOBAL_NEXT,
    )
    # No global secret configured: only the new one.
    alone = hook_secrets.rotated(plain, HOST, _box(), NEW, 60.0, ())[0]
    assert [s.fingerprint for s in alone.secrets] == [fingerprint(NEW)]


def test_a_static_hook_signs_with_its_config_secrets_else_the_global_ones() -> None:
    sip = _sip()
    static = Hook.new(STATIC, "https://10.9.9.9/s", "config")
    assert hook_secrets.static_secrets(static, _endpoint(static), sip) == (
        "static-one-0123456789",
        "static-two-0123456789",
    )
    assert hook_secrets.signing_secrets(static, _endpoint(static), sip, time.time()) == (
        "static-one-0123456789",
        "static-two-0123456789",
    )
    other = Hook.new("other.example", "https://o.example/", "config")
    assert hook_secrets.static_secrets(other, _endpoint(other), sip) == ()
    assert hook_secrets.signing_secrets(other, _endpoint(other), sip, time.time()) == (
        GLOBAL,
        GLOBAL_NEXT,
    )


def test_an_own_secret_without_the_secrets_key_is_refused_by_name() -> None:
    record = _own(OLD)
    with pytest.raises(SecretBoxError, match="SIP_SECRETS_KEY") as refused:
        hook_secrets.signing_secrets(HOOK, record, _sip(SIP_SECRETS_KEY=""), time.time())
    assert str(refused.value) == f"hook {HOST} has its own secret but SIP_SECRETS_KEY is not set"


def test_a_static_endpoint_signs_and_sends_headers_from_its_own_config_entry() -> None:
    sip = _sip()
    static = Hook.new(STATIC, "https://10.9.9.9/s", "config")
    backup = Endpoint(id="backup", url="https://10.9.9.8/b", headers={"X-Api-Key": ""})
    assert hook_secrets.static_secrets(static, backup, sip) == (BACKUP,)
    assert hook_secrets.signing_secrets(static, backup, sip, time.time()) == (BACKUP,)
    assert hook_secrets.open_headers(static, backup, sip) == {"X-Api-Key": "key-of-backup"}
    default = _endpoint(static).changed(headers={"X-Tenant": "", "X-Not-In-Config": ""})
    assert hook_secrets.open_headers(static, default, sip) == {
        "X-Tenant": "s",
        "X-Not-In-Config": "",
    }
    gone = Endpoint(id="gone", url="https://10.9.9.7/g")
    assert hook_secrets.static_secrets(static, gone, sip) == ()
    assert hook_secrets.signing_secrets(static, gone, sip, time.time()) == (GLOBAL, GLOBAL_NEXT)


def test_a_runtime_endpoint_sends_its_sealed_header_values_opened() -> None:
    sip = _sip()
    sealed = _endpoint().changed(headers={"X-Api-Key": _box().seal("the-value", HOST)})
    assert hook_secrets.open_headers(HOOK, sealed, sip) == {"X-Api-Key": "the-value"}
    assert hook_secrets.open_headers(HOOK, _endpoint(), sip) == {}
    with pytest.raises(SecretBoxError) as refused:
        hook_secrets.open_headers(HOOK, sealed, _sip(SIP_SECRETS_KEY=""))
    assert (
        str(refused.value) == f"hook {HOST} has sealed header values but SIP_SECRETS_KEY is not set"
    )
