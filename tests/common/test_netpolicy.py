"""The SSRF policy as tables: which addresses a hook may target (design.md, Delivery
contract: loopback, private, link-local, CGNAT, multicast, reserved and metadata
addresses are refused, in any spelling and in their IPv6 forms), and how a hook URL's
numeric host is read."""

from __future__ import annotations

import ipaddress

import pytest

from sayna_sip.common.netpolicy import is_blocked, literal_address, parse_networks

# IPv6 forms that carry an IPv4 address: the embedded address decides.
EMBEDDED_BLOCKED = [
    "64:ff9b::a9fe:a9fe",  # NAT64 (RFC 6052) of 169.254.169.254, the metadata address
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "2002:a00:1::",  # 6to4 of 10.0.0.1
    "2001:0:4136:e378:8000:63bf:f5ff:fffe",  # Teredo, client 10.0.0.1 (bits inverted)
    "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo, client 127.0.0.1
    "::10.0.0.1",  # IPv4-compatible (deprecated, RFC 4291 2.5.5.1)
    "::127.0.0.1",
    "::0.0.0.2",
    "::8.8.8.8",  # IPv4-compatible is refused whatever it embeds: reserved, not routed
    "::ffff:169.254.169.254",  # IPv4-mapped
    "::ffff:100.64.0.1",  # CGNAT
]
EMBEDDED_PUBLIC = [
    "64:ff9b::808:808",  # NAT64 of 8.8.8.8: the translator reaches a public host
    "2002:808:808::1",  # 6to4 of 8.8.8.8
    "::ffff:1.1.1.1",
]
BLOCKED_V6 = [
    "64:ff9b:1::808:808",  # local-use NAT64 (RFC 8215): the operator's own translator
    "100::1",  # discard-only
    "2001:db8::1",  # documentation
    "2001:2::1",  # benchmarking (IETF protocol assignments, 2001::/23)
    "2001:1::1",  # port control anycast, in 2001::/23 (Python 3.12.4+ calls it global)
    "2001:20::1",  # ORCHIDv2 identifiers, not locators
    "fc00::1",  # unique local
    "fd12:3456::1",
    "fe80::1",  # link-local
    "fec0::1",  # site-local (deprecated)
    "ff02::1",  # multicast
    "::",
    "::1",
    "::1:a00:1",  # reserved (::/8), though Python's is_global says otherwise
    "::1:808:808",
    "100:1::1",  # reserved, outside 2000::/3
    "4000::1",
]
BLOCKED_V4 = [
    "0.0.0.0", "0.1.2.3", "10.255.255.255", "100.64.0.1", "100.127.255.255", "127.0.0.1",
    "169.254.169.254", "172.16.0.1", "172.31.255.255", "192.0.0.8", "192.0.2.1",
    "192.88.99.1", "192.168.0.1", "198.18.0.1", "198.19.255.255", "198.51.100.7",
    "203.0.113.9", "224.0.0.1", "239.255.255.250", "240.0.0.1", "255.255.255.255",
]  # fmt: skip
PUBLIC = [
    "93.184.216.34", "1.1.1.1", "100.63.255.255", "100.128.0.1", "172.15.255.255",
    "172.32.0.1", "198.17.255.255", "198.20.0.1", "223.255.255.255",
    "2606:4700:4700::1111", "2001:4860:4860::8888", "2a00:1450::1",
]  # fmt: skip


@pytest.mark.parametrize("ip", EMBEDDED_BLOCKED + BLOCKED_V6 + BLOCKED_V4)
def test_refused_targets(ip: str) -> None:
    assert is_blocked(ipaddress.ip_address(ip))


@pytest.mark.parametrize("ip", EMBEDDED_PUBLIC + PUBLIC)
def test_public_targets(ip: str) -> None:
    assert not is_blocked(ipaddress.ip_address(ip))


def test_an_allowed_network_also_admits_its_addresses_ipv6_forms() -> None:
    allow = parse_networks(["10.0.0.0/8"])
    for ip in ["10.0.0.1", "::ffff:10.0.0.1", "64:ff9b::a00:1", "2002:a00:1::"]:
        assert not is_blocked(ipaddress.ip_address(ip), allow), ip
    assert is_blocked(ipaddress.ip_address("::ffff:127.0.0.1"), allow)


def test_an_allowed_network_admits_only_its_own_family() -> None:
    # ::/0 lists every IPv6 address; it says nothing about IPv4 ones.
    assert is_blocked(ipaddress.ip_address("127.0.0.1"), parse_networks(["::/0"]))
    assert not is_blocked(ipaddress.ip_address("fd00::1"), parse_networks(["::/0"]))


def test_parse_networks_reads_cidrs_and_single_addresses() -> None:
    assert parse_networks([" 10.0.0.0/8 ", "::1", "192.168.1.7/24"]) == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
        ipaddress.ip_network("192.168.1.0/24"),  # host bits of an address/prefix dropped
    )
    with pytest.raises(ValueError, match=r"^'10\.0\.0\.0/33' is not a valid address or CIDR$"):
        parse_networks(["10.0.0.0/8", " 10.0.0.0/33 "])


# Numeric hosts as inet_aton(3) and WHATWG URL parsers read them: a hook URL may spell
# an internal address in any of these ways.
SPELLINGS = [
    ("127.0.0.1", "127.0.0.1"),
    ("[::1]", "::1"),
    ("2130706433", "127.0.0.1"),
    ("0x7f000001", "127.0.0.1"),
    ("0X7F000001", "127.0.0.1"),
    ("017700000001", "127.0.0.1"),
    ("0177.0.0.1", "127.0.0.1"),
    ("0x7f.0.0.1", "127.0.0.1"),
    ("127.1", "127.0.0.1"),
    ("127.0.1", "127.0.0.1"),
    ("10.1", "10.0.0.1"),
    ("0", "0.0.0.0"),
    ("00", "0.0.0.0"),
    ("0x", "0.0.0.0"),  # WHATWG: an empty hex number is 0
    ("1.2.3.4.", "1.2.3.4"),
    ("0xa9fea9fe", "169.254.169.254"),
    ("4294967295", "255.255.255.255"),
    ("1.16777215", "1.255.255.255"),
    ("1.2.65535", "1.2.255.255"),
    ("255.255.255.255", "255.255.255.255"),
    ("9.8.7.0x6", "9.8.7.6"),
    ("011.0x8.7.6", "9.8.7.6"),
    ("0xff.1", "255.0.0.1"),
    ("255.255.65535", "255.255.255.255"),
]


@pytest.mark.parametrize(("host", "address"), SPELLINGS)
def test_numeric_spellings_name_their_address(host: str, address: str) -> None:
    assert literal_address(host) == ipaddress.ip_address(address)


@pytest.mark.parametrize(
    "host",
    ["1.2.3.999", "1.2.3.4.5", "4294967296", "1.16777216", "1.2.65536", "256.1", "08.1.1.1",
     "a.0x1f", "example.1", "1.2.3.4.0"],
)  # fmt: skip
def test_numeric_hosts_no_reader_agrees_on_are_refused(host: str) -> None:
    with pytest.raises(ValueError, match=f"^'{host}' is not a valid IPv4 address$"):
        literal_address(host)


@pytest.mark.parametrize(
    "host",
    [
        "example.com",
        "hook.example.com.",
        "0x1g",
        "0xg1",
        "1.0x1g",
        "1x",
        "10.0.0.1X",
        "0x1X",
        "localhost",
    ],
)
def test_names_are_no_literal_address(host: str) -> None:
    assert literal_address(host) is None
