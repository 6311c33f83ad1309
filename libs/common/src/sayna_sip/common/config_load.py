"""Reading ServerConfig: YAML and the environment merged, validated, one error per field.

Precedence: environment > YAML > default (SIP disabled). An environment list replaces
the YAML list whole. Empty environment variables count as unset, so a compose file can
pass `${VAR:-}` through. Validation runs on the merged result, whatever its source, and
fails fast with a ConfigError that names the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from sayna_sip.common import validate as v
from sayna_sip.common.config import (
    DEFAULT_RETRY_SCHEDULE,
    AuthConfig,
    ForwarderConfig,
    LiveKitConfig,
    NatsConfig,
    RecordsConfig,
    ServerConfig,
    SipConfig,
)
from sayna_sip.common.errors import ConfigError
from sayna_sip.common.hook import ORDERINGS, EndpointEntry, HookEntry
from sayna_sip.common.netpolicy import IPNetwork, parse_networks
from sayna_sip.common.secretbox import SecretBox

# Every environment variable the services read, once: name -> the ServerConfig attribute
# holding its default (None: no default, unset means off or required). `_pick` refuses a
# name missing here, and the docs tests hold README.md's table to exactly this list.
VARIABLES: dict[str, str | None] = {
    "SIP_ROOM_PREFIX": None,
    "SIP_ALLOWED_ADDRESSES": None,
    "SIP_HOOKS_JSON": None,
    "SIP_HOOK_SECRET": None,
    "SIP_RETRY_SCHEDULE": "sip.retry_schedule",
    "SIP_MAX_PARTICIPANTS": "sip.max_participants",
    "SIP_HOOK_ALLOW_NETWORKS": None,
    "SIP_HOOK_CA_BUNDLE": None,
    "SIP_SECRETS_KEY": None,
    "SIP_SECRET_OVERLAP": None,
    "SIP_HOOK_DISABLE_AFTER": None,
    "SIP_MAX_ENDPOINTS": None,
    "SIP_OPS_WEBHOOK_URL": None,
    "SIP_EGRESS_PROXY": None,
    "SIP_ORDERING": "sip.ordering",
    "SIP_ORDER_HOLD_MAX": None,  # 5m, documented as `5m`
    "SIP_ATTEMPTS_MAX_AGE": None,
    "SIP_ATTEMPTS_MAX_BYTES": None,  # 1 GiB, documented as `1GiB`
    "SIP_ATTEMPT_RECORDS": "records.enabled",
    "SIP_ATTEMPT_BODY_BYTES": "records.body_bytes",
    "LK_EVENTS_MAX_AGE": None,
    "LIVEKIT_URL": None,
    "LIVEKIT_API_KEY": None,
    "LIVEKIT_API_SECRET": None,
    "NATS_URL": "nats.url",
    "NATS_REPLICAS": "nats.replicas",
    "NATS_START_TIMEOUT": "nats.start_timeout",
    "HOST": "host",
    "PORT": "port",
    "WEBHOOK_MAX_BODY_BYTES": "max_body_bytes",
    "AUTH_REQUIRED": "auth.required",
    "AUTH_API_SECRET": None,
    "AUTH_API_SECRETS_JSON": None,
    "ROUTER_PORT": "router_port",
    "FORWARDER_PORT": "forwarder.port",
    "FORWARDER_TIMEOUT": "forwarder.timeout",
    "FORWARDER_CONNECT_TIMEOUT": "forwarder.connect_timeout",
    "FORWARDER_HOST_CONCURRENCY": "forwarder.host_concurrency",
    "FORWARDER_CONCURRENCY": "forwarder.concurrency",
    "LOG_FORMAT": "log_format",
    "LOG_LEVEL": "log_level",
}

# YAML sections and the keys each may hold; anything else is a typo and fails the load.
_YAML_KEYS: dict[str, set[str]] = {
    "server": {"host", "port"},
    "livekit": {"url", "api_key", "api_secret"},
    "auth": {"required", "api_secret", "api_secrets"},
    "nats": {"url", "replicas", "start_timeout"},
    "ingress": {"max_body_bytes"},
    "router": {"port"},
    "forwarder": {"port", "timeout", "connect_timeout", "host_concurrency", "concurrency"},
    "logging": {"format", "level"},
    "records": {"enabled", "max_age", "max_bytes", "body_bytes", "events_max_age"},
    "sip": {
        "room_prefix",
        "allowed_addresses",
        "hooks",
        "hook_secret",
        "retry",
        "max_participants",
        "hook_allow_networks",
        "hook_ca_bundle",
        "secrets_key",
        "secret_overlap",
        "hook_disable_after",
        "ops_webhook_url",
        "egress_proxy",
        "ordering",
        "order",
    },
}


def read_yaml(path: str | Path) -> dict[str, Any]:
    """The mapping a YAML config file holds (ConfigError naming the file otherwise)."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"Cannot read config file '{path}': {exc.strerror}") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"Config file '{path}' is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"Config file '{path}' must hold a mapping at the top level")
    return data


