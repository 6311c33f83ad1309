"""HTTP bodies of the ingress API: what comes in, what goes out, and the error body.

msgspec Structs, so Litestar decodes and validates them fast and documents them in
the OpenAPI schema. Unknown fields are refused, so a misspelt field is an error rather
than silently dropped. Secrets are write-only: no answer body has a field for one,
except the one-time answer of a rotation.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated, Any, Literal

import msgspec

from sayna_sip.common.hook import (
    REDACTED,
    Endpoint,
    EndpointState,
    Hook,
    HookEntry,
    HookSettings,
)
from sayna_sip.common.secretbox import fingerprint

# Bounds the OpenAPI schema states and the decoder enforces (the host and URL rules
# themselves are checked after decoding, with messages that name the hook).
MAX_ITEMS = 1000
Host = Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
TTL_MAX_CHARS = 32


class ErrorBody(msgspec.Struct, frozen=True):
    """Every error answer: a stable machine code and a sentence for humans."""

    error: str
    message: str


class Received(msgspec.Struct, frozen=True):
    """The webhook is stored in JetStream (or, with SIP disabled, verified)."""

    status: Literal["received"] = "received"


class HooksUpsert(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """POST /sip/hooks body: hooks to add, or to replace when the host exists. Each is a
    SIP host (or `*.wildcard`), its HTTPS target, and optionally its own signing secret
    (a `whsec_<base64>` key of 24-64 bytes or 16-256 characters; needs SIP_SECRETS_KEY)
    and the LiveKit events it receives (absent = all)."""

    hooks: Annotated[list[HookEntry], msgspec.Meta(min_length=1, max_length=MAX_ITEMS)]


class HostsDelete(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """DELETE /sip/hooks body: hosts whose runtime hooks are removed."""

    hosts: Annotated[list[Host], msgspec.Meta(min_length=1, max_length=MAX_ITEMS)]


class SecretOut(msgspec.Struct, frozen=True):
    """A signing secret as shown: never its value."""

    id: str
    fingerprint: str  # first 8 hex digits of the SHA-256 of the key bytes
    expires_at: str | None  # set while a rotated-out secret still signs


def _shown_secrets(
    endpoint: EndpointState, source: str, static_secrets: tuple[str, ...]
) -> list[SecretOut]:
    shown = [
        SecretOut(s.id, s.fingerprint, s.expires_at) for s in endpoint.active_secrets(time.time())
    ]
    if not shown and source == "config":
        shown = [
            SecretOut(f"config-{i + 1}", fingerprint(x), None) for i, x in enumerate(static_secrets)
        ]
    return shown


def _shown_settings(endpoint: EndpointState) -> dict[str, Any]:
    """The settings as answers show them: header values redacted (names only)."""
    settings = endpoint.settings()
    if endpoint.headers is not None:
        settings["headers"] = dict.fromkeys(endpoint.headers, REDACTED)
    return settings


class EndpointOut(HookSettings, frozen=True, kw_only=True, omit_defaults=False):
    """An endpoint as the API shows it, the one way out of `Endpoint`: its settings as
    stored (header values redacted), secrets by fingerprint only, its state."""

    id: str
    secrets: list[SecretOut] = msgspec.field(default_factory=list)  # empty: global secret
    enabled: bool = True
    disabled_reason: str | None = None
    failing_since: str | None = None

    @classmethod
    def of(
        cls, endpoint: Endpoint, source: str, static_secrets: tuple[str, ...] = ()
    ) -> EndpointOut:
        return cls(
            id=endpoint.id,
            secrets=_shown_secrets(endpoint, source, static_secrets),
            enabled=endpoint.enabled,
            disabled_reason=endpoint.disabled_reason,
            failing_since=endpoint.failing_since,
            **_shown_settings(endpoint),
        )


class HookOut(HookSettings, frozen=True, kw_only=True, omit_defaults=False):
    """A hook as the API shows it, the one way out of `Hook`: its `default` endpoint's
    settings and state at the top (what the seed API showed), every endpoint under
    `endpoints`, header values redacted, secrets by fingerprint only."""

    host: str
    source: Literal["config", "runtime"]
    secrets: list[SecretOut] = msgspec.field(default_factory=list)  # empty: global secret
    enabled: bool = True
    disabled_reason: str | None = None
    failing_since: str | None = None
    endpoints: list[EndpointOut] = msgspec.field(default_factory=list)  # `default` first

    @classmethod
    def of(
        cls, hook: Hook, static_secrets: Callable[[Endpoint], tuple[str, ...]] | None = None
    ) -> HookOut:
        """`static_secrets`: a config endpoint's secrets from the config (shown when it
        has none of its own in KV)."""
        endpoints = [
            EndpointOut.of(e, hook.source, static_secrets(e) if static_secrets else ())
            for e in hook.endpoint_list()
        ]
        default = endpoints[0]
        return cls(
            host=hook.host,
            source=hook.source,
            secrets=default.secrets,
            enabled=hook.enabled,
            disabled_reason=hook.disabled_reason,
            failing_since=hook.failing_since,
            endpoints=endpoints,
            **_shown_settings(hook),
        )


class EndpointList(msgspec.Struct, frozen=True):
    """A host's endpoints, `default` first."""

    host: str
    endpoints: list[EndpointOut]


class EndpointRotated(msgspec.Struct, frozen=True):
    """The new secret, shown this once, the endpoint with its secrets' fingerprints, and
    the secrets that stopped signing at once (as Rotated)."""

    secret: str
    endpoint: EndpointOut
    expired_early: list[SecretOut] = msgspec.field(default_factory=list)


class RotateIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """POST /sip/hooks/{host}/rotate-secret body: the new secret, or none to generate one."""

    secret: str | None = None

    def __repr__(self) -> str:
        return "RotateIn(secret=<hidden>)"


class Rotated(msgspec.Struct, frozen=True):
    """The new secret, shown this once, the hook with its secrets' fingerprints, and the
    secrets that stopped signing at once rather than after the overlap (only the newest
    few keep signing beside the new one)."""

    secret: str
    hook: HookOut
    expired_early: list[SecretOut] = msgspec.field(default_factory=list)


class TestSend(msgspec.Struct, frozen=True):
    """One signed `sip_hook_test` delivery made by a forwarder."""

    status: int | None  # HTTP status, None when no answer came
    duration_ms: float
    error: str | None
    response_excerpt: str


class HookList(msgspec.Struct, frozen=True):
    """Every hook, sorted by host."""

    hooks: list[HookOut]


class HookDeleteResult(msgspec.Struct, frozen=True):
    """The hooks left after a delete, and the requested hosts that had no hook."""

    hooks: list[HookOut]
    not_found: list[str]


class Health(msgspec.Struct, frozen=True):
    status: str


class AccessTokenIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """POST /sip/hooks/{host}/access-tokens body: how long the token lasts (1m to 30d)."""

    ttl: Annotated[str, msgspec.Meta(max_length=TTL_MAX_CHARS)] | None = None


class AccessToken(msgspec.Struct, frozen=True):
    """A tenant token (shown this once) and the console link that opens the host's portal."""

    token: str
    token_id: str
    host: str
    expires_at: str
    portal_path: str  # /console#token=…: the fragment never reaches a server or a log


class Revoked(msgspec.Struct, frozen=True):
    """Every token of the host minted before now is refused from now on."""

    host: str
    generation: int
