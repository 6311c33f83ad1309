"""`Hook`: the one model of a tenant hook, shared by every process, and its KV codec.

A SIP host's hook owns 1..SIP_MAX_ENDPOINTS endpoints, each with a stable id; `default`
is the one the seed API's `{host, url}` sets. `HookSettings` is what is set on an
endpoint — its one settings type: the config file's entries, the API's bodies and the KV
value (`HookEntry`, `EndpointEntry`, `Endpoint` and `Hook` extend it, so a field added
there is read from config and API and stored in KV with no other change). The way in is
`hookstore.record` (where secrets and header values are sealed), the way out the API's
`HookOut.of` (where header values are redacted).

KV value = JSON `{url, host, source, updated_at}` plus, when set, `events` (filter),
`headers` (values sealed), `secrets` (sealed with SecretBox, never in clear), `enabled`,
`disabled_reason`, `failing_since` — all of the `default` endpoint — and `endpoints`
(the others). Fields at their defaults are not written, so a plain hook's value holds
the keys earlier releases wrote, and their values decode (tests/common/test_hook.py
holds their bytes). Static hooks take their secrets and header values from the config,
never from KV.
"""

from __future__ import annotations

import secrets as _random
import time
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec

from sayna_sip.common.hosts import host_token

Source = Literal["config", "runtime"]
DEFAULT_ENDPOINT = "default"  # the endpoint the seed API's {host, url} is
REDACTED = "<redacted>"  # a header value as answers show it; written back, it keeps the value
Url = Annotated[str, msgspec.Meta(min_length=1, max_length=2048)]
MAX_RATE_LIMIT = 10_000.0
# Checked by `validate.rate_limit` (config and API alike, one error code), not here.
RateLimit = Annotated[
    float, msgspec.Meta(description=f"deliveries per second, > 0 and <= {MAX_RATE_LIMIT:g}")
]
# `call`: a room's events in their order (forwarder/lanes.py); `none`: as they come.
# Checked by `validate.ordering`; unset = the SIP_ORDERING default (`call`).
ORDERINGS = ("call", "none")
Ordering = Annotated[str, msgspec.Meta(description="call | none; unset = SIP_ORDERING")]


