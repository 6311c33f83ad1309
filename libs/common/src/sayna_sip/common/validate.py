"""Field validators for ServerConfig. Each raises ConfigError with the spec's wording
and names the field or value at fault."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import math
import re
from collections.abc import Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit

import msgspec

from sayna_sip.common.contracts import LIVEKIT_EVENTS
from sayna_sip.common.durations import parse_duration, parse_schedule
from sayna_sip.common.errors import ConfigError
from sayna_sip.common.hook import (
    DEFAULT_ENDPOINT,
    MAX_RATE_LIMIT,
    ORDERINGS,
    EndpointEntry,
    HookEntry,
    new_endpoint_id,
)
from sayna_sip.common.hosts import normalize_host
from sayna_sip.common.labels import ErrorCode
from sayna_sip.common.netpolicy import IPNetwork, is_blocked, literal_address

_PREFIX = re.compile(r"^[A-Za-z0-9_-]+$")
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}
MIN_SECRET_LEN = 16
MAX_SECRET_LEN = 256  # bytes of UTF-8
MIN_WHSEC_BYTES, MAX_WHSEC_BYTES = 24, 64  # the Standard Webhooks key sizes


def room_prefix(value: object) -> str:
    if value is None:
        raise ConfigError("SIP room_prefix is required when SIP configuration is present")
    prefix = str(value).strip()
    if not prefix:
        raise ConfigError("SIP room_prefix cannot be empty")
    if not _PREFIX.match(prefix):
        raise ConfigError(
            f"SIP room_prefix must contain only alphanumeric characters, '-', or '_' "
            f"(got '{prefix}')"
        )
    return prefix


def allowed_addresses(values: list[str]) -> tuple[str, ...]:
    cleaned = tuple(v.strip() for v in values if v.strip())
    if not cleaned:
        raise ConfigError("SIP allowed_addresses cannot be empty")
    for value in cleaned:
        try:
            if "/" in value:
                ipaddress.ip_network(value, strict=False)
            else:
                ipaddress.ip_address(value)
        except ValueError:
            raise ConfigError(
                f"SIP allowed_address '{value}' does not look valid "
                "(expected an IPv4 or IPv6 address or CIDR range)"
            ) from None
    return cleaned


def secret(value: str, owner: str) -> str:
    """A signing secret: `whsec_<base64>` of a 24-64 byte key (Standard Webhooks), or
    16-256 characters of plain text. Bounded above because a secret ends up (sealed) in
    the hook's KV record: an unbounded one once made records the server refused by
    closing the connection."""
    value = value.strip()
    if value.startswith("whsec_"):
        try:
            key = base64.b64decode(value.removeprefix("whsec_"), validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if not key:
            raise ConfigError(
                f"SIP hook secret for '{owner}' starts with whsec_ but is not base64",
                ErrorCode.INVALID_SECRET,
            )
        if not MIN_WHSEC_BYTES <= len(key) <= MAX_WHSEC_BYTES:
            raise ConfigError(
                f"SIP hook secret for '{owner}' must be a whsec_ key of {MIN_WHSEC_BYTES} to "
                f"{MAX_WHSEC_BYTES} bytes (got {len(key)})",
                ErrorCode.INVALID_SECRET,
            )
        return value
    size = len(value.encode())
    if size < MIN_SECRET_LEN:
        raise ConfigError(
            f"SIP hook secret for '{owner}' must be at least {MIN_SECRET_LEN} characters long "
            f"(got {size})",
            ErrorCode.INVALID_SECRET,
        )
    if size > MAX_SECRET_LEN:
        raise ConfigError(
            f"SIP hook secret for '{owner}' must be at most {MAX_SECRET_LEN} characters long "
            f"(got {size})",
            ErrorCode.INVALID_SECRET,
        )
    return value


def secrets(value: object, owner: str) -> tuple[str, ...]:
    """One secret, several space-separated (rotation), or a YAML list of them."""
    if value is None:
        return ()
    items = value.split() if isinstance(value, str) else [str(v) for v in _as_list(value, owner)]
    return tuple(secret(item, owner) for item in items if item.strip())


MAX_URL_LEN = 2048
_URL_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")


def hook_url(url: object, host: str) -> str:
    """An HTTPS URL with a real host: no credentials, no wildcard, a port in 1-65535,
    at most MAX_URL_LEN characters, a numeric host only if it reads as one address."""
    text = str(url or "").strip()
    if len(text) > MAX_URL_LEN:
        raise ConfigError(
            f"SIP hook URL for '{host}' is longer than {MAX_URL_LEN} characters",
            ErrorCode.INVALID_URL,
        )
    if not all(0x21 <= ord(ch) <= 0x7E for ch in text):  # no spaces, controls or non-ASCII
        raise ConfigError(
            f"SIP hook URL for '{host}' has characters a URL cannot hold (percent-encode them): "
            f"{redact_url(text)!r}",
            ErrorCode.INVALID_URL,
        )
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(
            f"SIP hook URL for '{host}' is invalid ({exc}): '{redact_url(text)}'",
            ErrorCode.INVALID_URL,
        ) from None
    if "@" in parts.netloc:
        raise ConfigError(
            f"SIP hook URL for '{host}' must not hold credentials (user:password@); "
            "hooks authenticate deliveries by their signature",
            ErrorCode.URL_CREDENTIALS,
        )
    if parts.scheme.lower() != "https":
        raise ConfigError(
            f"SIP hook URL must be HTTPS (host '{host}', url '{text}')", ErrorCode.INSECURE_URL
        )
    if not parts.hostname:
        raise ConfigError(
            f"SIP hook URL has no host (host '{host}', url '{text}')", ErrorCode.INVALID_URL
        )
    if port == 0:
        raise ConfigError(f"SIP hook URL for '{host}' has port 0: '{text}'", ErrorCode.INVALID_URL)
    _url_host(parts.hostname, host)
    return text


def _url_host(target: str, host: str) -> None:
    """A DNS name of at most 253 characters, or an address (in any numeric spelling)."""
    try:
        if literal_address(target) is not None:
            return
    except ValueError as exc:
        raise ConfigError(f"SIP hook URL for '{host}': {exc}", ErrorCode.INVALID_URL) from None
    name = target.removesuffix(".")
    if len(name) > 253 or not all(_URL_LABEL.match(label) for label in name.split(".")):
        raise ConfigError(
            f"SIP hook URL for '{host}' has no valid host name "
            f"(labels of a-z, 0-9, '-', at most 253 characters; no wildcards): '{target[:80]}'",
            ErrorCode.INVALID_URL,
        )


def hook_entries(items: object, field: str) -> list[Mapping[str, Any]]:
    if not isinstance(items, list):
        raise ConfigError(
            f"{field} must be a list of {{host, url, secret?, events?, headers?, endpoints?}} "
            "objects"
        )
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise ConfigError(f"{field}[{index}] must be an object with host and url")
        for key in ("host", "url"):
            if not isinstance(item.get(key), str) or not item[key].strip():
                raise ConfigError(f"{field}[{index}] is missing '{key}'")
        unknown = set(item) - {
            "host",
            "url",
            "secret",
            "events",
            "headers",
            "endpoints",
            "rate_limit",
            "ordering",
        }
        if unknown:
            raise ConfigError(f"{field}[{index}] has unknown keys: {', '.join(sorted(unknown))}")
    return items


def rate_limit(value: object, owner: str) -> float | None:
    """A hook's rate limit: deliveries per second over all forwarders (None = none)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        value = "?"
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not (0 < number <= MAX_RATE_LIMIT):  # NaN fails too
        raise ConfigError(
            f"SIP hook rate_limit for '{owner}' must be a number of deliveries per second, "
            f"greater than 0 and at most {MAX_RATE_LIMIT:g}",
            ErrorCode.INVALID_RATE_LIMIT,
        )
    return number


