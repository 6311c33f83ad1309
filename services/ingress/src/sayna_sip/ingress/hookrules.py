"""Validation of runtime hook writes: the config file's rules, plus the SSRF policy.

Pure functions over the request and the static config; the first problem found is
raised with a message that names the host at fault.
"""

from __future__ import annotations

from typing import Any

import msgspec

from sayna_sip.common import validate
from sayna_sip.common.config import SipConfig
from sayna_sip.common.errors import ConfigError
from sayna_sip.common.hook import (
    REDACTED,
    Endpoint,
    EndpointEntry,
    HookEntry,
    HookSettings,
    new_endpoint_id,
)
from sayna_sip.common.labels import ErrorCode
from sayna_sip.ingress.errors import BadRequest, Conflict

MAX_HOOKS_PER_REQUEST = 1000


def host(raw: str) -> str:
    """A host from a path or body, normalised; 400 when it is not a hook host."""
    try:
        return validate.host(raw)
    except ConfigError as exc:
        raise BadRequest(str(exc), exc.code) from None


def entry(item: HookEntry, sip: SipConfig) -> HookEntry:
    """`validate.hook_entry` (the config's rules) with the SSRF policy; its error as a 400."""
    try:
        return validate.hook_entry(
            item, sip.hook_allow_networks, several_secrets=False, max_endpoints=sip.max_endpoints
        )
    except ConfigError as exc:
        raise BadRequest(str(exc), exc.code) from None


def endpoint(item: EndpointEntry, host: str, sip: SipConfig) -> EndpointEntry:
    """One endpoint's settings by the same rules, its id given (checked) or generated."""
    try:
        given = validate.endpoint_id(item.id, host) if item.id is not None else new_endpoint_id()
        return validate.endpoint_entry(
            msgspec.structs.replace(item, id=given),
            f"{host} endpoint {given}",
            sip.hook_allow_networks,
            several_secrets=False,
        )
    except ConfigError as exc:
        raise BadRequest(str(exc), exc.code) from None


def endpoint_count(count: int, host: str, sip: SipConfig) -> None:
    try:
        validate.endpoint_count(count, host, sip.max_endpoints)
    except ConfigError as exc:
        raise BadRequest(str(exc), exc.code) from None


def merged(old: Endpoint, fields: dict[str, Any]) -> EndpointEntry:
    """A PATCH body over the endpoint it changes: the fields sent, the others as they
    are (kept header values are written as REDACTED, which keeps them)."""
    unknown = set(fields) - _PATCHABLE
    if unknown:
        raise BadRequest(
            f"PATCH of an endpoint takes {', '.join(sorted(_PATCHABLE))}; not "
            f"{', '.join(sorted(unknown))}",
            ErrorCode.INVALID_BODY,
        )
    current = msgspec.to_builtins(old.settings())
    if old.headers is not None:
        current["headers"] = dict.fromkeys(old.headers, REDACTED)
    try:
        return msgspec.convert({**current, **fields, "id": old.id}, EndpointEntry)
    except msgspec.ValidationError as exc:
        raise BadRequest(f"Invalid PATCH body: {exc}", ErrorCode.INVALID_BODY) from None


_PATCHABLE = frozenset({*HookSettings.__struct_fields__, "secret"})


def _not_static(host: str, sip: SipConfig) -> None:
    if host in sip.static_hooks:
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


def upserts(items: list[HookEntry], sip: SipConfig) -> list[HookEntry]:
    """Normalised hooks to write; raises on the first invalid item."""
    _count(len(items), "hooks")
    out: dict[str, HookEntry] = {}
    for item in items:
        hook = entry(item, sip)
        if hook.host in out:
            raise BadRequest(f"Duplicate SIP hook host: {hook.host}", ErrorCode.DUPLICATE_HOST)
        out[hook.host] = hook
    for name in out:
        _not_static(name, sip)
    return list(out.values())


def removals(hosts: list[str], sip: SipConfig) -> list[str]:
    """Normalised, de-duplicated hosts to remove; raises on the first invalid one."""
    _count(len(hosts), "hosts")
    out = list(dict.fromkeys(host(raw) for raw in hosts))
    for name in out:
        _not_static(name, sip)
    return out