def utc_stamp(at: float | None = None) -> str:
    """RFC 3339 UTC, to the second: the format of every time in a hook record."""
    when = datetime.now(UTC) if at is None else datetime.fromtimestamp(at, UTC)
    return when.isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_stamp(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


GLOBAL_SECRET_ID = "global"  # a secrets entry standing for SIP_HOOK_SECRET (during rotation)


class HookSecret(msgspec.Struct, frozen=True, omit_defaults=True):
    """One signing secret of a hook: its id, public fingerprint and sealed value.

    `sealed` is empty for the `global` entry, which stands for SIP_HOOK_SECRET while a
    hook that used it rotates to its own secret.
    """

    id: str
    fingerprint: str
    sealed: str = ""
    created_at: str = ""
    expires_at: str | None = None

    def active(self, now: float) -> bool:
        return self.expires_at is None or parse_stamp(self.expires_at) > now


class HookSettings(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What an operator or tenant sets on an endpoint, the same in config, API and KV.

    Checked by `validate.hook_entry` (config and API alike). A new setting (ordering,
    rate limit) is one field here and its rule there. `headers` holds clear values in
    config and API bodies, sealed ones in KV (`hookstore.record` seals them).
    """

    url: Url
    events: tuple[str, ...] | None = None  # LiveKit event names it receives; None = all
    headers: dict[str, str] | None = None  # custom request headers; values sealed in KV
    rate_limit: RateLimit | None = None  # deliveries per second, all forwarders together
    ordering: Ordering | None = None  # call | none; None = SIP_ORDERING (what older KV reads as)

    def wants(self, event: str) -> bool:
        return self.events is None or event in self.events

    def orders_by_call(self, default: str) -> bool:
        """Whether its copies go in their room's order (`default`: SIP_ORDERING)."""
        return (self.ordering or default) == "call"

    def settings(self) -> dict[str, Any]:
        """The settings' fields by name (what a write replaces; state and secrets stay)."""
        return {name: getattr(self, name) for name in HookSettings.__struct_fields__}


class EndpointEntry(HookSettings, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An endpoint as written: an item of a config hook's `endpoints:`, the body of
    `POST /sip/hooks/{host}/endpoints`. `id` is generated when absent; `secret` as in
    HookEntry."""

    id: str | None = None
    secret: str | None = None

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(self.secret.split()) if self.secret else ()

    def __repr__(self) -> str:  # never show the secret or header values
        return f"EndpointEntry(id={self.id!r}, url={self.url!r}, events={self.events!r})"


class HookEntry(HookSettings, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A hook as written: an entry of the config (`sip.hooks`, SIP_HOOKS_JSON) or an item
    of `POST /sip/hooks`: its `default` endpoint's settings and secret, and the host's
    other endpoints (absent = as they are). `secret` is write-only: sealed into KV for a
    runtime hook, kept in the config (never in KV) for a static one; several are
    space-separated (config)."""

    host: Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
    secret: str | None = None
    endpoints: tuple[EndpointEntry, ...] | None = None

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(self.secret.split()) if self.secret else ()

    def endpoint_entries(self) -> tuple[EndpointEntry, ...]:
        """Every endpoint written, `default` (this entry's own settings) first."""
        default = EndpointEntry(id=DEFAULT_ENDPOINT, secret=self.secret, **self.settings())
        return (default, *(self.endpoints or ()))

    def __repr__(self) -> str:  # never show the secret or header values
        return f"HookEntry(host={self.host!r}, url={self.url!r}, events={self.events!r})"


class EndpointState(HookSettings, frozen=True, kw_only=True, omit_defaults=True):
    """An endpoint as stored: its settings, sealed secrets and delivery state."""

    secrets: tuple[HookSecret, ...] = ()  # newest first; empty = config or global secret
    enabled: bool = True
    disabled_reason: str | None = None
    failing_since: str | None = None  # set by the forwarders when attempts start failing

    def active_secrets(self, now: float) -> tuple[HookSecret, ...]:
        return tuple(s for s in self.secrets if s.active(now))

    def state(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in EndpointState.__struct_fields__}


class Endpoint(EndpointState, frozen=True, kw_only=True, omit_defaults=True):
    """One of a host's endpoints other than `default` (those live in `Hook.endpoints`),
    or `default` as `Hook.endpoint_list()` shows it."""

    id: str

    def changed(self, **fields: object) -> Endpoint:
        now = time.time()
        record = msgspec.structs.replace(self, **fields)
        return msgspec.structs.replace(record, secrets=record.active_secrets(now))


class Hook(EndpointState, frozen=True, kw_only=True, omit_defaults=True):
    """A tenant hook as stored in KV (`encode`/`decode`) and read by every process: the
    host, where it comes from, and its endpoints. Its own settings and state are its
    `default` endpoint's (what releases before endpoints stored, so their values read
    as a host with one endpoint, and they read ours as its default endpoint)."""

    host: str
    source: Source
    updated_at: str = ""
    endpoints: tuple[Endpoint, ...] = ()  # the endpoints other than `default`

    def endpoint_list(self) -> tuple[Endpoint, ...]:
        """Every endpoint, `default` first."""
        return (Endpoint(id=DEFAULT_ENDPOINT, **self.state()), *self.endpoints)

    def endpoint(self, endpoint_id: str) -> Endpoint | None:
        if endpoint_id == DEFAULT_ENDPOINT:
            return Endpoint(id=DEFAULT_ENDPOINT, **self.state())
        return next((e for e in self.endpoints if e.id == endpoint_id), None)

    def with_endpoint(self, endpoint: Endpoint) -> Hook:
        """This hook with `endpoint` set (added, or replacing the one with its id)."""
        if endpoint.id == DEFAULT_ENDPOINT:
            return self.changed(**endpoint.state())
        others = [e for e in self.endpoints if e.id != endpoint.id]
        if len(others) == len(self.endpoints):
            return self.changed(endpoints=(*self.endpoints, endpoint))
        return self.changed(
            endpoints=tuple(endpoint if e.id == endpoint.id else e for e in self.endpoints)
        )

    def without_endpoint(self, endpoint_id: str) -> Hook:
        return self.changed(endpoints=tuple(e for e in self.endpoints if e.id != endpoint_id))

    def changed(self, **fields: object) -> Hook:
        """A copy with `fields` changed, expired secrets dropped, and a new updated_at."""
        now = time.time()
        record = msgspec.structs.replace(self, **fields)
        return msgspec.structs.replace(
            record, secrets=record.active_secrets(now), updated_at=utc_stamp(now)
        )

    @property
    def key(self) -> str:
        return host_token(self.host)

    def encode(self) -> bytes:
        return _encoder.encode(self)

    @classmethod
    def decode(cls, data: bytes) -> Hook:
        return _decoder.decode(data)

    def same_definition(self, other: Hook) -> bool:
        """Same host, source and endpoints' settings: what a config entry defines (state,
        secrets and `updated_at` aside)."""
        return (self.host, self.source, _definitions(self)) == (
            other.host, other.source, _definitions(other),
        )  # fmt: skip

    @classmethod
    def new(
        cls, host: str, url: str, source: Source, events: tuple[str, ...] | None = None
    ) -> Hook:
        return cls(host=host, url=url, source=source, updated_at=utc_stamp(), events=events)


def _definitions(hook: Hook) -> list[tuple[str, dict[str, Any]]]:
    return [(e.id, e.settings()) for e in hook.endpoint_list()]


def new_endpoint_id() -> str:
    return "ep-" + _random.token_hex(4)


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Hook)