def ordering(value: object, owner: str) -> str | None:
    """An endpoint's ordering: `call` (a room's events in order) or `none` (None = the
    SIP_ORDERING default)."""
    if value is None:
        return None
    if not isinstance(value, str) or value not in ORDERINGS:
        raise ConfigError(
            f"SIP hook ordering for '{owner}' must be one of: {', '.join(ORDERINGS)}",
            ErrorCode.INVALID_ORDERING,
        )
    return value


def events(value: object, owner: str) -> tuple[str, ...] | None:
    """A hook's event filter: LiveKit event names (None or absent = every event)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = [v for v in value.split(",") if v.strip()]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ConfigError(
            f"SIP hook events for '{owner}' must be a list of LiveKit event names",
            ErrorCode.INVALID_EVENTS,
        )
    names = tuple(dict.fromkeys(v.strip() for v in value))
    if not names:
        raise ConfigError(
            f"SIP hook events for '{owner}' cannot be empty (omit it for all events)",
            ErrorCode.INVALID_EVENTS,
        )
    unknown = [n for n in names if n not in LIVEKIT_EVENTS]
    if unknown:
        raise ConfigError(
            f"SIP hook events for '{owner}' has unknown LiveKit event(s): {', '.join(unknown)} "
            f"(known: {', '.join(LIVEKIT_EVENTS)})",
            ErrorCode.INVALID_EVENTS,
        )
    return names


MAX_HEADERS = 20
MAX_HEADER_BYTES = 4096
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # RFC 9110 token
_REFUSED_HEADERS = frozenset(
    {"host", "transfer-encoding", "connection", "traceparent", "tracestate"}
)
_REFUSED_PREFIXES = ("content-", "webhook-", "sayna-", "x-sayna-")
_ENDPOINT_ID = re.compile(r"^[a-z0-9-]{1,32}$")


def headers(value: object, owner: str) -> dict[str, str] | None:
    """An endpoint's custom headers: at most MAX_HEADERS, MAX_HEADER_BYTES in all, RFC 9110
    token names (each once, whatever its case), values without CR, LF or NUL, and none of
    the names the forwarder sets or that change how the request is framed."""
    if value is None:
        return None
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ConfigError(
            f"SIP hook headers for '{owner}' must map header names to string values",
            ErrorCode.INVALID_HEADERS,
        )
    if len(value) > MAX_HEADERS:
        raise ConfigError(
            f"SIP hook headers for '{owner}': at most {MAX_HEADERS} headers (got {len(value)})",
            ErrorCode.INVALID_HEADERS,
        )
    seen: set[str] = set()
    for name, text in value.items():
        lower = name.lower()
        if not _TOKEN.match(name):
            problem = "is not a valid header name (RFC 9110 token)"
        elif lower in _REFUSED_HEADERS or lower.startswith(_REFUSED_PREFIXES):
            problem = "is set by the forwarder or frames the request: it cannot be set"
        elif lower in seen:
            problem = "is given twice"
        elif any(ch in text for ch in "\r\n\0"):
            problem = "has a value with CR, LF or NUL"
        else:
            seen.add(lower)
            continue
        raise ConfigError(
            f"SIP hook header '{name[:64]}' for '{owner}' {problem}", ErrorCode.INVALID_HEADERS
        )
    size = sum(len(k.encode()) + len(v.encode()) for k, v in value.items())
    if size > MAX_HEADER_BYTES:
        raise ConfigError(
            f"SIP hook headers for '{owner}' hold {size} bytes, more than {MAX_HEADER_BYTES}",
            ErrorCode.INVALID_HEADERS,
        )
    return dict(value)


def endpoint_id(value: str, owner: str) -> str:
    if not _ENDPOINT_ID.match(value):
        raise ConfigError(
            f"SIP endpoint id '{value[:40]}' of '{owner}' must be 1-32 of a-z, 0-9 and '-'",
            ErrorCode.INVALID_ENDPOINT,
        )
    return value


E = TypeVar("E", HookEntry, EndpointEntry)


def endpoint_entry(
    entry: E, owner: str, ssrf: tuple[IPNetwork, ...] | None, *, several_secrets: bool = True
) -> E:
    """The rules of an endpoint's settings and secret, normalised (see `hook_entry`)."""
    url = hook_url(entry.url, owner)
    if url != entry.url:  # hook_url strips: an API body must be exact
        raise ConfigError(
            f"SIP hook URL for '{owner}' must not contain whitespace", ErrorCode.INVALID_URL
        )
    address = literal_address(urlsplit(url).hostname or "")  # any numeric spelling
    if ssrf is not None and address is not None and is_blocked(address, ssrf):
        raise ConfigError(
            f"SIP hook URL for '{owner}' targets blocked address {address} "
            "(loopback, private, link-local or reserved; see SIP_HOOK_ALLOW_NETWORKS)",
            ErrorCode.BLOCKED_TARGET,
        )
    keys = secrets(entry.secret, owner)
    if len(keys) > 1 and not several_secrets:
        raise ConfigError(
            f"SIP hook secret for '{owner}' must be one secret (no spaces); rotate-secret keeps "
            "the previous one signing beside it",
            ErrorCode.INVALID_SECRET,
        )
    return msgspec.structs.replace(
        entry,
        url=url,
        events=events(entry.events, owner),
        headers=headers(entry.headers, owner),
        secret=" ".join(keys) or None,
        rate_limit=rate_limit(entry.rate_limit, owner),
        ordering=ordering(entry.ordering, owner),
    )


