"""Hook matching as the router uses it: parsed SIP host against the hooks' hosts."""

from __future__ import annotations

import pytest

from sayna_sip.common.hook import Hook
from sayna_sip.common.hook_directory import candidate_keys, match_host
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


CASES = [
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
]


@pytest.mark.parametrize(("to", "hook"), CASES)
def test_match_parsed_host(to: str, hook: str | None) -> None:
    host = parse_sip_host(to)
    assert host is not None
    found = match_host(HOOKS, host)
    assert (found.host if found else None) == hook


def test_no_hooks_matches_nothing() -> None:
    assert match_host({}, "example.com") is None


@pytest.mark.parametrize(("to", "hook"), CASES)
def test_kv_reads_on_a_cache_miss_find_the_hook_matching_picks(to: str, hook: str | None) -> None:
    # A hook not yet in the watched cache is read from KV by these keys, in order: the
    # first one present must be the hook a full cache would have matched.
    host = parse_sip_host(to)
    assert host is not None
    by_key = {h.key: h for h in HOOKS.values()}
    found = next((by_key[k] for k in candidate_keys(host) if k in by_key), None)
    assert (found.host if found else None) == hook
