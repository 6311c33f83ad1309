"""ServerConfig: every setting of every service, from a YAML file and the environment.

The settings' types and defaults live here; reading, merging and validating them
(environment > YAML > default) is `config_load`'s.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from sayna_sip.common import validate as v
from sayna_sip.common.hook import HookEntry
from sayna_sip.common.netpolicy import IPNetwork
from sayna_sip.common.secretbox import SecretBox

DEFAULT_RETRY_SCHEDULE: tuple[float, ...] = (0, 5, 300, 1800, 7200, 18000, 36000, 36000)


@dataclass(frozen=True)
class SipConfig:
    room_prefix: str
    allowed_addresses: tuple[str, ...]
    hooks: tuple[HookEntry, ...] = ()  # static hooks (read-only at runtime)
    hook_secrets: tuple[str, ...] = field(default=(), repr=False)
    retry_schedule: tuple[float, ...] = DEFAULT_RETRY_SCHEDULE
    max_participants: int = 3
    hook_allow_networks: tuple[IPNetwork, ...] = ()
    hook_ca_bundle: str | None = None
    # Per-hook secrets at runtime are sealed in KV under this box (SIP_SECRETS_KEY).
    secret_box: SecretBox | None = field(default=None, repr=False, compare=False)
    secret_overlap: float = 86400.0  # seconds a rotated-out secret keeps signing
    hook_disable_after: float = 5 * 86400.0  # failing this long (and >= 10 attempts): disable
    ops_webhook_url: str | None = None  # operator events are POSTed here, signed
    max_endpoints: int = 10  # SIP_MAX_ENDPOINTS: endpoints per SIP host
    # HTTP CONNECT proxy every delivery leaves through (SIP_EGRESS_PROXY); may hold
    # credentials, so never in repr or logs (`validate.redact_url` for display).
    egress_proxy: str | None = field(default=None, repr=False)
    ordering: str = "call"  # SIP_ORDERING: endpoints without their own `ordering`
    order_hold_max: float = 300.0  # SIP_ORDER_HOLD_MAX: a lane's head holds the rest this long

    @property
    def hook_secret(self) -> str | None:
        return self.hook_secrets[0] if self.hook_secrets else None

    @cached_property
    def static_hooks(self) -> dict[str, HookEntry]:
        """The static hooks by host (their secrets are read from here, never from KV)."""
        return {hook.host: hook for hook in self.hooks}


@dataclass(frozen=True)
class LiveKitConfig:
    url: str | None = None
    api_key: str | None = None
    api_secret: str | None = None

    @property
    def has_credentials(self) -> bool:
        return bool(self.api_key and self.api_secret)

    @property
    def http_url(self) -> str | None:
        """LIVEKIT_URL with ws(s):// mapped to http(s):// for the Twirp API."""
        if not self.url:
            return None
        for ws, http in (("wss://", "https://"), ("ws://", "http://")):
            if self.url.startswith(ws):
                return http + self.url[len(ws) :]
        return self.url


@dataclass(frozen=True)
class AuthConfig:
    required: bool = False
    tokens: tuple[tuple[str, str], ...] = ()  # (id, secret)


@dataclass(frozen=True)
class NatsConfig:
    url: str = "nats://127.0.0.1:4222"  # one URL, or a cluster's list joined by commas
    replicas: int = 1
    start_timeout: float = 20.0  # seconds to reach NATS at start before exiting non-zero

    @property
    def servers(self) -> list[str]:
        return list(v.nats_urls(self.url))

    @property
    def display(self) -> str:
        """The URL(s) without credentials, for logs and error messages."""
        return ",".join(v.redact_url(url) for url in self.servers)


@dataclass(frozen=True)
class ForwarderConfig:
    port: int = 3003
    timeout: float = 10.0
    connect_timeout: float = 2.0
    host_concurrency: int = 10
    concurrency: int = 100


@dataclass(frozen=True)
class RecordsConfig:
    """Retention of delivery records (SIP_ATTEMPTS) and of raw events (the replay horizon)."""

    enabled: bool = True  # SIP_ATTEMPT_RECORDS: router and forwarders write records
    max_age: float = 7 * 86400.0  # SIP_ATTEMPTS_MAX_AGE
    max_bytes: int = 1 << 30  # SIP_ATTEMPTS_MAX_BYTES
    body_bytes: int = 4096  # SIP_ATTEMPT_BODY_BYTES: response excerpt kept per attempt
    events_max_age: float = 7 * 86400.0  # LK_EVENTS_MAX_AGE


@dataclass(frozen=True)
class ServerConfig:
    sip: SipConfig | None = None
    livekit: LiveKitConfig = field(default_factory=LiveKitConfig)
    nats: NatsConfig = field(default_factory=NatsConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    forwarder: ForwarderConfig = field(default_factory=ForwarderConfig)
    records: RecordsConfig = field(default_factory=RecordsConfig)
    host: str = "0.0.0.0"
    port: int = 3001
    max_body_bytes: int = 1024 * 1024
    router_port: int = 3002
    log_format: str = "text"
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ServerConfig:
        """Configuration from the environment alone."""
        from sayna_sip.common.config_load import load  # it builds these types

        return load({}, os.environ if env is None else env)

    @classmethod
    def from_file(cls, path: str | Path, env: Mapping[str, str] | None = None) -> ServerConfig:
        """Configuration from a YAML file, with the environment on top."""
        from sayna_sip.common.config_load import load, read_yaml

        return load(read_yaml(path), os.environ if env is None else env)

    @classmethod
    def load(
        cls, path: str | Path | None = None, env: Mapping[str, str] | None = None
    ) -> ServerConfig:
        """`from_file(path)` when a path is given, else `from_env()`."""
        return cls.from_file(path, env) if path else cls.from_env(env)