def nats_settings(data: Mapping[str, Any], env: Mapping[str, str]) -> NatsConfig:
    """Only the NATS settings (`nats:` and NATS_*), for tools that read NATS alone: the
    other sections are checked for typos but not validated, so no SIP block is needed."""
    _check_yaml_keys(data)
    return _nats(_Sections(data), {k: val for k, val in env.items() if val.strip()})


def load(data: Mapping[str, Any], env: Mapping[str, str]) -> ServerConfig:
    """Merge YAML `data` and `env` (env wins) and validate the result."""
    _check_yaml_keys(data)
    e = {k: val for k, val in env.items() if val.strip()}
    y = _Sections(data)
    log_format = str(_pick(e, "LOG_FORMAT", y.get("logging", "format"), "text")).lower()
    if log_format not in ("text", "json"):
        raise ConfigError(f"LOG_FORMAT must be 'text' or 'json', got '{log_format}'")
    return ServerConfig(
        sip=_sip(y, e),
        livekit=LiveKitConfig(
            url=_opt(_pick(e, "LIVEKIT_URL", y.get("livekit", "url"), None)),
            api_key=_opt(_pick(e, "LIVEKIT_API_KEY", y.get("livekit", "api_key"), None)),
            api_secret=_opt(_pick(e, "LIVEKIT_API_SECRET", y.get("livekit", "api_secret"), None)),
        ),
        nats=_nats(y, e),
        auth=_auth(y, e),
        forwarder=_forwarder(y, e),
        records=_records(y, e),
        host=str(_pick(e, "HOST", y.get("server", "host"), "0.0.0.0")).strip(),
        port=_int(e, y, "PORT", ("server", "port"), 3001, 0, 65535),
        max_body_bytes=_int(
            e, y, "WEBHOOK_MAX_BODY_BYTES", ("ingress", "max_body_bytes"), 1 << 20, 1024, 64 << 20
        ),
        router_port=_int(e, y, "ROUTER_PORT", ("router", "port"), 3002, 0, 65535),
        log_format=log_format,
        log_level=str(_pick(e, "LOG_LEVEL", y.get("logging", "level"), "INFO")).upper(),
    )


def _nats(y: _Sections, e: Mapping[str, str]) -> NatsConfig:
    urls = v.nats_urls(_pick(e, "NATS_URL", y.get("nats", "url"), NatsConfig.url))
    return NatsConfig(
        url=",".join(urls),
        replicas=_int(e, y, "NATS_REPLICAS", ("nats", "replicas"), 1, 1, 5),
        start_timeout=v.number(
            _pick(e, "NATS_START_TIMEOUT", y.get("nats", "start_timeout"), 20.0),
            "NATS_START_TIMEOUT",
            0.5,
        ),
    )


def _auth(y: _Sections, e: Mapping[str, str]) -> AuthConfig:
    tokens = _auth_tokens(y, e)
    required = v.boolean(
        _pick(e, "AUTH_REQUIRED", y.get("auth", "required"), False), "AUTH_REQUIRED"
    )
    if required and not tokens:
        raise ConfigError(
            "AUTH_REQUIRED=true but no API token is configured: "
            "set AUTH_API_SECRET or AUTH_API_SECRETS_JSON"
        )
    return AuthConfig(required=required, tokens=tuple(tokens))


