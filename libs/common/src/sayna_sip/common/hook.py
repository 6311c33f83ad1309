"""`Hook`: the one model of a tenant hook, shared by every process, and its KV codec.

`HookSettings` is what is set on a hook — its one settings type: the config file's entry,
the API's body and the KV value (`HookEntry` and `Hook` extend it, so a field added there
is read from config and API and stored in KV with no other change). The way in is
`hookstore.record` (where a secret is sealed), the way out the API's `HookOut.of`.

KV value = JSON `{url, host, source, updated_at}` plus, when set, `events` (filter),
`secrets` (sealed with SecretBox, never in clear), `enabled`, `disabled_reason` and
`failing_since`. Fields at their defaults are not written, so a plain hook's value holds
the keys earlier releases wrote, and their values decode (tests/common/test_hook.py
holds their bytes). Static hooks take their secrets from the config, never from KV.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec

from sayna_sip.common.hosts import host_token

Source = Literal["config", "runtime"]
Url = Annotated[str, msgspec.Meta(min_length=1, max_length=2048)]


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
    """What an operator or tenant sets on a hook, the same in config, API and KV.

    Checked by `validate.hook_entry` (config and API alike). A new setting (headers,
    ordering, rate limit) is one field here and its rule there.
    """

    url: Url
    events: tuple[str, ...] | None = None  # LiveKit event names it receives; None = all

    def wants(self, event: str) -> bool:
        return self.events is None or event in self.events

    def settings(self) -> dict[str, Any]:
        """The settings' fields by name (what a write replaces; state and secrets stay)."""
        return {name: getattr(self, name) for name in HookSettings.__struct_fields__}


class HookEntry(HookSettings, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A hook as written: an entry of the config (`sip.hooks`, SIP_HOOKS_JSON) or an item
    of `POST /sip/hooks`. `secret` is write-only: sealed into KV for a runtime hook, kept
    in the config (never in KV) for a static one; several are space-separated (config)."""

    host: Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
    secret: str | None = None

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(self.secret.split()) if self.secret else ()

    def __repr__(self) -> str:  # never show the secret, even in a traceback
        return f"HookEntry(host={self.host!r}, url={self.url!r}, events={self.events!r})"


class Hook(HookSettings, frozen=True, kw_only=True, omit_defaults=True):
    """A tenant hook as stored in KV (`encode`/`decode`) and read by every process: its
    settings, where it comes from, its sealed secrets and its delivery state."""

    host: str
    source: Source
    updated_at: str = ""
    secrets: tuple[HookSecret, ...] = ()  # newest first; empty = config or global secret
    enabled: bool = True
    disabled_reason: str | None = None
    failing_since: str | None = None  # set by the forwarders when attempts start failing

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
        """Same host, source and settings: what a config entry defines (its state,
        secrets and `updated_at` aside)."""
        return (self.host, self.source, self.settings()) == (
            other.host, other.source, other.settings(),
        )  # fmt: skip

    @classmethod
    def new(
        cls, host: str, url: str, source: Source, events: tuple[str, ...] | None = None
    ) -> Hook:
        return cls(host=host, url=url, source=source, updated_at=utc_stamp(), events=events)


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Hook)
