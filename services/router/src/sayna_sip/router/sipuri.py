"""The host of a SIP `To` header (or `X-To-IP` value): the key that picks a tenant's hook.

Pure and total: `parse_sip_host` never raises; anything it cannot read as a SIP/SIPS URI,
a name-addr around one, or a plain `host[:port]` gives None, which matches no hook.

Accepted forms (RFC 3261 §20.10, §25.1):
- `sip:user@host[:port][;params][?headers]`, `sips:` too, scheme in any case;
- a name-addr: `"Display Name" <sip:...>;tag=...` or `Name <sip:...>`;
- a URI without user part: `sip:host[:port]`;
- plain `host[:port]`, `[ipv6][:port]` or a bare IP address (as proxies set `X-To-IP`);
- linear whitespace around `;` and `=` of header parameters, also after a bare URI
  (`sip:alice@pbx.example.com ; tag = 1`, RFC 4475 3.1.1.1 "wsinv").
A host is an IP address or a DNS name with at least one dot, or, after a user part, a
single label (`sip:alice@localhost`, the spec's local-testing host); `tel:` and other
schemes, `user@host` without a scheme, and lone single labels (`sip:nodomain`,
`not-a-domain`) give None.
"""

from __future__ import annotations

import ipaddress
import re

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_SCHEME = re.compile(r"^([a-z][a-z0-9+.-]*):", re.IGNORECASE)
_PORT = re.compile(r"^[0-9]{1,5}$")


def parse_sip_host(value: str) -> str | None:
    """Lowercase host (no port, IPv6 without brackets) of `value`, or None.

    Total by construction (no catch-all: the property test keeps it honest).
    """
    uri = _addr_spec(value.strip())
    return None if uri is None else _uri_host(uri)


def _addr_spec(value: str) -> str | None:
    """The URI inside a name-addr (`"Bob" <sip:...>;tag=x`), or `value` itself."""
    rest = value
    if rest.startswith('"'):
        end = _closing_quote(rest)
        if end is None:
            return None
        rest = rest[end + 1 :]
    if "<" in rest:
        start = rest.index("<")
        end = rest.find(">", start)
        return rest[start + 1 : end].strip() if end > start else None
    return rest.strip() if rest is value else None  # quoted name without <uri>


def _closing_quote(text: str) -> int | None:
    i = 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == '"':
            return i
        i += 1
    return None


def _uri_host(uri: str) -> str | None:
    scheme = _SCHEME.match(uri)
    if scheme is not None and not _is_port_suffix(uri[scheme.end() :]):
        if scheme.group(1).lower() not in ("sip", "sips"):
            return None  # tel:, http:, urn: ... carry no SIP host
        rest = uri[scheme.end() :]
        # The user part may hold ';' and '?' (RFC 3261 user-unreserved) but never a raw
        # '@', and nothing after the host may either: the last '@' ends the userinfo.
        userinfo, at, hostpart = rest.rpartition("@")
        hostport = re.split(r"[;?]", hostpart, maxsplit=1)[0]
        if hostport != hostpart:  # LWS may precede a header parameter (SEMI = SWS ";" SWS)
            hostport = hostport.rstrip(" \t\r\n")
        return _hostport(hostport, bare_ipv6=False, single_label=bool(at and userinfo))
    if "@" in uri:
        return None  # `user@host` without a scheme is not a SIP URI (original's vectors)
    return _hostport(uri, bare_ipv6=True)


def _is_port_suffix(text: str) -> bool:
    """True when `name:` was a host followed by a port, not a URI scheme."""
    return bool(_PORT.match(text))


def _hostport(text: str, *, bare_ipv6: bool, single_label: bool = False) -> str | None:
    """`host[:port]` or `[ipv6][:port]`; a bare IPv6 address only outside URIs, where
    RFC 3261 requires brackets (`2001:db8::1:5060` would be ambiguous)."""
    if text.startswith("["):
        inside, sep, after = text[1:].partition("]")
        if not sep or (after and not (after.startswith(":") and _valid_port(after[1:]))):
            return None
        return _ipv6(inside)
    if text.count(":") > 1:  # a bare IPv6 address, as an X-To-IP value may be
        return _ipv6(text) if bare_ipv6 else None
    host, sep, port = text.partition(":")
    if sep and not _valid_port(port):
        return None
    return _host(host, single_label)


def _valid_port(text: str) -> bool:
    return bool(_PORT.match(text)) and 0 < int(text) <= 65535


def _ipv6(text: str) -> str | None:
    try:
        return str(ipaddress.IPv6Address(text))
    except ValueError:
        return None


def _host(text: str, single_label: bool) -> str | None:
    host = text.lower().removesuffix(".")
    if host[-1:].isdigit():  # only then can it be an IPv4 address (skip a costly raise)
        try:
            return str(ipaddress.IPv4Address(host))
        except ValueError:
            pass
    labels = host.split(".")
    if (len(labels) < 2 and not single_label) or len(host) > 253 or labels[-1].isdigit():
        return None  # single label, or a dotted quad that is no IPv4 address (999.1.1.1)
    if not all(_LABEL.match(label) for label in labels):
        return None
    return host