def _forwarder(y: _Sections, e: Mapping[str, str]) -> ForwarderConfig:
    def seconds(name: str, key: str, default: float, low: float) -> float:
        return v.number(_pick(e, name, y.get("forwarder", key), default), name, low)

    return ForwarderConfig(
        port=_int(e, y, "FORWARDER_PORT", ("forwarder", "port"), 3003, 0, 65535),
        timeout=seconds("FORWARDER_TIMEOUT", "timeout", 10.0, 0.1),
        connect_timeout=seconds("FORWARDER_CONNECT_TIMEOUT", "connect_timeout", 2.0, 0.05),
        host_concurrency=_int(
            e, y, "FORWARDER_HOST_CONCURRENCY", ("forwarder", "host_concurrency"), 10, 1, 10_000
        ),
        concurrency=_int(
            e, y, "FORWARDER_CONCURRENCY", ("forwarder", "concurrency"), 100, 1, 100_000
        ),
    )


def _records(y: _Sections, e: Mapping[str, str]) -> RecordsConfig:
    def age(name: str, key: str) -> float:
        seconds = v.duration(_pick(e, name, y.get("records", key), "7d"), name)
        if seconds < 60:
            raise ConfigError(f"{name} must be at least 1m, got {seconds:g}s")
        return seconds

    return RecordsConfig(
        enabled=v.boolean(
            _pick(e, "SIP_ATTEMPT_RECORDS", y.get("records", "enabled"), True),
            "SIP_ATTEMPT_RECORDS",
        ),
        max_age=age("SIP_ATTEMPTS_MAX_AGE", "max_age"),
        max_bytes=v.byte_size(
            _pick(e, "SIP_ATTEMPTS_MAX_BYTES", y.get("records", "max_bytes"), 1 << 30),
            "SIP_ATTEMPTS_MAX_BYTES",
        ),
        body_bytes=_int(e, y, "SIP_ATTEMPT_BODY_BYTES", ("records", "body_bytes"), 4096, 0, 4096),
        events_max_age=age("LK_EVENTS_MAX_AGE", "events_max_age"),
    )


def _int(
    e: Mapping[str, str],
    y: _Sections,
    name: str,
    yaml_key: tuple[str, str],
    default: int,
    low: int,
    high: int,
) -> int:
    return v.integer(_pick(e, name, y.get(*yaml_key), default), name, low, high)


