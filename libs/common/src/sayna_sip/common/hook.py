"""`Hook`: the one model of a tenant hook, shared by every process, and its KV codec.

KV value = JSON `{host, url, source, updated_at}` plus, when set, `events` (filter),
`secrets` (sealed with SecretBox, never in clear), `enabled`, `disabled_reason` and
`failing_since`. Fields at their defaults are not written, so a plain hook's value is
byte-for-byte what earlier releases wrote, and their values decode. Static hooks take
their secrets from the config, never from KV.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

import msgspec

from sayna_sip.common.hosts import host_token

if TYPE_CHECKING:
    from sayna_sip.common.config import HookConfig

Source = Literal["config", "runtime"]


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


class Hook(msgspec.Struct, frozen=True, omit_defaults=True):
    """A tenant hook, wherever it is: in KV (`encode`/`decode`), from the static config
    (`from_config`), and behind the ingress API bodies (`ingress.schemas`)."""

    host: str
    url: str
    source: Source
    updated_at: str = ""
    events: tuple[str, ...] | None = None  # LiveKit event names it receives; None = all
    secrets: tuple[HookSecret, ...] = ()  # newest first; empty = config or global secret
    enabled: bool = True
    disabled_reason: str | None = None
    failing_since: str | None = None  # set by the forwarders when attempts start failing

    def wants(self, event: str) -> bool:
        return self.events is None or event in self.events

    def active_secrets(self, now: float) -> tuple[HookSecret, ...]:
        return tuple(s for s in self.secrets if s.active(now))

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
        """Same host, URL, source and event filter: what a config entry defines (its
        state, secrets and `updated_at` aside)."""
        return (self.host, self.url, self.source, self.events) == (
            other.host, other.url, other.source, other.events,
        )  # fmt: skip

    @classmethod
    def from_config(cls, entry: HookConfig) -> Hook:
        """The hook a static config entry defines; its secrets stay in the config, never
        in KV (`SipConfig.secrets_for` gives them to the forwarders)."""
        return cls.new(entry.host, entry.url, "config", entry.events)

    @classmethod
    def new(
        cls, host: str, url: str, source: Source, events: tuple[str, ...] | None = None
    ) -> Hook:
        return cls(host=host, url=url, source=source, updated_at=utc_stamp(), events=events)


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Hook)
