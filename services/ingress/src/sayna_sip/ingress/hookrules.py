"""Validation of runtime hook writes: the config file's rules, plus the SSRF policy.

Pure functions over the request and the static config; the first problem found is
raised with a message that names the host at fault.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from sayna_sip.common import validate
from sayna_sip.common.config import SipConfig
from sayna_sip.common.errors import ConfigError
from sayna_sip.common.hosts import normalize_host
from sayna_sip.common.labels import ErrorCode
from sayna_sip.common.netpolicy import is_blocked, literal_address
from sayna_sip.ingress.errors import BadRequest, Conflict
from sayna_sip.ingress.hooks import HookWrite
from sayna_sip.ingress.schemas import HookIn

MAX_HOOKS_PER_REQUEST = 1000


def host(raw: str) -> str:
    """A host from a path or body, normalised; 400 when it is not a hook host."""
    return _host(raw)


def _host(raw: str) -> str:
    try:
        return normalize_host(raw)
    except ConfigError as exc:
        raise BadRequest(str(exc), ErrorCode.INVALID_HOST) from None


def _url(raw: str, host: str, sip: SipConfig) -> str:
    try:
        url = validate.hook_url(raw, host)
    except ConfigError as exc:
        text = str(exc)
        code = ErrorCode.INSECURE_URL if "HTTPS" in text else ErrorCode.INVALID_URL
        code = ErrorCode.URL_CREDENTIALS if "credentials" in text else code
        raise BadRequest(text, code) from None
    if url != raw or any(c.isspace() or ord(c) < 0x20 for c in url):
        raise BadRequest(
            f"SIP hook URL for '{host}' must not contain whitespace", ErrorCode.INVALID_URL
        )
    target = urlsplit(url).hostname or ""
    address = literal_address(target)  # any numeric spelling (validated by hook_url)
    if address is not None and is_blocked(address, sip.hook_allow_networks):
        raise BadRequest(
            f"SIP hook URL for '{host}' targets blocked address {address} "
            "(loopback, private, link-local or reserved; see SIP_HOOK_ALLOW_NETWORKS)",
            ErrorCode.BLOCKED_TARGET,
        )
    return url


def _not_static(host: str, sip: SipConfig) -> None:
    if any(hook.host == host for hook in sip.hooks):
        raise Conflict(
            f"SIP hook host '{host}' is defined in the static configuration and is read-only",
            ErrorCode.CONFIG_HOOK,
        )


def _count(n: int, what: str) -> None:
    if n == 0:
        raise BadRequest(f"'{what}' must list at least one entry", ErrorCode.EMPTY_REQUEST)
    if n > MAX_HOOKS_PER_REQUEST:
        raise BadRequest(
            f"'{what}' holds more than {MAX_HOOKS_PER_REQUEST} entries", ErrorCode.TOO_MANY
        )


def secret(raw: str, host: str) -> str:
    try:
        return validate.secret(raw, host)
    except ConfigError as exc:
        raise BadRequest(str(exc), ErrorCode.INVALID_SECRET) from None


def _events(raw: list[str] | None, host: str) -> tuple[str, ...] | None:
    try:
        return validate.events(raw, host)
    except ConfigError as exc:
        raise BadRequest(str(exc), ErrorCode.INVALID_EVENTS) from None


def upserts(items: list[HookIn], sip: SipConfig) -> list[HookWrite]:
    """Normalised hooks to write; raises on the first invalid item."""
    _count(len(items), "hooks")
    seen: set[str] = set()
    out: list[HookWrite] = []
    for item in items:
        host = _host(item.host)
        if host in seen:
            raise BadRequest(f"Duplicate SIP hook host: {host}", ErrorCode.DUPLICATE_HOST)
        seen.add(host)
        own = secret(item.secret, host) if item.secret is not None else None
        out.append(HookWrite(host, _url(item.url, host, sip), _events(item.events, host), own))
    for hook in out:
        _not_static(hook.host, sip)
    return out


def removals(hosts: list[str], sip: SipConfig) -> list[str]:
    """Normalised, de-duplicated hosts to remove; raises on the first invalid one."""
    _count(len(hosts), "hosts")
    out = list(dict.fromkeys(_host(raw) for raw in hosts))
    for host in out:
        _not_static(host, sip)
    return out