class _Sections:
    """Read access to the YAML sections, tolerating absent or null sections."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data = data

    def section(self, name: str) -> Mapping[str, Any]:
        value = self.data.get(name)
        return value if isinstance(value, Mapping) else {}

    def get(self, section: str, key: str) -> Any:
        return self.section(section).get(key)

    def has(self, section: str) -> bool:
        return section in self.data


def _check_yaml_keys(data: Mapping[str, Any]) -> None:
    for name, value in data.items():
        if name not in _YAML_KEYS:
            raise ConfigError(
                f"Unknown config section '{name}' (known: {', '.join(sorted(_YAML_KEYS))})"
            )
        if value is None:
            continue
        if not isinstance(value, Mapping):
            raise ConfigError(f"Config section '{name}' must be a mapping")
        unknown = set(value) - _YAML_KEYS[name]
        if unknown:
            raise ConfigError(f"Unknown key(s) in '{name}': {', '.join(sorted(unknown))}")


def _pick(env: Mapping[str, str], name: str, yaml_value: Any, default: Any) -> Any:
    if name not in VARIABLES:  # a programming error: declare (and document) it first
        raise KeyError(f"{name} is not declared in config_load.VARIABLES")
    if name in env:
        return env[name]
    return default if yaml_value is None else yaml_value


def _opt(value: Any) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text or None


def _auth_tokens(y: _Sections, e: Mapping[str, str]) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    single = _opt(_pick(e, "AUTH_API_SECRET", y.get("auth", "api_secret"), None))
    if single:
        tokens.append(("default", single))
    if "AUTH_API_SECRETS_JSON" in e:
        tokens.extend(v.api_tokens_json(e["AUTH_API_SECRETS_JSON"]))
    elif y.get("auth", "api_secrets") is not None:
        import json

        tokens.extend(v.api_tokens_json(json.dumps(y.get("auth", "api_secrets"))))
    return tokens


# The variables that switch SIP on (the records' SIP_ATTEMPTS_* do not).
_SIP_ENV = (
    "SIP_ROOM_PREFIX",
    "SIP_ALLOWED_ADDRESSES",
    "SIP_HOOKS_JSON",
    "SIP_HOOK_SECRET",
    "SIP_RETRY_SCHEDULE",
    "SIP_HOOK_ALLOW_NETWORKS",
    "SIP_HOOK_CA_BUNDLE",
    "SIP_MAX_PARTICIPANTS",
    "SIP_SECRETS_KEY",
    "SIP_SECRET_OVERLAP",
    "SIP_HOOK_DISABLE_AFTER",
    "SIP_OPS_WEBHOOK_URL",
    "SIP_MAX_ENDPOINTS",
    "SIP_EGRESS_PROXY",
    "SIP_ORDERING",
    "SIP_ORDER_HOLD_MAX",
)


def sip_switch(data: Mapping[str, Any], env: Mapping[str, str]) -> str | None:
    """What switched SIP on (for messages), or None when SIP is off."""
    if _Sections(data).has("sip"):
        return "the sip: section of the config file"
    names = [name for name in _SIP_ENV if name in env]
    return f"{', '.join(names)} in the environment" if names else None


def _room_prefix(y: _Sections, e: Mapping[str, str]) -> str:
    value = _pick(e, "SIP_ROOM_PREFIX", y.get("sip", "room_prefix"), None)
    if value is None:  # the usual first-hour mistake: a SIP_* variable exported, no config
        raise ConfigError(
            "SIP room_prefix is required when SIP configuration is present "
            f"(SIP is on because of {sip_switch(y.data, e)}): pass --config local.yaml "
            "(a sip: block with room_prefix) or set SIP_ROOM_PREFIX; to keep SIP off, "
            "unset the SIP_* variables"
        )
    return v.room_prefix(value)


def _sip(y: _Sections, e: Mapping[str, str]) -> SipConfig | None:
    if sip_switch(y.data, e) is None:
        return None
    s = y.section("sip")
    addresses = v.string_list(
        _pick(e, "SIP_ALLOWED_ADDRESSES", s.get("allowed_addresses"), []), "sip.allowed_addresses"
    )
    most = v.integer(
        _pick(e, "SIP_MAX_ENDPOINTS", s.get("max_endpoints"), 10), "SIP_MAX_ENDPOINTS", 1, 100
    )
    return SipConfig(
        room_prefix=_room_prefix(y, e),
        allowed_addresses=v.allowed_addresses(addresses),
        hooks=_hooks(s, e, most),
        max_endpoints=most,
        hook_secrets=v.secrets(_pick(e, "SIP_HOOK_SECRET", s.get("hook_secret"), None), "global"),
        retry_schedule=_schedule(s, e),
        max_participants=v.integer(
            _pick(e, "SIP_MAX_PARTICIPANTS", s.get("max_participants"), 3),
            "SIP_MAX_PARTICIPANTS",
            1,
            1000,
        ),
        hook_allow_networks=_allow_networks(s, e),
        hook_ca_bundle=_ca_bundle(s, e),
        **_endpoints(s, e),
    )


def _endpoints(s: Mapping[str, Any], e: Mapping[str, str]) -> dict[str, Any]:
    """Settings of hooks as managed endpoints: secrets at rest, rotation, auto-disable."""
    key = _opt(_pick(e, "SIP_SECRETS_KEY", s.get("secrets_key"), None))
    ops_url = _opt(_pick(e, "SIP_OPS_WEBHOOK_URL", s.get("ops_webhook_url"), None))
    proxy = _opt(_pick(e, "SIP_EGRESS_PROXY", s.get("egress_proxy"), None))
    return {
        "secret_box": SecretBox.from_setting(key) if key else None,
        "secret_overlap": v.duration(
            _pick(e, "SIP_SECRET_OVERLAP", s.get("secret_overlap"), "24h"), "SIP_SECRET_OVERLAP"
        ),
        "hook_disable_after": v.duration(
            _pick(e, "SIP_HOOK_DISABLE_AFTER", s.get("hook_disable_after"), "5d"),
            "SIP_HOOK_DISABLE_AFTER",
        ),
        "ops_webhook_url": v.hook_url(ops_url, "SIP_OPS_WEBHOOK_URL") if ops_url else None,
        "egress_proxy": v.egress_proxy(proxy) if proxy else None,
        **_order(s, e),
    }


def _order(s: Mapping[str, Any], e: Mapping[str, str]) -> dict[str, Any]:
    """Ordered delivery per call: the endpoints' default and the bounded hold."""
    order = s.get("order")
    if order is not None and not isinstance(order, Mapping):
        raise ConfigError("sip.order must be a mapping with a 'hold_max'")
    default = _pick(e, "SIP_ORDERING", s.get("ordering"), "call")
    if default not in ORDERINGS:
        raise ConfigError(f"SIP_ORDERING must be one of: {', '.join(ORDERINGS)}")
    hold = v.duration(
        _pick(e, "SIP_ORDER_HOLD_MAX", (order or {}).get("hold_max"), "5m"), "SIP_ORDER_HOLD_MAX"
    )
    if hold <= 0:
        raise ConfigError("SIP_ORDER_HOLD_MAX must be longer than 0s")
    return {"ordering": default, "order_hold_max": hold}


