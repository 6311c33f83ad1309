"""The Hook model: what the previous release stored in `sip_hooks` reads unchanged (its
bytes, literally), the one conversion of a written hook into its record, and the one
validator shared by config and API."""

from __future__ import annotations

import json

import pytest

from sayna_sip.common import hookstore, validate
from sayna_sip.common.errors import ConfigError
from sayna_sip.common.hook import REDACTED, EndpointEntry, Hook, HookEntry, HookSecret
from sayna_sip.common.netpolicy import parse_networks
from sayna_sip.common.secretbox import SecretBox, SecretBoxError, generate_key

# Values exactly as the previous release's Hook encoder wrote them (field order and all).
PLAIN = (
    b'{"host":"a.example.com","url":"https://a.example.com/h","source":"runtime",'
    b'"updated_at":"2026-12-01T10:00:00Z"}'
)
FULL = (
    b'{"host":"*.b.example.com","url":"https://hooks.b.example.com/in","source":"runtime",'
    b'"updated_at":"2026-12-01T10:00:00Z","events":["room_started","participant_joined"],'
    b'"secrets":[{"id":"sec_0a1b2c3d4e5f","fingerprint":"1a2b3c4d","sealed":"v1.k.AAAA",'
    b'"created_at":"2026-12-01T09:00:00Z"},{"id":"global","fingerprint":"99aa88bb",'
    b'"expires_at":"2026-12-02T09:00:00Z"}],"enabled":false,'
    b'"disabled_reason":"disabled by an operator","failing_since":"2026-11-30T08:00:00Z"}'
)
STATIC = (
    b'{"host":"c.example.com","url":"https://c.example.com/h","source":"config",'
    b'"updated_at":"2026-12-01T10:00:00Z"}'
)


def test_a_plain_value_of_the_previous_release_reads_and_round_trips() -> None:
    hook = Hook.decode(PLAIN)
    assert (hook.host, hook.url, hook.source, hook.updated_at) == (
        "a.example.com", "https://a.example.com/h", "runtime", "2026-12-01T10:00:00Z",
    )  # fmt: skip
    assert (hook.events, hook.secrets, hook.enabled) == (None, (), True)
    # what this release writes holds the same keys and values: the previous one reads it
    assert json.loads(hook.encode()) == json.loads(PLAIN)
    assert Hook.decode(STATIC).source == "config"


def test_a_value_with_every_field_of_the_previous_release_reads_unchanged() -> None:
    hook = Hook.decode(FULL)
    assert hook.events == ("room_started", "participant_joined")
    assert hook.secrets == (
        HookSecret("sec_0a1b2c3d4e5f", "1a2b3c4d", "v1.k.AAAA", "2026-12-01T09:00:00Z"),
        HookSecret("global", "99aa88bb", expires_at="2026-12-02T09:00:00Z"),
    )
    assert (hook.enabled, hook.disabled_reason, hook.failing_since) == (
        False, "disabled by an operator", "2026-11-30T08:00:00Z",
    )  # fmt: skip
    assert json.loads(hook.encode()) == json.loads(FULL)
    assert hook.wants("room_started") and not hook.wants("room_finished")


def test_a_written_hook_replaces_the_settings_and_keeps_state_and_secrets() -> None:
    old = Hook.decode(FULL)
    entry = HookEntry(host=old.host, url="https://hooks.b.example.com/v2")
    new = hookstore.record(entry, "runtime", old, None)
    assert (new.url, new.events) == ("https://hooks.b.example.com/v2", None)
    assert (new.enabled, new.disabled_reason, new.failing_since) == (
        old.enabled, old.disabled_reason, old.failing_since,
    )  # fmt: skip
    assert new.updated_at != old.updated_at


def test_a_written_secret_is_sealed_on_the_way_in_and_replaces_the_old_ones() -> None:
    box = SecretBox.from_setting(generate_key())
    secret = "s3cret-of-the-tenant-0001"
    entry = HookEntry(host="a.example.com", url="https://a.example.com/h", secret=secret)
    new = hookstore.record(entry, "runtime", Hook.decode(PLAIN), box)
    assert [s.id.startswith("sec_") for s in new.secrets] == [True]
    assert secret.encode() not in new.encode()
    assert box.open(new.secrets[0].sealed, "a.example.com") == secret
    with pytest.raises(SecretBoxError):
        hookstore.record(entry, "runtime", None, None)


def test_a_static_hook_keeps_its_secret_in_the_config_and_starts_afresh() -> None:
    entry = HookEntry(host="a.example.com", url="https://a.example.com/h", secret="x" * 20)
    new = hookstore.record(entry, "config", Hook.decode(FULL), None)
    assert (new.source, new.secrets, new.enabled, new.failing_since) == ("config", (), True, None)
    assert b"xxxx" not in new.encode()


ALLOW = parse_networks(["10.1.0.0/16"])


