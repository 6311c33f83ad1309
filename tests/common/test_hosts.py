"""Hook host normalisation, tokens, matching, SSRF ranges and durations."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sayna_sip.common.durations import parse_duration, parse_schedule
from sayna_sip.common.errors import ConfigError
from sayna_sip.common.hook import Hook
from sayna_sip.common.hook_directory import match_host
from sayna_sip.common.hosts import host_from_token, host_token, normalize_host
from sayna_sip.common.netpolicy import is_blocked


@pytest.mark.parametrize(
    ("raw", "host"),
    [
        ("Example.COM", "example.com"),
        (" sip-1.example.com ", "sip-1.example.com"),
        ("*.Example.com", "*.example.com"),
        ("localhost", "localhost"),
        ("192.168.1.100", "192.168.1.100"),
        ("[2001:DB8::10]", "2001:db8::10"),
        ("example.com.", "example.com"),
    ],
)
def test_normalize_host(raw: str, host: str) -> None:
    assert normalize_host(raw) == host


@pytest.mark.parametrize(
    "raw", ["", "a b.com", "-a.com", "a..com", "*.", "*", "a.*.com", "x" * 64 + ".com"]
)
def test_normalize_host_rejects(raw: str) -> None:
    with pytest.raises(ConfigError):
        normalize_host(raw)


_NAME_253 = ".".join(["a" * 63] * 3 + ["b" * 61])  # RFC 1035's longest name


def test_names_up_to_253_characters_are_hosts() -> None:
    assert normalize_host(_NAME_253.upper()) == _NAME_253
    assert normalize_host(f"*.{_NAME_253[2:]}") == f"*.{_NAME_253[2:]}"
    with pytest.raises(ConfigError):
        normalize_host(_NAME_253 + "b")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("  ", "SIP hook host cannot be empty"),
        ("[]", "SIP hook host cannot be empty"),
        ("a b.com", "SIP hook host 'a b.com' is not a valid host name or *.wildcard"),
        ("[2001:db8::10", "SIP hook host '[2001:db8::10' is not a valid host name or *.wildcard"),
        ("2001:db8::10]", "SIP hook host '2001:db8::10]' is not a valid host name or *.wildcard"),
        ("*.com", "SIP hook host '*.com' wildcard must cover a domain like *.example.com"),
    ],
)
def test_refusals_say_which_host_and_why(raw: str, message: str) -> None:
    # The text of a 400 from the hooks API and of a failed start (static hooks).
    with pytest.raises(ConfigError) as refused:
        normalize_host(raw)
    assert str(refused.value) == message


def test_tokens_of_earlier_releases_still_name_their_hosts() -> None:
    # KV keys and subject tokens written by earlier releases (a wire format).
    for host, token in [
        ("sip-1.example.com", "sip-1_example_com"),
        ("*.example.com", "=2a_example_com"),
        ("2001:db8::10", "2001=3adb8=3a=3a10"),
    ]:
        assert host_token(host) == token
        assert host_from_token(token) == host


@given(st.text(alphabet="abcxyz019-.*:_=[]", min_size=1, max_size=30))
def test_host_token_is_injective_and_subject_safe(host: str) -> None:
    token = host_token(host)
    assert host_from_token(token) == host.lower()
    assert not set(token) & set(".*>: ")


def test_match_host_exact_then_most_specific_wildcard() -> None:
    def rec(host: str) -> Hook:
        return Hook.new(host, f"https://{host.strip('*.')}/h", "runtime")

    hooks = {
        h: rec(h) for h in ["example.com", "*.example.com", "*.a.example.com", "b.a.example.com"]
    }
    assert match_host(hooks, "EXAMPLE.com") is hooks["example.com"]
    assert match_host(hooks, "x.example.com") is hooks["*.example.com"]
    assert match_host(hooks, "x.a.example.com") is hooks["*.a.example.com"]
    assert match_host(hooks, "b.a.example.com") is hooks["b.a.example.com"]
    assert match_host(hooks, "y.x.a.example.com") is hooks["*.a.example.com"]
    assert match_host(hooks, "other.com") is None
    assert match_host({"*.example.com": rec("*.example.com")}, "example.com") is None


@pytest.mark.parametrize(
    "ip",
    [
        "127.0.0.1", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254", "100.64.0.1",
        "0.0.0.0", "224.0.0.1", "240.0.0.1", "198.18.0.1", "::1", "::", "fe80::1", "fc00::1",
        "::ffff:127.0.0.1", "64:ff9b::a9fe:a9fe", "2002:7f00:1::", "ff02::1",
    ],
)  # fmt: skip
def test_blocked_addresses(ip: str) -> None:
    assert is_blocked(ipaddress.ip_address(ip))


@pytest.mark.parametrize(
    "ip", ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"]
)
def test_public_addresses_allowed(ip: str) -> None:
    assert not is_blocked(ipaddress.ip_address(ip))


def test_allow_networks_override_the_block() -> None:
    allow = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
    assert not is_blocked(ipaddress.ip_address("127.0.0.1"), allow)
    assert not is_blocked(ipaddress.ip_address("::1"), allow)
    assert is_blocked(ipaddress.ip_address("10.0.0.1"), allow)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("5s", 5), ("5", 5), ("1m", 60), ("2h", 7200), ("1d", 86400), ("1.5s", 1.5)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_parse_schedule_accepts_strings_and_lists() -> None:
    assert parse_schedule("1s,5s,1m") == (1, 5, 60)
    assert parse_schedule(["0s", 5, "2h"]) == (0, 5, 7200)