def hook_entry(
    entry: HookEntry,
    ssrf: tuple[IPNetwork, ...] | None,
    *,
    several_secrets: bool = True,
    max_endpoints: int = 10,
) -> HookEntry:
    """The one check of a written hook, config entry or API item: host, then each
    endpoint's URL, events, headers and secret(s), their ids; normalised. `ssrf`: the
    networks a literal address target may be in (SIP_HOOK_ALLOW_NETWORKS) — checked for
    API writes; None for the operator's own static config (the forwarder checks every
    attempt anyway). Raises ConfigError whose `code` is the API's."""
    name = host(entry.host)
    entry = endpoint_entry(
        msgspec.structs.replace(entry, host=name), name, ssrf, several_secrets=several_secrets
    )
    if entry.endpoints is None:
        return entry
    ids = [DEFAULT_ENDPOINT]
    listed: list[EndpointEntry] = []
    for item in entry.endpoints:
        given = endpoint_id(item.id, name) if item.id is not None else new_endpoint_id()
        if given in ids:
            raise ConfigError(
                f"SIP hook '{name}' lists endpoint '{given}' twice (`default` is the hook's "
                "own url)",
                ErrorCode.DUPLICATE_ENDPOINT,
            )
        ids.append(given)
        listed.append(
            endpoint_entry(
                msgspec.structs.replace(item, id=given), f"{name} endpoint {given}", ssrf,
                several_secrets=several_secrets,
            )
        )  # fmt: skip
    endpoint_count(len(ids), name, max_endpoints)
    return msgspec.structs.replace(entry, endpoints=tuple(listed))


