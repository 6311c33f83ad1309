"""Hook matching as the router uses it: parsed SIP host against the hooks' hosts."""

from __future__ import annotations

import pytest

from sayna_sip.common.hook import Hook
from sayna_sip.common.hookstore import match_host
from sayna_sip.router.sipuri import parse_sip_host

HOSTS = [
    "example.com",
    "*.example.com",
    "*.eu.example.com",
    "a.eu.example.com",
    "*.other.org",
    "10.0.0.5",
    "2001:db8::10",
]
HOOKS = {h: Hook.new(h, f"https://hooks.test/{h}", "runtime") for h in HOSTS}


@pytest.mark.parametrize(
    ("to", "hook"),
    [
        ("sip:bob@example.com", "example.com"),  # exact beats the wildcard
        ("sip:bob@EXAMPLE.com:5060", "example.com"),  # case-insensitive, port dropped
        ("sip:bob@a.example.com", "*.example.com"),
        ("sip:bob@b.a.example.com", "*.example.com"),  # wildcards cover deeper names
        ("sip:bob@x.eu.example.com", "*.eu.example.com"),  # most specific wildcard
        ("sip:bob@y.x.eu.example.com", "*.eu.example.com"),
        ("sip:bob@A.EU.example.com", "a.eu.example.com"),  # exact beats both wildcards
        ("sip:bob@eu.example.com", "*.example.com"),  # *.eu.example.com needs a label more
        ("sip:bob@other.org", None),  # a wildcard never covers its own base
        ("sip:bob@a.other.org", "*.other.org"),
        ("sip:bob@example.com.evil.net", None),  # suffix, not substring
        ("sip:bob@notexample.com", None),
        ("sip:bob@10.0.0.5:5060", "10.0.0.5"),
        ("sip:bob@[2001:DB8:0::10]", "2001:db8::10"),  # IPv6 compared in canonical form
        ("sip:bob@unknown.net", None),
    ],
)
def test_match_parsed_host(to: str, hook: str | None) -> None:
    host = parse_sip_host(to)
    assert host is not None
    found = match_host(HOOKS, host)
    assert (found.host if found else None) == hook


def test_no_hooks_matches_nothing() -> None:
    assert match_host({}, "example.com") is None