def _hooks(s: Mapping[str, Any], e: Mapping[str, str], most: int) -> tuple[HookEntry, ...]:
    if "SIP_HOOKS_JSON" in e:
        entries = v.hooks_json(e["SIP_HOOKS_JSON"])
    else:
        entries = v.hook_entries(s.get("hooks") or [], "sip.hooks")
    hooks: dict[str, HookEntry] = {}
    for item in entries:
        host = v.host(item["host"])
        if host in hooks:
            raise ConfigError(f"Duplicate SIP hook host: {host}")
        listed = item.get("endpoints")
        if listed is not None and not isinstance(listed, list):
            raise ConfigError(f"SIP hook '{host}': endpoints must be a list of {{id?, url, ...}}")
        hook = HookEntry(
            host=host,
            endpoints=None if listed is None else tuple(_endpoint(x, host) for x in listed),
            **_written(item, host),
        )
        hooks[host] = v.hook_entry(hook, None, max_endpoints=most)
    return tuple(hooks.values())


def _written(item: Mapping[str, Any], owner: str) -> dict[str, Any]:
    """An endpoint's fields as the YAML gives them (checked by validate.hook_entry)."""
    events = item.get("events")
    return {
        "url": str(item.get("url") or "").strip(),
        "events": tuple(events) if isinstance(events, list) else events,
        "headers": item.get("headers"),
        "secret": " ".join(v.secrets(item.get("secret"), owner)) or None,
        "rate_limit": v.rate_limit(item.get("rate_limit"), owner),
        "ordering": v.ordering(item.get("ordering"), owner),
    }


def _endpoint(item: object, host: str) -> EndpointEntry:
    if not isinstance(item, Mapping) or not isinstance(item.get("url"), str):
        raise ConfigError(f"SIP hook '{host}': each endpoint needs a url")
    unknown = set(item) - {"id", "url", "secret", "events", "headers", "rate_limit", "ordering"}
    if unknown:
        raise ConfigError(
            f"SIP hook '{host}' endpoint has unknown keys: {', '.join(sorted(unknown))}"
        )
    if not isinstance(item.get("id"), str):  # a generated id would change every provision
        raise ConfigError(f"SIP hook '{host}': each endpoint of the config needs its id")
    return EndpointEntry(id=item["id"], **_written(item, host))


def _schedule(s: Mapping[str, Any], e: Mapping[str, str]) -> tuple[float, ...]:
    retry = s.get("retry")
    if retry is not None and not isinstance(retry, Mapping):
        raise ConfigError("sip.retry must be a mapping with a 'schedule'")
    if "SIP_RETRY_SCHEDULE" in e:
        return v.schedule(e["SIP_RETRY_SCHEDULE"], "SIP_RETRY_SCHEDULE")
    if retry and retry.get("schedule") is not None:
        return v.schedule(retry["schedule"], "sip.retry.schedule")
    return DEFAULT_RETRY_SCHEDULE


def _allow_networks(s: Mapping[str, Any], e: Mapping[str, str]) -> tuple[IPNetwork, ...]:
    networks = v.string_list(
        _pick(e, "SIP_HOOK_ALLOW_NETWORKS", s.get("hook_allow_networks"), []),
        "SIP_HOOK_ALLOW_NETWORKS",
    )
    try:
        return parse_networks(networks)
    except ValueError as exc:
        raise ConfigError(f"SIP_HOOK_ALLOW_NETWORKS entry {exc}") from None


def _ca_bundle(s: Mapping[str, Any], e: Mapping[str, str]) -> str | None:
    ca_bundle = _opt(_pick(e, "SIP_HOOK_CA_BUNDLE", s.get("hook_ca_bundle"), None))
    if ca_bundle and not Path(ca_bundle).is_file():
        raise ConfigError(f"SIP_HOOK_CA_BUNDLE '{ca_bundle}' is not a readable file")
    return ca_bundle