@pytest.mark.parametrize(
    ("host", "url", "secret", "code"),
    [
        ("bad host!", "https://a.example.com/", None, "invalid_host"),
        ("a.example.com", "http://a.example.com/", None, "insecure_url"),
        ("a.example.com", "https://u:p@a.example.com/", None, "url_credentials"),
        ("a.example.com", " https://a.example.com/", None, "invalid_url"),
        ("a.example.com", "https://10.2.0.1/", None, "blocked_target"),
        ("a.example.com", "https://a.example.com/", "short", "invalid_secret"),
        ("a.example.com", "https://a.example.com/", "x" * 16 + " " + "y" * 16, "invalid_secret"),
    ],
)
def test_the_api_refuses_with_the_code_the_rule_names(
    host: str, url: str, secret: str | None, code: str
) -> None:
    entry = HookEntry(host=host, url=url, secret=secret)
    with pytest.raises(ConfigError) as refused:
        validate.hook_entry(entry, ALLOW, several_secrets=False)
    assert refused.value.code == code


def test_config_and_api_share_the_rules_but_only_the_api_applies_the_ssrf_policy() -> None:
    entry = HookEntry(host="A.Example.com", url="https://10.2.0.1/", events=("room_started",))
    assert validate.hook_entry(entry, None).host == "a.example.com"  # the operator's own
    assert validate.hook_entry(
        HookEntry(host="a.example.com", url="https://10.1.2.3/"), ALLOW
    ).url == "https://10.1.2.3/"  # fmt: skip
    with pytest.raises(ConfigError, match="unknown LiveKit event"):
        validate.hook_entry(HookEntry(host="a.com", url="https://a.com/", events=("nope",)), None)
    several = HookEntry(host="a.com", url="https://a.com/", secret="x" * 16 + " " + "y" * 16)
    assert validate.hook_entry(several, None).secrets == ("x" * 16, "y" * 16)  # rotation


@pytest.mark.parametrize(
    ("headers", "named"),
    [
        ({"X-Ok": "a\r\nInjected: 1"}, "X-Ok"),
        ({"X-Ok": "a\nb"}, "X-Ok"),
        ({"X-Ok": "a\0b"}, "X-Ok"),
        ({"X-Key": "a", "x-key": "b"}, "x-key"),
        ({"Content-Length": "1"}, "Content-Length"),
        ({"Webhook-Signature": "v1,x"}, "Webhook-Signature"),
        ({"x-sayna-hook": "x"}, "x-sayna-hook"),
        ({"Tracestate": "x"}, "Tracestate"),
        ({"Bad:Name": "x"}, "Bad:Name"),
        ({f"X-H{i}": "v" for i in range(21)}, "at most 20"),
        ({"X-Big": "v" * 4096}, "more than 4096"),
    ],
)
def test_custom_headers_are_refused_with_the_header_named(
    headers: dict[str, str], named: str
) -> None:
    entry = HookEntry(host="a.com", url="https://a.com/", headers=headers)
    with pytest.raises(ConfigError) as refused:
        validate.hook_entry(entry, None)
    assert refused.value.code == "invalid_headers" and named in str(refused.value)


def test_header_values_are_sealed_kept_when_redacted_and_kept_when_not_written() -> None:
    box = SecretBox.from_setting(generate_key())
    value = "Bearer sk_live_0123456789"
    entry = HookEntry(host="a.com", url="https://a.com/", headers={"Authorization": value})
    hook = hookstore.record(validate.hook_entry(entry, None), "runtime", None, box)
    sealed = (hook.headers or {})["Authorization"]
    assert value.encode() not in hook.encode() and box.open(sealed, "a.com") == value
    again = HookEntry(host="a.com", url="https://a.com/v2", headers={"Authorization": REDACTED})
    assert hookstore.record(again, "runtime", hook, box).headers == {"Authorization": sealed}
    seed = HookEntry(host="a.com", url="https://a.com/v3")  # a seed client knows no headers
    assert hookstore.record(seed, "runtime", hook, box).headers == {"Authorization": sealed}
    cleared = HookEntry(host="a.com", url="https://a.com/v3", headers={})
    assert hookstore.record(cleared, "runtime", hook, box).headers is None
    static = hookstore.record(entry, "config", None, None)
    assert static.headers == {"Authorization": ""}  # the value stays in the config


def test_endpoints_keep_their_state_across_a_seed_write() -> None:
    entry = HookEntry(
        host="a.com", url="https://a.com/", endpoints=(EndpointEntry(id="crm", url="https://c/"),)
    )
    hook = hookstore.record(entry, "runtime", None, None)
    crm = hook.endpoint("crm")
    assert crm is not None
    hook = hook.with_endpoint(crm.changed(enabled=False, disabled_reason="x"))
    seed = HookEntry(host="a.com", url="https://a.com/v2")  # `endpoints` absent: as they are
    after = hookstore.record(seed, "runtime", hook, None)
    assert [e.id for e in after.endpoint_list()] == ["default", "crm"]
    assert after.endpoint("crm") == hook.endpoint("crm")
    decoded = Hook.decode(after.encode())
    assert decoded == after and decoded.endpoint("crm") is not None
    assert Hook.decode(PLAIN).endpoint_list()[0].id == "default"  # previous release: one
