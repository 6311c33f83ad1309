"""Hook host names: validation, normalisation, and the token used in NATS subjects and KV keys.

A hook host is a DNS name (`example.com`), a wildcard (`*.example.com`, matching any
deeper name), or an IP literal (`192.168.1.100`, `2001:db8::10`). Hosts are compared
lowercase. NATS subject tokens and KV keys cannot hold `.`, `*` or `:`, so every host
has an injective token of `[a-z0-9-_=]` (see `host_token`).
"""

from __future__ import annotations

import ipaddress
import re

from sayna_sip.common.errors import ConfigError
from sayna_sip.common.logs import shorten

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_TOKEN_SAFE = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")


def normalize_host(raw: str) -> str:
    """Trim and lowercase `raw`, raising ConfigError unless it is a valid hook host."""
    host = raw.strip().lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host:
        raise ConfigError("SIP hook host cannot be empty")
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    name = host[2:] if host.startswith("*.") else host
    name = name.removesuffix(".")
    labels = name.split(".")
    if len(name) > 253 or not all(_LABEL.match(label) for label in labels):
        raise ConfigError(f"SIP hook host '{shorten(raw)}' is not a valid host name or *.wildcard")
    if host.startswith("*.") and len(labels) < 2:
        raise ConfigError(
            f"SIP hook host '{shorten(raw)}' wildcard must cover a domain like *.example.com"
        )
    return ("*." + name) if host.startswith("*.") else name


def host_token(host: str) -> str:
    """Injective, readable token for a host: `.` → `_`, other unsafe chars → `=xx` (hex)."""
    out: list[str] = []
    for ch in host.lower():
        if ch in _TOKEN_SAFE:
            out.append(ch)
        elif ch == ".":
            out.append("_")
        else:
            out.append(f"={ord(ch):02x}")
    return "".join(out)


def host_from_token(token: str) -> str:
    """Inverse of `host_token`."""
    out: list[str] = []
    i = 0
    while i < len(token):
        ch = token[i]
        if ch == "_":
            out.append(".")
        elif ch == "=":
            out.append(chr(int(token[i + 1 : i + 3], 16)))
            i += 2
        else:
            out.append(ch)
        i += 1
    return "".join(out)
