"""Which network addresses a hook may target (SSRF policy), shared by ingress and forwarder.

Blocked: loopback, private, link-local, CGNAT, benchmarking, multicast, reserved,
unspecified, documentation, cloud metadata, and their IPv6 forms (ULA, link-local,
IPv4-mapped, 6to4, NAT64, Teredo); IPv6 outside 2000::/3 is reserved. An allow list of CIDRs
(`SIP_HOOK_ALLOW_NETWORKS`) overrides the block.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_BLOCKED_V4 = tuple(
    ipaddress.IPv4Network(n)
    for n in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
    )
)
_BLOCKED_V6 = tuple(
    ipaddress.IPv6Network(n)
    for n in (
        "::/128",
        "::1/128",
        "64:ff9b:1::/48",
        "100::/64",
        "2001::/23",
        "2001:db8::/32",
        "fc00::/7",
        "fe80::/10",
        "fec0::/10",
        "ff00::/8",
    )
)
# Internet unicast is 2000::/3 (RFC 4291 2.4); the rest of ::/8 and 0100::/8-1fff:: is
# reserved, and Python's `is_global` calls it global.
_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
# Addresses that embed an IPv4 address: judge them by the embedded one too.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_6TO4 = ipaddress.IPv6Network("2002::/16")


def parse_networks(values: Iterable[str]) -> tuple[IPNetwork, ...]:
    """Parse CIDRs or single addresses; raises ValueError naming the bad entry."""
    nets: list[IPNetwork] = []
    for value in values:
        try:
            nets.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError as exc:
            raise ValueError(f"'{value.strip()}' is not a valid address or CIDR") from exc
    return tuple(nets)


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in _6TO4:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    return None  # IPv4-compatible ::a.b.c.d (deprecated) is reserved space: refused


def is_blocked(ip: IPAddress, allow: Iterable[IPNetwork] = ()) -> bool:
    """True when `ip` is not a public unicast target and no allowed network contains it."""
    for net in allow:
        if ip.version == net.version and ip in net:
            return False
    if isinstance(ip, ipaddress.IPv4Address):
        return any(ip in net for net in _BLOCKED_V4) or not ip.is_global
    embedded = _embedded_v4(ip)
    if embedded is not None:
        return is_blocked(embedded, allow)
    if ip not in _GLOBAL_UNICAST:
        return True
    return any(ip in net for net in _BLOCKED_V6) or not ip.is_global


def literal_address(host: str) -> IPAddress | None:
    """The IP address `host` names without DNS, as a resolver reads it, else None.

    Besides dotted quads and IPv6 literals (brackets allowed) that includes the numeric
    spellings inet_aton() and URL parsers accept: `2130706433`, `0x7f000001`, `127.1`,
    `0177.0.0.1`. A host whose last label is numeric but that no reader would agree on
    (`1.2.3.999`, `08`, `1.2.3.4.5`) raises ValueError: it cannot be normalised.
    """
    bare = host.strip("[]")
    try:
        return ipaddress.ip_address(bare)
    except ValueError:
        pass
    labels = bare.removesuffix(".").split(".")
    if not _numeric(labels[-1]):
        return None  # a DNS name
    return ipaddress.IPv4Address(_inet_aton(labels, host))


def _numeric(label: str) -> bool:
    """WHATWG URL's "ends in a number": decimal digits, or 0x followed by hex digits."""
    if label[:2].lower() == "0x":
        return all(c in "0123456789abcdefABCDEF" for c in label[2:])
    return label.isdigit()


def _inet_aton(labels: list[str], host: str) -> int:
    """inet_aton(3): 1-4 parts (decimal, 0x hex, 0-leading octal); the last fills the
    remaining bytes."""
    if not 1 <= len(labels) <= 4:
        raise ValueError(f"'{host}' is not a valid IPv4 address")
    parts: list[int] = []
    for label in labels:
        try:
            if label[:2].lower() == "0x":
                parts.append(int(label[2:] or "0", 16))
            elif len(label) > 1 and label.startswith("0"):
                parts.append(int(label, 8))
            else:
                parts.append(int(label, 10))
        except ValueError:
            raise ValueError(f"'{host}' is not a valid IPv4 address") from None
    *head, last = parts
    if any(p > 255 for p in head) or last >= 256 ** (5 - len(parts)):
        raise ValueError(f"'{host}' is not a valid IPv4 address")
    value = last
    for i, part in enumerate(head):
        value |= part << (8 * (3 - i))
    return value