def endpoint_count(count: int, owner: str, most: int) -> None:
    if count > most:
        raise ConfigError(
            f"SIP hook '{owner}' would have {count} endpoints, more than SIP_MAX_ENDPOINTS "
            f"({most})",
            ErrorCode.TOO_MANY_ENDPOINTS,
        )


def hooks_json(text: str) -> list[Mapping[str, Any]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"Invalid SIP_HOOKS_JSON format: {exc}") from None
    try:
        return hook_entries(data, "SIP_HOOKS_JSON")
    except ConfigError as exc:
        raise ConfigError(f"Invalid SIP_HOOKS_JSON format: {exc}") from None


def host(value: str) -> str:
    try:
        return normalize_host(value)
    except ConfigError as exc:
        raise ConfigError(str(exc), ErrorCode.INVALID_HOST) from None


def schedule(value: object, field: str) -> tuple[float, ...]:
    try:
        return parse_schedule(value)  # type: ignore[arg-type]
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{field} is invalid: {exc}") from None


def boolean(value: object, field: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(f"{field} must be true or false (1/0, yes/no), got '{value}'")


def integer(value: object, field: str, low: int, high: int) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ConfigError(f"{field} must be an integer, got '{value}'") from None
    if not low <= number <= high:
        raise ConfigError(f"{field} must be between {low} and {high}, got {number}")
    return number


def duration(value: object, field: str) -> float:
    """Seconds from `7d`, `12h`, `90m` or a number of seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    try:
        return parse_duration(str(value))
    except ValueError as exc:
        raise ConfigError(f"{field} is invalid: {exc}") from None


_SIZE = re.compile(r"^\s*(\d+)\s*([KMGT]i?B?)?\s*$", re.IGNORECASE)
_SIZE_UNIT = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def byte_size(value: object, field: str) -> int:
    """Bytes from `1GiB`, `512MiB`, `64M` or a plain number (binary units)."""
    match = _SIZE.match(str(value))
    if not match or isinstance(value, bool):
        raise ConfigError(f"{field} must be a size like 1GiB or 512MiB, got '{value}'")
    unit = match.group(2)
    size = int(match.group(1)) * (_SIZE_UNIT[unit[0].lower()] if unit else 1)
    if size < 1 << 20:
        raise ConfigError(f"{field} must be at least 1MiB, got {size} bytes")
    return size


def number(value: object, field: str, low: float) -> float:
    try:
        result = float(str(value).strip())
    except ValueError:
        raise ConfigError(f"{field} must be a number, got '{value}'") from None
    if result < low:
        raise ConfigError(f"{field} must be at least {low:g}, got {result:g}")
    return result


_NATS_SCHEMES = ("nats", "tls", "ws", "wss")


def nats_urls(value: object, field: str = "NATS_URL") -> tuple[str, ...]:
    """One NATS URL or a cluster's list, separated by commas and/or whitespace."""
    items = value if isinstance(value, list) else re.split(r"[\s,]+", str(value))
    urls = tuple(str(item).strip() for item in items if str(item).strip())
    if not urls:
        raise ConfigError(f"{field} cannot be empty")
    for url in urls:
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018  # raises ValueError on a bad port
        except ValueError:
            raise ConfigError(f"{field} entry '{redact_url(url)}' is not a valid URL") from None
        if parts.scheme not in _NATS_SCHEMES or not parts.hostname:
            raise ConfigError(
                f"{field} entry '{redact_url(url)}' must look like nats://host:4222 "
                f"(schemes: {', '.join(_NATS_SCHEMES)})"
            )
    return urls


def egress_proxy(url: object, name: str = "SIP_EGRESS_PROXY") -> str:
    """`http://[user:password@]host:port` of the HTTP CONNECT proxy deliveries leave
    through; errors never repeat the credentials."""
    text = str(url or "").strip()
    shown = redact_url(text)
    if not all(0x21 <= ord(ch) <= 0x7E for ch in text):
        raise ConfigError(f"{name} has characters a URL cannot hold: {shown!r}")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"{name} is invalid ({exc}): '{shown}'") from None
    if parts.scheme.lower() != "http":
        raise ConfigError(f"{name} must be an http:// proxy URL (HTTP CONNECT), got '{shown}'")
    if not parts.hostname:
        raise ConfigError(f"{name} has no host: '{shown}'")
    if port is None or port == 0:
        raise ConfigError(f"{name} needs a port (http://host:port): '{shown}'")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError(f"{name} must be http://[user:password@]host:port only: '{shown}'")
    if "@" in parts.netloc and not parts.username:
        raise ConfigError(f"{name} has an empty user name: '{shown}'")
    return text


def redact_url(url: str) -> str:
    """The URL without the user:password part, fit for logs and messages."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    netloc, slash, path = rest.partition("/")
    return f"{scheme}://{netloc.rpartition('@')[2]}{slash}{path}"


def api_tokens_json(text: str) -> list[tuple[str, str]]:
    try:
        data = json.loads(text)
        if not isinstance(data, list):
            raise ValueError("expected a JSON array of {id, secret} objects")
        tokens: list[tuple[str, str]] = []
        for index, item in enumerate(data):
            if not isinstance(item, dict) or not str(item.get("secret") or "").strip():
                raise ValueError(f"item {index} needs a non-empty 'secret'")
            tokens.append((str(item.get("id") or f"token-{index}"), str(item["secret"]).strip()))
    except ValueError as exc:
        raise ConfigError(f"Invalid AUTH_API_SECRETS_JSON format: {exc}") from None
    return tokens


def _as_list(value: object, field: str) -> list[object]:
    if isinstance(value, list | tuple):
        return list(value)
    raise ConfigError(f"{field} must be a list")


def string_list(value: object, field: str) -> list[str]:
    """A YAML list or a comma-separated string; entries trimmed, empty ones dropped."""
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(v).strip() for v in _as_list(value, field) if str(v).strip()]
